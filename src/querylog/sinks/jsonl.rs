//! JSON lines sink: one [`LogRow`] object per line, appended to `file`; when the next line
//! would take the file past the size limit it is rotated: `file` -> `file.1` -> ... ->
//! `file.<keep>` (the oldest is deleted). Flushed after every batch (batches are at most
//! `FLUSH_INTERVAL` apart).

use super::{BlockingSink, SinkError};
use crate::querylog::bus::Queued;
use crate::querylog::event::{ClientId, LoggedEvent};
use std::ffi::OsString;
use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

pub struct JsonlSink {
    path: PathBuf,
    max_bytes: u64,
    keep: u32,
    file: Option<BufWriter<File>>,
    size: u64,
    line: Vec<u8>,
    encoder: LineEncoder,
}

/// `file.N`
pub fn rotated_path(path: &Path, n: u32) -> PathBuf {
    let mut s: OsString = path.as_os_str().to_owned();
    s.push(format!(".{n}"));
    PathBuf::from(s)
}

fn ignore_missing(r: std::io::Result<()>) -> std::io::Result<()> {
    match r {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        r => r,
    }
}

impl JsonlSink {
    pub fn new(path: PathBuf, max_bytes: u64, keep: u32) -> JsonlSink {
        JsonlSink {
            path,
            max_bytes: max_bytes.max(1),
            keep,
            file: None,
            size: 0,
            line: Vec::with_capacity(512),
            encoder: LineEncoder::default(),
        }
    }

    fn open_file(&mut self) -> std::io::Result<()> {
        if let Some(dir) = self.path.parent() {
            if !dir.as_os_str().is_empty() && !dir.exists() {
                std::fs::create_dir_all(dir)?;
            }
        }
        let mut f = OpenOptions::new()
            .create(true)
            .append(true)
            .read(true)
            .open(&self.path)?;
        let mut size = f.metadata()?.len();
        if size > 0 {
            // A crash or a full disk may have left half a line: start on a fresh line so
            // every complete line stays parseable.
            let mut last = [0u8; 1];
            f.seek(SeekFrom::Start(size - 1))?;
            f.read_exact(&mut last)?;
            if last[0] != b'\n' {
                f.write_all(b"\n")?;
                size += 1;
            }
        }
        self.size = size;
        self.file = Some(BufWriter::with_capacity(64 * 1024, f));
        Ok(())
    }

    fn rotate(&mut self) -> std::io::Result<()> {
        if let Some(mut f) = self.file.take() {
            f.flush()?;
        }
        if self.keep == 0 {
            ignore_missing(std::fs::remove_file(&self.path))?;
        } else {
            ignore_missing(std::fs::remove_file(rotated_path(&self.path, self.keep)))?;
            for i in (1..self.keep).rev() {
                ignore_missing(std::fs::rename(
                    rotated_path(&self.path, i),
                    rotated_path(&self.path, i + 1),
                ))?;
            }
            ignore_missing(std::fs::rename(&self.path, rotated_path(&self.path, 1)))?;
        }
        self.open_file()
    }

    fn write_all(&mut self, batch: &[Queued]) -> std::io::Result<()> {
        for l in batch.iter().flat_map(|b| b.events()) {
            self.line.clear();
            self.encoder.encode(&mut self.line, l);
            self.line.push(b'\n');
            if self.size > 0 && self.size + self.line.len() as u64 > self.max_bytes {
                self.rotate()?;
            }
            let f = self
                .file
                .as_mut()
                .ok_or_else(|| std::io::Error::other("not open"))?;
            f.write_all(&self.line)?;
            self.size += self.line.len() as u64;
        }
        if let Some(f) = self.file.as_mut() {
            f.flush()?;
        }
        Ok(())
    }
}

