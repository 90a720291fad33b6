//! Bounded reassembly of MAC-verified fragments (docs/protocol.md §4 step 5). A MAC proves a
//! fragment came from the peer once, not that it is current: an attacker replays old fragments at
//! will. So each peer has two fixed buffers of [`MAX_MESSAGE`] bytes, allocated once:
//!
//! * the **current** message: one its receiver vouched for — the master's replies to the exchange
//!   in flight, or an Init whose first fragment carried a fresh timestamp. Only a message vouched
//!   for with an equal or later rank (timestamp) takes its place, so replays cannot discard it;
//! * any **other** message, in case its first fragment arrives last: a fragment of yet another
//!   message replaces it. It is handed over as the current one when its first fragment vouches
//!   for it.
//!
//! Both expire [`REASSEMBLY_TIMEOUT`] after their first fragment. An exchange's retransmissions
//! are byte-for-byte copies, so fragments of different transmissions combine.

use std::time::Instant;

use super::constants::{FRAGMENT_PAYLOAD, MAX_MESSAGE, REASSEMBLY_TIMEOUT};
use super::wire::{Header, Kind};

/// What the receiver knows of a fragment's message before it is complete.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Standing {
    /// Proven current; among current messages the greater rank (a timestamp) wins.
    Current([u8; 12]),
    /// Not proven (yet).
    Unproven,
}

/// The reassembly buffers of one peer.
#[derive(Debug, Default)]
pub struct Reassembly {
    current: Buffer,
    other: Buffer,
}

/// One message being reassembled.
#[derive(Debug)]
struct Buffer {
    bytes: Vec<u8>,
    message: Option<InProgress>,
}

#[derive(Debug, Clone, Copy)]
struct InProgress {
    kind: Kind,
    exchange_id: u64,
    count: u8,
    rank: [u8; 12],
    received: u8,
    last_len: Option<usize>,
    started: Instant,
}

impl InProgress {
    fn is(&self, header: &Header) -> bool {
        self.kind == header.kind
            && self.exchange_id == header.exchange_id
            && self.count == header.count
    }
}

impl Default for Buffer {
    fn default() -> Self {
        Self {
            bytes: vec![0; MAX_MESSAGE],
            message: None,
        }
    }
}

impl Buffer {
    fn holds(&self, header: &Header) -> bool {
        self.message.is_some_and(|m| m.is(header))
    }

    fn start(&mut self, now: Instant, header: &Header, rank: [u8; 12]) {
        self.message = Some(InProgress {
            kind: header.kind,
            exchange_id: header.exchange_id,
            count: header.count,
            rank,
            received: 0,
            last_len: None,
            started: now,
        });
    }

    /// Adds a fragment of the message this buffer holds; the whole body once complete.
    fn add(&mut self, header: &Header, payload: &[u8]) -> Option<&[u8]> {
        let message = self.message.as_mut()?;
        let bit = 1u8 << header.index;
        if message.received & bit != 0 {
            return None; // duplicate fragment
        }
        let offset = usize::from(header.index) * FRAGMENT_PAYLOAD;
        self.bytes
            .get_mut(offset..offset + payload.len())?
            .copy_from_slice(payload);
        message.received |= bit;
        if header.index + 1 == header.count {
            message.last_len = Some(payload.len());
        }
        let all = if message.count == 8 {
            u8::MAX
        } else {
            (1u8 << message.count) - 1
        };
        if message.received != all {
            return None;
        }
        let len = usize::from(message.count - 1) * FRAGMENT_PAYLOAD + message.last_len?;
        self.message = None;
        self.bytes.get(..len)
    }

    fn expire(&mut self, now: Instant) {
        if self
            .message
            .is_some_and(|m| now.saturating_duration_since(m.started) >= REASSEMBLY_TIMEOUT)
        {
            self.message = None;
        }
    }

    fn deadline(&self) -> Option<Instant> {
        self.message.map(|m| m.started + REASSEMBLY_TIMEOUT)
    }
}

impl Reassembly {
    /// Adds a MAC-verified fragment of standing `standing`; returns the whole body once every
    /// fragment is in.
    pub fn push(
        &mut self,
        now: Instant,
        header: &Header,
        payload: &[u8],
        standing: Standing,
    ) -> Option<&[u8]> {
        self.expire(now);
        if self.current.holds(header) {
            return self.current.add(header, payload);
        }
        match standing {
            Standing::Current(rank) if self.current.message.is_none_or(|m| rank >= m.rank) => {
                if self.other.holds(header) {
                    std::mem::swap(&mut self.current, &mut self.other);
                    if let Some(m) = self.current.message.as_mut() {
                        m.rank = rank;
                    }
                } else {
                    self.current.start(now, header, rank);
                }
                self.other.message = None;
                self.current.add(header, payload)
            }
            _ => {
                if !self.other.holds(header) {
                    self.other.start(now, header, [0; 12]);
                }
                self.other.add(header, payload)
            }
        }
    }

