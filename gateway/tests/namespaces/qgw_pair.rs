//! qgw ↔ qgw in two network namespaces (whitepaper §5–§6 end to end): ping both ways over IPv4
//! and IPv6, a 100 MB TCP transfer checked by SHA-256 at both ends, `qgw status --json` and
//! `wg show`/`wg set` against qgw's UAPI, a 1280-byte underlay, a rekey, endpoint roaming, a
//! restart after a crash, and a handshake flood that forces cookies. See `netns/mod.rs` for the
//! harness and its CI rules.
#![allow(clippy::unwrap_used)]

use crate::netns;

use std::time::Duration;

use netns::lab::Lab;
use netns::pair::{PairOptions, SiteSetup, start_qgw_pair};
use netns::qgw::{assert_wg_show, peer_field, status};
use netns::traffic::{
    assert_pings_both_ways, assert_tcp_transfer, frag_creates, handshake_under_flood,
};
use netns::wait_for;

#[test]
fn pair_ping_ipv6_100mb_status_and_wg_show() {
    let Some(mut lab) = Lab::for_test(&["wg"], None) else {
        return;
    };
    let p = start_qgw_pair(
        &mut lab,
        PairOptions {
            v6: true,
            ..PairOptions::default()
        },
    );
    let (a, b) = (lab.a.clone(), lab.b.clone());
    assert_pings_both_ways(&lab, 3, None, true);

    let size = 100 << 20;
    assert_tcp_transfer(&b, &a, "10.201.0.2:5001", size, "100 MB a -> b");

    let st = status(&lab, &a, &p.ia);
    let peer = &st["peers"][0];
    assert_eq!(peer["name"], "peer");
    assert_eq!(peer["endpoint"], "10.200.0.2:51820");
    assert!(peer["tx_bytes"].as_u64().unwrap() > size as u64, "{st}");
    assert!(peer["rx_bytes"].as_u64().unwrap() > 0);
    assert!(peer["key_epoch"].as_u64().unwrap() >= 1);
    let hs = peer["latest_handshake_unix"].as_u64().unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap();
    assert!(now.as_secs().abs_diff(hs) < 120, "handshake time {hs}");
    let rx_b = peer_field(&lab, &b, &p.ib, "rx_bytes").as_u64().unwrap();
    assert!(rx_b > size as u64, "b received {rx_b}");

    // `qgw status` without an interface lists every running instance (one socket each).
    let all = lab.check(&a, &[env!("CARGO_BIN_EXE_qgw"), "status"]);
    for i in [&p.ia, &p.ib] {
        assert!(all.contains(&format!("interface: {i}\n")), "{all}");
    }
    assert!(
        all.contains("peer: peer (") && all.contains("key epoch: "),
        "{all}"
    );

    // `wg show` and `wg set` through qgw's UAPI socket.
    let pb = st["peers"][0]["public_key"].as_str().unwrap();
    assert_wg_show(&lab, &a, &p.ia, pb);
    lab.check(
        &a,
        &["wg", "set", &p.ia, "peer", pb, "persistent-keepalive", "7"],
    );
    wait_for(
        "the new keepalive in status",
        Duration::from_secs(5),
        || peer_field(&lab, &a, &p.ia, "persistent_keepalive") == 7,
    );
    let other = lab.write("other.key", &netns::qgw::keypair().0);
    let refused = lab.exec(
        &a,
        &["wg", "set", &p.ia, "private-key", other.to_str().unwrap()],
    );
    assert!(
        !refused.status.success(),
        "a private key change must be refused"
    );
    assert!(
        lab.ping(&a, "10.201.0.2", 2, None),
        "still up after the refused change"
    );
}

#[test]
fn pair_underlay_mtu_1280() {
    // 1280 = 20 (IPv4) + 8 (UDP) + 32 (WireGuard header and tag) + 1220 (tunnel MTU).
    let Some(mut lab) = Lab::for_test(&[], Some(1280)) else {
        return;
    };
    start_qgw_pair(&mut lab, PairOptions::with_mtu(1220));
    let (a, b) = (lab.a.clone(), lab.b.clone());
    // 1192 + 8 (ICMP) + 20 (IP) = 1220: the largest packet that fits, sent with DF.
    assert_pings_both_ways(&lab, 3, Some(1192), false);
    assert!(
        !lab.ping(&a, "10.201.0.2", 1, Some(1193)),
        "1221 bytes exceed the tunnel MTU"
    );
    assert_tcp_transfer(&a, &b, "10.201.0.1:5002", 20 << 20, "20 MB b -> a");
    // Nothing was fragmented on the underlay: every datagram fit in 1280 bytes.
    for ns in [&a, &b] {
        let frag = frag_creates(&lab, ns);
        assert_eq!(frag, "0", "{ns} fragmented underlay datagrams");
    }
}

