//! Get key (§5.3) and Get key with key IDs (§5.4) on the engine: request checks with the spec's
//! messages, all-or-nothing issuing from the link store, exactly-once delivery to named slaves.

use std::collections::HashSet;
use std::time::Instant;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde_json::json;
use zeroize::Zeroizing;

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
        let (li, peer_kme) = match self.route_to_peer(kme, caller, slave, "slave_SAE_ID") {
            Ok(r) => r,
            Err(reply) => return reply,
        };
        let (number, size, slaves) = match self.check_key_request(caller, slave, peer_kme, req) {
            Ok(v) => v,
            Err(reply) => return reply,
        };
        let link = &mut self.links[li].link;
        link.advance(now);
        let total = u64::from(number) * u64::from(size);
        if link.available_bits() < total {
            let why = if link.generating() {
                ""
            } else {
                "; the QKD link is down"
            };
            return Reply::error(
                503,
                format!(
                    "not enough key material: {total} bits requested, {} available{why}",
                    link.available_bits()
                ),
            );
        }
        // Draw every ID and key before touching the store, so an entropy failure consumes nothing.
        let mut fresh = Vec::with_capacity(number as usize);
        for _ in 0..number {
            match self.draw_key(size as usize / 8, &fresh) {
                Some(k) => fresh.push(k),
                None => return Reply::error(503, "entropy source failed"),
            }
        }
        if !self.links[li].link.take(total) {
            return Reply::error(503, "not enough key material");
        }
        let encoded: Vec<(KeyId, Zeroizing<String>)> = fresh
            .iter()
            .map(|(id, secret)| (*id, Zeroizing::new(STANDARD.encode(&secret[..]))))
            .collect();
        let reply = container_reply(&encoded);
        for (id, secret) in fresh {
            self.pending.insert(
                id,
                PendingKey {
                    link: li,
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
        let li = match self.route_to_peer(kme, caller, master, "master_SAE_ID") {
            Ok((li, _)) => li,
            Err(reply) => return reply,
        };
        self.links[li].link.advance(now);
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
                if let Some(l) = self.links.get_mut(done.link) {
                    l.link.release(bits);
                }
            }
        }
        self.stats.keys_delivered += encoded.len() as u64;
        container_reply(&encoded)
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
