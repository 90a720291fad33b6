//! WireGuard's cross-platform userspace API (wireguard.com/xplatform), as wireguard-go, boringtun
//! and gotatun serve it, so `wg show` and `wg set` work against qgw.
//!
//! `get=1` answers with the interface and every peer as `key=value` lines (keys in hex), then
//! `errno=0` and a blank line. `set=1` applies `key=value` lines and answers `errno=N`.
//!
//! What `wg set` may change (docs/gateway-decisions.md §5 says why):
//!
//! | key | allowed |
//! |---|---|
//! | `endpoint`, `persistent_keepalive_interval` | yes |
//! | `allowed_ip`, `replace_allowed_ips` | yes, unless an address routed to a `hybrid: on` peer would then route to a plain peer (refused, EPERM): a plain peer may not get a hybrid peer's prefix or one inside it, and a hybrid peer may not drop a prefix that a plain peer's wider prefix would then cover |
//! | `public_key` of an unknown peer (adds it, named `uapi-…`), `update_only` | yes |
//! | `preshared_key` | on `hybrid: off` peers; refused (EPERM) on hybrid peers |
//! | `private_key`, `listen_port` | only the current value (a change needs a restart with a new config) |
//! | `fwmark` | only 0 (qgw sets no mark) |
//! | `remove`, `replace_peers` | refused: the YAML config is the source of truth for its peers |
//!
//! A request is parsed and checked completely before anything is applied, so a refused request
//! changes nothing. The allowed-IPs rule keeps cryptokey routing (whitepaper §2) from silently
//! moving traffic meant for a post-quantum tunnel into a plain one; a less specific prefix for a
//! plain peer (e.g. `0.0.0.0/0`) is allowed, since the hybrid peer's longer prefixes still win.
//! Refusals answer `errno=1` (EPERM), malformed input `errno=22` (EINVAL). Preshared keys are
//! never sent by `get=1` (`wg showconf` shows none), the private key is (as in wireguard-go:
//! `wg show` derives the public key from it); the socket is root-only. Kernel routes are not
//! touched by `wg set`, as with every WireGuard implementation. Keys in a request are decoded
//! straight into `Secret`s, and answers are zeroizing strings (docs/design.md §5).
//!
//! In the daemon `get=1` is answered on the control thread from the status the node last
//! published (handshake times to the second), and a checked `set=1` plan is applied by the node
//! on the packet thread ([`crate::node::Node::apply_uapi`]), so a UAPI client never blocks packets.

use std::fmt::Write as _;
use std::net::{IpAddr, SocketAddr};

use base64::Engine;
use zeroize::Zeroizing;

use super::status::Status;
use crate::config::parse_cidr;
use crate::proto::secret::{Psk, Secret};

/// `errno` for a request that is well-formed but not allowed.
pub const EPERM: i32 = 1;
/// `errno` for a malformed request.
pub const EINVAL: i32 = 22;

/// What the daemon knows about the device besides the node.
#[derive(Debug)]
pub struct Device<'a> {
    /// Our private key (sent by `get=1`).
    pub private_key: &'a Secret<32>,
    /// Bound UDP port.
    pub listen_port: u16,
}

/// Where a request is answered from: the node's published status for `get=1`, and the node itself
/// (on its own thread, in the daemon) for the changes of a `set=1`.
pub trait Target {
    /// The latest status.
    fn status(&mut self) -> Status;
    /// Applies a checked plan; `Err(errno)` if the node refuses it (nothing is changed then).
    fn apply(&mut self, plan: Plan) -> Result<(), i32>;
}

/// Answers one UAPI request: the full text to send back. The answer to `get=1` holds the private
/// key, so every answer is a zeroizing string (wiped when the caller drops it).
pub fn handle(request: &str, device: &Device<'_>, target: &mut impl Target) -> Zeroizing<String> {
    let mut lines = request.lines();
    let result = match lines.next() {
        Some("get=1") => return get(&target.status(), device),
        Some("set=1") => parse_set(lines)
            .and_then(|plan| plan.check_device(device).map(|()| plan))
            .and_then(|plan| target.apply(plan)),
        _ => Err(EINVAL),
    };
    Zeroizing::new(format!("errno={}\n\n", result.err().unwrap_or(0)))
}

