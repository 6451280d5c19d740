//! Batched UDP I/O on Linux: `recvmmsg` takes every datagram the socket holds (up to the
//! batch size) in one system call, `sendmmsg` sends a batch of answers in one. The only
//! `unsafe` of the UDP path lives here, behind two small safe types.
//!
//! A batch is what is already queued: it never waits for more packets to arrive, so latency
//! at low rates is that of the one-packet path. `recv` never waits at all (`MSG_DONTWAIT`);
//! `recv_wait` sleeps in the kernel until the first datagram (`MSG_WAITFORONE`, on a blocking
//! socket with a receive timeout), which saves the `epoll_wait` and the empty `recvmmsg` that
//! a wake-up through the event loop costs.

use std::io;
use std::mem::{size_of, zeroed};
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::os::fd::RawFd;

/// Room for any UDP datagram (65,507 bytes of IPv4 payload, a little more for IPv6 jumbo-less
/// frames): a query is never cut short, as in the one-packet path's 64 KiB buffer.
pub const SLOT: usize = 65_536;

/// Receive buffers for up to `capacity` datagrams, reused from one batch to the next.
pub struct RecvBatch {
    /// `capacity` slots of `SLOT` bytes (zero pages until a datagram lands in them).
    bufs: Vec<u8>,
    addrs: Vec<libc::sockaddr_storage>,
    iovs: Vec<libc::iovec>,
    hdrs: Vec<libc::mmsghdr>,
    /// Datagrams of the last `recv`: (length, source).
    got: Vec<(usize, Option<SocketAddr>)>,
}

impl RecvBatch {
    pub fn new(capacity: usize) -> Self {
        let capacity = capacity.max(1);
        RecvBatch {
            bufs: vec![0u8; capacity * SLOT],
            // SAFETY: sockaddr_storage is plain old data; all zeroes is a valid value.
            addrs: vec![unsafe { zeroed() }; capacity],
            iovs: Vec::with_capacity(capacity),
            hdrs: Vec::with_capacity(capacity),
            got: Vec::with_capacity(capacity),
        }
    }

    pub fn capacity(&self) -> usize {
        self.addrs.len()
    }

    /// Receives what `fd` holds, up to the capacity, without waiting: `Ok(n)` with n >= 1, or
    /// `WouldBlock` when nothing is queued.
    pub fn recv(&mut self, fd: RawFd) -> io::Result<usize> {
        self.recv_with(fd, libc::MSG_DONTWAIT)
    }

    /// Waits for the first datagram, then takes what else is queued, up to the capacity.
    /// `fd` must be in blocking mode; with a receive timeout (`SO_RCVTIMEO`) set, an idle
    /// socket gives `WouldBlock` when the timeout passes.
    pub fn recv_wait(&mut self, fd: RawFd) -> io::Result<usize> {
        self.recv_with(fd, libc::MSG_WAITFORONE)
    }

    fn recv_with(&mut self, fd: RawFd, flags: libc::c_int) -> io::Result<usize> {
        let capacity = self.capacity();
        let base = self.bufs.as_mut_ptr();
        self.iovs.clear();
        self.hdrs.clear();
        self.got.clear();
        for i in 0..capacity {
            self.iovs.push(libc::iovec {
                // SAFETY: i * SLOT + SLOT <= bufs.len(): each iovec is its own slot.
                iov_base: unsafe { base.add(i * SLOT) }.cast(),
                iov_len: SLOT,
            });
        }
        for i in 0..capacity {
            // SAFETY: mmsghdr is plain old data; the pointers are set below.
            let mut h: libc::mmsghdr = unsafe { zeroed() };
            h.msg_hdr.msg_name = (&mut self.addrs[i] as *mut libc::sockaddr_storage).cast();
            h.msg_hdr.msg_namelen = size_of::<libc::sockaddr_storage>() as libc::socklen_t;
            h.msg_hdr.msg_iov = &mut self.iovs[i];
            h.msg_hdr.msg_iovlen = 1;
            self.hdrs.push(h);
        }
        // SAFETY: every header points at live memory of this struct (a name buffer and one
        // iovec over its own slot); none of these vectors is resized until the call returns.
        let n = unsafe {
            libc::recvmmsg(
                fd,
                self.hdrs.as_mut_ptr(),
                capacity as libc::c_uint,
                flags,
                std::ptr::null_mut(),
            )
        };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        let n = n as usize;
        for i in 0..n {
            let h = &self.hdrs[i];
            let len = (h.msg_len as usize).min(SLOT);
            let src = sockaddr_to_std(&self.addrs[i], h.msg_hdr.msg_namelen);
            self.got.push((len, src));
        }
        Ok(n)
    }

