//! `classes:` and the peers' `egress_rate` / `outer_dscp`: what validates reaches the node, and
//! every mistake is refused with the file, line, field and problem.
#![allow(clippy::unwrap_used)]

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use super::*;
use crate::config::Config;

const KEY_A: &str = "eCT+gjt6ny4E9UmDw7ucGULZtjmoXNGy9eBX8JxIhlQ=";
const PUB_B: &str = "gN65BZ+U0AatSgvoHf9KTL2BLd+s5ZVVxbqUIM3U/Cs=";

/// A site with `top` at the top level (line 5 on) and one peer with `peer` appended to it.
fn check(dir: &Path, top: &str, peer: &str) -> Result<crate::config::Validated, String> {
    let key = dir.join("a.key");
    std::fs::write(&key, KEY_A).unwrap();
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
    let text = format!(
        "interface:\n  name: qgw0\n  address: 10.201.0.1/24\n  private_key_file: {}\n{top}peers:\n  - name: site-b\n    public_key: \"{PUB_B}\"\n    allowed_ips: [10.201.0.2/32]\n{peer}",
        key.display()
    );
    let path = dir.join("site-a.yaml");
    Config::parse(&path, &text)
        .and_then(|c| c.validate(&path))
        .map_err(|e| e.0)
}

fn classes_error(top: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    check(dir.path(), top, "").unwrap_err()
}

fn egress_error(peer: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    check(dir.path(), "", peer).unwrap_err()
}

#[test]
fn without_the_keys_the_built_in_rules_and_no_scheduling() {
    let dir = tempfile::tempdir().unwrap();
    let v = check(dir.path(), "", "").unwrap();
    assert_eq!(*v.node.classes, ClassRules::builtin());
    assert_eq!(v.node.peers[0].egress, PeerEgress::default());
}

