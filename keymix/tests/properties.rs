//! Property tests of the combiner: any single input bit changed changes the output; order and roles
//! matter; an absent QKD key never derives what a present one does.

use keymix::mlkem::{self, Ciphertext, EncapsulationKey};
use keymix::{
    ChainKey, EpochContext, KeyId, KeySources, PeerIdentity, QkdMaterial, Secret, SecretVec,
    derive_epoch,
};
use proptest::prelude::*;

/// Every input of one epoch, as plain bytes so a test can flip any bit of any of them.
#[derive(Clone, Debug)]
struct Inputs {
    previous: [u8; 32],
    epoch: u64,
    initiator: Vec<u8>,
    responder: Vec<u8>,
    ek: Vec<u8>,
    ct: Vec<u8>,
    shared: [u8; 32],
    qkd: Option<(Vec<KeyId>, Vec<u8>)>,
}

/// (psk, chain, transcript hash)
type Output = ([u8; 32], [u8; 32], [u8; 32]);

fn derive(i: &Inputs) -> Output {
    let previous = ChainKey::from_secret(i.epoch - 1, Secret::new(i.previous));
    let initiator = PeerIdentity::new(&i.initiator).expect("identity");
    let responder = PeerIdentity::new(&i.responder).expect("identity");
    let ek = EncapsulationKey::from_bytes(&i.ek).expect("ek");
    let ct = Ciphertext::from_bytes(&i.ct).expect("ct");
    let qkd = i
        .qkd
        .as_ref()
        .map(|(ids, key)| QkdMaterial::new(ids.clone(), SecretVec::from_slice(key)).expect("qkd"));
    let context = EpochContext {
        epoch: i.epoch,
        initiator: &initiator,
        responder: &responder,
        mlkem_ek: &ek,
        mlkem_ct: &ct,
    };
    let sources = KeySources::hybrid(qkd.is_some());
    let keys = derive_epoch(
        &previous,
        &context,
        sources,
        &Secret::new(i.shared),
        qkd.as_ref(),
    )
    .expect("derives");
    (
        *keys.psk.expose(),
        *keys.chain.expose(),
        keys.transcript_hash,
    )
}

fn inputs() -> impl Strategy<Value = Inputs> {
    (
        any::<[u8; 32]>(),
        1..u64::MAX,
        prop::collection::vec(any::<u8>(), 1..64),
        prop::collection::vec(any::<u8>(), 1..64),
        any::<[u8; 32]>(),
        any::<[u8; 32]>(),
        any::<[u8; 32]>(),
        prop::option::of((
            prop::collection::btree_set(any::<[u8; 16]>(), 1..4)
                .prop_map(|ids| {
                    ids.into_iter()
                        .map(KeyId::from_random_bytes)
                        .collect::<Vec<_>>()
                })
                .prop_filter("distinct after the version bits", |ids| {
                    ids.iter().enumerate().all(|(i, a)| !ids[..i].contains(a))
                }),
            prop::collection::vec(any::<u8>(), 32..96),
        )),
    )
        .prop_map(
            |(previous, epoch, initiator, responder, kem_seed, ct_seed, shared, qkd)| {
                let mut seed = [0u8; 64];
                seed[..32].copy_from_slice(&kem_seed);
                let (_dk, ek) = mlkem::generate_from_seed(&Secret::new(seed));
                let (ct, _) = ek.encapsulate_with_randomness(&Secret::new(ct_seed));
                Inputs {
                    previous,
                    epoch,
                    initiator,
                    responder,
                    ek: ek.as_bytes().to_vec(),
                    ct: ct.as_bytes().to_vec(),
                    shared,
                    qkd,
                }
            },
        )
}

fn flip(bytes: &mut [u8], bit: usize) {
    let bit = bit % (bytes.len() * 8);
    bytes[bit / 8] ^= 1 << (bit % 8);
}

fn changes_everything(a: &Output, b: &Output) -> bool {
    a.0 != b.0 && a.1 != b.1
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn flipping_a_secret_input_bit_changes_psk_and_chain(i in inputs(), bit in any::<usize>(), which in 0..3u8) {
        let base = derive(&i);
        let mut j = i.clone();
        match which {
            0 => flip(&mut j.previous, bit),
            1 => flip(&mut j.shared, bit),
            _ => match j.qkd.as_mut() {
                Some((_, key)) => flip(key, bit),
                None => flip(&mut j.shared, bit),
            },
        }
        let other = derive(&j);
        prop_assert!(changes_everything(&base, &other));
        prop_assert_eq!(base.2, other.2, "secrets are not in the transcript");
    }

    #[test]
    fn flipping_a_public_input_bit_changes_transcript_psk_and_chain(i in inputs(), bit in any::<usize>(), which in 0..5u8) {
        let base = derive(&i);
        let mut j = i.clone();
        match which {
            0 => flip(&mut j.initiator, bit),
            1 => flip(&mut j.responder, bit),
            // Flip only inside ρ (the last 32 bytes): any ρ passes the FIPS 203 modulus check.
            2 => { let n = j.ek.len(); flip(&mut j.ek[n - 32..], bit) }
            3 => flip(&mut j.ct, bit),
            _ => match j.qkd.as_mut() {
                // Flip a bit of one key ID's UUID (version and variant bits are fixed, so a flip
                // there names the same ID and is skipped).
                Some((ids, _)) => {
                    let index = bit % ids.len();
                    let mut b = *ids[index].as_bytes();
                    b[(bit / 8) % 16] ^= 1 << (bit % 8);
                    let flipped = KeyId::from_random_bytes(b);
                    prop_assume!(flipped != ids[index] && !ids.contains(&flipped));
                    ids[index] = flipped;
                }
                None => j.epoch = if j.epoch == u64::MAX - 1 { 1 } else { j.epoch + 1 },
            },
        }
        let other = derive(&j);
        prop_assert_ne!(base.2, other.2);
        prop_assert!(changes_everything(&base, &other));
    }

    #[test]
    fn swapping_roles_changes_the_keys(i in inputs()) {
        prop_assume!(i.initiator != i.responder);
        let mut j = i.clone();
        std::mem::swap(&mut j.initiator, &mut j.responder);
        prop_assert!(changes_everything(&derive(&i), &derive(&j)));
    }

    #[test]
    fn key_id_order_matters(i in inputs()) {
        let mut j = i.clone();
        let Some((ids, _)) = j.qkd.as_mut() else { return Ok(()) };
        prop_assume!(ids.len() > 1 && ids[0] != ids[1]);
        ids.swap(0, 1);
        prop_assert!(changes_everything(&derive(&i), &derive(&j)));
    }

    #[test]
    fn dropping_the_qkd_key_never_gives_the_same_keys(i in inputs(), key in prop::collection::vec(any::<u8>(), 32..64)) {
        let mut with = i.clone();
        with.qkd = Some((vec![KeyId::from_random_bytes([7; 16])], key));
        let mut without = i.clone();
        without.qkd = None;
        prop_assert!(changes_everything(&derive(&with), &derive(&without)));
    }

    #[test]
    fn moving_bytes_between_identities_changes_the_keys(i in inputs()) {
        // Length prefixes make ("ab", "c") and ("a", "bc") different transcripts.
        prop_assume!(i.initiator.len() > 1);
        let mut j = i.clone();
        let moved = j.initiator.pop().expect("len > 1");
        j.responder.insert(0, moved);
        prop_assert!(changes_everything(&derive(&i), &derive(&j)));
    }
}
