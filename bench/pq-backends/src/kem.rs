//! ML-KEM-768 (FIPS 203) behind one trait.

/// FIPS 203 sizes for ML-KEM-768.
pub const EK_LEN: usize = 1184;
pub const DK_LEN: usize = 2400;
pub const CT_LEN: usize = 1088;

/// One ML-KEM-768 implementation. `keygen` takes `d || z` (64 bytes), `encaps` takes `m` (32 bytes):
/// backends without a seeded API ignore them. The encapsulation key travels as bytes (it is the
/// peer's ephemeral key), so `encaps` includes parsing it; the decapsulation key stays in the
/// backend's own form.
pub trait Kem {
    const NAME: &'static str;
    type Dk;
    type Ct;
    fn keygen(seed: [u8; 64]) -> (Vec<u8>, Self::Dk);
    fn encaps(ek: &[u8], m: [u8; 32]) -> (Self::Ct, [u8; 32]);
    fn decaps(dk: &Self::Dk, ct: &Self::Ct) -> [u8; 32];
}

macro_rules! libcrux_kem {
    ($name:ident, $label:literal, $($path:ident)::+) => {
        #[doc = concat!("libcrux-ml-kem 0.0.11, `", $label, "` code path.")]
        #[derive(Debug)]
        pub struct $name;
        impl Kem for $name {
            const NAME: &'static str = $label;
            type Dk = libcrux_ml_kem::mlkem768::MlKem768PrivateKey;
            type Ct = libcrux_ml_kem::mlkem768::MlKem768Ciphertext;
            fn keygen(seed: [u8; 64]) -> (Vec<u8>, Self::Dk) {
                let (sk, pk) = $($path)::+::generate_key_pair(seed).into_parts();
                (pk.as_slice().to_vec(), sk)
            }
            fn encaps(ek: &[u8], m: [u8; 32]) -> (Self::Ct, [u8; 32]) {
                let ek = libcrux_ml_kem::mlkem768::MlKem768PublicKey::try_from(ek).expect("ek length");
                $($path)::+::encapsulate(&ek, m)
            }
            fn decaps(dk: &Self::Dk, ct: &Self::Ct) -> [u8; 32] {
                $($path)::+::decapsulate(dk, ct)
            }
        }
    };
}

libcrux_kem!(LibcruxPortable, "libcrux-portable", libcrux_ml_kem::mlkem768::portable);
#[cfg(feature = "simd256")]
libcrux_kem!(LibcruxAvx2, "libcrux-avx2", libcrux_ml_kem::mlkem768::avx2);
// The top-level API: runtime CPU detection (AVX2 if compiled with `simd256` and present).
libcrux_kem!(LibcruxAuto, "libcrux-auto", libcrux_ml_kem::mlkem768);

/// RustCrypto `ml-kem` 0.3 (pure Rust).
#[derive(Debug)]
pub struct RustCrypto;
impl Kem for RustCrypto {
    const NAME: &'static str = "rustcrypto";
    type Dk = ml_kem::DecapsulationKey<ml_kem::MlKem768>;
    type Ct = ml_kem::Ciphertext<ml_kem::MlKem768>;
    fn keygen(seed: [u8; 64]) -> (Vec<u8>, Self::Dk) {
        use ml_kem::KeyExport;
        let dk = ml_kem::DecapsulationKey::<ml_kem::MlKem768>::from_seed(seed.into());
        (dk.encapsulation_key().to_bytes().to_vec(), dk)
    }
    fn encaps(ek: &[u8], m: [u8; 32]) -> (Self::Ct, [u8; 32]) {
        let ek = ml_kem::Key::<ml_kem::EncapsulationKey<ml_kem::MlKem768>>::try_from(ek).expect("ek length");
        let ek = ml_kem::EncapsulationKey::<ml_kem::MlKem768>::new(&ek).expect("valid ek");
        let (ct, k) = ek.encapsulate_deterministic(&m.into());
        (ct, k.into())
    }
    fn decaps(dk: &Self::Dk, ct: &Self::Ct) -> [u8; 32] {
        use ml_kem::Decapsulate;
        dk.decapsulate(ct).into()
    }
}

/// aws-lc-rs (AWS-LC, C + assembly). No seeded API: ignores `seed` and `m`.
#[cfg(feature = "aws-lc")]
#[derive(Debug)]
pub struct AwsLc;
#[cfg(feature = "aws-lc")]
impl Kem for AwsLc {
    const NAME: &'static str = "aws-lc-rs";
    type Dk = aws_lc_rs::kem::DecapsulationKey;
    type Ct = Vec<u8>;
    fn keygen(_seed: [u8; 64]) -> (Vec<u8>, Self::Dk) {
        let dk = aws_lc_rs::kem::DecapsulationKey::generate(&aws_lc_rs::kem::ML_KEM_768)
            .expect("aws-lc keygen");
        let ek = dk.encapsulation_key().expect("aws-lc ek");
        (ek.key_bytes().expect("aws-lc ek bytes").as_ref().to_vec(), dk)
    }
    fn encaps(ek: &[u8], _m: [u8; 32]) -> (Self::Ct, [u8; 32]) {
        let ek = aws_lc_rs::kem::EncapsulationKey::new(&aws_lc_rs::kem::ML_KEM_768, ek)
            .expect("aws-lc ek");
        let (ct, k) = ek.encapsulate().expect("aws-lc encaps");
        (ct.as_ref().to_vec(), k.as_ref().try_into().expect("32-byte key"))
    }
    fn decaps(dk: &Self::Dk, ct: &Self::Ct) -> [u8; 32] {
        let k = dk
            .decapsulate(aws_lc_rs::kem::Ciphertext::from(ct.as_slice()))
            .expect("aws-lc decaps");
        k.as_ref().try_into().expect("32-byte key")
    }
}

/// pqcrypto-mlkem 0.1 (PQClean C; picks its AVX2 build at run time). No seeded API.
#[derive(Debug)]
pub struct Pqcrypto;
impl Kem for Pqcrypto {
    const NAME: &'static str = "pqcrypto";
    type Dk = pqcrypto_mlkem::mlkem768::SecretKey;
    type Ct = pqcrypto_mlkem::mlkem768::Ciphertext;
    fn keygen(_seed: [u8; 64]) -> (Vec<u8>, Self::Dk) {
        use pqcrypto_traits::kem::PublicKey;
        let (pk, sk) = pqcrypto_mlkem::mlkem768::keypair();
        (pk.as_bytes().to_vec(), sk)
    }
    fn encaps(ek: &[u8], _m: [u8; 32]) -> (Self::Ct, [u8; 32]) {
        use pqcrypto_traits::kem::{PublicKey, SharedSecret};
        let ek = pqcrypto_mlkem::mlkem768::PublicKey::from_bytes(ek).expect("ek length");
        let (k, ct) = pqcrypto_mlkem::mlkem768::encapsulate(&ek);
        (ct, k.as_bytes().try_into().expect("32-byte key"))
    }
    fn decaps(dk: &Self::Dk, ct: &Self::Ct) -> [u8; 32] {
        use pqcrypto_traits::kem::SharedSecret;
        let k = pqcrypto_mlkem::mlkem768::decapsulate(ct, dk);
        k.as_bytes().try_into().expect("32-byte key")
    }
}
