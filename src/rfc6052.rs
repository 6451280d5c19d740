//! IPv4-embedded IPv6 addresses (RFC 6052): the prefix of `[resolver] dns64_prefix`, its
//! checks, and putting an IPv4 address into it and taking it out. The DNS64 answer path is
//! `pipeline::dns64`; this module knows nothing of DNS, so that the config can check the key.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// The prefix lengths RFC 6052 section 2.2 defines.
pub const PREFIX_LENGTHS: [u8; 6] = [32, 40, 48, 56, 64, 96];
/// `dns64_exclude` when the key is absent: IPv4-mapped addresses (RFC 6147 5.1.4).
pub const DEFAULT_EXCLUDE: &str = "::ffff:0:0/96";

/// An RFC 6052 prefix: the address with every bit past `len` zero.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Prefix {
    bytes: [u8; 16],
    len: u8,
}

/// Why a text is not an RFC 6052 prefix (the caller names the key).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PrefixError {
    #[error("{0:?} has no prefix length (e.g. \"64:ff9b::/96\")")]
    NoLength(String),
    #[error("{0:?} is not an IPv6 prefix")]
    NotAnAddress(String),
    #[error("{0:?} is an IPv4 prefix; DNS64 needs an IPv6 one")]
    Ipv4(String),
    #[error("{0:?}: the prefix length is not a number")]
    LengthNotANumber(String),
    #[error("{0:?}: the prefix length must be one of RFC 6052's /32, /40, /48, /56, /64, /96")]
    Length(String),
    #[error("{0:?}: bits are set beyond /{1}")]
    HostBits(String, u8),
}

impl Prefix {
    /// `"64:ff9b::/96"`, or what is wrong with it.
    pub fn parse(text: &str) -> Result<Prefix, PrefixError> {
        let owned = || text.to_string();
        let Some((addr, len)) = text.trim().split_once('/') else {
            return Err(PrefixError::NoLength(owned()));
        };
        let addr: IpAddr = addr
            .parse()
            .map_err(|_| PrefixError::NotAnAddress(owned()))?;
        let IpAddr::V6(addr) = addr else {
            return Err(PrefixError::Ipv4(owned()));
        };
        let len: u8 = len
            .parse()
            .map_err(|_| PrefixError::LengthNotANumber(owned()))?;
        if !PREFIX_LENGTHS.contains(&len) {
            return Err(PrefixError::Length(owned()));
        }
        let bytes = addr.octets();
        if bytes[len as usize / 8..].iter().any(|&b| b != 0) {
            return Err(PrefixError::HostBits(owned(), len));
        }
        Ok(Prefix { bytes, len })
    }

    pub fn prefix_len(&self) -> u8 {
        self.len
    }

    /// The bytes of the IPv6 address that hold the IPv4 address, in order: right after the
    /// prefix, skipping bits 64..71 (the "u" octet, always zero).
    fn positions(&self) -> impl Iterator<Item = usize> {
        (self.len as usize / 8..16).filter(|&i| i != 8).take(4)
    }

    /// The IPv4-embedded IPv6 address (RFC 6052 section 2.2; suffix and u octet zero).
    pub fn embed(&self, v4: Ipv4Addr) -> Ipv6Addr {
        let mut out = self.bytes;
        for (pos, b) in self.positions().zip(v4.octets()) {
            out[pos] = b;
        }
        Ipv6Addr::from(out)
    }

    /// The IPv4 address embedded in `v6`, when `v6` lies in the prefix and its u octet is zero
    /// (the suffix is ignored, as RFC 6052 section 2.2 asks).
    pub fn extract(&self, v6: Ipv6Addr) -> Option<Ipv4Addr> {
        let bytes = v6.octets();
        let p = self.len as usize / 8;
        if bytes[..p] != self.bytes[..p] || (self.len < 96 && bytes[8] != 0) {
            return None;
        }
        let mut v4 = [0u8; 4];
        for (slot, pos) in v4.iter_mut().zip(self.positions()) {
            *slot = bytes[pos];
        }
        Some(Ipv4Addr::from(v4))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Prefix {
        Prefix::parse(s).unwrap()
    }

    /// RFC 6052 section 2.4's table: 192.0.2.33 under each prefix length.
    #[test]
    fn rfc6052_examples() {
        let v4: Ipv4Addr = "192.0.2.33".parse().unwrap();
        let cases = [
            ("2001:db8::/32", "2001:db8:c000:221::"),
            ("2001:db8:100::/40", "2001:db8:1c0:2:21::"),
            ("2001:db8:122::/48", "2001:db8:122:c000:2:2100::"),
            ("2001:db8:122:300::/56", "2001:db8:122:3c0:0:221::"),
            ("2001:db8:122:344::/64", "2001:db8:122:344:c0:2:2100:0"),
            ("2001:db8:122:344::/96", "2001:db8:122:344::192.0.2.33"),
            ("64:ff9b::/96", "64:ff9b::192.0.2.33"),
        ];
        for (prefix, want) in cases {
            let prefix = p(prefix);
            let want: Ipv6Addr = want.parse().unwrap();
            assert_eq!(prefix.embed(v4), want, "{prefix:?}");
            assert_eq!(prefix.extract(want), Some(v4), "{prefix:?}");
        }
    }

    #[test]
    fn extract_needs_the_prefix_and_a_zero_u_octet() {
        let p64 = p("2001:db8:122:344::/64");
        assert_eq!(
            p64.extract("2001:db8:122:345:c0:2:2100:0".parse().unwrap()),
            None
        );
        assert_eq!(
            p64.extract("2001:db8:122:344:1c0:2:2100:0".parse().unwrap()),
            None
        );
        // The suffix is ignored.
        assert_eq!(
            p64.extract("2001:db8:122:344:c0:2:2100:ff".parse().unwrap()),
            Some("192.0.2.33".parse().unwrap())
        );
        assert_eq!(
            p("64:ff9b::/96").extract("64:ff9a::1".parse().unwrap()),
            None
        );
    }

    #[test]
    fn bad_prefixes_say_why() {
        for (text, why) in [
            ("64:ff9b::/95", "prefix length must be one of"),
            ("64:ff9b::/128", "prefix length must be one of"),
            ("64:ff9b::1/96", "bits are set beyond /96"),
            ("2001:db8:1::/32", "bits are set beyond /32"),
            ("192.0.2.0/24", "IPv4 prefix"),
            ("64:ff9b::", "no prefix length"),
            ("nonsense/96", "not an IPv6 prefix"),
            ("64:ff9b::/x", "not a number"),
        ] {
            let e = Prefix::parse(text).unwrap_err().to_string();
            assert!(e.contains(why), "{text}: {e}");
        }
        for len in PREFIX_LENGTHS {
            assert_eq!(p(&format!("2001:db8::/{len}")).prefix_len(), len);
        }
    }
}
