//! Transport sessions (whitepaper §5.4.5 key derivation, §5.4.6 transport messages): the keys of one
//! completed handshake, the sending counter and the receiving replay window.
//!
//! The halves are split for the data path: [`SendingKey::seal`] and [`ReceivingKey::open`] take
//! `&self` (an atomic counter, a read-only cipher) so batches can be encrypted on several cores;
//! the replay window is updated afterwards, in order, by whoever owns the [`Session`].

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use zerocopy::IntoBytes;

use super::aead::{DataAead, DataCipher};
use super::constants::{
    MSG_TRANSPORT, PADDING_MULTIPLE, REJECT_AFTER_MESSAGES, TAG_LEN, TRANSPORT_HEADER_LEN,
};
use super::handshake::{PskId, TransportKeys};
use super::messages::{Header, TransportHeader};
use super::replay::ReplayWindow;
use crate::error::DropReason;

/// Length of a transport message carrying `plain_len` bytes with MTU `mtu` (§5.4.6 padding: to a
/// multiple of 16, never beyond the MTU).
pub fn sealed_len(plain_len: usize, mtu: usize) -> usize {
    let padded = plain_len.next_multiple_of(PADDING_MULTIPLE);
    let padded = if plain_len <= mtu {
        padded.min(mtu.max(plain_len))
    } else {
        plain_len
    };
    TRANSPORT_HEADER_LEN + padded + TAG_LEN
}

/// The sending half: `T_send`, the peer's index and the nonce counter.
#[derive(Debug)]
pub struct SendingKey {
    cipher: DataCipher,
    counter: AtomicU64,
    remote_index: u32,
}

impl SendingKey {
    /// Seals a packet in place. `buf[TRANSPORT_HEADER_LEN..][..plain_len]` holds the plaintext; the
    /// header, padding and tag are written around it. Returns the message length.
    pub fn seal(&self, buf: &mut [u8], plain_len: usize, mtu: usize) -> Result<usize, DropReason> {
        let total = sealed_len(plain_len, mtu);
        if buf.len() < total {
            return Err(DropReason::BufferTooSmall);
        }
        let counter = self.counter.fetch_add(1, Ordering::Relaxed);
        if counter >= REJECT_AFTER_MESSAGES {
            // Leave the counter saturated so every later call fails too.
            self.counter.store(REJECT_AFTER_MESSAGES, Ordering::Relaxed);
            return Err(DropReason::SessionExpired);
        }
        let (head, rest) = buf.split_at_mut(TRANSPORT_HEADER_LEN);
        let header = TransportHeader {
            header: Header::new(MSG_TRANSPORT),
            receiver: self.remote_index.into(),
            counter: counter.into(),
        };
        head.copy_from_slice(header.as_bytes());
        let body_len = total - TRANSPORT_HEADER_LEN - TAG_LEN;
        let (body, tail) = rest.split_at_mut(body_len);
        body[plain_len..].fill(0);
        let tag = self.cipher.seal(counter, body);
        tail[..TAG_LEN].copy_from_slice(&tag);
        Ok(total)
    }

    /// Messages sent so far (the next counter).
    pub fn sent(&self) -> u64 {
        self.counter.load(Ordering::Relaxed)
    }
}

/// The receiving half: `T_recv` and our index.
#[derive(Debug)]
pub struct ReceivingKey {
    cipher: DataCipher,
    local_index: u32,
}

impl ReceivingKey {
    /// Opens `sealed` (ciphertext || tag) in place; returns the plaintext length (padding included).
    pub fn open(&self, counter: u64, sealed: &mut [u8]) -> Result<usize, DropReason> {
        let body_len = sealed
            .len()
            .checked_sub(TAG_LEN)
            .ok_or(DropReason::Malformed)?;
        let (body, tag) = sealed.split_at_mut(body_len);
        let tag: &[u8; TAG_LEN] = (&*tag).try_into().map_err(|_| DropReason::Malformed)?;
        self.cipher.open(counter, body, tag)?;
        Ok(body_len)
    }
}

/// One session: both keys, the replay window and its bookkeeping.
#[derive(Debug)]
pub struct Session {
    /// Sending half.
    pub send: SendingKey,
    /// Receiving half.
    pub recv: ReceivingKey,
    replay: ReplayWindow,
    created: Instant,
    initiator: bool,
    psk_id: Option<PskId>,
    epoch: u64,
    /// REJECT_AFTER_TIME, or an off-spec shorter value (`danger_reject_after_seconds`).
    reject_after: std::time::Duration,
}

impl Session {
    /// A session from handshake output, created at `now`; `epoch` numbers sessions per peer.
    pub fn new(keys: TransportKeys, now: Instant, epoch: u64) -> Self {
        Self {
            send: SendingKey {
                cipher: DataCipher::new(&keys.send),
                counter: AtomicU64::new(0),
                remote_index: keys.remote_index,
            },
            recv: ReceivingKey {
                cipher: DataCipher::new(&keys.recv),
                local_index: keys.local_index,
            },
            replay: ReplayWindow::new(),
            created: now,
            initiator: keys.initiator,
            psk_id: keys.psk_id,
            epoch,
            reject_after: super::constants::REJECT_AFTER_TIME,
        }
    }

    /// Off-spec: refuse this session after `after` instead of REJECT_AFTER_TIME (tests of the
    /// fail-closed policy need it within seconds). Never longer than REJECT_AFTER_TIME.
    pub fn set_reject_after(&mut self, after: std::time::Duration) {
        self.reject_after = after.min(super::constants::REJECT_AFTER_TIME);
    }

