//! Two in-memory peers with a simulated clock: handshake, data, rekey, PSK rotation, timers,
//! cookies and roaming, without sockets or sleeping (whitepaper §5.4, §6).
#![allow(clippy::unwrap_used)]

use std::collections::HashSet;
use std::time::Duration;

use super::*;
use crate::error::DropReason;
use crate::proto::constants::{KEEPALIVE_TIMEOUT, REJECT_AFTER_TIME, REKEY_AFTER_TIME};
use crate::proto::messages::{MacProtected, Message};
use crate::proto::psk::{HybridPsk, Keying, PskId};
use crate::proto::secret::Secret;
use crate::proto::testing::{a_to_b, connect, events, keyed_pair, pair, settle};

#[test]
fn handshake_then_data_both_ways() {
    let t0 = Instant::now();
    let (mut a, mut b) = pair(t0);
    assert_eq!(a.send(t0, b"x"), Err(DropReason::NoSession));
    settle(&mut a, &mut b, t0);
    assert_eq!(
        events(&mut a),
        [Event::SessionConfirmed {
            epoch: 1,
            psk_id: None,
            initiator: true
        }]
    );
    // B confirmed on A's keepalive (key confirmation).
    assert_eq!(
        events(&mut b),
        [Event::SessionConfirmed {
            epoch: 1,
            psk_id: None,
            initiator: false
        }]
    );
    a_to_b(&mut a, &mut b, t0, b"ping");
    let d = b.send(t0, b"pong").unwrap();
    a.receive(t0, b.addr, d);
    assert_eq!(b.delivered, [b"ping".to_vec()]);
    assert_eq!(a.delivered, [b"pong".to_vec()]);
    assert!(
        a.drops.is_empty() && b.drops.is_empty(),
        "{:?} {:?}",
        a.drops,
        b.drops
    );
    assert!(a.peer.stats().tx_bytes > 0 && b.peer.stats().rx_bytes > 0);
}

#[test]
fn responder_does_not_send_before_confirmation() {
    let t0 = Instant::now();
    let (mut a, mut b) = pair(t0);
    a.peer.want_handshake(t0);
    let (init, _) = a.poll(t0).unwrap();
    let resp = b.receive(t0, a.addr, init).unwrap();
    assert_eq!(
        b.send(t0, b"early"),
        Err(DropReason::NoSession),
        "next is not current yet"
    );
    a.receive(t0, b.addr, resp);
    let d = a.send(t0, b"first").unwrap();
    b.receive(t0, a.addr, d);
    assert!(b.send(t0, b"now ok").is_ok());
}

fn hybrid(psk: u8, id: PskId) -> HybridPsk {
    HybridPsk {
        psk: Secret::new([psk; 32]),
        id,
    }
}

#[test]
fn psk_swap_keeps_the_live_session_and_applies_at_the_next_handshake() {
    let t0 = Instant::now();
    let (mut a, mut b) = keyed_pair(t0, Keying::HybridMaster(None), Keying::HybridSlave(None));
    let (first, second) = (PskId::FIRST, PskId::FIRST.next());
    a.peer.install_hybrid_psk(t0, hybrid(3, first), false);
    b.peer.install_hybrid_psk(t0, hybrid(3, first), false);
    connect(&mut a, &mut b, t0);
    events(&mut a);
    events(&mut b);
    a.peer.install_hybrid_psk(t0, hybrid(7, second), false);
    b.peer.install_hybrid_psk(t0, hybrid(7, second), false);
    assert_eq!(a.peer.current_psk_id(), Some(first));
    // The old session still carries traffic.
    let t1 = t0 + Duration::from_secs(60);
    a_to_b(&mut a, &mut b, t1, b"still old");
    // A packet sealed under the old session but delivered after the rekey still opens (previous).
    let t2 = t0 + REKEY_AFTER_TIME;
    let in_flight = a.send(t2, b"in flight").unwrap();
    settle(&mut a, &mut b, t2);
    let confirmed = |initiator| Event::SessionConfirmed {
        epoch: 2,
        psk_id: Some(second),
        initiator,
    };
    assert_eq!(events(&mut a), [confirmed(true)]);
    assert_eq!(events(&mut b), [confirmed(false)]);
    b.receive(t2, a.addr, in_flight);
    a_to_b(&mut a, &mut b, t2, b"new");
    assert_eq!(
        b.delivered,
        [
            b"still old".to_vec(),
            b"in flight".to_vec(),
            b"new".to_vec()
        ]
    );
    assert_eq!(a.peer.current_psk_id(), Some(second));
}

