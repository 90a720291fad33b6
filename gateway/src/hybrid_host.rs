//! The hybrid key agreement inside the daemon: one [`HybridPeer`] per `hybrid: on` peer, routing of
//! hybrid datagrams by `pair_id`, the KME bridge, and the glue to the WireGuard [`Interface`]
//! (install PSKs, start handshakes, learn which epoch a confirmed session belongs to).
//!
//! Like the rest of the daemon's edge code it does I/O only through what it is handed (the UDP
//! socket, the KME bridge); the protocol decisions are all in [`crate::hybrid`].

use std::collections::HashMap;
use std::net::SocketAddr;
use std::os::fd::BorrowedFd;
use std::time::{Duration, Instant};

use qkd_link::SaeId;
use tracing::{debug, info, warn};
use x25519_dalek::StaticSecret;

use crate::config::Validated;
use crate::hybrid::{
    HybridEvent, HybridPeer, HybridSettings, Output, PairKeys, PeerKeys, QkdPolicy, Role, identity,
    wire,
};
use crate::io::udp::Udp;
use crate::kme::{KmeBridge, KmeJob};
use crate::proto::crypto::{Entropy, OsEntropy};
use crate::proto::interface::Interface;
use crate::proto::peer::{Event, HandshakeGate};
use crate::proto::tai64n::WallClock;

/// Longest wait for one KME answer (docs/protocol.md §7).
const KME_TIMEOUT: Duration = crate::hybrid::constants::QKD_TIMEOUT;

struct HostPeer {
    name: String,
    machine: HybridPeer,
    /// Where the last authenticated hybrid datagram came from (replies go there first).
    source: Option<SocketAddr>,
    peer_sae: Option<SaeId>,
}

/// All hybrid peers of one interface.
pub struct HybridHost {
    peers: HashMap<usize, HostPeer>,
    by_pair: HashMap<[u8; 8], usize>,
    kme: Option<KmeBridge>,
    /// Events since the last [`HybridHost::take_events`] (the daemon drains them every turn).
    events: Vec<(usize, HybridEvent)>,
}

impl std::fmt::Debug for HybridHost {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HybridHost")
            .field("peers", &self.peers.len())
            .finish_non_exhaustive()
    }
}

impl HybridHost {
    /// Starts the KME bridge, if any peer uses QKD. Call before touching the network: a KME
    /// client that cannot load its certificates or key stops the daemon here.
    pub fn start_kme(cfg: &Validated) -> anyhow::Result<Option<KmeBridge>> {
        let Some(site) = &cfg.hybrid_site else {
            return Ok(None);
        };
        let Some(client) = &site.kme else {
            return Ok(None);
        };
        let masters_for: Vec<SaeId> = cfg
            .hybrid_peers
            .iter()
            .flatten()
            .filter(|h| h.role == Role::Master && h.policy != QkdPolicy::Off)
            .filter_map(|h| h.peer_sae_id.clone())
            .collect();
        Ok(Some(KmeBridge::start(
            client.clone(),
            masters_for,
            KME_TIMEOUT,
        )?))
    }

