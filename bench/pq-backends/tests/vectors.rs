//! Checks the NIST ACVP vectors checked into `keymix/tests/vectors/` against every backend that
//! can run them, so we know both that the transcription is exact and which backend passes what.
//! See `keymix/tests/vectors/README.md` for provenance.

#![allow(deprecated)] // RustCrypto's expanded-key codecs are deprecated but are what ACVP uses.

use std::path::PathBuf;

use serde::Deserialize;

fn vectors<T: for<'de> Deserialize<'de>>(name: &str) -> Vec<T> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../keymix/tests/vectors").join(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let rows: Vec<T> = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert!(!rows.is_empty(), "{name} is empty");
    rows
}

fn h(s: &str) -> Vec<u8> {
    hex::decode(s).expect("hex")
}

/// `assert_eq!` on byte strings with a short message: length and first differing offset.
fn same(got: &[u8], want: &[u8], what: std::fmt::Arguments<'_>) {
    if got != want {
        let i = got.iter().zip(want).position(|(a, b)| a != b).unwrap_or(got.len().min(want.len()));
        panic!(
            "{what}: mismatch at byte {i} (got {} bytes {}.., want {} bytes {}..)",
            got.len(),
            hex::encode(&got[i..got.len().min(i + 8)]),
            want.len(),
            hex::encode(&want[i..want.len().min(i + 8)])
        );
    }
}

fn arr<const N: usize>(s: &str) -> [u8; N] {
    h(s).try_into().unwrap_or_else(|v: Vec<u8>| panic!("expected {N} bytes, got {}", v.len()))
}

// ---------------------------------------------------------------- ML-KEM-768

#[derive(Deserialize)]
struct KemKeyGen {
    #[serde(rename = "tcId")]
    tc_id: u32,
    d: String,
    z: String,
    ek: String,
    dk: String,
}

#[derive(Deserialize)]
struct KemEncap {
    #[serde(rename = "tcId")]
    tc_id: u32,
    /// "valid", or "invalid" for an encapsulation key that must fail the FIPS 203 modulus check.
    result: String,
    ek: String,
    m: String,
    c: String,
    k: String,
}

#[derive(Deserialize)]
struct KemDecap {
    #[serde(rename = "tcId")]
    tc_id: u32,
    dk: String,
    c: String,
    k: String,
}

fn kem_seed(v: &KemKeyGen) -> [u8; 64] {
    let mut seed = [0u8; 64];
    seed[..32].copy_from_slice(&h(&v.d));
    seed[32..].copy_from_slice(&h(&v.z));
    seed
}

#[test]
fn mlkem768_keygen_libcrux() {
    use libcrux_ml_kem::mlkem768;
    for v in vectors::<KemKeyGen>("mlkem768_keygen.json") {
        let seed = kem_seed(&v);
        let mut kps = vec![("auto", mlkem768::generate_key_pair(seed))];
        kps.push(("portable", mlkem768::portable::generate_key_pair(seed)));
        #[cfg(feature = "simd256")]
        kps.push(("avx2", mlkem768::avx2::generate_key_pair(seed)));
        for (path, kp) in kps {
            same(kp.pk().as_slice(), h(&v.ek).as_ref(), format_args!("tc {} ek ({path})", v.tc_id));
            same(kp.sk().as_slice(), h(&v.dk).as_ref(), format_args!("tc {} dk ({path})", v.tc_id));
        }
    }
}

#[test]
fn mlkem768_keygen_rustcrypto() {
    use ml_kem::{DecapsulationKey, ExpandedKeyEncoding, KeyExport, MlKem768};
    for v in vectors::<KemKeyGen>("mlkem768_keygen.json") {
        let dk = DecapsulationKey::<MlKem768>::from_seed(kem_seed(&v).into());
        same(dk.encapsulation_key().to_bytes().as_slice(), h(&v.ek).as_ref(), format_args!("tc {}", v.tc_id));
        same(dk.to_expanded_bytes().as_slice(), h(&v.dk).as_ref(), format_args!("tc {}", v.tc_id));
    }
}

