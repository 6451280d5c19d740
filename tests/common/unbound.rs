//! Unbound as a child process of a test: its config and files in a temporary directory of its
//! own, listening on 127.0.0.1:PORT, killed (by its own PID) when dropped. The tests write the
//! config they need (a validator over stub zones, an iterator from root hints) and start it
//! with [`Unbound::spawn`].

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};

pub struct Unbound {
    child: Child,
    pub addr: SocketAddr,
    /// Holds unbound.conf, and whatever the config puts there (pid file, log).
    pub dir: tempfile::TempDir,
}

impl Unbound {
    /// A directory and a free port (TCP and UDP) for a new unbound: the config names them.
    pub fn prepare() -> (tempfile::TempDir, u16) {
        (tempfile::tempdir().expect("temp dir"), super::free_port())
    }

    /// Writes `conf` to `dir`/unbound.conf and starts `unbound -d -c` on it (output discarded;
    /// the config chooses a log file). `port` is the one the config listens on at 127.0.0.1.
    /// Err when unbound is not installed or does not start.
    pub fn spawn(dir: tempfile::TempDir, port: u16, conf: &str) -> std::io::Result<Unbound> {
        let binary = super::tools::which("unbound").ok_or_else(|| {
            std::io::Error::new(std::io::ErrorKind::NotFound, "unbound is not installed")
        })?;
        let path = dir.path().join("unbound.conf");
        std::fs::write(&path, conf)?;
        let child = Command::new(binary)
            .args(["-d", "-c"])
            .arg(&path)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?;
        Ok(Unbound {
            child,
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
            dir,
        })
    }
}

impl Drop for Unbound {
    fn drop(&mut self) {
        // Our own child, by its PID.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
