//! qgw ↔ qgw in two network namespaces (issue 4, "Tests and numbers"): ping both ways over IPv4
//! and IPv6, a 100 MB TCP transfer checked by SHA-256 at both ends, `qgw status --json` and
//! `wg show`/`wg set` against qgw's UAPI, a 1280-byte underlay, a rekey, endpoint roaming, a
//! restart after a crash, and a handshake flood that forces cookies. See `netns/mod.rs` for the
//! harness and its CI rules.
#![allow(clippy::unwrap_used)]

mod netns;

use std::time::Duration;

use netns::traffic::{handshake_flood, tcp_transfer};
use netns::{Lab, QgwSite, peer_field, prerequisites, start_qgw, status, wait_for};

/// A running pair: site a (`qa…`, 10.201.0.1) and site b (`qb…`, 10.201.0.2).
struct Pair {
    ia: String,
    ib: String,
    ha: usize,
    cfg_a: std::path::PathBuf,
    pub_a: String,
}

#[derive(Default)]
struct Opts<'a> {
    mtu: Option<u32>,
    v6: bool,
    extra_a: &'a str,
    peer_extra_a: &'a str,
    /// Top-level YAML appended to site a's config (e.g. a `metrics:` section).
    tail_a: &'a str,
}

fn start_pair(lab: &mut Lab, o: Opts<'_>) -> Pair {
    let (ia, ib) = (format!("qa{}", lab.id), format!("qb{}", lab.id));
    let ((ka, pa), (kb, pb)) = (netns::keypair(), netns::keypair());
    let (ka, kb) = (lab.write("ka", &ka), lab.write("kb", &kb));
    let mtu = o.mtu.unwrap_or(1420);
    let (addr_a, addr_b): (&[&str], &[&str]) = if o.v6 {
        (
            &["10.201.0.1/24", "\"fd00:201::1/64\""],
            &["10.201.0.2/24", "\"fd00:201::2/64\""],
        )
    } else {
        (&["10.201.0.1/24"], &["10.201.0.2/24"])
    };
    let (allow_a, allow_b): (&[&str], &[&str]) = if o.v6 {
        (
            &["10.201.0.2/32", "\"fd00:201::2/128\""],
            &["10.201.0.1/32", "\"fd00:201::1/128\""],
        )
    } else {
        (&["10.201.0.2/32"], &["10.201.0.1/32"])
    };
    let a = QgwSite {
        iface: &ia,
        addresses: addr_a,
        key_file: &ka,
        mtu,
        extra: o.extra_a,
        peer_pub: &pb,
        endpoint: Some("10.200.0.2:51820"),
        allowed: allow_a,
        peer_extra: o.peer_extra_a,
    };
    let b = QgwSite {
        iface: &ib,
        addresses: addr_b,
        key_file: &kb,
        mtu,
        extra: "",
        peer_pub: &pa,
        endpoint: Some("10.200.0.1:51820"),
        allowed: allow_b,
        peer_extra: "",
    };
    let (cfg_a, cfg_b) = (
        lab.write("a.yaml", &(a.yaml() + o.tail_a)),
        lab.write("b.yaml", &b.yaml()),
    );
    let (na, nb) = (lab.a.clone(), lab.b.clone());
    let ha = start_qgw(lab, &na, &ia, &cfg_a, "qa.log");
    start_qgw(lab, &nb, &ib, &cfg_b, "qb.log");
    Pair {
        ia,
        ib,
        ha,
        cfg_a,
        pub_a: pa,
    }
}

#[test]
fn pair_ping_ipv6_100mb_status_and_wg_show() {
    if !prerequisites("pair_ping_ipv6_100mb_status_and_wg_show", &["wg"]) {
        return;
    }
    let mut lab = Lab::new("f", None);
    let p = start_pair(
        &mut lab,
        Opts {
            v6: true,
            ..Opts::default()
        },
    );
    let (a, b) = (lab.a.clone(), lab.b.clone());
    assert!(
        lab.ping(&a, "10.201.0.2", 3, None),
        "a -> b: {}",
        lab.log("qa.log")
    );
    assert!(lab.ping(&b, "10.201.0.1", 3, None), "b -> a");
    assert!(lab.ping(&a, "fd00:201::2", 3, None), "a -> b over IPv6");
    assert!(lab.ping(&b, "fd00:201::1", 3, None), "b -> a over IPv6");

    let size = 100 << 20;
    let (sent, got, n) = tcp_transfer(&b, &a, "10.201.0.2:5001".parse().unwrap(), size);
    assert_eq!((n, &got), (size, &sent), "100 MB a -> b: SHA-256 differs");

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
    let shown = lab.check(&a, &["wg", "show", &p.ia]);
    let pb = st["peers"][0]["public_key"].as_str().unwrap();
    for want in [
        pb,
        "endpoint: 10.200.0.2:51820",
        "latest handshake:",
        "transfer:",
    ] {
        assert!(shown.contains(want), "`wg show` lacks {want:?}:\n{shown}");
    }
    lab.check(
        &a,
        &["wg", "set", &p.ia, "peer", pb, "persistent-keepalive", "7"],
    );
    assert_eq!(peer_field(&lab, &a, &p.ia, "persistent_keepalive"), 7);
    let other = lab.write("other.key", &netns::keypair().0);
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
    if !prerequisites("pair_underlay_mtu_1280", &[]) {
        return;
    }
    // 1280 = 20 (IPv4) + 8 (UDP) + 32 (WireGuard header and tag) + 1220 (tunnel MTU).
    let mut lab = Lab::new("m", Some(1280));
    start_pair(
        &mut lab,
        Opts {
            mtu: Some(1220),
            ..Opts::default()
        },
    );
    let (a, b) = (lab.a.clone(), lab.b.clone());
    // 1192 + 8 (ICMP) + 20 (IP) = 1220: the largest packet that fits, sent with DF.
    assert!(
        lab.ping(&a, "10.201.0.2", 3, Some(1192)),
        "{}",
        lab.log("qa.log")
    );
    assert!(lab.ping(&b, "10.201.0.1", 3, Some(1192)));
    assert!(
        !lab.ping(&a, "10.201.0.2", 1, Some(1193)),
        "1221 bytes exceed the tunnel MTU"
    );
    let size = 20 << 20;
    let (sent, got, n) = tcp_transfer(&a, &b, "10.201.0.1:5002".parse().unwrap(), size);
    assert_eq!((n, &got), (size, &sent));
    // Nothing was fragmented on the underlay: every datagram fit in 1280 bytes.
    for ns in [&a, &b] {
        let snmp = lab.check(ns, &["cat", "/proc/net/snmp"]);
        let ip: Vec<&str> = snmp.lines().filter(|l| l.starts_with("Ip:")).collect();
        let (names, values) = (ip[0].split_whitespace(), ip[1].split_whitespace());
        let frag = names
            .zip(values)
            .find(|(k, _)| *k == "FragCreates")
            .unwrap()
            .1;
        assert_eq!(frag, "0", "{ns} fragmented underlay datagrams");
    }
}

