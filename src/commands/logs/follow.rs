//! `tail`'s output over time, for both stores: the latest rows first, then with `-f` the new
//! ones as they arrive.

use std::io::Write;
use std::time::Duration;

use super::format::print_tail_rows;
use crate::querylog::event::LogRow;

/// `tail -f`: how often to look for new rows, and (for tests) how many times. Shared by
/// the SQLite and ClickHouse sources.
pub(super) struct Follow {
    poll: Duration,
    max_polls: Option<u64>,
}

impl Follow {
    /// From `tail`'s options: `None` without `-f`.
    pub(super) fn asked(follow: bool, poll_ms: u64, max_polls: Option<u64>) -> Option<Follow> {
        follow.then(|| Follow {
            poll: Duration::from_millis(poll_ms),
            max_polls,
        })
    }

    /// Every `poll` (at most `max_polls` times): print the rows `new_rows` finds, without a
    /// header. `new_rows` keeps its own cursor (the SQLite row id, or ClickHouse's time).
    pub(super) fn print_new<E: From<std::io::Error>>(
        &self,
        json: bool,
        out: &mut dyn Write,
        mut new_rows: impl FnMut() -> Result<Vec<LogRow>, E>,
    ) -> Result<(), E> {
        let mut polls = 0u64;
        while self.max_polls.is_none_or(|m| polls < m) {
            std::thread::sleep(self.poll);
            polls += 1;
            let new = new_rows()?;
            if !new.is_empty() {
                print_tail_rows(&new, json, false, out)?;
            }
        }
        Ok(())
    }
}

/// `tail`'s first rows, oldest first, with the table's header; without `-f`, a line saying
/// so when nothing matches.
pub(super) fn print_latest(
    rows: &[LogRow],
    json: bool,
    following: bool,
    out: &mut dyn Write,
) -> std::io::Result<()> {
    if rows.is_empty() && !json && !following {
        writeln!(out, "(no matching queries)")?;
        return Ok(());
    }
    print_tail_rows(rows, json, true, out)
}
