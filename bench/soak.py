#!/usr/bin/env python3
"""The soak run with faults (bench/soak.sh runs this; see bench/README.md, "Soak").

Everything on loopback, bounded in time. One dnsward (the binary under test) resolves
iteratively over a lab hierarchy of small authoritative servers started here (a root, the TLD
`lab.` and the TLD `alt.`, each its own process on 127.77.0.x), blocks names from a local
list, a feed served here, and an RPZ zone transferred from a second dnsward (the primary),
and logs every query to SQLite and to ClickHouse (chdb behind ClickHouse's HTTP interface,
tests/clickhouse_chdb/server.py). Traffic at a fixed rate: cache hits, misses, NXDOMAIN,
blocked names, over UDP, TCP, DoT and DoH. On a schedule: list reloads (SIGHUP), the feed
changes / goes down (503) / returns HTML, RPZ changes pushed by the primary (NOTIFY), the
ClickHouse server stopped and restarted (the spool fills and is replayed), the `alt.`
authority killed and restarted, and bursts of malformed packets.

Reports (stdout, and bench/results/soak.tsv, soak.svg): queries lost (no answer) and wrong
(not the expected answer), outside and inside the injected `alt.` outage; RSS, file
descriptors and threads over time; q/s; and the query log's accounting: events logged +
counted drops = queries sent, for each sink.

    SOAK_SECS=1800 SOAK_QPS=200 bench/soak.sh
"""

