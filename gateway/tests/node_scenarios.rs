//! Whole nodes in the simulation, one scenario each (WireGuard behaviour of the node: whitepaper
//! §2 cryptokey routing, §5.3 cookies under load, §5.4 staging and handshakes): packets staged
//! until the first handshake, routing and source filtering, cookies under a handshake flood, IPv6
//! inside the tunnel, peers the configuration must refuse, and arbitrary input. Every step of
//! every scenario is also checked for the simulation's invariants.
#![allow(clippy::unwrap_used)]

mod sim;

use std::time::Duration;

use gateway::DropReason;
use gateway::Error;
use gateway::node::testing::{Site, ipv4, node, plain};
use gateway::node::{NodePeer, PeerId, Received};
use proptest::prelude::*;
use sim::World;

const A: Site = Site(1);
const B: Site = Site(2);

fn pair(seed: u64, load_threshold: u32) -> World {
    let mut w = World::new(seed);
    for (me, other) in [(A, B), (B, A)] {
        let mut config = plain(me, &[other], true);
        config.load_threshold = load_threshold;
        w.add(me, config);
    }
    w
}

#[test]
fn the_first_packet_is_staged_then_delivered_both_ways() {
    let mut w = pair(1, 1000);
    w.tun_send(A, B, 1);
    w.run_for(Duration::from_millis(100));
    assert_eq!(
        w.received_tags(B),
        [1],
        "the staged packet went out after the handshake"
    );
    w.tun_send(B, A, 2);
    w.run_for(Duration::from_millis(100));
    assert_eq!(w.received_tags(A), [2]);
    let a = w.node(A);
    assert!(a.wg_peer(PeerId::new(0)).unwrap().stats().tx_bytes > 0);
    assert_eq!(
        a.drops()[DropReason::NoSession.index()],
        0,
        "staging is no drop"
    );
}

#[test]
fn unroutable_and_spoofed_packets_are_dropped_and_counted() {
    let mut w = pair(2, 1000);
    w.tun_packet(A, ipv4(A.ip(1), [172, 16, 0, 1], b"nowhere"));
    w.tun_send(A, B, 1);
    w.run_for(Duration::from_millis(100));
    // A sends with a source address that is not in A's allowed IPs at B.
    w.tun_packet(A, ipv4([10, 9, 9, 9], B.ip(1), b"spoofed"));
    w.run_for(Duration::from_millis(100));
    assert_eq!(w.delivered(B).len(), 1, "only the legitimate packet");
    assert_eq!(w.node(B).drops()[DropReason::SourceNotAllowed.index()], 1);
    assert_eq!(w.node(A).drops()[DropReason::NoRoute.index()], 1);
}

/// An attacker sends initiations with a valid mac1 (it knows B's public key) but garbage inside.
fn flood(w: &mut World, to: Site) {
    use zerocopy::{FromZeros, IntoBytes};
    let mac1_key = gateway::proto::handshake::StaticKeys::new(to.private_key()).mac1_key;
    for i in 0..10u8 {
        let mut m = gateway::proto::messages::Initiation::new_zeroed();
        m.header = gateway::proto::messages::Header::new(1);
        m.ephemeral = [i.wrapping_mul(29).wrapping_add(9); 32];
        gateway::proto::cookie::stamp(&mut m, &mac1_key, None);
        let attacker = "203.0.113.66:9999".parse().unwrap();
        w.inject(attacker, to.addr(), m.as_bytes().to_vec());
    }
}

