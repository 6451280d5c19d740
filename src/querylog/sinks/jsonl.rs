//! JSON lines sink: one [`LogRow`] object per line, appended to `file`; when the next line
//! would take the file past the size limit it is rotated: `file` -> `file.1` -> ... ->
//! `file.<keep>` (the oldest is deleted). Flushed after every batch (batches are at most
//! `FLUSH_INTERVAL` apart).

use std::ffi::OsString;
use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::BlockingSink;
use crate::querylog::event::LoggedEvent;

pub struct JsonlSink {
    path: PathBuf,
    max_bytes: u64,
    keep: u32,
    file: Option<BufWriter<File>>,
    size: u64,
    line: Vec<u8>,
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
        JsonlSink { path, max_bytes: max_bytes.max(1), keep, file: None, size: 0, line: Vec::with_capacity(512) }
    }

    fn open_file(&mut self) -> std::io::Result<()> {
        if let Some(dir) = self.path.parent() {
            if !dir.as_os_str().is_empty() && !dir.exists() {
                std::fs::create_dir_all(dir)?;
            }
        }
        let mut f = OpenOptions::new().create(true).append(true).read(true).open(&self.path)?;
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
                ignore_missing(std::fs::rename(rotated_path(&self.path, i), rotated_path(&self.path, i + 1)))?;
            }
            ignore_missing(std::fs::rename(&self.path, rotated_path(&self.path, 1)))?;
        }
        self.open_file()
    }

    fn write_all(&mut self, batch: &[Arc<LoggedEvent>]) -> std::io::Result<()> {
        for l in batch {
            self.line.clear();
            serde_json::to_writer(&mut self.line, &RowRef::new(l))?;
            self.line.push(b'\n');
            if self.size > 0 && self.size + self.line.len() as u64 > self.max_bytes {
                self.rotate()?;
            }
            let f = self.file.as_mut().ok_or_else(|| std::io::Error::other("not open"))?;
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
    fn open(&mut self) -> Result<(), String> {
        self.open_file().map_err(|e| format!("{}: cannot open for appending: {e}", self.path.display()))
    }
    fn write_batch(&mut self, batch: &[Arc<LoggedEvent>]) -> Result<(), String> {
        self.write_all(batch).map_err(|e| format!("{}: write failed: {e}", self.path.display()))
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
        s.write_batch(&[a.clone(), b.clone()]).unwrap();
        assert_eq!(lines(&p), vec![LogRow::from_logged(&a), LogRow::from_logged(&b)]);
        let first = std::fs::read_to_string(&p).unwrap().lines().next().unwrap().to_string();
        assert!(first.starts_with(r#"{"time":"2024-05-01T12:00:00.123456Z","ts_us":1714564800123456,"client":"192.0.2.77","client_port":53001,"transport":"udp","qname":"evil.example""#), "{first}");
        assert!(!first.contains("wire"));
    }

    #[test]
    fn rotation_keeps_n_files_and_loses_no_line_within_them() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("q.jsonl");
        let one = logged(event("a.example", EventAction::Blocked));
        let line_len = serde_json::to_vec(&LogRow::from_logged(&one)).unwrap().len() as u64 + 1;
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
            s.write_batch(std::slice::from_ref(e)).unwrap();
        }
        s.close();
        let ts = |p: &Path| lines(p).iter().map(|r| r.ts_us - 1_000_000_000_000).collect::<Vec<_>>();
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
        s.write_batch(std::slice::from_ref(&a)).unwrap();
        let text = std::fs::read_to_string(&p).unwrap();
        let last: LogRow = serde_json::from_str(text.lines().last().unwrap()).unwrap();
        assert_eq!(last, LogRow::from_logged(&a));
    }

    #[test]
    fn unwritable_path_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let blocker = dir.path().join("file");
        std::fs::write(&blocker, "").unwrap();
        let mut s = JsonlSink::new(blocker.join("q.jsonl"), 1 << 20, 1);
        let e = s.open().unwrap_err();
        assert!(e.contains("cannot open for appending"), "{e}");
    }
}

/// `LogRow` as it is serialized, borrowing from the event instead of cloning every string
/// (the JSON lines sink writes one per query; same field names and order as `LogRow`).
#[derive(serde::Serialize)]
struct RowRef<'a> {
    time: String,
    ts_us: i64,
    client: String,
    client_port: Option<u16>,
    transport: crate::querylog::Transport,
    qname: &'a str,
    qtype: &'a str,
    rcode: &'a str,
    action: crate::querylog::EventAction,
    category: Option<&'a str>,
    list: Option<&'a str>,
    rule: Option<&'a str>,
    trigger: Option<crate::querylog::Trigger>,
    cached: bool,
    answers: &'a [std::net::IpAddr],
    latency_us: u32,
    server: &'a str,
}

impl<'a> RowRef<'a> {
    fn new(l: &'a LoggedEvent) -> Self {
        let ev = &l.ev;
        RowRef {
            time: crate::querylog::event::format_ts_us(ev.ts_us),
            ts_us: ev.ts_us,
            client: l.client.to_string(),
            client_port: l.client.port(),
            transport: ev.transport,
            qname: &ev.qname,
            qtype: &ev.qtype,
            rcode: &ev.rcode,
            action: ev.action,
            category: ev.category.as_deref(),
            list: ev.list.as_deref(),
            rule: ev.rule.as_deref(),
            trigger: ev.trigger,
            cached: ev.cached,
            answers: &ev.answers,
            latency_us: ev.latency_us,
            server: &ev.server,
        }
    }
}
