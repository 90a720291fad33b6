//! Bounded reassembly of MAC-verified fragments (docs/protocol.md §4 step 5): one message at a
//! time per peer, a fixed buffer of [`MAX_MESSAGE`] bytes allocated once, a fragment of another
//! message replaces an incomplete one, and incomplete messages expire.

use std::time::Instant;

use super::constants::{FRAGMENT_PAYLOAD, MAX_MESSAGE, REASSEMBLY_TIMEOUT};
use super::wire::{Header, Kind};

/// The reassembly buffer of one peer.
#[derive(Debug)]
pub struct Reassembly {
    buffer: Vec<u8>,
    current: Option<InProgress>,
}

#[derive(Debug, Clone, Copy)]
struct InProgress {
    kind: Kind,
    exchange_id: u64,
    count: u8,
    received: u8,
    last_len: Option<usize>,
    started: Instant,
}

impl Default for Reassembly {
    fn default() -> Self {
        Self {
            buffer: vec![0; MAX_MESSAGE],
            current: None,
        }
    }
}

impl Reassembly {
    /// Adds a verified fragment; returns the whole body once every fragment is in.
    pub fn push(&mut self, now: Instant, header: &Header, payload: &[u8]) -> Option<&[u8]> {
        self.expire(now);
        let same = self.current.is_some_and(|c| {
            c.kind == header.kind && c.exchange_id == header.exchange_id && c.count == header.count
        });
        if !same {
            self.current = Some(InProgress {
                kind: header.kind,
                exchange_id: header.exchange_id,
                count: header.count,
                received: 0,
                last_len: None,
                started: now,
            });
        }
        let current = self.current.as_mut()?;
        let bit = 1u8 << header.index;
        if current.received & bit != 0 {
            return None; // duplicate fragment
        }
        let offset = usize::from(header.index) * FRAGMENT_PAYLOAD;
        self.buffer
            .get_mut(offset..offset + payload.len())?
            .copy_from_slice(payload);
        current.received |= bit;
        if header.index + 1 == header.count {
            current.last_len = Some(payload.len());
        }
        let all = if current.count == 8 {
            u8::MAX
        } else {
            (1u8 << current.count) - 1
        };
        if current.received != all {
            return None;
        }
        let len = usize::from(current.count - 1) * FRAGMENT_PAYLOAD + current.last_len?;
        self.current = None;
        self.buffer.get(..len)
    }

    /// Drops an incomplete message older than [`REASSEMBLY_TIMEOUT`].
    pub fn expire(&mut self, now: Instant) {
        if self
            .current
            .is_some_and(|c| now.saturating_duration_since(c.started) >= REASSEMBLY_TIMEOUT)
        {
            self.current = None;
        }
    }

    /// When the incomplete message (if any) expires.
    pub fn deadline(&self) -> Option<Instant> {
        self.current.map(|c| c.started + REASSEMBLY_TIMEOUT)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn header(index: u8, count: u8, exchange_id: u64) -> Header {
        Header {
            kind: Kind::Init,
            index,
            count,
            pair_id: [0; 8],
            exchange_id,
        }
    }

    fn message(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i % 251) as u8).collect()
    }

    #[test]
    fn reassembles_in_any_order_and_ignores_duplicates() {
        let now = Instant::now();
        let body = message(3 * FRAGMENT_PAYLOAD + 100);
        let parts: Vec<&[u8]> = body.chunks(FRAGMENT_PAYLOAD).collect();
        let mut r = Reassembly::default();
        for index in [3u8, 1, 1, 0] {
            assert!(
                r.push(now, &header(index, 4, 9), parts[usize::from(index)])
                    .is_none()
            );
        }
        let whole = r
            .push(now, &header(2, 4, 9), parts[2])
            .expect("complete")
            .to_vec();
        assert_eq!(whole, body);
    }

    #[test]
    fn a_new_exchange_replaces_an_incomplete_one_and_old_ones_expire() {
        let now = Instant::now();
        let body = message(2 * FRAGMENT_PAYLOAD);
        let parts: Vec<&[u8]> = body.chunks(FRAGMENT_PAYLOAD).collect();
        let mut r = Reassembly::default();
        assert!(r.push(now, &header(0, 2, 1), parts[0]).is_none());
        assert!(
            r.push(now, &header(1, 2, 2), parts[1]).is_none(),
            "other exchange restarts"
        );
        assert!(
            r.push(now, &header(0, 2, 1), parts[0]).is_none(),
            "and back again"
        );
        let later = now + Duration::from_secs(6);
        assert!(
            r.push(later, &header(1, 2, 1), parts[1]).is_none(),
            "the first half expired"
        );
        assert_eq!(r.deadline(), Some(later + REASSEMBLY_TIMEOUT));
    }

    #[test]
    fn eight_fragments_fill_the_buffer() {
        let now = Instant::now();
        let body = message(MAX_MESSAGE);
        let mut r = Reassembly::default();
        let mut result = None;
        for (i, part) in body.chunks(FRAGMENT_PAYLOAD).enumerate() {
            result = r
                .push(now, &header(i as u8, 8, 5), part)
                .map(<[u8]>::to_vec);
        }
        assert_eq!(result.expect("complete"), body);
    }
}
