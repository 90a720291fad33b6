//! The KMEs' ETSI GS QKD 014 behaviour, sans-IO: requests in (with the caller's SAE ID from its
//! certificate and the current time), replies out (status code, JSON body, delay to apply).
//!
//! Semantics (§5.2–§5.4, §6, reference §4–§5):
//! * The caller must be an SAE this KME serves, else 401.
//! * `enc_keys`: `number` (default 1) keys of `size` bits (default `key_size`) from the link to the
//!   slave's KME. `number` outside `1..=max_key_per_request`, `size` not a multiple of 8 or outside
//!   `min_key_size..=max_key_size`, too many `additional_slave_SAE_IDs`, or any
//!   `extension_mandatory` (none are supported) give 400 with the spec's messages.
//!   `extension_optional` is ignored (the spec allows 200). Not enough key: 503, all or nothing.
//! * Issued keys wait at the slave's KME for the named slave(s), each of which gets them exactly
//!   once via `dec_keys`; then they are erased. Unknown, consumed or foreign IDs: 400 "one or more
//!   keys specified are not found on KME"; a caller that is not a named slave: 401. A `dec_keys`
//!   request is validated whole before any key is released (all or nothing).
//! * Between KMEs that are not directly linked, keys are relayed through trusted nodes
//!   ([`network`]; `docs/qkd-network.md`); the ETSI 014 interface is unchanged.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use serde::Serialize;
use zeroize::Zeroizing;

use super::config::{Latency, Limits, SimConfig};
use super::entropy::Entropy;
use super::link::Link;
use crate::api::{ErrorBody, KeyRequest, Status};
use crate::ids::{KeyId, SaeId};

mod admin_ops;
mod keys;
mod network;

pub use network::MAX_TRANSIT_WAIT;
use network::Need;

/// A parsed ETSI 014 request.
#[derive(Debug, Clone, PartialEq)]
pub enum ApiRequest {
    /// Get status for a slave SAE.
    Status {
        /// URL `slave_SAE_ID`.
        slave: SaeId,
    },
    /// Get key for a slave SAE.
    EncKeys {
        /// URL `slave_SAE_ID`.
        slave: SaeId,
        /// Body (POST) or query (GET).
        request: KeyRequest,
    },
    /// Get key with key IDs from a master SAE.
    DecKeys {
        /// URL `master_SAE_ID`.
        master: SaeId,
        /// Requested IDs, in order.
        ids: Vec<KeyId>,
    },
}

/// A reply: HTTP status, JSON body (zeroized when dropped) and the latency to simulate.
/// `Debug` omits the body, which may carry keys.
pub struct Reply {
    /// HTTP status code.
    pub status: u16,
    /// JSON body.
    pub body: Zeroizing<Vec<u8>>,
    /// How long the driver waits before sending.
    pub delay: Duration,
}

impl core::fmt::Debug for Reply {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Reply")
            .field("status", &self.status)
            .field("body_len", &self.body.len())
            .field("delay", &self.delay)
            .finish()
    }
}

impl Reply {
    /// A JSON reply; the buffer is sized up front so serialisation does not reallocate.
    pub fn json<T: Serialize>(status: u16, value: &T, size_hint: usize) -> Self {
        let mut body = Zeroizing::new(Vec::with_capacity(size_hint));
        if serde_json::to_writer(&mut *body, value).is_err() {
            return Self::error(500, "cannot encode reply");
        }
        Self {
            status,
            body,
            delay: Duration::ZERO,
        }
    }

    /// An ETSI error body `{message}`.
    pub fn error(status: u16, message: impl Into<String>) -> Self {
        Self::error_details(status, message, Vec::new())
    }

    /// An ETSI error body `{message, details}`.
    pub fn error_details(
        status: u16,
        message: impl Into<String>,
        details: Vec<serde_json::Value>,
    ) -> Self {
        let body = ErrorBody {
            message: message.into(),
            details,
        };
        let bytes = serde_json::to_vec(&body).unwrap_or_else(|_| b"{\"message\":\"\"}".to_vec());
        Self {
            status,
            body: Zeroizing::new(bytes),
            delay: Duration::ZERO,
        }
    }
}

