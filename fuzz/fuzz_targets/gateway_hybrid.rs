//! Fuzzes every parser of the hybrid key agreement (docs/protocol.md §4–§5): the fragment header
//! and the Init / Response / EpochRequest / Reject bodies. None may panic on any input.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    gateway::hybrid::fuzz_parsers(data);
});
