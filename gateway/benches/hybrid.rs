//! CPU cost of one hybrid epoch (docs/protocol.md), sans-IO, on one core: the whole exchange
//! (master + slave), the slave's share (how many epochs per second one core can serve as
//! responder), with and without QKD; and the bytes on the wire per epoch.
//!
//!     cargo bench -p gateway --bench hybrid

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use gateway::hybrid::{
    HybridPeer, HybridSettings, PairKeys, PeerKeys, QkdPolicy, Role, identity, wire,
};
use gateway::proto::crypto::OsEntropy;
use gateway::proto::tai64n::WallClock;
use keymix::mldsa::SigningKey;
use keymix::{KeyId, QkdMaterial, Secret, SecretVec};
use x25519_dalek::{PublicKey, StaticSecret};

struct Keys {
    a: StaticSecret,
    b: StaticSecret,
    sk_a: Arc<SigningKey>,
    sk_b: Arc<SigningKey>,
}

fn pair(keys: &Keys, policy: QkdPolicy) -> (HybridPeer, HybridPeer) {
    let now = Instant::now();
    let (a_pub, b_pub) = (
        PublicKey::from(&keys.a).to_bytes(),
        PublicKey::from(&keys.b).to_bytes(),
    );
    let (ida, idb) = (
        identity(&a_pub, keys.sk_a.verifying_key()),
        identity(&b_pub, keys.sk_b.verifying_key()),
    );
    let clock = WallClock::new(now, Duration::from_secs(1_800_000_000));
    let settings = |role| HybridSettings {
        role,
        policy,
        rekey_after: Duration::from_secs(120),
    };
    let peer_keys = |signing: &Arc<SigningKey>, peer: &Arc<SigningKey>, pair: PairKeys| PeerKeys {
        signing: Arc::clone(signing),
        peer_verifying: peer.verifying_key().clone(),
        pair,
        master: ida.clone(),
        slave: idb.clone(),
        genesis_psk: None,
    };
    let master = HybridPeer::new(
        now,
        settings(Role::Master),
        peer_keys(
            &keys.sk_a,
            &keys.sk_b,
            PairKeys::derive(&keys.a, &b_pub).expect("valid"),
        ),
        clock,
        Box::new(OsEntropy),
    );
    let slave = HybridPeer::new(
        now,
        settings(Role::Slave),
        peer_keys(
            &keys.sk_b,
            &keys.sk_a,
            PairKeys::derive(&keys.b, &a_pub).expect("valid"),
        ),
        clock,
        Box::new(OsEntropy),
    );
    (master, slave)
}

fn qkd_key(n: u64) -> QkdMaterial {
    let id = KeyId::parse(&format!("00000000-0000-4000-8000-{n:012x}")).expect("uuid");
    QkdMaterial::new(vec![id], SecretVec::new(vec![n as u8; 32])).expect("valid")
}

/// What the node does with a hybrid datagram: parse the header once, hand the fragment over.
fn deliver(peer: &mut HybridPeer, now: Instant, datagram: &[u8]) {
    if let Ok(fragment) = wire::parse(datagram) {
        let _ = peer.handle_fragment(now, &fragment);
    }
}

/// Drives `peer` until it has nothing to do, answering KME requests at once; returns datagrams.
fn drain(peer: &mut HybridPeer, now: Instant, key: &mut Option<QkdMaterial>) -> Vec<Vec<u8>> {
    let mut sent = Vec::new();
    let mut buf = [0u8; gateway::hybrid::constants::MAX_DATAGRAM];
    loop {
        if let Some(request) = peer.poll_qkd_request() {
            let material = key.take().ok_or(gateway::hybrid::QkdFailure::Unavailable);
            peer.handle_qkd_result(now, request.id, material);
            continue;
        }
        match peer.poll_transmit(&mut buf) {
            Some(len) => sent.push(buf[..len].to_vec()),
            None => break,
        }
    }
    while peer.poll_psk().is_some() || peer.poll_event().is_some() {}
    sent
}

/// Master's Init datagrams for a fresh pair (the slave has not seen them yet).
fn init(
    keys: &Keys,
    policy: QkdPolicy,
    qkd: bool,
) -> (HybridPeer, HybridPeer, Vec<Vec<u8>>, Option<QkdMaterial>) {
    let (mut master, slave) = pair(keys, policy);
    let now = Instant::now();
    master.handle_timeout(now);
    let mut key = qkd.then(|| qkd_key(1));
    let datagrams = drain(&mut master, now, &mut key);
    (master, slave, datagrams, qkd.then(|| qkd_key(1)))
}

fn epoch(keys: &Keys, policy: QkdPolicy, qkd: bool) -> usize {
    let (mut master, mut slave, init, mut slave_key) = init(keys, policy, qkd);
    let now = Instant::now();
    for d in &init {
        deliver(&mut slave, now, d);
    }
    let response = drain(&mut slave, now, &mut slave_key);
    for d in &response {
        deliver(&mut master, now, d);
    }
    drain(&mut master, now, &mut None);
    assert!(master.current_epoch().is_some(), "the epoch completed");
    init.iter().chain(&response).map(Vec::len).sum()
}

fn benches(c: &mut Criterion) {
    let keys = Keys {
        a: StaticSecret::from([1; 32]),
        b: StaticSecret::from([2; 32]),
        sk_a: Arc::new(SigningKey::from_seed(Secret::new([0xA; 32]))),
        sk_b: Arc::new(SigningKey::from_seed(Secret::new([0xB; 32]))),
    };
    for (name, policy, qkd) in [
        ("x25519+mlkem", QkdPolicy::Off, false),
        ("x25519+mlkem+qkd", QkdPolicy::Required, true),
    ] {
        eprintln!(
            "{name}: {} bytes of hybrid UDP payload per epoch",
            epoch(&keys, policy, qkd)
        );
        let mut group = c.benchmark_group(format!("hybrid-epoch/{name}"));
        group.bench_function("both-sides", |b| {
            b.iter(|| black_box(epoch(&keys, policy, qkd)))
        });
        group.bench_function("responder-only", |b| {
            b.iter_batched(
                || init(&keys, policy, qkd),
                |(_master, mut slave, init, mut key)| {
                    let now = Instant::now();
                    for d in &init {
                        deliver(&mut slave, now, d);
                    }
                    black_box(drain(&mut slave, now, &mut key))
                },
                BatchSize::SmallInput,
            )
        });
        group.finish();
    }
}

criterion_group!(hybrid, benches);
criterion_main!(hybrid);
