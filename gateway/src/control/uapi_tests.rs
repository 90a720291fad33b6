//! UAPI `get=1`/`set=1`: the wire format `wg` expects and the change policy.
#![allow(clippy::unwrap_used)]

use super::*;
use crate::control::status::wall_clock_now;
use crate::proto::handshake::StaticKeys;

struct Counter(u8);
impl Entropy for Counter {
    fn fill(&mut self, buf: &mut [u8]) {
        for b in buf {
            self.0 = self.0.wrapping_mul(13).wrapping_add(5);
            *b = self.0;
        }
    }
}

struct Fixture {
    ifc: Interface<Counter>,
    key: Secret<32>,
    names: Vec<String>,
    clock: WallClock,
    peer_pub: [u8; 32],
}

impl Fixture {
    fn new() -> Self {
        let clock = wall_clock_now();
        let mut ifc = Interface::new(Secret::new([3; 32]), clock, Counter(1), 1420, 512);
        let peer_pub = *StaticKeys::new(Secret::new([4; 32])).public();
        ifc.add_peer(PeerSpec {
            public_key: peer_pub,
            psk: None,
            endpoint: Some("10.0.0.2:51820".parse().unwrap()),
            allowed_ips: vec![("10.1.0.2".parse().unwrap(), 32)],
            persistent_keepalive: None,
        })
        .unwrap();
        Self {
            ifc,
            key: Secret::new([3; 32]),
            names: vec!["site-b".into()],
            clock,
            peer_pub,
        }
    }

    fn ask(&mut self, req: &str) -> (String, Vec<usize>) {
        let mut dev = Device {
            private_key: &self.key,
            listen_port: 51820,
            names: &mut self.names,
            clock: &self.clock,
        };
        handle(req, Instant::now(), &mut self.ifc, &mut dev)
    }
}

#[test]
fn get_lists_the_interface_and_peers_in_wg_format() {
    let mut f = Fixture::new();
    let (out, _) = f.ask("get=1\n\n");
    let want = [
        format!("private_key={}", hex(&[3; 32])),
        "listen_port=51820".to_owned(),
        format!("public_key={}", hex(&f.peer_pub)),
        "endpoint=10.0.0.2:51820".to_owned(),
        "last_handshake_time_sec=0".to_owned(),
        "allowed_ip=10.1.0.2/32".to_owned(),
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
    let mut f = Fixture::new();
    let peer = hex(&f.peer_pub);
    let req = format!(
        "set=1\npublic_key={peer}\nendpoint=[fd00::2]:1234\npersistent_keepalive_interval=7\nreplace_allowed_ips=true\nallowed_ip=10.9.0.0/16\nallowed_ip=fd00:9::/64\npreshared_key={}\n\n",
        hex(&[5; 32])
    );
    assert_eq!(f.ask(&req).0, "errno=0\n\n");
    let p = f.ifc.peer(0).unwrap();
    assert_eq!(p.endpoint(), Some("[fd00::2]:1234".parse().unwrap()));
    assert_eq!(p.persistent_keepalive(), Some(Duration::from_secs(7)));
    assert_eq!(p.next_psk_id(), 1);
    assert_eq!(f.ifc.routes().lookup("10.1.0.2".parse().unwrap()), None);
    assert_eq!(f.ifc.routes().lookup("10.9.1.1".parse().unwrap()), Some(0));
    assert_eq!(f.ifc.routes().lookup("fd00:9::1".parse().unwrap()), Some(0));

    let new = *StaticKeys::new(Secret::new([6; 32])).public();
    let req = format!(
        "set=1\npublic_key={}\nallowed_ip=10.7.0.0/24\n\n",
        hex(&new)
    );
    let (out, added) = f.ask(&req);
    assert_eq!((out.as_str(), added.as_slice()), ("errno=0\n\n", &[1][..]));
    assert!(f.names[1].starts_with("uapi-"));
    let only = format!("set=1\npublic_key={}\nupdate_only=true\n\n", hex(&[8; 32]));
    assert_eq!(f.ask(&only).1, Vec::<usize>::new());
    assert_eq!(f.ifc.peer_count(), 2);
}

#[test]
fn refused_and_malformed_requests_change_nothing() {
    let mut f = Fixture::new();
    let peer = hex(&f.peer_pub);
    let refused = [
        format!("set=1\nprivate_key={}\n\n", hex(&[9; 32])),
        "set=1\nlisten_port=1\n\n".to_owned(),
        "set=1\nreplace_peers=true\n\n".to_owned(),
        "set=1\nfwmark=5\n\n".to_owned(),
        format!("set=1\npublic_key={peer}\nendpoint=10.0.0.9:1\nremove=true\n\n"),
    ];
    for r in &refused {
        assert_eq!(f.ask(r).0, "errno=1\n\n", "{r}");
    }
    let malformed = [
        "set=1\npublic_key=zz\n\n".to_owned(),
        format!("set=1\npublic_key={peer}\nendpoint=nowhere\n\n"),
        format!("set=1\npublic_key={peer}\nallowed_ip=10.0.0.0/33\n\n"),
        "set=1\nendpoint=10.0.0.1:1\n\n".to_owned(),
        "set=1\nnonsense\n\n".to_owned(),
        "hello\n\n".to_owned(),
        format!("set=1\npublic_key={}\n\n", hex(f.ifc.public_key())),
    ];
    for r in &malformed {
        assert_eq!(f.ask(r).0, "errno=22\n\n", "{r}");
    }
    // Our own key and port are accepted unchanged (wg setconf sends them).
    let same = format!(
        "set=1\nprivate_key={}\nlisten_port=51820\nfwmark=0\n\n",
        hex(&[3; 32])
    );
    assert_eq!(f.ask(&same).0, "errno=0\n\n");
    let p = f.ifc.peer(0).unwrap();
    assert_eq!(p.endpoint(), Some("10.0.0.2:51820".parse().unwrap()));
    assert_eq!(f.ifc.peer_count(), 1);
}

#[test]
fn a_psk_on_a_hybrid_peer_is_refused_but_other_changes_are_not() {
    let mut f = Fixture::new();
    let peer = hex(&f.peer_pub);
    f.ifc
        .peer_mut(0)
        .unwrap()
        .set_handshake_gate(crate::proto::peer::HandshakeGate::HybridMaster);
    let psk = format!(
        "set=1\npublic_key={peer}\npreshared_key={}\n\n",
        hex(&[7; 32])
    );
    assert_eq!(
        f.ask(&psk).0,
        "errno=1\n\n",
        "the PSK slot belongs to the key agreement"
    );
    assert_eq!(f.ifc.peer(0).unwrap().next_psk_id(), 0, "nothing changed");
    let keepalive = format!("set=1\npublic_key={peer}\npersistent_keepalive_interval=25\n\n");
    assert_eq!(f.ask(&keepalive).0, "errno=0\n\n");
}
