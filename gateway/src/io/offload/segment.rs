//! Splitting what TUN gives us (TSO and USO super-packets, partial checksums) into the packets
//! that go through the tunnel: our own software GSO, as Linux does it in `tcp_gso_segment` and
//! `__udp_gso_segment` (Documentation/networking/segmentation-offloads.rst, "TCP segmentation"
//! and "UDP fragmentation offload"; include/uapi/linux/virtio_net.h for the header fields).
//!
//! Per segment `i` of a TCP super-packet: the IP and TCP headers are copied; IPv4 total length,
//! identification (first + `i`) and header checksum (RFC 791 §3.1), or the IPv6 payload length
//! (RFC 8200 §3); TCP sequence number (first + `i` × `gso_size`), FIN and PSH only on the last
//! segment, CWR only on the first; the TCP checksum computed over the pseudo-header, header and
//! payload (RFC 9293 §3.1). A UDP super-packet (USO) becomes whole datagrams with their own
//! length and checksum (RFC 768; a computed zero is sent as 0xffff).
//!
//! The headers are parsed here, `hdr_len` from the vnet header is not trusted. Nothing here
//! allocates; a segment is written into the caller's buffer.

use super::checksum::{self, fold, pseudo_header, sum};
use super::vnet::{GsoType, VnetHdr};
use super::{IpHeader, MAX_PACKET_LEN, OffloadError, PROTO_TCP, PROTO_UDP, be16, be32};

/// TCP flags, byte 13 of the TCP header (RFC 9293 §3.1; CWR and ECE: RFC 3168 §6.1).
pub const TCP_FIN: u8 = 0x01;
pub const TCP_SYN: u8 = 0x02;
pub const TCP_RST: u8 = 0x04;
pub const TCP_PSH: u8 = 0x08;
pub const TCP_ACK: u8 = 0x10;
pub const TCP_URG: u8 = 0x20;
pub const TCP_ECE: u8 = 0x40;
pub const TCP_CWR: u8 = 0x80;

/// Length of the UDP header (RFC 768).
const UDP_HEADER_LEN: usize = 8;

/// What the segments are made of.
#[derive(Debug, Clone, Copy)]
enum Kind {
    /// The packet as is; with `Some(field)`, the checksum over `start..` goes into `field`.
    Whole { csum: Option<(usize, usize)> },
    /// TCP segments.
    Tcp,
    /// UDP datagrams.
    Udp,
}

/// The packets a TUN read splits into, produced one at a time by [`Segments::next_into`].
#[derive(Debug, Clone)]
pub struct Segments<'a> {
    packet: &'a [u8],
    kind: Kind,
    ip: IpHeader,
    /// IP + L4 header length (segmented kinds).
    headers: usize,
    /// Payload bytes per segment (segmented kinds).
    gso_size: usize,
    /// Index of the next segment.
    next: usize,
    count: usize,
}

impl<'a> Segments<'a> {
    /// Checks `packet` (the bytes after the vnet header `hdr`) and prepares its segments.
    pub fn new(hdr: &VnetHdr, packet: &'a [u8]) -> Result<Self, OffloadError> {
        let unparsed = IpHeader {
            v6: false,
            len: 0,
            protocol: 0,
        };
        let (version, protocol) = match hdr.gso_type {
            GsoType::None => {
                let csum = if hdr.needs_csum() {
                    Some(checksum_range(hdr, packet.len())?)
                } else {
                    None
                };
                return Ok(Self::single(packet, Kind::Whole { csum }, unparsed));
            }
            GsoType::TcpV4 => (Some(false), PROTO_TCP),
            GsoType::TcpV6 => (Some(true), PROTO_TCP),
            GsoType::UdpL4 => (None, PROTO_UDP),
        };
        let ip = IpHeader::parse(packet)?;
        if version.is_some_and(|v6| v6 != ip.v6) {
            return Err(OffloadError::VersionMismatch);
        }
        if ip.protocol != protocol {
            return Err(OffloadError::ProtocolMismatch);
        }
        let l4_len = if protocol == PROTO_TCP {
            tcp_header_len(packet, ip.len)?
        } else {
            UDP_HEADER_LEN
        };
        let headers = ip.len + l4_len;
        if packet.len() < headers {
            return Err(OffloadError::TooShort);
        }
        let gso_size = usize::from(hdr.gso_size);
        if gso_size == 0 {
            return Err(OffloadError::GsoSizeZero);
        }
        if headers + gso_size > MAX_PACKET_LEN {
            return Err(OffloadError::GsoSizeTooLarge);
        }
        let kind = if protocol == PROTO_TCP {
            Kind::Tcp
        } else {
            Kind::Udp
        };
        let count = (packet.len() - headers).div_ceil(gso_size).max(1);
        Ok(Self {
            packet,
            kind,
            ip,
            headers,
            gso_size,
            next: 0,
            count,
        })
    }

    fn single(packet: &'a [u8], kind: Kind, ip: IpHeader) -> Self {
        Self {
            packet,
            kind,
            ip,
            headers: 0,
            gso_size: 0,
            next: 0,
            count: 1,
        }
    }

    /// How many segments there are in all.
    pub fn count(&self) -> usize {
        self.count
    }

    /// How many segments [`Segments::next_into`] has still to produce.
    pub fn remaining(&self) -> usize {
        self.count - self.next
    }

