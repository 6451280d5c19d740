//! `logs export --format csv` straight from the SQLite rows.
//!
//! The export through [`LogRow`](crate::querylog::event::LogRow) builds a dozen strings
//! per row, parses the answers back into addresses and formats them again, and formats the
//! whole time; that held `export` near its 500,000 rows/s target only on a quiet machine.
//! Here each field is copied from the row as SQLite holds it, and the date and time up to
//! the second is formatted once per second (an export is ordered by time). The line is the
//! same, byte for byte, as `write_csv_line` of `row_to_logrow` for every row dnsward wrote
//! (the test below compares them). One difference by design: `answers` is written as
//! stored, where the `LogRow` path drops parts that are not addresses.

use std::fmt::Write;
use std::str::FromStr;

use rusqlite::types::ValueRef;
use rusqlite::Row;

use crate::querylog::event::{EventAction, Transport, Trigger};
use crate::querylog::sinks::sqlite::bad_value;
use crate::timefmt::{format_ts, format_ts_us};

/// Builds CSV lines from rows selected with [`COLUMNS`](crate::querylog::sinks::sqlite::COLUMNS), reusing its
/// buffers from row to row.
#[derive(Default)]
pub struct CsvExport {
    line: String,
    /// the last second formatted, and its text without the `Z` (None: out of range)
    second: Option<(i64, Option<String>)>,
}

impl CsvExport {
    /// The CSV line of one row, with its newline; the header is [`CSV_HEADER`](super::CSV_HEADER).
    pub fn line(&mut self, r: &Row<'_>) -> rusqlite::Result<&str> {
        let ts_us: i64 = r.get(0)?;
        self.line.clear();
        self.push_time(ts_us);
        let line = &mut self.line;
        let _ = write!(line, ",{ts_us},");
        field(line, text(r, 1)?);
        if let Some(port) = r.get::<_, Option<u16>>(2)? {
            let _ = write!(line, "{port}");
        }
        line.push(',');
        field(line, known(r, 3, &ALL_TRANSPORTS, Transport::as_str)?);
        field(line, text(r, 4)?);
        field(line, text(r, 5)?);
        field(line, text(r, 6)?);
        field(line, known(r, 7, &ALL_ACTIONS, EventAction::as_str)?);
        field(line, text(r, 8)?);
        field(line, text(r, 9)?);
        field(line, text(r, 10)?);
        let trigger = match text(r, 11)? {
            "" => "",
            _ => known(r, 11, &ALL_TRIGGERS, Trigger::as_str)?,
        };
        field(line, trigger);
        let cached: bool = r.get(12)?;
        let _ = write!(line, "{cached},");
        // the addresses joined with ',' are one field: quoted when there are several
        let answers = text(r, 13)?;
        if answers.contains(',') {
            let _ = write!(line, "\"{answers}\",");
        } else {
            field(line, answers);
        }
        let latency_us: u32 = r.get(14)?;
        let _ = write!(line, "{latency_us},");
        field(line, text(r, 15)?);
        field(line, text(r, 16)?);
        push_csv_field(line, text(r, 17)?);
        line.push('\n');
        Ok(&self.line)
    }

    /// RFC 3339 with microseconds, as `format_ts_us`.
    fn push_time(&mut self, ts_us: i64) {
        let secs = ts_us.div_euclid(1_000_000);
        if self.second.as_ref().is_none_or(|s| s.0 != secs) {
            let whole = format_ts(secs * 1_000_000, 0);
            self.second = Some((secs, whole.strip_suffix('Z').map(str::to_string)));
        }
        match self.second.as_ref().and_then(|s| s.1.as_deref()) {
            Some(prefix) => {
                let us = ts_us.rem_euclid(1_000_000);
                let _ = write!(self.line, "{prefix}.{us:06}Z");
            }
            None => push_csv_field(&mut self.line, &format_ts_us(ts_us)),
        }
    }
}

const ALL_TRANSPORTS: [Transport; 4] = [
    Transport::Udp,
    Transport::Tcp,
    Transport::Dot,
    Transport::Doh,
];
const ALL_ACTIONS: [EventAction; 4] = [
    EventAction::Allowed,
    EventAction::Blocked,
    EventAction::Refused,
    EventAction::Servfail,
];
const ALL_TRIGGERS: [Trigger; 3] = [Trigger::Qname, Trigger::Cname, Trigger::Ip];

/// Column `i`'s text, "" for NULL; an error for any other type, as `row_to_logrow` gives.
fn text<'r>(r: &'r Row<'_>, i: usize) -> rusqlite::Result<&'r str> {
    match r.get_ref(i)? {
        ValueRef::Null => Ok(""),
        v => v
            .as_str()
            .map_err(|e| rusqlite::Error::FromSqlConversionFailure(i, v.data_type(), Box::new(e))),
    }
}

