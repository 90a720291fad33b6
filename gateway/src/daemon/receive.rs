//! The receiving half of the data path: datagrams from UDP, a bounded number per wake-up, opened
//! and written to TUN (through the [`Coalescer`] with a virtio-net header).
//!
//! Transport messages of a receive batch are begun in arrival order (session found, counter
//! checked), opened together by [`Workers::open`], then finished in arrival order (counter
//! recorded, source checked) and delivered. Any other datagram (a handshake, a cookie, a hybrid
//! fragment) first finishes what is pending, so the node sees every datagram in the order it came.

use std::io::ErrorKind;
use std::net::SocketAddr;
use std::time::Instant;

use anyhow::Context;
use tracing::warn;

use super::datapath::{Buffers, DataPath, OffloadCounts, RECV_BATCHES, RECV_DATAGRAMS};
use super::workers::ToOpen;
use crate::io::offload::{Coalescer, Push};
use crate::io::tun::Tun;
use crate::io::udp::BATCH;
use crate::node::{Node, Received};

impl DataPath {
    /// Datagrams from UDP, a bounded number per wake-up, opened and written to TUN.
    pub fn network(&mut self, node: &mut Node, now: Instant) -> anyhow::Result<()> {
        let Self { tun, udp, b } = self;
        let mut taken = 0;
        for _ in 0..RECV_BATCHES {
            let n = match udp.recv_batch(&mut b.rx) {
                Ok(n) => n,
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(e) => return Err(e).context("recvmmsg"),
            };
            let (_, slot_len) = b.rx.bytes_mut();
            for i in 0..n {
                let (len, segment) = b.rx.segmented(i);
                if segment < len {
                    b.counts.udp_coalesced += 1;
                }
                let Some(from) = b.rx.slot_mut(i).1 else {
                    continue;
                };
                let outer_tos = b.rx.tos(i);
                let mut start = 0;
                while start < len {
                    let end = len.min(start + segment);
                    let at = i * slot_len + start..i * slot_len + end;
                    take(node, tun, b, now, (from, outer_tos), at);
                    start = end;
                    taken += 1;
                }
            }
            finish(node, tun, b, now);
            if let Some(gro) = &mut b.gro {
                drain(tun, gro, &mut b.counts);
            }
            if n < BATCH || taken >= RECV_DATAGRAMS {
                break;
            }
        }
        Ok(())
    }
}

/// One datagram of the receive buffer, at `at`: a transport message waits with the others to be
/// opened; anything else is handled at once, after what waits.
fn take(
    node: &mut Node,
    tun: &Tun,
    b: &mut Buffers,
    now: Instant,
    (from, outer_tos): (SocketAddr, u8),
    at: std::ops::Range<usize>,
) {
    let (bytes, _) = b.rx.bytes_mut();
    match node.begin_transport(now, from, &bytes[at.clone()]) {
        Some(Ok(pending)) => {
            if b.openings.len() == b.openings.capacity() {
                finish(node, tun, b, now);
            }
            let mut o = ToOpen::new(pending, at);
            o.outer_tos = outer_tos;
            b.openings.push(o);
        }
        Some(Err(_)) => {} // refused and counted
        None => {
            finish(node, tun, b, now);
            let (bytes, _) = b.rx.bytes_mut();
            let datagram = &mut bytes[at];
            if let Received::Packet { packet, .. } = node.handle_datagram(now, from, datagram) {
                let packet = &mut datagram[packet];
                if node.decapsulate_ecn(outer_tos, packet) {
                    deliver(tun, &mut b.gro, &mut b.counts, packet);
                }
            }
        }
    }
}

/// Opens what waits, then settles each message with the node in arrival order and delivers its
/// packet.
fn finish(node: &mut Node, tun: &Tun, b: &mut Buffers, now: Instant) {
    if b.openings.is_empty() {
        return;
    }
    let (bytes, _) = b.rx.bytes_mut();
    b.workers.open(bytes, &mut b.openings);
    for o in b.openings.drain(..) {
        let datagram = &mut bytes[o.at];
        if let Received::Packet { packet, .. } =
            node.finish_transport(now, o.pending, o.opened, datagram)
        {
            let packet = &mut datagram[packet];
            if node.decapsulate_ecn(o.outer_tos, packet) {
                deliver(tun, &mut b.gro, &mut b.counts, packet);
            }
        }
    }
}

/// Writes one opened packet to TUN, through the coalescer when there is one.
fn deliver(tun: &Tun, gro: &mut Option<Coalescer>, counts: &mut OffloadCounts, packet: &[u8]) {
    let Some(gro) = gro else {
        if let Err(e) = tun.send(packet) {
            warn!(error = %e, "TUN write failed");
        }
        return;
    };
    if gro.push(packet) == Push::Full {
        drain(tun, gro, counts);
        let _ = gro.push(packet);
    }
}

fn drain(tun: &Tun, gro: &mut Coalescer, counts: &mut OffloadCounts) {
    let drained = gro.drain(|buf| match tun.send(buf) {
        Ok(_) => Ok(()),
        Err(e) => {
            warn!(error = %e, "TUN write failed");
            Err(e)
        }
    });
    counts.tun_coalesced += drained.merged as u64;
}
