//! Alert history: every alert raised (sent or held back by the cap), in SQLite beside the
//! query log; read by `dnsward alerts list` and `GET /api/alerts`.

use std::path::Path;

use rusqlite::{params, Connection, OpenFlags};

use super::Alert;

const SCHEMA: &str = "CREATE TABLE IF NOT EXISTS alerts (
    ts_us INTEGER NOT NULL,
    rule TEXT NOT NULL,
    kind TEXT NOT NULL,
    client TEXT,
    message TEXT NOT NULL,
    alert TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS alerts_ts ON alerts(ts_us);";

pub struct History {
    conn: Connection,
}

impl History {
    pub fn open(path: &Path) -> rusqlite::Result<History> {
        if let Some(dir) = path.parent() {
            let _ = std::fs::create_dir_all(dir);
        }
        let conn = Connection::open(path)?;
        conn.busy_timeout(std::time::Duration::from_secs(2))?;
        conn.execute_batch("PRAGMA journal_mode=WAL;")?;
        conn.execute_batch(SCHEMA)?;
        Ok(History { conn })
    }

    pub fn insert(&self, a: &Alert) -> rusqlite::Result<()> {
        let json = serde_json::to_string(a).unwrap_or_default();
        self.conn.execute(
            "INSERT INTO alerts (ts_us, rule, kind, client, message, alert) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![a.ts_us, a.rule, a.kind, a.client, a.message, json],
        )?;
        Ok(())
    }
}

/// Alerts since `since_us`, oldest first, at most `limit`, from the store at `path` (read only).
pub fn list(path: &Path, since_us: i64, limit: usize) -> rusqlite::Result<Vec<Alert>> {
    if !path.exists() {
        return Ok(Vec::new());
    }
    let conn = Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY)?;
    conn.busy_timeout(std::time::Duration::from_secs(2))?;
    let mut stmt = conn.prepare(
        "SELECT alert FROM (SELECT ts_us, alert FROM alerts WHERE ts_us >= ?1 ORDER BY ts_us DESC LIMIT ?2) ORDER BY ts_us",
    )?;
    let rows = stmt.query_map(params![since_us, limit as i64], |r| r.get::<_, String>(0))?;
    let mut out = Vec::new();
    for r in rows {
        if let Ok(a) = serde_json::from_str::<Alert>(&r?) {
            out.push(a);
        }
    }
    Ok(out)
}
