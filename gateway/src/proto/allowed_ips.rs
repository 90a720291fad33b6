//! Cryptokey routing (whitepaper §2 "Cryptokey Routing"): a table from IP prefixes to peers,
//! longest prefix wins, IPv4 and IPv6 kept apart. Outgoing packets pick their peer by destination;
//! decrypted packets are accepted only if their source routes back to the peer that sent them.
//!
//! One binary trie per family, nodes in a `Vec` (no per-node allocation), walked bit by bit: at most
//! 32 or 128 steps per lookup, no allocation and no lock. A path-compressed trie is the obvious next
//! step if profiles ever show it.

use std::net::IpAddr;

#[derive(Debug, Clone)]
struct Node<T> {
    child: [u32; 2],
    value: Option<T>,
}

impl<T> Node<T> {
    fn empty() -> Self {
        Self {
            child: [0, 0],
            value: None,
        }
    }
}

#[derive(Debug, Clone)]
struct Trie<T> {
    nodes: Vec<Node<T>>,
    bits: u8,
}

fn bit(addr: u128, i: u8) -> usize {
    ((addr >> (127 - i)) & 1) as usize
}

impl<T: Copy + PartialEq> Trie<T> {
    fn new(bits: u8) -> Self {
        Self {
            nodes: vec![Node::empty()],
            bits,
        }
    }

    fn insert(&mut self, addr: u128, len: u8, value: T) {
        let mut at = 0usize;
        for i in 0..len.min(self.bits) {
            let b = bit(addr, i);
            if self.nodes[at].child[b] == 0 {
                self.nodes.push(Node::empty());
                // Node count is bounded by (prefixes × bits), far below u32::MAX.
                self.nodes[at].child[b] = (self.nodes.len() - 1) as u32;
            }
            at = self.nodes[at].child[b] as usize;
        }
        self.nodes[at].value = Some(value);
    }

    fn lookup(&self, addr: u128) -> Option<T> {
        let mut at = 0usize;
        let mut best = self.nodes[0].value;
        for i in 0..self.bits {
            let next = self.nodes[at].child[bit(addr, i)];
            if next == 0 {
                break;
            }
            at = next as usize;
            best = self.nodes[at].value.or(best);
        }
        best
    }

    fn remove_value(&mut self, value: T) {
        for n in &mut self.nodes {
            if n.value == Some(value) {
                n.value = None;
            }
        }
    }

    fn entries(&self, out: &mut Vec<(u128, u8, T)>) {
        let mut stack = vec![(0usize, 0u128, 0u8)];
        while let Some((at, prefix, depth)) = stack.pop() {
            if let Some(v) = self.nodes[at].value {
                out.push((prefix, depth, v));
            }
            for b in [1usize, 0] {
                let c = self.nodes[at].child[b];
                if c != 0 {
                    stack.push((
                        c as usize,
                        prefix | ((b as u128) << (127 - depth)),
                        depth + 1,
                    ));
                }
            }
        }
    }
}

/// Prefix → peer table for both address families.
#[derive(Debug, Clone)]
pub struct AllowedIps<T> {
    v4: Trie<T>,
    v6: Trie<T>,
}

impl<T: Copy + PartialEq> Default for AllowedIps<T> {
    fn default() -> Self {
        Self::new()
    }
}

fn key(ip: IpAddr) -> u128 {
    match ip {
        IpAddr::V4(a) => u128::from(u32::from(a)) << 96,
        IpAddr::V6(a) => u128::from(a),
    }
}

/// Whether prefix `inner` lies within prefix `outer` (same family, `outer` no longer, equal in
/// `outer`'s bits; host bits are ignored, as by [`AllowedIps::insert`]). A prefix contains itself.
pub fn prefix_contains(outer: (IpAddr, u8), inner: (IpAddr, u8)) -> bool {
    let bits = if outer.0.is_ipv4() { 32 } else { 128 };
    let (olen, ilen) = (outer.1.min(bits), inner.1.min(bits));
    if outer.0.is_ipv4() != inner.0.is_ipv4() || olen > ilen {
        return false;
    }
    let mask = u128::MAX.checked_shl(128 - u32::from(olen)).unwrap_or(0);
    key(outer.0) & mask == key(inner.0) & mask
}

impl<T: Copy + PartialEq> AllowedIps<T> {
    /// An empty table.
    pub fn new() -> Self {
        Self {
            v4: Trie::new(32),
            v6: Trie::new(128),
        }
    }

    /// Routes `ip/len` to `value` (host bits are ignored; a longer `len` is clamped). Re-inserting a
    /// prefix moves it to the new value, as `wg set allowed-ips` does.
    pub fn insert(&mut self, ip: IpAddr, len: u8, value: T) {
        match ip {
            IpAddr::V4(_) => self.v4.insert(key(ip), len, value),
            IpAddr::V6(_) => self.v6.insert(key(ip), len, value),
        }
    }

    /// The value of the longest prefix containing `ip`.
    pub fn lookup(&self, ip: IpAddr) -> Option<T> {
        match ip {
            IpAddr::V4(_) => self.v4.lookup(key(ip)),
            IpAddr::V6(_) => self.v6.lookup(key(ip)),
        }
    }

    /// Removes every prefix routed to `value` (peer removal).
    pub fn remove_value(&mut self, value: T) {
        self.v4.remove_value(value);
        self.v6.remove_value(value);
    }

