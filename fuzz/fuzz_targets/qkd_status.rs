//! ETSI 014 §6.1 Status bodies from an untrusted KME: parse never panics, and an accepted status
//! satisfies the invariants the parser promises.
#![no_main]

use libfuzzer_sys::fuzz_target;
use qkd_link::api::parse::parse_status;

fuzz_target!(|data: &[u8]| {
    if let Ok(s) = parse_status(data) {
        assert!(s.min_key_size <= s.key_size && s.key_size <= s.max_key_size);
        assert!(s.stored_key_count <= s.max_key_count);
        assert!(s.max_key_per_request > 0);
    }
});
