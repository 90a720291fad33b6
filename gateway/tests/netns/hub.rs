//! A hub with 100 spokes in network namespaces (docs/gateway-decisions.md §11; the region of
//! docs/qkd-network.md). The lab's namespace `a` is the hub's: a bridge `br0` (underlay
//! 10.210.0.1/16), the hub's qgw (tunnel 10.211.0.1/16) and, on a thread of the test process,
//! the KME simulator serving `configs/kme-sim-region.yaml` with every KME listening on
//! 10.210.0.1 (the hub's SAE_DC on KME_DC, spoke SAEs on their KME_Snn). Spoke `i` (1..=100) is a
//! namespace of its own on a veth to the bridge (underlay 10.210.1.i), with its own qgw (tunnel
//! 10.211.1.i), SAE `SAE_Snn_kk` (nn = spoke KME, kk = SAE on it) and one peer, the hub. The hub
//! is master of all 100 hybrid peers, QKD `required`; every qgw is a real process with a real
//! TUN device and UDP socket. Namespace `b` stays empty.

use std::path::{Path, PathBuf};
use std::time::Duration;

use base64::Engine as _;

use super::kme::{Sim, start_sim_yaml};
use super::lab::Lab;
use super::qgw::{offloads_forced_off, status, threads_forced};
use super::wait_for;

const QGW_BIN: &str = env!("CARGO_BIN_EXE_qgw");

/// Spokes of the hub (the region's 100 spoke SAEs).
pub const SPOKES: usize = 100;
/// The hub's underlay address, where the simulator's KMEs listen too.
pub const HUB_IP: &str = "10.210.0.1";

/// One spoke: its namespace, interface, SAE and qgw process.
pub struct Spoke {
    pub ns: String,
    pub iface: String,
    pub sae: String,
    /// Tunnel address (10.211.1.i).
    pub tunnel_ip: String,
    pub handle: usize,
}

/// The hub, its spokes and the simulator.
pub struct Hub {
    pub lab: Lab,
    pub sim: Sim,
    pub ns: String,
    pub iface: String,
    /// The hub's qgw configuration file (for a restart).
    pub config: PathBuf,
    pub handle: usize,
    pub spokes: Vec<Spoke>,
}

/// Spoke `i`'s SAE: ten per spoke KME (`SAE_S01_01` … `SAE_S10_10`).
pub fn spoke_sae(i: usize) -> String {
    format!("SAE_S{:02}_{:02}", (i - 1) / 10 + 1, (i - 1) % 10 + 1)
}

/// Spoke `i`'s peer name at the hub.
pub fn peer_name(i: usize) -> String {
    format!("s{i:03}")
}

/// The region topology with its KMEs on [`HUB_IP`] instead of loopback (the admin API stays on
/// the hub namespace's loopback).
fn region_yaml() -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../configs/kme-sim-region.yaml");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path:?}: {e}"));
    text.replace("\"127.0.0.1:", &format!("\"{HUB_IP}:"))
}

/// A fresh X25519 key pair: (private key file, Base64 public key).
fn x25519(lab: &Lab, name: &str) -> (PathBuf, String) {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).unwrap();
    let secret = x25519_dalek::StaticSecret::from(bytes);
    let public = x25519_dalek::PublicKey::from(&secret);
    let b64 = base64::engine::general_purpose::STANDARD;
    (
        lab.write(name, &b64.encode(bytes)),
        b64.encode(public.as_bytes()),
    )
}

/// A fresh ML-DSA-65 key pair written as `name` and `name.pub`.
fn mldsa(lab: &Lab, name: &str) {
    let private = gateway::keyfile::generate_mldsa_private().unwrap();
    let key = gateway::keyfile::parse_mldsa_private(&private, "test").unwrap();
    lab.write(name, &private);
    lab.write(
        &format!("{name}.pub"),
        &gateway::keyfile::mldsa_public_text(&key),
    );
}

