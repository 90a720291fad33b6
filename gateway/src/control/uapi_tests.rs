//! UAPI `get=1`/`set=1`: the wire format `wg` expects and the change policy.
#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use super::*;
use crate::hybrid::{QkdPolicy, Role};
use crate::node::testing::{HybridLink, Site, hybrid, node, plain};
use crate::node::{Node, PeerId};

const A: Site = Site(3);
const B: Site = Site(4);

/// A node answering as the daemon does, without the thread hop.
struct Fixture {
    node: Node,
    now: Instant,
    key: Secret<32>,
    peer_pub: [u8; 32],
}

impl Target for Fixture {
    fn status(&mut self) -> Status {
        self.node.snapshot(self.now)
    }

    fn apply(&mut self, plan: Plan) -> Result<(), i32> {
        self.node.apply_uapi(self.now, plan).map(|_| ())
    }
}

impl Fixture {
    fn new(config: crate::node::NodeConfig) -> Self {
        let now = Instant::now();
        Self {
            node: node(now, config, 1),
            now,
            key: A.private_key(),
            peer_pub: B.public_key(),
        }
    }

    fn plain() -> Self {
        Self::new(plain(A, &[B], false))
    }

    /// The answer, copied out of its zeroizing string for comparisons (fixture keys only).
    fn ask(&mut self, req: &str) -> String {
        let key = self.key.duplicate();
        let device = Device {
            private_key: &key,
            listen_port: 51820,
        };
        handle(req, &device, self).as_str().to_owned()
    }

    fn peer(&self, index: u32) -> Option<&crate::proto::peer::Peer> {
        self.node.wg_peer(PeerId::new(index))
    }

    fn routes_to(&self, ip: &str) -> Option<String> {
        let id = self.node.route(ip.parse().unwrap())?;
        Some(self.node.peer_name(id).to_owned())
    }
}

#[test]
fn get_lists_the_interface_and_peers_in_wg_format() {
    let mut f = Fixture::plain();
    let out = f.ask("get=1\n\n");
    let want = [
        format!("private_key={}", hex(&[3; 32])),
        "listen_port=51820".to_owned(),
        format!("public_key={}", hex(&f.peer_pub)),
        "endpoint=192.0.2.4:51820".to_owned(),
        "last_handshake_time_sec=0".to_owned(),
        "allowed_ip=10.0.4.0/24".to_owned(),
        "persistent_keepalive_interval=0".to_owned(),
    ];
    for line in &want {
        assert!(out.lines().any(|l| l == line), "missing {line} in {out}");
    }
    assert!(out.ends_with("errno=0\n\n"), "{out}");
    assert!(!out.contains("preshared_key"), "PSKs are never sent");
}

#[test]
fn set_changes_endpoint_keepalive_allowed_ips_and_adds_peers() {
    let mut f = Fixture::plain();
    let peer = hex(&f.peer_pub);
    let req = format!(
        "set=1\npublic_key={peer}\nendpoint=[fd00::2]:1234\npersistent_keepalive_interval=7\nreplace_allowed_ips=true\nallowed_ip=10.9.0.0/16\nallowed_ip=fd00:9::/64\npreshared_key={}\n\n",
        hex(&[5; 32])
    );
    assert_eq!(f.ask(&req), "errno=0\n\n");
    let p = f.peer(0).unwrap();
    assert_eq!(p.endpoint(), Some("[fd00::2]:1234".parse().unwrap()));
    assert_eq!(p.persistent_keepalive(), Some(Duration::from_secs(7)));
    let (psk, id) = p.keying().for_next_handshake().unwrap();
    assert_eq!(
        (psk.expose(), id),
        (&[5; 32], None),
        "a plain peer's new static PSK"
    );
    assert_eq!(f.routes_to("10.0.4.2"), None);
    assert_eq!(f.routes_to("10.9.1.1").as_deref(), Some("site-4"));
    assert_eq!(f.routes_to("fd00:9::1").as_deref(), Some("site-4"));

    let new = Site(6).public_key();
    let req = format!(
        "set=1\npublic_key={}\nallowed_ip=10.7.0.0/24\n\n",
        hex(&new)
    );
    assert_eq!(f.ask(&req), "errno=0\n\n");
    assert!(f.node.peer_name(PeerId::new(1)).starts_with("uapi-"));
    let only = format!("set=1\npublic_key={}\nupdate_only=true\n\n", hex(&[8; 32]));
    assert_eq!(f.ask(&only), "errno=0\n\n");
    assert_eq!(f.node.peer_ids().count(), 2, "update_only adds nobody");
}

