//! Writing one batch of events into the SQLite store: the rows, and their `minute_counts`
//! and `client_hours` in the same transaction.
//!
//! CPU per row is what this file is about (issue 14's budget: 3.5 µs per allowed event,
//! bench/README.md). Measured with `perf` on `cargo bench --bench querylog`, the costs
//! beside SQLite's own b-tree work were the fixed cost of one statement per row, binding
//! 18 parameters (rusqlite copies every text it binds), and formatting the client and the
//! answers of each row. So: rows go 16 to a statement, a parameter is bound again only when
//! its value changed, and a client's text (or an answer list's) is formatted once per batch.

use std::collections::HashMap;
use std::fmt::Write;
use std::net::IpAddr;

use rusqlite::{params, CachedStatement, Connection, ToSql};

use super::{COLUMNS, HOUR_US, MINUTE_US};
use crate::querylog::event::{Answers, ClientId, LoggedEvent};

/// Rows per multi-row INSERT. Measured per event, 1,000 clients: one row per statement
/// 3.1 µs, 16 rows 2.1 µs, 64 rows 2.4 µs (a longer statement gains nothing more).
const ROWS_PER_INSERT: usize = 16;
/// Parameters per row: the columns of [`COLUMNS`], in that order.
const PARAMS_PER_ROW: usize = 18;

const CLIENT_HOURS_ADD: &str = "INSERT INTO client_hours (client, hour, first_id, last_id)
    VALUES (?1, ?2, ?3, ?4)
    ON CONFLICT (client, hour) DO UPDATE SET
        first_id = min(first_id, excluded.first_id), last_id = max(last_id, excluded.last_id)";

const ROLLUP_ADD: &str = "INSERT INTO minute_counts
        (minute, action, client_group, category, list, server, n)
    VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
    ON CONFLICT (minute, action, client_group, category, list, server)
    DO UPDATE SET n = n + excluded.n";

/// `INSERT OR FAIL` of `rows` rows. OR FAIL rather than the default ABORT: a failing row
/// would leave the rows before it, but the caller's transaction is then rolled back as a
/// whole anyway; under ABORT SQLite keeps a statement journal of every page a multi-row
/// statement changes, in case it must undo it (0.3 µs per event, measured).
fn insert_sql(rows: usize) -> String {
    let mut sql = format!("INSERT OR FAIL INTO queries ({COLUMNS}) VALUES ");
    for row in 0..rows {
        sql.push_str(if row == 0 { "(" } else { ", (" });
        for col in 0..PARAMS_PER_ROW {
            let sep = if col == 0 { "" } else { ", " };
            let _ = write!(sql, "{sep}?{}", row * PARAMS_PER_ROW + col + 1);
        }
        sql.push(')');
    }
    sql
}

/// Insert events in one transaction, with their `minute_counts` and `client_hours`;
/// returns the rows inserted.
pub fn insert_batch<'a>(
    conn: &mut Connection,
    events: impl IntoIterator<Item = &'a LoggedEvent>,
) -> rusqlite::Result<u64> {
    let tx = conn.transaction()?;
    let mut texts = BatchTexts::default();
    let mut rollup = BatchRollup::default();
    {
        let mut many = RowInserter::new(tx.prepare_cached(&insert_sql(ROWS_PER_INSERT))?);
        let mut one = RowInserter::new(tx.prepare_cached(&insert_sql(1))?);
        let mut chunk: Vec<(&LoggedEvent, usize)> = Vec::with_capacity(ROWS_PER_INSERT);
        for l in events {
            rollup.add(&l.ev);
            chunk.push((l, texts.client(&l.client)));
            if chunk.len() == ROWS_PER_INSERT {
                many.insert(&tx, &chunk, &mut texts)?;
                chunk.clear();
            }
        }
        for row in chunk.chunks(1) {
            one.insert(&tx, row, &mut texts)?;
        }
        let mut add = tx.prepare_cached(ROLLUP_ADD)?;
        for (k, n) in &rollup.counts {
            add.execute(params![
                k.minute, k.action, k.group, k.category, k.list, k.server, n
            ])?;
        }
        let mut add = tx.prepare_cached(CLIENT_HOURS_ADD)?;
        for client in &texts.clients {
            for (hour, first, last) in &client.hours {
                add.execute(params![client.text, hour, first, last])?;
            }
        }
    }
    tx.commit()?;
    Ok(rollup.counts.iter().map(|c| c.1 as u64).sum())
}

/// One INSERT statement of a fixed number of rows, with what each parameter holds now.
struct RowInserter<'conn> {
    stmt: CachedStatement<'conn>,
    bound: Vec<Bound>,
}

