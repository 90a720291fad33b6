//! Fault injection through the loopback admin API and recovery: link down, QBER above threshold,
//! KME down, slow responses.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::{Harness, sae};
use qkd_link::api::KeyRequest;
use qkd_link::{Error, ErrorKind, KmeClient, RetryPolicy};

fn n(number: u32) -> KeyRequest {
    KeyRequest {
        number: Some(number),
        ..KeyRequest::default()
    }
}

/// Polls `f` every 20 ms for up to 5 s until it succeeds.
async fn eventually<T, F, Fut>(mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, Error>>,
{
    let mut last = None;
    for _ in 0..250 {
        match f().await {
            Ok(v) => return v,
            Err(e) => last = Some(e),
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("did not recover: {last:?}");
}

#[tokio::test]
async fn link_down_drains_to_503_and_recovers() {
    // 256 kbit/s = 1000 keys/s once up; 4 keys stored at start.
    let h = Harness::start(&common::config(256_000, 4)).await;
    let a = h.master();
    let (status, body) = h
        .admin("POST", "/admin/link/KME_A/KME_B", r#"{"down":true}"#)
        .await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains(r#""down":true"#), "{body}");
    // Stored keys (the 4 initial ones plus whatever was produced before the fault) stay
    // deliverable while the link is down, and the slave still gets them; then 503.
    let slave = h.slave();
    let mut drained = 0;
    let mut last_err = None;
    for _ in 0..1000 {
        match a.enc_keys(&sae("SAE_B"), &n(1)).await {
            Ok(keys) => {
                let got = slave
                    .dec_keys(&sae("SAE_A"), &[keys[0].id()])
                    .await
                    .unwrap();
                assert_eq!(got[0].expose(), keys[0].expose());
                drained += 1;
            }
            Err(e) => {
                last_err = Some(e);
                break;
            }
        }
    }
    assert!(drained >= 4, "{drained}");
    let err = last_err.expect("the store ran dry");
    assert!(
        matches!(err, Error::ServiceUnavailable { ref message } if message.contains("link is down")),
        "{err}"
    );
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(a.status(&sae("SAE_B")).await.unwrap().stored_key_count, 0);
    let (status, _) = h
        .admin("POST", "/admin/link/KME_B/KME_A", r#"{"down":false}"#)
        .await;
    assert_eq!(status, 200);
    let (slave, two) = (sae("SAE_B"), n(2));
    let keys = eventually(|| a.enc_keys(&slave, &two)).await;
    assert_eq!(keys.len(), 2);
    h.sim.shutdown().await;
}

#[tokio::test]
async fn qber_above_threshold_stops_key_production() {
    let h = Harness::start(&common::config(256_000, 0)).await;
    let a = h.master();
    let (status, body) = h
        .admin("POST", "/admin/link/KME_A/KME_B", r#"{"qber":0.15}"#)
        .await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains(r#""generating":false"#), "{body}");
    // Anything produced before the alarm is drained; after that, nothing arrives.
    let _ = a.enc_keys(&sae("SAE_B"), &n(16)).await;
    for _ in 0..10_000 {
        if a.enc_keys(&sae("SAE_B"), &n(1)).await.is_err() {
            break;
        }
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(a.status(&sae("SAE_B")).await.unwrap().stored_key_count, 0);
    h.admin("POST", "/admin/link/KME_A/KME_B", r#"{"qber":0.02}"#)
        .await;
    let (slave, one) = (sae("SAE_B"), n(1));
    eventually(|| a.enc_keys(&slave, &one)).await;
    h.sim.shutdown().await;
}

#[tokio::test]
async fn kme_down_refuses_connections_and_retries_recover() {
    let h = Harness::default().await;
    let a = h.master();
    a.status(&sae("SAE_B")).await.unwrap();
    let (status, _) = h
        .admin("POST", "/admin/kme/KME_A", r#"{"down":true}"#)
        .await;
    assert_eq!(status, 200);
    // A fresh client cannot even complete TLS: a retryable connection failure.
    let fresh = h.master();
    let err = fresh.status(&sae("SAE_B")).await.unwrap_err();
    assert!(matches!(err, Error::Connect(_)), "{err}");
    assert!(err.is_retryable());
    assert!(!fresh.metrics().snapshot().kme_reachable);
    // The client with a pooled connection sees the connection closed (or a 503 if it raced in).
    tokio::time::sleep(Duration::from_millis(50)).await;
    let err = a.status(&sae("SAE_B")).await.unwrap_err();
    assert!(err.is_retryable() || err.kind() == ErrorKind::Http, "{err}");
    // A retrying client rides out a short outage.
    let mut cfg = h.client_config("sae_a", "SAE_A", "KME_A");
    cfg.retry = RetryPolicy {
        max_attempts: 10,
        initial_backoff_ms: 50,
        max_backoff_ms: 400,
    };
    let patient = KmeClient::new(cfg).unwrap();
    let admin = h.sim.admin_addr().unwrap();
    let revive = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(300)).await;
        common::admin_request(admin, "POST", "/admin/kme/KME_A", r#"{"down":false}"#).await
    });
    let keys = patient.enc_keys(&sae("SAE_B"), &n(1)).await.unwrap();
    assert_eq!(keys.len(), 1);
    assert_eq!(revive.await.unwrap().0, 200);
    let m = patient.metrics().snapshot();
    assert!(m.errors_of(ErrorKind::Connect) >= 1, "{m:?}");
    assert!(m.kme_reachable);
    h.sim.shutdown().await;
}

#[tokio::test]
async fn slow_kme_times_out_and_recovers() {
    let h = Harness::default().await;
    let (status, _) = h
        .admin("POST", "/admin/kme/KME_B", r#"{"extra_latency_ms":2000}"#)
        .await;
    assert_eq!(status, 200);
    let mut cfg = h.client_config("sae_b", "SAE_B", "KME_B");
    cfg.connect_timeout_ms = 300;
    cfg.request_timeout_ms = 300;
    let b = KmeClient::new(cfg).unwrap();
    let started = std::time::Instant::now();
    let err = b.status(&sae("SAE_A")).await.unwrap_err();
    assert!(matches!(err, Error::Timeout(_)), "{err}");
    assert!(
        started.elapsed() < Duration::from_millis(1900),
        "deadline enforced"
    );
    assert_eq!(b.metrics().snapshot().errors_of(ErrorKind::Timeout), 1);
    h.admin("POST", "/admin/kme/KME_B", r#"{"extra_latency_ms":0}"#)
        .await;
    b.status(&sae("SAE_A")).await.unwrap();
    h.sim.shutdown().await;
}

#[tokio::test]
async fn admin_api_reports_state_without_key_material() {
    let h = Harness::default().await;
    let keys = h.master().enc_keys(&sae("SAE_B"), &n(1)).await.unwrap();
    let (status, body) = h.admin("GET", "/admin/state", "").await;
    assert_eq!(status, 200);
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["stats"]["keys_issued"], 1);
    assert_eq!(v["links"][0]["kmes"][0], "KME_A");
    assert!(!body.contains(&keys[0].id().to_string()));
    assert_eq!(h.admin("GET", "/admin/kme/KME_A", "").await.0, 405);
    assert_eq!(
        h.admin("POST", "/admin/kme/KME_Q", r#"{"down":true}"#)
            .await
            .0,
        400
    );
    assert_eq!(h.admin("GET", "/nope", "").await.0, 404);
    h.sim.shutdown().await;
}

/// `dec_keys` deletes the keys it delivers (ETSI GS QKD 014 §5.4), so a request that may have
/// reached the KME is never sent again: after a timeout the caller gets the timeout, not a
/// second attempt (which could only fail with "key not found" after the first one consumed it).
#[tokio::test]
async fn dec_keys_is_not_retried_once_it_may_have_reached_the_kme() {
    let h = Harness::default().await;
    let keys = h.master().enc_keys(&sae("SAE_B"), &n(1)).await.unwrap();
    let (status, _) = h
        .admin("POST", "/admin/kme/KME_B", r#"{"extra_latency_ms":600}"#)
        .await;
    assert_eq!(status, 200);
    let mut cfg = h.client_config("sae_b", "SAE_B", "KME_B");
    cfg.connect_timeout_ms = 300;
    cfg.request_timeout_ms = 300;
    cfg.retry = RetryPolicy {
        max_attempts: 3,
        initial_backoff_ms: 10,
        max_backoff_ms: 10,
    };
    let b = KmeClient::new(cfg).unwrap();
    let err = b
        .dec_keys(&sae("SAE_A"), &[keys[0].id()])
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Timeout(_)), "{err}");
    assert_eq!(
        b.metrics().snapshot().errors_of(ErrorKind::Timeout),
        1,
        "one attempt"
    );
    // A status request (it consumes nothing) is retried as the policy says.
    let err = b.status(&sae("SAE_A")).await.unwrap_err();
    assert!(matches!(err, Error::Timeout(_)), "{err}");
    assert_eq!(b.metrics().snapshot().errors_of(ErrorKind::Timeout), 4);
    h.sim.shutdown().await;
}
