//! Generates `tests/vectors/combiner.json`, keymix's known-answer vectors for the combiner.
//!
//! Run once, when the combiner's definition changes (and then bump the label version):
//!     cargo run -p keymix --example gen_combiner_vectors > keymix/tests/vectors/combiner.json
//! Every input is derived from fixed seeds, so rerunning gives the same file byte for byte;
//! `tests/combiner_vectors.rs` checks the library against the checked-in file and
//! `tests/vectors/combiner_reference.py` recomputes it independently with Python's hashlib/hmac.

use keymix::mlkem::{self, Ciphertext, EncapsulationKey};
use keymix::{
    ChainKey, EpochContext, KeyId, KeySources, PeerIdentity, QkdMaterial, Secret, SecretVec,
    derive_epoch,
};
use serde_json::{Value, json};

fn hexs(bytes: &[u8]) -> String {
    hex::encode(bytes)
}

/// Deterministic filler: byte i of stream `tag` is `tag * 31 + i * 7` mod 256.
fn pattern<const N: usize>(tag: u8) -> [u8; N] {
    core::array::from_fn(|i| tag.wrapping_mul(31).wrapping_add((i as u8).wrapping_mul(7)))
}

struct Case {
    name: &'static str,
    previous: ChainKey,
    epoch: u64,
    kem_seed: u8,
    initiator: &'static [u8],
    responder: &'static [u8],
    qkd: Option<(Vec<&'static str>, usize)>,
}

fn main() {
    let mut genesis = Vec::new();
    for psk in [None, Some([0u8; 32]), Some(pattern::<32>(9))] {
        let secret = psk.map(Secret::new);
        let chain = ChainKey::genesis(secret.as_ref());
        genesis.push(json!({
            "static_psk": psk.map(|p| hexs(&p)),
            "chain": hexs(chain.expose()),
        }));
    }

    let wg_a = "site-a x25519 static public key.";
    let wg_b = "site-b x25519 static public key.";
    let cases = vec![
        Case {
            name: "epoch 1 from genesis, x25519+mlkem",
            previous: ChainKey::genesis(None),
            epoch: 1,
            kem_seed: 1,
            initiator: wg_a.as_bytes(),
            responder: wg_b.as_bytes(),
            qkd: None,
        },
        Case {
            name: "epoch 1 from genesis, x25519+mlkem+qkd (one 256-bit key)",
            previous: ChainKey::genesis(None),
            epoch: 1,
            kem_seed: 1,
            initiator: wg_a.as_bytes(),
            responder: wg_b.as_bytes(),
            qkd: Some((vec!["bc490419-7d60-487f-adc1-4ddcc177c139"], 32)),
        },
        Case {
            name: "same as previous with roles swapped",
            previous: ChainKey::genesis(None),
            epoch: 1,
            kem_seed: 1,
            initiator: wg_b.as_bytes(),
            responder: wg_a.as_bytes(),
            qkd: Some((vec!["bc490419-7d60-487f-adc1-4ddcc177c139"], 32)),
        },
        Case {
            name: "epoch 42, ratchet from a given chain key, two QKD keys (512 bits)",
            previous: ChainKey::from_secret(41, Secret::new(pattern::<32>(41))),
            epoch: 42,
            kem_seed: 2,
            initiator: wg_a.as_bytes(),
            responder: wg_b.as_bytes(),
            qkd: Some((
                vec![
                    "0a1b2c3d-0000-4000-8000-000000000001",
                    "0a1b2c3d-0000-4000-8000-000000000002",
                ],
                64,
            )),
        },
        Case {
            name: "epoch 1 from a static-PSK genesis, x25519+mlkem",
            previous: ChainKey::genesis(Some(&Secret::new(pattern::<32>(9)))),
            epoch: 1,
            kem_seed: 3,
            initiator: wg_a.as_bytes(),
            responder: wg_b.as_bytes(),
            qkd: None,
        },
    ];

    let mut epochs: Vec<Value> = Vec::new();
    for case in cases {
        let (_dk, ek): (_, EncapsulationKey) =
            mlkem::generate_from_seed(&Secret::new(pattern::<64>(case.kem_seed)));
        let (ct, shared): (Ciphertext, _) =
            ek.encapsulate_with_randomness(&Secret::new(pattern::<32>(case.kem_seed + 100)));
        let initiator = PeerIdentity::new(case.initiator).expect("valid identity");
        let responder = PeerIdentity::new(case.responder).expect("valid identity");
        let qkd = case.qkd.as_ref().map(|(ids, len)| {
            let key: Vec<u8> = (0..*len)
                .map(|i| (i as u8).wrapping_mul(13).wrapping_add(5))
                .collect();
            QkdMaterial::new(
                ids.iter().map(|s| KeyId::parse(s).expect("UUID")).collect(),
                SecretVec::new(key),
            )
            .expect("valid QKD material")
        });
        let context = EpochContext {
            epoch: case.epoch,
            initiator: &initiator,
            responder: &responder,
            mlkem_ek: &ek,
            mlkem_ct: &ct,
        };
        let sources = KeySources::hybrid(qkd.is_some());
        let keys = derive_epoch(&case.previous, &context, sources, &shared, qkd.as_ref())
            .expect("derives");
        epochs.push(json!({
            "name": case.name,
            "previous_epoch": case.previous.epoch(),
            "previous_chain": hexs(case.previous.expose()),
            "epoch": case.epoch,
            "sources": sources.bits(),
            "initiator": hexs(initiator.as_bytes()),
            "responder": hexs(responder.as_bytes()),
            "mlkem_ek": hexs(ek.as_bytes()),
            "mlkem_ct": hexs(ct.as_bytes()),
            "mlkem_shared": hexs(shared.expose()),
            "qkd_key_ids": qkd.as_ref().map(|q| q.key_ids().iter().map(KeyId::to_string).collect::<Vec<_>>()),
            "qkd_key": qkd.as_ref().map(|q| hexs(q.key().expose())),
            "transcript_hash": hexs(&keys.transcript_hash),
            "psk": hexs(keys.psk.expose()),
            "chain": hexs(keys.chain.expose()),
            "chain_tag": hexs(&keys.chain.tag()),
            "confirm": hexs(&keys.confirmation()),
        }));
    }
    let doc = json!({
        "description": "keymix v1 combiner known-answer vectors; construction in docs/design.md#combiner",
        "genesis": genesis,
        "epochs": epochs,
    });
    println!(
        "{}",
        serde_json::to_string_pretty(&doc).expect("serializes")
    );
}
