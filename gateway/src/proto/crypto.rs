//! Handshake primitives of the whitepaper §5.4: `HASH`, `HMAC`, `MAC`, `KDF1..3`, `DH`, `AEAD`,
//! `XAEAD`, and the injected randomness the handshake and cookies draw from.
//!
//! `HMAC` is HMAC (RFC 2104) over BLAKE2s-256 with its 64-byte block; `MAC` is *keyed* BLAKE2s with a
//! 16-byte output (not HMAC). `KDFn(key, input)` is `τ0 = HMAC(key, input)`, `τ1 = HMAC(τ0, 0x1)`,
//! `τi = HMAC(τ0, τ(i-1) || i)`. The data-path AEAD is separate ([`super::aead`]) so its backend can be
//! chosen by measurement; the handshake uses RustCrypto ChaCha20-Poly1305 here.

use blake2::digest::{KeyInit, Mac, consts::U16};
use blake2::{Blake2s256, Blake2sMac, Digest};
use chacha20poly1305::aead::AeadInOut;
use chacha20poly1305::{ChaCha20Poly1305, Nonce, Tag, XChaCha20Poly1305, XNonce};
use hmac::SimpleHmac;
use x25519_dalek::{PublicKey, StaticSecret};
use zeroize::Zeroize;

use super::constants::{KEY_LEN, MAC_LEN, TAG_LEN, XNONCE_LEN};
use super::secret::Secret;
use crate::error::DropReason;

/// `HASH(parts[0] || parts[1] || ..)`: BLAKE2s-256.
pub fn hash(parts: &[&[u8]]) -> [u8; KEY_LEN] {
    let mut h = Blake2s256::new();
    for p in parts {
        Digest::update(&mut h, p);
    }
    h.finalize().into()
}

/// `MAC(key, parts..)`: keyed BLAKE2s with a 16-byte output (mac1, mac2, cookie; §5.4.4, §5.4.7).
pub fn mac(key: &[u8], parts: &[&[u8]]) -> [u8; MAC_LEN] {
    // Keys are 16 (cookie) or 32 bytes (mac1 key, cookie secret): both within BLAKE2s' key limit.
    let Ok(mut m) = <Blake2sMac<U16> as KeyInit>::new_from_slice(key) else {
        unreachable!("keyed BLAKE2s accepts keys up to 32 bytes; callers pass 16 or 32")
    };
    for p in parts {
        Mac::update(&mut m, p);
    }
    m.finalize().into_bytes().into()
}

/// `HMAC(key, parts..)`: HMAC-BLAKE2s-256 (§5.4, "HMAC").
fn hmac(key: &[u8], parts: &[&[u8]]) -> Secret<KEY_LEN> {
    // HMAC accepts keys of any length (long keys are hashed first).
    let Ok(mut m) = <SimpleHmac<Blake2s256> as KeyInit>::new_from_slice(key) else {
        unreachable!("HMAC accepts keys of every length")
    };
    for p in parts {
        Mac::update(&mut m, p);
    }
    Secret::new(m.finalize().into_bytes().into())
}

/// `KDF1(key, input)` (§5.4).
pub fn kdf1(key: &[u8], input: &[u8]) -> Secret<KEY_LEN> {
    let t0 = hmac(key, &[input]);
    hmac(t0.expose(), &[&[1]])
}

/// `KDF2(key, input)` (§5.4).
pub fn kdf2(key: &[u8], input: &[u8]) -> (Secret<KEY_LEN>, Secret<KEY_LEN>) {
    let t0 = hmac(key, &[input]);
    let t1 = hmac(t0.expose(), &[&[1]]);
    let t2 = hmac(t0.expose(), &[t1.expose(), &[2]]);
    (t1, t2)
}

