//! The commands of the `dnsward` binary, one module each; `main.rs` keeps only the clap
//! `Cli` and the dispatch. Dependency rule: `commands` uses `config`, `policy`, `querylog`,
//! `instance` and the like; none of those imports `commands` (the query log's sinks know
//! nothing of the analyst CLI that reads what they wrote).

pub mod alerts;
pub mod audit;
pub mod check;
pub mod explain;
pub mod logs;
pub mod serve;

use std::path::Path;

use crate::config::Config;

/// The config at `path`, or `None` after printing every problem to stderr.
pub fn load_or_report(path: &Path) -> Option<Config> {
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
