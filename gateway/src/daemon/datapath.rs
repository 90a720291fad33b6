//! The data path of the packet thread: tunnel packets in, sealed datagrams out, and back. With
//! offloads (docs/gateway-decisions.md, "Fast path"), one TUN read is a super-packet of up to
//! 64 KiB that [`Segments`] cuts into tunnel-MTU packets, each sealed in place into a slot of the
//! transmit batch, and the batch leaves in `UDP_SEGMENT` sends; one UDP receive is a run of
//! datagrams from one peer, each opened in place, and the TCP packets among them go back to the
//! kernel coalesced by the [`Coalescer`]. Without offloads the same code moves one packet per TUN
//! read or write and a batch per `recvmmsg`/`sendmmsg`.
//!
//! The cipher work of a batch is left to [`Workers`], which may share it with other cores: a
//! transmit batch is framed in order by the node, sealed as a whole just before it is sent, and
//! a receive batch is opened as a whole before the node settles it in arrival order
//! (`receive.rs`).
//!
//! Nothing here allocates per packet: every buffer is in [`Buffers`], made once.

use std::collections::BTreeMap;
use std::io::ErrorKind;
use std::time::Instant;

use anyhow::Context;
use tracing::warn;

use super::workers::{ToOpen, Workers};
use crate::io::offload::{Coalescer, Segments, VNET_HDR_LEN, VnetHdr};
use crate::io::tun::Tun;
use crate::io::udp::{BATCH, Batch, Udp};
use crate::node::Node;
use crate::proto::constants::TRANSPORT_HEADER_LEN;
use crate::proto::session::Sealing;

/// Batches of datagrams read per wake-up, so the tunnel side is not starved.
pub(super) const RECV_BATCHES: usize = 16;
/// Datagrams opened per wake-up at most (a coalesced receive holds up to ~45).
pub(super) const RECV_DATAGRAMS: usize = 2048;
/// Received messages opened together at most (the rest of a receive batch waits for the next
/// round).
const OPENINGS: usize = 1024;
/// TUN reads per wake-up (each up to 64 KiB with offloads).
const TUN_READS: usize = 32;
/// Slots in the transmit batch: a whole 64 KiB super-packet of 1420-byte segments and more.
const TX_SLOTS: usize = 128;
/// Coalesced TCP packets held before they are written to TUN.
const GRO_ENTRIES: usize = 32;
/// The largest TUN read: a virtio-net header and a 64 KiB packet.
const TUN_READ_MAX: usize = VNET_HDR_LEN + 65_535;

/// The size of a receive slot (and of the buffer `poll_transmit` writes into) for tunnel MTU
/// `mtu`: the largest datagram that may arrive, so `recvmmsg` never truncates one. That is the
/// larger of a full-size transport message (`mtu` + header + tag, with some room) and a hybrid
/// fragment (1232 bytes, docs/protocol.md §4), whatever the MTU; handshake messages are smaller
/// than both.
pub fn datagram_slot(mtu: usize) -> usize {
    sealing_slot(mtu).max(crate::hybrid::constants::MAX_DATAGRAM)
}

/// A transmit slot for tunnel MTU `mtu`: a packet of at most `mtu` sealed in place (header,
/// padding and tag), with some room.
fn sealing_slot(mtu: usize) -> usize {
    mtu + 2 * TRANSPORT_HEADER_LEN + 64
}

/// The part of transmit slot `slot` a packet from TUN is written into: after the 16-byte header
/// room, leaving room for padding and the tag (`Node::handle_tun_packet`).
fn packet_room(slot: &mut [u8]) -> &mut [u8] {
    let room = slot.len().saturating_sub(2 * TRANSPORT_HEADER_LEN + 16);
    &mut slot[TRANSPORT_HEADER_LEN..][..room]
}

/// The tunnel device, the UDP socket and the buffers between them, allocated once.
#[derive(Debug)]
pub struct DataPath {
    /// The tunnel device.
    pub tun: Tun,
    /// The UDP socket.
    pub udp: Udp,
    pub(super) b: Buffers,
}

