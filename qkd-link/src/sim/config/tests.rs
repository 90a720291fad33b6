#![allow(clippy::unwrap_used)]
use super::*;

const BASE: &str = r#"
kmes:
  - id: KME_A
    listen: 127.0.0.1:0
    saes: [SAE_A]
  - id: KME_B
    listen: 127.0.0.1:0
    saes: [SAE_B]
links:
  - kmes: [KME_A, KME_B]
    secret_key_rate_bps: 1000
    max_key_count: 10
"#;

fn err(text: &str) -> String {
    SimConfig::from_yaml(text, "sim.yaml")
        .unwrap_err()
        .to_string()
}

#[test]
fn shipped_example_config_is_valid() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../configs/kme-sim.yaml");
    let cfg = SimConfig::load(&path).unwrap();
    assert_eq!(cfg.kmes.len(), 2);
    assert_eq!(cfg.kmes[0].listen.to_string(), "127.0.0.1:8441");
    assert_eq!(cfg.kmes[1].listen.to_string(), "127.0.0.1:8442");
    assert_eq!(cfg.kmes[0].saes[0].as_str(), "SAE_A");
    assert_eq!(cfg.kmes[1].saes[0].as_str(), "SAE_B");
    let rate = cfg.links[0].secret_key_rate_bps;
    assert!(
        (300_000..=1_000_000).contains(&rate),
        "metro-fibre rate, got {rate}"
    );
    assert!(cfg.pki_dir.unwrap().ends_with("../pki"));
    assert!(cfg.admin.unwrap().listen.ip().is_loopback());
}

#[test]
fn minimal_config_gets_defaults() {
    let cfg = SimConfig::from_yaml(BASE, "sim.yaml").unwrap();
    assert_eq!(cfg.limits, Limits::default());
    assert_eq!(cfg.links[0].qber_threshold, 0.08);
    assert_eq!(cfg.ca, PathBuf::from("ca.pem"));
}

#[test]
fn unknown_fields_are_rejected() {
    let msg = err(&format!("{BASE}colour: blue\n"));
    assert!(msg.contains("sim.yaml") && msg.contains("colour"), "{msg}");
    let msg = err(&BASE.replace("saes: [SAE_A]", "saes: [SAE_A]\n    sae: [SAE_C]"));
    assert!(msg.contains("sae"), "{msg}");
}

#[test]
fn admin_api_must_be_on_loopback() {
    let msg = err(&format!("{BASE}admin:\n  listen: 0.0.0.0:8440\n"));
    assert!(
        msg.contains("admin.listen") && msg.contains("loopback"),
        "{msg}"
    );
    assert!(SimConfig::from_yaml(&format!("{BASE}admin:\n  listen: '[::1]:0'\n"), "s").is_ok());
}

#[test]
fn inconsistencies_name_the_field() {
    let cases = [
        (
            BASE.replace("saes: [SAE_B]", "saes: [SAE_A]"),
            "kmes[1].saes",
        ),
        (BASE.replace("id: KME_B", "id: KME_A"), "kmes[1].id"),
        (
            BASE.replace("kmes: [KME_A, KME_B]", "kmes: [KME_A, KME_C]"),
            "links[0].kmes",
        ),
        (
            BASE.replace("kmes: [KME_A, KME_B]", "kmes: [KME_A, KME_A]"),
            "links[0].kmes",
        ),
        (
            BASE.replace("max_key_count: 10", "max_key_count: 0"),
            "links[0].max_key_count",
        ),
        (
            format!("{BASE}    initial_key_count: 11\n"),
            "links[0].initial_key_count",
        ),
        (
            format!("{BASE}limits:\n  key_size: 100\n"),
            "limits.key_size",
        ),
        (
            format!("{BASE}limits:\n  min_key_size: 512\n"),
            "limits.key_size",
        ),
        (
            format!("{BASE}limits:\n  max_key_per_request: 0\n"),
            "limits.max_key_per_request",
        ),
        (
            BASE.replace(
                "saes: [SAE_A]",
                "saes: [SAE_A]\n    latency_ms: {min: 5, max: 1}",
            ),
            "kmes[0].latency_ms",
        ),
        (BASE.replace("saes: [SAE_A]", "saes: []"), "kmes[0].saes"),
        (BASE.replace("SAE_A", "SAE A"), "(yaml)"),
        (format!("{BASE}    qber: 0.9\n"), "links[0].qber"),
    ];
    for (text, field) in cases {
        let msg = err(&text);
        assert!(msg.contains(field), "expected {field} in: {msg}");
    }
}

