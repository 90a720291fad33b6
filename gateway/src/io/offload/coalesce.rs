//! Receive offload toward TUN (GRO, Documentation/networking/segmentation-offloads.rst "Generic
//! Receive Offload"): consecutive TCP segments of one flow that came out of the tunnel are merged
//! into one super-packet, written to TUN with a vnet header (include/uapi/linux/virtio_net.h) that
//! lets the kernel take it whole, as Linux's `tcp_gro_receive` and wireguard-go's
//! `tun/offload_linux.go` do. With [`Coalescer::with_udp`], UDP datagrams too (RFC 768), as
//! Linux's `udp_gro_receive_segment` and wireguard-go's `udpGRO` do: the kernel takes the
//! super-packet as USO (segmentation-offloads.rst "UDP Segmentation Offload", `TUN_F_USO4/6`,
//! Linux ≥ 6.2) and cuts it back into the datagrams before a socket without `UDP_GRO` sees them.
//!
//! A packet extends the most recent entry of its flow (IP version, protocol, addresses, ports), so
//! the order within a flow is kept, when: IPv4 without options, not a fragment, same TOS, DF and
//! TTL (RFC 791 §3.1); IPv6 with TCP or UDP as the first next header, same traffic class, flow
//! label and hop limit (RFC 8200 §3); its payload is non-empty and no longer than the entry's
//! first (the `gso_size`); the entry did not end with a shorter one; the merged IP packet stays
//! ≤ 65535 bytes (IPv6 included, so every entry fits its buffer). TCP also: same TCP header length
//! and option bytes, same acknowledgment number, flags ACK or ACK|PSH (RFC 9293 §3.1), its
//! sequence number follows the entry's data, the entry did not end with PSH. UDP also: its length
//! field matches the datagram, its checksum is not zero (none computed), the entry holds fewer
//! than [`UDP_MAX_SEGMENTS`] datagrams. Its IPv4 header checksum and L4 checksum must verify first
//! (RFC 1071): a corrupted packet is kept alone, unchanged, for the kernel to drop, and later
//! packets of its flow start a new entry after it (`coalesce_view.rs` reads all this of a packet).
//!
//! A merged entry is written with `NEEDS_CSUM`, `csum_start` at the L4 header, the L4 checksum
//! field holding the pseudo-header sum over the new L4 length (not complemented), the IP length
//! (and IPv4 header checksum) updated, and `gso_type` TCPV4/TCPV6 (`csum_offset` 16) or UDP_L4
//! (`csum_offset` 6, the UDP length field set to 8 + every payload). A lone packet is written
//! unchanged with a zero header.
//!
//! Everything is allocated by [`Coalescer::new`]; [`Coalescer::push`] and [`Coalescer::drain`]
//! only copy.

use std::io;

use super::checksum::{fold, pseudo_header};
use super::segment::TCP_PSH;
use super::vnet::{F_NEEDS_CSUM, GsoType, VNET_HDR_LEN, VnetHdr};
use super::{IpHeader, MAX_PACKET_LEN, PROTO_TCP, PROTO_UDP};
use view::{FlowKey, View};

#[path = "coalesce_view.rs"]
mod view;

/// The most datagrams one UDP entry merges: Linux's `UDP_GRO_CNT_MAX` (net/ipv4/udp_offload.c),
/// which is also the most segments it takes in one USO write (`UDP_MAX_SEGMENTS`,
/// include/linux/udp.h).
pub const UDP_MAX_SEGMENTS: usize = 64;

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
    /// Of those, the super-packets of several merged packets.
    pub merged: usize,
    /// Entries `write` failed on (each is dropped; later entries are still written).
    pub failed: usize,
    /// The first of those failures.
    pub first_error: Option<io::Error>,
}

/// The merge state of an entry whose first packet can be extended.
#[derive(Debug, Clone, Copy)]
struct Gro {
    /// UDP datagrams (else TCP segments).
    udp: bool,
    ip_len: usize,
    /// The L4 header length (TCP with its options, or the 8 bytes of UDP).
    l4_len: usize,
    /// The first packet's payload length.
    gso_size: usize,
    segments: usize,
    /// TCP: the sequence number the next packet must have.
    next_seq: u32,
    /// No PSH, no short segment, (UDP) fewer than [`UDP_MAX_SEGMENTS`]: it may be extended.
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

/// Packets on their way to TUN, TCP segments (and, if enabled, UDP datagrams) of a flow merged
/// (see the module doc).
#[derive(Debug)]
pub struct Coalescer {
    entries: Box<[Entry]>,
    used: usize,
    /// Merge UDP datagrams too (USO toward TUN).
    udp: bool,
}

impl Coalescer {
    /// A coalescer of `max_entries` (at least 1) entries of [`VNET_HDR_LEN`] + 65535 bytes each,
    /// merging TCP only: what every TUN device with TSO takes.
    pub fn new(max_entries: usize) -> Self {
        Self::with_udp(max_entries, false)
    }

