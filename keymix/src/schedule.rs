//! The epoch rotation schedule: a pure state machine driven by an injected clock (`now: Instant`),
//! with WireGuard's key-lifetime semantics (whitepaper §6.1 timer table, §6.2 "Transport Message
//! Limits", §6.3 key rotation; wireguard-go `device/keypair.go` for the previous/current/next
//! slots).
//!
//! * Each epoch (one hybrid PSK and the WireGuard session made with it) is usable for sending for
//!   `reject_after` (REJECT_AFTER_TIME, 180 s) or `reject_after_messages` messages, whichever ends
//!   first; after that the schedule refuses it and the tunnel is fail-closed until a new epoch.
//! * A new epoch is due after `rekey_after` (REKEY_AFTER_TIME, 120 s; qgw allows down to 5 s) or
//!   `rekey_after_messages`. As in WireGuard, only the side that initiated the current epoch rekeys
//!   on time; the responder waits until `reject_after − KEEPALIVE_TIMEOUT − REKEY_TIMEOUT`, so the
//!   two sides do not start rekeys at the same moment.
//! * Switch-over: the initiator of a new epoch uses it at once and keeps the old one as `previous`
//!   for receiving; the responder keeps the new one as `next` (receive only) until the first packet
//!   under it confirms that the initiator has it, then rotates next → current → previous. Old epochs
//!   keep receiving until their own `reject_after`, so nothing in flight is lost at the switch.

use std::time::{Duration, Instant};

use crate::Error;

/// WireGuard's protocol constants (whitepaper §6.1), the defaults of [`ScheduleConfig`].
pub mod limits {
    use std::time::Duration;

    /// REKEY_AFTER_MESSAGES = 2^60.
    pub const REKEY_AFTER_MESSAGES: u64 = 1 << 60;
    /// REJECT_AFTER_MESSAGES = 2^64 − 2^13 − 1.
    pub const REJECT_AFTER_MESSAGES: u64 = u64::MAX - (1 << 13);
    /// REKEY_AFTER_TIME = 120 s.
    pub const REKEY_AFTER_TIME: Duration = Duration::from_secs(120);
    /// REJECT_AFTER_TIME = 180 s.
    pub const REJECT_AFTER_TIME: Duration = Duration::from_secs(180);
    /// REKEY_TIMEOUT = 5 s.
    pub const REKEY_TIMEOUT: Duration = Duration::from_secs(5);
    /// KEEPALIVE_TIMEOUT = 10 s.
    pub const KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(10);
    /// qgw's floor for a configured rekey interval (the hybrid issue allows down to 5 s).
    pub const MIN_REKEY_AFTER: Duration = Duration::from_secs(5);
}

/// How long and how much an epoch may be used.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ScheduleConfig {
    /// Start a new epoch after this long (REKEY_AFTER_TIME).
    pub rekey_after: Duration,
    /// Refuse an epoch after this long (REJECT_AFTER_TIME).
    pub reject_after: Duration,
    /// Start a new epoch after sending this many messages under one.
    pub rekey_after_messages: u64,
    /// Refuse an epoch after this many messages in either direction.
    pub reject_after_messages: u64,
}

impl Default for ScheduleConfig {
    fn default() -> Self {
        Self {
            rekey_after: limits::REKEY_AFTER_TIME,
            reject_after: limits::REJECT_AFTER_TIME,
            rekey_after_messages: limits::REKEY_AFTER_MESSAGES,
            reject_after_messages: limits::REJECT_AFTER_MESSAGES,
        }
    }
}

impl ScheduleConfig {
    /// The responder-side margin before `reject_after` (KEEPALIVE_TIMEOUT + REKEY_TIMEOUT).
    const RESPONDER_MARGIN: Duration =
        Duration::from_secs(limits::KEEPALIVE_TIMEOUT.as_secs() + limits::REKEY_TIMEOUT.as_secs());

