//! The async driver of the master-side key buffer ([`crate::pool::KeyPool`]): a tokio task that
//! calls Get key (ETSI GS QKD 014 §5.3) whenever the pool falls to its low-water mark, so the
//! gateway's handshake takes a key from memory instead of waiting on a KME round trip.
//!
//! [`Prefetcher::try_take`] never waits; [`Prefetcher::take`] waits up to a deadline. Failed
//! fetches back off exponentially with jitter (on top of the client's own per-request retries).
//! Dropping the [`Prefetcher`] stops the task and zeroizes every buffered key.
//!
//! Pools of one client share a [`FetchGate`]: each request holds one of its permits, and the
//! first fill waits a random start delay, both cut short for a pool an epoch is waiting on
//! (a `take` on an empty pool wakes the driver, which then asks for an urgent permit).

use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::task::JoinHandle;

use crate::api::KeyRequest;
use crate::client::KmeClient;
use crate::error::{Error, ErrorKind};
use crate::gate::{FetchGate, Permit};
use crate::ids::SaeId;
use crate::key::QkdKey;
use crate::metrics::Metrics;
use crate::pool::{KeyPool, PushError};
use crate::prefetch_config::PrefetchConfig;
use crate::retry::{RetryPolicy, jitter_draw};

/// Where a prefetcher gets its keys: the ETSI GS QKD 014 client, or a test double.
pub trait KeySource: Send + Sync + 'static {
    /// Get key (§5.3): `request.number` keys shared with `slave`.
    fn enc_keys(
        &self,
        slave: &SaeId,
        request: &KeyRequest,
    ) -> impl Future<Output = Result<Vec<QkdKey>, Error>> + Send;

    /// The metrics the buffer level is recorded into.
    fn metrics(&self) -> &Arc<Metrics>;
}

impl KeySource for KmeClient {
    fn enc_keys(
        &self,
        slave: &SaeId,
        request: &KeyRequest,
    ) -> impl Future<Output = Result<Vec<QkdKey>, Error>> + Send {
        KmeClient::enc_keys(self, slave, request)
    }

    fn metrics(&self) -> &Arc<Metrics> {
        KmeClient::metrics(self)
    }
}

struct Shared {
    pool: Mutex<KeyPool>,
    wake_driver: Notify,
    key_ready: Notify,
    /// `take` calls waiting for a key: their pool's requests are urgent.
    takers: AtomicUsize,
    /// This pool's share of the client's buffer gauge.
    reported: AtomicUsize,
    metrics: Arc<Metrics>,
}

impl Shared {
    fn pool(&self) -> MutexGuard<'_, KeyPool> {
        // The pool's invariants hold between statements, so a poisoned lock is still usable.
        self.pool.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Puts this pool's `level` into the client's buffer gauge (the sum over its pools). Called
    /// with the pool locked, so the last report is the pool's level.
    fn report(&self, level: usize) {
        let before = self.reported.swap(level, Ordering::AcqRel);
        self.metrics.buffer_level_changed(before, level);
    }

    fn taker_waits(&self) -> bool {
        self.takers.load(Ordering::Acquire) > 0
    }

    /// Returns once a `take` waits on this pool.
    async fn until_taker(&self) {
        while !self.taker_waits() {
            self.wake_driver.notified().await;
        }
    }
}

/// Counts a waiting `take` for as long as it lives (a cancelled `take` included).
struct Waiting<'a>(&'a AtomicUsize);

impl<'a> Waiting<'a> {
    fn new(takers: &'a AtomicUsize) -> Self {
        takers.fetch_add(1, Ordering::AcqRel);
        Self(takers)
    }
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// A running prefetch task and the pool it fills.
pub struct Prefetcher {
    shared: Arc<Shared>,
    task: JoinHandle<()>,
}

impl core::fmt::Debug for Prefetcher {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Prefetcher")
            .field("level", &self.level())
            .finish_non_exhaustive()
    }
}

impl Prefetcher {
    /// Starts the driver on the current tokio runtime; it begins filling at once, with no limit
    /// but the client's own.
    pub fn spawn<S: KeySource>(source: Arc<S>, cfg: PrefetchConfig) -> Self {
        Self::spawn_gated(source, cfg, FetchGate::unlimited())
    }

    /// Starts the driver on the current tokio runtime, one of the pools that share `gate`.
    pub fn spawn_gated<S: KeySource>(source: Arc<S>, cfg: PrefetchConfig, gate: FetchGate) -> Self {
        let shared = Arc::new(Shared {
            pool: Mutex::new(KeyPool::new(cfg.capacity, cfg.low_water)),
            wake_driver: Notify::new(),
            key_ready: Notify::new(),
            takers: AtomicUsize::new(0),
            reported: AtomicUsize::new(0),
            metrics: Arc::clone(source.metrics()),
        });
        gate.join();
        let task = tokio::spawn(drive(source, cfg, gate, Arc::clone(&shared)));
        Self { shared, task }
    }

