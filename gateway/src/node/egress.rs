//! Each peer's egress scheduler (docs/gateway-decisions.md, "Traffic classes"): a packet from the
//! tunnel for a peer with an `egress_rate` is classified (`classes::rules`) and queued in the
//! peer's [`EgressScheduler`] instead of being sealed at once, so the queue forms here, where the
//! inner flows are still visible, and not at the WAN's bottleneck, where every packet is one
//! encrypted UDP flow. [`Node::poll_egress`] releases what each peer's token bucket allows, in the
//! scheduler's order, and frames it with the peer's current session at release: counters are
//! taken in send order, so the receiver's replay window (whitepaper §5.4.6) sees no reordering.
//!
//! Packets for a peer without a usable session are staged as without classes; a queued packet
//! whose session went away before its release is staged then (bounded, counted as `no_session`
//! when displaced). Every datagram of a tunnelled packet carries the outer TOS byte
//! (`classes::ecn`: the class's DSCP with `outer_dscp`, and the inner ECN field, RFC 6040 §4.1).

use std::time::Instant;

use super::peers::PeerSlot;
use super::{Node, PeerId};
use crate::classes::ClassId;
use crate::classes::ecn::{class_dscp, outer_tos};
use crate::classes::rules::ClassRules;
use crate::classes::scheduler::{EgressConfig, EgressScheduler};
use crate::error::DropReason;
use crate::proto::constants::TRANSPORT_HEADER_LEN;
use crate::proto::peer::Transmit;
use crate::proto::session::Sealing;

/// Outer bytes per tunnelled packet besides the padded inner packet: the transport header (16)
/// and tag (16), UDP (8) and IPv4 (20); IPv6 adds 20.
const OVERHEAD_V4: usize = 2 * TRANSPORT_HEADER_LEN + 8 + 20;

/// The scheduler for a peer with egress rate `rate_bps`, tunnel MTU `mtu`, reached over IPv6 or
/// not, flows hashed with `seed`.
pub(super) fn scheduler(
    now: Instant,
    rate_bps: u64,
    mtu: usize,
    ipv6: bool,
    seed: u64,
) -> EgressScheduler {
    let overhead = OVERHEAD_V4 + if ipv6 { 20 } else { 0 };
    let config = EgressConfig {
        rate_bps,
        mtu,
        overhead,
        seed,
    };
    EgressScheduler::new(config, now)
}

/// What became of a packet from the tunnel routed to a peer with classes.
pub(super) enum Admitted {
    /// The peer has no scheduler, or no usable session: frame (or stage) it now.
    Frame,
    /// Handed to the peer's scheduler (which queued it, or refused it and counted that).
    Queued,
}

impl PeerSlot {
    /// Hands `packet` to the peer's scheduler, if it has one and a session to send it with.
    pub(super) fn admit(&mut self, now: Instant, rules: &ClassRules, packet: &[u8]) -> Admitted {
        let Some(egress) = self.egress.as_mut() else {
            return Admitted::Frame;
        };
        if !self.wg.has_usable_session(now) {
            return Admitted::Frame;
        }
        let c = rules.classify(packet);
        // A refusal (empty or oversized) is counted in the class's drops.
        let _ = egress.enqueue(now, c.class, &c.flow, packet);
        Admitted::Queued
    }

    /// The outer TOS byte for the inner packet `packet` (of `class`, when known).
    pub(super) fn outer_tos(
        &self,
        rules: &ClassRules,
        class: Option<ClassId>,
        packet: &[u8],
    ) -> u8 {
        let dscp = match (self.outer_dscp, class) {
            (false, _) => 0,
            (true, Some(class)) => class_dscp(class),
            (true, None) => class_dscp(rules.classify(packet).class),
        };
        outer_tos(dscp, packet)
    }

    /// The next packet the scheduler releases at `now`, framed into `buf` (inner packet at
    /// `buf[16..]`, as `Node::frame_tun_packet`); packets that meet no usable session are staged
    /// on the way, and the reasons of those displaced pushed to `lost`.
    fn release(
        &mut self,
        now: Instant,
        rules: &ClassRules,
        buf: &mut [u8],
        lost: &mut Vec<DropReason>,
    ) -> Option<(Transmit, Sealing)> {
        loop {
            let egress = self.egress.as_mut()?;
            let room = buf.get_mut(TRANSPORT_HEADER_LEN..)?;
            let released = egress.dequeue_into(now, room)?;
            let start = TRANSPORT_HEADER_LEN;
            match self.wg.frame(now, buf, released.len) {
                Ok((mut t, sealing)) => {
                    let inner = &buf[start..start + released.len];
                    t.tos = self.outer_tos(rules, Some(released.class), inner);
                    return Some((t, sealing));
                }
                Err(DropReason::NoSession) => {
                    if self.stage(&buf[start..start + released.len]) {
                        lost.push(DropReason::NoSession);
                    }
                }
                Err(reason) => lost.push(reason),
            }
        }
    }
}

impl Node {
    /// The next tunnelled packet a peer's egress scheduler releases at `now`, framed in place in
    /// `buf` (a transmit slot: 16 bytes of headroom, then room for a packet of the tunnel MTU,
    /// its padding and tag) for [`Sealing::seal`]; peers take turns. `None`: nothing may leave
    /// now ([`Node::poll_timeout`] says when something may).
    pub fn poll_egress(&mut self, now: Instant, buf: &mut [u8]) -> Option<(Transmit, Sealing)> {
        let n = self.shaped.len();
        for _ in 0..n {
            let id = self.shaped[self.egress_cursor % n];
            self.egress_cursor = (self.egress_cursor + 1) % n;
            if let Some(out) = self.release_from(now, id, buf) {
                return Some(out);
            }
        }
        None
    }

    /// [`Node::poll_egress`] for one peer, with its events settled and losses counted.
    fn release_from(
        &mut self,
        now: Instant,
        id: PeerId,
        buf: &mut [u8],
    ) -> Option<(Transmit, Sealing)> {
        let slot = self.peers.get_mut(id)?;
        let due = (slot.egress.as_ref()).and_then(EgressScheduler::next_release);
        if due.is_none_or(|t| t > now) {
            return None;
        }
        let mut lost = Vec::new();
        let out = slot.release(now, &self.classes, buf, &mut lost);
        let events = slot.wg.has_events();
        for reason in lost {
            self.count(reason);
        }
        if events {
            self.settle(now, id);
        }
        out
    }

    /// [`Node::poll_egress`] sealed at once, for `poll_transmit` (the simulation, and what the
    /// daemon's batches left).
    pub(super) fn egress_transmit(
        &mut self,
        now: Instant,
        id: PeerId,
        buf: &mut [u8],
    ) -> Option<Transmit> {
        let (t, sealing) = self.release_from(now, id, buf)?;
        sealing.seal(buf);
        Some(t)
    }

    /// Whether any peer has an egress scheduler; without one [`Node::poll_egress`] releases
    /// nothing and the daemon skips it.
    pub fn shapes_egress(&self) -> bool {
        !self.shaped.is_empty()
    }

    /// When the first egress scheduler may release something.
    pub(super) fn egress_timeout(&self) -> Option<Instant> {
        (self.shaped.iter())
            .filter_map(|id| self.peers.get(*id)?.egress.as_ref()?.next_release())
            .min()
    }
}
