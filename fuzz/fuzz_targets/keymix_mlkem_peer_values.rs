//! Fuzzes keymix's parsing of the ML-KEM-768 values a peer sends: the encapsulation key (length +
//! FIPS 203 §7.2 modulus check, then encapsulation) and the ciphertext (length, then decapsulation
//! under a fixed key). Neither may panic on any input.
#![no_main]

use keymix::Secret;
use keymix::mlkem::{self, Ciphertext, EncapsulationKey};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(ek) = EncapsulationKey::from_bytes(data) {
        let _ = ek.encapsulate_with_randomness(&Secret::new([7; 32]));
    }
    if let Ok(ct) = Ciphertext::from_bytes(data) {
        let (dk, _) = mlkem::generate_from_seed(&Secret::new([1; 64]));
        let _ = dk.decapsulate(&ct);
    }
});
