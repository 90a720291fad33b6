//! The state both roles of a hybrid peer share (docs/protocol.md §6, §9): long-term keys, the
//! ratchet (the confirmed chain key and the tentative one of an installed but unconfirmed
//! epoch), reassembly, the outbox, counters, and the steps both roles take: sign, verify, install
//! an epoch's PSK.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use keymix::mldsa::{Signature, SigningKey, VerifyingKey};
use keymix::{ChainKey, Entropy, EpochKeys, KeyId, PeerIdentity, Secret, labels};

use super::outbox::{Outbox, PskInstall, RequestId};
use super::reassembly::Reassembly;
use super::wire::Datagram;
use super::{EpochInfo, HybridDrop, HybridEvent, HybridStats, PairKeys, QkdPolicy, QkdSources};
use crate::proto::constants::REKEY_TIMEOUT_JITTER_MAX;
use crate::proto::psk::{HybridPsk, PskId};
use crate::proto::tai64n::WallClock;

/// Installed epochs remembered for status (a session lives at most REJECT_AFTER_TIME, 180 s,
/// and epochs are at least 5 s apart, but WireGuard keeps at most three sessions).
const EPOCH_HISTORY: usize = 8;

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

/// An installed epoch's chain key, waiting for WireGuard to confirm a session keyed by its PSK.
pub(super) struct Tentative {
    pub(super) chain: ChainKey,
    pub(super) psk_id: PskId,
}

/// What both roles share.
pub(super) struct Shared {
    pub(super) policy: QkdPolicy,
    /// The peer's QKD sources (§6.3).
    pub(super) sources: QkdSources,
    pub(super) rekey_after: Duration,
    pub(super) keys: PeerKeys,
    pub(super) clock: WallClock,
    pub(super) entropy: Box<dyn Entropy + Send>,
    /// The chain key of the newest epoch both sides are known to hold.
    pub(super) confirmed: ChainKey,
    pub(super) tentative: Option<Tentative>,
    pub(super) reassembly: Reassembly,
    pub(super) out: Outbox,
    pub(super) stats: HybridStats,
    next_request: u64,
    next_psk: PskId,
    /// The newest installed epoch and when (drives the rekey timer).
    pub(super) installed: Option<(EpochInfo, Instant)>,
    /// The last [`EPOCH_HISTORY`] installed epochs and when, newest last: the session carrying
    /// traffic may still be keyed by an older one than the newest.
    pub(super) history: VecDeque<(EpochInfo, Instant)>,
    /// When this peer was created.
    pub(super) created_at: Instant,
    /// When the master's first exchange is due: at creation, or later on a hub
    /// ([`super::HybridPeer::delay_first_exchange`]).
    pub(super) first_exchange_at: Instant,
}

impl Shared {
    pub(super) fn new(
        now: Instant,
        policy: QkdPolicy,
        rekey_after: Duration,
        keys: PeerKeys,
        clock: WallClock,
        entropy: Box<dyn Entropy + Send>,
    ) -> Self {
        Self {
            confirmed: ChainKey::genesis(keys.genesis_psk.as_ref()),
            policy,
            sources: QkdSources::default(),
            rekey_after,
            keys,
            clock,
            entropy,
            tentative: None,
            reassembly: Reassembly::default(),
            out: Outbox::default(),
            stats: HybridStats::default(),
            next_request: 1,
            next_psk: PskId::FIRST,
            installed: None,
            history: VecDeque::with_capacity(EPOCH_HISTORY),
            created_at: now,
            first_exchange_at: now,
        }
    }

    /// Records a fact for the driver (rejects are also counted).
    pub(super) fn event(&mut self, event: HybridEvent) {
        if let HybridEvent::Rejected { reason, .. } = &event {
            self.stats.reject(*reason);
        }
        self.out.event(event);
    }

    /// Queues a message's datagrams (counted as dropped if the outbox is full).
    pub(super) fn transmit(&mut self, datagrams: &[Datagram]) {
        if let Err(reason) = self.out.send(datagrams) {
            self.stats.drop(reason);
        }
    }

    pub(super) fn new_request_id(&mut self) -> RequestId {
        let id = RequestId(self.next_request);
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
        let context = labels::HYBRID_SIGNATURE_CONTEXT;
        signing
            .sign_with_randomness(message, context, &rnd)
            .or_else(|_| signing.sign(message, context))
            .ok()
    }

    /// Verifies the peer's signature (the costly step: counted, reached only by admitted input).
    pub(super) fn verify_peer(
        &mut self,
        message: &[u8],
        signature: &Signature,
    ) -> Result<(), HybridDrop> {
        self.stats.signature_verifications += 1;
        self.keys
            .peer_verifying
            .verify(message, labels::HYBRID_SIGNATURE_CONTEXT, signature)
            .map_err(|_| HybridDrop::BadSignature)
    }

    pub(super) fn random_u64(&mut self) -> u64 {
        self.entropy.next_u64()
    }

    /// Retransmission jitter, as WireGuard's (§6.1 step 3).
    pub(super) fn jitter(&mut self) -> Duration {
        let max = REKEY_TIMEOUT_JITTER_MAX.as_millis() as u64;
        Duration::from_millis(self.random_u64() % max)
    }

    /// The chain key before the first epoch (§9).
    pub(super) fn genesis(&self) -> ChainKey {
        ChainKey::genesis(self.keys.genesis_psk.as_ref())
    }

    /// Installs a derived epoch: its PSK goes to WireGuard under a fresh [`PskId`], its chain key
    /// waits (tentative) until a session keyed by that PSK is confirmed.
    pub(super) fn install(
        &mut self,
        now: Instant,
        keys: EpochKeys,
        key_ids: Vec<KeyId>,
        handshake_now: bool,
    ) {
        if keys.sources.has_qkd() {
            self.stats.epochs_with_qkd += 1;
        } else {
            self.stats.epochs_without_qkd += 1;
        }
        let psk_id = self.next_psk;
        self.next_psk = psk_id.next();
        let info = EpochInfo {
            epoch: keys.epoch,
            psk_id,
            sources: keys.sources,
            key_ids,
            transcript_hash: keys.transcript_hash,
            confirmation: keys.confirmation(),
        };
        let EpochKeys { psk, chain, .. } = keys;
        self.tentative = Some(Tentative { chain, psk_id });
        self.installed = Some((info.clone(), now));
        if self.history.len() == EPOCH_HISTORY {
            self.history.pop_front();
        }
        self.history.push_back((info.clone(), now));
        self.out.install(PskInstall {
            psk: HybridPsk { psk, id: psk_id },
            handshake_now,
        });
        self.event(HybridEvent::EpochInstalled(info));
    }

    /// WireGuard confirmed a session keyed by PSK `psk_id`: if it is the tentative epoch's, the
    /// ratchet moves on.
    pub(super) fn on_session_confirmed(&mut self, psk_id: PskId) {
        if self.tentative.as_ref().is_some_and(|t| t.psk_id == psk_id)
            && let Some(t) = self.tentative.take()
        {
            self.confirmed = t.chain;
        }
    }
}
