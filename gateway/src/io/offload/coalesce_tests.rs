//! Tests of [`super::Coalescer`]: what merges, every reason merging stops, flows kept apart,
//! capacity, write failures, and the split → coalesce round trip.
#![allow(clippy::unwrap_used)]

use proptest::prelude::*;

use super::*;
use crate::io::offload::segment::{TCP_ACK, TCP_CWR, TCP_ECE, TCP_FIN, TCP_RST, TCP_SYN, TCP_URG};
use crate::io::offload::testing::{
    Tcp, drain, fix_ipv4_checksum, push_all, super_packet, udp, verifies,
};
use crate::io::offload::{Segments, complete_checksum};

/// Three consecutive 100-byte segments of `base`'s flow, from seq 1000, IPv4 IDs counting up.
fn run(base: &Tcp) -> Vec<Vec<u8>> {
    let packet = |i: u16| Tcp {
        id: base.id + i,
        ..base.with(1000 + 100 * u32::from(i), &[i as u8; 100])
    };
    (0..3).map(|i| packet(i).build()).collect()
}

/// The entry checked as a super-packet: its checksum completes and verifies; its payload.
fn complete(hdr: &VnetHdr, packet: &[u8]) -> Vec<u8> {
    let mut p = packet.to_vec();
    complete_checksum(hdr, &mut p).unwrap();
    assert!(verifies(&p));
    p[usize::from(hdr.hdr_len)..].to_vec()
}

#[test]
fn consecutive_segments_merge() {
    for v6 in [false, true] {
        let base = Tcp {
            v6,
            ..Tcp::default()
        };
        let mut c = Coalescer::new(4);
        use Push::*;
        assert_eq!(
            push_all(&mut c, &run(&base)),
            [Stored, Coalesced, Coalesced]
        );
        assert_eq!(c.len(), 1);
        let out = drain(&mut c);
        let (hdr, packet) = &out[0];
        let ip_len = if v6 { 40 } else { 20 };
        let want = VnetHdr {
            flags: F_NEEDS_CSUM,
            gso_type: if v6 { GsoType::TcpV6 } else { GsoType::TcpV4 },
            ecn: false,
            hdr_len: ip_len + 32,
            gso_size: 100,
            csum_start: ip_len,
            csum_offset: 16,
        };
        assert_eq!((out.len(), *hdr), (1, want));
        assert_eq!(packet.len(), usize::from(ip_len) + 32 + 300);
        let payload = complete(hdr, packet);
        assert_eq!(payload, [[0u8; 100], [1; 100], [2; 100]].concat());
        // The kernel re-segments it into what we received.
        let mut s = Segments::new(hdr, packet).unwrap();
        assert_eq!(s.count(), 3);
        let mut buf = [0u8; 2000];
        for original in run(&base) {
            let n = s.next_into(&mut buf).unwrap();
            assert_eq!(buf[..n], original[..]);
        }
    }
}

#[test]
fn a_single_packet_is_written_unchanged_with_a_zero_header() {
    let mut c = Coalescer::new(2);
    let tcp = Tcp::default().build();
    let u = udp(false, b"hello");
    assert_eq!(
        push_all(&mut c, &[tcp.clone(), u.clone()]),
        [Push::Stored; 2]
    );
    assert_eq!(drain(&mut c), [(VnetHdr::NONE, tcp), (VnetHdr::NONE, u)]);
}

