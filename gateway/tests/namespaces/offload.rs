//! The data path with segmentation offloads on (the default) and forced off (`offload: false`),
//! and both modes facing each other and wireguard-go: pings with full-size packets over IPv4 and
//! IPv6, TCP transfers both ways checked by SHA-256 (TCP is what the kernel hands over as 64 KiB
//! super-packets, TSO), bursts of numbered UDP datagrams (200 and 1372 bytes) both ways, each
//! checked byte for byte (a receiving gateway with offloads merges them into USO super-packets),
//! and `qgw status` naming the offloads in use and showing that super-packets were cut and
//! coalesced where they are on. The hybrid key agreement rotating every 5 s under a
//! TCP transfer runs in both modes too. See `netns/mod.rs` for the harness and its CI rules.
#![allow(clippy::unwrap_used)]

use crate::netns;

use std::time::{Duration, Instant};

use netns::hybrid::{Sites, start_sites};
use netns::lab::Lab;
use netns::pair::{PairOptions, SiteSetup, start_qgw_pair, start_wireguard_go_pair};
use netns::qgw::status;
use netns::traffic::{assert_pings_both_ways, assert_tcp_transfer, udp_burst};

/// Without offloads, with two crypto threads; the suite's other runs (netns/mod.rs) cover the
/// other two combinations.
const OFF: &str = "offload: false\nthreads: 2";
/// Explicit, so that a run with `QGW_TEST_OFFLOAD=off` (netns/mod.rs) does not turn it off; with
/// one crypto thread.
const ON: &str = "offload: true\nthreads: 1";

fn setup(on: bool) -> SiteSetup<'static> {
    SiteSetup {
        interface: if on { ON } else { OFF },
        ..SiteSetup::default()
    }
}

/// Checks site `ns`'s `qgw status --json` against offload mode `on` after traffic both ways.
#[track_caller]
fn assert_offloads(lab: &Lab, ns: &str, iface: &str, on: bool) {
    let st = status(lab, ns, iface);
    let o = &st["offloads"];
    // The TCP transfers' batches are large enough to share between two threads.
    let (threads, shared) = (&o["crypto_threads"], o["crypto_shared_batches"].as_u64());
    if on {
        assert_eq!(
            (threads, shared),
            (&serde_json::json!(1), Some(0)),
            "{ns}: {o}"
        );
    } else {
        assert_eq!(threads, 2, "{ns}: {o}");
        assert!(
            shared > Some(0),
            "{ns}: no batch shared by two threads: {o}"
        );
    }
    let in_use: Vec<&str> = (o["in_use"].as_array().unwrap().iter())
        .map(|v| v.as_str().unwrap())
        .collect();
    if !on {
        assert!(
            in_use.is_empty(),
            "{ns}: offloads forced off, in use {in_use:?}"
        );
        assert_eq!(o["tun_segmented"], 0, "{o}");
        return;
    }
    // This kernel (6.x) has all of them.
    for want in ["tun_vnet_hdr", "tun_tso", "tun_uso", "udp_gso", "udp_gro"] {
        assert!(
            in_use.contains(&want),
            "{ns}: {want} not in use: {in_use:?}"
        );
    }
    assert!(
        o["tun_segmented"].as_u64().unwrap() > 0,
        "{ns}: no TSO super-packet: {o}"
    );
    assert_eq!(o["tun_refused"], serde_json::json!({}), "{ns}: {o}");
}

#[test]
fn qgw_pairs_carry_tcp_both_ways_with_offloads_on_off_and_mixed() {
    for (a_on, b_on) in [(true, true), (false, false), (true, false)] {
        let Some(mut lab) = Lab::for_test(&[], None) else {
            return;
        };
        let o = PairOptions {
            v6: true,
            a: setup(a_on),
            b: setup(b_on),
            ..PairOptions::default()
        };
        let p = start_qgw_pair(&mut lab, o);
        let (a, b) = (lab.a.clone(), lab.b.clone());
        let what = format!("offloads a {a_on} b {b_on}");
        // Full-size IPv6 packets: 1420 − 40 (IPv6) − 8 (ICMPv6) = 1372 bytes of payload.
        assert_pings_both_ways(&lab, 2, Some(1372), true);
        let size = 48 << 20;
        assert_tcp_transfer(&b, &a, "10.201.0.2:5001", size, &format!("{what}: a -> b"));
        assert_tcp_transfer(&a, &b, "10.201.0.1:5001", size, &format!("{what}: b -> a"));
        assert_tcp_transfer(&b, &a, "[fd00:201::2]:5002", size, &format!("{what}: v6"));
        // Small UDP datagrams in bursts (what the receiving gateway merges into USO super-packets
        // when it has offloads), and full-size ones, both ways.
        for (to_ns, from_ns, to) in [(&b, &a, "10.201.0.2:6001"), (&a, &b, "[fd00:201::1]:6002")] {
            for len in [200, 1372] {
                let got = udp_burst(to_ns, from_ns, to.parse().unwrap(), 3000, len);
                assert_eq!(
                    got,
                    (3000, 0, 0),
                    "{what}: UDP {len} B to {to}: (intact, damaged, twice)"
                );
            }
        }
        assert_offloads(&lab, &a, &p.ia, a_on);
        assert_offloads(&lab, &b, &p.ib, b_on);
    }
}

#[test]
fn wireguard_go_interoperates_with_offloads_on_and_off() {
    for on in [true, false] {
        let Some(mut lab) = Lab::for_test(&["wireguard-go", "wg"], None) else {
            return;
        };
        let o = PairOptions {
            psk: true,
            a: setup(on),
            ..PairOptions::default()
        };
        let p = start_wireguard_go_pair(&mut lab, o);
        let (a, b) = (lab.a.clone(), lab.b.clone());
        assert_pings_both_ways(&lab, 2, Some(1392), false);
        let size = 48 << 20;
        assert_tcp_transfer(
            &b,
            &a,
            "10.201.0.2:5001",
            size,
            &format!("offload {on}: a -> b"),
        );
        assert_tcp_transfer(
            &a,
            &b,
            "10.201.0.1:5001",
            size,
            &format!("offload {on}: b -> a"),
        );
        assert_offloads(&lab, &a, &p.ia, on);
    }
}

#[test]
fn hybrid_rotation_every_5s_under_a_tcp_transfer_with_offloads_on_and_off() {
    for on in [true, false] {
        let Some(sites) = start_sites(&[], "required", if on { ON } else { OFF }) else {
            return;
        };
        // The KME simulator (`sites.sim`) stays alive until the end of this iteration.
        let Sites {
            lab,
            na,
            nb,
            ia,
            ib,
            ..
        } = sites;
        let epoch = |ns: &str, iface: &str| {
            status(&lab, ns, iface)["peers"][0]["epoch"]
                .as_u64()
                .unwrap()
        };
        // Back-to-back transfers until two more epochs have been made under them (a rotation
        // every 5 s: ~10 s; bounded at 40 s).
        let first = epoch(&na, &ia);
        let start = Instant::now();
        let mut transfers = 0;
        while epoch(&na, &ia) < first + 2 {
            assert!(
                start.elapsed() < Duration::from_secs(40),
                "no rotation in 40 s"
            );
            let what = format!("offload {on}: transfer {transfers}");
            assert_tcp_transfer(&nb, &na, "10.201.0.2:5001", 16 << 20, &what);
            transfers += 1;
        }
        assert!(
            transfers >= 2,
            "the rotations happened under load ({transfers} transfers)"
        );
        assert!(epoch(&nb, &ib) >= first + 2);
        assert_offloads(&lab, &na, &ia, on);
    }
}
