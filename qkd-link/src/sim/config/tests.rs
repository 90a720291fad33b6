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
