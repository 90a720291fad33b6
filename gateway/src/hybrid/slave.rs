//! The slave's side of the exchange (docs/protocol.md §6.2): admit, verify and check an Init,
//! fetch the QKD key by ID, encapsulate, derive, answer; ask the master for epochs.

use std::collections::{HashSet, VecDeque};
use std::time::Instant;

use keymix::mlkem::{self, Ciphertext, EncapsulationKey};
use keymix::{ChainKey, EpochContext, KeySources, QkdMaterial, Secret, derive_epoch};

use super::body::{self, EpochRequest, Init, Reject, RejectReason, RequestReason, Response};
use super::constants::{
    EPOCH_REQUEST_INTERVAL, INIT_BURST, INIT_RATE_PER_SECOND, QKD_TIMEOUT, REKEY_TIMEOUT, labels,
};
use super::peer::HybridPeer;
use super::wire::{self, Kind};
use super::{EpochInfo, HybridDrop, HybridEvent, Output, QkdFailure, QkdPolicy};

/// The slave's state.
pub(super) struct SlaveState {
    last_timestamp: Option<[u8; 12]>,
    cached: Option<Cached>,
    pending: Option<Pending>,
    seen: SeenKeyIds,
    bucket: TokenBucket,
    last_request_at: Option<Instant>,
    last_request_timestamp: Option<[u8; 12]>,
}

/// The last Response or Reject sent, for exact Init retransmissions (§6.2 step 1).
struct Cached {
    exchange_id: u64,
    init_digest: [u8; 32],
    datagrams: Vec<Vec<u8>>,
}

/// An Init verified and waiting for the KME.
struct Pending {
    request: u64,
    deadline: Instant,
    exchange_id: u64,
    init_digest: [u8; 32],
    init_hash: [u8; 32],
    epoch: u64,
    sources: KeySources,
    ek: EncapsulationKey,
    key_ids: Vec<String>,
    genesis: bool,
}

impl SlaveState {
    pub(super) fn new(seen_capacity: usize) -> Self {
        Self {
            last_timestamp: None,
            cached: None,
            pending: None,
            seen: SeenKeyIds::new(seen_capacity),
            bucket: TokenBucket::new(INIT_RATE_PER_SECOND, INIT_BURST),
            last_request_at: None,
            last_request_timestamp: None,
        }
    }
}

impl HybridPeer {
    pub(super) fn slave_handle_init(
        &mut self,
        now: Instant,
        exchange_id: u64,
        body: &[u8],
    ) -> Result<(), HybridDrop> {
        let digest = body::digest(body);
        if let Some(cached) = &self.slave.cached
            && cached.exchange_id == exchange_id
            && cached.init_digest == digest
        {
            let datagrams = cached.datagrams.clone();
            self.stats.cached_answers += 1;
            self.transmit(&datagrams);
            return Ok(());
        }
        if !self.slave.bucket.take(now) {
            return Err(HybridDrop::RateLimited);
        }
        let (init, unsigned, signature) = Init::decode(body)?;
        if self
            .slave
            .last_timestamp
            .is_some_and(|last| init.timestamp <= last)
        {
            return Err(HybridDrop::Replay);
        }
        let transcript =
            body::init_transcript(&self.keys.master, &self.keys.slave, exchange_id, unsigned);
        self.verify_peer(&transcript, &signature)?;
        self.slave.last_timestamp = Some(init.timestamp);
        let init_hash = body::digest(&transcript);
        let reject = |reason| (reason, init.epoch);
        let refusal = self.check_chain(&init).map_err(reject).and_then(|()| {
            let acceptable = match self.settings.policy {
                QkdPolicy::Required => init.sources.has_qkd(),
                QkdPolicy::Off => !init.sources.has_qkd(),
                QkdPolicy::Preferred => true,
            };
            if !acceptable {
                return Err(reject(RejectReason::PolicyMismatch));
            }
            if init.key_ids.iter().any(|id| self.slave.seen.contains(id)) {
                self.stats.qkd_key_reuse += 1;
                return Err(reject(RejectReason::QkdRefused));
            }
            Ok(())
        });
        if let Err((reason, epoch)) = refusal {
            self.send_reject(exchange_id, digest, init_hash, epoch, reason);
            return Ok(());
        }
        for id in &init.key_ids {
            self.slave.seen.insert(id.clone());
        }
        let pending = Pending {
            request: 0,
            deadline: now + QKD_TIMEOUT,
            exchange_id,
            init_digest: digest,
            init_hash,
            epoch: init.epoch,
            sources: init.sources,
            ek: init.ek,
            key_ids: init.key_ids,
            genesis: init.genesis,
        };
        if pending.key_ids.is_empty() {
            self.respond(now, pending, None);
        } else {
            let request = self.new_request_id();
            let key_ids = pending.key_ids.clone();
            self.slave.pending = Some(Pending { request, ..pending });
            self.outputs
                .push_back(Output::ResolveQkdKeys { request, key_ids });
        }
        Ok(())
    }

