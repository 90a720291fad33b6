//! A bounded memory of QKD key IDs already used (ETSI GS QKD 014 reference notes, failure mode 5:
//! "keep a bounded set of used IDs and never install a key twice"). The master's prefetch pool
//! refuses a key ID its KME hands out again; the slave refuses an Init naming a key ID it has
//! already accepted. Memory is bounded: the oldest ID is forgotten once `capacity` are held.

use std::collections::{HashSet, VecDeque};

use super::KeyId;

/// The last `capacity` key IDs seen.
#[derive(Debug, Clone)]
pub struct SeenKeyIds {
    order: VecDeque<KeyId>,
    set: HashSet<KeyId>,
    capacity: usize,
}

impl SeenKeyIds {
    /// Remembers at most `capacity` IDs (at least 1).
    pub fn new(capacity: usize) -> Self {
        Self {
            order: VecDeque::new(),
            set: HashSet::new(),
            capacity: capacity.max(1),
        }
    }

    /// Whether `id` is among the remembered IDs.
    pub fn contains(&self, id: &KeyId) -> bool {
        self.set.contains(id)
    }

    /// Remembers `id`; returns `false` if it was already remembered (a reuse).
    pub fn insert(&mut self, id: KeyId) -> bool {
        if !self.set.insert(id) {
            return false;
        }
        self.order.push_back(id);
        if self.order.len() > self.capacity
            && let Some(old) = self.order.pop_front()
        {
            self.set.remove(&old);
        }
        true
    }

    /// IDs remembered now (at most the capacity).
    pub fn len(&self) -> usize {
        self.order.len()
    }

    /// Whether nothing is remembered.
    pub fn is_empty(&self) -> bool {
        self.order.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(n: u8) -> KeyId {
        KeyId::from_random_bytes([n; 16])
    }

    #[test]
    fn refuses_a_repeat_and_forgets_the_oldest_beyond_capacity() {
        let mut seen = SeenKeyIds::new(2);
        assert!(seen.insert(id(1)));
        assert!(!seen.insert(id(1)), "a repeat is refused");
        assert!(seen.insert(id(2)));
        assert!(seen.insert(id(3)));
        assert_eq!(seen.len(), 2);
        assert!(!seen.contains(&id(1)), "the oldest is forgotten");
        assert!(seen.contains(&id(2)) && seen.contains(&id(3)));
    }
}
