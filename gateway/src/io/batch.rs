//! A batch of datagram slots for the UDP edge ([`super::udp`]), allocated once: the buffers that
//! `recvmmsg` fills and `sendmmsg`/`sendmsg` with `UDP_SEGMENT` send, with each datagram's length,
//! address and, received with `UDP_GRO`, the size of the segments the kernel coalesced into it.

use std::net::SocketAddr;

/// `capacity` slots of `slot` bytes each, with their lengths, addresses and segment sizes.
#[derive(Debug)]
pub struct Batch {
    pub(super) buf: Vec<u8>,
    pub(super) slot: usize,
    pub(super) lens: Vec<usize>,
    pub(super) addrs: Vec<Option<SocketAddr>>,
    /// Received: the segment size of a coalesced datagram (`UDP_GRO`), or its length.
    pub(super) segments: Vec<usize>,
    pub(super) len: usize,
}

impl Batch {
    /// `capacity` slots of `slot` bytes.
    pub fn new(slot: usize, capacity: usize) -> Self {
        Self {
            buf: vec![0; slot * capacity],
            slot,
            lens: vec![0; capacity],
            addrs: vec![None; capacity],
            segments: vec![0; capacity],
            len: 0,
        }
    }

    /// Slots in all.
    pub fn capacity(&self) -> usize {
        self.lens.len()
    }

    /// Slots in use.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether no slot is in use.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Whether every slot is in use.
    pub fn is_full(&self) -> bool {
        self.len == self.capacity()
    }

    /// Empties the batch.
    pub fn clear(&mut self) {
        self.len = 0;
    }

    /// Slot `i`'s buffer (full size) and address.
    pub fn slot_mut(&mut self, i: usize) -> (&mut [u8], Option<SocketAddr>) {
        let s = self.slot;
        (&mut self.buf[i * s..(i + 1) * s], self.addrs[i])
    }

    /// Every slot's bytes, back to back (slot `i` at `i * slot_len()`), and the slot size.
    pub fn bytes_mut(&mut self) -> (&mut [u8], usize) {
        (&mut self.buf, self.slot)
    }

    /// Slot `i`'s datagram.
    pub fn datagram(&self, i: usize) -> (&[u8], Option<SocketAddr>) {
        let s = self.slot;
        (&self.buf[i * s..i * s + self.lens[i]], self.addrs[i])
    }

    /// Received datagram `i`'s length and the size of the datagrams it holds back to back (its
    /// whole length unless the kernel coalesced several with `UDP_GRO`; the last may be shorter).
    pub fn segmented(&self, i: usize) -> (usize, usize) {
        let len = self.lens[i];
        let seg = self.segments[i];
        (len, if seg == 0 || seg > len { len } else { seg })
    }

    /// The next free slot's buffer, to fill and then [`Batch::commit`].
    pub fn next_slot(&mut self) -> Option<&mut [u8]> {
        let (i, s) = (self.len, self.slot);
        (i < self.capacity()).then(|| &mut self.buf[i * s..(i + 1) * s])
    }

    /// Marks the next slot as holding `len` bytes for `to`.
    pub fn commit(&mut self, len: usize, to: SocketAddr) {
        if self.len < self.capacity() {
            self.lens[self.len] = len.min(self.slot);
            self.addrs[self.len] = Some(to);
            self.segments[self.len] = 0;
            self.len += 1;
        }
    }

    /// The datagrams from `start` on that one `UDP_SEGMENT` send can carry: the same address, the
    /// same length as the first but for a shorter last one, at most `max_segments` and
    /// `max_bytes` in all. Returns the end of the run (at least `start + 1`).
    pub fn gso_run(&self, start: usize, max_segments: usize, max_bytes: usize) -> usize {
        let (first, to) = (self.lens[start], self.addrs[start]);
        let mut end = start + 1;
        let mut bytes = first;
        while end < self.len
            && end - start < max_segments
            && self.addrs[end] == to
            && self.lens[end - 1] == first
            && self.lens[end] <= first
            && bytes + self.lens[end] <= max_bytes
        {
            bytes += self.lens[end];
            end += 1;
        }
        end
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn batch(lens: &[(usize, u16)]) -> Batch {
        let mut b = Batch::new(2048, 64);
        for &(len, port) in lens {
            b.next_slot().unwrap();
            b.commit(len, SocketAddr::from(([127, 0, 0, 1], port)));
        }
        b
    }

    #[test]
    fn a_gso_run_is_equal_lengths_to_one_address_with_a_shorter_last() {
        let b = batch(&[(100, 1), (100, 1), (60, 1), (100, 1)]);
        assert_eq!(b.gso_run(0, 64, 65_000), 3, "a short one ends the run");
        assert_eq!(b.gso_run(3, 64, 65_000), 4);
        let b = batch(&[(100, 1), (100, 2), (100, 2)]);
        assert_eq!(b.gso_run(0, 64, 65_000), 1, "another address");
        assert_eq!(b.gso_run(1, 64, 65_000), 3);
        let b = batch(&[(100, 1), (120, 1)]);
        assert_eq!(b.gso_run(0, 64, 65_000), 1, "a longer one");
    }

    #[test]
    fn a_gso_run_respects_the_segment_and_byte_limits() {
        let b = batch(&[(1000, 1); 10]);
        assert_eq!(b.gso_run(0, 4, 65_000), 4);
        assert_eq!(b.gso_run(0, 64, 3500), 3);
        assert_eq!(b.gso_run(9, 64, 65_000), 10);
    }

    #[test]
    fn segmented_never_returns_a_zero_or_oversized_segment() {
        let mut b = batch(&[(300, 1)]);
        assert_eq!(b.segmented(0), (300, 300));
        b.segments[0] = 100;
        assert_eq!(b.segmented(0), (300, 100));
        b.segments[0] = 400;
        assert_eq!(b.segmented(0), (300, 300));
    }
}