    /// §6.2 step 2: which chain key the Init builds on. A matching tentative epoch is promoted.
    fn check_chain(&mut self, init: &Init) -> Result<(), RejectReason> {
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
        if self.tentative.as_ref().is_some_and(matches) {
            if let Some(chain) = self.tentative.take() {
                self.confirmed = chain;
            }
            return Ok(());
        }
        if matches(&self.confirmed) {
            self.tentative = None;
            return Ok(());
        }
        Err(RejectReason::ChainMismatch)
    }

    pub(super) fn slave_handle_qkd(
        &mut self,
        now: Instant,
        request: u64,
        result: Result<QkdMaterial, QkdFailure>,
    ) {
        if self
            .slave
            .pending
            .as_ref()
            .is_none_or(|p| p.request != request)
        {
            return;
        }
        let Some(pending) = self.slave.pending.take() else {
            return;
        };
        match result {
            Ok(material) if material.key_ids() == pending.key_ids.as_slice() => {
                self.respond(now, pending, Some(material));
            }
            Ok(_) | Err(QkdFailure::NotFound) => {
                self.reject_pending(pending, RejectReason::QkdRefused)
            }
            Err(QkdFailure::Unavailable) => {
                self.reject_pending(pending, RejectReason::QkdUnavailable)
            }
        }
    }

    fn reject_pending(&mut self, pending: Pending, reason: RejectReason) {
        self.send_reject(
            pending.exchange_id,
            pending.init_digest,
            pending.init_hash,
            pending.epoch,
            reason,
        );
    }

    fn respond(&mut self, now: Instant, pending: Pending, qkd: Option<QkdMaterial>) {
        let mut m = [0u8; mlkem::ENCAPS_RANDOMNESS_LEN];
        self.entropy.fill(&mut m);
        let (ct, shared): (Ciphertext, _) = pending
            .ek
            .encapsulate_with_randomness(&Secret::from_mut(&mut m));
        self.stats.kem_operations += 1;
        let genesis;
        let base = if pending.genesis {
            genesis = self.genesis();
            &genesis
        } else {
            &self.confirmed
        };
        let context = EpochContext {
            epoch: pending.epoch,
            initiator: &self.keys.master,
            responder: &self.keys.slave,
            mlkem_ek: &pending.ek,
            mlkem_ct: &ct,
        };
        let Ok(keys) = derive_epoch(base, &context, pending.sources, &shared, qkd.as_ref()) else {
            // Only an epoch that does not follow the base can fail here; the Init was checked.
            self.reject_pending(pending, RejectReason::ChainMismatch);
            return;
        };
        if pending.genesis {
            self.confirmed = self.genesis();
        }
        let response = Response {
            epoch: pending.epoch,
            sources: pending.sources,
            ct,
            confirm: keys.confirmation(),
        };
        let unsigned = response.encode_unsigned();
        let signed = body::reply_transcript(labels::RESPONSE, &pending.init_hash, &unsigned);
        let Some(signature) = self.sign(&signed) else {
            return;
        };
        let datagrams = wire::fragment(
            &self.keys.pair,
            Kind::Response,
            pending.exchange_id,
            &body::with_signature(unsigned, &signature),
        );
        self.transmit(&datagrams);
        self.slave.cached = Some(Cached {
            exchange_id: pending.exchange_id,
            init_digest: pending.init_digest,
            datagrams,
        });
        let info = EpochInfo {
            epoch: keys.epoch,
            sources: keys.sources,
            key_ids: pending.key_ids,
            transcript_hash: keys.transcript_hash,
        };
        self.install(now, info, keys, false);
    }

