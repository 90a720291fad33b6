//! The packet thread: the only code that reads the clock for the node and moves bytes between it
//! and the TUN device, the UDP socket and the KME thread, in batches (`recvmmsg` for the network,
//! one `sendmmsg` per batch of packets from TUN). It also carries out what the node hands back
//! (datagrams, KME requests, events for the log and the audit thread), publishes the node's status
//! for the control thread, applies the control thread's commands, and pings systemd's watchdog.

use std::io::{ErrorKind, Read};
use std::os::fd::AsFd;
use std::os::unix::net::UnixStream;
use std::sync::Arc;
use std::sync::mpsc::Receiver;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::signalfd::SignalFd;
use tracing::{info, warn};

use super::audit::AuditThread;
use super::control::{Command, Published};
use super::kme::KmeBridge;
use crate::hybrid::QkdFailure;
use crate::io::notify::Notifier;
use crate::io::tun::Tun;
use crate::io::udp::{BATCH, Batch, Udp};
use crate::node::{Node, NodeEvent, Received};
use crate::proto::constants::TRANSPORT_HEADER_LEN;

/// Longest sleep between timer checks when nothing is due.
const MAX_SLEEP: Duration = Duration::from_secs(1);
/// How often the status is published for the control thread (and after every event).
const PUBLISH_EVERY: Duration = Duration::from_millis(250);
/// Batches of datagrams read per wake-up, so the tunnel side is not starved.
const RECV_BATCHES: usize = 16;
/// Datagrams from `poll_transmit` sent per flush (the rest go at the next turn).
const TRANSMITS_PER_FLUSH: usize = 256;

/// What the packet thread owns.
#[derive(Debug)]
pub struct PacketLoop {
    /// The node.
    pub node: Node,
    /// The tunnel device.
    pub tun: Tun,
    /// The UDP socket.
    pub udp: Udp,
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
    /// Buffers (allocated once).
    pub buffers: Buffers,
    next_publish: Instant,
    notify_failing: bool,
}

/// The packet thread's buffers, allocated once.
#[derive(Debug)]
pub struct Buffers {
    rx: Batch,
    tx: Batch,
    out: Vec<u8>,
}

/// The size of a receive slot (and of the buffer `poll_transmit` writes into) for tunnel MTU
/// `mtu`: the largest datagram that may arrive, so `recvmmsg` never truncates one. That is the
/// larger of a full-size transport message (`mtu` + header + tag, with some room) and a hybrid
/// fragment (1232 bytes, docs/protocol.md §4), whatever the MTU; handshake messages are smaller
/// than both.
pub fn datagram_slot(mtu: usize) -> usize {
    let transport = mtu + 2 * TRANSPORT_HEADER_LEN + 64;
    transport.max(crate::hybrid::constants::MAX_DATAGRAM)
}

impl Buffers {
    /// Buffers for tunnel MTU `mtu`.
    pub fn new(mtu: usize) -> Self {
        let slot = datagram_slot(mtu);
        Self {
            rx: Batch::new(slot),
            // Packets from TUN are at most `mtu`; sealed, they fit the transport size.
            tx: Batch::new(mtu + 2 * TRANSPORT_HEADER_LEN + 64),
            out: vec![0; slot],
        }
    }
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
        mtu: usize,
    ) -> Self {
        Self {
            node,
            tun,
            udp,
            signals,
            kme,
            commands,
            published,
            audit,
            notifier,
            buffers: Buffers::new(mtu),
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
            let timeout = PollTimeout::try_from(sleep.min(MAX_SLEEP)).unwrap_or(PollTimeout::MAX);
            // Without a KME the signal fd stands in for its wake-up fd (polled twice, harmless).
            let kme_fd = self
                .kme
                .as_ref()
                .map_or(self.signals.as_fd(), KmeBridge::wake_fd);
            let mut fds = [
                self.tun.as_fd(),
                self.udp.as_fd(),
                self.signals.as_fd(),
                kme_fd,
                self.commands.1.as_fd(),
            ]
            .map(|fd| PollFd::new(fd, PollFlags::POLLIN));
            match poll(&mut fds, timeout) {
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
                self.network(now)?;
            }
            if tun {
                self.tunnel(now)?;
            }
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

    /// Datagrams from UDP, a bounded number of batches per wake-up.
    fn network(&mut self, now: Instant) -> anyhow::Result<()> {
        let b = &mut self.buffers;
        for _ in 0..RECV_BATCHES {
            let n = match self.udp.recv_batch(&mut b.rx) {
                Ok(n) => n,
                Err(e) if e.kind() == ErrorKind::WouldBlock => return Ok(()),
                Err(e) => return Err(e).context("recvmmsg"),
            };
            for i in 0..n {
                let len = b.rx.datagram(i).0.len();
                let (buf, from) = b.rx.slot_mut(i);
                let Some(from) = from else { continue };
                let buf = &mut buf[..len];
                if let Received::Packet { packet, .. } = self.node.handle_datagram(now, from, buf)
                    && let Err(e) = self.tun.send(&buf[packet])
                {
                    warn!(error = %e, "TUN write failed");
                }
            }
            if n < BATCH {
                return Ok(());
            }
        }
        Ok(())
    }

    /// Packets from TUN, sealed into one batch and sent with one `sendmmsg`.
    fn tunnel(&mut self, now: Instant) -> anyhow::Result<()> {
        let b = &mut self.buffers;
        b.tx.clear();
        for _ in 0..BATCH {
            let Some(slot) = b.tx.next_slot() else {
                break;
            };
            let room = slot.len().saturating_sub(2 * TRANSPORT_HEADER_LEN + 16);
            let n = match self.tun.recv(&mut slot[TRANSPORT_HEADER_LEN..][..room]) {
                Ok(n) => n,
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(e) => return Err(e).context("TUN read"),
            };
            if let Ok(t) = self.node.handle_tun_packet(now, slot, n) {
                b.tx.commit(t.len, t.to);
            }
        }
        if !b.tx.is_empty()
            && let Err(e) = self.udp.send_batch(&b.tx)
        {
            warn!(error = %e, "sendmmsg failed");
        }
        Ok(())
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

    /// Publishes the node's status for the control thread.
    fn publish(&mut self, now: Instant) {
        self.published.publish(self.node.snapshot(now));
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
        let out = &mut self.buffers.out;
        for _ in 0..TRANSMITS_PER_FLUSH {
            let Some(t) = self.node.poll_transmit(now, out) else {
                break;
            };
            let _ = self.udp.send_to(&out[..t.len], t.to);
        }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hybrid::constants::MAX_DATAGRAM;
    use crate::proto::constants::{INITIATION_LEN, TRANSPORT_MIN_LEN};

    #[test]
    fn receive_slots_hold_every_datagram_whatever_the_mtu() {
        for mtu in [576, 1000, 1200, 1280, 1420, 9000] {
            let mut b = Buffers::new(mtu);
            let rx = b.rx.slot_mut(BATCH - 1).0.len();
            // A hybrid fragment, a handshake message and a full-size transport message
            // (header, the packet padded to at most the MTU, tag) all arrive untruncated.
            assert!(rx >= MAX_DATAGRAM, "mtu {mtu}: {rx}-byte slot");
            assert!(rx >= INITIATION_LEN, "mtu {mtu}: {rx}-byte slot");
            assert!(rx >= mtu + TRANSPORT_MIN_LEN, "mtu {mtu}: {rx}-byte slot");
            let out = b.out.len();
            assert!(
                out >= MAX_DATAGRAM && out >= mtu + TRANSPORT_MIN_LEN,
                "mtu {mtu}"
            );
        }
    }
}
