//! Tests of UDP coalescing ([`super::Coalescer::with_udp`]): the exact USO header, the re-split
//! into the original datagrams, every reason merging stops (as Linux's `udp_gro_receive_segment`
//! flushes), the 64-datagram and 65535-byte caps, UDP off by default, TCP and UDP flows kept apart,
//! and a property round trip.
#![allow(clippy::unwrap_used)]

use proptest::prelude::*;

use super::*;
use crate::io::offload::testing::{
    Tcp, Udp, datagrams, drain, fix_ipv4_checksum, fix_udp_checksum, push_all, resplit,
    slow_pseudo, slow_sum,
};

/// A coalescer with UDP on.
fn on(entries: usize) -> Coalescer {
    Coalescer::with_udp(entries, true)
}

#[test]
fn datagrams_merge_into_a_uso_super_packet() {
    for v6 in [false, true] {
        let base = Udp {
            v6,
            ..Udp::default()
        };
        let originals = datagrams(&base, &[200, 200, 200, 120]);
        let mut c = on(4);
        assert!(c.merges_udp());
        use Push::*;
        assert_eq!(
            push_all(&mut c, &originals),
            [Stored, Coalesced, Coalesced, Coalesced]
        );
        let out = drain(&mut c);
        assert_eq!(out.len(), 1);
        let (hdr, p) = &out[0];
        let ip = if v6 { 40 } else { 20 };
        let want = VnetHdr {
            flags: F_NEEDS_CSUM,
            gso_type: GsoType::UdpL4,
            ecn: false,
            hdr_len: ip + 8,
            gso_size: 200,
            csum_start: ip,
            csum_offset: 6,
        };
        assert_eq!(*hdr, want, "v6 {v6}");
        let ip = usize::from(ip);
        let udp_len = 8 + 720;
        assert_eq!(p.len(), ip + udp_len);
        // IP length (and the IPv4 header checksum), the UDP length, the partial checksum.
        if v6 {
            assert_eq!(u16::from_be_bytes([p[4], p[5]]), udp_len as u16);
        } else {
            assert_eq!(usize::from(u16::from_be_bytes([p[2], p[3]])), p.len());
            assert_eq!(slow_sum(&p[..20], 0), 0xffff);
        }
        assert_eq!(u16::from_be_bytes([p[ip + 4], p[ip + 5]]), udp_len as u16);
        assert_eq!(
            u16::from_be_bytes([p[ip + 6], p[ip + 7]]),
            slow_pseudo(p, udp_len)
        );
        // The first datagram's headers (ports, IPv4 ID) are kept; the payloads follow in order.
        assert_eq!(p[ip..ip + 4], originals[0][ip..ip + 4]);
        assert_eq!(p[..2], originals[0][..2]);
        let payload: Vec<u8> = (0..4u8)
            .flat_map(|i| vec![i; if i == 3 { 120 } else { 200 }])
            .collect();
        assert_eq!(p[ip + 8..], payload[..]);
        // The kernel cuts it back into exactly what came out of the tunnel.
        assert_eq!(resplit(hdr, p), originals);
    }
}

#[test]
fn udp_coalescing_is_off_by_default() {
    let originals = datagrams(&Udp::default(), &[200; 5]);
    for mut c in [Coalescer::new(8), Coalescer::with_udp(8, false)] {
        assert!(!c.merges_udp());
        assert_eq!(push_all(&mut c, &originals), [Push::Stored; 5]);
        let out = drain(&mut c);
        assert!(out.iter().all(|(h, _)| *h == VnetHdr::NONE));
        let written: Vec<_> = out.into_iter().map(|(_, p)| p).collect();
        assert_eq!(written, originals);
    }
}

