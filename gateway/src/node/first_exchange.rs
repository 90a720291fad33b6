//! When a hub's master peers start their first exchange (docs/protocol.md §7, "A hub's start").
//!
//! A gateway that is master of many QKD peers (a hub) would otherwise start every peer's first
//! exchange in the same instant after a start or restart, and so ask its KME for one key per peer
//! at once (ETSI GS QKD 014 §5.2 `enc_keys`). Instead each master peer with a QKD policy starts at
//! a uniform random moment of a window that grows with their number:
//! [`qkd_link::gate::STARTS_PER_SECOND`] on average (the rate at which the KME client's gate
//! spreads its pools' first fills too), so 100 peers spread over 2 s and a pair (one master peer)
//! starts at once. A peer whose traffic needs a session does not wait for its moment (the hybrid
//! peer's `on_epoch_needed` starts the exchange at once), so the spread delays idle peers only.
//! Each peer then rotates `rekey_after` after its own last epoch, so its later epochs, and the KME
//! requests they make, stay spread as well instead of arriving in one burst every rotation.

use std::time::{Duration, Instant};

use qkd_link::gate::start_window;

use crate::hybrid::{QkdPolicy, Role};

use super::{Node, NodePeer, PeerId};

/// The window over which the first exchanges of `peers`' QKD master peers start: zero for one,
/// `(n - 1) / qkd_link::gate::STARTS_PER_SECOND` for n.
pub(super) fn window(peers: &[NodePeer]) -> Duration {
    let masters = peers
        .iter()
        .filter_map(|p| p.hybrid.as_ref())
        .filter(|h| h.role == Role::Master && h.policy != QkdPolicy::Off)
        .count();
    start_window(masters)
}

/// A moment of `[now, now + window)` from 8 random bytes (uniform up to 2^-64).
pub(super) fn moment(now: Instant, window: Duration, random: [u8; 8]) -> Instant {
    let nanos = u64::try_from(window.as_nanos()).unwrap_or(u64::MAX);
    let offset = (u128::from(u64::from_le_bytes(random)) * u128::from(nanos)) >> 64;
    now + Duration::from_nanos(u64::try_from(offset).unwrap_or(u64::MAX))
}

impl Node {
    /// Starts peer `id`'s first exchange at a random moment of `window` if it is a QKD master.
    pub(super) fn spread_first_exchange(&mut self, now: Instant, id: PeerId, window: Duration) {
        if window.is_zero() {
            return;
        }
        let Some(h) = self.peers.get_mut(id).and_then(|p| p.hybrid.as_mut()) else {
            return;
        };
        if h.role() == Role::Master && h.policy() != QkdPolicy::Off {
            let mut random = [0u8; 8];
            self.rng.fill(&mut random);
            h.delay_first_exchange(moment(now, window, random));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::node::testing::{HybridLink, Site, hybrid, ipv4, node};

    /// The instants at which a node that is `role` of `peers` spokes asks its KME for keys, over
    /// the first `horizon` (no KME answers, so each master asks once for its first epoch); with
    /// `traffic`, a packet for every spoke comes in from the tunnel at the start.
    fn first_asks(peers: u16, role: Role, horizon: Duration, traffic: bool) -> Vec<Duration> {
        let links: Vec<_> = (2..peers + 2)
            .map(|p| HybridLink {
                peer: Site(p),
                role,
                policy: QkdPolicy::Required,
                rekey_after: Duration::from_secs(120),
            })
            .collect();
        let start = Instant::now();
        let mut n = node(start, hybrid(Site(1), &links), 7);
        if traffic {
            for p in 2..peers + 2 {
                let packet = ipv4(Site(1).ip(1), Site(p).ip(1), b"vital signs");
                let mut buf = vec![0u8; 2048];
                buf[16..16 + packet.len()].copy_from_slice(&packet);
                assert!(n.handle_tun_packet(start, &mut buf, packet.len()).is_err());
            }
        }
        let mut asks = Vec::new();
        let mut now = start;
        while now <= start + horizon {
            n.handle_timeout(now);
            while n.poll_kme_request().is_some() {
                asks.push(now - start);
            }
            match n.poll_timeout() {
                Some(t) if t > now => now = t,
                _ => now += Duration::from_millis(1),
            }
        }
        asks
    }

    #[test]
    fn a_hub_spreads_its_first_kme_requests_over_its_window() {
        let asks = first_asks(101, Role::Master, Duration::from_secs(3), false);
        assert_eq!(asks.len(), 101, "every master peer asks once");
        let window = Duration::from_secs(2);
        assert!(asks.iter().all(|t| *t < window), "all within (n-1)/50 s");
        let per_second = |from: u64| {
            let from = Duration::from_millis(from);
            asks.iter()
                .filter(|t| **t >= from && **t < from + Duration::from_secs(1))
                .count()
        };
        let busiest = (0..=1000).step_by(100).map(per_second).max().unwrap_or(0);
        assert!(
            busiest <= 70,
            "at most ~50 first requests in any second, got {busiest}"
        );
        let first_100ms = asks
            .iter()
            .filter(|t| **t < Duration::from_millis(100))
            .count();
        assert!(first_100ms <= 15, "no burst at the start: {first_100ms}");
    }

    #[test]
    fn a_pair_starts_at_once() {
        assert_eq!(
            first_asks(1, Role::Master, Duration::from_secs(1), false),
            vec![Duration::ZERO]
        );
    }

    #[test]
    fn traffic_that_needs_a_session_does_not_wait_for_the_spread() {
        let asks = first_asks(101, Role::Master, Duration::from_secs(3), true);
        assert_eq!(asks, vec![Duration::ZERO; 101]);
    }

    #[test]
    fn slaves_are_not_spread() {
        assert!(first_asks(101, Role::Slave, Duration::from_secs(3), false).is_empty());
        let links = |role| {
            (2..103)
                .map(|p| HybridLink {
                    peer: Site(p),
                    role,
                    policy: QkdPolicy::Required,
                    rekey_after: Duration::from_secs(120),
                })
                .collect::<Vec<_>>()
        };
        assert_eq!(
            window(&hybrid(Site(1), &links(Role::Slave)).peers),
            Duration::ZERO
        );
        assert_eq!(
            window(&hybrid(Site(1), &links(Role::Master)).peers),
            Duration::from_secs(2)
        );
    }

    #[test]
    fn the_moment_stays_inside_the_window() {
        let now = Instant::now();
        let w = Duration::from_secs(2);
        assert_eq!(moment(now, w, [0; 8]), now);
        assert!(moment(now, w, [0xff; 8]) < now + w);
        assert_eq!(moment(now, Duration::ZERO, [0xff; 8]), now);
    }
}
