//! Cryptokey routing (whitepaper §2 "Cryptokey Routing"): a table from IP prefixes to peers,
//! longest prefix wins, IPv4 and IPv6 kept apart. Outgoing packets pick their peer by destination;
//! decrypted packets are accepted only if their source routes back to the peer that sent them.
//!
//! One path-compressed binary trie per family (a PATRICIA trie: each node holds a whole prefix,
//! so a lookup takes one step per branching point, not per bit), nodes in a `Vec` (no per-node
//! allocation), no allocation and no lock per lookup. The unibit trie it replaced walked up to
//! 32 steps per IPv4 packet, 2.7-3.7 % of the packet thread's samples (docs/gateway-decisions.md
//! §9); the tests check it against a linear model.

use std::net::IpAddr;

/// A prefix, left-aligned in 128 bits with its host bits zero, and what it routes to.
#[derive(Debug, Clone)]
struct Node<T> {
    key: u128,
    len: u8,
    value: Option<T>,
    /// Longer prefixes below this one, by their bit at position `len`; 0 is none (the root,
    /// index 0, is no one's child).
    child: [u32; 2],
}

impl<T> Node<T> {
    fn new(key: u128, len: u8, value: Option<T>) -> Self {
        Self {
            key,
            len,
            value,
            child: [0, 0],
        }
    }
}

#[derive(Debug, Clone)]
struct Trie<T> {
    nodes: Vec<Node<T>>,
    bits: u8,
}

/// Bit `i` (0 = most significant) of `addr`; `i` < 128.
fn bit(addr: u128, i: u8) -> usize {
    ((addr >> (127 - i)) & 1) as usize
}

/// The first `len` bits set.
fn mask(len: u8) -> u128 {
    u128::MAX.checked_shl(128 - u32::from(len)).unwrap_or(0)
}

impl<T: Copy + PartialEq> Trie<T> {
    fn new(bits: u8) -> Self {
        Self {
            nodes: vec![Node::new(0, 0, None)],
            bits,
        }
    }

    /// Adds node `node` and makes it child `b` of `parent`.
    fn attach(&mut self, parent: usize, b: usize, node: Node<T>) -> usize {
        self.nodes.push(node);
        // Node count is bounded by 2 × prefixes, far below u32::MAX.
        let at = self.nodes.len() - 1;
        self.nodes[parent].child[b] = at as u32;
        at
    }

    fn insert(&mut self, addr: u128, len: u8, value: T) {
        let len = len.min(self.bits);
        let key = addr & mask(len);
        // Invariant: node `at`'s prefix contains `key/len`.
        let mut at = 0usize;
        loop {
            let here = &self.nodes[at];
            if here.len == len {
                self.nodes[at].value = Some(value);
                return;
            }
            let b = bit(key, here.len);
            let c = here.child[b] as usize;
            if c == 0 {
                self.attach(at, b, Node::new(key, len, Some(value)));
                return;
            }
            let child = &self.nodes[c];
            let common = ((child.key ^ key).leading_zeros() as u8)
                .min(child.len)
                .min(len);
            if common == child.len {
                at = c;
                continue;
            }
            // The child's prefix and ours part at bit `common` (or ours ends there): a node for
            // the prefix they share goes between the child and `at`.
            let child_bit = bit(child.key, common);
            let fork = if common == len {
                self.attach(at, b, Node::new(key, len, Some(value)))
            } else {
                let fork = self.attach(at, b, Node::new(key & mask(common), common, None));
                self.attach(fork, bit(key, common), Node::new(key, len, Some(value)));
                fork
            };
            self.nodes[fork].child[child_bit] = c as u32;
            return;
        }
    }

    fn lookup(&self, addr: u128) -> Option<T> {
        let mut at = 0usize;
        let mut best = None;
        loop {
            let here = &self.nodes[at];
            if (addr ^ here.key) & mask(here.len) != 0 {
                return best;
            }
            best = here.value.or(best);
            if here.len >= self.bits {
                return best;
            }
            match here.child[bit(addr, here.len)] {
                0 => return best,
                next => at = next as usize,
            }
        }
    }

    fn remove_value(&mut self, value: T) {
        for n in &mut self.nodes {
            if n.value == Some(value) {
                n.value = None;
            }
        }
    }

