//! A received RPZ zone: its SOA and records, IXFR differences applied to it, and its copy on
//! disk. The copy is a master file that `policy::rpz` reads like any RPZ list (so received
//! records become policy entries through the one RPZ parser), and that `load` reads back at
//! start-up, so a restart protects before the primary answers and asks only for an IXFR.

use std::collections::HashMap;
use std::io::Write;
use std::path::Path;

use hickory_proto::rr::rdata::SOA;
use hickory_proto::rr::{DNSClass, Name, RData, Record};

#[derive(Debug, thiserror::Error)]
pub enum ZoneError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("cannot write {path}: {source}")]
    Write {
        path: String,
        source: std::io::Error,
    },
    #[error("{path}: {why}")]
    Parse { path: String, why: String },
    #[error("the IXFR does not fit our copy: {0}")]
    Mismatch(String),
}

/// One IXFR difference sequence: from one serial to the next.
#[derive(Debug, Default)]
pub struct Diff {
    pub deleted: Vec<Record>,
    pub added: Vec<Record>,
}

#[derive(Clone, Debug)]
pub struct ZoneData {
    pub origin: Name,
    pub soa: SOA,
    pub soa_ttl: u32,
    /// Every record RPZ gives meaning to but the SOA, as its master-file text without TTL and
    /// class (`owner TYPE rdata`, owner in lower case) -> TTL. Text rather than hickory
    /// records: ~80 bytes a record instead of ~300, for zones of millions of records.
    pub records: HashMap<Box<str>, u32>,
}

/// RFC 1982 serial number arithmetic: is `a` newer than `b`?
pub fn serial_newer(a: u32, b: u32) -> bool {
    a != b && (a.wrapping_sub(b) as i32) > 0
}

impl ZoneData {
    pub fn new(origin: Name, soa: SOA, soa_ttl: u32) -> ZoneData {
        ZoneData {
            origin,
            soa,
            soa_ttl,
            records: HashMap::new(),
        }
    }

    pub fn serial(&self) -> u32 {
        self.soa.serial
    }

    /// Keeps `r` (types RPZ ignores, and the SOA, are not kept).
    pub fn insert(&mut self, r: &Record) {
        if let Some(k) = record_key(&r.name, &r.data) {
            self.records.insert(k, r.ttl);
        }
    }

    /// Applies one difference sequence; a deletion of a record we do not hold means our copy
    /// and the primary's history disagree (the caller then asks for the whole zone). On that
    /// error the sequence is undone, so the copy stays at the previous serial.
    pub fn apply(&mut self, diff: &Diff, new_soa: SOA) -> Result<(), ZoneError> {
        let mut removed: Vec<(Box<str>, u32)> = Vec::with_capacity(diff.deleted.len());
        for r in &diff.deleted {
            let Some(k) = record_key(&r.name, &r.data) else {
                continue;
            };
            match self.records.remove(&k) {
                Some(ttl) => removed.push((k, ttl)),
                None => {
                    self.records.extend(removed);
                    return Err(ZoneError::Mismatch(format!(
                        "deleted record {k} is not in our copy"
                    )));
                }
            }
        }
        for r in &diff.added {
            self.insert(r);
        }
        self.soa = new_soa;
        Ok(())
    }

    /// Writes the zone as a master file next to `path` and renames it over `path`, so a
    /// reader (the policy reload, a restart) sees the old or the new copy, never half of one.
    pub fn write(&self, path: &Path) -> Result<(), ZoneError> {
        let err = |source| ZoneError::Write {
            path: path.display().to_string(),
            source,
        };
        let tmp = path.with_extension("zone.tmp");
        let file = std::fs::File::create(&tmp).map_err(err)?;
        let mut w = std::io::BufWriter::with_capacity(256 * 1024, file);
        let s = &self.soa;
        writeln!(
            w,
            "; RPZ zone {} received by zone transfer; rewritten on every change\n$ORIGIN {}\n{} {} IN SOA {} {} {} {} {} {} {}",
            self.origin, self.origin, self.origin, self.soa_ttl, s.mname, s.rname, s.serial, s.refresh, s.retry, s.expire, s.minimum
        )
        .map_err(err)?;
        for (k, ttl) in &self.records {
            let (owner, rest) = k.split_once(' ').unwrap_or((k, ""));
            writeln!(w, "{owner} {ttl} IN {rest}").map_err(err)?;
        }
        let file = w.into_inner().map_err(|e| err(e.into_error()))?;
        file.sync_all().map_err(err)?;
        drop(file);
        std::fs::rename(&tmp, path).map_err(err)
    }

