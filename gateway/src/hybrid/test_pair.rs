//! The hybrid tests' harness: two hybrid peers on a simulated clock with an in-memory KME pair
//! (a key handed to the master is resolvable once at the slave), the node's part played by hand
//! (parse the header, deliver the fragment, answer KME requests, record PSKs and events).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use keymix::mldsa::SigningKey;
use keymix::{KeyId, QkdMaterial, Secret, SecretVec};
use x25519_dalek::{PublicKey, StaticSecret};

use super::constants::MAX_DATAGRAM;
use super::*;
use crate::proto::crypto::SeededEntropy;
use crate::proto::psk::PskId;
use crate::proto::tai64n::WallClock;

/// Two KMEs joined by a link: keys handed to the master are resolvable once at the slave.
#[derive(Default)]
pub(super) struct Kme {
    pub(super) keys: HashMap<KeyId, Vec<u8>>,
    pub(super) next: u32,
    pub(super) master_down: bool,
    pub(super) slave_down: bool,
    /// The slave's KME serves other bytes than the master's for the next key resolved.
    pub(super) corrupt_next: bool,
    /// Sources whose KME (or relay path) is down at the master's side.
    pub(super) master_down_at: Vec<SourceIndex>,
    /// Sources whose KME (or relay path) is down at the slave's side.
    pub(super) slave_down_at: Vec<SourceIndex>,
}

impl Kme {
    pub(super) fn fetch(&mut self) -> QkdResult {
        if self.master_down {
            return Err(QkdFailure::Unavailable);
        }
        self.next += 1;
        let mut raw = [0u8; 16];
        raw[..4].copy_from_slice(&self.next.to_le_bytes());
        let id = KeyId::from_random_bytes(raw);
        let key: Vec<u8> = (0..32).map(|i| (i as u8) ^ (self.next as u8)).collect();
        self.keys.insert(id, key.clone());
        Ok(QkdMaterial::new(vec![id], SecretVec::new(key)).expect("valid"))
    }

    pub(super) fn resolve(&mut self, ids: &[KeyId]) -> QkdResult {
        if self.slave_down {
            return Err(QkdFailure::Unavailable);
        }
        let mut key = self.keys.remove(&ids[0]).ok_or(QkdFailure::NotFound)?;
        if std::mem::take(&mut self.corrupt_next) {
            key[0] ^= 1;
        }
        Ok(QkdMaterial::new(ids.to_vec(), SecretVec::new(key)).expect("valid"))
    }
}

#[derive(Default)]
pub(super) struct Seen {
    /// PSK bytes installed, in order.
    pub(super) psks: Vec<[u8; 32]>,
    /// The id of the last PSK installed.
    pub(super) last_psk: Option<PskId>,
    pub(super) events: Vec<HybridEvent>,
    pub(super) sent: Vec<Vec<u8>>,
}

/// Decides whether to lose a datagram (`true` = master → slave direction).
pub(super) type LossFilter = Box<dyn FnMut(bool, &[u8]) -> bool>;

pub(super) struct Pair {
    pub(super) now: Instant,
    /// The sites' wall clock (the same at both, and for peers built later).
    pub(super) clock: WallClock,
    pub(super) master: HybridPeer,
    pub(super) slave: HybridPeer,
    pub(super) kme: Kme,
    pub(super) at_master: Seen,
    pub(super) at_slave: Seen,
    /// Drops datagrams for which this returns true (direction: true = master → slave).
    pub(super) lose: LossFilter,
    /// Whether the slave's WireGuard layer reports confirmation (no traffic: it does not).
    pub(super) slave_confirms: bool,
}

pub(super) fn static_key(byte: u8) -> StaticSecret {
    StaticSecret::from([byte; 32])
}

/// What the node does with a hybrid datagram: parse the header, then hand the fragment over.
pub(super) fn deliver(
    peer: &mut HybridPeer,
    now: Instant,
    datagram: &[u8],
) -> Result<Progress, HybridDrop> {
    let fragment = wire::parse(datagram)?;
    peer.handle_fragment(now, &fragment)
}

/// The two peers, created at `now`; both wall clocks read `clock`.
pub(super) fn build(
    now: Instant,
    clock: WallClock,
    policy: QkdPolicy,
    slave_sees_master_key: u8,
) -> (HybridPeer, HybridPeer) {
    let (a, b) = (static_key(1), static_key(2));
    let (a_pub, b_pub) = (
        PublicKey::from(&a).to_bytes(),
        PublicKey::from(&b).to_bytes(),
    );
    let sk_a = Arc::new(SigningKey::from_seed(Secret::new([0xA; 32])));
    let sk_b = Arc::new(SigningKey::from_seed(Secret::new([0xB; 32])));
    let claimed_a = SigningKey::from_seed(Secret::new([slave_sees_master_key; 32]));
    let master_id = identity(&a_pub, sk_a.verifying_key());
    let slave_id = identity(&b_pub, sk_b.verifying_key());
    let settings = |role| HybridSettings {
        role,
        policy,
        rekey_after: Duration::from_secs(5),
    };
    let master = HybridPeer::new(
        now,
        settings(Role::Master),
        PeerKeys {
            signing: sk_a.clone(),
            peer_verifying: sk_b.verifying_key().clone(),
            pair: PairKeys::derive(&a, &b_pub).expect("valid"),
            master: master_id.clone(),
            slave: slave_id.clone(),
            genesis_psk: None,
        },
        clock,
        Box::new(SeededEntropy::new(1)),
    );
    let slave = HybridPeer::new(
        now,
        settings(Role::Slave),
        PeerKeys {
            signing: sk_b,
            peer_verifying: claimed_a.verifying_key().clone(),
            pair: PairKeys::derive(&b, &a_pub).expect("valid"),
            master: master_id,
            slave: slave_id,
            genesis_psk: None,
        },
        clock,
        Box::new(SeededEntropy::new(2)),
    );
    (master, slave)
}