/// The `interface:` section, with the run's forced offload and thread settings.
fn interface(iface: &str, address: &str, port: u16, dir: &Path, who: &str) -> String {
    let d = dir.display();
    let mut s = format!(
        "interface:\n  name: {iface}\n  address: [{address}]\n  listen_port: {port}\n  private_key_file: {d}/{who}.key\n  mldsa_private_key_file: {d}/{who}.mldsa\n  mtu: 1420\n"
    );
    if offloads_forced_off() {
        s += "  offload: false\n";
    }
    if let Some(n) = threads_forced() {
        s += &format!("  threads: {n}\n");
    }
    s
}

/// The top-level `qkd:` section of SAE `sae` at the KME listening on `port`.
fn qkd(sae: &str, port: u16, dir: &Path) -> String {
    let (d, stem) = (dir.display(), sae.to_lowercase());
    format!(
        "qkd:\n  kme_url: https://{HUB_IP}:{port}\n  sae_id: {sae}\n  ca_file: {d}/pki/ca.pem\n  cert_file: {d}/pki/{stem}.pem\n  key_file: {d}/pki/{stem}.key\n"
    )
}

/// The hub's configuration with its first `peers` spokes; `rekey` sets `rekey_after_seconds`.
pub fn hub_yaml(lab: &Lab, iface: &str, port: u16, peers: &[String], rekey: Option<u64>) -> String {
    let dir = &lab.dir;
    let mut s = interface(iface, "10.211.0.1/16", port, dir, "hub") + &qkd("SAE_DC", 8540, dir);
    s += if peers.is_empty() {
        "peers: []\n"
    } else {
        "peers:\n"
    };
    for (k, public) in peers.iter().enumerate() {
        let i = k + 1;
        s += &format!(
            "  - name: {}\n    public_key: \"{public}\"\n    endpoint: 10.210.1.{i}:51820\n    allowed_ips: [10.211.1.{i}/32]\n    hybrid: on\n    mldsa_public_key_file: {}/s{i}.mldsa.pub\n    qkd: {{ peer_sae_id: {}, policy: required, role: master }}\n",
            peer_name(i),
            dir.display(),
            spoke_sae(i)
        );
        if let Some(r) = rekey {
            s += &format!("    rekey_after_seconds: {r}\n");
        }
    }
    s + &format!(
        "metrics:\n  listen: 127.0.0.1:{}\naudit:\n  path: {}\n",
        9586 + port - 51820,
        audit_path(dir, port).display()
    )
}

/// The signed audit log of the hub listening on `port`.
pub fn audit_path(dir: &Path, port: u16) -> PathBuf {
    dir.join(format!("hub-{port}.audit.jsonl"))
}

/// Spoke `i`'s configuration: one peer, the hub, whose public key is `hub_pub`.
fn spoke_yaml(lab: &Lab, i: usize, iface: &str, hub_pub: &str, rekey: Option<u64>) -> String {
    let dir = &lab.dir;
    let who = format!("s{i}");
    let port = 8540 + u16::try_from((i - 1) / 10 + 1).unwrap();
    let mut s = interface(iface, &format!("10.211.1.{i}/16"), 51820, dir, &who)
        + &qkd(&spoke_sae(i), port, dir);
    s += &format!(
        "peers:\n  - name: hub\n    public_key: \"{hub_pub}\"\n    endpoint: {HUB_IP}:51820\n    allowed_ips: [10.211.0.1/32]\n    hybrid: on\n    mldsa_public_key_file: {}/hub.mldsa.pub\n    qkd: {{ peer_sae_id: SAE_DC, policy: required, role: slave }}\n",
        dir.display()
    );
    if let Some(r) = rekey {
        s += &format!("    rekey_after_seconds: {r}\n");
    }
    s
}

/// The bridge in the hub's namespace and a veth from it to every spoke's namespace.
fn wire(lab: &mut Lab) -> Vec<String> {
    let hub = lab.a.clone();
    let mut batch =
        format!("link add br0 type bridge\naddr add {HUB_IP}/16 dev br0\nlink set br0 up\n");
    let mut spokes = Vec::new();
    for i in 1..=SPOKES {
        let ns = lab.add_namespace(&format!("h{i:03}"));
        batch += &format!(
            "link add hs{i} type veth peer name u0 netns {ns}\nlink set hs{i} master br0 up\n"
        );
        spokes.push(ns);
    }
    let file = lab.write("wire.batch", &batch);
    lab.check(&hub, &["ip", "-batch", file.to_str().unwrap()]);
    for (k, ns) in spokes.iter().enumerate() {
        let cmds = format!("addr add 10.210.1.{}/16 dev u0\nlink set u0 up\n", k + 1);
        let file = lab.write(&format!("wire{k}.batch"), &cmds);
        lab.check(ns, &["ip", "-batch", file.to_str().unwrap()]);
    }
    spokes
}