/// The value last bound to one parameter. SQLite keeps a statement's bindings from one
/// execution to the next (`sqlite3_reset` leaves them), and most columns repeat from row to
/// row (server, rcode, transport, the NULLs of an allowed event): those are not bound again.
#[derive(Clone, Copy, PartialEq)]
enum Bound {
    Unknown,
    Null,
    Int(i64),
    /// Address and length of the text. Everything bound lives, unchanged, until the batch
    /// is written (the events, and [`BatchTexts`], which only grows), so while the batch is
    /// written the same address and length mean the same text.
    Text(usize, usize),
}

impl<'conn> RowInserter<'conn> {
    fn new(stmt: CachedStatement<'conn>) -> RowInserter<'conn> {
        let params = stmt.parameter_count();
        RowInserter {
            stmt,
            bound: vec![Bound::Unknown; params],
        }
    }

    /// Insert `rows` (event, client index in `texts`), as many as the statement has rows,
    /// and record their ids in `texts`' `client_hours` ranges.
    fn insert(
        &mut self,
        conn: &Connection,
        rows: &[(&LoggedEvent, usize)],
        texts: &mut BatchTexts,
    ) -> rusqlite::Result<()> {
        debug_assert_eq!(rows.len() * PARAMS_PER_ROW, self.bound.len());
        for (slot, &(l, client)) in rows.iter().enumerate() {
            let ev = &l.ev;
            let at = slot * PARAMS_PER_ROW;
            // the order of COLUMNS
            self.int(at, Some(ev.ts_us))?;
            self.text(at + 1, Some(&texts.clients[client].text))?;
            self.int(at + 2, l.client.port().map(i64::from))?;
            self.text(at + 3, Some(ev.transport.as_str()))?;
            self.text(at + 4, Some(&ev.qname))?;
            self.text(at + 5, Some(&ev.qtype))?;
            self.text(at + 6, Some(&ev.rcode))?;
            self.text(at + 7, Some(ev.action.as_str()))?;
            self.text(at + 8, ev.category.as_deref())?;
            self.text(at + 9, ev.list.as_deref())?;
            self.text(at + 10, ev.rule.as_deref())?;
            self.text(at + 11, ev.trigger.map(|t| t.as_str()))?;
            self.int(at + 12, Some(i64::from(ev.cached)))?;
            self.text(at + 13, Some(texts.answers(&ev.answers)))?;
            self.int(at + 14, Some(i64::from(ev.latency_us)))?;
            self.text(at + 15, Some(&ev.server))?;
            self.text(at + 16, ev.client_name.as_deref())?;
            self.text(at + 17, ev.group.as_deref())?;
        }
        self.stmt.raw_execute()?;
        // The rows of one statement get consecutive ids ending at the last one: a new rowid
        // is one more than the largest in the table (below i64::MAX, which ids never reach).
        let last = conn.last_insert_rowid();
        let first = last + 1 - rows.len() as i64;
        for (i, &(l, client)) in rows.iter().enumerate() {
            texts.add_row(client, l.ev.ts_us, first + i as i64);
        }
        Ok(())
    }

    fn text(&mut self, i: usize, v: Option<&str>) -> rusqlite::Result<()> {
        let now = v.map_or(Bound::Null, |s| Bound::Text(s.as_ptr() as usize, s.len()));
        self.bind(i, now, v)
    }

    fn int(&mut self, i: usize, v: Option<i64>) -> rusqlite::Result<()> {
        self.bind(i, v.map_or(Bound::Null, Bound::Int), v)
    }

    fn bind(&mut self, i: usize, now: Bound, v: impl ToSql) -> rusqlite::Result<()> {
        if self.bound[i] != now {
            self.stmt.raw_bind_parameter(i + 1, v)?;
            self.bound[i] = now;
        }
        Ok(())
    }
}

/// One client of a batch: its text, and per hour the first and last id of its rows.
struct BatchClient {
    text: String,
    /// (hour, first id, last id)
    hours: Vec<(i64, i64, i64)>,
}

/// A client as stored: without its port, which has a column of its own.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
enum ClientKey {
    Ip(IpAddr),
    Token(u64),
}

/// The texts of a batch formatted once each: every client's (with the id ranges of its
/// rows per hour, for `client_hours`), and every answer list's. Only grows while the batch
/// is written (see [`Bound::Text`]).
#[derive(Default)]
struct BatchTexts {
    client_index: HashMap<ClientKey, usize>,
    clients: Vec<BatchClient>,
    /// The answers of a cache hit are the cache entry's: events of the same entry share
    /// them, so the slice's address identifies the list (all are alive during the batch).
    answers: HashMap<(usize, usize), String>,
}

impl BatchTexts {
    /// The index of `client` in `clients`.
    fn client(&mut self, client: &ClientId) -> usize {
        let key = match *client {
            ClientId::Addr { ip, .. } => ClientKey::Ip(ip),
            ClientId::Token(t) => ClientKey::Token(t),
        };
        let clients = &mut self.clients;
        *self.client_index.entry(key).or_insert_with(|| {
            clients.push(BatchClient {
                text: client.to_string(),
                hours: Vec::new(),
            });
            clients.len() - 1
        })
    }

