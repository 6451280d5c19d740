//! The checks `Config::load` runs after parsing: values that parse but make no sense together
//! (each problem a key path and a message, every one reported).

use super::*;

impl Config {
    /// Checks that serde cannot express: cross-field rules and files that must exist.
    pub(super) fn semantic_problems(&self) -> Vec<(String, String)> {
        let mut out = self.server_problems();
        out.extend(self.resolver_problems());
        out.extend(self.list_name_problems());
        if self.policy.ttl > 86_400 {
            out.push(("policy.ttl".into(), "must be at most 86400".into()));
        }
        if let Some(q) = &self.querylog {
            out.extend(
                q.validate()
                    .into_iter()
                    .map(|m| ("querylog".to_string(), m)),
            );
        }
        if let Some(a) = &self.admin {
            out.extend(self.admin_problems(a));
        }
        out.extend(self.encrypted_problems());
        if self.policy.watch_interval_secs == 0 {
            out.push((
                "policy.watch_interval_secs".into(),
                "must be at least 1".into(),
            ));
        }
        out.extend(self.group_problems());
        out.extend(self.feeds.problems());
        out.extend(crate::feeds::config::list_problems(&self.list_feed_keys()));
        let list_names: Vec<&str> = self.lists.iter().map(|l| l.name.as_str()).collect();
        out.extend(crate::rpzxfr::config::problems(
            &self.rpz,
            self.rpz_server.as_ref(),
            &list_names,
            &self.base_dir,
        ));
        out.extend(super::alerts::problems(self));
        out.extend(super::audit::problems(self));
        out.extend(super::events::problems(self));
        out
    }

    /// `[server]`: listen addresses, sizes, rate limits, UDP workers and batches.
    fn server_problems(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        if self.server.listen.is_empty() {
            out.push((
                "server.listen".into(),
                "at least one address is needed".into(),
            ));
        }
        if self.server.max_udp_payload < 512 {
            out.push((
                "server.max_udp_payload".into(),
                "must be at least 512".into(),
            ));
        }
        if self.server.rate_limit_burst > 0
            && self.server.rate_limit_burst < self.server.rate_limit_qps
        {
            out.push((
                "server.rate_limit_burst".into(),
                "must be at least rate_limit_qps".into(),
            ));
        }
        if self.server.udp_workers == Some(0) {
            out.push(("server.udp_workers".into(), "must be at least 1".into()));
        }
        if !(1..=MAX_UDP_BATCH).contains(&self.server.udp_batch) {
            out.push((
                "server.udp_batch".into(),
                format!("must be between 1 (no batching) and {MAX_UDP_BATCH}"),
            ));
        }
        out
    }

    /// `[resolver]`: cache and timeout bounds, trust anchors, DNS64, the mode and its
    /// forwarders or root hints.
    fn resolver_problems(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        let r = &self.resolver;
        if r.cache_size == 0 {
            out.push(("resolver.cache_size".into(), "must be at least 1".into()));
        }
        if r.timeout_ms == 0 || r.timeout_ms > 60_000 {
            out.push((
                "resolver.timeout_ms".into(),
                "must be between 1 and 60000".into(),
            ));
        }
        if r.cache_min_ttl > r.cache_max_ttl {
            out.push((
                "resolver.cache_min_ttl".into(),
                "must not exceed cache_max_ttl".into(),
            ));
        }
        for (i, nta) in r.negative_trust_anchors.iter().enumerate() {
            if hickory_proto::rr::Name::from_ascii(nta).is_err() || nta.trim().is_empty() {
                out.push((
                    format!("resolver.negative_trust_anchors[{i}]"),
                    format!("{nta:?} is not a domain name"),
                ));
            }
        }
        for p in r.trust_anchor.iter().flat_map(|t| t.to_vec()) {
            let path = self.resolve_path(&p);
            if !path.is_file() {
                out.push((
                    "resolver.trust_anchor".into(),
                    format!("cannot read {}", path.display()),
                ));
            }
        }
        out.extend(r.dns64_problems());
        match r.mode {
            Mode::Forward if r.forwarders.is_empty() => out.push((
                "resolver.forwarders".into(),
                "mode = \"forward\" needs at least one forwarder (\"IP:PORT\")".into(),
            )),
            Mode::Recursive if !r.forwarders.is_empty() => out.push((
                "resolver.forwarders".into(),
                "forwarders are only used with mode = \"forward\"".into(),
            )),
            _ => {}
        }
        if let (Mode::Recursive, Some(hints)) = (r.mode, &r.root_hints) {
            match crate::resolver::roots::read_root_hints(&self.resolve_path(hints)) {
                Ok(addrs) if addrs.is_empty() => out.push((
                    "resolver.root_hints".into(),
                    "the file names no root server address".into(),
                )),
                Ok(_) => {}
                Err(e) => out.push(("resolver.root_hints".into(), e.to_string())),
            }
        }
        out
    }

    /// `[[lists]]` names: present and unique.
    fn list_name_problems(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        let mut seen = std::collections::HashSet::new();
        for (i, l) in self.lists.iter().enumerate() {
            if l.name.trim().is_empty() {
                out.push((format!("lists[{i}].name"), "must not be empty".into()));
            } else if !seen.insert(l.name.as_str()) {
                out.push((
                    format!("lists[{i}].name"),
                    format!("another list is already named {:?}", l.name),
                ));
            }
        }
        out
    }

