//! Trust anchors: the built-in root KSKs (20326 and 38696) or DS/DNSKEY records read from
//! zone-file-form files, for any zone.
//!
//! hickory's `TrustAnchors` holds DNSKEYs only and its parser reads DNSKEY lines only, so
//! this module splits a file into records itself (comments, parentheses) and hands each
//! record's text to hickory: DNSKEY lines to its trust-anchor parser, DS rdata to
//! `RData::try_from_str`.

use std::path::PathBuf;

use hickory_proto::dnssec::rdata::{DNSSECRData, DNSKEY, DS};
use hickory_proto::dnssec::TrustAnchors;
use hickory_proto::rr::{Name, RData, RecordType};
use hickory_proto::serialize::txt::trust_anchor::{self, Entry};

use super::DnssecError;

/// What is trusted at one zone: DS digests and/or DNSKEYs.
#[derive(Clone, Debug)]
pub(crate) struct ZoneAnchor {
    pub zone: Name,
    pub ds: Vec<DS>,
    pub keys: Vec<DNSKEY>,
}

/// The configured trust anchors, by zone.
#[derive(Clone, Debug)]
pub struct TrustAnchorSet {
    zones: Vec<ZoneAnchor>,
}

impl Default for TrustAnchorSet {
    /// The IANA root KSKs 20326 (2017) and 38696 (2024), as shipped by hickory.
    fn default() -> Self {
        let builtin = TrustAnchors::default();
        let mut set = TrustAnchorSet::empty();
        for i in 0..builtin.len() {
            if let Some(key) = builtin.get(i) {
                set.add_dnskey(Name::root(), DNSKEY::new(true, true, false, key.clone()));
            }
        }
        set
    }
}

impl TrustAnchorSet {
    pub fn empty() -> Self {
        TrustAnchorSet { zones: Vec::new() }
    }

    /// Reads DS or DNSKEY records in zone-file form from every file (they replace the
    /// built-in root anchors). A file with no anchor in it is an error.
    pub fn from_files(paths: &[PathBuf]) -> Result<Self, DnssecError> {
        let mut set = TrustAnchorSet::empty();
        for path in paths {
            let shown = path.display().to_string();
            let text = std::fs::read_to_string(path).map_err(|source| DnssecError::Io {
                path: shown.clone(),
                source,
            })?;
            let before = set.len();
            set.add_text(&text, &shown)?;
            if set.len() == before {
                return Err(DnssecError::NoAnchors(shown));
            }
        }
        Ok(set)
    }

    /// Adds the DS and DNSKEY records of a zone-file-form text; `source` names it in errors.
    pub fn add_text(&mut self, text: &str, source: &str) -> Result<(), DnssecError> {
        let mut origin = Name::root();
        for (line, record) in logical_records(text) {
            let err = |message: String| DnssecError::AnchorSyntax {
                path: source.to_string(),
                line,
                message,
            };
            let tokens: Vec<&str> = record.split_whitespace().collect();
            match tokens.first().copied() {
                Some("$ORIGIN") => {
                    let arg = tokens
                        .get(1)
                        .ok_or_else(|| err("$ORIGIN needs a name".into()))?;
                    origin = Name::parse(arg, Some(&Name::root()))
                        .map_err(|e| err(format!("bad $ORIGIN: {e}")))?;
                    continue;
                }
                Some("$TTL") => continue,
                Some(d) if d.starts_with('$') => {
                    return Err(err(format!("{d} not supported here")))
                }
                _ => {}
            }
            let owner = Name::parse(tokens[0], Some(&origin))
                .map_err(|e| err(format!("bad owner name {:?}: {e}", tokens[0])))?
                .to_lowercase();
            // owner [ttl] [class] type rdata...; TTL and class may come in either order.
            let mut i = 1;
            while i < tokens.len() && i <= 2 && is_ttl_or_class(tokens[i]) {
                i += 1;
            }
            let Some(rtype) = tokens.get(i) else {
                return Err(err("record without a type".into()));
            };
            let rdata = tokens[i + 1..].join(" ");
            match rtype.to_ascii_uppercase().as_str() {
                "DS" => match RData::try_from_str(RecordType::DS, &rdata) {
                    Ok(RData::DNSSEC(DNSSECRData::DS(ds))) => self.add_ds(owner, ds),
                    Ok(_) => return Err(err("not a DS record".into())),
                    Err(e) => return Err(err(format!("bad DS record: {e}"))),
                },
                "DNSKEY" => {
                    let text = format!("{} IN DNSKEY {rdata}", owner.to_ascii());
                    let entries = trust_anchor::Parser::new(text.as_str())
                        .parse()
                        .map_err(|e| err(format!("bad DNSKEY record: {e}")))?;
                    for entry in entries {
                        #[allow(irrefutable_let_patterns)] // hickory's Entry is non-exhaustive
                        if let Entry::DNSKEY(record) = entry {
                            self.add_dnskey(owner.clone(), record.data().clone());
                        }
                    }
                }
                other => return Err(err(format!("{other} is not DS or DNSKEY"))),
            }
        }
        Ok(())
    }

