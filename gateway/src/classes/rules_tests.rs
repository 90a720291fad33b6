#![allow(clippy::unwrap_used)]

use super::protocol::{ICMP, ICMPV6, TCP, UDP};
use super::*;
use proptest::prelude::*;

/// An IPv4 packet of `len` bytes from 10.0.1.1 to 10.0.2.1 with `proto` and, for TCP/UDP,
/// these ports; DSCP `dscp`.
fn v4(proto: u8, src_port: u16, dst_port: u16, dscp: u8, len: u16) -> Vec<u8> {
    let mut p = vec![0u8; usize::from(len)];
    p[0] = 0x45;
    p[1] = dscp << 2 | 0b01; // ECT(1) must not disturb the DSCP
    p[2..4].copy_from_slice(&len.to_be_bytes());
    p[9] = proto;
    p[12..16].copy_from_slice(&[10, 0, 1, 1]);
    p[16..20].copy_from_slice(&[10, 0, 2, 1]);
    p[20..22].copy_from_slice(&src_port.to_be_bytes());
    p[22..24].copy_from_slice(&dst_port.to_be_bytes());
    p
}

/// An IPv6 packet from fd00::1 to fd00::2 whose payload is `ext` (extension headers, each
/// given as (its own protocol number, its bytes)) then an upper header with these ports.
fn v6(ext: &[(u8, Vec<u8>)], proto: u8, ports: (u16, u16), dscp: u8, payload: usize) -> Vec<u8> {
    let mut p = vec![0u8; 40];
    let tc = dscp << 2 | 0b10;
    p[0] = 0x60 | tc >> 4;
    p[1] = tc << 4;
    p[8] = 0xfd;
    p[23] = 1;
    p[24] = 0xfd;
    p[39] = 2;
    let mut next_at = 6;
    for (number, bytes) in ext {
        p[next_at] = *number;
        next_at = p.len();
        p.extend_from_slice(bytes);
    }
    p[next_at] = proto;
    p.extend_from_slice(&ports.0.to_be_bytes());
    p.extend_from_slice(&ports.1.to_be_bytes());
    p.resize(p.len() + payload, 0);
    let len = u16::try_from(p.len() - 40).unwrap();
    p[4..6].copy_from_slice(&len.to_be_bytes());
    p
}

fn class(packet: &[u8]) -> ClassId {
    ClassRules::builtin().classify(packet).class
}

use ClassId::{Default as Dflt, Imaging, Telemedicine, Telemonitoring};

#[test]
fn builtin_ports_v4_both_directions() {
    let cases = [
        (TCP, 1883, Telemonitoring),
        (TCP, 8883, Telemonitoring),
        (TCP, 2575, Telemonitoring),
        (TCP, 5060, Telemedicine),
        (UDP, 5060, Telemedicine),
        (TCP, 5061, Telemedicine),
        (UDP, 16384, Telemedicine),
        (UDP, 32767, Telemedicine),
        (TCP, 104, Imaging),
        (TCP, 11112, Imaging),
        (UDP, 1883, Dflt),
        (UDP, 5061, Dflt),
        (UDP, 16383, Dflt),
        (UDP, 32768, Dflt),
        (TCP, 20000, Dflt),
        (UDP, 104, Dflt),
        (TCP, 443, Dflt),
    ];
    for (proto, port, want) in cases {
        let request = v4(proto, 40000, port, 0, 100);
        let reply = v4(proto, port, 40000, 0, 100);
        assert_eq!(class(&request), want, "{proto} to {port}");
        assert_eq!(class(&reply), want, "{proto} from {port}");
    }
}

#[test]
fn builtin_ports_v6() {
    for (proto, port, want) in [
        (TCP, 1883, Telemonitoring),
        (UDP, 20000, Telemedicine),
        (TCP, 104, Imaging),
        (TCP, 80, Dflt),
    ] {
        assert_eq!(class(&v6(&[], proto, (50000, port), 0, 10)), want);
        assert_eq!(class(&v6(&[], proto, (port, 50000), 0, 10)), want);
    }
}