    /// Comma-separated addresses.
    fn answers(&mut self, answers: &Answers) -> &str {
        if answers.is_empty() {
            return "";
        }
        let key = (answers.as_ptr() as usize, answers.len());
        self.answers.entry(key).or_insert_with(|| {
            let mut text = String::new();
            for (i, a) in answers.iter().enumerate() {
                let sep = if i == 0 { "" } else { "," };
                let _ = write!(text, "{sep}{a}");
            }
            text
        })
    }

    fn add_row(&mut self, client: usize, ts_us: i64, id: i64) {
        let hour = ts_us / HOUR_US;
        let hours = &mut self.clients[client].hours;
        match hours.iter_mut().rev().find(|h| h.0 == hour) {
            Some(h) => {
                h.1 = h.1.min(id);
                h.2 = h.2.max(id);
            }
            None => hours.push((hour, id, id)),
        }
    }
}

/// One `minute_counts` row's key (a NULL group, category or list is '').
#[derive(PartialEq, Eq)]
struct RollupKey<'a> {
    minute: i64,
    action: &'static str,
    group: &'a str,
    category: &'a str,
    list: &'a str,
    server: &'a str,
}

/// Per-batch rollup: key -> events. A batch spans a few minutes, one resolver and a few
/// groups and lists, so a short list searched from the end beats a map.
#[derive(Default)]
struct BatchRollup<'a> {
    counts: Vec<(RollupKey<'a>, i64)>,
}