#[test]
fn diverged_psk_fails_the_rekey_but_not_the_live_session() {
    let t0 = Instant::now();
    let (mut a, mut b) = pair(t0);
    connect(&mut a, &mut b, t0);
    assert!(a.peer.set_static_psk(Secret::new([1; 32])));
    let t1 = t0 + REKEY_AFTER_TIME;
    a_to_b(&mut a, &mut b, t1, b"a");
    settle(&mut a, &mut b, t1);
    assert!(
        a.drops.contains(&DropReason::DecryptFailed),
        "{:?}",
        a.drops
    );
    a_to_b(&mut a, &mut b, t1, b"b");
    assert_eq!(b.delivered.len(), 2);
    // After REJECT_AFTER_TIME the old keys are unusable.
    assert_eq!(
        a.send(t0 + REJECT_AFTER_TIME, b"c"),
        Err(DropReason::NoSession)
    );
}

#[test]
fn only_the_initiator_rekeys_on_time() {
    let t0 = Instant::now();
    let (mut a, mut b) = pair(t0);
    connect(&mut a, &mut b, t0);
    let t1 = t0 + REKEY_AFTER_TIME;
    b.send(t1, b"from responder").unwrap();
    assert!(!b.peer.want_handshake);
    a.send(t1, b"from initiator").unwrap();
    assert!(a.peer.want_handshake);
}

#[test]
fn retries_then_gives_up_with_jitter() {
    let t0 = Instant::now();
    let (mut a, _b) = pair(t0);
    assert!(a.send(t0, b"x").is_err());
    let mut sent = Vec::new();
    let mut now = t0;
    for _ in 0..200 {
        while let Some((d, _)) = a.poll(now) {
            assert_eq!(d.len(), 148);
            sent.push(now);
        }
        if events(&mut a).contains(&Event::HandshakeGaveUp) {
            break;
        }
        now = a.peer.poll_timeout().unwrap();
    }
    assert_eq!(sent.len(), 20, "one initiation and 19 retries");
    let gaps: HashSet<_> = sent.windows(2).map(|w| w[1] - w[0]).collect();
    assert!(
        gaps.iter()
            .all(|g| *g >= Duration::from_secs(5) && *g < Duration::from_millis(5334))
    );
    assert!(gaps.len() > 1, "jitter varies the retry interval");
    assert!(
        a.idx.used.is_empty(),
        "the abandoned handshake's index was released"
    );
}

#[test]
fn passive_keepalive_and_persistent_keepalive() {
    let t0 = Instant::now();
    let (mut a, mut b) = pair(t0);
    connect(&mut a, &mut b, t0);
    a_to_b(&mut a, &mut b, t0, b"data");
    let t1 = t0 + KEEPALIVE_TIMEOUT;
    let (ka, _) = b.poll(t1).expect("B owes a keepalive");
    assert_eq!(ka.len(), 32);
    a.receive(t1, b.addr, ka);
    assert!(a.drops.is_empty() && a.delivered.is_empty());
    a.peer
        .set_persistent_keepalive(t1, Some(Duration::from_secs(25)));
    // As wireguard-go: turning it on sends one at once.
    assert_eq!(a.poll(t1).unwrap().0.len(), 32);
    assert!(a.poll(t1 + Duration::from_secs(24)).is_none());
    assert_eq!(a.poll(t1 + Duration::from_secs(25)).unwrap().0.len(), 32);
}

#[test]
fn a_persistent_keepalive_without_keys_starts_a_handshake_at_once() {
    let t0 = Instant::now();
    let (mut a, _b) = pair(t0);
    a.peer
        .set_persistent_keepalive(t0, Some(Duration::from_secs(25)));
    let (init, _) = a.poll(t0).expect("an initiation, not a keepalive");
    assert_eq!(init.len(), 148);
}

