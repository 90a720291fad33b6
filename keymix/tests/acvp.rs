//! NIST ACVP known-answer tests (FIPS 203 ML-KEM-768, FIPS 204 ML-DSA-65) against keymix's
//! wrappers of the chosen backend. The vectors and their provenance are in `vectors/README.md`.

use keymix::mldsa::{Signature, SigningKey, VerifyingKey};
use keymix::mlkem::{self, Ciphertext, DecapsulationKey, EncapsulationKey};
use keymix::{Error, Secret};
use serde::Deserialize;

fn bytes(text: &str) -> Vec<u8> {
    hex::decode(text).expect("vector hex")
}

fn secret<const N: usize>(text: &str) -> Secret<N> {
    Secret::from_slice(&bytes(text)).expect("vector length")
}

fn load<T: for<'de> Deserialize<'de>>(name: &str) -> Vec<T> {
    let path = format!("{}/tests/vectors/{name}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let cases: Vec<T> = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"));
    assert!(!cases.is_empty(), "{path} has no cases");
    cases
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct KemKeyGen {
    tc_id: u64,
    d: String,
    z: String,
    ek: String,
    dk: String,
}

#[test]
fn mlkem768_keygen() {
    for case in load::<KemKeyGen>("mlkem768_keygen.json") {
        let seed = secret::<64>(&(case.d.clone() + &case.z));
        let (dk, ek) = mlkem::generate_from_seed(&seed);
        assert_eq!(
            hex::encode(ek.as_bytes()),
            case.ek.to_lowercase(),
            "tcId {}",
            case.tc_id
        );
        assert_eq!(
            hex::encode(dk.expose_bytes()),
            case.dk.to_lowercase(),
            "tcId {}",
            case.tc_id
        );
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct KemEncap {
    tc_id: u64,
    result: String,
    ek: String,
    m: String,
    c: String,
    k: String,
}

#[test]
fn mlkem768_encapsulation() {
    let cases = load::<KemEncap>("mlkem768_encap.json");
    let (mut valid, mut invalid) = (0, 0);
    for case in cases {
        let parsed = EncapsulationKey::from_bytes(&bytes(&case.ek));
        if case.result == "invalid" {
            invalid += 1;
            // FIPS 203 §7.2: the modulus check must refuse the key before any encapsulation.
            assert_eq!(
                parsed.err(),
                Some(Error::InvalidEncapsulationKey),
                "tcId {}",
                case.tc_id
            );
            continue;
        }
        valid += 1;
        let ek = parsed.expect("valid ek");
        let (ct, k) = ek.encapsulate_with_randomness(&secret::<32>(&case.m));
        assert_eq!(
            hex::encode(ct.as_bytes()),
            case.c.to_lowercase(),
            "tcId {}",
            case.tc_id
        );
        assert_eq!(
            hex::encode(k.expose()),
            case.k.to_lowercase(),
            "tcId {}",
            case.tc_id
        );
    }
    assert!(
        valid > 0 && invalid > 0,
        "need valid and invalid encapsulation keys"
    );
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct KemDecap {
    tc_id: u64,
    dk: String,
    c: String,
    k: String,
}

#[test]
fn mlkem768_decapsulation_including_implicit_rejection() {
    for case in load::<KemDecap>("mlkem768_decap.json") {
        let dk = DecapsulationKey::from_bytes(&bytes(&case.dk)).expect("dk length");
        let ct = Ciphertext::from_bytes(&bytes(&case.c)).expect("ct length");
        let k = dk.decapsulate(&ct);
        assert_eq!(
            hex::encode(k.expose()),
            case.k.to_lowercase(),
            "tcId {}",
            case.tc_id
        );
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct DsaKeyGen {
    tc_id: u64,
    seed: String,
    pk: String,
}

#[test]
fn mldsa65_keygen() {
    for case in load::<DsaKeyGen>("mldsa65_keygen.json") {
        let key = SigningKey::from_seed(secret::<32>(&case.seed));
        assert_eq!(
            hex::encode(key.verifying_key().as_bytes()),
            case.pk.to_lowercase(),
            "tcId {}",
            case.tc_id
        );
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct DsaSigGen {
    tc_id: u64,
    interface: String,
    result: String,
    sk: String,
    pk: Option<String>,
    message: String,
    context: String,
    rnd: String,
    signature: String,
}

#[test]
fn mldsa65_signature_generation() {
    let cases = load::<DsaSigGen>("mldsa65_siggen.json");
    let mut external = 0;
    for case in cases.iter().filter(|c| c.interface == "external") {
        external += 1;
        // The verifying key is not needed to sign; a placeholder of the right length will do when
        // the vector does not carry it.
        let pk = case.pk.as_deref().map(bytes).unwrap_or(vec![0; 1952]);
        let vk = VerifyingKey::from_bytes(&pk).expect("pk length");
        let key = SigningKey::from_expanded_bytes(&bytes(&case.sk), vk).expect("sk length");
        let signed = key.sign_with_randomness(
            &bytes(&case.message),
            &bytes(&case.context),
            &secret::<32>(&case.rnd),
        );
        if case.result == "invalid" {
            // FIPS 204 Algorithm 2 step 1: a context over 255 bytes is an error, not a signature.
            assert!(
                matches!(signed, Err(Error::ContextTooLong(_))),
                "tcId {}",
                case.tc_id
            );
            continue;
        }
        let signature = signed.expect("signs");
        assert_eq!(
            hex::encode(signature.as_bytes()),
            case.signature.to_lowercase(),
            "tcId {}",
            case.tc_id
        );
    }
    assert!(external > 0, "no external-interface sigGen cases");
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct DsaSigVer {
    tc_id: u64,
    interface: String,
    pk: String,
    message: String,
    context: String,
    signature: String,
    test_passed: bool,
}

#[test]
fn mldsa65_signature_verification_accepts_and_rejects() {
    let cases = load::<DsaSigVer>("mldsa65_sigver.json");
    let (mut accepted, mut rejected) = (0, 0);
    for case in cases.iter().filter(|c| c.interface == "external") {
        let vk = VerifyingKey::from_bytes(&bytes(&case.pk)).expect("pk length");
        let outcome = Signature::from_bytes(&bytes(&case.signature))
            .and_then(|sig| vk.verify(&bytes(&case.message), &bytes(&case.context), &sig));
        match outcome {
            Ok(()) => accepted += 1,
            Err(Error::BadSignature | Error::InvalidLength { .. } | Error::ContextTooLong(_)) => {
                rejected += 1
            }
            Err(other) => panic!("tcId {}: unexpected {other}", case.tc_id),
        }
        assert_eq!(outcome.is_ok(), case.test_passed, "tcId {}", case.tc_id);
    }
    assert!(
        accepted > 0 && rejected > 0,
        "need cases that pass and fail"
    );
}
