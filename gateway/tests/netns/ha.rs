//! A site with two gateways, active and standby, under keepalived (docs/operations.md, "High
//! availability"), facing a hybrid site b, either of them the hybrid master. The layout:
//!
//! ```text
//!  h (site a's host, lan0 10.210.0.10, route via 10.210.0.1)
//!  │ LAN bridge `brlan` in s
//!  ├── a1: lan0 10.210.0.11, wan0 10.200.0.11 ──┐ underlay bridge `brwan` in s (10.200.0.100: both KMEs)
//!  └── a2: lan0 10.210.0.12, wan0 10.200.0.12 ──┴── b: wan0 10.200.0.2 (qgw, site b)
//!  VIPs of the active gateway: 10.200.0.1 (b's endpoint) and 10.210.0.1 (h's route)
//! ```
//!
//! Both gateways have the same configuration (the same WireGuard and ML-DSA key files, the same
//! KME and SAE id) but for their audit log, each on its own "disk". keepalived runs in each
//! gateway's namespace with `configs/keepalived/keepalived.conf`, of which only the `$NAME=`
//! lines are replaced, and the shipped `configs/keepalived/qgw-ha` as its notify and track
//! script, which starts `qgw up` on the active gateway and stops it on the standby, recording its
//! PID in the gateway's state directory. A gateway "box" dies by SIGKILL of its keepalived
//! processes and its qgw (PIDs the lab started or the script recorded) and its links going down;
//! it reboots with an empty state directory (its /run) and a fresh keepalived.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use super::hybrid::{epochs, hybrid_lines_with, write_mldsa_keys};
use super::kme::{Kmes, Sim, start_sim, write_pki_for};
use super::lab::Lab;
use super::qgw::{QgwSite, key_file, start_qgw};
use super::{run, wait_for};

const QGW: &str = env!("CARGO_BIN_EXE_qgw");
const KEEPALIVED_CONF: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../configs/keepalived/keepalived.conf"
);
const QGW_HA: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../configs/keepalived/qgw-ha");

/// Both sites' KMEs, on the underlay switch.
pub const HA_KMES: Kmes = Kmes {
    a: "10.200.0.100:8441",
    b: "10.200.0.100:8442",
    rate_bps: 500_000,
    max_key_count: 10_000,
    initial_key_count: 200,
};

/// The tunnel address of site b that site a's host sends to.
pub const B_TUNNEL: &str = "10.201.0.2";

/// One of site a's two gateways.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Gw {
    A1,
    A2,
}

impl Gw {
    fn name(self) -> &'static str {
        match self {
            Gw::A1 => "a1",
            Gw::A2 => "a2",
        }
    }
    fn index(self) -> usize {
        self as usize
    }
    /// The other gateway of the site.
    pub fn other(self) -> Gw {
        match self {
            Gw::A1 => Gw::A2,
            Gw::A2 => Gw::A1,
        }
    }
}

/// The running layout (see the module docs).
pub struct HaSites {
    /// Namespaces of a1 and a2.
    pub ns: [String; 2],
    /// Site a's host.
    pub host: String,
    /// Site b's gateway.
    pub nb: String,
    /// Site a's qgw interface name (the same on both gateways), site b's.
    pub ia: String,
    pub ib: String,
    keepalived: [Option<usize>; 2],
    boots: [u32; 2],
    pub sim: Sim,
    pub lab: Lab,
}

/// The layout with `policy` at both sites and site `master` (`'a'` or `'b'`) as the hybrid
/// master, a1 active and a2 standby, and a ping from h to b answered through the tunnel (30 s at
/// most); `None` when the test is to be skipped (never under `CI=true`).
pub fn start(policy: &str, master: char) -> Option<HaSites> {
    let mut lab = Lab::for_test_unwired(&["keepalived", "flock", "setsid"])?;
    let (a1, nb) = (lab.a.clone(), lab.b.clone());
    let a2 = lab.add_namespace("a2");
    let host = lab.add_namespace("h");
    let switch = lab.add_namespace("s");
    wire(&switch, &[&a1, &a2], &nb, &host);
    write_pki_for(&lab.dir.join("pki"), "10.200.0.100");
    let sim = start_sim(Some(&switch), &HA_KMES, &lab.dir.join("pki"));
    let (ia, ib) = (format!("qa{}", lab.id), format!("qb{}", lab.id));
    write_configs(&lab, policy, master, &ia, &ib);
    let b_conf = lab.dir.join("b.yaml");
    start_qgw(&mut lab, &nb, &ib, &b_conf, "qb.log");
    let script = lab.dir.join("qgw-ha");
    std::fs::copy(QGW_HA, &script).unwrap();
    let mut ha = HaSites {
        ns: [a1, a2],
        host,
        nb,
        ia,
        ib,
        keepalived: [None, None],
        boots: [0, 0],
        sim,
        lab,
    };
    for g in [Gw::A1, Gw::A2] {
        ha.boot(g);
        let want = if g == Gw::A1 { "MASTER" } else { "BACKUP" };
        ha.wait_state(g, want, Duration::from_secs(10));
    }
    let (h, lab) = (ha.host.clone(), &ha.lab);
    assert!(
        lab.ping_until(&h, B_TUNNEL, Duration::from_secs(30)),
        "no tunnel from site a's host: a1: {}\nb: {}",
        ha.qgw_log(Gw::A1),
        lab.log("qb.log")
    );
    Some(ha)
}