#[test]
fn dscp_rules_come_after_ports_and_ef_must_be_small() {
    let ef = dscp::EF;
    assert_eq!(class(&v4(ICMP, 0, 0, ef, 512)), Telemonitoring);
    assert_eq!(class(&v4(UDP, 1, 2, dscp::CS5, 100)), Telemonitoring);
    assert_eq!(class(&v4(UDP, 1, 2, ef, 513)), Dflt, "bulk marked EF");
    assert_eq!(class(&v4(UDP, 1, 2, 0, 100)), Dflt);
    for af in [dscp::AF41, dscp::AF42, dscp::AF43] {
        assert_eq!(class(&v4(TCP, 1, 2, af, 1400)), Telemedicine);
        assert_eq!(class(&v6(&[], UDP, (1, 2), af, 1000)), Telemedicine);
    }
    // A port names the application: DICOM marked AF41 stays imaging, RTP marked EF telemedicine.
    assert_eq!(class(&v4(TCP, 104, 40000, dscp::AF41, 1400)), Imaging);
    assert_eq!(class(&v4(UDP, 40000, 20000, ef, 200)), Telemedicine);
    assert_eq!(class(&v6(&[], ICMPV6, (0, 0), ef, 100)), Telemonitoring);
}

#[test]
fn flow_key_and_padding() {
    let mut p = v4(UDP, 40000, 20000, 0, 60);
    p.extend_from_slice(&[0; 4]); // transport padding after the IP packet
    let c = ClassRules::builtin().classify(&p);
    assert_eq!(
        c.flow,
        FlowKey {
            src: "10.0.1.1".parse().unwrap(),
            dst: "10.0.2.1".parse().unwrap(),
            protocol: UDP,
            src_port: 40000,
            dst_port: 20000,
        }
    );
    let icmp = ClassRules::builtin().classify(&v4(ICMP, 1883, 1883, 0, 28));
    assert_eq!(
        (icmp.class, icmp.flow.src_port, icmp.flow.dst_port),
        (Dflt, 0, 0)
    );
}

#[test]
fn non_first_fragments_have_no_ports() {
    let mut first = v4(TCP, 40000, 1883, 0, 100);
    first[6] = 0x20; // more fragments, offset 0
    assert_eq!(class(&first), Telemonitoring);
    let mut later = v4(TCP, 40000, 1883, 0, 100);
    later[7] = 10; // offset 80 bytes: the "ports" are payload
    let c = ClassRules::builtin().classify(&later);
    assert_eq!((c.class, c.flow.src_port, c.flow.dst_port), (Dflt, 0, 0));
    assert_eq!(c.flow.protocol, TCP);
    // Without ports, an EF-marked small fragment is still telemonitoring by its DSCP.
    let mut marked = v4(UDP, 1, 2, dscp::EF, 100);
    marked[7] = 10;
    assert_eq!(class(&marked), Telemonitoring);
}

