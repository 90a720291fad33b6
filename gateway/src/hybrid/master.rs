//! The master's side of the exchange (docs/protocol.md §6.1): schedule epochs, get a QKD key per
//! policy, send a signed Init, verify the Response, derive and install the PSK. This state exists
//! only at the side that is master of the pair.

use std::time::Instant;

use keymix::mlkem::{self, DecapsulationKey};
use keymix::{EpochContext, KeySources, QkdMaterial, Secret, derive_epoch, labels};

use super::body::{self, Init, Reject, RejectReason, Response};
use super::constants::{EPOCH_REQUEST_INTERVAL, QKD_TIMEOUT};
use super::outbox::{QkdOp, QkdRequest, RequestId};
use super::shared::Shared;
use super::wire::{self, Datagram, Kind};
use super::{HybridDrop, HybridEvent, QkdPolicy, QkdResult};
use crate::proto::constants::{REKEY_ATTEMPT_TIME, REKEY_TIMEOUT};

/// Where the master is in making the next epoch.
#[derive(Default)]
enum Phase {
    /// Waiting for the rekey timer (or for the first timeout, with no epoch yet).
    #[default]
    Idle,
    /// Asked the KME for a key.
    AwaitingQkd {
        request: RequestId,
        deadline: Instant,
        epoch: u64,
    },
    /// Init sent; waiting for the Response.
    AwaitingResponse(Box<Exchange>),
    /// The last attempt failed; try again at `until`.
    Backoff { until: Instant },
}

/// An Init in flight.
struct Exchange {
    id: u64,
    epoch: u64,
    sources: KeySources,
    dk: DecapsulationKey,
    ek: mlkem::EncapsulationKey,
    qkd: Option<QkdMaterial>,
    init_hash: [u8; 32],
    datagrams: Vec<Datagram>,
    retransmit_at: Instant,
    give_up_at: Instant,
}

/// The master's state.
#[derive(Default)]
pub(super) struct MasterState {
    phase: Phase,
    /// Set after a slave's QKD refusal under `preferred`: the next Init goes without QKD.
    skip_qkd_once: bool,
    last_timestamp: Option<[u8; 12]>,
    last_request_timestamp: Option<[u8; 12]>,
    last_request_at: Option<Instant>,
}

impl MasterState {
    /// The exchange whose replies are expected now.
    pub(super) fn in_flight_exchange(&self) -> Option<u64> {
        match &self.phase {
            Phase::AwaitingResponse(exchange) => Some(exchange.id),
            _ => None,
        }
    }

    /// Starts an exchange unless one is under way (§6.1 step 1).
    pub(super) fn start(&mut self, s: &mut Shared, now: Instant) {
        if !matches!(self.phase, Phase::Idle | Phase::Backoff { .. }) {
            return;
        }
        s.tentative = None;
        let epoch = s.confirmed.epoch() + 1;
        let use_qkd = s.policy != QkdPolicy::Off && !self.skip_qkd_once;
        self.skip_qkd_once = false;
        if use_qkd {
            let request = s.new_request_id();
            s.out.ask(QkdRequest {
                id: request,
                op: QkdOp::Fetch,
            });
            self.phase = Phase::AwaitingQkd {
                request,
                deadline: now + QKD_TIMEOUT,
                epoch,
            };
        } else {
            self.send_init(s, now, epoch, None);
        }
    }

    /// The KME's answer to `request` (§6.1 step 2). A late answer to an abandoned request is
    /// dropped, and with it the key (zeroized).
    pub(super) fn handle_qkd(
        &mut self,
        s: &mut Shared,
        now: Instant,
        request: RequestId,
        result: QkdResult,
    ) {
        let Phase::AwaitingQkd {
            request: expected,
            epoch,
            ..
        } = self.phase
        else {
            return;
        };
        if request != expected {
            return;
        }
        match result {
            Ok(material) => self.send_init(s, now, epoch, Some(material)),
            Err(_) => self.no_qkd(s, now, epoch),
        }
    }

    fn no_qkd(&mut self, s: &mut Shared, now: Instant, epoch: u64) {
        match s.policy {
            QkdPolicy::Required => {
                s.event(HybridEvent::QkdBlocked { epoch });
                let until = now + REKEY_TIMEOUT + s.jitter();
                self.phase = Phase::Backoff { until };
            }
            _ => {
                s.event(HybridEvent::Fallback { epoch });
                self.send_init(s, now, epoch, None);
            }
        }
    }

