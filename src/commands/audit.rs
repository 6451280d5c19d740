//! `dnsward audit`: the agency's own names through dnsward's own resolver (see `crate::audit`).
//! Exit status: 0 nothing worse than info, 1 warnings, 2 critical findings or an error.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use ipnet::IpNet;

use super::load_or_report;
use crate::audit::{self, AuditOptions, Inventory};

/// The flags of `dnsward audit`.
#[derive(clap::Args, Debug)]
pub struct AuditArgs {
    #[arg(short, long, default_value = "config.toml")]
    pub config: PathBuf,
    /// The inventory: the agency's zones and host names, one a line, `#` comments.
    #[arg(long)]
    pub domains: PathBuf,
    /// Address ranges the agency owns (CIDR or address, comma-separated): an A/AAAA outside
    /// them is a finding.
    #[arg(long, value_delimiter = ',', value_parser = parse_net)]
    pub owned: Vec<IpNet>,
    /// The saved state of the last audit: drift against it is reported, then it is rewritten.
    #[arg(long)]
    pub baseline: Option<PathBuf>,
    /// Print the report as JSON (for scripts) instead of the table.
    #[arg(long)]
    pub json: bool,
    /// Append the names judged abandoned to this list file (dated comment, reason).
    #[arg(long)]
    pub write_abandoned: Option<PathBuf>,
    /// Names audited at once.
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u16).range(1..=256))]
    pub concurrency: u16,
}

/// An `--owned` value that is neither a CIDR nor an address.
#[derive(Debug, thiserror::Error)]
#[error("{0:?} is not a CIDR or an address")]
struct NotANetwork(String);

fn parse_net(s: &str) -> Result<IpNet, NotANetwork> {
    s.trim()
        .parse::<IpNet>()
        .or_else(|_| s.trim().parse::<std::net::IpAddr>().map(IpNet::from))
        .map_err(|_| NotANetwork(s.to_string()))
}

pub fn run(args: AuditArgs) -> ExitCode {
    let Some(config) = load_or_report(&args.config) else {
        return ExitCode::from(2);
    };
    let inventory = match Inventory::read(&args.domains) {
        Ok(i) => i,
        Err(e) => {
            eprintln!("error: {}: {e}", args.domains.display());
            return ExitCode::from(2);
        }
    };
    for p in &inventory.problems {
        eprintln!(
            "warning: {}:{}: {:?} skipped: {}",
            args.domains.display(),
            p.line,
            p.text,
            p.reason
        );
    }
    let options = AuditOptions {
        owned: args.owned.clone(),
        baseline: args.baseline.clone(),
        concurrency: args.concurrency as usize,
        ns_timeout: Duration::ZERO,
    };
    let bar = std::io::stderr().is_terminal().then(|| {
        let bar = indicatif::ProgressBar::new(inventory.entries.len() as u64);
        if let Ok(style) = indicatif::ProgressStyle::with_template(
            "{spinner} [{elapsed_precise}] {bar:40} {pos}/{len} {msg}",
        ) {
            bar.set_style(style);
        }
        bar
    });
    let on_name = |n: &audit::NameReport| {
        if let Some(b) = &bar {
            b.set_message(n.name.clone());
            b.inc(1);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::from(2);
        }
    };
    let result = runtime.block_on(audit::run(&config, &inventory, &options, &on_name));
    if let Some(b) = &bar {
        b.finish_and_clear();
    }
    let report = match result {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    if args.json {
        println!("{}", audit::report::json(&report));
    } else {
        print!("{}", audit::report::table(&report));
    }
    if let Some(path) = &args.write_abandoned {
        match audit::report::write_abandoned(&report, path) {
            Ok(added) if !added.is_empty() => eprintln!(
                "{}: {} name(s) added: {}",
                path.display(),
                added.len(),
                added.join(", ")
            ),
            Ok(_) => {}
            Err(e) => {
                eprintln!("error: {}: {e}", path.display());
                return ExitCode::from(2);
            }
        }
    }
    ExitCode::from(report.exit_status())
}
