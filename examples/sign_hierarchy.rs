//! Signs the benchmark's generated hierarchy with dnsward's own test signer (ECDSA P-256,
//! NSEC, a KSK and a ZSK per zone), bottom up: every second-level zone, their DS records into
//! the TLD zones, the TLDs, their DS records into the root, the root. In-process and in
//! parallel because ldns-keygen + ldns-signzone, two processes per zone, took minutes for
//! 12,500 zones on 2 CPUs; this takes seconds.
//!
//!   cargo run --release --example sign_hierarchy -- HIERARCHY OUT
//!
//! OUT gets zones/ (the same file names, signed) and trust-anchor.ds (the root's DS).

use std::fs;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use dnsward::dnssec::signed::{SignOptions, SignedZone};
use hickory_proto::dnssec::rdata::DNSSECRData;
use hickory_proto::rr::{RData, Record};
use rayon::prelude::*;

type Failure = Box<dyn std::error::Error + Send + Sync>;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [hier, out] = args.as_slice() else {
        eprintln!("usage: sign_hierarchy HIERARCHY OUT");
        std::process::exit(2);
    };
    if let Err(e) = run(Path::new(hier), Path::new(out)) {
        eprintln!("sign_hierarchy: {e}");
        std::process::exit(1);
    }
}

fn run(hier: &Path, out: &Path) -> Result<(), Failure> {
    let now = SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs() as u32;
    let options = SignOptions::new(now);
    let (zones_in, zones_out) = (hier.join("zones"), out.join("zones"));
    if out.exists() {
        fs::remove_dir_all(out)?;
    }
    fs::create_dir_all(zones_out.join("sld"))?;

    // 1. second-level zones (the bulk), then root-servers.net, which also lives under a TLD
    let mut slds: Vec<PathBuf> = fs::read_dir(zones_in.join("sld"))?
        .map(|e| e.map(|e| e.path()))
        .collect::<Result<_, _>>()?;
    slds.sort();
    let mut ds_lines: Vec<(String, String)> = slds
        .par_iter()
        .map(|path| {
            let zone = zone_name(path);
            let ds = sign_file(
                path,
                &zones_out.join("sld").join(file_name(path)),
                &zone,
                &options,
            )?;
            Ok((zone, ds))
        })
        .collect::<Result<_, Failure>>()?;
    let infra = zones_in.join("root-servers.net.zone");
    let ds = sign_file(
        &infra,
        &zones_out.join("root-servers.net.zone"),
        "root-servers.net.",
        &options,
    )?;
    ds_lines.push(("root-servers.net.".into(), ds));
    eprintln!("signed {} second-level zones", ds_lines.len());

    // 2. each TLD with its children's DS records
    let tlds: Vec<String> = fs::read_dir(&zones_in)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file() && !matches!(zone_name(p).as_str(), "root." | "root-servers.net."))
        .map(|p| zone_name(&p))
        .collect();
    let mut root_ds = Vec::new();
    for tld in &tlds {
        let file = format!("{}zone", tld);
        let mut text = fs::read_to_string(zones_in.join(&file))?;
        for (child, ds) in &ds_lines {
            if parent_of(child) == tld.as_str() {
                text.push_str(ds);
                text.push('\n');
            }
        }
        root_ds.push(sign_text(&text, &zones_out.join(&file), tld, &options)?);
    }

    // 3. the root with the TLDs' DS records; its DS is the trust anchor
    let mut text = fs::read_to_string(zones_in.join("root.zone"))?;
    for ds in &root_ds {
        text.push_str(ds);
        text.push('\n');
    }
    let anchor = sign_text(&text, &zones_out.join("root.zone"), ".", &options)?;
    fs::write(out.join("trust-anchor.ds"), format!("{anchor}\n"))?;
    eprintln!(
        "signed {} TLDs and the root; trust anchor: {anchor}",
        tlds.len()
    );
    Ok(())
}

fn sign_file(from: &Path, to: &Path, zone: &str, options: &SignOptions) -> Result<String, Failure> {
    sign_text(&fs::read_to_string(from)?, to, zone, options)
}

/// Signs one zone, writes it in zone-file form and returns its DS line for the parent.
fn sign_text(text: &str, to: &Path, zone: &str, options: &SignOptions) -> Result<String, Failure> {
    let signed =
        SignedZone::sign(zone, text, options.clone()).map_err(|e| format!("{zone}: {e}"))?;
    let mut out = String::with_capacity(text.len() * 4);
    for record in &signed.records {
        out.push_str(&presentation(record));
        out.push('\n');
    }
    fs::write(to, out)?;
    Ok(signed.ds_line())
}

/// A record in zone-file form that NSD reads: hickory prints RRSIG times as seconds since
/// the epoch, NSD wants YYYYMMDDHHmmSS (RFC 4034 section 3.2 allows both).
fn presentation(record: &Record) -> String {
    let RData::DNSSEC(DNSSECRData::RRSIG(rrsig)) = &record.data else {
        return record.to_string();
    };
    let input = rrsig.input();
    format!(
        "{} {} IN RRSIG {} {} {} {} {} {} {} {} {}",
        record.name,
        record.ttl,
        input.type_covered,
        u8::from(input.algorithm),
        input.num_labels,
        input.original_ttl,
        timestamp(input.sig_expiration.get()),
        timestamp(input.sig_inception.get()),
        input.key_tag,
        input.signer_name,
        data_encoding::BASE64.encode(rrsig.sig())
    )
}

fn timestamp(seconds: u32) -> String {
    let t = time::OffsetDateTime::from_unix_timestamp(i64::from(seconds)).expect("u32 seconds");
    format!(
        "{:04}{:02}{:02}{:02}{:02}{:02}",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

/// `sld/example.com.zone` -> `example.com.`; `root.zone` -> `root.`
fn zone_name(path: &Path) -> String {
    let stem = file_name(path);
    format!("{}.", stem.trim_end_matches(".zone"))
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|f| f.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// `example.com.` -> `com.`
fn parent_of(zone: &str) -> &str {
    zone.split_once('.').map_or(".", |(_, parent)| parent)
}