#[test]
fn cookie_under_load_then_handshake_succeeds() {
    let t0 = Instant::now();
    let (mut a, mut b) = pair(t0);
    b.under_load = true;
    a.peer.want_handshake(t0);
    let (init, _) = a.poll(t0).unwrap();
    let reply = b.receive(t0, a.addr, init).unwrap();
    assert_eq!(reply.len(), 64, "a cookie reply, not a response");
    a.receive(t0, b.addr, reply);
    let t1 = a.peer.poll_timeout().unwrap();
    settle(&mut a, &mut b, t1);
    assert_eq!(
        events(&mut a),
        [Event::SessionConfirmed {
            epoch: 1,
            psk_id: None,
            initiator: true
        }]
    );
}

#[test]
fn replayed_initiation_and_flood_are_refused() {
    let t0 = Instant::now();
    let (mut a, mut b) = pair(t0);
    a.peer.want_handshake(t0);
    let (init, _) = a.poll(t0).unwrap();
    assert!(b.receive(t0, a.addr, init.clone()).is_some());
    assert!(
        b.receive(t0 + Duration::from_secs(1), a.addr, init)
            .is_none()
    );
    assert_eq!(b.drops, [DropReason::StaleTimestamp]);
    // A fresh initiation within INITIATION_RATE of the last one is rate limited.
    let t1 = t0 + Duration::from_millis(100);
    a.peer.want_handshake(t1);
    a.peer.last_initiation_sent = None;
    let (second, _) = a.poll(t1).unwrap();
    b.peer.last_initiation_received = Some(t1);
    assert!(b.receive(t1, a.addr, second).is_none());
    assert_eq!(b.drops.last(), Some(&DropReason::RateLimited));
}

#[test]
fn roaming_updates_the_endpoint() {
    let t0 = Instant::now();
    let (mut a, mut b) = pair(t0);
    connect(&mut a, &mut b, t0);
    let before = a.addr;
    a.addr = "198.51.100.9:4000".parse().unwrap();
    a_to_b(&mut a, &mut b, t0, b"moved");
    assert_eq!(
        b.peer.endpoint(),
        Some(before),
        "one packet from elsewhere moves nothing"
    );
    a_to_b(&mut a, &mut b, t0, b"moved, really");
    assert_eq!(b.peer.endpoint(), Some(a.addr), "the second one does");
    let d = b.send(t0, b"reply").unwrap();
    assert_eq!(d.len(), 48);
}

#[test]
fn keys_are_zeroed_after_three_reject_times() {
    let t0 = Instant::now();
    let (mut a, mut b) = pair(t0);
    connect(&mut a, &mut b, t0);
    events(&mut a);
    let t1 = t0 + REJECT_AFTER_TIME * 3;
    a.poll(t1);
    assert!(events(&mut a).contains(&Event::KeysZeroed));
    assert!(a.peer.keys.is_empty() && a.idx.used.is_empty());
}

#[test]
fn simultaneous_initiations_still_converge() {
    let t0 = Instant::now();
    let (mut a, mut b) = pair(t0);
    a.peer.want_handshake(t0);
    b.peer.want_handshake(t0);
    let (ia, _) = a.poll(t0).unwrap();
    let (ib, _) = b.poll(t0).unwrap();
    let ra = b.receive(t0, a.addr, ia).unwrap();
    let rb = a.receive(t0, b.addr, ib).unwrap();
    a.receive(t0, b.addr, ra);
    b.receive(t0, a.addr, rb);
    settle(&mut a, &mut b, t0);
    a_to_b(&mut a, &mut b, t0, b"1");
    let d = b.send(t0, b"2").unwrap();
    a.receive(t0, b.addr, d);
    assert_eq!(
        (a.delivered.len(), b.delivered.len()),
        (1, 1),
        "{:?} {:?}",
        a.drops,
        b.drops
    );
}

#[test]
fn mac_protected_sender_matches_header() {
    let t0 = Instant::now();
    let (mut a, _) = pair(t0);
    a.peer.want_handshake(t0);
    let (init, _) = a.poll(t0).unwrap();
    let Ok(Message::Initiation(m)) = Message::parse(&init) else {
        panic!("initiation")
    };
    assert!(a.peer.owns_pending_index(m.sender()));
}
