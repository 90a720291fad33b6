//! Shared simulator state behind one lock, and the fault-injection operations used by the admin
//! API and by tests. Setting a KME down also tells its open connections to close.

use std::sync::{Mutex, MutexGuard};
use std::time::Instant;

use serde_json::Value;
use tokio::sync::watch;

use super::engine::Engine;
use crate::ids::SaeId;

/// The engine plus per-KME "down" signals for the connection tasks.
#[derive(Debug)]
pub struct SimControl {
    engine: Mutex<Engine>,
    down: Vec<watch::Sender<bool>>,
    pub(crate) max_request_bytes: usize,
}

impl SimControl {
    pub(crate) fn new(engine: Engine, kme_count: usize, max_request_bytes: usize) -> Self {
        let down = (0..kme_count)
            .map(|i| watch::channel(engine.kme_is_down(i)).0)
            .collect();
        Self {
            engine: Mutex::new(engine),
            down,
            max_request_bytes,
        }
    }

    /// Locks the engine. Engine methods keep their invariants between statements, so a lock
    /// poisoned by a panicking task is still consistent and is recovered.
    pub fn engine(&self) -> MutexGuard<'_, Engine> {
        self.engine.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn down_signal(&self, kme: usize) -> Option<watch::Receiver<bool>> {
        self.down.get(kme).map(watch::Sender::subscribe)
    }

    /// KME down: new connections are closed at once and open ones are shut down gracefully.
    /// Up again: connections are accepted again.
    pub fn set_kme_down(&self, kme: &SaeId, down: bool) -> Result<(), String> {
        self.update_kme(kme, Some(down), None)
    }

    /// Slow responses: `ms` added to every reply of the KME (0 = normal).
    pub fn set_kme_extra_latency(&self, kme: &SaeId, ms: u64) -> Result<(), String> {
        self.update_kme(kme, None, Some(ms))
    }

    /// Applies a partial KME fault update.
    pub fn update_kme(
        &self,
        kme: &SaeId,
        down: Option<bool>,
        extra_latency_ms: Option<u64>,
    ) -> Result<(), String> {
        let (idx, is_down) = {
            let mut engine = self.engine();
            let idx = engine.set_kme(kme, down, extra_latency_ms)?;
            (idx, engine.kme_is_down(idx))
        };
        if let Some(tx) = self.down.get(idx) {
            tx.send_replace(is_down);
        }
        tracing::info!(%kme, down = is_down, ?extra_latency_ms, "KME fault updated");
        Ok(())
    }

    /// Link down (fibre cut): no new key; stored keys stay deliverable.
    pub fn set_link_down(&self, a: &SaeId, b: &SaeId, down: bool) -> Result<(), String> {
        self.update_link(a, b, Some(down), None)
    }

    /// Sets the link's QBER; above its threshold the link distils no key.
    pub fn set_link_qber(&self, a: &SaeId, b: &SaeId, qber: f64) -> Result<(), String> {
        self.update_link(a, b, None, Some(qber))
    }

    /// Applies a partial link fault update.
    pub fn update_link(
        &self,
        a: &SaeId,
        b: &SaeId,
        down: Option<bool>,
        qber: Option<f64>,
    ) -> Result<(), String> {
        self.engine().set_link(Instant::now(), a, b, down, qber)?;
        tracing::info!(%a, %b, ?down, ?qber, "link fault updated");
        Ok(())
    }

    /// JSON view of KMEs, links and counters (no key material).
    pub fn state(&self) -> Value {
        self.engine().state(Instant::now())
    }
}
