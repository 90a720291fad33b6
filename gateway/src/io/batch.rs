//! A batch of datagram slots for the UDP edge ([`super::udp`]), allocated once: the buffers that
//! `recvmmsg` fills and `sendmmsg`/`sendmsg` with `UDP_SEGMENT` send, with each datagram's length,
//! address, outer TOS byte (DSCP and ECN, RFC 2474 §3 and RFC 3168 §5: sent with it, or received
//! with it) and, received with `UDP_GRO`, the size of the segments the kernel coalesced into it.

use std::net::SocketAddr;

/// `capacity` slots of `slot` bytes each, with their lengths, addresses, TOS bytes and segment
/// sizes.
#[derive(Debug)]
pub struct Batch {
    pub(super) buf: Vec<u8>,
    pub(super) slot: usize,
    pub(super) lens: Vec<usize>,
    pub(super) addrs: Vec<Option<SocketAddr>>,
    /// The IPv4 TOS or IPv6 Traffic Class byte to send a datagram with, or that it arrived with
    /// (one for a whole coalesced run: GRO never merges datagrams whose TOS differs).
    pub(super) tos: Vec<u8>,
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
            tos: vec![0; capacity],
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

    /// Datagram `i`'s TOS byte (DSCP << 2 | ECN): received, the one its IP header carried (0 if
    /// the kernel did not say); to send, the one committed.
    pub fn tos(&self, i: usize) -> u8 {
        self.tos[i]
    }

    /// The next free slot's buffer, to fill and then [`Batch::commit`].
    pub fn next_slot(&mut self) -> Option<&mut [u8]> {
        let (i, s) = (self.len, self.slot);
        (i < self.capacity()).then(|| &mut self.buf[i * s..(i + 1) * s])
    }

    /// Marks the next slot as holding `len` bytes for `to`, sent with TOS 0 (the socket's default).
    pub fn commit(&mut self, len: usize, to: SocketAddr) {
        self.commit_with_tos(len, to, 0);
    }

    /// Marks the next slot as holding `len` bytes for `to`, sent with the IPv4 TOS / IPv6 Traffic
    /// Class byte `tos` (DSCP << 2 | ECN; see `classes::ecn::outer_tos`).
    pub fn commit_with_tos(&mut self, len: usize, to: SocketAddr, tos: u8) {
        if self.len < self.capacity() {
            self.lens[self.len] = len.min(self.slot);
            self.addrs[self.len] = Some(to);
            self.tos[self.len] = tos;
            self.segments[self.len] = 0;
            self.len += 1;
        }
    }

    /// The datagrams from `start` on that one `sendmmsg` can carry with one control message for
    /// all: the same TOS and, for a TOS other than 0, the same address family (an `IP_TOS` or an
    /// `IPV6_TCLASS` message); at most `max`. Returns the end of the run (at least `start + 1`).
    pub fn tos_run(&self, start: usize, max: usize) -> usize {
        let (tos, v4) = (self.tos[start], self.addrs[start].map(Self::sends_as_ipv4));
        let mut end = start + 1;
        while end < self.len
            && end - start < max
            && self.tos[end] == tos
            && (tos == 0 || self.addrs[end].map(Self::sends_as_ipv4) == v4)
        {
            end += 1;
        }
        end
    }

    /// Whether a datagram to `to` leaves as IPv4 (also an IPv4-mapped IPv6 address).
    pub fn sends_as_ipv4(to: SocketAddr) -> bool {
        match to {
            SocketAddr::V4(_) => true,
            SocketAddr::V6(a) => a.ip().to_ipv4_mapped().is_some(),
        }
    }

    /// The datagrams from `start` on that one `UDP_SEGMENT` send can carry: the same address and
    /// TOS (one send has one IP header to copy), the same length as the first but for a shorter
    /// last one, at most `max_segments` and `max_bytes` in all. Returns the end of the run (at
    /// least `start + 1`).
    pub fn gso_run(&self, start: usize, max_segments: usize, max_bytes: usize) -> usize {
        let (first, to, tos) = (self.lens[start], self.addrs[start], self.tos[start]);
        let mut end = start + 1;
        let mut bytes = first;
        while end < self.len
            && end - start < max_segments
            && self.addrs[end] == to
            && self.tos[end] == tos
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
    fn a_gso_run_ends_where_the_tos_changes() {
        let to = SocketAddr::from(([127, 0, 0, 1], 1));
        let mut b = Batch::new(2048, 8);
        for tos in [0, 0, 0xb8, 0xb8, 0xba, 0] {
            b.next_slot().unwrap();
            b.commit_with_tos(100, to, tos);
        }
        assert_eq!(b.gso_run(0, 64, 65_000), 2);
        assert_eq!(b.gso_run(2, 64, 65_000), 4);
        assert_eq!(b.gso_run(4, 64, 65_000), 5, "the ECN bits count too");
        assert_eq!((b.tos(3), b.tos(5)), (0xb8, 0));
        b.clear();
        b.next_slot().unwrap();
        b.commit(100, to);
        assert_eq!(b.tos(0), 0, "commit means TOS 0");
    }

    #[test]
    fn a_sendmmsg_run_shares_one_tos_and_for_a_tos_one_family() {
        let v4 = SocketAddr::from(([127, 0, 0, 1], 1));
        let v6: SocketAddr = "[::1]:1".parse().unwrap();
        let mapped: SocketAddr = "[::ffff:127.0.0.1]:2".parse().unwrap();
        let mut b = Batch::new(64, 8);
        for (to, tos) in [
            (v4, 0),
            (v6, 0),
            (v4, 0xb8),
            (mapped, 0xb8),
            (v6, 0xb8),
            (v6, 0),
        ] {
            b.next_slot().unwrap();
            b.commit_with_tos(10, to, tos);
        }
        assert_eq!(
            b.tos_run(0, 32),
            2,
            "TOS 0 needs no control message: families mix"
        );
        assert_eq!(b.tos_run(2, 32), 4, "an IPv4-mapped address sends as IPv4");
        assert_eq!(b.tos_run(4, 32), 5);
        assert_eq!(b.tos_run(5, 32), 6);
        assert_eq!(b.tos_run(0, 1), 1, "at most max");
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
