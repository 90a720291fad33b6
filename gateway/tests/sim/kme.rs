//! Simulated KMEs with ETSI GS QKD 014 semantics: one KME per site, linked to every other; a key the
//! master's KME hands out (`enc_keys`, §5.2) waits in the pair's pool for the slave's SAE and is
//! served exactly once by the slave's KME (`dec_keys`, §5.3), then gone. Faults: a KME can be down
//! (503), answers take a random latency, a slave's KME can hand out wrong bytes for the right
//! key ID (a broken link: the exchange must refuse it at key confirmation), and the KMEs can lose
//! every key not yet served (a restart without persistent storage, or a resynchronisation), and
//! one of a site's KMEs (one QKD path of a peer with two sources) can be down alone.
//!
//! A master's `Fetch` is served as the daemon serves it: from a prefetch buffer of keys the master
//! fetched earlier, in batches (`qkd_link::Prefetcher`), when [`Kmes::prefetch`] is set; a
//! `Fetch` that says the buffered keys are suspect empties the buffer first. With
//! [`Kmes::max_in_flight`] set, a site's requests queue as behind the daemon's `FetchGate`
//! (docs/gateway-decisions.md §11): at most that many answered at a time, the rest wait.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::time::{Duration, Instant};

use gateway::hybrid::{QkdFailure, QkdResult};
use gateway::node::testing::Site;
use gateway::node::{KmeId, KmeOp, KmeReply, KmeRequest, Prefetched};
use keymix::{KeyId, QkdMaterial, SecretVec};
use qkd_link::SaeId;

use super::dice::Dice;

/// Every site's KME.
#[derive(Debug)]
pub struct Kmes {
    /// Keys handed to a master and not yet served to its slave: (master SAE, slave SAE) → key ID →
    /// bytes.
    pools: BTreeMap<(SaeId, SaeId), BTreeMap<KeyId, Vec<u8>>>,
    /// Sites whose KME is down.
    pub down: BTreeSet<u16>,
    /// One path down: a site's requests to one of its KMEs fail (docs/protocol.md §6.3).
    pub down_paths: BTreeSet<(u16, KmeId)>,
    /// Latency of every answer.
    pub latency: (Duration, Duration),
    /// Probability that a `dec_keys` answer carries wrong bytes.
    pub wrong_keys: f64,
    /// Keys handed out by `enc_keys`.
    pub issued: u64,
    /// Keys served by `dec_keys` (each at most once).
    pub served: u64,
    /// The master side's prefetch batch (0: every `Fetch` is an `enc_keys` of its own).
    pub prefetch: usize,
    /// Keys a master holds in its prefetch buffer: (master SAE, slave SAE) → keys, oldest first.
    buffered: BTreeMap<(SaeId, SaeId), VecDeque<QkdMaterial>>,
    /// Requests a site's KME works on at once at most (0: no limit).
    pub max_in_flight: usize,
    /// When each site's busy request slots free up.
    slots: BTreeMap<u16, Vec<Instant>>,
    /// Every request as its KME took it up: when, and which site asked.
    pub asked: Vec<(Instant, u16)>,
}

impl Kmes {
    /// Healthy KMEs answering in 1 ms.
    pub fn new() -> Self {
        Self {
            pools: BTreeMap::new(),
            down: BTreeSet::new(),
            down_paths: BTreeSet::new(),
            latency: (Duration::from_millis(1), Duration::from_millis(1)),
            wrong_keys: 0.0,
            issued: 0,
            served: 0,
            prefetch: 0,
            buffered: BTreeMap::new(),
            max_in_flight: 0,
            slots: BTreeMap::new(),
            asked: Vec::new(),
        }
    }

    /// The KMEs lose every key not yet served (both ends); the masters' prefetch buffers, which
    /// are in the gateways' memory, keep theirs.
    pub fn lose_keys(&mut self) {
        self.pools.clear();
    }