    /// Datagram `i` of the last `recv`: its bytes and its source (`None` for an address family
    /// that is neither IPv4 nor IPv6, which a UDP/IP socket never reports).
    pub fn packet(&self, i: usize) -> (&[u8], Option<SocketAddr>) {
        let (len, src) = self.got[i];
        (&self.bufs[i * SLOT..i * SLOT + len], src)
    }
}

/// A batch of answers for one `sendmmsg`.
#[derive(Default)]
pub struct SendBatch {
    addrs: Vec<(libc::sockaddr_storage, libc::socklen_t)>,
    iovs: Vec<libc::iovec>,
    hdrs: Vec<libc::mmsghdr>,
}

impl SendBatch {
    /// Sends `msgs` (bytes, destination) with one `sendmmsg`, without waiting: the number
    /// sent from the front (at least 1), or the error of the first message (`WouldBlock` when
    /// the socket's send buffer is full).
    pub fn send<'a>(
        &mut self,
        fd: RawFd,
        msgs: impl IntoIterator<Item = (&'a [u8], SocketAddr)>,
    ) -> io::Result<usize> {
        self.addrs.clear();
        self.iovs.clear();
        self.hdrs.clear();
        for (bytes, to) in msgs {
            self.addrs.push(std_to_sockaddr(&to));
            self.iovs.push(libc::iovec {
                iov_base: bytes.as_ptr() as *mut libc::c_void,
                iov_len: bytes.len(),
            });
        }
        let count = self.iovs.len();
        if count == 0 {
            return Ok(0);
        }
        for i in 0..count {
            // SAFETY: mmsghdr is plain old data; the pointers are set below.
            let mut h: libc::mmsghdr = unsafe { zeroed() };
            h.msg_hdr.msg_name = (&mut self.addrs[i].0 as *mut libc::sockaddr_storage).cast();
            h.msg_hdr.msg_namelen = self.addrs[i].1;
            h.msg_hdr.msg_iov = &mut self.iovs[i];
            h.msg_hdr.msg_iovlen = 1;
            self.hdrs.push(h);
        }
        // SAFETY: the headers point at this struct's addresses and iovecs, the iovecs at the
        // caller's byte slices, all alive and unmoved for the call; the kernel only reads them.
        let n = unsafe {
            libc::sendmmsg(
                fd,
                self.hdrs.as_mut_ptr(),
                count as libc::c_uint,
                libc::MSG_DONTWAIT,
            )
        };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(n as usize)
    }
}

fn sockaddr_to_std(s: &libc::sockaddr_storage, len: libc::socklen_t) -> Option<SocketAddr> {
    let len = len as usize;
    match s.ss_family as libc::c_int {
        libc::AF_INET if len >= size_of::<libc::sockaddr_in>() => {
            // SAFETY: the family says the storage holds a sockaddr_in, and it is big enough.
            let a = unsafe { &*(s as *const libc::sockaddr_storage).cast::<libc::sockaddr_in>() };
            Some(SocketAddr::V4(SocketAddrV4::new(
                Ipv4Addr::from(u32::from_be(a.sin_addr.s_addr)),
                u16::from_be(a.sin_port),
            )))
        }
        libc::AF_INET6 if len >= size_of::<libc::sockaddr_in6>() => {
            // SAFETY: as above, for sockaddr_in6.
            let a = unsafe { &*(s as *const libc::sockaddr_storage).cast::<libc::sockaddr_in6>() };
            Some(SocketAddr::V6(SocketAddrV6::new(
                Ipv6Addr::from(a.sin6_addr.s6_addr),
                u16::from_be(a.sin6_port),
                a.sin6_flowinfo,
                a.sin6_scope_id,
            )))
        }
        _ => None,
    }
}

