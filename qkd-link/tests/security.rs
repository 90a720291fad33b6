//! Authentication and hardening: SAE identity from the client certificate, certificate trust in
//! both directions, key file permissions, bounded responses.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{Harness, chmod, make_pki, sae};
use qkd_link::api::KeyRequest;
use qkd_link::{Error, ErrorKind, KmeClient};

#[tokio::test]
async fn sae_certificate_at_the_wrong_kme_gets_401() {
    let h = Harness::default().await;
    // SAE_B's valid certificate, presented to KME_A, which does not serve SAE_B.
    let cfg = h.client_config("sae_b", "SAE_B", "KME_A");
    let c = KmeClient::new(cfg).unwrap();
    let err = c
        .enc_keys(&sae("SAE_A"), &KeyRequest::default())
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::Unauthorized { ref message } if message.contains("not served by KME_A")),
        "{err}"
    );
    let err = c.status(&sae("SAE_A")).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unauthorized);
    // Claiming to be SAE_A in our own config does not help: identity comes from the certificate.
    let cfg = h.client_config("sae_b", "SAE_A", "KME_A");
    let err = KmeClient::new(cfg)
        .unwrap()
        .status(&sae("SAE_B"))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unauthorized);
    h.sim.shutdown().await;
}

#[tokio::test]
async fn certificate_without_an_sae_id_gets_401() {
    let h = Harness::default().await;
    let c = KmeClient::new(h.client_config("nobody", "SAE_A", "KME_A")).unwrap();
    let err = c.status(&sae("SAE_B")).await.unwrap_err();
    assert!(
        matches!(err, Error::Unauthorized { ref message } if message.contains("Common Name")),
        "{err}"
    );
    h.sim.shutdown().await;
}

#[tokio::test]
async fn client_certificate_from_another_ca_is_rejected_in_tls() {
    let h = Harness::default().await;
    let other = make_pki();
    let mut cfg = h.client_config("sae_a", "SAE_A", "KME_A");
    cfg.cert = other.path().join("sae_a.pem");
    cfg.key = other.path().join("sae_a.key");
    let err = KmeClient::new(cfg)
        .unwrap()
        .status(&sae("SAE_B"))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Tls(_)), "{err}");
    assert!(!err.is_retryable());
    h.sim.shutdown().await;
}

#[tokio::test]
async fn kme_certificate_from_an_untrusted_ca_is_rejected() {
    let h = Harness::default().await;
    let other = make_pki();
    let mut cfg = h.client_config("sae_a", "SAE_A", "KME_A");
    cfg.ca = other.path().join("ca.pem");
    let c = KmeClient::new(cfg).unwrap();
    let err = c.status(&sae("SAE_B")).await.unwrap_err();
    assert!(
        matches!(err, Error::Tls(ref m) if m.contains("certificate")),
        "{err}"
    );
    let m = c.metrics().snapshot();
    assert!(!m.kme_reachable);
    assert_eq!(m.errors_of(ErrorKind::Tls), 1);
    h.sim.shutdown().await;
}

#[tokio::test]
async fn kme_certificate_not_valid_for_the_host_is_rejected() {
    // KME_A presents a certificate (SAE_B's) that names no host and is not for server use.
    let yaml = common::config(1000, 10).replacen(
        "saes: [SAE_A]",
        "saes: [SAE_A]\n    cert: sae_b.pem\n    key: sae_b.key",
        1,
    );
    let h = Harness::start(&yaml).await;
    let err = h.master().status(&sae("SAE_B")).await.unwrap_err();
    assert!(matches!(err, Error::Tls(_)), "{err}");
    // The correctly configured KME_B is reachable by "localhost", a name its certificate lists.
    let mut cfg = h.client_config("sae_b", "SAE_B", "KME_B");
    let port = h.sim.kme_addr("KME_B").unwrap().port();
    cfg.kme_url = format!("https://localhost:{port}");
    KmeClient::new(cfg)
        .unwrap()
        .status(&sae("SAE_A"))
        .await
        .unwrap();
    h.sim.shutdown().await;
}

