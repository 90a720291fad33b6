//! The fuzz bodies under proptest (stable, in CI): arbitrary and mutated inputs never panic, and
//! the fixture really reaches the deep paths (its base messages are accepted unmutated).
#![allow(clippy::unwrap_used)]

use proptest::prelude::*;

use super::*;

#[test]
fn the_fixture_yields_real_messages_that_the_node_accepts() {
    use crate::error::DropReason;
    use crate::node::{Dropped, PeerId};
    let (mut a, s) = fixture();
    let (t0, [init, resp, transport]) = (s.t0, &s.bases);
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
fn every_fresh_node_is_the_one_b_answered() {
    // b's cached response answers the initiation of the node of the process's first input; a fresh
    // node for a later input accepts it too only if it sent the very same initiation.
    let (_, s) = fixture();
    for _ in 0..2 {
        let (mut a, _) = fixture();
        let mut r = s.bases[1].clone();
        assert_eq!(
            a.handle_datagram(s.t0, B.addr(), &mut r),
            Received::Accepted
        );
        assert!(a.wg_peer(crate::node::PeerId::new(0)).is_some());
    }
}

#[test]
fn an_input_replays_exactly_from_a_fresh_node() {
    // Two fresh nodes fed the same datagrams send the same bytes: nothing of one input's run
    // reaches the next.
    let run = || {
        let (mut a, s) = fixture();
        let mut sent = Vec::new();
        for base in &s.bases {
            let mut d = base.clone();
            let _ = a.handle_datagram(s.t0, B.addr(), &mut d);
            let when = s.t0 + Duration::from_secs(200);
            a.handle_timeout(when);
            sent.push(next(&mut a, when));
        }
        sent
    };
    let first = run();
    assert!(
        first.iter().any(|d| !d.is_empty()),
        "the runs send something"
    );
    assert_eq!(first, run());
}

#[test]
fn control_connections_yield_the_first_request_whatever_the_reads() {
    // Every socket (bits 0–1; 3: a 64-byte cap) and read size (bits 2–6: 1, 3, 30, all at once);
    // the body checks each outcome against a search of the whole stream.
    let streams: [&[u8]; 7] = [
        b"status\n\n",
        b"\nstatus\n\n",
        b"get=1\n\nset=1\n\n",
        b"set=1\npublic_key=0000000000000000000000000000000000000000000000000000000000000000\n\n",
        b"GET /healthz?x HTTP/1.1\r\nHost: a\r\n\r\nbody",
        b"HEAD /nope HTTP/1.0\r\n",
        &[b'a'; 100],
    ];
    for socket in 0..4 {
        for reads in [0, 2, 29, 31] {
            for stream in streams {
                control_request(&[&[socket | reads << 2][..], stream].concat());
            }
        }
    }
}

#[test]
fn the_classify_seeds_are_the_packets_they_are_named_after() {
    use crate::classes::ClassId::*;
    let rules = crate::classes::rules::ClassRules::builtin();
    let corpus = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../fuzz/corpus/gateway_classify"
    );
    let seed = |name| std::fs::read(format!("{corpus}/seed-{name}")).unwrap();
    for (name, class, ports) in [
        ("v4-mqtt", Telemonitoring, (40000, 1883)),
        ("v4-dicom-reply", Imaging, (104, 40000)),
        ("v4-ef-icmp", Telemonitoring, (0, 0)),
        ("v4-later-fragment", Default, (0, 0)),
        ("v6-rtp-hbh-frag", Telemedicine, (40000, 20000)),
        ("v6-sip-tcp", Telemedicine, (5061, 50000)),
    ] {
        let c = rules.classify(&seed(name));
        assert_eq!(
            (c.class, (c.flow.src_port, c.flow.dst_port)),
            (class, ports),
            "{name}"
        );
        classify(&seed(name));
    }
}

#[test]
fn known_edge_inputs() {
    for d in [&[][..], &[0], &[1, 0, 0, 0], &[4, 0, 0, 0], &[255; 200]] {
        message(d);
        ip_packet(d);
        classify(d);
        datagram(d);
        uapi_request(d);
        config_text(d);
        control_request(d);
        tun_offload(d);
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
        classify(&data);
        config_text(&data);
        control_request(&data);
    }

    #[test]
    fn tun_offload_never_panics(
        hdr in proptest::array::uniform10(any::<u8>()),
        gso_type in prop_oneof![Just(0u8), Just(1), Just(4), Just(5), Just(0x81), any::<u8>()],
        version in prop_oneof![Just(0x45u8), Just(0x46), Just(0x60), any::<u8>()],
        protocol in prop_oneof![Just(6u8), Just(17), any::<u8>()],
        gso_size in prop_oneof![1u16..1500, any::<u16>()],
        packet in proptest::collection::vec(any::<u8>(), 0..3000),
    ) {
        // Steer the header and packet toward what gets past the checks, so the splitter runs.
        let mut input = hdr.to_vec();
        input[1] = gso_type;
        input[4..6].copy_from_slice(&gso_size.to_le_bytes());
        input.extend(packet);
        if let Some(b) = input.get_mut(10) {
            *b = version;
        }
        let proto_at = if version >> 4 == 6 { 16 } else { 19 };
        if let Some(b) = input.get_mut(proto_at) {
            *b = protocol;
        }
        tun_offload(&input);
    }

    #[test]
    fn tun_offload_round_trips_real_super_packets(len in 0usize..5000, mss in 1u16..2000, v6 in any::<bool>()) {
        use crate::io::offload::testing::{Tcp, super_packet};
        let (hdr, packet) = super_packet(&Tcp { v6, ..Tcp::default() }.with(9, &Tcp::payload(len)).build(), mss);
        let mut input = [0u8; 10];
        hdr.write(&mut input);
        tun_offload(&[&input[..], &packet].concat());
    }

    #[test]
    fn control_requests_never_panic(
        step in any::<u8>(),
        lines in proptest::collection::vec("(GET|HEAD|get=1|set=1|[a-z/ ]{0,12})[ /a-z?=]{0,20}", 0..6),
    ) {
        let mut input = vec![step];
        input.extend(lines.join("\n").into_bytes());
        control_request(&input);
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

#[test]
fn the_tun_offload_seeds_are_super_packets_the_segmenter_accepts() {
    use crate::io::offload::{Segments, VNET_HDR_LEN, VnetHdr};
    let dir = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../fuzz/corpus/gateway_tun_offload"
    );
    let mut seen = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let data = std::fs::read(&path).unwrap();
        let hdr = VnetHdr::parse(&data).unwrap();
        let segments = Segments::new(&hdr, &data[VNET_HDR_LEN..]).unwrap();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let want_many = name.contains("tso") || name.contains("uso");
        assert_eq!(
            segments.count() > 1,
            want_many,
            "{name}: {} segments",
            segments.count()
        );
        tun_offload(&data);
        seen += 1;
    }
    assert!(seen >= 6, "{seen} seeds in {dir}");
}
