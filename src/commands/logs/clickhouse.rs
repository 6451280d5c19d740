//! `dnsward logs ... --source clickhouse`: the same commands and the same output as over
//! SQLite (`format.rs` prints both), from the fleet's ClickHouse table read through
//! `querylog::read::clickhouse`; and `init-clickhouse`.

use std::io::Write;
use std::time::Duration;

use super::{run_on, LogsCommand, LogsError};
use crate::querylog::clickhouse_client::{ClickhouseTarget, Client};
use crate::querylog::read::clickhouse::ChReader;
use crate::querylog::QueryLogConfig;

/// Queries of `dnsward logs` may take this long.
const QUERY_TIMEOUT: Duration = Duration::from_secs(300);

/// Run one `dnsward logs` subcommand on `[querylog] clickhouse`, `init-clickhouse` included.
pub(super) fn run_logs(
    cfg: &QueryLogConfig,
    cmd: LogsCommand,
    out: &mut dyn Write,
) -> Result<(), LogsError> {
    let target = ClickhouseTarget::from_config(cfg)?.ok_or_else(|| {
        LogsError::InvalidArgument("no [querylog] clickhouse is configured".into())
    })?;
    let client = Client::new(target, QUERY_TIMEOUT)?;
    if let LogsCommand::InitClickhouse { ttl_days } = cmd {
        return init_schema(&client, ttl_days, out);
    }
    run_on(&ChReader::connect(client)?, cmd, out)
}

/// `init-clickhouse`: create the schema and say what was created.
fn init_schema(client: &Client, ttl_days: u32, out: &mut dyn Write) -> Result<(), LogsError> {
    let (v, stmts) = client.init_schema(ttl_days)?;
    writeln!(
        out,
        "created {} and its {} per-minute rollups on ClickHouse {}.{}{}",
        client.target.table_ref(),
        stmts
            .iter()
            .filter(|s| s.contains("MATERIALIZED VIEW"))
            .count(),
        v.major,
        v.minor,
        if v.is_legacy() {
            " (before 19.6: no TTL, client as FixedString(16))"
        } else {
            ""
        }
    )?;
    writeln!(
        out,
        "created the alert history {} and {}",
        crate::alerts::history_ch::alerts_table(&client.target),
        crate::alerts::history_ch::deliveries_table(&client.target)
    )?;
    Ok(())
}
