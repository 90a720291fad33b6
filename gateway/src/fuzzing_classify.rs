//! The body of the `gateway_classify` fuzz target (see `fuzzing.rs`): the traffic-class rules on
//! any packet read from TUN.

use std::hint::black_box;
use std::sync::OnceLock;

/// Classifies `data` as a packet read from TUN, with administrator rules of every kind before the
/// built-in ones: whatever `proto::ip` cannot read is `default`, otherwise the flow has its
/// addresses, and ports only for TCP and UDP.
pub fn classify(data: &[u8]) {
    use crate::classes::rules::{ClassRules, Rule};
    static RULES: OnceLock<ClassRules> = OnceLock::new();
    let rules = RULES.get_or_init(|| {
        let net = |s: &str, len| {
            (
                s.parse().unwrap_or(std::net::Ipv4Addr::LOCALHOST.into()),
                len,
            )
        };
        let admin = |class, protocol, ports: &[_], dscp: &[u8], cidr: &[_]| Rule {
            protocol,
            ports: ports.to_vec(),
            dscp: dscp.to_vec(),
            cidr: cidr.to_vec(),
            ..Rule::any(class)
        };
        use crate::classes::ClassId::*;
        ClassRules::with_admin_rules(vec![
            admin(Imaging, Some(6), &[443..=443], &[], &[net("10.0.0.0", 8)]),
            admin(Telemedicine, None, &[], &[26, 32], &[net("fd00::", 8)]),
            admin(Default, Some(17), &[1..=1023], &[0], &[]),
        ])
    });
    let c = black_box(rules.classify(data));
    match crate::proto::ip::parse(data) {
        None => assert_eq!(c.class, crate::classes::ClassId::Default),
        Some(ip) => assert_eq!((c.flow.src, c.flow.dst), (ip.src, ip.dst)),
    }
    if c.flow.protocol != 6 && c.flow.protocol != 17 {
        assert_eq!((c.flow.src_port, c.flow.dst_port), (0, 0));
    }
}