    /// Drops incomplete messages older than [`REASSEMBLY_TIMEOUT`].
    pub fn expire(&mut self, now: Instant) {
        self.current.expire(now);
        self.other.expire(now);
    }

    /// When the next incomplete message (if any) expires.
    pub fn deadline(&self) -> Option<Instant> {
        [self.current.deadline(), self.other.deadline()]
            .into_iter()
            .flatten()
            .min()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(index: u8, count: u8, exchange_id: u64) -> Header {
        Header {
            kind: Kind::Init,
            index,
            count,
            pair_id: [0; 8],
            exchange_id,
        }
    }

    fn message(len: usize, seed: u8) -> Vec<u8> {
        (0..len).map(|i| (i % 251) as u8 ^ seed).collect()
    }

    fn rank(n: u8) -> Standing {
        Standing::Current([n; 12])
    }

    /// Pushes fragments `(index, exchange, standing)` of 4-fragment messages whose bodies are
    /// `message(.., exchange)`; returns the completed bodies' exchange seeds.
    fn feed(r: &mut Reassembly, now: Instant, steps: &[(u8, u8, Standing)]) -> Vec<u8> {
        let mut done = Vec::new();
        for &(index, exchange, standing) in steps {
            let body = message(3 * FRAGMENT_PAYLOAD + 100, exchange);
            let part = body.chunks(FRAGMENT_PAYLOAD).nth(usize::from(index));
            let part = part.expect("four fragments");
            let h = header(index, 4, u64::from(exchange));
            if let Some(whole) = r.push(now, &h, part, standing) {
                assert_eq!(whole, body, "exchange {exchange} reassembled intact");
                done.push(exchange);
            }
        }
        done
    }

    #[test]
    fn reassembles_in_any_order_and_ignores_duplicates() {
        let now = Instant::now();
        let mut r = Reassembly::default();
        let u = Standing::Unproven;
        let steps = [(3, 9, u), (1, 9, u), (1, 9, u), (0, 9, rank(1)), (2, 9, u)];
        assert_eq!(feed(&mut r, now, &steps), vec![9]);
        assert_eq!(r.deadline(), None, "nothing left");
    }

    #[test]
    fn replayed_fragments_do_not_discard_the_current_message() {
        let now = Instant::now();
        let mut r = Reassembly::default();
        let u = Standing::Unproven;
        let steps = [
            (0, 1, rank(5)),
            (1, 1, u),
            // Replays: other exchanges' fragments, and the first fragment of an older Init
            // (the cached exchange, vouched for with a smaller rank).
            (1, 2, u),
            (2, 3, u),
            (0, 4, rank(4)),
            (3, 4, u),
            (2, 1, u),
            (3, 1, u),
        ];
        assert_eq!(feed(&mut r, now, &steps), vec![1]);
    }

    #[test]
    fn a_newer_current_message_replaces_the_old_and_unproven_ones_expire() {
        let now = Instant::now();
        let mut r = Reassembly::default();
        let u = Standing::Unproven;
        assert!(feed(&mut r, now, &[(0, 1, rank(1)), (1, 1, u), (1, 6, u)]).is_empty());
        // A newer exchange (its fragments came first) supersedes exchange 1.
        let steps = [
            (1, 2, u),
            (2, 2, u),
            (3, 2, u),
            (0, 2, rank(2)),
            (2, 1, u),
            (3, 1, u),
        ];
        assert_eq!(feed(&mut r, now, &steps), vec![2]);
        let later = now + REASSEMBLY_TIMEOUT;
        assert!(feed(&mut r, later, &[(1, 7, u)]).is_empty());
        assert_eq!(
            r.deadline(),
            Some(later + REASSEMBLY_TIMEOUT),
            "the rest expired"
        );
        assert!(feed(&mut r, later, &[(0, 1, u), (2, 1, u), (3, 1, u)]).is_empty());
    }

    #[test]
    fn eight_fragments_fill_the_buffer() {
        let now = Instant::now();
        let body = message(MAX_MESSAGE, 0);
        let mut r = Reassembly::default();
        let mut result = None;
        for (i, part) in body.chunks(FRAGMENT_PAYLOAD).enumerate() {
            let h = header(i as u8, 8, 5);
            result = r.push(now, &h, part, rank(1)).map(<[u8]>::to_vec);
        }
        assert_eq!(result.expect("complete"), body);
    }
}
