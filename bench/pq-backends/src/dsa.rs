//! ML-DSA-65 (FIPS 204, pure / "external" interface) behind one trait.
//!
//! Key forms are chosen as qgw would hold them: the signing key is long-lived, so a backend may
//! keep it pre-parsed; the peer's verification key arrives as bytes, so `verify` includes parsing.

/// FIPS 204 sizes for ML-DSA-65.
pub const VK_LEN: usize = 1952;
pub const SK_LEN: usize = 4032;
pub const SIG_LEN: usize = 3309;

/// One ML-DSA-65 implementation. `keygen` takes the 32-byte seed xi, `sign` the 32-byte `rnd`
/// (zero = deterministic variant): backends without a seeded API ignore them.
pub trait Dsa {
    const NAME: &'static str;
    type Sk;
    type Sig;
    fn keygen(seed: [u8; 32]) -> (Vec<u8>, Self::Sk);
    fn sign(sk: &Self::Sk, msg: &[u8], ctx: &[u8], rnd: [u8; 32]) -> Self::Sig;
    fn verify(vk: &[u8], msg: &[u8], ctx: &[u8], sig: &Self::Sig) -> bool;
}

macro_rules! libcrux_dsa {
    ($name:ident, $label:literal, $($path:ident)::+) => {
        #[doc = concat!("libcrux-ml-dsa 0.0.11, `", $label, "` code path.")]
        #[derive(Debug)]
        pub struct $name;
        impl Dsa for $name {
            const NAME: &'static str = $label;
            type Sk = libcrux_ml_dsa::ml_dsa_65::MLDSA65SigningKey;
            type Sig = libcrux_ml_dsa::ml_dsa_65::MLDSA65Signature;
            fn keygen(seed: [u8; 32]) -> (Vec<u8>, Self::Sk) {
                let kp = $($path)::+::generate_key_pair(seed);
                (kp.verification_key.as_slice().to_vec(), kp.signing_key)
            }
            fn sign(sk: &Self::Sk, msg: &[u8], ctx: &[u8], rnd: [u8; 32]) -> Self::Sig {
                $($path)::+::sign(sk, msg, ctx, rnd).expect("libcrux sign")
            }
            fn verify(vk: &[u8], msg: &[u8], ctx: &[u8], sig: &Self::Sig) -> bool {
                let Ok(vk) = <[u8; VK_LEN]>::try_from(vk) else { return false };
                let vk = libcrux_ml_dsa::ml_dsa_65::MLDSA65VerificationKey::new(vk);
                $($path)::+::verify(&vk, msg, ctx, sig).is_ok()
            }
        }
    };
}

libcrux_dsa!(LibcruxPortable, "libcrux-portable", libcrux_ml_dsa::ml_dsa_65::portable);
#[cfg(feature = "simd256")]
libcrux_dsa!(LibcruxAvx2, "libcrux-avx2", libcrux_ml_dsa::ml_dsa_65::avx2);
// The top-level API: runtime CPU detection (AVX2 if compiled with `simd256` and present).
libcrux_dsa!(LibcruxAuto, "libcrux-auto", libcrux_ml_dsa::ml_dsa_65);

