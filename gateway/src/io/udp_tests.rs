//! Loopback tests of the UDP edge: batches go out and come back whole, with and without GSO and
//! GRO, a coalesced receive splits back into the datagrams that were sent, and every datagram
//! arrives with the TOS byte it was sent with (IPv4, IPv6, dual-stack).
#![allow(clippy::unwrap_used)]

use super::*;

fn pair(send_offload: bool, recv_offload: bool) -> (Udp, Udp) {
    let a = Udp::bind("127.0.0.1:0".parse().unwrap(), send_offload).unwrap();
    let b = Udp::bind("127.0.0.1:0".parse().unwrap(), recv_offload).unwrap();
    (a, b)
}

/// Sends `datagrams` from `a` to `b` in one batch and returns what `b` received, split at the
/// segment boundaries, with the number of receive buffers they arrived in.
fn round_trip(a: &mut Udp, b: &mut Udp, datagrams: &[Vec<u8>]) -> (Vec<Vec<u8>>, usize) {
    let to = b.local_addr().unwrap();
    let sent: Vec<(Vec<u8>, u8)> = datagrams.iter().map(|d| (d.clone(), 0)).collect();
    let (got, buffers) = round_trip_to(a, b, to, &sent, false);
    (got.into_iter().map(|(d, _)| d).collect(), buffers)
}