    /// §6.1 step 3: a fresh ML-KEM key pair, a signed Init, retransmitted until answered.
    fn send_init(&mut self, s: &mut Shared, now: Instant, epoch: u64, qkd: Option<QkdMaterial>) {
        let mut seed = [0u8; mlkem::KEYGEN_SEED_LEN];
        s.entropy.fill(&mut seed);
        let (dk, ek) = mlkem::generate_from_seed(&Secret::from_mut(&mut seed));
        s.stats.kem_operations += 1;
        let id = s.random_u64().max(1);
        let timestamp = self.next_timestamp(s, now);
        let genesis = s.confirmed.epoch() == 0;
        let sources = KeySources::hybrid(qkd.is_some());
        let init = Init {
            epoch,
            genesis,
            sources,
            timestamp,
            chain_tag: if genesis { [0; 16] } else { s.confirmed.tag() },
            ek: ek.clone(),
            key_ids: qkd
                .as_ref()
                .map(|q| q.key_ids().to_vec())
                .unwrap_or_default(),
        };
        let unsigned = init.encode_unsigned();
        let transcript = body::init_transcript(&s.keys.master, &s.keys.slave, id, &unsigned);
        let Some(signature) = s.sign(&transcript) else {
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
            epoch,
            sources,
            dk,
            ek,
            qkd,
            init_hash: body::digest(&transcript),
            datagrams,
            retransmit_at,
            give_up_at: now + REKEY_ATTEMPT_TIME,
        }));
    }

    /// TAI64N of `now`, forced above the last one sent (timestamps are rounded to ~16.8 ms).
    fn next_timestamp(&mut self, s: &Shared, now: Instant) -> [u8; 12] {
        let mut ts = s.clock.timestamp(now);
        if let Some(last) = self.last_timestamp.filter(|last| ts <= *last) {
            ts = last;
            for byte in ts.iter_mut().rev() {
                let (next, overflow) = byte.overflowing_add(1);
                *byte = next;
                if !overflow {
                    break;
                }
            }
        }
        self.last_timestamp = Some(ts);
        ts
    }

    /// §6.1 step 4–5: verify, decapsulate, derive, confirm, install (and hand WireGuard the PSK
    /// with a request to handshake now). Any failure keeps the exchange in flight.
    pub(super) fn handle_response(
        &mut self,
        s: &mut Shared,
        now: Instant,
        body: &[u8],
    ) -> Result<(), HybridDrop> {
        let (response, unsigned, signature) = Response::decode(body)?;
        let Phase::AwaitingResponse(exchange) = &self.phase else {
            return Err(HybridDrop::Unexpected);
        };
        if response.epoch != exchange.epoch || response.sources != exchange.sources {
            return Err(HybridDrop::EpochMismatch);
        }
        let label = labels::HYBRID_RESPONSE;
        let signed = body::reply_transcript(label, &exchange.init_hash, unsigned);
        s.verify_peer(&signed, &signature)?;
        let Phase::AwaitingResponse(exchange) = std::mem::take(&mut self.phase) else {
            return Err(HybridDrop::Unexpected);
        };
        s.stats.kem_operations += 1;
        let shared = exchange.dk.decapsulate(&response.ct);
        let context = EpochContext {
            epoch: exchange.epoch,
            initiator: &s.keys.master,
            responder: &s.keys.slave,
            mlkem_ek: &exchange.ek,
            mlkem_ct: &response.ct,
        };
        let qkd = exchange.qkd.as_ref();
        let keys = derive_epoch(&s.confirmed, &context, exchange.sources, &shared, qkd);
        let keys = match keys {
            Ok(keys) if keymix::ct_eq(&keys.confirmation(), &response.confirm) => keys,
            _ => {
                // Keep waiting: a genuine Response cannot follow, but the exchange times out by itself.
                self.phase = Phase::AwaitingResponse(exchange);
                return Err(HybridDrop::BadConfirm);
            }
        };
        let key_ids = qkd.map(|q| q.key_ids().to_vec()).unwrap_or_default();
        s.install(now, keys, key_ids, true);
        Ok(())
    }

    /// §6.1 step 6: a verified Reject decides how and when to try again.
    pub(super) fn handle_reject(
        &mut self,
        s: &mut Shared,
        now: Instant,
        body: &[u8],
    ) -> Result<(), HybridDrop> {
        let (reject, unsigned, signature) = Reject::decode(body)?;
        let Phase::AwaitingResponse(exchange) = &self.phase else {
            return Err(HybridDrop::Unexpected);
        };
        if reject.epoch != exchange.epoch {
            return Err(HybridDrop::EpochMismatch);
        }
        let signed = body::reply_transcript(labels::HYBRID_REJECT, &exchange.init_hash, unsigned);
        s.verify_peer(&signed, &signature)?;
        s.event(HybridEvent::Rejected {
            epoch: reject.epoch,
            reason: reject.reason,
            sent: false,
        });
        self.phase = Phase::Idle;
        match reject.reason {
            RejectReason::ChainMismatch => {
                s.confirmed = s.genesis();
                self.start(s, now);
            }
            RejectReason::QkdUnavailable | RejectReason::QkdRefused
                if s.policy == QkdPolicy::Preferred =>
            {
                self.skip_qkd_once = true;
                s.event(HybridEvent::Fallback {
                    epoch: reject.epoch,
                });
                self.start(s, now);
            }
            RejectReason::PolicyMismatch => {
                self.phase = Phase::Backoff {
                    until: now + REKEY_ATTEMPT_TIME,
                };
            }
            _ => {
                let until = now + REKEY_TIMEOUT + s.jitter();
                self.phase = Phase::Backoff { until };
            }
        }
        Ok(())
    }

    /// §5.3: the slave asks for an epoch; honoured at most once per EPOCH_REQUEST_INTERVAL.
    pub(super) fn handle_epoch_request(
        &mut self,
        s: &mut Shared,
        now: Instant,
        body: &[u8],
    ) -> Result<(), HybridDrop> {
        let request = body::EpochRequest::decode(body)?;
        if self
            .last_request_timestamp
            .is_some_and(|last| request.timestamp <= last)
        {
            return Err(HybridDrop::Replay);
        }
        if self
            .last_request_at
            .is_some_and(|at| now < at + EPOCH_REQUEST_INTERVAL)
        {
            return Err(HybridDrop::RateLimited);
        }
        self.last_request_timestamp = Some(request.timestamp);
        self.last_request_at = Some(now);
        self.start(s, now);
        Ok(())
    }

    /// Timers: the rekey schedule, back-off, the KME deadline, retransmission and give-up.
    pub(super) fn handle_timeout(&mut self, s: &mut Shared, now: Instant) {
        match &mut self.phase {
            Phase::Idle => {
                let due = s
                    .installed
                    .as_ref()
                    .is_none_or(|(_, at)| now >= *at + s.rekey_after);
                if due {
                    self.start(s, now);
                }
            }
            Phase::Backoff { until } if now >= *until => self.start(s, now),
            Phase::AwaitingQkd {
                deadline, epoch, ..
            } if now >= *deadline => {
                let epoch = *epoch;
                self.no_qkd(s, now, epoch);
            }
            Phase::AwaitingResponse(exchange) if now >= exchange.give_up_at => {
                let epoch = exchange.epoch;
                self.phase = Phase::Idle;
                s.event(HybridEvent::ExchangeAbandoned { epoch });
                self.start(s, now);
            }
            Phase::AwaitingResponse(exchange) if now >= exchange.retransmit_at => {
                exchange.retransmit_at = now + REKEY_TIMEOUT + s.jitter();
                let datagrams = exchange.datagrams.clone();
                s.transmit(&datagrams);
            }
            _ => {}
        }
    }

    /// When [`MasterState::handle_timeout`] has work.
    pub(super) fn deadline(&self, s: &Shared) -> Option<Instant> {
        match &self.phase {
            Phase::Idle => Some(
                s.installed
                    .as_ref()
                    .map_or(s.created_at, |(_, at)| *at + s.rekey_after),
            ),
            Phase::Backoff { until } => Some(*until),
            Phase::AwaitingQkd { deadline, .. } => Some(*deadline),
            Phase::AwaitingResponse(e) => Some(e.retransmit_at.min(e.give_up_at)),
        }
    }
}
