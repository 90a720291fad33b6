//! Receive offload toward TUN (GRO, Documentation/networking/segmentation-offloads.rst "Generic
//! Receive Offload"): consecutive TCP segments of one flow that came out of the tunnel are merged
//! into one super-packet, written to TUN with a vnet header (include/uapi/linux/virtio_net.h) that
//! lets the kernel take it whole, as Linux's `tcp_gro_receive` and wireguard-go's
//! `tun/offload_linux.go` do.
//!
//! A packet extends the most recent entry of its flow (IP version, addresses, ports), so the order
//! within a flow is kept, when: IPv4 without options, not a fragment, same TOS, DF and TTL (RFC 791
//! §3.1); IPv6 with TCP as the first next header, same traffic class, flow label and hop limit
//! (RFC 8200 §3); same TCP header length and option bytes, same acknowledgment number, flags ACK
//! or ACK|PSH (RFC 9293 §3.1); its sequence number follows the entry's data; its payload is
//! non-empty and no longer than the entry's first (the `gso_size`); the entry did not end with PSH
//! or a shorter segment; the merged IP packet stays ≤ 65535 bytes (IPv6 included, so every entry
//! fits its buffer). Its IPv4 header checksum and TCP checksum must verify first (RFC 1071): a
//! corrupted packet is kept alone, unchanged, for the kernel to drop.
//!
//! Everything is allocated by [`Coalescer::new`]; [`Coalescer::push`] and [`Coalescer::drain`]
//! only copy.

use std::io;

use super::checksum::{self, fold, pseudo_header};
use super::segment::{TCP_ACK, TCP_PSH, tcp_header_len};
use super::vnet::{F_NEEDS_CSUM, GsoType, VNET_HDR_LEN, VnetHdr};
use super::{IpHeader, MAX_PACKET_LEN, PROTO_TCP, be16, be32};

/// What [`Coalescer::push`] did with a packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Push {
    /// Appended to an earlier packet of its flow.
    Coalesced,
    /// Kept as a new entry.
    Stored,
    /// Not taken: every entry is in use. [`Coalescer::drain`], then push it again.
    Full,
    /// Not taken: longer than 65535 bytes, which no IP packet is (without jumbograms).
    TooLong,
}

/// What [`Coalescer::drain`] wrote.
#[derive(Debug, Default)]
pub struct Drained {
    /// Entries `write` accepted.
    pub written: usize,
    /// Entries `write` failed on (each is dropped; later entries are still written).
    pub failed: usize,
    /// The first of those failures.
    pub first_error: Option<io::Error>,
}

/// The flow a TCP packet belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct FlowKey {
    v6: bool,
    /// Source then destination address, zero-padded for IPv4.
    addrs: [u8; 32],
    /// Source then destination port.
    ports: [u8; 4],
}

/// The merge state of an entry whose first packet can be extended.
#[derive(Debug, Clone, Copy)]
struct Gro {
    ip_len: usize,
    tcp_len: usize,
    /// The first packet's payload length.
    gso_size: usize,
    segments: usize,
    /// The sequence number the next packet must have.
    next_seq: u32,
    /// No PSH and no short segment yet: it may be extended.
    open: bool,
}

/// One packet or super-packet waiting to be written; the packet starts at [`VNET_HDR_LEN`].
#[derive(Debug)]
struct Entry {
    buf: Box<[u8]>,
    len: usize,
    key: Option<FlowKey>,
    gro: Option<Gro>,
}

/// Packets on their way to TUN, TCP segments of a flow merged (see the module doc).
#[derive(Debug)]
pub struct Coalescer {
    entries: Box<[Entry]>,
    used: usize,
}

/// What [`tcp_view`] reads of a TCP packet.
#[derive(Debug, Clone, Copy)]
struct TcpView {
    ip: IpHeader,
    key: FlowKey,
    tcp_len: usize,
    seq: u32,
    flags: u8,
    payload_len: usize,
    /// Could start or extend an entry (shape, flags, checksums); the entry is checked apart.
    mergeable: bool,
}

impl Coalescer {
    /// A coalescer of `max_entries` (at least 1) entries of [`VNET_HDR_LEN`] + 65535 bytes each.
    pub fn new(max_entries: usize) -> Self {
        let entries = (0..max_entries.max(1))
            .map(|_| Entry {
                buf: vec![0u8; VNET_HDR_LEN + MAX_PACKET_LEN].into_boxed_slice(),
                len: 0,
                key: None,
                gro: None,
            })
            .collect();
        Self { entries, used: 0 }
    }

