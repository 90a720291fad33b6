//! WireGuard's timers (whitepaper §6.1–§6.5; wireguard-go `device/timers.go` for the exact event
//! rules) as deadlines that events arm and cancel, and pure functions of `now` that say what is due.
//! Nothing here sleeps or reads a clock: the caller passes `now` and sleeps until
//! [`Timers::next_deadline`].
//!
//! | timer | armed by | cancelled by | on expiry |
//! |---|---|---|---|
//! | retransmit handshake | initiation sent | handshake complete | resend (≤ `MAX_ATTEMPTS`), else give up |
//! | send keepalive | data received | any packet sent | keepalive (again if more data came) |
//! | new handshake | data sent, none pending | any authenticated packet received | initiate |
//! | zero keys | handshake complete | — | wipe all sessions (3 × `REJECT_AFTER_TIME`) |
//! | persistent keepalive | any packet sent/received | — | keepalive |

use std::time::{Duration, Instant};

use super::constants::{
    KEEPALIVE_TIMEOUT, REJECT_AFTER_MESSAGES, REJECT_AFTER_TIME, REKEY_AFTER_MESSAGES,
    REKEY_AFTER_TIME, REKEY_ATTEMPT_TIME, REKEY_TIMEOUT,
};

/// Initiations sent for one handshake attempt before giving up (`REKEY_ATTEMPT_TIME /
/// REKEY_TIMEOUT`, wireguard-go `MaxTimerHandshakes`).
pub const MAX_ATTEMPTS: u32 = (REKEY_ATTEMPT_TIME.as_secs() / REKEY_TIMEOUT.as_secs()) as u32;

/// What became due at `now` (several may at once).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Due {
    /// Send a handshake initiation (a retry if `retry`).
    pub initiate: bool,
    /// The initiation is a retransmission of an unanswered one.
    pub retry: bool,
    /// The handshake attempt exceeded `REKEY_ATTEMPT_TIME`: drop queued packets.
    pub gave_up: bool,
    /// Send a keepalive (an empty transport message).
    pub keepalive: bool,
    /// Erase every session's keys.
    pub zero_keys: bool,
}

/// The per-peer timer deadlines.
#[derive(Debug, Default, Clone)]
pub struct Timers {
    retransmit: Option<Instant>,
    send_keepalive: Option<Instant>,
    keepalive_owed: bool,
    new_handshake: Option<Instant>,
    zero_keys: Option<Instant>,
    persistent: Option<Instant>,
    persistent_interval: Option<Duration>,
    attempts: u32,
    rekey_after: Option<Duration>,
}

impl Timers {
    /// Timers for a peer with an optional persistent keepalive interval (§6.5).
    pub fn new(persistent_keepalive: Option<Duration>) -> Self {
        Self {
            persistent_interval: persistent_keepalive.filter(|d| !d.is_zero()),
            ..Self::default()
        }
    }

    /// Changes the persistent keepalive interval; takes effect from `now`.
    pub fn set_persistent_keepalive(&mut self, now: Instant, interval: Option<Duration>) {
        self.persistent_interval = interval.filter(|d| !d.is_zero());
        self.persistent = self.persistent_interval.map(|d| now + d);
    }

    /// The persistent keepalive interval, if on.
    pub fn persistent_keepalive(&self) -> Option<Duration> {
        self.persistent_interval
    }

    /// Off-spec override of `REKEY_AFTER_TIME` (config `danger_rekey_after_seconds`, tests only).
    pub fn set_rekey_after(&mut self, after: Duration) {
        self.rekey_after = Some(after);
    }

    /// The age at which the initiator rekeys: `REKEY_AFTER_TIME` unless overridden.
    pub fn rekey_after(&self) -> Duration {
        self.rekey_after.unwrap_or(REKEY_AFTER_TIME)
    }

