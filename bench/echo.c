/* The floor row of bench/run.sh's hit workload: what answering a UDP query costs when the
 * answer needs no work at all. Each query comes back with QR and RA set, its question, and
 * one fixed A record (192.0.2.1, TTL 60) in place of whatever followed the question; nothing
 * is looked up, nothing is allocated. One thread, a blocking socket.
 *   cc -O2 -o echo bench/echo.c          (run.sh compiles it into $DATA/bin)
 *   echo 127.0.0.1 5309                  one recvfrom and one sendto per query
 *   echo 127.0.0.1 5309 32               recvmmsg/sendmmsg, up to 32 queries per call
 * Loopback addresses only. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#define MAX_BATCH 256
#define BUF 4096

/* Turns the query in m (len bytes) into the answer in place; its length, or -1 to drop. */
static int answer(unsigned char *m, int len) {
    static const unsigned char rr[] = {0xC0, 0x0C, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 192, 0, 2, 1};
    if (len < 12 || (m[2] & 0x80)) return -1;
    int o = 12;
    while (o < len && m[o] != 0) o += m[o] + 1;
    o += 1 + 4; /* the root label, QTYPE and QCLASS */
    if (o > len || o + (int)sizeof rr > BUF) return -1;
    m[2] = (unsigned char)(0x80 | (m[2] & 0x79)); /* QR; opcode and RD kept */
    m[3] = 0x80;                                  /* RA, NOERROR */
    m[4] = 0; m[5] = 1; m[6] = 0; m[7] = 1;       /* one question, one answer */
    m[8] = m[9] = m[10] = m[11] = 0;
    memcpy(m + o, rr, sizeof rr);
    return o + (int)sizeof rr;
}

int main(int argc, char **argv) {
    if (argc < 3) { fprintf(stderr, "usage: echo ADDR PORT [BATCH]\n"); return 2; }
    int batch = argc > 3 ? atoi(argv[3]) : 1;
    if (batch < 1 || batch > MAX_BATCH) { fprintf(stderr, "BATCH: 1 to %d\n", MAX_BATCH); return 2; }
    if (strncmp(argv[1], "127.", 4) != 0) { fprintf(stderr, "loopback addresses only\n"); return 2; }
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(atoi(argv[2]))};
    if (inet_pton(AF_INET, argv[1], &sa.sin_addr) != 1) { fprintf(stderr, "bad address\n"); return 2; }
    int s = socket(AF_INET, SOCK_DGRAM, 0);
    int size = 4 << 20; /* as dnsward's sockets */
    setsockopt(s, SOL_SOCKET, SO_RCVBUF, &size, sizeof size);
    setsockopt(s, SOL_SOCKET, SO_SNDBUF, &size, sizeof size);
    if (bind(s, (struct sockaddr *)&sa, sizeof sa) < 0) { perror("bind"); return 1; }
    static unsigned char bufs[MAX_BATCH][BUF];
    static struct sockaddr_in peers[MAX_BATCH];
    static struct iovec iov[MAX_BATCH];
    static struct mmsghdr in[MAX_BATCH], out[MAX_BATCH];
    for (;;) {
        if (batch == 1) {
            socklen_t pl = sizeof peers[0];
            int n = (int)recvfrom(s, bufs[0], BUF, 0, (struct sockaddr *)&peers[0], &pl);
            if (n < 0) continue;
            int len = answer(bufs[0], n);
            if (len > 0) sendto(s, bufs[0], (size_t)len, 0, (struct sockaddr *)&peers[0], pl);
            continue;
        }
        for (int i = 0; i < batch; i++) {
            iov[i].iov_base = bufs[i];
            iov[i].iov_len = BUF;
            memset(&in[i], 0, sizeof in[i]);
            in[i].msg_hdr.msg_name = &peers[i];
            in[i].msg_hdr.msg_namelen = sizeof peers[i];
            in[i].msg_hdr.msg_iov = &iov[i];
            in[i].msg_hdr.msg_iovlen = 1;
        }
        /* Block for the first, then take what is queued (MSG_WAITFORONE). */
        int n = recvmmsg(s, in, (unsigned)batch, MSG_WAITFORONE, NULL);
        if (n <= 0) continue;
        int k = 0;
        for (int i = 0; i < n; i++) {
            int len = answer(bufs[i], (int)in[i].msg_len);
            if (len < 0) continue;
            iov[i].iov_len = (size_t)len;
            out[k] = in[i];
            out[k].msg_hdr.msg_iov = &iov[i];
            k++;
        }
        for (int sent = 0; sent < k;) {
            int m = sendmmsg(s, out + sent, (unsigned)(k - sent), 0);
            sent += m > 0 ? m : 1;
        }
    }
}
