//! The per-peer hybrid state shared by both roles (docs/protocol.md §6): keys, identities, the
//! ratchet (confirmed and tentative chain keys), the reassembly buffer and the output queue.
//! Role-specific processing lives in `master.rs` and `slave.rs`.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use keymix::mldsa::{Signature, SigningKey, VerifyingKey};
use keymix::{ChainKey, PeerIdentity, Secret};

use super::constants::{SEEN_KEY_IDS, labels};
use super::master::MasterState;
use super::reassembly::Reassembly;
use super::slave::SlaveState;
use super::wire::{self, Kind};
use super::{HybridDrop, HybridEvent, HybridStats, Output, PairKeys, QkdFailure, QkdPolicy, Role};
use crate::proto::crypto::Entropy;
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

/// The long-term keys a hybrid peer needs.
#[derive(Debug)]
pub struct PeerKeys {
    /// This site's ML-DSA-65 key.
    pub signing: Arc<SigningKey>,
    /// The peer's ML-DSA-65 key.
    pub peer_verifying: VerifyingKey,
    /// `K_pair`, `pair_id`.
    pub pair: PairKeys,
    /// The master's transcript identity.
    pub master: PeerIdentity,
    /// The slave's transcript identity.
    pub slave: PeerIdentity,
    /// A static PSK mixed into the genesis chain key, if configured.
    pub genesis_psk: Option<Secret<32>>,
}

