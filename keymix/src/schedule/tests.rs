//! Deterministic tests of the rotation schedule: a simulated clock, no sleeping.

use super::*;

fn at(base: Instant, secs: u64) -> Instant {
    base + Duration::from_secs(secs)
}

fn schedule() -> RotationSchedule {
    RotationSchedule::new(ScheduleConfig::default()).expect("defaults are valid")
}

#[test]
fn nothing_is_sent_before_the_first_epoch() {
    let base = Instant::now();
    let mut s = schedule();
    assert!(s.rekey_due(base));
    assert_eq!(s.on_send(base), Err(Refusal::NoKeys));
    assert_eq!(s.next_deadline(base), None);
}

#[test]
fn initiator_rekeys_after_time_and_refuses_after_reject_time() {
    let base = Instant::now();
    let mut s = schedule();
    s.install(1, Role::Initiator, base).expect("fresh");
    assert_eq!(s.on_send(at(base, 1)), Ok(1));
    assert!(!s.rekey_due(at(base, 119)));
    assert!(s.rekey_due(at(base, 120)));
    assert_eq!(s.next_deadline(at(base, 1)), Some(at(base, 120)));
    assert_eq!(s.next_deadline(at(base, 120)), Some(at(base, 180)));
    assert_eq!(s.on_send(at(base, 179)), Ok(1));
    assert_eq!(s.on_send(at(base, 180)), Err(Refusal::Expired { epoch: 1 }));
    assert_eq!(
        s.on_receive(1, at(base, 180)),
        Err(Refusal::Expired { epoch: 1 })
    );
    assert_eq!(s.expire(at(base, 180)), vec![1]);
    assert_eq!(s.on_send(at(base, 181)), Err(Refusal::NoKeys));
}

#[test]
fn responder_waits_longer_so_both_sides_do_not_rekey_at_once() {
    let base = Instant::now();
    let mut s = schedule();
    s.install(1, Role::Responder, base).expect("fresh");
    assert!(
        !s.rekey_due(at(base, 130)),
        "pending epoch: a rekey is in flight"
    );
    s.on_receive(1, at(base, 1)).expect("confirms");
    assert!(!s.rekey_due(at(base, 120)));
    assert!(!s.rekey_due(at(base, 164)));
    assert!(
        s.rekey_due(at(base, 165)),
        "REJECT - KEEPALIVE - REKEY_TIMEOUT"
    );
}

#[test]
fn responder_switches_over_on_first_packet_and_old_epoch_keeps_receiving() {
    let base = Instant::now();
    let mut s = schedule();
    s.install(1, Role::Initiator, base).expect("fresh");
    s.install(2, Role::Responder, at(base, 100)).expect("newer");
    // Until confirmed, we still send under epoch 1 and receive under both.
    assert_eq!(s.on_send(at(base, 101)), Ok(1));
    assert_eq!(s.receivable_epochs(at(base, 101)), vec![1, 2]);
    assert_eq!(
        s.on_receive(2, at(base, 102)),
        Ok(Received {
            epoch: 2,
            confirmed: true
        })
    );
    assert_eq!(s.on_send(at(base, 102)), Ok(2));
    // A late packet under epoch 1 is still accepted until epoch 1's own reject time.
    assert_eq!(
        s.on_receive(1, at(base, 150)),
        Ok(Received {
            epoch: 1,
            confirmed: false
        })
    );
    assert_eq!(s.expire(at(base, 180)), vec![1]);
    assert_eq!(s.receivable_epochs(at(base, 181)), vec![2]);
}

#[test]
fn initiator_switches_at_once_and_keeps_previous_for_receiving() {
    let base = Instant::now();
    let mut s = schedule();
    s.install(1, Role::Initiator, base).expect("fresh");
    s.install(2, Role::Initiator, at(base, 120)).expect("newer");
    assert_eq!(s.on_send(at(base, 121)), Ok(2));
    assert_eq!(s.receivable_epochs(at(base, 121)), vec![1, 2]);
    assert!(s.on_receive(1, at(base, 121)).is_ok());
    s.install(3, Role::Initiator, at(base, 240)).expect("newer");
    assert_eq!(
        s.on_receive(1, at(base, 241)),
        Err(Refusal::UnknownEpoch { epoch: 1 }),
        "only one previous epoch is kept"
    );
}

#[test]
fn stale_or_replayed_epochs_are_not_installed() {
    let base = Instant::now();
    let mut s = schedule();
    s.install(5, Role::Initiator, base).expect("fresh");
    assert_eq!(
        s.install(5, Role::Responder, base),
        Err(Error::StaleEpoch {
            current: 5,
            offered: 5
        })
    );
    assert!(s.install(4, Role::Initiator, base).is_err());
    assert_eq!(
        s.on_receive(9, base),
        Err(Refusal::UnknownEpoch { epoch: 9 })
    );
}

#[test]
fn message_limits_trigger_rekey_then_refusal() {
    let base = Instant::now();
    let config = ScheduleConfig {
        rekey_after_messages: 3,
        reject_after_messages: 5,
        ..ScheduleConfig::default()
    };
    let mut s = RotationSchedule::new(config).expect("valid");
    s.install(1, Role::Initiator, base).expect("fresh");
    for _ in 0..3 {
        assert_eq!(s.on_send(base), Ok(1));
    }
    assert!(s.rekey_due(base));
    assert_eq!(s.on_send(base), Ok(1));
    assert_eq!(s.on_send(base), Ok(1));
    assert_eq!(s.on_send(base), Err(Refusal::MessageLimit { epoch: 1 }));
    for _ in 0..5 {
        assert!(s.on_receive(1, base).is_ok());
    }
    assert_eq!(
        s.on_receive(1, base),
        Err(Refusal::MessageLimit { epoch: 1 })
    );
}

#[test]
fn short_rotation_down_to_five_seconds() {
    let base = Instant::now();
    let config = ScheduleConfig {
        rekey_after: Duration::from_secs(5),
        ..ScheduleConfig::default()
    };
    let mut s = RotationSchedule::new(config).expect("valid");
    let mut epoch = 0;
    // Simulate ten minutes of rotation by jumping to each deadline.
    let mut now = base;
    while now < at(base, 600) {
        if s.rekey_due(now) {
            epoch += 1;
            s.install(epoch, Role::Initiator, now).expect("newer");
        }
        assert!(
            s.on_send(now).is_ok(),
            "never fail-closed while rekeying works"
        );
        s.expire(now);
        now = s.next_deadline(now).expect("a rekey is always ahead");
    }
    assert_eq!(epoch, 120, "one epoch every 5 s for 600 s");
}

#[test]
fn configuration_is_validated() {
    let bad = |c: ScheduleConfig| RotationSchedule::new(c).is_err();
    let d = ScheduleConfig::default();
    assert!(bad(ScheduleConfig {
        rekey_after: Duration::from_secs(4),
        ..d
    }));
    assert!(bad(ScheduleConfig {
        rekey_after: Duration::from_secs(170),
        ..d
    }));
    assert!(bad(ScheduleConfig {
        reject_after: Duration::from_secs(181),
        ..d
    }));
    assert!(bad(ScheduleConfig {
        rekey_after_messages: 10,
        reject_after_messages: 10,
        ..d
    }));
    assert!(bad(ScheduleConfig {
        reject_after_messages: u64::MAX,
        ..d
    }));
    assert!(!bad(ScheduleConfig {
        rekey_after: Duration::from_secs(165),
        ..d
    }));
}