/// The switch `s` with bridges `brwan` (10.200.0.100/24) and `brlan`, and a veth from each
/// gateway (`wan0`, `lan0`), site b (`wan0`) and the host (`lan0`) to them; forwarding on at both gateways.
fn wire(switch: &str, gateways: &[&str; 2], nb: &str, host: &str) {
    for br in ["brwan", "brlan"] {
        run(&["ip", "-n", switch, "link", "add", br, "type", "bridge"]);
        run(&["ip", "-n", switch, "link", "set", "dev", br, "up"]);
    }
    let ip = |args: &[&str]| {
        let mut all = vec!["ip", "-n", switch];
        all.extend(args.iter().copied());
        run(&all)
    };
    ip(&["addr", "add", "10.200.0.100/24", "dev", "brwan"]);
    let port = |ns: &str, port: &str, dev: &str, br: &str, addr: &str| {
        ip(&[
            "link", "add", port, "type", "veth", "peer", "name", dev, "netns", ns,
        ]);
        ip(&["link", "set", "dev", port, "master", br, "up"]);
        run(&["ip", "-n", ns, "addr", "add", addr, "dev", dev]);
        run(&["ip", "-n", ns, "link", "set", "dev", dev, "up"]);
    };
    for (i, ns) in gateways.iter().enumerate() {
        let n = i + 1;
        let (wan, lan) = (format!("a{n}u"), format!("a{n}l"));
        port(ns, &wan, "wan0", "brwan", &format!("10.200.0.1{n}/24"));
        port(ns, &lan, "lan0", "brlan", &format!("10.210.0.1{n}/24"));
        let forward = [
            "ip",
            "netns",
            "exec",
            ns,
            "sysctl",
            "-qw",
            "net.ipv4.ip_forward=1",
        ];
        run(&forward);
    }
    port(nb, "bu", "wan0", "brwan", "10.200.0.2/24");
    port(host, "hl", "lan0", "brlan", "10.210.0.10/24");
    run(&[
        "ip",
        "-n",
        host,
        "route",
        "add",
        "default",
        "via",
        "10.210.0.1",
    ]);
}

/// Key files and the configurations `a1.yaml`, `a2.yaml` (site a, differing only in the audit
/// log) and `b.yaml` (site b, whose peer's allowed IPs include site a's LAN).
fn write_configs(lab: &Lab, policy: &str, master: char, ia: &str, ib: &str) {
    let ((ka, pub_a), (kb, pub_b)) = (key_file(lab, "ka"), key_file(lab, "kb"));
    write_mldsa_keys(lab, false);
    let d = lab.dir.display();
    for (name, site, iface, key, peer_pub, lan) in [
        ("a1", 'a', ia, &ka, &pub_b, &[][..]),
        ("a2", 'a', ia, &ka, &pub_b, &[][..]),
        ("b", 'b', ib, &kb, &pub_a, &["10.210.0.0/24"][..]),
    ] {
        let (peer, top) = hybrid_lines_with(lab, site, policy, &HA_KMES, master);
        let top = top + &format!("audit:\n  path: {d}/{name}.audit.jsonl\n");
        let extra = format!("mldsa_private_key_file: {d}/{site}.mldsa\n");
        let config = QgwSite {
            site,
            iface,
            v6: false,
            key_file: key,
            mtu: 1200,
            extra: &extra,
            peer_pub,
            peer_extra: &peer,
            top: &top,
            endpoint: true,
            peer_networks: lan,
        };
        let path = lab.write(&format!("{name}.yaml"), &config.yaml());
        run(&[QGW, "check-config", path.to_str().unwrap()]);
    }
}

