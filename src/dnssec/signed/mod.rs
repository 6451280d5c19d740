//! A zone signer and a minimal authoritative responder over the signed zone, for tests and
//! scripted test authorities: zone text in, a signed zone (DNSKEY, NSEC or NSEC3 chain,
//! RRSIGs) out, and `respond` builds the answer an authoritative server would send with
//! DO=1 (answers, referrals with DS or a proof of no DS, NODATA, NXDOMAIN, wildcard
//! expansions, each with its NSEC/NSEC3 proof).
//!
//! Keys are generated with ring through hickory (ECDSA P-256/P-384, Ed25519) or given as
//! PKCS#8 DER (RSA: ring cannot generate RSA keys). No signer in hickory 0.26 builds
//! NSEC/NSEC3 chains outside hickory-server's authorities, hence the chain code here.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use data_encoding::BASE32_DNSSEC;
use hickory_proto::dnssec::crypto::{EcdsaSigningKey, Ed25519SigningKey, RsaSigningKey};
use hickory_proto::dnssec::rdata::{
    DNSSECRData, SigInput, DNSKEY, DS, NSEC, NSEC3, NSEC3PARAM, RRSIG,
};
use hickory_proto::dnssec::{
    Algorithm, DigestType, Nsec3HashAlgorithm, SigningKey, Verifier as _, TBS,
};
use hickory_proto::rr::{DNSClass, Name, RData, Record, RecordType, SerialNumber};
use hickory_proto::serialize::txt::Parser;
use rustls::pki_types::PrivatePkcs8KeyDer;

use super::DnssecError;

mod respond;

/// Which denial-of-existence chain to build.
#[derive(Clone, Debug)]
pub enum DenialChain {
    Nsec,
    Nsec3 {
        iterations: u16,
        salt: Vec<u8>,
        opt_out: bool,
    },
}

#[derive(Clone, Debug)]
pub struct SignOptions {
    pub algorithm: Algorithm,
    pub denial: DenialChain,
    /// RRSIG inception and expiration, unix seconds.
    pub inception: u32,
    pub expiration: u32,
    /// KSK and ZSK as PKCS#8 DER instead of fresh keys; needed for RSA, which ring cannot
    /// generate (e.g. `openssl genpkey -algorithm RSA -outform DER`).
    pub pkcs8_keys: Option<(Vec<u8>, Vec<u8>)>,
    /// KSK and ZSK that sign outside ring, for algorithms ring cannot sign with (RSA/SHA-1,
    /// RSA keys under 1024 bits); they win over `pkcs8_keys`.
    pub external_keys: Option<ExternalKeys>,
}

/// A KSK and a ZSK given as signing keys (see `SignOptions::external_keys`).
#[derive(Clone)]
pub struct ExternalKeys {
    pub ksk: Arc<dyn SigningKey>,
    pub zsk: Arc<dyn SigningKey>,
}

impl std::fmt::Debug for ExternalKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ExternalKeys({})", self.ksk.algorithm())
    }
}

impl SignOptions {
    /// ECDSA P-256, NSEC, valid from an hour before `now` for 30 days.
    pub fn new(now: u32) -> Self {
        SignOptions {
            algorithm: Algorithm::ECDSAP256SHA256,
            denial: DenialChain::Nsec,
            inception: now.saturating_sub(3600),
            expiration: now.saturating_add(30 * 86400),
            pkcs8_keys: None,
            external_keys: None,
        }
    }
}

struct Key {
    signing: Arc<dyn SigningKey>,
    dnskey: DNSKEY,
    tag: u16,
}

/// A signed zone: every record (data, DNSKEY, NSEC*, RRSIG) and the answers built from it.
pub struct SignedZone {
    pub apex: Name,
    /// All records of the zone, RRSIGs included. Tests may tamper with them.
    pub records: Vec<Record>,
    ksk: Key,
    options: SignOptions,
    /// NSEC3 hash -> original owner name (empty with NSEC).
    nsec3_owners: BTreeMap<Vec<u8>, Name>,
}

impl SignedZone {
    /// Parses `zone_text` (zone-file form; `origin` is the apex) and signs it.
    pub fn sign(origin: &str, zone_text: &str, options: SignOptions) -> Result<Self, DnssecError> {
        let origin = Name::from_ascii(origin).map_err(|e| DnssecError::Zone(e.to_string()))?;
        let (apex, sets) = Parser::new(zone_text, None, Some(origin))
            .parse()
            .map_err(|e| DnssecError::Zone(e.to_string()))?;
        let data: Vec<Record> = sets
            .values()
            .flat_map(|s| s.records_without_rrsigs().cloned())
            .collect();
        Self::sign_records(apex, data, options)
    }