/// The second datagram of each case cannot extend the first; both are written as they came.
#[test]
fn merging_stops_where_linux_would_flush() {
    let v4 = Udp::default();
    let v6 = Udp {
        v6: true,
        ..Udp::default()
    };
    let edit = |base: &Udp, f: &dyn Fn(&mut Vec<u8>)| {
        let mut p = base.with(&[1; 200]).build();
        f(&mut p);
        p
    };
    let cases: Vec<(&str, Udp, Vec<u8>)> = vec![
        (
            "other src port",
            v4.clone(),
            Udp {
                src_port: 1,
                ..v4.with(&[1; 200])
            }
            .build(),
        ),
        (
            "other dst port",
            v4.clone(),
            Udp {
                dst_port: 1,
                ..v4.with(&[1; 200])
            }
            .build(),
        ),
        ("longer payload", v4.clone(), v4.with(&[1; 201]).build()),
        ("empty payload", v4.clone(), v4.with(&[]).build()),
        (
            "ttl",
            v4.clone(),
            Udp {
                ttl: 63,
                ..v4.with(&[1; 200])
            }
            .build(),
        ),
        (
            "tos",
            v4.clone(),
            Udp {
                tos: 4,
                ..v4.with(&[1; 200])
            }
            .build(),
        ),
        (
            "hop limit",
            v6.clone(),
            Udp {
                ttl: 63,
                ..v6.with(&[1; 200])
            }
            .build(),
        ),
        (
            "traffic class",
            v6.clone(),
            Udp {
                tos: 4,
                ..v6.with(&[1; 200])
            }
            .build(),
        ),
        ("flow label", v6.clone(), edit(&v6, &|p| p[3] ^= 1)),
        (
            "DF",
            v4.clone(),
            edit(&v4, &|p| {
                p[6] &= !0x40;
                fix_ipv4_checksum(p);
            }),
        ),
        (
            "fragment (MF)",
            v4.clone(),
            edit(&v4, &|p| {
                p[6] |= 0x20;
                fix_ipv4_checksum(p);
            }),
        ),
        (
            "IPv4 options",
            v4.clone(),
            edit(&v4, &|p| {
                p.splice(20..20, [1, 1, 1, 0]);
                p[0] = 0x46;
                let total = p.len() as u16;
                p[2..4].copy_from_slice(&total.to_be_bytes());
                fix_ipv4_checksum(p);
            }),
        ),
        (
            "UDP length short of the datagram",
            v4.clone(),
            edit(&v4, &|p| {
                p[25] -= 1;
                fix_udp_checksum(p);
            }),
        ),
        (
            "IP length short of the packet",
            v4.clone(),
            edit(&v4, &|p| {
                p[3] -= 1;
                fix_ipv4_checksum(p);
            }),
        ),
        (
            "zero checksum",
            v4.clone(),
            edit(&v4, &|p| p[26..28].fill(0)),
        ),
        (
            "zero checksum that sums right",
            v4.clone(),
            edit(&v4, &|p| {
                // The last two payload bytes make the datagram sum to 0xffff with a zero field,
                // so only the "no checksum" rule keeps it apart.
                p[26..28].fill(0);
                let n = p.len();
                p[n - 2..].fill(0);
                let s = slow_sum(&p[20..], slow_pseudo(p, n - 20));
                p[n - 2..].copy_from_slice(&(!s).to_be_bytes());
                assert_eq!(slow_sum(&p[20..], slow_pseudo(p, n - 20)), 0xffff);
            }),
        ),
        ("bad checksum", v4.clone(), edit(&v4, &|p| p[40] ^= 1)),
        (
            "bad header checksum",
            v4.clone(),
            edit(&v4, &|p| p[10] ^= 1),
        ),
        ("bad checksum v6", v6.clone(), edit(&v6, &|p| p[60] ^= 1)),
    ];
    for (what, base, second) in cases {
        let first = base.with(&[0; 200]).build();
        let mut c = on(4);
        assert_eq!(
            push_all(&mut c, &[first.clone(), second.clone()]),
            [Push::Stored; 2],
            "{what}"
        );
        let out = drain(&mut c);
        assert_eq!(
            out,
            [(VnetHdr::NONE, first), (VnetHdr::NONE, second)],
            "{what}"
        );
    }
}

#[test]
fn a_shorter_datagram_closes_the_entry() {
    use Push::*;
    for sizes in [[200, 100, 200], [200, 100, 100], [200, 199, 1]] {
        let mut c = on(4);
        let got = push_all(&mut c, &datagrams(&Udp::default(), &sizes));
        assert_eq!(got, [Stored, Coalesced, Stored], "{sizes:?}");
        assert_eq!(drain(&mut c)[0].0.gso_size, 200);
    }
}

#[test]
fn no_datagram_merges_past_an_unmergeable_one() {
    let base = Udp::default();
    let mut zero = base.with(&[1; 200]).build();
    zero[26..28].fill(0);
    let mut bad = base.with(&[1; 200]).build();
    bad[30] ^= 1;
    use Push::*;
    for odd in [zero, bad] {
        let good = || base.with(&[2; 200]).build();
        let mut c = on(4);
        let got = push_all(&mut c, &[good(), odd.clone(), good(), good()]);
        // The odd one is the flow's latest entry, so the next cannot reach back past it; it
        // starts an entry of its own, which the one after extends.
        assert_eq!(got, [Stored, Stored, Stored, Coalesced]);
        let out = drain(&mut c);
        assert_eq!(out[1], (VnetHdr::NONE, odd));
        assert_eq!(out[2].0.gso_type, GsoType::UdpL4);
    }
    // A zero-checksum datagram first: stored alone, never extended.
    let mut c = on(4);
    let mut first = base.with(&[1; 200]).build();
    first[26..28].fill(0);
    assert_eq!(c.push(&first), Stored);
    assert_eq!(c.push(&base.with(&[1; 200]).build()), Stored);
    assert_eq!(drain(&mut c)[0], (VnetHdr::NONE, first));
}

