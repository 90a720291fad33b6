//! The hybrid part of the configuration: a valid two-site setup, and every misconfiguration
//! refused with the file, line, field and problem.
#![allow(clippy::unwrap_used)]

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use crate::config::Config;
use crate::hybrid::{QkdPolicy, Role};

const KEY_A: &str = "eCT+gjt6ny4E9UmDw7ucGULZtjmoXNGy9eBX8JxIhlQ=";
const PUB_B: &str = "gN65BZ+U0AatSgvoHf9KTL2BLd+s5ZVVxbqUIM3U/Cs=";

fn secret(path: &Path, text: &str) {
    std::fs::write(path, text).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).unwrap();
}

fn setup(dir: &Path) {
    secret(&dir.join("a.key"), KEY_A);
    let mldsa = crate::keyfile::generate_mldsa_private().unwrap();
    secret(&dir.join("a.mldsa"), &mldsa);
    let other = crate::keyfile::generate_mldsa_private().unwrap();
    let public = crate::keyfile::mldsa_public_text(
        &crate::keyfile::parse_mldsa_private(&other, "b").unwrap(),
    );
    std::fs::write(dir.join("b.mldsa.pub"), public).unwrap();
}

fn yaml(dir: &Path, peer_extra: &str, top_extra: &str) -> String {
    let d = dir.display();
    format!(
        "interface:\n  name: qgw0\n  address: 10.201.0.1/24\n  private_key_file: {d}/a.key\n  mldsa_private_key_file: {d}/a.mldsa\n{top_extra}peers:\n  - name: site-b\n    public_key: \"{PUB_B}\"\n    allowed_ips: [10.201.0.2/32]\n{peer_extra}"
    )
}

const KME: &str = "qkd:\n  kme_url: https://127.0.0.1:8441\n  sae_id: SAE_A\n  ca_file: ca.pem\n  cert_file: sae_a.pem\n  key_file: sae_a.key\n";

fn check(dir: &Path, text: &str) -> Result<crate::config::Validated, String> {
    let path = dir.join("site-a.yaml");
    Config::parse(&path, text)
        .and_then(|c| c.validate(&path))
        .map_err(|e| e.0)
}

#[test]
fn a_hybrid_peer_with_required_qkd_validates() {
    let dir = tempfile::tempdir().unwrap();
    setup(dir.path());
    let d = dir.path().display();
    let peer = format!(
        "    hybrid: on\n    mldsa_public_key_file: {d}/b.mldsa.pub\n    qkd: {{ peer_sae_id: SAE_B, policy: required }}\n    rekey_after_seconds: 5\n"
    );
    let v = check(dir.path(), &yaml(dir.path(), &peer, KME)).unwrap();
    let h = v.node.peers[0].hybrid.as_ref().expect("hybrid peer");
    assert_eq!(h.policy, QkdPolicy::Required);
    assert_eq!(h.rekey_after.as_secs(), 5);
    let sae: Vec<_> = h.sources.iter().map(|s| s.peer_sae_id.as_str()).collect();
    assert_eq!(sae, ["SAE_B"]);
    // Default role: the lower X25519 public key is master.
    let ours = x25519_dalek::PublicKey::from(&x25519_dalek::StaticSecret::from(
        crate::config::parse_key(KEY_A).unwrap(),
    ))
    .to_bytes();
    let theirs = crate::config::parse_key(PUB_B).unwrap();
    assert_eq!(
        h.role,
        if ours < theirs {
            Role::Master
        } else {
            Role::Slave
        }
    );
    assert!(v.node.signing_key.is_some() && v.kmes.len() == 1);
    // Every KME call fits the exchange's budget: a connect failure is retried once, a request
    // that may have reached the KME is not (qkd-link), and one attempt ends well before it.
    let kme = &v.kmes[0].client;
    let budget = crate::hybrid::constants::QKD_TIMEOUT.as_millis() as u64;
    let connect_retry = kme.retry.backoff(0, u64::MAX).as_millis() as u64;
    assert!(
        2 * kme.connect_timeout_ms + connect_retry < budget,
        "{kme:?}"
    );
    assert!(kme.request_timeout_ms < budget, "{kme:?}");
    assert!(kme.retry.max_attempts <= 2, "{kme:?}");
}

