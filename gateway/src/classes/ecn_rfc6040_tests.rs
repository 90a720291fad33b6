//! RFC 6040 between the inner and outer headers: every inner × outer combination of §4.2's
//! table on IPv4 and IPv6 packets, the §4.1 normal-mode copy, the outer TOS and the class DSCPs.
#![allow(clippy::unwrap_used)]

use super::testing::{ipv4, ipv4_checksum_ok};
use super::*;
use crate::classes::ClassId;

const ALL: [Ecn; 4] = [Ecn::NotEct, Ecn::Ect0, Ecn::Ect1, Ecn::Ce];

/// RFC 6040 Figure 4, by inner (rows) and outer (columns) in the order of [`ALL`]; `None` drops.
const FIGURE_4: [[Option<Ecn>; 4]; 4] = {
    use Ecn::*;
    [
        [Some(NotEct), Some(NotEct), Some(NotEct), None],
        [Some(Ect0), Some(Ect0), Some(Ect1), Some(Ce)],
        [Some(Ect1), Some(Ect1), Some(Ect1), Some(Ce)],
        [Some(Ce), Some(Ce), Some(Ce), Some(Ce)],
    ]
};

/// An IPv6 header (UDP, traffic class AF41 | `ecn`, flow label 0xabcde) and a payload.
fn ipv6(ecn: Ecn) -> Vec<u8> {
    let tc: u8 = (34 << 2) | ecn as u8;
    let first = (6u32 << 28) | (u32::from(tc) << 20) | 0xabcde;
    let mut p = first.to_be_bytes().to_vec();
    p.extend_from_slice(&[0, 8, 17, 64]);
    p.extend_from_slice(&[0xfd; 32]);
    p.extend_from_slice(&[0x11; 8]);
    p
}

/// The bytes a decapsulation may change: the ECN bits and, on IPv4, the header checksum.
fn beyond_ecn(p: &[u8]) -> Vec<u8> {
    let mut q = p.to_vec();
    match q[0] >> 4 {
        4 => {
            q[1] &= !0b11;
            q[10..12].fill(0);
        }
        _ => q[1] &= !0x30,
    }
    q
}

#[test]
fn decapsulation_follows_figure_4_for_every_combination_on_both_families() {
    for (row, inner) in ALL.into_iter().enumerate() {
        for (col, outer) in ALL.into_iter().enumerate() {
            for before in [ipv4(inner as u8, 60), ipv6(inner)] {
                let mut p = before.clone();
                let got = decapsulate(outer, &mut p)
                    .ok()
                    .map(|()| ecn_of(&p).unwrap());
                let case = format!("inner {inner:?} outer {outer:?} IPv{}", p[0] >> 4);
                assert_eq!(got, FIGURE_4[row][col], "{case}");
                match got {
                    None => assert_eq!(p, before, "{case}: a dropped packet is not touched"),
                    Some(_) => assert_eq!(beyond_ecn(&p), beyond_ecn(&before), "{case}"),
                }
                if p[0] >> 4 == 4 {
                    assert!(ipv4_checksum_ok(&p), "{case}: IPv4 checksum");
                }
            }
        }
    }
}

#[test]
fn the_drop_is_the_one_combination_of_outer_ce_and_inner_not_ect() {
    let mut p = ipv4(Ecn::NotEct as u8, 40);
    assert_eq!(decapsulate(Ecn::Ce, &mut p), Err(EcnDrop));
    let mut p = ipv6(Ecn::NotEct);
    assert_eq!(decapsulate(Ecn::Ce, &mut p), Err(EcnDrop));
    assert!(EcnDrop.to_string().contains("RFC 6040"));
}

#[test]
fn an_ipv4_header_with_options_keeps_a_valid_checksum() {
    let mut p = ipv4(Ecn::Ect0 as u8, 64);
    p[0] = 0x46; // 24-byte header: one 4-byte option word
    p[20..24].copy_from_slice(&[0x94, 0x04, 0, 0]); // Router Alert
    set_ipv4_checksum(&mut p[..24]);
    decapsulate(Ecn::Ce, &mut p).unwrap();
    assert_eq!(ecn_of(&p), Some(Ecn::Ce));
    assert!(ipv4_checksum_ok(&p));
}

#[test]
fn what_is_not_an_ip_packet_is_left_alone() {
    for mut junk in [vec![], vec![0x45, 0x03], vec![0x60; 39], vec![0x20; 60]] {
        let before = junk.clone();
        assert_eq!(decapsulate(Ecn::Ce, &mut junk), Ok(()));
        assert_eq!(junk, before);
    }
}

#[test]
fn normal_mode_copies_every_codepoint_ce_included() {
    for e in ALL {
        assert_eq!(outer_ecn(e), e);
    }
}

#[test]
fn a_tunnel_without_congestion_is_transparent() {
    // Outer copied at the ingress, applied at the egress: the inner field arrives as it left.
    for inner in ALL {
        for before in [ipv4(inner as u8, 60), ipv6(inner)] {
            let mut p = before.clone();
            let outer = Ecn::from_bits(outer_tos(0, &p));
            assert_eq!(decapsulate(outer, &mut p), Ok(()));
            assert_eq!(p, before, "{inner:?}");
        }
    }
}

#[test]
fn the_outer_tos_is_the_dscp_and_the_inner_ecn() {
    assert_eq!(outer_tos(46, &ipv4(Ecn::Ect0 as u8, 40)), 0xba);
    assert_eq!(
        outer_tos(0, &ipv6(Ecn::Ce)),
        0x03,
        "the inner DSCP is not copied"
    );
    assert_eq!(outer_tos(34, &ipv6(Ecn::Ect1)), 0x89);
    assert_eq!(outer_tos(10, &[0x20; 60]), 0x28, "not IP: Not-ECT");
    assert_eq!(outer_tos(0xff, &[]), 0xfc, "only 6 bits of DSCP");
}

#[test]
fn classes_carry_the_rfc_4594_code_points() {
    let tos: Vec<u8> = ClassId::ALL.map(|c| class_dscp(c) << 2).to_vec();
    // EF, AF41, AF11, DF as they appear in a TOS byte.
    assert_eq!(tos, [0xb8, 0x88, 0x28, 0x00]);
}
