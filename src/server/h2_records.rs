//! One HTTP/2 response per TLS record, as nghttp2-based servers (Unbound) send them.
//!
//! hyper's HTTP/2 writer coalesces every frame that is ready into one write, so under load
//! the answers to several DoH queries travel in one TLS record. That is valid HTTP/2, but
//! dnsperf's DoH mode (nghttp2 over OpenSSL, the tool operators benchmark resolvers with)
//! reads one TLS record per `SSL_read` and can take only one finished response out of what
//! it reads: it pauses nghttp2 on the second response's DATA and that chunk is lost. Its
//! queries then time out, and with all of its outstanding queries lost it sends nothing more:
//! "16 answered, then nothing" (issue 23).
//!
//! [`ResponseRecords`] sits between hyper and the TLS stream and ends each write right after
//! a frame that closes a stream (DATA or HEADERS with END_STREAM); the TLS stream makes each
//! write a record of its own. The bytes are never changed, only where writes end, so a
//! connection that is not HTTP/2 (HTTP/1.1 by ALPN) passes through intact.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

const FRAME_HEADER: usize = 9;
const DATA: u8 = 0x0;
const HEADERS: u8 = 0x1;
const END_STREAM: u8 = 0x1;

/// Where the writer stands in the outgoing frame sequence.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct FrameScan {
    /// Bytes of the current frame's 9-byte header seen so far.
    head: [u8; FRAME_HEADER],
    head_len: usize,
    /// Payload bytes of the current frame still to come (valid once the header is complete).
    payload_left: usize,
    /// The current frame ends a stream.
    ends_stream: bool,
}

impl FrameScan {
    /// Moves over `buf` and returns how many of its bytes come before the first cut (the end
    /// of a frame that ends a stream), or `buf.len()` when there is none.
    fn until_cut(&mut self, buf: &[u8]) -> usize {
        let mut i = 0;
        while i < buf.len() {
            if self.head_len < FRAME_HEADER {
                let take = (FRAME_HEADER - self.head_len).min(buf.len() - i);
                self.head[self.head_len..self.head_len + take].copy_from_slice(&buf[i..i + take]);
                self.head_len += take;
                i += take;
                if self.head_len < FRAME_HEADER {
                    break;
                }
                let h = &self.head;
                self.payload_left =
                    usize::from(h[0]) << 16 | usize::from(h[1]) << 8 | usize::from(h[2]);
                self.ends_stream = matches!(h[3], DATA | HEADERS) && h[4] & END_STREAM != 0;
            } else {
                let take = self.payload_left.min(buf.len() - i);
                self.payload_left -= take;
                i += take;
            }
            if self.payload_left == 0 {
                // The frame is complete: the next byte starts a new header.
                self.head_len = 0;
                if std::mem::take(&mut self.ends_stream) {
                    return i;
                }
            }
        }
        i
    }

    /// Moves over all of `buf` (bytes the inner stream accepted).
    fn advance(&mut self, mut buf: &[u8]) {
        while !buf.is_empty() {
            let n = self.until_cut(buf);
            buf = &buf[n..];
        }
    }
}

/// An I/O stream whose writes end after each HTTP/2 frame that closes a stream.
pub struct ResponseRecords<I> {
    inner: I,
    scan: FrameScan,
}

impl<I> ResponseRecords<I> {
    pub fn new(inner: I) -> Self {
        ResponseRecords {
            inner,
            scan: FrameScan::default(),
        }
    }
}

impl<I: AsyncRead + Unpin> AsyncRead for ResponseRecords<I> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_read(cx, buf)
    }
}

impl<I: AsyncWrite + Unpin> AsyncWrite for ResponseRecords<I> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let mut probe = this.scan;
        let cut = probe.until_cut(buf);
        let r = Pin::new(&mut this.inner).poll_write(cx, &buf[..cut]);
        if let Poll::Ready(Ok(n)) = r {
            this.scan.advance(&buf[..n]);
        }
        r
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }

    // Not vectored: each write is one slice, cut at a response's end (h2 copies small DATA
    // payloads into its buffer, so the frames of a response are one slice anyway).
    fn is_write_vectored(&self) -> bool {
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
        let n = payload.len();
        let mut f = vec![(n >> 16) as u8, (n >> 8) as u8, n as u8, kind, flags];
        f.extend_from_slice(&stream.to_be_bytes());
        f.extend_from_slice(payload);
        f
    }

    /// Writes `bytes` in pieces of `piece` bytes the way a writer calling `poll_write` in a
    /// loop would, and returns the writes the inner stream saw.
    fn writes(bytes: &[u8], piece: usize) -> Vec<Vec<u8>> {
        let mut scan = FrameScan::default();
        let mut out = Vec::new();
        let mut rest = bytes;
        while !rest.is_empty() {
            let offered = &rest[..piece.min(rest.len())];
            let mut probe = scan;
            let cut = probe.until_cut(offered);
            scan.advance(&offered[..cut]);
            out.push(offered[..cut].to_vec());
            rest = &rest[cut..];
        }
        out
    }

    #[test]
    fn each_write_ends_with_a_finished_response() {
        let settings = frame(0x4, 0, 0, &[0; 6]);
        let h1 = frame(HEADERS, 0x4, 1, b"hdr1");
        let d1 = frame(DATA, END_STREAM, 1, &[7; 102]);
        let h3 = frame(HEADERS, 0x4, 3, b"hdr3");
        let d3 = frame(DATA, END_STREAM, 3, &[8; 60]);
        // A response with no body: HEADERS with END_STREAM.
        let h5 = frame(HEADERS, 0x4 | END_STREAM, 5, b"hdr5");
        let ping = frame(0x6, 0, 0, &[0; 8]);
        let all = [&settings[..], &h1, &h3, &d1, &d3, &h5, &ping].concat();
        let got = writes(&all, usize::MAX);
        assert_eq!(
            got,
            vec![
                [&settings[..], &h1, &h3, &d1].concat(),
                d3.clone(),
                h5.clone(),
                ping.clone()
            ]
        );
        // Whatever pieces the writer offers (a frame header split over two writes
        // included), the cuts fall at the same places and no byte is lost.
        for piece in [1, 2, 5, 9, 10, 50, 200] {
            let got = writes(&all, piece);
            assert_eq!(got.concat(), all, "piece {piece}");
            let mut at = 0;
            let mut cuts = Vec::new();
            for w in &got {
                at += w.len();
                cuts.push(at);
            }
            let first = settings.len() + h1.len() + h3.len() + d1.len();
            for end in [first, first + d3.len(), first + d3.len() + h5.len()] {
                assert!(cuts.contains(&end), "piece {piece}: no cut at {end}");
            }
        }
    }

    #[test]
    fn bytes_that_are_not_http2_pass_through() {
        let text = b"HTTP/1.1 200 OK\r\ncontent-length: 3\r\n\r\nabc".repeat(3);
        assert_eq!(writes(&text, usize::MAX).concat(), text);
        assert_eq!(writes(&text, 7).concat(), text);
    }
}