#[test]
fn mlkem768_encap_libcrux() {
    use libcrux_ml_kem::mlkem768;
    for v in vectors::<KemEncap>("mlkem768_encap.json") {
        let ek = mlkem768::MlKem768PublicKey::from(arr::<1184>(&v.ek));
        if v.result == "invalid" {
            // libcrux's encapsulate() does not check; the caller must run validate_public_key().
            assert!(!mlkem768::validate_public_key(&ek), "tc {} ek must be rejected", v.tc_id);
            continue;
        }
        assert!(mlkem768::validate_public_key(&ek), "tc {} ek check", v.tc_id);
        let mut outs = vec![("auto", mlkem768::encapsulate(&ek, arr(&v.m)))];
        outs.push(("portable", mlkem768::portable::encapsulate(&ek, arr(&v.m))));
        #[cfg(feature = "simd256")]
        outs.push(("avx2", mlkem768::avx2::encapsulate(&ek, arr(&v.m))));
        for (path, (ct, k)) in outs {
            same(ct.as_slice().as_slice(), h(&v.c).as_ref(), format_args!("tc {} c ({path})", v.tc_id));
            same(k.as_slice(), h(&v.k).as_ref(), format_args!("tc {} k ({path})", v.tc_id));
        }
    }
}

#[test]
fn mlkem768_encap_rustcrypto() {
    use ml_kem::{EncapsulationKey, Key, MlKem768};
    for v in vectors::<KemEncap>("mlkem768_encap.json") {
        let bytes = Key::<EncapsulationKey<MlKem768>>::try_from(h(&v.ek).as_slice()).expect("len");
        if v.result == "invalid" {
            assert!(EncapsulationKey::<MlKem768>::new(&bytes).is_err(), "tc {} ek must be rejected", v.tc_id);
            continue;
        }
        let ek = EncapsulationKey::<MlKem768>::new(&bytes).expect("valid ek");
        let (ct, k) = ek.encapsulate_deterministic(&arr::<32>(&v.m).into());
        same(ct.as_slice(), h(&v.c).as_ref(), format_args!("tc {}", v.tc_id));
        same(k.as_slice(), h(&v.k).as_ref(), format_args!("tc {}", v.tc_id));
    }
}

/// Whether aws-lc-rs rejects encapsulation keys that fail the modulus check (it should: FIPS 203
/// makes the check mandatory before encapsulation).
#[cfg(feature = "aws-lc")]
#[test]
fn mlkem768_encap_modulus_check_aws_lc() {
    use aws_lc_rs::kem::{EncapsulationKey, ML_KEM_768};
    for v in vectors::<KemEncap>("mlkem768_encap.json") {
        let parsed = EncapsulationKey::new(&ML_KEM_768, &h(&v.ek));
        let ok = parsed.is_ok_and(|ek| ek.encapsulate().is_ok());
        assert_eq!(ok, v.result == "valid", "tc {} aws-lc-rs", v.tc_id);
    }
}

#[test]
fn mlkem768_decap_all_backends() {
    use libcrux_ml_kem::mlkem768;
    for v in vectors::<KemDecap>("mlkem768_decap.json") {
        let want = h(&v.k);
        let sk = mlkem768::MlKem768PrivateKey::from(arr::<2400>(&v.dk));
        let ct = mlkem768::MlKem768Ciphertext::from(arr::<1088>(&v.c));
        assert!(mlkem768::validate_private_key(&sk, &ct), "tc {} dk check", v.tc_id);
        same(mlkem768::decapsulate(&sk, &ct).as_slice(), want.as_ref(), format_args!("tc {} libcrux", v.tc_id));
        same(mlkem768::portable::decapsulate(&sk, &ct).as_slice(), want.as_ref(), format_args!("tc {} portable", v.tc_id));
        #[cfg(feature = "simd256")]
        same(mlkem768::avx2::decapsulate(&sk, &ct).as_slice(), want.as_ref(), format_args!("tc {} avx2", v.tc_id));

        {
            use ml_kem::{Decapsulate, DecapsulationKey, ExpandedKeyEncoding, MlKem768};
            let dk = DecapsulationKey::<MlKem768>::from_expanded_bytes(
                &h(&v.dk).as_slice().try_into().expect("len"),
            )
            .expect("valid dk");
            let ct = ml_kem::Ciphertext::<MlKem768>::try_from(h(&v.c).as_slice()).expect("len");
            same(dk.decapsulate(&ct).as_slice(), want.as_ref(), format_args!("tc {} rustcrypto", v.tc_id));
        }
        #[cfg(feature = "aws-lc")]
        {
            use aws_lc_rs::kem::{Ciphertext, DecapsulationKey, ML_KEM_768};
            let dk = DecapsulationKey::new(&ML_KEM_768, &h(&v.dk)).expect("aws-lc dk");
            let k = dk.decapsulate(Ciphertext::from(h(&v.c).as_slice())).expect("aws-lc decaps");
            same(k.as_ref(), want.as_ref(), format_args!("tc {} aws-lc-rs", v.tc_id));
        }
        {
            use pqcrypto_traits::kem::{Ciphertext, SecretKey, SharedSecret};
            let sk = pqcrypto_mlkem::mlkem768::SecretKey::from_bytes(&h(&v.dk)).expect("len");
            let ct = pqcrypto_mlkem::mlkem768::Ciphertext::from_bytes(&h(&v.c)).expect("len");
            let k = pqcrypto_mlkem::mlkem768::decapsulate(&ct, &sk);
            same(k.as_bytes(), want.as_ref(), format_args!("tc {} pqcrypto", v.tc_id));
        }
    }
}

