//! The network devices of one interface: the tunnel's addresses, MTU and routes with iproute2
//! (`ip addr`, `ip link`, `ip route`), and the UDP socket. Everything added here belongs to the
//! TUN interface, so closing the device on exit removes it all.

use std::net::{Ipv6Addr, SocketAddr};
use std::process::Command;

use anyhow::{Context, bail};

use crate::config::Validated;
use crate::io::udp::Udp;

fn ip(args: &[&str]) -> anyhow::Result<()> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .context("running ip(8)")?;
    if !out.status.success() {
        bail!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

/// Adds the addresses, sets the MTU and brings the link up, and routes every peer's allowed IPs
/// into the tunnel.
pub fn configure_link(cfg: &Validated) -> anyhow::Result<()> {
    let name = cfg.name.as_str();
    for (addr, len) in &cfg.addresses {
        ip(&["address", "add", &format!("{addr}/{len}"), "dev", name])?;
    }
    let mtu = cfg.node.mtu.to_string();
    ip(&["link", "set", "dev", name, "mtu", &mtu, "up"])?;
    for peer in &cfg.node.peers {
        for (addr, len) in &peer.wg.allowed_ips {
            ip(&["route", "replace", &format!("{addr}/{len}"), "dev", name])?;
        }
    }
    Ok(())
}

/// Binds the UDP port on IPv6 (dual-stack) or, where IPv6 is off, IPv4; with `offload`, with
/// GSO and GRO where the kernel has them.
pub fn bind(port: u16, offload: bool) -> anyhow::Result<Udp> {
    let any6 = SocketAddr::from((Ipv6Addr::UNSPECIFIED, port));
    Udp::bind(any6, offload)
        .or_else(|_| Udp::bind(SocketAddr::from(([0, 0, 0, 0], port)), offload))
        .with_context(|| format!("binding UDP port {port}"))
}
