//! qgw gateway: `gateway::fuzzing::control_request` (see gateway/src/fuzzing.rs for what it feeds
//! and checks; the same body runs under proptest in `cargo test -p gateway`): a control
//! connection's request reader (`control::conn::Conn`, in reads of any size, with each socket's
//! framing and cap) and the handler of the socket it came in on (the status check, the UAPI
//! parser, the metrics endpoint's router), all reached by any local client.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    gateway::fuzzing::control_request(data);
});