    /// Like [`Coalescer::new`], and with `udp` merges UDP datagrams too, written with
    /// `VIRTIO_NET_HDR_GSO_UDP_L4`. Only for a TUN device that accepted `TUN_F_USO4 | TUN_F_USO6`
    /// (Linux ≥ 6.2): any other refuses such a write.
    pub fn with_udp(max_entries: usize, udp: bool) -> Self {
        let entries = (0..max_entries.max(1))
            .map(|_| Entry {
                buf: vec![0u8; VNET_HDR_LEN + MAX_PACKET_LEN].into_boxed_slice(),
                len: 0,
                key: None,
                gro: None,
            })
            .collect();
        Self {
            entries,
            used: 0,
            udp,
        }
    }

    /// Whether UDP datagrams are merged ([`Coalescer::with_udp`]).
    pub fn merges_udp(&self) -> bool {
        self.udp
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
        let view = View::parse(packet, self.udp);
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
            udp: v.udp(),
            ip_len: v.ip.len,
            l4_len: v.l4_len,
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
            let merged = entry.gro.is_some_and(|g| g.segments > 1);
            let Some(bytes) = entry.finish() else {
                continue;
            };
            match write(bytes) {
                Ok(()) => {
                    drained.written += 1;
                    drained.merged += usize::from(merged);
                }
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
    fn extend(&mut self, v: &View, packet: &[u8]) -> bool {
        let Some(gro) = self.gro.as_mut().filter(|g| g.open) else {
            return false;
        };
        let Some(stored) = self.buf.get(VNET_HDR_LEN..VNET_HDR_LEN + self.len) else {
            return false;
        };
        let headers = gro.ip_len + gro.l4_len;
        let fits = v.payload_len <= gro.gso_size && self.len + v.payload_len <= MAX_PACKET_LEN;
        if !fits || v.udp() != gro.udp || v.ip.len != gro.ip_len || v.l4_len != gro.l4_len {
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
        // TCP: the sequence number follows, the acknowledgment number (8..12) and options (20..)
        // are the same. UDP: the flow key and the lengths say it all.
        let l4 = gro.ip_len;
        let same_l4 =
            gro.udp || (v.seq == gro.next_seq && same(l4 + 8..l4 + 12) && same(l4 + 20..headers));
        if !same_ip || !same_l4 {
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
        if v.payload_len < gro.gso_size || (gro.udp && gro.segments >= UDP_MAX_SEGMENTS) {
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
                let l4_len = self.len - g.ip_len;
                let (protocol, gso_type, csum_offset) = match (g.udp, ip.v6) {
                    (true, _) => (PROTO_UDP, GsoType::UdpL4, 6),
                    (false, false) => (PROTO_TCP, GsoType::TcpV4, 16),
                    (false, true) => (PROTO_TCP, GsoType::TcpV6, 16),
                };
                if g.udp {
                    // The UDP length of the super-packet: header + every datagram's payload.
                    let udp_len = u16::try_from(l4_len).ok()?;
                    let at = g.ip_len + 4;
                    packet
                        .get_mut(at..at + 2)?
                        .copy_from_slice(&udp_len.to_be_bytes());
                }
                let addrs = packet.get(ip.addrs())?;
                let partial = fold(pseudo_header(addrs, protocol, l4_len as u32));
                let check = g.ip_len + usize::from(csum_offset);
                packet
                    .get_mut(check..check + 2)?
                    .copy_from_slice(&partial.to_be_bytes());
                VnetHdr {
                    flags: F_NEEDS_CSUM,
                    gso_type,
                    ecn: false,
                    hdr_len: u16::try_from(g.ip_len + g.l4_len).ok()?,
                    gso_size: u16::try_from(g.gso_size).ok()?,
                    csum_start: u16::try_from(g.ip_len).ok()?,
                    csum_offset,
                }
            }
        };
        hdr.write(head.try_into().ok()?);
        self.buf.get(..VNET_HDR_LEN + self.len)
    }
}

#[cfg(test)]
#[path = "coalesce_tests.rs"]
mod tests;

#[cfg(test)]
#[path = "coalesce_udp_tests.rs"]
mod udp_tests;
