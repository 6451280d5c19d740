//! What is recorded about the client (`client_ip`: full, truncated or a keyed hash), and the
//! hash key's file.

use std::hash::Hasher;
use std::net::IpAddr;
use std::path::Path;

use super::event::ClientId;

/// The `client_ip` mode with its key, applied in `emit`.
#[derive(Clone, Debug)]
pub(crate) enum Privacy {
    Full,
    Truncate,
    Hash { k0: u64, k1: u64 },
}

impl Privacy {
    pub(crate) fn apply(&self, client: std::net::SocketAddr) -> ClientId {
        // An IPv4 client on a dual-stack socket shows up as ::ffff:a.b.c.d; without this a
        // /56 "truncation" of it would keep the whole IPv4 address.
        let ip = client.ip().to_canonical();
        match self {
            Privacy::Full => ClientId::Addr {
                ip,
                port: Some(client.port()),
            },
            Privacy::Truncate => ClientId::Addr {
                ip: truncate_ip(ip),
                port: None,
            },
            Privacy::Hash { k0, k1 } => {
                let mut h = siphasher::sip::SipHasher24::new_with_keys(*k0, *k1);
                match ip {
                    IpAddr::V4(a) => h.write(&a.octets()),
                    IpAddr::V6(a) => h.write(&a.octets()),
                }
                ClientId::Token(h.finish())
            }
        }
    }
}

/// IPv4 to its /24, IPv6 to its /56.
pub fn truncate_ip(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(a) => IpAddr::V4(ipnet::Ipv4Net::new_assert(a, 24).network()),
        IpAddr::V6(a) => IpAddr::V6(ipnet::Ipv6Net::new_assert(a, 56).network()),
    }
}

/// Why the client hash key could not be read or created.
#[derive(Debug, thiserror::Error)]
pub enum HashKeyError {
    #[error("no random source: {0}")]
    Random(getrandom::Error),
    #[error("cannot create {}: {source}", dir.display())]
    CreateDir {
        dir: std::path::PathBuf,
        source: std::io::Error,
    },
    #[error("cannot create: {0}")]
    Create(#[source] std::io::Error),
    #[error("cannot read: {0}")]
    Read(#[source] std::io::Error),
    #[error("expected 32 hexadecimal digits (a 128-bit key)")]
    Format,
}

/// Read the hash key (32 hex digits = 128 bits), or create it with a random key when it does
/// not exist yet. `explicit`: the operator named the file, so any failure is a config error.
pub(super) fn load_or_create_hash_key(path: &Path) -> Result<(u64, u64), HashKeyError> {
    match std::fs::read_to_string(path) {
        Ok(s) => parse_hash_key(s.trim()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let mut buf = [0u8; 16];
            getrandom::fill(&mut buf).map_err(HashKeyError::Random)?;
            let hex: String = buf.iter().map(|b| format!("{b:02x}")).collect();
            if let Some(dir) = path.parent() {
                if !dir.as_os_str().is_empty() {
                    std::fs::create_dir_all(dir).map_err(|source| HashKeyError::CreateDir {
                        dir: dir.to_path_buf(),
                        source,
                    })?;
                }
            }
            write_private_file(path, format!("{hex}\n").as_bytes())
                .map_err(HashKeyError::Create)?;
            tracing::info!(path = %path.display(), "querylog: generated a new client hash key");
            parse_hash_key(&hex)
        }
        Err(e) => Err(HashKeyError::Read(e)),
    }
}

fn write_private_file(path: &Path, data: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let mut o = std::fs::OpenOptions::new();
    o.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        o.mode(0o600);
    }
    let mut f = o.open(path)?;
    f.write_all(data)?;
    f.sync_all()
}

fn parse_hash_key(s: &str) -> Result<(u64, u64), HashKeyError> {
    if s.len() != 32 || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(HashKeyError::Format);
    }
    let k0 = u64::from_str_radix(&s[..16], 16).map_err(|_| HashKeyError::Format)?;
    let k1 = u64::from_str_radix(&s[16..], 16).map_err(|_| HashKeyError::Format)?;
    Ok((k0, k1))
}
