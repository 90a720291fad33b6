//! The data path's other cores (docs/gateway-decisions.md §9, "A second core"): the cipher work
//! of a batch, split across a rayon pool whose worker 0 is the packet thread itself.
//!
//! Only the stateless halves run here: [`Sealing::seal`] on framed messages and
//! [`PendingTransport::open`] on received ones. Counters, replay windows, timers and the order of
//! datagrams stay on the packet thread, before and after (`node/send.rs`, `node/receive.rs`), so
//! a batch handed to several cores leaves and arrives in the order it would on one.
//!
//! The packet thread is a member of the pool (`use_current_thread`), so `join` runs one half
//! itself and takes back the other if no worker has stolen it yet: a late or busy worker costs
//! nothing but the parallelism. Batches too small to pay for waking a worker stay on the packet
//! thread. Nothing here locks per packet or allocates per packet (a batch of receptions allocates
//! one vector of slices).

use rayon::prelude::*;

use crate::error::DropReason;
use crate::node::PendingTransport;
use crate::proto::session::Sealing;

/// Cipher bytes below which a batch stays on the packet thread: about twenty full-size packets,
/// some 15 µs of ChaCha20-Poly1305 (`benches/workers.rs`), against the microseconds of waking
/// and joining a worker.
pub const PARALLEL_MIN_BYTES: usize = 32 * 1024;
/// The fewest messages one task takes (smaller splits cost more in stealing than they save).
const MIN_PER_TASK: usize = 4;

/// The cores that seal and open batches.
pub struct Workers {
    /// `None`: the packet thread alone.
    pool: Option<rayon::ThreadPool>,
    /// Batches handed to the pool.
    shared: u64,
}

impl std::fmt::Debug for Workers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Workers({})", self.threads())
    }
}

/// A received message waiting for [`Workers::open`], and its place in the receive buffer.
#[derive(Debug)]
pub struct ToOpen {
    /// The message's session and counter.
    pub pending: PendingTransport,
    /// Where the datagram is in the receive buffer.
    pub at: std::ops::Range<usize>,
    /// What opening it gave (`Err(Malformed)` until opened).
    pub opened: Result<usize, DropReason>,
    /// The TOS byte of the datagram's outer IP header (its ECN field goes to the inner packet).
    pub outer_tos: u8,
}

impl ToOpen {
    /// `pending`, whose datagram is at `at` in the receive buffer, not yet opened.
    pub fn new(pending: PendingTransport, at: std::ops::Range<usize>) -> Self {
        Self {
            pending,
            at,
            opened: Err(DropReason::Malformed),
            outer_tos: 0,
        }
    }
}

impl Workers {
    /// `threads` threads in all, the calling thread (the packet thread) among them; 1 is the
    /// packet thread alone. Must be called on the packet thread.
    pub fn new(threads: usize) -> anyhow::Result<Self> {
        if threads <= 1 {
            return Ok(Self {
                pool: None,
                shared: 0,
            });
        }
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .use_current_thread()
            .thread_name(|i| format!("qgw-crypto-{i}"))
            .build()?;
        Ok(Self {
            pool: Some(pool),
            shared: 0,
        })
    }

    /// Threads in all, the packet thread included.
    pub fn threads(&self) -> usize {
        self.pool
            .as_ref()
            .map_or(1, rayon::ThreadPool::current_num_threads)
    }

    /// Batches handed to the pool so far.
    pub fn shared(&self) -> u64 {
        self.shared
    }

    /// The pool, if `bytes` of cipher work are worth sharing (counted).
    fn share(&mut self, bytes: usize) -> Option<&rayon::ThreadPool> {
        let pool = self.pool.as_ref().filter(|_| bytes >= PARALLEL_MIN_BYTES)?;
        self.shared += 1;
        Some(pool)
    }

    /// Seals framed messages: `sealings[i]` was framed into slot `i` of `slots` (slots of
    /// `slot` bytes each).
    pub fn seal(&mut self, slots: &mut [u8], slot: usize, sealings: &[Sealing]) {
        let used = &mut slots[..slot * sealings.len()];
        let bytes = sealings.iter().map(Sealing::message_len).sum();
        match self.share(bytes) {
            Some(pool) => pool.install(|| {
                (used.par_chunks_mut(slot).zip(sealings.par_iter()))
                    .with_min_len(MIN_PER_TASK)
                    .for_each(|(buf, s)| s.seal(buf));
            }),
            None => (used.chunks_mut(slot).zip(sealings)).for_each(|(buf, s)| s.seal(buf)),
        }
    }

    /// Opens received messages in `buf`, each at its [`ToOpen::at`] (in increasing order, not
    /// overlapping), and records what each gave.
    pub fn open(&mut self, buf: &mut [u8], openings: &mut [ToOpen]) {
        let bytes = openings.iter().map(|o| o.at.len()).sum();
        let Some(pool) = self.share(bytes) else {
            for o in openings {
                o.opened = match buf.get_mut(o.at.clone()) {
                    Some(datagram) => o.pending.open(datagram),
                    None => Err(DropReason::Malformed),
                };
            }
            return;
        };
        // Disjoint slices for the datagrams, cut in one pass.
        let mut work = Vec::with_capacity(openings.len());
        let (mut rest, mut offset) = (buf, 0);
        for o in openings.iter_mut() {
            let Some(skip) = o.at.start.checked_sub(offset) else {
                o.opened = Err(DropReason::Malformed);
                continue;
            };
            if skip + o.at.len() > rest.len() {
                o.opened = Err(DropReason::Malformed);
                continue;
            }
            let (datagram, tail) = std::mem::take(&mut rest)[skip..].split_at_mut(o.at.len());
            (rest, offset) = (tail, o.at.end);
            work.push((datagram, o));
        }
        pool.install(|| {
            work.par_iter_mut()
                .with_min_len(MIN_PER_TASK)
                .for_each(|(datagram, o)| o.opened = o.pending.open(datagram));
        });
    }
}

#[cfg(test)]
#[path = "workers_tests.rs"]
mod tests;
