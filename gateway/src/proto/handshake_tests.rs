//! Handshake tests: key agreement, PSK handling and tamper detection (whitepaper §5.4.2–§5.4.5).
#![allow(clippy::unwrap_used)]

use super::*;
use crate::proto::crypto::SeededEntropy;
use crate::proto::psk::PskId;

struct Pair {
    a: StaticKeys,
    b: StaticKeys,
    a_sees_b: RemoteKeys,
    b_sees_a: RemoteKeys,
}

fn pair() -> Pair {
    let a = StaticKeys::new(Secret::new([1u8; 32]));
    let b = StaticKeys::new(Secret::new([2u8; 32]));
    let a_sees_b = RemoteKeys::new(&a, *b.public()).unwrap();
    let b_sees_a = RemoteKeys::new(&b, *a.public()).unwrap();
    Pair {
        a,
        b,
        a_sees_b,
        b_sees_a,
    }
}

fn run(p: &Pair, psk_i: &Psk, psk_r: &Psk) -> Result<(TransportKeys, TransportKeys), DropReason> {
    let mut rng = SeededEntropy::new(9);
    let mut init = Initiation::new_zeroed();
    let ts = [7u8; 12];
    let sent = create_initiation(
        &p.a,
        &p.a_sees_b,
        (psk_i, Some(PskId::FIRST)),
        11,
        &ts,
        &mut rng,
        &mut init,
    )?;
    let opened = open_initiation(&p.b, &init)?;
    assert_eq!(opened.initiator_static(), p.a.public());
    let received = opened.finish(&p.b_sees_a)?;
    assert_eq!(received.timestamp, ts);
    assert_eq!(received.remote_index, 11);
    let mut resp = Response::new_zeroed();
    let rk = create_response(
        received,
        &p.b_sees_a,
        (psk_r, Some(PskId::FIRST.next())),
        22,
        &mut rng,
        &mut resp,
    )?;
    let ik = consume_response(&sent, &p.a, &resp)?;
    Ok((ik, rk))
}

#[test]
fn both_sides_derive_matching_keys() {
    let p = pair();
    let (i, r) = run(&p, &Psk::zero(), &Psk::zero()).unwrap();
    assert_eq!(i.send, r.recv);
    assert_eq!(i.recv, r.send);
    assert_ne!(i.send, i.recv);
    assert_eq!((i.local_index, i.remote_index, i.initiator), (11, 22, true));
    assert_eq!(
        (r.local_index, r.remote_index, r.initiator),
        (22, 11, false)
    );
    assert_eq!(
        (i.psk_id, r.psk_id),
        (Some(PskId::FIRST), Some(PskId::FIRST.next()))
    );
}

#[test]
fn matching_psk_changes_keys_and_mismatch_fails() {
    let p = pair();
    let psk = Psk::new([5u8; 32]);
    let (with, _) = run(&p, &psk, &psk).unwrap();
    let (without, _) = run(&p, &Psk::zero(), &Psk::zero()).unwrap();
    assert_ne!(with.send, without.send);
    assert_eq!(
        run(&p, &psk, &Psk::zero()).unwrap_err(),
        DropReason::DecryptFailed
    );
    assert_eq!(
        run(&p, &Psk::zero(), &psk).unwrap_err(),
        DropReason::DecryptFailed
    );
}

#[test]
fn psk_is_captured_when_the_initiation_is_sent() {
    let p = pair();
    let mut rng = SeededEntropy::new(3);
    let old = Psk::new([1u8; 32]);
    let mut init = Initiation::new_zeroed();
    let sent = create_initiation(
        &p.a,
        &p.a_sees_b,
        (&old, Some(PskId::FIRST)),
        1,
        &[1; 12],
        &mut rng,
        &mut init,
    )
    .unwrap();
    drop(old); // the caller may replace or drop its copy; the handshake keeps its own
    let received = open_initiation(&p.b, &init)
        .unwrap()
        .finish(&p.b_sees_a)
        .unwrap();
    let mut resp = Response::new_zeroed();
    let r = create_response(
        received,
        &p.b_sees_a,
        (&Psk::new([1u8; 32]), Some(PskId::FIRST)),
        2,
        &mut rng,
        &mut resp,
    )
    .unwrap();
    let i = consume_response(&sent, &p.a, &resp).unwrap();
    assert_eq!(i.send, r.recv);
    assert_eq!(sent.psk_id(), Some(PskId::FIRST));
}

#[test]
fn initiation_for_someone_else_does_not_open() {
    let p = pair();
    let c = StaticKeys::new(Secret::new([3u8; 32]));
    let mut rng = SeededEntropy::new(4);
    let mut init = Initiation::new_zeroed();
    create_initiation(
        &p.a,
        &p.a_sees_b,
        (&Psk::zero(), None),
        1,
        &[0; 12],
        &mut rng,
        &mut init,
    )
    .unwrap();
    assert_eq!(
        open_initiation(&c, &init).unwrap_err(),
        DropReason::DecryptFailed
    );
}

#[test]
fn finish_with_the_wrong_peer_is_refused() {
    let p = pair();
    let c = StaticKeys::new(Secret::new([3u8; 32]));
    let b_sees_c = RemoteKeys::new(&p.b, *c.public()).unwrap();
    let mut rng = SeededEntropy::new(4);
    let mut init = Initiation::new_zeroed();
    create_initiation(
        &p.a,
        &p.a_sees_b,
        (&Psk::zero(), None),
        1,
        &[0; 12],
        &mut rng,
        &mut init,
    )
    .unwrap();
    let opened = open_initiation(&p.b, &init).unwrap();
    assert_eq!(
        opened.finish(&b_sees_c).unwrap_err(),
        DropReason::UnknownPeer
    );
}

#[test]
fn every_tampered_byte_is_detected() {
    let p = pair();
    let mut rng = SeededEntropy::new(5);
    let mut init = Initiation::new_zeroed();
    create_initiation(
        &p.a,
        &p.a_sees_b,
        (&Psk::zero(), None),
        1,
        &[0; 12],
        &mut rng,
        &mut init,
    )
    .unwrap();
    // Bytes 8..116 are e, {s}, {timestamp}: any flip must break the handshake.
    for i in 8..116 {
        let mut m = init.clone();
        zerocopy::IntoBytes::as_mut_bytes(&mut m)[i] ^= 0x40;
        let r = open_initiation(&p.b, &m).and_then(|o| o.finish(&p.b_sees_a));
        assert!(r.is_err(), "flip at byte {i} went unnoticed");
    }
}

#[test]
fn response_to_another_index_is_refused() {
    let p = pair();
    let mut rng = SeededEntropy::new(6);
    let mut init = Initiation::new_zeroed();
    let sent = create_initiation(
        &p.a,
        &p.a_sees_b,
        (&Psk::zero(), None),
        1,
        &[0; 12],
        &mut rng,
        &mut init,
    )
    .unwrap();
    let received = open_initiation(&p.b, &init)
        .unwrap()
        .finish(&p.b_sees_a)
        .unwrap();
    let mut resp = Response::new_zeroed();
    create_response(
        received,
        &p.b_sees_a,
        (&Psk::zero(), None),
        2,
        &mut rng,
        &mut resp,
    )
    .unwrap();
    resp.receiver.set(99);
    assert_eq!(
        consume_response(&sent, &p.a, &resp).unwrap_err(),
        DropReason::UnknownIndex
    );
}
