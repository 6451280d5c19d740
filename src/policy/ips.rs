//! The IP/CIDR matcher.
//!
//! Hand-written instead of `prefix-trie` / `ip_network_table`: those store one
//! value per prefix, while we need every (list, line, action) that lists the same
//! prefix (for `explain`) and "allow anywhere beats the longest block". IP lists
//! are small next to name lists, and the layout below is compact and simple:
//! one sorted array of fixed-size entries per prefix length present (at most 33
//! for IPv4, 129 for IPv6), longest first. A lookup masks the address once per
//! present length and binary-searches that array.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::{IpNet, Ipv4Net, Ipv6Net};

use super::names::Act;

/// One parsed IP rule (build-time form).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IpEntry {
    pub net: IpNet,
    pub line: u32,
    pub list: u16,
    pub act: Act,
}

#[derive(Clone, Copy, Debug)]
struct E4 {
    net: u32,
    line: u32,
    list: u16,
    act: Act,
}

#[derive(Clone, Copy, Debug)]
struct E6 {
    net: u128,
    line: u32,
    list: u16,
    act: Act,
}

struct Group<E> {
    len: u8,
    entries: Box<[E]>,
}

pub struct IpTable {
    v4: Vec<Group<E4>>,
    v6: Vec<Group<E6>>,
    count: usize,
}

fn mask4(len: u8) -> u32 {
    if len == 0 {
        0
    } else {
        u32::MAX << (32 - len as u32)
    }
}

fn mask6(len: u8) -> u128 {
    if len == 0 {
        0
    } else {
        u128::MAX << (128 - len as u32)
    }
}

impl IpTable {
    pub fn empty() -> Self {
        Self::build(Vec::new())
    }

    pub fn build(mut v: Vec<IpEntry>) -> Self {
        let mut v4: Vec<Vec<E4>> = (0..=32).map(|_| Vec::new()).collect();
        let mut v6: Vec<Vec<E6>> = (0..=128).map(|_| Vec::new()).collect();
        for e in v.drain(..) {
            match e.net.trunc() {
                IpNet::V4(n) => v4[n.prefix_len() as usize].push(E4 {
                    net: u32::from(n.network()),
                    line: e.line,
                    list: e.list,
                    act: e.act,
                }),
                IpNet::V6(n) => v6[n.prefix_len() as usize].push(E6 {
                    net: u128::from(n.network()),
                    line: e.line,
                    list: e.list,
                    act: e.act,
                }),
            }
        }
        let mut count = 0;
        let mut g4 = Vec::new();
        for (len, mut es) in v4.into_iter().enumerate().rev() {
            if es.is_empty() {
                continue;
            }
            es.sort_unstable_by_key(|e| (e.net, e.list, e.line));
            es.dedup_by(|b, a| a.net == b.net && a.list == b.list && a.act == b.act);
            count += es.len();
            g4.push(Group {
                len: len as u8,
                entries: es.into_boxed_slice(),
            });
        }
        let mut g6 = Vec::new();
        for (len, mut es) in v6.into_iter().enumerate().rev() {
            if es.is_empty() {
                continue;
            }
            es.sort_unstable_by_key(|e| (e.net, e.list, e.line));
            es.dedup_by(|b, a| a.net == b.net && a.list == b.list && a.act == b.act);
            count += es.len();
            g6.push(Group {
                len: len as u8,
                entries: es.into_boxed_slice(),
            });
        }
        IpTable {
            v4: g4,
            v6: g6,
            count,
        }
    }

