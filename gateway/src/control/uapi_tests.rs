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

    fn ask(&mut self, req: &str) -> String {
        let key = self.key.duplicate();
        let device = Device {
            private_key: &key,
            listen_port: 51820,
        };
        handle(req, &device, self)
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