impl<'a> BatchRollup<'a> {
    fn add(&mut self, ev: &'a crate::querylog::event::QueryEvent) {
        let key = RollupKey {
            minute: ev.ts_us / MINUTE_US,
            action: ev.action.as_str(),
            group: ev.group.as_deref().unwrap_or(""),
            category: ev.category.as_deref().unwrap_or(""),
            list: ev.list.as_deref().unwrap_or(""),
            server: &ev.server,
        };
        match self.counts.iter_mut().rev().find(|c| c.0 == key) {
            Some(c) => c.1 += 1,
            None => self.counts.push((key, 1)),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::borrow::Cow;
    use std::sync::Arc;

    use rusqlite::types::FromSql;

    use super::*;
    use crate::querylog::event::{EventAction, LogRow, Transport, Trigger};
    use crate::querylog::sinks::sqlite::{open_for_writing, row_to_logrow};
    use crate::querylog::testutil::{event, logged};

    /// Events that change every column from row to row in different rhythms (so a
    /// parameter left bound from the row before would show), over many clients (IPv4, IPv6,
    /// tokens, with and without port), names, minutes and hours, out of time order.
    fn varied(n: usize, seed: u64) -> Vec<LoggedEvent> {
        let shared: Answers = vec![
            "192.0.2.1".parse::<IpAddr>().unwrap(),
            "2001:db8::1".parse().unwrap(),
        ]
        .into();
        let groups: [Option<Arc<str>>; 3] = [None, Some("lab".into()), Some("finance".into())];
        let servers: [Arc<str>; 2] = ["edge-1".into(), "edge-2".into()];
        let mut x = seed;
        let mut next = move || {
            // xorshift: reproducible, no dependency
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        (0..n)
            .map(|i| {
                let r = next();
                let blocked = r % 7 == 0;
                let action = if blocked {
                    EventAction::Blocked
                } else {
                    EventAction::Allowed
                };
                let mut ev = event(&format!("n{}.zone{}.example", r % 997, r % 13), action);
                ev.ts_us = 1_800_000_000_000_000 + (r % (3 * HOUR_US as u64)) as i64;
                ev.transport = [Transport::Udp, Transport::Tcp, Transport::Dot][i % 3];
                ev.qtype = if i % 4 == 0 {
                    Cow::Owned("AAAA".to_string())
                } else {
                    Cow::Borrowed("A")
                };
                ev.answers = match r % 5 {
                    0 => Answers::default(),
                    1 => vec![IpAddr::from([10, 9, (r >> 8) as u8, r as u8])].into(),
                    _ => shared.clone(),
                };
                ev.group = groups[(r >> 3) as usize % 3].clone();
                ev.client_name = (r % 11 == 0).then(|| Arc::from(format!("pc-{}", r % 5)));
                ev.cached = r % 2 == 0;
                ev.latency_us = (r % 3) as u32;
                if blocked && r % 3 == 0 {
                    ev.trigger = Some(Trigger::Cname);
                }
                if blocked && r % 5 == 1 {
                    // another list, without a category
                    ev.list = Some("runtime".into());
                    ev.category = None;
                }
                ev.server = servers[(r >> 5) as usize % 2].clone();
                let c = (r >> 16) % 300;
                let mut l = logged(ev);
                l.client = match c % 3 {
                    0 => ClientId::Addr {
                        ip: IpAddr::from([10, 0, (c >> 8) as u8, c as u8]),
                        port: (r % 2 == 0).then_some(1024 + (r % 1000) as u16),
                    },
                    1 => ClientId::Addr {
                        ip: IpAddr::from([0x2001, 0xdb8, 0, 0, 0, 0, 0, c as u16]),
                        port: None,
                    },
                    _ => ClientId::Token(c * 0x9e37_79b9),
                };
                l
            })
            .collect()
    }

    /// The rows of a four-column query.
    fn query<A: FromSql, B: FromSql, C: FromSql, D: FromSql>(
        c: &Connection,
        sql: &str,
    ) -> Vec<(A, B, C, D)> {
        c.prepare(sql)
            .unwrap()
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
            .unwrap()
            .map(Result::unwrap)
            .collect()
    }

    #[test]
    fn rows_and_rollups_are_exact_over_many_clients_and_names() {
        let dir = tempfile::tempdir().unwrap();
        let mut c = open_for_writing(&dir.path().join("q.db")).unwrap();
        // sizes around the statement's 16 rows, and an empty batch
        let batches = [
            varied(5_003, 1),
            varied(0, 2),
            varied(1, 3),
            varied(16, 4),
            varied(17, 5),
        ];
        for b in &batches {
            assert_eq!(insert_batch(&mut c, b).unwrap(), b.len() as u64);
        }
        let expected: Vec<LogRow> = batches.iter().flatten().map(LogRow::from_logged).collect();
        let stored: Vec<LogRow> = c
            .prepare(&format!("SELECT {COLUMNS} FROM queries ORDER BY id"))
            .unwrap()
            .query_map([], row_to_logrow)
            .unwrap()
            .map(Result::unwrap)
            .collect();
        assert_eq!(stored.len(), expected.len());
        for (i, (s, e)) in stored.iter().zip(&expected).enumerate() {
            assert_eq!(s, e, "row {i}");
        }

        let counted: Vec<(i64, String, String, i64)> = query(
            &c,
            "SELECT ts_us / 60000000, action || '/' || coalesce(category, ''),
                    coalesce(client_group, '') || '/' || coalesce(list, '') || '/' || server,
                    count(*) FROM queries
             GROUP BY 1, 2, 3 ORDER BY 1, 2, 3",
        );
        let rollup = query(
            &c,
            "SELECT minute, action || '/' || category, client_group || '/' || list || '/' || server,
                    n FROM minute_counts ORDER BY 1, 2, 3",
        );
        assert!(counted.len() > 300, "{} minute rows", counted.len());
        assert_eq!(rollup, counted);

        let ranges = |sql: &str| -> Vec<(String, i64, i64, i64)> { query(&c, sql) };
        let counted = ranges(
            "SELECT client, ts_us / 3600000000, min(id), max(id) FROM queries
             GROUP BY 1, 2 ORDER BY 1, 2",
        );
        let hours =
            ranges("SELECT client, hour, first_id, last_id FROM client_hours ORDER BY 1, 2");
        assert!(counted.len() > 600, "{} client hours", counted.len());
        assert_eq!(hours, counted);
    }

    #[test]
    fn the_insert_statement_names_every_parameter_once() {
        let sql = insert_sql(ROWS_PER_INSERT);
        let c = Connection::open_in_memory().unwrap();
        c.execute_batch(super::super::SCHEMA).unwrap();
        let stmt = c.prepare(&sql).unwrap();
        assert_eq!(stmt.parameter_count(), ROWS_PER_INSERT * PARAMS_PER_ROW);
        assert_eq!(COLUMNS.split(',').count(), PARAMS_PER_ROW);
    }
}
