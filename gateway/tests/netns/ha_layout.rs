//! The layout of [`super::ha`]'s site pair: the switch namespace with its two bridges and the
//! veths to every other namespace, the qgw configurations of both sites (site a's two gateways
//! sharing one identity and KME, each with its own audit log), and each gateway's keepalived
//! configuration, rendered from the shipped `configs/keepalived/keepalived.conf` by replacing
//! its `$NAME=` lines and nothing else.

use super::hybrid::{hybrid_lines_with, write_mldsa_keys};
use super::kme::Kmes;
use super::lab::Lab;
use super::qgw::{QgwSite, key_file};
use super::run;

pub(super) const QGW: &str = env!("CARGO_BIN_EXE_qgw");
const KEEPALIVED_CONF: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../configs/keepalived/keepalived.conf"
);
pub(super) const QGW_HA: &str =
    concat!(env!("CARGO_MANIFEST_DIR"), "/../configs/keepalived/qgw-ha");

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
    pub(super) fn name(self) -> &'static str {
        match self {
            Gw::A1 => "a1",
            Gw::A2 => "a2",
        }
    }
    pub(super) fn index(self) -> usize {
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

/// The switch `s` with bridges `brwan` (10.200.0.100/24) and `brlan`, and a veth from each
/// gateway (`wan0`, `lan0`), site b (`wan0`) and the host (`lan0`) to them; forwarding on at both gateways.
pub(super) fn wire(switch: &str, gateways: &[&str; 2], nb: &str, host: &str) {
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
pub(super) fn write_configs(lab: &Lab, policy: &str, master: char, ia: &str, ib: &str) {
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
pub(super) fn keepalived_conf(lab: &Lab, g: Gw, state_dir: &str) -> String {
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
