//! ChaCha20-Poly1305 backends for the data path: RustCrypto `chacha20poly1305` vs `ring` vs
//! `aws-lc-rs`, sealing and opening 1420-byte packets (a full-MTU WireGuard payload) in place on one
//! core, plus the gateway's chosen `DataCipher` through its own wrapper.
//!
//! Run: `cargo bench -p gateway --bench aead --features bench-aws-lc` (without the feature the
//! aws-lc-rs row is left out, so ordinary builds do not compile AWS-LC). Decision and numbers: docs/gateway-decisions.md.

use std::hint::black_box;

use chacha20poly1305::aead::{AeadInOut, KeyInit};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use gateway::proto::aead::{DataAead, DataCipher};
use gateway::proto::secret::Secret;

const LEN: usize = 1420;
const KEY: [u8; 32] = [0x42; 32];

fn nonce(counter: u64) -> [u8; 12] {
    let mut n = [0u8; 12];
    n[4..].copy_from_slice(&counter.to_le_bytes());
    n
}

fn seal(c: &mut Criterion) {
    let mut g = c.benchmark_group("seal_1420");
    g.throughput(Throughput::Bytes(LEN as u64));
    let mut buf = vec![0xA5u8; LEN];

    let rc = chacha20poly1305::ChaCha20Poly1305::new(&KEY.into());
    let mut ctr = 0u64;
    g.bench_function("rustcrypto", |b| {
        b.iter(|| {
            ctr += 1;
            let tag = rc.encrypt_inout_detached(&nonce(ctr).into(), &[], buf.as_mut_slice().into());
            black_box(tag.ok())
        })
    });

    let rk = ring::aead::LessSafeKey::new(
        ring::aead::UnboundKey::new(&ring::aead::CHACHA20_POLY1305, &KEY).expect("32-byte key"),
    );
    g.bench_function("ring", |b| {
        b.iter(|| {
            ctr += 1;
            let n = ring::aead::Nonce::assume_unique_for_key(nonce(ctr));
            black_box(
                rk.seal_in_place_separate_tag(n, ring::aead::Aad::empty(), &mut buf)
                    .ok(),
            )
        })
    });

    #[cfg(feature = "bench-aws-lc")]
    {
        let ak = aws_lc_rs::aead::LessSafeKey::new(
            aws_lc_rs::aead::UnboundKey::new(&aws_lc_rs::aead::CHACHA20_POLY1305, &KEY)
                .expect("32-byte key"),
        );
        g.bench_function("aws-lc-rs", |b| {
            b.iter(|| {
                ctr += 1;
                let n = aws_lc_rs::aead::Nonce::assume_unique_for_key(nonce(ctr));
                black_box(
                    ak.seal_in_place_separate_tag(n, aws_lc_rs::aead::Aad::empty(), &mut buf)
                        .ok(),
                )
            })
        });
    }

    let ours = DataCipher::new(&Secret::new(KEY));
    g.bench_function("gateway::DataCipher", |b| {
        b.iter(|| {
            ctr += 1;
            black_box(ours.seal(ctr, &mut buf))
        })
    });
    g.finish();
}

fn open(c: &mut Criterion) {
    let mut g = c.benchmark_group("open_1420");
    g.throughput(Throughput::Bytes(LEN as u64));
    let ours = DataCipher::new(&Secret::new(KEY));
    let plain = vec![0x5Au8; LEN];
    let mut sealed = plain.clone();
    let tag = ours.seal(7, &mut sealed);
    let mut buf = sealed.clone();
    g.bench_function("gateway::DataCipher", |b| {
        b.iter(|| {
            buf.copy_from_slice(&sealed);
            black_box(ours.open(7, &mut buf, &tag).is_ok())
        })
    });
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(30).measurement_time(std::time::Duration::from_secs(3));
    targets = seal, open
}
criterion_main!(benches);
