//! The prefetch buffer's logic, without I/O or clock (ETSI GS QKD 014 §5.3 "Get key" on the master
//! side): the gateway takes keys from here so its handshake never waits on a KME round trip.
//!
//! * Bounded: at most `capacity` keys; [`KeyPool::push`] refuses more (the refused key is dropped,
//!   and so zeroized, by the caller).
//! * Exactly once: [`KeyPool::take`] moves the only copy out. A bounded memory of recently seen key
//!   IDs refuses a key ID the KME hands out again (reference §10.5), so a faulty or hostile KME
//!   cannot make the gateway install the same key twice.
//! * Low-water mark: [`KeyPool::wanted`] tells the driver how many keys to fetch. It becomes
//!   non-zero once the level falls to `low_water` and stays non-zero until the pool is full again,
//!   so the driver refills in batches (of at most the KME's per-request limit) without chattering.

use std::collections::VecDeque;

use keymix::SeenKeyIds;

use crate::ids::KeyId;
use crate::key::QkdKey;

/// How many recently seen key IDs are remembered to refuse replays (at least twice the capacity).
pub const DEFAULT_SEEN_IDS: usize = keymix::SEEN_KEY_IDS;

/// Why [`KeyPool::push`] refused a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PushError {
    /// The pool already holds `capacity` keys.
    #[error("key pool is full")]
    Full,
    /// This key ID was seen before (a KME must never issue an ID twice).
    #[error("key ID was already delivered once")]
    Replayed,
}

/// A bounded FIFO of keys waiting to be used.
#[derive(Debug)]
pub struct KeyPool {
    keys: VecDeque<QkdKey>,
    capacity: usize,
    low_water: usize,
    filling: bool,
    seen: SeenKeyIds,
}

impl KeyPool {
    /// A pool of at most `capacity` keys (at least 1) that asks for more at `low_water` or below.
    pub fn new(capacity: usize, low_water: usize) -> Self {
        let capacity = capacity.max(1);
        Self {
            keys: VecDeque::with_capacity(capacity),
            capacity,
            low_water: low_water.min(capacity - 1),
            filling: true,
            seen: SeenKeyIds::new(DEFAULT_SEEN_IDS.max(capacity * 2)),
        }
    }

    /// Adds a freshly fetched key at the back.
    pub fn push(&mut self, key: QkdKey) -> Result<(), (PushError, QkdKey)> {
        if self.keys.len() >= self.capacity {
            return Err((PushError::Full, key));
        }
        if !self.remember(key.id()) {
            return Err((PushError::Replayed, key));
        }
        self.keys.push_back(key);
        if self.keys.len() >= self.capacity {
            self.filling = false;
        }
        Ok(())
    }

    /// Takes the oldest key; it is no longer in the pool.
    pub fn take(&mut self) -> Option<QkdKey> {
        let key = self.keys.pop_front();
        if self.keys.len() <= self.low_water {
            self.filling = true;
        }
        key
    }

    /// Number of keys to fetch now: the free space while refilling (from the moment the level
    /// reached the low-water mark until the pool is full), otherwise 0.
    pub fn wanted(&self) -> usize {
        if self.filling {
            self.capacity - self.keys.len()
        } else {
            0
        }
    }

    /// Keys in the pool.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Whether the pool is empty.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// The configured capacity.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Drops (and so zeroizes) every key held, e.g. when the KME link is reconfigured.
    pub fn clear(&mut self) {
        self.keys.clear();
        self.filling = true;
    }

    fn remember(&mut self, id: KeyId) -> bool {
        self.seen.insert(id)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use zeroize::Zeroizing;

    use super::*;

    fn key(n: u8) -> QkdKey {
        let mut b = [0u8; 16];
        b[0] = n;
        b[1] = 0xA5;
        QkdKey::new(KeyId::from_random_bytes(b), Zeroizing::new(vec![n; 32]))
    }

    #[test]
    fn keys_come_out_once_in_fifo_order() {
        let mut pool = KeyPool::new(4, 1);
        for n in 0..3 {
            pool.push(key(n)).unwrap();
        }
        assert_eq!(pool.take().unwrap().expose()[0], 0);
        assert_eq!(pool.take().unwrap().expose()[0], 1);
        assert_eq!(pool.take().unwrap().expose()[0], 2);
        assert!(pool.take().is_none());
    }

    #[test]
    fn pool_is_bounded() {
        let mut pool = KeyPool::new(2, 0);
        pool.push(key(1)).unwrap();
        pool.push(key(2)).unwrap();
        let (err, back) = pool.push(key(3)).unwrap_err();
        assert_eq!(err, PushError::Full);
        assert_eq!(back.expose()[0], 3);
        assert_eq!(pool.len(), 2);
    }

    #[test]
    fn replayed_ids_are_refused_even_after_the_key_was_used() {
        let mut pool = KeyPool::new(4, 1);
        pool.push(key(7)).unwrap();
        let _used = pool.take().unwrap();
        let (err, _) = pool.push(key(7)).unwrap_err();
        assert_eq!(err, PushError::Replayed);
        assert!(pool.is_empty());
    }

    #[test]
    fn low_water_mark_batches_fetches() {
        let mut pool = KeyPool::new(8, 2);
        assert_eq!(pool.wanted(), 8);
        for n in 0..8 {
            pool.push(key(n)).unwrap();
        }
        assert_eq!(pool.wanted(), 0);
        for _ in 0..5 {
            pool.take().unwrap();
        }
        assert_eq!(pool.len(), 3);
        assert_eq!(pool.wanted(), 0, "above the low-water mark");
        pool.take().unwrap();
        assert_eq!(pool.wanted(), 6, "refill to capacity");
        pool.push(key(20)).unwrap();
        pool.push(key(21)).unwrap();
        assert_eq!(pool.wanted(), 4, "keeps refilling above the low-water mark");
        for n in 22..26 {
            pool.push(key(n)).unwrap();
        }
        assert_eq!(pool.wanted(), 0);
    }

    #[test]
    fn degenerate_parameters_are_clamped() {
        let pool = KeyPool::new(0, 10);
        assert_eq!(pool.capacity(), 1);
        assert_eq!(pool.wanted(), 1);
    }

    #[test]
    fn seen_ids_memory_is_bounded() {
        let mut pool = KeyPool::new(1, 0);
        for i in 0..(DEFAULT_SEEN_IDS as u32 + 10) {
            let mut b = [0u8; 16];
            b[..4].copy_from_slice(&i.to_le_bytes());
            let k = QkdKey::new(KeyId::from_random_bytes(b), Zeroizing::new(vec![1]));
            pool.push(k).unwrap();
            pool.take().unwrap();
        }
        assert!(pool.seen.len() <= DEFAULT_SEEN_IDS);
    }
}