const RULES: &str = "classes:
  - name: imaging
    match: {protocol: tcp, ports: [443, \"8080-8090\"], cidr: [10.20.0.0/16, \"fd00:20::/32\"]}
  - name: telemonitoring
    match:
      dscp: [EF, cs5, 26]
  - name: default
    match: {protocol: 17, ports: [\"5060\"]}
  - name: telemedicine
    match: {protocol: any, cidr: [192.0.2.7]}
";

#[test]
fn admin_rules_reach_the_node_in_order_before_the_built_in_ones() {
    let dir = tempfile::tempdir().unwrap();
    let v = check(dir.path(), RULES, "").unwrap();
    let admin = v.node.classes.admin_rules();
    let classes: Vec<_> = admin.iter().map(|r| r.class).collect();
    use ClassId::*;
    assert_eq!(classes, [Imaging, Telemonitoring, Default, Telemedicine]);
    assert_eq!(admin[0].protocol, Some(protocol::TCP));
    assert_eq!(admin[0].ports, [443..=443, 8080..=8090]);
    let nets: Vec<_> = admin[0]
        .cidr
        .iter()
        .map(|(ip, len)| format!("{ip}/{len}"))
        .collect();
    assert_eq!(nets, ["10.20.0.0/16", "fd00:20::/32"]);
    assert_eq!(admin[1].dscp, [46, 40, 26]);
    assert_eq!(
        (admin[2].protocol, &admin[2].ports),
        (Some(17), &vec![5060..=5060])
    );
    assert_eq!(admin[3].protocol, None);
    assert_eq!(admin[3].cidr, [("192.0.2.7".parse().unwrap(), 32)]);
    assert_eq!(
        v.node.classes.rules().len(),
        4 + ClassRules::builtin().rules().len()
    );
}

#[test]
fn every_class_mistake_names_file_line_and_field() {
    let entry = |m: &str| format!("classes:\n  - name: imaging\n    match: {m}\n");
    let cases = [
        (
            "classes:\n  - name: video\n    match: {ports: [1]}\n".to_owned(),
            ":6: classes[0].name: must be one of telemonitoring, telemedicine, imaging, default",
        ),
        (
            entry("{}"),
            ":7: classes[0] (imaging).match: must set at least one of",
        ),
        (
            entry("{protocol: sctp}"),
            ".match.protocol: \"sctp\" is not tcp, udp",
        ),
        (entry("{protocol: 256}"), ".match.protocol: 256 is not"),
        (
            entry("{protocol: icmp, ports: [1]}"),
            ".match.ports: only TCP and UDP have ports",
        ),
        (entry("{ports: []}"), ".match.ports: must list at least one"),
        (
            entry("{ports: [0]}"),
            ".match.ports: 0 is not a port 1-65535",
        ),
        (
            entry("{ports: [65536]}"),
            ".match.ports: 65536 is not a port",
        ),
        (
            entry("{ports: [\"9-8\"]}"),
            ".match.ports: \"9-8\": the range's first port is above",
        ),
        (entry("{ports: [\"1-70000\"]}"), "\"1-70000\" is not a port"),
        (entry("{ports: [\"http\"]}"), "\"http\" is not a port"),
        (
            entry("{dscp: [AF44]}"),
            ".match.dscp: \"AF44\" is not 0-63 or a name",
        ),
        (entry("{dscp: [64]}"), ".match.dscp: 64 is not 0-63"),
        (entry("{dscp: []}"), ".match.dscp: must list at least one"),
        (
            entry("{cidr: [10.0.0.1/8]}"),
            "has host bits set: did you mean 10.0.0.0/8?",
        ),
        (entry("{cidr: [\"fd00::1/64\"]}"), "did you mean fd00::/64?"),
        (
            entry("{cidr: [10.0.0.0/33]}"),
            ".match.cidr: \"10.0.0.0/33\" is not IP/prefix",
        ),
        (entry("{cidr: []}"), ".match.cidr: must list at least one"),
    ];
    for (top, want) in cases {
        let e = classes_error(&top);
        assert!(e.contains("site-a.yaml:") && e.contains(want), "{top}: {e}");
    }
    let multi_line =
        "classes:\n  - name: imaging\n    match:\n      ports:\n        - 104\n        - 0\n";
    let e = classes_error(multi_line);
    assert!(
        e.contains("site-a.yaml:10: classes[0] (imaging).match.ports: 0"),
        "{e}"
    );
    for unknown in [
        entry("{port: [1]}"),
        "classes:\n  - name: imaging\n    match: {ports: [1]}\n    weight: 3\n".to_owned(),
        "classes:\n  - name: imaging\n".to_owned(),
    ] {
        let e = classes_error(&unknown);
        assert!(e.contains("site-a.yaml"), "{unknown}: {e}");
    }
}

#[test]
fn egress_rates_in_units_of_1000() {
    let dir = tempfile::tempdir().unwrap();
    for (rate, bps) in [
        ("200mbit", 200_000_000),
        ("1.5gbit", 1_500_000_000),
        ("64kbit", 64_000),
        ("0.064mbit", 64_000),
        ("400gbit", 400_000_000_000),
        ("10 Mbit", 10_000_000),
        ("2.25kbit", 2_250),
    ] {
        let peer = format!("    egress_rate: {rate}\n");
        let got = check(dir.path(), "", &peer).map(|v| v.node.peers[0].egress);
        if bps < MIN_EGRESS_BPS {
            assert!(got.unwrap_err().contains("below the least"), "{rate}");
            continue;
        }
        let want = PeerEgress {
            rate_bps: Some(bps),
            outer_dscp: false,
        };
        assert_eq!(got.unwrap(), want, "{rate}");
    }
    let peer = "    egress_rate: 1gbit\n    outer_dscp: true\n";
    let egress = check(dir.path(), "", peer).unwrap().node.peers[0].egress;
    assert_eq!(
        (egress.rate_bps, egress.outer_dscp),
        (Some(1_000_000_000), true)
    );
    let off = check(dir.path(), "", "    outer_dscp: false\n").unwrap();
    assert_eq!(off.node.peers[0].egress, PeerEgress::default());
    // Marking without scheduling: the node decides what it does with it.
    let marked = check(dir.path(), "", "    outer_dscp: true\n").unwrap();
    assert_eq!(marked.node.peers[0].egress.rate_bps, None);
    assert!(marked.node.peers[0].egress.outer_dscp);
}

#[test]
fn every_egress_mistake_names_file_line_and_field() {
    let field = "site-a.yaml:9: peers[0] (site-b).egress_rate: ";
    for (rate, want) in [
        ("200", "200 needs a unit: kbit, mbit or gbit (e.g. 200mbit)"),
        ("200mb", "\"200mb\" needs a unit"),
        ("0mbit", "must be more than 0"),
        ("0.0001kbit", "must be more than 0"),
        ("63kbit", "below the least, 64kbit"),
        ("400.5gbit", "above the most, 400gbit"),
        ("99999999999999gbit", "above the most, 400gbit"),
        ("1234567890123456789mbit", "is not a number"),
        ("1.gbit", "is not a number"),
        ("-1mbit", "is not a number"),
        ("fast", "needs a unit"),
    ] {
        let e = egress_error(&format!("    egress_rate: {rate}\n"));
        assert!(e.contains(field) && e.contains(want), "{rate}: {e}");
    }
    let e = egress_error("    outer_dscp: sometimes\n");
    assert!(e.contains("site-a.yaml"), "{e}");
}

#[test]
fn dscp_names() {
    let name = |s: &str| dscp_value(&NumberOrText::Text(s.to_owned()));
    assert_eq!(name("EF"), Some(46));
    assert_eq!(name("va"), Some(44));
    assert_eq!(name("CS0"), Some(0));
    assert_eq!(name("CS7"), Some(56));
    assert_eq!(name("AF11"), Some(10));
    assert_eq!(name("AF23"), Some(22));
    assert_eq!(name("AF41"), Some(34));
    assert_eq!(name("af43"), Some(38));
    for bad in ["CS8", "AF10", "AF51", "AF14", "BE", "", "A"] {
        assert_eq!(name(bad), None, "{bad}");
    }
    assert_eq!(dscp_value(&NumberOrText::Number(63)), Some(63));
    assert_eq!(dscp_value(&NumberOrText::Number(-1)), None);
}

#[test]
fn the_documented_example_validates() {
    let readme = include_str!("../../configs/README.md");
    let section = &readme[readme.find("## `classes:`").unwrap()..];
    let example = section.split("```yaml\n").nth(1).unwrap();
    let example = &example[..example.find("```").unwrap()];
    let dir = tempfile::tempdir().unwrap();
    let v = check(dir.path(), example, "    egress_rate: 200mbit\n").unwrap();
    assert_eq!(v.node.classes.admin_rules().len(), 4);
    assert_eq!(v.node.classes.admin_rules()[3].dscp, [32]);
}
