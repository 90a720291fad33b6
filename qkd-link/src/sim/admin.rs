//! The admin API for fault injection (plain HTTP/1.1, loopback only, no authentication; the
//! configuration refuses any other listen address).
//!
//! * `GET  /admin/state`: KMEs and trusted nodes (relay counts), links (stored keys, bits consumed,
//!   keys relayed, rate, QBER, down), counters. No key material.
//! * `POST /admin/kme/{ID}` also takes a trusted node down: no key is relayed through it.
//! * `POST /admin/kme/{KME_ID}` with `{"down": bool, "extra_latency_ms": u64}` (each optional):
//!   KME down (connections closed) and slow responses.
//! * `POST /admin/link/{KME_ID}/{KME_ID}` with `{"down": bool, "qber": f64}` (each optional):
//!   link down, or QBER above the threshold (no new key).
//!
//! Every answer is JSON: the new state, or `{"message": ...}` with 400/404/405.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use http::Method;
use http_body_util::{BodyExt, Limited};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use serde::Deserialize;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

use super::control::SimControl;
use super::engine::Reply;
use super::server::{accept_until_shutdown, respond};
use crate::ids::SaeId;

const MAX_BODY: usize = 4096;
const MAX_CONNECTIONS: usize = 16;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct KmeUpdate {
    down: Option<bool>,
    extra_latency_ms: Option<u64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct LinkUpdate {
    down: Option<bool>,
    qber: Option<f64>,
}

/// Answers one admin request (pure apart from the state it changes).
pub fn handle(control: &SimControl, method: &Method, path: &str, body: &[u8]) -> Reply {
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    let ids = |names: &[&str]| -> Result<Vec<SaeId>, Reply> {
        names
            .iter()
            .map(|n| SaeId::new(*n).map_err(|e| Reply::error(400, e.to_string())))
            .collect()
    };
    let result = match (method, segments.as_slice()) {
        (&Method::GET, ["admin", "state"]) => Ok(()),
        (&Method::POST, ["admin", "kme", id]) => ids(&[id]).and_then(|ids| {
            let u: KmeUpdate = parse(body)?;
            control
                .update_kme(&ids[0], u.down, u.extra_latency_ms)
                .map_err(|m| Reply::error(400, m))
        }),
        (&Method::POST, ["admin", "link", a, b]) => ids(&[a, b]).and_then(|ids| {
            let u: LinkUpdate = parse(body)?;
            control
                .update_link(&ids[0], &ids[1], u.down, u.qber)
                .map_err(|m| Reply::error(400, m))
        }),
        (_, ["admin", "state"] | ["admin", "kme", _] | ["admin", "link", _, _]) => {
            Err(Reply::error(405, "method not allowed"))
        }
        _ => Err(Reply::error(404, "no such admin resource")),
    };
    match result {
        Ok(()) => Reply::json(200, &control.state(), 1024),
        Err(reply) => reply,
    }
}

fn parse<T: for<'de> Deserialize<'de>>(body: &[u8]) -> Result<T, Reply> {
    serde_json::from_slice(body).map_err(|e| Reply::error(400, format!("invalid JSON body: {e}")))
}

/// Serves the admin API until `shutdown` changes.
pub async fn serve(
    listener: TcpListener,
    control: Arc<SimControl>,
    shutdown: watch::Receiver<bool>,
) {
    accept_until_shutdown(listener, MAX_CONNECTIONS, shutdown, |tcp| {
        Some(connection(tcp, Arc::clone(&control)))
    })
    .await;
}

/// One admin connection: HTTP/1.1, bodies up to `MAX_BODY`, closed after 60 s at the latest.
async fn connection(tcp: TcpStream, control: Arc<SimControl>) {
    let service = service_fn(move |req: http::Request<hyper::body::Incoming>| {
        let control = Arc::clone(&control);
        async move {
            let (parts, body) = req.into_parts();
            let reply = match Limited::new(body, MAX_BODY).collect().await {
                Ok(b) => handle(&control, &parts.method, parts.uri.path(), &b.to_bytes()),
                Err(_) => Reply::error(400, "body too large"),
            };
            Ok::<_, Infallible>(respond(reply))
        }
    });
    let conn = http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(Duration::from_secs(10))
        .serve_connection(TokioIo::new(tcp), service);
    let _ = tokio::time::timeout(Duration::from_secs(60), conn).await;
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use std::time::Instant;

    use super::*;
    use crate::sim::config::SimConfig;
    use crate::sim::engine::Engine;
    use crate::sim::entropy::SeededEntropy;

    fn control() -> SimControl {
        let cfg = SimConfig::from_yaml(
            "kmes:\n  - {id: KME_A, listen: '127.0.0.1:0', saes: [SAE_A]}\n  - {id: KME_B, listen: '127.0.0.1:0', saes: [SAE_B]}\n\
             links:\n  - {kmes: [KME_A, KME_B], secret_key_rate_bps: 1000, max_key_count: 10}\n",
            "t",
        )
        .unwrap();
        SimControl::new(
            Engine::new(&cfg, Instant::now(), Box::new(SeededEntropy::new(1))),
            2,
            4096,
        )
    }

    fn json(r: &Reply) -> serde_json::Value {
        serde_json::from_slice(&r.body).unwrap()
    }

    #[test]
    fn faults_are_set_and_reported() {
        let c = control();
        let r = handle(
            &c,
            &Method::POST,
            "/admin/kme/KME_A",
            br#"{"down":true,"extra_latency_ms":250}"#,
        );
        assert_eq!(r.status, 200);
        assert_eq!(json(&r)["kmes"][0]["down"], true);
        assert_eq!(json(&r)["kmes"][0]["extra_latency_ms"], 250);
        let r = handle(
            &c,
            &Method::POST,
            "/admin/link/KME_B/KME_A",
            br#"{"qber":0.2}"#,
        );
        assert_eq!(json(&r)["links"][0]["generating"], false);
        let r = handle(
            &c,
            &Method::POST,
            "/admin/link/KME_A/KME_B",
            br#"{"down":true,"qber":0.01}"#,
        );
        assert_eq!(json(&r)["links"][0]["down"], true);
        assert_eq!(handle(&c, &Method::GET, "/admin/state", b"").status, 200);
    }

    #[test]
    fn bad_admin_requests_are_rejected() {
        let c = control();
        assert_eq!(
            handle(&c, &Method::POST, "/admin/kme/KME_X", br#"{"down":true}"#).status,
            400
        );
        assert_eq!(
            handle(&c, &Method::POST, "/admin/kme/KME_A", br#"{"dwn":true}"#).status,
            400
        );
        assert_eq!(
            handle(&c, &Method::POST, "/admin/link/KME_A/KME_A", b"{}").status,
            400
        );
        assert_eq!(
            handle(
                &c,
                &Method::POST,
                "/admin/link/KME_A/KME_B",
                br#"{"qber":2}"#
            )
            .status,
            400
        );
        assert_eq!(
            handle(&c, &Method::GET, "/admin/kme/KME_A", b"").status,
            405
        );
        assert_eq!(handle(&c, &Method::GET, "/admin/nope", b"").status, 404);
    }
}
