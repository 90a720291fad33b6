//! One peer's hybrid key agreement (docs/protocol.md §6): the public machine the node drives. It
//! holds the state both roles share ([`super::shared`]) and the state of its own role only.

use std::time::{Duration, Instant};

use keymix::{ChainKey, Entropy};

use super::constants::CLOCK_SKEW_TOLERANCE;
use super::master::MasterState;
pub use super::outbox::PskInstall;
use super::outbox::{QkdRequest, RequestId};
use super::reassembly::Standing;
pub use super::shared::PeerKeys;
use super::shared::Shared;
use super::slave::SlaveState;
use super::wire::{Fragment, Kind};
use super::{
    EpochInfo, HybridDrop, HybridEvent, HybridStats, Progress, QkdPolicy, QkdResult, QkdSources,
    Role,
};
use crate::proto::psk::PskId;
use crate::proto::tai64n::WallClock;

/// Per-peer settings from the config.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HybridSettings {
    /// Master or slave of this pair.
    pub role: Role,
    /// `qkd.policy`.
    pub policy: QkdPolicy,
    /// `rekey_after_seconds`.
    pub rekey_after: Duration,
}

/// The state of the role this side has.
enum RoleState {
    Master(MasterState),
    Slave(SlaveState),
}

/// One peer's hybrid key agreement.
pub struct HybridPeer {
    shared: Shared,
    role: RoleState,
}

impl HybridPeer {
    /// A peer with no epoch yet. The master starts an exchange at its first timeout.
    pub fn new(
        now: Instant,
        settings: HybridSettings,
        keys: PeerKeys,
        clock: WallClock,
        entropy: Box<dyn Entropy + Send>,
    ) -> Self {
        let HybridSettings {
            role,
            policy,
            rekey_after,
        } = settings;
        let shared = Shared::new(now, policy, rekey_after, keys, clock, entropy);
        let role = match role {
            Role::Master => RoleState::Master(MasterState::new(now)),
            Role::Slave => RoleState::Slave(SlaveState::new(now)),
        };
        Self { shared, role }
    }

    /// The peer's QKD sources (§6.3; one, the site's only KME, unless set): both gateways
    /// list them in the same order.
    #[must_use]
    pub fn with_qkd_sources(mut self, sources: QkdSources) -> Self {
        self.shared.sources = sources;
        self
    }

    /// Delays a master's first exchange until `at` (a hub spreads its peers' first exchanges,
    /// docs/protocol.md §7); traffic that needs a session still starts it at once.
    pub fn delay_first_exchange(&mut self, until: Instant) {
        self.shared.first_exchange_at = until;
    }

    /// The peer's QKD sources.
    pub fn qkd_sources(&self) -> QkdSources {
        self.shared.sources
    }

    /// This side's role.
    pub fn role(&self) -> Role {
        match self.role {
            RoleState::Master(_) => Role::Master,
            RoleState::Slave(_) => Role::Slave,
        }
    }

    /// `qkd.policy`.
    pub fn policy(&self) -> QkdPolicy {
        self.shared.policy
    }

    /// The `pair_id` that routes datagrams to this peer.
    pub fn pair_id(&self) -> &[u8; 8] {
        self.shared.keys.pair.pair_id()
    }

    /// Counters.
    pub fn stats(&self) -> &HybridStats {
        &self.shared.stats
    }

    /// The newest installed epoch and when it was installed.
    pub fn current_epoch(&self) -> Option<(&EpochInfo, Instant)> {
        self.shared.installed.as_ref().map(|(info, at)| (info, *at))
    }

    /// The installed epoch whose PSK is `psk_id` and when it was installed, if it is among the
    /// last few: what the session keyed by that PSK carries (status, metrics, audit).
    pub fn epoch_of(&self, psk_id: PskId) -> Option<(&EpochInfo, Instant)> {
        (self.shared.history.iter().rev())
            .find(|(info, _)| info.psk_id == psk_id)
            .map(|(info, at)| (info, *at))
    }

    /// The chain key's epoch both sides are known to hold (the ratchet, §9).
    pub fn confirmed_epoch(&self) -> u64 {
        self.shared.confirmed.epoch()
    }

    /// Handles a hybrid fragment whose header the caller parsed and whose `pair_id` matched this
    /// peer (§4 steps 3–5, then §6). Every refusal is counted.
    pub fn handle_fragment(
        &mut self,
        now: Instant,
        fragment: &Fragment<'_>,
    ) -> Result<Progress, HybridDrop> {
        let result = self.admit_fragment(now, fragment);
        if let Err(reason) = result {
            self.shared.stats.drop(reason);
        }
        result
    }