/// One peer's hybrid key agreement.
pub struct HybridPeer {
    pub(super) settings: HybridSettings,
    pub(super) keys: PeerKeys,
    pub(super) clock: WallClock,
    pub(super) entropy: Box<dyn Entropy + Send>,
    /// The chain key of the newest epoch both sides are known to hold.
    pub(super) confirmed: ChainKey,
    /// The chain key of an epoch installed but not yet confirmed by WireGuard traffic.
    pub(super) tentative: Option<ChainKey>,
    pub(super) reassembly: Reassembly,
    pub(super) outputs: VecDeque<Output>,
    pub(super) stats: HybridStats,
    pub(super) next_request: u64,
    /// When the newest epoch was installed (drives the rekey timer).
    pub(super) installed_at: Option<Instant>,
    pub(super) installed_epoch: Option<super::EpochInfo>,
    /// When this peer was created: the master's first exchange is due then.
    pub(super) created_at: Instant,
    pub(super) master: MasterState,
    pub(super) slave: SlaveState,
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
        let confirmed = ChainKey::genesis(keys.genesis_psk.as_ref());
        Self {
            settings,
            keys,
            clock,
            entropy,
            confirmed,
            tentative: None,
            reassembly: Reassembly::default(),
            outputs: VecDeque::new(),
            stats: HybridStats::default(),
            next_request: 1,
            installed_at: None,
            installed_epoch: None,
            created_at: now,
            master: MasterState::default(),
            slave: SlaveState::new(SEEN_KEY_IDS),
        }
    }

    /// This side's role.
    pub fn role(&self) -> Role {
        self.settings.role
    }

    /// The settings in force.
    pub fn settings(&self) -> &HybridSettings {
        &self.settings
    }

    /// The `pair_id` that routes datagrams to this peer.
    pub fn pair_id(&self) -> &[u8; 8] {
        self.keys.pair.pair_id()
    }

    /// Counters.
    pub fn stats(&self) -> &HybridStats {
        &self.stats
    }

    /// The newest installed epoch and when it was installed.
    pub fn current_epoch(&self) -> Option<(&super::EpochInfo, Instant)> {
        self.installed_epoch.as_ref().zip(self.installed_at)
    }

    /// The next thing the driver must do.
    pub fn poll_output(&mut self) -> Option<Output> {
        self.outputs.pop_front()
    }

    /// Handles a hybrid datagram whose `pair_id` matched this peer (§4). Every refusal is counted.
    pub fn handle_datagram(&mut self, now: Instant, datagram: &[u8]) -> Result<(), HybridDrop> {
        let result = self.handle_datagram_inner(now, datagram);
        if let Err(reason) = result {
            self.stats.drop(reason);
        }
        result
    }

    fn handle_datagram_inner(&mut self, now: Instant, datagram: &[u8]) -> Result<(), HybridDrop> {
        let fragment = wire::parse(datagram)?;
        if fragment.header.pair_id != *self.pair_id() {
            return Err(HybridDrop::UnknownPair);
        }
        fragment.verify(&self.keys.pair)?;
        let header = fragment.header;
        let expected = match (self.settings.role, header.kind) {
            (Role::Slave, Kind::Init) => true,
            (Role::Master, Kind::Response | Kind::Reject) => {
                self.master.in_flight_exchange() == Some(header.exchange_id)
            }
            (Role::Master, Kind::EpochRequest) => header.count == 1,
            _ => false,
        };
        if !expected {
            return Err(HybridDrop::Unexpected);
        }
        let Some(body) = self.reassembly.push(now, &header, fragment.payload) else {
            return Ok(()); // more fragments to come
        };
        let body = body.to_vec();
        match header.kind {
            Kind::Init => self.slave_handle_init(now, header.exchange_id, &body),
            Kind::Response => self.master_handle_response(now, &body),
            Kind::Reject => self.master_handle_reject(now, &body),
            Kind::EpochRequest => self.master_handle_epoch_request(now, &body),
        }
    }

    /// Delivers a KME result for a request this peer asked for.
    pub fn handle_qkd_result(
        &mut self,
        now: Instant,
        request: u64,
        result: Result<keymix::QkdMaterial, QkdFailure>,
    ) {
        match self.settings.role {
            Role::Master => self.master_handle_qkd(now, request, result),
            Role::Slave => self.slave_handle_qkd(now, request, result),
        }
    }

    /// WireGuard confirmed a session keyed by epoch `epoch`'s PSK: the ratchet moves on.
    pub fn on_session_confirmed(&mut self, epoch: u64) {
        if self.tentative.as_ref().is_some_and(|t| t.epoch() == epoch)
            && let Some(chain) = self.tentative.take()
        {
            self.confirmed = chain;
        }
    }

    /// Timers: retransmission, give-up, KME deadlines, rekey, reassembly expiry.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.reassembly.expire(now);
        match self.settings.role {
            Role::Master => self.master_handle_timeout(now),
            Role::Slave => self.slave_handle_timeout(now),
        }
    }

    /// The earliest instant [`Self::handle_timeout`] has work.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let role = match self.settings.role {
            Role::Master => self.master_deadline(),
            Role::Slave => self.slave_deadline(),
        };
        [role, self.reassembly.deadline()]
            .into_iter()
            .flatten()
            .min()
    }

    /// Asks for a new epoch now (queued packets and no session, or an operator's request). The
    /// master starts an exchange; the slave sends an EpochRequest (rate-limited).
    pub fn request_epoch(&mut self, now: Instant) {
        match self.settings.role {
            Role::Master => self.master_start(now),
            Role::Slave => self.slave_request(now, super::RequestReason::NoSession),
        }
    }

    pub(super) fn event(&mut self, event: HybridEvent) {
        if let HybridEvent::Rejected { reason, .. } = &event {
            self.stats.reject(*reason);
        }
        self.outputs.push_back(Output::Event(event));
    }

    pub(super) fn transmit(&mut self, datagrams: &[Vec<u8>]) {
        for d in datagrams {
            self.outputs.push_back(Output::Transmit(d.clone()));
        }
    }

    pub(super) fn new_request_id(&mut self) -> u64 {
        let id = self.next_request;
        self.next_request += 1;
        self.stats.kme_requests += 1;
        id
    }

    /// Hedged ML-DSA-65 signature with randomness from the injected entropy. `None` only if
    /// libcrux's bounded rejection loop gives up twice (probability < 2^-256); the caller then
    /// abandons the message, as if it had been lost.
    pub(super) fn sign(&mut self, message: &[u8]) -> Option<Signature> {
        let mut rnd = [0u8; 32];
        self.entropy.fill(&mut rnd);
        self.stats.signatures += 1;
        let rnd = Secret::from_mut(&mut rnd);
        let signing = &self.keys.signing;
        signing
            .sign_with_randomness(message, labels::SIGNATURE_CONTEXT, &rnd)
            .or_else(|_| signing.sign(message, labels::SIGNATURE_CONTEXT))
            .ok()
    }

    pub(super) fn verify_peer(
        &mut self,
        message: &[u8],
        signature: &Signature,
    ) -> Result<(), HybridDrop> {
        self.stats.signature_verifications += 1;
        self.keys
            .peer_verifying
            .verify(message, labels::SIGNATURE_CONTEXT, signature)
            .map_err(|_| HybridDrop::BadSignature)
    }

    pub(super) fn random_u64(&mut self) -> u64 {
        let mut b = [0u8; 8];
        self.entropy.fill(&mut b);
        u64::from_le_bytes(b)
    }

    pub(super) fn jitter(&mut self) -> Duration {
        let max = super::constants::REKEY_JITTER_MAX.as_millis() as u64;
        Duration::from_millis(self.random_u64() % (max + 1))
    }

    pub(super) fn genesis(&self) -> ChainKey {
        ChainKey::genesis(self.keys.genesis_psk.as_ref())
    }
}

impl std::fmt::Debug for HybridPeer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HybridPeer")
            .field("settings", &self.settings)
            .field("pair", &self.keys.pair)
            .field("confirmed_epoch", &self.confirmed.epoch())
            .field(
                "tentative_epoch",
                &self.tentative.as_ref().map(ChainKey::epoch),
            )
            .finish_non_exhaustive()
    }
}