#[derive(Debug)]
struct KmeState {
    id: SaeId,
    saes: Vec<SaeId>,
    latency: Latency,
    extra_latency_ms: u64,
    down: bool,
    /// A trusted node from `trusted_nodes` (no listener).
    trusted: bool,
    /// Keys this node relayed as a trusted node on someone else's path.
    relayed: u64,
}

#[derive(Debug)]
struct LinkState {
    ends: [usize; 2],
    link: Link,
    length_km: Option<f64>,
    /// `length_km` in metres, the routing tie-break (0 when unknown).
    length_m: u64,
    relay_latency: Duration,
    /// Keys relayed across this link (multi-hop routes only).
    keys_relayed: u64,
}

struct PendingKey {
    /// The link whose store the key occupies until every slave fetched it: the direct link, or
    /// the last link of a relayed route (the pads of the others were spent at issue).
    link: Option<usize>,
    /// When the key reaches the slave's KME (later than issue for a relayed key).
    available_at: Instant,
    master: SaeId,
    slave_kme: usize,
    slaves: Vec<SaeId>,
    waiting: Vec<SaeId>,
    secret: Zeroizing<Vec<u8>>,
}

/// Counters reported by the admin API.
#[derive(Debug, Default, Clone, Copy, Serialize)]
pub struct EngineStats {
    /// Keys handed to masters.
    pub keys_issued: u64,
    /// Key deliveries to slaves.
    pub keys_delivered: u64,
    /// Bits handed to masters.
    pub bits_issued: u64,
    /// Keys handed to masters that were relayed through trusted nodes.
    pub keys_relayed: u64,
}

/// Every KME and link of one simulator, behind one lock in the server.
pub struct Engine {
    kmes: Vec<KmeState>,
    links: Vec<LinkState>,
    home: HashMap<SaeId, usize>,
    limits: Limits,
    pending: HashMap<KeyId, PendingKey>,
    entropy: Box<dyn Entropy + Send>,
    stats: EngineStats,
}

impl core::fmt::Debug for Engine {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Engine")
            .field("kmes", &self.kmes)
            .field("links", &self.links)
            .field("pending_keys", &self.pending.len())
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

impl Engine {
    /// Builds the engine from a validated configuration; links start at `now`.
    pub fn new(cfg: &SimConfig, now: Instant, entropy: Box<dyn Entropy + Send>) -> Self {
        let key_size = u64::from(cfg.limits.key_size);
        let kmes = cfg
            .kmes
            .iter()
            .map(|k| KmeState {
                id: k.id.clone(),
                saes: k.saes.clone(),
                latency: k.latency_ms,
                extra_latency_ms: k.extra_latency_ms,
                down: k.down,
                trusted: false,
                relayed: 0,
            })
            .chain(cfg.trusted_nodes.iter().map(|n| KmeState {
                id: n.id.clone(),
                saes: Vec::new(),
                latency: Latency::default(),
                extra_latency_ms: 0,
                down: n.down,
                trusted: true,
                relayed: 0,
            }))
            .collect();
        let links = cfg
            .links
            .iter()
            .filter_map(|l| {
                let ends = [cfg.node_index(&l.kmes[0])?, cfg.node_index(&l.kmes[1])?];
                let mut link = Link::new(
                    now,
                    l.secret_key_rate_bps,
                    l.max_key_count.saturating_mul(key_size),
                    l.initial_key_count.saturating_mul(key_size),
                )
                .with_qber(l.qber, l.qber_threshold);
                link.set_down(l.down);
                Some(LinkState {
                    ends,
                    link,
                    length_km: l.length_km,
                    // Validated to (0, 1000] km, so the cast is exact to the metre.
                    length_m: l.length_km.map_or(0, |km| (km * 1000.0).round() as u64),
                    relay_latency: Duration::from_millis(l.relay_latency_ms),
                    keys_relayed: 0,
                })
            })
            .collect();
        let home = cfg
            .kmes
            .iter()
            .enumerate()
            .flat_map(|(i, k)| k.saes.iter().map(move |s| (s.clone(), i)))
            .collect();
        Self {
            kmes,
            links,
            home,
            limits: cfg.limits.clone(),
            pending: HashMap::new(),
            entropy,
            stats: EngineStats::default(),
        }
    }