/// Starts `qgw up` with `config` in `ns`, logging to `log`, without waiting.
pub fn spawn_qgw(lab: &mut Lab, ns: &str, config: &Path, log: &str) -> usize {
    lab.spawn(
        ns,
        &[QGW_BIN, "up", "--config", config.to_str().unwrap()],
        log,
    )
}

/// Waits (up to `deadline`) until `qgw status` of `iface` answers in `ns`.
pub fn wait_up(lab: &Lab, ns: &str, iface: &str, deadline: Duration) {
    wait_for(&format!("qgw {iface} up"), deadline, || {
        lab.exec(ns, &[QGW_BIN, "status", iface]).status.success()
    });
}

/// Whether a peer of a `qgw status --json` has an epoch with QKD among its key sources.
pub fn has_qkd_epoch(peer: &serde_json::Value) -> bool {
    peer["epoch"].as_u64().unwrap_or(0) >= 1
        && (peer["key_sources"].as_array()).is_some_and(|s| s.iter().any(|k| k == "qkd"))
}

/// Hub peers (by name) with a QKD epoch in force.
pub fn peers_with_qkd(hub: &Hub) -> Vec<String> {
    let st = status(&hub.lab, &hub.ns, &hub.iface);
    let peers = st["peers"].as_array().cloned().unwrap_or_default();
    (peers.iter().filter(|p| has_qkd_epoch(p)))
        .filter_map(|p| p["name"].as_str().map(str::to_owned))
        .collect()
}

/// The hub and its 100 spokes up, the simulator serving the region; `rekey` sets every peer's
/// `rekey_after_seconds` (default rotation without). `None` when the test is to be skipped
/// (never under `CI=true`).
pub fn start_hub(rekey: Option<u64>) -> Option<Hub> {
    let mut lab = Lab::for_test_unwired(&[])?;
    let spoke_ns = wire(&mut lab);
    let yaml = region_yaml();
    let cfg = qkd_link::sim::SimConfig::from_yaml(&yaml, "kme-sim-region.yaml").unwrap();
    qkd_link::sim::pki::generate_for(&lab.dir.join("pki"), &cfg, &[HUB_IP.to_owned()], false)
        .unwrap();
    let sim = start_sim_yaml(Some(&lab.a), yaml, &["KME_DC"], &lab.dir.join("pki"));
    let (_, hub_pub) = x25519(&lab, "hub.key");
    mldsa(&lab, "hub.mldsa");
    let mut publics = Vec::new();
    let mut spokes = Vec::new();
    for (k, ns) in spoke_ns.into_iter().enumerate() {
        let i = k + 1;
        publics.push(x25519(&lab, &format!("s{i}.key")).1);
        mldsa(&lab, &format!("s{i}.mldsa"));
        let iface = format!("q{i}{}", lab.id);
        let config = lab.write(
            &format!("s{i}.yaml"),
            &spoke_yaml(&lab, i, &iface, &hub_pub, rekey),
        );
        let handle = spawn_qgw(&mut lab, &ns, &config, &format!("s{i}.log"));
        spokes.push(Spoke {
            ns,
            iface,
            sae: spoke_sae(i),
            tunnel_ip: format!("10.211.1.{i}"),
            handle,
        });
    }
    for s in &spokes {
        wait_up(&lab, &s.ns, &s.iface, Duration::from_secs(60));
    }
    let (ns, iface) = (lab.a.clone(), format!("qh{}", lab.id));
    let config = lab.write("hub.yaml", &hub_yaml(&lab, &iface, 51820, &publics, rekey));
    let handle = spawn_qgw(&mut lab, &ns, &config, "hub.log");
    wait_up(&lab, &ns, &iface, Duration::from_secs(20));
    Some(Hub {
        lab,
        sim,
        ns,
        iface,
        config,
        handle,
        spokes,
    })
}