#[test]
fn merging_stops_where_linux_would_flush() {
    let base = Tcp::default();
    let first = base.with(1000, &[0; 100]);
    let next = base.with(1100, &[1; 100]);
    let mut cases: Vec<(&str, Tcp)> = vec![
        ("gap", base.with(1101, &[1; 100])),
        ("out of order", base.with(900, &[1; 100])),
        (
            "ack changed",
            Tcp {
                ack: 8,
                ..next.clone()
            },
        ),
        (
            "options differ",
            Tcp {
                options: vec![1, 1, 8, 10, 0, 0, 0, 9, 0, 0, 0, 2],
                ..next.clone()
            },
        ),
        (
            "no options",
            Tcp {
                options: vec![],
                ..next.clone()
            },
        ),
        (
            "ttl",
            Tcp {
                ttl: 63,
                ..next.clone()
            },
        ),
        (
            "tos",
            Tcp {
                tos: 2,
                ..next.clone()
            },
        ),
        ("longer payload", base.with(1100, &[1; 101])),
        ("empty payload", base.with(1100, &[])),
        (
            "other port",
            Tcp {
                src_port: 1,
                ..next.clone()
            },
        ),
    ];
    for flag in [TCP_SYN, TCP_FIN, TCP_RST, TCP_URG, TCP_ECE, TCP_CWR] {
        cases.push((
            "flag",
            Tcp {
                flags: TCP_ACK | flag,
                ..next.clone()
            },
        ));
    }
    cases.push((
        "no ACK",
        Tcp {
            flags: TCP_PSH,
            ..next.clone()
        },
    ));
    for (what, second) in cases {
        let mut c = Coalescer::new(4);
        assert_eq!(
            push_all(&mut c, &[first.build(), second.build()]),
            [Push::Stored; 2],
            "{what}"
        );
        assert_eq!(drain(&mut c).len(), 2);
    }
    // DF differs: clear it and fix the header checksum.
    let mut no_df = next.build();
    no_df[6] = 0;
    fix_ipv4_checksum(&mut no_df);
    let mut co = Coalescer::new(4);
    assert_eq!(
        push_all(&mut co, &[first.build(), no_df]),
        [Push::Stored; 2],
        "DF"
    );
}

#[test]
fn a_short_segment_or_psh_ends_the_entry() {
    let base = Tcp::default();
    use Push::*;
    for (end, extra) in [
        (base.with(1100, &[1; 50]), base.with(1150, &[2; 50])),
        (base.with(1100, &[1; 100]).psh(), base.with(1200, &[2; 100])),
    ] {
        let mut c = Coalescer::new(4);
        let got = push_all(
            &mut c,
            &[
                base.with(1000, &[0; 100]).build(),
                end.build(),
                extra.build(),
            ],
        );
        assert_eq!(got, [Stored, Coalesced, Stored]);
        let out = drain(&mut c);
        let flags = out[0].1[20 + 13];
        assert_eq!(
            flags & TCP_PSH,
            end.flags & TCP_PSH,
            "PSH carried to the super-packet"
        );
    }
}

#[test]
fn the_merged_packet_stays_within_65535_bytes() {
    for v6 in [false, true] {
        let base = Tcp {
            v6,
            ..Tcp::default()
        };
        let mut c = Coalescer::new(2);
        let mss = 1400;
        let mut seq = 0;
        let mut pushes = Vec::new();
        for _ in 0..48 {
            pushes.push(c.push(&base.with(seq, &vec![7; mss]).build()));
            seq += mss as u32;
        }
        assert_eq!(
            pushes.iter().filter(|p| **p == Push::Stored).count(),
            2,
            "v6 {v6}"
        );
        let out = drain(&mut c);
        let hl = usize::from(out[0].0.hdr_len);
        // 46 segments fit (headers + 46 × 1400 ≤ 65535 < headers + 47 × 1400), 2 go on.
        assert_eq!(
            (out[0].1.len(), out[1].1.len()),
            (hl + 46 * mss, hl + 2 * mss)
        );
    }
}

#[test]
fn a_bad_checksum_is_kept_alone() {
    let base = Tcp::default();
    let mut bad_payload = base.with(1100, &[1; 100]).build();
    bad_payload[80] ^= 1;
    let mut bad_header = base.with(1100, &[1; 100]).build();
    bad_header[10] ^= 1;
    for bad in [bad_payload, bad_header] {
        let mut c = Coalescer::new(4);
        let after = base.with(1100, &[1; 100]).build();
        let got = push_all(
            &mut c,
            &[base.with(1000, &[0; 100]).build(), bad.clone(), after],
        );
        // The bad packet is the flow's latest entry, so the good one after it cannot reach
        // back past it: the flow's order is kept.
        assert_eq!(got, [Push::Stored; 3]);
        assert_eq!(drain(&mut c)[1], (VnetHdr::NONE, bad));
    }
}

