use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use dnsward::config::Config;
use dnsward::instance::Instance;

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
    /// Validate a config file and print every problem (exit code 1 when there is any).
    Check {
        /// Path of the config file.
        #[arg(short, long, default_value = "config.toml")]
        config: PathBuf,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Check { config } => check(&config),
        Command::Serve { config } => serve(&config),
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
    match load_or_report(path) {
        Some(_) => {
            println!("{}: ok", path.display());
            ExitCode::SUCCESS
        }
        None => ExitCode::FAILURE,
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
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
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

/// Serves until SIGINT/SIGTERM; SIGHUP reloads the lists.
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
            }
        }
    }
}
