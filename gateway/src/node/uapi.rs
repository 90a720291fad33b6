//! Applying a `wg set` request (WireGuard cross-platform UAPI, `set=1`; the rules are in
//! [`crate::control::uapi`]) to the node: checked as a whole first, so a refused request changes
//! nothing.

use std::time::{Duration, Instant};

use super::{Node, NodePeer, PeerId, PeerSpec};
use crate::control::status::b64;
use crate::control::uapi::{EINVAL, EPERM, Plan};

impl Node {
    /// Applies `plan`; returns the peers it added. `Err(errno)` changes nothing: our own key as a
    /// peer is `EINVAL`, a PSK for a hybrid peer `EPERM` (its PSK slot belongs to the key
    /// agreement: a static PSK would silently downgrade its post-quantum sessions).
    pub fn apply_uapi(&mut self, now: Instant, plan: Plan) -> Result<Vec<PeerId>, i32> {
        if plan.peers.iter().any(|p| p.key == *self.public_key()) {
            return Err(EINVAL);
        }
        let hybrid = |node: &Self, key: &[u8; 32]| {
            (node.peers.by_key(key))
                .and_then(|id| node.peers.get(id))
                .is_some_and(|p| p.hybrid.is_some())
        };
        if plan
            .peers
            .iter()
            .any(|p| p.psk.is_some() && hybrid(self, &p.key))
        {
            return Err(EPERM);
        }
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