/// `KDF3(key, input)` (§5.4).
pub fn kdf3(key: &[u8], input: &[u8]) -> (Secret<KEY_LEN>, Secret<KEY_LEN>, Secret<KEY_LEN>) {
    let t0 = hmac(key, &[input]);
    let t1 = hmac(t0.expose(), &[&[1]]);
    let t2 = hmac(t0.expose(), &[t1.expose(), &[2]]);
    let t3 = hmac(t0.expose(), &[t2.expose(), &[3]]);
    (t1, t2, t3)
}

/// `DH(private, public)`: X25519. A non-contributory result (a low-order public key) is refused, as
/// the kernel does (`noise.c` `mix_dh`), because it would make the handshake keys public.
pub fn dh(private: &StaticSecret, public: &[u8; KEY_LEN]) -> Result<Secret<KEY_LEN>, DropReason> {
    let shared = remembered(private, public, || {
        let shared = private.diffie_hellman(&PublicKey::from(*public));
        shared.was_contributory().then(|| shared.to_bytes())
    });
    shared.map(Secret::new).ok_or(DropReason::LowOrderPoint)
}

/// The X25519 public key of `secret` (static keys, handshake ephemerals).
pub fn public_key(secret: &StaticSecret) -> [u8; KEY_LEN] {
    let compute = || PublicKey::from(secret).to_bytes();
    remembered(secret, &BASEPOINT, || Some(compute())).unwrap_or_else(compute)
}

/// The u-coordinate of the X25519 base point (RFC 7748 §4.1): `public_key(s)` is `X25519(s, 9)`,
/// which is how [`remembered`] files it.
const BASEPOINT: [u8; KEY_LEN] = {
    let mut b = [0; KEY_LEN];
    b[0] = 9;
    b
};

/// An X25519 result: `compute()`. Fuzz builds look it up in a memo first ([`memo`]).
#[cfg(not(fuzzing))]
#[inline(always)]
fn remembered(
    _scalar: &StaticSecret,
    _point: &[u8; KEY_LEN],
    compute: impl FnOnce() -> Option<[u8; KEY_LEN]>,
) -> Option<[u8; KEY_LEN]> {
    compute()
}

#[cfg(fuzzing)]
use memo::remembered;

#[cfg(any(fuzzing, test))]
#[path = "crypto_memo.rs"]
mod memo;

/// The 96-bit nonce of §5.4: 32 zero bits then the 64-bit little-endian counter.
pub fn nonce(counter: u64) -> [u8; 12] {
    let mut n = [0u8; 12];
    n[4..].copy_from_slice(&counter.to_le_bytes());
    n
}

/// `AEAD(key, counter, plain, aad)` in place; returns the tag (handshake messages only).
pub fn aead_seal(key: &Secret<KEY_LEN>, counter: u64, aad: &[u8], buf: &mut [u8]) -> [u8; TAG_LEN] {
    let cipher = ChaCha20Poly1305::new(key.expose().into());
    let n = nonce(counter);
    match cipher.encrypt_inout_detached(&Nonce::from(n), aad, buf.into()) {
        Ok(tag) => tag.into(),
        Err(_) => unreachable!("handshake payloads are far below the ChaCha20 length limit"),
    }
}

/// Opens an `AEAD` ciphertext in place, verifying `tag` (constant time inside the AEAD).
pub fn aead_open(
    key: &Secret<KEY_LEN>,
    counter: u64,
    aad: &[u8],
    buf: &mut [u8],
    tag: &[u8; TAG_LEN],
) -> Result<(), DropReason> {
    let cipher = ChaCha20Poly1305::new(key.expose().into());
    let n = nonce(counter);
    cipher
        .decrypt_inout_detached(&Nonce::from(n), aad, buf.into(), &Tag::from(*tag))
        .map_err(|_| DropReason::DecryptFailed)
}

