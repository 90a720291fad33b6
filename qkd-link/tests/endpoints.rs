//! Every ETSI GS QKD 014 endpoint and error case, client against simulator over real mutual TLS
//! on loopback.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{Harness, sae};
use qkd_link::api::KeyRequest;
use qkd_link::api::msg;
use qkd_link::{Error, KeyId, QkdKey};

fn ids(keys: &[QkdKey]) -> Vec<KeyId> {
    keys.iter().map(QkdKey::id).collect()
}

fn assert_same(a: &[QkdKey], b: &[QkdKey]) {
    assert_eq!(a.len(), b.len());
    for (x, y) in a.iter().zip(b) {
        assert_eq!(x.id(), y.id());
        assert_eq!(
            x.expose(),
            y.expose(),
            "key {} differs between the ends",
            x.id()
        );
    }
}

#[tokio::test]
async fn status_describes_the_link() {
    let h = Harness::default().await;
    let s = h.master().status(&sae("SAE_B")).await.unwrap();
    assert_eq!(
        (s.source_kme_id.as_str(), s.target_kme_id.as_str()),
        ("KME_A", "KME_B")
    );
    assert_eq!(
        (s.master_sae_id.as_str(), s.slave_sae_id.as_str()),
        ("SAE_A", "SAE_B")
    );
    assert_eq!(
        (s.key_size, s.min_key_size, s.max_key_size),
        (256, 64, 1024)
    );
    assert_eq!(
        (s.max_key_per_request, s.max_key_count, s.max_sae_id_count),
        (16, 1000, 1)
    );
    assert!(s.stored_key_count >= 500);
    h.sim.shutdown().await;
}

#[tokio::test]
async fn enc_keys_post_then_dec_keys_post_give_equal_keys_exactly_once() {
    let h = Harness::default().await;
    let (a, b) = (h.master(), h.slave());
    let req = KeyRequest {
        number: Some(5),
        size: Some(512),
        ..KeyRequest::default()
    };
    let master = a.enc_keys(&sae("SAE_B"), &req).await.unwrap();
    assert_eq!(master.len(), 5);
    assert!(master.iter().all(|k| k.len_bits() == 512));
    // The slave asks in a different order and gets them in its order.
    let mut wanted = ids(&master);
    wanted.reverse();
    let slave = b.dec_keys(&sae("SAE_A"), &wanted).await.unwrap();
    let mut master_rev: Vec<_> = master.into_iter().collect();
    master_rev.reverse();
    assert_same(&master_rev, &slave);
    // Exactly once: the second fetch of any of them is "not found".
    let again = b.dec_keys(&sae("SAE_A"), &wanted[..1]).await.unwrap_err();
    assert!(again.is_key_not_found(), "{again}");
    h.sim.shutdown().await;
}

#[tokio::test]
async fn enc_keys_get_then_dec_keys_get_give_equal_keys() {
    let h = Harness::default().await;
    let (a, b) = (h.master(), h.slave());
    let master = a
        .enc_keys_get(&sae("SAE_B"), Some(3), Some(128))
        .await
        .unwrap();
    assert!(master.iter().all(|k| k.expose().len() == 16));
    for key in &master {
        let got = b.dec_key_get(&sae("SAE_A"), key.id()).await.unwrap();
        assert_eq!(got.expose(), key.expose());
    }
    // Defaults: one key of key_size bits.
    let one = a.enc_keys_get(&sae("SAE_B"), None, None).await.unwrap();
    assert_eq!((one.len(), one[0].len_bits()), (1, 256));
    let err = b
        .dec_key_get(&sae("SAE_A"), master[0].id())
        .await
        .unwrap_err();
    assert!(err.is_key_not_found(), "{err}");
    h.sim.shutdown().await;
}

