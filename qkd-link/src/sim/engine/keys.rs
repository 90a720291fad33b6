//! Get key (§5.3) and Get key with key IDs (§5.4) on the engine: request checks with the spec's
//! messages, all-or-nothing issuing from the link store (or, for a relayed key, from every link
//! of its route), exactly-once delivery to named slaves.

use std::collections::HashSet;
use std::time::Instant;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde_json::json;
use zeroize::Zeroizing;

use super::network::{MAX_TRANSIT_WAIT, Need, Route};
use super::{Engine, PendingKey, Reply};
use crate::api::{KeyContainerOut, KeyOut, KeyRequest, msg};
use crate::ids::{KeyId, SaeId};

impl Engine {
    fn check_key_request(
        &self,
        caller: &SaeId,
        slave: &SaeId,
        peer_kme: usize,
        req: &KeyRequest,
    ) -> Result<(u32, u32, Vec<SaeId>), Reply> {
        let l = &self.limits;
        let number = req.number.unwrap_or(1);
        if number == 0 {
            return Err(Reply::error(400, "number must be at least 1"));
        }
        if number > l.max_key_per_request {
            return Err(Reply::error(
                400,
                format!(
                    "number {number} exceeds max_key_per_request {}",
                    l.max_key_per_request
                ),
            ));
        }
        let size = req.size.unwrap_or(l.key_size);
        if !size.is_multiple_of(8) {
            return Err(Reply::error(400, msg::SIZE_MULTIPLE_OF_8));
        }
        if !(l.min_key_size..=l.max_key_size).contains(&size) {
            return Err(Reply::error(
                400,
                format!(
                    "size {size} is outside min_key_size {} to max_key_size {}",
                    l.min_key_size, l.max_key_size
                ),
            ));
        }
        if !req.extension_mandatory.is_empty() {
            let details = req
                .extension_mandatory
                .iter()
                .flat_map(|m| m.keys())
                .map(|name| json!({ "extension_mandatory_unsupported": format!("{name} is not supported") }))
                .collect();
            return Err(Reply::error_details(
                400,
                msg::EXT_MANDATORY_UNSUPPORTED,
                details,
            ));
        }
        let extra = &req.additional_slave_sae_ids;
        if extra.len() > l.max_sae_id_count as usize {
            return Err(Reply::error(
                400,
                format!(
                    "additional_slave_SAE_IDs has {} entries; max_SAE_ID_count is {}",
                    extra.len(),
                    l.max_sae_id_count
                ),
            ));
        }
        let mut slaves = vec![slave.clone()];
        for s in extra {
            let id = SaeId::new(s.as_str())
                .map_err(|e| Reply::error(400, format!("additional_slave_SAE_IDs: {e}")))?;
            if id == *caller || slaves.contains(&id) || self.home.get(&id) != Some(&peer_kme) {
                return Err(Reply::error(
                    400,
                    format!(
                        "additional slave {id} must be a distinct SAE served by {}",
                        self.kmes[peer_kme].id
                    ),
                ));
            }
            slaves.push(id);
        }
        Ok((number, size, slaves))
    }