#[test]
fn ipv6_extension_headers_are_skipped() {
    let hop_by_hop = (0, vec![0u8; 8]);
    let dest_opts = (60, vec![0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
    let first_fragment = (44, vec![0, 0, 0, 1, 0, 0, 0, 7]);
    let p = v6(
        &[hop_by_hop.clone(), dest_opts, first_fragment],
        TCP,
        (40000, 104),
        0,
        10,
    );
    let c = ClassRules::builtin().classify(&p);
    assert_eq!(
        (c.class, c.flow.protocol, c.flow.dst_port),
        (Imaging, TCP, 104)
    );
    let later_fragment = (44, vec![0, 0, 0x01, 0x01, 0, 0, 0, 7]); // offset 32, more
    let c = ClassRules::builtin().classify(&v6(&[later_fragment], TCP, (40000, 104), 0, 10));
    assert_eq!((c.class, c.flow.protocol, c.flow.dst_port), (Dflt, TCP, 0));
    let esp = v6(&[hop_by_hop], 50, (40000, 104), 0, 10);
    assert_eq!(class(&esp), Dflt, "no ports behind ESP");
    let too_many: Vec<_> = (0..=MAX_EXTENSION_HEADERS)
        .map(|_| (60, vec![0u8; 8]))
        .collect();
    assert_eq!(class(&v6(&too_many, TCP, (40000, 104), 0, 10)), Dflt);
}

#[test]
fn malformed_and_truncated_are_default() {
    let rules = ClassRules::builtin();
    let good = v4(TCP, 40000, 1883, 0, 40);
    assert_eq!(rules.classify(&good).class, Telemonitoring);
    for cut in [0, 1, 19, 20, 23, 39] {
        assert_eq!(rules.classify(&good[..cut]).class, Dflt, "cut at {cut}");
    }
    let mut short_header = good.clone();
    short_header[2..4].copy_from_slice(&22u16.to_be_bytes()); // TCP ports beyond the total length
    assert_eq!(rules.classify(&short_header).class, Dflt);
    let mut bad_ihl = good.clone();
    bad_ihl[0] = 0x44;
    assert_eq!(
        rules.classify(&bad_ihl),
        Classified {
            class: Dflt,
            flow: FlowKey::UNPARSED
        }
    );
    let v6p = v6(&[(0, vec![0u8; 8])], TCP, (1, 1883), 0, 0);
    for cut in [39, 40, 47, 48, 51] {
        assert_eq!(rules.classify(&v6p[..cut]).class, Dflt, "v6 cut at {cut}");
    }
    assert_eq!(rules.classify(&v6p).class, Telemonitoring);
    assert_eq!(rules.classify(&[0x70; 60]).class, Dflt);
}

#[test]
fn admin_rules_come_first() {
    let https_to_pacs = Rule {
        protocol: Some(TCP),
        ports: vec![443..=443],
        cidr: vec![("10.0.2.0".parse().unwrap(), 24)],
        ..Rule::any(Imaging)
    };
    let mqtt_is_default = Rule {
        ports: vec![1883..=1883],
        ..Rule::any(Dflt)
    };
    let rules = ClassRules::with_admin_rules(vec![https_to_pacs.clone(), mqtt_is_default]);
    assert_eq!(rules.admin_rules().len(), 2);
    assert_eq!(rules.rules().len(), ClassRules::builtin().rules().len() + 2);
    assert_eq!(rules.classify(&v4(TCP, 40000, 443, 0, 60)).class, Imaging);
    assert_eq!(
        rules.classify(&v4(TCP, 443, 40000, 0, 60)).class,
        Imaging,
        "reply"
    );
    assert_eq!(rules.classify(&v4(TCP, 40000, 1883, 0, 60)).class, Dflt);
    assert_eq!(
        rules.classify(&v4(TCP, 40000, 8883, 0, 60)).class,
        Telemonitoring
    );
    // The CIDR is IPv4: the same HTTPS over IPv6 stays default.
    assert_eq!(
        rules.classify(&v6(&[], TCP, (40000, 443), 0, 0)).class,
        Dflt
    );
    let outside = ClassRules::with_admin_rules(vec![Rule {
        cidr: vec![("10.0.3.0".parse().unwrap(), 24)],
        ..https_to_pacs
    }]);
    assert_eq!(outside.classify(&v4(TCP, 40000, 443, 0, 60)).class, Dflt);
}

#[test]
fn cidr_prefixes() {
    let v4a = |s: &str| s.parse::<IpAddr>().unwrap();
    assert!(contains(v4a("10.0.0.0"), 8, v4a("10.255.1.2")));
    assert!(!contains(v4a("10.0.0.0"), 8, v4a("11.0.0.0")));
    assert!(contains(v4a("0.0.0.0"), 0, v4a("192.0.2.1")));
    assert!(contains(v4a("192.0.2.1"), 32, v4a("192.0.2.1")));
    assert!(!contains(v4a("192.0.2.1"), 32, v4a("192.0.2.2")));
    assert!(contains(v4a("fd00::"), 8, v4a("fdff::1")));
    assert!(contains(v4a("::"), 0, v4a("2001:db8::1")));
    assert!(
        !contains(v4a("::"), 0, v4a("10.0.0.1")),
        "families never mix"
    );
    assert!(!contains(v4a("fd00::1"), 128, v4a("fd00::2")));
}

proptest! {
    #[test]
    fn never_panics(b in proptest::collection::vec(any::<u8>(), 0..120), v6 in any::<bool>()) {
        let mut b = b;
        if let Some(first) = b.first_mut() {
            *first = (*first & 0x0f) | if v6 { 0x60 } else { 0x40 };
        }
        let c = ClassRules::builtin().classify(&b);
        if c.flow.protocol != TCP && c.flow.protocol != UDP {
            prop_assert_eq!((c.flow.src_port, c.flow.dst_port), (0, 0));
        }
    }
}
