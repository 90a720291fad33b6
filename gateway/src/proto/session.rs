//! Transport sessions (whitepaper §5.4.5 key derivation, §5.4.6 transport messages): the keys of one
//! completed handshake, the sending counter and the receiving replay window.
//!
//! Each direction is split for the data path, so a batch's cipher work can run on several cores
//! while everything with state stays in order on the packet thread:
//! - sending: [`SendingKey::frame`] takes the next counter and writes the header and padding, in
//!   send order; [`Sealing::seal`] encrypts, on any thread;
//! - receiving: [`Session::begin_receive`] checks the session's age and the replay window;
//!   [`Opening::open`] decrypts, on any thread; [`Session::finish_receive`] records the counter,
//!   in arrival order, so the window stays exact (a duplicate within one batch authenticates twice
//!   but is accepted once, as one at a time).

use std::sync::Arc;
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
    cipher: Arc<DataCipher>,
    counter: AtomicU64,
    remote_index: u32,
}

impl SendingKey {
    /// Seals a packet in place. `buf[TRANSPORT_HEADER_LEN..][..plain_len]` holds the plaintext; the
    /// header, padding and tag are written around it. Returns the message length.
    pub fn seal(&self, buf: &mut [u8], plain_len: usize, mtu: usize) -> Result<usize, DropReason> {
        let sealing = self.frame(buf, plain_len, mtu)?;
        sealing.seal(buf);
        Ok(sealing.message_len())
    }

    /// The first half of [`SendingKey::seal`]: takes the next counter and writes the header and
    /// the zero padding around the plaintext, leaving the encryption to [`Sealing::seal`].
    pub fn frame(
        &self,
        buf: &mut [u8],
        plain_len: usize,
        mtu: usize,
    ) -> Result<Sealing, DropReason> {
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
        let header = TransportHeader {
            header: Header::new(MSG_TRANSPORT),
            receiver: self.remote_index.into(),
            counter: counter.into(),
        };
        buf[..TRANSPORT_HEADER_LEN].copy_from_slice(header.as_bytes());
        buf[TRANSPORT_HEADER_LEN + plain_len..total - TAG_LEN].fill(0);
        Ok(Sealing {
            cipher: Arc::clone(&self.cipher),
            counter,
            len: total,
        })
    }

    /// Messages sent so far (the next counter).
    pub fn sent(&self) -> u64 {
        self.counter.load(Ordering::Relaxed)
    }
}

/// A framed transport message waiting for its encryption ([`SendingKey::frame`]).
#[derive(Debug)]
pub struct Sealing {
    cipher: Arc<DataCipher>,
    counter: u64,
    len: usize,
}

impl Sealing {
    /// Encrypts the framed message at the start of `buf` (the buffer [`SendingKey::frame`]
    /// wrote) and writes its tag. Any thread may call it.
    pub fn seal(&self, buf: &mut [u8]) {
        let (body, tail) = buf[TRANSPORT_HEADER_LEN..self.len]
            .split_at_mut(self.len - TRANSPORT_HEADER_LEN - TAG_LEN);
        let tag = self.cipher.seal(self.counter, body);
        tail.copy_from_slice(&tag);
    }

    /// The message's length.
    pub fn message_len(&self) -> usize {
        self.len
    }
}

/// The receiving half: `T_recv` and our index.
#[derive(Debug)]
pub struct ReceivingKey {
    cipher: Arc<DataCipher>,
    local_index: u32,
}

/// A received message whose session may take it and whose counter is fresh
/// ([`Session::begin_receive`]), waiting for its decryption.
#[derive(Debug)]
pub struct Opening {
    cipher: Arc<DataCipher>,
    counter: u64,
    epoch: u64,
}

impl Opening {
    /// Opens `sealed` (ciphertext || tag) in place; returns the plaintext length (padding
    /// included). Any thread may call it.
    pub fn open(&self, sealed: &mut [u8]) -> Result<usize, DropReason> {
        let body_len = sealed
            .len()
            .checked_sub(TAG_LEN)
            .ok_or(DropReason::Malformed)?;
        let (body, tag) = sealed.split_at_mut(body_len);
        let tag: &[u8; TAG_LEN] = (&*tag).try_into().map_err(|_| DropReason::Malformed)?;
        self.cipher.open(self.counter, body, tag)?;
        Ok(body_len)
    }

    /// The message's counter.
    pub fn counter(&self) -> u64 {
        self.counter
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
                cipher: Arc::new(DataCipher::new(&keys.send)),
                counter: AtomicU64::new(0),
                remote_index: keys.remote_index,
            },
            recv: ReceivingKey {
                cipher: Arc::new(DataCipher::new(&keys.recv)),
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
        let opening = self.begin_receive(now, counter)?;
        let opened = opening.open(sealed);
        self.finish_receive(&opening, opened)
    }

    /// The first third of [`Session::receive`]: whether the session may still take a message at
    /// `now` and `counter` is fresh; the decryption is left to [`Opening::open`].
    pub fn begin_receive(&self, now: Instant, counter: u64) -> Result<Opening, DropReason> {
        if !self.can_receive(now) {
            return Err(DropReason::SessionExpired);
        }
        if !self.replay.check(counter) {
            return Err(DropReason::Replay);
        }
        Ok(Opening {
            cipher: Arc::clone(&self.recv.cipher),
            counter,
            epoch: self.epoch,
        })
    }

    /// The last third: records the counter of a message that authenticated (`opened`, from
    /// [`Opening::open`]), unless it was accepted since [`Session::begin_receive`]. Call in arrival
    /// order, with openings of this session only.
    pub fn finish_receive(
        &mut self,
        opening: &Opening,
        opened: Result<usize, DropReason>,
    ) -> Result<usize, DropReason> {
        if opening.epoch != self.epoch {
            return Err(DropReason::UnknownIndex);
        }
        let n = opened?;
        if !self.replay.accept(opening.counter) {
            return Err(DropReason::Replay);
        }
        Ok(n)
    }
}

#[cfg(test)]
#[path = "session_tests.rs"]
mod tests;
