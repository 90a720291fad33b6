//! Two QKD paths per link end to end (docs/protocol.md §6.3): two qgw sites in network namespaces,
//! each with two KMEs of the simulator over real ETSI 014 and mutual TLS — `east`, joined to the
//! other site's east KME directly, and `west`, relayed through a trusted node — and a peer with
//! both as sources, `required` with `require: all`. Every epoch carries a key ID from each path;
//! with the other site's west KME down, no epoch is made and the tunnel fails closed once the keys
//! in force expire; when it returns, traffic resumes. `qgw status` reports each source.
//! See `netns/mod.rs` for the harness and its CI rules.
#![allow(clippy::unwrap_used)]

use crate::netns;

use std::path::Path;
use std::time::{Duration, Instant};

use netns::hybrid::{epochs, write_mldsa_keys};
use netns::kme::{Sim, start_sim_yaml};
use netns::lab::Lab;
use netns::pair::{PairOptions, SiteSetup, start_qgw_pair};
use netns::qgw::status;
use netns::wait_for;

/// KME listeners, all in namespace a: site a's on loopback, site b's on the underlay address.
const LISTEN: [(&str, &str); 4] = [
    ("KME_A1", "127.0.0.1:8451"),
    ("KME_A2", "127.0.0.1:8452"),
    ("KME_B1", "10.200.0.1:8453"),
    ("KME_B2", "10.200.0.1:8454"),
];

fn sim_yaml() -> String {
    let mut y = String::from(
        "limits:\n  key_size: 256\n  min_key_size: 64\n  max_key_size: 1024\n  max_key_per_request: 16\n  max_sae_id_count: 0\nkmes:\n",
    );
    for (id, listen) in LISTEN {
        let sae = id.replace("KME", "SAE");
        y += &format!("  - id: {id}\n    listen: {listen}\n    saes: [{sae}]\n");
    }
    y += "trusted_nodes:\n  - id: KME_T\nlinks:\n";
    for pair in ["KME_A1, KME_B1", "KME_A2, KME_T", "KME_T, KME_B2"] {
        y += &format!(
            "  - kmes: [{pair}]\n    secret_key_rate_bps: 500000\n    max_key_count: 10000\n    initial_key_count: 200\n"
        );
    }
    y
}

fn write_pki(dir: &Path) {
    let entities: Vec<(String, String, bool)> = (LISTEN.iter())
        .flat_map(|(id, _)| {
            let sae = id.replace("KME", "SAE");
            [
                (id.to_lowercase(), (*id).to_owned(), true),
                (sae.to_lowercase(), sae, false),
            ]
        })
        .collect();
    let borrowed: Vec<(&str, &str, bool)> = (entities.iter())
        .map(|(f, id, kme)| (f.as_str(), id.as_str(), *kme))
        .collect();
    qkd_link::sim::pki::generate_entities(dir, &borrowed, &["10.200.0.1".to_owned()], false)
        .expect("PKI written");
}

/// Site `site`'s top-level `qkd:` (its two KMEs) and peer lines (both sources, `require: all`).
fn site_lines(lab: &Lab, site: char) -> (String, String) {
    let d = lab.dir.display();
    let (me, peer) = match site {
        'a' => ('A', 'B'),
        _ => ('B', 'A'),
    };
    let mut top = String::from("qkd:\n  kmes:\n");
    for (n, name) in ["east", "west"].iter().enumerate() {
        let id = format!("KME_{me}{}", n + 1);
        let listen = LISTEN.iter().find(|(k, _)| *k == id).unwrap().1;
        let sae = format!("sae_{}{}", me.to_ascii_lowercase(), n + 1);
        top += &format!(
            "    - name: {name}\n      kme_url: https://{listen}\n      sae_id: {}\n      ca_file: {d}/pki/ca.pem\n      cert_file: {d}/pki/{sae}.pem\n      key_file: {d}/pki/{sae}.key\n",
            sae.to_uppercase()
        );
    }
    let role = if site == 'a' { "master" } else { "slave" };
    let peer_lines = format!(
        "hybrid: on\nmldsa_public_key_file: {d}/{}.mldsa.pub\nqkd: {{ policy: required, require: all, role: {role}, sources: [{{ kme: east, peer_sae_id: SAE_{peer}1 }}, {{ kme: west, peer_sae_id: SAE_{peer}2 }}] }}\nrekey_after_seconds: 5\n",
        peer.to_ascii_lowercase()
    );
    (top, peer_lines)
}

