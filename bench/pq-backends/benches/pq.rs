//! Criterion wall-clock benches: ML-KEM-768 keygen/encaps/decaps and ML-DSA-65 keygen/sign/verify
//! for every backend. Shared machines are noisy: prefer `scripts/callgrind.sh` for comparisons.

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use pq_backends::dsa::{self, Dsa};
use pq_backends::kem::{self, Kem};
use pq_backends::{BENCH_CTX, BENCH_MSG};

fn seed<const N: usize>(i: u64) -> [u8; N] {
    let mut s = [0x42u8; N];
    s[..8].copy_from_slice(&i.to_le_bytes());
    s
}

fn bench_kem<K: Kem>(c: &mut Criterion) {
    let (ek, dk) = K::keygen(seed(0));
    let (ct, _) = K::encaps(&ek, seed(0));
    let mut i = 0u64;
    c.bench_function(&format!("mlkem768/keygen/{}", K::NAME), |b| {
        b.iter(|| {
            i += 1;
            K::keygen(black_box(seed(i)))
        })
    });
    c.bench_function(&format!("mlkem768/encaps/{}", K::NAME), |b| {
        b.iter(|| K::encaps(black_box(&ek), black_box(seed(1))))
    });
    c.bench_function(&format!("mlkem768/decaps/{}", K::NAME), |b| {
        b.iter(|| K::decaps(black_box(&dk), black_box(&ct)))
    });
}

fn bench_dsa<D: Dsa>(c: &mut Criterion) {
    let (vk, sk) = D::keygen(seed(0));
    let sig = D::sign(&sk, BENCH_MSG, BENCH_CTX, seed(0));
    let mut i = 0u64;
    c.bench_function(&format!("mldsa65/keygen/{}", D::NAME), |b| {
        b.iter(|| {
            i += 1;
            D::keygen(black_box(seed(i)))
        })
    });
    // Fresh rnd each iteration: the signing time varies with the rejection loop, so average it.
    c.bench_function(&format!("mldsa65/sign/{}", D::NAME), |b| {
        b.iter(|| {
            i += 1;
            D::sign(black_box(&sk), black_box(BENCH_MSG), BENCH_CTX, seed(i))
        })
    });
    c.bench_function(&format!("mldsa65/verify/{}", D::NAME), |b| {
        b.iter(|| D::verify(black_box(&vk), black_box(BENCH_MSG), BENCH_CTX, black_box(&sig)))
    });
}

fn all(c: &mut Criterion) {
    eprintln!("AVX2 detected: {}", pq_backends::libcrux_avx2_detected());
    bench_kem::<kem::LibcruxPortable>(c);
    #[cfg(feature = "simd256")]
    bench_kem::<kem::LibcruxAvx2>(c);
    bench_kem::<kem::RustCrypto>(c);
    #[cfg(feature = "aws-lc")]
    bench_kem::<kem::AwsLc>(c);
    bench_kem::<kem::Pqcrypto>(c);
    bench_dsa::<dsa::LibcruxPortable>(c);
    #[cfg(feature = "simd256")]
    bench_dsa::<dsa::LibcruxAvx2>(c);
    bench_dsa::<dsa::RustCrypto>(c);
    #[cfg(feature = "aws-lc")]
    bench_dsa::<dsa::AwsLc>(c);
    bench_dsa::<dsa::Pqcrypto>(c);
}

criterion_group!(benches, all);
criterion_main!(benches);
