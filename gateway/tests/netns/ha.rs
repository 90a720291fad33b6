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

pub use super::ha_layout::{B_TUNNEL, Gw, HA_KMES};
use super::ha_layout::{QGW_HA, keepalived_conf, wire, write_configs};
use super::hybrid::epochs;
use super::kme::{Sim, start_sim, write_pki_for};
use super::lab::Lab;
use super::qgw::start_qgw;
use super::{run, wait_for};

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