/// Sends `datagrams`, each with its TOS, from `a` to `b` at `to` in one batch (committed with
/// `commit` where the TOS is 0 and `plain`) and returns what `b` received, split at the segment
/// boundaries, each with the TOS its buffer reported, and the number of receive buffers.
fn round_trip_to(
    a: &mut Udp,
    b: &mut Udp,
    to: SocketAddr,
    datagrams: &[(Vec<u8>, u8)],
    plain: bool,
) -> (Vec<(Vec<u8>, u8)>, usize) {
    let mut tx = Batch::new(2048, 64);
    for (d, tos) in datagrams {
        tx.next_slot().unwrap()[..d.len()].copy_from_slice(d);
        match (plain, tos) {
            (true, 0) => tx.commit(d.len(), to),
            _ => tx.commit_with_tos(d.len(), to, *tos),
        }
    }
    assert_eq!(a.send_batch(&tx).unwrap(), datagrams.len());
    let mut rx = Batch::new(b.receive_slot(2048), BATCH);
    let (mut got, mut buffers) = (Vec::new(), 0);
    let from_port = a.local_addr().unwrap().port();
    for _ in 0..10_000 {
        match b.recv_batch(&mut rx) {
            Ok(n) => {
                for i in 0..n {
                    buffers += 1;
                    let (len, seg) = rx.segmented(i);
                    let whole = rx.datagram(i).0;
                    assert_eq!(rx.datagram(i).1.map(|f| f.port()), Some(from_port));
                    got.extend(
                        (0..len)
                            .step_by(seg)
                            .map(|s| (whole[s..len.min(s + seg)].to_vec(), rx.tos(i))),
                    );
                }
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => std::thread::yield_now(),
            Err(e) => panic!("{e}"),
        }
        if got.len() >= datagrams.len() {
            break;
        }
    }
    (got, buffers)
}

/// `got == sent`, reported as lengths and first bytes (the datagrams are large).
#[track_caller]
fn assert_same(got: &[Vec<u8>], sent: &[Vec<u8>]) {
    let brief = |d: &[Vec<u8>]| -> Vec<(usize, u8)> {
        d.iter()
            .map(|x| (x.len(), x.first().copied().unwrap_or(0)))
            .collect()
    };
    assert!(got == sent, "got {:?}\nsent {:?}", brief(got), brief(sent));
}

fn datagrams(lens: &[usize]) -> Vec<Vec<u8>> {
    (lens.iter().enumerate())
        .map(|(i, &len)| vec![i as u8; len])
        .collect()
}

#[test]
fn a_batch_arrives_whole_without_offloads() {
    let (mut a, mut b) = pair(false, false);
    assert_eq!(a.offloads(), UdpOffloads::default());
    let sent = datagrams(&[3, 3, 3, 1, 7]);
    let (got, buffers) = round_trip(&mut a, &mut b, &sent);
    assert_eq!((got, buffers), (sent, 5));
}

#[test]
fn a_gso_run_arrives_as_its_datagrams_at_a_socket_without_gro() {
    let (mut a, mut b) = pair(true, false);
    assert!(a.offloads().gso, "this kernel (≥ 4.18) has UDP GSO");
    let sent = datagrams(&[1200, 1200, 1200, 1200, 500, 300, 300]);
    let (got, buffers) = round_trip(&mut a, &mut b, &sent);
    assert_same(&got, &sent);
    assert_eq!(buffers, 7);
}

#[test]
fn a_gso_run_arrives_coalesced_at_a_gro_socket_and_splits_back() {
    let (mut a, mut b) = pair(true, true);
    assert!(b.offloads().gro, "this kernel (≥ 5.0) has UDP GRO");
    let lens: Vec<usize> = [1452; 40].into_iter().chain([700]).collect();
    let sent = datagrams(&lens);
    let (got, buffers) = round_trip(&mut a, &mut b, &sent);
    assert_eq!(got, sent);
    assert!(
        buffers < sent.len(),
        "{buffers} buffers for {} datagrams",
        sent.len()
    );
}

#[test]
fn more_datagrams_than_one_system_call_carries_all_go() {
    for offload in [false, true] {
        let (mut a, mut b) = pair(offload, offload);
        let sent = datagrams(&[100; 64]);
        let (got, _) = round_trip(&mut a, &mut b, &sent);
        assert_same(&got, &sent);
    }
}

#[test]
fn a_coalesced_receive_splits_after_receives_that_were_not_coalesced() {
    // The kernel clears a message's control length when it has no control message to give; the
    // next receive into that slot must still get the `UDP_GRO` segment size.
    let (mut a, mut b) = pair(true, true);
    let single = datagrams(&[200]);
    assert_same(&round_trip(&mut a, &mut b, &single).0, &single);
    let lens: Vec<usize> = [1252; 20].into_iter().chain([100]).collect();
    let sent = datagrams(&lens);
    let (got, buffers) = round_trip(&mut a, &mut b, &sent);
    assert_same(&got, &sent);
    assert!(
        buffers < sent.len(),
        "{buffers} buffers for {} datagrams",
        sent.len()
    );
}

/// Each datagram with a TOS: a GSO run per TOS value, each ECN codepoint, and lone datagrams
/// whose TOS differs from their neighbours'.
fn with_tos() -> Vec<(Vec<u8>, u8)> {
    let tos = [
        0, 0, 0, 0xb8, 0xb8, 0xb8, 0xba, 0x8b, 0x89, 0x02, 0x02, 0x03, 0,
    ];
    let lens = [
        1200, 1200, 1200, 1200, 1200, 700, 900, 900, 900, 500, 500, 500, 100,
    ];
    (datagrams(&lens).into_iter()).zip(tos).collect()
}

/// `a` sends [`with_tos`] to `b` at `to` with every offload combination; each arrives whole
/// with its TOS, in order.
#[track_caller]
fn each_arrives_with_its_tos(bind_a: &str, bind_b: &str, to_ip: &str) {
    for (gso, gro) in [(false, false), (true, false), (false, true), (true, true)] {
        let mut a = Udp::bind(bind_a.parse().unwrap(), gso).unwrap();
        let mut b = Udp::bind(bind_b.parse().unwrap(), gro).unwrap();
        let port = b.local_addr().unwrap().port();
        let to = SocketAddr::new(to_ip.parse().unwrap(), port);
        let sent = with_tos();
        for plain in [false, true] {
            let (got, _) = round_trip_to(&mut a, &mut b, to, &sent, plain);
            let brief = |d: &[(Vec<u8>, u8)]| -> Vec<(usize, u8)> {
                d.iter().map(|(x, t)| (x.len(), *t)).collect()
            };
            assert!(
                got == sent,
                "gso {gso} gro {gro} plain {plain} to {to}: got {:?}\nsent {:?}",
                brief(&got),
                brief(&sent)
            );
        }
    }
}

#[test]
fn ipv4_datagrams_arrive_with_the_tos_they_were_sent_with() {
    each_arrives_with_its_tos("127.0.0.1:0", "127.0.0.1:0", "127.0.0.1");
}

#[test]
fn ipv6_datagrams_arrive_with_the_traffic_class_they_were_sent_with() {
    if UdpSocket::bind("[::1]:0").is_err() {
        eprintln!("no ::1 on this machine: IPv6 not tested");
        return;
    }
    each_arrives_with_its_tos("[::1]:0", "[::1]:0", "::1");
}

#[test]
fn dual_stack_sockets_carry_the_tos_of_ipv4_datagrams() {
    if UdpSocket::bind("[::]:0").is_err() {
        eprintln!("no IPv6 sockets on this machine: dual-stack not tested");
        return;
    }
    // A dual-stack sender reaches IPv4 through the IPv4 path (IP_TOS, not IPV6_TCLASS), and a
    // dual-stack receiver hears IPv4 datagrams' TOS through IP_RECVTOS.
    each_arrives_with_its_tos("[::]:0", "[::]:0", "127.0.0.1");
    each_arrives_with_its_tos("[::]:0", "[::]:0", "::ffff:127.0.0.1");
    each_arrives_with_its_tos("127.0.0.1:0", "[::]:0", "127.0.0.1");
}

#[test]
fn a_gro_run_keeps_one_tos_and_a_tos_change_starts_another() {
    let (mut a, mut b) = pair(true, true);
    let to = b.local_addr().unwrap();
    let sent: Vec<(Vec<u8>, u8)> = (datagrams(&[1000; 30]).into_iter())
        .enumerate()
        .map(|(i, d)| (d, if i < 15 { 0xb8 } else { 0xba }))
        .collect();
    let (got, buffers) = round_trip_to(&mut a, &mut b, to, &sent, false);
    assert!(got == sent, "each datagram with its TOS");
    assert!(
        (2..sent.len()).contains(&buffers),
        "{buffers} buffers: coalesced, in at least two runs"
    );
}

#[test]
fn a_dual_stack_receiver_hears_the_tos_of_both_families_in_turn() {
    let Ok(mut a6) = Udp::bind("[::1]:0".parse().unwrap(), false) else {
        eprintln!("no ::1 on this machine: dual-stack not tested");
        return;
    };
    let mut a4 = Udp::bind("127.0.0.1:0".parse().unwrap(), false).unwrap();
    let mut b = Udp::bind("[::]:0".parse().unwrap(), false).unwrap();
    let port = b.local_addr().unwrap().port();
    let sent = with_tos();
    for _ in 0..2 {
        let to = SocketAddr::from(([127, 0, 0, 1], port));
        assert!(round_trip_to(&mut a4, &mut b, to, &sent, false).0 == sent);
        let to = SocketAddr::new("::1".parse().unwrap(), port);
        assert!(round_trip_to(&mut a6, &mut b, to, &sent, false).0 == sent);
    }
}