/// `configs/keepalived/keepalived.conf` with its `$NAME=` lines set for gateway `g`.
fn keepalived_conf(lab: &Lab, g: Gw, state_dir: &str) -> String {
    let (me, peer) = (g.index() + 1, g.other().index() + 1);
    let d = lab.dir.display();
    let values = [
        ("QGW_HA", format!("{d}/qgw-ha")),
        (
            "QGW_HA_ARGS",
            format!(
                "--qgw {QGW} --config {d}/{}.yaml --state-dir {state_dir}",
                g.name()
            ),
        ),
        ("VRID", "51".into()),
        ("UNDERLAY_VIP", "10.200.0.1/24".into()),
        ("LAN_VIP", "10.210.0.1/24".into()),
        ("UNDERLAY_VIP_ADDR", "10.200.0.1".into()),
        ("REMOTE_UNDERLAY", "10.200.0.2/32".into()),
        ("REMOTE_ROUTE", "dev wan0".into()),
        ("UNDERLAY_IF", "wan0".into()),
        ("LAN_IF", "lan0".into()),
        ("SELF_IP", format!("10.200.0.1{me}")),
        ("PEER_IP", format!("10.200.0.1{peer}")),
        ("PRIORITY", if g == Gw::A1 { "150" } else { "100" }.into()),
    ];
    let shipped = std::fs::read_to_string(KEEPALIVED_CONF).unwrap();
    let mut out = String::new();
    let mut replaced = 0;
    for line in shipped.lines() {
        let name = line
            .strip_prefix('$')
            .and_then(|l| l.split_once('='))
            .map(|(n, _)| n);
        match name.and_then(|n| values.iter().find(|(k, _)| *k == n)) {
            Some((k, v)) => {
                out += &format!("${k}={v}\n");
                replaced += 1;
            }
            None => out += &format!("{line}\n"),
        }
    }
    assert_eq!(
        replaced,
        values.len(),
        "keepalived.conf's $NAME= lines changed"
    );
    out
}

impl HaSites {
    /// Gateway `g`'s state directory (the script's `--state-dir`: its /run).
    pub fn state_dir(&self, g: Gw) -> PathBuf {
        self.lab.dir.join(format!("{}.ha", g.name()))
    }

    /// Boots gateway `g`: links up, an empty state directory, its keepalived configuration
    /// checked with `keepalived -t` and keepalived started.
    pub fn boot(&mut self, g: Gw) {
        let (ns, i) = (self.ns[g.index()].clone(), g.index());
        for dev in ["wan0", "lan0"] {
            run(&["ip", "-n", &ns, "link", "set", "dev", dev, "up"]);
        }
        let state = self.state_dir(g);
        let _ = std::fs::remove_dir_all(&state);
        let conf = keepalived_conf(&self.lab, g, state.to_str().unwrap());
        let boot = self.boots[i];
        self.boots[i] += 1;
        let path = self
            .lab
            .write(&format!("{}-keepalived-{boot}.conf", g.name()), &conf);
        let path = path.to_str().unwrap().to_owned();
        self.lab.check(&ns, &["keepalived", "-t", "-f", &path]);
        let pid = |p: &str| self.lab.dir.join(format!("{}-{p}-{boot}.pid", g.name()));
        let (pid, vrrp_pid) = (pid("keepalived"), pid("vrrp"));
        let args = [
            "keepalived",
            "-n",
            "-l",
            "-D",
            "-G",
            "-P",
            "-R",
            "-f",
            &path,
            "-p",
            pid.to_str().unwrap(),
            "-r",
            vrrp_pid.to_str().unwrap(),
        ];
        let log = format!("{}-keepalived-{boot}.log", g.name());
        self.keepalived[i] = Some(self.lab.spawn(&ns, &args, &log));
    }

    /// The current keepalived log of `g`.
    pub fn keepalived_log(&self, g: Gw) -> String {
        let boot = self.boots[g.index()].saturating_sub(1);
        self.lab.log(&format!("{}-keepalived-{boot}.log", g.name()))
    }

    /// The log of the qgw that `g`'s script started since its last boot ("" if none).
    pub fn qgw_log(&self, g: Gw) -> String {
        std::fs::read_to_string(self.state_dir(g).join("qgw.log")).unwrap_or_default()
    }

    /// The `hybrid epoch installed` lines with QKD of `g`'s qgw since its last boot.
    pub fn epochs(&self, g: Gw) -> Vec<(u64, String)> {
        epochs(&self.qgw_log(g))
    }

    /// Waits until `g`'s keepalived says it entered `state` (MASTER, BACKUP, FAULT).
    pub fn wait_state(&self, g: Gw, state: &str, deadline: Duration) {
        let want = format!("Entering {state} STATE");
        wait_for(&format!("{g:?} to enter {state}"), deadline, || {
            self.keepalived_log(g).contains(&want)
        });
    }