/// Everything one peer hands back, delivered: datagrams to the other side (unless lost), KME
/// requests answered at once, PSKs recorded (and confirmed if `confirms`). Returns whether
/// anything happened.
fn drain(
    now: Instant,
    from: &mut HybridPeer,
    seen: &mut Seen,
    to: &mut HybridPeer,
    kme: &mut Kme,
    lose: &mut dyn FnMut(&[u8]) -> bool,
    confirms: bool,
) -> bool {
    let mut progressed = false;
    let mut buf = [0u8; MAX_DATAGRAM];
    while let Some(len) = from.poll_transmit(&mut buf) {
        progressed = true;
        let d = &buf[..len];
        seen.sent.push(d.to_vec());
        if !lose(d) {
            let _ = deliver(to, now, d);
        }
    }
    while let Some(request) = from.poll_qkd_request() {
        progressed = true;
        let result = match request.op {
            QkdOp::Fetch { .. } if kme.master_down_at.contains(&request.source) => {
                Err(QkdFailure::Unavailable)
            }
            QkdOp::Resolve { .. } if kme.slave_down_at.contains(&request.source) => {
                Err(QkdFailure::Unavailable)
            }
            QkdOp::Fetch { .. } => kme.fetch(),
            QkdOp::Resolve { key_ids } => kme.resolve(&key_ids),
        };
        from.handle_qkd_result(now, request.id, result);
    }
    while let Some(install) = from.poll_psk() {
        progressed = true;
        seen.psks.push(*install.psk.psk.expose());
        seen.last_psk = Some(install.psk.id);
        if confirms {
            // A working WireGuard layer confirms the session right after the handshake.
            from.on_session_confirmed(install.psk.id);
        }
    }
    while let Some(e) = from.poll_event() {
        progressed = true;
        seen.events.push(e);
    }
    progressed
}

impl Pair {
    pub(super) fn new(policy: QkdPolicy) -> Self {
        Self::with_master_key(policy, 0xA)
    }

    /// A pair whose master and slave list QKD sources `master` and `slave` (§6.3).
    pub(super) fn with_sources(policy: QkdPolicy, master: QkdSources, slave: QkdSources) -> Self {
        let mut pair = Self::new(policy);
        let (m, s) = build(pair.now, pair.clock, policy, 0xA);
        pair.master = m.with_qkd_sources(master);
        pair.slave = s.with_qkd_sources(slave);
        pair
    }

    pub(super) fn with_master_key(policy: QkdPolicy, key: u8) -> Self {
        let now = Instant::now();
        let clock = WallClock::new(now, Duration::from_secs(1_800_000_000));
        let (master, slave) = build(now, clock, policy, key);
        Self {
            now,
            clock,
            master,
            slave,
            kme: Kme::default(),
            at_master: Seen::default(),
            at_slave: Seen::default(),
            lose: Box::new(|_, _| false),
            slave_confirms: true,
        }
    }

    /// Runs both peers until nothing is left to do at `now`.
    pub(super) fn settle(&mut self) {
        for _ in 0..100 {
            let lose = &mut self.lose;
            let m = drain(
                self.now,
                &mut self.master,
                &mut self.at_master,
                &mut self.slave,
                &mut self.kme,
                &mut |d| lose(true, d),
                true,
            );
            let s = drain(
                self.now,
                &mut self.slave,
                &mut self.at_slave,
                &mut self.master,
                &mut self.kme,
                &mut |d| lose(false, d),
                self.slave_confirms,
            );
            if !(m || s) {
                return;
            }
        }
        panic!("the peers never settled");
    }

    /// Advances the clock to the next deadline (bounded) and runs timers.
    pub(super) fn step(&mut self, limit: Instant) -> bool {
        let next = [self.master.poll_timeout(), self.slave.poll_timeout()]
            .into_iter()
            .flatten()
            .min();
        match next {
            Some(t) if t <= limit => {
                self.now = self.now.max(t);
                self.master.handle_timeout(self.now);
                self.slave.handle_timeout(self.now);
                self.settle();
                true
            }
            _ => {
                self.now = limit;
                false
            }
        }
    }

    pub(super) fn run_for(&mut self, duration: Duration) {
        let limit = self.now + duration;
        self.settle();
        for _ in 0..10_000 {
            if !self.step(limit) {
                return;
            }
        }
        panic!("too many steps");
    }

    /// WireGuard confirms the last installed epoch at both sides at once (as traffic would).
    pub(super) fn confirm_all(&mut self) {
        if let Some(id) = self.at_master.last_psk {
            self.master.on_session_confirmed(id);
        }
        if let Some(id) = self.at_slave.last_psk {
            self.slave.on_session_confirmed(id);
        }
    }
}

pub(super) fn epochs_installed(seen: &Seen) -> Vec<EpochInfo> {
    seen.events
        .iter()
        .filter_map(|e| match e {
            HybridEvent::EpochInstalled(info) => Some(info.clone()),
            _ => None,
        })
        .collect()
}