#[test]
fn pair_rekey_roaming_and_restart() {
    let Some(mut lab) = Lab::for_test(&[], None) else {
        return;
    };
    let a_setup = SiteSetup {
        interface: "danger_rekey_after_seconds: 5",
        peer: "persistent_keepalive: 2",
        ..SiteSetup::default()
    };
    // Both sites handshake at start (each has the other's endpoint), so either may be the
    // initiator whose timer rekeys: both rekey every 5 s.
    let b_setup = SiteSetup {
        interface: "danger_rekey_after_seconds: 5",
        ..SiteSetup::default()
    };
    let options = PairOptions {
        b: b_setup,
        ..PairOptions::with_a(a_setup)
    };
    let mut p = start_qgw_pair(&mut lab, options);
    let (a, b) = (lab.a.clone(), lab.b.clone());
    let up = lab.ping_until(&a, "10.201.0.2", Duration::from_secs(15));
    assert!(up, "{}", lab.log("qa.log"));
    // Rekey: the initiator rekeys every ~5 s while it sends (keepalives included).
    let epoch =
        |lab: &Lab, ns: &str, i: &str| peer_field(lab, ns, i, "key_epoch").as_u64().unwrap();
    let first = epoch(&lab, &a, &p.ia);
    wait_for("two rekeys", Duration::from_secs(30), || {
        lab.ping(&a, "10.201.0.2", 1, None);
        epoch(&lab, &a, &p.ia) >= first + 2
    });
    // Status is the packet thread's last published one if it does not answer within 100 ms (a
    // busy machine), so what b reports is waited for, not read once.
    wait_for("b to report the rekeys too", Duration::from_secs(5), || {
        epoch(&lab, &b, &p.ib) >= first + 2
    });
    assert!(
        lab.ping(&b, "10.201.0.1", 2, None),
        "traffic flows after rekeys"
    );

    // Roaming: a's underlay address changes; b learns it from a's next authenticated packet.
    lab.roam_a();
    wait_for(
        "b to report a's new endpoint",
        Duration::from_secs(5),
        || peer_field(&lab, &b, &p.ib, "endpoint") == "10.200.0.3:51820",
    );
    assert!(
        lab.ping(&b, "10.201.0.1", 2, None),
        "b -> a at a's new address"
    );

    // Restart: a crashes (SIGKILL: no cleanup), starts again, and the tunnel comes back without
    // any traffic from a: its persistent keepalive handshakes at startup.
    p.crash_a(&mut lab);
    let before = epoch(&lab, &b, &p.ib);
    p.restart_a(&mut lab, "qa2.log");
    assert!(
        lab.ping_until(&b, "10.201.0.1", Duration::from_secs(20)),
        "b -> a after a's restart: {}",
        lab.log("qa2.log")
    );
    assert!(
        epoch(&lab, &b, &p.ib) > before,
        "a new session after the restart"
    );
}

#[test]
fn pair_handshake_flood_forces_cookies() {
    let Some(mut lab) = Lab::for_test(&[], None) else {
        return;
    };
    let a_setup = SiteSetup {
        interface: "handshake_load_threshold: 20",
        top: "metrics:\n  listen: 127.0.0.1:9586\n",
        ..SiteSetup::default()
    };
    let p = start_qgw_pair(&mut lab, PairOptions::with_a(a_setup));
    let a = lab.a.clone();
    // 200 initiations/s for 8 s from b's namespace keep a under load (threshold 20/s) while b's
    // qgw handshakes: its first initiation gets a cookie reply, its retry carries mac2.
    let (up, replies) = handshake_under_flood(&lab, &p.pub_a);
    assert!(up, "b -> a under load: {}", lab.log("qb.log"));
    let st = status(&lab, &a, &p.ia);
    let sent = st["cookie_replies_sent"].as_u64().unwrap();
    assert!(
        sent >= replies as u64,
        "status counts {sent} < {replies} received"
    );
    assert_eq!(st["drops"]["cookie_required"], sent);
    // The same counter on the metrics endpoint (Prometheus text), fetched inside a's namespace.
    let text = netns::traffic::in_netns(&a, || {
        use std::io::{Read, Write};
        let mut c = std::net::TcpStream::connect("127.0.0.1:9586").unwrap();
        c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        c.write_all(b"GET /metrics HTTP/1.0\r\n\r\n").unwrap();
        let mut out = String::new();
        c.read_to_string(&mut out).unwrap();
        out
    });
    let line = format!(
        "qgw_cookie_replies_sent_total{{interface=\"{}\"}} {sent}",
        p.ia
    );
    assert!(text.lines().any(|l| l == line), "no {line:?} in\n{text}");
}