    /// Builds the state machines for every hybrid peer (`ids[i]` is the interface's id of
    /// `cfg.peers[i]`) and puts those WireGuard peers under the hybrid handshake gate.
    pub fn new<R: Entropy>(
        now: Instant,
        clock: WallClock,
        cfg: &Validated,
        ids: &[usize],
        ifc: &mut Interface<R>,
        kme: Option<KmeBridge>,
    ) -> anyhow::Result<Self> {
        let mut host = Self {
            peers: HashMap::new(),
            by_pair: HashMap::new(),
            kme,
            events: Vec::new(),
        };
        let Some(site) = &cfg.hybrid_site else {
            return Ok(host);
        };
        let local = StaticSecret::from(*cfg.private_key.expose());
        let local_public = x25519_dalek::PublicKey::from(&local).to_bytes();
        let local_id = identity(&local_public, site.signing_key.verifying_key());
        for (((name, spec), hybrid), &id) in cfg.peers.iter().zip(&cfg.hybrid_peers).zip(ids) {
            let Some(h) = hybrid else { continue };
            let pair = PairKeys::derive(&local, &spec.public_key)
                .ok_or_else(|| anyhow::anyhow!("peer {name}: public key is a low-order point"))?;
            let peer_id = identity(&spec.public_key, &h.verifying_key);
            let (master, slave) = match h.role {
                Role::Master => (local_id.clone(), peer_id),
                Role::Slave => (peer_id, local_id.clone()),
            };
            let keys = PeerKeys {
                signing: site.signing_key.clone(),
                peer_verifying: h.verifying_key.clone(),
                pair,
                master,
                slave,
                genesis_psk: spec.psk.as_ref().map(keymix::Secret::duplicate),
            };
            let settings = HybridSettings {
                role: h.role,
                policy: h.policy,
                rekey_after: h.rekey_after,
            };
            let machine = HybridPeer::new(now, settings, keys, clock, Box::new(OsEntropy));
            if let Some(p) = ifc.peer_mut(id) {
                p.set_handshake_gate(match h.role {
                    Role::Master => HandshakeGate::HybridMaster,
                    Role::Slave => HandshakeGate::HybridSlave,
                });
                p.set_rekey_after_time(h.rekey_after);
            }
            if host.by_pair.insert(*machine.pair_id(), id).is_some() {
                anyhow::bail!("peer {name}: two hybrid peers derive the same pair id");
            }
            info!(peer = %name, role = ?h.role, policy = ?h.policy, rekey_after_s = h.rekey_after.as_secs(), "hybrid key agreement on");
            host.peers.insert(
                id,
                HostPeer {
                    name: name.clone(),
                    machine,
                    source: None,
                    peer_sae: h.peer_sae_id.clone(),
                },
            );
        }
        Ok(host)
    }

    /// Whether any peer is hybrid.
    pub fn is_empty(&self) -> bool {
        self.peers.is_empty()
    }

    /// Takes a hybrid datagram (returns `false` for anything else, which goes to WireGuard).
    pub fn handle_datagram(&mut self, now: Instant, from: SocketAddr, datagram: &[u8]) -> bool {
        if !wire::is_hybrid(datagram) {
            return false;
        }
        let pair_id = wire::parse(datagram).ok().map(|f| f.header.pair_id);
        let Some(peer) = pair_id
            .and_then(|p| self.by_pair.get(&p))
            .and_then(|id| self.peers.get_mut(id))
        else {
            debug!(%from, "hybrid datagram for no known pair dropped");
            return true;
        };
        match peer.machine.handle_datagram(now, datagram) {
            Ok(()) => peer.source = Some(from),
            Err(reason) => {
                debug!(peer = %peer.name, reason = reason.label(), "hybrid datagram dropped")
            }
        }
        true
    }

    /// Feeds a WireGuard event of peer `id` to its hybrid machine.
    pub fn on_event(&mut self, now: Instant, id: usize, event: &Event) {
        let Some(peer) = self.peers.get_mut(&id) else {
            return;
        };
        match event {
            Event::SessionConfirmed { psk_id, .. } => peer.machine.on_session_confirmed(*psk_id),
            Event::EpochNeeded => peer.machine.request_epoch(now),
            _ => {}
        }
    }

    /// Runs timers, collects KME results and carries out every output. Returns whether a
    /// WireGuard handshake was requested (the caller then runs the interface's timers again).
    pub fn poll<R: Entropy>(
        &mut self,
        now: Instant,
        kme_ready: bool,
        ifc: &mut Interface<R>,
        udp: &Udp,
    ) -> bool {
        let mut handshake_requested = false;
        if let Some(kme) = self.kme.as_ref().filter(|_| kme_ready) {
            for r in kme.drain() {
                if let Some(p) = self.peers.get_mut(&r.peer) {
                    p.machine.handle_qkd_result(now, r.request, r.result);
                }
            }
        }
        for (&id, peer) in &mut self.peers {
            if peer.machine.poll_timeout().is_some_and(|t| t <= now) {
                peer.machine.handle_timeout(now);
            }
            while let Some(out) = peer.machine.poll_output() {
                match out {
                    Output::Transmit(d) => {
                        let to = peer
                            .source
                            .or_else(|| ifc.peer(id).and_then(|p| p.endpoint()));
                        if let Some(to) = to {
                            let _ = udp.send_to(&d, to);
                        }
                    }
                    Output::FetchQkdKey { request } => match (&self.kme, &peer.peer_sae) {
                        (Some(kme), Some(slave)) => kme.submit(KmeJob::Fetch {
                            peer: id,
                            request,
                            slave: slave.clone(),
                        }),
                        _ => peer.machine.handle_qkd_result(
                            now,
                            request,
                            Err(crate::hybrid::QkdFailure::Unavailable),
                        ),
                    },
                    Output::ResolveQkdKeys { request, key_ids } => {
                        match (&self.kme, &peer.peer_sae) {
                            (Some(kme), Some(master)) => kme.submit(KmeJob::Resolve {
                                peer: id,
                                request,
                                master: master.clone(),
                                key_ids,
                            }),
                            _ => peer.machine.handle_qkd_result(
                                now,
                                request,
                                Err(crate::hybrid::QkdFailure::Unavailable),
                            ),
                        }
                    }
                    Output::InstallPsk {
                        epoch,
                        psk,
                        handshake_now,
                    } => {
                        ifc.set_psk(id, psk, epoch);
                        if handshake_now && let Some(p) = ifc.peer_mut(id) {
                            p.request_handshake();
                            handshake_requested = true;
                        }
                    }
                    Output::Event(e) => {
                        log_event(&peer.name, &e);
                        self.events.push((id, e));
                    }
                }
            }
        }
        handshake_requested
    }