    /// The length of the longest segment (the first): a `dst` this long fits every segment.
    pub fn max_segment_len(&self) -> usize {
        self.segment_len(0)
    }

    fn segment_len(&self, i: usize) -> usize {
        match self.kind {
            Kind::Whole { .. } => self.packet.len(),
            Kind::Tcp | Kind::Udp => {
                let payload = self.packet.len() - self.headers;
                self.headers + payload.saturating_sub(i * self.gso_size).min(self.gso_size)
            }
        }
    }

    /// Writes the next segment into the start of `dst` and returns its length. `None` when every
    /// segment has been produced, or when `dst` is shorter than the next segment (which then stays
    /// next: size `dst` with [`Segments::max_segment_len`]).
    pub fn next_into(&mut self, dst: &mut [u8]) -> Option<usize> {
        if self.next >= self.count {
            return None;
        }
        let i = self.next;
        let len = self.segment_len(i);
        let out = dst.get_mut(..len)?;
        match self.kind {
            Kind::Whole { csum } => {
                out.copy_from_slice(self.packet);
                if let Some((start, field)) = csum {
                    store_checksum(out, start, field);
                }
            }
            Kind::Tcp | Kind::Udp => self.write_segment(i, out)?,
        }
        self.next += 1;
        Some(len)
    }

    /// Builds segment `i` in `out` (exactly its length).
    fn write_segment(&self, i: usize, out: &mut [u8]) -> Option<()> {
        let start = self.headers + i * self.gso_size;
        let payload = self.packet.get(start..start + (out.len() - self.headers))?;
        out.get_mut(..self.headers)?
            .copy_from_slice(self.packet.get(..self.headers)?);
        out.get_mut(self.headers..)?.copy_from_slice(payload);
        let ip = self.ip;
        // Per RFC 791 the identification of each segment follows the first's (as Linux does).
        let id = be16(self.packet, 4)?.wrapping_add(i as u16);
        ip.fix_up(out, out.len(), (!ip.v6).then_some(id));
        let l4 = ip.len;
        let l4_len = out.len() - l4;
        let check_at = match self.kind {
            Kind::Tcp => {
                let seq = be32(self.packet, l4 + 4)?.wrapping_add((i * self.gso_size) as u32);
                out.get_mut(l4 + 4..l4 + 8)?
                    .copy_from_slice(&seq.to_be_bytes());
                let flags = out.get_mut(l4 + 13)?;
                if i + 1 < self.count {
                    *flags &= !(TCP_FIN | TCP_PSH);
                }
                if i > 0 {
                    *flags &= !TCP_CWR;
                }
                l4 + 16
            }
            _ => {
                let udp_len = u16::try_from(l4_len).ok()?;
                out.get_mut(l4 + 4..l4 + 6)?
                    .copy_from_slice(&udp_len.to_be_bytes());
                l4 + 6
            }
        };
        out.get_mut(check_at..check_at + 2)?.fill(0);
        let pseudo = pseudo_header(out.get(ip.addrs())?, self.ip.protocol, l4_len as u32);
        let mut check = !fold(sum(out.get(l4..)?, pseudo));
        if check == 0 && matches!(self.kind, Kind::Udp) {
            check = 0xffff;
        }
        out.get_mut(check_at..check_at + 2)?
            .copy_from_slice(&check.to_be_bytes());
        Some(())
    }
}

/// The TCP header length (data offset × 4) of the TCP header at `l4` in `packet`.
pub(crate) fn tcp_header_len(packet: &[u8], l4: usize) -> Result<usize, OffloadError> {
    let offset = packet.get(l4 + 12).ok_or(OffloadError::TooShort)? >> 4;
    let len = usize::from(offset) * 4;
    if len < 20 {
        return Err(OffloadError::BadHeaderLength);
    }
    Ok(len)
}

/// `(csum_start, csum_start + csum_offset)`, checked so that the 2-byte field lies in a packet of
/// `len` bytes.
fn checksum_range(hdr: &VnetHdr, len: usize) -> Result<(usize, usize), OffloadError> {
    let start = usize::from(hdr.csum_start);
    let field = start + usize::from(hdr.csum_offset);
    if field + 2 > len {
        return Err(OffloadError::ChecksumOutOfRange);
    }
    Ok((start, field))
}

/// Completes a partial checksum (`NEEDS_CSUM`) in place: the field at `field` holds the
/// pseudo-header sum; the checksum is the complement of the sum over `start..` with that field as
/// is, and a zero result is stored as 0xffff (as the kernel's `skb_checksum_help` does).
fn store_checksum(packet: &mut [u8], start: usize, field: usize) {
    let Some(range) = packet.get(start..) else {
        return;
    };
    let check = match checksum::checksum(range) {
        0 => 0xffff,
        c => c,
    };
    if let Some(f) = packet.get_mut(field..field + 2) {
        f.copy_from_slice(&check.to_be_bytes());
    }
}

/// Completes the checksum of a single packet (`gso_type` none) in place, when `hdr` says
/// `NEEDS_CSUM`; saves the copy [`Segments::next_into`] makes.
pub fn complete_checksum(hdr: &VnetHdr, packet: &mut [u8]) -> Result<(), OffloadError> {
    if hdr.needs_csum() {
        let (start, field) = checksum_range(hdr, packet.len())?;
        store_checksum(packet, start, field);
    }
    Ok(())
}

#[cfg(test)]
#[path = "segment_tests.rs"]
mod tests;