// ---------------------------------------------------------------- ML-DSA-65

#[derive(Deserialize)]
struct DsaKeyGen {
    #[serde(rename = "tcId")]
    tc_id: u32,
    seed: String,
    pk: String,
    sk: String,
}

#[derive(Deserialize)]
struct DsaSigGen {
    #[serde(rename = "tcId")]
    tc_id: u32,
    /// "valid", or "invalid" when signing must fail (e.g. context longer than 255 bytes).
    result: String,
    interface: String,
    sk: String,
    message: String,
    #[serde(default)]
    context: String,
    rnd: String,
    signature: String,
}

#[derive(Deserialize)]
struct DsaSigVer {
    #[serde(rename = "tcId")]
    tc_id: u32,
    interface: String,
    pk: String,
    message: String,
    #[serde(default)]
    context: String,
    signature: String,
    #[serde(rename = "testPassed")]
    test_passed: bool,
}

#[test]
fn mldsa65_keygen_all_backends() {
    use libcrux_ml_dsa::ml_dsa_65;
    for v in vectors::<DsaKeyGen>("mldsa65_keygen.json") {
        let seed: [u8; 32] = arr(&v.seed);
        let mut kps = vec![("auto", ml_dsa_65::generate_key_pair(seed))];
        kps.push(("portable", ml_dsa_65::portable::generate_key_pair(seed)));
        #[cfg(feature = "simd256")]
        kps.push(("avx2", ml_dsa_65::avx2::generate_key_pair(seed)));
        for (path, kp) in kps {
            same(kp.verification_key.as_slice(), h(&v.pk).as_ref(), format_args!("tc {} pk ({path})", v.tc_id));
            same(kp.signing_key.as_slice(), h(&v.sk).as_ref(), format_args!("tc {} sk ({path})", v.tc_id));
        }

        let kp = ml_dsa::SigningKey::<ml_dsa::MlDsa65>::from_seed(&seed.into());
        let vk = ml_dsa::Keypair::verifying_key(&kp).encode();
        same(vk.as_slice(), h(&v.pk).as_ref(), format_args!("tc {} rustcrypto pk", v.tc_id));
        same(kp.expanded_key().to_expanded().as_slice(), h(&v.sk).as_ref(), format_args!("tc {} rustcrypto sk", v.tc_id));

        #[cfg(feature = "aws-lc")]
        {
            use aws_lc_rs::signature::{KeyPair, ML_DSA_65_SIGNING, PqdsaKeyPair};
            let kp = PqdsaKeyPair::from_seed(&ML_DSA_65_SIGNING, &seed).expect("aws-lc keygen");
            same(kp.public_key().as_ref(), h(&v.pk).as_ref(), format_args!("tc {} aws-lc-rs pk", v.tc_id));
        }
    }
}

