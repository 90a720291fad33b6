//! The lab: two network namespaces `a` and `b` joined by a veth pair (`va` 10.200.0.1/24 ↔ `vb`
//! 10.200.0.2/24) or left for the test to wire, more namespaces if it asks, a scratch directory,
//! the processes started inside the namespaces, and pings between them. Dropping the lab stops
//! those processes (SIGTERM, then SIGKILL after 5 s), deletes its namespaces and the files it was
//! told about, also when the test panics; the scratch directory is kept (and named) after a
//! failure so its logs can be read.

use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use super::{prerequisites, run, test_name};

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
    /// Namespaces beyond `a` and `b` ([`Lab::add_namespace`]), deleted on drop too.
    more: Vec<String>,
}

impl Lab {
    /// The running test's lab, once its prerequisites (root, iproute2, `ping` and `tools`) hold;
    /// `None` when the test is to be skipped, which [`prerequisites`] never allows under
    /// `CI=true`. `underlay_mtu` sets the veth MTU (default 1500).
    pub fn for_test(tools: &[&str], underlay_mtu: Option<u32>) -> Option<Self> {
        prerequisites(tools).then(|| Self::new(underlay_mtu))
    }

    /// As [`Lab::for_test`], but `a` and `b` are left unconnected (only loopback up): the test
    /// wires its own topology, e.g. a switch in a namespace of [`Lab::add_namespace`].
    pub fn for_test_unwired(tools: &[&str]) -> Option<Self> {
        prerequisites(tools).then(Self::namespaces)
    }

    /// Namespaces `qgw<pid>-<n>{a,b}`, the n-th lab of this process, joined by the veth
    /// `va` ↔ `vb`.
    fn new(underlay_mtu: Option<u32>) -> Self {
        let lab = Self::namespaces();
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
        }
        lab
    }

    /// Namespaces `qgw<pid>-<n>{a,b}` with loopback up; interface names get the suffix
    /// `<n>p<pid mod 100000>`, the scratch directory is named after the test.
    fn namespaces() -> Self {
        static LABS: AtomicUsize = AtomicUsize::new(0);
        let n = LABS.fetch_add(1, Ordering::Relaxed);
        let pid = std::process::id();
        let dir = std::env::temp_dir().join(format!("qgw-netns-{}-{pid}", test_name()));
        std::fs::create_dir_all(&dir).unwrap();
        let lab = Self {
            a: format!("qgw{pid}-{n}a"),
            b: format!("qgw{pid}-{n}b"),
            dir,
            id: format!("{n}p{}", pid % 100_000),
            children: Vec::new(),
            files: Vec::new(),
            more: Vec::new(),
        };
        for ns in [&lab.a, &lab.b] {
            run(&["ip", "netns", "add", ns]);
            run(&["ip", "-n", ns, "link", "set", "lo", "up"]);
        }
        lab
    }

    /// Creates namespace `<a's name without the final a><suffix>` with loopback up, deleted
    /// with the lab.
    pub fn add_namespace(&mut self, suffix: &str) -> String {
        let ns = format!("{}{suffix}", &self.a[..self.a.len() - 1]);
        run(&["ip", "netns", "add", &ns]);
        self.more.push(ns.clone());
        run(&["ip", "-n", &ns, "link", "set", "lo", "up"]);
        ns
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

    /// The PID of process `h` (started by [`Lab::spawn`]) while the lab has not stopped it.
    pub fn pid(&self, h: usize) -> Option<u32> {
        self.children[h].as_ref().map(Child::id)
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

    /// A log file's contents (for failure messages).
    pub fn log(&self, name: &str) -> String {
        std::fs::read_to_string(self.dir.join(name)).unwrap_or_default()
    }

    /// Site a roams: its underlay address changes from 10.200.0.1 to 10.200.0.3, and a → b
    /// pings must get through again within 10 s (the peer at b follows a's new address).
    #[track_caller]
    pub fn roam_a(&self) {
        run(&[
            "ip",
            "-n",
            &self.a,
            "addr",
            "del",
            "10.200.0.1/24",
            "dev",
            "va",
        ]);
        run(&[
            "ip",
            "-n",
            &self.a,
            "addr",
            "add",
            "10.200.0.3/24",
            "dev",
            "va",
        ]);
        assert!(
            self.ping_until(&self.a, "10.201.0.2", Duration::from_secs(10)),
            "a -> b after roaming"
        );
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

    /// `count` pings from `ns` to `dst`, one every 200 ms, and what `ping` says of them.
    pub fn ping_stats(&self, ns: &str, dst: &str, count: u32) -> PingStats {
        let count = count.to_string();
        let o = self.exec(
            ns,
            &["ping", "-q", "-c", &count, "-i", "0.2", "-W", "2", dst],
        );
        let text = String::from_utf8_lossy(&o.stdout).into_owned();
        PingStats::parse(&text).unwrap_or_else(|| panic!("unreadable ping output: {text}"))
    }

    /// Whether one ping from `ns` to `dst` gets an answer within a second.
    pub fn ping_once(&self, ns: &str, dst: &str) -> bool {
        self.exec(ns, &["ping", "-c", "1", "-W", "1", dst])
            .status
            .success()
    }

    /// Pings until one answer arrives or `deadline` passes.
    pub fn ping_until(&self, ns: &str, dst: &str, deadline: Duration) -> bool {
        let start = Instant::now();
        while start.elapsed() < deadline {
            if self.ping_once(ns, dst) {
                return true;
            }
        }
        false
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        // SIGTERM to every process first, so a lab of many stops in one grace period, not one each.
        for c in self.children.iter().flatten() {
            if let Ok(pid) = i32::try_from(c.id()) {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(pid),
                    nix::sys::signal::Signal::SIGTERM,
                );
            }
        }
        for h in 0..self.children.len() {
            // SIGTERM first (qgw and wireguard-go clean up on it), SIGKILL after 5 s.
            self.stop(h, "-TERM");
        }
        for f in &self.files {
            let _ = std::fs::remove_file(f);
        }
        let _ = Command::new("ip").args(["netns", "del", &self.a]).output();
        let _ = Command::new("ip").args(["netns", "del", &self.b]).output();
        for ns in &self.more {
            let _ = Command::new("ip").args(["netns", "del", ns]).output();
        }
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.dir);
        } else {
            eprintln!("logs kept in {}", self.dir.display());
        }
    }
}

