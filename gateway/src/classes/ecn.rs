//! The ECN field of an inner IP packet (RFC 3168 §5): reading it and marking Congestion
//! Experienced, which CoDel does instead of dropping an ECN-capable packet (RFC 8289 §5.3).
//! Pure functions over the packet's bytes; a packet too short for its header is left alone.
//!
//! IPv4: the two low bits of the TOS byte (byte 1); changing them changes the header checksum,
//! which [`mark_ce`] recomputes (RFC 791 §3.1). IPv6: the two low bits of the Traffic Class,
//! which straddles bytes 0 and 1 (RFC 8200 §3); IPv6 has no header checksum.

/// The ECN codepoint of an IP header (RFC 3168 §5).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ecn {
    /// Not ECN-capable transport.
    NotEct = 0b00,
    /// ECN-capable transport, ECT(1).
    Ect1 = 0b01,
    /// ECN-capable transport, ECT(0).
    Ect0 = 0b10,
    /// Congestion Experienced.
    Ce = 0b11,
}

impl Ecn {
    /// The codepoint of the two bits `bits & 0b11`.
    pub const fn from_bits(bits: u8) -> Self {
        match bits & 0b11 {
            0b00 => Ecn::NotEct,
            0b01 => Ecn::Ect1,
            0b10 => Ecn::Ect0,
            _ => Ecn::Ce,
        }
    }

    /// Whether the transport is ECN-capable (ECT(0), ECT(1) or already CE).
    pub const fn is_capable(self) -> bool {
        !matches!(self, Ecn::NotEct)
    }
}

/// The length of the IPv4 header of `packet`, if it is a complete IPv4 header.
fn ipv4_header_len(packet: &[u8]) -> Option<usize> {
    let ihl = usize::from(packet.first()? & 0x0f) * 4;
    (ihl >= 20 && packet.len() >= ihl).then_some(ihl)
}

/// The ECN codepoint of the IPv4 or IPv6 packet `packet` (`None`: not a complete IP header).
pub fn ecn_of(packet: &[u8]) -> Option<Ecn> {
    match packet.first()? >> 4 {
        4 => {
            ipv4_header_len(packet)?;
            Some(Ecn::from_bits(packet[1]))
        }
        6 if packet.len() >= 40 => Some(Ecn::from_bits(packet[1] >> 4)),
        _ => None,
    }
}

/// Marks the ECN-capable packet `packet` Congestion Experienced (fixing the IPv4 header checksum)
/// and returns true; returns false, changing nothing, when it is not ECN-capable or not IP (the
/// caller drops it instead). A packet already CE stays as it is and counts as marked.
pub fn mark_ce(packet: &mut [u8]) -> bool {
    match ecn_of(packet) {
        Some(Ecn::Ce) => true,
        Some(Ecn::Ect0 | Ecn::Ect1) => {
            if packet[0] >> 4 == 4 {
                packet[1] |= Ecn::Ce as u8;
                let ihl = usize::from(packet[0] & 0x0f) * 4;
                set_ipv4_checksum(&mut packet[..ihl]);
            } else {
                packet[1] |= (Ecn::Ce as u8) << 4;
            }
            true
        }
        _ => false,
    }
}

/// Recomputes the checksum (bytes 10..12) of the IPv4 header `header` (RFC 791 §3.1).
fn set_ipv4_checksum(header: &mut [u8]) {
    header[10] = 0;
    header[11] = 0;
    let sum = header
        .chunks(2)
        .map(|w| u32::from(u16::from_be_bytes([w[0], *w.get(1).unwrap_or(&0)])))
        .sum::<u32>();
    let folded = (sum & 0xffff) + (sum >> 16);
    let folded = (folded & 0xffff) + (folded >> 16);
    let checksum = !(folded as u16);
    header[10..12].copy_from_slice(&checksum.to_be_bytes());
}

