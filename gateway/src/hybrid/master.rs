//! The master's side of the exchange (docs/protocol.md §6.1): schedule epochs, get a QKD key per
//! policy, send a signed Init, verify the Response, derive and install the PSK. This state exists
//! only at the side that is master of the pair. What it does with the slave's messages is in
//! [`answers`].

mod answers;

use std::time::Instant;

use keymix::mlkem::{self, DecapsulationKey};
use keymix::{KeySources, QkdMaterial, Secret};

use super::body::{self, Init};
use super::constants::{
    CLOCK_SKEW_TOLERANCE, QKD_TIMEOUT, REQUESTED_EPOCH_MIN_AGE, VERIFY_BURST,
    VERIFY_RATE_PER_SECOND,
};
use super::freshness::Freshness;
use super::outbox::{Prefetched, QkdOp, QkdRequest, RequestId};
use super::shared::Shared;
use super::wire::{self, Datagram, Kind};
use super::{
    HybridEvent, HybridStats, QkdFailure, QkdPolicy, QkdResult, SourceIndex, SourceResult,
};
use crate::proto::constants::{REKEY_ATTEMPT_TIME, REKEY_TIMEOUT};
use crate::proto::ratelimit::TokenBucket;

/// Whether the newest epoch's WireGuard handshake had its time (REQUESTED_EPOCH_MIN_AGE), so
/// that a new epoch on request is not one the rotation does not need (§6.1 step 1).
fn newest_epoch_settled(s: &Shared, now: Instant) -> bool {
    (s.installed.as_ref()).is_none_or(|(_, at)| now >= *at + REQUESTED_EPOCH_MIN_AGE)
}

/// Where the master is in making the next epoch.
#[derive(Default)]
enum Phase {
    /// Waiting for the rekey timer (or for the first timeout, with no epoch yet).
    #[default]
    Idle,
    /// Asked each QKD source's KME for a key (§6.3).
    AwaitingQkd {
        round: Box<Round>,
        deadline: Instant,
        next: Next,
    },
    /// Init sent; waiting for the Response.
    AwaitingResponse(Box<Exchange>),
    /// The last attempt failed; try again at `until`.
    Backoff { until: Instant },
}

/// One request per QKD source and the answers so far (§6.1 step 2, §6.3).
struct Round {
    asked: Vec<(RequestId, SourceIndex)>,
    answers: Vec<(SourceIndex, QkdResult)>,
}

impl Round {
    /// Every source answered.
    fn complete(&self) -> bool {
        self.answers.len() == self.asked.len()
    }

    /// The answers, each source that gave none counted (in `stats`) and answered as unavailable.
    fn finish(self, stats: &mut HybridStats) -> Vec<(SourceIndex, QkdResult)> {
        let mut answers = self.answers;
        for (_, source) in self.asked {
            if !answers.iter().any(|(s, _)| *s == source) {
                stats.source(source, SourceResult::Unavailable);
                answers.push((source, Err(QkdFailure::Unavailable)));
            }
        }
        answers
    }
}

/// The epoch an exchange makes, and from which chain key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Next {
    epoch: u64,
    /// From the genesis chain key (§9): this side has no ratchet, or the slave said it has none.
    genesis: bool,
}

/// An Init in flight.
struct Exchange {
    id: u64,
    next: Next,
    sources: KeySources,
    dk: DecapsulationKey,
    ek: mlkem::EncapsulationKey,
    qkd: Option<QkdMaterial>,
    init_hash: [u8; 32],
    datagrams: Vec<Datagram>,
    /// When the Init was first sent (its timestamp's time).
    sent_at: Instant,
    retransmit_at: Instant,
    give_up_at: Instant,
}

/// The master's state.
pub(super) struct MasterState {
    phase: Phase,
    /// Set after a slave's QKD refusal under `preferred`: the next Init goes without QKD.
    skip_qkd_once: bool,
    /// Set after the slave's KME refused a key of this side's: the next key is fetched anew.
    prefetched: Prefetched,
    /// Set when the next exchange must start from the genesis chain key (§9).
    genesis_next: bool,
    last_timestamp: Option<[u8; 12]>,
    /// EpochRequest timestamps (§5.3).
    requests: Freshness,
    /// When an EpochRequest was last acted on (at most one per EPOCH_REQUEST_INTERVAL).
    last_request_at: Option<Instant>,
    /// When an EpochRequest last started an exchange (§6.1 step 1).
    last_requested_start: Option<Instant>,
    /// Signature verifications of replies (§7).
    replies: TokenBucket,
}

