//! The master's side of the exchange (docs/protocol.md §6.1): schedule epochs, get a QKD key per
//! policy, send a signed Init, verify the Response, derive and install the PSK.

use std::time::Instant;

use keymix::mlkem::{self, DecapsulationKey};
use keymix::{EpochContext, KeySources, QkdMaterial, Secret, derive_epoch};

use super::body::{self, Init, Reject, RejectReason, Response};
use super::constants::{
    EPOCH_REQUEST_INTERVAL, QKD_TIMEOUT, REKEY_ATTEMPT_TIME, REKEY_TIMEOUT, labels,
};
use super::peer::HybridPeer;
use super::wire::{self, Kind};
use super::{EpochInfo, HybridDrop, HybridEvent, Output, QkdFailure, QkdPolicy};

/// Where the master is in making the next epoch.
#[derive(Default)]
pub(super) enum Phase {
    /// Waiting for the rekey timer (or for the first timeout, with no epoch yet).
    #[default]
    Idle,
    /// Asked the KME for a key.
    AwaitingQkd {
        request: u64,
        deadline: Instant,
        epoch: u64,
    },
    /// Init sent; waiting for the Response.
    AwaitingResponse(Box<Exchange>),
    /// The last attempt failed; try again at `until`.
    Backoff { until: Instant },
}

/// An Init in flight.
pub(super) struct Exchange {
    id: u64,
    epoch: u64,
    sources: KeySources,
    dk: DecapsulationKey,
    ek: mlkem::EncapsulationKey,
    qkd: Option<QkdMaterial>,
    init_hash: [u8; 32],
    datagrams: Vec<Vec<u8>>,
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
    pub(super) fn in_flight_exchange(&self) -> Option<u64> {
        match &self.phase {
            Phase::AwaitingResponse(exchange) => Some(exchange.id),
            _ => None,
        }
    }
}

impl HybridPeer {
    /// Starts an exchange unless one is under way.
    pub(super) fn master_start(&mut self, now: Instant) {
        if !matches!(self.master.phase, Phase::Idle | Phase::Backoff { .. }) {
            return;
        }
        self.tentative = None;
        let epoch = self.confirmed.epoch() + 1;
        let use_qkd = self.settings.policy != QkdPolicy::Off && !self.master.skip_qkd_once;
        self.master.skip_qkd_once = false;
        if use_qkd {
            let request = self.new_request_id();
            self.outputs.push_back(Output::FetchQkdKey { request });
            self.master.phase = Phase::AwaitingQkd {
                request,
                deadline: now + QKD_TIMEOUT,
                epoch,
            };
        } else {
            self.master_send_init(now, epoch, None);
        }
    }

    pub(super) fn master_handle_qkd(
        &mut self,
        now: Instant,
        request: u64,
        result: Result<QkdMaterial, QkdFailure>,
    ) {
        let Phase::AwaitingQkd {
            request: expected,
            epoch,
            ..
        } = self.master.phase
        else {
            return; // late answer to an abandoned request: the key is dropped (zeroized)
        };
        if request != expected {
            return;
        }
        match result {
            Ok(material) => self.master_send_init(now, epoch, Some(material)),
            Err(_) => self.master_no_qkd(now, epoch),
        }
    }

    fn master_no_qkd(&mut self, now: Instant, epoch: u64) {
        match self.settings.policy {
            QkdPolicy::Required => {
                self.event(HybridEvent::QkdBlocked { epoch });
                let until = now + REKEY_TIMEOUT + self.jitter();
                self.master.phase = Phase::Backoff { until };
            }
            _ => {
                self.event(HybridEvent::Fallback { epoch });
                self.master_send_init(now, epoch, None);
            }
        }
    }