    /// `site`'s KME answers `request` (issued at `now`): the reply and when it arrives.
    pub fn answer(
        &mut self,
        now: Instant,
        dice: &mut Dice,
        site: Site,
        request: &KmeRequest,
    ) -> (Instant, KmeReply) {
        let latency = dice.duration(self.latency.0, self.latency.1);
        let start = self.take_slot(now, site, latency);
        self.asked.push((start, site.0));
        let at = start + latency;
        let down = self.down_paths.contains(&(site.0, request.kme));
        let result = if down || self.down.contains(&site.0) {
            Err(QkdFailure::Unavailable)
        } else {
            match &request.op {
                KmeOp::Fetch { slave, prefetched } => {
                    Ok(self.fetch(dice, site.sae(), slave.clone(), *prefetched))
                }
                KmeOp::Resolve { master, key_ids } => {
                    self.dec_keys(dice, master.clone(), site.sae(), key_ids)
                }
            }
        };
        (at, request.reply(result))
    }

    /// When `site`'s KME takes up a request made at `now` that keeps it busy for `latency`: at
    /// once, or when the first of its [`Kmes::max_in_flight`] busy slots frees up.
    fn take_slot(&mut self, now: Instant, site: Site, latency: Duration) -> Instant {
        if self.max_in_flight == 0 {
            return now;
        }
        let slots = (self.slots.entry(site.0)).or_insert_with(|| vec![now; self.max_in_flight]);
        let Some(slot) = slots.iter_mut().min() else {
            return now;
        };
        let start = now.max(*slot);
        *slot = start + latency;
        start
    }

    /// A master's key: the oldest buffered one, the buffer refilled by a batch when empty.
    fn fetch(
        &mut self,
        dice: &mut Dice,
        master: SaeId,
        slave: SaeId,
        prefetched: Prefetched,
    ) -> QkdMaterial {
        if self.prefetch == 0 {
            return self.enc_keys(dice, master, slave);
        }
        let pair = (master.clone(), slave.clone());
        if prefetched == Prefetched::Discard {
            self.buffered.remove(&pair);
        }
        if self.buffered.get(&pair).is_none_or(VecDeque::is_empty) {
            let batch = (0..self.prefetch)
                .map(|_| self.enc_keys(dice, master.clone(), slave.clone()))
                .collect();
            self.buffered.insert(pair.clone(), batch);
        }
        (self.buffered.get_mut(&pair).and_then(VecDeque::pop_front))
            .unwrap_or_else(|| unreachable!("refilled above"))
    }

    fn enc_keys(&mut self, dice: &mut Dice, master: SaeId, slave: SaeId) -> QkdMaterial {
        let mut raw = [0u8; 16];
        raw[..8].copy_from_slice(&dice.u64().to_le_bytes());
        raw[8..].copy_from_slice(&dice.u64().to_le_bytes());
        let id = KeyId::from_random_bytes(raw);
        let key: Vec<u8> = (0..4).flat_map(|_| dice.u64().to_le_bytes()).collect();
        self.pools
            .entry((master, slave))
            .or_default()
            .insert(id, key.clone());
        self.issued += 1;
        QkdMaterial::new(vec![id], SecretVec::new(key)).unwrap_or_else(|e| panic!("{e}"))
    }

    fn dec_keys(
        &mut self,
        dice: &mut Dice,
        master: SaeId,
        slave: SaeId,
        ids: &[KeyId],
    ) -> QkdResult {
        let pool = self.pools.entry((master, slave)).or_default();
        // ETSI 014: all or nothing; a key is served once.
        if ids.iter().any(|id| !pool.contains_key(id)) {
            return Err(QkdFailure::NotFound);
        }
        let mut bytes = Vec::new();
        for id in ids {
            bytes.extend(pool.remove(id).unwrap_or_default());
        }
        self.served += ids.len() as u64;
        if dice.chance(self.wrong_keys) {
            bytes[0] ^= 1;
        }
        QkdMaterial::new(ids.to_vec(), SecretVec::new(bytes)).map_err(|_| QkdFailure::NotFound)
    }
}
