//! Routing key through the simulated QKD network: which links a key for two SAEs travels over.
//! Semantics in `docs/qkd-network.md`; in a real deployment ETSI GS QKD 020 (KMS to KMS) and the
//! operator's key-management network do this, invisibly to the ETSI GS QKD 014 client.
//!
//! * A **direct link** between the master's and the slave's KME serves a request whenever its
//!   store holds the bits, even when the link is down: both ends already share that stock
//!   (unchanged from the two-KME simulator).
//! * Otherwise the key is **relayed hop by hop** through trusted nodes: the route is the path with
//!   the fewest hops over links that are up and each hold the request's bits, through nodes that
//!   are up; ties go to the shortest total `length_km`, then to the node sequence that comes
//!   first in configuration order (KMEs, then trusted nodes). Deterministic, so tests and demos
//!   replay exactly.
//! * Every link on a relayed path spends the key's bits (one-time pad per hop), so a path's rate
//!   is bounded by its weakest link, and a link that is down or empty breaks every path through
//!   it until the next request finds another one.

use std::collections::VecDeque;
use std::time::Duration;

use super::Engine;

/// How long `dec_keys` holds a reply for a relayed key still in transit before answering
/// "not found" (the client retries, reference §10.3). Below the 10 s timeouts of the clients in
/// the field (reference §9), so a held reply arrives before they give up.
pub const MAX_TRANSIT_WAIT: Duration = Duration::from_secs(5);

/// A route from the master's KME to the slave's KME.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Route {
    /// Node indices, master's KME first, slave's KME last.
    pub(super) nodes: Vec<usize>,
    /// Link indices, `links[i]` joins `nodes[i]` and `nodes[i + 1]`.
    pub(super) links: Vec<usize>,
}

impl Route {
    /// A route of one link: no trusted node, no relay.
    pub(super) fn is_direct(&self) -> bool {
        self.links.len() == 1
    }

    /// The trusted nodes that relay along this route.
    pub(super) fn relays(&self) -> &[usize] {
        let n = self.nodes.len();
        if n > 2 { &self.nodes[1..n - 1] } else { &[] }
    }
}

/// One edge of the graph the path search sees.
#[derive(Debug, Clone, Copy)]
pub(super) struct Edge {
    pub(super) ends: [usize; 2],
    pub(super) length_m: u64,
    pub(super) usable: bool,
}

/// The fewest-hops path from `from` to `to` over usable edges whose inner nodes pass `relay_ok`;
/// ties: least total length, then the node sequence first in index order. `None` if none.
pub(super) fn shortest_path(
    nodes: usize,
    edges: &[Edge],
    relay_ok: &dyn Fn(usize) -> bool,
    from: usize,
    to: usize,
) -> Option<Route> {
    if from >= nodes || to >= nodes || from == to {
        return None;
    }
    // BFS from the destination: hop distance of every node that can reach it.
    let mut dist = vec![usize::MAX; nodes];
    let mut order = Vec::with_capacity(nodes);
    let mut queue = VecDeque::from([to]);
    dist[to] = 0;
    while let Some(u) = queue.pop_front() {
        order.push(u);
        if u != to && !relay_ok(u) {
            continue; // reachable as an endpoint, but relays nothing onwards
        }
        for (v, _) in neighbours(edges, u) {
            if dist[v] == usize::MAX {
                dist[v] = dist[u] + 1;
                queue.push_back(v);
            }
        }
    }
    if dist[from] == usize::MAX {
        return None;
    }
    // In order of distance: the best (length, route) towards `to` from each node.
    let mut best: Vec<Option<(u64, Route)>> = vec![None; nodes];
    best[to] = Some((
        0,
        Route {
            nodes: vec![to],
            links: Vec::new(),
        },
    ));
    for &v in order.iter().skip(1) {
        let mut pick: Option<(u64, Route)> = None;
        for (u, e) in neighbours(edges, v) {
            if dist[u].wrapping_add(1) != dist[v] || (u != to && !relay_ok(u)) {
                continue;
            }
            let Some((len, rest)) = &best[u] else {
                continue;
            };
            let total = len.saturating_add(edges[e].length_m);
            let better = pick
                .as_ref()
                .is_none_or(|(l, p)| (total, rest.nodes.as_slice()) < (*l, &p.nodes[1..]));
            if better {
                let mut route = Route {
                    nodes: vec![v],
                    links: vec![e],
                };
                route.nodes.extend_from_slice(&rest.nodes);
                route.links.extend_from_slice(&rest.links);
                pick = Some((total, route));
            }
        }
        best[v] = pick;
        if v == from {
            break;
        }
    }
    best[from].take().map(|(_, route)| route)
}

