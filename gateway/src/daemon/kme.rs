//! The KME thread: the bridge between the packet thread and the asynchronous ETSI GS QKD 014 clients
//! (qkd-link). One thread runs a tokio runtime with a client per KME of this site (docs/protocol.md
//! §6.3) and, for every peer and source this site is master of, a prefetch pool; a KME's pools
//! share its [`FetchGate`] (a few requests in flight at once, first fills spread over a second,
//! docs/protocol.md §7). The node's [`KmeRequest`]s go in over a channel; [`KmeReply`]s
//! come back over a channel and a byte on a socket pair the packet loop polls. So a KME call never
//! runs on the packet path, and a slow or dead KME delays only the next epoch (docs/protocol.md §7).

use std::collections::HashMap;
use std::io::{Read, Write};
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::net::UnixStream;
use std::sync::Arc;
use std::sync::mpsc as std_mpsc;
use std::thread::JoinHandle;
use std::time::Duration;

use keymix::{QkdMaterial, SecretVec};
use qkd_link::{
    ClientConfig, ErrorKind, FetchGate, KmeClient, Metrics, PrefetchConfig, Prefetcher, QkdKey,
    SaeId,
};
use tokio::sync::mpsc;

use crate::hybrid::{QkdFailure, QkdResult};
use crate::node::{KmeOp, KmeReply, KmeRequest, Prefetched};

/// Why the KME thread could not start.
#[derive(Debug, thiserror::Error)]
pub enum BridgeError {
    /// The client configuration (certificates, key file permissions, URL) is unusable.
    #[error("KME client: {0}")]
    Client(qkd_link::Error),
    /// The thread, runtime or wake-up socket could not be created.
    #[error("KME bridge: {0}")]
    Io(std::io::Error),
}

/// A liveness probe of the KME: ETSI GS QKD 014 §5.1 Get status with `peer` (consumes no key),
/// every `every`, so `qgw_qkd_kme_reachable` follows the KME even while nothing else asks it (a
/// master whose prefetch pool is full, a slave between the key IDs the master names).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Probe {
    /// The SAE ID the status is asked about.
    pub peer: SaeId,
    /// Time between probes.
    pub every: Duration,
}

/// One KME of this site, as the thread runs it.
#[derive(Debug)]
pub struct KmeSetup {
    /// Its name (`kme` with the single-KME form): the `kme` label of its metrics.
    pub name: String,
    /// Its mutual-TLS client configuration.
    pub config: ClientConfig,
    /// A prefetch pool per slave SAE this site is master of through this KME.
    pub masters_for: Vec<PrefetchConfig>,
    /// What its pools' fetches wait for.
    pub gate: FetchGate,
    /// Its liveness probe, if any.
    pub probe: Option<Probe>,
}

/// The running KME thread.
#[derive(Debug)]
pub struct KmeBridge {
    jobs: Option<mpsc::UnboundedSender<KmeRequest>>,
    results: std_mpsc::Receiver<KmeReply>,
    wake: UnixStream,
    /// Every KME's name and counters, in [`crate::node::KmeId`] order; never empty.
    metrics: Vec<(String, Arc<Metrics>)>,
    thread: Option<JoinHandle<()>>,
}

/// A KME's client and its prefetch pools (by slave SAE).
struct Kme {
    client: Arc<KmeClient>,
    pools: HashMap<SaeId, Prefetcher>,
}

impl KmeBridge {
    /// Starts the thread with one KME ([`crate::node::KmeId::FIRST`], named `kme`): see [`Self::start_many`].
    pub fn start(
        config: ClientConfig,
        masters_for: Vec<PrefetchConfig>,
        gate: FetchGate,
        probe: Option<Probe>,
        timeout: Duration,
    ) -> Result<Self, BridgeError> {
        let kme = KmeSetup {
            name: crate::config_hybrid_kme::DEFAULT_KME_NAME.to_owned(),
            config,
            masters_for,
            gate,
            probe,
        };
        Self::start_many(vec![kme], timeout)
    }