    /// Entries waiting to be written.
    pub fn len(&self) -> usize {
        self.used
    }

    /// No entry waits.
    pub fn is_empty(&self) -> bool {
        self.used == 0
    }

    /// How many entries fit.
    pub fn capacity(&self) -> usize {
        self.entries.len()
    }

    /// Takes an IP packet out of the tunnel: merges it into the latest entry of its flow, or keeps
    /// it as a new entry.
    pub fn push(&mut self, packet: &[u8]) -> Push {
        if packet.len() > MAX_PACKET_LEN {
            return Push::TooLong;
        }
        let view = tcp_view(packet);
        if let Some(v) = view.filter(|v| v.mergeable)
            && let Some(i) = self.latest_of(&v.key)
            && self
                .entries
                .get_mut(i)
                .is_some_and(|e| e.extend(&v, packet))
        {
            return Push::Coalesced;
        }
        let Some(entry) = self.entries.get_mut(self.used) else {
            return Push::Full;
        };
        let Some(dst) = entry.buf.get_mut(VNET_HDR_LEN..VNET_HDR_LEN + packet.len()) else {
            return Push::TooLong;
        };
        dst.copy_from_slice(packet);
        entry.len = packet.len();
        entry.key = view.map(|v| v.key);
        entry.gro = view.filter(|v| v.mergeable).map(|v| Gro {
            ip_len: v.ip.len,
            tcp_len: v.tcp_len,
            gso_size: v.payload_len,
            segments: 1,
            next_seq: v.seq.wrapping_add(v.payload_len as u32),
            open: v.flags & TCP_PSH == 0,
        });
        self.used += 1;
        Push::Stored
    }

    /// The index of the most recent entry of flow `key`.
    fn latest_of(&self, key: &FlowKey) -> Option<usize> {
        let used = self.entries.get(..self.used)?;
        used.iter().rposition(|e| e.key.as_ref() == Some(key))
    }

    /// Hands every entry, in arrival order, to `write` as one buffer (vnet header + packet), then
    /// empties the coalescer. A failed write drops that entry only.
    pub fn drain(&mut self, mut write: impl FnMut(&[u8]) -> io::Result<()>) -> Drained {
        let mut drained = Drained::default();
        let used = self.used;
        self.used = 0;
        for entry in self.entries.iter_mut().take(used) {
            let Some(bytes) = entry.finish() else {
                continue;
            };
            match write(bytes) {
                Ok(()) => drained.written += 1,
                Err(e) => {
                    drained.failed += 1;
                    drained.first_error.get_or_insert(e);
                }
            }
        }
        drained
    }
}

impl Entry {
    /// Appends `v`'s payload if it may extend this entry (see the module doc).
    fn extend(&mut self, v: &TcpView, packet: &[u8]) -> bool {
        let Some(gro) = self.gro.as_mut().filter(|g| g.open) else {
            return false;
        };
        let Some(stored) = self.buf.get(VNET_HDR_LEN..VNET_HDR_LEN + self.len) else {
            return false;
        };
        let headers = gro.ip_len + gro.tcp_len;
        let fits = v.payload_len <= gro.gso_size && self.len + v.payload_len <= MAX_PACKET_LEN;
        if !fits || v.ip.len != gro.ip_len || v.tcp_len != gro.tcp_len || v.seq != gro.next_seq {
            return false;
        }
        // IPv4: TOS (1), DF (6 & 0x40), TTL (8). IPv6: version, class, flow label (0..4), hop
        // limit (7).
        let same = |r: core::ops::Range<usize>| stored.get(r.clone()) == packet.get(r);
        let same_ip = if v.ip.v6 {
            same(0..4) && same(7..8)
        } else {
            same(1..2) && same(8..9) && (stored[6] ^ packet[6]) & 0x40 == 0
        };
        // Acknowledgment number (8..12) and options (20..).
        let l4 = gro.ip_len;
        if !same_ip || !same(l4 + 8..l4 + 12) || !same(l4 + 20..headers) {
            return false;
        }
        let (Some(payload), Some(dst)) = (
            packet.get(headers..),
            self.buf
                .get_mut(VNET_HDR_LEN + self.len..VNET_HDR_LEN + self.len + v.payload_len),
        ) else {
            return false;
        };
        dst.copy_from_slice(payload);
        self.len += v.payload_len;
        gro.segments += 1;
        gro.next_seq = gro.next_seq.wrapping_add(v.payload_len as u32);
        if v.payload_len < gro.gso_size {
            gro.open = false;
        }
        if v.flags & TCP_PSH != 0 {
            gro.open = false;
            if let Some(f) = self.buf.get_mut(VNET_HDR_LEN + l4 + 13) {
                *f |= TCP_PSH;
            }
        }
        true
    }