#[tokio::test]
async fn group_or_world_readable_key_files_are_refused() {
    let h = Harness::default().await;
    let key = h.path("sae_a.key");
    for mode in [0o640, 0o604, 0o660, 0o644] {
        chmod(&key, mode);
        let err = KmeClient::new(h.client_config("sae_a", "SAE_A", "KME_A")).unwrap_err();
        match &err {
            Error::InsecureKeyFile { path, mode: m } => {
                assert_eq!(path, &key);
                assert_eq!(*m, mode);
            }
            other => panic!("expected InsecureKeyFile, got {other:?}"),
        }
        assert!(err.to_string().contains("sae_a.key"));
    }
    chmod(&key, 0o400);
    KmeClient::new(h.client_config("sae_a", "SAE_A", "KME_A")).unwrap();
    h.sim.shutdown().await;
}

#[tokio::test]
async fn a_symlinked_client_key_is_refused() {
    let h = Harness::default().await;
    let key = h.path("sae_a.key");
    let real = h.path("sae_a.real.key");
    std::fs::rename(&key, &real).unwrap();
    std::os::unix::fs::symlink(&real, &key).unwrap();
    let err = KmeClient::new(h.client_config("sae_a", "SAE_A", "KME_A")).unwrap_err();
    assert!(
        matches!(&err, Error::KeyFileRefused { path, .. } if path == &key),
        "{err:?}"
    );
    assert!(err.to_string().contains("symbolic link"), "{err}");
    std::fs::remove_file(&key).unwrap();
    std::fs::rename(&real, &key).unwrap();
    KmeClient::new(h.client_config("sae_a", "SAE_A", "KME_A")).unwrap();
    h.sim.shutdown().await;
}

#[tokio::test]
async fn simulator_refuses_group_readable_server_keys() {
    let pki = make_pki();
    chmod(&pki.path().join("kme_b.key"), 0o644);
    let cfg = qkd_link::sim::SimConfig::from_yaml(&common::config(1000, 0), "t").unwrap();
    let err = qkd_link::sim::start(cfg, pki.path()).await.unwrap_err();
    assert!(err.to_string().contains("kme_b.key"), "{err}");
}

#[tokio::test]
async fn oversized_responses_are_rejected() {
    let h = Harness::default().await;
    let mut cfg = h.client_config("sae_a", "SAE_A", "KME_A");
    cfg.max_response_bytes = 1024;
    let c = KmeClient::new(cfg).unwrap();
    let req = KeyRequest {
        number: Some(16),
        size: Some(1024),
        ..Default::default()
    };
    let err = c.enc_keys(&sae("SAE_B"), &req).await.unwrap_err();
    assert!(
        matches!(err, Error::ResponseTooLarge { limit: 1024 }),
        "{err}"
    );
    h.sim.shutdown().await;
}

#[tokio::test]
async fn plain_http_urls_are_refused() {
    let h = Harness::default().await;
    let mut cfg = h.client_config("sae_a", "SAE_A", "KME_A");
    cfg.kme_url = cfg.kme_url.replace("https://", "http://");
    let err = KmeClient::new(cfg).unwrap_err();
    assert!(err.to_string().contains("kme_url"), "{err}");
    h.sim.shutdown().await;
}

#[test]
fn keys_never_show_in_debug_output() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let h = Harness::default().await;
        let keys = h
            .master()
            .enc_keys(&sae("SAE_B"), &KeyRequest::default())
            .await
            .unwrap();
        let dbg = format!("{keys:?}");
        assert!(dbg.contains("<redacted>"));
        use base64::Engine as _;
        let b64 = base64::engine::general_purpose::STANDARD.encode(keys[0].expose());
        assert!(!dbg.contains(&b64));
        assert!(!dbg.contains(&format!("{:?}", keys[0].expose())));
        h.sim.shutdown().await;
    });
}
