#![allow(clippy::unwrap_used)]

use super::*;
use crate::proto::interface::PeerSpec;
use crate::proto::secret::Secret;

struct Fixed(u8);
impl Entropy for Fixed {
    fn fill(&mut self, buf: &mut [u8]) {
        for b in buf {
            self.0 = self.0.wrapping_mul(31).wrapping_add(7);
            *b = self.0;
        }
    }
}

#[test]
fn collects_peers_and_round_trips_through_json() {
    let clock = wall_clock_now();
    let mut ifc = Interface::new(Secret::new([7; 32]), clock, Fixed(1), 1420, 512);
    let other = crate::proto::handshake::StaticKeys::new(Secret::new([9; 32]));
    ifc.add_peer(PeerSpec {
        public_key: *other.public(),
        psk: None,
        endpoint: Some("10.0.0.2:51820".parse().unwrap()),
        allowed_ips: vec![("10.1.0.0".parse().unwrap(), 16)],
        persistent_keepalive: Some(std::time::Duration::from_secs(25)),
    })
    .unwrap();
    let st = Status::collect(
        Instant::now(),
        "qgw0",
        51820,
        &ifc,
        &["site-b".into()],
        &clock,
        &|_| None,
    );
    let p = &st.peers[0];
    assert_eq!(p.name, "site-b");
    assert_eq!(p.endpoint.as_deref(), Some("10.0.0.2:51820"));
    assert_eq!(p.allowed_ips, ["10.1.0.0/16"]);
    assert_eq!((p.latest_handshake_unix, p.key_epoch), (None, 0));
    assert_eq!(st.drops.len(), DropReason::ALL.len());
    let json = serde_json::to_string(&st).unwrap();
    for field in [
        "\"peers\"",
        "\"latest_handshake_unix\"",
        "\"rx_bytes\"",
        "\"tx_bytes\"",
    ] {
        assert!(json.contains(field), "{json}");
    }
    assert_eq!(serde_json::from_str::<Status>(&json).unwrap(), st);
    let text = st.render(unix_now());
    assert!(
        text.contains("peer: site-b") && text.contains("every 25 seconds"),
        "{text}"
    );
}