    /// An initiation went out; `jitter` is drawn by the caller from `[0, REKEY_TIMEOUT_JITTER_MAX)`.
    /// A fresh (non-retry) initiation starts a new attempt count.
    pub fn on_initiation_sent(&mut self, now: Instant, jitter: Duration, retry: bool) {
        if !retry {
            self.attempts = 0;
        }
        self.retransmit = Some(now + REKEY_TIMEOUT + jitter);
    }

    /// A handshake completed (either role): stop retrying, schedule key erasure.
    pub fn on_handshake_complete(&mut self, now: Instant) {
        self.retransmit = None;
        self.attempts = 0;
        self.zero_keys = Some(now + REJECT_AFTER_TIME * 3);
    }

    /// A transport message with payload went out.
    pub fn on_data_sent(&mut self, now: Instant) {
        if self.new_handshake.is_none() {
            self.new_handshake = Some(now + KEEPALIVE_TIMEOUT + REKEY_TIMEOUT);
        }
    }

    /// Any authenticated packet (data, keepalive or handshake) went out.
    pub fn on_any_sent(&mut self, now: Instant) {
        self.send_keepalive = None;
        self.keepalive_owed = false;
        self.persistent = self.persistent_interval.map(|d| now + d);
    }

    /// A transport message with payload authenticated.
    pub fn on_data_received(&mut self, now: Instant) {
        if self.send_keepalive.is_none() {
            self.send_keepalive = Some(now + KEEPALIVE_TIMEOUT);
        } else {
            self.keepalive_owed = true;
        }
    }

    /// Any authenticated packet arrived.
    pub fn on_any_received(&mut self, now: Instant) {
        self.new_handshake = None;
        self.persistent = self.persistent_interval.map(|d| now + d);
    }

    /// Number of initiations sent in the current attempt.
    pub fn attempts(&self) -> u32 {
        self.attempts
    }

    /// Everything due at `now`; expired deadlines are consumed (or re-armed for an owed keepalive).
    pub fn poll(&mut self, now: Instant) -> Due {
        let mut due = Due::default();
        if take_if_due(&mut self.retransmit, now) {
            // As the reference implementations: give up once the count exceeds the maximum.
            if self.attempts > MAX_ATTEMPTS {
                due.gave_up = true;
                self.attempts = 0;
                self.send_keepalive = None;
                if self.zero_keys.is_none() {
                    self.zero_keys = Some(now + REJECT_AFTER_TIME * 3);
                }
            } else {
                self.attempts += 1;
                due.initiate = true;
                due.retry = true;
            }
        }
        if take_if_due(&mut self.send_keepalive, now) {
            due.keepalive = true;
            if std::mem::take(&mut self.keepalive_owed) {
                self.send_keepalive = Some(now + KEEPALIVE_TIMEOUT);
            }
        }
        if take_if_due(&mut self.new_handshake, now) {
            due.initiate = true;
        }
        if take_if_due(&mut self.zero_keys, now) {
            due.zero_keys = true;
        }
        if take_if_due(&mut self.persistent, now) {
            due.keepalive = true;
            self.persistent = self.persistent_interval.map(|d| now + d);
        }
        due
    }

    /// The earliest armed deadline.
    pub fn next_deadline(&self) -> Option<Instant> {
        [
            self.retransmit,
            self.send_keepalive,
            self.new_handshake,
            self.zero_keys,
            self.persistent,
        ]
        .into_iter()
        .flatten()
        .min()
    }
}

fn take_if_due(slot: &mut Option<Instant>, now: Instant) -> bool {
    if slot.is_some_and(|t| t <= now) {
        *slot = None;
        true
    } else {
        false
    }
}

/// §6.2: the sender rekeys when it sent `REKEY_AFTER_MESSAGES`, or (initiator only) when the
/// session is `rekey_after` (`REKEY_AFTER_TIME` per spec, see [`Timers::rekey_after`]) old.
pub fn rekey_on_send(age: Duration, initiator: bool, sent: u64, rekey_after: Duration) -> bool {
    sent >= REKEY_AFTER_MESSAGES || (initiator && age >= rekey_after)
}