    pub fn add_ds(&mut self, zone: Name, ds: DS) {
        self.entry(zone).ds.push(ds);
    }

    pub fn add_dnskey(&mut self, zone: Name, key: DNSKEY) {
        self.entry(zone).keys.push(key);
    }

    /// Number of anchor records (DS and DNSKEY) over all zones.
    pub fn len(&self) -> usize {
        self.zones.iter().map(|z| z.ds.len() + z.keys.len()).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The zones that have an anchor.
    pub fn zones(&self) -> impl Iterator<Item = &Name> {
        self.zones.iter().map(|z| &z.zone)
    }

    /// The anchor at exactly `zone`.
    pub(crate) fn at(&self, zone: &Name) -> Option<&ZoneAnchor> {
        self.zones.iter().find(|z| &z.zone == zone)
    }

    /// Whether some anchor is at or above `name` (otherwise its security is indeterminate).
    pub(crate) fn covers(&self, name: &Name) -> bool {
        self.zones.iter().any(|z| z.zone.zone_of(name))
    }

    fn entry(&mut self, mut zone: Name) -> &mut ZoneAnchor {
        zone.set_fqdn(true);
        let zone = zone.to_lowercase();
        match self.zones.iter().position(|z| z.zone == zone) {
            Some(i) => &mut self.zones[i],
            None => {
                self.zones.push(ZoneAnchor {
                    zone,
                    ds: Vec::new(),
                    keys: Vec::new(),
                });
                self.zones.last_mut().expect("just pushed")
            }
        }
    }
}

fn is_ttl_or_class(token: &str) -> bool {
    token.bytes().all(|b| b.is_ascii_digit())
        || matches!(token.to_ascii_uppercase().as_str(), "IN" | "CH" | "HS")
}

/// Splits zone-file text into logical records with the line each starts on: `;` comments
/// removed, parentheses joined into one record.
fn logical_records(text: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    let mut current = String::new();
    let mut start = 0;
    let mut depth = 0usize;
    for (n, raw) in text.lines().enumerate() {
        let line = raw.split(';').next().unwrap_or("");
        if depth == 0 {
            start = n + 1;
        }
        for c in line.chars() {
            match c {
                '(' => depth += 1,
                ')' => depth = depth.saturating_sub(1),
                c => current.push(c),
            }
        }
        current.push(' ');
        if depth == 0 {
            if !current.trim().is_empty() {
                out.push((start, current.trim().to_string()));
            }
            current.clear();
        }
    }
    if !current.trim().is_empty() {
        out.push((start, current.trim().to_string()));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_root_anchors_are_20326_and_38696() {
        let set = TrustAnchorSet::default();
        let root = set.at(&Name::root()).expect("root anchor");
        let mut tags: Vec<u16> = root
            .keys
            .iter()
            .map(|k| k.calculate_key_tag().unwrap())
            .collect();
        tags.sort();
        assert_eq!(tags, vec![20326, 38696]);
    }

    #[test]
    fn reads_ds_and_dnskey_in_zone_file_form() {
        let text = "; comment\n\
            . 172800 IN DS 20326 8 2 E06D44B80B8F1D39A95C0B0D7C65D08458E880409BBC683457104237C7F8EC8D\n\
            example.com. IN 3600 DNSKEY 257 3 13 (\n  mdsswUyr3DPW132mOi8V9xESWE8jTo0d\n  xCjjnopKl+GqJxpVXckHAeF+KkxLbxILfDLUT0rAK9iUzy1L53eKGQ== ) ; ksk\n";
        let mut set = TrustAnchorSet::empty();
        set.add_text(text, "t").unwrap();
        assert_eq!(set.len(), 2);
        let zone = Name::from_ascii("example.com.").unwrap();
        assert_eq!(set.at(&zone).unwrap().keys.len(), 1);
        assert_eq!(set.at(&Name::root()).unwrap().ds[0].key_tag(), 20326);
        assert!(set.covers(&Name::from_ascii("www.example.com.").unwrap()));
    }

    #[test]
    fn bad_anchor_lines_are_errors_with_their_line() {
        let mut set = TrustAnchorSet::empty();
        let e = set
            .add_text("\n. IN DS 1 2 3 zz-not-hex\n", "f")
            .unwrap_err();
        assert!(e.to_string().starts_with("f:2:"), "{e}");
        let e = set.add_text("x. IN A 192.0.2.1\n", "f").unwrap_err();
        assert!(e.to_string().contains("not DS or DNSKEY"), "{e}");
    }
}