    /// Writes the vnet header (and, for a super-packet, its lengths and partial checksum); the
    /// bytes to write.
    fn finish(&mut self) -> Option<&[u8]> {
        let gro = self.gro.take().filter(|g| g.segments > 1);
        self.key = None;
        let (head, packet) = self
            .buf
            .get_mut(..VNET_HDR_LEN + self.len)?
            .split_at_mut(VNET_HDR_LEN);
        let hdr = match gro {
            None => VnetHdr::NONE,
            Some(g) => {
                let ip = IpHeader::parse(packet).ok()?;
                ip.fix_up(packet, self.len, None);
                let l4_len = (self.len - g.ip_len) as u32;
                let partial = fold(pseudo_header(packet.get(ip.addrs())?, PROTO_TCP, l4_len));
                let check = g.ip_len + 16;
                packet
                    .get_mut(check..check + 2)?
                    .copy_from_slice(&partial.to_be_bytes());
                VnetHdr {
                    flags: F_NEEDS_CSUM,
                    gso_type: if ip.v6 {
                        GsoType::TcpV6
                    } else {
                        GsoType::TcpV4
                    },
                    ecn: false,
                    hdr_len: u16::try_from(g.ip_len + g.tcp_len).ok()?,
                    gso_size: u16::try_from(g.gso_size).ok()?,
                    csum_start: u16::try_from(g.ip_len).ok()?,
                    csum_offset: 16,
                }
            }
        };
        hdr.write(head.try_into().ok()?);
        self.buf.get(..VNET_HDR_LEN + self.len)
    }
}

/// Reads a TCP packet: `None` if not TCP or its ports cannot be found (a later IPv4 fragment, an
/// IPv6 extension header, a cut header).
fn tcp_view(packet: &[u8]) -> Option<TcpView> {
    let ip = IpHeader::parse(packet).ok()?;
    let frag = if ip.v6 { 0 } else { be16(packet, 6)? };
    if ip.protocol != PROTO_TCP || frag & 0x1fff != 0 {
        return None;
    }
    let tcp_len = tcp_header_len(packet, ip.len).ok()?;
    let headers = ip.len + tcp_len;
    let payload_len = packet.len().checked_sub(headers)?;
    let mut key = FlowKey {
        v6: ip.v6,
        addrs: [0; 32],
        ports: [0; 4],
    };
    let addrs = packet.get(ip.addrs())?;
    key.addrs.get_mut(..addrs.len())?.copy_from_slice(addrs);
    key.ports.copy_from_slice(packet.get(ip.len..ip.len + 4)?);
    let flags = *packet.get(ip.len + 13)?;
    let ip_len_field = usize::from(be16(packet, if ip.v6 { 4 } else { 2 })?);
    let whole = if ip.v6 {
        ip_len_field + 40
    } else {
        ip_len_field
    } == packet.len();
    let shape = whole && payload_len > 0 && (ip.v6 || (ip.len == 20 && frag & 0x2000 == 0));
    let mergeable = shape && flags & !TCP_PSH == TCP_ACK && checksums_verify(packet, &ip);
    Some(TcpView {
        ip,
        key,
        tcp_len,
        seq: be32(packet, ip.len + 4)?,
        flags,
        payload_len,
        mergeable,
    })
}

/// The IPv4 header checksum and the TCP checksum of `packet` verify.
fn checksums_verify(packet: &[u8], ip: &IpHeader) -> bool {
    let (Some(header), Some(tcp), Some(addrs)) = (
        packet.get(..ip.len),
        packet.get(ip.len..),
        packet.get(ip.addrs()),
    ) else {
        return false;
    };
    (ip.v6 || checksum::verifies(header, 0))
        && checksum::verifies(tcp, pseudo_header(addrs, PROTO_TCP, tcp.len() as u32))
}

#[cfg(test)]
#[path = "coalesce_tests.rs"]
mod tests;
