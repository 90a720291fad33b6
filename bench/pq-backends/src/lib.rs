//! Uniform wrappers over the ML-KEM-768 / ML-DSA-65 backends that qgw considered.
//!
//! Used by the criterion bench (`benches/pq.rs`), the instruction-count driver
//! (`src/bin/pq-ops.rs`, run under callgrind) and the vector test (`tests/vectors.rs`).
//! Backends without a seeded API (aws-lc-rs, pqcrypto) ignore the seed / randomness
//! arguments and draw from their own RNG.

pub mod dsa;
pub mod kem;

/// Message signed in the benches and the instruction counts (~200 bytes, like a handshake transcript hash input).
pub const BENCH_MSG: &[u8; 200] = &[0x5a; 200];
/// Signing context used in the benches.
pub const BENCH_CTX: &[u8] = b"qgw bench";

/// True when libcrux's runtime dispatch would take its AVX2 path on this CPU.
pub fn libcrux_avx2_detected() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx2")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}