impl BlockingSink for JsonlSink {
    fn describe(&self) -> String {
        format!("jsonl {}", self.path.display())
    }
    fn is_open(&self) -> bool {
        self.file.is_some()
    }
    fn open(&mut self) -> Result<(), SinkError> {
        self.open_file().map_err(|source| SinkError::JsonlOpen {
            path: self.path.clone(),
            source,
        })
    }
    fn write_batch(&mut self, batch: &[Queued]) -> Result<u64, SinkError> {
        self.write_all(batch)
            .map_err(|source| SinkError::JsonlWrite {
                path: self.path.clone(),
                source,
            })?;
        Ok(batch.iter().map(|b| b.events().len() as u64).sum())
    }
    fn close(&mut self) {
        if let Some(mut f) = self.file.take() {
            if let Err(e) = f.flush() {
                tracing::warn!(file = %self.path.display(), error = %e, "querylog: final flush failed");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::querylog::event::LogRow;
    use crate::querylog::event::*;
    use crate::querylog::testutil::*;

    fn lines(p: &Path) -> Vec<LogRow> {
        std::fs::read_to_string(p)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    #[test]
    fn lines_parse_back_equal() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("logs/q.jsonl");
        let mut s = JsonlSink::new(p.clone(), 1 << 20, 3);
        s.open().unwrap();
        let a = logged(event("evil.example", EventAction::Blocked));
        let b = logged(event("good.example", EventAction::Allowed));
        s.write_batch(&batch(&[a.clone(), b.clone()])).unwrap();
        assert_eq!(
            lines(&p),
            vec![LogRow::from_logged(&a), LogRow::from_logged(&b)]
        );
        let first = std::fs::read_to_string(&p)
            .unwrap()
            .lines()
            .next()
            .unwrap()
            .to_string();
        assert!(first.starts_with(r#"{"time":"2024-05-01T12:00:00.123456Z","ts_us":1714564800123456,"client":"192.0.2.77","client_port":53001,"transport":"udp","qname":"evil.example""#), "{first}");
        assert!(!first.contains("wire"));
    }

    #[test]
    fn rotation_keeps_n_files_and_loses_no_line_within_them() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("q.jsonl");
        let one = logged(event("a.example", EventAction::Blocked));
        let line_len = serde_json::to_vec(&LogRow::from_logged(&one))
            .unwrap()
            .len() as u64
            + 1;
        // room for 3 lines per file, keep 2 rotated files
        let mut s = JsonlSink::new(p.clone(), line_len * 3, 2);
        s.open().unwrap();
        let evs: Vec<_> = (0..10)
            .map(|i| {
                let mut e = event("a.example", EventAction::Blocked);
                e.ts_us = 1_000_000_000_000 + i; // same width, so same line length
                logged(e)
            })
            .collect();
        for e in &evs {
            s.write_batch(&batch(std::slice::from_ref(e))).unwrap();
        }
        s.close();
        let ts = |p: &Path| {
            lines(p)
                .iter()
                .map(|r| r.ts_us - 1_000_000_000_000)
                .collect::<Vec<_>>()
        };
        assert_eq!(ts(&p), vec![9]);
        assert_eq!(ts(&rotated_path(&p, 1)), vec![6, 7, 8]);
        assert_eq!(ts(&rotated_path(&p, 2)), vec![3, 4, 5]);
        assert!(!rotated_path(&p, 3).exists());
        for f in [p.clone(), rotated_path(&p, 1), rotated_path(&p, 2)] {
            assert!(std::fs::metadata(&f).unwrap().len() <= line_len * 3);
        }
    }

    #[test]
    fn reopening_after_a_torn_line_starts_a_new_line() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("q.jsonl");
        std::fs::write(&p, "{\"torn\":").unwrap();
        let mut s = JsonlSink::new(p.clone(), 1 << 20, 1);
        s.open().unwrap();
        let a = logged(event("a.example", EventAction::Blocked));
        s.write_batch(&batch(std::slice::from_ref(&a))).unwrap();
        let text = std::fs::read_to_string(&p).unwrap();
        let last: LogRow = serde_json::from_str(text.lines().last().unwrap()).unwrap();
        assert_eq!(last, LogRow::from_logged(&a));
    }

    #[test]
    fn hand_encoder_writes_what_serde_writes() {
        let mut evs = vec![
            event("evil.example", EventAction::Blocked),
            event("good.example", EventAction::Allowed),
        ];
        let mut odd = event("we\"ird\\na\u{1}me\t.ex\u{e9}mple", EventAction::Blocked);
        odd.client = "[2001:db8::5]:53".parse().unwrap();
        odd.rcode = "RCODE11".into();
        odd.qtype = "TYPE65280".into();
        odd.rule = Some("x (/etc/dnsward/a \"b\".txt:3)".into());
        odd.trigger = Some(Trigger::Ip);
        odd.ts_us = -1;
        evs.push(odd);
        let mut token = event("t.example", EventAction::Servfail);
        token.answers = vec![
            "10.0.0.1".parse().unwrap(),
            "::ffff:1.2.3.4".parse().unwrap(),
            "255.255.255.0".parse().unwrap(),
        ]
        .into();
        token.ts_us = 1_714_564_800_000_001;
        evs.push(token.clone());
        token.ts_us += 999_999; // next second: the cached date prefix must change
        evs.push(token);
        let mut enc = LineEncoder::default();
        for (i, ev) in evs.into_iter().enumerate() {
            let mut l = logged(ev);
            if i == 3 {
                l.client = ClientId::Token(0xabc);
            }
            if i == 4 {
                l.client = ClientId::Addr {
                    ip: "10.1.2.0".parse().unwrap(),
                    port: None,
                };
            }
            let mut ours = Vec::new();
            enc.encode(&mut ours, &l);
            let theirs = serde_json::to_vec(&LogRow::from_logged(&l)).unwrap();
            assert_eq!(
                String::from_utf8(ours).unwrap(),
                String::from_utf8(theirs).unwrap(),
                "event {i}"
            );
        }
    }

    #[test]
    fn unwritable_path_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let blocker = dir.path().join("file");
        std::fs::write(&blocker, "").unwrap();
        let mut s = JsonlSink::new(blocker.join("q.jsonl"), 1 << 20, 1);
        let e = s.open().unwrap_err();
        assert!(e.to_string().contains("cannot open for appending"), "{e}");
    }
}

/// Writes one event as a JSON object (no newline) with exactly the bytes `serde_json` gives for
/// the same [`LogRow`] (a test checks). Written by hand because this runs once per query:
/// through serde it cost about 1.5 µs a line, most of it formatting the time and the
/// addresses; here the date part of the time is reused while the second does not change.
#[derive(Default)]
pub struct LineEncoder {
    /// the second `prefix` was made for
    second: Option<i64>,
    /// `"YYYY-MM-DDTHH:MM:SS.`
    prefix: String,
    ip: String,
}

impl LineEncoder {
    pub fn encode(&mut self, out: &mut Vec<u8>, l: &LoggedEvent) {
        let ev = &l.ev;
        out.extend_from_slice(b"{\"time\":\"");
        let secs = ev.ts_us.div_euclid(1_000_000);
        if self.second != Some(secs) {
            let full = crate::timefmt::format_ts(secs * 1_000_000, 0);
            self.prefix.clear();
            self.prefix.push_str(full.trim_end_matches('Z'));
            self.prefix.push('.');
            self.second = Some(secs);
        }
        out.extend_from_slice(self.prefix.as_bytes());
        let us = ev.ts_us.rem_euclid(1_000_000) as u32;
        let mut digits = [b'0'; 6];
        let mut v = us;
        for d in digits.iter_mut().rev() {
            *d = b'0' + (v % 10) as u8;
            v /= 10;
        }
        out.extend_from_slice(&digits);
        out.extend_from_slice(b"Z\",\"ts_us\":");
        push_int(out, ev.ts_us);
        out.extend_from_slice(b",\"client\":\"");
        push_client(out, &l.client, &mut self.ip);
        out.extend_from_slice(b"\",\"client_port\":");
        match l.client.port() {
            Some(p) => push_int(out, p),
            None => out.extend_from_slice(b"null"),
        }
        out.extend_from_slice(b",\"transport\":\"");
        out.extend_from_slice(ev.transport.as_str().as_bytes());
        out.extend_from_slice(b"\",\"qname\":");
        push_json_str(out, &ev.qname);
        out.extend_from_slice(b",\"qtype\":");
        push_json_str(out, &ev.qtype);
        out.extend_from_slice(b",\"rcode\":");
        push_json_str(out, &ev.rcode);
        out.extend_from_slice(b",\"action\":\"");
        out.extend_from_slice(ev.action.as_str().as_bytes());
        out.extend_from_slice(b"\",\"category\":");
        push_opt_str(out, ev.category.as_deref());
        out.extend_from_slice(b",\"list\":");
        push_opt_str(out, ev.list.as_deref());
        out.extend_from_slice(b",\"rule\":");
        push_opt_str(out, ev.rule.as_deref());
        out.extend_from_slice(b",\"trigger\":");
        push_opt_str(out, ev.trigger.map(|t| t.as_str()));
        out.extend_from_slice(if ev.cached {
            b",\"cached\":true,\"answers\":["
        } else {
            b",\"cached\":false,\"answers\":["
        });
        for (i, a) in ev.answers.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            out.push(b'"');
            self.push_ip(out, *a);
            out.push(b'"');
        }
        out.extend_from_slice(b"],\"latency_us\":");
        push_int(out, ev.latency_us);
        out.extend_from_slice(b",\"server\":");
        push_json_str(out, &ev.server);
        out.extend_from_slice(b",\"client_name\":");
        push_opt_str(out, ev.client_name.as_deref());
        out.extend_from_slice(b",\"group\":");
        push_opt_str(out, ev.group.as_deref());
        out.push(b'}');
    }

    fn push_ip(&mut self, out: &mut Vec<u8>, ip: std::net::IpAddr) {
        push_ip(out, ip, &mut self.ip);
    }
}

/// The client as text, unquoted: its address, or `h:` and the token (as `ClientId` displays).
pub(crate) fn push_client(out: &mut Vec<u8>, c: &ClientId, scratch: &mut String) {
    match *c {
        ClientId::Addr { ip, .. } => push_ip(out, ip, scratch),
        ClientId::Token(t) => {
            let _ = write!(out, "h:{t:016x}");
        }
    }
}

/// An address as text, without `fmt` for IPv4 (the common case, once per logged query);
/// `scratch` holds IPv6 text on its way.
pub(crate) fn push_ip(out: &mut Vec<u8>, ip: std::net::IpAddr, scratch: &mut String) {
    match ip {
        std::net::IpAddr::V4(v4) => {
            for (i, o) in v4.octets().iter().enumerate() {
                if i > 0 {
                    out.push(b'.');
                }
                push_int(out, *o);
            }
        }
        std::net::IpAddr::V6(_) => {
            use std::fmt::Write as _;
            scratch.clear();
            let _ = write!(scratch, "{ip}");
            out.extend_from_slice(scratch.as_bytes());
        }
    }
}

fn push_int<I: itoa::Integer>(out: &mut Vec<u8>, v: I) {
    out.extend_from_slice(itoa::Buffer::new().format(v).as_bytes());
}

/// `s` as a JSON string, or `null`.
pub(crate) fn push_opt_str(out: &mut Vec<u8>, s: Option<&str>) {
    match s {
        Some(s) => push_json_str(out, s),
        None => out.extend_from_slice(b"null"),
    }
}

/// `s` as a JSON string with serde_json's escapes: `"` `\\` and control characters.
pub(crate) fn push_json_str(out: &mut Vec<u8>, s: &str) {
    out.push(b'"');
    let bytes = s.as_bytes();
    // A fold, not `any`: without the early exit the check vectorizes (names are short, and
    // almost never need an escape).
    let needs_escape = bytes.iter().fold(false, |acc, &b| {
        acc | (b < 0x20) | (b == b'"') | (b == b'\\')
    });
    if !needs_escape {
        out.extend_from_slice(bytes);
    } else {
        for &b in bytes {
            match b {
                b'"' => out.extend_from_slice(b"\\\""),
                b'\\' => out.extend_from_slice(b"\\\\"),
                b'\n' => out.extend_from_slice(b"\\n"),
                b'\r' => out.extend_from_slice(b"\\r"),
                b'\t' => out.extend_from_slice(b"\\t"),
                0x08 => out.extend_from_slice(b"\\b"),
                0x0c => out.extend_from_slice(b"\\f"),
                b if b < 0x20 => {
                    const HEX: &[u8; 16] = b"0123456789abcdef";
                    out.extend_from_slice(b"\\u00");
                    out.push(HEX[(b >> 4) as usize]);
                    out.push(HEX[(b & 0xf) as usize]);
                }
                b => out.push(b),
            }
        }
    }
    out.push(b'"');
}