#[test]
fn refused_and_malformed_requests_change_nothing() {
    let mut f = Fixture::plain();
    let peer = hex(&f.peer_pub);
    let refused = [
        format!("set=1\nprivate_key={}\n\n", hex(&[9; 32])),
        "set=1\nlisten_port=1\n\n".to_owned(),
        "set=1\nreplace_peers=true\n\n".to_owned(),
        "set=1\nfwmark=5\n\n".to_owned(),
        format!("set=1\npublic_key={peer}\nendpoint=10.0.0.9:1\nremove=true\n\n"),
    ];
    for r in &refused {
        assert_eq!(f.ask(r), "errno=1\n\n", "{r}");
    }
    let malformed = [
        "set=1\npublic_key=zz\n\n".to_owned(),
        format!("set=1\npublic_key={peer}\nendpoint=nowhere\n\n"),
        format!("set=1\npublic_key={peer}\nallowed_ip=10.0.0.0/33\n\n"),
        "set=1\nendpoint=10.0.0.1:1\n\n".to_owned(),
        "set=1\nnonsense\n\n".to_owned(),
        "hello\n\n".to_owned(),
        format!("set=1\npublic_key={}\n\n", hex(f.node.public_key())),
    ];
    for r in &malformed {
        assert_eq!(f.ask(r), "errno=22\n\n", "{r}");
    }
    // Our own key and port are accepted unchanged (wg setconf sends them).
    let same = format!(
        "set=1\nprivate_key={}\nlisten_port=51820\nfwmark=0\n\n",
        hex(&[3; 32])
    );
    assert_eq!(f.ask(&same), "errno=0\n\n");
    let p = f.peer(0).unwrap();
    assert_eq!(p.endpoint(), Some(B.addr()));
    assert_eq!(f.node.peer_ids().count(), 1);
}

#[test]
fn a_psk_on_a_hybrid_peer_is_refused_but_other_changes_are_not() {
    let link = HybridLink {
        peer: B,
        role: Role::Master,
        policy: QkdPolicy::Off,
        rekey_after: Duration::from_secs(120),
    };
    let mut f = Fixture::new(hybrid(A, &[link]));
    let peer = hex(&f.peer_pub);
    let psk = format!(
        "set=1\npublic_key={peer}\npreshared_key={}\n\n",
        hex(&[7; 32])
    );
    assert_eq!(
        f.ask(&psk),
        "errno=1\n\n",
        "the PSK slot belongs to the key agreement"
    );
    let keying = f.peer(0).unwrap().keying();
    assert!(
        keying.is_hybrid() && !keying.may_answer(),
        "nothing changed"
    );
    let keepalive = format!("set=1\npublic_key={peer}\npersistent_keepalive_interval=25\n\n");
    assert_eq!(f.ask(&keepalive), "errno=0\n\n");
}

/// A node with hybrid peer site-4 (`10.0.4.0/24`) and plain peer site-5 (`10.0.5.0/24`).
fn hybrid_and_plain() -> Fixture {
    let link = HybridLink {
        peer: B,
        role: Role::Master,
        policy: QkdPolicy::Off,
        rekey_after: Duration::from_secs(120),
    };
    let mut config = hybrid(A, &[link]);
    config.peers.extend(plain(A, &[Site(5)], false).peers);
    Fixture::new(config)
}

