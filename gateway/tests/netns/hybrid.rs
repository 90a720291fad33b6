//! Two hybrid qgw sites with the KME simulator as each site's KME (ETSI 014 over mutual TLS),
//! shared by the hybrid and operations namespace tests.

use std::sync::mpsc;
use std::time::Duration;

use super::{Lab, QgwSite, start_qgw_env};

/// Two KMEs in namespace `a`: KME_A on its loopback (site a's gateway), KME_B on the underlay
/// address 10.200.0.1 (site b reaches it over the veth).
pub const SIM: &str = r#"
limits:
  key_size: 256
  min_key_size: 64
  max_key_size: 1024
  max_key_per_request: 16
  max_sae_id_count: 0
kmes:
  - id: KME_A
    listen: 127.0.0.1:8441
    saes: [SAE_A]
  - id: KME_B
    listen: 10.200.0.1:8442
    saes: [SAE_B]
links:
  - kmes: [KME_A, KME_B]
    secret_key_rate_bps: 500000
    max_key_count: 10000
    initial_key_count: 200
"#;

/// A simulator running on a thread inside a namespace; dropping it stops the simulator.
pub struct Sim {
    stop: Option<mpsc::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
    control: std::sync::Arc<qkd_link::sim::SimControl>,
}

impl Sim {
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

impl Sim {
    /// KME down (connections refused) or up again.
    pub fn kme_down(&self, kme: &str, down: bool) {
        let id = qkd_link::SaeId::new(kme).unwrap();
        self.control.set_kme_down(&id, down).unwrap();
    }
}

/// Runs the simulator on a thread inside `ns` until the returned handle is dropped.
pub fn start_sim(ns: &str, pki: std::path::PathBuf) -> Sim {
    let (stop_tx, stop_rx) = mpsc::channel::<()>();
    let (ready_tx, ready_rx) = mpsc::channel();
    let path = format!("/var/run/netns/{ns}");
    let thread = std::thread::spawn(move || {
        let fd = std::fs::File::open(&path).unwrap();
        nix::sched::setns(&fd, nix::sched::CloneFlags::CLONE_NEWNET).unwrap();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let cfg = qkd_link::sim::SimConfig::from_yaml(SIM, "sim.yaml").unwrap();
        let sim = rt.block_on(qkd_link::sim::start(cfg, &pki)).unwrap();
        ready_tx.send(std::sync::Arc::clone(sim.control())).unwrap();
        // Serve until the test drops the sender (bounded by the test's own deadlines).
        rt.block_on(async {
            while stop_rx.try_recv() == Err(mpsc::TryRecvError::Empty) {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            sim.shutdown().await;
        });
    });
    let control = ready_rx
        .recv_timeout(Duration::from_secs(20))
        .expect("simulator started");
    Sim {
        stop: Some(stop_tx),
        thread: Some(thread),
        control,
    }
}

/// Site configuration lines for the hybrid peer and the site's KME.
pub fn hybrid_lines(lab: &Lab, site: char, peer_site: char, policy: &str) -> (String, String) {
    let d = lab.dir.display();
    let upper = site.to_ascii_uppercase();
    let peer_upper = peer_site.to_ascii_uppercase();
    let kme = if site == 'a' {
        "127.0.0.1:8441"
    } else {
        "10.200.0.1:8442"
    };
    // Site a is the master (calls enc_keys at KME_A), site b the slave (dec_keys at KME_B).
    let role = if site == 'a' { "master" } else { "slave" };
    let peer = format!(
        "hybrid: on\nmldsa_public_key_file: {d}/{peer_site}.mldsa.pub\nqkd: {{ peer_sae_id: SAE_{peer_upper}, policy: {policy}, role: {role} }}\nrekey_after_seconds: 5\n"
    );
    let top = format!(
        "qkd:\n  kme_url: https://{kme}\n  sae_id: SAE_{upper}\n  ca_file: {d}/pki/ca.pem\n  cert_file: {d}/pki/sae_{site}.pem\n  key_file: {d}/pki/sae_{site}.key\n"
    );
    (peer, top)
}

/// `hybrid epoch installed` log lines: (epoch, QKD key IDs).
pub fn epochs(log: &str) -> Vec<(u64, String)> {
    log.lines()
        .filter(|l| l.contains("hybrid epoch installed") && l.contains("x25519+mlkem+qkd"))
        .filter_map(|l| {
            let epoch = l
                .split("epoch=")
                .nth(1)?
                .split_whitespace()
                .next()?
                .parse()
                .ok()?;
            let ids = l
                .split("qkd_key_ids=")
                .nth(1)?
                .split(']')
                .next()?
                .to_owned();
            Some((epoch, ids))
        })
        .collect()
}

/// Two hybrid sites (a = master at KME_A, b = slave at KME_B), up and passing traffic.
pub struct Sites {
    pub lab: Lab,
    pub sim: Sim,
    pub na: String,
    pub nb: String,
    pub ia: String,
    pub ib: String,
}

pub fn start_sites(tag: &str, policy: &str, extra_interface: &str) -> Sites {
    start_sites_with(tag, policy, extra_interface, false)
}

/// As [`start_sites`]; with `wrong_master_key` site b is given a different ML-DSA public key for
/// site a than a signs with, and the tunnel is not expected to come up.
pub fn start_sites_with(
    tag: &str,
    policy: &str,
    extra_interface: &str,
    wrong_master_key: bool,
) -> Sites {
    let opts = SiteOptions {
        wrong_master_key,
        ..SiteOptions::default()
    };
    start_sites_opts(tag, policy, extra_interface, &opts)
}

/// Less common set-ups of [`start_sites_opts`].
#[derive(Default)]
pub struct SiteOptions<'a> {
    /// Site b pins another ML-DSA key for site a than a signs with (no tunnel expected).
    pub wrong_master_key: bool,
    /// Extra top-level YAML per site (`{dir}` is replaced by the lab directory, `{site}` by a/b).
    pub extra_top: &'a str,
    /// Extra environment of both daemons (`{site}` replaced by a/b in values).
    pub env: &'a [(&'a str, &'a str)],
}

/// Starts both sites with `opts`.
pub fn start_sites_opts(
    tag: &str,
    policy: &str,
    extra_interface: &str,
    opts: &SiteOptions<'_>,
) -> Sites {
    let wrong_master_key = opts.wrong_master_key;
    // The underlay MTU is IPv6's minimum, 1280: every hybrid datagram (≤ 1232 bytes) must fit.
    let mut lab = Lab::new(tag, Some(1280));
    qkd_link::sim::pki::generate_entities(
        &lab.dir.join("pki"),
        &[
            ("kme_a", "KME_A", true),
            ("kme_b", "KME_B", true),
            ("sae_a", "SAE_A", false),
            ("sae_b", "SAE_B", false),
        ],
        &["10.200.0.1".to_string()],
        false,
    )
    .unwrap();
    let sim = start_sim(&lab.a, lab.dir.join("pki"));
    for site in ['a', 'b'] {
        let private = gateway::keyfile::generate_mldsa_private().unwrap();
        let key = gateway::keyfile::parse_mldsa_private(&private, "test").unwrap();
        lab.write(&format!("{site}.mldsa"), &private);
        lab.write(
            &format!("{site}.mldsa.pub"),
            &gateway::keyfile::mldsa_public_text(&key),
        );
    }
    if wrong_master_key {
        let other = gateway::keyfile::generate_mldsa_private().unwrap();
        let other = gateway::keyfile::parse_mldsa_private(&other, "test").unwrap();
        lab.write("a.mldsa.pub", &gateway::keyfile::mldsa_public_text(&other));
    }
    let (ia, ib) = (format!("ha{}", lab.id), format!("hb{}", lab.id));
    let ((ka, pa), (kb, pb)) = (super::keypair(), super::keypair());
    let (ka, kb) = (lab.write("ka", &ka), lab.write("kb", &kb));
    let (peer_a, top_a) = hybrid_lines(&lab, 'a', 'b', policy);
    let (peer_b, top_b) = hybrid_lines(&lab, 'b', 'a', policy);
    let extra_a = format!(
        "mldsa_private_key_file: {}/a.mldsa\n{extra_interface}",
        lab.dir.display()
    );
    let extra_b = format!(
        "mldsa_private_key_file: {}/b.mldsa\n{extra_interface}",
        lab.dir.display()
    );
    let site = |iface, addr, key, extra, peer_pub, endpoint, allowed, peer_extra| QgwSite {
        iface,
        addresses: addr,
        key_file: key,
        mtu: 1200,
        extra,
        peer_pub,
        endpoint: Some(endpoint),
        allowed,
        peer_extra,
    };
    let a = site(
        &ia,
        &["10.201.0.1/24"],
        &ka,
        &extra_a,
        &pb,
        "10.200.0.2:51820",
        &["10.201.0.2/32"],
        &peer_a,
    );
    let b = site(
        &ib,
        &["10.201.0.2/24"],
        &kb,
        &extra_b,
        &pa,
        "10.200.0.1:51820",
        &["10.201.0.1/32"],
        &peer_b,
    );
    let dir = lab.dir.display().to_string();
    let top = |site: &str| {
        opts.extra_top
            .replace("{dir}", &dir)
            .replace("{site}", site)
    };
    let cfg_a = lab.write("a.yaml", &(a.yaml() + &top_a + &top("a")));
    let cfg_b = lab.write("b.yaml", &(b.yaml() + &top_b + &top("b")));
    let (na, nb) = (lab.a.clone(), lab.b.clone());
    for (ns, iface, cfg, site) in [(&na, &ia, &cfg_a, "a"), (&nb, &ib, &cfg_b, "b")] {
        let env: Vec<(&str, String)> = (opts.env.iter())
            .map(|(k, v)| (*k, v.replace("{site}", site)))
            .collect();
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
        start_qgw_env(&mut lab, ns, iface, cfg, &format!("h{site}.log"), &env);
    }
    if wrong_master_key {
        return Sites {
            lab,
            sim,
            na,
            nb,
            ia,
            ib,
        };
    }
    assert!(
        lab.ping_until(&na, "10.201.0.2", Duration::from_secs(30)),
        "no tunnel: a: {}\nb: {}",
        lab.log("ha.log"),
        lab.log("hb.log")
    );

    Sites {
        lab,
        sim,
        na,
        nb,
        ia,
        ib,
    }
}