/// `XAEAD(key, nonce, plain, aad)` in place (cookie reply, §5.4.7).
pub fn xaead_seal(
    key: &[u8; KEY_LEN],
    nonce: &[u8; XNONCE_LEN],
    aad: &[u8],
    buf: &mut [u8],
) -> [u8; TAG_LEN] {
    let cipher = XChaCha20Poly1305::new(key.into());
    match cipher.encrypt_inout_detached(&XNonce::from(*nonce), aad, buf.into()) {
        Ok(tag) => tag.into(),
        Err(_) => unreachable!("a 16-byte cookie is far below the XChaCha20 length limit"),
    }
}

/// Opens an `XAEAD` ciphertext in place.
pub fn xaead_open(
    key: &[u8; KEY_LEN],
    nonce: &[u8; XNONCE_LEN],
    aad: &[u8],
    buf: &mut [u8],
    tag: &[u8; TAG_LEN],
) -> Result<(), DropReason> {
    let cipher = XChaCha20Poly1305::new(key.into());
    cipher
        .decrypt_inout_detached(&XNonce::from(*nonce), aad, buf.into(), &Tag::from(*tag))
        .map_err(|_| DropReason::DecryptFailed)
}

/// Randomness is injected (ephemeral keys, sender indices, cookie secrets, retry jitter) through
/// the workspace's one trait, so tests are deterministic; the daemon uses [`OsEntropy`].
pub use keymix::{Entropy, OsEntropy, SeededEntropy};

