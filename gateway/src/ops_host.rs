//! The operations edge of the daemon: feeds the sans-IO [`Watch`] from the interface and the
//! hybrid layer, writes what it reports to the audit log ([`AuditLog`], docs/audit.md) and the
//! debug log, talks to systemd ([`Notifier`]) and supplies the process, KME, audit and ops fields
//! of every [`Status`] (and so of `/metrics`).
//!
//! Audit writes are synchronous on the event loop: a record is one `write`, a signed checkpoint
//! (every `checkpoint_records` records or `checkpoint_seconds`) one ML-DSA signature (~0.2 ms) and
//! one `fdatasync`. Events are per epoch and per state change, not per packet, so this is far off
//! the data path. A failed write is counted (`qgw_audit_write_errors_total`), logged, and recorded
//! as `records_lost` once writing works again; it never stops the tunnel.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use tracing::{info, warn};

use crate::audit::{AuditEvent, AuditLog};
use crate::config::Validated;
use crate::control::serve::StatusExtra;
use crate::control::status::{AuditStatus, HybridView, ProcessStatus, QkdStatus, Status};
use crate::hybrid::QkdPolicy;
use crate::hybrid_host::HybridHost;
use crate::io::notify::Notifier;
use crate::ops::{PeerSnapshot, Watch, watch::HybridSnapshot};
use crate::proto::crypto::Entropy;
use crate::proto::interface::Interface;

/// How often peers are re-classified (policy state, up/down): often enough that an audit record's
/// time is within this of the real transition, rarely enough to cost nothing on the data path.
pub const EVALUATE_EVERY: Duration = Duration::from_millis(250);

/// The git commit the binary was built from (`build.rs`), `unknown` outside a checkout.
pub const COMMIT: &str = match option_env!("QGW_GIT_COMMIT") {
    Some(c) => c,
    None => "unknown",
};

/// Ops state of one running interface.
#[derive(Debug)]
pub struct OpsHost {
    watch: Watch,
    notifier: Notifier,
    started_unix: u64,
    started: Instant,
    next_evaluation: Instant,
    events: Vec<AuditEvent>,
    /// The last watchdog ping failed (logged once, not every ping).
    notify_failing: bool,
    audit: Option<AuditLog>,
    /// The last audit write failed (logged once until one succeeds).
    audit_failing: bool,
}

impl OpsHost {
    /// Starts tracking at `now`: reads the systemd environment and opens the audit log (a
    /// configured log that cannot be opened stops the daemon before it touches the network).
    pub fn new(now: Instant, cfg: &Validated) -> anyhow::Result<Self> {
        let notifier = Notifier::from_env(now).unwrap_or_else(|e| {
            warn!(error = %e, "NOTIFY_SOCKET unusable; not reporting to systemd");
            Notifier::disabled()
        });
        if let Some(every) = notifier.watchdog_interval() {
            info!(every_ms = every.as_millis() as u64, "systemd watchdog on");
        }
        let started_unix = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let audit = match &cfg.audit {
            None => None,
            Some(settings) => {
                let signer = cfg.hybrid_site.as_ref().map(|h| h.signing_key.clone());
                if signer.is_none() {
                    warn!("audit log without mldsa_private_key_file: checkpoints are not signed");
                }
                let log = AuditLog::open(settings, signer, SystemTime::now())
                    .with_context(|| format!("opening audit log {}", settings.path.display()))?;
                info!(path = %settings.path.display(), "audit log open");
                Some(log)
            }
        };
        let mut host = Self {
            watch: Watch::new(),
            notifier,
            started_unix,
            started: now,
            next_evaluation: now,
            events: Vec::new(),
            notify_failing: false,
            audit,
            audit_failing: false,
        };
        host.audit(AuditEvent::Start {
            version: env!("CARGO_PKG_VERSION").to_owned(),
            interface: cfg.name.clone(),
            pid: std::process::id(),
        });
        if let Some((path, sha256)) = &cfg.source {
            host.audit(AuditEvent::config_loaded(path, sha256));
        }
        Ok(host)
    }

    /// Writes one record (no-op without an audit log); failures are counted by the log.
    fn audit(&mut self, event: AuditEvent) {
        let Some(log) = self.audit.as_mut() else {
            return;
        };
        match log.record(SystemTime::now(), event) {
            Ok(()) => self.audit_failing = false,
            Err(e) if !self.audit_failing => {
                self.audit_failing = true;
                warn!(error = %e, "audit write failed (reported once until writing works again)");
            }
            Err(_) => {}
        }
    }

    /// Records `stop` and closes the audit log with a final signed checkpoint.
    pub fn shutdown(&mut self, reason: &str) {
        self.stopping();
        self.audit(AuditEvent::Stop {
            reason: reason.to_owned(),
        });
        if let Some(log) = self.audit.take()
            && let Err(e) = log.close(SystemTime::now())
        {
            warn!(error = %e, "closing the audit log failed");
        }
    }

    /// Tells systemd the tunnel is configured (`Type=notify`).
    pub fn ready(&self, interface: &str) {
        let msg = format!("READY=1\nSTATUS=tunnel {interface} configured");
        if let Err(e) = self.notifier.send(&msg) {
            warn!(error = %e, "sd_notify READY failed");
        }
    }

