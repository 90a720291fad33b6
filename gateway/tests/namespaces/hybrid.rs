//! The hybrid key agreement end to end (docs/protocol.md): two qgw sites in network namespaces joined by a
//! 1280-byte-MTU underlay, each with its own KME from the simulator over real ETSI 014 and mutual
//! TLS, `hybrid: on`, `qkd.policy: required` and a 5 s rekey. A numbered UDP stream crosses at least five rotations
//! with no loss and no duplicate, and every epoch used its own QKD key, the same at both sites.
//! See `netns/mod.rs` for the harness and its CI rules.
#![allow(clippy::unwrap_used)]

use crate::netns;

use std::collections::BTreeSet;
use std::net::UdpSocket;
use std::time::{Duration, Instant};

use netns::hybrid::{SiteOptions, Sites, epochs, start_kmes, start_sites, start_sites_opts};
use netns::lab::Lab;
use netns::qgw::status;
use netns::traffic::{capture, in_netns, udp_payloads};
use netns::wait_for;

#[test]
fn required_qkd_rotates_every_5s_without_losing_a_packet() {
    let Some(Sites {
        mut lab,
        sim: _sim,
        na,
        nb,
        ia,
        ib,
        ha: _,
    }) = start_sites(&["tcpdump"], "required", "")
    else {
        return;
    };
    // A numbered stream a -> b across >= 5 rotations: 3000 datagrams, one every 10 ms.
    let count = 3000u32;
    let receiver = std::thread::spawn({
        let nb = nb.clone();
        move || {
            in_netns(&nb, move || {
                let sock = UdpSocket::bind("10.201.0.2:6000").unwrap();
                sock.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
                let mut seen = Vec::new();
                let mut buf = [0u8; 64];
                let deadline = Instant::now() + Duration::from_secs(90);
                while Instant::now() < deadline {
                    match sock.recv(&mut buf) {
                        Ok(4) => seen.push(u32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]])),
                        Ok(_) => {}
                        Err(_) => break, // 5 s of silence: the sender is done
                    }
                }
                seen
            })
        }
    });
    std::thread::sleep(Duration::from_millis(500));
    in_netns(&na, move || {
        let sock = UdpSocket::bind("10.201.0.1:0").unwrap();
        for seq in 0..count {
            sock.send_to(&seq.to_be_bytes(), "10.201.0.2:6000").unwrap();
            std::thread::sleep(Duration::from_millis(10));
        }
    });
    let seen = receiver.join().unwrap();
    no_plaintext_on_the_underlay(&mut lab, &na, &nb);
    forged_flood_costs_no_post_quantum_work(&lab, &na, &nb, &ib);
    let distinct: BTreeSet<u32> = seen.iter().copied().collect();
    assert_eq!(distinct.len(), seen.len(), "duplicates delivered");
    let missing: Vec<u32> = (0..count).filter(|s| !distinct.contains(s)).collect();
    assert!(
        missing.is_empty(),
        "{} of {count} lost, first {:?}",
        missing.len(),
        &missing[..missing.len().min(10)]
    );

    let (log_a, log_b) = (lab.log("qa.log"), lab.log("qb.log"));
    let (ea, eb) = (epochs(&log_a), epochs(&log_b));
    assert!(
        ea.len() >= 5,
        "at least 5 QKD epochs, got {}: {log_a}",
        ea.len()
    );
    assert_eq!(ea, eb, "the same epochs and QKD key IDs at both sites");
    let ids: BTreeSet<&String> = ea.iter().map(|(_, ids)| ids).collect();
    assert_eq!(ids.len(), ea.len(), "every epoch its own QKD key");

    // `qgw status --json` reports the epoch, its age, its sources and its QKD key ID.
    let (sa, sb) = (status(&lab, &na, &ia), status(&lab, &nb, &ib));
    let (pa, pb) = (&sa["peers"][0], &sb["peers"][0]);
    let roles: BTreeSet<&str> = [
        pa["hybrid"].as_str().unwrap(),
        pb["hybrid"].as_str().unwrap(),
    ]
    .into();
    assert_eq!(roles, BTreeSet::from(["master", "slave"]));
    for p in [pa, pb] {
        assert!(p["epoch"].as_u64().unwrap() >= 5, "{p}");
        assert_eq!(
            p["key_sources"],
            serde_json::json!(["x25519", "mlkem", "qkd"]),
            "{p}"
        );
        assert!(p["epoch_age_seconds"].as_u64().unwrap() <= 15, "{p}");
        let id = p["qkd_key_id"].as_str().unwrap();
        assert!(
            log_a.contains(id) || lab.log("qa.log").contains(id),
            "status key ID {id} is one the gateways logged"
        );
    }
}