/// RustCrypto `ml-dsa` 0.1 (pure Rust).
#[derive(Debug)]
pub struct RustCrypto;
impl Dsa for RustCrypto {
    const NAME: &'static str = "rustcrypto";
    type Sk = ml_dsa::ExpandedSigningKey<ml_dsa::MlDsa65>;
    type Sig = ml_dsa::Signature<ml_dsa::MlDsa65>;
    fn keygen(seed: [u8; 32]) -> (Vec<u8>, Self::Sk) {
        let kp = ml_dsa::SigningKey::<ml_dsa::MlDsa65>::from_seed(&seed.into());
        let vk = ml_dsa::Keypair::verifying_key(&kp).encode().to_vec();
        (vk, kp.expanded_key().clone())
    }
    fn sign(sk: &Self::Sk, msg: &[u8], ctx: &[u8], rnd: [u8; 32]) -> Self::Sig {
        // FIPS 204 Algorithm 2: M' = 0 || |ctx| || ctx || M.
        let ctx_len = u8::try_from(ctx.len()).expect("context <= 255 bytes");
        sk.sign_internal(&[&[0, ctx_len], ctx, msg], &rnd.into())
    }
    fn verify(vk: &[u8], msg: &[u8], ctx: &[u8], sig: &Self::Sig) -> bool {
        let Ok(enc) = ml_dsa::EncodedVerifyingKey::<ml_dsa::MlDsa65>::try_from(vk) else {
            return false;
        };
        ml_dsa::VerifyingKey::<ml_dsa::MlDsa65>::decode(&enc).verify_with_context(msg, ctx, sig)
    }
}

/// aws-lc-rs (AWS-LC). Keygen from seed works; signing is hedged with its own RNG and the API
/// has no context string (empty context is used, `ctx` is ignored).
#[cfg(feature = "aws-lc")]
#[derive(Debug)]
pub struct AwsLc;
#[cfg(feature = "aws-lc")]
impl Dsa for AwsLc {
    const NAME: &'static str = "aws-lc-rs";
    type Sk = aws_lc_rs::signature::PqdsaKeyPair;
    type Sig = Vec<u8>;
    fn keygen(seed: [u8; 32]) -> (Vec<u8>, Self::Sk) {
        use aws_lc_rs::signature::KeyPair;
        let kp =
            aws_lc_rs::signature::PqdsaKeyPair::from_seed(&aws_lc_rs::signature::ML_DSA_65_SIGNING, &seed)
                .expect("aws-lc keygen");
        (kp.public_key().as_ref().to_vec(), kp)
    }
    fn sign(sk: &Self::Sk, msg: &[u8], _ctx: &[u8], _rnd: [u8; 32]) -> Self::Sig {
        let mut sig = vec![0u8; SIG_LEN];
        sk.sign(msg, &mut sig).expect("aws-lc sign");
        sig
    }
    fn verify(vk: &[u8], msg: &[u8], _ctx: &[u8], sig: &Self::Sig) -> bool {
        // No context API: verifies against the empty context, like `sign` signs with it.
        aws_lc_rs::signature::UnparsedPublicKey::new(&aws_lc_rs::signature::ML_DSA_65, vk)
            .verify(msg, sig)
            .is_ok()
    }
}

/// pqcrypto-mldsa 0.1 (PQClean C; picks its AVX2 build at run time). No seeded API; hedged.
#[derive(Debug)]
pub struct Pqcrypto;
impl Dsa for Pqcrypto {
    const NAME: &'static str = "pqcrypto";
    type Sk = pqcrypto_mldsa::mldsa65::SecretKey;
    type Sig = pqcrypto_mldsa::mldsa65::DetachedSignature;
    fn keygen(_seed: [u8; 32]) -> (Vec<u8>, Self::Sk) {
        use pqcrypto_traits::sign::PublicKey;
        let (pk, sk) = pqcrypto_mldsa::mldsa65::keypair();
        (pk.as_bytes().to_vec(), sk)
    }
    fn sign(sk: &Self::Sk, msg: &[u8], ctx: &[u8], _rnd: [u8; 32]) -> Self::Sig {
        pqcrypto_mldsa::mldsa65::detached_sign_ctx(msg, ctx, sk)
    }
    fn verify(vk: &[u8], msg: &[u8], ctx: &[u8], sig: &Self::Sig) -> bool {
        use pqcrypto_traits::sign::PublicKey;
        let Ok(pk) = pqcrypto_mldsa::mldsa65::PublicKey::from_bytes(vk) else { return false };
        pqcrypto_mldsa::mldsa65::verify_detached_signature_ctx(sig, msg, ctx, &pk).is_ok()
    }
}
