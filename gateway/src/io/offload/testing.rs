//! Test helpers of the offload module: packet builders, coalescer drivers and an independent,
//! slow checksum reference (byte pairs and explicit pseudo-header bytes, RFC 768 / RFC 9293 §3.1 / RFC 8200 §8.1),
//! so the tests do not check [`super::checksum`] against itself.
#![allow(clippy::unwrap_used)]

use super::segment::{TCP_ACK, TCP_PSH};
use super::{Coalescer, GsoType, PROTO_TCP, PROTO_UDP, Push, Segments, VNET_HDR_LEN, VnetHdr};

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

/// A UDP datagram to build.
#[derive(Debug, Clone)]
pub struct Udp {
    pub v6: bool,
    pub src_port: u16,
    pub dst_port: u16,
    pub payload: Vec<u8>,
    pub ttl: u8,
    pub tos: u8,
    pub id: u16,
}

impl Default for Udp {
    fn default() -> Self {
        Self {
            v6: false,
            src_port: 12345,
            dst_port: 443,
            payload: vec![0x55; 200],
            ttl: 64,
            tos: 0,
            id: 0x4242,
        }
    }
}

impl Udp {
    /// The datagram with this payload.
    pub fn with(&self, payload: &[u8]) -> Self {
        Self {
            payload: payload.to_vec(),
            ..self.clone()
        }
    }

    /// The datagram, with correct lengths and checksums (a computed zero sent as 0xffff).
    pub fn build(&self) -> Vec<u8> {
        let mut udp = Vec::new();
        udp.extend_from_slice(&self.src_port.to_be_bytes());
        udp.extend_from_slice(&self.dst_port.to_be_bytes());
        udp.extend_from_slice(&((8 + self.payload.len()) as u16).to_be_bytes());
        udp.extend_from_slice(&[0, 0]);
        udp.extend_from_slice(&self.payload);
        ip_packet(self.v6, PROTO_UDP, self.ttl, self.tos, self.id, udp, 6)
    }
}

/// A UDP packet with `payload`, correct lengths and checksums.
pub fn udp(v6: bool, payload: &[u8]) -> Vec<u8> {
    Udp {
        v6,
        ..Udp::default()
    }
    .with(payload)
    .build()
}

/// Recomputes the IPv4 header checksum of `p` after a test changed its header.
pub fn fix_ipv4_checksum(p: &mut [u8]) {
    let ihl = usize::from(p[0] & 0xf) * 4;
    p[10..12].fill(0);
    let c = !slow_sum(&p[..ihl], 0);
    p[10..12].copy_from_slice(&c.to_be_bytes());
}

/// Drains `c` into owned buffers (vnet header parsed, packet), checking every write succeeded.
pub fn drain(c: &mut Coalescer) -> Vec<(VnetHdr, Vec<u8>)> {
    let mut out = Vec::new();
    let d = c.drain(|b| {
        out.push((VnetHdr::parse(b).unwrap(), b[VNET_HDR_LEN..].to_vec()));
        Ok(())
    });
    assert_eq!((d.written, d.failed), (out.len(), 0));
    let merged = out
        .iter()
        .filter(|(h, _)| h.gso_type != GsoType::None)
        .count();
    assert_eq!(d.merged, merged, "merged super-packets counted");
    assert!(c.is_empty());
    out
}

/// Pushes `packets`, returning what each push did.
pub fn push_all(c: &mut Coalescer, packets: &[Vec<u8>]) -> Vec<Push> {
    packets.iter().map(|p| c.push(p)).collect()
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
pub fn super_packet(packet: &[u8], gso_size: u16) -> (VnetHdr, Vec<u8>) {
    use super::vnet::{F_NEEDS_CSUM, GsoType};
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

/// Datagrams of `base`'s flow with payloads of `sizes` (datagram `i` filled with `i`), IPv4 IDs
/// counting up from `base.id` as the kernel's segmentation writes them.
pub fn datagrams(base: &Udp, sizes: &[usize]) -> Vec<Vec<u8>> {
    sizes
        .iter()
        .enumerate()
        .map(|(i, &n)| {
            Udp {
                id: base.id.wrapping_add(i as u16),
                ..base.with(&vec![i as u8; n])
            }
            .build()
        })
        .collect()
}

/// The IP header length of `p`.
fn ip_len(p: &[u8]) -> usize {
    if p[0] >> 4 == 6 {
        40
    } else {
        usize::from(p[0] & 0xf) * 4
    }
}

/// Stores a correct UDP checksum in `p` after a test changed it (a computed zero as 0xffff).
pub fn fix_udp_checksum(p: &mut [u8]) {
    let l4 = ip_len(p);
    p[l4 + 6..l4 + 8].fill(0);
    let c = match !slow_sum(&p[l4..], slow_pseudo(p, p.len() - l4)) {
        0 => 0xffff,
        c => c,
    };
    p[l4 + 6..l4 + 8].copy_from_slice(&c.to_be_bytes());
}

/// Splits a written entry as the kernel would, checking every datagram with the slow reference.
pub fn resplit(hdr: &VnetHdr, packet: &[u8]) -> Vec<Vec<u8>> {
    let mut s = Segments::new(hdr, packet).unwrap();
    let mut buf = vec![0u8; 65_536];
    let mut out = Vec::new();
    while let Some(n) = s.next_into(&mut buf) {
        assert!(verifies(&buf[..n]));
        out.push(buf[..n].to_vec());
    }
    out
}
