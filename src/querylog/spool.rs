//! A disk spool of insert bodies for a sink whose server is away (ClickHouse): chunks are
//! appended in order, replayed oldest first, and bounded in bytes; when a new chunk does not
//! fit, the oldest chunks are dropped and their rows counted.
//!
//! One file per chunk, `<sequence>-<rows>.chunk`, written to a temporary name and renamed, so a
//! crash leaves whole chunks only and a restart replays them in order. No fsync: the spool
//! bridges a short outage of the log store, and a power cut during one may cost its tail.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum SpoolError {
    #[error("spool {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Chunk {
    seq: u64,
    rows: u64,
    bytes: u64,
}

pub struct Spool {
    dir: PathBuf,
    max_bytes: u64,
    chunks: VecDeque<Chunk>,
    bytes: u64,
    next_seq: u64,
}

/// What `push` had to give up to make room.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Evicted {
    pub chunks: u64,
    pub rows: u64,
}

impl Spool {
    /// Open (create) the spool directory and pick up the chunks a previous run left.
    pub fn open(dir: &Path, max_bytes: u64) -> Result<Spool, SpoolError> {
        let io = |source| SpoolError::Io {
            path: dir.to_path_buf(),
            source,
        };
        std::fs::create_dir_all(dir).map_err(io)?;
        let mut chunks = Vec::new();
        for entry in std::fs::read_dir(dir).map_err(io)? {
            let entry = entry.map_err(io)?;
            let name = entry.file_name();
            let Some(stem) = name.to_str().and_then(|n| n.strip_suffix(".chunk")) else {
                continue; // temporary files of an interrupted write, strangers
            };
            let Some((seq, rows)) = stem.split_once('-') else {
                continue;
            };
            let (Ok(seq), Ok(rows)) = (seq.parse::<u64>(), rows.parse::<u64>()) else {
                continue;
            };
            let bytes = entry.metadata().map_err(io)?.len();
            chunks.push(Chunk { seq, rows, bytes });
        }
        chunks.sort_by_key(|c| c.seq);
        let next_seq = chunks.last().map_or(0, |c| c.seq + 1);
        let bytes = chunks.iter().map(|c| c.bytes).sum();
        Ok(Spool {
            dir: dir.to_path_buf(),
            max_bytes,
            chunks: chunks.into(),
            bytes,
            next_seq,
        })
    }

    fn path(&self, c: &Chunk) -> PathBuf {
        self.dir.join(format!("{:020}-{}.chunk", c.seq, c.rows))
    }

    pub fn is_empty(&self) -> bool {
        self.chunks.is_empty()
    }

    /// Rows waiting.
    pub fn rows(&self) -> u64 {
        self.chunks.iter().map(|c| c.rows).sum()
    }

    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// Append a chunk of `rows` rows. Makes room by dropping the oldest chunks; a chunk larger
    /// than the whole spool is itself dropped (counted in the result).
    pub fn push(&mut self, data: &[u8], rows: u64) -> Result<Evicted, SpoolError> {
        let len = data.len() as u64;
        let mut ev = Evicted::default();
        if len > self.max_bytes {
            ev.chunks += 1;
            ev.rows += rows;
            return Ok(ev);
        }
        while self.bytes + len > self.max_bytes {
            let Some(rows) = self.pop_oldest()? else {
                break;
            };
            ev.chunks += 1;
            ev.rows += rows;
        }
        let c = Chunk {
            seq: self.next_seq,
            rows,
            bytes: len,
        };
        let path = self.path(&c);
        let tmp = path.with_extension("tmp");
        let io = |source| SpoolError::Io {
            path: tmp.clone(),
            source,
        };
        std::fs::write(&tmp, data).map_err(io)?;
        std::fs::rename(&tmp, &path).map_err(io)?;
        self.next_seq += 1;
        self.bytes += len;
        self.chunks.push_back(c);
        Ok(ev)
    }

    /// The oldest chunk's bytes and rows, left in place until [`Spool::pop_oldest`].
    pub fn oldest(&self) -> Result<Option<(Vec<u8>, u64)>, SpoolError> {
        let Some(c) = self.chunks.front() else {
            return Ok(None);
        };
        let path = self.path(c);
        let data = std::fs::read(&path).map_err(|source| SpoolError::Io { path, source })?;
        Ok(Some((data, c.rows)))
    }

    /// Remove the oldest chunk (delivered, or given up); its rows.
    pub fn pop_oldest(&mut self) -> Result<Option<u64>, SpoolError> {
        let Some(c) = self.chunks.pop_front() else {
            return Ok(None);
        };
        self.bytes -= c.bytes;
        let path = self.path(&c);
        match std::fs::remove_file(&path) {
            Ok(()) => Ok(Some(c.rows)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Some(c.rows)),
            Err(source) => Err(SpoolError::Io { path, source }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_replay_in_order_across_reopen_and_bound_drops_oldest() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().join("spool");
        let mut s = Spool::open(&d, 25).unwrap();
        assert_eq!(s.push(b"aaaaaaaaaa", 1).unwrap(), Evicted::default());
        assert_eq!(s.push(b"bbbbbbbbbb", 2).unwrap(), Evicted::default());
        // full: the oldest goes
        assert_eq!(
            s.push(b"cccccccccc", 3).unwrap(),
            Evicted { chunks: 1, rows: 1 }
        );
        assert_eq!((s.rows(), s.bytes()), (5, 20));
        // too large for the whole spool: dropped itself
        assert_eq!(
            s.push(&[b'x'; 26], 7).unwrap(),
            Evicted { chunks: 1, rows: 7 }
        );
        drop(s);
        std::fs::write(d.join("junk.tmp"), b"half").unwrap();
        let mut s = Spool::open(&d, 25).unwrap();
        assert_eq!(s.oldest().unwrap().unwrap(), (b"bbbbbbbbbb".to_vec(), 2));
        assert_eq!(s.pop_oldest().unwrap(), Some(2));
        s.push(b"dd", 4).unwrap();
        assert_eq!(s.oldest().unwrap().unwrap(), (b"cccccccccc".to_vec(), 3));
        s.pop_oldest().unwrap();
        assert_eq!(s.oldest().unwrap().unwrap(), (b"dd".to_vec(), 4));
        s.pop_oldest().unwrap();
        assert!(s.is_empty() && s.oldest().unwrap().is_none());
        assert_eq!(s.bytes(), 0);
    }

    #[test]
    fn unwritable_directory_is_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("file");
        std::fs::write(&f, b"x").unwrap();
        let e = Spool::open(&f.join("spool"), 10).err().unwrap();
        assert!(e.to_string().contains("file/spool"), "{e}");
    }
}
