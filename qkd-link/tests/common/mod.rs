//! Shared harness for the integration tests: a generated PKI in a temp dir and the simulator
//! running in-process on ephemeral loopback ports (port 0), with real mutual TLS.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::time::Duration;

use qkd_link::sim::{SimConfig, SimHandle, pki};
use qkd_link::{ClientConfig, KmeClient, RetryPolicy, SaeId};
use tempfile::TempDir;

/// The demo entities plus an extra SAE on KME_B (SAE_C) and a client cert whose CN is no SAE ID.
pub const ENTITIES: [(&str, &str, bool); 6] = [
    ("kme_a", "KME_A", true),
    ("kme_b", "KME_B", true),
    ("sae_a", "SAE_A", false),
    ("sae_b", "SAE_B", false),
    ("sae_c", "SAE_C", false),
    ("nobody", "not an SAE id", false),
];

/// Two linked KMEs on ephemeral ports; `{rate}` and `{initial}` are filled in by [`config`].
const TEMPLATE: &str = r#"
admin:
  listen: 127.0.0.1:0
limits:
  key_size: 256
  min_key_size: 64
  max_key_size: 1024
  max_key_per_request: 16
  max_sae_id_count: 1
kmes:
  - id: KME_A
    listen: 127.0.0.1:0
    saes: [SAE_A]
  - id: KME_B
    listen: 127.0.0.1:0
    saes: [SAE_B, SAE_C]
links:
  - kmes: [KME_A, KME_B]
    secret_key_rate_bps: {rate}
    max_key_count: 1000
    initial_key_count: {initial}
"#;

/// A config with the given link rate (bits/s) and initial key count.
pub fn config(rate_bps: u64, initial_keys: u64) -> String {
    TEMPLATE
        .replace("{rate}", &rate_bps.to_string())
        .replace("{initial}", &initial_keys.to_string())
}

pub struct Harness {
    pub pki: TempDir,
    pub sim: SimHandle,
}

pub fn sae(s: &str) -> SaeId {
    SaeId::new(s).unwrap()
}

/// Writes a PKI with [`ENTITIES`] into a fresh temp dir.
pub fn make_pki() -> TempDir {
    let dir = tempfile::tempdir().expect("temp dir");
    pki::generate_entities(dir.path(), &ENTITIES, &[], false).expect("pki");
    dir
}

impl Harness {
    /// Starts the simulator from YAML text.
    pub async fn start(yaml: &str) -> Self {
        let pki = make_pki();
        let cfg = SimConfig::from_yaml(yaml, "test.yaml").expect("config");
        let sim = qkd_link::sim::start(cfg, pki.path())
            .await
            .expect("simulator starts");
        Self { pki, sim }
    }

    /// Linked KME_A/KME_B with a fast link and plenty of stored key.
    pub async fn default() -> Self {
        Self::start(&config(1_000_000, 500)).await
    }

    pub fn path(&self, file: &str) -> PathBuf {
        self.pki.path().join(file)
    }

    /// Client config for `sae_file` (e.g. "sae_a") at `kme` (e.g. "KME_A"), no retries.
    pub fn client_config(&self, sae_file: &str, sae_id: &str, kme: &str) -> ClientConfig {
        let mut cfg = ClientConfig::new(
            self.sim.kme_url(kme).expect("kme url"),
            sae(sae_id),
            self.path("ca.pem"),
            self.path(&format!("{sae_file}.pem")),
            self.path(&format!("{sae_file}.key")),
        );
        cfg.retry = RetryPolicy::none();
        cfg.connect_timeout_ms = 2_000;
        cfg.request_timeout_ms = 5_000;
        cfg
    }

    /// The master SAE_A at KME_A.
    pub fn master(&self) -> KmeClient {
        KmeClient::new(self.client_config("sae_a", "SAE_A", "KME_A")).expect("client A")
    }

    /// The slave SAE_B at KME_B.
    pub fn slave(&self) -> KmeClient {
        KmeClient::new(self.client_config("sae_b", "SAE_B", "KME_B")).expect("client B")
    }

    /// Sends a raw admin request (plain HTTP/1.1 over loopback) and returns (status, body).
    pub async fn admin(&self, method: &str, path: &str, body: &str) -> (u16, String) {
        admin_request(self.sim.admin_addr().expect("admin"), method, path, body).await
    }
}

/// A minimal HTTP/1.1 client for the admin API (one request per connection), bounded in time.
pub async fn admin_request(
    addr: std::net::SocketAddr,
    method: &str,
    path: &str,
    body: &str,
) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let fut = async {
        let mut s = tokio::net::TcpStream::connect(addr)
            .await
            .expect("admin connect");
        let req = format!(
            "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\
             Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        s.write_all(req.as_bytes()).await.expect("admin write");
        let mut out = Vec::new();
        s.read_to_end(&mut out).await.expect("admin read");
        let text = String::from_utf8(out).expect("utf8");
        let status = text[9..12].parse().expect("status code");
        let body = text
            .split_once("\r\n\r\n")
            .map(|(_, b)| b.to_string())
            .unwrap_or_default();
        (status, body)
    };
    tokio::time::timeout(Duration::from_secs(10), fut)
        .await
        .expect("admin request timed out")
}

/// Sets a file's mode.
pub fn chmod(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}
