//! Runs one backend operation N times, for instruction counting under callgrind.
//!
//! `pq-ops <kem|dsa> <backend> <op> <n>`; `scripts/callgrind.sh` runs it with n = 0 and n = N
//! and divides the difference by N, so set-up (key generation for encaps, ...) cancels out.
//! Seeded backends get a different seed / `rnd` per iteration, like the hedged ones, so ML-DSA
//! signing averages over the rejection-sampling loop in the same way for all backends.

use std::hint::black_box;

use pq_backends::dsa::{self, Dsa};
use pq_backends::kem::{self, Kem};
use pq_backends::{BENCH_CTX, BENCH_MSG};

fn seed<const N: usize>(i: usize) -> [u8; N] {
    let mut s = [0x42u8; N];
    s[..8].copy_from_slice(&(i as u64).to_le_bytes());
    s
}

fn run_kem<K: Kem>(op: &str, n: usize) {
    let (ek, dk) = K::keygen(seed(0));
    let (ct, _) = K::encaps(&ek, seed(0));
    for i in 0..n {
        match op {
            "keygen" => drop(black_box(K::keygen(seed(i + 1)))),
            "encaps" => drop(black_box(K::encaps(black_box(&ek), seed(i + 1)))),
            "decaps" => drop(black_box(K::decaps(black_box(&dk), black_box(&ct)))),
            _ => panic!("unknown kem op {op}"),
        }
    }
}

fn run_dsa<D: Dsa>(op: &str, n: usize) {
    let (vk, sk) = D::keygen(seed(0));
    let sig = D::sign(&sk, BENCH_MSG, BENCH_CTX, seed(0));
    for i in 0..n {
        match op {
            "keygen" => drop(black_box(D::keygen(seed(i + 1)))),
            "sign" => drop(black_box(D::sign(black_box(&sk), BENCH_MSG, BENCH_CTX, seed(i + 1)))),
            "verify" => assert!(D::verify(black_box(&vk), BENCH_MSG, BENCH_CTX, black_box(&sig))),
            _ => panic!("unknown dsa op {op}"),
        }
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("info") {
        // What the CPU (or valgrind's emulated CPUID) offers: decides libcrux's and pqcrypto's paths.
        #[cfg(target_arch = "x86_64")]
        println!(
            "avx2={} bmi2={} avx512f={}",
            std::arch::is_x86_feature_detected!("avx2"),
            std::arch::is_x86_feature_detected!("bmi2"),
            std::arch::is_x86_feature_detected!("avx512f")
        );
        return;
    }
    let [_, alg, backend, op, n] = args.as_slice() else {
        eprintln!("usage: pq-ops <kem|dsa> <backend> <op> <n>");
        std::process::exit(2);
    };
    let n: usize = n.parse().expect("n");
    macro_rules! dispatch {
        ($($name:literal => $kem:ty, $dsa:ty;)*) => {
            match (alg.as_str(), backend.as_str()) {
                $(("kem", $name) => run_kem::<$kem>(op, n), ("dsa", $name) => run_dsa::<$dsa>(op, n),)*
                _ => panic!("unknown alg/backend {alg}/{backend}"),
            }
        };
    }
    if backend == "aws-lc-rs" {
        #[cfg(feature = "aws-lc")]
        match alg.as_str() {
            "kem" => run_kem::<kem::AwsLc>(op, n),
            _ => run_dsa::<dsa::AwsLc>(op, n),
        }
        return;
    }
    #[cfg(feature = "simd256")]
    if backend == "libcrux-avx2" {
        match alg.as_str() {
            "kem" => run_kem::<kem::LibcruxAvx2>(op, n),
            _ => run_dsa::<dsa::LibcruxAvx2>(op, n),
        }
        return;
    }
    dispatch! {
        "libcrux-portable" => kem::LibcruxPortable, dsa::LibcruxPortable;
        "libcrux-auto" => kem::LibcruxAuto, dsa::LibcruxAuto;
        "rustcrypto" => kem::RustCrypto, dsa::RustCrypto;
        "pqcrypto" => kem::Pqcrypto, dsa::Pqcrypto;
    }
}
