//! A running pair in the lab's two namespaces: qgw at site a and, at site b, either qgw again
//! ([`start_qgw_pair`]) or Debian's `wireguard-go` configured with `wg` ([`start_wireguard_go_pair`]).
//! Both take the same [`PairOptions`]: tunnel MTU, IPv6, a preshared key, and per site extra
//! configuration lines and environment. Site a's qgw logs to `qa.log` (config `a.yaml`, key
//! `ka`), site b's to `qb.log` (`b.yaml`, `kb`) or `wg.log`.

use std::path::PathBuf;
use std::time::Duration;

use super::lab::Lab;
use super::qgw::{QgwSite, crash_qgw, key_file, start_qgw, start_qgw_env};
use super::{run, stdout, wait_for};

/// What one site adds to the common configuration (qgw sites only).
#[derive(Clone, Copy, Default)]
pub struct SiteSetup<'a> {
    /// Extra `interface:` lines (e.g. `danger_rekey_after_seconds: 5`).
    pub interface: &'a str,
    /// Extra peer lines (e.g. `persistent_keepalive: 2`).
    pub peer: &'a str,
    /// Top-level YAML appended to the config (e.g. a `metrics:` section).
    pub top: &'a str,
    /// Extra environment of the daemon (e.g. `NOTIFY_SOCKET`).
    pub env: &'a [(&'a str, &'a str)],
    /// No `endpoint:` for the peer: this site never initiates and waits for the other.
    pub no_endpoint: bool,
}

/// How to set up a pair; the defaults are a 1420-byte tunnel, IPv4 only, no PSK.
#[derive(Default)]
pub struct PairOptions<'a> {
    /// Tunnel MTU of both sites (default 1420).
    pub mtu: Option<u32>,
    /// IPv6 tunnel addresses too: fd00:201::1 (a) and fd00:201::2 (b).
    pub v6: bool,
    /// A preshared key (from `wg genpsk`) on both sides.
    pub psk: bool,
    /// Site a's additions.
    pub a: SiteSetup<'a>,
    /// Site b's additions (must stay empty for wireguard-go).
    pub b: SiteSetup<'a>,
}

impl<'a> PairOptions<'a> {
    /// The defaults, but for site a's additions `a`.
    pub fn with_a(a: SiteSetup<'a>) -> Self {
        Self {
            a,
            ..Self::default()
        }
    }

    /// The defaults, but for a tunnel MTU of `mtu` at both sites.
    pub fn with_mtu(mtu: u32) -> Self {
        Self {
            mtu: Some(mtu),
            ..Self::default()
        }
    }
}

/// A running pair: site a (`qa…`, 10.201.0.1) and site b (`qb…` or `wg…`, 10.201.0.2).
pub struct Pair {
    /// Site a's qgw interface.
    pub ia: String,
    /// Site b's interface.
    pub ib: String,
    /// Site a's qgw process (a [`Lab::spawn`] handle).
    pub ha: usize,
    /// Site a's config file.
    pub cfg_a: PathBuf,
    /// Site a's public key.
    pub pub_a: String,
    /// Site b's public key.
    pub pub_b: String,
}

impl Pair {
    /// Site a's qgw crashes (SIGKILL, no clean-up); returns once its interface is gone.
    pub fn crash_a(&self, lab: &mut Lab) {
        let a = lab.a.clone();
        crash_qgw(lab, self.ha, &a, &self.ia);
    }

    /// Starts site a's qgw again with the same config, logging to `log`.
    pub fn restart_a(&mut self, lab: &mut Lab, log: &str) {
        let a = lab.a.clone();
        self.ha = start_qgw(lab, &a, &self.ia, &self.cfg_a, log);
    }
}

/// Key files of both sites and, with `o.psk`, a preshared key file.
struct Keys {
    ka: PathBuf,
    pub_a: String,
    kb: PathBuf,
    pub_b: String,
    psk: Option<PathBuf>,
}

fn keys(lab: &Lab, o: &PairOptions<'_>) -> Keys {
    let ((ka, pub_a), (kb, pub_b)) = (key_file(lab, "ka"), key_file(lab, "kb"));
    let psk = o.psk.then(|| lab.write("psk", &stdout(&["wg", "genpsk"])));
    Keys {
        ka,
        pub_a,
        kb,
        pub_b,
        psk,
    }
}