#[derive(Debug)]
pub(super) struct Buffers {
    pub(super) rx: Batch,
    /// Received messages waiting to be opened, in arrival order.
    pub(super) openings: Vec<ToOpen>,
    tx: Batch,
    /// The messages framed into `tx`, slot by slot, waiting to be sealed.
    sealings: Vec<Sealing>,
    /// Who seals and opens.
    pub(super) workers: Workers,
    /// Where `Node::poll_transmit` writes (handshakes, hybrid fragments, staged packets).
    out: Vec<u8>,
    /// One TUN read (only with a virtio-net header; without, packets are read into `tx`).
    tun_in: Vec<u8>,
    /// TCP segments on their way to TUN (only with a virtio-net header).
    pub(super) gro: Option<Coalescer>,
    /// What the offloads did.
    pub(super) counts: OffloadCounts,
}

/// What the offloads did, for `qgw status`.
#[derive(Debug, Default)]
pub struct OffloadCounts {
    /// TUN super-packets refused, by reason.
    pub tun_refused: BTreeMap<&'static str, u64>,
    /// TUN super-packets cut into segments.
    pub tun_segmented: u64,
    /// Coalesced super-packets written to TUN.
    pub tun_coalesced: u64,
    /// UDP receives holding several datagrams.
    pub udp_coalesced: u64,
}

impl DataPath {
    /// The data path between `tun` and `udp` for tunnel MTU `mtu`, with buffers for the devices'
    /// offloads, and `workers` for the cipher work.
    pub fn new(mtu: usize, tun: Tun, udp: Udp, workers: Workers) -> Self {
        let slot = datagram_slot(mtu);
        let vnet = tun.offloads().vnet_hdr;
        let b = Buffers {
            rx: Batch::new(udp.receive_slot(slot), BATCH),
            openings: Vec::with_capacity(OPENINGS),
            tx: Batch::new(sealing_slot(mtu), TX_SLOTS),
            sealings: Vec::with_capacity(TX_SLOTS),
            workers,
            out: vec![0; slot],
            tun_in: if vnet {
                vec![0; TUN_READ_MAX]
            } else {
                Vec::new()
            },
            // UDP datagrams are merged only where the kernel takes USO super-packets (Linux ≥ 6.2).
            gro: vnet.then(|| Coalescer::with_udp(GRO_ENTRIES, tun.offloads().uso)),
            counts: OffloadCounts::default(),
        };
        Self { tun, udp, b }
    }

    /// What the offloads did.
    pub fn counts(&self) -> &OffloadCounts {
        &self.b.counts
    }

    /// Who seals and opens.
    pub fn workers(&self) -> &Workers {
        &self.b.workers
    }

    /// Sends what `node` has to send outside the data path (handshakes, hybrid fragments, staged
    /// packets), at most `max` datagrams.
    pub fn transmit(&mut self, node: &mut Node, now: Instant, max: usize) {
        let out = &mut self.b.out;
        for _ in 0..max {
            let Some(t) = node.poll_transmit(now, out) else {
                break;
            };
            let _ = self.udp.send_to(&out[..t.len], t.to);
        }
    }

    /// Packets from TUN, sealed into the transmit batch and sent (those for peers with an egress
    /// scheduler are queued there instead: see [`DataPath::egress`]).
    pub fn tunnel(&mut self, node: &mut Node, now: Instant) -> anyhow::Result<()> {
        let Self { tun, udp, b } = self;
        b.tx.clear();
        b.sealings.clear();
        if b.gro.is_some() {
            tunnel_offloaded(node, tun, udp, b, now)?;
        } else {
            tunnel_plain(node, tun, b, now)?;
        }
        send(udp, &mut b.tx, &mut b.sealings, &mut b.workers);
        Ok(())
    }

    /// What the peers' egress schedulers release at `now`, framed into transmit batches, sealed
    /// and sent like packets from TUN (nothing at all when no peer has a scheduler).
    pub fn egress(&mut self, node: &mut Node, now: Instant) {
        if !node.shapes_egress() {
            return;
        }
        let Self { udp, b, .. } = self;
        b.tx.clear();
        b.sealings.clear();
        loop {
            let Some(slot) = b.tx.next_slot() else {
                send(udp, &mut b.tx, &mut b.sealings, &mut b.workers);
                continue;
            };
            let Some((t, sealing)) = node.poll_egress(now, slot) else {
                break;
            };
            b.tx.commit_with_tos(t.len, t.to, t.tos);
            b.sealings.push(sealing);
        }
        send(udp, &mut b.tx, &mut b.sealings, &mut b.workers);
    }
}

