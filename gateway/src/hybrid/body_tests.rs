//! The Init's source tags (docs/protocol.md §5.1, §6.3): a tagged Init round-trips, an untagged
//! one is byte for byte version 1's layout, and every malformed tagging is refused.
#![allow(clippy::unwrap_used)]

use keymix::mldsa::{SIGNATURE_LEN, Signature};
use keymix::{KeyId, KeySources, Secret, mlkem};

use super::{Init, with_signature};
use crate::hybrid::{HybridDrop, SourceIndex};

fn id(n: u8) -> KeyId {
    KeyId::from_random_bytes([n; 16])
}

fn init(key_ids: Vec<KeyId>, tags: Option<Vec<SourceIndex>>) -> Init {
    let (_, ek) = mlkem::generate_from_seed(&Secret::new([7; mlkem::KEYGEN_SEED_LEN]));
    Init {
        epoch: 3,
        genesis: false,
        sources: KeySources::hybrid(!key_ids.is_empty()),
        timestamp: [1; 12],
        chain_tag: [2; 16],
        ek,
        key_ids,
        tags,
    }
}

fn signed(unsigned: Vec<u8>) -> Vec<u8> {
    with_signature(
        unsigned,
        &Signature::from_bytes(&[5; SIGNATURE_LEN]).unwrap(),
    )
}

fn source(i: usize) -> SourceIndex {
    SourceIndex::new(i).unwrap()
}

/// Where the key-ID count sits: epoch, flags, sources, timestamp, chain tag, ek.
const COUNT_AT: usize = 8 + 1 + 1 + 12 + 16 + mlkem::ENCAPSULATION_KEY_LEN;

#[test]
fn a_tagged_init_round_trips() {
    let tags = vec![source(0), source(0), source(1), source(3)];
    let sent = init(vec![id(1), id(2), id(3), id(4)], Some(tags.clone()));
    let body = signed(sent.encode_unsigned());
    let (got, unsigned, _) = Init::decode(&body).unwrap();
    assert_eq!(
        unsigned,
        sent.encode_unsigned().as_slice(),
        "the signature covers the tags"
    );
    assert_eq!(got.key_ids, sent.key_ids);
    assert_eq!(got.tags, Some(tags));
    let sourced: Vec<_> = got.sourced_key_ids().map(|(s, _)| s.get()).collect();
    assert_eq!(sourced, [0, 0, 1, 3]);
    assert_eq!(body[8], 0x02, "flags: tagged, not genesis");
    assert_eq!(body.len(), COUNT_AT + 1 + 4 * (2 + 36) + SIGNATURE_LEN);
}

#[test]
fn an_untagged_init_is_version_1s_layout() {
    let sent = init(vec![id(1), id(2)], None);
    let unsigned = sent.encode_unsigned();
    // Version 1: flags 0, then count, then (length 36, canonical text) per key ID.
    assert_eq!(unsigned[8], 0);
    let mut ids = vec![2u8];
    for k in [id(1), id(2)] {
        ids.push(36);
        ids.extend_from_slice(k.text().as_bytes());
    }
    assert_eq!(&unsigned[COUNT_AT..], ids.as_slice());
    let (got, ..) = Init::decode(&signed(unsigned)).unwrap();
    assert_eq!(got.tags, None);
    assert!(got.sourced_key_ids().all(|(s, _)| s == SourceIndex::FIRST));
    // Without key IDs, too.
    let (got, ..) = Init::decode(&signed(init(vec![], None).encode_unsigned())).unwrap();
    assert!(got.key_ids.is_empty() && got.tags.is_none());
}

#[test]
fn malformed_tags_are_refused() {
    let tagged = init(vec![id(1), id(2)], Some(vec![source(0), source(1)])).encode_unsigned();
    let first_tag = COUNT_AT + 1;
    let second_tag = first_tag + 2 + 36;
    let mut cases: Vec<(&str, Vec<u8>)> = Vec::new();
    let mut out_of_range = tagged.clone();
    out_of_range[second_tag] = 4;
    cases.push(("source index 4", out_of_range));
    let mut decreasing = tagged.clone();
    decreasing[first_tag] = 2;
    cases.push(("decreasing", decreasing));
    let mut untagged_flag = init(vec![], None).encode_unsigned();
    untagged_flag[8] = 0x02;
    cases.push(("tagged without key IDs", untagged_flag));
    let mut unknown_flag = tagged.clone();
    unknown_flag[8] = 0x06;
    cases.push(("unknown flag bit", unknown_flag));
    let mut flag_only = init(vec![id(1)], None).encode_unsigned();
    flag_only[8] = 0x02;
    cases.push(("flag without tag bytes", flag_only));
    cases.push(("truncated in a tag", tagged[..first_tag].to_vec()));
    for (what, unsigned) in cases {
        let got = Init::decode(&signed(unsigned)).map(|_| ());
        assert_eq!(got.err(), Some(HybridDrop::Malformed), "{what}");
    }
}

#[test]
fn the_fuzz_seeds_are_inits_the_decoder_accepts() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../fuzz/corpus/gateway_hybrid");
    for (name, tagged, ids) in [
        ("seed-init-tagged", true, 3),
        ("seed-init-untagged", false, 1),
        ("seed-init-no-qkd", false, 0),
    ] {
        let data = std::fs::read(format!("{dir}/{name}")).unwrap();
        let (got, ..) = Init::decode(&data).unwrap();
        assert_eq!(
            (got.tags.is_some(), got.key_ids.len()),
            (tagged, ids),
            "{name}"
        );
        crate::hybrid::fuzz_parsers(&data);
    }
}
