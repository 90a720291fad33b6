//! Sealing and opening whole batches on two threads gives, byte for byte and count for count,
//! what one packet at a time gives: the same datagrams, the same packets delivered and the same
//! drops (replays within a batch, forgeries, reordering), on twin nodes with the same seeds.
#![allow(clippy::unwrap_used)]

use std::net::SocketAddr;
use std::time::Instant;

use super::*;
use crate::node::Received;
use crate::node::testing::{Site, connected, ipv4};

const A: Site = Site(1);
const B: Site = Site(2);
const SLOT: usize = 1600;
const PACKETS: usize = 120;

/// `PACKETS` full-size packets from A to B of varied lengths, each tagged with its number.
fn packets() -> Vec<Vec<u8>> {
    (0..PACKETS)
        .map(|i| {
            let body: Vec<u8> = (0..1000 + (i * 37) % 392).map(|j| (i + j) as u8).collect();
            ipv4(A.ip(1), B.ip(1), &body)
        })
        .collect()
}

/// What the network does to the batch: a replay within it, a forgery, two swapped.
fn tamper(datagrams: &mut Vec<Vec<u8>>) {
    datagrams.swap(10, 11);
    let replay = datagrams[3].clone();
    datagrams.insert(40, replay);
    datagrams[50][30] ^= 1;
}

#[test]
fn two_threads_seal_the_same_datagrams_as_one_at_a_time() {
    let now = Instant::now();
    let (mut one, _) = connected(now, A, B);
    let (mut batched, _) = connected(now, A, B);
    let mut workers = Workers::new(2).unwrap();
    let mut slots = vec![0u8; SLOT * PACKETS];
    let mut sealings = Vec::new();
    let mut expected = Vec::new();
    for (i, p) in packets().iter().enumerate() {
        let mut buf = vec![0u8; SLOT];
        buf[16..16 + p.len()].copy_from_slice(p);
        let t = one
            .handle_tun_packet(now, &mut buf, p.len())
            .unwrap()
            .unwrap();
        expected.push(buf[..t.len].to_vec());
        let slot = &mut slots[i * SLOT..(i + 1) * SLOT];
        slot[16..16 + p.len()].copy_from_slice(p);
        let (t2, sealing) = batched
            .frame_tun_packet(now, slot, p.len())
            .unwrap()
            .unwrap();
        assert_eq!(t2, t);
        sealings.push(sealing);
    }
    workers.seal(&mut slots, SLOT, &sealings);
    assert_eq!(workers.shared(), 1, "the batch went to the pool");
    for (i, e) in expected.iter().enumerate() {
        assert_eq!(&slots[i * SLOT..i * SLOT + e.len()], &e[..], "datagram {i}");
    }
}

#[test]
fn two_threads_open_with_the_same_outcomes_and_counts_as_one_at_a_time() {
    let now = Instant::now();
    let (mut a, mut one) = connected(now, A, B);
    let (_, mut batched) = connected(now, A, B);
    let mut datagrams: Vec<Vec<u8>> = packets()
        .iter()
        .map(|p| {
            let mut buf = vec![0u8; SLOT];
            buf[16..16 + p.len()].copy_from_slice(p);
            let t = a
                .handle_tun_packet(now, &mut buf, p.len())
                .unwrap()
                .unwrap();
            buf[..t.len].to_vec()
        })
        .collect();
    tamper(&mut datagrams);
    let from: SocketAddr = A.addr();
    let expected: Vec<(Received, Vec<u8>)> = datagrams
        .iter()
        .map(|d| {
            let mut d = d.clone();
            let r = one.handle_datagram(now, from, &mut d);
            (r, d)
        })
        .collect();

    let mut workers = Workers::new(2).unwrap();
    let mut buf = vec![0u8; SLOT * datagrams.len()];
    let mut openings = Vec::new();
    let mut outcomes = vec![None; datagrams.len()];
    for (i, d) in datagrams.iter().enumerate() {
        let at = i * SLOT..i * SLOT + d.len();
        buf[at.clone()].copy_from_slice(d);
        match batched.begin_transport(now, from, &buf[at.clone()]) {
            Some(Ok(pending)) => openings.push((i, ToOpen::new(pending, at))),
            Some(Err(dropped)) => outcomes[i] = Some(Received::Dropped(dropped)),
            None => unreachable!("transport messages only"),
        }
    }
    let (index, mut openings): (Vec<usize>, Vec<ToOpen>) = openings.into_iter().unzip();
    workers.open(&mut buf, &mut openings);
    assert_eq!(workers.shared(), 1, "the batch went to the pool");
    for (i, o) in index.into_iter().zip(openings) {
        let at = o.at.clone();
        outcomes[i] = Some(batched.finish_transport(now, o.pending, o.opened, &buf[at]));
    }
    for (i, (want, plain)) in expected.iter().enumerate() {
        assert_eq!(outcomes[i].as_ref(), Some(want), "datagram {i}");
        if let Received::Packet { packet, .. } = want {
            assert_eq!(
                &buf[i * SLOT..][packet.clone()],
                &plain[packet.clone()],
                "datagram {i}"
            );
        }
    }
    assert_eq!(batched.drops(), one.drops());
    let delivered = |r: &[(Received, Vec<u8>)]| {
        r.iter()
            .filter(|(r, _)| matches!(r, Received::Packet { .. }))
            .count()
    };
    assert_eq!(
        delivered(&expected),
        PACKETS - 1,
        "the forgery and the replay are refused"
    );
    assert_eq!(one.drops()[DropReason::Replay.index()], 1);
    assert_eq!(one.drops()[DropReason::DecryptFailed.index()], 1);
}

#[test]
fn small_batches_stay_on_the_packet_thread() {
    let now = Instant::now();
    let (mut a, _) = connected(now, A, B);
    let mut workers = Workers::new(2).unwrap();
    let p = ipv4(A.ip(1), B.ip(1), b"vital signs");
    let mut slots = vec![0u8; SLOT * 4];
    let mut sealings = Vec::new();
    for i in 0..4 {
        let slot = &mut slots[i * SLOT..(i + 1) * SLOT];
        slot[16..16 + p.len()].copy_from_slice(&p);
        sealings.push(a.frame_tun_packet(now, slot, p.len()).unwrap().unwrap().1);
    }
    workers.seal(&mut slots, SLOT, &sealings);
    assert_eq!(workers.shared(), 0);
    assert_eq!(Workers::new(1).unwrap().threads(), 1);
}
