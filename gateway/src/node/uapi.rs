//! Applying a `wg set` request (WireGuard cross-platform UAPI, `set=1`; the rules are in
//! [`crate::control::uapi`]) to the node: checked as a whole first, so a refused request changes
//! nothing.
//!
//! Cryptokey routing (whitepaper §2) decides which tunnel a packet takes, so a route is a
//! downgrade path: the request is refused if, after it, an address that routes to a hybrid peer
//! (docs/protocol.md §1) would route to a plain one.

use std::net::IpAddr;
use std::time::{Duration, Instant};

use super::{Node, NodePeer, PeerId, PeerSpec};
use crate::control::status::b64;
use crate::control::uapi::{EINVAL, EPERM, Plan};
use crate::proto::allowed_ips::prefix_contains;

/// An allowed-IPs prefix.
type Prefix = (IpAddr, u8);

impl Node {
    /// Applies `plan`; returns the peers it added. `Err(errno)` changes nothing: our own key as a
    /// peer is `EINVAL`; `EPERM` for a PSK for a hybrid peer (its PSK slot belongs to the key
    /// agreement: a static PSK would silently downgrade its post-quantum sessions) and for
    /// allowed IPs that would route a hybrid peer's traffic through a plain peer
    /// ([`Self::check_hybrid_routes`]).
    pub fn apply_uapi(&mut self, now: Instant, plan: Plan) -> Result<Vec<PeerId>, i32> {
        if plan.peers.iter().any(|p| p.key == *self.public_key()) {
            return Err(EINVAL);
        }
        if plan
            .peers
            .iter()
            .any(|p| p.psk.is_some() && self.is_hybrid_key(&p.key))
        {
            return Err(EPERM);
        }
        self.check_hybrid_routes(&plan)?;
        let mut added = Vec::new();
        for p in plan.peers {
            let id = match self.peers.by_key(&p.key) {
                Some(id) => id,
                None if p.update_only => continue,
                None => {
                    let name = format!("uapi-{}", &b64(&p.key)[..8]);
                    let wg = PeerSpec {
                        public_key: p.key,
                        psk: None,
                        endpoint: None,
                        allowed_ips: Vec::new(),
                        persistent_keepalive: None,
                    };
                    let peer = NodePeer {
                        name,
                        wg,
                        hybrid: None,
                        egress: crate::classes::PeerEgress::default(),
                    };
                    let Ok(id) = self.add_peer(now, peer) else {
                        continue;
                    };
                    added.push(id);
                    id
                }
            };
            if p.replace_ips {
                self.routes.remove_value(id);
            }
            for (ip, len) in &p.ips {
                self.routes.insert(*ip, *len, id);
            }
            let Some(slot) = self.peers.get_mut(id) else {
                continue;
            };
            if let Some(e) = p.endpoint {
                slot.wg.set_endpoint(e);
            }
            if let Some(k) = p.keepalive {
                let interval = (k > 0).then(|| Duration::from_secs(k.into()));
                slot.wg.set_persistent_keepalive(now, interval);
            }
            if let Some(psk) = p.psk {
                slot.wg.set_static_psk(psk);
            }
        }
        Ok(added)
    }
}

impl Node {
    fn is_hybrid_key(&self, key: &[u8; 32]) -> bool {
        self.peers.by_key(key).is_some_and(|id| self.is_hybrid(id))
    }

    fn is_hybrid(&self, id: PeerId) -> bool {
        self.peers.get(id).is_some_and(|p| p.hybrid.is_some())
    }

    /// Refuses (`EPERM`) a plan after which traffic routed to a hybrid peer would go through a
    /// plain one: a plain peer (existing or new) given a prefix a hybrid peer holds, or one
    /// inside it (longest prefix wins); or a hybrid peer's prefix dropped by
    /// `replace_allowed_ips` while a plain peer's wider prefix would then carry it. Prefixes given
    /// to a plain peer outside every hybrid prefix, and less specific ones around them, are
    /// allowed: the hybrid peer's longer prefixes still win.
    fn check_hybrid_routes(&self, plan: &Plan) -> Result<(), i32> {
        // Each planned peer's prefixes as the plan leaves them, and whether it replaces its own.
        let mut planned: Vec<([u8; 32], bool, Vec<Prefix>)> = Vec::new();
        for p in &plan.peers {
            let at = match planned.iter().position(|e| e.0 == p.key) {
                Some(at) => at,
                None => {
                    planned.push((p.key, false, Vec::new()));
                    planned.len() - 1
                }
            };
            let entry = &mut planned[at];
            if p.replace_ips {
                entry.1 = true;
                entry.2.clear();
            }
            entry.2.extend(p.ips.iter().copied());
        }
        let replaced = |id: PeerId| {
            let key = self.peers.get(id).map(|p| p.wg.public_key());
            planned.iter().any(|e| e.1 && Some(&e.0) == key)
        };
        let current = self.routes.entries();
        let (mut hybrid_now, mut hybrid_after, mut plain_after) =
            (Vec::new(), Vec::new(), Vec::new());
        for &(ip, len, id) in &current {
            match (self.is_hybrid(id), replaced(id)) {
                (true, r) => {
                    hybrid_now.push((ip, len));
                    if !r {
                        hybrid_after.push((ip, len));
                    }
                }
                (false, false) => plain_after.push((ip, len)),
                (false, true) => {}
            }
        }
        for (key, _, ips) in &planned {
            let after = if self.is_hybrid_key(key) {
                &mut hybrid_after
            } else {
                &mut plain_after
            };
            after.extend(ips.iter().copied());
        }
        // Every section counts, also one a later `replace_allowed_ips` undoes: inserting a prefix
        // moves it, so it is gone from the hybrid peer even if the plain peer drops it again.
        let (to_hybrid, to_plain): (Vec<_>, Vec<_>) =
            (plan.peers.iter()).partition(|p| self.is_hybrid_key(&p.key));
        hybrid_now.extend(to_hybrid.iter().flat_map(|p| p.ips.iter().copied()));
        let mut plain_ips = to_plain.iter().flat_map(|p| p.ips.iter());
        if plain_ips.any(|ip| hybrid_now.iter().any(|h| prefix_contains(*h, *ip))) {
            return Err(EPERM);
        }
        // A hybrid prefix dropped by a replace: the longest prefix around it afterwards must not
        // be a plain one.
        let dropped = (current.iter()).filter(|&&(_, _, id)| self.is_hybrid(id) && replaced(id));
        for &(ip, len, _) in dropped {
            let gone = (ip, len);
            let plain_wins = |q: &Prefix| {
                prefix_contains(*q, gone)
                    && !hybrid_after
                        .iter()
                        .any(|s| s.1 > q.1 && prefix_contains(*s, gone) && prefix_contains(*q, *s))
            };
            if plain_after.iter().any(plain_wins) {
                return Err(EPERM);
            }
        }
        Ok(())
    }
}
