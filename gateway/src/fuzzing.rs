//! Bodies of the cargo-fuzz targets (`fuzz/fuzz_targets/gateway_*.rs`), here so that plain unit
//! and property tests exercise them on stable Rust in CI, and the fuzzers on nightly go deeper.
//!
//! | target | body | what it feeds |
//! |---|---|---|
//! | `gateway_message` | [`message`] | the wire parser of all four message types |
//! | `gateway_ip` | [`ip_packet`] | the IP header parser (decrypted packets, TUN packets) |
//! | `gateway_datagram` | [`datagram`] | the interface's datagram entry point, raw or mutating a real handshake/transport message, then a tunnel packet |
//! | `gateway_uapi` | [`uapi_request`] | the UAPI `get=1`/`set=1` parser and applier |
//! | `gateway_config` | [`config_text`] | the YAML config parser (no validation: that reads key files) |
//! | `gateway_audit_verify` | [`audit_verify`] | the audit-log verifier, raw or mutating a real signed log |
//!
//! Every body must return without panicking on any input; memory stays bounded because the
//! interface bounds its queues and tables.

use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use crate::config::Config;
use crate::control::uapi::{self, Device};
use crate::proto::crypto::SeededEntropy;
use crate::proto::interface::{Incoming, Interface, PeerSpec};
use crate::proto::messages::Message;
use crate::proto::secret::Secret;
use crate::proto::tai64n::WallClock;

/// Parses `data` as a WireGuard message.
pub fn message(data: &[u8]) {
    if let Ok(m) = Message::parse(data) {
        let _ = m.msg_type();
    }
}

/// Parses `data` as an IP packet header.
pub fn ip_packet(data: &[u8]) {
    if let Some(info) = crate::proto::ip::parse(data) {
        assert!(info.len <= data.len());
    }
}

type Ifc = Interface<SeededEntropy>;

const A: &str = "192.0.2.1:51820";
const B: &str = "192.0.2.2:51820";

fn addr(s: &str) -> SocketAddr {
    s.parse()
        .unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)))
}

fn site(seed: u8, t0: Instant) -> Ifc {
    let clock = WallClock::new(t0, Duration::from_secs(1_750_000_000));
    Interface::new(
        Secret::new([seed; 32]),
        clock,
        SeededEntropy::new(seed.into()),
        1420,
        512,
    )
}

fn spec(key: [u8; 32], endpoint: &str, net: [u8; 4]) -> PeerSpec {
    PeerSpec {
        public_key: key,
        psk: None,
        endpoint: Some(addr(endpoint)),
        allowed_ips: vec![(net.into(), 24)],
        persistent_keepalive: None,
    }
}

/// Interface `a` (10.0.1.0/24) with peer `b` (10.0.2.0/24), and real messages from `b`:
/// `[initiation, response-to-a's-initiation, transport]` (some may be empty).
fn fixture(t0: Instant) -> (Ifc, [Vec<u8>; 3]) {
    let (mut a, mut b) = (site(1, t0), site(2, t0));
    let (ka, kb) = (*a.public_key(), *b.public_key());
    let _ = a.add_peer(spec(kb, B, [10, 0, 2, 0]));
    let _ = b.add_peer(spec(ka, A, [10, 0, 1, 0]));
    let mut buf = vec![0u8; 2048];
    let packet = [
        0x45, 0, 0, 20, 0, 0, 0, 0, 64, 17, 0, 0, 10, 0, 2, 1, 10, 0, 1, 1,
    ];
    buf[16..36].copy_from_slice(&packet);
    let _ = b.handle_tunnel_packet(t0, &mut buf, packet.len());
    let mut out = vec![0u8; 2048];
    let init = b
        .poll_transmit(t0, &mut out)
        .map(|(_, t)| out[..t.len].to_vec());
    let init = init.unwrap_or_default();
    // b's response to an initiation of a's (a initiates towards b too).
    let mut a_init = vec![0u8; 2048];
    let _ = a.peer_mut(0).map(|p| p.request_handshake());
    let a_len = a.poll_transmit(t0, &mut a_init).map_or(0, |(_, t)| t.len);
    let mut resp = Vec::new();
    if let Ok(Incoming::Reply(t)) = b.handle_datagram(t0, addr(A), &mut a_init[..a_len], &mut out) {
        resp = out[..t.len].to_vec();
    }
    // Complete b's own handshake with a so b can send transport data.
    let mut init_copy = init.clone();
    let mut transport = Vec::new();
    if let Ok(Incoming::Reply(t)) = a.handle_datagram(t0, addr(B), &mut init_copy, &mut out) {
        let mut r = out[..t.len].to_vec();
        let _ = b.handle_datagram(t0, addr(A), &mut r, &mut out);
        if let Some((_, t)) = b.poll_transmit(t0, &mut out) {
            transport = out[..t.len].to_vec();
        }
    }
    (a, [init, resp, transport])
}

