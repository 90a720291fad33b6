//! Loopback tests of the UDP edge: batches go out and come back whole, with and without GSO and
//! GRO, and a coalesced receive splits back into the datagrams that were sent.
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
    let mut tx = Batch::new(2048, 64);
    for d in datagrams {
        tx.next_slot().unwrap()[..d.len()].copy_from_slice(d);
        tx.commit(d.len(), to);
    }
    assert_eq!(a.send_batch(&tx).unwrap(), datagrams.len());
    let mut rx = Batch::new(b.receive_slot(2048), BATCH);
    let (mut got, mut buffers) = (Vec::new(), 0);
    for _ in 0..10_000 {
        match b.recv_batch(&mut rx) {
            Ok(n) => {
                for i in 0..n {
                    buffers += 1;
                    let (len, seg) = rx.segmented(i);
                    let whole = rx.datagram(i).0;
                    assert_eq!(rx.datagram(i).1, Some(a.local_addr().unwrap()));
                    got.extend(
                        (0..len)
                            .step_by(seg)
                            .map(|s| whole[s..len.min(s + seg)].to_vec()),
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
