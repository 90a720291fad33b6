//! The slave's side of the exchange (docs/protocol.md §6.2): admit, verify and check an Init,
//! fetch the QKD key by ID, encapsulate, derive, answer; ask the master for epochs. This state
//! exists only at the side that is slave of the pair.

mod keys;

use std::time::Instant;

use keymix::mlkem::{self, Ciphertext, EncapsulationKey};
use keymix::{
    ChainKey, EpochContext, KeyId, KeySources, QkdMaterial, SEEN_KEY_IDS, Secret, SeenKeyIds,
    derive_epoch, labels,
};

use super::body::{self, EpochRequest, Init, Reject, RejectReason, RequestReason, Response};
use super::constants::{
    CLOCK_SKEW_TOLERANCE, EPOCH_REQUEST_INTERVAL, QKD_TIMEOUT, VERIFY_BURST, VERIFY_RATE_PER_SECOND,
};
use super::freshness::Freshness;
use super::outbox::{QkdOp, QkdRequest, RequestId};
use super::reassembly::Standing;
use super::shared::Shared;
use super::wire::{self, Datagram, Fragment, Kind};
use super::{HybridDrop, HybridEvent, Progress, SourceIndex, SourceResult};
use crate::proto::constants::REKEY_TIMEOUT;
use crate::proto::ratelimit::TokenBucket;

/// The slave's state.
pub(super) struct SlaveState {
    /// Init timestamps (§6.2 step 1).
    freshness: Freshness,
    cached: Option<Cached>,
    /// When the cache last answered: at most once per EPOCH_REQUEST_INTERVAL, so a replayed
    /// Init buys the attacker no more than the master's retransmissions would.
    last_cached_answer: Option<Instant>,
    /// Boxed: it holds an ML-KEM encapsulation key (1184 bytes).
    pending: Option<Box<Pending>>,
    seen: SeenKeyIds,
    /// Signature verifications (§7).
    admission: TokenBucket,
    last_request_at: Option<Instant>,
    last_request_timestamp: Option<[u8; 12]>,
}

/// The last Response or Reject sent, for exact Init retransmissions (§6.2 step 1).
struct Cached {
    exchange_id: u64,
    init_digest: [u8; 32],
    datagrams: Vec<Datagram>,
}

/// The Init being answered: what the Response or Reject needs.
struct Answering {
    exchange_id: u64,
    init_digest: [u8; 32],
    init_hash: [u8; 32],
    epoch: u64,
}

/// An Init verified and waiting for the KMEs: one request per source it names (§6.3).
struct Pending {
    /// Each request, its source and the key IDs it resolves (in the Init's order).
    asked: Vec<(RequestId, SourceIndex, Vec<KeyId>)>,
    /// What the sources delivered so far.
    delivered: Vec<(SourceIndex, QkdMaterial)>,
    deadline: Instant,
    answering: Answering,
    sources: KeySources,
    ek: EncapsulationKey,
    key_ids: Vec<KeyId>,
    genesis: bool,
}

impl SlaveState {
    /// The state of a slave that started at `started`.
    pub(super) fn new(started: Instant) -> Self {
        Self {
            freshness: Freshness::new(started, CLOCK_SKEW_TOLERANCE),
            cached: None,
            last_cached_answer: None,
            pending: None,
            seen: SeenKeyIds::new(SEEN_KEY_IDS),
            admission: TokenBucket::new(VERIFY_RATE_PER_SECOND, VERIFY_BURST),
            last_request_at: None,
            last_request_timestamp: None,
        }
    }
}

impl SlaveState {
    /// §4 step 5: an Init's first fragment vouches for its message if its timestamp is fresh, or
    /// if it is the answered exchange's (a retransmission, answered from the cache).
    pub(super) fn standing(&self, s: &Shared, fragment: &Fragment<'_>) -> Standing {
        let header = &fragment.header;
        let Some(timestamp) = (header.index == 0)
            .then(|| Init::timestamp_of(fragment.payload))
            .flatten()
        else {
            return Standing::Unproven;
        };
        let retransmission =
            (self.cached.as_ref()).is_some_and(|c| c.exchange_id == header.exchange_id);
        if retransmission || self.freshness.check(&s.clock, &timestamp).is_ok() {
            Standing::Current(timestamp)
        } else {
            Standing::Unproven
        }
    }

