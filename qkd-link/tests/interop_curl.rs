//! An ETSI 014 client that is not ours: curl, with the demo certificates, against the simulator.
//! JSON is read with serde_json's generic `Value`, not with qkd-link's parsers. Requires `curl`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::Harness;
use serde_json::Value;

/// Runs curl as `sae` (file stem) and returns (HTTP status, body).
fn curl(pki: &Path, sae: &str, url: &str, post: Option<&str>) -> (u16, String) {
    let mut cmd = Command::new("curl");
    cmd.args([
        "--silent",
        "--show-error",
        "--max-time",
        "10",
        "--write-out",
        "\n%{http_code}",
    ])
    .arg("--cacert")
    .arg(pki.join("ca.pem"))
    .arg("--cert")
    .arg(pki.join(format!("{sae}.pem")))
    .arg("--key")
    .arg(pki.join(format!("{sae}.key")));
    if let Some(body) = post {
        cmd.args(["-H", "Content-Type: application/json", "--data", body]);
    }
    let out = cmd
        .arg(url)
        .output()
        .expect("curl is required for the ETSI 014 interop test (Debian: apt-get install -y curl)");
    assert!(
        out.status.success(),
        "curl failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let (body, code) = text.rsplit_once('\n').unwrap();
    (code.trim().parse().unwrap(), body.to_string())
}

/// The PKI directory and the URLs of KME_A and KME_B, to move into a blocking task.
fn pki_and_urls(h: &Harness) -> (PathBuf, String, String) {
    let url = |kme| h.sim.kme_url(kme).unwrap();
    (h.pki.path().to_path_buf(), url("KME_A"), url("KME_B"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn curl_fetches_matching_keys_from_both_kmes() {
    let h = Harness::default().await;
    let (pki, a, b) = pki_and_urls(&h);
    let result = tokio::task::spawn_blocking(move || {
        let (code, body) = curl(
            &pki,
            "sae_a",
            &format!("{a}/api/v1/keys/SAE_B/status"),
            None,
        );
        assert_eq!(code, 200, "{body}");
        let status: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(status["source_KME_ID"], "KME_A");
        assert_eq!(status["slave_SAE_ID"], "SAE_B");
        assert_eq!(status["key_size"], 256);

        // Master: POST enc_keys for two 256-bit keys.
        let (code, body) = curl(
            &pki,
            "sae_a",
            &format!("{a}/api/v1/keys/SAE_B/enc_keys"),
            Some(r#"{"number":2,"size":256}"#),
        );
        assert_eq!(code, 200, "{body}");
        let master: Value = serde_json::from_str(&body).unwrap();
        let keys = master["keys"].as_array().unwrap();
        assert_eq!(keys.len(), 2);
        let (id0, key0) = (
            keys[0]["key_ID"].as_str().unwrap(),
            keys[0]["key"].as_str().unwrap(),
        );
        let (id1, key1) = (
            keys[1]["key_ID"].as_str().unwrap(),
            keys[1]["key"].as_str().unwrap(),
        );
        assert_eq!(key0.len(), 44, "256 bits in padded Base64");

        // Slave: GET dec_keys?key_ID= for the first, POST dec_keys for the second.
        let (code, body) = curl(
            &pki,
            "sae_b",
            &format!("{b}/api/v1/keys/SAE_A/dec_keys?key_ID={id0}"),
            None,
        );
        assert_eq!(code, 200, "{body}");
        let got: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(got["keys"][0]["key_ID"], id0);
        assert_eq!(got["keys"][0]["key"], key0);
        let ids = format!(r#"{{"key_IDs":[{{"key_ID":"{id1}"}}]}}"#);
        let (code, body) = curl(
            &pki,
            "sae_b",
            &format!("{b}/api/v1/keys/SAE_A/dec_keys"),
            Some(&ids),
        );
        assert_eq!(code, 200, "{body}");
        let got: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(got["keys"][0]["key"], key1);

        // Consumed: 400 with the spec's message, as JSON.
        let (code, body) = curl(
            &pki,
            "sae_b",
            &format!("{b}/api/v1/keys/SAE_A/dec_keys?key_ID={id0}"),
            None,
        );
        assert_eq!(code, 400);
        let err: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(
            err["message"],
            "one or more keys specified are not found on KME"
        );

        // Wrong SAE for this KME: 401, with a JSON body too.
        let (code, body) = curl(
            &pki,
            "sae_b",
            &format!("{a}/api/v1/keys/SAE_A/status"),
            None,
        );
        assert_eq!(code, 401);
        assert!(serde_json::from_str::<Value>(&body).unwrap()["message"].is_string());

        // Size not a multiple of 8: 400 with the spec's message.
        let (code, body) = curl(
            &pki,
            "sae_a",
            &format!("{a}/api/v1/keys/SAE_B/enc_keys?number=1&size=100"),
            None,
        );
        assert_eq!(code, 400);
        assert_eq!(
            serde_json::from_str::<Value>(&body).unwrap()["message"],
            "size shall be a multiple of 8"
        );
    })
    .await;
    h.sim.shutdown().await;
    result.unwrap();
}

/// KME_A and KME_B joined only through two trusted nodes (three segments, 200 ms of relay each).
const CHAIN: &str = r#"
admin: { listen: "127.0.0.1:0" }
kmes:
  - { id: KME_A, listen: "127.0.0.1:0", saes: [SAE_A] }
  - { id: KME_B, listen: "127.0.0.1:0", saes: [SAE_B, SAE_C] }
trusted_nodes: [{ id: KME_R1 }, { id: KME_R2 }]
links:
  - { kmes: [KME_A, KME_R1], secret_key_rate_bps: 1000, max_key_count: 100, initial_key_count: 50, relay_latency_ms: 200 }
  - { kmes: [KME_R1, KME_R2], secret_key_rate_bps: 1000, max_key_count: 100, initial_key_count: 50, relay_latency_ms: 200 }
  - { kmes: [KME_R2, KME_B], secret_key_rate_bps: 1000, max_key_count: 100, initial_key_count: 50, relay_latency_ms: 200 }
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn curl_gets_a_relayed_key_unchanged_after_the_relay_latency() {
    let h = Harness::start(CHAIN).await;
    let (pki, a, b) = pki_and_urls(&h);
    let result = tokio::task::spawn_blocking(move || {
        let (code, body) = curl(
            &pki,
            "sae_a",
            &format!("{a}/api/v1/keys/SAE_B/enc_keys"),
            None,
        );
        assert_eq!(code, 200, "{body}");
        let master: Value = serde_json::from_str(&body).unwrap();
        let (id, key) = (
            master["keys"][0]["key_ID"].as_str().unwrap().to_string(),
            master["keys"][0]["key"].as_str().unwrap().to_string(),
        );
        // Asked at once, the slave's KME holds the reply until the key has crossed 3 segments.
        let start = std::time::Instant::now();
        let url = format!("{b}/api/v1/keys/SAE_A/dec_keys?key_ID={id}");
        let (code, body) = curl(&pki, "sae_b", &url, None);
        assert_eq!(code, 200, "{body}");
        let got: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(got["keys"][0]["key"], key.as_str());
        assert!(start.elapsed().as_millis() >= 400, "{:?}", start.elapsed());
    })
    .await;
    let (code, state) = h.admin("GET", "/admin/state", "").await;
    h.sim.shutdown().await;
    result.unwrap();
    assert_eq!(code, 200);
    let state: Value = serde_json::from_str(&state).unwrap();
    for link in state["links"].as_array().unwrap() {
        assert_eq!(
            (
                link["keys_relayed"].as_u64(),
                link["consumed_bits"].as_u64()
            ),
            (Some(1), Some(256))
        );
    }
    assert_eq!(state["kmes"][2]["relayed_keys"], 1);
    assert_eq!(state["stats"]["keys_relayed"], 1);
}