#[test]
fn mldsa65_siggen_libcrux_and_rustcrypto() {
    use libcrux_ml_dsa::ml_dsa_65;
    for v in vectors::<DsaSigGen>("mldsa65_siggen.json") {
        let sk = ml_dsa_65::MLDSA65SigningKey::new(arr(&v.sk));
        let (msg, ctx, rnd) = (h(&v.message), h(&v.context), arr::<32>(&v.rnd));
        let want = h(&v.signature);
        let external = match v.interface.as_str() {
            "external" => true,
            "internal" => false,
            other => panic!("tc {}: interface {other}", v.tc_id),
        };
        if v.result == "invalid" {
            assert!(ml_dsa_65::sign(&sk, &msg, &ctx, rnd).is_err(), "tc {} libcrux must refuse", v.tc_id);
            let esk = ml_dsa::ExpandedSigningKey::<ml_dsa::MlDsa65>::from_expanded(
                &h(&v.sk).as_slice().try_into().expect("len"),
            );
            assert!(esk.sign_deterministic(&msg, &ctx).is_err(), "tc {} rustcrypto must refuse", v.tc_id);
            continue;
        }
        let sig = if external {
            ml_dsa_65::sign(&sk, &msg, &ctx, rnd)
        } else {
            ml_dsa_65::sign_internal(&sk, &msg, rnd)
        }
        .expect("libcrux sign");
        same(sig.as_slice(), want.as_ref(), format_args!("tc {} libcrux", v.tc_id));
        if external {
            let sig = ml_dsa_65::portable::sign(&sk, &msg, &ctx, rnd).expect("sign");
            same(sig.as_slice(), want.as_ref(), format_args!("tc {} portable", v.tc_id));
            #[cfg(feature = "simd256")]
            {
                let sig = ml_dsa_65::avx2::sign(&sk, &msg, &ctx, rnd).expect("sign");
                same(sig.as_slice(), want.as_ref(), format_args!("tc {} avx2", v.tc_id));
            }
        }

        let esk = ml_dsa::ExpandedSigningKey::<ml_dsa::MlDsa65>::from_expanded(
            &h(&v.sk).as_slice().try_into().expect("len"),
        );
        let ctx_len = u8::try_from(ctx.len()).expect("ctx");
        let sig = if external {
            esk.sign_internal(&[&[0, ctx_len], &ctx, &msg], &rnd.into())
        } else {
            esk.sign_internal(&[&msg], &rnd.into())
        };
        same(sig.encode().as_slice(), want.as_ref(), format_args!("tc {} rustcrypto", v.tc_id));
    }
}

#[test]
fn mldsa65_sigver_all_backends() {
    use libcrux_ml_dsa::ml_dsa_65;
    for v in vectors::<DsaSigVer>("mldsa65_sigver.json") {
        let (pk, msg, ctx, sig) = (h(&v.pk), h(&v.message), h(&v.context), h(&v.signature));
        let external = v.interface == "external";
        let expect = v.test_passed;

        let lc = match (<[u8; 1952]>::try_from(pk.as_slice()), <[u8; 3309]>::try_from(sig.as_slice())) {
            (Ok(pk), Ok(sig)) => {
                let (pk, sig) = (ml_dsa_65::MLDSA65VerificationKey::new(pk), ml_dsa_65::MLDSA65Signature::new(sig));
                if external {
                    ml_dsa_65::verify(&pk, &msg, &ctx, &sig).is_ok()
                } else {
                    ml_dsa_65::verify_internal(&pk, &msg, &sig).is_ok()
                }
            }
            _ => false,
        };
        assert_eq!(lc, expect, "tc {} libcrux", v.tc_id);

        let rc = match (
            ml_dsa::EncodedVerifyingKey::<ml_dsa::MlDsa65>::try_from(pk.as_slice()),
            ml_dsa::EncodedSignature::<ml_dsa::MlDsa65>::try_from(sig.as_slice()),
        ) {
            (Ok(pk), Ok(sig)) => match ml_dsa::Signature::<ml_dsa::MlDsa65>::decode(&sig) {
                Some(sig) => {
                    let vk = ml_dsa::VerifyingKey::<ml_dsa::MlDsa65>::decode(&pk);
                    if external { vk.verify_with_context(&msg, &ctx, &sig) } else { vk.verify_internal(&msg, &sig) }
                }
                None => false,
            },
            _ => false,
        };
        assert_eq!(rc, expect, "tc {} rustcrypto", v.tc_id);

        if external {
            use pqcrypto_traits::sign::{DetachedSignature, PublicKey};
            let ok = match (
                pqcrypto_mldsa::mldsa65::PublicKey::from_bytes(&pk),
                pqcrypto_mldsa::mldsa65::DetachedSignature::from_bytes(&sig),
            ) {
                (Ok(pk), Ok(sig)) => {
                    pqcrypto_mldsa::mldsa65::verify_detached_signature_ctx(&sig, &msg, &ctx, &pk).is_ok()
                }
                _ => false,
            };
            assert_eq!(ok, expect, "tc {} pqcrypto", v.tc_id);
        }
        #[cfg(feature = "aws-lc")]
        if external && ctx.is_empty() {
            use aws_lc_rs::signature::{ML_DSA_65, UnparsedPublicKey};
            let ok = UnparsedPublicKey::new(&ML_DSA_65, &pk).verify(&msg, &sig).is_ok();
            assert_eq!(ok, expect, "tc {} aws-lc-rs", v.tc_id);
        }
    }
}