/// Test packets shared with the scheduler's tests.
#[cfg(test)]
pub(crate) mod testing {
    /// A 20-byte IPv4 header (UDP, 10.0.0.1 -> 10.0.0.2) with ECN bits `ecn` and a valid
    /// checksum, padded with zeros to `len` bytes.
    pub(crate) fn ipv4(ecn: u8, len: usize) -> Vec<u8> {
        let mut p = vec![0u8; len.max(20)];
        p[0] = 0x45;
        p[1] = 0xb8 | (ecn & 0b11); // DSCP EF, so marking must keep the DSCP bits
        p[2..4].copy_from_slice(&(len as u16).to_be_bytes());
        p[8] = 64;
        p[9] = 17;
        p[12..16].copy_from_slice(&[10, 0, 0, 1]);
        p[16..20].copy_from_slice(&[10, 0, 0, 2]);
        super::set_ipv4_checksum(&mut p[..20]);
        p
    }

    /// Whether the IPv4 header checksum of `packet` verifies (the one's-complement sum is 0xffff).
    pub(crate) fn ipv4_checksum_ok(packet: &[u8]) -> bool {
        let ihl = usize::from(packet[0] & 0x0f) * 4;
        let sum = packet[..ihl]
            .chunks(2)
            .map(|w| u32::from(u16::from_be_bytes([w[0], w[1]])))
            .sum::<u32>();
        let folded = (sum & 0xffff) + (sum >> 16);
        (folded & 0xffff) + (folded >> 16) == 0xffff
    }
}

#[cfg(test)]
mod tests {
    use super::testing::{ipv4, ipv4_checksum_ok};
    use super::*;

    fn ipv6(ecn: u8) -> Vec<u8> {
        let mut p = vec![0u8; 60];
        // Version 6, traffic class 0xb8 | ecn (EF), flow label 0x12345.
        let tc = 0xb8 | (ecn & 0b11);
        p[0] = 0x60 | (tc >> 4);
        p[1] = (tc << 4) | 0x1;
        p[2] = 0x23;
        p[3] = 0x45;
        p[6] = 17;
        p
    }

    #[test]
    fn reads_the_codepoint_of_both_families() {
        for bits in 0..4 {
            assert_eq!(ecn_of(&ipv4(bits, 60)), Some(Ecn::from_bits(bits)));
            assert_eq!(ecn_of(&ipv6(bits)), Some(Ecn::from_bits(bits)));
        }
        assert_eq!(ecn_of(&[]), None);
        assert_eq!(ecn_of(&[0x45, 0x02]), None, "truncated IPv4 header");
        assert_eq!(ecn_of(&[0x60; 39]), None, "truncated IPv6 header");
        assert_eq!(ecn_of(&[0x12; 60]), None, "not IP");
    }

    #[test]
    fn marks_ipv4_ce_with_a_valid_checksum_and_the_dscp_kept() {
        for bits in [0b01, 0b10] {
            let mut p = ipv4(bits, 80);
            assert!(ipv4_checksum_ok(&p));
            assert!(mark_ce(&mut p));
            assert_eq!(ecn_of(&p), Some(Ecn::Ce));
            assert_eq!(p[1] >> 2, 0xb8 >> 2, "DSCP unchanged");
            assert!(ipv4_checksum_ok(&p), "checksum fixed after marking");
        }
    }

    #[test]
    fn marks_ipv6_ce_keeping_traffic_class_and_flow_label() {
        let mut p = ipv6(0b10);
        assert!(mark_ce(&mut p));
        assert_eq!(ecn_of(&p), Some(Ecn::Ce));
        assert_eq!(p[0], 0x6b);
        assert_eq!(p[1], 0xb1 | 0x30);
        assert_eq!(&p[2..4], &[0x23, 0x45]);
    }

    #[test]
    fn leaves_not_ect_and_non_ip_alone() {
        let mut p = ipv4(0, 40);
        let before = p.clone();
        assert!(!mark_ce(&mut p));
        assert_eq!(p, before);
        let mut junk = vec![0u8; 3];
        assert!(!mark_ce(&mut junk));
        let mut ce = ipv4(0b11, 40);
        let before = ce.clone();
        assert!(mark_ce(&mut ce), "already CE counts as marked");
        assert_eq!(ce, before);
    }
}
