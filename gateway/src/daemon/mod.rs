//! The daemon: the thin shell around the sans-IO [`Node`], and the only code that reads clocks,
//! touches TUN, UDP, the KME, files and sockets, or runs threads.
//!
//! | thread | file | what it does |
//! |---|---|---|
//! | `qgw` (main) | `packets.rs` | the node, TUN, UDP, signals, systemd notifications |
//! | `qgw-control` | `control.rs` | status socket, WireGuard UAPI, `/metrics` `/healthz` `/readyz`, from the status the packet thread publishes |
//! | `qgw-kme` | `kme.rs` | the ETSI GS QKD 014 client and prefetch pools (tokio) |
//! | `qgw-audit` | `audit.rs` | the hash-chained, signed audit log |
//!
//! No control client, KME or disk can delay a packet: the packet thread only ever swaps a
//! pointer to publish the status, and hands work to the others over channels it never waits on.
//! Set-up runs in the order that keeps a bad configuration from touching the network: control
//! sockets (a second instance stops here), the KME client (certificates), the audit log, then TUN,
//! addresses, routes and the UDP socket.

mod audit;
pub mod control;
mod datapath;
mod kme;
mod log;
mod netdev;
mod packets;
mod receive;
pub mod workers;

use std::os::unix::net::UnixStream;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use nix::sys::signal::{SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use qkd_link::{FetchGate, PrefetchConfig};
use tracing::{info, warn};

use self::audit::AuditThread;
use self::control::{ControlThread, Listeners, Published, Shared};
pub use self::kme::{BridgeError, KmeBridge, KmeSetup, Probe};
use self::packets::PacketLoop;
use crate::audit::{AuditEvent, AuditLog};
use crate::config::Validated;
use crate::config_hybrid::{HybridPeerSpec, QkdSource};
use crate::hybrid::{QkdPolicy, Role};
use crate::io::notify::Notifier;
use crate::io::tun::Tun;
use crate::node::{KmeId, Node, NodeConfig, Randomness};
use crate::proto::tai64n::WallClock;

/// Longest wait for one KME answer (docs/protocol.md §7).
const KME_TIMEOUT: Duration = crate::hybrid::constants::QKD_TIMEOUT;
/// Time between liveness probes of the KME (one status request, no key spent): a master whose
/// prefetch pool is full and a slave between epochs ask their KME nothing, so without them
/// `qgw_qkd_kme_reachable` could be minutes stale; with them it is at most this stale.
const KME_PROBE_EVERY: Duration = Duration::from_secs(10);

/// Runs interface `cfg` until SIGINT or SIGTERM.
pub fn run(cfg: Validated) -> anyhow::Result<()> {
    let mut mask = SigSet::empty();
    mask.add(Signal::SIGINT);
    mask.add(Signal::SIGTERM);
    mask.thread_block().context("blocking signals")?;
    let signals = SignalFd::with_flags(&mask, SfdFlags::SFD_NONBLOCK).context("signalfd")?;

    let listeners = Listeners::bind(&cfg.name, cfg.uapi, cfg.metrics)
        .with_context(|| format!("control sockets of {}", cfg.name))?;
    let kme = start_kme(&cfg).context("starting the KME client")?;
    let audit = open_audit(&cfg)?;
    let notifier = Notifier::from_env(Instant::now()).unwrap_or_else(|e| {
        warn!(error = %e, "NOTIFY_SOCKET unusable; not reporting to systemd");
        Notifier::disabled()
    });
    if let Some(every) = notifier.watchdog_interval() {
        info!(every_ms = every.as_millis() as u64, "systemd watchdog on");
    }
    let tun = Tun::open(&cfg.name, cfg.offload)
        .with_context(|| format!("creating TUN interface {}", cfg.name))?;
    netdev::configure_link(&cfg)?;
    let udp = netdev::bind(cfg.listen_port, cfg.offload)?;
    let (tun_offloads, udp_offloads) = (tun.offloads().names(), udp.offloads().names());
    match cfg.offload {
        true => info!(tun = ?tun_offloads, udp = ?udp_offloads, "offloads in use"),
        false => info!("offloads off (interface.offload: false)"),
    }
    // On this (the packet) thread, which joins the pool; after the signal mask, which the
    // workers inherit.
    let workers = workers::Workers::new(cfg.threads).context("starting the crypto threads")?;
    info!(threads = workers.threads(), "packets sealed and opened on");
    let listen_port = udp.local_addr()?.port();
    warn_danger(&cfg);

    let now = Instant::now();
    let unix = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let clock = WallClock::new(now, unix);
    let Validated {
        name,
        node: node_config,
        ..
    } = cfg;
    let private_key = node_config.private_key.duplicate();
    let mtu = node_config.mtu;
    let peers = node_config.peers.len();
    let node = Node::new(now, clock, node_config, Randomness::Os)?;
    for id in node.peer_ids() {
        if let Some(h) = node.hybrid_peer(id) {
            let (role, policy, sources) = (h.role(), h.policy(), h.qkd_sources());
            info!(
                peer = node.peer_name(id),
                ?role,
                ?policy,
                qkd_sources = sources.count,
                require = sources.require.label(),
                "hybrid key agreement on"
            );
        }
    }

    let published = Arc::new(Published::default());
    published.publish(node.snapshot(now));
    let (commands, command_rx) = control::commands();
    let (wake, woken) = UnixStream::pair().context("control wake-up socket")?;
    woken.set_nonblocking(true)?;
    wake.set_nonblocking(true)?;
    let shared = Shared {
        interface: name.clone(),
        listen_port,
        private_key,
        published: Arc::clone(&published),
        kmes: kme
            .as_ref()
            .map(|k| k.all_metrics().to_vec())
            .unwrap_or_default(),
        audit: audit.as_ref().map(AuditThread::counters),
        started: now,
        started_unix: unix.as_secs(),
        commands,
        wake,
    };
    let control = ControlThread::start(listeners, shared)?;
    info!(interface = %name, listen = %udp.local_addr()?, peers, "qgw up");
    let ready = format!("READY=1\nSTATUS=tunnel {name} configured");
    if let Err(e) = notifier.send(&ready) {
        warn!(error = %e, "sd_notify READY failed");
    }

    let mut packets = PacketLoop::new(
        node,
        tun,
        udp,
        signals,
        kme,
        (command_rx, woken),
        published,
        audit,
        notifier,
        (mtu, workers),
    );
    let result = packets.run();
    let reason = match &result {
        Ok(()) => {
            info!(interface = %name, "signal received, shutting down");
            "signal".to_owned()
        }
        Err(e) => format!("error: {e:#}"),
    };
    let _ = packets.notifier.send("STOPPING=1");
    drop(control);
    if let Some(audit) = packets.audit.take() {
        audit.close(AuditEvent::Stop { reason });
    }
    drop(packets);
    info!(interface = %name, "qgw down");
    result
}

/// Starts the KME thread, if this site has a KME: a client per KME, each with the prefetch
/// pools of the peers this site is master of through it and a probe (docs/protocol.md §6.3). A
/// client that cannot load its certificates or key stops the daemon here, before it touches the
/// network.
fn start_kme(cfg: &Validated) -> anyhow::Result<Option<KmeBridge>> {
    if cfg.kmes.is_empty() {
        return Ok(None);
    }
    let kmes = (cfg.kmes.iter().enumerate())
        .map(|(i, kme)| {
            let id = KmeId::new(i);
            let probe = (qkd_sources(&cfg.node))
                .find(|(_, s)| Some(s.kme) == id)
                .map(|(_, s)| Probe {
                    peer: s.peer_sae_id.clone(),
                    every: KME_PROBE_EVERY,
                });
            KmeSetup {
                name: kme.name.clone(),
                config: kme.client.clone(),
                masters_for: id.map(|id| master_pools(&cfg.node, id)).unwrap_or_default(),
                gate: FetchGate::default(),
                probe,
            }
        })
        .collect();
    Ok(Some(KmeBridge::start_many(kmes, KME_TIMEOUT)?))
}

/// Every QKD source of every hybrid peer that uses QKD, with its peer's settings.
fn qkd_sources(node: &NodeConfig) -> impl Iterator<Item = (&HybridPeerSpec, &QkdSource)> {
    (node.peers.iter())
        .filter_map(|p| p.hybrid.as_ref())
        .filter(|h| h.policy != QkdPolicy::Off)
        .flat_map(|h| h.sources.iter().map(move |s| (h, s)))
}

/// A prefetch pool for every peer and source this site is QKD master of through `kme`, sized
/// from the peer's rotation.
fn master_pools(node: &NodeConfig, kme: KmeId) -> Vec<PrefetchConfig> {
    qkd_sources(node)
        .filter(|(h, s)| h.role == Role::Master && s.kme == kme)
        .map(|(h, s)| PrefetchConfig::for_rotation(s.peer_sae_id.clone(), h.rekey_after))
        .collect()
}

/// Opens the audit log (a configured log that cannot be opened stops the daemon before it
/// touches the network) and records `start` and `config_loaded`.
fn open_audit(cfg: &Validated) -> anyhow::Result<Option<AuditThread>> {
    let Some(settings) = &cfg.audit else {
        return Ok(None);
    };
    let signer = cfg.node.signing_key.clone();
    if signer.is_none() {
        warn!("audit log without mldsa_private_key_file: checkpoints are not signed");
    }
    let log = AuditLog::open(settings, signer, SystemTime::now())
        .with_context(|| format!("opening audit log {}", settings.path.display()))?;
    info!(path = %settings.path.display(), "audit log open");
    let thread = AuditThread::start(log).context("starting the audit thread")?;
    thread.record(AuditEvent::Start {
        version: env!("CARGO_PKG_VERSION").to_owned(),
        interface: cfg.name.clone(),
        pid: std::process::id(),
    });
    if let Some((path, sha256)) = &cfg.source {
        thread.record(AuditEvent::config_loaded(path, sha256));
    }
    Ok(Some(thread))
}

fn warn_danger(cfg: &Validated) {
    if let Some(d) = cfg.node.danger_reject_after {
        warn!(
            seconds = d.as_secs(),
            "danger_reject_after_seconds: off-spec session lifetime (tests only)"
        );
    }
    if let Some(d) = cfg.node.danger_rekey_after {
        warn!(
            seconds = d.as_secs(),
            "danger_rekey_after_seconds: off-spec rekey interval (tests only)"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::node::testing::{HybridLink, Site, hybrid};

    #[test]
    fn each_master_pool_is_sized_from_its_peers_rotation() {
        let link = |peer, role, policy, secs| HybridLink {
            peer: Site(peer),
            role,
            policy,
            rekey_after: Duration::from_secs(secs),
        };
        let node = hybrid(
            Site(1),
            &[
                link(2, Role::Master, QkdPolicy::Required, 10),
                link(3, Role::Master, QkdPolicy::Preferred, 120),
                link(4, Role::Slave, QkdPolicy::Required, 10),
                link(5, Role::Master, QkdPolicy::Off, 10),
            ],
        );
        let pools = master_pools(&node, KmeId::FIRST);
        let sized: Vec<_> = pools
            .iter()
            .map(|c| (c.slave.clone(), c.capacity))
            .collect();
        assert_eq!(sized, [(Site(2).sae(), 7), (Site(3).sae(), 2)]);
    }
}