    /// `[admin]`: a remote listener only with TLS, the token file, the reserved list name.
    fn admin_problems(&self, a: &AdminConfig) -> Vec<(String, String)> {
        let mut out = Vec::new();
        let remote_ok = a.allow_remote && a.tls_cert.is_some() && a.tls_key.is_some();
        if !a.listen.ip().is_loopback() && !remote_ok {
            out.push((
                "admin.listen".into(),
                format!("{} is not a loopback address: set allow_remote = true with tls_cert and tls_key to serve the admin API remotely", a.listen),
            ));
        }
        if a.tls_cert.is_some() != a.tls_key.is_some() {
            out.push((
                "admin.tls_cert".into(),
                "tls_cert and tls_key go together".into(),
            ));
        }
        if let Some(t) = &a.token_file {
            match std::fs::read_to_string(self.resolve_path(t)) {
                Ok(tok) if tok.trim().len() >= 16 => {}
                Ok(_) => out.push((
                    "admin.token_file".into(),
                    "the token must be at least 16 characters".into(),
                )),
                Err(e) => out.push((
                    "admin.token_file".into(),
                    format!("cannot read {}: {e}", self.resolve_path(t).display()),
                )),
            }
        }
        if self.lists.iter().any(|l| l.name == RUNTIME_LIST) {
            out.push((
                "lists".into(),
                format!(
                    "the list name {RUNTIME_LIST:?} is reserved for the admin API's runtime list"
                ),
            ));
        }
        let allow = crate::policy::groups::RUNTIME_ALLOW_LIST;
        if self.lists.iter().any(|l| l.name == allow) {
            out.push((
                "lists".into(),
                format!(
                    "the list name {allow:?} is reserved for the admin API's runtime allow list"
                ),
            ));
        }
        out
    }

    /// `[server] tls_*`, `https_listen`, `[blockpage]` and the Structured DNS Error keys.
    fn encrypted_problems(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        let s = &self.server;
        let wants_tls = !s.tls_listen.is_empty() || !s.https_listen.is_empty();
        if wants_tls && (s.tls_cert.is_none() || s.tls_key.is_none()) {
            out.push((
                "server.tls_cert".into(),
                "tls_listen and https_listen need tls_cert and tls_key (PEM)".into(),
            ));
        }
        if s.tls_cert.is_some() != s.tls_key.is_some() {
            out.push((
                "server.tls_key".into(),
                "tls_cert and tls_key go together".into(),
            ));
        }
        for (key, p) in [
            ("server.tls_cert", &s.tls_cert),
            ("server.tls_key", &s.tls_key),
        ] {
            if let Some(p) = p {
                if !self.resolve_path(p).is_file() {
                    out.push((
                        key.into(),
                        format!("cannot read {}", self.resolve_path(p).display()),
                    ));
                }
            }
        }
        for (key, v) in [
            (
                "server.tls_handshake_timeout_ms",
                s.tls_handshake_timeout_ms as usize,
            ),
            ("server.tls_max_connections", s.tls_max_connections),
            (
                "server.tls_max_connections_per_client",
                s.tls_max_connections_per_client,
            ),
            ("server.tls_max_in_flight", s.tls_max_in_flight),
        ] {
            if v == 0 {
                out.push((key.into(), "must be at least 1".into()));
            }
        }
        for (i, u) in self.policy.contact_uris.iter().enumerate() {
            if !u.contains(':') || u.chars().any(char::is_whitespace) {
                out.push((
                    format!("policy.contact_uris[{i}]"),
                    format!(
                        "{u:?} is not a URI (e.g. \"tel:+84...\", \"mailto:soc@example.gov.vn\")"
                    ),
                ));
            }
        }
        if let Some(b) = &self.blockpage {
            if b.listen.is_empty() && b.https_listen.is_empty() {
                out.push((
                    "blockpage.listen".into(),
                    "at least one address is needed".into(),
                ));
            }
            if !b.https_listen.is_empty() && (b.tls_cert.is_none() || b.tls_key.is_none()) {
                out.push((
                    "blockpage.tls_cert".into(),
                    "https_listen needs tls_cert and tls_key (PEM)".into(),
                ));
            }
            if b.languages.is_empty() {
                out.push((
                    "blockpage.languages".into(),
                    "name at least one language".into(),
                ));
            }
            for (i, l) in b.languages.iter().enumerate() {
                if !BLOCKPAGE_LANGUAGES.contains(&l.as_str()) {
                    out.push((
                        format!("blockpage.languages[{i}]"),
                        format!(
                            "{l:?}: the block page speaks {}",
                            BLOCKPAGE_LANGUAGES.join(", ")
                        ),
                    ));
                }
            }
            if let Some(link) = &b.appeal_link {
                if !(link.starts_with("https://")
                    || link.starts_with("http://")
                    || link.starts_with("mailto:")
                    || link.starts_with("tel:"))
                {
                    out.push((
                        "blockpage.appeal_link".into(),
                        "must be an http(s):, mailto: or tel: link".into(),
                    ));
                }
            }
        }
        out
    }
}