    fn master_send_init(&mut self, now: Instant, epoch: u64, qkd: Option<QkdMaterial>) {
        let mut seed = [0u8; mlkem::KEYGEN_SEED_LEN];
        self.entropy.fill(&mut seed);
        let (dk, ek) = mlkem::generate_from_seed(&Secret::from_mut(&mut seed));
        self.stats.kem_operations += 1;
        let id = self.random_u64().max(1);
        let timestamp = self.next_timestamp(now);
        let genesis = self.confirmed.epoch() == 0;
        let sources = KeySources::hybrid(qkd.is_some());
        let init = Init {
            epoch,
            genesis,
            sources,
            timestamp,
            chain_tag: if genesis {
                [0; 16]
            } else {
                self.confirmed.tag()
            },
            ek: ek.clone(),
            key_ids: qkd
                .as_ref()
                .map(|q| q.key_ids().to_vec())
                .unwrap_or_default(),
        };
        let unsigned = init.encode_unsigned();
        let transcript = body::init_transcript(&self.keys.master, &self.keys.slave, id, &unsigned);
        let Some(signature) = self.sign(&transcript) else {
            self.master.phase = Phase::Backoff {
                until: now + REKEY_TIMEOUT,
            };
            return;
        };
        let datagrams = wire::fragment(
            &self.keys.pair,
            Kind::Init,
            id,
            &body::with_signature(unsigned, &signature),
        );
        self.transmit(&datagrams);
        let retransmit_at = now + REKEY_TIMEOUT + self.jitter();
        self.master.phase = Phase::AwaitingResponse(Box::new(Exchange {
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
    fn next_timestamp(&mut self, now: Instant) -> [u8; 12] {
        let mut ts = self.clock.timestamp(now);
        if let Some(last) = self.master.last_timestamp.filter(|last| ts <= *last) {
            ts = last;
            for byte in ts.iter_mut().rev() {
                let (next, overflow) = byte.overflowing_add(1);
                *byte = next;
                if !overflow {
                    break;
                }
            }
        }
        self.master.last_timestamp = Some(ts);
        ts
    }

    pub(super) fn master_handle_response(
        &mut self,
        now: Instant,
        body: &[u8],
    ) -> Result<(), HybridDrop> {
        let (response, unsigned, signature) = Response::decode(body)?;
        let Phase::AwaitingResponse(exchange) = &self.master.phase else {
            return Err(HybridDrop::Unexpected);
        };
        if response.epoch != exchange.epoch || response.sources != exchange.sources {
            return Err(HybridDrop::EpochMismatch);
        }
        let signed = body::reply_transcript(labels::RESPONSE, &exchange.init_hash, unsigned);
        self.verify_peer(&signed, &signature)?;
        let Phase::AwaitingResponse(exchange) = std::mem::take(&mut self.master.phase) else {
            return Err(HybridDrop::Unexpected);
        };
        self.stats.kem_operations += 1;
        let shared = exchange.dk.decapsulate(&response.ct);
        let context = EpochContext {
            epoch: exchange.epoch,
            initiator: &self.keys.master,
            responder: &self.keys.slave,
            mlkem_ek: &exchange.ek,
            mlkem_ct: &response.ct,
        };
        let keys = derive_epoch(
            &self.confirmed,
            &context,
            exchange.sources,
            &shared,
            exchange.qkd.as_ref(),
        );
        let keys = match keys {
            Ok(keys) if keymix::ct_eq(&keys.confirmation(), &response.confirm) => keys,
            _ => {
                // Keep waiting: a genuine Response cannot follow, but the exchange times out by itself.
                self.master.phase = Phase::AwaitingResponse(exchange);
                return Err(HybridDrop::BadConfirm);
            }
        };
        let info = EpochInfo {
            epoch: keys.epoch,
            sources: keys.sources,
            key_ids: exchange
                .qkd
                .as_ref()
                .map(|q| q.key_ids().to_vec())
                .unwrap_or_default(),
            transcript_hash: keys.transcript_hash,
        };
        self.install(now, info, keys, true);
        Ok(())
    }

    pub(super) fn install(
        &mut self,
        now: Instant,
        info: EpochInfo,
        keys: keymix::EpochKeys,
        handshake_now: bool,
    ) {
        if info.sources.has_qkd() {
            self.stats.epochs_with_qkd += 1;
        } else {
            self.stats.epochs_without_qkd += 1;
        }
        let keymix::EpochKeys {
            epoch, psk, chain, ..
        } = keys;
        self.tentative = Some(chain);
        self.installed_at = Some(now);
        self.installed_epoch = Some(info.clone());
        self.outputs.push_back(Output::InstallPsk {
            epoch,
            psk,
            handshake_now,
        });
        self.event(HybridEvent::EpochInstalled(info));
    }

    pub(super) fn master_handle_reject(
        &mut self,
        now: Instant,
        body: &[u8],
    ) -> Result<(), HybridDrop> {
        let (reject, unsigned, signature) = Reject::decode(body)?;
        let Phase::AwaitingResponse(exchange) = &self.master.phase else {
            return Err(HybridDrop::Unexpected);
        };
        if reject.epoch != exchange.epoch {
            return Err(HybridDrop::EpochMismatch);
        }
        let signed = body::reply_transcript(labels::REJECT, &exchange.init_hash, unsigned);
        self.verify_peer(&signed, &signature)?;
        self.event(HybridEvent::Rejected {
            epoch: reject.epoch,
            reason: reject.reason,
            sent: false,
        });
        self.master.phase = Phase::Idle;
        match reject.reason {
            RejectReason::ChainMismatch => {
                self.confirmed = self.genesis();
                self.master_start(now);
            }
            RejectReason::QkdUnavailable | RejectReason::QkdRefused
                if self.settings.policy == QkdPolicy::Preferred =>
            {
                self.master.skip_qkd_once = true;
                self.event(HybridEvent::Fallback {
                    epoch: reject.epoch,
                });
                self.master_start(now);
            }
            RejectReason::PolicyMismatch => {
                self.master.phase = Phase::Backoff {
                    until: now + REKEY_ATTEMPT_TIME,
                };
            }
            _ => {
                let until = now + REKEY_TIMEOUT + self.jitter();
                self.master.phase = Phase::Backoff { until };
            }
        }
        Ok(())
    }

    pub(super) fn master_handle_epoch_request(
        &mut self,
        now: Instant,
        body: &[u8],
    ) -> Result<(), HybridDrop> {
        let request = body::EpochRequest::decode(body)?;
        if self
            .master
            .last_request_timestamp
            .is_some_and(|last| request.timestamp <= last)
        {
            return Err(HybridDrop::Replay);
        }
        if self
            .master
            .last_request_at
            .is_some_and(|at| now < at + EPOCH_REQUEST_INTERVAL)
        {
            return Err(HybridDrop::RateLimited);
        }
        self.master.last_request_timestamp = Some(request.timestamp);
        self.master.last_request_at = Some(now);
        self.master_start(now);
        Ok(())
    }

    pub(super) fn master_handle_timeout(&mut self, now: Instant) {
        match &mut self.master.phase {
            Phase::Idle => {
                let due = self
                    .installed_at
                    .is_none_or(|at| now >= at + self.settings.rekey_after);
                if due {
                    self.master_start(now);
                }
            }
            Phase::Backoff { until } if now >= *until => self.master_start(now),
            Phase::AwaitingQkd {
                deadline, epoch, ..
            } if now >= *deadline => {
                let epoch = *epoch;
                self.master_no_qkd(now, epoch);
            }
            Phase::AwaitingResponse(exchange) if now >= exchange.give_up_at => {
                let epoch = exchange.epoch;
                self.master.phase = Phase::Idle;
                self.event(HybridEvent::ExchangeAbandoned { epoch });
                self.master_start(now);
            }
            Phase::AwaitingResponse(exchange) if now >= exchange.retransmit_at => {
                let datagrams = exchange.datagrams.clone();
                let jitter = self.jitter();
                if let Phase::AwaitingResponse(exchange) = &mut self.master.phase {
                    exchange.retransmit_at = now + REKEY_TIMEOUT + jitter;
                }
                self.transmit(&datagrams);
            }
            _ => {}
        }
    }

    pub(super) fn master_deadline(&self) -> Option<Instant> {
        match &self.master.phase {
            Phase::Idle => Some(
                self.installed_at
                    .map_or(self.created_at, |at| at + self.settings.rekey_after),
            ),
            Phase::Backoff { until } => Some(*until),
            Phase::AwaitingQkd { deadline, .. } => Some(*deadline),
            Phase::AwaitingResponse(e) => Some(e.retransmit_at.min(e.give_up_at)),
        }
    }
}
