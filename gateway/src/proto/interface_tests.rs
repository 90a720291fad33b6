//! Two interfaces exchanging real IP packets in memory with a simulated clock: routing, staging,
//! source filtering, cookies under a handshake flood, drop counters, and no panic on any input.
#![allow(clippy::unwrap_used)]

use proptest::prelude::*;

use super::*;
use crate::proto::crypto::SeededEntropy;

const MTU: usize = 1420;

struct Site {
    ifc: Interface<SeededEntropy>,
    addr: SocketAddr,
    tun: Vec<Vec<u8>>,
}

fn ipv4(src: [u8; 4], dst: [u8; 4], payload: &[u8]) -> Vec<u8> {
    let len = 20 + payload.len();
    let mut p = vec![0u8; len];
    p[0] = 0x45;
    p[2..4].copy_from_slice(&(len as u16).to_be_bytes());
    p[9] = 17;
    p[12..16].copy_from_slice(&src);
    p[16..20].copy_from_slice(&dst);
    p[20..].copy_from_slice(payload);
    p
}

fn site(seed: u8, addr: &str, t0: Instant, load: u32) -> Site {
    let clock = WallClock::new(t0, Duration::from_secs(1_750_000_000));
    let ifc = Interface::new(
        Secret::new([seed; 32]),
        clock,
        SeededEntropy::new(seed.into()),
        MTU,
        load,
    );
    Site {
        ifc,
        addr: addr.parse().unwrap(),
        tun: Vec::new(),
    }
}

fn sites(t0: Instant, load: u32) -> (Site, Site) {
    let mut a = site(1, "192.0.2.1:51820", t0, load);
    let mut b = site(2, "192.0.2.2:51820", t0, load);
    let spec = |k: &[u8; 32], ep: SocketAddr, net: [u8; 4]| PeerSpec {
        public_key: *k,
        psk: Some(Secret::new([9; 32])),
        endpoint: Some(ep),
        allowed_ips: vec![(IpAddr::from(net), 24)],
        persistent_keepalive: None,
    };
    let (ka, kb) = (*a.ifc.public_key(), *b.ifc.public_key());
    a.ifc.add_peer(spec(&kb, b.addr, [10, 0, 2, 0])).unwrap();
    b.ifc.add_peer(spec(&ka, a.addr, [10, 0, 1, 0])).unwrap();
    (a, b)
}

/// Delivers a datagram from `x` to `y` and any replies back and forth (bounded).
fn deliver(now: Instant, x: &mut Site, y: &mut Site, mut d: Vec<u8>) {
    let mut forward = true;
    for _ in 0..4 {
        let (from, to) = if forward {
            (&mut *x, &mut *y)
        } else {
            (&mut *y, &mut *x)
        };
        let mut out = vec![0u8; 2048];
        match to.ifc.handle_datagram(now, from.addr, &mut d, &mut out) {
            Ok(Incoming::Reply(t)) => {
                d = out[..t.len].to_vec();
                forward = !forward;
            }
            Ok(Incoming::Tunnel { range, .. }) => {
                to.tun.push(d[range].to_vec());
                return;
            }
            Ok(Incoming::Done) | Err(_) => return,
        }
    }
}

/// Runs both sites' timers and transmissions until quiet (bounded).
fn settle(now: Instant, a: &mut Site, b: &mut Site) {
    for _ in 0..50 {
        let mut out = vec![0u8; 2048];
        if let Some((_, t)) = a.ifc.poll_transmit(now, &mut out) {
            deliver(now, a, b, out[..t.len].to_vec());
            continue;
        }
        if let Some((_, t)) = b.ifc.poll_transmit(now, &mut out) {
            deliver(now, b, a, out[..t.len].to_vec());
            continue;
        }
        return;
    }
    panic!("did not settle");
}