    /// Signs a zone given as records (for types hickory's zone parser does not read, such
    /// as DNAME as unknown rdata). The records must include the apex SOA.
    pub fn sign_records(
        apex: Name,
        mut data: Vec<Record>,
        options: SignOptions,
    ) -> Result<Self, DnssecError> {
        let apex = apex.to_lowercase();
        for r in &mut data {
            r.name = r.name.to_lowercase();
        }
        let (ksk_der, zsk_der) = match &options.pkcs8_keys {
            Some((k, z)) => (Some(k.as_slice()), Some(z.as_slice())),
            None => (None, None),
        };
        let (ksk, zsk) = match &options.external_keys {
            Some(keys) => (
                key_from(Arc::clone(&keys.ksk), true)?,
                key_from(Arc::clone(&keys.zsk), false)?,
            ),
            None => (
                make_key(options.algorithm, true, ksk_der)?,
                make_key(options.algorithm, false, zsk_der)?,
            ),
        };
        let soa_min = data.iter().find_map(|r| match &r.data {
            RData::SOA(soa) => Some(soa.minimum.min(r.ttl)),
            _ => None,
        });
        let Some(neg_ttl) = soa_min else {
            return Err(DnssecError::Zone(format!("{apex} has no SOA")));
        };
        for key in [&ksk, &zsk] {
            data.push(Record::from_rdata(
                apex.clone(),
                3600,
                RData::DNSSEC(DNSSECRData::DNSKEY(key.dnskey.clone())),
            ));
        }
        let mut zone = SignedZone {
            apex,
            records: Vec::new(),
            ksk,
            options,
            nsec3_owners: BTreeMap::new(),
        };
        let delegations = zone.delegations(&data);
        let denial = match zone.options.denial.clone() {
            DenialChain::Nsec => zone.nsec_chain(&data, &delegations, neg_ttl),
            DenialChain::Nsec3 {
                iterations,
                salt,
                opt_out,
            } => {
                let param =
                    NSEC3PARAM::new(Nsec3HashAlgorithm::SHA1, false, iterations, salt.clone());
                data.push(Record::from_rdata(
                    zone.apex.clone(),
                    0,
                    RData::DNSSEC(DNSSECRData::NSEC3PARAM(param)),
                ));
                zone.nsec3_chain(&data, &delegations, neg_ttl, iterations, &salt, opt_out)?
            }
        };
        data.extend(denial);
        let mut signatures = Vec::new();
        for ((name, rtype), records) in group(&data) {
            let unsigned = delegations.iter().any(|d| {
                (d == &name && rtype == RecordType::NS) || (d != &name && d.zone_of(&name))
            });
            if unsigned {
                continue; // delegation NS and glue are not signed
            }
            let key = if rtype == RecordType::DNSKEY {
                &zone.ksk
            } else {
                &zsk
            };
            signatures.push(zone.sign_rrset(&records, key)?);
        }
        data.extend(signatures);
        zone.records = data;
        Ok(zone)
    }

    /// Removes every DNSSEC record: the zone is then served unsigned (an insecure child).
    pub fn unsign(&mut self) {
        self.records.retain(|r| {
            !matches!(
                r.record_type(),
                RecordType::RRSIG
                    | RecordType::NSEC
                    | RecordType::NSEC3
                    | RecordType::NSEC3PARAM
                    | RecordType::DNSKEY
            )
        });
        self.nsec3_owners.clear();
    }

    /// The KSK's DS record (SHA-256) for the parent zone.
    pub fn ds(&self) -> DS {
        let digest = self
            .ksk
            .dnskey
            .to_digest(&self.apex, DigestType::SHA256)
            .expect("digest of our own key");
        DS::new(
            self.ksk.tag,
            self.ksk.dnskey.algorithm(),
            DigestType::SHA256,
            digest.as_ref().to_vec(),
        )
    }

    /// The DS in zone-file form, to paste into the parent's zone text or a trust-anchor file.
    pub fn ds_line(&self) -> String {
        let ds = self.ds();
        let hex: String = ds.digest().iter().map(|b| format!("{b:02X}")).collect();
        format!(
            "{} 3600 IN DS {} {} 2 {hex}",
            self.apex,
            ds.key_tag(),
            u8::from(ds.algorithm())
        )
    }