impl MasterState {
    /// The state of a master that started at `started`.
    pub(super) fn new(started: Instant) -> Self {
        Self {
            phase: Phase::Idle,
            skip_qkd_once: false,
            prefetched: Prefetched::Use,
            genesis_next: false,
            last_timestamp: None,
            requests: Freshness::new(started, CLOCK_SKEW_TOLERANCE),
            last_request_at: None,
            last_requested_start: None,
            replies: TokenBucket::new(VERIFY_RATE_PER_SECOND, VERIFY_BURST),
        }
    }
}

impl MasterState {
    /// The exchange whose replies are expected now.
    pub(super) fn in_flight_exchange(&self) -> Option<u64> {
        match &self.phase {
            Phase::AwaitingResponse(exchange) => Some(exchange.id),
            _ => None,
        }
    }

    /// Starts an exchange unless one is under way (§6.1 step 1). An installed epoch whose
    /// session is not confirmed yet is the base: the slave answered for it, so it holds it too
    /// and promotes it when the Init's chain tag names it (§6.2 step 2).
    pub(super) fn start(&mut self, s: &mut Shared, now: Instant) {
        if !matches!(self.phase, Phase::Idle | Phase::Backoff { .. }) {
            return;
        }
        if let Some(t) = s.tentative.take() {
            s.confirmed = t.chain;
        }
        let genesis = std::mem::take(&mut self.genesis_next) || s.confirmed.epoch() == 0;
        let next = Next {
            epoch: if genesis { 1 } else { s.confirmed.epoch() + 1 },
            genesis,
        };
        let use_qkd = s.policy != QkdPolicy::Off && !self.skip_qkd_once;
        self.skip_qkd_once = false;
        if use_qkd {
            let prefetched = std::mem::replace(&mut self.prefetched, Prefetched::Use);
            let asked: Vec<_> = (s.sources.indices())
                .map(|source| (s.new_request_id(), source))
                .collect();
            s.out.ask(asked.iter().map(|&(id, source)| QkdRequest {
                id,
                source,
                op: QkdOp::Fetch { prefetched },
            }));
            self.phase = Phase::AwaitingQkd {
                round: Box::new(Round {
                    asked,
                    answers: Vec::new(),
                }),
                deadline: now + QKD_TIMEOUT,
                next,
            };
        } else {
            self.send_init(s, now, next, None);
        }
    }

    /// WireGuard needs a handshake and has no fresh PSK: an exchange if none is under way, no
    /// back-off runs, and the newest epoch's handshake had its time (§6.1 step 1).
    pub(super) fn on_epoch_needed(&mut self, s: &mut Shared, now: Instant) {
        if matches!(self.phase, Phase::Idle) && newest_epoch_settled(s, now) {
            self.start(s, now);
        }
    }

    /// A KME's answer to `request` (§6.1 step 2). Once every source answered, the policy
    /// decides (§6.3). A late answer to an abandoned request is dropped, and with it the key
    /// (zeroized).
    pub(super) fn handle_qkd(
        &mut self,
        s: &mut Shared,
        now: Instant,
        request: RequestId,
        result: QkdResult,
    ) {
        let Phase::AwaitingQkd { round, .. } = &mut self.phase else {
            return;
        };
        let Some(&(_, source)) = round.asked.iter().find(|(id, _)| *id == request) else {
            return;
        };
        if round.answers.iter().any(|(s, _)| *s == source) {
            return;
        }
        s.stats.source(source, SourceResult::of(&result));
        round.answers.push((source, result));
        if round.complete() {
            self.decide(s, now);
        }
    }

    /// §6.1 step 2 with several sources (§6.3): mix what arrived, fall back, or fail closed.
    fn decide(&mut self, s: &mut Shared, now: Instant) {
        let Phase::AwaitingQkd { round, next, .. } = std::mem::take(&mut self.phase) else {
            return;
        };
        let answers = round.finish(&mut s.stats);
        match s.sources.decide(s.policy, answers) {
            Ok(Some((tags, material))) => self.send_init(s, now, next, Some((tags, material))),
            Ok(None) => {
                s.event(HybridEvent::Fallback { epoch: next.epoch });
                self.send_init(s, now, next, None);
            }
            Err(_) => self.no_qkd(s, now, next),
        }
    }

    fn no_qkd(&mut self, s: &mut Shared, now: Instant, next: Next) {
        let epoch = next.epoch;
        match s.policy {
            QkdPolicy::Required => {
                s.event(HybridEvent::QkdBlocked { epoch });
                self.genesis_next |= next.genesis;
                let until = now + REKEY_TIMEOUT + s.jitter();
                self.phase = Phase::Backoff { until };
            }
            _ => {
                s.event(HybridEvent::Fallback { epoch });
                self.send_init(s, now, next, None);
            }
        }
    }

