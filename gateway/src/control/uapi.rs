//! WireGuard's cross-platform userspace API (wireguard.com/xplatform), as wireguard-go, boringtun
//! and gotatun serve it, so `wg show` and `wg set` work against qgw.
//!
//! `get=1` answers with the interface and every peer as `key=value` lines (keys in hex), then
//! `errno=0` and a blank line. `set=1` applies `key=value` lines and answers `errno=N`.
//!
//! What `wg set` may change (docs/gateway-decisions.md §6 says why):
//!
//! | key | allowed |
//! |---|---|
//! | `endpoint`, `persistent_keepalive_interval`, `allowed_ip`, `replace_allowed_ips` | yes |
//! | `public_key` of an unknown peer (adds it, named `uapi-…`), `update_only` | yes |
//! | `preshared_key` | on `hybrid: off` peers; refused (EPERM) on hybrid peers |
//! | `private_key`, `listen_port` | only the current value (a change needs a restart with a new config) |
//! | `fwmark` | only 0 (qgw sets no mark) |
//! | `remove`, `replace_peers` | refused: the YAML config is the source of truth for its peers |
//!
//! A request is parsed and checked completely before anything is applied, so a refused request
//! changes nothing. Refusals answer `errno=1` (EPERM), malformed input `errno=22` (EINVAL).
//! Preshared keys are never sent by `get=1` (`wg showconf` shows none), the private key is (as
//! in wireguard-go: `wg show` derives the public key from it); the socket is root-only.
//! Kernel routes are not touched by `wg set`, as with every WireGuard implementation.

use std::fmt::Write as _;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use crate::config::parse_cidr;
use crate::proto::crypto::Entropy;
use crate::proto::interface::{Interface, PeerSpec};
use crate::proto::secret::{Psk, Secret};
use crate::proto::tai64n::WallClock;

/// `errno` for a request that is well-formed but not allowed.
pub const EPERM: i32 = 1;
/// `errno` for a malformed request.
pub const EINVAL: i32 = 22;

/// What the daemon knows besides the [`Interface`].
#[derive(Debug)]
pub struct Device<'a> {
    /// Our private key (sent by `get=1`).
    pub private_key: &'a Secret<32>,
    /// Bound UDP port.
    pub listen_port: u16,
    /// Peer names by id (extended when `set=1` adds a peer).
    pub names: &'a mut Vec<String>,
    /// Wall-clock mapping for handshake times.
    pub clock: &'a WallClock,
}

/// Handles one UAPI request; returns the full answer and the ids of peers it added.
pub fn handle<R: Entropy>(
    request: &str,
    now: Instant,
    ifc: &mut Interface<R>,
    dev: &mut Device<'_>,
) -> (String, Vec<usize>) {
    let mut lines = request.lines();
    match lines.next() {
        Some("get=1") => (get(ifc, dev), Vec::new()),
        Some("set=1") => match parse_set(lines).and_then(|p| check(&p, ifc, dev).map(|()| p)) {
            Ok(plan) => ("errno=0\n\n".to_owned(), apply(plan, now, ifc, dev)),
            Err(errno) => (format!("errno={errno}\n\n"), Vec::new()),
        },
        _ => (format!("errno={EINVAL}\n\n"), Vec::new()),
    }
}

fn get<R: Entropy>(ifc: &Interface<R>, dev: &Device<'_>) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "private_key={}", hex(dev.private_key.expose()));
    let _ = writeln!(s, "listen_port={}", dev.listen_port);
    let routes = ifc.routes().entries();
    for id in 0..ifc.peer_count() {
        let Some(p) = ifc.peer(id) else { continue };
        let st = p.stats();
        let _ = writeln!(s, "public_key={}", hex(p.public_key()));
        if let Some(e) = p.endpoint() {
            let _ = writeln!(s, "endpoint={e}");
        }
        let hs = st
            .last_handshake
            .map(|t| dev.clock.unix(t))
            .unwrap_or_default();
        let _ = writeln!(s, "last_handshake_time_sec={}", hs.as_secs());
        let _ = writeln!(s, "last_handshake_time_nsec={}", hs.subsec_nanos());
        let _ = writeln!(s, "tx_bytes={}\nrx_bytes={}", st.tx_bytes, st.rx_bytes);
        let ka = p.persistent_keepalive().map_or(0, |d| d.as_secs());
        let _ = writeln!(s, "persistent_keepalive_interval={ka}");
        for (ip, len, _) in routes.iter().filter(|(_, _, v)| *v == id) {
            let _ = writeln!(s, "allowed_ip={ip}/{len}");
        }
        let _ = writeln!(s, "protocol_version=1");
    }
    s + "errno=0\n\n"
}

/// One `public_key=` section of a `set=1`.
#[derive(Debug, Default)]
struct SetPeer {
    key: [u8; 32],
    update_only: bool,
    psk: Option<Psk>,
    endpoint: Option<SocketAddr>,
    keepalive: Option<u16>,
    replace_ips: bool,
    ips: Vec<(IpAddr, u8)>,
}

