//! What classifying one inner packet costs on the packet thread (`ClassRules::classify`, once per
//! packet for peers with `egress_rate`): a packet the first built-in rule takes (MQTT), one that
//! walks every built-in rule to `default` (a bulk flow on no known port), an IPv6 RTP packet
//! behind two extension headers, and the bulk packet behind 16 administrator rules with CIDRs.
//!
//! Run: `cargo bench -p gateway --bench classify`.

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use gateway::classes::ClassId;
use gateway::classes::rules::{ClassRules, Rule};

/// An IPv4 TCP/UDP packet of `len` bytes between these ports.
fn v4(protocol: u8, ports: (u16, u16), len: usize) -> Vec<u8> {
    let mut p = vec![0u8; len];
    p[0] = 0x45;
    p[2..4].copy_from_slice(&u16::try_from(len).unwrap_or(u16::MAX).to_be_bytes());
    p[9] = protocol;
    p[12..16].copy_from_slice(&[10, 0, 1, 1]);
    p[16..20].copy_from_slice(&[10, 0, 2, 1]);
    p[20..22].copy_from_slice(&ports.0.to_be_bytes());
    p[22..24].copy_from_slice(&ports.1.to_be_bytes());
    p
}

/// An IPv6 UDP packet to RTP port 20000 behind a hop-by-hop and a destination-options header.
fn v6_rtp() -> Vec<u8> {
    let mut p = vec![0u8; 40 + 8 + 8 + 8 + 160];
    p[0] = 0x60;
    let payload = u16::try_from(p.len() - 40).unwrap_or(0);
    p[4..6].copy_from_slice(&payload.to_be_bytes());
    p[6] = 0; // hop-by-hop
    p[40] = 60; // then destination options
    p[48] = 17; // then UDP
    p[56..58].copy_from_slice(&40000u16.to_be_bytes());
    p[58..60].copy_from_slice(&20000u16.to_be_bytes());
    p
}

fn classify(c: &mut Criterion) {
    let builtin = ClassRules::builtin();
    let admin: Vec<_> = (0..16u8)
        .map(|i| Rule {
            ports: vec![443..=443],
            cidr: vec![(std::net::Ipv4Addr::new(172, 16, i, 0).into(), 24)],
            ..Rule::any(ClassId::Imaging)
        })
        .collect();
    let with_admin = ClassRules::with_admin_rules(admin);
    let mqtt = v4(6, (40000, 1883), 120);
    let bulk = v4(6, (40000, 9000), 1420);
    let rtp = v6_rtp();
    let mut group = c.benchmark_group("classify");
    for (name, rules, packet) in [
        ("mqtt_first_rule", &builtin, &mqtt),
        ("bulk_every_builtin_rule", &builtin, &bulk),
        ("ipv6_rtp_two_extension_headers", &builtin, &rtp),
        ("bulk_16_admin_rules", &with_admin, &bulk),
    ] {
        group.bench_function(name, |b| {
            b.iter(|| black_box(rules.classify(black_box(packet))))
        });
    }
    group.finish();
}

criterion_group!(benches, classify);
criterion_main!(benches);