    /// The earliest hybrid timer.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.peers
            .values()
            .filter_map(|p| p.machine.poll_timeout())
            .min()
    }

    /// The KME bridge's wake-up descriptor, if a KME is configured.
    pub fn wake_fd(&self) -> Option<BorrowedFd<'_>> {
        self.kme.as_ref().map(KmeBridge::wake_fd)
    }

    /// The hybrid machine of interface peer `id` (status, metrics).
    pub fn peer(&self, id: usize) -> Option<&HybridPeer> {
        self.peers.get(&id).map(|p| &p.machine)
    }

    /// What `qgw status` shows about peer `id`'s key agreement.
    pub fn view(&self, now: Instant, id: usize) -> Option<crate::control::status::HybridView> {
        let machine = &self.peers.get(&id)?.machine;
        let current = machine.current_epoch();
        let key_sources = current.map_or_else(Vec::new, |(info, _)| {
            info.sources
                .names()
                .iter()
                .map(|s| (*s).to_owned())
                .collect()
        });
        Some(crate::control::status::HybridView {
            role: machine.role().label(),
            epoch: current.map_or(0, |(info, _)| info.epoch),
            age_seconds: current.map(|(_, at)| now.saturating_duration_since(at).as_secs()),
            key_sources,
            qkd_key_id: current.and_then(|(info, _)| info.key_ids.first().cloned()),
            drops: machine.stats().drops_by_label(),
            signature_verifications: machine.stats().signature_verifications,
            kem_operations: machine.stats().kem_operations,
            rejects: machine
                .stats()
                .rejects
                .iter()
                .map(|(reason, n)| (reason.to_string(), *n))
                .collect(),
        })
    }

    /// The events since the last call, oldest first (for the ops tracker and the audit log).
    pub fn take_events(&mut self) -> std::vec::Drain<'_, (usize, HybridEvent)> {
        self.events.drain(..)
    }

    /// The KME client's counters, if a KME is configured.
    pub fn kme_metrics(&self) -> Option<&std::sync::Arc<qkd_link::Metrics>> {
        self.kme.as_ref().map(KmeBridge::metrics)
    }
}

fn log_event(peer: &str, event: &HybridEvent) {
    match event {
        HybridEvent::EpochInstalled(info) => info!(
            peer,
            epoch = info.epoch,
            sources = info.sources.label(),
            qkd_key_ids = ?info.key_ids,
            "hybrid epoch installed"
        ),
        HybridEvent::Fallback { epoch } => warn!(
            peer,
            epoch, "QKD unavailable: epoch falls back to x25519+mlkem (policy preferred)"
        ),
        HybridEvent::QkdBlocked { epoch } => warn!(
            peer,
            epoch, "QKD unavailable: no new epoch (policy required)"
        ),
        HybridEvent::Rejected {
            epoch,
            reason,
            sent,
        } => warn!(peer, epoch, ?reason, sent, "hybrid exchange rejected"),
        HybridEvent::ExchangeAbandoned { epoch } => {
            warn!(peer, epoch, "hybrid exchange got no answer; starting over")
        }
    }
}