#[test]
fn required_fails_closed_while_the_slave_kme_is_down_and_recovers() {
    // Sessions are refused after 20 s instead of 180 s, so the fail-closed point comes quickly.
    let Some(s) = start_sites(&[], "required", "danger_reject_after_seconds: 20") else {
        return;
    };
    s.sim.kme_down("KME_B", true);
    let down_at = Instant::now();
    assert!(
        s.lab.ping_once(&s.na, "10.201.0.2"),
        "the current keys still carry traffic"
    );
    // No new epoch can be made (the slave cannot fetch the key): the tunnel closes by itself
    // when the last session reaches its (shortened) REJECT_AFTER_TIME.
    let mut closed = false;
    while down_at.elapsed() < Duration::from_secs(45) {
        if !s.lab.ping_once(&s.na, "10.201.0.2") && !s.lab.ping_once(&s.na, "10.201.0.2") {
            closed = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    assert!(
        closed,
        "traffic still flows 45 s after the KME went down: {}",
        s.lab.log("qa.log")
    );
    let closed_after = down_at.elapsed();
    assert!(
        closed_after >= Duration::from_secs(5),
        "closed too early ({closed_after:?}): old keys must serve"
    );
    for _ in 0..3 {
        assert!(
            !s.lab.ping_once(&s.na, "10.201.0.2"),
            "fail closed stays closed while the KME is down"
        );
    }
    let log_b = s.lab.log("qb.log");
    assert!(
        log_b.contains("QkdUnavailable"),
        "the slave refused for lack of QKD: {log_b}"
    );
    // The KME returns: the next exchange succeeds and the tunnel comes back by itself.
    s.sim.kme_down("KME_B", false);
    assert!(
        s.lab
            .ping_until(&s.na, "10.201.0.2", Duration::from_secs(40)),
        "no recovery: {}",
        s.lab.log("qa.log")
    );
    let st = status(&s.lab, &s.na, &s.ia);
    assert_eq!(
        st["peers"][0]["key_sources"],
        serde_json::json!(["x25519", "mlkem", "qkd"])
    );
    let _ = &s.ib;
}

#[test]
fn preferred_falls_back_to_x25519_mlkem_and_keeps_traffic_flowing() {
    let Some(s) = start_sites(&[], "preferred", "") else {
        return;
    };
    s.sim.kme_down("KME_B", true);
    let down_at = Instant::now();
    let mut lost = 0;
    while down_at.elapsed() < Duration::from_secs(15) {
        if !s.lab.ping_once(&s.na, "10.201.0.2") {
            lost += 1;
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    assert!(lost <= 1, "{lost} pings lost during the fallback");
    let log_a = s.lab.log("qa.log");
    assert!(
        log_a.contains("falls back to x25519+mlkem"),
        "fallback reported: {log_a}"
    );
    let st = status(&s.lab, &s.nb, &s.ib);
    assert_eq!(
        st["peers"][0]["key_sources"],
        serde_json::json!(["x25519", "mlkem"]),
        "the current epoch is x25519+mlkem"
    );
}

/// Captures site b's underlay while site a sends a marker through the tunnel and, as a control,
/// another marker in the clear over the underlay: the capture must hold the control marker (so
/// it works) and never the tunnel marker (so nothing left the tunnel unencrypted).
fn no_plaintext_on_the_underlay(lab: &mut Lab, na: &str, nb: &str) {
    const SECRET: &[u8] = b"QGW-MARKER-PATIENT-7f3a9c-DICOM";
    const CLEAR: &[u8] = b"QGW-CONTROL-CLEARTEXT-5521";
    let h = capture(lab, nb, "vb", "udp", "underlay.pcap");
    in_netns(na, move || {
        let sock = UdpSocket::bind("0.0.0.0:0").unwrap();
        for _ in 0..50 {
            sock.send_to(SECRET, "10.201.0.2:6001").unwrap();
            std::thread::sleep(Duration::from_millis(5));
        }
        sock.send_to(CLEAR, "10.200.0.2:6002").unwrap();
    });
    std::thread::sleep(Duration::from_secs(1));
    lab.stop(h, "-TERM");
    let captured = std::fs::read(lab.dir.join("underlay.pcap")).unwrap();
    let contains = |needle: &[u8]| captured.windows(needle.len()).any(|w| w == needle);
    assert!(
        contains(CLEAR),
        "the capture works (control marker seen, {} bytes)",
        captured.len()
    );
    assert!(
        captured.len() > 50 * SECRET.len(),
        "the tunnel packets were captured"
    );
    assert!(
        !contains(SECRET),
        "a tunnel payload crossed the underlay in plaintext"
    );
}

/// Floods site b (the slave, which verifies Inits) with 3000 forged hybrid Init fragments that
/// carry the right `pair_id` but no valid MAC: each is dropped at the MAC and counted, and none
/// costs an ML-DSA verification or an ML-KEM operation (docs/protocol.md §7).
fn forged_flood_costs_no_post_quantum_work(lab: &Lab, na: &str, nb: &str, ib: &str) {
    use x25519_dalek::{PublicKey, StaticSecret};
    let key = |name: &str| {
        let text = std::fs::read_to_string(lab.dir.join(name)).unwrap();
        StaticSecret::from(gateway::config::parse_key(&text).unwrap())
    };
    let (a, b) = (key("ka"), key("kb"));
    let pair = gateway::hybrid::PairKeys::derive(&a, &PublicKey::from(&b).to_bytes()).unwrap();
    let pair_id = *pair.pair_id();
    let before = status(lab, nb, ib)["peers"][0].clone();
    let epochs_before = lab.log("qb.log").matches("hybrid epoch installed").count();
    let sent = 3000u32;
    in_netns(na, move || {
        let sock = UdpSocket::bind("10.200.0.1:0").unwrap();
        let mut d = vec![0u8; 1232];
        d[..8].copy_from_slice(&[0x51, 1, 1, 0, 4, 0, 0, 0]);
        d[8..16].copy_from_slice(&pair_id);
        for i in 0..sent {
            d[16..20].copy_from_slice(&i.to_le_bytes());
            d[100..104].copy_from_slice(&i.to_be_bytes());
            sock.send_to(&d, "10.200.0.2:51820").unwrap();
            if i % 100 == 99 {
                std::thread::sleep(Duration::from_millis(10)); // bounded rate, ~10k/s at most
            }
        }
    });
    std::thread::sleep(Duration::from_secs(1));
    let after = status(lab, nb, ib)["peers"][0].clone();
    let count = |v: &serde_json::Value, k: &str| v[k].as_u64().unwrap_or(0);
    let bad_mac = |v: &serde_json::Value| v["hybrid_drops"]["bad_mac"].as_u64().unwrap_or(0);
    assert!(
        bad_mac(&after) - bad_mac(&before) >= u64::from(sent) * 9 / 10,
        "forged datagrams counted: {} of {sent}",
        bad_mac(&after) - bad_mac(&before)
    );
    let epochs = lab.log("qb.log").matches("hybrid epoch installed").count() - epochs_before;
    let verifications =
        count(&after, "pq_signature_verifications") - count(&before, "pq_signature_verifications");
    assert!(
        verifications <= epochs as u64 + 1,
        "{verifications} ML-DSA verifications for {epochs} genuine epochs during the flood"
    );
}

/// Status counter `hybrid_drops[reason]` of site b.
fn drops_at_b(s: &Sites, reason: &str) -> u64 {
    status(&s.lab, &s.nb, &s.ib)["peers"][0]["hybrid_drops"][reason]
        .as_u64()
        .unwrap_or(0)
}

#[test]
fn replayed_tampered_and_unknown_key_messages_are_refused_and_the_keys_stay() {
    let Some(mut s) = start_sites(&["tcpdump"], "required", "") else {
        return;
    };
    // Capture site a's Inits for one rotation, then let a newer epoch replace them.
    let nb = s.nb.clone();
    let h = capture(&mut s.lab, &nb, "vb", "udp port 51820", "inits.pcap");
    std::thread::sleep(Duration::from_secs(6));
    s.lab.stop(h, "-TERM");
    let inits: Vec<Vec<u8>> = udp_payloads(
        &std::fs::read(s.lab.dir.join("inits.pcap")).unwrap(),
        [10, 200, 0, 1],
        [10, 200, 0, 2],
    )
    .into_iter()
    .filter(|d| d.len() > 24 && d[0] == 0x51 && d[2] == 1)
    .collect();
    let first_exchange = inits.first().expect("an Init was captured")[16..24].to_vec();
    let old: Vec<Vec<u8>> = inits
        .iter()
        .filter(|d| d[16..24] == first_exchange[..])
        .cloned()
        .collect();
    assert_eq!(old.len(), 4, "an Init is 4 fragments");
    std::thread::sleep(Duration::from_secs(6)); // a newer epoch supersedes the captured one
    let epoch_before = status(&s.lab, &s.nb, &s.ib)["peers"][0]["epoch"]
        .as_u64()
        .unwrap();

    // Replayed: the timestamp is older than the last accepted one.
    let (replay_before, mac_before) = (drops_at_b(&s, "replay"), drops_at_b(&s, "bad_mac"));
    let mut tampered = old[0].clone();
    tampered[200] ^= 0x01;
    in_netns(&s.na, move || {
        let sock = UdpSocket::bind("10.200.0.1:0").unwrap();
        for d in &old {
            sock.send_to(d, "10.200.0.2:51820").unwrap();
        }
        sock.send_to(&tampered, "10.200.0.2:51820").unwrap();
    });
    std::thread::sleep(Duration::from_millis(500));
    assert!(
        drops_at_b(&s, "replay") > replay_before,
        "the replayed Init is refused and counted"
    );
    assert!(
        drops_at_b(&s, "bad_mac") > mac_before,
        "the tampered fragment is refused and counted"
    );
    let st = status(&s.lab, &s.nb, &s.ib);
    assert!(
        st["peers"][0]["epoch"].as_u64().unwrap() >= epoch_before,
        "no epoch went back"
    );
    assert!(
        s.lab.ping_once(&s.na, "10.201.0.2"),
        "the tunnel keeps its keys"
    );

    // Unknown key IDs: the KMEs restart and forget every key, but the master still holds
    // prefetched IDs; the slave's KME refuses them, the slave rejects, the keys stay.
    s.sim.stop_and_join();
    s.sim = start_kmes(&s.lab.a, &s.lab.dir.join("pki"));
    wait_for(
        "a QkdRefused reject at the slave",
        Duration::from_secs(30),
        || s.lab.log("qb.log").contains("QkdRefused"),
    );
    assert!(
        s.lab.ping_once(&s.na, "10.201.0.2"),
        "the tunnel keeps its keys after the refusal"
    );
    let rejects = &status(&s.lab, &s.nb, &s.ib)["peers"][0]["hybrid_rejects"];
    assert!(
        rejects["qkd_refused"].as_u64().unwrap_or(0) >= 1,
        "the refusal is counted: {rejects}"
    );
}

#[test]
fn a_master_signing_with_another_ml_dsa_key_gets_no_tunnel() {
    let opts = SiteOptions {
        wrong_master_key: true,
        ..SiteOptions::default()
    };
    let Some(s) = start_sites_opts(&[], "required", "", &opts) else {
        return;
    };
    wait_for(
        "a refused signature at the slave",
        Duration::from_secs(20),
        || drops_at_b(&s, "bad_signature") >= 1,
    );
    assert!(
        !s.lab.ping_once(&s.na, "10.201.0.2"),
        "no session without an authenticated epoch"
    );
    let st = status(&s.lab, &s.nb, &s.ib);
    assert_eq!(st["peers"][0]["epoch"], 0, "no epoch was installed");
}
