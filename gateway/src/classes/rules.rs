//! Which traffic class an inner packet read from TUN belongs to (docs/gateway-decisions.md,
//! "Traffic classes"), and the flow it is part of (the scheduler's fairness key). Reads the
//! inner IPv4 (RFC 791) or IPv6 (RFC 8200) header, the DSCP (RFC 2474: the upper six bits of
//! the IPv4 TOS / IPv6 traffic class) and the TCP/UDP ports; checked reads only: a malformed
//! or truncated packet falls into [`ClassId::Default`], never a panic, and nothing allocates.
//!
//! A [`Rule`] matches when every field it sets matches (a list: any of its elements). Ports
//! match the source OR the destination port, and CIDRs the source OR the destination address,
//! so a reply falls into the same class as its request. Rules are tried in order and the first
//! match wins: the administrator's `classes:` rules, then the built-in ones below, then
//! [`ClassId::Default`].
//!
//! Built-in rules, and why:
//! - **telemonitoring**: TCP 1883 and 8883, MQTT and MQTTS, which bedside monitors, infusion
//!   pumps and IoT gateways publish vital signs and alarms over; TCP 2575, HL7 v2 over MLLP,
//!   how ICU monitor gateways export vital-sign observations (ORU^R01) to the clinical systems.
//! - **telemedicine**: TCP/UDP 5060 and TCP 5061, SIP and SIP over TLS, which set up the
//!   teleconsultation calls; UDP 16384–32767, the RTP media range most SIP phones and video
//!   endpoints use for voice and video.
//! - **imaging**: TCP 104 and 11112, DICOM (the privileged well-known port, and the port IANA
//!   registered for DICOM that needs no privileges), which carries the studies.
//! - then, for traffic no port identifies, its DSCP: EF (46) or CS5 (40) **of at most 512
//!   bytes** is telemonitoring (RFC 4594 gives EF to telephony and CS5 to signalling: small
//!   packets whose delay matters, as a device's alarms are when it marks them; "small" because
//!   bulk marked EF, by mistake or to jump the queue, must not get strict priority), and
//!   AF41/AF42/AF43 (RFC 4594 multimedia conferencing) telemedicine.
//!
//! The port rules come before the DSCP ones: a port names the application, a DSCP is only the
//! sender's hint. So a DICOM transfer marked AF41 stays imaging, and RTP voice marked EF (as
//! phones do) stays in telemedicine with its video instead of being split off into
//! telemonitoring. These ports, the RTP range included, lie below clients' ephemeral ports
//! (32768 and up on Linux, 49152 and up on Windows), which matters because either end's port
//! matches: a client's own port never puts its flow in a class.
//! FHIR and other HTTPS (TCP 443) is deliberately left to the administrator: the same port
//! carries alarms, record lookups and bulk downloads.
//!
//! Fragments: a non-first IPv4 or IPv6 fragment carries no ports, so port rules do not match it
//! (TCP sets DF; large UDP datagrams may split across classes). IPv6 extension headers
//! (hop-by-hop, routing, fragment, destination options, AH) are skipped, up to
//! [`MAX_EXTENSION_HEADERS`]; behind ESP or more headers there are no ports.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::ops::RangeInclusive;

use super::ClassId;

/// IP protocol numbers (IANA "Assigned Internet Protocol Numbers").
pub mod protocol {
    /// ICMP (RFC 792).
    pub const ICMP: u8 = 1;
    /// TCP (RFC 9293).
    pub const TCP: u8 = 6;
    /// UDP (RFC 768).
    pub const UDP: u8 = 17;
    /// ICMPv6 (RFC 4443).
    pub const ICMPV6: u8 = 58;
}

/// The most IPv6 extension headers skipped before giving up on the ports.
pub const MAX_EXTENSION_HEADERS: usize = 8;

/// The largest packet (IP total length) the built-in DSCP rule for telemonitoring takes.
pub const SMALL_PACKET: usize = 512;

/// One classification rule: traffic matching every field it sets falls into `class`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    /// The class the matching traffic falls into.
    pub class: ClassId,
    /// The inner IP protocol (IPv6: after the extension headers); `None`: any.
    pub protocol: Option<u8>,
    /// The source or destination port is in one of these (TCP and UDP only); empty: any.
    pub ports: Vec<RangeInclusive<u16>>,
    /// The DSCP is one of these; empty: any.
    pub dscp: Vec<u8>,
    /// The source or destination address is in one of these prefixes; empty: any.
    pub cidr: Vec<(IpAddr, u8)>,
    /// The packet (IP total length) is at most this long; `None`: any length.
    pub max_len: Option<usize>,
}

impl Rule {
    /// A rule for `class` that matches everything (narrowed by setting its fields).
    pub fn any(class: ClassId) -> Self {
        Self {
            class,
            protocol: None,
            ports: Vec::new(),
            dscp: Vec::new(),
            cidr: Vec::new(),
            max_len: None,
        }
    }

