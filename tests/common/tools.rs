//! External programs some tests drive (dig, kdig, curl, chromium, unbound, ...), and what else
//! a test may need of the machine (root, an IPv6 loopback). Where something is missing the test
//! is skipped with a `SKIP: ...` line, except under CI (`CI` set, as `.ci/run` does): `.ci/run`
//! installs every program and runs as root on a machine with IPv6, so there a missing one is
//! a failure, never a silent skip.
//!
//! Use: `if !require_tool("dig", "dnsutils") { return; }`.

use std::path::{Path, PathBuf};

/// A test cannot run here because of `why`: panics under CI, else prints a `SKIP:` line.
/// Always false, so that `return skip(..)`-style callers read naturally.
pub fn skip(why: &str) -> bool {
    assert!(std::env::var_os("CI").is_none(), "required in CI: {why}");
    eprintln!("SKIP: {why}");
    false
}

/// Report that `tool` (from Debian's `package`) is missing: panics under CI, else prints a
/// skip line; the caller then returns.
pub fn missing(tool: &str, package: &str) {
    assert!(
        std::env::var_os("CI").is_none(),
        "{tool} is required in CI (.ci/run installs {package})"
    );
    eprintln!("SKIP: {tool} is not installed (apt-get install {package})");
}

/// Where `tool` is: an absolute path as given when it exists, else the first of the usual
/// program directories and `PATH` that holds it.
pub fn which(tool: &str) -> Option<PathBuf> {
    if tool.contains('/') {
        return Path::new(tool).is_file().then(|| PathBuf::from(tool));
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    ["/usr/sbin", "/usr/bin", "/sbin", "/bin", "/usr/local/sbin"]
        .iter()
        .map(PathBuf::from)
        .chain(std::env::split_paths(&path))
        .map(|d| d.join(tool))
        .find(|p| p.is_file())
}

/// True when `tool` (from Debian's `package`) is installed; otherwise [`missing`] and false.
pub fn require_tool(tool: &str, package: &str) -> bool {
    if which(tool).is_some() {
        return true;
    }
    missing(tool, package);
    false
}

/// True when the test runs as root (port 53 on the harness addresses, say); otherwise a skip.
pub fn require_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    if unsafe { libc::geteuid() } == 0 {
        return true;
    }
    skip("not root (the test binds port 53 or needs another privilege)")
}

/// True when this machine has an IPv6 loopback (`::1` bindable); otherwise a skip.
pub fn require_ipv6() -> bool {
    if std::net::UdpSocket::bind("[::1]:0").is_ok() {
        return true;
    }
    skip("no IPv6 loopback (::1) on this machine")
}
