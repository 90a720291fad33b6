//! The async driver of the master-side key buffer ([`crate::pool::KeyPool`]): a tokio task that
//! calls Get key (ETSI GS QKD 014 §5.3) whenever the pool falls to its low-water mark, so the
//! gateway's handshake takes a key from memory instead of waiting on a KME round trip.
//!
//! [`Prefetcher::try_take`] never waits; [`Prefetcher::take`] waits up to a deadline. Failed
//! fetches back off exponentially with jitter (on top of the client's own per-request retries).
//! Dropping the [`Prefetcher`] stops the task and zeroizes every buffered key.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::task::JoinHandle;

use crate::api::KeyRequest;
use crate::client::KmeClient;
use crate::error::ErrorKind;
use crate::ids::SaeId;
use crate::key::QkdKey;
use crate::metrics::Metrics;
use crate::pool::{KeyPool, PushError};
use crate::retry::{RetryPolicy, jitter_draw};

/// What to prefetch and how much to keep.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PrefetchConfig {
    /// The peer SAE the keys are shared with (the slave).
    pub slave: SaeId,
    /// Most keys held in memory.
    pub capacity: usize,
    /// Fetch when the pool holds this many keys or fewer.
    pub low_water: usize,
    /// Key size in bits; `None` takes the KME's default `key_size`.
    pub key_size_bits: Option<u32>,
    /// Most keys asked for in one request (keep at or below the KME's `max_key_per_request`).
    pub batch: u32,
    /// Backoff after a failed fetch, doubling up to `backoff_max_ms`.
    pub backoff_initial_ms: u64,
    /// Longest pause between failed fetches.
    pub backoff_max_ms: u64,
}

impl PrefetchConfig {
    /// Defaults for a gateway: 16 keys of 256 bits, refill at 4, batches of 8, 0.2–5 s backoff.
    pub fn new(slave: SaeId) -> Self {
        Self {
            slave,
            capacity: 16,
            low_water: 4,
            key_size_bits: Some(256),
            batch: 8,
            backoff_initial_ms: 200,
            backoff_max_ms: 5_000,
        }
    }
}

struct Shared {
    pool: Mutex<KeyPool>,
    wake_driver: Notify,
    key_ready: Notify,
    metrics: Arc<Metrics>,
}

impl Shared {
    fn pool(&self) -> MutexGuard<'_, KeyPool> {
        // The pool's invariants hold between statements, so a poisoned lock is still usable.
        self.pool.lock().unwrap_or_else(|p| p.into_inner())
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
    /// Starts the driver on the current tokio runtime; it begins filling at once.
    pub fn spawn(client: Arc<KmeClient>, cfg: PrefetchConfig) -> Self {
        let shared = Arc::new(Shared {
            pool: Mutex::new(KeyPool::new(cfg.capacity, cfg.low_water)),
            wake_driver: Notify::new(),
            key_ready: Notify::new(),
            metrics: Arc::clone(client.metrics()),
        });
        let task = tokio::spawn(drive(client, cfg, Arc::clone(&shared)));
        Self { shared, task }
    }

    /// Takes a buffered key without waiting; `None` if the buffer is empty.
    pub fn try_take(&self) -> Option<QkdKey> {
        let (key, level, wanted) = {
            let mut pool = self.shared.pool();
            let key = pool.take();
            (key, pool.len(), pool.wanted())
        };
        self.shared.metrics.set_buffer_level(level);
        if wanted > 0 {
            self.shared.wake_driver.notify_one();
        }
        key
    }

    /// Takes a key, waiting up to `timeout` for the driver to fetch one.
    pub async fn take(&self, timeout: Duration) -> Option<QkdKey> {
        let deadline = tokio::time::Instant::now() + timeout;
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
            pool.wanted()
        };
        self.shared.metrics.set_buffer_level(0);
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
        self.shared.pool().clear();
    }
}

async fn drive(client: Arc<KmeClient>, cfg: PrefetchConfig, shared: Arc<Shared>) {
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
        let number = u32::try_from(wanted)
            .unwrap_or(u32::MAX)
            .min(cfg.batch.max(1));
        let request = KeyRequest {
            number: Some(number),
            size: cfg.key_size_bits,
            ..KeyRequest::default()
        };
        match client.enc_keys(&cfg.slave, &request).await {
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

fn store(shared: &Shared, keys: Vec<QkdKey>) {
    let level = {
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
        pool.len()
    };
    shared.metrics.set_buffer_level(level);
    shared.key_ready.notify_waiters();
}