    /// Whether `p` matches every field this rule sets.
    fn matches(&self, p: &Parsed) -> bool {
        self.protocol.is_none_or(|proto| proto == p.flow.protocol)
            && (self.ports.is_empty()
                || p.has_ports
                    && (self.ports.iter())
                        .any(|r| r.contains(&p.flow.src_port) || r.contains(&p.flow.dst_port)))
            && (self.dscp.is_empty() || self.dscp.contains(&p.dscp))
            && (self.cidr.is_empty()
                || (self.cidr.iter()).any(|&(net, len)| {
                    contains(net, len, p.flow.src) || contains(net, len, p.flow.dst)
                }))
            && self.max_len.is_none_or(|max| p.len <= max)
    }
}

/// Whether `ip` is inside `net/len` (never for different address families).
fn contains(net: IpAddr, len: u8, ip: IpAddr) -> bool {
    net.is_ipv4() == ip.is_ipv4() && network(net, len) == network(ip, len)
}

/// `ip` with all but its first `len` bits cleared: the network of `ip/len`.
pub fn network(ip: IpAddr, len: u8) -> IpAddr {
    match ip {
        IpAddr::V4(a) => {
            let mask = u32::MAX
                .checked_shl(32 - u32::from(len.min(32)))
                .unwrap_or(0);
            Ipv4Addr::from(u32::from(a) & mask).into()
        }
        IpAddr::V6(a) => {
            let mask = u128::MAX
                .checked_shl(128 - u32::from(len.min(128)))
                .unwrap_or(0);
            Ipv6Addr::from(u128::from(a) & mask).into()
        }
    }
}

/// A flow: what the scheduler keeps fair within a class. Ports are 0 for anything but TCP and
/// UDP, and for fragments after the first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FlowKey {
    /// Inner source address.
    pub src: IpAddr,
    /// Inner destination address.
    pub dst: IpAddr,
    /// Inner protocol (IPv6: after the extension headers).
    pub protocol: u8,
    /// TCP/UDP source port, or 0.
    pub src_port: u16,
    /// TCP/UDP destination port, or 0.
    pub dst_port: u16,
}

impl FlowKey {
    /// The one flow every packet whose IP header cannot be read shares.
    pub const UNPARSED: FlowKey = FlowKey {
        src: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        dst: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        protocol: 0,
        src_port: 0,
        dst_port: 0,
    };
}

/// What [`ClassRules::classify`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Classified {
    /// The packet's class.
    pub class: ClassId,
    /// The packet's flow.
    pub flow: FlowKey,
}

/// The fields rules look at, read from a well-formed packet.
struct Parsed {
    flow: FlowKey,
    has_ports: bool,
    dscp: u8,
    len: usize,
}

fn array<const N: usize>(b: &[u8], at: usize) -> Option<[u8; N]> {
    b.get(at..at.checked_add(N)?)?.try_into().ok()
}

/// `Some((src_port, dst_port))` of the TCP or UDP header at `at`; `Some(None)` for another
/// protocol; `None` if a TCP/UDP header is too short to hold its ports (malformed).
fn ports(packet: &[u8], at: usize, protocol: u8) -> Option<Option<(u16, u16)>> {
    if protocol != protocol::TCP && protocol != protocol::UDP {
        return Some(None);
    }
    let p = array::<4>(packet, at)?;
    Some(Some((
        u16::from_be_bytes([p[0], p[1]]),
        u16::from_be_bytes([p[2], p[3]]),
    )))
}

fn parse_v4(packet: &[u8]) -> Option<Parsed> {
    let h = array::<20>(packet, 0)?;
    let ihl = usize::from(h[0] & 0x0f) * 4;
    let len = usize::from(u16::from_be_bytes([h[2], h[3]]));
    if ihl < 20 || len < ihl || len > packet.len() {
        return None;
    }
    let packet = &packet[..len];
    let protocol = h[9];
    let first_fragment = u16::from_be_bytes([h[6], h[7]]) & 0x1fff == 0;
    let ports = if first_fragment {
        ports(packet, ihl, protocol)?
    } else {
        None
    };
    let src = IpAddr::V4(Ipv4Addr::new(h[12], h[13], h[14], h[15]));
    let dst = IpAddr::V4(Ipv4Addr::new(h[16], h[17], h[18], h[19]));
    Some(parsed(src, dst, protocol, ports, h[1] >> 2, len))
}

fn parse_v6(packet: &[u8]) -> Option<Parsed> {
    let h = array::<40>(packet, 0)?;
    let len = 40 + usize::from(u16::from_be_bytes([h[4], h[5]]));
    if len > packet.len() {
        return None;
    }
    let packet = &packet[..len];
    let traffic_class = (h[0] << 4) | (h[1] >> 4);
    let mut next = h[6];
    let mut at = 40;
    let mut ports_readable = true;
    for _ in 0..MAX_EXTENSION_HEADERS {
        let step = match next {
            // Hop-by-hop, routing, destination options: length in 8-octet units after the first.
            0 | 43 | 60 => (usize::from(array::<2>(packet, at)?[1]) + 1) * 8,
            // Fragment: fixed 8 octets; only the first fragment carries the upper header.
            44 => {
                let f = array::<4>(packet, at)?;
                ports_readable &= u16::from_be_bytes([f[2], f[3]]) >> 3 == 0;
                8
            }
            // Authentication header: length in 4-octet units, minus 2.
            51 => (usize::from(array::<2>(packet, at)?[1]) + 2) * 4,
            _ => break,
        };
        next = array::<1>(packet, at)?[0];
        at += step;
    }
    let ports = if ports_readable {
        ports(packet, at, next)?
    } else {
        None
    };
    let src = IpAddr::V6(Ipv6Addr::from(array::<16>(&h, 8)?));
    let dst = IpAddr::V6(Ipv6Addr::from(array::<16>(&h, 24)?));
    Some(parsed(src, dst, next, ports, traffic_class >> 2, len))
}