#[derive(Debug, Default)]
struct Plan {
    private_key: Option<[u8; 32]>,
    listen_port: Option<u16>,
    peers: Vec<SetPeer>,
}

fn parse_set<'a>(lines: impl Iterator<Item = &'a str>) -> Result<Plan, i32> {
    let mut plan = Plan::default();
    for line in lines.take_while(|l| !l.is_empty()) {
        let (k, v) = line.split_once('=').ok_or(EINVAL)?;
        let peer = plan.peers.last_mut();
        match (k, peer) {
            ("private_key", None) => plan.private_key = Some(unhex(v)?),
            ("listen_port", None) => plan.listen_port = Some(v.parse().map_err(|_| EINVAL)?),
            ("fwmark", None) if v == "0" => {}
            ("fwmark" | "replace_peers", None) => return Err(EPERM),
            ("public_key", _) => plan.peers.push(SetPeer {
                key: unhex(v)?,
                ..SetPeer::default()
            }),
            ("remove", Some(_)) if v == "true" => return Err(EPERM),
            ("update_only", Some(p)) => p.update_only = v == "true",
            ("preshared_key", Some(p)) => p.psk = Some(Secret::new(unhex(v)?)),
            ("endpoint", Some(p)) => p.endpoint = Some(v.parse().map_err(|_| EINVAL)?),
            ("persistent_keepalive_interval", Some(p)) => {
                p.keepalive = Some(v.parse().map_err(|_| EINVAL)?);
            }
            ("replace_allowed_ips", Some(p)) => p.replace_ips = v == "true",
            ("allowed_ip", Some(p)) => p.ips.push(parse_cidr(v).ok_or(EINVAL)?),
            ("protocol_version", Some(_)) if v == "1" => {}
            _ => return Err(EINVAL),
        }
    }
    Ok(plan)
}

fn check<R: Entropy>(plan: &Plan, ifc: &Interface<R>, dev: &Device<'_>) -> Result<(), i32> {
    if plan
        .private_key
        .is_some_and(|k| k != *dev.private_key.expose())
        || plan.listen_port.is_some_and(|p| p != dev.listen_port)
    {
        return Err(EPERM);
    }
    if plan.peers.iter().any(|p| p.key == *ifc.public_key()) {
        return Err(EINVAL);
    }
    // The PSK slot of a hybrid peer belongs to the key agreement: a static PSK set through the
    // UAPI would silently downgrade its post-quantum sessions.
    let hybrid = |key: &[u8; 32]| {
        ifc.peer_by_key(key)
            .and_then(|id| ifc.peer(id))
            .is_some_and(|p| p.handshake_gate() != crate::proto::peer::HandshakeGate::Open)
    };
    if plan.peers.iter().any(|p| p.psk.is_some() && hybrid(&p.key)) {
        return Err(EPERM);
    }
    Ok(())
}

fn apply<R: Entropy>(
    plan: Plan,
    now: Instant,
    ifc: &mut Interface<R>,
    dev: &mut Device<'_>,
) -> Vec<usize> {
    let mut added = Vec::new();
    for p in plan.peers {
        let id = match ifc.peer_by_key(&p.key) {
            Some(id) => id,
            None if p.update_only => continue,
            None => {
                let spec = PeerSpec {
                    public_key: p.key,
                    psk: None,
                    endpoint: None,
                    allowed_ips: Vec::new(),
                    persistent_keepalive: None,
                };
                let Ok(id) = ifc.add_peer(spec) else { continue };
                let name = crate::control::status::b64(&p.key);
                dev.names.push(format!("uapi-{}", &name[..8]));
                added.push(id);
                id
            }
        };
        ifc.set_allowed_ips(id, p.replace_ips, &p.ips);
        let Some(peer) = ifc.peer_mut(id) else {
            continue;
        };
        if let Some(e) = p.endpoint {
            peer.set_endpoint(e);
        }
        if let Some(k) = p.keepalive {
            let interval = (k > 0).then(|| Duration::from_secs(k.into()));
            peer.set_persistent_keepalive(now, interval);
        }
        if let Some(psk) = p.psk {
            let next = peer.next_psk_id() + 1;
            peer.set_psk(psk, next);
        }
    }
    added
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().fold(String::with_capacity(64), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

fn unhex(text: &str) -> Result<[u8; 32], i32> {
    let t = text.as_bytes();
    if t.len() != 64 {
        return Err(EINVAL);
    }
    let mut out = [0u8; 32];
    for (o, pair) in out.iter_mut().zip(t.chunks_exact(2)) {
        let s = std::str::from_utf8(pair).map_err(|_| EINVAL)?;
        *o = u8::from_str_radix(s, 16).map_err(|_| EINVAL)?;
    }
    Ok(out)
}

#[cfg(test)]
#[path = "uapi_tests.rs"]
mod tests;
