//! The egress scheduler inside the node, end to end between two nodes in simulated time: what
//! a peer with an `egress_rate` sends, in which order, how fast, with which outer TOS, and that
//! the receiver takes every packet (counters in send order, the replay window exact).

use std::time::{Duration, Instant};

use super::testing::{Site, connected, connected_with};
use super::{Node, Received};
use crate::classes::ClassId;
use crate::classes::PeerEgress;
use crate::classes::ecn::{Ecn, class_dscp};

const A: Site = Site(1);
const B: Site = Site(2);

/// An IPv4 TCP segment from site A to site B with `len` bytes in all, to port `port`, its
/// payload's first byte `tag`, with ECN field `ecn`.
fn tcp(port: u16, len: usize, tag: u8, ecn: u8) -> Vec<u8> {
    let mut p = vec![0u8; len];
    p[0] = 0x45;
    p[1] = ecn & 3;
    p[2..4].copy_from_slice(&(len as u16).to_be_bytes());
    p[8] = 64;
    p[9] = 6;
    p[12..16].copy_from_slice(&A.ip(1));
    p[16..20].copy_from_slice(&B.ip(1));
    p[20..22].copy_from_slice(&40000u16.to_be_bytes());
    p[22..24].copy_from_slice(&port.to_be_bytes());
    p[32] = 0x50;
    p[40] = tag;
    p
}

/// Hands `packet` to `node` as if read from TUN; the datagram if it left at once.
fn tunnel(node: &mut Node, now: Instant, packet: &[u8]) -> Option<Vec<u8>> {
    let mut buf = vec![0u8; 2048];
    buf[16..16 + packet.len()].copy_from_slice(packet);
    let t = node.handle_tun_packet(now, &mut buf, packet.len()).ok()??;
    Some(buf[..t.len].to_vec())
}

/// Everything `from` sends at `now`, opened by `to`: each datagram's outer TOS and the tag of
/// the inner packet it carried.
fn deliver(now: Instant, from: &mut Node, to: &mut Node) -> Vec<(u8, u8)> {
    let mut out = Vec::new();
    let mut buf = vec![0u8; 2048];
    while let Some(t) = from.poll_transmit(now, &mut buf) {
        if let Received::Packet { packet, .. } =
            to.handle_datagram(now, A.addr(), &mut buf[..t.len])
        {
            out.push((t.tos, buf[packet][40]));
        }
    }
    out
}

/// Runs `node`'s timers due at `now`; the next moment it has work (at least 100 µs on).
fn next(node: &mut Node, now: Instant) -> Instant {
    node.handle_timeout(now);
    let step = now + Duration::from_micros(100);
    node.poll_timeout().filter(|t| *t > now).unwrap_or(step)
}

fn shaped(rate_bps: u64, outer_dscp: bool) -> PeerEgress {
    PeerEgress {
        rate_bps: Some(rate_bps),
        outer_dscp,
    }
}

#[test]
fn a_peer_without_egress_rate_seals_at_once() {
    let now = Instant::now();
    let (mut a, _) = connected(now, A, B);
    assert!(!a.shapes_egress(), "no scheduler to drain");
    assert!(tunnel(&mut a, now, &tcp(11112, 1400, 1, 0)).is_some());
    let (shaping, _) = connected_with(now, A, B, shaped(10_000_000, false));
    assert!(shaping.shapes_egress());
}

#[test]
fn vital_signs_leave_before_queued_imaging_and_every_packet_arrives_in_order() {
    let start = Instant::now();
    let (mut a, mut b) = connected_with(start, A, B, shaped(10_000_000, false));
    for tag in 0..40 {
        assert_eq!(
            tunnel(&mut a, start, &tcp(11112, 1400, tag, 0)),
            None,
            "queued"
        );
    }
    assert_eq!(
        tunnel(&mut a, start, &tcp(1883, 120, 200, 0)),
        None,
        "queued"
    );
    let mut now = start;
    let mut tags = Vec::new();
    for _ in 0..1000 {
        tags.extend(deliver(now, &mut a, &mut b).into_iter().map(|(_, tag)| tag));
        if tags.len() == 41 {
            break;
        }
        now = next(&mut a, now);
    }
    assert_eq!(tags.first(), Some(&200), "telemonitoring first: {tags:?}");
    let imaging: Vec<u8> = tags[1..].to_vec();
    assert_eq!(
        imaging,
        (0..40).collect::<Vec<_>>(),
        "one flow keeps its order"
    );
    let drops = b.drops().iter().sum::<u64>();
    assert_eq!(
        drops, 0,
        "the receiver took every packet (replay window, counters)"
    );
}

