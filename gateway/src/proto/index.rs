//! Session indices (whitepaper §5.4.2: `I_i`/`I_r`, "randomly generated" 32-bit values the peer
//! echoes as `receiver`): allocation, uniqueness per interface, and the map from index to peer that
//! routes every incoming response, cookie reply and transport message.
//!
//! Random indices make it hard for an outsider to guess live ones. At most four are in use per peer
//! (three sessions and one handshake), so the map's size is bounded by the peer count.

use std::collections::HashMap;

use super::crypto::Entropy;

/// Hands out and takes back local indices (implemented per peer over an [`IndexMap`]).
pub trait IndexTable {
    /// A fresh local index, not in use by any session or handshake.
    fn allocate(&mut self, rng: &mut dyn Entropy) -> u32;
    /// Returns an index that is no longer in use.
    fn release(&mut self, index: u32);
}

/// Which peer (`P`, the caller's peer handle) owns each live local index.
#[derive(Debug)]
pub struct IndexMap<P> {
    owners: HashMap<u32, P>,
}

impl<P> Default for IndexMap<P> {
    fn default() -> Self {
        Self {
            owners: HashMap::new(),
        }
    }
}

impl<P: Copy + Eq> IndexMap<P> {
    /// An empty map.
    pub fn new() -> Self {
        Self::default()
    }

    /// The peer that owns `index`.
    pub fn lookup(&self, index: u32) -> Option<P> {
        self.owners.get(&index).copied()
    }

    /// An [`IndexTable`] that allocates on behalf of peer `peer`.
    pub fn for_peer(&mut self, peer: P) -> PeerIndices<'_, P> {
        PeerIndices { map: self, peer }
    }

    /// Live indices.
    pub fn len(&self) -> usize {
        self.owners.len()
    }

    /// Whether no index is live.
    pub fn is_empty(&self) -> bool {
        self.owners.is_empty()
    }
}

/// The view of an [`IndexMap`] one peer allocates through.
#[derive(Debug)]
pub struct PeerIndices<'a, P> {
    map: &'a mut IndexMap<P>,
    peer: P,
}

impl<P: Copy + Eq> IndexTable for PeerIndices<'_, P> {
    fn allocate(&mut self, rng: &mut dyn Entropy) -> u32 {
        // Bounded in practice: the map holds at most 4 indices per peer, far below 2^32, so a draw
        // collides with probability < 2^-12 even with a million peers.
        loop {
            let i = rng.next_u32();
            if let std::collections::hash_map::Entry::Vacant(e) = self.map.owners.entry(i) {
                e.insert(self.peer);
                return i;
            }
        }
    }

    fn release(&mut self, index: u32) {
        if self.map.owners.get(&index) == Some(&self.peer) {
            self.map.owners.remove(&index);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::crypto::SeededEntropy;

    /// Entropy that repeats a fixed sequence, to force collisions.
    struct Repeating(Vec<u32>, usize);
    impl Entropy for Repeating {
        fn try_fill(&mut self, buf: &mut [u8]) -> Result<(), keymix::Error> {
            let v = self.0[self.1 % self.0.len()];
            self.1 += 1;
            for (d, s) in buf.iter_mut().zip(v.to_le_bytes().iter().cycle()) {
                *d = *s;
            }
            Ok(())
        }
    }

    #[test]
    fn allocation_is_unique_and_owned() {
        let mut m = IndexMap::<usize>::new();
        let mut rng = Repeating(vec![7, 7, 7, 9], 0);
        let a = m.for_peer(0).allocate(&mut rng);
        let b = m.for_peer(1).allocate(&mut rng);
        assert_eq!((a, b), (7, 9), "a colliding draw is skipped");
        assert_eq!(
            (m.lookup(7), m.lookup(9), m.lookup(8)),
            (Some(0), Some(1), None)
        );
        // A peer cannot release another peer's index.
        m.for_peer(0).release(9);
        assert_eq!(m.lookup(9), Some(1));
        m.for_peer(1).release(9);
        assert_eq!(m.lookup(9), None);
        assert_eq!(m.len(), 1);
    }

    #[test]
    fn many_allocations_stay_distinct() {
        let mut m = IndexMap::<usize>::new();
        let mut rng = SeededEntropy::new(1);
        for p in 0..1000 {
            m.for_peer(p).allocate(&mut rng);
        }
        assert_eq!(m.len(), 1000);
    }
}