    /// Answers one request made to KME number `kme` by `caller` at time `now`.
    pub fn handle(&mut self, now: Instant, kme: usize, caller: &SaeId, req: ApiRequest) -> Reply {
        let mut reply = match self.kmes.get(kme) {
            None => Reply::error(500, "no such KME"),
            Some(k) if !k.saes.contains(caller) => {
                Reply::error(401, format!("SAE {caller} is not served by {}", k.id))
            }
            Some(_) => match req {
                ApiRequest::Status { slave } => self.status(now, kme, caller, &slave),
                ApiRequest::EncKeys { slave, request } => {
                    self.enc_keys(now, kme, caller, &slave, &request)
                }
                ApiRequest::DecKeys { master, ids } => {
                    self.dec_keys(now, kme, caller, &master, &ids)
                }
            },
        };
        // A held `dec_keys` reply (relayed key in transit) already carries its wait.
        reply.delay += self.delay(kme);
        reply
    }

    fn delay(&mut self, kme: usize) -> Duration {
        let Some(k) = self.kmes.get(kme) else {
            return Duration::ZERO;
        };
        let (lo, hi, extra) = (k.latency.min, k.latency.max, k.extra_latency_ms);
        let jitter = match hi - lo {
            0 => 0,
            span => {
                let mut b = [0u8; 8];
                let draw = self
                    .entropy
                    .try_fill(&mut b)
                    .map(|()| u64::from_le_bytes(b));
                draw.unwrap_or(0) % (span + 1)
            }
        };
        Duration::from_millis(lo + jitter + extra)
    }

    /// Finds the KME serving `peer` and checks that the network joins it to `kme` (a direct link
    /// or a trusted-node path, whatever their faults), with the checks shared by all calls.
    fn route_to_peer(
        &self,
        kme: usize,
        caller: &SaeId,
        peer: &SaeId,
        role: &str,
    ) -> Result<usize, Reply> {
        if peer == caller {
            return Err(Reply::error(
                400,
                format!("{role} must name the peer SAE, not the caller"),
            ));
        }
        let peer_kme = *self
            .home
            .get(peer)
            .ok_or_else(|| Reply::error(400, format!("{role} {peer} is unknown")))?;
        if self.route(kme, peer_kme, Need::Topology).is_none() {
            return Err(Reply::error(
                400,
                format!(
                    "no QKD link or trusted-node path between {} and {}",
                    self.kmes[kme].id, self.kmes[peer_kme].id
                ),
            ));
        }
        Ok(peer_kme)
    }

    fn advance_links(&mut self, now: Instant) {
        for l in &mut self.links {
            l.link.advance(now);
        }
    }

    fn status(&mut self, now: Instant, kme: usize, caller: &SaeId, slave: &SaeId) -> Reply {
        let peer_kme = match self.route_to_peer(kme, caller, slave, "slave_SAE_ID") {
            Ok(r) => r,
            Err(reply) => return reply,
        };
        self.advance_links(now);
        let key_size = u64::from(self.limits.key_size);
        // The route a default request would take now, else the topology's shortest path.
        let Some(route) = self
            .route(kme, peer_kme, Need::Bits(key_size))
            .or_else(|| self.route(kme, peer_kme, Need::Topology))
        else {
            return Reply::error(500, "no route");
        };
        let on_path = |f: fn(&Link) -> u64| {
            route
                .links
                .iter()
                .map(|&l| f(&self.links[l].link))
                .min()
                .unwrap_or(0)
        };
        let status = Status {
            source_kme_id: self.kmes[kme].id.to_string(),
            target_kme_id: self.kmes[peer_kme].id.to_string(),
            master_sae_id: caller.to_string(),
            slave_sae_id: slave.to_string(),
            key_size: self.limits.key_size,
            stored_key_count: on_path(Link::available_bits) / key_size,
            max_key_count: on_path(Link::capacity_bits) / key_size,
            max_key_per_request: self.limits.max_key_per_request,
            max_key_size: self.limits.max_key_size,
            min_key_size: self.limits.min_key_size,
            max_sae_id_count: self.limits.max_sae_id_count,
            status_extension: None,
        };
        Reply::json(200, &status, 512)
    }
}

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_faults;
#[cfg(test)]
mod tests_network;
