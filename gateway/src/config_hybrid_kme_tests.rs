//! This site's KMEs and each peer's QKD sources: both forms parse, and every mistake is refused
//! with the file, line, field and problem.
#![allow(clippy::unwrap_used)]

use std::path::Path;

use crate::config::Config;
use crate::hybrid::Require;
use crate::node::KmeId;

const KEY_A: &str = "eCT+gjt6ny4E9UmDw7ucGULZtjmoXNGy9eBX8JxIhlQ=";
const PUB_B: &str = "gN65BZ+U0AatSgvoHf9KTL2BLd+s5ZVVxbqUIM3U/Cs=";

fn setup(dir: &Path) {
    use std::os::unix::fs::PermissionsExt;
    let secret = |name: &str, text: &str| {
        std::fs::write(dir.join(name), text).unwrap();
        std::fs::set_permissions(dir.join(name), std::fs::Permissions::from_mode(0o600)).unwrap();
    };
    secret("a.key", KEY_A);
    secret(
        "a.mldsa",
        &crate::keyfile::generate_mldsa_private().unwrap(),
    );
    let other = crate::keyfile::generate_mldsa_private().unwrap();
    let parsed = crate::keyfile::parse_mldsa_private(&other, "b").unwrap();
    std::fs::write(
        dir.join("b.mldsa.pub"),
        crate::keyfile::mldsa_public_text(&parsed),
    )
    .unwrap();
}

/// Two KMEs, `east` (line 7) and `west` (line 13).
const TWO_KMES: &str = "qkd:\n  kmes:\n    - name: east\n      kme_url: https://127.0.0.1:8441\n      sae_id: SAE_C1\n      ca_file: ca.pem\n      cert_file: c1.pem\n      key_file: c1.key\n    - name: west\n      kme_url: https://127.0.0.1:8445\n      sae_id: SAE_C2\n      ca_file: ca.pem\n      cert_file: c2.pem\n      key_file: c2.key\n";

const ONE_KME: &str = "qkd:\n  kme_url: https://127.0.0.1:8441\n  sae_id: SAE_A\n  ca_file: ca.pem\n  cert_file: sae_a.pem\n  key_file: sae_a.key\n";

fn check(dir: &Path, top: &str, qkd: &str) -> Result<crate::config::Validated, String> {
    let d = dir.display();
    let text = format!(
        "interface:\n  name: qgw0\n  address: 10.201.0.1/24\n  private_key_file: {d}/a.key\n  mldsa_private_key_file: {d}/a.mldsa\n{top}peers:\n  - name: site-b\n    public_key: \"{PUB_B}\"\n    allowed_ips: [10.201.0.2/32]\n    hybrid: on\n    mldsa_public_key_file: {d}/b.mldsa.pub\n    qkd:\n{qkd}"
    );
    let path = dir.join("site-a.yaml");
    Config::parse(&path, &text)
        .and_then(|c| c.validate(&path))
        .map_err(|e| e.0)
}

const TWO_SOURCES: &str = "      policy: required\n      require: any\n      role: master\n      sources:\n        - { kme: east, peer_sae_id: SAE_H1 }\n        - { kme: west, peer_sae_id: SAE_H2 }\n";

#[test]
fn two_kmes_and_a_peer_with_two_sources_validate() {
    let dir = tempfile::tempdir().unwrap();
    setup(dir.path());
    let v = check(dir.path(), TWO_KMES, TWO_SOURCES).unwrap();
    let names: Vec<_> = v.kmes.iter().map(|k| k.name.as_str()).collect();
    assert_eq!(names, ["east", "west"]);
    assert_eq!(v.kmes[1].client.sae_id.as_str(), "SAE_C2");
    let h = v.node.peers[0].hybrid.as_ref().unwrap();
    assert_eq!(h.require, Require::Any);
    let sources: Vec<_> = (h.sources.iter())
        .map(|s| (s.kme, s.peer_sae_id.as_str()))
        .collect();
    assert_eq!(
        sources,
        [(KmeId::FIRST, "SAE_H1"), (KmeId::new(1).unwrap(), "SAE_H2")]
    );
    // `require` defaults to all.
    let all = TWO_SOURCES.replace("      require: any\n", "");
    let v = check(dir.path(), TWO_KMES, &all).unwrap();
    assert_eq!(
        v.node.peers[0].hybrid.as_ref().unwrap().require,
        Require::All
    );
}