    /// Checks the settings, naming the one that is wrong and the allowed range.
    pub fn validate(&self) -> Result<(), Error> {
        let fail = |msg: String| Err(Error::InvalidSchedule(msg));
        if self.reject_after > limits::REJECT_AFTER_TIME {
            return fail(format!(
                "reject_after {:?} exceeds WireGuard's REJECT_AFTER_TIME {:?}",
                self.reject_after,
                limits::REJECT_AFTER_TIME
            ));
        }
        if self.rekey_after < limits::MIN_REKEY_AFTER {
            return fail(format!(
                "rekey_after {:?} is below the minimum {:?}",
                self.rekey_after,
                limits::MIN_REKEY_AFTER
            ));
        }
        if self.rekey_after + Self::RESPONDER_MARGIN > self.reject_after {
            return fail(format!(
                "rekey_after {:?} leaves less than {:?} before reject_after {:?}",
                self.rekey_after,
                Self::RESPONDER_MARGIN,
                self.reject_after
            ));
        }
        if self.reject_after_messages > limits::REJECT_AFTER_MESSAGES
            || self.rekey_after_messages >= self.reject_after_messages
            || self.rekey_after_messages == 0
        {
            return fail(format!(
                "need 0 < rekey_after_messages ({}) < reject_after_messages ({}) <= {}",
                self.rekey_after_messages,
                self.reject_after_messages,
                limits::REJECT_AFTER_MESSAGES
            ));
        }
        Ok(())
    }

    fn responder_rekey_after(&self) -> Duration {
        self.reject_after.saturating_sub(Self::RESPONDER_MARGIN)
    }
}

/// Which side of the exchange that made an epoch we were.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// We started the exchange: the epoch is confirmed when the response arrives.
    Initiator,
    /// We answered: the epoch is confirmed by the first packet the initiator sends under it.
    Responder,
}

/// Why the schedule refuses to use an epoch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// No epoch has been established (or all have expired): nothing may be sent.
    NoKeys,
    /// The epoch is older than `reject_after`.
    Expired {
        /// The refused epoch.
        epoch: u64,
    },
    /// The epoch has carried `reject_after_messages` messages.
    MessageLimit {
        /// The refused epoch.
        epoch: u64,
    },
    /// A packet names an epoch the schedule does not hold (never installed, or already dropped).
    UnknownEpoch {
        /// The epoch named.
        epoch: u64,
    },
}

/// The outcome of accepting a received packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Received {
    /// The epoch the packet was accepted under.
    pub epoch: u64,
    /// Whether this packet confirmed a pending epoch, which is now current.
    pub confirmed: bool,
}

#[derive(Clone, Copy, Debug)]
struct Slot {
    epoch: u64,
    established: Instant,
    role: Role,
    sent: u64,
    received: u64,
}

impl Slot {
    fn expires_at(&self, config: &ScheduleConfig) -> Instant {
        self.established + config.reject_after
    }

    fn check(&self, now: Instant, config: &ScheduleConfig, count: u64) -> Result<(), Refusal> {
        if now >= self.expires_at(config) {
            return Err(Refusal::Expired { epoch: self.epoch });
        }
        if count >= config.reject_after_messages {
            return Err(Refusal::MessageLimit { epoch: self.epoch });
        }
        Ok(())
    }
}

/// The previous/current/next epochs of one peer and when each may be used.
#[derive(Debug)]
pub struct RotationSchedule {
    config: ScheduleConfig,
    previous: Option<Slot>,
    current: Option<Slot>,
    next: Option<Slot>,
}

impl RotationSchedule {
    /// A schedule with no epochs yet.
    pub fn new(config: ScheduleConfig) -> Result<Self, Error> {
        config.validate()?;
        Ok(Self {
            config,
            previous: None,
            current: None,
            next: None,
        })
    }

    /// The settings in force.
    pub fn config(&self) -> &ScheduleConfig {
        &self.config
    }