    /// §6.2 steps 1–4: an Init. An exact retransmission of the answered one is answered from the
    /// cache; any other must be fresh before it may spend an admission token, and admitted
    /// before its signature is checked.
    pub(super) fn handle_init(
        &mut self,
        s: &mut Shared,
        now: Instant,
        exchange_id: u64,
        body: &[u8],
    ) -> Result<Progress, HybridDrop> {
        let digest = body::digest(body);
        if let Some(cached) = &self.cached
            && cached.exchange_id == exchange_id
            && cached.init_digest == digest
        {
            if (self.last_cached_answer).is_some_and(|at| now < at + EPOCH_REQUEST_INTERVAL) {
                return Err(HybridDrop::RateLimited);
            }
            self.last_cached_answer = Some(now);
            s.stats.cached_answers += 1;
            s.transmit(&cached.datagrams);
            return Ok(Progress::Pending);
        }
        let (init, unsigned, signature) = Init::decode(body)?;
        self.freshness.check(&s.clock, &init.timestamp)?;
        if !self.admission.take(now) {
            return Err(HybridDrop::RateLimited);
        }
        let transcript =
            body::init_transcript(&s.keys.master, &s.keys.slave, exchange_id, unsigned);
        s.verify_peer(&transcript, &signature)?;
        self.freshness.accept(init.timestamp);
        let answering = Answering {
            exchange_id,
            init_digest: digest,
            init_hash: body::digest(&transcript),
            epoch: init.epoch,
        };
        if let Err(reason) = self.admissible(s, &init) {
            self.send_reject(s, answering, reason);
            return Ok(Progress::FromPeer);
        }
        for id in &init.key_ids {
            self.seen.insert(*id);
        }
        let sourced: Vec<_> = init.sourced_key_ids().collect();
        let mut pending = Pending {
            asked: Vec::new(),
            delivered: Vec::new(),
            deadline: now + QKD_TIMEOUT,
            answering,
            sources: init.sources,
            ek: init.ek,
            key_ids: init.key_ids,
            genesis: init.genesis,
        };
        if pending.key_ids.is_empty() {
            self.respond(s, now, pending, None);
        } else {
            for (source, id) in sourced {
                match pending.asked.last_mut() {
                    Some((_, last, ids)) if *last == source => ids.push(id),
                    _ => pending.asked.push((s.new_request_id(), source, vec![id])),
                }
            }
            s.out.ask(
                pending
                    .asked
                    .iter()
                    .map(|(id, source, key_ids)| QkdRequest {
                        id: *id,
                        source: *source,
                        op: QkdOp::Resolve {
                            key_ids: key_ids.clone(),
                        },
                    }),
            );
            self.pending = Some(Box::new(pending));
        }
        Ok(Progress::FromPeer)
    }

    /// §6.2 steps 2–3: the chain, the policy, and unseen key IDs.
    fn admissible(&mut self, s: &mut Shared, init: &Init) -> Result<(), RejectReason> {
        check_chain(s, init)?;
        // §6.3: every source the Init names must be one of ours, and as many as `require` asks.
        let mut named: Vec<SourceIndex> = init.sourced_key_ids().map(|(s, _)| s).collect();
        named.dedup();
        let ours = named.iter().all(|n| n.get() < s.sources.count);
        if !ours || !s.sources.admits(s.policy, named.len()) {
            return Err(RejectReason::PolicyMismatch);
        }
        if init.key_ids.iter().any(|id| self.seen.contains(id)) {
            s.stats.qkd_key_reuse += 1;
            return Err(RejectReason::QkdRefused);
        }
        Ok(())
    }

    /// §6.2 step 5: encapsulate, derive, answer, cache, install (WireGuard then answers the
    /// master's handshake with the new PSK).
    fn respond(
        &mut self,
        s: &mut Shared,
        now: Instant,
        pending: Pending,
        qkd: Option<QkdMaterial>,
    ) {
        let mut m = [0u8; mlkem::ENCAPS_RANDOMNESS_LEN];
        s.entropy.fill(&mut m);
        let (ct, shared): (Ciphertext, _) = pending
            .ek
            .encapsulate_with_randomness(&Secret::from_mut(&mut m));
        s.stats.kem_operations += 1;
        let genesis = pending.genesis.then(|| s.genesis());
        let base = genesis.as_ref().unwrap_or(&s.confirmed);
        let epoch = pending.answering.epoch;
        let context = EpochContext {
            epoch,
            initiator: &s.keys.master,
            responder: &s.keys.slave,
            mlkem_ek: &pending.ek,
            mlkem_ct: &ct,
        };
        let Ok(keys) = derive_epoch(base, &context, pending.sources, &shared, qkd.as_ref()) else {
            // Only an epoch that does not follow the base can fail here; the Init was checked.
            self.send_reject(s, pending.answering, RejectReason::ChainMismatch);
            return;
        };
        if let Some(genesis) = genesis {
            s.confirmed = genesis;
        }
        let response = Response {
            epoch,
            sources: pending.sources,
            ct,
            confirm: keys.confirmation(),
        };
        let unsigned = response.encode_unsigned();
        let label = labels::HYBRID_RESPONSE;
        let signed = body::reply_transcript(label, &pending.answering.init_hash, &unsigned);
        let Some(signature) = s.sign(&signed) else {
            return;
        };
        let message = body::with_signature(unsigned, &signature);
        let exchange_id = pending.answering.exchange_id;
        let datagrams = wire::fragment(&s.keys.pair, Kind::Response, exchange_id, &message);
        s.transmit(&datagrams);
        self.cached = Some(Cached {
            exchange_id,
            init_digest: pending.answering.init_digest,
            datagrams,
        });
        s.install(now, keys, pending.key_ids, false);
    }

