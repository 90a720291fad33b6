//! The packet thread: the only code that reads the clock for the node and moves bytes between it
//! and the TUN device, the UDP socket and the KME thread (the data path itself, batched and
//! offloaded, is in [`super::datapath`]). It also carries out what the node hands back
//! (datagrams, KME requests, events for the log and the audit thread), publishes the node's status
//! for the control thread, applies the control thread's commands, and pings systemd's watchdog.

use std::io::Read;
use std::os::fd::AsFd;
use std::os::unix::net::UnixStream;
use std::sync::Arc;
use std::sync::mpsc::Receiver;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use nix::poll::{PollFd, PollFlags, ppoll};
use nix::sys::signalfd::SignalFd;
use nix::sys::time::TimeSpec;
use tracing::{info, warn};

use super::audit::AuditThread;
use super::control::{Command, Published};
use super::datapath::DataPath;
use super::kme::KmeBridge;
use super::workers::Workers;
use crate::control::status::OffloadStatus;
use crate::hybrid::QkdFailure;
use crate::io::notify::Notifier;
use crate::io::tun::Tun;
use crate::io::udp::Udp;
use crate::node::{Node, NodeEvent};

/// Longest sleep between timer checks when nothing is due.
const MAX_SLEEP: Duration = Duration::from_secs(1);
/// How often the status is published for the control thread (and after every event).
const PUBLISH_EVERY: Duration = Duration::from_millis(250);
/// Datagrams from `poll_transmit` sent per flush (the rest go at the next turn).
const TRANSMITS_PER_FLUSH: usize = 256;

/// The shortest sleep when something is due but not yet: an egress scheduler's next release is
/// often microseconds away, and sleeping to it exactly would wake the thread once per packet.
/// Its bucket holds 2 ms of its rate, so a 250 µs tick loses no rate and adds at most that much
/// delay to a vital-sign packet arriving while the bucket is empty.
const MIN_SLEEP: Duration = Duration::from_micros(250);

/// `ppoll`'s timeout for a sleep of `sleep` (at least [`MIN_SLEEP`] unless nothing waits).
fn poll_timeout(sleep: Duration) -> TimeSpec {
    let sleep = if sleep.is_zero() {
        sleep
    } else {
        sleep.max(MIN_SLEEP)
    };
    TimeSpec::from_duration(sleep)
}

/// What the packet thread owns.
#[derive(Debug)]
pub struct PacketLoop {
    /// The node.
    pub node: Node,
    /// The tunnel device, the UDP socket and the buffers between them.
    pub data: DataPath,
    /// SIGINT and SIGTERM.
    pub signals: SignalFd,
    /// The KME thread, with a KME.
    pub kme: Option<KmeBridge>,
    /// Commands from the control thread, and the byte that announces them.
    pub commands: (Receiver<Command>, UnixStream),
    /// Where the status is published.
    pub published: Arc<Published>,
    /// The audit thread, with an audit log.
    pub audit: Option<AuditThread>,
    /// systemd.
    pub notifier: Notifier,
    next_publish: Instant,
    notify_failing: bool,
}