    pub fn len(&self) -> usize {
        self.count
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Calls `f` for every entry containing `ip`, longest prefix first (within
    /// one prefix: list order, then line). `f` returns false to stop.
    pub fn walk(&self, ip: IpAddr, mut f: impl FnMut(IpEntry) -> bool) {
        // An IPv4-mapped IPv6 address (::ffff:a.b.c.d) is checked as IPv4 too.
        let (v4, v6) = match ip {
            IpAddr::V4(a) => (Some(a), None),
            IpAddr::V6(a) => (a.to_ipv4_mapped(), Some(a)),
        };
        if let Some(a) = v6 {
            let x = u128::from(a);
            for g in &self.v6 {
                let key = x & mask6(g.len);
                let lo = g.entries.partition_point(|e| e.net < key);
                for e in g.entries[lo..].iter().take_while(|e| e.net == key) {
                    let net =
                        IpNet::V6(Ipv6Net::new(Ipv6Addr::from(e.net), g.len).expect("valid len"));
                    if !f(IpEntry {
                        net,
                        line: e.line,
                        list: e.list,
                        act: e.act,
                    }) {
                        return;
                    }
                }
            }
        }
        if let Some(a) = v4 {
            let x = u32::from(a);
            for g in &self.v4 {
                let key = x & mask4(g.len);
                let lo = g.entries.partition_point(|e| e.net < key);
                for e in g.entries[lo..].iter().take_while(|e| e.net == key) {
                    let net =
                        IpNet::V4(Ipv4Net::new(Ipv4Addr::from(e.net), g.len).expect("valid len"));
                    if !f(IpEntry {
                        net,
                        line: e.line,
                        list: e.list,
                        act: e.act,
                    }) {
                        return;
                    }
                }
            }
        }
    }

    /// Every entry (for carrying a list over from a previous snapshot).
    pub fn all(&self) -> impl Iterator<Item = IpEntry> + '_ {
        let a = self.v4.iter().flat_map(|g| {
            g.entries.iter().map(move |e| IpEntry {
                net: IpNet::V4(Ipv4Net::new(Ipv4Addr::from(e.net), g.len).expect("len")),
                line: e.line,
                list: e.list,
                act: e.act,
            })
        });
        let b = self.v6.iter().flat_map(|g| {
            g.entries.iter().map(move |e| IpEntry {
                net: IpNet::V6(Ipv6Net::new(Ipv6Addr::from(e.net), g.len).expect("len")),
                line: e.line,
                list: e.list,
                act: e.act,
            })
        });
        a.chain(b)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ent(s: &str, line: u32, act: Act) -> IpEntry {
        IpEntry {
            net: s.parse().unwrap(),
            line,
            list: 0,
            act,
        }
    }

    fn lines(t: &IpTable, ip: &str) -> Vec<u32> {
        let mut v = vec![];
        t.walk(ip.parse().unwrap(), |e| {
            v.push(e.line);
            true
        });
        v
    }

    #[test]
    fn longest_prefix_first_v4_v6() {
        let t = IpTable::build(vec![
            ent("10.0.0.0/8", 1, Act::Block),
            ent("10.1.0.0/16", 2, Act::Block),
            ent("10.1.2.3/32", 3, Act::Block),
            ent("2001:db8::/32", 4, Act::Block),
            ent("2001:db8:1::/48", 5, Act::Block),
            ent("0.0.0.0/0", 6, Act::Block),
        ]);
        assert_eq!(t.len(), 6);
        assert_eq!(lines(&t, "10.1.2.3"), vec![3, 2, 1, 6]);
        assert_eq!(lines(&t, "10.1.9.9"), vec![2, 1, 6]);
        assert_eq!(lines(&t, "11.0.0.1"), vec![6]);
        assert_eq!(lines(&t, "2001:db8:1::7"), vec![5, 4]);
        assert_eq!(lines(&t, "2001:db9::1"), Vec::<u32>::new());
        assert_eq!(lines(&t, "::ffff:10.1.2.3"), vec![3, 2, 1, 6]);
    }

    #[test]
    fn host_bits_are_masked() {
        let t = IpTable::build(vec![ent("192.0.2.77/24", 1, Act::Block)]);
        assert_eq!(lines(&t, "192.0.2.1"), vec![1]);
        let all: Vec<_> = t.all().collect();
        assert_eq!(all[0].net.to_string(), "192.0.2.0/24");
    }
}
