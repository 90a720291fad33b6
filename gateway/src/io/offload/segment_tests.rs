//! Tests of [`super::Segments`]: TSO over IPv4 and IPv6, USO, NEEDS_CSUM completion, every
//! refusal, and arbitrary input; checksums checked with the slow reference of `testing.rs`.
#![allow(clippy::unwrap_used)]

use proptest::prelude::*;

use super::*;
use crate::io::offload::testing::{Tcp, super_packet, udp, verifies};

/// Every segment of `hdr` + `packet`, checking each against the slow reference.
fn split(hdr: &VnetHdr, packet: &[u8]) -> Vec<Vec<u8>> {
    let mut s = Segments::new(hdr, packet).unwrap();
    let count = s.count();
    let mut out = Vec::new();
    let mut buf = vec![0u8; 70_000];
    while let Some(n) = s.next_into(&mut buf) {
        assert!(n <= s.max_segment_len().max(n));
        out.push(buf[..n].to_vec());
    }
    assert_eq!((out.len(), s.remaining()), (count, 0));
    out
}

fn tcp_fields(p: &[u8], ip_len: usize) -> (u32, u8, &[u8]) {
    let seq = u32::from_be_bytes(p[ip_len + 4..ip_len + 8].try_into().unwrap());
    let hl = usize::from(p[ip_len + 12] >> 4) * 4;
    (seq, p[ip_len + 13], &p[ip_len + hl..])
}

fn tso(v6: bool) {
    let payload = Tcp::payload(4000);
    let flags = TCP_ACK | TCP_PSH | TCP_FIN | TCP_CWR;
    let big = Tcp {
        v6,
        flags,
        seq: u32::MAX - 1000,
        id: 0xffff,
        ..Tcp::default()
    };
    let (hdr, packet) = super_packet(&big.with(big.seq, &payload).build(), 1448);
    let segs = split(&hdr, &packet);
    let ip_len = if v6 { 40 } else { 20 };
    let hl = ip_len + 32;
    assert_eq!(
        segs.iter().map(Vec::len).collect::<Vec<_>>(),
        [hl + 1448, hl + 1448, hl + 1104]
    );
    let mut joined = Vec::new();
    for (i, s) in segs.iter().enumerate() {
        assert!(verifies(s), "segment {i}");
        let (seq, f, data) = tcp_fields(s, ip_len);
        assert_eq!(seq, big.seq.wrapping_add(1448 * i as u32));
        let want = match i {
            0 => TCP_ACK | TCP_CWR,
            1 => TCP_ACK,
            _ => TCP_ACK | TCP_PSH | TCP_FIN,
        };
        assert_eq!(f, want, "flags of segment {i}");
        if !v6 {
            assert_eq!(
                u16::from_be_bytes([s[4], s[5]]),
                0xffffu16.wrapping_add(i as u16)
            );
        }
        assert_eq!(
            s[ip_len..ip_len + 4],
            packet[ip_len..ip_len + 4],
            "same ports"
        );
        joined.extend_from_slice(data);
    }
    assert_eq!(joined, payload);
}

#[test]
fn tso_tcpv4_super_packet() {
    tso(false);
}

#[test]
fn tso_tcpv6_super_packet() {
    tso(true);
}

#[test]
fn uso_super_packet_over_both_versions() {
    for v6 in [false, true] {
        let payload = Tcp::payload(3000);
        let (hdr, packet) = super_packet(&udp(v6, &payload), 1200);
        let segs = split(&hdr, &packet);
        let ip_len = if v6 { 40 } else { 20 };
        let mut joined = Vec::new();
        for (s, want) in segs.iter().zip([1200, 1200, 600]) {
            assert!(verifies(s));
            assert_eq!(s.len(), ip_len + 8 + want);
            let udp_len = u16::from_be_bytes([s[ip_len + 4], s[ip_len + 5]]);
            assert_eq!(usize::from(udp_len), 8 + want);
            joined.extend_from_slice(&s[ip_len + 8..]);
        }
        assert_eq!((segs.len(), joined), (3, payload));
    }
}

