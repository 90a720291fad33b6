//! Fuzzes ML-DSA-65 verification of peer-supplied bytes: the first byte picks how the input is split
//! into verifying key, signature and message; verification must return an error, never panic.
//! The parsers take one length only, so the rest is zero-padded to the lengths needed.
#![no_main]

use std::hint::black_box;
use std::sync::OnceLock;

use keymix::mldsa::{SIGNATURE_LEN, Signature, SigningKey, VERIFYING_KEY_LEN, VerifyingKey};
use keymix::{KeySources, Secret};
use libfuzzer_sys::fuzz_target;

/// The fixed valid key, generated once per process (a pure function of its seed).
fn fixed_key() -> &'static VerifyingKey {
    static KEY: OnceLock<VerifyingKey> = OnceLock::new();
    KEY.get_or_init(|| {
        SigningKey::from_seed(Secret::new([3; 32]))
            .verifying_key()
            .clone()
    })
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let _ = black_box(KeySources::from_bits(mode));
    let mut rest = rest.to_vec();
    if mode & 1 == 0 {
        // A peer's signature over an arbitrary message, under a fixed valid key.
        rest.resize(rest.len().max(SIGNATURE_LEN), 0);
        let (sig, msg) = rest.split_at(SIGNATURE_LEN);
        if let Ok(sig) = Signature::from_bytes(sig) {
            let _ = black_box(fixed_key().verify(msg, b"qgw fuzz", &sig));
        }
    } else {
        // A peer-supplied (possibly malformed) verifying key.
        rest.resize(rest.len().max(VERIFYING_KEY_LEN + SIGNATURE_LEN), 0);
        let (vk, tail) = rest.split_at(VERIFYING_KEY_LEN);
        let (sig, msg) = tail.split_at(SIGNATURE_LEN);
        if let (Ok(vk), Ok(sig)) = (VerifyingKey::from_bytes(vk), Signature::from_bytes(sig)) {
            let _ = black_box(vk.verify(msg, b"qgw fuzz", &sig));
        }
    }
});
