//! Known-answer test: the combiner reproduces the checked-in vectors in `vectors/combiner.json`
//! (generated once by `examples/gen_combiner_vectors.rs`, recomputed independently by
//! `vectors/combiner_reference.py`).

use keymix::mlkem::{Ciphertext, EncapsulationKey};
use keymix::{
    ChainKey, EpochContext, KeyId, KeySources, PeerIdentity, QkdMaterial, Secret, SecretVec,
    derive_epoch,
};
use serde::Deserialize;

#[derive(Deserialize)]
struct Vectors {
    genesis: Vec<Genesis>,
    epochs: Vec<Epoch>,
}

#[derive(Deserialize)]
struct Genesis {
    static_psk: Option<String>,
    chain: String,
}

#[derive(Deserialize)]
struct Epoch {
    name: String,
    previous_epoch: u64,
    previous_chain: String,
    epoch: u64,
    sources: u8,
    initiator: String,
    responder: String,
    mlkem_ek: String,
    mlkem_ct: String,
    mlkem_shared: String,
    qkd_key_ids: Option<Vec<String>>,
    qkd_key: Option<String>,
    transcript_hash: String,
    psk: String,
    chain: String,
    chain_tag: String,
    confirm: String,
}

fn bytes(hex_text: &str) -> Vec<u8> {
    hex::decode(hex_text).expect("vector hex")
}

fn secret32(hex_text: &str) -> Secret<32> {
    Secret::from_slice(&bytes(hex_text)).expect("32 bytes")
}

fn load() -> Vectors {
    let text = include_str!("vectors/combiner.json");
    serde_json::from_str(text).expect("combiner.json parses")
}

#[test]
fn genesis_vectors() {
    let vectors = load();
    assert!(vectors.genesis.len() >= 3);
    for g in &vectors.genesis {
        let psk = g.static_psk.as_deref().map(secret32);
        assert_eq!(
            hex::encode(ChainKey::genesis(psk.as_ref()).expose()),
            g.chain
        );
    }
}

#[test]
fn epoch_vectors() {
    let vectors = load();
    assert!(vectors.epochs.len() >= 5);
    for v in &vectors.epochs {
        let previous = ChainKey::from_secret(v.previous_epoch, secret32(&v.previous_chain));
        let initiator = PeerIdentity::new(&bytes(&v.initiator)).expect("identity");
        let responder = PeerIdentity::new(&bytes(&v.responder)).expect("identity");
        let ek = EncapsulationKey::from_bytes(&bytes(&v.mlkem_ek)).expect("ek");
        let ct = Ciphertext::from_bytes(&bytes(&v.mlkem_ct)).expect("ct");
        let shared = secret32(&v.mlkem_shared);
        let qkd = match (&v.qkd_key_ids, &v.qkd_key) {
            (Some(ids), Some(key)) => {
                let ids = ids.iter().map(|id| KeyId::parse(id).expect("UUID"));
                Some(QkdMaterial::new(ids.collect(), SecretVec::new(bytes(key))).expect("qkd"))
            }
            (None, None) => None,
            _ => panic!(
                "{}: qkd_key_ids and qkd_key must both be present or absent",
                v.name
            ),
        };
        let sources = KeySources::from_bits(v.sources).expect("sources");
        let context = EpochContext {
            epoch: v.epoch,
            initiator: &initiator,
            responder: &responder,
            mlkem_ek: &ek,
            mlkem_ct: &ct,
        };
        let keys =
            derive_epoch(&previous, &context, sources, &shared, qkd.as_ref()).expect("derives");
        assert_eq!(
            hex::encode(keys.transcript_hash),
            v.transcript_hash,
            "{}",
            v.name
        );
        assert_eq!(hex::encode(keys.psk.expose()), v.psk, "{}", v.name);
        assert_eq!(hex::encode(keys.chain.expose()), v.chain, "{}", v.name);
        assert_eq!(hex::encode(keys.chain.tag()), v.chain_tag, "{}", v.name);
        assert_eq!(hex::encode(keys.confirmation()), v.confirm, "{}", v.name);
    }
}
