//! Fuzzes ML-DSA-65 verification of peer-supplied bytes: the first byte picks how the input is split
//! into verifying key, signature and message; verification must return an error, never panic.
#![no_main]

use keymix::mldsa::{SIGNATURE_LEN, Signature, SigningKey, VERIFYING_KEY_LEN, VerifyingKey};
use keymix::{KeySources, Secret};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else { return };
    let _ = KeySources::from_bits(mode);
    if mode & 1 == 0 {
        // A peer's signature over an arbitrary message, under a fixed valid key.
        let key = SigningKey::from_seed(Secret::new([3; 32]));
        if rest.len() >= SIGNATURE_LEN {
            let (sig, msg) = rest.split_at(SIGNATURE_LEN);
            if let Ok(sig) = Signature::from_bytes(sig) {
                let _ = key.verifying_key().verify(msg, b"qgw fuzz", &sig);
            }
        }
    } else if rest.len() >= VERIFYING_KEY_LEN + SIGNATURE_LEN {
        // A peer-supplied (possibly malformed) verifying key.
        let (vk, tail) = rest.split_at(VERIFYING_KEY_LEN);
        let (sig, msg) = tail.split_at(SIGNATURE_LEN);
        if let (Ok(vk), Ok(sig)) = (VerifyingKey::from_bytes(vk), Signature::from_bytes(sig)) {
            let _ = vk.verify(msg, b"qgw fuzz", &sig);
        }
    }
});