fn parsed(
    src: IpAddr,
    dst: IpAddr,
    protocol: u8,
    ports: Option<(u16, u16)>,
    dscp: u8,
    len: usize,
) -> Parsed {
    let (src_port, dst_port) = ports.unwrap_or((0, 0));
    Parsed {
        flow: FlowKey {
            src,
            dst,
            protocol,
            src_port,
            dst_port,
        },
        has_ports: ports.is_some(),
        dscp,
        len,
    }
}

/// The rules of one site, in the order they are tried: the administrator's, then the built-in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClassRules {
    rules: Vec<Rule>,
    admin: usize,
}

impl ClassRules {
    /// The built-in rules only (see the module documentation for each one's reason).
    pub fn builtin() -> Self {
        Self::with_admin_rules(Vec::new())
    }

    /// `admin` (the configuration's `classes:`, in its order), then the built-in rules.
    pub fn with_admin_rules(admin: Vec<Rule>) -> Self {
        let count = admin.len();
        let mut rules = admin;
        rules.extend(builtin_rules());
        Self {
            rules,
            admin: count,
        }
    }

    /// Every rule in the order tried.
    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }

    /// The administrator's rules.
    pub fn admin_rules(&self) -> &[Rule] {
        &self.rules[..self.admin]
    }

    /// The class and flow of the inner IP packet at the start of `packet` (padding after its
    /// total length is ignored). Malformed or truncated: [`ClassId::Default`].
    pub fn classify(&self, packet: &[u8]) -> Classified {
        let parsed = match packet.first().map(|b| b >> 4) {
            Some(4) => parse_v4(packet),
            Some(6) => parse_v6(packet),
            _ => None,
        };
        let Some(p) = parsed else {
            let flow = crate::proto::ip::parse(packet).map_or(FlowKey::UNPARSED, |i| FlowKey {
                src: i.src,
                dst: i.dst,
                ..FlowKey::UNPARSED
            });
            return Classified {
                class: ClassId::Default,
                flow,
            };
        };
        let class = (self.rules.iter())
            .find(|r| r.matches(&p))
            .map_or(ClassId::Default, |r| r.class);
        Classified {
            class,
            flow: p.flow,
        }
    }
}

impl Default for ClassRules {
    fn default() -> Self {
        Self::builtin()
    }
}

/// The built-in rules, in order (the module documentation gives each one's reason).
fn builtin_rules() -> [Rule; 8] {
    use ClassId::{Imaging, Telemedicine, Telemonitoring};
    let tcp = |class, ports: &[u16]| Rule {
        protocol: Some(protocol::TCP),
        ports: ports.iter().map(|&p| p..=p).collect(),
        ..Rule::any(class)
    };
    let marked = |class, dscp: &[u8], max_len| Rule {
        dscp: dscp.to_vec(),
        max_len,
        ..Rule::any(class)
    };
    [
        tcp(Telemonitoring, &[1883, 8883]),
        tcp(Telemonitoring, &[2575]),
        // 5060 over TCP or UDP: only these two protocols have ports.
        Rule {
            ports: vec![5060..=5060],
            ..Rule::any(Telemedicine)
        },
        tcp(Telemedicine, &[5061]),
        Rule {
            protocol: Some(protocol::UDP),
            ports: vec![16384..=32767],
            ..Rule::any(Telemedicine)
        },
        tcp(Imaging, &[104, 11112]),
        marked(Telemonitoring, &[dscp::EF, dscp::CS5], Some(SMALL_PACKET)),
        marked(Telemedicine, &[dscp::AF41, dscp::AF42, dscp::AF43], None),
    ]
}

/// DSCP code points the built-in rules use (RFC 2474 class selectors, RFC 2597 AF, RFC 3246 EF).
pub mod dscp {
    /// Class selector 5 (signalling, RFC 4594).
    pub const CS5: u8 = 40;
    /// Expedited forwarding (RFC 3246).
    pub const EF: u8 = 46;
    /// Assured forwarding class 4, low drop precedence.
    pub const AF41: u8 = 34;
    /// Assured forwarding class 4, medium drop precedence.
    pub const AF42: u8 = 36;
    /// Assured forwarding class 4, high drop precedence.
    pub const AF43: u8 = 38;
}

#[cfg(test)]
#[path = "rules_tests.rs"]
mod tests;