    /// Starts the thread: builds each KME's mutual-TLS client (which reads and checks the PEM
    /// files, so a bad key file fails here, before the tunnel starts), its prefetch pools (one
    /// per slave, each sized by its caller, all behind its gate) and its probe, if any. A
    /// request's [`crate::node::KmeId`] is its position in `kmes`.
    pub fn start_many(kmes: Vec<KmeSetup>, timeout: Duration) -> Result<Self, BridgeError> {
        let mut metrics = Vec::with_capacity(kmes.len());
        let mut setups = Vec::with_capacity(kmes.len());
        for kme in kmes {
            let m = Arc::new(Metrics::default());
            let client =
                KmeClient::with_metrics(kme.config, Arc::clone(&m)).map_err(BridgeError::Client)?;
            metrics.push((kme.name, m));
            setups.push((Arc::new(client), kme.masters_for, kme.gate, kme.probe));
        }
        if metrics.is_empty() {
            let none = std::io::Error::new(std::io::ErrorKind::InvalidInput, "no KME");
            return Err(BridgeError::Io(none));
        }
        let (wake_write, wake) = UnixStream::pair().map_err(BridgeError::Io)?;
        wake.set_nonblocking(true).map_err(BridgeError::Io)?;
        let (jobs, mut job_rx) = mpsc::unbounded_channel::<KmeRequest>();
        let (result_tx, results) = std_mpsc::channel();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(BridgeError::Io)?;
        let thread = std::thread::Builder::new()
            .name("qgw-kme".into())
            .spawn(move || {
                runtime.block_on(async move {
                    let kmes: Arc<Vec<Kme>> = Arc::new(
                        (setups.into_iter())
                            .map(|(client, masters_for, gate, probe)| {
                                if let Some(probe) = probe {
                                    tokio::spawn(watch(Arc::clone(&client), probe, timeout));
                                }
                                let pools = (masters_for.into_iter())
                                    .map(|cfg| {
                                        let slave = cfg.slave.clone();
                                        let c = Arc::clone(&client);
                                        (slave, Prefetcher::spawn_gated(c, cfg, gate.clone()))
                                    })
                                    .collect();
                                Kme { client, pools }
                            })
                            .collect(),
                    );
                    let wake_write = Arc::new(std::sync::Mutex::new(wake_write));
                    while let Some(job) = job_rx.recv().await {
                        let (kmes, tx, wake) = (
                            Arc::clone(&kmes),
                            result_tx.clone(),
                            Arc::clone(&wake_write),
                        );
                        tokio::spawn(async move {
                            let result = match kmes.get(job.kme.index()) {
                                Some(kme) => run(kme, job, timeout).await,
                                None => job.reply(Err(QkdFailure::Unavailable)),
                            };
                            if tx.send(result).is_ok() {
                                let mut w = wake.lock().unwrap_or_else(|p| p.into_inner());
                                // A full socket buffer already wakes the loop; the byte is only a signal.
                                let _ = w.write(&[1]);
                            }
                        });
                    }
                });
            })
            .map_err(BridgeError::Io)?;
        Ok(Self {
            jobs: Some(jobs),
            results,
            wake,
            metrics,
            thread: Some(thread),
        })
    }

    /// Queues a request; never blocks.
    pub fn submit(&self, job: KmeRequest) {
        if let Some(jobs) = &self.jobs {
            let _ = jobs.send(job);
        }
    }