    /// Tells systemd we are stopping.
    fn stopping(&self) {
        let _ = self.notifier.send("STOPPING=1");
    }

    /// One event-loop turn: feeds hybrid events, re-evaluates peers when due, writes what changed
    /// to the logs, signs a due checkpoint, pings the watchdog.
    pub fn poll<R: Entropy>(
        &mut self,
        now: Instant,
        ifc: &Interface<R>,
        hybrid: &mut HybridHost,
        names: &[String],
    ) {
        let hybrid_events: Vec<_> = hybrid.take_events().collect();
        for (id, e) in &hybrid_events {
            let name = names.get(*id).map_or("?", String::as_str);
            let Some(role) = hybrid.peer(*id).map(|m| m.role()) else {
                continue;
            };
            if let Some(ev) = self.watch.on_hybrid_event(*id, name, role, e) {
                self.events.push(ev);
            }
        }
        if now >= self.next_evaluation {
            self.next_evaluation = now + EVALUATE_EVERY;
            let snapshots: Vec<PeerSnapshot> = (0..ifc.peer_count())
                .map(|id| snapshot(now, ifc, hybrid, id))
                .collect();
            let drops = crate::DropReason::by_label(ifc.drops());
            self.watch
                .evaluate(now, names, &snapshots, &drops, &mut self.events);
            if let Some(log) = self.audit.as_mut()
                && let Err(e) = log.tick(SystemTime::now())
            {
                warn!(error = %e, "audit checkpoint failed");
            }
        }
        let events = std::mem::take(&mut self.events);
        for e in events {
            log_event(&e);
            self.audit(e);
        }
        match self.notifier.ping_if_due(now) {
            Err(e) if !self.notify_failing => {
                self.notify_failing = true;
                warn!(error = %e, "sd_notify WATCHDOG failed (reported once until it works again)");
            }
            Ok(true) => self.notify_failing = false,
            _ => {}
        }
    }

    /// The next time [`OpsHost::poll`] has work of its own.
    pub fn next_deadline(&self) -> Option<Instant> {
        [Some(self.next_evaluation), self.notifier.next_deadline()]
            .into_iter()
            .flatten()
            .min()
    }

    /// The status extras at `now`.
    pub fn extra<'a>(&'a self, now: Instant, hybrid: &'a HybridHost) -> Extra<'a> {
        Extra {
            ops: self,
            hybrid,
            now,
        }
    }
}

fn snapshot<R: Entropy>(
    now: Instant,
    ifc: &Interface<R>,
    hybrid: &HybridHost,
    id: usize,
) -> PeerSnapshot {
    let usable = ifc.peer(id).is_some_and(|p| p.has_usable_session(now));
    let hybrid = hybrid.peer(id).map(|m| HybridSnapshot {
        qkd_configured: m.settings().policy != QkdPolicy::Off,
        current_has_qkd: m.current_epoch().map(|(info, _)| info.sources.has_qkd()),
        drops: m.stats().drops_by_label(),
    });
    PeerSnapshot { usable, hybrid }
}

/// [`StatusExtra`] over the daemon's state at one instant.
#[derive(Debug)]
pub struct Extra<'a> {
    ops: &'a OpsHost,
    hybrid: &'a HybridHost,
    now: Instant,
}

impl StatusExtra for Extra<'_> {
    fn hybrid(&self, id: usize) -> Option<HybridView> {
        self.hybrid.view(self.now, id)
    }

    fn annotate(&self, status: &mut Status) {
        for id in 0..status.peers.len() {
            status.annotate_peer(id, &self.ops.watch.view(id));
        }
        status.process = Some(ProcessStatus {
            version: env!("CARGO_PKG_VERSION").to_owned(),
            commit: COMMIT.to_owned(),
            start_time_unix: self.ops.started_unix,
            uptime_seconds: self
                .now
                .saturating_duration_since(self.ops.started)
                .as_secs(),
        });
        status.qkd = self
            .hybrid
            .kme_metrics()
            .map(|m| QkdStatus::from_snapshot(&m.snapshot()));
        status.audit = self.ops.audit.as_ref().map(|log| AuditStatus {
            path: log.path().display().to_string(),
            records: log.records_written(),
            write_errors: log.write_errors(),
        });
    }
}

/// The debug-log line of an audit event (epochs are already logged by the hybrid layer).
fn log_event(e: &AuditEvent) {
    match e {
        AuditEvent::PeerUp { peer } => info!(peer, "peer up"),
        AuditEvent::PeerDown { peer, reason } => warn!(peer, reason, "peer down"),
        AuditEvent::PolicyTransition { peer, from, to } => info!(
            peer,
            from = from.map_or("startup", |f| f.label()),
            to = to.label(),
            "policy state"
        ),
        AuditEvent::FailClosedEnter { peer, reason } => {
            warn!(peer, reason, "fail-closed: traffic to this peer is refused")
        }
        AuditEvent::FailClosedExit { peer } => info!(peer, "fail-closed ended"),
        AuditEvent::AuthFailure {
            peer,
            reason,
            count,
            ..
        } => warn!(
            peer = peer.as_deref().unwrap_or("-"),
            reason, count, "authentication failures"
        ),
        _ => {}
    }
}
