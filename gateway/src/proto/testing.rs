//! Test harness: two in-memory peers with a simulated clock, wired together by a minimal
//! interface (mac1, cookies under load, handshake dispatch, transport), so whole protocol runs are
//! tested deterministically without sockets or sleeping (STYLE.md practice 14).
#![allow(clippy::unwrap_used)]

use std::collections::HashSet;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use zerocopy::FromBytes;

use crate::error::DropReason;
use crate::proto::cookie::{CookieChecker, verify_mac1};
use crate::proto::crypto::Entropy;
use crate::proto::crypto::SeededEntropy;
use crate::proto::handshake::open_initiation;
use crate::proto::handshake::{RemoteKeys, StaticKeys};
use crate::proto::messages::{CookieReply, Message};
use crate::proto::peer::{Ctx, Event, IndexTable, Peer};
use crate::proto::psk::Keying;
use crate::proto::secret::Secret;
use crate::proto::tai64n::WallClock;

/// An index table that also checks every release matches an allocation.
#[derive(Default)]
pub(crate) struct Indices {
    pub(crate) used: HashSet<u32>,
}

impl IndexTable for Indices {
    fn allocate(&mut self, rng: &mut dyn Entropy) -> u32 {
        let i = rng.next_u32();
        assert!(self.used.insert(i), "seeded draws do not collide");
        i
    }
    fn release(&mut self, index: u32) {
        assert!(
            self.used.remove(&index),
            "released index {index} twice or never allocated"
        );
    }
}

pub(crate) struct Side {
    pub(crate) keys: StaticKeys,
    pub(crate) clock: WallClock,
    pub(crate) rng: SeededEntropy,
    pub(crate) idx: Indices,
    pub(crate) peer: Peer,
    pub(crate) addr: SocketAddr,
    /// Responder under load: require mac2, answer with cookie replies.
    pub(crate) under_load: bool,
    pub(crate) checker: CookieChecker,
    pub(crate) delivered: Vec<Vec<u8>>,
    pub(crate) drops: Vec<DropReason>,
}

impl Side {
    pub(crate) fn cx(&mut self) -> (Ctx<'_>, &mut Peer) {
        let cx = Ctx {
            keys: &self.keys,
            clock: &self.clock,
            rng: &mut self.rng,
            indices: &mut self.idx,
        };
        (cx, &mut self.peer)
    }

    /// Runs the timers due at `now`, then takes the next datagram to send.
    pub(crate) fn poll(&mut self, now: Instant) -> Option<(Vec<u8>, SocketAddr)> {
        let mut out = [0u8; 256];
        if self.peer.poll_timeout().is_some_and(|t| t <= now) {
            self.peer.handle_timeout(now, &mut self.idx);
        }
        let (mut cx, peer) = self.cx();
        let t = peer.poll_transmit(now, &mut cx, &mut out)?;
        Some((out[..t.len].to_vec(), t.to))
    }

    pub(crate) fn send(&mut self, now: Instant, payload: &[u8]) -> Result<Vec<u8>, DropReason> {
        let mut buf = vec![0u8; payload.len() + 64];
        buf[16..16 + payload.len()].copy_from_slice(payload);
        let t = self.peer.encapsulate(now, &mut buf, payload.len())?;
        Ok(buf[..t.len].to_vec())
    }

    /// What the interface does with a datagram: returns a datagram to send back, if any.
    pub(crate) fn receive(
        &mut self,
        now: Instant,
        from: SocketAddr,
        mut dgram: Vec<u8>,
    ) -> Option<Vec<u8>> {
        let r = self.receive_inner(now, from, &mut dgram);
        r.unwrap_or_else(|e| {
            self.drops.push(e);
            None
        })
    }