/// What `ping -q` reports: packets sent and answered, round-trip times in ms.
#[derive(Clone, Copy, Debug, Default)]
pub struct PingStats {
    /// Echo requests sent.
    pub sent: u32,
    /// Replies received.
    pub received: u32,
    /// Smallest, mean and largest round-trip time (0 without replies).
    pub rtt_ms: [f64; 3],
}

impl PingStats {
    /// Reads `N packets transmitted, M received, …` and `rtt min/avg/max/mdev = a/b/c/d ms`.
    fn parse(text: &str) -> Option<Self> {
        let counts = text.lines().find(|l| l.contains("packets transmitted"))?;
        let mut words = counts.split(", ");
        let number = |w: Option<&str>| w?.split_whitespace().next()?.parse().ok();
        let (sent, received) = (number(words.next())?, number(words.next())?);
        let mut rtt_ms = [0.0; 3];
        if let Some(rtt) = text.lines().find(|l| l.starts_with("rtt ")) {
            let values = rtt.split(" = ").nth(1)?.split(' ').next()?;
            for (slot, v) in rtt_ms.iter_mut().zip(values.split('/')) {
                *slot = v.parse().ok()?;
            }
        }
        Some(Self {
            sent,
            received,
            rtt_ms,
        })
    }

    /// Lost replies in percent.
    pub fn loss_percent(&self) -> f64 {
        100.0 * f64::from(self.sent - self.received) / f64::from(self.sent.max(1))
    }
}

impl std::fmt::Display for PingStats {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let [min, avg, max] = self.rtt_ms;
        write!(
            f,
            "{}/{} answered ({:.1} % loss), rtt min/avg/max {min:.3}/{avg:.3}/{max:.3} ms",
            self.received,
            self.sent,
            self.loss_percent()
        )
    }
}