    pub(super) fn enc_keys(
        &mut self,
        now: Instant,
        kme: usize,
        caller: &SaeId,
        slave: &SaeId,
        req: &KeyRequest,
    ) -> Reply {
        let peer_kme = match self.route_to_peer(kme, caller, slave, "slave_SAE_ID") {
            Ok(r) => r,
            Err(reply) => return reply,
        };
        let (number, size, slaves) = match self.check_key_request(caller, slave, peer_kme, req) {
            Ok(v) => v,
            Err(reply) => return reply,
        };
        self.advance_links(now);
        let total = u64::from(number) * u64::from(size);
        let Some(route) = self.route(kme, peer_kme, Need::Bits(total)) else {
            return self.no_key_reply(kme, peer_kme, total);
        };
        // Draw every ID and key before touching the store, so an entropy failure consumes nothing.
        let mut fresh = Vec::with_capacity(number as usize);
        for _ in 0..number {
            match self.draw_key(size as usize / 8, &fresh) {
                Some(k) => fresh.push(k),
                None => return Reply::error(503, "entropy source failed"),
            }
        }
        if !self.spend_route(&route, total, number) {
            return Reply::error(503, "not enough key material");
        }
        let holding = route.links.last().copied();
        let available_at = now + self.transit(&route);
        let encoded: Vec<(KeyId, Zeroizing<String>)> = fresh
            .iter()
            .map(|(id, secret)| (*id, Zeroizing::new(STANDARD.encode(&secret[..]))))
            .collect();
        let reply = container_reply(&encoded);
        for (id, secret) in fresh {
            self.pending.insert(
                id,
                PendingKey {
                    link: holding,
                    available_at,
                    master: caller.clone(),
                    slave_kme: peer_kme,
                    slaves: slaves.clone(),
                    waiting: slaves.clone(),
                    secret,
                },
            );
        }
        self.stats.keys_issued += u64::from(number);
        self.stats.bits_issued += total;
        reply
    }

    /// Takes `total` bits for `number` keys along `route`: from a direct link's store (pending
    /// until fetched, as before), or, on a relayed route, spent as one-time pads on every link
    /// but the last, whose store holds the key at the slave's KME until fetched (so unfetched
    /// keys stay bounded by capacity). All or nothing: false, nothing spent, if a link lacks them.
    fn spend_route(&mut self, route: &Route, total: u64, number: u32) -> bool {
        if route.is_direct() {
            return self.links[route.links[0]].link.take(total);
        }
        if route
            .links
            .iter()
            .any(|&l| self.links[l].link.available_bits() < total)
        {
            return false;
        }
        let last = route.links.len() - 1;
        for (i, &l) in route.links.iter().enumerate() {
            let link = &mut self.links[l];
            if i == last {
                link.link.take(total); // waits at the slave's KME, as a direct key does
            } else {
                link.link.spend(total);
            }
            link.keys_relayed += u64::from(number);
        }
        for &n in route.relays() {
            self.kmes[n].relayed += u64::from(number);
        }
        self.stats.keys_relayed += u64::from(number);
        true
    }

    /// 503 when no route holds the bits, naming the topology's shortest path and its state. For
    /// a direct link the message is the two-KME simulator's.
    fn no_key_reply(&self, kme: usize, peer_kme: usize, total: u64) -> Reply {
        let Some(route) = self.route(kme, peer_kme, Need::Topology) else {
            return Reply::error(503, "not enough key material: no route");
        };
        let available = route
            .links
            .iter()
            .map(|&l| self.links[l].link.available_bits())
            .min()
            .unwrap_or(0);
        let down: Vec<String> = route
            .links
            .iter()
            .filter(|&&l| !self.links[l].link.generating())
            .map(|&l| {
                let [a, b] = self.links[l].ends;
                format!("{}-{}", self.kmes[a].id, self.kmes[b].id)
            })
            .collect();
        let why = match (route.is_direct(), down.is_empty()) {
            (_, true) => String::new(),
            (true, false) => "; the QKD link is down".into(),
            (false, false) => format!("; the QKD link is down: {}", down.join(", ")),
        };
        let path = if route.is_direct() {
            String::new()
        } else {
            format!(
                " on the path {} and no other path has it",
                self.describe(&route)
            )
        };
        Reply::error(
            503,
            format!(
                "not enough key material: {total} bits requested, {available} available{path}{why}"
            ),
        )
    }

