//! TSIG (RFC 8945) keys and the signing of multi-message transfers.
//!
//! Key files use BIND's syntax, so the file `tsig-keygen` writes serves BIND, NSD (after
//! copying the secret), Unbound and dnsward alike:
//!
//! ```text
//! key "xfr-key" {
//!     algorithm hmac-sha256;
//!     secret "base64…";
//! };
//! ```
//!
//! Signing and checking of one message are hickory's (`TSigner`, `TSigVerifier`,
//! `TSigResponseContext`). Written here: the MAC of the second and later messages of a
//! transfer, which RFC 8945 5.3.1 computes over the previous MAC, the message and the timers
//! only; hickory's response signer always adds the full TSIG variables (first-message form).

use std::path::Path;

use hickory_proto::rr::rdata::tsig::{make_tsig_record, TsigAlgorithm, TSIG};
use hickory_proto::rr::{Name, Record, TSigner};
use hickory_proto::serialize::binary::BinEncoder;

/// Allowed clock difference between the signer and us, in seconds (RFC 8945 recommends 300).
pub const FUDGE: u16 = 300;

#[derive(Debug, thiserror::Error)]
pub enum TsigError {
    #[error("cannot read TSIG key file {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("TSIG key file {path}: {why}")]
    Syntax { path: String, why: String },
    #[error("TSIG: {0}")]
    Crypto(String),
}

/// A shared secret with its name, as configured.
#[derive(Clone)]
pub struct TsigKey {
    pub signer: TSigner,
}

impl std::fmt::Debug for TsigKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the secret.
        write!(f, "TsigKey({})", self.signer.signer_name())
    }
}

impl TsigKey {
    pub fn load(path: &Path) -> Result<TsigKey, TsigError> {
        let text = std::fs::read_to_string(path).map_err(|source| TsigError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Self::parse(&text).map_err(|why| TsigError::Syntax {
            path: path.display().to_string(),
            why,
        })
    }

    /// Parses `key "NAME" { algorithm hmac-sha256; secret "BASE64"; };`.
    pub fn parse(text: &str) -> Result<TsigKey, String> {
        let code: String = text
            .lines()
            .map(|l| {
                let l = l.split("//").next().unwrap_or("");
                l.split('#').next().unwrap_or("")
            })
            .collect::<Vec<_>>()
            .join(" ");
        let mut toks = tokens(&code).into_iter();
        if toks.next().as_deref() != Some("key") {
            return Err("expected `key \"NAME\" { algorithm hmac-sha256; secret \"…\"; };`".into());
        }
        let name = toks
            .next()
            .map(|t| t.trim_matches('"').to_string())
            .filter(|n| !n.is_empty())
            .ok_or("the key has no name")?;
        if toks.next().as_deref() != Some("{") {
            return Err("expected `{` after the key name".into());
        }
        let (mut algorithm, mut secret) = (None, None);
        loop {
            match toks.next().as_deref() {
                Some("algorithm") => algorithm = toks.next(),
                Some("secret") => secret = toks.next().map(|s| s.trim_matches('"').to_string()),
                Some("}") => break,
                Some(";") => continue,
                Some(other) => return Err(format!("unknown statement {other:?} in the key")),
                None => return Err("missing `}`".into()),
            }
            if toks.next().as_deref() != Some(";") {
                return Err("expected `;` after a statement".into());
            }
        }
        match algorithm.as_deref() {
            Some("hmac-sha256") => {}
            Some(a) => {
                return Err(format!(
                    "algorithm {a:?} is not supported (use hmac-sha256)"
                ))
            }
            None => return Err("the key has no algorithm".into()),
        }
        let secret = secret.ok_or("the key has no secret")?;
        let key = data_encoding::BASE64
            .decode(secret.as_bytes())
            .map_err(|e| format!("the secret is not base64: {e}"))?;
        if key.len() < 16 {
            return Err("the secret is shorter than 16 bytes".into());
        }
        let name = Name::from_ascii(&name).map_err(|e| format!("bad key name {name:?}: {e}"))?;
        let signer = TSigner::new(key, TsigAlgorithm::HmacSha256, name.to_lowercase(), FUDGE)
            .map_err(|e| e.to_string())?;
        Ok(TsigKey { signer })
    }
}

/// Splits on white space, keeping `{`, `}` and `;` as tokens and quoted strings whole.
fn tokens(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    for c in s.chars() {
        match c {
            '"' => {
                cur.push(c);
                quoted = !quoted;
            }
            _ if quoted => cur.push(c),
            '{' | '}' | ';' => {
                if !cur.is_empty() {
                    out.push(std::mem::take(&mut cur));
                }
                out.push(c.to_string());
            }
            c if c.is_whitespace() => {
                if !cur.is_empty() {
                    out.push(std::mem::take(&mut cur));
                }
            }
            _ => cur.push(c),
        }
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

/// Signs the second and later messages of a transfer (RFC 8945 5.3.1): the MAC covers the
/// previous MAC, the message as sent without the TSIG, and the timers. Returns the record to
/// append and the new MAC (the next message's `previous_mac`).
pub fn sign_subsequent(
    signer: &TSigner,
    previous_mac: &[u8],
    unsigned_message: &[u8],
    id: u16,
    now: u64,
) -> Result<(Box<Record<TSIG>>, Vec<u8>), TsigError> {
    let mut tbs = Vec::with_capacity(previous_mac.len() + unsigned_message.len() + 16);
    let mut enc = BinEncoder::new(&mut tbs);
    let emit = |enc: &mut BinEncoder<'_>| -> Result<(), hickory_proto::ProtoError> {
        enc.emit_u16(previous_mac.len() as u16)?;
        enc.emit_vec(previous_mac)?;
        enc.emit_vec(unsigned_message)?;
        enc.emit_u16((now >> 32) as u16)?;
        enc.emit_u32(now as u32)?;
        enc.emit_u16(signer.fudge())?;
        Ok(())
    };
    emit(&mut enc).map_err(|e| TsigError::Crypto(e.to_string()))?;
    let mac = signer
        .sign(&tbs)
        .map_err(|e| TsigError::Crypto(e.to_string()))?;
    let rdata = TSIG::new(
        signer.algorithm().clone(),
        now,
        signer.fudge(),
        mac.clone(),
        id,
        None,
        Vec::new(),
    );
    Ok((
        Box::new(make_tsig_record(signer.signer_name().clone(), rdata)),
        mac,
    ))
}

pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bind_key_file() {
        let k = TsigKey::parse(
            "key \"xfr-key\" {\n\talgorithm hmac-sha256;\n\tsecret \"MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=\";\n};\n",
        )
        .unwrap();
        assert_eq!(k.signer.signer_name().to_ascii(), "xfr-key.");
        assert_eq!(k.signer.key(), b"0123456789abcdef0123456789abcdef");
    }

    #[test]
    fn bad_key_files_say_why() {
        for (text, why) in [
            ("", "expected `key"),
            (
                "key \"k\" { algorithm hmac-md5; secret \"MDEyMzQ1Njc4OWFiY2RlZg==\"; };",
                "not supported",
            ),
            (
                "key \"k\" { algorithm hmac-sha256; secret \"!!\"; };",
                "not base64",
            ),
            ("key \"k\" { algorithm hmac-sha256; };", "no secret"),
            (
                "key \"k\" { algorithm hmac-sha256; secret \"MDEy\"; };",
                "shorter",
            ),
        ] {
            let e = TsigKey::parse(text).err().unwrap_or_default();
            assert!(e.contains(why), "{text:?}: {e}");
        }
    }
}
