//! qgw as the tests run it: key pairs from `qgw genkey`/`qgw pubkey`, the configuration file of
//! one site of the lab's two-site layout, `qgw up` inside a namespace (waiting until its status
//! socket answers), a crash of it, and `qgw status --json`.
//!
//! The layout: site a has tunnel address 10.201.0.1 (and fd00:201::1 with IPv6) and underlay
//! 10.200.0.1, site b 10.201.0.2 (fd00:201::2) and 10.200.0.2; both listen on UDP 51820, and each
//! site's only peer (named `peer`) is the other one.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use super::lab::Lab;
use super::{stdout, wait_for};

const QGW: &str = env!("CARGO_BIN_EXE_qgw");

/// A Base64 key pair from `wg genkey`-compatible `qgw genkey`/`qgw pubkey`.
pub fn keypair() -> (String, String) {
    let private = stdout(&[QGW, "genkey"]);
    let mut c = Command::new(QGW)
        .arg("pubkey")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(c.stdin.as_mut().unwrap(), private.as_bytes()).unwrap();
    drop(c.stdin.take());
    let public = String::from_utf8(c.wait_with_output().unwrap().stdout).unwrap();
    (private, public.trim().to_owned())
}

/// A fresh key pair whose private key is written to the scratch file `name`: (file, public key).
pub fn key_file(lab: &Lab, name: &str) -> (PathBuf, String) {
    let (private, public) = keypair();
    (lab.write(name, &private), public)
}

/// One site's qgw configuration in the two-site layout.
pub struct QgwSite<'a> {
    /// `'a'` or `'b'`: which site this is (addresses, allowed IPs and endpoint follow).
    pub site: char,
    /// Interface name.
    pub iface: &'a str,
    /// IPv6 tunnel addresses as well as IPv4.
    pub v6: bool,
    /// Private key file.
    pub key_file: &'a Path,
    /// Tunnel MTU.
    pub mtu: u32,
    /// Extra `interface:` lines (e.g. `danger_rekey_after_seconds: 5`).
    pub extra: &'a str,
    /// The peer's public key.
    pub peer_pub: &'a str,
    /// Extra peer lines (e.g. `persistent_keepalive: 2`).
    pub peer_extra: &'a str,
    /// Top-level YAML appended after the peers (e.g. a `metrics:` section).
    pub top: &'a str,
    /// The peer has an `endpoint:` (without one this site only answers).
    pub endpoint: bool,
    /// Allowed IPs of the peer besides its tunnel address (e.g. a LAN behind it).
    pub peer_networks: &'a [&'a str],
}

impl QgwSite<'_> {
    /// The YAML text.
    pub fn yaml(&self) -> String {
        let (me, peer) = match self.site {
            'a' => (1, 2),
            'b' => (2, 1),
            s => panic!("no site {s:?}"),
        };
        let mut addresses = vec![format!("10.201.0.{me}/24")];
        let mut allowed = vec![format!("10.201.0.{peer}/32")];
        if self.v6 {
            addresses.push(format!("\"fd00:201::{me}/64\""));
            allowed.push(format!("\"fd00:201::{peer}/128\""));
        }
        allowed.extend(self.peer_networks.iter().map(|n| (*n).to_owned()));
        let mut s = format!(
            "interface:\n  name: {}\n  address: [{}]\n  listen_port: 51820\n  private_key_file: {}\n  mtu: {}\n",
            self.iface,
            addresses.join(", "),
            self.key_file.display(),
            self.mtu
        );
        for l in self.extra.lines() {
            s += &format!("  {l}\n");
        }
        if offloads_forced_off() && !self.extra.contains("offload:") {
            s += "  offload: false\n";
        }
        if let Some(n) = threads_forced()
            && !self.extra.contains("threads:")
        {
            s += &format!("  threads: {n}\n");
        }
        s += &format!(
            "peers:\n  - name: peer\n    public_key: \"{}\"\n    allowed_ips: [{}]\n",
            self.peer_pub,
            allowed.join(", ")
        );
        if self.endpoint {
            s += &format!("    endpoint: 10.200.0.{peer}:51820\n");
        }
        for l in self.peer_extra.lines() {
            s += &format!("    {l}\n");
        }
        s + self.top
    }
}

