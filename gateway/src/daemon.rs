//! The daemon's event loop: the only place that reads the clock and touches the TUN device, the
//! UDP socket and signals. It moves bytes between them and the sans-IO [`Interface`], in batches:
//! `recvmmsg` for the network side, one `sendmmsg` per batch of packets read from TUN.
//!
//! Network setup uses iproute2 (`ip addr`, `ip link`, `ip route`); everything it adds belongs to the
//! TUN interface, so closing the device on exit removes it all.

use std::io::ErrorKind;
use std::net::{Ipv6Addr, SocketAddr};
use std::os::fd::AsFd;
use std::process::Command;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::signal::{SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use tracing::{info, warn};

use crate::config::Validated;
use crate::control::serve::Control;
use crate::hybrid_host::HybridHost;
use crate::io::tun::Tun;
use crate::io::udp::{BATCH, Batch, Udp};
use crate::ops_host::OpsHost;
use crate::proto::constants::TRANSPORT_HEADER_LEN;
use crate::proto::crypto::OsEntropy;
use crate::proto::interface::{Incoming, Interface};
use crate::proto::peer::Event;
use crate::proto::tai64n::WallClock;

/// Longest sleep between timer checks when nothing is due.
const MAX_SLEEP: Duration = Duration::from_secs(1);

fn ip(args: &[&str]) -> anyhow::Result<()> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .context("running ip(8)")?;
    if !out.status.success() {
        bail!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

fn configure_link(cfg: &Validated) -> anyhow::Result<()> {
    let name = cfg.name.as_str();
    for (addr, len) in &cfg.addresses {
        ip(&["address", "add", &format!("{addr}/{len}"), "dev", name])?;
    }
    ip(&[
        "link",
        "set",
        "dev",
        name,
        "mtu",
        &cfg.mtu.to_string(),
        "up",
    ])?;
    for (_, spec) in &cfg.peers {
        for (addr, len) in &spec.allowed_ips {
            ip(&["route", "replace", &format!("{addr}/{len}"), "dev", name])?;
        }
    }
    Ok(())
}

fn bind(port: u16) -> anyhow::Result<Udp> {
    let any6 = SocketAddr::from((Ipv6Addr::UNSPECIFIED, port));
    Udp::bind(any6)
        .or_else(|_| Udp::bind(SocketAddr::from(([0, 0, 0, 0], port))))
        .with_context(|| format!("binding UDP port {port}"))
}

/// Runs interface `cfg` until SIGINT or SIGTERM.
pub fn run(cfg: Validated) -> anyhow::Result<()> {
    let mut mask = SigSet::empty();
    mask.add(Signal::SIGINT);
    mask.add(Signal::SIGTERM);
    mask.thread_block().context("blocking signals")?;
    let signals = SignalFd::with_flags(&mask, SfdFlags::SFD_NONBLOCK).context("signalfd")?;

    // Control sockets first: a second instance for the same interface stops here, untouched.
    let mut control = Control::bind(
        &cfg.name,
        cfg.uapi,
        cfg.metrics,
        cfg.private_key.duplicate(),
    )
    .with_context(|| format!("control sockets of {}", cfg.name))?;
    // The KME client loads its certificates now, so a bad one stops us before the network.
    let kme = HybridHost::start_kme(&cfg).context("starting the KME client")?;
    // So does an audit log that cannot be opened.
    let mut ops = OpsHost::new(Instant::now(), &cfg)?;
    let tun =
        Tun::open(&cfg.name).with_context(|| format!("creating TUN interface {}", cfg.name))?;
    configure_link(&cfg)?;
    let mut udp = bind(cfg.listen_port)?;
    let base = Instant::now();
    let unix = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let clock = WallClock::new(base, unix);
    let key = cfg.private_key.duplicate();
    let mut ifc = Interface::new(key, clock, OsEntropy, cfg.mtu, cfg.load_threshold);
    let mut ids = Vec::with_capacity(cfg.peers.len());
    for (name, spec) in &cfg.peers {
        let id = ifc
            .add_peer(spec.clone())
            .with_context(|| format!("peer {name}"))?;
        ids.push(id);
        if let (Some(d), Some(p)) = (cfg.danger_rekey_after, ifc.peer_mut(id)) {
            p.set_rekey_after_time(d);
        }
        if let (Some(d), Some(p)) = (cfg.danger_reject_after, ifc.peer_mut(id)) {
            p.set_reject_after_time(d);
        }
        control.names.push(name.clone());
    }
    if let Some(d) = cfg.danger_reject_after {
        warn!(
            seconds = d.as_secs(),
            "danger_reject_after_seconds: off-spec session lifetime (tests only)"
        );
    }
    if let Some(d) = cfg.danger_rekey_after {
        warn!(
            seconds = d.as_secs(),
            "danger_rekey_after_seconds: off-spec rekey interval (tests only)"
        );
    }
    let mut hybrid = HybridHost::new(base, clock, &cfg, &ids, &mut ifc, kme)?;
    let port = udp.local_addr()?.port();
    control.set_runtime(port, clock, cfg.danger_rekey_after);
    info!(interface = %cfg.name, listen = %udp.local_addr()?, peers = control.names.len(), "qgw up");
    ops.ready(&cfg.name);

    let slot = cfg.mtu + 2 * TRANSPORT_HEADER_LEN + 64;
    let mut loop_state = Loop {
        rx: Batch::new(slot),
        tx: Batch::new(slot),
        out: vec![0; slot],
    };
    // The loop runs in a closure so that an I/O error still records `stop` in the audit log.
    let mut run_loop = || -> anyhow::Result<()> {
        loop {
            let now = Instant::now();
            let deadline = [
                ifc.next_deadline(),
                hybrid.next_deadline(),
                ops.next_deadline(),
            ]
            .into_iter()
            .flatten()
            .min();
            let sleep = deadline.map_or(MAX_SLEEP, |d| d.saturating_duration_since(now));
            let timeout = PollTimeout::try_from(sleep.min(MAX_SLEEP)).unwrap_or(PollTimeout::MAX);
            // A fixed array: nothing allocates per wake-up.
            let [status_fd, uapi_fd, metrics_fd] = control.fds();
            // Without a KME the signal fd stands in for the KME wake-up fd (polled twice, harmless).
            let kme_fd = hybrid.wake_fd().unwrap_or(signals.as_fd());
            let mut fds = [
                tun.as_fd(),
                udp.as_fd(),
                signals.as_fd(),
                status_fd,
                uapi_fd,
                kme_fd,
                metrics_fd,
            ]
            .map(|fd| PollFd::new(fd, PollFlags::POLLIN));
            match poll(&mut fds, timeout) {
                Ok(_) => {}
                Err(nix::errno::Errno::EINTR) => continue,
                Err(e) => return Err(e).context("poll"),
            }
            let ready =
                |f: &PollFd<'_>| f.revents().is_some_and(|r| r.intersects(PollFlags::POLLIN));
            let (tun_ready, udp_ready, sig_ready) =
                (ready(&fds[0]), ready(&fds[1]), ready(&fds[2]));
            let ctl_ready = fds[3..5].iter().any(ready) || ready(&fds[6]);
            let kme_ready = ready(&fds[5]);
            if sig_ready {
                info!(interface = %cfg.name, "signal received, shutting down");
                break;
            }
            let now = Instant::now();
            if udp_ready {
                loop_state.network(now, &mut ifc, &mut hybrid, &mut udp, &tun)?;
            }
            if tun_ready {
                loop_state.tunnel(now, &mut ifc, &mut udp, &tun)?;
            }
            if ctl_ready {
                control.serve(now, &mut ifc, &ops.extra(now, &hybrid));
            }
            loop_state.timers(now, &mut ifc, &udp);
            while let Some((id, e)) = ifc.poll_event() {
                hybrid.on_event(now, id, &e);
                let peer = control.names.get(id).map_or("?", String::as_str);
                match e {
                    Event::SessionConfirmed {
                        epoch,
                        psk_id,
                        initiator,
                    } => {
                        info!(peer, epoch, psk_id, initiator, "session confirmed")
                    }
                    Event::HandshakeGaveUp => warn!(peer, "handshake gave up"),
                    Event::KeysZeroed => info!(peer, "keys zeroed"),
                    Event::EpochNeeded => tracing::debug!(peer, "hybrid epoch needed"),
                }
            }
            // A PSK just installed wants its handshake now, not at the next wake-up; otherwise the
            // interface's timers already ran once in this iteration.
            if !hybrid.is_empty() && hybrid.poll(now, kme_ready, &mut ifc, &udp) {
                loop_state.timers(now, &mut ifc, &udp);
            }
            ops.poll(now, &ifc, &mut hybrid, &control.names);
        }
        Ok(())
    };
    let result = run_loop();
    let reason = match &result {
        Ok(()) => "signal".to_owned(),
        Err(e) => format!("error: {e:#}"),
    };
    ops.shutdown(&reason);
    drop(tun);
    info!(interface = %cfg.name, "qgw down");
    result
}

struct Loop {
    rx: Batch,
    tx: Batch,
    out: Vec<u8>,
}

impl Loop {
    /// Datagrams from UDP, a bounded number of batches per wake-up.
    fn network(
        &mut self,
        now: Instant,
        ifc: &mut Interface<OsEntropy>,
        hybrid: &mut HybridHost,
        udp: &mut Udp,
        tun: &Tun,
    ) -> anyhow::Result<()> {
        for _ in 0..16 {
            let n = match udp.recv_batch(&mut self.rx) {
                Ok(n) => n,
                Err(e) if e.kind() == ErrorKind::WouldBlock => return Ok(()),
                Err(e) => return Err(e).context("recvmmsg"),
            };
            for i in 0..n {
                let len = self.rx.datagram(i).0.len();
                let (buf, from) = self.rx.slot_mut(i);
                let Some(from) = from else { continue };
                if hybrid.handle_datagram(now, from, &buf[..len]) {
                    continue;
                }
                match ifc.handle_datagram(now, from, &mut buf[..len], &mut self.out) {
                    Ok(Incoming::Tunnel { range, .. }) => {
                        if let Err(e) = tun.send(&buf[range]) {
                            warn!(error = %e, "TUN write failed");
                        }
                    }
                    Ok(Incoming::Reply(t)) => {
                        let _ = udp.send_to(&self.out[..t.len], t.to);
                    }
                    Ok(Incoming::Done) | Err(_) => {}
                }
            }
            if n < BATCH {
                return Ok(());
            }
        }
        Ok(())
    }

    /// Packets from TUN, sealed into one batch and sent with one `sendmmsg`.
    fn tunnel(
        &mut self,
        now: Instant,
        ifc: &mut Interface<OsEntropy>,
        udp: &mut Udp,
        tun: &Tun,
    ) -> anyhow::Result<()> {
        self.tx.clear();
        for _ in 0..BATCH {
            let Some(slot) = self.tx.next_slot() else {
                break;
            };
            let room = slot.len().saturating_sub(2 * TRANSPORT_HEADER_LEN + 16);
            let n = match tun.recv(&mut slot[TRANSPORT_HEADER_LEN..TRANSPORT_HEADER_LEN + room]) {
                Ok(n) => n,
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(e) => return Err(e).context("TUN read"),
            };
            if let Ok((_, t)) = ifc.handle_tunnel_packet(now, slot, n) {
                self.tx.commit(t.len, t.to);
            }
        }
        if !self.tx.is_empty()
            && let Err(e) = udp.send_batch(&self.tx)
        {
            warn!(error = %e, "sendmmsg failed");
        }
        Ok(())
    }

    /// Handshakes, keepalives and staged packets that are due.
    fn timers(&mut self, now: Instant, ifc: &mut Interface<OsEntropy>, udp: &Udp) {
        for _ in 0..256 {
            let Some((_, t)) = ifc.poll_transmit(now, &mut self.out) else {
                return;
            };
            let _ = udp.send_to(&self.out[..t.len], t.to);
        }
    }
}