fn get(status: &Status, device: &Device<'_>) -> Zeroizing<String> {
    // Only the first line is secret. It is written into a buffer sized so it never grows (a
    // grown `String` leaves its old allocation behind unwiped), and so is the whole answer.
    const KEY_LINE: usize = "private_key=\n".len() + 64;
    let mut key_line = Zeroizing::new(String::with_capacity(KEY_LINE));
    key_line.push_str("private_key=");
    hex_into(&mut key_line, device.private_key.expose());
    key_line.push('\n');
    let mut s = String::new();
    let _ = writeln!(s, "listen_port={}", device.listen_port);
    for p in &status.peers {
        let key = base64::engine::general_purpose::STANDARD.decode(&p.public_key);
        let _ = writeln!(s, "public_key={}", hex(&key.unwrap_or_default()));
        if let Some(e) = &p.endpoint {
            let _ = writeln!(s, "endpoint={e}");
        }
        let hs = p.latest_handshake_unix.unwrap_or_default();
        let _ = writeln!(s, "last_handshake_time_sec={hs}");
        let _ = writeln!(s, "last_handshake_time_nsec=0");
        let _ = writeln!(s, "tx_bytes={}\nrx_bytes={}", p.tx_bytes, p.rx_bytes);
        let ka = p.persistent_keepalive.unwrap_or(0);
        let _ = writeln!(s, "persistent_keepalive_interval={ka}");
        for ip in &p.allowed_ips {
            let _ = writeln!(s, "allowed_ip={ip}");
        }
        let _ = writeln!(s, "protocol_version=1");
    }
    s.push_str("errno=0\n\n");
    let mut answer = Zeroizing::new(String::with_capacity(key_line.len() + s.len()));
    answer.push_str(&key_line);
    answer.push_str(&s);
    answer
}

/// One `public_key=` section of a `set=1`.
#[derive(Debug, Default)]
pub struct SetPeer {
    /// The peer's static public key.
    pub key: [u8; 32],
    /// Change only an existing peer.
    pub update_only: bool,
    /// A new static PSK.
    pub psk: Option<Psk>,
    /// A new endpoint.
    pub endpoint: Option<SocketAddr>,
    /// A new persistent keepalive interval (0: off).
    pub keepalive: Option<u16>,
    /// Replace the allowed IPs instead of adding to them.
    pub replace_ips: bool,
    /// Allowed IPs to add.
    pub ips: Vec<(IpAddr, u8)>,
}

/// A parsed `set=1` request, applied as a whole or not at all. Its keys are secrets (redacted in
/// `Debug`, wiped on drop).
#[derive(Debug, Default)]
pub struct Plan {
    /// `private_key=` (only the current key is accepted).
    pub private_key: Option<Secret<32>>,
    /// `listen_port=` (only the current port is accepted).
    pub listen_port: Option<u16>,
    /// The peer sections.
    pub peers: Vec<SetPeer>,
}

impl Plan {
    /// Refuses a change of the private key or port (a restart with a new config does that).
    fn check_device(&self, device: &Device<'_>) -> Result<(), i32> {
        let key_changes = (self.private_key.as_ref()).is_some_and(|k| !k.ct_eq(device.private_key));
        if key_changes || self.listen_port.is_some_and(|p| p != device.listen_port) {
            return Err(EPERM);
        }
        Ok(())
    }
}

fn parse_set<'a>(lines: impl Iterator<Item = &'a str>) -> Result<Plan, i32> {
    let mut plan = Plan::default();
    for line in lines.take_while(|l| !l.is_empty()) {
        let (k, v) = line.split_once('=').ok_or(EINVAL)?;
        let peer = plan.peers.last_mut();
        match (k, peer) {
            ("private_key", None) => plan.private_key = Some(unhex_secret(v)?),
            ("listen_port", None) => plan.listen_port = Some(v.parse().map_err(|_| EINVAL)?),
            ("fwmark", None) if v == "0" => {}
            ("fwmark" | "replace_peers", None) => return Err(EPERM),
            ("public_key", _) => plan.peers.push(SetPeer {
                key: unhex(v)?,
                ..SetPeer::default()
            }),
            ("remove", Some(_)) if v == "true" => return Err(EPERM),
            ("update_only", Some(p)) => p.update_only = v == "true",
            ("preshared_key", Some(p)) => p.psk = Some(unhex_secret(v)?),
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

/// Lower-case hex, as the UAPI writes keys (public ones: a secret goes through [`hex_into`]).
pub fn hex(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(2 * bytes.len());
    hex_into(&mut s, bytes);
    s
}

/// Appends lower-case hex of `bytes` to `out`, with no temporary copy.
fn hex_into(out: &mut String, bytes: &[u8]) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    for b in bytes {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 15)]));
    }
}

fn unhex(text: &str) -> Result<[u8; 32], i32> {
    let mut out = [0u8; 32];
    unhex_into(text, &mut out)?;
    Ok(out)
}

/// A key in hex, decoded straight into a secret (no unwiped copy).
fn unhex_secret(text: &str) -> Result<Secret<32>, i32> {
    let mut key = Secret::zero();
    unhex_into(text, key.expose_mut())?;
    Ok(key)
}

fn unhex_into(text: &str, out: &mut [u8; 32]) -> Result<(), i32> {
    let t = text.as_bytes();
    if t.len() != 64 {
        return Err(EINVAL);
    }
    for (o, pair) in out.iter_mut().zip(t.chunks_exact(2)) {
        let s = std::str::from_utf8(pair).map_err(|_| EINVAL)?;
        *o = u8::from_str_radix(s, 16).map_err(|_| EINVAL)?;
    }
    Ok(())
}

#[cfg(test)]
#[path = "uapi_tests.rs"]
mod tests;