/// Column `i` as one of `all`'s names; other spellings go through `FromStr` (which ignores
/// case), and a value that is none of them is the error `row_to_logrow` gives.
fn known<T: Copy + FromStr<Err = String>>(
    r: &Row<'_>,
    i: usize,
    all: &[T],
    name: fn(T) -> &'static str,
) -> rusqlite::Result<&'static str> {
    let v = text(r, i)?;
    match all.iter().find(|&&t| name(t) == v) {
        Some(&t) => Ok(name(t)),
        None => v
            .parse::<T>()
            .map(name)
            .map_err(|e| bad_value(i, v.to_string(), e)),
    }
}

/// A field and its comma.
fn field(line: &mut String, s: &str) {
    push_csv_field(line, s);
    line.push(',');
}

/// One CSV field (RFC 4180 quoting), as the CLI's `write_csv_line` writes it. (The test
/// looks at bytes: `str::contains` with a set of chars decodes every char, 5 % of export.)
fn push_csv_field(line: &mut String, s: &str) {
    if s.bytes().any(|b| matches!(b, b',' | b'"' | b'\n' | b'\r')) {
        line.push('"');
        line.push_str(&s.replace('"', "\"\""));
        line.push('"');
    } else {
        line.push_str(s);
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::super::write_csv_line;
    use super::*;
    use crate::querylog::event::{Answers, ClientId, LoggedEvent};
    use crate::querylog::sinks::sqlite::{insert_batch, open_for_writing, row_to_logrow, COLUMNS};
    use crate::querylog::testutil::{event, logged};

    fn rows() -> Vec<LoggedEvent> {
        let mut out = Vec::new();
        for i in 0..40i64 {
            let action = [EventAction::Allowed, EventAction::Blocked][i as usize % 2];
            let mut ev = event(&format!("n{i}.example"), action);
            // several rows in one second, then the next seconds; one before 1970
            ev.ts_us = 1_800_000_000_000_000 + i * 400_000;
            if i == 7 {
                ev.ts_us = -1_500_001;
            }
            ev.transport = [Transport::Udp, Transport::Doh][i as usize % 2];
            ev.answers = match i % 4 {
                0 => Answers::default(),
                1 => vec!["192.0.2.1".parse().unwrap()].into(),
                _ => ev.answers,
            };
            if i % 5 == 0 {
                ev.client_name = Some(Arc::from("Finance, \"PC\" 17"));
                ev.group = Some(Arc::from("lab,1"));
                ev.rule = Some("*.evil.example\nx".into());
            }
            let mut l = logged(ev);
            if i % 3 == 0 {
                l.client = ClientId::Token(i as u64 * 77);
            }
            out.push(l);
        }
        out
    }

    #[test]
    fn lines_are_those_of_the_logrow_path() {
        let dir = tempfile::tempdir().unwrap();
        let mut c = open_for_writing(&dir.path().join("q.db")).unwrap();
        insert_batch(&mut c, &rows()).unwrap();
        // an analyst's own row, with an upper-case action and a NULL trigger
        c.execute_batch(
            "INSERT INTO queries (ts_us, client, transport, qname, qtype, rcode, action, cached,
                 answers, latency_us, server)
             VALUES (5, '10.0.0.1', 'TCP', 'own.example', 'A', 'NOERROR', 'Allowed', 1, '', 0, 's')",
        )
        .unwrap();
        let mut st = c
            .prepare(&format!("SELECT {COLUMNS} FROM queries ORDER BY ts_us, id"))
            .unwrap();
        let mut rs = st.query([]).unwrap();
        let (mut fast, mut slow) = (CsvExport::default(), String::new());
        let mut n = 0;
        while let Some(r) = rs.next().unwrap() {
            write_csv_line(&mut slow, &row_to_logrow(r).unwrap());
            assert_eq!(fast.line(r).unwrap(), slow);
            n += 1;
        }
        assert_eq!(n, 41);
    }

    #[test]
    fn a_value_no_row_can_hold_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let mut c = open_for_writing(&dir.path().join("q.db")).unwrap();
        insert_batch(&mut c, &rows()[..1]).unwrap();
        c.execute_batch("UPDATE queries SET transport = 'carrier-pigeon'")
            .unwrap();
        let mut st = c
            .prepare(&format!("SELECT {COLUMNS} FROM queries"))
            .unwrap();
        let mut rs = st.query([]).unwrap();
        let e = CsvExport::default()
            .line(rs.next().unwrap().unwrap())
            .unwrap_err();
        assert!(e.to_string().contains("carrier-pigeon"), "{e}");
    }
}