    /// Reads a copy written by `write` (hickory's zone-file parser).
    pub fn load(path: &Path, origin: &Name) -> Result<ZoneData, ZoneError> {
        let text = std::fs::read_to_string(path).map_err(|source| ZoneError::Read {
            path: path.display().to_string(),
            source,
        })?;
        let perr = |why: String| ZoneError::Parse {
            path: path.display().to_string(),
            why,
        };
        let parser = hickory_proto::serialize::txt::Parser::new(text, None, Some(origin.clone()));
        let (_, sets) = parser.parse().map_err(|e| perr(e.to_string()))?;
        let mut z = None;
        let mut records = Vec::new();
        for set in sets.values() {
            for r in set.records_without_rrsigs() {
                match &r.data {
                    RData::SOA(s) if r.name.to_lowercase() == *origin => {
                        z = Some(ZoneData::new(origin.clone(), s.clone(), r.ttl))
                    }
                    _ => records.push(r.clone()),
                }
            }
        }
        let mut z = z.ok_or_else(|| perr("no SOA at the zone apex".into()))?;
        for r in &records {
            z.insert(r);
        }
        Ok(z)
    }

    /// The SOA as a record (for queries and logs).
    pub fn soa_record(&self) -> Record {
        let mut r = Record::from_rdata(
            self.origin.clone(),
            self.soa_ttl,
            RData::SOA(self.soa.clone()),
        );
        r.dns_class = DNSClass::IN;
        r
    }
}

/// `owner TYPE rdata`, or `None` for a type RPZ ignores (and the SOA). TXT strings are quoted
/// with `"` and `\` escaped and non-printable bytes written as `?` (hickory's reader does not
/// take `\DDD` back), so no received byte can end the line or start a directive.
fn record_key(name: &Name, data: &RData) -> Option<Box<str>> {
    let rdata = match data {
        RData::CNAME(c) => c.0.to_string(),
        RData::NS(n) => n.0.to_string(),
        RData::A(a) => a.0.to_string(),
        RData::AAAA(a) => a.0.to_string(),
        RData::TXT(t) => t
            .txt_data
            .iter()
            .map(|s| quote(s))
            .collect::<Vec<_>>()
            .join(" "),
        _ => return None,
    };
    let ty = data.record_type();
    Some(format!("{} {ty} {rdata}", name.to_lowercase()).into())
}

fn quote(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len() + 2);
    s.push('"');
    for &b in bytes {
        match b {
            b'"' | b'\\' => {
                s.push('\\');
                s.push(b as char);
            }
            0x20..=0x7e => s.push(b as char),
            _ => s.push('?'),
        }
    }
    s.push('"');
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use hickory_proto::rr::rdata::{CNAME, TXT};

    fn n(s: &str) -> Name {
        Name::from_ascii(s).unwrap()
    }

    fn zone() -> ZoneData {
        let soa = SOA::new(n("ns."), n("h."), 7, 60, 30, 600, 10);
        let mut z = ZoneData::new(n("rpz.test."), soa, 300);
        z.insert(&Record::from_rdata(
            n("bad.example.rpz.test."),
            60,
            RData::CNAME(CNAME(Name::root())),
        ));
        z.insert(&Record::from_rdata(
            n("note.example.rpz.test."),
            60,
            RData::TXT(TXT::new(vec!["a \"quoted\"\n$INCLUDE /etc/passwd".into()])),
        ));
        z
    }

    #[test]
    fn serials_compare_as_rfc1982() {
        assert!(serial_newer(2, 1));
        assert!(serial_newer(1, u32::MAX));
        assert!(!serial_newer(1, 1));
        assert!(!serial_newer(1, 2));
    }

    #[test]
    fn written_copy_reads_back_and_cannot_inject() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("z.zone");
        let z = zone();
        z.write(&p).unwrap();
        let text = std::fs::read_to_string(&p).unwrap();
        assert!(!text.lines().any(|l| l.starts_with("$INCLUDE")), "{text}");
        let back = ZoneData::load(&p, &n("rpz.test.")).unwrap();
        assert_eq!(back.serial(), 7);
        assert_eq!(back.records.len(), z.records.len());
        assert_eq!(back.records, z.records);
        assert!(back
            .records
            .contains_key("note.example.rpz.test. TXT \"a \\\"quoted\\\"?$INCLUDE /etc/passwd\""));
    }

    #[test]
    fn ixfr_delete_of_unknown_record_is_a_mismatch() {
        let mut z = zone();
        let soa8 = SOA::new(n("ns."), n("h."), 8, 60, 30, 600, 10);
        let gone = Record::from_rdata(n("other.rpz.test."), 60, RData::CNAME(CNAME(Name::root())));
        let d = Diff {
            deleted: vec![gone],
            added: vec![],
        };
        assert!(matches!(
            z.apply(&d, soa8.clone()),
            Err(ZoneError::Mismatch(_))
        ));
        let d = Diff {
            deleted: vec![Record::from_rdata(
                n("bad.example.rpz.test."),
                1,
                RData::CNAME(CNAME(Name::root())),
            )],
            added: vec![],
        };
        z.apply(&d, soa8).unwrap();
        assert_eq!(z.serial(), 8);
        assert_eq!(z.records.len(), 1);
    }
}
