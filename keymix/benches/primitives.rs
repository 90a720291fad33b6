//! Criterion benches for the hybrid key schedule's operations, as run once per epoch per peer:
//! ML-KEM-768 keygen/encaps/decaps, ML-DSA-65 keygen/sign/verify and the combiner.
//!
//!     cargo bench -p keymix --bench primitives

use criterion::{Criterion, criterion_group, criterion_main};
use keymix::mldsa::SigningKey;
use keymix::mlkem;
use keymix::{
    ChainKey, EpochContext, KeySources, PeerIdentity, QkdMaterial, Secret, SecretVec, derive_epoch,
};
use std::hint::black_box;

/// A hybrid-exchange-sized message: two identities, an encapsulation key and a ciphertext.
const TRANSCRIPT_LEN: usize = 64 + mlkem::ENCAPSULATION_KEY_LEN + mlkem::CIPHERTEXT_LEN;
const CONTEXT: &[u8] = b"qgw v1 bench";

fn mlkem_benches(c: &mut Criterion) {
    let mut group = c.benchmark_group("ml-kem-768");
    group.bench_function("keygen", |b| {
        b.iter(|| black_box(mlkem::generate().expect("rng")))
    });
    let (dk, ek) = mlkem::generate().expect("rng");
    group.bench_function("encaps", |b| {
        b.iter(|| black_box(ek.encapsulate().expect("rng")))
    });
    let (ct, _) = ek.encapsulate().expect("rng");
    group.bench_function("decaps", |b| {
        b.iter(|| black_box(dk.decapsulate(black_box(&ct))))
    });
    group.bench_function("ek-validate", |b| {
        b.iter(|| {
            black_box(mlkem::EncapsulationKey::from_bytes(black_box(
                ek.as_bytes(),
            )))
        })
    });
    group.finish();
}

fn mldsa_benches(c: &mut Criterion) {
    let mut group = c.benchmark_group("ml-dsa-65");
    group.bench_function("keygen", |b| {
        b.iter(|| black_box(SigningKey::generate().expect("rng")))
    });
    let key = SigningKey::generate().expect("rng");
    let message = vec![0x5a; TRANSCRIPT_LEN];
    group.bench_function("sign", |b| {
        b.iter(|| black_box(key.sign(&message, CONTEXT).expect("signs")))
    });
    let signature = key.sign(&message, CONTEXT).expect("signs");
    group.bench_function("verify", |b| {
        b.iter(|| black_box(key.verifying_key().verify(&message, CONTEXT, &signature)))
    });
    group.finish();
}

fn combiner_benches(c: &mut Criterion) {
    let (_dk, ek) = mlkem::generate_from_seed(&Secret::new([1; 64]));
    let (ct, shared) = ek.encapsulate_with_randomness(&Secret::new([2; 32]));
    let a = PeerIdentity::new(&[0xa; 64]).expect("identity");
    let b = PeerIdentity::new(&[0xb; 64]).expect("identity");
    let context = EpochContext {
        epoch: 1,
        initiator: &a,
        responder: &b,
        mlkem_ek: &ek,
        mlkem_ct: &ct,
    };
    let genesis = ChainKey::genesis(None);
    let qkd = QkdMaterial::new(
        vec![keymix::KeyId::parse("bc490419-7d60-487f-adc1-4ddcc177c139").expect("uuid")],
        SecretVec::new(vec![7; 32]),
    )
    .expect("qkd");
    let mut group = c.benchmark_group("combiner");
    group.bench_function("x25519+mlkem", |bench| {
        bench.iter(|| {
            black_box(derive_epoch(
                &genesis,
                &context,
                KeySources::X25519_MLKEM,
                &shared,
                None,
            ))
        })
    });
    group.bench_function("x25519+mlkem+qkd", |bench| {
        bench.iter(|| {
            black_box(derive_epoch(
                &genesis,
                &context,
                KeySources::X25519_MLKEM_QKD,
                &shared,
                Some(&qkd),
            ))
        })
    });
    group.finish();
}

criterion_group!(benches, mlkem_benches, mldsa_benches, combiner_benches);
criterion_main!(benches);