    /// §6.1 step 3: a fresh ML-KEM key pair, a signed Init, retransmitted until answered.
    fn send_init(
        &mut self,
        s: &mut Shared,
        now: Instant,
        next: Next,
        qkd: Option<(Vec<SourceIndex>, QkdMaterial)>,
    ) {
        let (tags, qkd) = match qkd {
            Some((tags, material)) => (tags, Some(material)),
            None => (Vec::new(), None),
        };
        let mut seed = [0u8; mlkem::KEYGEN_SEED_LEN];
        s.entropy.fill(&mut seed);
        let (dk, ek) = mlkem::generate_from_seed(&Secret::from_mut(&mut seed));
        s.stats.kem_operations += 1;
        let id = s.random_u64().max(1);
        let timestamp = self.next_timestamp(s, now);
        let genesis = next.genesis;
        let sources = KeySources::hybrid(qkd.is_some());
        let init = Init {
            epoch: next.epoch,
            genesis,
            sources,
            timestamp,
            chain_tag: if genesis { [0; 16] } else { s.confirmed.tag() },
            ek: ek.clone(),
            key_ids: qkd
                .as_ref()
                .map(|q| q.key_ids().to_vec())
                .unwrap_or_default(),
            // Tagged only with several sources: one source keeps version 1's layout (§5.1).
            tags: (s.sources.count > 1 && qkd.is_some()).then_some(tags),
        };
        let unsigned = init.encode_unsigned();
        let transcript = body::init_transcript(&s.keys.master, &s.keys.slave, id, &unsigned);
        let Some(signature) = s.sign(&transcript) else {
            self.genesis_next |= genesis;
            self.phase = Phase::Backoff {
                until: now + REKEY_TIMEOUT,
            };
            return;
        };
        let message = body::with_signature(unsigned, &signature);
        let datagrams = wire::fragment(&s.keys.pair, Kind::Init, id, &message);
        s.transmit(&datagrams);
        let retransmit_at = now + REKEY_TIMEOUT + s.jitter();
        self.phase = Phase::AwaitingResponse(Box::new(Exchange {
            id,
            next,
            sources,
            dk,
            ek,
            qkd,
            init_hash: body::digest(&transcript),
            datagrams,
            sent_at: now,
            retransmit_at,
            give_up_at: now + REKEY_ATTEMPT_TIME,
        }));
    }

    /// TAI64N of `now`, above the last one sent (timestamps are rounded to ~16.8 ms, and the
    /// clock may have been set back).
    fn next_timestamp(&mut self, s: &Shared, now: Instant) -> [u8; 12] {
        let ts = s.clock.timestamp_after(now, self.last_timestamp);
        self.last_timestamp = Some(ts);
        ts
    }

    /// Timers: the rekey schedule, back-off, the KME deadline, retransmission and give-up.
    pub(super) fn handle_timeout(&mut self, s: &mut Shared, now: Instant) {
        match &mut self.phase {
            Phase::Idle => {
                let due = s
                    .installed
                    .as_ref()
                    .map_or(now >= s.first_exchange_at, |(_, at)| {
                        now >= *at + s.rekey_after
                    });
                if due {
                    self.start(s, now);
                }
            }
            Phase::Backoff { until } if now >= *until => self.start(s, now),
            Phase::AwaitingQkd { deadline, .. } if now >= *deadline => self.decide(s, now),
            Phase::AwaitingResponse(exchange) if now >= exchange.give_up_at => {
                self.restart_exchange(s, now);
            }
            Phase::AwaitingResponse(_) => self.retransmit_if_due(s, now),
            _ => {}
        }
    }

    /// Abandons the exchange in flight, if any, and starts a new one at once.
    pub(super) fn restart_exchange(&mut self, s: &mut Shared, now: Instant) {
        if let Phase::AwaitingResponse(exchange) = &self.phase {
            let next = exchange.next;
            self.phase = Phase::Idle;
            self.genesis_next |= next.genesis;
            s.event(HybridEvent::ExchangeAbandoned { epoch: next.epoch });
            self.start(s, now);
        }
    }

    /// Sends the Init in flight again if its time has come.
    fn retransmit_if_due(&mut self, s: &mut Shared, now: Instant) {
        if let Phase::AwaitingResponse(exchange) = &mut self.phase
            && now >= exchange.retransmit_at
        {
            exchange.retransmit_at = now + REKEY_TIMEOUT + s.jitter();
            let datagrams = exchange.datagrams.clone();
            s.transmit(&datagrams);
        }
    }

    /// When [`MasterState::handle_timeout`] has work.
    pub(super) fn deadline(&self, s: &Shared) -> Option<Instant> {
        match &self.phase {
            Phase::Idle => Some(
                s.installed
                    .as_ref()
                    .map_or(s.first_exchange_at, |(_, at)| *at + s.rekey_after),
            ),
            Phase::Backoff { until } => Some(*until),
            Phase::AwaitingQkd { deadline, .. } => Some(*deadline),
            Phase::AwaitingResponse(e) => Some(e.retransmit_at.min(e.give_up_at)),
        }
    }
}