#[test]
fn a_shaped_peer_never_sends_faster_than_its_rate_beyond_one_burst() {
    let start = Instant::now();
    let rate = 8_000_000; // 1 MB/s
    let (mut a, mut b) = connected_with(start, A, B, shaped(rate, false));
    for tag in 0..200u8 {
        let _ = tunnel(&mut a, start, &tcp(11112, 1400, tag, 0));
    }
    let mut now = start;
    let mut sent = 0usize;
    let burst = 2 * (1420 + 60) + 2_000;
    for _ in 0..1000 {
        let mut buf = vec![0u8; 2048];
        while let Some(t) = a.poll_transmit(now, &mut buf) {
            sent += t.len + 28;
            let _ = b.handle_datagram(now, A.addr(), &mut buf[..t.len]);
        }
        let elapsed = now - start;
        let allowed = (rate as f64 / 8.0 * elapsed.as_secs_f64()) as usize + burst;
        assert!(
            sent <= allowed,
            "{sent} bytes by {elapsed:?}, allowed {allowed}"
        );
        now = next(&mut a, now);
        if now - start > Duration::from_millis(400) {
            break;
        }
    }
    assert!(
        sent > 200_000,
        "the queue drains at the rate: {sent} bytes in 0.4 s"
    );
}

#[test]
fn the_outer_header_carries_the_inner_ecn_and_with_outer_dscp_the_class() {
    let now = Instant::now();
    let (mut plain, mut b) = connected(now, A, B);
    let ect0 = Ecn::Ect0 as u8;
    let d = tunnel(&mut plain, now, &tcp(1883, 200, 1, ect0));
    assert!(d.is_some());
    let mut buf = vec![0u8; 2048];
    buf[16..216].copy_from_slice(&tcp(1883, 200, 1, ect0));
    let t = plain.handle_tun_packet(now, &mut buf, 200);
    let t = t.ok().flatten().expect("sealed at once");
    assert_eq!(t.tos, ect0, "ECN copied, no DSCP without outer_dscp");
    let _ = b.handle_datagram(now, A.addr(), &mut buf[..t.len]);

    let (mut marked, mut b) = connected_with(now, A, B, shaped(10_000_000, true));
    let _ = tunnel(&mut marked, now, &tcp(1883, 200, 7, ect0));
    let _ = tunnel(&mut marked, now, &tcp(11112, 1400, 8, 0));
    let got = deliver(now, &mut marked, &mut b);
    let dscp = |c| class_dscp(c) << 2;
    assert_eq!(
        got,
        [
            (dscp(ClassId::Telemonitoring) | ect0, 7),
            (dscp(ClassId::Imaging), 8)
        ]
    );
}

#[test]
fn congestion_marked_outside_reaches_an_ecn_packet_and_drops_one_that_cannot_be_told() {
    let now = Instant::now();
    let (_, mut b) = connected(now, A, B);
    let ce = Ecn::Ce as u8;
    let mut capable = tcp(1883, 200, 1, Ecn::Ect0 as u8);
    assert!(b.decapsulate_ecn(ce, &mut capable));
    assert_eq!(crate::classes::ecn::ecn_of(&capable), Some(Ecn::Ce));
    let mut not_ect = tcp(1883, 200, 1, 0);
    assert!(!b.decapsulate_ecn(ce, &mut not_ect));
    let dropped = b.drops()[crate::error::DropReason::EcnNotEct.index()];
    assert_eq!(dropped, 1, "counted as ecn_not_ect");
}