#[test]
fn a_handshake_flood_triggers_cookies_and_the_real_peer_still_connects() {
    let mut w = pair(3, 4);
    flood(&mut w, B);
    w.run_for(Duration::from_millis(10));
    assert!(w.node(B).drops()[DropReason::DecryptFailed.index()] >= 4);
    // B is under load now: A's initiation gets a cookie reply, A's retry carries mac2.
    w.tun_send(A, B, 7);
    w.run_for(Duration::from_millis(10));
    assert!(
        w.delivered(B).is_empty(),
        "the first initiation was answered with a cookie"
    );
    let replies = w.node(B).drops()[DropReason::CookieRequired.index()];
    assert!(replies >= 1);
    // Keep B under load until A retries (REKEY_TIMEOUT + jitter).
    for _ in 0..6 {
        flood(&mut w, B);
        w.run_for(Duration::from_secs(1));
    }
    assert_eq!(
        w.received_tags(B),
        [7],
        "the retry carried a valid mac2 while B was under load"
    );
    let a_replies = w.node(A).drops()[DropReason::CookieRequired.index()];
    assert_eq!(a_replies, 0, "A was never asked for a cookie");
}

#[test]
fn ipv6_inside_the_tunnel() {
    let mut w = World::new(4);
    let v6 = |s: Site| std::net::IpAddr::from([0xfd00, 0, s.0, 0, 0, 0, 0, 0]);
    for (me, other) in [(A, B), (B, A)] {
        let mut config = plain(me, &[other], false);
        config.peers[0].wg.allowed_ips.push((v6(other), 64));
        w.add(me, config);
    }
    let mut p = vec![0u8; 48];
    p[0] = 0x60;
    p[4..6].copy_from_slice(&8u16.to_be_bytes());
    p[6] = 17;
    p[8..10].copy_from_slice(&[0xfd, 0]);
    p[12..14].copy_from_slice(&[0, 1]);
    p[24..26].copy_from_slice(&[0xfd, 0]);
    p[28..30].copy_from_slice(&[0, 2]);
    w.tun_packet(A, p.clone());
    w.run_for(Duration::from_millis(100));
    assert_eq!(w.delivered(B), [p]);
}

#[test]
fn duplicate_self_and_low_order_peers_are_refused() {
    let now = std::time::Instant::now();
    let mut a = node(now, plain(A, &[B], false), 5);
    let peer = |key: [u8; 32]| NodePeer {
        name: "x".into(),
        wg: gateway::node::PeerSpec {
            public_key: key,
            ..B.as_peer(None)
        },
        hybrid: None,
        egress: gateway::classes::PeerEgress::default(),
    };
    assert!(matches!(
        a.add_peer(now, peer(B.public_key())),
        Err(Error::DuplicatePeer)
    ));
    assert!(matches!(
        a.add_peer(now, peer(A.public_key())),
        Err(Error::DuplicatePeer)
    ));
    assert!(matches!(
        a.add_peer(now, peer([0; 32])),
        Err(Error::InvalidKey(_))
    ));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]
    /// Arbitrary datagrams (random, or a real initiation with bytes changed) never panic and never
    /// reach the tunnel.
    #[test]
    fn arbitrary_datagrams_never_reach_the_tunnel(
        bytes in proptest::collection::vec(any::<u8>(), 0..200),
        t in 1u8..5,
        flip in any::<(usize, u8)>(),
    ) {
        let now = std::time::Instant::now();
        let mut a = node(now, plain(A, &[B], false), 6);
        let mut b = node(now, plain(B, &[A], false), 7);
        let mut d = bytes.clone();
        if let Some(x) = d.first_mut() { *x = t; }
        let r = b.handle_datagram(now, A.addr(), &mut d);
        prop_assert!(!matches!(r, Received::Packet { .. }), "random bytes reached the tunnel");
        let packet = ipv4(A.ip(1), B.ip(1), b"x");
        let mut buf = vec![0u8; packet.len() + 64];
        buf[16..16 + packet.len()].copy_from_slice(&packet);
        let _ = a.handle_tun_packet(now, &mut buf, packet.len());
        let mut out = vec![0u8; 256];
        let t = a.poll_transmit(now, &mut out).unwrap();
        let mut m = out[..t.len].to_vec();
        let i = flip.0 % m.len();
        m[i] ^= flip.1.max(1);
        let r = b.handle_datagram(now, A.addr(), &mut m);
        prop_assert!(!matches!(r, Received::Packet { .. }), "a forged message reached the tunnel");
    }
}