impl PacketLoop {
    /// Builds the loop from its parts (see the fields).
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        node: Node,
        tun: Tun,
        udp: Udp,
        signals: SignalFd,
        kme: Option<KmeBridge>,
        commands: (Receiver<Command>, UnixStream),
        published: Arc<Published>,
        audit: Option<AuditThread>,
        notifier: Notifier,
        (mtu, workers): (usize, Workers),
    ) -> Self {
        Self {
            node,
            data: DataPath::new(mtu, tun, udp, workers),
            signals,
            kme,
            commands,
            published,
            audit,
            notifier,
            next_publish: Instant::now(),
            notify_failing: false,
        }
    }

    /// Runs until SIGINT or SIGTERM (`Ok`) or an I/O error on the tunnel or socket.
    pub fn run(&mut self) -> anyhow::Result<()> {
        loop {
            let now = Instant::now();
            let deadline = [
                self.node.poll_timeout(),
                Some(self.next_publish),
                self.notifier.next_deadline(),
            ]
            .into_iter()
            .flatten()
            .min();
            let sleep = deadline.map_or(MAX_SLEEP, |d| d.saturating_duration_since(now));
            let timeout = poll_timeout(sleep.min(MAX_SLEEP));
            // Without a KME the signal fd stands in for its wake-up fd (polled twice, harmless).
            let kme_fd = self
                .kme
                .as_ref()
                .map_or(self.signals.as_fd(), KmeBridge::wake_fd);
            let mut fds = [
                self.data.tun.as_fd(),
                self.data.udp.as_fd(),
                self.signals.as_fd(),
                kme_fd,
                self.commands.1.as_fd(),
            ]
            .map(|fd| PollFd::new(fd, PollFlags::POLLIN));
            match ppoll(&mut fds, Some(timeout), None) {
                Ok(_) => {}
                Err(nix::errno::Errno::EINTR) => continue,
                Err(e) => return Err(e).context("poll"),
            }
            let ready =
                |i: usize| (fds[i].revents()).is_some_and(|r| r.intersects(PollFlags::POLLIN));
            let [tun, udp, signal, kme, commands] = [0, 1, 2, 3, 4].map(ready);
            if signal {
                return Ok(());
            }
            let now = Instant::now();
            // The wall clock, read per turn as WireGuard reads it per timestamp: a step by NTP
            // (or by hand) is followed without a restart.
            let unix = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap_or_default();
            self.node.set_wall_clock(now, unix);
            if udp {
                self.data.network(&mut self.node, now)?;
            }
            if tun {
                self.data.tunnel(&mut self.node, now)?;
            }
            self.data.egress(&mut self.node, now);
            if kme {
                self.kme_replies(now);
            }
            if commands {
                self.commands(now);
            }
            if self.node.poll_timeout().is_some_and(|t| t <= now) {
                self.node.handle_timeout(now);
            }
            self.flush(now);
        }
    }

    fn kme_replies(&mut self, now: Instant) {
        let Some(kme) = &self.kme else { return };
        for reply in kme.drain() {
            self.node.handle_kme_reply(now, reply);
        }
    }

    fn commands(&mut self, now: Instant) {
        let mut sink = [0u8; 64];
        while matches!((&self.commands.1).read(&mut sink), Ok(n) if n > 0) {}
        while let Ok(command) = self.commands.0.try_recv() {
            match command {
                Command::Uapi(plan, answer) => {
                    let result = self.node.apply_uapi(now, plan);
                    for id in result.iter().flatten() {
                        info!(peer = self.node.peer_name(*id), "peer added over UAPI");
                    }
                    // Published before the answer, so a `wg show` right after the `wg set` sees
                    // the change (a status younger than 20 ms is served as it is).
                    self.publish(now);
                    let _ = answer.send(result.map(|_| ()));
                }
                Command::Publish => self.next_publish = now,
            }
        }
    }

    /// Publishes the node's status, with the offloads in use, for the control thread.
    fn publish(&mut self, now: Instant) {
        let mut status = self.node.snapshot(now);
        let in_use = (self.data.tun.offloads().names().into_iter())
            .chain(self.data.udp.offloads().names())
            .map(str::to_owned)
            .collect();
        let counts = self.data.counts();
        status.offloads = Some(OffloadStatus {
            in_use,
            tun_refused: (counts.tun_refused.iter())
                .map(|(k, v)| ((*k).to_owned(), *v))
                .collect(),
            udp_send_dropped: self.data.udp.send_dropped(),
            tun_segmented: counts.tun_segmented,
            tun_coalesced: counts.tun_coalesced,
            udp_coalesced: counts.udp_coalesced,
            crypto_threads: self.data.workers().threads(),
            crypto_shared_batches: self.data.workers().shared(),
        });
        self.published.publish(status);
        self.next_publish = now + PUBLISH_EVERY;
    }

    /// Carries out what the node handed back: KME requests, datagrams, events; publishes the
    /// status when due; pings the watchdog.
    fn flush(&mut self, now: Instant) {
        while let Some(request) = self.node.poll_kme_request() {
            match &self.kme {
                Some(kme) => kme.submit(request),
                None => {
                    let reply = request.reply(Err(QkdFailure::Unavailable));
                    self.node.handle_kme_reply(now, reply);
                }
            }
        }
        (self.data).transmit(&mut self.node, now, TRANSMITS_PER_FLUSH);
        let mut changed = false;
        while let Some(e) = self.node.poll_event() {
            changed = true;
            super::log::event(&self.node, &e);
            if let (NodeEvent::Audit(record), Some(audit)) = (e, &self.audit) {
                audit.record(record);
            }
        }
        if changed || now >= self.next_publish {
            self.publish(now);
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
}
