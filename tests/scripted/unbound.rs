//! Unbound as the reference resolver for differential tests: started on a free loopback port
//! with a temp config pointed at a scripted hierarchy (which must listen on port 53: unbound
//! always sends there), killed by its PID when the guard is dropped.

use std::path::PathBuf;
use std::time::{Duration, Instant};

pub use crate::common::unbound::Unbound;

/// Whether a differential test can run here: unbound installed, and root (port 53 on the
/// harness addresses). When not, the `SKIP:` line is printed (a failure under CI).
pub fn available() -> bool {
    use crate::common::tools::{require_root, require_tool};
    require_tool("unbound", "unbound") && require_root()
}

impl Unbound {
    /// Unbound `server:` options equivalent to dnsward `[resolver]` keys (TOML lines):
    /// qname_minimisation, upstream_ipv6, cache_min_ttl, cache_max_ttl; others are ignored.
    pub fn options_for(resolver_keys: &str) -> String {
        let mut out = String::new();
        for line in resolver_keys.lines() {
            let Some((key, value)) = line.split_once('=') else {
                continue;
            };
            let value = value.trim().trim_matches('"');
            match (key.trim(), value) {
                ("qname_minimisation", "off") => out.push_str("  qname-minimisation: no\n"),
                ("qname_minimisation", "strict") => {
                    out.push_str("  qname-minimisation-strict: yes\n")
                }
                ("upstream_ipv6", "true") => out.push_str("  do-ip6: yes\n"),
                ("cache_min_ttl", v) => out.push_str(&format!("  cache-min-ttl: {v}\n")),
                ("cache_max_ttl", v) => out.push_str(&format!("  cache-max-ttl: {v}\n")),
                _ => {}
            }
        }
        out
    }

    /// Starts unbound as a plain iterator (no validator) with QNAME minimisation on and the
    /// hardening defaults (but `test.` resolved, not answered by its built-in local zone, and
    /// slow answers sent, not dropped after 1.9 s as its `discard-timeout` does), plus `options` (lines of its `server:` clause); returns once it
    /// answers over UDP (bounded wait).
    pub async fn start(root_hints: PathBuf, options: &str) -> Unbound {
        let options = if options.contains("do-ip6") {
            options.to_string()
        } else {
            format!("{options}  do-ip6: no\n")
        };
        let (dir, port) = Unbound::prepare();
        let d = dir.path().display();
        // UNBOUND_LOG=/path keeps unbound's log (at verbosity 4) for debugging a scenario.
        let (log, verbosity) = match std::env::var("UNBOUND_LOG") {
            Ok(path) => (path, 4),
            Err(_) => (format!("{d}/unbound.log"), 1),
        };
        let conf = format!(
            "server:\n  interface: 127.0.0.1\n  port: {port}\n  do-not-query-localhost: no\n  \
             root-hints: \"{}\"\n  qname-minimisation: yes\n  module-config: \"iterator\"\n  chroot: \"\"\n  \
             username: \"\"\n  directory: \"{d}\"\n  pidfile: \"{d}/unbound.pid\"\n  use-syslog: no\n  \
             logfile: \"{log}\"\n  verbosity: {verbosity}\n  access-control: 127.0.0.0/8 allow\n  \
             num-threads: 1\n  do-daemonize: no\n  local-zone: \"test.\" nodefault\n  discard-timeout: 0\n{options}remote-control:\n  control-enable: no\n",
            root_hints.display()
        );
        let unbound = Unbound::spawn(dir, port, &conf).expect("unbound starts");
        unbound.wait_ready().await;
        unbound
    }

    /// Waits (at most 10 s) until unbound answers anything: it only has to be listening.
    async fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(10);
        let probe = {
            // A query for "localhost. A", answered locally by unbound's default local zones.
            let mut m = hickory_proto::op::Message::query();
            m.add_query(hickory_proto::op::Query::query(
                hickory_proto::rr::Name::from_ascii("localhost.").unwrap(),
                hickory_proto::rr::RecordType::A,
            ));
            m.to_vec().unwrap()
        };
        while Instant::now() < deadline {
            let sock = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
            let _ = sock.send_to(&probe, self.addr).await;
            let mut buf = [0u8; 512];
            if let Ok(Ok(_)) =
                tokio::time::timeout(Duration::from_millis(200), sock.recv_from(&mut buf)).await
            {
                return;
            }
        }
        panic!(
            "unbound did not start listening on {} within 10 s",
            self.addr
        );
    }
}
