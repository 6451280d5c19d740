//! `[feeds]` and the feed keys of `[[lists]]` (`url`, `refresh`, `snapshot`): types, defaults
//! and the checks serde cannot express.

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Deserializer};

/// How often a feed is fetched when its list says nothing.
pub const DEFAULT_REFRESH: Duration = Duration::from_secs(3600);
/// Shorter refreshes would hammer the feed's operator (URLhaus asks for at most one download
/// every 5 minutes); 10 s still lets a lab or a test see the timer work.
pub const MIN_REFRESH: Duration = Duration::from_secs(10);

/// `[feeds]`: where downloads are kept and how a download is bounded and judged.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FeedsConfig {
    /// Last good copy of every feed, its validators and status (relative to the config file,
    /// like `[admin] runtime_list`).
    #[serde(default = "default_cache_dir")]
    pub cache_dir: PathBuf,
    /// A download with fewer entries than `(1 - max_shrink)` x the last good copy is rejected.
    #[serde(default = "default_max_shrink")]
    pub max_shrink: f64,
    /// Largest body accepted, after gzip decoding, in MiB.
    #[serde(default = "default_max_size_mb")]
    pub max_size_mb: u64,
    /// One download, connection to last byte.
    #[serde(default = "default_timeout", deserialize_with = "duration")]
    pub timeout: Duration,
    /// Further attempts after a timeout, a connection error or a 5xx/429 answer.
    #[serde(default = "default_retries")]
    pub retries: u32,
    /// Wait before the first retry; doubled for each further one.
    #[serde(default = "default_retry_backoff", deserialize_with = "duration")]
    pub retry_backoff: Duration,
    /// Redirects followed per download.
    #[serde(default = "default_max_redirects")]
    pub max_redirects: usize,
}

impl Default for FeedsConfig {
    fn default() -> Self {
        Self {
            cache_dir: default_cache_dir(),
            max_shrink: default_max_shrink(),
            max_size_mb: default_max_size_mb(),
            timeout: default_timeout(),
            retries: default_retries(),
            retry_backoff: default_retry_backoff(),
            max_redirects: default_max_redirects(),
        }
    }
}

fn default_cache_dir() -> PathBuf {
    PathBuf::from("feeds-cache")
}
fn default_max_shrink() -> f64 {
    0.5
}
fn default_max_size_mb() -> u64 {
    64
}
fn default_timeout() -> Duration {
    Duration::from_secs(60)
}
fn default_retries() -> u32 {
    3
}
fn default_retry_backoff() -> Duration {
    Duration::from_secs(2)
}
fn default_max_redirects() -> usize {
    5
}

/// A humane duration: `"90s"`, `"15m"`, `"1h"`, `"1h 30m"`.
pub fn duration<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    let text = String::deserialize(d)?;
    parse_duration(&text).map_err(serde::de::Error::custom)
}

/// As [`duration`], for an optional key.
pub fn opt_duration<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
    duration(d).map(Some)
}

/// A value that is not a humane duration.
#[derive(Debug, thiserror::Error)]
#[error("{text:?} is not a duration ({source}); write e.g. \"30s\", \"15m\", \"1h\"")]
pub struct DurationError {
    text: String,
    source: humantime::DurationError,
}

fn parse_duration(text: &str) -> Result<Duration, DurationError> {
    humantime::parse_duration(text.trim()).map_err(|source| DurationError {
        text: text.to_string(),
        source,
    })
}

/// Whether a feed URL may be plain `http`: only to this machine (a test server, a local
/// mirror); anything crossing a network must be authenticated by TLS.
pub fn is_loopback_host(url: &reqwest::Url) -> bool {
    let Some(host) = url.host_str() else {
        return false;
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost") || host.parse::<IpAddr>().is_ok_and(|a| a.is_loopback())
}

/// A list name usable as a file name in `cache_dir` and as a path segment of the admin API.
fn is_feed_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && !name.starts_with('.')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

/// The keys of one `[[lists]]` entry that decide whether and how it is a feed, as
/// `crate::config` hands them over (`snapshot` resolved against the config's directory).
pub struct ListFeedKeys<'a> {
    /// Its index in `[[lists]]`, for the key path of a problem.
    pub index: usize,
    pub name: &'a str,
    pub has_path: bool,
    pub url: Option<&'a str>,
    pub refresh: Option<Duration>,
    pub snapshot: Option<PathBuf>,
}

impl FeedsConfig {
    /// Problems of `[feeds]`, as (key path, message).
    pub fn problems(&self) -> Vec<(String, String)> {
        section_problems(self)
    }
}

fn section_problems(f: &FeedsConfig) -> Vec<(String, String)> {
    let mut out = Vec::new();
    if !(0.0..=1.0).contains(&f.max_shrink) {
        out.push((
            "feeds.max_shrink".into(),
            "must be between 0 (no shrink accepted) and 1 (any shrink accepted)".into(),
        ));
    }
    if !(1..=4096).contains(&f.max_size_mb) {
        out.push((
            "feeds.max_size_mb".into(),
            "must be between 1 and 4096".into(),
        ));
    }
    if f.timeout < Duration::from_secs(1) || f.timeout > Duration::from_secs(600) {
        out.push(("feeds.timeout".into(), "must be between 1s and 10m".into()));
    }
    if f.retries > 10 {
        out.push(("feeds.retries".into(), "must be at most 10".into()));
    }
    if f.retry_backoff > Duration::from_secs(600) {
        out.push(("feeds.retry_backoff".into(), "must be at most 10m".into()));
    }
    if f.max_redirects > 20 {
        out.push(("feeds.max_redirects".into(), "must be at most 20".into()));
    }
    out
}

