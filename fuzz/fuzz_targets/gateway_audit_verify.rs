//! qgw gateway: `gateway::fuzzing::audit_verify` (see gateway/src/fuzzing.rs for what it feeds and
//! checks; the same body runs under proptest in `cargo test -p gateway audit`). The audit-log
//! verifier (docs/audit.md §6) must never panic and stays within its line limit on any input.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    gateway::fuzzing::audit_verify(data);
});
