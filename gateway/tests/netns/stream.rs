//! A timed stream of numbered UDP datagrams, sent by the test process from one namespace to a
//! receiver it runs in another, for measuring how long traffic stops (a failover): every
//! datagram carries its number and its send time, the receiver notes its arrival time, and both
//! times are read on one monotonic clock (the test process's), so the gap around an event is
//! measured without any clock synchronisation. Sender and receiver stop when told to or after a
//! deadline, whichever comes first.

use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::traffic::spawn_in;

/// Payload length: the number (u32) and the send time in ns since the stream's start (u64).
const LEN: usize = 12;

/// One datagram that arrived: its number and when it was sent and received (since the start).
#[derive(Clone, Copy, Debug)]
pub struct Arrival {
    /// The sender's sequence number.
    pub seq: u32,
    /// Send time, since [`Stream::start`].
    pub sent: Duration,
    /// Arrival time, since [`Stream::start`].
    pub received: Duration,
}

/// A running stream; [`Stream::finish`] stops it.
pub struct Stream {
    /// The instant both ends measure from.
    pub start: Instant,
    stop: Arc<AtomicBool>,
    arrivals: Arc<Mutex<Vec<Arrival>>>,
    sender: Option<JoinHandle<u32>>,
    receiver: Option<JoinHandle<()>>,
}

/// What a finished stream saw.
#[derive(Debug)]
pub struct Finished {
    /// Datagrams sent.
    pub sent: u32,
    /// Datagrams that arrived, in arrival order.
    pub arrivals: Vec<Arrival>,
}

impl Stream {
    /// Starts a receiver on `to` in `to_ns`, then a sender in `from_ns` that sends one datagram
    /// every `every` until [`Stream::finish`] or `deadline`.
    pub fn start(
        from_ns: &str,
        to_ns: &str,
        to: SocketAddr,
        every: Duration,
        deadline: Duration,
    ) -> Self {
        let start = Instant::now();
        let stop = Arc::new(AtomicBool::new(false));
        let arrivals = Arc::new(Mutex::new(Vec::new()));
        let (ready_tx, ready_rx) = mpsc::channel();
        let (stop_r, log) = (Arc::clone(&stop), Arc::clone(&arrivals));
        let receiver = spawn_in(to_ns, move || {
            let sock = UdpSocket::bind(to).expect("bind receiver");
            sock.set_read_timeout(Some(Duration::from_millis(100)))
                .expect("timeout");
            ready_tx.send(()).expect("signal ready");
            let mut buf = [0u8; 64];
            while !stop_r.load(Ordering::Relaxed) && start.elapsed() < deadline {
                let Ok(n) = sock.recv(&mut buf) else { continue };
                let received = start.elapsed();
                if n != LEN {
                    continue;
                }
                let seq = u32::from_be_bytes(buf[..4].try_into().unwrap());
                let sent =
                    Duration::from_nanos(u64::from_be_bytes(buf[4..LEN].try_into().unwrap()));
                log.lock().unwrap().push(Arrival {
                    seq,
                    sent,
                    received,
                });
            }
        });
        ready_rx
            .recv_timeout(Duration::from_secs(10))
            .expect("receiver ready");
        let stop_s = Arc::clone(&stop);
        let sender = spawn_in(from_ns, move || {
            let sock = UdpSocket::bind("0.0.0.0:0").expect("bind sender");
            let mut seq = 0u32;
            while !stop_s.load(Ordering::Relaxed) && start.elapsed() < deadline {
                let mut msg = [0u8; LEN];
                msg[..4].copy_from_slice(&seq.to_be_bytes());
                let sent = u64::try_from(start.elapsed().as_nanos()).unwrap();
                msg[4..].copy_from_slice(&sent.to_be_bytes());
                // No route while a gateway fails over is expected: the datagram is lost.
                let _ = sock.send_to(&msg, to);
                seq += 1;
                std::thread::sleep(every);
            }
            seq
        });
        Self {
            start,
            stop,
            arrivals,
            sender: Some(sender),
            receiver: Some(receiver),
        }
    }

    /// The arrivals so far.
    pub fn arrivals(&self) -> Vec<Arrival> {
        self.arrivals.lock().unwrap().clone()
    }

    /// `at` as a time since the start.
    pub fn since_start(&self, at: Instant) -> Duration {
        at.duration_since(self.start)
    }

    /// How long after `event` (since the start) the first datagram sent after it arrived, if
    /// one did: the interruption a failure at `event` caused.
    pub fn resumed_after(&self, event: Duration) -> Option<Duration> {
        let arrivals = self.arrivals.lock().unwrap();
        let first = arrivals.iter().find(|a| a.sent > event)?;
        Some(first.received - event)
    }

    /// Stops sender and receiver and returns what they saw.
    pub fn finish(mut self) -> Finished {
        self.stop.store(true, Ordering::Relaxed);
        let sent = self.sender.take().unwrap().join().expect("sender thread");
        self.receiver
            .take()
            .unwrap()
            .join()
            .expect("receiver thread");
        let arrivals = self.arrivals.lock().unwrap().clone();
        Finished { sent, arrivals }
    }
}

impl Drop for Stream {
    fn drop(&mut self) {
        // On a panic elsewhere: let both threads end by themselves (they poll the flag).
        self.stop.store(true, Ordering::Relaxed);
    }
}

impl Finished {
    /// The longest time between two consecutive arrivals within `from..to` (since the start):
    /// the silence the receiver saw.
    pub fn longest_silence(&self, from: Duration, to: Duration) -> Duration {
        let times: Vec<Duration> = (self.arrivals.iter())
            .map(|a| a.received)
            .filter(|t| (from..to).contains(t))
            .collect();
        let gaps = times.windows(2).map(|w| w[1] - w[0]);
        gaps.max().unwrap_or_default()
    }

    /// Datagrams sent that never arrived.
    pub fn lost(&self) -> u32 {
        let mut seen: Vec<u32> = self.arrivals.iter().map(|a| a.seq).collect();
        seen.sort_unstable();
        seen.dedup();
        self.sent - u32::try_from(seen.len()).unwrap()
    }
}