fn start() -> Option<(Lab, Sim, String, String)> {
    let mut lab = Lab::for_test(&[], Some(1280))?;
    write_pki(&lab.dir.join("pki"));
    let names: Vec<&str> = LISTEN.iter().map(|(k, _)| *k).collect();
    let sim = start_sim_yaml(Some(&lab.a), sim_yaml(), &names, &lab.dir.join("pki"));
    write_mldsa_keys(&lab, false);
    let d = lab.dir.display().to_string();
    // Sessions are refused after 20 s instead of 180 s, so the fail-closed point comes quickly.
    let interface = |s: char| {
        format!("mldsa_private_key_file: {d}/{s}.mldsa\ndanger_reject_after_seconds: 20\n")
    };
    let (ia, ib) = (interface('a'), interface('b'));
    let ((ta, pa), (tb, pb)) = (site_lines(&lab, 'a'), site_lines(&lab, 'b'));
    let site = |interface, peer, top| SiteSetup {
        interface,
        peer,
        top,
        env: &[],
        no_endpoint: false,
    };
    let options = PairOptions {
        mtu: Some(1200),
        a: site(&ia, &pa, &ta),
        b: site(&ib, &pb, &tb),
        ..PairOptions::default()
    };
    let pair = start_qgw_pair(&mut lab, options);
    Some((lab, sim, pair.ia, pair.ib))
}

/// The number of key IDs in an `epochs` entry's `[id, id]` text.
fn ids(entry: &(u64, String)) -> usize {
    entry.1.split(',').filter(|s| !s.trim().is_empty()).count()
}

#[test]
fn required_all_fails_closed_with_one_path_down_and_recovers() {
    let Some((lab, sim, ia, ib)) = start() else {
        return;
    };
    let (na, nb) = (lab.a.clone(), lab.b.clone());
    assert!(
        lab.ping_until(&na, "10.201.0.2", Duration::from_secs(30)),
        "no tunnel: a: {}\nb: {}",
        lab.log("qa.log"),
        lab.log("qb.log")
    );
    wait_for("two QKD epochs", Duration::from_secs(20), || {
        epochs(&lab.log("qa.log")).len() >= 2
    });
    let before = epochs(&lab.log("qa.log"));
    assert!(
        before.iter().all(|e| ids(e) == 2),
        "a key ID from each path: {before:?}"
    );
    assert_eq!(
        before,
        epochs(&lab.log("qb.log"))[..before.len()],
        "the same at both sites"
    );
    for (ns, iface) in [(&na, &ia), (&nb, &ib)] {
        let st = status(&lab, ns, iface);
        let kmes: Vec<&str> = (st["kmes"].as_array().unwrap().iter())
            .map(|k| k["name"].as_str().unwrap())
            .collect();
        assert_eq!(kmes, ["east", "west"], "{st}");
        let sources = st["peers"][0]["qkd_sources"].as_array().unwrap();
        assert_eq!(sources.len(), 2, "{st}");
        assert!(sources.iter().all(|s| s["last"] == "delivered"), "{st}");
    }

    // Site b's west KME goes down: the slave cannot resolve the west key, so no epoch is made.
    sim.kme_down("KME_B2", true);
    let down_at = Instant::now();
    wait_for("the tunnel to fail closed", Duration::from_secs(40), || {
        !lab.ping_once(&na, "10.201.0.2")
    });
    eprintln!(
        "fail closed {:?} after the west path went down",
        down_at.elapsed()
    );
    let during = epochs(&lab.log("qa.log"));
    assert!(
        during.len() <= before.len() + 1,
        "no epoch with one path: {during:?}"
    );
    let st = status(&lab, &nb, &ib);
    let west = &st["peers"][0]["qkd_sources"][1];
    assert_eq!(
        (west["kme"].as_str(), west["last"].as_str()),
        (Some("west"), Some("unavailable")),
        "{st}"
    );
    assert_eq!(st["peers"][0]["policy_state"], "fail_closed", "{st}");

    sim.kme_down("KME_B2", false);
    let up_at = Instant::now();
    assert!(
        lab.ping_until(&na, "10.201.0.2", Duration::from_secs(30)),
        "traffic resumes: {}",
        lab.log("qa.log")
    );
    eprintln!(
        "traffic back {:?} after the west path returned",
        up_at.elapsed()
    );
    let after = epochs(&lab.log("qa.log"));
    assert!(
        after.len() > during.len() && ids(after.last().unwrap()) == 2,
        "{after:?}"
    );
}
