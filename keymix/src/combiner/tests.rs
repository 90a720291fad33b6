//! Unit tests of the combiner's contract; bit-flip properties are in `tests/properties.rs` and the
//! known-answer vectors in `tests/combiner_vectors.rs`.

use super::*;
use crate::mlkem::{self, Ciphertext, EncapsulationKey};
use crate::{PeerIdentity, SecretVec};

struct Fixture {
    ek: EncapsulationKey,
    ct: Ciphertext,
    shared: SharedSecret,
    alice: PeerIdentity,
    bob: PeerIdentity,
}

fn fixture() -> Fixture {
    let (dk, ek) = mlkem::generate_from_seed(&Secret::new([1; 64]));
    let (ct, shared) = ek.encapsulate_with_randomness(&Secret::new([2; 32]));
    assert!(dk.decapsulate(&ct).ct_eq(&shared));
    Fixture {
        ek,
        ct,
        shared,
        alice: PeerIdentity::new(b"alice").expect("valid"),
        bob: PeerIdentity::new(b"bob").expect("valid"),
    }
}

fn context(f: &Fixture, epoch: u64) -> EpochContext<'_> {
    EpochContext {
        epoch,
        initiator: &f.alice,
        responder: &f.bob,
        mlkem_ek: &f.ek,
        mlkem_ct: &f.ct,
    }
}

fn qkd(byte: u8) -> QkdMaterial {
    QkdMaterial::new(
        vec![crate::KeyId::from_random_bytes([byte; 16])],
        SecretVec::new(vec![byte; 32]),
    )
    .expect("valid")
}

#[test]
fn both_sides_derive_the_same_keys() {
    let f = fixture();
    let genesis = ChainKey::genesis(None);
    let a = derive_epoch(
        &genesis,
        &context(&f, 1),
        KeySources::X25519_MLKEM_QKD,
        &f.shared,
        Some(&qkd(7)),
    )
    .expect("derives");
    let b = derive_epoch(
        &genesis,
        &context(&f, 1),
        KeySources::X25519_MLKEM_QKD,
        &f.shared,
        Some(&qkd(7)),
    )
    .expect("derives");
    assert!(a.psk.ct_eq(&b.psk));
    assert_eq!(a.chain.expose(), b.chain.expose());
    assert_eq!(a.transcript_hash, b.transcript_hash);
    assert!(
        !a.psk.ct_eq(&Secret::new(*a.chain.expose())),
        "psk and chain differ"
    );
}

#[test]
fn absent_qkd_derives_a_different_key_from_present_qkd() {
    let f = fixture();
    let genesis = ChainKey::genesis(None);
    let without = derive_epoch(
        &genesis,
        &context(&f, 1),
        KeySources::X25519_MLKEM,
        &f.shared,
        None,
    )
    .expect("derives");
    for byte in [0u8, 0xFF] {
        let with = derive_epoch(
            &genesis,
            &context(&f, 1),
            KeySources::X25519_MLKEM_QKD,
            &f.shared,
            Some(&qkd(byte)),
        )
        .expect("derives");
        assert!(!with.psk.ct_eq(&without.psk));
        assert_ne!(with.transcript_hash, without.transcript_hash);
    }
}

#[test]
fn declared_sources_must_match_the_inputs() {
    let f = fixture();
    let genesis = ChainKey::genesis(None);
    let claim_qkd = derive_epoch(
        &genesis,
        &context(&f, 1),
        KeySources::X25519_MLKEM_QKD,
        &f.shared,
        None,
    );
    assert!(matches!(claim_qkd, Err(Error::SourceMismatch { .. })));
    let hide_qkd = derive_epoch(
        &genesis,
        &context(&f, 1),
        KeySources::X25519_MLKEM,
        &f.shared,
        Some(&qkd(1)),
    );
    assert!(matches!(hide_qkd, Err(Error::SourceMismatch { .. })));
}

#[test]
fn the_ratchet_only_moves_one_epoch_forward() {
    let f = fixture();
    let genesis = ChainKey::genesis(None);
    let skip = derive_epoch(
        &genesis,
        &context(&f, 2),
        KeySources::X25519_MLKEM,
        &f.shared,
        None,
    );
    assert_eq!(
        skip.err(),
        Some(Error::EpochOutOfOrder {
            previous: 0,
            next: 2
        })
    );
    let one = derive_epoch(
        &genesis,
        &context(&f, 1),
        KeySources::X25519_MLKEM,
        &f.shared,
        None,
    )
    .expect("derives");
    let two = derive_epoch(
        &one.chain,
        &context(&f, 2),
        KeySources::X25519_MLKEM,
        &f.shared,
        None,
    )
    .expect("derives");
    assert_eq!(two.epoch, 2);
    assert!(
        !two.psk.ct_eq(&one.psk),
        "same inputs, next epoch: a new key"
    );
    let at_max = ChainKey::from_secret(u64::MAX, Secret::new([0; 32]));
    let overflow = derive_epoch(
        &at_max,
        &context(&f, 0),
        KeySources::X25519_MLKEM,
        &f.shared,
        None,
    );
    assert!(overflow.is_err());
}

#[test]
fn a_static_psk_changes_the_genesis() {
    let none = ChainKey::genesis(None);
    let zero = ChainKey::genesis(Some(&Secret::new([0; 32])));
    let one = ChainKey::genesis(Some(&Secret::new([1; 32])));
    assert_ne!(none.expose(), zero.expose(), "absent differs from all-zero");
    assert_ne!(zero.expose(), one.expose());
    assert_eq!(none.epoch(), 0);
}

#[test]
fn every_label_matters() {
    let f = fixture();
    let genesis = ChainKey::genesis(None);
    let derive = |labels: Labels| {
        derive_epoch_with(
            labels,
            &genesis,
            &context(&f, 1),
            KeySources::X25519_MLKEM,
            &f.shared,
            None,
        )
        .expect("derives")
    };
    let base = derive(LABELS);
    let variants = [
        Labels {
            ikm: b"qgw v2 keymix ikm",
            ..LABELS
        },
        Labels {
            psk: b"qgw v2 keymix psk",
            ..LABELS
        },
        Labels {
            chain: b"qgw v2 keymix chain",
            ..LABELS
        },
    ];
    for (i, labels) in variants.into_iter().enumerate() {
        let other = derive(labels);
        let psk_changed = !other.psk.ct_eq(&base.psk);
        let chain_changed = other.chain.expose() != base.chain.expose();
        match i {
            0 => assert!(psk_changed && chain_changed, "ikm label feeds both"),
            1 => assert!(
                psk_changed && !chain_changed,
                "psk label feeds the psk only"
            ),
            _ => assert!(
                !psk_changed && chain_changed,
                "chain label feeds the chain only"
            ),
        }
    }
}

#[test]
fn debug_output_has_no_key_bytes() {
    let f = fixture();
    let keys = derive_epoch(
        &ChainKey::genesis(None),
        &context(&f, 1),
        KeySources::X25519_MLKEM,
        &f.shared,
        None,
    )
    .expect("derives");
    let shown = format!("{keys:?}");
    assert!(shown.contains("<redacted>"));
    let psk_hex: String = keys
        .psk
        .expose()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert!(!shown.contains(&psk_hex[..8]));
    let psk_decimal = format!("{:?}", &keys.psk.expose()[..4]);
    assert!(!shown.contains(psk_decimal.trim_matches(&['[', ']'][..])));
    let chain_decimal = format!("{:?}", &keys.chain.expose()[..4]);
    assert!(!shown.contains(chain_decimal.trim_matches(&['[', ']'][..])));
}
