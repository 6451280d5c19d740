use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use dnsward::config::Config;
use dnsward::instance::Instance;
use dnsward::policy::{Snapshot, Verdict};

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
    /// Review the query log (the SQLite store of [querylog] sqlite, or ClickHouse).
    Logs {
        #[arg(short, long, default_value = "config.toml")]
        config: PathBuf,
        /// Which store to read (default: sqlite when configured, else clickhouse)
        #[arg(long, value_enum, global = true)]
        source: Option<dnsward::querylog::clickhouse_read::LogSource>,
        #[command(subcommand)]
        command: dnsward::querylog::LogsCommand,
    },
}

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Check { config } => check(&config),
        Command::Serve { config } => serve(&config),
        Command::Explain {
            config,
            name,
            ip,
            client,
        } => explain(&config, &name, ip, client),
        Command::Logs {
            config,
            source,
            command,
        } => logs(&config, source, command),
    }
}

fn load_or_report(path: &Path) -> Option<Config> {
    match Config::load(path) {
        Ok(c) => Some(c),
        Err(problems) => {
            for p in &problems {
                eprintln!("error: {p}");
            }
            eprintln!("{}: {} problem(s) found", path.display(), problems.len());
            None
        }
    }
}

fn check(path: &Path) -> ExitCode {
    let Some(config) = load_or_report(path) else {
        return ExitCode::FAILURE;
    };
    let (snapshot, report) =
        Snapshot::build_grouped(&config.list_specs(), &config.groups_spec(), None);
    let mut failed = false;
    for l in &report.lists {
        println!(
            "list {:?} ({}): {} rules, {} bad lines, read as {:?}",
            l.name,
            l.path.display(),
            l.entries,
            l.bad_lines,
            l.format
        );
        for (line, why) in &l.first_bad {
            println!("  warning: {}:{line}: skipped: {why}", l.path.display());
        }
        if l.bad_lines > l.first_bad.len() {
            println!("  ... {} more bad lines", l.bad_lines - l.first_bad.len());
        }
        for w in &l.warnings {
            println!("  warning: {w}");
        }
        let is_feed = config
            .lists
            .iter()
            .any(|c| c.name == l.name && c.url.is_some());
        let rpz_note = dnsward::rpzxfr::config::not_transferred_yet(&config, &l.name);
        match &l.error {
            // A feed without a snapshot has no copy until `serve` first downloads it.
            Some(_) if is_feed && !l.path.exists() => {
                println!(
                    "  warning: feed {:?} has no copy yet: it is empty until the first download",
                    l.name
                )
            }
            // An [[rpz]] zone has no copy until `serve` first transfers it.
            Some(_) if rpz_note.is_some() => {
                println!("  note: {}", rpz_note.as_deref().unwrap_or_default())
            }
            Some(e) => {
                eprintln!("error: list {:?}: {e}", l.name);
                failed = true;
            }
            None => {}
        }
    }
    for line in dnsward::feeds::check_report(&config) {
        println!("{line}");
    }
    for g in snapshot.groups().groups().iter().skip(1) {
        println!(
            "group {:?}: action {}, log {}",
            &*g.name,
            g.action
                .map_or("as [policy]".to_string(), |a| format!("{a:?}")
                    .to_lowercase()),
            g.log.as_str()
        );
    }
    println!(
        "{}: {} ({} names, {} addresses in {} lists, loaded in {} ms)",
        path.display(),
        if failed { "list errors" } else { "ok" },
        snapshot.name_entries(),
        snapshot.ip_entries(),
        report.lists.len(),
        report.elapsed.as_millis()
    );
    if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

fn explain(
    path: &Path,
    name: &str,
    ip: Option<std::net::IpAddr>,
    client: Option<std::net::IpAddr>,
) -> ExitCode {
    let Some(config) = load_or_report(path) else {
        return ExitCode::from(2);
    };
    let (snapshot, report) =
        Snapshot::build_grouped(&config.list_specs(), &config.groups_spec(), None);
    for l in report.lists.iter().filter(|l| l.error.is_some()) {
        eprintln!(
            "warning: list {:?} not loaded: {}",
            l.name,
            l.error.as_deref().unwrap_or("")
        );
    }
    let who = client
        .map(|c| snapshot.groups().lookup(c))
        .unwrap_or_default();
    if let Some(c) = client {
        let groups = snapshot.groups();
        let named = groups
            .client_name(who)
            .map(|n| format!(" ({n})"))
            .unwrap_or_default();
        println!("client {c}{named}: group {:?}", &*groups.group(who).name);
    }
    let mut hits: Vec<(String, Verdict)> = snapshot
        .explain_name_for(name, who)
        .into_iter()
        .map(|v| (format!("name {name}"), v))
        .collect();
    if let Some(ip) = ip {
        hits.extend(
            snapshot
                .explain_ip_for(ip, who)
                .into_iter()
                .map(|v| (format!("address {ip}"), v)),
        );
    }
    if hits.is_empty() {
        println!("{name}: allowed (no list matches)");
        return ExitCode::SUCCESS;
    }
    for (what, v) in &hits {
        let r = v.rule();
        let kind = match v {
            Verdict::Allow(_) => "allow",
            Verdict::Block { .. } => "block",
            Verdict::LocalData { .. } => "local data",
            Verdict::Drop(_) => "drop",
        };
        let text = r.rule_text().unwrap_or_else(|e| format!("<{e}>"));
        println!(
            "{what}: {kind} by list {:?} ({}) rule {} at {}:{}: {}",
            r.list,
            r.category.as_str(),
            r.trigger_name,
            r.file.display(),
            r.line,
            text.trim()
        );
    }
    // The decision the server makes: allow anywhere wins, else the first (most specific) block.
    let allowed = hits.iter().any(|(_, v)| v.is_allow());
    if allowed {
        println!("{name}: allowed (an allow rule wins over every block rule)");
        ExitCode::SUCCESS
    } else {
        println!("{name}: blocked");
        ExitCode::FAILURE
    }
}

fn logs(
    path: &Path,
    source: Option<dnsward::querylog::clickhouse_read::LogSource>,
    command: dnsward::querylog::LogsCommand,
) -> ExitCode {
    let Some(config) = load_or_report(path) else {
        return ExitCode::from(2);
    };
    let Some(q) = config.querylog.as_ref() else {
        eprintln!("error: {}: no [querylog] is configured", path.display());
        return ExitCode::from(2);
    };
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    match dnsward::querylog::clickhouse_read::run_logs_from(q, source, command, &mut out) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}: {e}", path.display());
            ExitCode::from(2)
        }
    }
}

fn serve(path: &Path) -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("DNSWARD_LOG")
                // hickory logs every request at info: keep its warnings only by default.
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,hickory_server=warn,hickory_resolver=error,hickory_net=error,hickory_proto=warn")),
        )
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr)
        .init();
    let Some(config) = load_or_report(path) else {
        eprintln!("refusing to start with an invalid config");
        return ExitCode::FAILURE;
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async move {
        let instance = match Instance::start(&config).await {
            Ok(i) => i,
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::FAILURE;
            }
        };
        wait_for_stop(&instance).await;
        tracing::info!("shutting down");
        instance.shutdown().await;
        ExitCode::SUCCESS
    })
}

/// Serves until SIGINT/SIGTERM; SIGHUP reloads the lists and the TLS certificates.
async fn wait_for_stop(instance: &Instance) {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).expect("install SIGTERM handler");
    let mut int = signal(SignalKind::interrupt()).expect("install SIGINT handler");
    let mut hup = signal(SignalKind::hangup()).expect("install SIGHUP handler");
    loop {
        tokio::select! {
            _ = term.recv() => return,
            _ = int.recv() => return,
            _ = hup.recv() => {
                instance.reload_lists("SIGHUP").await;
                instance.reload_tls();
            }
        }
    }
}
