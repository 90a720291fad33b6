//! The ECN field of an inner IP packet (RFC 3168 §5): reading it and marking Congestion
//! Experienced, which CoDel does instead of dropping an ECN-capable packet (RFC 8289 §5.3).
//! Pure functions over the packet's bytes; a packet too short for its header is left alone.
//!
//! IPv4: the two low bits of the TOS byte (byte 1); changing them changes the header checksum,
//! which [`mark_ce`] recomputes (RFC 791 §3.1). IPv6: the two low bits of the Traffic Class,
//! which straddles bytes 0 and 1 (RFC 8200 §3); IPv6 has no header checksum.
//!
//! Across the tunnel (RFC 6040): the outer ECN a sealed packet leaves with ([`outer_ecn`], §4.1
//! normal mode, and with the class's DSCP [`outer_tos`]) and what the outer ECN of a received one
//! does to the inner packet ([`decapsulate`], §4.2).

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
            set_ecn(packet, Ecn::Ce);
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

// RFC 6040: ECN between the inner and the outer header of the tunnel (and the outer DSCP).

/// Why a received packet is dropped at decapsulation (RFC 6040 §4.2): the outer header says
/// Congestion Experienced and the inner transport is not ECN-capable, so the only congestion
/// signal it understands is a loss.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("outer ECN is CE but the inner packet is Not-ECT: dropped as RFC 6040 §4.2 requires")]
pub struct EcnDrop;

/// The outer ECN codepoint for an inner packet whose ECN is `inner`: RFC 6040 §4.1 normal mode
/// (Figure 3), a copy of the inner field.
///
/// An inner CE goes out as CE. This is the one codepoint where implementations differ: RFC 3168
/// §9.1.1's full-functionality ingress reset CE to ECT(0), and Linux still does
/// (`INET_ECN_encapsulate` in `include/net/inet_ecn.h`, which the kernel WireGuard driver calls
/// from `send.c` with an outer TOS of 0). RFC 6040 (abstract, §4.1) replaced that for every
/// IP-in-IP tunnel with the copy RFC 4301 IPsec tunnels already made, so that the outer header
/// tells the WAN path the congestion the packet has met. The mark reaches the receiver either
/// way: the decapsulator keeps an inner CE whatever the outer says ([`decapsulate`]), so a kernel
/// WireGuard peer and a qgw peer interoperate.
///
/// Normal mode presumes an egress that applies §4.2 (qgw does; so does the Linux WireGuard
/// driver). Toward one that ignores the outer field, a router's CE mark (made instead of a drop,
/// because the outer said ECT) would be lost; RFC 6040 §4.3 wants compatibility mode there, an
/// outer Not-ECT, which a caller gets by sending with `dscp << 2` instead of [`outer_tos`].
pub const fn outer_ecn(inner: Ecn) -> Ecn {
    inner
}

/// The outer TOS byte (IPv4 TOS / IPv6 Traffic Class) for sealing `inner_packet`: the DSCP
/// `dscp` (6 bits, RFC 2474 §3; 0 unless the peer has `outer_dscp`, see [`class_dscp`]) and the
/// [`outer_ecn`] of the inner packet's ECN (Not-ECT when it is not an IP packet). Pass it to
/// `io::batch::Batch::commit_with_tos`.
pub fn outer_tos(dscp: u8, inner_packet: &[u8]) -> u8 {
    let inner = ecn_of(inner_packet).unwrap_or(Ecn::NotEct);
    (dscp & 0x3f) << 2 | outer_ecn(inner) as u8
}

/// Applies the outer ECN codepoint `outer` (from the received datagram's TOS,
/// `Ecn::from_bits(tos)`) to the opened inner packet `inner_packet`, per RFC 6040 §4.2, Figure 4
/// (rows: inner; columns: outer):
///
/// | inner \ outer | Not-ECT | ECT(0)      | ECT(1)      | CE         |
/// |---------------|---------|-------------|-------------|------------|
/// | Not-ECT       | Not-ECT | Not-ECT (†) | Not-ECT (†) | drop (†)   |
/// | ECT(0)        | ECT(0)  | ECT(0)      | **ECT(1)**  | **CE**     |
/// | ECT(1)        | ECT(1)  | ECT(1) (‡)  | ECT(1)      | **CE**     |
/// | CE            | CE      | CE          | CE (†)      | CE         |
///
/// Bold: the inner field is rewritten (an IPv4 header's checksum recomputed). (†) marks the
/// combinations RFC 6040 calls currently unused, which a conforming ingress never makes; they are
/// handled as the table says (the RFC's MUST) and, like Linux's `__INET_ECN_decapsulate`, not
/// refused; (‡) is the one the RFC leaves for future use. The drop is
/// `Err(EcnDrop)`: a router marked CE on a packet whose transport cannot read it, so a loss is the
/// only signal left (Linux's return value 2; its IP-in-IP tunnels drop, its WireGuard driver
/// ignores the value and delivers the packet unmarked). A packet that is not IPv4 or IPv6 is left
/// alone (`Ok`).
pub fn decapsulate(outer: Ecn, inner_packet: &mut [u8]) -> Result<(), EcnDrop> {
    let Some(inner) = ecn_of(inner_packet) else {
        return Ok(());
    };
    let result = match (inner, outer) {
        (Ecn::NotEct, Ecn::Ce) => return Err(EcnDrop),
        (Ecn::NotEct, _) | (_, Ecn::NotEct) => inner,
        (_, Ecn::Ce) => Ecn::Ce,
        (Ecn::Ect0, Ecn::Ect1) => Ecn::Ect1,
        _ => inner,
    };
    if result != inner {
        set_ecn(inner_packet, result);
    }
    Ok(())
}

/// Writes `ecn` into the IP packet `packet` (whose header [`ecn_of`] has checked), recomputing an
/// IPv4 header's checksum.
fn set_ecn(packet: &mut [u8], ecn: Ecn) {
    if packet[0] >> 4 == 4 {
        packet[1] = (packet[1] & !0b11) | ecn as u8;
        let ihl = usize::from(packet[0] & 0x0f) * 4;
        set_ipv4_checksum(&mut packet[..ihl]);
    } else {
        packet[1] = (packet[1] & !0x30) | (ecn as u8) << 4;
    }
}

/// The DSCP a class's outer headers carry when the peer has `outer_dscp: true`, after the RFC 4594
/// service classes a DiffServ WAN is most likely to be configured for: telemonitoring is EF (46,
/// §4.1 "Telephony": small, delay- and loss-critical packets at a low rate; vital signs and
/// alarms are that), telemedicine AF41 (34, §4.3 "Multimedia Conferencing": interactive voice and
/// video that adapt their rate), imaging AF11 (10, §4.9 "High-Throughput Data": bulk transfers
/// that want throughput, not low delay) and default 0 (§4.10 "Standard", best effort). Off by default, since an observer of the WAN
/// then sees which class each packet is (docs/gateway-decisions.md, "Traffic classes").
pub const fn class_dscp(class: super::ClassId) -> u8 {
    use super::ClassId;
    match class {
        ClassId::Telemonitoring => 46,
        ClassId::Telemedicine => 34,
        ClassId::Imaging => 10,
        ClassId::Default => 0,
    }
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

#[cfg(test)]
#[path = "ecn_rfc6040_tests.rs"]
mod rfc6040_tests;
