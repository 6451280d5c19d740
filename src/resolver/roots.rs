//! Root hints: the built-in IANA root servers, or a named.root-format file.

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use hickory_proto::rr::{Name, RData};
use hickory_proto::serialize::txt::Parser;

/// The IANA root servers (a..m, IPv4 and IPv6), as published in named.root.
const IANA_ROOTS: &[&str] = &[
    "198.41.0.4",
    "2001:503:ba3e::2:30", // a
    "170.247.170.2",
    "2801:1b8:10::b", // b
    "192.33.4.12",
    "2001:500:2::c", // c
    "199.7.91.13",
    "2001:500:2d::d", // d
    "192.203.230.10",
    "2001:500:a8::e", // e
    "192.5.5.241",
    "2001:500:2f::f", // f
    "192.112.36.4",
    "2001:500:12::d0d", // g
    "198.97.190.53",
    "2001:500:1::53", // h
    "192.36.148.17",
    "2001:7fe::53", // i
    "192.58.128.30",
    "2001:503:c27::2:30", // j
    "193.0.14.129",
    "2001:7fd::1", // k
    "199.7.83.42",
    "2001:500:9f::42", // l
    "202.12.27.33",
    "2001:dc3::35", // m
];

pub fn builtin_roots() -> Vec<IpAddr> {
    IANA_ROOTS
        .iter()
        .map(|s| s.parse().expect("built-in root address"))
        .collect()
}

/// Why a root hints file gave no addresses.
#[derive(Debug, thiserror::Error)]
pub enum RootHintsError {
    #[error("cannot read root hints {}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("root hints {} are not a valid zone file: {source}", path.display())]
    Parse {
        path: PathBuf,
        source: hickory_proto::serialize::txt::ParseError,
    },
}

/// Reads the A/AAAA records of a named.root-format file.
pub(crate) fn read_root_hints(path: &Path) -> Result<Vec<IpAddr>, RootHintsError> {
    let text = std::fs::read_to_string(path).map_err(|source| RootHintsError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let (_, records) = Parser::new(text, Some(path.to_path_buf()), Some(Name::root()))
        .parse()
        .map_err(|source| RootHintsError::Parse {
            path: path.to_path_buf(),
            source,
        })?;
    Ok(records
        .values()
        .flat_map(|set| set.records_without_rrsigs())
        .filter_map(|r| match &r.data {
            RData::A(a) => Some(IpAddr::V4(a.0)),
            RData::AAAA(a) => Some(IpAddr::V6(a.0)),
            _ => None,
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_has_thirteen_of_each_family() {
        let r = builtin_roots();
        assert_eq!(r.iter().filter(|a| a.is_ipv4()).count(), 13);
        assert_eq!(r.iter().filter(|a| a.is_ipv6()).count(), 13);
    }

    #[test]
    fn reads_named_root() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("root.hints");
        std::fs::write(
            &p,
            ".  3600000 IN NS a.root.test.\na.root.test. 3600000 IN A 127.9.0.1\na.root.test. 3600000 IN AAAA ::1\n",
        )
        .unwrap();
        let r = read_root_hints(&p).unwrap();
        assert_eq!(r.len(), 2);
        assert!(r.contains(&"127.9.0.1".parse().unwrap()));
        assert!(read_root_hints(&dir.path().join("missing")).is_err());
    }
}
