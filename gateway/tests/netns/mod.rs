//! Shared harness of the network-namespace tests: two namespaces `a` and `b` joined by a veth pair
//! (underlay 10.200.0.1 ↔ 10.200.0.2), processes started inside them, and helpers that run code
//! *inside* a namespace from a thread of the test (`setns`), so TCP transfers and handshake floods
//! need no extra tools. Everything a [`Lab`] creates (namespaces, processes it started, files) is
//! removed on drop, also when the test panics; only PIDs the lab started are ever signalled.
//!
//! Prerequisites: root, iproute2, `ping`; `wg`/`wireguard-go`/`iperf3` where a test says so.
//! Under `CI=true` a missing prerequisite fails the test, and `QGW_SKIP_NETNS=1` is refused; outside
//! CI the test prints why and skips.
#![allow(dead_code, clippy::unwrap_used)]

pub mod hybrid;
pub mod traffic;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// Runs a command on the host and asserts success.
pub fn run(args: &[&str]) -> Output {
    let out = Command::new(args[0])
        .args(&args[1..])
        .output()
        .unwrap_or_else(|e| panic!("{args:?}: {e}"));
    assert!(
        out.status.success(),
        "{args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// A command's trimmed stdout.
pub fn stdout(args: &[&str]) -> String {
    String::from_utf8(run(args).stdout)
        .unwrap()
        .trim()
        .to_owned()
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

fn on_path(tool: &str) -> bool {
    std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default())
        .any(|d| Path::new(&d).join(tool).exists())
}

/// Whether the test can run. Under `CI=true` every problem is a failure (never a silent skip);
/// elsewhere the reason is printed and the test returns early.
pub fn prerequisites(test: &str, tools: &[&str]) -> bool {
    let ci = std::env::var("CI").is_ok_and(|v| v == "true" || v == "1");
    let skip = std::env::var_os("QGW_SKIP_NETNS").is_some_and(|v| v == "1");
    assert!(
        !(ci && skip),
        "{test}: QGW_SKIP_NETNS=1 is not honoured under CI=true: the namespace tests must run in CI"
    );
    if skip {
        eprintln!("{test}: skipped (QGW_SKIP_NETNS=1)");
        return false;
    }
    let mut problem = (!is_root()).then(|| "needs root (network namespaces, TUN)".to_owned());
    for tool in ["ip", "ping"].iter().chain(tools) {
        if problem.is_none() && !on_path(tool) {
            problem = Some(format!(
                "{tool} not found: apt-get install iproute2 iputils-ping wireguard-go wireguard-tools iperf3"
            ));
        }
    }
    match problem {
        None => true,
        Some(p) if ci => panic!("{test}: {p} (CI=true: namespace tests may not skip)"),
        Some(p) => {
            eprintln!("{test}: skipped: {p}");
            false
        }
    }
}

/// Waits up to `deadline` for `f`, else panics naming `what`.
pub fn wait_for(what: &str, deadline: Duration, mut f: impl FnMut() -> bool) {
    let start = Instant::now();
    while start.elapsed() < deadline {
        if f() {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("timed out after {deadline:?} waiting for {what}");
}

/// Two namespaces, a veth between them, the processes we started and a scratch directory.
pub struct Lab {
    /// Namespace of site a (underlay 10.200.0.1).
    pub a: String,
    /// Namespace of site b (underlay 10.200.0.2).
    pub b: String,
    /// Scratch directory (configs, keys, logs).
    pub dir: PathBuf,
    /// A short unique suffix for interface names (the UAPI and status sockets are global).
    pub id: String,
    children: Vec<Option<Child>>,
    files: Vec<PathBuf>,
}

impl Lab {
    /// Namespaces `qgw<tag>{a,b}<pid>`; `underlay_mtu` sets the veth MTU.
    pub fn new(tag: &str, underlay_mtu: Option<u32>) -> Self {
        let pid = std::process::id();
        let dir = std::env::temp_dir().join(format!("qgw-netns-{tag}-{pid}"));
        std::fs::create_dir_all(&dir).unwrap();
        let lab = Self {
            a: format!("qgw{tag}a{pid}"),
            b: format!("qgw{tag}b{pid}"),
            dir,
            id: format!("{tag}{}", pid % 100_000),
            children: Vec::new(),
            files: Vec::new(),
        };
        run(&["ip", "netns", "add", &lab.a]);
        run(&["ip", "netns", "add", &lab.b]);
        run(&[
            "ip", "link", "add", "va", "netns", &lab.a, "type", "veth", "peer", "name", "vb",
            "netns", &lab.b,
        ]);
        let mtu = underlay_mtu.unwrap_or(1500).to_string();
        for (ns, dev, addr) in [
            (&lab.a, "va", "10.200.0.1/24"),
            (&lab.b, "vb", "10.200.0.2/24"),
        ] {
            run(&["ip", "-n", ns, "addr", "add", addr, "dev", dev]);
            run(&["ip", "-n", ns, "link", "set", dev, "mtu", &mtu, "up"]);
            run(&["ip", "-n", ns, "link", "set", "lo", "up"]);
        }
        lab
    }

    /// Starts `args` inside `ns` with output to `log` in the scratch dir; returns its handle.
    pub fn spawn(&mut self, ns: &str, args: &[&str], log: &str) -> usize {
        self.spawn_env(ns, args, log, &[])
    }

    /// As [`Lab::spawn`], with extra environment variables.
    pub fn spawn_env(&mut self, ns: &str, args: &[&str], log: &str, env: &[(&str, &str)]) -> usize {
        let log = std::fs::File::create(self.dir.join(log)).unwrap();
        // `ip netns exec` execs the command: the child's PID is the command's.
        let child = Command::new("ip")
            .args(["netns", "exec", ns])
            .args(args)
            .envs(env.iter().copied())
            .env("WG_PROCESS_FOREGROUND", "1")
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .stdin(Stdio::null())
            .spawn()
            .unwrap();
        self.children.push(Some(child));
        self.children.len() - 1
    }

    /// Sends `signal` to process `h` (started by [`Lab::spawn`]) and waits up to 5 s for it.
    pub fn stop(&mut self, h: usize, signal: &str) {
        let Some(mut c) = self.children[h].take() else {
            return;
        };
        let _ = Command::new("kill")
            .args([signal, &c.id().to_string()])
            .output();
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(5) && matches!(c.try_wait(), Ok(None)) {
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = c.kill();
        let _ = c.wait();
    }

    /// Runs `args` inside `ns`.
    pub fn exec(&self, ns: &str, args: &[&str]) -> Output {
        Command::new("ip")
            .args(["netns", "exec", ns])
            .args(args)
            .output()
            .unwrap()
    }

    /// Runs `args` inside `ns`, asserting success; returns stdout.
    pub fn check(&self, ns: &str, args: &[&str]) -> String {
        let o = self.exec(ns, args);
        assert!(
            o.status.success(),
            "{ns}: {args:?}: {}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8_lossy(&o.stdout).into_owned()
    }

    /// Writes a scratch file, readable only by its owner (key files must be).
    pub fn write(&self, name: &str, text: &str) -> PathBuf {
        use std::os::unix::fs::PermissionsExt;
        let p = self.dir.join(name);
        std::fs::write(&p, text).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
        p
    }

    /// A file outside the scratch dir to delete at the end (sockets of wireguard-go).
    pub fn remove_later(&mut self, p: PathBuf) {
        self.files.push(p);
    }

    /// `count` pings from `ns` to `dst` (v4 or v6), true if all were answered. `size` sets the
    /// payload and forbids fragmentation.
    pub fn ping(&self, ns: &str, dst: &str, count: u32, size: Option<u32>) -> bool {
        let count = count.to_string();
        let mut args = vec!["ping", "-c", &count, "-i", "0.2", "-W", "2"];
        let s;
        if let Some(n) = size {
            s = n.to_string();
            args.extend(["-M", "do", "-s", &s]);
        }
        args.push(dst);
        let o = self.exec(ns, &args);
        let text = String::from_utf8_lossy(&o.stdout);
        o.status.success() && text.contains(&format!(" {count} received"))
    }

    /// Pings until one answer arrives or `deadline` passes.
    pub fn ping_until(&self, ns: &str, dst: &str, deadline: Duration) -> bool {
        let start = Instant::now();
        while start.elapsed() < deadline {
            let o = self.exec(ns, &["ping", "-c", "1", "-W", "1", dst]);
            if o.status.success() {
                return true;
            }
        }
        false
    }

    /// A log file's contents (for failure messages).
    pub fn log(&self, name: &str) -> String {
        std::fs::read_to_string(self.dir.join(name)).unwrap_or_default()
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        for h in 0..self.children.len() {
            // SIGTERM first (qgw and wireguard-go clean up on it), SIGKILL after 5 s.
            self.stop(h, "-TERM");
        }
        for f in &self.files {
            let _ = std::fs::remove_file(f);
        }
        let _ = Command::new("ip").args(["netns", "del", &self.a]).output();
        let _ = Command::new("ip").args(["netns", "del", &self.b]).output();
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.dir);
        } else {
            eprintln!("logs kept in {}", self.dir.display());
        }
    }
}

/// A Base64 key pair from `wg genkey`-compatible `qgw genkey`/`qgw pubkey`.
pub fn keypair() -> (String, String) {
    let qgw = env!("CARGO_BIN_EXE_qgw");
    let private = stdout(&[qgw, "genkey"]);
    let mut c = Command::new(qgw)
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

/// One site's qgw configuration (one peer).
pub struct QgwSite<'a> {
    /// Interface name.
    pub iface: &'a str,
    /// Interface addresses (CIDR).
    pub addresses: &'a [&'a str],
    /// Private key file.
    pub key_file: &'a Path,
    /// Tunnel MTU.
    pub mtu: u32,
    /// Extra `interface:` lines (e.g. `danger_rekey_after_seconds: 5`).
    pub extra: &'a str,
    /// The peer's public key.
    pub peer_pub: &'a str,
    /// The peer's endpoint, if configured.
    pub endpoint: Option<&'a str>,
    /// The peer's allowed IPs.
    pub allowed: &'a [&'a str],
    /// Extra peer lines (e.g. `persistent_keepalive: 2`).
    pub peer_extra: &'a str,
}

impl QgwSite<'_> {
    /// The YAML text.
    pub fn yaml(&self) -> String {
        let mut s = format!(
            "interface:\n  name: {}\n  address: [{}]\n  listen_port: 51820\n  private_key_file: {}\n  mtu: {}\n",
            self.iface,
            self.addresses.join(", "),
            self.key_file.display(),
            self.mtu
        );
        for l in self.extra.lines() {
            s += &format!("  {l}\n");
        }
        s += &format!(
            "peers:\n  - name: peer\n    public_key: \"{}\"\n    allowed_ips: [{}]\n",
            self.peer_pub,
            self.allowed.join(", ")
        );
        if let Some(e) = self.endpoint {
            s += &format!("    endpoint: {e}\n");
        }
        for l in self.peer_extra.lines() {
            s += &format!("    {l}\n");
        }
        s
    }
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
    let qgw = env!("CARGO_BIN_EXE_qgw");
    let h = lab.spawn_env(
        ns,
        &[qgw, "up", "--config", config.to_str().unwrap()],
        log,
        env,
    );
    let ns2 = ns.to_owned();
    wait_for(
        &format!("qgw {iface} to come up"),
        Duration::from_secs(10),
        || lab.exec(&ns2, &[qgw, "status", iface]).status.success(),
    );
    h
}

/// `qgw status IFACE --json`, run inside `ns`.
pub fn status(lab: &Lab, ns: &str, iface: &str) -> serde_json::Value {
    let qgw = env!("CARGO_BIN_EXE_qgw");
    let out = lab.check(ns, &[qgw, "status", iface, "--json"]);
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"))
}

/// The first peer's field `f` from [`status`].
pub fn peer_field(lab: &Lab, ns: &str, iface: &str, f: &str) -> serde_json::Value {
    status(lab, ns, iface)["peers"][0][f].clone()
}