#[test]
fn misconfigurations_name_file_line_field_and_problem() {
    let dir = tempfile::tempdir().unwrap();
    setup(dir.path());
    let d = dir.path().display();
    let vk = format!("    hybrid: on\n    mldsa_public_key_file: {d}/b.mldsa.pub\n");
    let cases: Vec<(String, &str, &str)> = vec![
        (
            format!("{vk}    qkd: {{ peer_sae_id: SAE_B, policy: required }}\n"),
            "",
            "qkd.policy: needs the top-level `qkd:` block",
        ),
        (
            format!("{vk}    qkd: {{ policy: required }}\n"),
            KME,
            "qkd.peer_sae_id: required unless policy is off",
        ),
        (
            format!("{vk}    rekey_after_seconds: 4\n"),
            "",
            "rekey_after_seconds: must be 5-165",
        ),
        (
            format!("{vk}    qkd: {{ peer_sae_id: SAE_B, policy: sometimes }}\n"),
            KME,
            "sometimes",
        ),
        (
            "    hybrid: on\n".to_string(),
            "",
            "mldsa_public_key_file: required with `hybrid: on`",
        ),
        (
            "    rekey_after_seconds: 30\n".to_string(),
            "",
            "rekey_after_seconds: only applies with `hybrid: on`",
        ),
        (
            format!("{vk}    qkd: {{ peer_sae_id: SAE_B, policy: off, colour: red }}\n"),
            "",
            "colour",
        ),
    ];
    for (peer, top, want) in cases {
        let e = check(dir.path(), &yaml(dir.path(), &peer, top)).unwrap_err();
        assert!(
            e.starts_with(&format!("{}", dir.path().join("site-a.yaml").display())),
            "{e}"
        );
        assert!(e.contains(want), "want {want:?} in {e:?}");
    }
    // A group-readable ML-DSA key is refused.
    std::fs::set_permissions(
        dir.path().join("a.mldsa"),
        std::fs::Permissions::from_mode(0o640),
    )
    .unwrap();
    let e = check(dir.path(), &yaml(dir.path(), &vk, "")).unwrap_err();
    assert!(
        e.contains("interface.mldsa_private_key_file") && e.contains("chmod 600"),
        "{e}"
    );
}

#[test]
fn an_mtu_too_small_for_hybrid_datagrams_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    setup(dir.path());
    let d = dir.path().display();
    let hybrid = format!("    hybrid: on\n    mldsa_public_key_file: {d}/b.mldsa.pub\n");
    let file = dir.path().join("site-a.yaml").display().to_string();
    for mtu in [576, 1000, 1199] {
        let text = yaml(dir.path(), &hybrid, &format!("  mtu: {mtu}\n"));
        let e = check(dir.path(), &text).unwrap_err();
        // Line 6 is `mtu:` (after name, address and the two key files).
        assert!(e.starts_with(&format!("{file}:6: interface.mtu: ")), "{e}");
        assert!(
            e.contains(&mtu.to_string()) && e.contains("1200") && e.contains("1232"),
            "{e}"
        );
        assert!(
            e.contains("peers[0] (site-b)"),
            "names the hybrid peer: {e}"
        );
        // The same MTU with a plain peer is allowed (IPv4 addresses only).
        assert!(
            check(
                dir.path(),
                &yaml(dir.path(), "", &format!("  mtu: {mtu}\n"))
            )
            .is_ok()
        );
    }
    let fits = yaml(dir.path(), &hybrid, "  mtu: 1200\n");
    assert_eq!(check(dir.path(), &fits).unwrap().node.mtu, 1200);
}