#[test]
fn at_most_64_datagrams_per_entry() {
    assert_eq!(UDP_MAX_SEGMENTS, 64);
    let mut c = on(4);
    let originals = datagrams(&Udp::default(), &[100; 130]);
    let got = push_all(&mut c, &originals);
    let stored: Vec<_> = (0..got.len()).filter(|&i| got[i] == Push::Stored).collect();
    assert_eq!(stored, [0, 64, 128]);
    let out = drain(&mut c);
    let counts: Vec<_> = out.iter().map(|(h, p)| resplit(h, p).len()).collect();
    assert_eq!(counts, [64, 64, 2]);
    let back: Vec<_> = out.iter().flat_map(|(h, p)| resplit(h, p)).collect();
    // Entries after the first start from a later datagram, whose own ID they keep.
    assert_eq!(back, originals);
}

#[test]
fn the_merged_packet_stays_within_65535_bytes() {
    for v6 in [false, true] {
        let base = Udp {
            v6,
            ..Udp::default()
        };
        let mut c = on(2);
        let got = push_all(&mut c, &datagrams(&base, &[1400; 48]));
        assert_eq!(got.iter().filter(|p| **p == Push::Stored).count(), 2);
        let out = drain(&mut c);
        let hl = usize::from(out[0].0.hdr_len);
        // 46 datagrams fit (headers + 46 × 1400 ≤ 65535 < headers + 47 × 1400), 2 go on.
        assert_eq!(
            (out[0].1.len(), out[1].1.len()),
            (hl + 46 * 1400, hl + 2 * 1400)
        );
        assert!(out[0].1.len() <= MAX_PACKET_LEN);
    }
}

#[test]
fn tcp_and_udp_flows_keep_their_own_entries() {
    // Same addresses and ports: the protocol alone tells the flows apart.
    let tcp = Tcp::default();
    let u4 = Udp {
        src_port: tcp.src_port,
        dst_port: tcp.dst_port,
        ..Udp::default()
    };
    let u6 = Udp {
        v6: true,
        ..Udp::default()
    };
    let mut packets = Vec::new();
    for i in 0..3u8 {
        packets.push(tcp.with(1000 + 100 * u32::from(i), &[i; 100]).build());
        packets.push(u4.with(&[i; 200]).build());
        packets.push(u6.with(&[i; 300]).build());
    }
    let mut c = on(4);
    let got = push_all(&mut c, &packets);
    assert_eq!(got.iter().filter(|p| **p == Push::Stored).count(), 3);
    let out = drain(&mut c);
    let shapes: Vec<_> = out.iter().map(|(h, _)| (h.gso_type, h.gso_size)).collect();
    assert_eq!(
        shapes,
        [
            (GsoType::TcpV4, 100),
            (GsoType::UdpL4, 200),
            (GsoType::UdpL4, 300)
        ]
    );
    for (h, p) in &out {
        assert_eq!(resplit(h, p).len(), 3);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn datagrams_round_trip_through_one_entry(
        size in 1usize..1500,
        count in 0usize..64,
        last in 1usize..1500,
        v6 in any::<bool>(),
        id in any::<u16>(),
        fill in any::<u8>(),
    ) {
        let last = last.min(size);
        // Keep the whole within one IP packet.
        let count = count.min((MAX_PACKET_LEN - 48 - last) / size);
        let base = Udp { v6, id, ..Udp::default() };
        let originals: Vec<Vec<u8>> = (0..=count)
            .map(|i| {
                let n = if i == count { last } else { size };
                let payload: Vec<u8> = (0..n).map(|j| fill ^ (i * 31 + j) as u8).collect();
                Udp { id: id.wrapping_add(i as u16), ..base.with(&payload) }.build()
            })
            .collect();
        let mut c = on(2);
        for p in &originals {
            prop_assert_ne!(c.push(p), Push::Full);
        }
        let out = drain(&mut c);
        prop_assert_eq!(out.len(), 1);
        let (h, p) = &out[0];
        if originals.len() > 1 {
            prop_assert_eq!((h.gso_type, usize::from(h.gso_size)), (GsoType::UdpL4, size));
            prop_assert_eq!(resplit(h, p), originals);
        } else {
            prop_assert_eq!(*h, VnetHdr::NONE);
            prop_assert_eq!(p, &originals[0]);
        }
    }
}