    fn receive_inner(
        &mut self,
        now: Instant,
        from: SocketAddr,
        dgram: &mut [u8],
    ) -> Result<Option<Vec<u8>>, DropReason> {
        let mut out = [0u8; 256];
        match Message::parse(dgram)? {
            Message::Initiation(m) => {
                verify_mac1(m, &self.keys.mac1_key)?;
                if self.under_load
                    && self
                        .checker
                        .verify_mac2(now, &mut self.rng, m, from)
                        .is_err()
                {
                    let reply = CookieReply::mut_from_bytes(&mut out[..64]).unwrap();
                    self.checker.reply(now, &mut self.rng, m, from, reply);
                    return Ok(Some(out[..64].to_vec()));
                }
                let opened = open_initiation(&self.keys, m)?;
                if opened.initiator_static() != self.peer.public_key() {
                    return Err(DropReason::UnknownPeer);
                }
                let received = opened.finish(self.peer.remote_keys())?;
                let (mut cx, peer) = self.cx();
                peer.handle_initiation(now, received, from, &mut cx)?;
                let t = peer.poll_transmit(now, &mut cx, &mut out);
                Ok(t.map(|t| out[..t.len].to_vec()))
            }
            Message::Response(m) => {
                verify_mac1(m, &self.keys.mac1_key)?;
                let (mut cx, peer) = self.cx();
                peer.handle_response(now, m, from, &mut cx)?;
                Ok(None)
            }
            Message::CookieReply(m) => {
                self.peer.handle_cookie_reply(now, m)?;
                Ok(None)
            }
            Message::Transport(h, _) => {
                let (receiver, counter) = (h.receiver.get(), h.counter.get());
                let (cx, peer) = self.cx();
                let n =
                    peer.decapsulate(now, receiver, counter, &mut dgram[16..], from, cx.indices)?;
                if n > 0 {
                    // Test payloads are not IP packets: strip the zero padding (§5.4.6) here.
                    let plain = &dgram[16..16 + n];
                    let end = plain.iter().rposition(|&x| x != 0).map_or(0, |i| i + 1);
                    self.delivered.push(plain[..end].to_vec());
                }
                Ok(None)
            }
        }
    }
}

pub(crate) fn side(seed: u8, other: &StaticKeys, addr: &str, t0: Instant, keying: Keying) -> Side {
    let keys = StaticKeys::new(Secret::new([seed; 32]));
    let remote = RemoteKeys::new(&keys, *other.public()).unwrap();
    let checker = CookieChecker::new(keys.cookie_key);
    Side {
        keys,
        clock: WallClock::new(t0, Duration::from_secs(1_750_000_000)),
        rng: SeededEntropy::new(u64::from(seed)),
        idx: Indices::default(),
        peer: Peer::new(remote, keying, 1420, None),
        addr: addr.parse().unwrap(),
        under_load: false,
        checker,
        delivered: Vec::new(),
        drops: Vec::new(),
    }
}

/// Two plain peers (no PSK).
pub(crate) fn pair(t0: Instant) -> (Side, Side) {
    keyed_pair(t0, Keying::default(), Keying::default())
}

/// Two peers keyed as given (plain, or the two roles of a hybrid pair).
pub(crate) fn keyed_pair(t0: Instant, a_keying: Keying, b_keying: Keying) -> (Side, Side) {
    let ka = StaticKeys::new(Secret::new([0xA1; 32]));
    let kb = StaticKeys::new(Secret::new([0xB2; 32]));
    let mut a = side(0xA1, &kb, "192.0.2.1:51820", t0, a_keying);
    let mut b = side(0xB2, &ka, "192.0.2.2:51820", t0, b_keying);
    a.peer.set_endpoint(b.addr);
    b.peer.set_endpoint(a.addr);
    (a, b)
}

/// Exchanges everything both sides want to send at `now`, delivering replies (bounded).
pub(crate) fn settle(a: &mut Side, b: &mut Side, now: Instant) -> usize {
    let mut moved = 0;
    for _ in 0..20 {
        let mut progress = false;
        for flip in [false, true] {
            let (x, y) = if flip {
                (&mut *b, &mut *a)
            } else {
                (&mut *a, &mut *b)
            };
            if let Some((d, _)) = x.poll(now) {
                progress = true;
                moved += 1;
                if let Some(reply) = y.receive(now, x.addr, d) {
                    moved += 1;
                    if let Some(back) = x.receive(now, y.addr, reply) {
                        moved += 1;
                        y.receive(now, x.addr, back);
                    }
                }
            }
        }
        if !progress {
            return moved;
        }
    }
    panic!("peers did not settle");
}

/// A initiates and both sides settle: a confirmed session in both directions.
pub(crate) fn connect(a: &mut Side, b: &mut Side, now: Instant) {
    a.peer.want_handshake(now);
    settle(a, b, now);
    assert!(
        a.peer.has_usable_session(now) && b.peer.has_usable_session(now),
        "{:?} {:?}",
        a.drops,
        b.drops
    );
}

pub(crate) fn events(s: &mut Side) -> Vec<Event> {
    std::iter::from_fn(|| s.peer.poll_event()).collect()
}

/// A sends one packet to B, through the handshake if needed.
pub(crate) fn a_to_b(a: &mut Side, b: &mut Side, now: Instant, payload: &[u8]) {
    match a.send(now, payload) {
        Ok(d) => assert!(b.receive(now, a.addr, d).is_none()),
        Err(DropReason::NoSession) => {
            settle(a, b, now);
            let d = a.send(now, payload).unwrap();
            b.receive(now, a.addr, d);
        }
        Err(e) => panic!("{e}"),
    }
}