/// Whether the run asks for every qgw without offloads (`QGW_TEST_OFFLOAD=off`, see `mod.rs`).
pub fn offloads_forced_off() -> bool {
    std::env::var("QGW_TEST_OFFLOAD").is_ok_and(|v| v == "off")
}

/// The crypto threads the run asks of every qgw (`QGW_TEST_THREADS=N`, see `mod.rs`).
pub fn threads_forced() -> Option<u64> {
    std::env::var("QGW_TEST_THREADS").ok()?.parse().ok()
}

/// Starts `qgw up` with `config` in `ns` and waits for its interface and status socket.
pub fn start_qgw(lab: &mut Lab, ns: &str, iface: &str, config: &Path, log: &str) -> usize {
    start_qgw_env(lab, ns, iface, config, log, &[])
}

/// As [`start_qgw`], with extra environment variables (e.g. `NOTIFY_SOCKET`).
pub fn start_qgw_env(
    lab: &mut Lab,
    ns: &str,
    iface: &str,
    config: &Path,
    log: &str,
    env: &[(&str, &str)],
) -> usize {
    let h = lab.spawn_env(
        ns,
        &[QGW, "up", "--config", config.to_str().unwrap()],
        log,
        env,
    );
    let ns2 = ns.to_owned();
    wait_for(
        &format!("qgw {iface} to come up"),
        Duration::from_secs(10),
        || lab.exec(&ns2, &[QGW, "status", iface]).status.success(),
    );
    let text = std::fs::read_to_string(config).unwrap_or_default();
    if offloads_forced_off() && !text.contains("offload: true") {
        let in_use = status(lab, ns, iface)["offloads"]["in_use"].clone();
        assert_eq!(
            in_use,
            serde_json::json!([]),
            "QGW_TEST_OFFLOAD=off, yet {iface} uses offloads"
        );
    }
    if let Some(n) = threads_forced()
        && text.contains(&format!("threads: {n}\n"))
    {
        let threads = status(lab, ns, iface)["offloads"]["crypto_threads"].clone();
        assert_eq!(
            threads, n,
            "QGW_TEST_THREADS={n}, yet {iface} has {threads}"
        );
    }
    h
}

/// Kills process `h` (qgw on `iface` in `ns`) with SIGKILL, so it cannot clean up, and waits
/// until the kernel has removed its interface.
pub fn crash_qgw(lab: &mut Lab, h: usize, ns: &str, iface: &str) {
    lab.stop(h, "-KILL");
    wait_for(
        &format!("{iface}'s interface to vanish"),
        Duration::from_secs(5),
        || {
            !lab.exec(ns, &["ip", "link", "show", iface])
                .status
                .success()
        },
    );
}

/// `wg show IFACE` (through qgw's UAPI socket) inside `ns` lists the peer `peer_pub`, its endpoint
/// (site b's underlay), its latest handshake and its transfer counters.
#[track_caller]
pub fn assert_wg_show(lab: &Lab, ns: &str, iface: &str, peer_pub: &str) {
    let shown = lab.check(ns, &["wg", "show", iface]);
    for want in [
        peer_pub,
        "endpoint: 10.200.0.2:51820",
        "latest handshake:",
        "transfer:",
    ] {
        assert!(shown.contains(want), "`wg show` lacks {want:?}:\n{shown}");
    }
}

/// `qgw status IFACE --json`, run inside `ns`.
pub fn status(lab: &Lab, ns: &str, iface: &str) -> serde_json::Value {
    let out = lab.check(ns, &[QGW, "status", iface, "--json"]);
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"))
}

/// The first peer's field `f` from [`status`].
pub fn peer_field(lab: &Lab, ns: &str, iface: &str, f: &str) -> serde_json::Value {
    status(lab, ns, iface)["peers"][0][f].clone()
}