    /// All `(network, prefix length, value)` entries (routes to install, status output).
    pub fn entries(&self) -> Vec<(IpAddr, u8, T)> {
        let (mut v4, mut v6) = (Vec::new(), Vec::new());
        self.v4.entries(&mut v4);
        self.v6.entries(&mut v6);
        let v4 = v4.into_iter().map(|(k, l, v)| {
            // The top 32 bits hold the IPv4 address.
            let a = std::net::Ipv4Addr::from((k >> 96) as u32);
            (IpAddr::V4(a), l, v)
        });
        let v6 = v6.into_iter().map(|(k, l, v)| (IpAddr::V6(k.into()), l, v));
        v4.chain(v6).collect()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn longest_prefix_wins_v4() {
        let mut t = AllowedIps::new();
        t.insert(ip("10.0.0.0"), 8, 1);
        t.insert(ip("10.1.0.0"), 16, 2);
        t.insert(ip("10.1.2.3"), 32, 3);
        assert_eq!(t.lookup(ip("10.9.9.9")), Some(1));
        assert_eq!(t.lookup(ip("10.1.9.9")), Some(2));
        assert_eq!(t.lookup(ip("10.1.2.3")), Some(3));
        assert_eq!(t.lookup(ip("10.1.2.4")), Some(2));
        assert_eq!(t.lookup(ip("11.0.0.0")), None);
        assert_eq!(
            t.lookup(ip("::ffff:10.1.2.3")),
            None,
            "families are separate"
        );
    }

    #[test]
    fn longest_prefix_wins_v6_and_default_routes() {
        let mut t = AllowedIps::new();
        t.insert(ip("::"), 0, 9);
        t.insert(ip("2001:db8::"), 32, 1);
        t.insert(ip("2001:db8:1::"), 48, 2);
        assert_eq!(t.lookup(ip("2001:db8:1::5")), Some(2));
        assert_eq!(t.lookup(ip("2001:db8:2::5")), Some(1));
        assert_eq!(t.lookup(ip("fe80::1")), Some(9));
        assert_eq!(t.lookup(ip("1.2.3.4")), None);
        t.insert(ip("0.0.0.0"), 0, 7);
        assert_eq!(t.lookup(ip("1.2.3.4")), Some(7));
    }

    #[test]
    fn host_bits_are_ignored_and_reinsert_moves() {
        let mut t = AllowedIps::new();
        t.insert(ip("192.168.20.77"), 24, 1);
        assert_eq!(t.lookup(ip("192.168.20.1")), Some(1));
        t.insert(ip("192.168.20.0"), 24, 2);
        assert_eq!(t.lookup(ip("192.168.20.1")), Some(2));
        assert_eq!(t.entries(), [(ip("192.168.20.0"), 24, 2)]);
        t.remove_value(2);
        assert_eq!(t.lookup(ip("192.168.20.1")), None);
        assert!(t.entries().is_empty());
    }

    #[test]
    fn prefix_containment() {
        let p = |s: &str, l: u8| (ip(s), l);
        assert!(
            prefix_contains(p("10.0.4.0", 24), p("10.0.4.77", 24)),
            "itself"
        );
        assert!(prefix_contains(p("10.0.4.0", 24), p("10.0.4.128", 25)));
        assert!(prefix_contains(p("0.0.0.0", 0), p("10.0.4.1", 32)));
        assert!(
            !prefix_contains(p("10.0.4.0", 25), p("10.0.4.0", 24)),
            "wider"
        );
        assert!(!prefix_contains(p("10.0.4.0", 24), p("10.0.5.0", 32)));
        assert!(!prefix_contains(p("::", 0), p("10.0.4.1", 32)), "families");
        assert!(prefix_contains(p("fd00::", 8), p("fd12::1", 128)));
        assert!(!prefix_contains(p("fd00::", 16), p("fd12::1", 128)));
    }

    #[test]
    fn entries_lists_networks() {
        let mut t = AllowedIps::new();
        t.insert(ip("10.201.0.2"), 32, 1);
        t.insert(ip("fd00::"), 8, 2);
        let mut e = t.entries();
        e.sort_by_key(|x| x.2);
        assert_eq!(e, [(ip("10.201.0.2"), 32, 1), (ip("fd00::"), 8, 2)]);
    }

    proptest! {
        /// Against a linear-scan model of longest-prefix match.
        #[test]
        fn matches_linear_model(
            routes in proptest::collection::vec((any::<u32>(), 0u8..=32), 1..40),
            probes in proptest::collection::vec(any::<u32>(), 1..60),
        ) {
            let mut t = AllowedIps::new();
            let mut model: Vec<(u32, u8, usize)> = Vec::new();
            for (i, (a, l)) in routes.iter().enumerate() {
                let mask = if *l == 0 { 0 } else { u32::MAX << (32 - l) };
                t.insert(IpAddr::V4((*a).into()), *l, i);
                model.retain(|(ma, ml, _)| !(*ml == *l && *ma == a & mask));
                model.push((a & mask, *l, i));
            }
            for p in probes {
                let want = model.iter()
                    .filter(|(a, l, _)| *l == 0 || (p >> (32 - l)) == (a >> (32 - l)))
                    .max_by_key(|(_, l, _)| *l)
                    .map(|x| x.2);
                prop_assert_eq!(t.lookup(IpAddr::V4(p.into())), want);
            }
        }
    }
}