fn std_to_sockaddr(a: &SocketAddr) -> (libc::sockaddr_storage, libc::socklen_t) {
    // SAFETY: sockaddr_storage is plain old data; all zeroes is a valid value.
    let mut s: libc::sockaddr_storage = unsafe { zeroed() };
    let len = match a {
        SocketAddr::V4(v4) => {
            // SAFETY: sockaddr_storage is larger than and aligned for sockaddr_in.
            let sin = unsafe {
                &mut *(&mut s as *mut libc::sockaddr_storage).cast::<libc::sockaddr_in>()
            };
            sin.sin_family = libc::AF_INET as libc::sa_family_t;
            sin.sin_port = v4.port().to_be();
            sin.sin_addr = libc::in_addr {
                s_addr: u32::from(*v4.ip()).to_be(),
            };
            size_of::<libc::sockaddr_in>()
        }
        SocketAddr::V6(v6) => {
            // SAFETY: as above, for sockaddr_in6.
            let sin6 = unsafe {
                &mut *(&mut s as *mut libc::sockaddr_storage).cast::<libc::sockaddr_in6>()
            };
            sin6.sin6_family = libc::AF_INET6 as libc::sa_family_t;
            sin6.sin6_port = v6.port().to_be();
            sin6.sin6_flowinfo = v6.flowinfo();
            sin6.sin6_addr = libc::in6_addr {
                s6_addr: v6.ip().octets(),
            };
            sin6.sin6_scope_id = v6.scope_id();
            size_of::<libc::sockaddr_in6>()
        }
    };
    (s, len as libc::socklen_t)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsRawFd;

    #[test]
    fn addresses_round_trip() {
        for a in ["127.0.0.1:53", "[::1]:5353", "[fe80::1%2]:1"] {
            let a: SocketAddr = a.parse().unwrap();
            let (s, len) = std_to_sockaddr(&a);
            assert_eq!(sockaddr_to_std(&s, len), Some(a));
        }
    }

    #[test]
    fn a_kernel_wait_ends_with_the_first_datagram_or_the_receive_timeout() {
        let server = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        server
            .set_read_timeout(Some(std::time::Duration::from_millis(50)))
            .unwrap();
        let to = server.local_addr().unwrap();
        let mut batch = RecvBatch::new(4);
        // Nothing comes: the timeout ends the wait.
        let started = std::time::Instant::now();
        let e = batch.recv_wait(server.as_raw_fd()).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::WouldBlock);
        assert!(started.elapsed() >= std::time::Duration::from_millis(40));
        // A datagram sent while the wait is under way ends it, with just that datagram.
        let sender = std::thread::spawn(move || {
            std::thread::sleep(std::time::Duration::from_millis(10));
            let client = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
            client.send_to(b"late", to).unwrap();
        });
        let n = batch.recv_wait(server.as_raw_fd()).unwrap();
        sender.join().unwrap();
        assert_eq!((n, batch.packet(0).0), (1, &b"late"[..]));
        // Queued datagrams are all taken by one call, up to the capacity.
        let client = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        for i in 0..6u8 {
            client.send_to(&[i], to).unwrap();
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
        assert_eq!(batch.recv_wait(server.as_raw_fd()).unwrap(), 4);
        assert_eq!(batch.recv_wait(server.as_raw_fd()).unwrap(), 2);
        assert_eq!(batch.packet(1).0, &[5u8][..]);
    }

    #[test]
    fn a_batch_is_what_is_queued_and_answers_go_back_in_one_call() {
        let server = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let client = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let to = server.local_addr().unwrap();
        let mut batch = RecvBatch::new(8);
        // Nothing queued: no waiting, WouldBlock.
        let e = batch.recv(server.as_raw_fd()).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::WouldBlock);
        let sizes = [0usize, 1, 12, 1232, 9000];
        for (i, n) in sizes.iter().enumerate() {
            client.send_to(&vec![i as u8; *n], to).unwrap();
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
        let n = batch.recv(server.as_raw_fd()).unwrap();
        assert_eq!(n, sizes.len());
        let mut replies = Vec::new();
        for (i, want) in sizes.iter().enumerate() {
            let (pkt, src) = batch.packet(i);
            assert_eq!(pkt, &vec![i as u8; *want][..]);
            assert_eq!(src, Some(client.local_addr().unwrap()));
            replies.push((vec![0xa0 + i as u8; i + 1], src.unwrap()));
        }
        let msgs = replies.iter().map(|(b, a)| (&b[..], *a));
        let sent = SendBatch::default().send(server.as_raw_fd(), msgs).unwrap();
        assert_eq!(sent, replies.len());
        let mut buf = [0u8; 64];
        for (i, (bytes, _)) in replies.iter().enumerate() {
            let (n, from) = client.recv_from(&mut buf).unwrap();
            assert_eq!((&buf[..n], from), (&bytes[..], to), "reply {i}");
        }
    }
}