fn send(now: Instant, from: &mut Site, to: &mut Site, packet: &[u8]) -> Result<(), DropReason> {
    let mut buf = vec![0u8; packet.len() + 64];
    buf[16..16 + packet.len()].copy_from_slice(packet);
    let (_, t) = from.ifc.handle_tunnel_packet(now, &mut buf, packet.len())?;
    deliver(now, from, to, buf[..t.len].to_vec());
    Ok(())
}

#[test]
fn first_packet_is_staged_then_delivered_both_ways() {
    let t0 = Instant::now();
    let (mut a, mut b) = sites(t0, 1000);
    let ping = ipv4([10, 0, 1, 1], [10, 0, 2, 1], b"ping");
    assert_eq!(send(t0, &mut a, &mut b, &ping), Err(DropReason::NoSession));
    settle(t0, &mut a, &mut b);
    assert_eq!(
        b.tun,
        std::slice::from_ref(&ping),
        "the staged packet went out after the handshake"
    );
    let pong = ipv4([10, 0, 2, 1], [10, 0, 1, 1], b"pong!");
    send(t0, &mut b, &mut a, &pong).unwrap();
    assert_eq!(a.tun, [pong]);
    assert_eq!(
        a.ifc.poll_event(),
        Some((
            0,
            Event::SessionConfirmed {
                epoch: 1,
                psk_id: 0,
                initiator: true
            }
        ))
    );
    assert!(a.ifc.stats(0).unwrap().tx_bytes > 0);
}

#[test]
fn unroutable_and_spoofed_packets_are_dropped_and_counted() {
    let t0 = Instant::now();
    let (mut a, mut b) = sites(t0, 1000);
    let nowhere = ipv4([10, 0, 1, 1], [172, 16, 0, 1], b"x");
    assert_eq!(send(t0, &mut a, &mut b, &nowhere), Err(DropReason::NoRoute));
    send(
        t0,
        &mut a,
        &mut b,
        &ipv4([10, 0, 1, 1], [10, 0, 2, 1], b"x"),
    )
    .unwrap_err();
    settle(t0, &mut a, &mut b);
    // A sends with a source address that is not in A's allowed IPs at B.
    let spoofed = ipv4([10, 9, 9, 9], [10, 0, 2, 1], b"spoof");
    send(t0, &mut a, &mut b, &spoofed).unwrap();
    assert_eq!(b.tun.len(), 1, "only the legitimate staged packet");
    assert_eq!(b.ifc.drops()[DropReason::SourceNotAllowed.index()], 1);
    assert_eq!(a.ifc.drops()[DropReason::NoRoute.index()], 1);
}

#[test]
fn handshake_flood_triggers_cookies_and_the_real_peer_still_connects() {
    let t0 = Instant::now();
    let (mut a, mut b) = sites(t0, 4);
    flood(t0, &mut b);
    assert!(
        b.ifc.drops()[DropReason::DecryptFailed.index()] >= 4,
        "{:?}",
        b.ifc.drops()
    );
    // B is under load now: A's initiation gets a cookie reply, A's retry carries mac2.
    let packet = ipv4([10, 0, 1, 1], [10, 0, 2, 1], b"through the flood");
    let _ = send(t0, &mut a, &mut b, &packet);
    settle(t0, &mut a, &mut b);
    assert!(
        b.tun.is_empty(),
        "the first initiation was answered with a cookie"
    );
    let retry_at = a.ifc.next_deadline().unwrap();
    flood(retry_at, &mut b);
    let cookie_replies = b.ifc.drops()[DropReason::CookieRequired.index()];
    settle(retry_at, &mut a, &mut b);
    assert_eq!(
        b.tun,
        [packet],
        "the retry carried a valid mac2 while B was under load"
    );
    assert_eq!(
        b.ifc.drops()[DropReason::CookieRequired.index()],
        cookie_replies
    );
}