/// §6.2: the initiator of the current session rekeys on *receiving* when the session is within
/// `KEEPALIVE_TIMEOUT + REKEY_TIMEOUT` of `REJECT_AFTER_TIME`, so an idle sender still rotates.
pub fn rekey_on_receive(age: Duration, initiator: bool) -> bool {
    initiator && age >= REJECT_AFTER_TIME - KEEPALIVE_TIMEOUT - REKEY_TIMEOUT
}

/// §6.1: a key is unusable after `REJECT_AFTER_TIME` or `REJECT_AFTER_MESSAGES`.
pub fn is_expired(age: Duration, counter: u64) -> bool {
    age >= REJECT_AFTER_TIME || counter >= REJECT_AFTER_MESSAGES
}

/// A handshake is unanswered if its initiation is older than `REKEY_TIMEOUT` (§6.4), so a new
/// initiation may be sent (also the minimum spacing between initiations).
pub fn may_initiate(last_initiation: Option<Instant>, now: Instant) -> bool {
    last_initiation.is_none_or(|t| now.saturating_duration_since(t) >= REKEY_TIMEOUT)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::constants::REKEY_TIMEOUT_JITTER_MAX;

    fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    #[test]
    fn nothing_is_due_on_a_fresh_peer() {
        let t0 = Instant::now();
        let mut t = Timers::new(None);
        assert_eq!(t.next_deadline(), None);
        assert_eq!(t.poll(t0 + secs(1000)), Due::default());
    }

    #[test]
    fn retransmits_with_jitter_then_gives_up() {
        let t0 = Instant::now();
        let mut t = Timers::new(None);
        let jitter = Duration::from_millis(200);
        t.on_initiation_sent(t0, jitter, false);
        assert_eq!(t.next_deadline(), Some(t0 + REKEY_TIMEOUT + jitter));
        assert_eq!(
            t.poll(t0 + REKEY_TIMEOUT),
            Due::default(),
            "jitter delays the retry"
        );
        let mut now;
        let mut retries = 0;
        loop {
            now = t.next_deadline().expect("armed");
            let due = t.poll(now);
            if due.gave_up {
                break;
            }
            assert!(due.initiate && due.retry);
            retries += 1;
            t.on_initiation_sent(now, REKEY_TIMEOUT_JITTER_MAX / 2, true);
            assert!(retries <= MAX_ATTEMPTS + 1);
        }
        assert_eq!(retries, MAX_ATTEMPTS + 1);
        // 1 + 19 initiations spaced ~5 s: the attempt lasts a little over REKEY_ATTEMPT_TIME.
        let spent = now - t0;
        assert!(
            spent >= REKEY_ATTEMPT_TIME && spent < REKEY_ATTEMPT_TIME + secs(20),
            "{spent:?}"
        );
        // After giving up, keys are scheduled for erasure.
        assert_eq!(t.next_deadline(), Some(now + REJECT_AFTER_TIME * 3));
    }

    #[test]
    fn completion_stops_retries_and_schedules_zeroing() {
        let t0 = Instant::now();
        let mut t = Timers::new(None);
        t.on_initiation_sent(t0, Duration::ZERO, false);
        t.on_handshake_complete(t0 + secs(1));
        assert_eq!(t.attempts(), 0);
        assert_eq!(
            t.next_deadline(),
            Some(t0 + secs(1) + REJECT_AFTER_TIME * 3)
        );
        let due = t.poll(t0 + secs(1) + REJECT_AFTER_TIME * 3);
        assert!(due.zero_keys && !due.initiate);
    }

    #[test]
    fn passive_keepalive_after_receiving_data_only() {
        let t0 = Instant::now();
        let mut t = Timers::new(None);
        t.on_any_received(t0);
        t.on_data_received(t0);
        assert!(!t.poll(t0 + KEEPALIVE_TIMEOUT - secs(1)).keepalive);
        assert!(t.poll(t0 + KEEPALIVE_TIMEOUT).keepalive);
        assert!(
            !t.poll(t0 + KEEPALIVE_TIMEOUT * 3).keepalive,
            "one keepalive per data burst"
        );
    }

    #[test]
    fn sending_cancels_keepalive_and_more_data_owes_another() {
        let t0 = Instant::now();
        let mut t = Timers::new(None);
        t.on_data_received(t0);
        t.on_any_sent(t0 + secs(2));
        assert!(!t.poll(t0 + KEEPALIVE_TIMEOUT).keepalive);
        t.on_data_received(t0 + secs(20));
        t.on_data_received(t0 + secs(21));
        assert!(t.poll(t0 + secs(30)).keepalive);
        assert!(t.poll(t0 + secs(40)).keepalive, "the owed keepalive");
        assert!(!t.poll(t0 + secs(60)).keepalive);
    }

    #[test]
    fn unanswered_data_triggers_a_new_handshake() {
        let t0 = Instant::now();
        let mut t = Timers::new(None);
        t.on_data_sent(t0);
        t.on_data_sent(t0 + secs(5)); // does not push the deadline
        let deadline = t0 + KEEPALIVE_TIMEOUT + REKEY_TIMEOUT;
        assert_eq!(t.next_deadline(), Some(deadline));
        let due = t.poll(deadline);
        assert!(due.initiate && !due.retry);
        // An authenticated answer in time cancels it.
        t.on_data_sent(t0 + secs(100));
        t.on_any_received(t0 + secs(101));
        assert!(!t.poll(t0 + secs(200)).initiate);
    }

    #[test]
    fn persistent_keepalive_repeats_when_idle() {
        let t0 = Instant::now();
        let mut t = Timers::new(Some(secs(25)));
        t.on_any_sent(t0);
        assert!(t.poll(t0 + secs(25)).keepalive);
        assert!(t.poll(t0 + secs(50)).keepalive);
        t.on_any_sent(t0 + secs(60));
        assert!(!t.poll(t0 + secs(75)).keepalive);
        assert!(t.poll(t0 + secs(85)).keepalive);
        t.set_persistent_keepalive(t0 + secs(90), None);
        assert_eq!(t.poll(t0 + secs(1000)), Due::default());
        assert_eq!(Timers::new(Some(Duration::ZERO)).next_deadline(), None);
    }

    #[test]
    fn rekey_and_reject_rules() {
        let after = Timers::default().rekey_after();
        assert_eq!(after, REKEY_AFTER_TIME);
        assert!(!rekey_on_send(REKEY_AFTER_TIME - secs(1), true, 0, after));
        assert!(rekey_on_send(REKEY_AFTER_TIME, true, 0, after));
        assert!(
            !rekey_on_send(REKEY_AFTER_TIME, false, 0, after),
            "only the initiator rekeys on time"
        );
        assert!(rekey_on_send(secs(0), false, REKEY_AFTER_MESSAGES, after));
        let mut t = Timers::default();
        t.set_rekey_after(secs(3));
        assert!(rekey_on_send(secs(3), true, 0, t.rekey_after()));
        assert!(!rekey_on_receive(secs(164), true));
        assert!(rekey_on_receive(secs(165), true));
        assert!(!rekey_on_receive(secs(179), false));
        assert!(is_expired(REJECT_AFTER_TIME, 0));
        assert!(is_expired(secs(0), REJECT_AFTER_MESSAGES));
        assert!(!is_expired(
            REJECT_AFTER_TIME - secs(1),
            REJECT_AFTER_MESSAGES - 1
        ));
        let t0 = Instant::now();
        assert!(may_initiate(None, t0));
        assert!(!may_initiate(
            Some(t0),
            t0 + REKEY_TIMEOUT - Duration::from_millis(1)
        ));
        assert!(may_initiate(Some(t0), t0 + REKEY_TIMEOUT));
    }
}