/// A fresh X25519 private key from `rng`.
pub fn x25519_secret(rng: &mut (impl Entropy + ?Sized)) -> StaticSecret {
    let mut b = [0u8; KEY_LEN];
    rng.fill(&mut b);
    let s = StaticSecret::from(b);
    b.zeroize();
    s
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::proto::constants::{CONSTRUCTION, IDENTIFIER};

    fn h(s: &str) -> Vec<u8> {
        hex::decode(s).unwrap()
    }

    /// wireguard-go `device/kdf_test.go` (`TestKDF`): key, input, τ1, τ2, τ3.
    const KDF_VECTORS: [(&str, &str, &str, &str, &str); 3] = [
        (
            "746573742d6b6579",
            "746573742d696e707574",
            "6f0e5ad38daba1bea8a0d213688736f19763239305e0f58aba697f9ffc41c633",
            "df1194df20802a4fe594cde27e92991c8cae66c366e8106aaa937a55fa371e8a",
            "fac6e2745a325f5dc5d11a5b165aad08b0ada28e7b4e666b7c077934a4d76c24",
        ),
        (
            "776972656775617264",
            "776972656775617264",
            "491d43bbfdaa8750aaf535e334ecbfe5129967cd64635101c566d4caefda96e8",
            "1e71a379baefd8a79aa4662212fcafe19a23e2b609a3db7d6bcba8f560e3d25f",
            "31e1ae48bddfbe5de38f295e5452b1909a1b4e38e183926af3780b0c1e1f0160",
        ),
        (
            "",
            "",
            "8387b46bf43eccfcf349552a095d8315c4055beb90208fb1be23b894bc2ed5d0",
            "58a0e5f6faefccf4807bff1f05fa8a9217945762040bcec2f4b4a62bdfe0e86e",
            "0ce6ea98ec548f8e281e93e32db65621c45eb18dc6f0a7ad94178610a2f7338e",
        ),
    ];

    #[test]
    fn kdf_matches_wireguard_go_vectors() {
        for (key, input, t1, t2, t3) in KDF_VECTORS {
            let (key, input) = (h(key), h(input));
            let (a, b, c) = kdf3(&key, &input);
            assert_eq!(a.expose().as_slice(), h(t1));
            assert_eq!(b.expose().as_slice(), h(t2));
            assert_eq!(c.expose().as_slice(), h(t3));
            let (a, b) = kdf2(&key, &input);
            assert_eq!(a.expose().as_slice(), h(t1));
            assert_eq!(b.expose().as_slice(), h(t2));
            assert_eq!(kdf1(&key, &input).expose().as_slice(), h(t1));
        }
    }

    /// The initial chaining key and hash every WireGuard implementation starts from (§5.4:
    /// `C = HASH(CONSTRUCTION)`, `H = HASH(C || IDENTIFIER)`), as pinned by wireguard-go's
    /// `noise_test`-style tests and boringtun.
    #[test]
    fn construction_and_identifier_hashes() {
        let c = hash(&[CONSTRUCTION]);
        assert_eq!(
            c.as_slice(),
            h("60e26daef327efc02ec335e2a025d2d016eb4206f87277f52d38d1988b78cd36")
        );
        let i = hash(&[&c, IDENTIFIER]);
        assert_eq!(
            i.as_slice(),
            h("2211b361081ac566691243db458ad5322d9c6c662293e8b70ee19c65ba079ef3")
        );
    }

    /// RFC 7693 Appendix B style check that `mac` is keyed BLAKE2s (not HMAC): keyed BLAKE2s-128 of
    /// "abc" under key 0..32 differs from the unkeyed hash and from HMAC.
    #[test]
    fn mac_is_keyed_blake2s_not_hmac() {
        let key: Vec<u8> = (0u8..32).collect();
        let m = mac(&key, &[b"ab", b"c"]);
        assert_eq!(m, mac(&key, &[b"abc"]));
        assert_ne!(m[..], hmac(&key, &[b"abc"]).expose()[..16]);
        assert_ne!(m[..], hash(&[b"abc"])[..16]);
    }

    #[test]
    fn aead_round_trip_and_tamper() {
        let key = Secret::new([7u8; 32]);
        let mut buf = *b"timestamp!!!";
        let tag = aead_seal(&key, 0, b"aad", &mut buf);
        let mut copy = buf;
        aead_open(&key, 0, b"aad", &mut copy, &tag).unwrap();
        assert_eq!(&copy, b"timestamp!!!");
        let mut copy = buf;
        assert_eq!(
            aead_open(&key, 1, b"aad", &mut copy, &tag),
            Err(DropReason::DecryptFailed)
        );
        let mut copy = buf;
        assert_eq!(
            aead_open(&key, 0, b"aaD", &mut copy, &tag),
            Err(DropReason::DecryptFailed)
        );
    }

    #[test]
    fn xaead_round_trip_and_tamper() {
        let key = [3u8; 32];
        let nonce = [9u8; 24];
        let mut buf = [5u8; 16];
        let tag = xaead_seal(&key, &nonce, b"mac1", &mut buf);
        let mut copy = buf;
        xaead_open(&key, &nonce, b"mac1", &mut copy, &tag).unwrap();
        assert_eq!(copy, [5u8; 16]);
        copy = buf;
        copy[0] ^= 1;
        assert!(xaead_open(&key, &nonce, b"mac1", &mut copy, &tag).is_err());
    }

    #[test]
    fn public_key_is_x25519_of_the_base_point() {
        let s = x25519_secret(&mut SeededEntropy::new(3));
        assert_eq!(public_key(&s), PublicKey::from(&s).to_bytes());
        assert_eq!(
            public_key(&s),
            s.diffie_hellman(&PublicKey::from(BASEPOINT)).to_bytes()
        );
    }

    #[test]
    fn dh_refuses_low_order_points() {
        let s = x25519_secret(&mut SeededEntropy::new(1));
        assert_eq!(dh(&s, &[0u8; 32]).unwrap_err(), DropReason::LowOrderPoint);
        let mut one = [0u8; 32];
        one[0] = 1;
        assert_eq!(dh(&s, &one).unwrap_err(), DropReason::LowOrderPoint);
        let other = x25519_secret(&mut SeededEntropy::new(2));
        let a = dh(&s, PublicKey::from(&other).as_bytes()).unwrap();
        let b = dh(&other, PublicKey::from(&s).as_bytes()).unwrap();
        assert_eq!(a, b);
    }
}
