//! The fuzz bodies under proptest (stable, in CI): arbitrary and mutated inputs never panic, and
//! the fixture really reaches the deep paths (its base messages are accepted unmutated).
#![allow(clippy::unwrap_used)]

use proptest::prelude::*;

use super::*;

#[test]
fn the_fixture_yields_real_messages_that_the_node_accepts() {
    use crate::error::DropReason;
    use crate::node::{Dropped, PeerId};
    let t0 = Instant::now();
    let (mut a, [init, resp, transport]) = fixture(t0);
    assert_eq!((init.len(), resp.len()), (148, 92));
    assert!(transport.len() >= 32, "b has a session and sent data");
    let mut t = transport.clone();
    let got = a.handle_datagram(t0, B.addr(), &mut t);
    let first = PeerId::new(0);
    assert!(
        matches!(got, Received::Packet { peer, .. } if peer == first),
        "{got:?}"
    );
    let mut t = transport.clone();
    let again = a.handle_datagram(t0, B.addr(), &mut t);
    assert_eq!(
        again,
        Received::Dropped(Dropped::Interface(DropReason::Replay))
    );
    let mut i = init.clone();
    let reply = a.handle_datagram(t0, B.addr(), &mut i);
    assert_eq!(
        reply,
        Received::Dropped(Dropped::Interface(DropReason::StaleTimestamp)),
        "a replayed initiation"
    );
    datagram(&[2]);
}

#[test]
fn known_edge_inputs() {
    for d in [&[][..], &[0], &[1, 0, 0, 0], &[4, 0, 0, 0], &[255; 200]] {
        message(d);
        ip_packet(d);
        datagram(d);
        uapi_request(d);
        config_text(d);
    }
    uapi_request(b"get=1\n\n");
    uapi_request(b"set=1\npublic_key=0000000000000000000000000000000000000000000000000000000000000000\nallowed_ip=0.0.0.0/0\n\n");
    config_text(b"interface: {name: x}\n");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn parsers_never_panic(data in proptest::collection::vec(any::<u8>(), 0..2048)) {
        message(&data);
        ip_packet(&data);
        config_text(&data);
    }

    #[test]
    fn datagram_entry_point_never_panics(
        mode in 0u8..4,
        data in proptest::collection::vec(any::<u8>(), 0..256),
    ) {
        let mut input = vec![mode];
        input.extend(data);
        datagram(&input);
    }

    #[test]
    fn uapi_never_panics(lines in proptest::collection::vec("[a-z_]{1,12}=[0-9a-f.:/\\[\\]]{0,70}", 0..8)) {
        let req = format!("set=1\n{}\n\n", lines.join("\n"));
        uapi_request(req.as_bytes());
    }
}