    /// The KSK as DNSKEY rdata (a trust anchor for this zone).
    pub fn ksk(&self) -> &DNSKEY {
        &self.ksk.dnskey
    }

    /// The records and RRSIGs of (name, type).
    pub fn rrset(&self, name: &Name, rtype: RecordType) -> Vec<Record> {
        self.records
            .iter()
            .filter(|r| &r.name == name && (r.record_type() == rtype || covered(r) == Some(rtype)))
            .cloned()
            .collect()
    }

    pub(super) fn nsec3_owner(&self, hash: &[u8]) -> Name {
        self.apex
            .prepend_label(BASE32_DNSSEC.encode(hash).as_str())
            .expect("NSEC3 owner")
    }

    /// Names with NS records below the apex: zone cuts.
    pub(super) fn delegations(&self, data: &[Record]) -> Vec<Name> {
        let mut cuts: Vec<Name> = data
            .iter()
            .filter(|r| r.record_type() == RecordType::NS && r.name != self.apex)
            .map(|r| r.name.clone())
            .collect();
        cuts.sort();
        cuts.dedup();
        cuts
    }

    /// Authoritative names (not below a cut) with their types, in canonical order.
    fn authoritative(
        &self,
        data: &[Record],
        cuts: &[Name],
    ) -> BTreeMap<Name, BTreeSet<RecordType>> {
        let mut names: BTreeMap<Name, BTreeSet<RecordType>> = BTreeMap::new();
        for r in data {
            if cuts.iter().any(|c| c.zone_of(&r.name) && c != &r.name) {
                continue; // glue
            }
            names
                .entry(r.name.clone())
                .or_default()
                .insert(r.record_type());
        }
        names
    }

    fn nsec_chain(&self, data: &[Record], cuts: &[Name], ttl: u32) -> Vec<Record> {
        let names = self.authoritative(data, cuts);
        let owners: Vec<&Name> = names.keys().collect();
        owners
            .iter()
            .enumerate()
            .map(|(i, owner)| {
                let next = owners[(i + 1) % owners.len()].clone();
                let types = names[*owner]
                    .iter()
                    .copied()
                    .chain([RecordType::NSEC, RecordType::RRSIG]);
                let nsec = NSEC::new(next, types);
                Record::from_rdata(
                    (*owner).clone(),
                    ttl,
                    RData::DNSSEC(DNSSECRData::NSEC(nsec)),
                )
            })
            .collect()
    }

    fn nsec3_chain(
        &mut self,
        data: &[Record],
        cuts: &[Name],
        ttl: u32,
        iterations: u16,
        salt: &[u8],
        opt_out: bool,
    ) -> Result<Vec<Record>, DnssecError> {
        let mut names = self.authoritative(data, cuts);
        if opt_out {
            // Unsigned delegations get no NSEC3 (RFC 5155 section 7.1).
            names.retain(|n, types| !cuts.contains(n) || types.contains(&RecordType::DS));
        }
        // Empty non-terminals get an NSEC3 with an empty type map.
        let apex_labels = self.apex.iter().count();
        for name in names.keys().cloned().collect::<Vec<_>>() {
            for k in apex_labels + 1..name.iter().count() {
                names.entry(name.trim_to(k)).or_default();
            }
        }
        let mut hashed = BTreeMap::new();
        for (name, types) in &names {
            let h = Nsec3HashAlgorithm::SHA1
                .hash(salt, name, iterations)
                .map_err(|e| DnssecError::Signing(e.to_string()))?;
            hashed.insert(h.as_ref().to_vec(), (name.clone(), types.clone()));
        }
        let hashes: Vec<Vec<u8>> = hashed.keys().cloned().collect();
        let mut out = Vec::new();
        for (i, h) in hashes.iter().enumerate() {
            let (name, types) = &hashed[h];
            let mut types: Vec<RecordType> = types.iter().copied().collect();
            if !types.is_empty() && (!cuts.contains(name) || types.contains(&RecordType::DS)) {
                types.push(RecordType::RRSIG);
            }
            let next = hashes[(i + 1) % hashes.len()].clone();
            let nsec3 = NSEC3::new(
                Nsec3HashAlgorithm::SHA1,
                opt_out,
                iterations,
                salt.to_vec(),
                next,
                types,
            );
            out.push(Record::from_rdata(
                self.nsec3_owner(h),
                ttl,
                RData::DNSSEC(DNSSECRData::NSEC3(nsec3)),
            ));
            self.nsec3_owners.insert(h.clone(), name.clone());
        }
        Ok(out)
    }