/// An attacker sends initiations with a valid mac1 (it knows B's public key) but garbage inside.
fn flood(now: Instant, b: &mut Site) {
    let attacker: SocketAddr = "203.0.113.66:9999".parse().unwrap();
    let mut rng = SeededEntropy::new(99);
    let mac1_key = StaticKeys::new(Secret::new([2; 32])).mac1_key;
    for _ in 0..10 {
        let mut m = <super::super::messages::Initiation as zerocopy::FromZeros>::new_zeroed();
        m.header = super::super::messages::Header::new(1);
        rng.fill(&mut m.ephemeral);
        super::super::cookie::stamp(&mut m, &mac1_key, None);
        let mut d = zerocopy::IntoBytes::as_bytes(&m).to_vec();
        let mut out = vec![0u8; 256];
        let _ = b.ifc.handle_datagram(now, attacker, &mut d, &mut out);
    }
}

#[test]
fn ipv6_inside_the_tunnel() {
    let t0 = Instant::now();
    let (mut a, mut b) = sites(t0, 1000);
    a.ifc.routes.insert("fd00:2::".parse().unwrap(), 64, 0);
    b.ifc.routes.insert("fd00:1::".parse().unwrap(), 64, 0);
    let mut p = vec![0u8; 48];
    p[0] = 0x60;
    p[4..6].copy_from_slice(&8u16.to_be_bytes());
    p[8..10].copy_from_slice(&[0xfd, 0]);
    p[10..12].copy_from_slice(&[0, 1]);
    p[24..26].copy_from_slice(&[0xfd, 0]);
    p[26..28].copy_from_slice(&[0, 2]);
    let _ = send(t0, &mut a, &mut b, &p);
    settle(t0, &mut a, &mut b);
    assert_eq!(b.tun, [p]);
}

#[test]
fn duplicate_and_self_peers_are_refused() {
    let t0 = Instant::now();
    let (mut a, b) = sites(t0, 1000);
    let spec = |k: [u8; 32]| PeerSpec {
        public_key: k,
        psk: None,
        endpoint: None,
        allowed_ips: vec![],
        persistent_keepalive: None,
    };
    assert!(matches!(
        a.ifc.add_peer(spec(*b.ifc.public_key())),
        Err(Error::DuplicatePeer)
    ));
    assert!(matches!(
        a.ifc.add_peer(spec(*a.ifc.public_key())),
        Err(Error::DuplicatePeer)
    ));
    assert!(matches!(
        a.ifc.add_peer(spec([0; 32])),
        Err(Error::InvalidKey(_))
    ));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]
    /// Arbitrary datagrams (random, or a real message with bytes flipped) never panic and never
    /// reach the tunnel.
    #[test]
    fn arbitrary_datagrams_never_panic(
        bytes in proptest::collection::vec(any::<u8>(), 0..200),
        t in 1u8..5,
        flip in any::<(usize, u8)>(),
    ) {
        let t0 = Instant::now();
        let (mut a, mut b) = sites(t0, 1000);
        let mut d = bytes.clone();
        if let Some(x) = d.first_mut() { *x = t; }
        let mut out = vec![0u8; 256];
        let r = b.ifc.handle_datagram(t0, a.addr, &mut d, &mut out);
        prop_assert!(!matches!(r, Ok(Incoming::Tunnel { .. })), "random bytes reached the tunnel");
        // A real initiation with one byte changed.
        let _ = send(t0, &mut a, &mut b, &ipv4([10, 0, 1, 1], [10, 0, 2, 1], b"x"));
        let (_, tx) = a.ifc.poll_transmit(t0 + Duration::from_secs(6), &mut out).unwrap();
        let mut m = out[..tx.len].to_vec();
        let i = flip.0 % m.len();
        m[i] ^= flip.1.max(1);
        let mut reply = vec![0u8; 256];
        let r = b.ifc.handle_datagram(t0, a.addr, &mut m, &mut reply);
        prop_assert!(!matches!(r, Ok(Incoming::Tunnel { .. })), "a forged message reached the tunnel");
    }
}