#[test]
fn the_one_kme_form_is_one_source_named_kme() {
    let dir = tempfile::tempdir().unwrap();
    setup(dir.path());
    let one = "      { peer_sae_id: SAE_B, policy: required }\n";
    let v = check(dir.path(), ONE_KME, one).unwrap();
    assert_eq!(v.kmes.len(), 1);
    assert_eq!(v.kmes[0].name, "kme");
    let h = v.node.peers[0].hybrid.as_ref().unwrap();
    assert_eq!(h.sources.len(), 1);
    assert_eq!(h.sources[0].kme, KmeId::FIRST);
    assert_eq!(h.require, Require::All);
    // `sources:` naming the implicit `kme` is the same thing.
    let listed = "      policy: required\n      sources: [{ kme: kme, peer_sae_id: SAE_B }]\n";
    let v = check(dir.path(), ONE_KME, listed).unwrap();
    assert_eq!(v.node.peers[0].hybrid.as_ref().unwrap().sources, h.sources);
}

#[test]
fn source_mistakes_name_file_line_field_and_problem() {
    let dir = tempfile::tempdir().unwrap();
    setup(dir.path());
    let file = dir.path().join("site-a.yaml").display().to_string();
    let five = (0..5)
        .map(|n| format!("        - {{ kme: east, peer_sae_id: SAE_H{n} }}\n"))
        .collect::<String>();
    let dup_kme = TWO_KMES.replace("name: west", "name: east");
    let bad_name = TWO_KMES.replace("name: west", "name: West_1");
    let both = format!("{ONE_KME}  kmes: []\n");
    let cases: Vec<(&str, String, String)> = vec![
        (
            TWO_KMES,
            TWO_SOURCES.replace("kme: west", "kme: north"),
            ":32: peers[0] (site-b).qkd.sources[1].kme: \"north\" is not a KME of this site".into(),
        ),
        (
            &dup_kme,
            TWO_SOURCES.into(),
            ":14: qkd.kmes[1].name: \"east\" is listed twice".into(),
        ),
        (
            &bad_name,
            TWO_SOURCES.into(),
            ":14: qkd.kmes[1].name: \"West_1\" is not 1-32 of a-z, 0-9, -".into(),
        ),
        (
            TWO_KMES,
            "      policy: required\n      require: all\n      sources: [{ kme: east, peer_sae_id: SAE_H1 }]\n".into(),
            ":28: peers[0] (site-b).qkd.require: only applies with two or more `sources:`".into(),
        ),
        (
            TWO_KMES,
            format!("      policy: required\n      sources:\n{five}"),
            ":29: peers[0] (site-b).qkd.sources: list 1 to 4 sources (it has 5)".into(),
        ),
        (
            TWO_KMES,
            "      { peer_sae_id: SAE_H1, policy: required }\n".into(),
            ":27: peers[0] (site-b).qkd.peer_sae_id: this site has several KMEs".into(),
        ),
        (
            TWO_KMES,
            "      { policy: preferred }\n".into(),
            ":27: peers[0] (site-b).qkd.peer_sae_id: required unless policy is off".into(),
        ),
        (
            &both,
            TWO_SOURCES.into(),
            ":7: qkd.kme_url: goes into each entry of `kmes:`".into(),
        ),
        (
            TWO_KMES,
            "      policy: required\n      sources: [{ kme: east, peer_sae_id: A }, { kme: east, peer_sae_id: A }]\n".into(),
            ":28: peers[0] (site-b).qkd.sources[1]: the same KME and peer_sae_id are listed twice".into(),
        ),
        (
            TWO_KMES,
            "      policy: required\n      sources: [{ kme: east, peer_sae_id: A, path: x }]\n".into(),
            "path".into(),
        ),
    ];
    for (top, qkd, want) in cases {
        let e = check(dir.path(), top, &qkd).unwrap_err();
        assert!(e.starts_with(&format!("{file}:")), "{e}");
        assert!(e.contains(&want), "want {want:?} in {e:?}");
    }
}