    fn sign_rrset(&self, records: &[&Record], key: &Key) -> Result<Record, DnssecError> {
        let first = records[0];
        let input = SigInput {
            type_covered: first.record_type(),
            algorithm: key.dnskey.algorithm(),
            num_labels: first.name.num_labels(),
            original_ttl: first.ttl,
            sig_expiration: SerialNumber::new(self.options.expiration),
            sig_inception: SerialNumber::new(self.options.inception),
            key_tag: key.tag,
            signer_name: self.apex.clone(),
        };
        let tbs = TBS::from_input(&first.name, DNSClass::IN, &input, records.iter().copied())
            .map_err(|e| DnssecError::Signing(e.to_string()))?;
        let sig = key
            .signing
            .sign(&tbs)
            .map_err(|e| DnssecError::Signing(e.to_string()))?;
        let rrsig = RRSIG::from_sig(input, sig);
        Ok(Record::from_rdata(
            first.name.clone(),
            first.ttl,
            RData::DNSSEC(DNSSECRData::RRSIG(rrsig)),
        ))
    }
}

/// A key from PKCS#8 DER, or a fresh one (ECDSA and Ed25519 only).
fn make_key(algorithm: Algorithm, ksk: bool, der: Option<&[u8]>) -> Result<Key, DnssecError> {
    let err = |e: hickory_proto::dnssec::DnsSecError| DnssecError::Signing(e.to_string());
    let signing: Arc<dyn SigningKey> = match (algorithm, der) {
        (Algorithm::RSASHA256 | Algorithm::RSASHA512, Some(der)) => Arc::new(
            RsaSigningKey::from_pkcs8(&PrivatePkcs8KeyDer::from(der), algorithm).map_err(err)?,
        ),
        (Algorithm::ECDSAP256SHA256 | Algorithm::ECDSAP384SHA384, Some(der)) => Arc::new(
            EcdsaSigningKey::from_pkcs8(&PrivatePkcs8KeyDer::from(der), algorithm).map_err(err)?,
        ),
        (Algorithm::ED25519, Some(der)) => {
            Arc::new(Ed25519SigningKey::from_pkcs8(&PrivatePkcs8KeyDer::from(der)).map_err(err)?)
        }
        (Algorithm::ECDSAP256SHA256 | Algorithm::ECDSAP384SHA384, None) => {
            let pkcs8 = EcdsaSigningKey::generate_pkcs8(algorithm).map_err(err)?;
            Arc::new(EcdsaSigningKey::from_pkcs8(&pkcs8, algorithm).map_err(err)?)
        }
        (Algorithm::ED25519, None) => {
            let pkcs8 = Ed25519SigningKey::generate_pkcs8().map_err(err)?;
            Arc::new(Ed25519SigningKey::from_pkcs8(&pkcs8).map_err(err)?)
        }
        (other, _) => {
            return Err(DnssecError::Signing(format!(
                "no {other} key (ring generates only ECDSA and Ed25519)"
            )))
        }
    };
    key_from(signing, ksk)
}

fn key_from(signing: Arc<dyn SigningKey>, ksk: bool) -> Result<Key, DnssecError> {
    let err = |e: hickory_proto::dnssec::DnsSecError| DnssecError::Signing(e.to_string());
    let public = signing.to_public_key().map_err(err)?;
    let dnskey = DNSKEY::new(true, ksk, false, public);
    let tag = dnskey
        .calculate_key_tag()
        .map_err(|e| DnssecError::Signing(e.to_string()))?;
    Ok(Key {
        signing,
        dnskey,
        tag,
    })
}

fn covered(r: &Record) -> Option<RecordType> {
    match &r.data {
        RData::DNSSEC(DNSSECRData::RRSIG(s)) => Some(s.input().type_covered),
        _ => None,
    }
}

fn group(data: &[Record]) -> BTreeMap<(Name, RecordType), Vec<&Record>> {
    let mut sets: BTreeMap<(Name, RecordType), Vec<&Record>> = BTreeMap::new();
    for r in data {
        sets.entry((r.name.clone(), r.record_type()))
            .or_default()
            .push(r);
    }
    sets
}