#[test]
fn ipv4_options_are_copied_into_every_segment() {
    let mut packet = Tcp::default().with(1, &Tcp::payload(300)).build();
    // IHL 6: insert a 4-byte NOP option list and fix the lengths; super_packet redoes the sum.
    packet.splice(20..20, [1, 1, 1, 0]);
    packet[0] = 0x46;
    let total = packet.len() as u16;
    packet[2..4].copy_from_slice(&total.to_be_bytes());
    let (hdr, packet) = super_packet(&packet, 100);
    assert_eq!(hdr.csum_start, 24);
    let segs = split(&hdr, &packet);
    assert_eq!(segs.len(), 3);
    for s in &segs {
        assert_eq!((s[0], &s[20..24]), (0x46, &[1, 1, 1, 0][..]));
        assert_eq!(s.len(), 24 + 32 + 100);
        let hsum = crate::io::offload::testing::slow_sum(&s[..24], 0);
        assert_eq!(hsum, 0xffff);
    }
}

#[test]
fn one_segment_when_the_payload_fits() {
    for len in [0, 1, 1448] {
        let tcp = Tcp {
            flags: TCP_ACK | TCP_FIN,
            ..Tcp::default()
        };
        let (hdr, packet) = super_packet(&tcp.with(5, &Tcp::payload(len)).build(), 1448);
        let segs = split(&hdr, &packet);
        assert_eq!(segs.len(), 1);
        assert!(verifies(&segs[0]));
        assert_eq!(tcp_fields(&segs[0], 20).1, TCP_ACK | TCP_FIN);
    }
}

#[test]
fn needs_csum_completion() {
    for packet in [Tcp::default().build(), udp(true, b"odd length!")] {
        let (mut hdr, partial) = super_packet(&packet, 0);
        hdr.gso_type = GsoType::None;
        assert!(!verifies(&partial));
        let segs = split(&hdr, &partial);
        assert_eq!(segs, std::slice::from_ref(&packet));
        let mut in_place = partial.clone();
        complete_checksum(&hdr, &mut in_place).unwrap();
        assert_eq!(in_place, packet);
    }
    // Without NEEDS_CSUM (or with DATA_VALID only) a plain packet passes unchanged, even non-IP.
    let hdr = VnetHdr {
        flags: 2,
        ..VnetHdr::NONE
    };
    assert_eq!(split(&hdr, b"not ip"), [b"not ip".to_vec()]);
    assert_eq!(split(&VnetHdr::NONE, b""), [Vec::<u8>::new()]);
}

#[test]
fn a_short_destination_is_none_and_keeps_the_segment() {
    let (hdr, packet) = super_packet(&Tcp::default().with(1, &Tcp::payload(300)).build(), 200);
    let mut s = Segments::new(&hdr, &packet).unwrap();
    assert_eq!(s.max_segment_len(), 52 + 200);
    let mut small = [0u8; 100];
    assert_eq!(s.next_into(&mut small), None);
    assert_eq!(s.remaining(), 2);
    let mut buf = [0u8; 252];
    assert_eq!(s.next_into(&mut buf), Some(252));
    assert_eq!(s.next_into(&mut buf), Some(152));
    assert_eq!(s.next_into(&mut buf), None);
}