    /// Our index: transport messages for this session carry it as receiver.
    pub fn local_index(&self) -> u32 {
        self.recv.local_index
    }

    /// Age at `now`.
    pub fn age(&self, now: Instant) -> Duration {
        now.saturating_duration_since(self.created)
    }

    /// Whether we initiated the handshake that made it.
    pub fn initiator(&self) -> bool {
        self.initiator
    }

    /// Which hybrid PSK keyed it (`None`: a plain peer's static PSK).
    pub fn psk_id(&self) -> Option<PskId> {
        self.psk_id
    }

    /// Its per-peer sequence number.
    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    /// Whether the sending key may still be used at `now` (§6.1).
    pub fn can_send(&self, now: Instant) -> bool {
        self.age(now) < self.reject_after
            && !super::timers::is_expired(self.age(now), self.send.sent())
    }

    /// Whether a received message may still be accepted at `now` (§6.1).
    pub fn can_receive(&self, now: Instant) -> bool {
        self.age(now) < self.reject_after
    }

    /// Opens a message for this session and records its counter if it authenticated and is fresh.
    pub fn receive(
        &mut self,
        now: Instant,
        counter: u64,
        sealed: &mut [u8],
    ) -> Result<usize, DropReason> {
        if !self.can_receive(now) {
            return Err(DropReason::SessionExpired);
        }
        if !self.replay.check(counter) {
            return Err(DropReason::Replay);
        }
        let n = self.recv.open(counter, sealed)?;
        if !self.replay.accept(counter) {
            return Err(DropReason::Replay);
        }
        Ok(n)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::proto::secret::Secret;

    fn pair(now: Instant) -> (Session, Session) {
        let k = |s: u8, r: u8, i: bool| TransportKeys {
            send: Secret::new([s; 32]),
            recv: Secret::new([r; 32]),
            local_index: if i { 1 } else { 2 },
            remote_index: if i { 2 } else { 1 },
            initiator: i,
            psk_id: Some(PskId::FIRST),
        };
        (
            Session::new(k(1, 2, true), now, 0),
            Session::new(k(2, 1, false), now, 0),
        )
    }

    #[test]
    fn padding_rules() {
        assert_eq!(sealed_len(0, 1420), 32);
        assert_eq!(sealed_len(1, 1420), 48);
        assert_eq!(sealed_len(16, 1420), 48);
        assert_eq!(sealed_len(1419, 1420), 16 + 1420 + 16);
        assert_eq!(sealed_len(1420, 1420), 16 + 1420 + 16);
        // Larger than the MTU (should not happen): no padding at all.
        assert_eq!(sealed_len(1421, 1420), 16 + 1421 + 16);
    }

    #[test]
    fn seal_open_round_trip_with_replay() {
        let now = Instant::now();
        let (a, mut b) = pair(now);
        let mut buf = [0u8; 128];
        buf[16..21].copy_from_slice(b"hello");
        let n = a.send.seal(&mut buf, 5, 1420).unwrap();
        assert_eq!(n, 48);
        let mut copy = buf;
        let plain = b.receive(now, 0, &mut copy[16..n]).unwrap();
        assert_eq!(&copy[16..16 + 5], b"hello");
        assert_eq!(plain, 16);
        assert!(copy[21..32].iter().all(|&x| x == 0));
        let mut again = buf;
        assert_eq!(
            b.receive(now, 0, &mut again[16..n]),
            Err(DropReason::Replay)
        );
        // A forged counter does not authenticate and is not recorded.
        let mut forged = buf;
        assert_eq!(
            b.receive(now, 1, &mut forged[16..n]),
            Err(DropReason::DecryptFailed)
        );
        assert_eq!(a.send.sent(), 1);
    }

    #[test]
    fn expiry_by_time_and_by_count() {
        let now = Instant::now();
        let (a, mut b) = pair(now);
        let later = now + super::super::constants::REJECT_AFTER_TIME;
        assert!(!a.can_send(later));
        let mut buf = [0u8; 64];
        let n = a.send.seal(&mut buf, 0, 1420).unwrap();
        assert_eq!(
            b.receive(later, 0, &mut buf[16..n]),
            Err(DropReason::SessionExpired)
        );
        a.send
            .counter
            .store(REJECT_AFTER_MESSAGES, Ordering::Relaxed);
        assert_eq!(
            a.send.seal(&mut buf, 0, 1420),
            Err(DropReason::SessionExpired)
        );
        assert_eq!(
            a.send.seal(&mut buf, 0, 1420),
            Err(DropReason::SessionExpired)
        );
        assert!(!a.can_send(now));
    }

    #[test]
    fn a_shortened_reject_time_expires_earlier_but_never_later_than_the_spec() {
        let now = Instant::now();
        let (mut a, mut b) = pair(now);
        a.set_reject_after(std::time::Duration::from_secs(20));
        b.set_reject_after(std::time::Duration::from_secs(20));
        let t19 = now + std::time::Duration::from_secs(19);
        let t20 = now + std::time::Duration::from_secs(20);
        assert!(a.can_send(t19) && !a.can_send(t20));
        assert!(b.can_receive(t19) && !b.can_receive(t20));
        a.set_reject_after(std::time::Duration::from_secs(1000));
        assert!(
            !a.can_send(now + super::super::constants::REJECT_AFTER_TIME),
            "capped at 180 s"
        );
    }

    #[test]
    fn small_buffers_are_refused() {
        let (a, _) = pair(Instant::now());
        let mut buf = [0u8; 40];
        assert_eq!(
            a.send.seal(&mut buf, 10, 1420),
            Err(DropReason::BufferTooSmall)
        );
        assert_eq!(a.send.sent(), 0);
    }
}
