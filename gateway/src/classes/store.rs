//! The bytes of the packets waiting in one peer's egress scheduler: fixed-size slots of one MTU,
//! recycled through a free list, so once the queue has been as long as it gets, queueing a
//! packet allocates nothing (the slots are made on first use, so an idle peer costs nothing).
//! The number of slots is bounded by the scheduler's packet limit.

/// Packet slots with a free list (see the module docs).
#[derive(Debug)]
pub struct PacketStore {
    slots: Vec<Box<[u8]>>,
    free: Vec<u32>,
    slot_len: usize,
}

impl PacketStore {
    /// An empty store of slots `slot_len` bytes long (the MTU).
    pub fn new(slot_len: usize) -> Self {
        Self {
            slots: Vec::new(),
            free: Vec::new(),
            slot_len,
        }
    }

    /// Copies `packet` (at most `slot_len` bytes) into a free slot and returns the slot.
    pub fn put(&mut self, packet: &[u8]) -> u32 {
        debug_assert!(packet.len() <= self.slot_len);
        let slot = match self.free.pop() {
            Some(slot) => slot,
            None => {
                self.slots.push(vec![0; self.slot_len].into_boxed_slice());
                (self.slots.len() - 1) as u32
            }
        };
        self.slots[slot as usize][..packet.len()].copy_from_slice(packet);
        slot
    }

    /// The first `len` bytes of `slot`.
    pub fn get_mut(&mut self, slot: u32, len: usize) -> &mut [u8] {
        &mut self.slots[slot as usize][..len]
    }

    /// Returns `slot` to the free list.
    pub fn free(&mut self, slot: u32) {
        self.free.push(slot);
    }

    /// Slots made so far (in use or free).
    pub fn allocated(&self) -> usize {
        self.slots.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_recycled() {
        let mut s = PacketStore::new(8);
        let a = s.put(&[1, 2, 3]);
        let b = s.put(&[4; 8]);
        assert_eq!(s.get_mut(a, 3), &[1, 2, 3]);
        s.free(a);
        let c = s.put(&[9, 9]);
        assert_eq!(c, a, "the freed slot is reused");
        assert_eq!(s.get_mut(c, 2), &[9, 9]);
        assert_eq!(s.get_mut(b, 8), &[4; 8]);
        assert_eq!(s.allocated(), 2);
    }
}