    fn draw_key(
        &mut self,
        bytes: usize,
        fresh: &[(KeyId, Zeroizing<Vec<u8>>)],
    ) -> Option<(KeyId, Zeroizing<Vec<u8>>)> {
        let mut id = None;
        for _ in 0..4 {
            let mut raw = [0u8; 16];
            self.entropy.try_fill(&mut raw).ok()?;
            let candidate = KeyId::from_random_bytes(raw);
            if !self.pending.contains_key(&candidate) && !fresh.iter().any(|(f, _)| *f == candidate)
            {
                id = Some(candidate);
                break;
            }
        }
        let mut secret = Zeroizing::new(vec![0u8; bytes]);
        self.entropy.try_fill(&mut secret).ok()?;
        Some((id?, secret))
    }

    pub(super) fn dec_keys(
        &mut self,
        now: Instant,
        kme: usize,
        caller: &SaeId,
        master: &SaeId,
        ids: &[KeyId],
    ) -> Reply {
        if let Err(reply) = self.route_to_peer(kme, caller, master, "master_SAE_ID") {
            return reply;
        }
        self.advance_links(now);
        if ids.is_empty() {
            return Reply::error(400, "key_IDs must list at least one key_ID");
        }
        if ids.len() > self.limits.max_key_per_request as usize {
            return Reply::error(
                400,
                format!(
                    "{} key IDs exceed max_key_per_request {}",
                    ids.len(),
                    self.limits.max_key_per_request
                ),
            );
        }
        let mut seen = HashSet::new();
        if let Some(dup) = ids.iter().find(|id| !seen.insert(**id)) {
            return Reply::error(400, format!("key_IDs lists {dup} more than once"));
        }
        let (mut unauthorized, mut missing) = (false, false);
        for id in ids {
            match self.pending.get(id) {
                Some(p) if p.master == *master && p.slave_kme == kme => {
                    if !p.slaves.contains(caller) {
                        unauthorized = true;
                    } else if !p.waiting.contains(caller) {
                        missing = true; // already fetched by this slave
                    }
                }
                _ => missing = true,
            }
        }
        if unauthorized {
            return Reply::error(
                401,
                format!("SAE {caller} is not a slave named when these keys were issued"),
            );
        }
        if missing {
            return Reply::error(400, msg::KEYS_NOT_FOUND);
        }
        // Relayed keys reach this KME after their path's relay latency: hold the reply until the
        // last one arrives, or, if that is too far off, answer as for a key not yet synchronised.
        let arrival = ids
            .iter()
            .filter_map(|id| self.pending.get(id))
            .map(|p| p.available_at)
            .max()
            .unwrap_or(now);
        let hold = arrival.saturating_duration_since(now);
        if hold > MAX_TRANSIT_WAIT {
            return Reply::error_details(
                400,
                msg::KEYS_NOT_FOUND,
                vec![json!({ "key_in_transit":
                    format!("relayed key reaches this KME in {} ms; ask again", hold.as_millis()) })],
            );
        }
        let mut encoded = Vec::with_capacity(ids.len());
        for id in ids {
            let Some(p) = self.pending.get_mut(id) else {
                continue;
            };
            encoded.push((*id, Zeroizing::new(STANDARD.encode(&p.secret[..]))));
            p.waiting.retain(|s| s != caller);
            if p.waiting.is_empty()
                && let Some(done) = self.pending.remove(id)
            {
                let bits = done.secret.len() as u64 * 8;
                if let Some(l) = done.link.and_then(|l| self.links.get_mut(l)) {
                    l.link.release(bits);
                }
            }
        }
        self.stats.keys_delivered += encoded.len() as u64;
        let mut reply = container_reply(&encoded);
        reply.delay = hold;
        reply
    }
}

fn container_reply(keys: &[(KeyId, Zeroizing<String>)]) -> Reply {
    let container = KeyContainerOut {
        keys: keys
            .iter()
            .map(|(id, b64)| KeyOut {
                key_id: id.to_string(),
                key: b64.as_str(),
            })
            .collect(),
    };
    let hint = keys.iter().map(|(_, b)| b.len() + 64).sum::<usize>() + 32;
    Reply::json(200, &container, hint)
}