#[test]
fn pair_rekey_roaming_and_restart() {
    if !prerequisites("pair_rekey_roaming_and_restart", &[]) {
        return;
    }
    let mut lab = Lab::new("r", None);
    let p = start_pair(
        &mut lab,
        Opts {
            extra_a: "danger_rekey_after_seconds: 5",
            peer_extra_a: "persistent_keepalive: 2",
            ..Opts::default()
        },
    );
    let (a, b) = (lab.a.clone(), lab.b.clone());
    // a's startup initiation may have gone out before b listened: the retry comes after 5 s.
    let up = lab.ping_until(&a, "10.201.0.2", Duration::from_secs(15));
    assert!(up, "{}", lab.log("qa.log"));
    // Rekey: a initiated and rekeys every ~5 s while it sends (keepalives included).
    let epoch =
        |lab: &Lab, ns: &str, i: &str| peer_field(lab, ns, i, "key_epoch").as_u64().unwrap();
    let first = epoch(&lab, &a, &p.ia);
    wait_for("two rekeys", Duration::from_secs(30), || {
        lab.ping(&a, "10.201.0.2", 1, None);
        epoch(&lab, &a, &p.ia) >= first + 2
    });
    assert!(epoch(&lab, &b, &p.ib) >= first + 2, "b saw the rekeys too");
    assert!(
        lab.ping(&b, "10.201.0.1", 2, None),
        "traffic flows after rekeys"
    );

    // Roaming: a's underlay address changes; b learns it from a's next authenticated packet.
    netns::run(&["ip", "-n", &a, "addr", "del", "10.200.0.1/24", "dev", "va"]);
    netns::run(&["ip", "-n", &a, "addr", "add", "10.200.0.3/24", "dev", "va"]);
    assert!(
        lab.ping_until(&a, "10.201.0.2", Duration::from_secs(10)),
        "a -> b after roaming"
    );
    assert_eq!(peer_field(&lab, &b, &p.ib, "endpoint"), "10.200.0.3:51820");
    assert!(
        lab.ping(&b, "10.201.0.1", 2, None),
        "b -> a at a's new address"
    );

    // Restart: a crashes (SIGKILL: no cleanup), starts again, and the tunnel comes back without
    // any traffic from a: its persistent keepalive handshakes at startup.
    lab.stop(p.ha, "-KILL");
    wait_for("a's interface to vanish", Duration::from_secs(5), || {
        !lab.exec(&a, &["ip", "link", "show", &p.ia])
            .status
            .success()
    });
    let before = epoch(&lab, &b, &p.ib);
    start_qgw(&mut lab, &a, &p.ia, &p.cfg_a.clone(), "qa2.log");
    assert!(
        lab.ping_until(&b, "10.201.0.1", Duration::from_secs(20)),
        "b -> a after a's restart: {}",
        lab.log("qa2.log")
    );
    assert!(
        epoch(&lab, &b, &p.ib) > before,
        "a new session after the restart"
    );
    let _ = p.pub_a;
}

#[test]
fn pair_handshake_flood_forces_cookies() {
    if !prerequisites("pair_handshake_flood_forces_cookies", &[]) {
        return;
    }
    let mut lab = Lab::new("c", None);
    let p = start_pair(
        &mut lab,
        Opts {
            extra_a: "handshake_load_threshold: 20",
            tail_a: "metrics:\n  listen: 127.0.0.1:9586\n",
            ..Opts::default()
        },
    );
    let (a, b) = (lab.a.clone(), lab.b.clone());
    let key = gateway::config::parse_key(&p.pub_a).unwrap();
    // 200 initiations/s for 8 s from b's namespace keep a under load (threshold 20/s) while b's
    // qgw handshakes: its first initiation gets a cookie reply, its retry carries mac2.
    let nb = b.clone();
    let flood = std::thread::spawn(move || {
        handshake_flood(
            &nb,
            "10.200.0.1:51820".parse().unwrap(),
            key,
            1600,
            200,
            Duration::from_secs(10),
        )
    });
    std::thread::sleep(Duration::from_millis(1500));
    let up = lab.ping_until(&b, "10.201.0.1", Duration::from_secs(20));
    let replies = flood.join().unwrap();
    assert!(up, "b -> a under load: {}", lab.log("qb.log"));
    assert!(replies > 100, "the flood got only {replies} cookie replies");
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