    /// Every routed prefix, shorter before longer, lower before higher (pre-order).
    fn entries(&self, out: &mut Vec<(u128, u8, T)>) {
        let mut stack = vec![0usize];
        while let Some(at) = stack.pop() {
            let n = &self.nodes[at];
            if let Some(v) = n.value {
                out.push((n.key, n.len, v));
            }
            for b in [1usize, 0] {
                if n.child[b] != 0 {
                    stack.push(n.child[b] as usize);
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
    key(outer.0) & mask(olen) == key(inner.0) & mask(olen)
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

    /// A linear-scan model of longest-prefix match over `bits`-bit keys (left-aligned in u128).
    #[derive(Default)]
    struct Model(Vec<(u128, u8, usize)>);

    impl Model {
        fn insert(&mut self, key: u128, len: u8, value: usize) {
            let key = key & mask(len);
            self.0.retain(|(k, l, _)| !(*l == len && *k == key));
            self.0.push((key, len, value));
        }
        fn lookup(&self, addr: u128) -> Option<usize> {
            (self.0.iter())
                .filter(|(k, l, _)| (addr ^ k) & mask(*l) == 0)
                .max_by_key(|(_, l, _)| *l)
                .map(|x| x.2)
        }
    }

    /// Routes `(address, length, value)`, probes `(route picked, bits kept, noise)` and the values
    /// removed afterwards.
    type Case = (Vec<(u128, u8, usize)>, Vec<(usize, u8, u128)>, Vec<usize>);

    /// Routes and probes for one family: probes are random, or a route's address with some of
    /// its low bits flipped, so that deep and near-miss matches are both exercised.
    fn family(bits: u8) -> impl Strategy<Value = Case> {
        let shift = 128 - u32::from(bits);
        let addr = any::<u128>().prop_map(move |a| (a >> shift) << shift);
        // A few values, so that re-inserting moves prefixes and removal hits several.
        let routes = proptest::collection::vec((addr, 0..=bits, 0usize..6), 1..40);
        let probes = proptest::collection::vec((any::<usize>(), 0..=bits, any::<u128>()), 1..60);
        let removed = proptest::collection::vec(0usize..6, 0..3);
        (routes, probes, removed)
    }

    fn check(
        bits: u8,
        routes: &[(u128, u8, usize)],
        probes: &[(usize, u8, u128)],
        removed: &[usize],
    ) {
        let mut t = Trie::new(bits);
        let mut model = Model::default();
        for &(a, l, v) in routes {
            t.insert(a, l, v);
            model.insert(a, l, v);
        }
        for v in removed {
            t.remove_value(*v);
            model.0.retain(|x| x.2 != *v);
        }
        let shift = 128 - u32::from(bits);
        for &(pick, flip_from, noise) in probes {
            let (base, _, _) = routes[pick % routes.len()];
            // Keep the first `flip_from` bits of a route, randomize the rest (within the family).
            let addr = (base & mask(flip_from)) | (noise >> shift << shift & !mask(flip_from));
            assert_eq!(t.lookup(addr), model.lookup(addr), "probe {addr:#x}");
        }
        let (mut got, mut want) = (Vec::new(), model.0);
        t.entries(&mut got);
        got.sort_unstable();
        want.sort_unstable();
        assert_eq!(got, want, "entries");
    }

    proptest! {
        #[test]
        fn v4_matches_linear_model((routes, probes, removed) in family(32)) {
            check(32, &routes, &probes, &removed);
        }

        #[test]
        fn v6_matches_linear_model((routes, probes, removed) in family(128)) {
            check(128, &routes, &probes, &removed);
        }
    }

    #[test]
    fn entries_come_shorter_first_then_by_address() {
        let mut t = AllowedIps::new();
        for (a, l, v) in [("10.1.2.0", 24, 3), ("10.0.0.0", 8, 1), ("10.1.0.0", 16, 2)] {
            t.insert(ip(a), l, v);
        }
        t.insert(ip("9.0.0.0"), 8, 4);
        let e: Vec<_> = t.entries().into_iter().map(|x| x.2).collect();
        assert_eq!(e, [4, 1, 2, 3]);
    }
}