#[test]
fn every_refusal() {
    use OffloadError::*;
    let tcp4 = Tcp::default().build();
    let tcp6 = Tcp {
        v6: true,
        ..Tcp::default()
    }
    .build();
    let (h4, p4) = super_packet(&tcp4, 50);
    let (h6, p6) = super_packet(&tcp6, 50);
    let (hu, pu) = super_packet(&udp(false, b"x"), 50);
    let refused = |h: &VnetHdr, p: &[u8]| Segments::new(h, p).err();
    let with = |p: &[u8], at: usize, v: u8| {
        let mut p = p.to_vec();
        p[at] = v;
        p
    };
    assert_eq!(refused(&h4, &[]), Some(TooShort));
    assert_eq!(
        refused(&h4, &p4[..20 + 12]),
        Some(TooShort),
        "no data offset"
    );
    assert_eq!(refused(&h4, &p4[..20 + 31]), Some(TooShort), "options cut");
    assert_eq!(refused(&hu, &pu[..27]), Some(TooShort), "UDP header cut");
    assert_eq!(refused(&h4, &with(&p4, 0, 0x55)), Some(BadVersion));
    assert_eq!(refused(&h4, &p6), Some(VersionMismatch));
    assert_eq!(refused(&h6, &p4), Some(VersionMismatch));
    assert_eq!(
        refused(&h4, &with(&p4, 9, PROTO_UDP)),
        Some(ProtocolMismatch)
    );
    assert_eq!(
        refused(&h6, &with(&p6, 6, 0)),
        Some(ProtocolMismatch),
        "hop-by-hop"
    );
    assert_eq!(refused(&hu, &p4), Some(ProtocolMismatch));
    assert_eq!(refused(&h4, &with(&p4, 0, 0x44)), Some(BadHeaderLength));
    assert_eq!(
        refused(&h4, &with(&p4, 32, 0x40)),
        Some(BadHeaderLength),
        "data offset 4"
    );
    let zero = VnetHdr { gso_size: 0, ..h4 };
    assert_eq!(refused(&zero, &p4), Some(GsoSizeZero));
    let huge = VnetHdr {
        gso_size: u16::MAX - 51,
        ..h4
    };
    assert_eq!(refused(&huge, &p4), Some(GsoSizeTooLarge));
    assert!(
        refused(
            &VnetHdr {
                gso_size: u16::MAX - 52,
                ..h4
            },
            &p4
        )
        .is_none()
    );
    let csum = VnetHdr {
        gso_type: GsoType::None,
        csum_start: 20,
        csum_offset: 16,
        ..h4
    };
    assert!(refused(&csum, &p4[..38]).is_none());
    assert_eq!(refused(&csum, &p4[..37]), Some(ChecksumOutOfRange));
    let far = VnetHdr {
        csum_start: u16::MAX,
        csum_offset: u16::MAX,
        ..csum
    };
    assert_eq!(refused(&far, &p4), Some(ChecksumOutOfRange));
    assert_eq!(
        complete_checksum(&far, &mut p4.clone()),
        Err(ChecksumOutOfRange)
    );
    assert_eq!(
        VnetHdr::parse(&[0, 3, 0, 0, 0, 0, 0, 0, 0, 0]),
        Err(UnsupportedGsoType(3))
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn tso_segments_verify_and_reassemble(
        len in 0usize..9000,
        mss in 1u16..3000,
        v6 in any::<bool>(),
        seq in any::<u32>(),
    ) {
        let payload = Tcp::payload(len);
        let tcp = Tcp { v6, ..Tcp::default() }.with(seq, &payload);
        let (hdr, packet) = super_packet(&tcp.build(), mss);
        let segs = split(&hdr, &packet);
        prop_assert_eq!(segs.len(), len.div_ceil(usize::from(mss)).max(1));
        let ip_len = if v6 { 40 } else { 20 };
        let mut joined = Vec::new();
        for s in &segs {
            prop_assert!(verifies(s));
            joined.extend_from_slice(tcp_fields(s, ip_len).2);
        }
        prop_assert_eq!(joined, payload);
    }

    #[test]
    fn arbitrary_input_never_panics(
        wire in proptest::array::uniform10(any::<u8>()),
        packet in proptest::collection::vec(any::<u8>(), 0..400),
        dst_len in 0usize..500,
    ) {
        let mut packet = packet;
        if let Some(b) = packet.first_mut() {
            *b = [0x45, 0x46, 0x60, 0x44, *b][usize::from(*b % 5)];
        }
        let Ok(hdr) = VnetHdr::parse(&wire) else { return Ok(()) };
        let Ok(mut s) = Segments::new(&hdr, &packet) else { return Ok(()) };
        let mut dst = vec![0u8; dst_len];
        let mut n = 0;
        while let Some(len) = s.next_into(&mut dst) {
            prop_assert!(len <= dst_len);
            n += 1;
        }
        prop_assert!(n <= s.count());
    }
}
