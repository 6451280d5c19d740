//! External programs some tests drive (dig, kdig, curl, chromium, unbound, ...). Where one is
//! missing the test is skipped with a message, except under CI (`CI` set, as `.ci/run` does):
//! `.ci/run` installs them all, so there a missing program is a failure, never a silent skip.

/// Report that `tool` (from Debian's `package`) is missing: panics under CI, else prints a
/// skip line; the caller then returns.
pub fn missing(tool: &str, package: &str) {
    assert!(
        std::env::var_os("CI").is_none(),
        "{tool} is required in CI (.ci/run installs {package})"
    );
    eprintln!("SKIP: {tool} is not installed (apt-get install {package})");
}