/// One packet per TUN read, sealed into the transmit batch, up to a batch.
fn tunnel_plain(node: &mut Node, tun: &Tun, b: &mut Buffers, now: Instant) -> anyhow::Result<()> {
    for _ in 0..BATCH {
        let Some(slot) = b.tx.next_slot() else { break };
        let n = match tun.recv(packet_room(slot)) {
            Ok(n) => n,
            Err(e) if e.kind() == ErrorKind::WouldBlock => break,
            Err(e) => return Err(e).context("TUN read"),
        };
        if let Ok(Some((t, sealing))) = node.frame_tun_packet(now, slot, n) {
            b.tx.commit_with_tos(t.len, t.to, t.tos);
            b.sealings.push(sealing);
        }
    }
    Ok(())
}

/// Super-packets from a TUN device with a virtio-net header, cut into segments that are sealed
/// straight into the transmit batch (sent whenever it fills).
fn tunnel_offloaded(
    node: &mut Node,
    tun: &Tun,
    udp: &mut Udp,
    b: &mut Buffers,
    now: Instant,
) -> anyhow::Result<()> {
    let Buffers {
        tx,
        tun_in,
        counts,
        sealings,
        workers,
        ..
    } = b;
    for _ in 0..TUN_READS {
        let n = match tun.recv(tun_in) {
            Ok(n) => n,
            Err(e) if e.kind() == ErrorKind::WouldBlock => break,
            Err(e) => return Err(e).context("TUN read"),
        };
        let read = &tun_in[..n];
        let segments =
            VnetHdr::parse(read).and_then(|hdr| Segments::new(&hdr, &read[VNET_HDR_LEN..]));
        let mut segments = match segments {
            Ok(s) => s,
            Err(e) => {
                *counts.tun_refused.entry(e.reason()).or_default() += 1;
                continue;
            }
        };
        if segments.count() > 1 {
            counts.tun_segmented += 1;
        }
        loop {
            let Some(slot) = tx.next_slot() else {
                send(udp, tx, sealings, workers);
                continue;
            };
            let Some(len) = segments.next_into(packet_room(slot)) else {
                // A segment larger than the tunnel MTU (the MTU raised under a running daemon):
                // the rest of this super-packet is dropped, counted.
                if segments.remaining() > 0 {
                    *counts.tun_refused.entry("segment_too_large").or_default() += 1;
                }
                break;
            };
            if let Ok(Some((t, sealing))) = node.frame_tun_packet(now, slot, len) {
                tx.commit_with_tos(t.len, t.to, t.tos);
                sealings.push(sealing);
            }
        }
    }
    Ok(())
}

/// Seals the transmit batch (`sealings[i]` framed into slot `i`), sends it and empties it.
fn send(udp: &mut Udp, tx: &mut Batch, sealings: &mut Vec<Sealing>, workers: &mut Workers) {
    let (slots, slot) = tx.bytes_mut();
    workers.seal(slots, slot, sealings);
    sealings.clear();
    if !tx.is_empty()
        && let Err(e) = udp.send_batch(tx)
    {
        warn!(error = %e, "UDP send failed");
    }
    tx.clear();
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hybrid::constants::MAX_DATAGRAM;
    use crate::proto::constants::{INITIATION_LEN, TRANSPORT_MIN_LEN};

    #[test]
    fn receive_slots_hold_every_datagram_whatever_the_mtu() {
        for mtu in [576, 1000, 1200, 1280, 1420, 9000] {
            let slot = datagram_slot(mtu);
            // A hybrid fragment, a handshake message and a full-size transport message
            // (header, the packet padded to at most the MTU, tag) all arrive untruncated.
            assert!(slot >= MAX_DATAGRAM, "mtu {mtu}: {slot}-byte slot");
            assert!(slot >= INITIATION_LEN, "mtu {mtu}: {slot}-byte slot");
            assert!(
                slot >= mtu + TRANSPORT_MIN_LEN,
                "mtu {mtu}: {slot}-byte slot"
            );
        }
    }
}
