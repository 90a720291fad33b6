//! ETSI 014 §6.5 Error bodies (400/401/503) from an untrusted KME: read tolerantly, bounded.
#![no_main]

use libfuzzer_sys::fuzz_target;
use qkd_link::api::parse::{MAX_ERROR_DETAILS, parse_error_body};

fuzz_target!(|data: &[u8]| {
    let e = parse_error_body(data);
    assert!(e.details.len() <= MAX_ERROR_DETAILS);
    assert!(e.message.chars().count() <= 200);
});
