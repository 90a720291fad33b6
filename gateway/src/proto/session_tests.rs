//! Sessions: padding, sealing and opening with the replay window, expiry by time and count.
#![allow(clippy::unwrap_used)]

use super::*;
use crate::proto::secret::Secret;

fn pair(now: Instant) -> (Session, Session) {
    let k = |s: u8, r: u8, i: bool| TransportKeys {
        send: Secret::new([s; 32]),
        recv: Secret::new([r; 32]),
        local_index: if i { 1 } else { 2 },
        remote_index: if i { 2 } else { 1 },
        initiator: i,
        psk_id: Some(PskId::FIRST),
    };
    (
        Session::new(k(1, 2, true), now, 0),
        Session::new(k(2, 1, false), now, 0),
    )
}

#[test]
fn padding_rules() {
    assert_eq!(sealed_len(0, 1420), 32);
    assert_eq!(sealed_len(1, 1420), 48);
    assert_eq!(sealed_len(16, 1420), 48);
    assert_eq!(sealed_len(1419, 1420), 16 + 1420 + 16);
    assert_eq!(sealed_len(1420, 1420), 16 + 1420 + 16);
    // Larger than the MTU (should not happen): no padding at all.
    assert_eq!(sealed_len(1421, 1420), 16 + 1421 + 16);
}

#[test]
fn seal_open_round_trip_with_replay() {
    let now = Instant::now();
    let (a, mut b) = pair(now);
    let mut buf = [0u8; 128];
    buf[16..21].copy_from_slice(b"hello");
    let n = a.send.seal(&mut buf, 5, 1420).unwrap();
    assert_eq!(n, 48);
    let mut copy = buf;
    let plain = b.receive(now, 0, &mut copy[16..n]).unwrap();
    assert_eq!(&copy[16..16 + 5], b"hello");
    assert_eq!(plain, 16);
    assert!(copy[21..32].iter().all(|&x| x == 0));
    let mut again = buf;
    assert_eq!(
        b.receive(now, 0, &mut again[16..n]),
        Err(DropReason::Replay)
    );
    // A forged counter does not authenticate and is not recorded.
    let mut forged = buf;
    assert_eq!(
        b.receive(now, 1, &mut forged[16..n]),
        Err(DropReason::DecryptFailed)
    );
    assert_eq!(a.send.sent(), 1);
}

#[test]
fn expiry_by_time_and_by_count() {
    let now = Instant::now();
    let (a, mut b) = pair(now);
    let later = now + super::super::constants::REJECT_AFTER_TIME;
    assert!(!a.can_send(later));
    let mut buf = [0u8; 64];
    let n = a.send.seal(&mut buf, 0, 1420).unwrap();
    assert_eq!(
        b.receive(later, 0, &mut buf[16..n]),
        Err(DropReason::SessionExpired)
    );
    a.send
        .counter
        .store(REJECT_AFTER_MESSAGES, Ordering::Relaxed);
    assert_eq!(
        a.send.seal(&mut buf, 0, 1420),
        Err(DropReason::SessionExpired)
    );
    assert_eq!(
        a.send.seal(&mut buf, 0, 1420),
        Err(DropReason::SessionExpired)
    );
    assert!(!a.can_send(now));
}

#[test]
fn a_shortened_reject_time_expires_earlier_but_never_later_than_the_spec() {
    let now = Instant::now();
    let (mut a, mut b) = pair(now);
    a.set_reject_after(std::time::Duration::from_secs(20));
    b.set_reject_after(std::time::Duration::from_secs(20));
    let t19 = now + std::time::Duration::from_secs(19);
    let t20 = now + std::time::Duration::from_secs(20);
    assert!(a.can_send(t19) && !a.can_send(t20));
    assert!(b.can_receive(t19) && !b.can_receive(t20));
    a.set_reject_after(std::time::Duration::from_secs(1000));
    assert!(
        !a.can_send(now + super::super::constants::REJECT_AFTER_TIME),
        "capped at 180 s"
    );
}

#[test]
fn small_buffers_are_refused() {
    let (a, _) = pair(Instant::now());
    let mut buf = [0u8; 40];
    assert_eq!(
        a.send.seal(&mut buf, 10, 1420),
        Err(DropReason::BufferTooSmall)
    );
    assert_eq!(a.send.sent(), 0);
}

#[test]
fn a_counter_begun_twice_is_accepted_once_and_a_forgery_never() {
    let now = Instant::now();
    let (a, mut b) = pair(now);
    let mut buf = [0u8; 64];
    let n = a.send.seal(&mut buf, 5, 1420).unwrap();
    // Both copies pass the check before either is recorded, as in one receive batch.
    let (first, second) = (
        b.begin_receive(now, 0).unwrap(),
        b.begin_receive(now, 0).unwrap(),
    );
    let (mut x, mut y) = (buf, buf);
    let (ox, oy) = (first.open(&mut x[16..n]), second.open(&mut y[16..n]));
    assert_eq!(b.finish_receive(&first, ox), Ok(16));
    assert_eq!(b.finish_receive(&second, oy), Err(DropReason::Replay));
    // A message that failed to open leaves its counter free.
    let n1 = a.send.seal(&mut buf, 5, 1420).unwrap();
    let forged = b.begin_receive(now, 1).unwrap();
    let mut bad = buf;
    bad[20] ^= 1;
    let opened = forged.open(&mut bad[16..n1]);
    assert_eq!(
        b.finish_receive(&forged, opened),
        Err(DropReason::DecryptFailed)
    );
    let genuine = b.begin_receive(now, 1).unwrap();
    let opened = genuine.open(&mut buf[16..n1]);
    assert_eq!(b.finish_receive(&genuine, opened), Ok(16));
}

#[test]
fn an_opening_of_another_session_is_refused() {
    let now = Instant::now();
    let (a, b) = pair(now);
    let (_, mut newer) = pair(now);
    newer.epoch = 1;
    let mut buf = [0u8; 64];
    let n = a.send.seal(&mut buf, 0, 1420).unwrap();
    let opening = b.begin_receive(now, 0).unwrap();
    let opened = opening.open(&mut buf[16..n]);
    assert_eq!(
        newer.finish_receive(&opening, opened),
        Err(DropReason::UnknownIndex)
    );
}