#[tokio::test]
async fn request_errors_are_400_with_spec_messages() {
    let h = Harness::default().await;
    let a = h.master();
    let slave = sae("SAE_B");
    let bad = |r: Result<Vec<QkdKey>, Error>| match r {
        Err(Error::BadRequest { message, details }) => (message, details),
        other => panic!("expected 400, got {other:?}"),
    };
    let (m, _) = bad(a
        .enc_keys(
            &slave,
            &KeyRequest {
                number: Some(17),
                ..Default::default()
            },
        )
        .await);
    assert!(m.contains("max_key_per_request"), "{m}");
    let (m, _) = bad(a
        .enc_keys(
            &slave,
            &KeyRequest {
                size: Some(32),
                ..Default::default()
            },
        )
        .await);
    assert!(m.contains("min_key_size"), "{m}");
    let (m, _) = bad(a
        .enc_keys(
            &slave,
            &KeyRequest {
                size: Some(2048),
                ..Default::default()
            },
        )
        .await);
    assert!(m.contains("max_key_size"), "{m}");
    let ext = serde_json::from_str(r#"{"abc_route_type":"direct"}"#).unwrap();
    let req = KeyRequest {
        extension_mandatory: vec![ext],
        ..Default::default()
    };
    let (m, details) = bad(a.enc_keys(&slave, &req).await);
    assert_eq!(m, msg::EXT_MANDATORY_UNSUPPORTED);
    assert_eq!(
        details[0]["extension_mandatory_unsupported"],
        "abc_route_type is not supported"
    );
    let req = KeyRequest {
        additional_slave_sae_ids: vec!["SAE_C".into(), "SAE_D".into()],
        ..Default::default()
    };
    let (m, _) = bad(a.enc_keys(&slave, &req).await);
    assert!(m.contains("max_SAE_ID_count"), "{m}");
    let (m, _) = bad(a.status(&sae("SAE_Z")).await.map(|_| vec![]));
    assert!(m.contains("unknown"), "{m}");
    // Unknown key ID.
    let unknown = KeyId::parse("bc490419-7d60-487f-adc1-4ddcc177c139").unwrap();
    let (m, _) = bad(h.slave().dec_keys(&sae("SAE_A"), &[unknown]).await);
    assert_eq!(m, msg::KEYS_NOT_FOUND);
    h.sim.shutdown().await;
}

#[tokio::test]
async fn size_not_multiple_of_8_is_refused_by_client_and_by_kme() {
    let h = Harness::default().await;
    let a = h.master();
    let local = a
        .enc_keys(
            &sae("SAE_B"),
            &KeyRequest {
                size: Some(255),
                ..Default::default()
            },
        )
        .await;
    assert!(matches!(local, Err(Error::InvalidArgument(_))));
    // The KME's own check, reached by a client that does not pre-check (raw request).
    let status = raw_enc_keys_status(&h, "size=255").await;
    assert_eq!(status.0, 400);
    assert!(status.1.contains(msg::SIZE_MULTIPLE_OF_8), "{}", status.1);
    h.sim.shutdown().await;
}

/// A GET enc_keys by hand, over rustls with SAE_A's certificate, to reach checks our client
/// refuses to send.
async fn raw_enc_keys_status(h: &Harness, query: &str) -> (u16, String) {
    use std::sync::Arc;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let roots = qkd_link::pem::load_roots(&h.path("ca.pem")).unwrap();
    let cfg = rustls::ClientConfig::builder_with_provider(qkd_link::pem::provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_client_auth_cert(
            qkd_link::pem::load_certs(&h.path("sae_a.pem")).unwrap(),
            qkd_link::pem::load_private_key(&h.path("sae_a.key")).unwrap(),
        )
        .unwrap();
    let addr = h.sim.kme_addr("KME_A").unwrap();
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let name = rustls_pki_types::ServerName::try_from("localhost").unwrap();
    let mut tls = tokio_rustls::TlsConnector::from(Arc::new(cfg))
        .connect(name, tcp)
        .await
        .unwrap();
    let req = format!(
        "GET /api/v1/keys/SAE_B/enc_keys?{query} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
    );
    tls.write_all(req.as_bytes()).await.unwrap();
    let mut out = Vec::new();
    let _ =
        tokio::time::timeout(std::time::Duration::from_secs(5), tls.read_to_end(&mut out)).await;
    let text = String::from_utf8_lossy(&out).to_string();
    (text[9..12].parse().unwrap(), text)
}

#[tokio::test]
async fn no_key_available_is_503_and_retry_policy_gives_up() {
    let h = Harness::start(&common::config(0, 2)).await;
    let a = h.master();
    a.enc_keys(
        &sae("SAE_B"),
        &KeyRequest {
            number: Some(2),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let err = a
        .enc_keys(&sae("SAE_B"), &KeyRequest::default())
        .await
        .unwrap_err();
    assert!(matches!(err, Error::ServiceUnavailable { .. }), "{err}");
    assert!(err.is_retryable());
    // With retries, the client tries max_attempts times and then reports the 503.
    let mut cfg = h.client_config("sae_a", "SAE_A", "KME_A");
    cfg.retry = qkd_link::RetryPolicy {
        max_attempts: 3,
        initial_backoff_ms: 10,
        max_backoff_ms: 20,
    };
    let retrying = qkd_link::KmeClient::new(cfg).unwrap();
    let err = retrying
        .enc_keys(&sae("SAE_B"), &KeyRequest::default())
        .await
        .unwrap_err();
    assert!(matches!(err, Error::ServiceUnavailable { .. }));
    let m = retrying.metrics().snapshot();
    assert_eq!(m.requests, 3);
    assert_eq!(m.errors_of(qkd_link::ErrorKind::ServiceUnavailable), 3);
    h.sim.shutdown().await;
}

#[tokio::test]
async fn only_the_named_slave_gets_the_key() {
    let h = Harness::default().await;
    let keys = h
        .master()
        .enc_keys(&sae("SAE_B"), &KeyRequest::default())
        .await
        .unwrap();
    // SAE_C is served by KME_B too, but was not named: 401.
    let c = qkd_link::KmeClient::new(h.client_config("sae_c", "SAE_C", "KME_B")).unwrap();
    let err = c.dec_keys(&sae("SAE_A"), &ids(&keys)).await.unwrap_err();
    assert!(matches!(err, Error::Unauthorized { .. }), "{err}");
    assert!(!err.is_retryable());
    // The key is still there for SAE_B.
    let got = h
        .slave()
        .dec_keys(&sae("SAE_A"), &ids(&keys))
        .await
        .unwrap();
    assert_same(&keys, &got);
    h.sim.shutdown().await;
}

#[tokio::test]
async fn multicast_keys_reach_both_named_slaves() {
    let h = Harness::default().await;
    let req = KeyRequest {
        additional_slave_sae_ids: vec!["SAE_C".into()],
        ..Default::default()
    };
    let keys = h.master().enc_keys(&sae("SAE_B"), &req).await.unwrap();
    let c = qkd_link::KmeClient::new(h.client_config("sae_c", "SAE_C", "KME_B")).unwrap();
    let from_c = c.dec_keys(&sae("SAE_A"), &ids(&keys)).await.unwrap();
    let from_b = h
        .slave()
        .dec_keys(&sae("SAE_A"), &ids(&keys))
        .await
        .unwrap();
    assert_same(&keys, &from_c);
    assert_same(&keys, &from_b);
    h.sim.shutdown().await;
}

#[tokio::test]
async fn metrics_count_keys_bytes_and_latency() {
    let h = Harness::default().await;
    let a = h.master();
    a.enc_keys(
        &sae("SAE_B"),
        &KeyRequest {
            number: Some(4),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let _ = a.status(&sae("SAE_Z")).await;
    let m = a.metrics().snapshot();
    assert_eq!((m.keys_fetched, m.key_bytes, m.requests), (4, 128, 2));
    assert_eq!(m.errors_of(qkd_link::ErrorKind::BadRequest), 1);
    assert_eq!(m.latency_cumulative().last().copied(), Some(2));
    assert!(m.kme_reachable);
    h.sim.shutdown().await;
}