    /// Installs a newly established epoch (see the module docs for the two roles).
    pub fn install(&mut self, epoch: u64, role: Role, now: Instant) -> Result<(), Error> {
        let newest = [self.next, self.current]
            .into_iter()
            .flatten()
            .map(|s| s.epoch)
            .max();
        if let Some(current) = newest.filter(|&newest| epoch <= newest) {
            return Err(Error::StaleEpoch {
                current,
                offered: epoch,
            });
        }
        let slot = Slot {
            epoch,
            established: now,
            role,
            sent: 0,
            received: 0,
        };
        match role {
            Role::Initiator => {
                // A pending `next` we never saw confirmed still receives as `previous`.
                self.previous = self.next.take().or(self.current);
                self.current = Some(slot);
            }
            Role::Responder => {
                self.next = Some(slot);
                self.previous = None;
            }
        }
        Ok(())
    }

    /// Accounts one sent message and names the epoch to send it under, or refuses (fail-closed).
    pub fn on_send(&mut self, now: Instant) -> Result<u64, Refusal> {
        let config = self.config;
        let slot = self.current.as_mut().ok_or(Refusal::NoKeys)?;
        slot.check(now, &config, slot.sent)?;
        slot.sent += 1;
        Ok(slot.epoch)
    }

    /// Accepts a message received under `epoch`, confirming a pending epoch, or refuses it.
    pub fn on_receive(&mut self, epoch: u64, now: Instant) -> Result<Received, Refusal> {
        let config = self.config;
        let confirmed = self.next.is_some_and(|s| s.epoch == epoch);
        let slot = [&mut self.next, &mut self.current, &mut self.previous]
            .into_iter()
            .flatten()
            .find(|s| s.epoch == epoch)
            .ok_or(Refusal::UnknownEpoch { epoch })?;
        slot.check(now, &config, slot.received)?;
        slot.received += 1;
        if confirmed {
            self.previous = self.current.take();
            self.current = self.next.take();
        }
        Ok(Received { epoch, confirmed })
    }

    /// Whether a new epoch should be started now (WireGuard's rekey conditions).
    pub fn rekey_due(&self, now: Instant) -> bool {
        if self.next.is_some() {
            return false; // a new epoch is already waiting for confirmation
        }
        let Some(current) = self.current else {
            return true;
        };
        let after = match current.role {
            Role::Initiator => self.config.rekey_after,
            Role::Responder => self.config.responder_rekey_after(),
        };
        now >= current.established + after || current.sent >= self.config.rekey_after_messages
    }

    /// Drops every epoch whose receive window has closed and returns their numbers, so the caller
    /// can erase the matching keys.
    pub fn expire(&mut self, now: Instant) -> Vec<u64> {
        let config = self.config;
        let mut dropped = Vec::new();
        for slot in [&mut self.previous, &mut self.current, &mut self.next] {
            if let Some(s) = slot.filter(|s| now >= s.expires_at(&config)) {
                dropped.push(s.epoch);
                *slot = None;
            }
        }
        dropped
    }

    /// The epoch used for sending, if any is usable at `now`.
    pub fn current_epoch(&self, now: Instant) -> Option<u64> {
        self.current
            .filter(|s| s.check(now, &self.config, s.sent).is_ok())
            .map(|s| s.epoch)
    }

    /// The epochs a received packet may name at `now` (oldest first).
    pub fn receivable_epochs(&self, now: Instant) -> Vec<u64> {
        [self.previous, self.current, self.next]
            .into_iter()
            .flatten()
            .filter(|s| s.check(now, &self.config, s.received).is_ok())
            .map(|s| s.epoch)
            .collect()
    }

    /// The next instant at which [`Self::rekey_due`] or [`Self::expire`] changes its answer, for
    /// the caller's timer wheel.
    pub fn next_deadline(&self, now: Instant) -> Option<Instant> {
        let expiries = [self.previous, self.current, self.next]
            .into_iter()
            .flatten()
            .map(|s| s.expires_at(&self.config));
        let rekey = self.current.filter(|_| self.next.is_none()).map(|s| {
            s.established
                + match s.role {
                    Role::Initiator => self.config.rekey_after,
                    Role::Responder => self.config.responder_rekey_after(),
                }
        });
        expiries.chain(rekey).filter(|&t| t > now).min()
    }
}

#[cfg(test)]
mod tests;
