//! Fuzzes keymix's parsing of the ML-KEM-768 values a peer sends: the encapsulation key (length +
//! FIPS 203 §7.2 modulus check, then encapsulation) and the ciphertext (length, then decapsulation
//! under a fixed key). Neither may panic on any input.
//!
//! Both parsers refuse every length but one, which a byte-mutating fuzzer rarely produces: when
//! bit 0 of the first byte is set, the rest is cut or zero-padded to the exact length of each, so
//! the checks after the length run; otherwise the rest is used as it is.
#![no_main]

use std::hint::black_box;
use std::sync::OnceLock;

use keymix::Secret;
use keymix::mlkem::{
    self, CIPHERTEXT_LEN, Ciphertext, DecapsulationKey, ENCAPSULATION_KEY_LEN, EncapsulationKey,
};
use libfuzzer_sys::fuzz_target;

/// The fixed decapsulation key, generated once per process (a pure function of its seed).
fn decapsulation_key() -> &'static DecapsulationKey {
    static KEY: OnceLock<DecapsulationKey> = OnceLock::new();
    KEY.get_or_init(|| mlkem::generate_from_seed(&Secret::new([1; 64])).0)
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let fit = |len: usize| {
        let mut v = rest.to_vec();
        if mode & 1 == 1 {
            v.resize(len, 0);
        }
        v
    };
    if let Ok(ek) = black_box(EncapsulationKey::from_bytes(&fit(ENCAPSULATION_KEY_LEN))) {
        let _ = black_box(ek.encapsulate_with_randomness(&Secret::new([7; 32])));
    }
    if let Ok(ct) = black_box(Ciphertext::from_bytes(&fit(CIPHERTEXT_LEN))) {
        let _ = black_box(decapsulation_key().decapsulate(&ct));
    }
});