/// Writes the config of qgw site `site` (`'a'` or `'b'`) to `<site>.yaml`.
fn write_qgw_config(
    lab: &Lab,
    site: char,
    iface: &str,
    o: &PairOptions<'_>,
    keys: &Keys,
) -> PathBuf {
    let (s, key, peer_pub) = match site {
        'a' => (&o.a, &keys.ka, &keys.pub_b),
        _ => (&o.b, &keys.kb, &keys.pub_a),
    };
    let psk_line = (keys.psk.as_ref()).map(|p| format!("preshared_key_file: {}", p.display()));
    let peer_extra = [s.peer, psk_line.as_deref().unwrap_or("")].join("\n");
    let config = QgwSite {
        site,
        iface,
        v6: o.v6,
        key_file: key,
        mtu: o.mtu.unwrap_or(1420),
        extra: s.interface,
        peer_pub,
        peer_extra: &peer_extra,
        top: s.top,
        endpoint: !s.no_endpoint,
        peer_networks: &[],
    };
    lab.write(&format!("{site}.yaml"), &config.yaml())
}

/// Writes site a's config and starts its qgw; `ib` is site b's interface, already up or not.
fn start_site_a(lab: &mut Lab, ib: String, o: &PairOptions<'_>, keys: &Keys) -> Pair {
    let ia = format!("qa{}", lab.id);
    let cfg_a = write_qgw_config(lab, 'a', &ia, o, keys);
    let a = lab.a.clone();
    let ha = start_qgw_env(lab, &a, &ia, &cfg_a, "qa.log", o.a.env);
    Pair {
        ia,
        ib,
        ha,
        cfg_a,
        pub_a: keys.pub_a.clone(),
        pub_b: keys.pub_b.clone(),
    }
}

/// qgw ↔ qgw: starts site a, then site b, each once its status socket answers.
pub fn start_qgw_pair(lab: &mut Lab, o: PairOptions<'_>) -> Pair {
    let keys = keys(lab, &o);
    let pair = start_site_a(lab, format!("qb{}", lab.id), &o, &keys);
    let cfg_b = write_qgw_config(lab, 'b', &pair.ib, &o, &keys);
    let b = lab.b.clone();
    start_qgw_env(lab, &b, &pair.ib, &cfg_b, "qb.log", o.b.env);
    pair
}

/// qgw ↔ wireguard-go: starts `wireguard-go` in b and configures it with `wg set` and `ip`,
/// then starts site a's qgw once wireguard-go is up.
pub fn start_wireguard_go_pair(lab: &mut Lab, o: PairOptions<'_>) -> Pair {
    let SiteSetup {
        interface,
        peer,
        top,
        env,
        no_endpoint,
    } = o.b;
    assert!(
        interface.is_empty() && peer.is_empty() && top.is_empty() && env.is_empty() && !no_endpoint,
        "site b is wireguard-go: it takes no qgw configuration"
    );
    // Interface names are unique per test: the UAPI sockets in /var/run/wireguard are global.
    let ib = format!("wg{}", lab.id);
    let keys = keys(lab, &o);
    let mtu = o.mtu.unwrap_or(1420).to_string();
    let b = lab.b.clone();
    lab.remove_later(PathBuf::from(format!("/var/run/wireguard/{ib}.sock")));
    lab.spawn(&b, &["wireguard-go", &ib], "wg.log");
    wait_for("wireguard-go's interface", Duration::from_secs(10), || {
        lab.exec(&b, &["wg", "show", &ib]).status.success()
    });
    let allowed = match o.v6 {
        true => "10.201.0.1/32,fd00:201::1/128",
        false => "10.201.0.1/32",
    };
    let kb = keys.kb.to_str().unwrap();
    let mut set = vec!["wg", "set", &ib, "private-key", kb, "listen-port", "51820"];
    set.extend(["peer", &keys.pub_a, "allowed-ips", allowed]);
    set.extend(["endpoint", "10.200.0.1:51820"]);
    if let Some(psk) = &keys.psk {
        set.extend(["preshared-key", psk.to_str().unwrap()]);
    }
    lab.check(&b, &set);
    run(&["ip", "-n", &b, "addr", "add", "10.201.0.2/24", "dev", &ib]);
    if o.v6 {
        run(&["ip", "-n", &b, "addr", "add", "fd00:201::2/64", "dev", &ib]);
    }
    run(&["ip", "-n", &b, "link", "set", &ib, "mtu", &mtu, "up"]);

    start_site_a(lab, ib, &o, &keys)
}

/// wireguard-go's latest handshake with its peer, in Unix seconds (0: none).
pub fn wg_latest_handshake(lab: &Lab, wg: &str) -> u64 {
    let out = lab.check(&lab.b, &["wg", "show", wg, "latest-handshakes"]);
    out.split_whitespace()
        .nth(1)
        .and_then(|t| t.parse().ok())
        .unwrap_or(0)
}
