//! `dnsward serve`: run one [`Instance`] until SIGINT or SIGTERM; SIGHUP reloads.

use std::path::Path;
use std::process::ExitCode;

use super::load_or_report;
use crate::instance::Instance;

/// Run `dnsward serve --config PATH`: refuses to start on an invalid config.
pub fn run(path: &Path) -> ExitCode {
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