/// Problems of the feed keys of `[[lists]]`, as (key path, message).
pub fn list_problems(lists: &[ListFeedKeys<'_>]) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for l in lists {
        let i = l.index;
        match (l.has_path, l.url) {
            (true, Some(_)) => out.push((
                format!("lists[{i}].url"),
                "path and url exclude each other: a list is either a local file (path) or a feed (url)".into(),
            )),
            (false, None) => out.push((
                format!("lists[{i}]"),
                format!("list {:?} needs path (a local file) or url (a feed)", l.name),
            )),
            _ => {}
        }
        let Some(url) = l.url else {
            for (key, set) in [
                ("refresh", l.refresh.is_some()),
                ("snapshot", l.snapshot.is_some()),
            ] {
                if set {
                    out.push((
                        format!("lists[{i}].{key}"),
                        "only a feed (a list with url) has this key".into(),
                    ));
                }
            }
            continue;
        };
        match reqwest::Url::parse(url) {
            Ok(u) if u.scheme() == "https" => {}
            Ok(u) if u.scheme() == "http" && is_loopback_host(&u) => {}
            Ok(u) if u.scheme() == "http" => out.push((
                format!("lists[{i}].url"),
                "use https: plain http is allowed only to loopback (a local mirror or test)".into(),
            )),
            Ok(u) => out.push((
                format!("lists[{i}].url"),
                format!("scheme {:?}: a feed URL is https://...", u.scheme()),
            )),
            Err(e) => out.push((
                format!("lists[{i}].url"),
                format!("{url:?} is not a URL: {e}"),
            )),
        }
        if l.refresh.is_some_and(|r| r < MIN_REFRESH) {
            out.push((
                format!("lists[{i}].refresh"),
                format!(
                    "must be at least {}",
                    humantime::format_duration(MIN_REFRESH)
                ),
            ));
        }
        if !is_feed_name(l.name) {
            out.push((
                format!("lists[{i}].name"),
                "a feed's name may have letters, digits, '-', '_' and '.' (it names its file in cache_dir and its admin API route), at most 64".into(),
            ));
        }
        if let Some(p) = &l.snapshot {
            if !p.is_file() {
                out.push((
                    format!("lists[{i}].snapshot"),
                    format!("cannot read {}", p.display()),
                ));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use crate::config::Config;
    use std::path::Path;

    fn problems_of(text: &str) -> Vec<String> {
        match Config::from_text(text, Path::new("/tmp/feeds-test/config.toml")) {
            Ok(_) => Vec::new(),
            Err(p) => p
                .iter()
                .map(|p| format!("{}: {}", p.key, p.message))
                .collect(),
        }
    }

    #[test]
    fn path_and_url_exclude_each_other() {
        let p = problems_of("[[lists]]\nname = \"a\"\ncategory = \"threat\"\npath = \"x\"\nurl = \"https://example.net/a.txt\"\n");
        assert!(p.iter().any(|p| p.contains("exclude each other")), "{p:?}");
        let p = problems_of("[[lists]]\nname = \"a\"\ncategory = \"threat\"\n");
        assert!(p.iter().any(|p| p.contains("needs path")), "{p:?}");
    }

    #[test]
    fn urls_refresh_and_names_are_checked() {
        let p = problems_of("[[lists]]\nname = \"a b\"\ncategory = \"threat\"\nurl = \"http://example.net/a\"\nrefresh = \"2s\"\n");
        assert!(p.iter().any(|p| p.contains("use https")), "{p:?}");
        assert!(p.iter().any(|p| p.starts_with("lists[0].refresh")), "{p:?}");
        assert!(p.iter().any(|p| p.starts_with("lists[0].name")), "{p:?}");
        let p = problems_of("[[lists]]\nname = \"a\"\ncategory = \"threat\"\nurl = \"https://example.net/a\"\nrefresh = \"soon\"\n");
        assert!(p.iter().any(|p| p.contains("not a duration")), "{p:?}");
        let ok = problems_of("[[lists]]\nname = \"a\"\ncategory = \"threat\"\nurl = \"http://127.0.0.1:8000/a\"\nrefresh = \"1h 30m\"\n[feeds]\nmax_shrink = 0.3\ntimeout = \"5s\"\n");
        assert!(ok.is_empty(), "{ok:?}");
        let p = problems_of("[feeds]\nmax_shrink = 1.5\n");
        assert!(p.iter().any(|p| p.starts_with("feeds.max_shrink")), "{p:?}");
    }

    #[test]
    fn path_lists_take_no_feed_keys() {
        let p = problems_of("[[lists]]\nname = \"a\"\ncategory = \"threat\"\npath = \"/dev/null\"\nrefresh = \"1h\"\n");
        assert!(p.iter().any(|p| p.starts_with("lists[0].refresh")), "{p:?}");
    }
}
