//! The Internet checksum (RFC 1071): the ones' complement of the ones' complement sum of the data
//! taken as big-endian 16-bit words, an odd last byte padded with a zero byte.
//!
//! The sum is associative and commutative and the end-around carry makes it independent of the
//! word size it is computed in (RFC 1071 §2 (B), (C)), so [`sum`] adds 64-bit words with the carry
//! folded back in, and [`fold`] reduces the result to 16 bits. Partial sums of pieces add up to the
//! sum of the whole as long as every piece but the last has an even length.
//!
//! Pseudo-headers: TCP (RFC 793 §3.1, RFC 9293 §3.1) and UDP (RFC 768) over IPv4 sum the source and
//! destination addresses, a zero byte, the protocol and the L4 length; over IPv6 (RFC 8200 §8.1)
//! the addresses, a 32-bit length, three zero bytes and the next header. Both come to the same sum
//! ([`pseudo_header`]). The IPv4 header checksum (RFC 791 §3.1) is the checksum of the header with
//! its checksum field zero ([`checksum`]).

/// Adds two partial sums with the end-around carry.
fn add(a: u64, b: u64) -> u64 {
    let (s, carry) = a.overflowing_add(b);
    // With a carry, `s` ≤ 2^64 - 2, so this cannot overflow.
    s + u64::from(carry)
}

/// The ones' complement sum of `data` (RFC 1071) added to `initial`, unfolded. `data` is taken as
/// starting at an even offset of the checksummed range.
pub fn sum(data: &[u8], initial: u64) -> u64 {
    let mut acc = initial;
    let mut words = data.chunks_exact(8);
    for w in &mut words {
        let mut b = [0u8; 8];
        b.copy_from_slice(w);
        acc = add(acc, u64::from_be_bytes(b));
    }
    let rest = words.remainder();
    let mut tail = [0u8; 8];
    // The remainder, left-aligned: an odd last byte is the high byte of a zero-padded word.
    tail[..rest.len()].copy_from_slice(rest);
    add(acc, u64::from_be_bytes(tail))
}

/// Folds a 64-bit partial sum to 16 bits (not complemented).
pub fn fold(sum: u64) -> u16 {
    let s = (sum >> 32) + (sum & 0xffff_ffff);
    let s = (s >> 32) + (s & 0xffff_ffff);
    let s = (s >> 16) + (s & 0xffff);
    let s = (s >> 16) + (s & 0xffff);
    // Two folds from ≤ 2^33 leave ≤ 0xffff.
    s as u16
}

/// The Internet checksum of `data`: `!fold(sum(data))`. A result of zero verifies as 0xffff.
pub fn checksum(data: &[u8]) -> u16 {
    !fold(sum(data, 0))
}

/// The partial sum of a TCP/UDP pseudo-header: `addrs` is the source address followed by the
/// destination address as in the IP header (8 bytes for IPv4, 32 for IPv6), `protocol` the IP
/// protocol or IPv6 next header, `l4_len` the length of the L4 header and payload.
pub fn pseudo_header(addrs: &[u8], protocol: u8, l4_len: u32) -> u64 {
    let s = sum(addrs, u64::from(protocol));
    add(s, u64::from(l4_len))
}

/// Whether `data`, which includes its own checksum field, sums to 0xffff from `initial` (the
/// pseudo-header sum, or 0).
pub fn verifies(data: &[u8], initial: u64) -> bool {
    fold(sum(data, initial)) == 0xffff
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The textbook algorithm: 16-bit words, 32-bit accumulator, carries folded at the end.
    fn slow_sum(data: &[u8]) -> u16 {
        let mut acc: u64 = 0;
        for pair in data.chunks(2) {
            let hi = u64::from(pair[0]) << 8;
            let lo = pair.get(1).map_or(0, |&b| u64::from(b));
            acc += hi | lo;
        }
        while acc > 0xffff {
            acc = (acc >> 16) + (acc & 0xffff);
        }
        acc as u16
    }

    #[test]
    fn rfc1071_example() {
        // RFC 1071 §3: bytes 00 01 f2 03 f4 f5 f6 f7 sum to 0xddf2.
        let data = [0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7];
        assert_eq!(fold(sum(&data, 0)), 0xddf2);
        assert_eq!(checksum(&data), !0xddf2);
    }

    #[test]
    fn ipv4_header_known_answer() {
        // A widely used example header (Wikipedia, "IPv4 header checksum"): checksum 0xb861.
        let mut h = [
            0x45, 0x00, 0x00, 0x73, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11, 0x00, 0x00, 0xc0, 0xa8,
            0x00, 0x01, 0xc0, 0xa8, 0x00, 0xc7,
        ];
        assert_eq!(checksum(&h), 0xb861);
        h[10..12].copy_from_slice(&0xb861u16.to_be_bytes());
        assert!(verifies(&h, 0));
        assert_eq!(checksum(&h), 0);
    }

    #[test]
    fn odd_lengths_and_edges() {
        assert_eq!(fold(sum(&[], 0)), 0);
        assert_eq!(fold(sum(&[0xab], 0)), 0xab00);
        assert_eq!(fold(sum(&[0xff; 3], 0)), slow_sum(&[0xff; 3]));
        assert_eq!(fold(u64::MAX), 0xffff);
        assert_eq!(fold(0x1_0000), 1);
    }

    #[test]
    fn pseudo_header_v4_and_v6() {
        // IPv4: 10.0.0.1 → 10.0.0.2, UDP, length 12, by hand: 0x0a00 + 0x0001 + 0x0a00 + 0x0002
        // + 0x0011 + 0x000c = 0x1420.
        let v4 = [10, 0, 0, 1, 10, 0, 0, 2];
        assert_eq!(fold(pseudo_header(&v4, 17, 12)), 0x1420);
        // IPv6: a 32-bit length above 65535 folds its high half in.
        let mut v6 = [0u8; 32];
        v6[15] = 1;
        v6[31] = 2;
        let mut field = v6.to_vec();
        field.extend_from_slice(&0x0001_0004u32.to_be_bytes());
        field.extend_from_slice(&[0, 0, 0, 6]);
        assert_eq!(fold(pseudo_header(&v6, 6, 0x0001_0004)), slow_sum(&field));
    }

    proptest! {
        #[test]
        fn matches_the_slow_reference(data in proptest::collection::vec(any::<u8>(), 0..3000)) {
            prop_assert_eq!(fold(sum(&data, 0)), slow_sum(&data));
        }

        #[test]
        fn pieces_add_up(data in proptest::collection::vec(any::<u8>(), 0..600), cut in 0usize..300) {
            let cut = (cut * 2).min(data.len() & !1);
            let (a, b) = data.split_at(cut);
            prop_assert_eq!(fold(sum(b, sum(a, 0))), fold(sum(&data, 0)));
        }

        #[test]
        fn a_stored_checksum_verifies(mut data in proptest::collection::vec(any::<u8>(), 2..600)) {
            data[0] = 0;
            data[1] = 0;
            let c = checksum(&data);
            data[..2].copy_from_slice(&c.to_be_bytes());
            prop_assert!(verifies(&data, 0));
        }
    }
}
