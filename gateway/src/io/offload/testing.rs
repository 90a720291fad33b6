//! Test helpers of the offload module: packet builders and an independent, slow checksum
//! reference (byte pairs and explicit pseudo-header bytes, RFC 768 / RFC 9293 §3.1 / RFC 8200 §8.1),
//! so the tests do not check [`super::checksum`] against itself.
#![allow(clippy::unwrap_used)]

use super::segment::{TCP_ACK, TCP_PSH};
use super::{PROTO_TCP, PROTO_UDP};

/// A TCP packet to build.
#[derive(Debug, Clone)]
pub struct Tcp {
    pub v6: bool,
    pub src_port: u16,
    pub dst_port: u16,
    pub seq: u32,
    pub ack: u32,
    pub flags: u8,
    /// TCP options (a multiple of 4 bytes).
    pub options: Vec<u8>,
    pub payload: Vec<u8>,
    pub ttl: u8,
    pub tos: u8,
    pub id: u16,
}

impl Default for Tcp {
    fn default() -> Self {
        Self {
            v6: false,
            src_port: 40000,
            dst_port: 443,
            seq: 1000,
            ack: 7,
            flags: TCP_ACK,
            options: vec![1, 1, 8, 10, 0, 0, 0, 1, 0, 0, 0, 2],
            payload: vec![0xaa; 100],
            ttl: 64,
            tos: 0,
            id: 0x1234,
        }
    }
}

impl Tcp {
    /// The packet with this payload and sequence number.
    pub fn with(&self, seq: u32, payload: &[u8]) -> Self {
        Self {
            seq,
            payload: payload.to_vec(),
            ..self.clone()
        }
    }

    /// The packet, with correct lengths and checksums.
    pub fn build(&self) -> Vec<u8> {
        let mut tcp = Vec::new();
        tcp.extend_from_slice(&self.src_port.to_be_bytes());
        tcp.extend_from_slice(&self.dst_port.to_be_bytes());
        tcp.extend_from_slice(&self.seq.to_be_bytes());
        tcp.extend_from_slice(&self.ack.to_be_bytes());
        let offset = (20 + self.options.len()) / 4;
        tcp.extend_from_slice(&[(offset as u8) << 4, self.flags, 0xff, 0xff, 0, 0, 0, 0]);
        tcp.extend_from_slice(&self.options);
        tcp.extend_from_slice(&self.payload);
        ip_packet(self.v6, PROTO_TCP, self.ttl, self.tos, self.id, tcp, 16)
    }

    /// A payload that shows where each byte came from.
    pub fn payload(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i * 7 + i / 251) as u8).collect()
    }

    /// This packet with PSH.
    pub fn psh(mut self) -> Self {
        self.flags |= TCP_PSH;
        self
    }
}

/// A UDP packet with `payload`, correct lengths and checksums.
pub fn udp(v6: bool, payload: &[u8]) -> Vec<u8> {
    let mut udp = vec![0x30, 0x39, 0x01, 0xbb];
    udp.extend_from_slice(&((8 + payload.len()) as u16).to_be_bytes());
    udp.extend_from_slice(&[0, 0]);
    udp.extend_from_slice(payload);
    ip_packet(v6, PROTO_UDP, 64, 0, 0x4242, udp, 6)
}

