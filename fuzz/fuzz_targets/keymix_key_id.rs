//! QKD key IDs from untrusted bytes: `KeyId::parse` (the KME's replies, any case) and
//! `KeyId::parse_canonical` (the hybrid wire format, lower case only). Neither may panic; an
//! accepted ID's canonical text is the input in lower case, and parses back to the same ID.
#![no_main]

use std::hint::black_box;

use keymix::KeyId;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data)
        && let Ok(id) = black_box(KeyId::parse(text))
    {
        assert_eq!(id.text().as_str(), text.to_ascii_lowercase());
        assert_eq!(KeyId::parse_canonical(id.text().as_bytes()).ok(), Some(id));
    }
    if let Ok(id) = black_box(KeyId::parse_canonical(data)) {
        assert_eq!(id.text().as_bytes(), data);
    }
});