fn neighbours(edges: &[Edge], u: usize) -> impl Iterator<Item = (usize, usize)> + '_ {
    edges.iter().enumerate().filter_map(move |(i, e)| {
        if !e.usable {
            None
        } else if e.ends[0] == u {
            Some((e.ends[1], i))
        } else if e.ends[1] == u {
            Some((e.ends[0], i))
        } else {
            None
        }
    })
}

/// Which links a route may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Need {
    /// Links that are up and hold this many bits; a direct link needs only the bits.
    Bits(u64),
    /// Any link, faults and stock ignored: the topology (for Status and error messages).
    Topology,
}

impl Engine {
    /// The route a request for `need` takes from node `from` to node `to` now. Call after
    /// advancing the links to `now`.
    pub(super) fn route(&self, from: usize, to: usize, need: Need) -> Option<Route> {
        let direct = self
            .links
            .iter()
            .position(|l| l.ends.contains(&from) && l.ends.contains(&to) && from != to);
        if let Some(li) = direct {
            let stocked = match need {
                Need::Bits(bits) => self.links[li].link.available_bits() >= bits,
                Need::Topology => true,
            };
            if stocked {
                return Some(Route {
                    nodes: vec![from, to],
                    links: vec![li],
                });
            }
        }
        let edges: Vec<Edge> = self
            .links
            .iter()
            .map(|l| Edge {
                ends: l.ends,
                length_m: l.length_m,
                usable: match need {
                    Need::Bits(bits) => !l.link.is_down() && l.link.available_bits() >= bits,
                    Need::Topology => true,
                },
            })
            .collect();
        let relay_ok = |n: usize| need == Need::Topology || !self.kmes[n].down;
        shortest_path(self.kmes.len(), &edges, &relay_ok, from, to)
    }

    /// Summed relay latency along a route (zero for a direct link: nothing is relayed).
    pub(super) fn transit(&self, route: &Route) -> Duration {
        if route.is_direct() {
            return Duration::ZERO;
        }
        route
            .links
            .iter()
            .map(|&l| self.links[l].relay_latency)
            .sum()
    }

    /// `KME_A-R1-KME_B`, for messages.
    pub(super) fn describe(&self, route: &Route) -> String {
        route
            .nodes
            .iter()
            .map(|&n| self.kmes[n].id.as_str())
            .collect::<Vec<_>>()
            .join("-")
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn edge(a: usize, b: usize, length_m: u64) -> Edge {
        Edge {
            ends: [a, b],
            length_m,
            usable: true,
        }
    }

    fn path(nodes: usize, edges: &[Edge], from: usize, to: usize) -> Option<Vec<usize>> {
        shortest_path(nodes, edges, &|_| true, from, to).map(|r| r.nodes)
    }

    #[test]
    fn fewest_hops_then_length_then_index_order() {
        // 0-1-2-3 (3 hops) and 0-4-3 (2 hops): hops win even though longer.
        let mut e = vec![
            edge(0, 1, 1),
            edge(1, 2, 1),
            edge(2, 3, 1),
            edge(0, 4, 50),
            edge(4, 3, 50),
        ];
        assert_eq!(path(6, &e, 0, 3), Some(vec![0, 4, 3]));
        // A second two-hop path 0-5-3, shorter: length breaks the tie.
        e.extend([edge(0, 5, 10), edge(5, 3, 10)]);
        assert_eq!(path(6, &e, 0, 3), Some(vec![0, 5, 3]));
        // Same length: the lower node index wins, whatever the edge order.
        e[3].length_m = 10;
        e[4].length_m = 10;
        assert_eq!(path(6, &e, 0, 3), Some(vec![0, 4, 3]));
        e.reverse();
        assert_eq!(path(6, &e, 0, 3), Some(vec![0, 4, 3]));
    }

    #[test]
    fn unusable_links_and_nodes_are_routed_around() {
        let mut e = vec![edge(0, 1, 1), edge(1, 2, 1), edge(0, 3, 1), edge(3, 2, 1)];
        assert_eq!(path(4, &e, 0, 2), Some(vec![0, 1, 2]));
        e[1].usable = false;
        assert_eq!(path(4, &e, 0, 2), Some(vec![0, 3, 2]));
        let r = shortest_path(4, &e, &|n| n != 3, 0, 2);
        assert_eq!(r, None, "node 3 may not relay");
        // An endpoint that may not relay is still an endpoint.
        assert!(shortest_path(4, &e, &|n| n != 2, 0, 2).is_some());
        assert_eq!(path(4, &e, 0, 0), None);
        assert_eq!(path(4, &e, 0, 9), None);
    }

    #[test]
    fn route_lists_links_in_path_order() {
        let e = vec![edge(2, 1, 1), edge(0, 1, 1)];
        let r = shortest_path(3, &e, &|_| true, 0, 2).unwrap();
        assert_eq!((r.nodes, r.links), (vec![0, 1, 2], vec![1, 0]));
    }
}