#[test]
fn interleaved_flows_keep_their_own_entries() {
    let a = Tcp::default();
    let b = Tcp {
        v6: true,
        ..Tcp::default()
    };
    let d = Tcp {
        dst_port: 80,
        ..Tcp::default()
    };
    let mut c = Coalescer::new(4);
    let mut packets = Vec::new();
    for i in 0..3 {
        for flow in [&a, &b, &d] {
            packets.push(flow.with(1000 + 100 * i, &[i as u8; 100]).build());
        }
    }
    let got = push_all(&mut c, &packets);
    assert_eq!(got.iter().filter(|p| **p == Push::Stored).count(), 3);
    let out = drain(&mut c);
    assert_eq!(out.len(), 3);
    for ((hdr, p), v6) in out.iter().zip([false, true, false]) {
        assert_eq!(
            hdr.gso_type,
            if v6 { GsoType::TcpV6 } else { GsoType::TcpV4 }
        );
        assert_eq!(complete(hdr, p).len(), 300);
    }
}

#[test]
fn what_is_never_merged() {
    let base = Tcp::default();
    let mut frag = base.with(1100, &[1; 100]).build();
    frag[6] |= 0x20; // MF: still a (first) fragment of this flow
    let mut options = base.with(1100, &[1; 100]).build();
    options.splice(20..20, [1, 1, 1, 0]);
    options[0] = 0x46;
    let u = udp(false, &[0; 100]);
    for (what, p) in [
        ("fragment", frag),
        ("IPv4 options", options),
        ("UDP", u.clone()),
        ("UDP again", u),
    ] {
        let mut c = Coalescer::new(4);
        let first = base.with(1000, &[0; 100]).build();
        assert_eq!(push_all(&mut c, &[first, p]), [Push::Stored; 2], "{what}");
    }
}

#[test]
fn full_when_out_of_entries_and_too_long() {
    let mut c = Coalescer::new(2);
    assert_eq!(c.capacity(), 2);
    let base = Tcp::default();
    let u = udp(false, b"x");
    assert_eq!(
        push_all(&mut c, &[base.with(0, &[0; 10]).build(), u.clone()]),
        [Push::Stored; 2]
    );
    assert_eq!(c.push(&u), Push::Full);
    // A full coalescer still extends an entry.
    assert_eq!(c.push(&base.with(10, &[0; 10]).build()), Push::Coalesced);
    assert_eq!(c.push(&vec![0x45; 65536]), Push::TooLong);
    assert_eq!(drain(&mut c).len(), 2);
    assert_eq!(c.push(&u), Push::Stored);
    assert_eq!(Coalescer::new(0).capacity(), 1);
}

#[test]
fn a_failed_write_drops_only_that_entry() {
    let mut c = Coalescer::new(3);
    for i in 0..3u8 {
        assert_eq!(c.push(&udp(false, &[i])), Push::Stored);
    }
    let mut calls = 0;
    let d = c.drain(|_| {
        calls += 1;
        if calls == 2 {
            Err(io::Error::other("EAGAIN"))
        } else {
            Ok(())
        }
    });
    assert_eq!((d.written, d.failed, calls), (2, 1, 3));
    assert_eq!(d.first_error.unwrap().to_string(), "EAGAIN");
    assert!(c.is_empty());
    assert_eq!(c.len(), 0);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn split_then_coalesce_round_trips(
        len in 1usize..20_000,
        mss in 64u16..4000,
        v6 in any::<bool>(),
        seq in any::<u32>(),
    ) {
        let payload = Tcp::payload(len);
        let tcp = Tcp { v6, flags: TCP_ACK | TCP_PSH, ..Tcp::default() }.with(seq, &payload);
        let (hdr, packet) = super_packet(&tcp.build(), mss);
        let mut s = Segments::new(&hdr, &packet).unwrap();
        let mut c = Coalescer::new(4);
        let mut buf = vec![0u8; 65_536];
        while let Some(n) = s.next_into(&mut buf) {
            prop_assert_ne!(c.push(&buf[..n]), Push::Full);
        }
        let out = drain(&mut c);
        prop_assert_eq!(out.len(), 1);
        let (h, p) = &out[0];
        if len > usize::from(mss) {
            prop_assert_eq!((h.gso_size, h.gso_type), (mss, hdr.gso_type));
            prop_assert_eq!(complete(h, p), payload);
        } else {
            prop_assert_eq!(*h, VnetHdr::NONE);
            prop_assert!(verifies(p));
        }
        prop_assert!(p[usize::from(hdr.csum_start) + 13] & TCP_PSH != 0);
    }
}