#[test]
fn every_shipped_simulator_config_is_valid() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../configs");
    let mut loaded = Vec::new();
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if name.starts_with("kme-sim") && name.ends_with(".yaml") {
            let cfg = SimConfig::load(&path).unwrap_or_else(|e| panic!("{name}: {e}"));
            loaded.push((name, cfg));
        }
    }
    loaded.sort_by(|a, b| a.0.cmp(&b.0));
    let names: Vec<&str> = loaded.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        [
            "kme-sim-madrid-region.yaml",
            "kme-sim-madrid.yaml",
            "kme-sim-region.yaml",
            "kme-sim.yaml"
        ]
    );
    let madrid_region = &loaded[0].1;
    assert_eq!(
        (madrid_region.trusted_nodes.len(), madrid_region.kmes.len()),
        (4, 6)
    );
    let madrid = &loaded[1].1;
    assert_eq!((madrid.trusted_nodes.len(), madrid.links.len()), (2, 3));
    let region = &loaded[2].1;
    let saes: usize = region.kmes.iter().map(|k| k.saes.len()).sum();
    assert!(saes >= 100, "the region serves {saes} SAEs");
    assert!(region.trusted_nodes.len() >= 3);
}

const NETWORK: &str = r#"
kmes:
  - { id: KME_A, listen: "127.0.0.1:0", saes: [SAE_A] }
  - { id: KME_B, listen: "127.0.0.1:0", saes: [SAE_B] }
trusted_nodes: [{ id: R1 }, { id: R2, down: true }]
links:
  - { kmes: [KME_A, R1], secret_key_rate_bps: 1000, max_key_count: 10, length_km: 12.5, relay_latency_ms: 4 }
  - { kmes: [R1, KME_B], secret_key_rate_bps: 1000, max_key_count: 10 }
"#;

#[test]
fn trusted_nodes_and_link_lengths_are_parsed_and_checked() {
    let cfg = SimConfig::from_yaml(NETWORK, "net.yaml").unwrap();
    assert_eq!(cfg.node_index(&SaeId::new("R2").unwrap()), Some(3));
    assert!(cfg.trusted_nodes[1].down);
    assert_eq!(
        (cfg.links[0].length_km, cfg.links[0].relay_latency_ms),
        (Some(12.5), 4)
    );
    assert_eq!(
        (cfg.links[1].length_km, cfg.links[1].relay_latency_ms),
        (None, 0)
    );
    let cases = [
        (
            NETWORK.replace("{ id: R1 }", "{ id: KME_A }"),
            "trusted_nodes[0].id",
        ),
        (
            NETWORK.replace("[R1, KME_B]", "[R3, KME_B]"),
            "links[1].kmes",
        ),
        (
            NETWORK.replace("length_km: 12.5", "length_km: 0"),
            "links[0].length_km",
        ),
        (
            NETWORK.replace("length_km: 12.5", "length_km: 5000"),
            "links[0].length_km",
        ),
        (
            NETWORK.replace("relay_latency_ms: 4", "relay_latency_ms: 60000"),
            "links[0].relay_latency_ms",
        ),
        (
            NETWORK.replace("{ id: R1 }", "{ id: R1, saes: [SAE_C] }"),
            "saes",
        ),
    ];
    for (text, field) in cases {
        let msg = err(&text);
        assert!(msg.contains(field), "expected {field} in: {msg}");
    }
}