    /// Takes a buffered key without waiting; `None` if the buffer is empty.
    pub fn try_take(&self) -> Option<QkdKey> {
        let (key, wanted) = {
            let mut pool = self.shared.pool();
            let key = pool.take();
            self.shared.report(pool.len());
            (key, pool.wanted())
        };
        if wanted > 0 {
            self.shared.wake_driver.notify_one();
        }
        key
    }

    /// Takes a key, waiting up to `timeout` for the driver to fetch one.
    pub async fn take(&self, timeout: Duration) -> Option<QkdKey> {
        let deadline = tokio::time::Instant::now() + timeout;
        let _waiting = Waiting::new(&self.shared.takers);
        loop {
            let notified = self.shared.key_ready.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if let Some(key) = self.try_take() {
                return Some(key);
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return self.try_take();
            }
        }
    }

    /// Drops every buffered key (zeroized) and has the driver fetch anew. For when the slave's
    /// KME refused a key from this buffer (`dec_keys` answered 400, ETSI GS QKD 014 §5.3): the
    /// KMEs lost their stock or their synchronisation, and the keys fetched with or before it
    /// are suspect. A fetch already under way still adds its keys.
    pub fn discard(&self) {
        let wanted = {
            let mut pool = self.shared.pool();
            pool.clear();
            self.shared.report(0);
            pool.wanted()
        };
        if wanted > 0 {
            self.shared.wake_driver.notify_one();
        }
    }

    /// Keys currently buffered.
    pub fn level(&self) -> usize {
        self.shared.pool().len()
    }
}

impl Drop for Prefetcher {
    fn drop(&mut self) {
        self.task.abort();
        let mut pool = self.shared.pool();
        pool.clear();
        self.shared.report(0);
    }
}

async fn drive<S: KeySource>(
    source: Arc<S>,
    cfg: PrefetchConfig,
    gate: FetchGate,
    shared: Arc<Shared>,
) {
    let delay = gate.start_delay(jitter_draw());
    if !delay.is_zero() {
        tokio::select! {
            () = tokio::time::sleep(delay) => {}
            () = shared.until_taker() => {}
        }
    }
    let backoff = RetryPolicy {
        max_attempts: 1,
        initial_backoff_ms: cfg.backoff_initial_ms.max(1),
        max_backoff_ms: cfg.backoff_max_ms.max(cfg.backoff_initial_ms.max(1)),
    };
    let mut failures = 0u32;
    loop {
        let wanted = shared.pool().wanted();
        if wanted == 0 {
            shared.wake_driver.notified().await;
            continue;
        }
        let permit = permit(&gate, &shared).await;
        // Only this task adds keys, so waiting for the permit can only have raised the need.
        let wanted = shared.pool().wanted();
        let number = u32::try_from(wanted)
            .unwrap_or(u32::MAX)
            .min(cfg.batch.max(1));
        let request = KeyRequest {
            number: Some(number),
            size: cfg.key_size_bits,
            ..KeyRequest::default()
        };
        let result = source.enc_keys(&cfg.slave, &request).await;
        drop(permit);
        match result {
            Ok(keys) => {
                failures = 0;
                store(&shared, keys);
            }
            Err(e) => {
                let pause = backoff.backoff(failures, jitter_draw());
                failures = failures.saturating_add(1);
                tracing::debug!(error = %e, ?pause, "key prefetch failed");
                tokio::time::sleep(pause).await;
            }
        }
    }
}

/// A permit of `gate`: an urgent one while a `take` waits, else a background one (given up for
/// an urgent one when a `take` starts waiting meanwhile).
async fn permit(gate: &FetchGate, shared: &Shared) -> Permit {
    loop {
        if shared.taker_waits() {
            return gate.urgent().await;
        }
        tokio::select! {
            permit = gate.background() => return permit,
            () = shared.wake_driver.notified() => {}
        }
    }
}

fn store(shared: &Shared, keys: Vec<QkdKey>) {
    {
        let mut pool = shared.pool();
        for key in keys {
            match pool.push(key) {
                Ok(()) => {}
                Err((PushError::Replayed, refused)) => {
                    shared.metrics.record_error(ErrorKind::Malformed);
                    tracing::warn!(key_id = %refused.id(), "KME delivered a key ID twice; key discarded");
                }
                Err((PushError::Full, _refused)) => {}
            }
        }
        shared.report(pool.len());
    }
    shared.key_ready.notify_waiters();
}

#[cfg(test)]
#[path = "prefetch_tests.rs"]
mod tests;
