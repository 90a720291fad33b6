//! What the [`Coalescer`](super::Coalescer) reads of a packet before it merges it: the flow it
//! belongs to and whether its shape allows merging at all, for TCP (RFC 9293 §3.1) and UDP
//! (RFC 768) over IPv4 (RFC 791 §3.1) and IPv6 (RFC 8200 §3).
//!
//! A packet is *mergeable* when its IP header has no options (IPv4 IHL 5) and is not a fragment
//! (MF clear, offset zero), or is IPv6 with TCP/UDP as the first next header; its IP length field
//! matches its size; its payload is non-empty; its checksums verify (RFC 1071: the IPv4 header
//! checksum and the L4 checksum over the pseudo-header). TCP also needs the flags ACK or ACK|PSH;
//! UDP a length field equal to the datagram's size and a checksum other than zero (RFC 768: zero
//! means "none was computed"; Linux's `udp_gro_receive` does not merge those either). The entry a
//! packet would extend is checked by the coalescer, not here.

use super::super::checksum::{self, pseudo_header};
use super::super::segment::{TCP_ACK, TCP_PSH, tcp_header_len};
use super::super::{IpHeader, PROTO_TCP, PROTO_UDP, be16, be32};

/// Length of the UDP header (RFC 768).
const UDP_HEADER_LEN: usize = 8;

/// The flow a packet belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct FlowKey {
    v6: bool,
    /// [`PROTO_TCP`] or [`PROTO_UDP`].
    protocol: u8,
    /// Source then destination address, zero-padded for IPv4.
    addrs: [u8; 32],
    /// Source then destination port.
    ports: [u8; 4],
}

/// What [`View::parse`] reads of a TCP or UDP packet.
#[derive(Debug, Clone, Copy)]
pub(super) struct View {
    pub ip: IpHeader,
    pub key: FlowKey,
    /// The L4 header length: the TCP data offset × 4, or [`UDP_HEADER_LEN`].
    pub l4_len: usize,
    /// The TCP sequence number (0 for UDP).
    pub seq: u32,
    /// The TCP flags (0 for UDP).
    pub flags: u8,
    pub payload_len: usize,
    /// Could start or extend an entry (shape, flags, checksums); the entry is checked apart.
    pub mergeable: bool,
}

impl View {
    /// Whether this is a UDP datagram (else TCP).
    pub fn udp(&self) -> bool {
        self.ip.protocol == PROTO_UDP
    }

    /// Reads a TCP packet, or a UDP datagram when `udp`: `None` for any other protocol, or if its
    /// ports cannot be found (a later IPv4 fragment, an IPv6 extension header, a cut header).
    pub fn parse(packet: &[u8], udp: bool) -> Option<Self> {
        let ip = IpHeader::parse(packet).ok()?;
        let frag = if ip.v6 { 0 } else { be16(packet, 6)? };
        let is_udp = match ip.protocol {
            PROTO_TCP => false,
            PROTO_UDP if udp => true,
            _ => return None,
        };
        if frag & 0x1fff != 0 {
            return None;
        }
        let l4_len = if is_udp {
            UDP_HEADER_LEN
        } else {
            tcp_header_len(packet, ip.len).ok()?
        };
        let payload_len = packet.len().checked_sub(ip.len + l4_len)?;
        let mut key = FlowKey {
            v6: ip.v6,
            protocol: ip.protocol,
            addrs: [0; 32],
            ports: [0; 4],
        };
        let addrs = packet.get(ip.addrs())?;
        key.addrs.get_mut(..addrs.len())?.copy_from_slice(addrs);
        key.ports.copy_from_slice(packet.get(ip.len..ip.len + 4)?);
        let ip_len_field = usize::from(be16(packet, if ip.v6 { 4 } else { 2 })?);
        let whole = ip_len_field + if ip.v6 { 40 } else { 0 } == packet.len();
        let shape = whole && payload_len > 0 && (ip.v6 || (ip.len == 20 && frag & 0x2000 == 0));
        let (seq, flags, l4_ok) = if is_udp {
            let udp_len = usize::from(be16(packet, ip.len + 4)?);
            let check = be16(packet, ip.len + 6)?;
            (0, 0, udp_len == packet.len() - ip.len && check != 0)
        } else {
            let flags = *packet.get(ip.len + 13)?;
            (
                be32(packet, ip.len + 4)?,
                flags,
                flags & !TCP_PSH == TCP_ACK,
            )
        };
        Some(Self {
            ip,
            key,
            l4_len,
            seq,
            flags,
            payload_len,
            mergeable: shape && l4_ok && checksums_verify(packet, &ip),
        })
    }
}

/// The IPv4 header checksum and the L4 (TCP or UDP) checksum of `packet` verify.
fn checksums_verify(packet: &[u8], ip: &IpHeader) -> bool {
    let (Some(header), Some(l4), Some(addrs)) = (
        packet.get(..ip.len),
        packet.get(ip.len..),
        packet.get(ip.addrs()),
    ) else {
        return false;
    };
    (ip.v6 || checksum::verifies(header, 0))
        && checksum::verifies(l4, pseudo_header(addrs, ip.protocol, l4.len() as u32))
}
