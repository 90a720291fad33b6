//! Two hybrid qgw sites with the KME simulator as each site's KME (ETSI 014 over mutual TLS),
//! shared by the hybrid and operations namespace tests: a qgw pair ([`super::pair`]) over a
//! 1280-byte underlay whose sites also carry ML-DSA keys, a `qkd:` section and `hybrid: on`.

use std::path::Path;
use std::time::Duration;

use super::kme::{Kmes, Sim, start_sim, write_pki};
use super::lab::Lab;
use super::pair::{PairOptions, SiteSetup, start_qgw_pair};

/// The sites' KMEs, both in namespace `a`: KME_A on its loopback (site a's gateway), KME_B on the
/// underlay address 10.200.0.1 (site b reaches it over the veth).
pub const KMES: Kmes = Kmes {
    a: "127.0.0.1:8441",
    b: "10.200.0.1:8442",
    rate_bps: 500_000,
    max_key_count: 10_000,
    initial_key_count: 200,
};

/// Starts the sites' KMEs ([`KMES`]) inside namespace `ns` with the PKI in `pki`.
pub fn start_kmes(ns: &str, pki: &Path) -> Sim {
    start_sim(Some(ns), &KMES, pki)
}

/// Site configuration lines for the hybrid peer and the site's KME: (peer lines, top level).
pub fn hybrid_lines(lab: &Lab, site: char, policy: &str) -> (String, String) {
    hybrid_lines_with(lab, site, policy, &KMES, 'a')
}

/// As [`hybrid_lines`], with the sites' KMEs at the addresses of `kmes` and site `master` as the
/// master (it calls enc_keys at its KME, the other site dec_keys at its own).
pub fn hybrid_lines_with(
    lab: &Lab,
    site: char,
    policy: &str,
    kmes: &Kmes,
    master: char,
) -> (String, String) {
    let d = lab.dir.display();
    let (peer_site, kme) = match site {
        'a' => ('b', kmes.a),
        _ => ('a', kmes.b),
    };
    let role = if site == master { "master" } else { "slave" };
    let upper = site.to_ascii_uppercase();
    let peer_upper = peer_site.to_ascii_uppercase();
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

/// Two hybrid sites (a = master at KME_A, b = slave at KME_B). Site a's qgw logs to `qa.log`
/// and is process `ha`, site b's logs to `qb.log`.
pub struct Sites {
    pub lab: Lab,
    pub sim: Sim,
    pub na: String,
    pub nb: String,
    pub ia: String,
    pub ib: String,
    pub ha: usize,
}

/// Both sites with `policy`, `extra_interface` lines at both, up and passing traffic, once the
/// running test's prerequisites (`tools` and the usual ones) hold; `None` when it is to be
/// skipped, which is never allowed under `CI=true`.
pub fn start_sites(tools: &[&str], policy: &str, extra_interface: &str) -> Option<Sites> {
    start_sites_opts(tools, policy, extra_interface, &SiteOptions::default())
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

/// Writes both sites' ML-DSA key pairs (`a.mldsa`, `a.mldsa.pub`, …); with `wrong_master_key`
/// `a.mldsa.pub` is then replaced by another key's.
pub fn write_mldsa_keys(lab: &Lab, wrong_master_key: bool) {
    let new_key = || {
        let private = gateway::keyfile::generate_mldsa_private().unwrap();
        let key = gateway::keyfile::parse_mldsa_private(&private, "test").unwrap();
        (private, gateway::keyfile::mldsa_public_text(&key))
    };
    for site in ['a', 'b'] {
        let (private, public) = new_key();
        lab.write(&format!("{site}.mldsa"), &private);
        lab.write(&format!("{site}.mldsa.pub"), &public);
    }
    if wrong_master_key {
        lab.write("a.mldsa.pub", &new_key().1);
    }
}

/// One site's additions to the pair's configuration: (interface lines, peer lines, top level,
/// environment).
fn site_lines(
    lab: &Lab,
    site: char,
    policy: &str,
    extra_interface: &str,
    opts: &SiteOptions<'_>,
) -> (String, String, String, Vec<(String, String)>) {
    let (dir, s) = (lab.dir.display().to_string(), site.to_string());
    let interface = format!("mldsa_private_key_file: {dir}/{site}.mldsa\n{extra_interface}");
    let (peer, top) = hybrid_lines(lab, site, policy);
    let extra_top = opts.extra_top.replace("{dir}", &dir).replace("{site}", &s);
    let env = (opts.env.iter())
        .map(|(k, v)| ((*k).to_owned(), v.replace("{site}", &s)))
        .collect();
    (interface, peer, top + &extra_top, env)
}

fn borrow(env: &[(String, String)]) -> Vec<(&str, &str)> {
    env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect()
}

/// As [`start_sites`], with `opts`: the PKI and the KMEs in namespace a, then the qgw pair with
/// a 1200-byte tunnel; unless the master's key is wrong, waits (30 s at most) for a ping a → b.
pub fn start_sites_opts(
    tools: &[&str],
    policy: &str,
    extra_interface: &str,
    opts: &SiteOptions<'_>,
) -> Option<Sites> {
    // The underlay MTU is IPv6's minimum, 1280: every hybrid datagram (≤ 1232 bytes) must fit.
    let mut lab = Lab::for_test(tools, Some(1280))?;
    write_pki(&lab.dir.join("pki"));
    let sim = start_kmes(&lab.a, &lab.dir.join("pki"));
    write_mldsa_keys(&lab, opts.wrong_master_key);
    let (ia, pa, ta, ea) = site_lines(&lab, 'a', policy, extra_interface, opts);
    let (ib, pb, tb, eb) = site_lines(&lab, 'b', policy, extra_interface, opts);
    let (ea, eb) = (borrow(&ea), borrow(&eb));
    let site = |interface, peer, top, env| SiteSetup {
        interface,
        peer,
        top,
        env,
        no_endpoint: false,
    };
    let pair_options = PairOptions {
        mtu: Some(1200),
        a: site(&ia, &pa, &ta, &ea),
        b: site(&ib, &pb, &tb, &eb),
        ..PairOptions::default()
    };
    let pair = start_qgw_pair(&mut lab, pair_options);
    if !opts.wrong_master_key {
        assert!(
            lab.ping_until(&lab.a, "10.201.0.2", Duration::from_secs(30)),
            "no tunnel: a: {}\nb: {}",
            lab.log("qa.log"),
            lab.log("qb.log")
        );
    }
    Some(Sites {
        na: lab.a.clone(),
        nb: lab.b.clone(),
        lab,
        sim,
        ia: pair.ia,
        ib: pair.ib,
        ha: pair.ha,
    })
}