    /// The descriptor the event loop polls for readability.
    pub fn wake_fd(&self) -> BorrowedFd<'_> {
        self.wake.as_fd()
    }

    /// Finished requests (clears the wake-up signal).
    pub fn drain(&self) -> Vec<KmeReply> {
        let mut sink = [0u8; 64];
        while matches!((&self.wake).read(&mut sink), Ok(n) if n > 0) {}
        self.results.try_iter().collect()
    }

    /// The first KME's counters (keys, bytes, errors, latency, buffer level, reachability).
    pub fn metrics(&self) -> &Arc<Metrics> {
        // `start_many` refuses an empty list.
        &self.metrics[0].1
    }

    /// Every KME's name and counters, in [`crate::node::KmeId`] order.
    pub fn all_metrics(&self) -> &[(String, Arc<Metrics>)] {
        &self.metrics
    }
}

impl Drop for KmeBridge {
    fn drop(&mut self) {
        self.jobs = None; // closes the channel: the thread's loop ends
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

async fn run(kme: &Kme, request: KmeRequest, timeout: Duration) -> KmeReply {
    let client = &kme.client;
    let result = match &request.op {
        KmeOp::Fetch { slave, prefetched } => match kme.pools.get(slave) {
            Some(pool) => {
                if *prefetched == Prefetched::Discard {
                    pool.discard();
                }
                (pool.take(timeout).await)
                    .ok_or(QkdFailure::Unavailable)
                    .and_then(|k| material(vec![k], client.metrics()))
            }
            None => Err(QkdFailure::Unavailable),
        },
        KmeOp::Resolve { master, key_ids } => {
            match tokio::time::timeout(timeout, client.dec_keys(master, key_ids)).await {
                Ok(Ok(keys)) => material(keys, client.metrics()),
                Ok(Err(e)) if e.is_key_not_found() => Err(QkdFailure::NotFound),
                Ok(Err(_)) | Err(_) => Err(QkdFailure::Unavailable),
            }
        }
    };
    request.reply(result)
}

/// Asks the KME for its status with `probe.peer` every `probe.every`, for as long as the thread
/// runs; the client's metrics record each answer or failure (the reachability gauge among them).
async fn watch(client: Arc<KmeClient>, probe: Probe, timeout: Duration) {
    let mut ticks = tokio::time::interval(probe.every);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        if tokio::time::timeout(timeout, client.status(&probe.peer))
            .await
            .is_err()
        {
            // No answer in time: the client was cut off before it could record one.
            client.metrics().set_reachable(false);
        }
    }
}

/// Concatenates KME keys, in order, into keymix's QKD contribution. Keys keymix cannot use (a
/// length outside 256–8192 bits in all) are a malformed KME answer: counted, logged, and no key.
fn material(keys: Vec<QkdKey>, metrics: &Metrics) -> QkdResult {
    let ids = keys.iter().map(QkdKey::id).collect();
    let len: usize = keys.iter().map(|k| k.expose().len()).sum();
    // Exactly the capacity needed: no reallocation leaves a copy of key bytes behind.
    let mut bytes = Vec::with_capacity(len);
    for key in &keys {
        bytes.extend_from_slice(key.expose());
    }
    QkdMaterial::new(ids, SecretVec::new(bytes)).map_err(|e| {
        metrics.record_error(ErrorKind::Malformed);
        tracing::warn!(bytes = len, error = %e, "KME key unusable (length); no key for this epoch");
        QkdFailure::Unavailable
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use zeroize::Zeroizing;

    fn key(byte: u8, len: usize) -> QkdKey {
        QkdKey::new(
            keymix::KeyId::from_random_bytes([byte; 16]),
            Zeroizing::new(vec![byte; len]),
        )
    }

    #[test]
    fn keys_keymix_cannot_use_are_refused_and_counted() {
        let metrics = Metrics::default();
        let ok = material(vec![key(1, 32)], &metrics).expect("a 256-bit key");
        assert_eq!(ok.key().len(), 32);
        for len in [0, 16, 31, 1025] {
            let refused = material(vec![key(2, len)], &metrics);
            assert_eq!(refused.err(), Some(QkdFailure::Unavailable), "{len} bytes");
        }
        assert_eq!(metrics.snapshot().errors_of(ErrorKind::Malformed), 4);
    }
}