import json
import os
import random
import signal
import socket
import ssl
import struct
import subprocess
import sys
import threading
import time
import http.client
import http.server
import urllib.request
import zlib

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SECS = int(os.environ.get("SOAK_SECS", "1800"))
QPS = int(os.environ.get("SOAK_QPS", "200"))
SAMPLE = int(os.environ.get("SOAK_SAMPLE_SECS", "10"))
# The packet cache keeps every name (stale ones for a day) up to cache_size entries: small
# enough that it is full after the warm-up, so RSS growth after it means something.
CACHE_SIZE = int(os.environ.get("SOAK_CACHE_SIZE", "10000"))
# The SQLite writer's page cache fills as the database grows, up to this bound, then stays:
# small enough that it is full after the warm-up as well.
SQLITE_CACHE_MB = int(os.environ.get("SOAK_SQLITE_CACHE_MB", "8"))
WARMUP = int(os.environ.get("SOAK_WARMUP_SECS", str(SECS // 5)))
DNSWARD = os.path.abspath(os.environ.get("DNSWARD") or (
    os.path.join(REPO, "target/release/dnsward")
    if os.path.exists(os.path.join(REPO, "target/release/dnsward"))
    else os.path.join(REPO, "target/debug/dnsward"))
)
OUT = os.environ.get("SOAK_OUT", os.path.join(REPO, "bench/results"))
WORK = os.environ.get("SOAK_DIR", "/tmp/dnsward-soak-%d" % os.getpid())
CHDB_SHIM = os.path.join(REPO, "tests/clickhouse_chdb/server.py")

ROOT, LAB, ALT = "127.77.0.1", "127.77.0.2", "127.77.0.3"
FAULT_KINDS = ("reload", "rpz", "burst", "feed", "clickhouse", "alt")
TIMEOUT = 3.0  # a query without an answer after this long is lost


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def say(*a):
    print("[soak %s]" % time.strftime("%H:%M:%S"), *a, flush=True)


# ---------------------------------------------------------------- DNS wire, by hand


def wire_name(name):
    out = b""
    for label in name.rstrip(".").split("."):
        if label:
            out += bytes([len(label)]) + label.encode()
    return out + b"\0"


def build_query(qid, name, qtype=1):
    return struct.pack(">HHHHHH", qid, 0x0100, 1, 0, 0, 0) + wire_name(name) + struct.pack(">HH", qtype, 1)


def read_name(msg, pos):
    labels, jumped, end = [], False, pos
    for _ in range(128):
        n = msg[pos]
        if n == 0:
            pos += 1
            break
        if n & 0xC0 == 0xC0:
            if not jumped:
                end = pos + 2
            pos = ((n & 0x3F) << 8) | msg[pos + 1]
            jumped = True
            continue
        labels.append(msg[pos + 1 : pos + 1 + n].decode("ascii", "replace").lower())
        pos += 1 + n
    return ".".join(labels), (end if jumped else pos)


def parse_answer(msg):
    """(id, rcode, question name, [A addresses]) of a response."""
    qid, flags, qd, an = struct.unpack_from(">HHHH", msg, 0)
    pos = 12
    qname = ""
    for _ in range(qd):
        qname, pos = read_name(msg, pos)
        pos += 4
    addrs = []
    for _ in range(an):
        _, pos = read_name(msg, pos)
        rtype, _cls, _ttl, rdlen = struct.unpack_from(">HHIH", msg, pos)
        pos += 10
        if rtype == 1 and rdlen == 4:
            addrs.append(socket.inet_ntoa(msg[pos : pos + 4]))
        pos += rdlen
    return qid, flags & 0xF, qname, addrs


def addr_of(name):
    """The lab authorities' address for a name (a pure function of the name)."""
    h = zlib.crc32(name.lower().rstrip(".").encode())
    return "10.%d.%d.%d" % ((h >> 16) & 0xFF, (h >> 8) & 0xFF, h & 0xFF or 1)


# ---------------------------------------------------------------- the lab authorities


def serve_authority(addr, port, role):
    """Runs in a child process: root (referrals to lab. and alt.), or the lab./alt. zone."""
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    udp.bind((addr, port))
    tcp = socket.socket()
    tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    tcp.bind((addr, port))
    tcp.listen(64)

    def rr(name, rtype, ttl, rdata):
        return wire_name(name) + struct.pack(">HHIH", rtype, 1, ttl, len(rdata)) + rdata

    def soa(zone):
        rdata = wire_name("ns." + zone) + wire_name("host." + zone) + struct.pack(">IIIII", 1, 3600, 600, 86400, 30)
        return rr(zone, 6, 300, rdata)

    def answer(q):
        if len(q) < 12:
            return None
        qid, flags = struct.unpack_from(">HH", q, 0)
        if flags & 0x8000:
            return None
        try:
            name, pos = read_name(q, 12)
            qtype, _ = struct.unpack_from(">HH", q, pos)
        except Exception:
            return None
        question = q[12 : pos + 4]
        an, ns, ar, rcode, aa = [], [], [], 0, 0x0400
        if role == "root":
            aa = 0
            for tld, ip in (("lab", LAB), ("alt", ALT)):
                if name == tld or name.endswith("." + tld):
                    ns.append(rr(tld, 2, 86400, wire_name("ns." + tld)))
                    ar.append(rr("ns." + tld, 1, 86400, socket.inet_aton(ip)))
                    break
            else:
                if name == "" and qtype == 2:
                    aa = 0x0400
                    an.append(rr("", 2, 86400, wire_name("ns.root")))
                else:
                    aa, rcode = 0x0400, 3
                    ns.append(soa(""))
        else:
            zone = role
            if name.split(".")[0].startswith("nx"):
                rcode = 3
                ns.append(soa(zone))
            elif qtype == 1:
                an.append(rr(name, 1, 300, socket.inet_aton(addr_of(name))))
            elif qtype == 2 and name == zone:
                an.append(rr(zone, 2, 86400, wire_name("ns." + zone)))
            else:
                ns.append(soa(zone))
        head = struct.pack(">HHHHHH", qid, 0x8000 | aa | (flags & 0x0100) | rcode, 1, len(an), len(ns), len(ar))
        return head + question + b"".join(an + ns + ar)

    def tcp_loop():
        while True:
            c, _ = tcp.accept()
            try:
                c.settimeout(5)
                n = struct.unpack(">H", c.recv(2))[0]
                q = b""
                while len(q) < n:
                    chunk = c.recv(n - len(q))
                    if not chunk:
                        break
                    q += chunk
                a = answer(q)
                if a:
                    c.sendall(struct.pack(">H", len(a)) + a)
            except Exception:
                pass
            c.close()

    threading.Thread(target=tcp_loop, daemon=True).start()
    while True:
        q, peer = udp.recvfrom(4096)
        a = answer(q)
        if a:
            udp.sendto(a, peer)


# ---------------------------------------------------------------- the feed server

FEED = {"mode": "v1"}
FEED_STABLE = ["feed-stable-%d.lab" % i for i in range(20)]


class FeedHandler(http.server.BaseHTTPRequestHandler):
    def log_message(self, *a):
        pass

    def do_GET(self):
        mode = FEED["mode"]
        if mode == "down":
            self.send_response(503)
            self.end_headers()
            return
        if mode == "html":
            body = b"<!DOCTYPE html><html><body>Maintenance</body></html>\n"
            ctype = "text/html"
        else:
            extra = ["feed-%s-%d.lab" % (mode, i) for i in range(20)]
            body = ("\n".join(FEED_STABLE + extra) + "\n").encode()
            ctype = "text/plain"
        self.send_response(200)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


# ---------------------------------------------------------------- processes


class Procs:
    def __init__(self):
        self.children = {}

    def start(self, key, args, **kw):
        log = open(os.path.join(WORK, key + ".log"), "ab")
        p = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, stdin=kw.pop("stdin", subprocess.DEVNULL), **kw)
        self.children[key] = p
        return p

    def stop(self, key, sig=signal.SIGKILL, wait=30):
        p = self.children.pop(key, None)
        if p and p.poll() is None:
            p.send_signal(sig)
            try:
                p.wait(wait)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()

    def stop_all(self):
        for k in list(self.children):
            self.stop(k)


def wait_port(port, secs=60, host="127.0.0.1"):
    deadline = time.time() + secs
    while time.time() < deadline:
        try:
            socket.create_connection((host, port), 1).close()
            return True
        except OSError:
            time.sleep(0.2)
    return False


# ---------------------------------------------------------------- traffic


class Stats:
    def __init__(self):
        self.lock = threading.Lock()
        self.sent = self.answered = self.lost = self.wrong = 0
        self.outage_sent = self.outage_lost = self.outage_wrong = 0
        self.by_transport = {}
        self.wrong_examples = []
        self.interval_answered = 0

    def add(self, transport, outage, ok, answered, why=None):
        with self.lock:
            self.sent += 1
            t = self.by_transport.setdefault(transport, [0, 0, 0])
            t[0] += 1
            if outage:
                self.outage_sent += 1
            if not answered:
                if outage:
                    self.outage_lost += 1
                else:
                    self.lost += 1
                    t[1] += 1
                return
            self.answered += 1
            self.interval_answered += 1
            if not ok:
                if outage:
                    self.outage_wrong += 1
                else:
                    self.wrong += 1
                    t[2] += 1
                    if len(self.wrong_examples) < 20:
                        self.wrong_examples.append(why)


class Traffic:
    """Queries at a fixed rate, each checked against what it must get."""

    def __init__(self, dns_port, dot_port, doh_port, stats):
        self.dns_port, self.dot_port, self.doh_port = dns_port, dot_port, doh_port
        self.stats = stats
        self.seq = 0
        self.alt_down = False
        self.stop = False
        self.ctx = ssl.create_default_context()
        self.ctx.check_hostname = False
        self.ctx.verify_mode = ssl.CERT_NONE

    def pick(self):
        """(name, expectation): ('addr', ip) | ('nx',) | ('blocked',) | ('alt', ip)."""
        self.seq += 1
        r = random.random()
        if r < 0.40:
            n = "hit-%d.lab" % random.randrange(200)
            return n, ("addr", addr_of(n))
        if r < 0.55:
            n = "miss-%d-%d.lab" % (os.getpid(), self.seq)
            return n, ("addr", addr_of(n))
        if r < 0.62:
            return "nx-%d.lab" % self.seq, ("nx",)
        if r < 0.72:
            return "b-%d.blocked.lab" % random.randrange(50), ("blocked",)
        if r < 0.80:
            return random.choice(FEED_STABLE), ("blocked",)
        if r < 0.86:
            return "r-%d.rpzstable.lab" % random.randrange(10), ("blocked",)
        n = "x-%d.alt" % random.randrange(100000)
        return n, ("alt", addr_of(n))

    def check(self, expect, rcode, addrs):
        kind = expect[0]
        if kind == "addr":
            return rcode == 0 and addrs == [expect[1]]
        if kind == "nx":
            return rcode == 3
        if kind == "blocked":
            return rcode == 3 and not addrs
        if kind == "alt":
            return rcode == 0 and addrs == [expect[1]]
        return False

    def one(self, transport):
        name, expect = self.pick()
        qid = random.randrange(65536)
        q = build_query(qid, name)
        outage = expect[0] == "alt" and self.alt_down
        resp = None
        try:
            if transport == "udp":
                s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                s.settimeout(TIMEOUT)
                s.sendto(q, ("127.0.0.1", self.dns_port))
                resp = s.recv(65535)
                s.close()
            elif transport == "tcp":
                with socket.create_connection(("127.0.0.1", self.dns_port), TIMEOUT) as s:
                    s.settimeout(TIMEOUT)
                    s.sendall(struct.pack(">H", len(q)) + q)
                    resp = recv_framed(s)
            elif transport == "dot":
                with socket.create_connection(("127.0.0.1", self.dot_port), TIMEOUT) as raw:
                    with self.ctx.wrap_socket(raw) as s:
                        s.settimeout(TIMEOUT)
                        s.sendall(struct.pack(">H", len(q)) + q)
                        resp = recv_framed(s)
            else:
                c = http.client.HTTPSConnection("127.0.0.1", self.doh_port, timeout=TIMEOUT, context=self.ctx)
                c.request("POST", "/dns-query", body=q, headers={"Content-Type": "application/dns-message"})
                r = c.getresponse()
                body = r.read()
                c.close()
                resp = body if r.status == 200 else None
        except Exception:
            resp = None
        if resp is None:
            self.stats.add(transport, outage, False, False)
            return
        try:
            rid, rcode, qname, addrs = parse_answer(resp)
            ok = rid == qid and qname == name.lower() and self.check(expect, rcode, addrs)
        except Exception as e:
            rcode, addrs, ok = -1, [], False
        # During the alt. outage a SERVFAIL (or a stale answer) is what a client gets.
        self.stats.add(transport, outage, ok, True, (transport, name, expect, rcode, addrs))

    def run(self, secs):
        """QPS queries a second for `secs`, spread over threads so a slow one waits alone."""
        transports = ["udp"] * 70 + ["tcp"] * 10 + ["dot"] * 10 + ["doh"] * 10
        start = time.time()
        sem = threading.BoundedSemaphore(256)
        n = 0
        while not self.stop and time.time() - start < secs:
            due = start + n / QPS
            delay = due - time.time()
            if delay > 0:
                time.sleep(delay)
            n += 1
            if not sem.acquire(timeout=TIMEOUT * 2):
                # more than 256 in flight: counted as lost rather than piling up threads
                self.stats.add("overload", False, False, False)
                continue
            t = random.choice(transports)

            def go(t=t):
                try:
                    self.one(t)
                finally:
                    sem.release()

            threading.Thread(target=go, daemon=True).start()
        # let the last ones finish
        for _ in range(256):
            sem.acquire(timeout=TIMEOUT * 2)


def recv_framed(s):
    head = b""
    while len(head) < 2:
        c = s.recv(2 - len(head))
        if not c:
            return None
        head += c
    n = struct.unpack(">H", head)[0]
    body = b""
    while len(body) < n:
        c = s.recv(n - len(body))
        if not c:
            return None
        body += c
    return body


# ---------------------------------------------------------------- monitoring


def proc_sample(pid):
    rss = threads = 0
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                rss = int(line.split()[1]) // 1024
            elif line.startswith("Threads:"):
                threads = int(line.split()[1])
    fds = len(os.listdir("/proc/%d/fd" % pid))
    return rss, fds, threads


def api(port, token, method, path):
    req = urllib.request.Request("http://127.0.0.1:%d%s" % (port, path), method=method)
    req.add_header("Authorization", "Bearer " + token)
    with urllib.request.urlopen(req, timeout=30) as r:
        return r.read()


def write_svg(rows, path):
    """RSS (MB) and q/s over time, as a plain SVG (no plotting library needed)."""
    if len(rows) < 2:
        return
    w, h, pad = 900, 360, 50
    tmax = max(r[0] for r in rows) or 1
    out = ['<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" font-family="sans-serif" font-size="12">' % (w, h)]
    out.append('<rect width="100%" height="100%" fill="white"/>')
    for idx, (col, colour, label) in enumerate(((1, "#c00", "RSS MB"), (4, "#06c", "answers/s"))):
        vmax = max(r[col] for r in rows) * 1.1 or 1
        pts = " ".join(
            "%.1f,%.1f" % (pad + (w - 2 * pad) * r[0] / tmax, h - pad - (h - 2 * pad) * r[col] / vmax) for r in rows
        )
        out.append('<polyline fill="none" stroke="%s" stroke-width="1.5" points="%s"/>' % (colour, pts))
        out.append('<text x="%d" y="%d" fill="%s">%s (max %.0f)</text>' % (pad + idx * 200, 20, colour, label, vmax / 1.1))
    out.append('<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="black"/>' % (pad, h - pad, w - pad, h - pad))
    out.append('<text x="%d" y="%d">time (s), 0 .. %d</text>' % (w // 2 - 50, h - 15, tmax))
    out.append("</svg>")
    with open(path, "w") as f:
        f.write("\n".join(out))


# ---------------------------------------------------------------- main


def main():
    if len(sys.argv) > 1 and sys.argv[1] == "auth":
        serve_authority(sys.argv[2], int(sys.argv[3]), sys.argv[4])
        return
    # SIGTERM (timeout, Ctrl-C) still stops every child by its PID (the finally below)
    signal.signal(signal.SIGTERM, lambda *a: sys.exit(3))
    os.makedirs(WORK, exist_ok=True)
    os.makedirs(OUT, exist_ok=True)
    say("work dir", WORK, "binary", DNSWARD, "for", SECS, "s at", QPS, "q/s")
    procs = Procs()
    try:
        run(procs)
    finally:
        procs.stop_all()


def run(procs):
    W = WORK
    auth_port = free_port()
    dns_port, dot_port, doh_port = free_port(), free_port(), free_port()
    admin_port, feed_port, ch_port = free_port(), free_port(), free_port()
    prim_dns, prim_rpz, notify_port = free_port(), free_port(), free_port()
    token = "soak-token-%016x" % random.getrandbits(64)

    # lab hierarchy
    with open(os.path.join(W, "root.hints"), "w") as f:
        f.write(". 3600000 NS ns.root.\nns.root. 3600000 A %s\n" % ROOT)
    auth = {"root": ROOT, "lab": LAB, "alt": ALT}

    def ahead_of_builds():
        # The lab authorities stand in for the internet's: on a machine busy with builds a
        # Python authority that stalls for a third of a second makes dnsward give up on its
        # zone (three 100 ms waits) and answer SERVFAIL, which is the machine, not dnsward.
        # As root, run them ahead of background work.
        if os.geteuid() == 0:
            os.nice(-10)

    def start_auth(role):
        procs.start("auth-" + role, [sys.executable, __file__, "auth", auth[role], str(auth_port), role if role == "root" else role],
                    preexec_fn=ahead_of_builds)

    for role in auth:
        start_auth(role)

    # TLS certificate for DoT/DoH
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
         "-keyout", os.path.join(W, "key.pem"), "-out", os.path.join(W, "cert.pem"), "-days", "2",
         "-subj", "/CN=dns.soak.test", "-addext", "subjectAltName=DNS:dns.soak.test"],
        check=True, capture_output=True)

    # lists
    def write_local(gen):
        names = ["b-%d.blocked.lab" % i for i in range(50)] + ["gen-%d-%d.lab" % (gen, i) for i in range(100)]
        tmp = os.path.join(W, "local.txt.tmp")
        with open(tmp, "w") as f:
            f.write("\n".join(names) + "\n")
        os.replace(tmp, os.path.join(W, "local.txt"))

    write_local(0)

    def write_primary_list(gen):
        names = ["r-%d.rpzstable.lab" % i for i in range(10)] + ["rpz-gen-%d-%d.lab" % (gen, i) for i in range(20)]
        tmp = os.path.join(W, "primary-list.txt.tmp")
        with open(tmp, "w") as f:
            f.write("\n".join(names) + "\n")
        os.replace(tmp, os.path.join(W, "primary-list.txt"))

    write_primary_list(0)
    with open(os.path.join(W, "admin.token"), "w") as f:
        f.write(token + "\n")

    # feed server
    feed_srv = http.server.ThreadingHTTPServer(("127.0.0.1", feed_port), FeedHandler)
    threading.Thread(target=feed_srv.serve_forever, daemon=True).start()

    # ClickHouse (chdb) on a fixed port, restarted during the run
    ch_dir = os.path.join(W, "chdb")
    os.makedirs(ch_dir, exist_ok=True)

    def start_ch():
        procs.start("chdb", [sys.executable, CHDB_SHIM, ch_dir, str(SECS + 3600), str(ch_port)], stdin=subprocess.PIPE)
        if not wait_port(ch_port, 120):
            raise SystemExit("chdb server did not start (pip install chdb)")

    start_ch()

    # the RPZ primary: a second dnsward serving its list as an RPZ zone
    with open(os.path.join(W, "primary.toml"), "w") as f:
        f.write(
            '[server]\nlisten = ["127.0.0.1:%d"]\nname = "primary"\n[resolver]\nmode = "forward"\nforwarders = ["127.0.0.1:9"]\n'
            '[policy]\nwatch = false\n[[lists]]\nname = "central"\ncategory = "threat"\npath = "primary-list.txt"\n'
            '[rpz_server]\nlisten = "127.0.0.1:%d"\nzone = "rpz.soak."\nallow_transfer = ["127.0.0.0/8"]\nnotify = ["127.0.0.1:%d"]\n'
            % (prim_dns, prim_rpz, notify_port))
    procs.start("primary", [DNSWARD, "serve", "--config", os.path.join(W, "primary.toml")], cwd=W)
    wait_port(prim_rpz, 60)

    cfg = os.path.join(W, "dnsward.toml")
    with open(cfg, "w") as f:
        f.write(
            '[server]\nlisten = ["127.0.0.1:%d"]\nname = "soak"\nudp_workers = 2\n'
            'tls_listen = ["127.0.0.1:%d"]\nhttps_listen = ["127.0.0.1:%d"]\ntls_cert = "cert.pem"\ntls_key = "key.pem"\n'
            '[resolver]\nmode = "recursive"\nroot_hints = "root.hints"\nupstream_port = %d\ntimeout_ms = 1500\ndnssec = "off"\n'
            'cache_size = %d\n'
            'deny_server = []\n'
            '[policy]\naction = "nxdomain"\nwatch = false\n'
            '[[lists]]\nname = "local"\ncategory = "threat"\npath = "local.txt"\n'
            '[[lists]]\nname = "feed"\ncategory = "threat"\nurl = "http://127.0.0.1:%d/feed.txt"\nrefresh = "10s"\n'
            '[feeds]\ncache_dir = "feeds"\n'
            '[[rpz]]\nprimary = "127.0.0.1:%d"\nzone = "rpz.soak."\nname = "central"\nnotify_listen = "127.0.0.1:%d"\n'
            '[admin]\nlisten = "127.0.0.1:%d"\ntoken_file = "admin.token"\n'
            '[querylog]\nsqlite = "log.db"\nsqlite_cache_mb = %d\nclickhouse = "http://127.0.0.1:%d"\nclickhouse_spool_mb = 1\nclickhouse_spool_dir = "spool"\n'
            % (dns_port, dot_port, doh_port, auth_port, CACHE_SIZE, feed_port, prim_rpz, notify_port, admin_port, SQLITE_CACHE_MB, ch_port))
    out = subprocess.run([DNSWARD, "logs", "--config", cfg, "init-clickhouse"], capture_output=True, text=True)
    say("init-clickhouse:", (out.stdout + out.stderr).strip())
    dw = procs.start("dnsward", [DNSWARD, "serve", "--config", cfg], cwd=W)
    if not wait_port(dns_port, 120) or not wait_port(admin_port, 60):
        raise SystemExit("dnsward did not start: see %s/dnsward.log" % W)
    # the feed and the RPZ zone in force before traffic starts
    deadline = time.time() + 60
    while time.time() < deadline:
        try:
            st = json.loads(api(admin_port, token, "GET", "/api/stats"))
            if "feed-stable-0.lab" in json.dumps(st) or time.time() > deadline - 1:
                break
        except Exception:
            pass
        time.sleep(1)
    time.sleep(5)

    stats = Stats()
    traffic = Traffic(dns_port, dot_port, doh_port, stats)
    rows = []
    malformed = [0]
    t0 = time.time()
    stop_sampling = threading.Event()

    def sampler():
        last = t0
        while not stop_sampling.is_set():
            stop_sampling.wait(SAMPLE)
            now = time.time()
            with stats.lock:
                ans = stats.interval_answered
                stats.interval_answered = 0
            try:
                rss, fds, threads = proc_sample(dw.pid)
            except Exception:
                continue
            entries = -1
            try:
                with urllib.request.urlopen("http://127.0.0.1:%d/metrics" % admin_port, timeout=10) as r:
                    for line in r.read().decode().splitlines():
                        if line.startswith("dnsward_cache_entries"):
                            entries = int(float(line.split()[-1]))
            except Exception:
                pass
            rows.append((round(now - t0), rss, fds, threads, round(ans / max(now - last, 1e-3), 1), entries))
            last = now

    threading.Thread(target=sampler, daemon=True).start()

    # the fault schedule, in fractions of the run
    events = []

    # SOAK_FAULTS (default: all) picks the kinds of fault to inject, to look at one alone:
    # reload, rpz, burst, feed, clickhouse, alt (comma-separated)
    kinds = set(k.strip() for k in os.environ.get("SOAK_FAULTS", ",".join(FAULT_KINDS)).split(",") if k.strip())
    unknown = kinds - set(FAULT_KINDS)
    if unknown:
        raise SystemExit("SOAK_FAULTS: unknown fault kind(s) %s (known: %s)" % (sorted(unknown), ", ".join(FAULT_KINDS)))

    def at(frac, what, fn, kind):
        if kind in kinds:
            events.append((frac, what, fn))

    gen = [0]

    def reload_lists():
        gen[0] += 1
        write_local(gen[0])
        dw.send_signal(signal.SIGHUP)

    def rpz_push():
        gen[0] += 1
        write_primary_list(gen[0])
        procs.children["primary"].send_signal(signal.SIGHUP)

    def burst():
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        for i in range(2000):
            n = random.randrange(0, 600)
            pkt = bytes(random.getrandbits(8) for _ in range(n))
            if i % 3 == 0 and n >= 12:
                pkt = pkt[:2] + b"\x01\x00\x00\x01" + pkt[6:]  # looks like a query
            s.sendto(pkt, ("127.0.0.1", dns_port))
            malformed[0] += 1
        s.close()

    def alt_down():
        traffic.alt_down = True
        procs.stop("auth-alt")

    def alt_up():
        start_auth("alt")
        time.sleep(TIMEOUT + 2)  # answers in flight and cached failures (5 s) run out
        traffic.alt_down = False

    for i in range(1, 10):
        at(i / 10.0, "reload lists (SIGHUP)", reload_lists, "reload")
    for i in range(1, 8):
        at(i / 8.0 + 0.01, "RPZ change at the primary", rpz_push, "rpz")
    for i in range(1, 5):
        at(i / 5.0 + 0.02, "malformed burst (2000 packets)", burst, "burst")
    at(0.15, "feed changes (v2)", lambda: FEED.update(mode="v2"), "feed")
    at(0.25, "feed down (503)", lambda: FEED.update(mode="down"), "feed")
    at(0.35, "feed returns HTML", lambda: FEED.update(mode="html"), "feed")
    at(0.45, "feed back (v3)", lambda: FEED.update(mode="v3"), "feed")
    at(0.30, "ClickHouse stopped", lambda: procs.stop("chdb"), "clickhouse")
    at(0.40, "ClickHouse restarted", start_ch, "clickhouse")
    at(0.60, "alt. authority killed", alt_down, "alt")
    at(0.66, "alt. authority restarted", alt_up, "alt")
    events.sort(key=lambda e: e[0])

    def scheduler():
        for frac, what, fn in events:
            delay = t0 + frac * SECS - time.time()
            if delay > 0:
                time.sleep(delay)
            if traffic.stop:
                return
            say("fault:", what)
            try:
                fn()
            except Exception as e:
                say("fault failed:", what, e)

    sched = threading.Thread(target=scheduler, daemon=True)
    sched.start()
    traffic.run(SECS)
    traffic.stop = True
    time.sleep(2)
    stop_sampling.set()

    # accounting: the sinks' counters, then a clean shutdown, then the stores
    st = json.loads(api(admin_port, token, "GET", "/api/stats"))
    sinks = st.get("querylog", st)
    dw.send_signal(signal.SIGTERM)
    try:
        dw.wait(60)
    except subprocess.TimeoutExpired:
        say("dnsward did not exit within 60 s of SIGTERM")
    sqlite_rows = subprocess.run(
        [sys.executable, "-c", "import sqlite3,sys; print(sqlite3.connect(sys.argv[1]).execute('select count(*) from queries').fetchone()[0])",
         os.path.join(W, "log.db")], capture_output=True, text=True).stdout.strip()
    deadline = time.time() + 30
    ch_rows = "?"
    while time.time() < deadline:
        try:
            req = urllib.request.Request("http://127.0.0.1:%d/" % ch_port, data=b"SELECT count() FROM dnsward.queries")
            ch_rows = urllib.request.urlopen(req, timeout=10).read().decode().strip()
            break
        except Exception:
            time.sleep(1)

    with open(os.path.join(OUT, "soak.tsv"), "w") as f:
        f.write("secs\trss_mb\tfds\tthreads\tanswers_per_s\tcache_entries\n")
        for r in rows:
            f.write("\t".join(map(str, r)) + "\n")
    write_svg(rows, os.path.join(OUT, "soak.svg"))

    warm = [r for r in rows if r[0] >= WARMUP] or rows
    rss0 = warm[0][1] if warm else 0
    rss_max = max((r[1] for r in warm), default=0)
    report = {
        "secs": SECS,
        "qps": QPS,
        "faults": sorted(kinds),
        "sqlite_cache_mb": SQLITE_CACHE_MB,
        "binary": DNSWARD,
        "queries_sent": stats.sent,
        "answered": stats.answered,
        "lost_outside_outage": stats.lost,
        "wrong_outside_outage": stats.wrong,
        "alt_outage": {"sent": stats.outage_sent, "lost": stats.outage_lost, "not_answered_normally": stats.outage_wrong},
        "by_transport_sent_lost_wrong": stats.by_transport,
        "wrong_examples": stats.wrong_examples[:10],
        "malformed_packets_sent": malformed[0],
        "cache_size": CACHE_SIZE,
        "warmup_secs": WARMUP,
        "cache_entries_after_warmup_first_last": [warm[0][5] if warm else None, warm[-1][5] if warm else None],
        "rss_mb_after_warmup_first_max": [rss0, rss_max],
        "rss_growth_after_warmup_pct": round(100.0 * (rss_max - rss0) / rss0, 1) if rss0 else None,
        "fds_min_max": [min((r[2] for r in warm), default=0), max((r[2] for r in warm), default=0)],
        "threads_min_max": [min((r[3] for r in warm), default=0), max((r[3] for r in warm), default=0)],
        "querylog_sinks_at_end": sinks,
        # every query sent (malformed ones included: each is answered or dropped, and
        # logged) is a stored event or a counted drop, per sink
        "querylog_accounting": {
            s.get("name", "?"): {
                "written_plus_dropped": s.get("written", 0) + s.get("dropped", 0),
                "sent": stats.sent + malformed[0],
                "ok": s.get("written", 0) + s.get("dropped", 0) == stats.sent + malformed[0],
            }
            for s in (sinks if isinstance(sinks, list) else [])
        },
        "sqlite_rows": sqlite_rows,
        "clickhouse_rows": ch_rows,
    }
    with open(os.path.join(OUT, "soak.json"), "w") as f:
        json.dump(report, f, indent=1)
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
