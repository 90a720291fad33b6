//! What the master does with the slave's messages (docs/protocol.md §6.1 steps 1, 4–6, §5.3, §7):
//! a Response installs the epoch, a Reject decides how and when to try again, an EpochRequest
//! starts an exchange or retransmits the one in flight — each only as far as rotation needs.

use std::time::Instant;

use keymix::{EpochContext, derive_epoch, labels};

use super::super::body::{self, EpochRequest, Reject, RejectReason, Response};
use super::super::constants::{
    CLOCK_SKEW_TOLERANCE, EPOCH_REQUEST_INTERVAL, REQUESTED_EPOCH_MIN_AGE,
};
use super::super::shared::Shared;
use super::super::{HybridDrop, HybridEvent, Prefetched, Progress, QkdPolicy};
use super::{MasterState, Phase, newest_epoch_settled};
use crate::proto::constants::{REKEY_ATTEMPT_TIME, REKEY_TIMEOUT};

impl MasterState {
    /// §6.1 steps 4–5: verify (admitted by the reply budget of §7), decapsulate, derive,
    /// confirm, install (and hand WireGuard the PSK with a request to handshake now). A reply
    /// that fails before its signature verifies leaves the exchange in flight; a verified one
    /// whose key confirmation fails means the two sides derived different keys (the KMEs
    /// disagree on the QKD key's bytes): reported at once and tried again.
    pub(in super::super) fn handle_response(
        &mut self,
        s: &mut Shared,
        now: Instant,
        body: &[u8],
    ) -> Result<Progress, HybridDrop> {
        let (response, unsigned, signature) = Response::decode(body)?;
        let Phase::AwaitingResponse(exchange) = &self.phase else {
            return Err(HybridDrop::Unexpected);
        };
        if response.epoch != exchange.next.epoch || response.sources != exchange.sources {
            return Err(HybridDrop::EpochMismatch);
        }
        if !self.replies.take(now) {
            return Err(HybridDrop::RateLimited);
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
            epoch: exchange.next.epoch,
            initiator: &s.keys.master,
            responder: &s.keys.slave,
            mlkem_ek: &exchange.ek,
            mlkem_ct: &response.ct,
        };
        let qkd = exchange.qkd.as_ref();
        let genesis = exchange.next.genesis.then(|| s.genesis());
        let base = genesis.as_ref().unwrap_or(&s.confirmed);
        let keys = match derive_epoch(base, &context, exchange.sources, &shared, qkd) {
            Ok(keys) if keymix::ct_eq(&keys.confirmation(), &response.confirm) => keys,
            _ => {
                let epoch = exchange.next.epoch;
                self.genesis_next |= exchange.next.genesis;
                let key_ids = qkd.map(|q| q.key_ids().to_vec()).unwrap_or_default();
                s.event(HybridEvent::KeyMismatch { epoch, key_ids });
                if qkd.is_some() && s.policy == QkdPolicy::Preferred {
                    self.skip_qkd_once = true;
                    s.event(HybridEvent::Fallback { epoch });
                    self.start(s, now);
                } else {
                    let until = now + REKEY_TIMEOUT + s.jitter();
                    self.phase = Phase::Backoff { until };
                }
                return Err(HybridDrop::BadConfirm);
            }
        };
        if let Some(genesis) = genesis {
            s.confirmed = genesis;
        }
        let key_ids = qkd.map(|q| q.key_ids().to_vec()).unwrap_or_default();
        s.install(now, keys, key_ids, true);
        Ok(Progress::FromPeer)
    }

    /// §6.1 step 6: a verified Reject decides how and when to try again.
    pub(in super::super) fn handle_reject(
        &mut self,
        s: &mut Shared,
        now: Instant,
        body: &[u8],
    ) -> Result<Progress, HybridDrop> {
        let (reject, unsigned, signature) = Reject::decode(body)?;
        let Phase::AwaitingResponse(exchange) = &self.phase else {
            return Err(HybridDrop::Unexpected);
        };
        if reject.epoch != exchange.next.epoch {
            return Err(HybridDrop::EpochMismatch);
        }
        if !self.replies.take(now) {
            return Err(HybridDrop::RateLimited);
        }
        let signed = body::reply_transcript(labels::HYBRID_REJECT, &exchange.init_hash, unsigned);
        s.verify_peer(&signed, &signature)?;
        let genesis = exchange.next.genesis;
        s.event(HybridEvent::Rejected {
            epoch: reject.epoch,
            reason: reject.reason,
            sent: false,
        });
        self.phase = Phase::Idle;
        self.genesis_next |= genesis;
        if reject.reason == RejectReason::QkdRefused {
            // The slave's KME does not know the key: those fetched with it are suspect too.
            self.prefetched = Prefetched::Discard;
        }
        match reject.reason {
            RejectReason::ChainMismatch => {
                self.genesis_next = true;
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
        Ok(Progress::FromPeer)
    }

    /// §5.3: the slave asks for an epoch. Only a fresh request counts (its timestamp is newer
    /// than the last one and within CLOCK_SKEW_TOLERANCE of this side's clock, so a recorded
    /// one is refused even after this side restarts), at most one per EPOCH_REQUEST_INTERVAL.
    /// With an exchange in flight the Init is sent again at once (the slave may have missed
    /// it); otherwise an exchange starts if rotation needs one: there is no epoch, or the
    /// slave has another one than this side, or the newest epoch's handshake had its time —
    /// and in any case at most one exchange per REQUESTED_EPOCH_MIN_AGE on request, and none
    /// during a back-off.
    pub(in super::super) fn handle_epoch_request(
        &mut self,
        s: &mut Shared,
        now: Instant,
        body: &[u8],
    ) -> Result<Progress, HybridDrop> {
        let request = EpochRequest::decode(body)?;
        self.requests.check(&s.clock, &request.timestamp)?;
        if (self.last_request_at).is_some_and(|at| now < at + EPOCH_REQUEST_INTERVAL) {
            return Err(HybridDrop::RateLimited);
        }
        self.requests.accept(request.timestamp);
        self.last_request_at = Some(now);
        let needed = self.request_needs_epoch(s, now, &request);
        match &mut self.phase {
            // A slave that has no epoch restarted; one that restarted after the Init was made
            // refuses its timestamp (older than its start by more than CLOCK_SKEW_TOLERANCE):
            // a new Init, from genesis, instead of a retransmission.
            Phase::AwaitingResponse(exchange)
                if request.current_epoch == 0 && now >= exchange.sent_at + CLOCK_SKEW_TOLERANCE =>
            {
                self.genesis_next = true;
                self.restart_exchange(s, now);
            }
            Phase::AwaitingResponse(exchange) => exchange.retransmit_at = now,
            Phase::Idle if needed => {
                self.last_requested_start = Some(now);
                // The slave has no epoch at all: start from genesis rather than learn it from
                // a chain-mismatch Reject (it resets only on the signed Init, §9).
                self.genesis_next |= request.current_epoch == 0;
                self.start(s, now);
            }
            _ => {}
        }
        self.retransmit_if_due(s, now);
        Ok(Progress::FromPeer)
    }

    fn request_needs_epoch(&self, s: &Shared, now: Instant, request: &EpochRequest) -> bool {
        let recently =
            (self.last_requested_start).is_some_and(|at| now < at + REQUESTED_EPOCH_MIN_AGE);
        let newest = s.installed.as_ref().map(|(info, _)| info.epoch);
        let out_of_step = newest.is_some_and(|n| n != request.current_epoch);
        !recently && (newest.is_none() || out_of_step || newest_epoch_settled(s, now))
    }
}
