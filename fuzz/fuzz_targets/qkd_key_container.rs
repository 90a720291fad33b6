//! ETSI 014 §6.3 Key container bodies from an untrusted KME. The first byte picks what the
//! client asked for (number of keys, size); the rest is the body. An accepted container has
//! exactly that many keys, of the asked size, with distinct IDs.
#![no_main]

use libfuzzer_sys::fuzz_target;
use qkd_link::api::parse::{KeyExpectation, MAX_KEY_BYTES, parse_key_container};

fuzz_target!(|data: &[u8]| {
    let Some((&selector, body)) = data.split_first() else {
        return;
    };
    let number = usize::from(selector & 0x07);
    let size_bits = match (selector >> 3) & 0x03 {
        0 => None,
        1 => Some(256),
        2 => Some(512),
        _ => Some(8),
    };
    let expect = KeyExpectation { number, size_bits, ids: None };
    if let Ok(keys) = parse_key_container(body, &expect) {
        assert_eq!(keys.len(), number);
        let mut ids: Vec<_> = keys.iter().map(|k| k.id()).collect();
        ids.sort();
        ids.dedup();
        assert_eq!(ids.len(), number);
        for k in &keys {
            assert!(!k.expose().is_empty() && k.expose().len() <= MAX_KEY_BYTES);
            if let Some(bits) = size_bits {
                assert_eq!(k.len_bits(), bits as usize);
            }
        }
    }
});