/// Feeds `data` to an interface's datagram entry point. `data[0]` picks a base: 0–2 overlay the
/// rest onto a real initiation, response or transport message (so mutations get past the
/// parser), anything else sends the rest raw; then the rest is also tried as a tunnel packet.
pub fn datagram(data: &[u8]) {
    let t0 = Instant::now();
    let (mut a, bases) = fixture(t0);
    let (mode, rest) = data.split_first().map_or((255, data), |(m, r)| (*m, r));
    let mut d = match bases.get(usize::from(mode)) {
        Some(base) => {
            let mut d = base.clone();
            for (i, x) in rest.iter().enumerate() {
                if let Some(b) = d.get_mut(i) {
                    *b ^= x;
                } else {
                    d.push(*x);
                }
            }
            d
        }
        None => rest.to_vec(),
    };
    let mut out = vec![0u8; 2048];
    for when in [t0, t0 + Duration::from_secs(200)] {
        let len = d.len();
        if let Ok(Incoming::Tunnel { range, .. }) =
            a.handle_datagram(when, addr(B), &mut d, &mut out)
        {
            assert!(range.end <= len);
        }
        while a.poll_transmit(when, &mut out).is_some() {}
    }
    let mut buf = vec![0u8; rest.len() + 64];
    buf[16..16 + rest.len()].copy_from_slice(rest);
    let _ = a.handle_tunnel_packet(t0, &mut buf, rest.len());
}

/// Feeds `data` as a UAPI request to an interface with one peer.
pub fn uapi_request(data: &[u8]) {
    let t0 = Instant::now();
    let (mut a, _) = fixture(t0);
    let key = Secret::new([1; 32]);
    let mut names = vec!["b".to_owned()];
    let clock = WallClock::new(t0, Duration::from_secs(1_750_000_000));
    let mut dev = Device {
        private_key: &key,
        listen_port: 51820,
        names: &mut names,
        clock: &clock,
    };
    let (answer, _) = uapi::handle(&String::from_utf8_lossy(data), t0, &mut a, &mut dev);
    assert!(answer.ends_with("\n\n"));
}

/// Parses `data` as a YAML config.
pub fn config_text(data: &[u8]) {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = Config::parse(Path::new("fuzz.yaml"), text);
    }
}

/// Feeds `data` to the audit-log verifier (docs/audit.md §6). `data[0]`: bit 0 overlays the rest
/// onto a real signed log (XOR: zero bytes leave it valid, so the fuzzer starts from a log that
/// verifies), otherwise the rest is the file; bit 1 pins the signer key; bit 2 splits the bytes
/// into two files.
pub fn audit_verify(data: &[u8]) {
    use crate::audit::{testing, verify_bytes};
    static BASE: std::sync::OnceLock<(Vec<u8>, keymix::mldsa::VerifyingKey)> =
        std::sync::OnceLock::new();
    let (base, key) = BASE.get_or_init(|| {
        let k = testing::signing_key(1);
        (testing::sample_log(Some(&k), 6), k.verifying_key().clone())
    });
    let (mode, rest) = data.split_first().map_or((0, data), |(m, r)| (*m, r));
    let mut bytes = if mode & 1 == 1 {
        base.clone()
    } else {
        Vec::new()
    };
    for (i, x) in rest.iter().enumerate() {
        match bytes.get_mut(i) {
            Some(b) if mode & 1 == 1 => *b ^= x,
            _ => bytes.push(*x),
        }
    }
    let pinned = (mode & 2 != 0).then(|| key.clone());
    let cut = if mode & 4 != 0 {
        bytes.len() / 2
    } else {
        bytes.len()
    };
    let (a, b) = bytes.split_at(cut);
    let _ = verify_bytes(&[("a.jsonl", a), ("b.jsonl", b)], pinned);
}

#[cfg(test)]
#[path = "fuzzing_tests.rs"]
mod tests;