    fn send_reject(
        &mut self,
        exchange_id: u64,
        init_digest: [u8; 32],
        init_hash: [u8; 32],
        epoch: u64,
        reason: RejectReason,
    ) {
        let unsigned = Reject { epoch, reason }.encode_unsigned();
        let signed = body::reply_transcript(labels::REJECT, &init_hash, &unsigned);
        let Some(signature) = self.sign(&signed) else {
            return;
        };
        let datagrams = wire::fragment(
            &self.keys.pair,
            Kind::Reject,
            exchange_id,
            &body::with_signature(unsigned, &signature),
        );
        self.transmit(&datagrams);
        self.slave.cached = Some(Cached {
            exchange_id,
            init_digest,
            datagrams,
        });
        self.event(HybridEvent::Rejected {
            epoch,
            reason,
            sent: true,
        });
    }

    /// Sends an EpochRequest, at most one per [`EPOCH_REQUEST_INTERVAL`].
    pub(super) fn slave_request(&mut self, now: Instant, reason: RequestReason) {
        if self
            .slave
            .last_request_at
            .is_some_and(|at| now < at + EPOCH_REQUEST_INTERVAL)
        {
            return;
        }
        self.slave.last_request_at = Some(now);
        let mut timestamp = self.clock.timestamp(now);
        if let Some(last) = self
            .slave
            .last_request_timestamp
            .filter(|last| timestamp <= *last)
        {
            timestamp = last;
            if let Some(byte) = timestamp.last_mut() {
                // Nanosecond field: the whitened low bits leave room for a +1 step.
                *byte = byte.wrapping_add(1);
            }
        }
        self.slave.last_request_timestamp = Some(timestamp);
        let request = EpochRequest {
            current_epoch: self.confirmed.epoch(),
            timestamp,
            reason,
        };
        let datagrams = wire::fragment(&self.keys.pair, Kind::EpochRequest, 0, &request.encode());
        self.transmit(&datagrams);
    }

    pub(super) fn slave_handle_timeout(&mut self, now: Instant) {
        if self
            .slave
            .pending
            .as_ref()
            .is_some_and(|p| now >= p.deadline)
            && let Some(pending) = self.slave.pending.take()
        {
            self.reject_pending(pending, RejectReason::QkdUnavailable);
        }
        if self.slave_rekey_due(now) {
            self.slave_request(now, RequestReason::RekeyDue);
        }
    }

    /// The slave asks for a new epoch a REKEY_TIMEOUT after the master should have started one.
    fn slave_rekey_due(&self, now: Instant) -> bool {
        self.installed_at
            .is_some_and(|at| now >= at + self.settings.rekey_after + REKEY_TIMEOUT)
    }

    pub(super) fn slave_deadline(&self) -> Option<Instant> {
        let pending = self.slave.pending.as_ref().map(|p| p.deadline);
        let rekey = self.installed_at.map(|at| {
            let due = at + self.settings.rekey_after + REKEY_TIMEOUT;
            match self.slave.last_request_at {
                Some(last) if last >= due => last + EPOCH_REQUEST_INTERVAL,
                _ => due,
            }
        });
        [pending, rekey].into_iter().flatten().min()
    }
}

/// The last N QKD key IDs accepted from the peer (§6.2 step 3), bounded.
struct SeenKeyIds {
    order: VecDeque<String>,
    set: HashSet<String>,
    capacity: usize,
}

impl SeenKeyIds {
    fn new(capacity: usize) -> Self {
        Self {
            order: VecDeque::new(),
            set: HashSet::new(),
            capacity,
        }
    }

    fn contains(&self, id: &str) -> bool {
        self.set.contains(id)
    }

    fn insert(&mut self, id: String) {
        if self.set.insert(id.clone()) {
            self.order.push_back(id);
            if self.order.len() > self.capacity
                && let Some(old) = self.order.pop_front()
            {
                self.set.remove(&old);
            }
        }
    }
}

/// Init admission (§7): `rate` tokens per second, at most `burst`, on the injected clock.
struct TokenBucket {
    rate: u32,
    burst: u32,
    tokens: f64,
    last: Option<Instant>,
}

impl TokenBucket {
    fn new(rate: u32, burst: u32) -> Self {
        Self {
            rate,
            burst,
            tokens: f64::from(burst),
            last: None,
        }
    }

    fn take(&mut self, now: Instant) -> bool {
        if let Some(last) = self.last {
            let elapsed = now.saturating_duration_since(last).as_secs_f64();
            self.tokens = (self.tokens + elapsed * f64::from(self.rate)).min(f64::from(self.burst));
        }
        self.last = Some(now);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}