    /// The PID of the qgw `g`'s script started and that is still running, if any.
    pub fn qgw_pid(&self, g: Gw) -> Option<u32> {
        let pid: u32 = std::fs::read_to_string(self.state_dir(g).join("qgw.pid"))
            .ok()?
            .trim()
            .parse()
            .ok()?;
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
        let config = format!("{}.yaml", g.name());
        String::from_utf8_lossy(&cmdline)
            .contains(&config)
            .then_some(pid)
    }

    /// Whether gateway `g` has a qgw interface.
    pub fn has_tunnel(&self, g: Gw) -> bool {
        let ns = &self.ns[g.index()];
        self.lab
            .exec(ns, &["ip", "link", "show", &self.ia])
            .status
            .success()
    }

    /// The PIDs of `g`'s keepalived (VRRP process, then parent) if it runs, and its lab handle.
    fn keepalived_pids(&self, g: Gw) -> Option<(usize, Vec<u32>)> {
        let i = g.index();
        let h = self.keepalived[i]?;
        let boot = self.boots[i] - 1;
        let vrrp = self.lab.dir.join(format!("{}-vrrp-{boot}.pid", g.name()));
        // The VRRP process first: killed after its parent, it would get the parent's death
        // signal (SIGTERM) and hand the site over gracefully (a priority 0 advert) first.
        let vrrp = std::fs::read_to_string(vrrp).ok();
        let mut pids: Vec<u32> = vrrp
            .and_then(|p| p.trim().parse().ok())
            .into_iter()
            .collect();
        pids.push(self.lab.pid(h)?);
        Some((h, pids))
    }

    /// The box `g` dies: SIGKILL to its keepalived (both processes) and its qgw, then its links
    /// go down. Returns the instant the last of them was killed (none of them runs after it).
    pub fn kill_box(&mut self, g: Gw) -> Instant {
        let i = g.index();
        let (h, mut pids) = self.keepalived_pids(g).expect("keepalived running");
        self.keepalived[i] = None;
        pids.extend(self.qgw_pid(g));
        let at = sigkill(&pids);
        for dev in ["wan0", "lan0"] {
            run(&["ip", "-n", &self.ns[i], "link", "set", "dev", dev, "down"]);
        }
        self.lab.stop(h, "-KILL");
        at
    }

    /// Only `g`'s qgw dies (SIGKILL); its keepalived lives on. Returns the instant it was killed.
    pub fn kill_qgw(&mut self, g: Gw) -> Instant {
        sigkill(&[self.qgw_pid(g).expect("qgw running")])
    }
}

/// SIGKILL to each of `pids` (processes this test started); the instant after the last one:
/// a process that got SIGKILL never runs user code again, so nothing of them sends after it.
fn sigkill(pids: &[u32]) -> Instant {
    use nix::sys::signal::{Signal, kill};
    use nix::unistd::Pid;
    for pid in pids {
        let pid = Pid::from_raw(i32::try_from(*pid).unwrap());
        kill(pid, Signal::SIGKILL).unwrap_or_else(|e| panic!("kill {pid}: {e}"));
    }
    Instant::now()
}

impl Drop for HaSites {
    fn drop(&mut self) {
        // keepalived first, both at once and with SIGKILL: stopped one by one, or with SIGTERM,
        // one would hand the site to the other, whose notify would start a qgw nobody stops.
        let mut handles = Vec::new();
        for g in [Gw::A1, Gw::A2] {
            if let Some((h, pids)) = self.keepalived_pids(g) {
                for pid in pids {
                    let pid = nix::unistd::Pid::from_raw(i32::try_from(pid).unwrap());
                    let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL);
                }
                handles.push(h);
            }
            self.keepalived[g.index()] = None;
        }
        for h in handles {
            self.lab.stop(h, "-KILL");
        }
        // A notify script still running may yet start qgw: let it finish (it holds its lock for
        // milliseconds), then stop every qgw the scripts started, with SIGTERM so it removes its
        // interface and sockets (SIGKILL after 5 s).
        std::thread::sleep(Duration::from_millis(300));
        for g in [Gw::A1, Gw::A2] {
            let Some(pid) = self.qgw_pid(g) else { continue };
            let pid = nix::unistd::Pid::from_raw(i32::try_from(pid).unwrap());
            let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
            let start = Instant::now();
            while self.qgw_pid(g).is_some() && start.elapsed() < Duration::from_secs(5) {
                std::thread::sleep(Duration::from_millis(50));
            }
            if self.qgw_pid(g).is_some() {
                let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL);
            }
        }
        // The sockets of a qgw that was SIGKILLed and never replaced.
        let ia = &self.ia;
        for path in [
            format!("/run/qgw/{ia}.sock"),
            format!("/var/run/wireguard/{ia}.sock"),
        ] {
            self.lab.remove_later(PathBuf::from(path));
        }
    }
}
