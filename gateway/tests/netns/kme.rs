//! The KME simulator (`qkd_link::sim`) for tests: one PKI for its two KMEs and two SAEs, one
//! configuration of two linked KMEs ([`Kmes`]) or any other ([`start_sim_yaml`]), and one way to run it: on a thread of the test
//! process, inside a network namespace or on the host, until the handle is dropped.

use std::path::Path;
use std::sync::{Arc, mpsc};
use std::time::Duration;

use qkd_link::SaeId;
use qkd_link::sim::{SimConfig, SimControl};

/// Two linked KMEs: KME_A serving SAE_A and KME_B serving SAE_B.
pub struct Kmes {
    /// KME_A's listening address (port 0: any free port).
    pub a: &'static str,
    /// KME_B's listening address.
    pub b: &'static str,
    /// The link's secret key rate, bits per second.
    pub rate_bps: u64,
    /// Keys the link can hold.
    pub max_key_count: u64,
    /// Keys the link holds at start.
    pub initial_key_count: u64,
}

impl Kmes {
    /// The simulator's YAML configuration (256-bit keys, up to 16 per request).
    pub fn yaml(&self) -> String {
        let limits = [
            "key_size: 256",
            "min_key_size: 64",
            "max_key_size: 1024",
            "max_key_per_request: 16",
            "max_sae_id_count: 0",
        ];
        let mut y = String::from("limits:\n");
        for l in limits {
            y += &format!("  {l}\n");
        }
        y += "kmes:\n";
        for (site, listen) in [("A", self.a), ("B", self.b)] {
            y += &format!("  - id: KME_{site}\n    listen: {listen}\n    saes: [SAE_{site}]\n");
        }
        y + &format!(
            "links:\n  - kmes: [KME_A, KME_B]\n    secret_key_rate_bps: {}\n    max_key_count: {}\n    initial_key_count: {}\n",
            self.rate_bps, self.max_key_count, self.initial_key_count
        )
    }
}

/// Writes a CA and the certificates and keys of KME_A, KME_B, SAE_A and SAE_B into `dir`
/// (`ca.pem`, `kme_a.pem`, `sae_a.key`, …). Besides loopback, the KME certificates name
/// 10.200.0.1, where the namespace tests' site b reaches KME_B.
pub fn write_pki(dir: &Path) {
    write_pki_for(dir, "10.200.0.1");
}

/// As [`write_pki`], with the KME certificates naming `kme_ip` besides loopback.
pub fn write_pki_for(dir: &Path, kme_ip: &str) {
    qkd_link::sim::pki::generate_entities(
        dir,
        &[
            ("kme_a", "KME_A", true),
            ("kme_b", "KME_B", true),
            ("sae_a", "SAE_A", false),
            ("sae_b", "SAE_B", false),
        ],
        &[kme_ip.to_string()],
        false,
    )
    .expect("PKI written");
}

/// A simulator running on a thread; dropping it stops the simulator.
pub struct Sim {
    stop: Option<mpsc::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
    control: Arc<SimControl>,
    urls: Vec<(String, String)>,
}

/// Runs the simulator with `kmes` and the certificates in `pki` on a thread, inside namespace
/// `ns` if given, until the returned handle is dropped.
pub fn start_sim(ns: Option<&str>, kmes: &Kmes, pki: &Path) -> Sim {
    start_sim_yaml(ns, kmes.yaml(), &["KME_A", "KME_B"], pki)
}

/// As [`start_sim`], with any simulator configuration `yaml`; [`Sim::kme_url`] knows the KMEs
/// named in `urls_of`.
pub fn start_sim_yaml(ns: Option<&str>, yaml: String, urls_of: &[&str], pki: &Path) -> Sim {
    let (stop_tx, stop_rx) = mpsc::channel::<()>();
    let (ready_tx, ready_rx) = mpsc::channel();
    let path = ns.map(|ns| format!("/var/run/netns/{ns}"));
    let pki = pki.to_owned();
    let names: Vec<String> = urls_of.iter().map(|k| (*k).to_owned()).collect();
    let thread = std::thread::spawn(move || {
        if let Some(path) = path {
            let fd = std::fs::File::open(&path).unwrap();
            nix::sched::setns(&fd, nix::sched::CloneFlags::CLONE_NEWNET).unwrap();
        }
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let cfg = SimConfig::from_yaml(&yaml, "sim.yaml").unwrap();
        let sim = rt.block_on(qkd_link::sim::start(cfg, &pki)).unwrap();
        let urls: Vec<(String, String)> = (names.into_iter())
            .map(|k| {
                let url = sim.kme_url(&k).unwrap();
                (k, url)
            })
            .collect();
        ready_tx.send((Arc::clone(sim.control()), urls)).unwrap();
        // Serve until the test drops the sender (bounded by the test's own deadlines).
        rt.block_on(async {
            while stop_rx.try_recv() == Err(mpsc::TryRecvError::Empty) {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            sim.shutdown().await;
        });
    });
    let (control, urls) = ready_rx
        .recv_timeout(Duration::from_secs(20))
        .expect("simulator started");
    Sim {
        stop: Some(stop_tx),
        thread: Some(thread),
        control,
        urls,
    }
}

impl Sim {
    /// `https://IP:PORT` of KME `kme` (`KME_A` or `KME_B`).
    pub fn kme_url(&self, kme: &str) -> String {
        let found = self.urls.iter().find(|(k, _)| k == kme);
        found
            .map(|(_, u)| u.clone())
            .expect("a KME of the simulator")
    }

    /// KME down (connections refused) or up again.
    pub fn kme_down(&self, kme: &str, down: bool) {
        let id = SaeId::new(kme).unwrap();
        self.control.set_kme_down(&id, down).unwrap();
    }

    /// The admin API's view (`GET /admin/state`): KMEs, links and their counters, no key.
    pub fn state(&self) -> serde_json::Value {
        self.control.state()
    }

    /// Stops the KMEs and waits until their ports are free.
    pub fn stop_and_join(&mut self) {
        self.stop = None; // the serving loop sees the channel close and shuts the KMEs down
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Sim {
    fn drop(&mut self) {
        self.stop_and_join();
    }
}