#[test]
fn a_plain_peer_never_gets_a_hybrid_peers_allowed_ips() {
    let mut f = hybrid_and_plain();
    let plain_peer = hex(&Site(5).public_key());
    let new_peer = hex(&Site(6).public_key());
    let stealing = [
        // The hybrid peer's own prefix, to an existing plain peer and to a new one.
        format!("set=1\npublic_key={plain_peer}\nallowed_ip=10.0.4.0/24\n\n"),
        format!("set=1\npublic_key={new_peer}\nallowed_ip=10.0.4.0/24\n\n"),
        // A more specific prefix inside it (longest prefix wins), also with host bits set.
        format!("set=1\npublic_key={plain_peer}\nallowed_ip=10.0.4.128/25\n\n"),
        format!("set=1\npublic_key={new_peer}\nallowed_ip=10.0.4.7/32\n\n"),
        // A refused prefix refuses the whole request: the endpoint does not change either.
        format!(
            "set=1\npublic_key={plain_peer}\nendpoint=192.0.2.99:1\nallowed_ip=10.0.9.0/24\nallowed_ip=10.0.4.9\n\n"
        ),
        // A prefix given to the hybrid peer in the same request counts as the hybrid peer's.
        format!(
            "set=1\npublic_key={}\nallowed_ip=10.0.8.0/24\npublic_key={plain_peer}\nallowed_ip=10.0.8.1/32\n\n",
            hex(&f.peer_pub)
        ),
    ];
    for r in &stealing {
        assert_eq!(f.ask(r), "errno=1\n\n", "{r}");
        assert_eq!(f.routes_to("10.0.4.7").as_deref(), Some("site-4"), "{r}");
        assert_eq!(f.routes_to("10.0.4.200").as_deref(), Some("site-4"), "{r}");
        assert_eq!(f.routes_to("10.0.9.1"), None, "nothing applied: {r}");
        assert_eq!(f.routes_to("10.0.8.1"), None, "nothing applied: {r}");
        assert_eq!(f.peer(1).unwrap().endpoint(), Some(Site(5).addr()), "{r}");
        assert_eq!(f.node.peer_ids().count(), 2, "nobody added: {r}");
    }
    // A less specific prefix leaves the hybrid peer's range with the hybrid peer.
    let wider = format!("set=1\npublic_key={plain_peer}\nallowed_ip=10.0.0.0/8\n\n");
    assert_eq!(f.ask(&wider), "errno=0\n\n");
    assert_eq!(f.routes_to("10.0.4.7").as_deref(), Some("site-4"));
    assert_eq!(f.routes_to("10.0.7.1").as_deref(), Some("site-5"));
    // Taking the range away from the hybrid peer would now hand it to the plain peer's /8.
    let shrink = format!(
        "set=1\npublic_key={}\nreplace_allowed_ips=true\nallowed_ip=10.0.8.0/24\n\n",
        hex(&f.peer_pub)
    );
    assert_eq!(f.ask(&shrink), "errno=1\n\n");
    assert_eq!(f.routes_to("10.0.4.7").as_deref(), Some("site-4"));
    // Adding to the hybrid peer, and plain prefixes elsewhere, stay allowed.
    let grow = format!(
        "set=1\npublic_key={}\nallowed_ip=10.0.8.0/24\npublic_key={plain_peer}\nallowed_ip=10.0.9.0/24\n\n",
        hex(&f.peer_pub)
    );
    assert_eq!(f.ask(&grow), "errno=0\n\n");
    assert_eq!(f.routes_to("10.0.8.1").as_deref(), Some("site-4"));
    assert_eq!(f.routes_to("10.0.9.1").as_deref(), Some("site-5"));
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(64))]

    /// Whatever a `wg set` does to allowed IPs, an address routed to the hybrid peer before it
    /// is afterwards routed to the hybrid peer or to nobody, never to a plain peer; a refused
    /// request changes no route.
    #[test]
    fn no_request_moves_hybrid_traffic_to_a_plain_peer(
        sections in proptest::collection::vec(
            (0usize..3, proptest::bool::ANY, proptest::collection::vec(
                (3u8..=6, proptest::num::u8::ANY, proptest::sample::select(vec![8u8, 16, 22, 24, 25, 28, 32])),
                0..4,
            )),
            1..4,
        ),
    ) {
        let mut f = hybrid_and_plain();
        let peers = [B.public_key(), Site(5).public_key(), Site(6).public_key()];
        let mut req = "set=1\n".to_owned();
        let mut probes: Vec<String> = Vec::new();
        for (peer, replace, ips) in &sections {
            req += &format!("public_key={}\n", hex(&peers[*peer]));
            if *replace {
                req += "replace_allowed_ips=true\n";
            }
            for (octet, host, len) in ips {
                req += &format!("allowed_ip=10.0.{octet}.{host}/{len}\n");
                probes.push(format!("10.0.{octet}.{host}"));
            }
        }
        req += "\n";
        for octet in 0..=8u8 {
            for host in (0..=255u8).step_by(8).chain([7, 255]) {
                probes.push(format!("10.0.{octet}.{host}"));
            }
        }
        probes.push("10.1.0.1".to_owned());
        let before: Vec<_> = probes.iter().map(|p| f.routes_to(p)).collect();
        let answer = f.ask(&req);
        for (p, was) in probes.iter().zip(&before) {
            let now = f.routes_to(p);
            if answer == "errno=1\n\n" {
                proptest::prop_assert_eq!(&now, was, "refused, yet {} moved: {}", p, req);
            } else if was.as_deref() == Some("site-4") {
                proptest::prop_assert!(
                    now.is_none() || now.as_deref() == Some("site-4"),
                    "{} went from the hybrid peer to {:?}: {}", p, now, req
                );
            }
        }
    }
}

#[test]
fn a_parsed_request_never_shows_its_keys() {
    let req = format!(
        "private_key={}\npublic_key={}\npreshared_key={}\n",
        hex(&[0xab; 32]),
        hex(&B.public_key()),
        hex(&[0xcd; 32])
    );
    let plan = parse_set(req.lines()).unwrap();
    let shown = format!("{plan:?}");
    for secret in ["171", "205", "abab", "cdcd"] {
        assert!(!shown.contains(secret), "{secret} in {shown}");
    }
}

/// What can be checked of the wiping: the answer (a `get=1` carries the private key) is a
/// zeroizing string, so it is wiped when dropped. (The memory itself is not inspected.)
#[test]
fn answers_are_wiped_after_use() {
    let mut f = Fixture::plain();
    let key = f.key.duplicate();
    let device = Device {
        private_key: &key,
        listen_port: 51820,
    };
    let answer: zeroize::Zeroizing<String> = handle("get=1\n\n", &device, &mut f);
    assert!(answer.starts_with(&format!("private_key={}\n", hex(&[3; 32]))));
}