/// Round-trip every backend through the shared wrappers, and cross-check that the seeded
/// backends agree byte for byte (the unseeded ones must at least interoperate).
#[test]
fn wrappers_roundtrip_and_interoperate() {
    use pq_backends::dsa::{self, Dsa};
    use pq_backends::kem::{self, Kem};
    use pq_backends::{BENCH_CTX, BENCH_MSG};

    fn kem_rt<K: Kem>() {
        let (ek, dk) = K::keygen([7; 64]);
        let (ct, k1) = K::encaps(&ek, [9; 32]);
        assert_eq!(K::decaps(&dk, &ct), k1, "{}", K::NAME);
    }
    fn dsa_rt<D: Dsa>() {
        let (vk, sk) = D::keygen([7; 32]);
        let sig = D::sign(&sk, BENCH_MSG, BENCH_CTX, [0; 32]);
        // (aws-lc-rs has no context API and uses the empty context for both.)
        assert!(D::verify(&vk, BENCH_MSG, BENCH_CTX, &sig), "{}", D::NAME);
        assert!(!D::verify(&vk, &BENCH_MSG[1..], BENCH_CTX, &sig), "{}", D::NAME);
    }
    kem_rt::<kem::LibcruxPortable>();
    kem_rt::<kem::LibcruxAuto>();
    #[cfg(feature = "simd256")]
    kem_rt::<kem::LibcruxAvx2>();
    kem_rt::<kem::RustCrypto>();
    #[cfg(feature = "aws-lc")]
    kem_rt::<kem::AwsLc>();
    kem_rt::<kem::Pqcrypto>();
    dsa_rt::<dsa::LibcruxPortable>();
    dsa_rt::<dsa::LibcruxAuto>();
    #[cfg(feature = "simd256")]
    dsa_rt::<dsa::LibcruxAvx2>();
    dsa_rt::<dsa::RustCrypto>();
    #[cfg(feature = "aws-lc")]
    dsa_rt::<dsa::AwsLc>();
    dsa_rt::<dsa::Pqcrypto>();

    // Seeded backends agree exactly.
    let (ek_a, _) = kem::LibcruxPortable::keygen([3; 64]);
    let (ek_b, dk_b) = kem::RustCrypto::keygen([3; 64]);
    assert_eq!(ek_a, ek_b);
    let (ct, k) = kem::LibcruxPortable::encaps(&ek_a, [4; 32]);
    let ct_rc = ml_kem::Ciphertext::<ml_kem::MlKem768>::try_from(ct.as_slice().as_slice()).expect("len");
    assert_eq!(kem::RustCrypto::decaps(&dk_b, &ct_rc), k);
    let (vk_a, sk_a) = dsa::LibcruxPortable::keygen([5; 32]);
    let (vk_b, sk_b) = dsa::RustCrypto::keygen([5; 32]);
    assert_eq!(vk_a, vk_b);
    let sig_a = dsa::LibcruxPortable::sign(&sk_a, BENCH_MSG, BENCH_CTX, [6; 32]);
    let sig_b = dsa::RustCrypto::sign(&sk_b, BENCH_MSG, BENCH_CTX, [6; 32]);
    assert_eq!(sig_a.as_slice(), sig_b.encode().as_slice());
    // An unseeded C backend's signature verifies under libcrux.
    let (vk_p, sk_p) = dsa::Pqcrypto::keygen([0; 32]);
    let sig_p = dsa::Pqcrypto::sign(&sk_p, BENCH_MSG, BENCH_CTX, [0; 32]);
    let sig_p = libcrux_ml_dsa::ml_dsa_65::MLDSA65Signature::new(
        pqcrypto_traits::sign::DetachedSignature::as_bytes(&sig_p).try_into().expect("len"),
    );
    assert!(dsa::LibcruxPortable::verify(&vk_p, BENCH_MSG, BENCH_CTX, &sig_p));
}