/// Wraps the L4 bytes `l4` in an IP header and stores the L4 checksum at `check_at` in `l4`.
fn ip_packet(
    v6: bool,
    proto: u8,
    ttl: u8,
    tos: u8,
    id: u16,
    mut l4: Vec<u8>,
    check_at: usize,
) -> Vec<u8> {
    let mut p = if v6 {
        let mut h = vec![0x60 | tos >> 4, tos << 4, 0, 0];
        h.extend_from_slice(&(l4.len() as u16).to_be_bytes());
        h.extend_from_slice(&[proto, ttl]);
        h.extend_from_slice(&[0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
        h.extend_from_slice(&[0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2]);
        h
    } else {
        let mut h = vec![0x45, tos];
        h.extend_from_slice(&((20 + l4.len()) as u16).to_be_bytes());
        h.extend_from_slice(&id.to_be_bytes());
        h.extend_from_slice(&[0x40, 0, ttl, proto, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2]);
        let c = !slow_sum(&h, 0);
        h[10..12].copy_from_slice(&c.to_be_bytes());
        h
    };
    let mut c = !slow_sum(&l4, slow_pseudo(&p, l4.len()));
    if c == 0 && proto == PROTO_UDP {
        c = 0xffff;
    }
    l4[check_at..check_at + 2].copy_from_slice(&c.to_be_bytes());
    p.extend_from_slice(&l4);
    p
}

/// A TSO/USO super-packet read from TUN: vnet header fields for `packet` (a whole TCP or UDP
/// packet), NEEDS_CSUM with the pseudo-header sum in the L4 checksum field, as Linux hands it.
pub fn super_packet(packet: &[u8], gso_size: u16) -> (super::VnetHdr, Vec<u8>) {
    use super::vnet::{F_NEEDS_CSUM, GsoType, VnetHdr};
    let v6 = packet[0] >> 4 == 6;
    let ip_len = if v6 {
        40
    } else {
        usize::from(packet[0] & 0xf) * 4
    };
    let proto = packet[if v6 { 6 } else { 9 }];
    let (gso_type, l4_hdr, check) = match (proto, v6) {
        (PROTO_TCP, false) => (
            GsoType::TcpV4,
            usize::from(packet[ip_len + 12] >> 4) * 4,
            16,
        ),
        (PROTO_TCP, true) => (
            GsoType::TcpV6,
            usize::from(packet[ip_len + 12] >> 4) * 4,
            16,
        ),
        _ => (GsoType::UdpL4, 8, 6),
    };
    let mut p = packet.to_vec();
    let partial = slow_sum(&[], slow_pseudo(&p, p.len() - ip_len));
    p[ip_len + check..ip_len + check + 2].copy_from_slice(&partial.to_be_bytes());
    let hdr = VnetHdr {
        flags: F_NEEDS_CSUM,
        gso_type,
        ecn: false,
        hdr_len: (ip_len + l4_hdr) as u16,
        gso_size,
        csum_start: ip_len as u16,
        csum_offset: check as u16,
    };
    (hdr, p)
}

/// Byte-pair ones' complement sum of `data` starting from the folded `initial`.
pub fn slow_sum(data: &[u8], initial: u16) -> u16 {
    let mut acc = u64::from(initial);
    for pair in data.chunks(2) {
        acc += u64::from(pair[0]) << 8 | u64::from(*pair.get(1).unwrap_or(&0));
    }
    while acc > 0xffff {
        acc = (acc >> 16) + (acc & 0xffff);
    }
    acc as u16
}

/// The folded pseudo-header sum of the IP packet `p` for an L4 length `l4_len`, from its bytes.
pub fn slow_pseudo(p: &[u8], l4_len: usize) -> u16 {
    let mut bytes = Vec::new();
    if p[0] >> 4 == 6 {
        bytes.extend_from_slice(&p[8..40]);
        bytes.extend_from_slice(&(l4_len as u32).to_be_bytes());
        bytes.extend_from_slice(&[0, 0, 0, p[6]]);
    } else {
        bytes.extend_from_slice(&p[12..20]);
        bytes.extend_from_slice(&[0, p[9]]);
        bytes.extend_from_slice(&(l4_len as u16).to_be_bytes());
    }
    slow_sum(&bytes, 0)
}

/// Whether the IP packet `p` has a correct IPv4 header checksum (if IPv4), IP length and L4
/// checksum, by the slow reference.
pub fn verifies(p: &[u8]) -> bool {
    let v6 = p[0] >> 4 == 6;
    let ip_len = if v6 { 40 } else { usize::from(p[0] & 0xf) * 4 };
    let len_ok = if v6 {
        usize::from(u16::from_be_bytes([p[4], p[5]])) + 40 == p.len()
    } else {
        usize::from(u16::from_be_bytes([p[2], p[3]])) == p.len()
            && slow_sum(&p[..ip_len], 0) == 0xffff
    };
    len_ok && slow_sum(&p[ip_len..], slow_pseudo(p, p.len() - ip_len)) == 0xffff
}