    fn send_reject(&mut self, s: &mut Shared, answering: Answering, reason: RejectReason) {
        let epoch = answering.epoch;
        let unsigned = Reject { epoch, reason }.encode_unsigned();
        let signed = body::reply_transcript(labels::HYBRID_REJECT, &answering.init_hash, &unsigned);
        let Some(signature) = s.sign(&signed) else {
            return;
        };
        let message = body::with_signature(unsigned, &signature);
        let exchange_id = answering.exchange_id;
        let datagrams = wire::fragment(&s.keys.pair, Kind::Reject, exchange_id, &message);
        s.transmit(&datagrams);
        self.cached = Some(Cached {
            exchange_id,
            init_digest: answering.init_digest,
            datagrams,
        });
        s.event(HybridEvent::Rejected {
            epoch,
            reason,
            sent: true,
        });
    }

    /// Sends an EpochRequest (§5.3), at most one per [`EPOCH_REQUEST_INTERVAL`].
    pub(super) fn request(&mut self, s: &mut Shared, now: Instant, reason: RequestReason) {
        if self
            .last_request_at
            .is_some_and(|at| now < at + EPOCH_REQUEST_INTERVAL)
        {
            return;
        }
        self.last_request_at = Some(now);
        let timestamp = s.clock.timestamp_after(now, self.last_request_timestamp);
        self.last_request_timestamp = Some(timestamp);
        let request = EpochRequest {
            current_epoch: (s.installed.as_ref()).map_or(0, |(info, _)| info.epoch),
            timestamp,
            reason,
        };
        let datagrams = wire::fragment(&s.keys.pair, Kind::EpochRequest, 0, &request.encode());
        s.transmit(&datagrams);
    }

    /// Lifts the rate limit on EpochRequests (the clock was stepped: the last ones may have
    /// carried timestamps the master refused).
    pub(super) fn may_ask_again(&mut self) {
        self.last_request_at = None;
    }

    /// Timers: the KME deadline of a pending Init, and asking for an epoch: at once when there
    /// is none (a started or restarted slave need not wait for the master's schedule), and when
    /// the master is overdue.
    pub(super) fn handle_timeout(&mut self, s: &mut Shared, now: Instant) {
        if self.pending.as_ref().is_some_and(|p| now >= p.deadline)
            && let Some(pending) = self.pending.take()
        {
            for (_, source, _) in &pending.asked {
                if !pending.delivered.iter().any(|(d, _)| d == source) {
                    s.stats.source(*source, SourceResult::Unavailable);
                }
            }
            self.send_reject(s, pending.answering, RejectReason::QkdUnavailable);
        }
        if let Some((due, reason)) = self.request_due(s)
            && now >= due
        {
            self.request(s, now, reason);
        }
    }

    /// When [`SlaveState::handle_timeout`] has work.
    pub(super) fn deadline(&self, s: &Shared) -> Option<Instant> {
        let pending = self.pending.as_ref().map(|p| p.deadline);
        let request = self.request_due(s).map(|(due, _)| due);
        [pending, request].into_iter().flatten().min()
    }

    /// When the next EpochRequest is due, and why: with no epoch, at once and then every
    /// REKEY_TIMEOUT; otherwise a REKEY_TIMEOUT after the master should have started one. Never
    /// before the rate limit lets a request out again, or the timer would be due in vain.
    fn request_due(&self, s: &Shared) -> Option<(Instant, RequestReason)> {
        let (due, reason) = match (&s.installed, self.last_request_at) {
            (Some((_, at)), _) => (*at + s.rekey_after + REKEY_TIMEOUT, RequestReason::RekeyDue),
            (None, Some(last)) => (last + REKEY_TIMEOUT, RequestReason::NoSession),
            (None, None) => (s.created_at, RequestReason::NoSession),
        };
        let allowed = self
            .last_request_at
            .map(|last| last + EPOCH_REQUEST_INTERVAL);
        Some((allowed.map_or(due, |a| due.max(a)), reason))
    }
}

/// §6.2 step 2: which chain key the Init builds on. A matching tentative epoch is promoted.
fn check_chain(s: &mut Shared, init: &Init) -> Result<(), RejectReason> {
    if init.genesis {
        return if init.epoch == 1 {
            Ok(())
        } else {
            Err(RejectReason::ChainMismatch)
        };
    }
    let matches = |chain: &ChainKey| {
        chain.epoch() + 1 == init.epoch && keymix::ct_eq(&chain.tag(), &init.chain_tag)
    };
    if s.tentative.as_ref().is_some_and(|t| matches(&t.chain)) {
        if let Some(t) = s.tentative.take() {
            s.confirmed = t.chain;
        }
        return Ok(());
    }
    if matches(&s.confirmed) {
        s.tentative = None;
        return Ok(());
    }
    Err(RejectReason::ChainMismatch)
}
