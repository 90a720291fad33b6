//! The audit thread: writes the node's audit records to the hash-chained, signed log
//! (docs/audit.md) off the packet thread, so a slow disk (`fdatasync` at each signed checkpoint)
//! never delays a packet. Records reach it over a bounded channel; if the thread falls that far
//! behind, a record is counted as a write error (and recorded as `records_lost` by the log once
//! writing works again) instead of blocking the packet thread.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, TrySendError, sync_channel};
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime};

use tracing::{info, warn};

use super::control::AuditCounters;
use crate::audit::{AuditEvent, AuditLog};

/// Records waiting for the audit thread at most.
const QUEUE: usize = 4096;
/// The longest the thread sleeps between checks for a due checkpoint.
const TICK: Duration = Duration::from_secs(1);

enum Message {
    Record(AuditEvent, SystemTime),
    Close(AuditEvent, SystemTime),
}

/// The running audit thread (or none, without `audit:`).
#[derive(Debug)]
pub struct AuditThread {
    queue: Option<SyncSender<Message>>,
    counters: Arc<AuditCounters>,
    thread: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for Message {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("audit message")
    }
}

impl AuditThread {
    /// Starts writing to `log`.
    pub fn start(log: AuditLog) -> std::io::Result<Self> {
        let counters = Arc::new(AuditCounters {
            path: log.path().display().to_string(),
            ..AuditCounters::default()
        });
        let (queue, rx) = sync_channel(QUEUE);
        let shared = Arc::clone(&counters);
        let thread = std::thread::Builder::new()
            .name("qgw-audit".into())
            .spawn(move || write(log, &rx, &shared))?;
        Ok(Self {
            queue: Some(queue),
            counters,
            thread: Some(thread),
        })
    }

    /// The counters the status shows.
    pub fn counters(&self) -> Arc<AuditCounters> {
        Arc::clone(&self.counters)
    }

    /// Queues a record; never blocks.
    pub fn record(&self, event: AuditEvent) {
        let Some(queue) = &self.queue else { return };
        match queue.try_send(Message::Record(event, SystemTime::now())) {
            Ok(()) => {}
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => {
                self.counters.lost.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// Records `stop`, closes the log with a final signed checkpoint, and waits for the thread.
    pub fn close(mut self, stop: AuditEvent) {
        if let Some(queue) = self.queue.take() {
            let _ = queue.send(Message::Close(stop, SystemTime::now()));
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn write(mut log: AuditLog, rx: &Receiver<Message>, counters: &AuditCounters) {
    let mut failing = false;
    let mut lost_announced = 0;
    loop {
        let message = rx.recv_timeout(TICK);
        let lost = counters.lost.load(Ordering::Relaxed);
        if lost > lost_announced {
            log.lost_before_writing(lost - lost_announced);
            lost_announced = lost;
        }
        let result = match message {
            Ok(Message::Record(event, at)) => log.record(at, event),
            Ok(Message::Close(stop, at)) => {
                let _ = log.record(at, stop);
                match log.close(SystemTime::now()) {
                    Ok(()) => info!("audit log closed"),
                    Err(e) => warn!(error = %e, "closing the audit log failed"),
                }
                return;
            }
            Err(RecvTimeoutError::Timeout) => Ok(()),
            Err(RecvTimeoutError::Disconnected) => return,
        };
        // A checkpoint is due by time even while records keep arriving.
        let result = result.and_then(|()| log.tick(SystemTime::now()));
        counters
            .records
            .store(log.records_written(), Ordering::Relaxed);
        counters
            .write_errors
            .store(log.write_errors(), Ordering::Relaxed);
        match result {
            Ok(()) => failing = false,
            Err(e) if !failing => {
                failing = true;
                warn!(error = %e, "audit write failed (reported once until writing works again)");
            }
            Err(_) => {}
        }
    }
}
