//! qgw gateway: `gateway::fuzzing::classify` (see gateway/src/fuzzing.rs for what it feeds and checks;
//! the same body runs under proptest in `cargo test -p gateway`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    gateway::fuzzing::classify(data);
});