    fn admit_fragment(
        &mut self,
        now: Instant,
        fragment: &Fragment<'_>,
    ) -> Result<Progress, HybridDrop> {
        let s = &mut self.shared;
        if fragment.header.pair_id != *s.keys.pair.pair_id() {
            return Err(HybridDrop::UnknownPair);
        }
        fragment.verify(&s.keys.pair)?;
        let header = fragment.header;
        // §4 step 4: admission by kind, and what the message's standing is before it is whole.
        let standing = match (&self.role, header.kind) {
            (RoleState::Slave(slave), Kind::Init) => slave.standing(s, fragment),
            (RoleState::Master(m), Kind::Response | Kind::Reject) => {
                if m.in_flight_exchange() != Some(header.exchange_id) {
                    return Err(HybridDrop::Unexpected);
                }
                Standing::Current([0; 12])
            }
            // One fragment: it never enters reassembly, so it cannot disturb one.
            (RoleState::Master(_), Kind::EpochRequest) => {
                if header.count != 1 {
                    return Err(HybridDrop::Unexpected);
                }
                let RoleState::Master(m) = &mut self.role else {
                    return Err(HybridDrop::Unexpected);
                };
                return m.handle_epoch_request(s, now, fragment.payload);
            }
            (RoleState::Master(_), Kind::Init)
            | (RoleState::Slave(_), Kind::Response | Kind::Reject | Kind::EpochRequest) => {
                return Err(HybridDrop::RoleConflict);
            }
        };
        let Some(body) = s.reassembly.push(now, &header, fragment.payload, standing) else {
            return Ok(Progress::Pending); // more fragments to come
        };
        let body = body.to_vec();
        match (&mut self.role, header.kind) {
            (RoleState::Slave(slave), Kind::Init) => {
                slave.handle_init(s, now, header.exchange_id, &body)
            }
            (RoleState::Master(m), Kind::Response) => m.handle_response(s, now, &body),
            (RoleState::Master(m), Kind::Reject) => m.handle_reject(s, now, &body),
            _ => Err(HybridDrop::Unexpected),
        }
    }

    /// Delivers the KME's answer to request `id`.
    pub fn handle_qkd_result(&mut self, now: Instant, id: RequestId, result: QkdResult) {
        let s = &mut self.shared;
        match &mut self.role {
            RoleState::Master(m) => m.handle_qkd(s, now, id, result),
            RoleState::Slave(slave) => slave.handle_qkd(s, now, id, result),
        }
    }

    /// WireGuard confirmed a session keyed by hybrid PSK `psk_id`: the ratchet moves on.
    pub fn on_session_confirmed(&mut self, psk_id: PskId) {
        self.shared.on_session_confirmed(psk_id);
    }

    /// WireGuard needs a handshake and has no fresh PSK. The master starts an exchange if
    /// rotation allows one (§6.1 step 1: never during a back-off); the slave sends an
    /// EpochRequest (rate-limited).
    pub fn request_epoch(&mut self, now: Instant) {
        let s = &mut self.shared;
        match &mut self.role {
            RoleState::Master(m) => m.on_epoch_needed(s, now),
            RoleState::Slave(slave) => slave.request(s, now, super::RequestReason::NoSession),
        }
    }

    /// The wall clock now reads `unix` at `now` (re-read by the driver; see [`WallClock::set`]).
    /// After a step of more than CLOCK_SKEW_TOLERANCE the master starts its exchange in flight
    /// over, so that its Init carries a timestamp of the corrected clock (§6.1 step 3), and the
    /// slave may ask for an epoch again at once (its earlier requests may have been refused).
    pub fn set_wall_clock(&mut self, now: Instant, unix: Duration) {
        let step = self.shared.clock.unix(now).abs_diff(unix);
        self.shared.clock.set(now, unix);
        if step <= CLOCK_SKEW_TOLERANCE {
            return;
        }
        match &mut self.role {
            RoleState::Master(m) => m.restart_exchange(&mut self.shared, now),
            RoleState::Slave(slave) => slave.may_ask_again(),
        }
    }

    /// Timers: retransmission, give-up, KME deadlines, rekey, reassembly expiry.
    pub fn handle_timeout(&mut self, now: Instant) {
        let s = &mut self.shared;
        s.reassembly.expire(now);
        match &mut self.role {
            RoleState::Master(m) => m.handle_timeout(s, now),
            RoleState::Slave(slave) => slave.handle_timeout(s, now),
        }
    }

    /// The earliest instant [`Self::handle_timeout`] has work.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let s = &self.shared;
        let role = match &self.role {
            RoleState::Master(m) => m.deadline(s),
            RoleState::Slave(slave) => slave.deadline(s),
        };
        [role, s.reassembly.deadline()].into_iter().flatten().min()
    }

    /// Writes the next datagram to send to the peer into `buf` (at least
    /// [`super::constants::MAX_DATAGRAM`] bytes); its length.
    pub fn poll_transmit(&mut self, buf: &mut [u8]) -> Option<usize> {
        self.shared.out.poll_transmit(buf)
    }

    /// The next request for this site's KME.
    pub fn poll_qkd_request(&mut self) -> Option<QkdRequest> {
        self.shared.out.poll_qkd_request()
    }

    /// The PSK WireGuard should use for its next handshake with this peer, if a new one is ready.
    pub fn poll_psk(&mut self) -> Option<PskInstall> {
        self.shared.out.poll_psk()
    }

    /// The next fact for logs, metrics and the audit log.
    pub fn poll_event(&mut self) -> Option<HybridEvent> {
        self.shared.out.poll_event()
    }
}

impl std::fmt::Debug for HybridPeer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let s = &self.shared;
        f.debug_struct("HybridPeer")
            .field("role", &self.role())
            .field("policy", &s.policy)
            .field("pair", &s.keys.pair)
            .field("confirmed_epoch", &s.confirmed.epoch())
            .field(
                "tentative_epoch",
                &s.tentative.as_ref().map(|t| ChainKey::epoch(&t.chain)),
            )
            .finish_non_exhaustive()
    }
}
