//! The fuzz targets' bodies (`fuzz/fuzz_targets/keymix_*.rs`) as property tests, so CI exercises
//! the parsers of peer bytes on stable Rust: arbitrary bytes give errors, never panics, and
//! structured corruptions are refused.

use keymix::mldsa::{SIGNATURE_LEN, Signature, SigningKey, VERIFYING_KEY_LEN, VerifyingKey};
use keymix::mlkem::{self, CIPHERTEXT_LEN, Ciphertext, ENCAPSULATION_KEY_LEN, EncapsulationKey};
use keymix::{Error, KeySources, Secret};
use proptest::prelude::*;

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn arbitrary_lengths_are_refused_without_panic(data in prop::collection::vec(any::<u8>(), 0..4000)) {
        let ek = EncapsulationKey::from_bytes(&data);
        if data.len() != ENCAPSULATION_KEY_LEN {
            prop_assert!(matches!(ek, Err(Error::InvalidLength { .. })), "wrong length must be a length error");
        }
        prop_assert_eq!(Ciphertext::from_bytes(&data).is_ok(), data.len() == CIPHERTEXT_LEN);
        prop_assert_eq!(Signature::from_bytes(&data).is_ok(), data.len() == SIGNATURE_LEN);
        prop_assert_eq!(VerifyingKey::from_bytes(&data).is_ok(), data.len() == VERIFYING_KEY_LEN);
    }

    #[test]
    fn random_encapsulation_keys_either_fail_the_modulus_check_or_encapsulate(data in prop::collection::vec(any::<u8>(), ENCAPSULATION_KEY_LEN)) {
        match EncapsulationKey::from_bytes(&data) {
            Ok(ek) => { let _ = ek.encapsulate_with_randomness(&Secret::new([7; 32])); }
            Err(e) => prop_assert_eq!(e, Error::InvalidEncapsulationKey),
        }
    }

    #[test]
    fn random_ciphertexts_decapsulate_to_implicit_rejection(data in prop::collection::vec(any::<u8>(), CIPHERTEXT_LEN)) {
        let (dk, ek) = mlkem::generate_from_seed(&Secret::new([1; 64]));
        let (_, honest) = ek.encapsulate_with_randomness(&Secret::new([2; 32]));
        let ct = Ciphertext::from_bytes(&data).expect("right length");
        prop_assert!(!dk.decapsulate(&ct).ct_eq(&honest));
    }

    #[test]
    fn random_signatures_and_keys_never_verify(sig in prop::collection::vec(any::<u8>(), SIGNATURE_LEN), vk in prop::collection::vec(any::<u8>(), VERIFYING_KEY_LEN), msg in prop::collection::vec(any::<u8>(), 0..64), mode in any::<u8>()) {
        let _ = KeySources::from_bits(mode);
        let sig = Signature::from_bytes(&sig).expect("right length");
        let fixed = SigningKey::from_seed(Secret::new([3; 32]));
        prop_assert_eq!(fixed.verifying_key().verify(&msg, b"qgw fuzz", &sig), Err(Error::BadSignature));
        let vk = VerifyingKey::from_bytes(&vk).expect("right length");
        prop_assert_eq!(vk.verify(&msg, b"qgw fuzz", &sig), Err(Error::BadSignature));
    }
}
