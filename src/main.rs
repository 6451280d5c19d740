use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use dnsward::commands;

/// dnsward: a protective recursive DNS resolver.
///
/// Resolves every query itself (from the root, or through forwarders), caches answers, and
/// keeps clients away from malicious and abandoned domains.
#[derive(Parser)]
#[command(name = "dnsward", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve DNS on the addresses in the config until SIGINT or SIGTERM.
    Serve {
        /// Path of the config file.
        #[arg(short, long, default_value = "config.toml")]
        config: PathBuf,
    },
    /// Validate a config file and its lists; print every problem (exit code 1 when there is any).
    Check {
        /// Path of the config file.
        #[arg(short, long, default_value = "config.toml")]
        config: PathBuf,
    },
    /// Which list and rule (file:line) would block NAME or IP, or why it is allowed.
    /// Exit code: 0 allowed, 1 blocked, 2 error.
    Explain {
        #[arg(short, long, default_value = "config.toml")]
        config: PathBuf,
        /// A domain name.
        name: String,
        /// An answer address to check as well.
        ip: Option<std::net::IpAddr>,
        /// Answer for this client's group (its address); default: the default group.
        #[arg(long)]
        client: Option<std::net::IpAddr>,
    },
    /// Audit the agency's own domains through dnsward's resolver: dangling CNAMEs, lame
    /// delegations, foreign addresses, abandoned names, threats, DNSSEC, drift.
    /// Exit code: 0 fine, 1 warnings, 2 critical findings (or an error).
    Audit(commands::audit::AuditArgs),
    /// The alert history (`list`), or a test alert through a rule's actions (`test RULE`).
    Alerts {
        #[arg(short, long, default_value = "config.toml")]
        config: PathBuf,
        #[command(subcommand)]
        command: commands::alerts::AlertsCommand,
    },
    /// Review the query log (the SQLite store of [querylog] sqlite, or ClickHouse).
    Logs {
        #[arg(short, long, default_value = "config.toml")]
        config: PathBuf,
        /// Which store to read (default: sqlite when configured, else clickhouse)
        #[arg(long, value_enum, global = true)]
        source: Option<commands::logs::LogSource>,
        #[command(subcommand)]
        command: commands::logs::LogsCommand,
    },
}

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Check { config } => commands::check::run(&config),
        Command::Serve { config } => commands::serve::run(&config),
        Command::Explain {
            config,
            name,
            ip,
            client,
        } => commands::explain::run(&config, &name, ip, client),
        Command::Audit(args) => commands::audit::run(args),
        Command::Alerts { config, command } => commands::alerts::run(&config, command),
        Command::Logs {
            config,
            source,
            command,
        } => commands::logs::run(&config, source, command),
    }
}
