//! The hybrid handshake gate (docs/protocol.md §2, §8): a hybrid peer never makes a session without
//! a PSK from the key agreement, the slave never initiates, and the master never re-uses a PSK for
//! a second handshake; instead each side asks for a new epoch.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use super::*;
use crate::error::DropReason;
use crate::proto::constants::REKEY_AFTER_TIME;
use crate::proto::psk::{HybridPsk, Keying, PskId};
use crate::proto::secret::Secret;
use crate::proto::testing::{events, keyed_pair, settle};

fn hybrid_pair(t0: Instant) -> (crate::proto::testing::Side, crate::proto::testing::Side) {
    keyed_pair(t0, Keying::HybridMaster(None), Keying::HybridSlave(None))
}

fn psk(byte: u8, id: PskId) -> HybridPsk {
    HybridPsk {
        psk: Secret::new([byte; 32]),
        id,
    }
}

#[test]
fn a_hybrid_master_without_a_psk_asks_for_an_epoch_instead_of_initiating() {
    let t0 = Instant::now();
    let (mut a, _b) = hybrid_pair(t0);
    assert_eq!(a.send(t0, b"x"), Err(DropReason::NoSession));
    assert!(a.poll(t0).is_none(), "no initiation without a hybrid PSK");
    assert_eq!(events(&mut a), [Event::EpochNeeded]);
    // Throttled: one request per REKEY_TIMEOUT.
    assert_eq!(a.send(t0, b"x"), Err(DropReason::NoSession));
    assert!(a.poll(t0).is_none());
    assert!(events(&mut a).is_empty());
}

#[test]
fn a_hybrid_slave_never_initiates() {
    let t0 = Instant::now();
    let (_a, mut b) = hybrid_pair(t0);
    b.peer.install_hybrid_psk(t0, psk(5, PskId::FIRST), true);
    assert_eq!(b.send(t0, b"x"), Err(DropReason::NoSession));
    assert!(
        b.poll(t0).is_none(),
        "even with a PSK the slave does not initiate"
    );
    assert_eq!(events(&mut b), [Event::EpochNeeded]);
}

#[test]
fn a_hybrid_responder_without_a_psk_refuses_initiations() {
    let t0 = Instant::now();
    let (mut a, mut b) = keyed_pair(t0, Keying::default(), Keying::HybridSlave(None));
    a.peer.want_handshake(t0);
    let (init, _) = a.poll(t0).unwrap();
    assert!(b.receive(t0, a.addr, init).is_none());
    assert!(b.drops.contains(&DropReason::NoHybridKey), "{:?}", b.drops);
}

#[test]
fn each_hybrid_psk_keys_exactly_one_handshake_then_a_new_epoch_is_needed() {
    let t0 = Instant::now();
    let (mut a, mut b) = hybrid_pair(t0);
    let (first, second) = (PskId::FIRST, PskId::FIRST.next());
    b.peer.install_hybrid_psk(t0, psk(9, first), false);
    a.peer.install_hybrid_psk(t0, psk(9, first), true);
    settle(&mut a, &mut b, t0);
    let confirmed = |e: &[Event]| {
        e.iter()
            .any(|e| matches!(e, Event::SessionConfirmed { psk_id: Some(id), .. } if *id == first))
    };
    assert!(confirmed(&events(&mut a)) && confirmed(&events(&mut b)));
    // The PSK was erased once it keyed a confirmed session, at both sides.
    assert!(!a.peer.keying().may_initiate() && !b.peer.keying().may_answer());
    // At REKEY_AFTER_TIME WireGuard wants a new handshake: the master asks for an epoch instead
    // of reusing PSK 1.
    let later = t0 + REKEY_AFTER_TIME + Duration::from_secs(1);
    let _ = a.send(later, b"data");
    assert!(a.poll(later).is_none());
    assert_eq!(events(&mut a), [Event::EpochNeeded]);
    // With epoch 2's PSK installed, the handshake goes ahead.
    b.peer.install_hybrid_psk(later, psk(10, second), false);
    a.peer.install_hybrid_psk(later, psk(10, second), true);
    settle(&mut a, &mut b, later);
    assert!(
        events(&mut a).iter().any(
            |e| matches!(e, Event::SessionConfirmed { psk_id: Some(id), .. } if *id == second)
        )
    );
}
