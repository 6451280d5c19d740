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
    Syntax {
        path: String,
        #[source]
        why: KeySyntaxError,
    },
    #[error("TSIG: {0}")]
    Encode(#[source] hickory_proto::ProtoError),
    #[error("TSIG: {0}")]
    Crypto(#[source] hickory_proto::dnssec::DnsSecError),
}

/// What is wrong in the text of a key file.
#[derive(Debug, thiserror::Error)]
pub enum KeySyntaxError {
    #[error("expected `key \"NAME\" {{ algorithm hmac-sha256; secret \"…\"; }};`")]
    NotAKey,
    #[error("the key has no name")]
    NoName,
    #[error("expected `{{` after the key name")]
    NoOpeningBrace,
    #[error("unknown statement {0:?} in the key")]
    UnknownStatement(String),
    #[error("missing `}}`")]
    NoClosingBrace,
    #[error("expected `;` after a statement")]
    NoSemicolon,
    #[error("algorithm {0:?} is not supported (use hmac-sha256)")]
    Algorithm(String),
    #[error("the key has no algorithm")]
    NoAlgorithm,
    #[error("the key has no secret")]
    NoSecret,
    #[error("the secret is not base64: {0}")]
    Base64(#[source] data_encoding::DecodeError),
    #[error("the secret is shorter than 16 bytes")]
    ShortSecret,
    #[error("bad key name {name:?}: {source}")]
    Name {
        name: String,
        source: hickory_proto::ProtoError,
    },
    #[error("{0}")]
    Signer(#[source] hickory_proto::dnssec::DnsSecError),
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
    pub fn parse(text: &str) -> Result<TsigKey, KeySyntaxError> {
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
            return Err(KeySyntaxError::NotAKey);
        }
        let name = toks
            .next()
            .map(|t| t.trim_matches('"').to_string())
            .filter(|n| !n.is_empty())
            .ok_or(KeySyntaxError::NoName)?;
        if toks.next().as_deref() != Some("{") {
            return Err(KeySyntaxError::NoOpeningBrace);
        }
        let (mut algorithm, mut secret) = (None, None);
        loop {
            match toks.next().as_deref() {
                Some("algorithm") => algorithm = toks.next(),
                Some("secret") => secret = toks.next().map(|s| s.trim_matches('"').to_string()),
                Some("}") => break,
                Some(";") => continue,
                Some(other) => return Err(KeySyntaxError::UnknownStatement(other.to_string())),
                None => return Err(KeySyntaxError::NoClosingBrace),
            }
            if toks.next().as_deref() != Some(";") {
                return Err(KeySyntaxError::NoSemicolon);
            }
        }
        match algorithm.as_deref() {
            Some("hmac-sha256") => {}
            Some(a) => return Err(KeySyntaxError::Algorithm(a.to_string())),
            None => return Err(KeySyntaxError::NoAlgorithm),
        }
        let secret = secret.ok_or(KeySyntaxError::NoSecret)?;
        let key = data_encoding::BASE64
            .decode(secret.as_bytes())
            .map_err(KeySyntaxError::Base64)?;
        if key.len() < 16 {
            return Err(KeySyntaxError::ShortSecret);
        }
        let name =
            Name::from_ascii(&name).map_err(|source| KeySyntaxError::Name { name, source })?;
        let signer = TSigner::new(key, TsigAlgorithm::HmacSha256, name.to_lowercase(), FUDGE)
            .map_err(KeySyntaxError::Signer)?;
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
pub(crate) fn sign_subsequent(
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
    emit(&mut enc).map_err(TsigError::Encode)?;
    let mac = signer.sign(&tbs).map_err(TsigError::Crypto)?;
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
            let e = TsigKey::parse(text)
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default();
            assert!(e.contains(why), "{text:?}: {e}");
        }
    }
}
