//! Segmentation and receive offload toward a TUN device opened with `IFF_VNET_HDR`: sans-IO, pure
//! functions over byte slices, no system calls and no allocation per packet.
//!
//! With `TUNSETOFFLOAD(TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6 | TUN_F_USO4 | TUN_F_USO6)` every read
//! from TUN starts with a 10-byte `struct virtio_net_hdr` (include/uapi/linux/virtio_net.h), and
//! the IP packet after it may be a TCP or UDP "super-packet" of up to 64 KiB that we must cut into
//! MTU-sized packets ourselves; every write to TUN starts with such a header too, which lets us
//! hand the kernel one coalesced TCP super-packet instead of many small ones, and, when the kernel
//! granted `TUN_F_USO4 | TUN_F_USO6` (Linux ≥ 6.2), one UDP super-packet (`GSO_UDP_L4`) instead of
//! many small datagrams (RFC 768), which the kernel cuts back into those datagrams
//! (Documentation/networking/segmentation-offloads.rst: TSO, "UDP Segmentation Offload", GRO,
//! checksum offload).
//!
//! | module | what |
//! |---|---|
//! | [`vnet`] | the header: [`VnetHdr`], its flags and GSO types |
//! | [`checksum`] | the Internet checksum (RFC 1071), pseudo-headers (RFC 768, RFC 793 §3.1 / RFC 9293, RFC 8200 §8.1), the IPv4 header checksum (RFC 791) |
//! | [`segment`] | TUN → tunnel: [`Segments`] splits a super-packet (or completes a partial checksum) |
//! | [`coalesce`] | tunnel → TUN: [`Coalescer`] merges consecutive TCP segments of a flow (GRO), and with [`Coalescer::with_udp`] consecutive equal-sized UDP datagrams (USO toward TUN, only when the kernel granted `TUN_F_USO4/6`) |
//!
//! The behaviour follows Linux's own GSO (`tcp_gso_segment`, `__udp_gso_segment`) and GRO
//! (`tcp_gro_receive`, `udp_gro_receive_segment`) and wireguard-go's `tun/offload_linux.go`. Every refusal is an
//! [`OffloadError`], counted by its [`OffloadError::reason`] label.

pub mod checksum;
pub mod coalesce;
pub mod segment;
pub mod vnet;

pub use coalesce::{Coalescer, Drained, Push};
pub use segment::{Segments, complete_checksum};
pub use vnet::{GsoType, VNET_HDR_LEN, VnetHdr};

use thiserror::Error;

/// The largest IP packet the TUN device takes or gives (the IPv4 total length and the IPv6
/// payload length are 16-bit fields; we do not enable BIG TCP).
pub const MAX_PACKET_LEN: usize = 65535;

/// IP protocol numbers (IANA): TCP (RFC 9293) and UDP (RFC 768).
pub const PROTO_TCP: u8 = 6;
/// See [`PROTO_TCP`].
pub const PROTO_UDP: u8 = 17;

/// Why a packet read from TUN (a vnet header and the packet after it) is refused. Each variant is
/// a reason the kernel should never give us; the daemon counts them by [`OffloadError::reason`].
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Error)]
pub enum OffloadError {
    /// Shorter than the vnet header, or than the IP and L4 headers the packet claims.
    #[error("packet too short")]
    TooShort,
    /// The IP version nibble is neither 4 nor 6.
    #[error("bad IP version")]
    BadVersion,
    /// A GSO type we do not enable or know (3 is legacy UFO, which cuts IP fragments).
    #[error("unsupported GSO type {0}")]
    UnsupportedGsoType(u8),
    /// The GSO type names TCPv4 but the packet is IPv6, or the other way round.
    #[error("IP version does not match the GSO type")]
    VersionMismatch,
    /// The IP protocol (IPv6: the first next header) is not the TCP or UDP the GSO type names;
    /// IPv6 extension headers are refused here.
    #[error("L4 protocol does not match the GSO type")]
    ProtocolMismatch,
    /// An IPv4 IHL or a TCP data offset below 5 words.
    #[error("bad header length")]
    BadHeaderLength,
    /// A GSO packet with a `gso_size` of zero.
    #[error("GSO size is zero")]
    GsoSizeZero,
    /// Headers plus `gso_size` exceed the largest IP packet (65535 bytes).
    #[error("GSO size too large")]
    GsoSizeTooLarge,
    /// `NEEDS_CSUM` with a `csum_start`/`csum_offset` whose 2-byte field is not in the packet.
    #[error("checksum offset out of range")]
    ChecksumOutOfRange,
}

impl OffloadError {
    /// A stable snake_case label for metrics.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::TooShort => "too_short",
            Self::BadVersion => "bad_version",
            Self::UnsupportedGsoType(_) => "unsupported_gso_type",
            Self::VersionMismatch => "version_mismatch",
            Self::ProtocolMismatch => "protocol_mismatch",
            Self::BadHeaderLength => "bad_header_length",
            Self::GsoSizeZero => "gso_size_zero",
            Self::GsoSizeTooLarge => "gso_size_too_large",
            Self::ChecksumOutOfRange => "checksum_out_of_range",
        }
    }
}

/// The IP header of a packet, as far as offload needs it (RFC 791 §3.1, RFC 8200 §3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct IpHeader {
    /// IPv6 (else IPv4).
    pub v6: bool,
    /// Header length in bytes: IHL × 4, or 40.
    pub len: usize,
    /// IPv4 protocol, IPv6 next header.
    pub protocol: u8,
}

impl IpHeader {
    /// Parses the IP header at the start of `packet`; checks only that it is complete.
    pub fn parse(packet: &[u8]) -> Result<Self, OffloadError> {
        let first = *packet.first().ok_or(OffloadError::TooShort)?;
        let (v6, len, protocol_at) = match first >> 4 {
            4 => (false, usize::from(first & 0x0f) * 4, 9),
            6 => (true, 40, 6),
            _ => return Err(OffloadError::BadVersion),
        };
        if len < 20 {
            return Err(OffloadError::BadHeaderLength);
        }
        if packet.len() < len {
            return Err(OffloadError::TooShort);
        }
        let protocol = packet
            .get(protocol_at)
            .copied()
            .ok_or(OffloadError::TooShort)?;
        Ok(Self { v6, len, protocol })
    }

    /// The source and destination addresses within the header: bytes 12..20 (IPv4), 8..40 (IPv6).
    pub fn addrs(&self) -> core::ops::Range<usize> {
        if self.v6 { 8..40 } else { 12..20 }
    }

    /// Writes the IP length fields and (IPv4) the identification and the header checksum for a
    /// packet of `total` bytes whose header is `ip` (`ip.len()` ≥ [`IpHeader::len`]). `total` must
    /// be ≤ [`MAX_PACKET_LEN`] (IPv6: ≤ 65535 + 40).
    pub fn fix_up(&self, ip: &mut [u8], total: usize, id: Option<u16>) {
        let Some(header) = ip.get_mut(..self.len) else {
            return;
        };
        if self.v6 {
            let payload = u16::try_from(total.saturating_sub(40)).unwrap_or(u16::MAX);
            header[4..6].copy_from_slice(&payload.to_be_bytes());
            return;
        }
        let total = u16::try_from(total).unwrap_or(u16::MAX);
        header[2..4].copy_from_slice(&total.to_be_bytes());
        if let Some(id) = id {
            header[4..6].copy_from_slice(&id.to_be_bytes());
        }
        header[10..12].fill(0);
        let sum = checksum::checksum(header);
        header[10..12].copy_from_slice(&sum.to_be_bytes());
    }
}

/// The big-endian `u16` at `at`, if in `b`.
pub(crate) fn be16(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes(
        b.get(at..at.checked_add(2)?)?.try_into().ok()?,
    ))
}

/// The big-endian `u32` at `at`, if in `b`.
pub(crate) fn be32(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_be_bytes(
        b.get(at..at.checked_add(4)?)?.try_into().ok()?,
    ))
}

#[cfg(test)]
pub(crate) mod testing;

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn reasons_are_distinct_snake_case() {
        let all = [
            OffloadError::TooShort,
            OffloadError::BadVersion,
            OffloadError::UnsupportedGsoType(3),
            OffloadError::VersionMismatch,
            OffloadError::ProtocolMismatch,
            OffloadError::BadHeaderLength,
            OffloadError::GsoSizeZero,
            OffloadError::GsoSizeTooLarge,
            OffloadError::ChecksumOutOfRange,
        ];
        let mut labels: Vec<_> = all.iter().map(OffloadError::reason).collect();
        assert!(
            labels
                .iter()
                .all(|l| l.chars().all(|c| c == '_' || c.is_ascii_lowercase()))
        );
        labels.sort_unstable();
        labels.dedup();
        assert_eq!(labels.len(), all.len());
    }

    #[test]
    fn ip_header_parse() {
        assert_eq!(IpHeader::parse(&[]), Err(OffloadError::TooShort));
        assert_eq!(IpHeader::parse(&[0x55; 40]), Err(OffloadError::BadVersion));
        assert_eq!(
            IpHeader::parse(&[0x44; 40]),
            Err(OffloadError::BadHeaderLength)
        );
        assert_eq!(IpHeader::parse(&[0x46; 20]), Err(OffloadError::TooShort));
        assert_eq!(IpHeader::parse(&[0x60; 39]), Err(OffloadError::TooShort));
        let mut v4 = [0u8; 24];
        v4[0] = 0x46;
        v4[9] = PROTO_UDP;
        let ip = IpHeader::parse(&v4).unwrap();
        assert_eq!((ip.v6, ip.len, ip.protocol), (false, 24, PROTO_UDP));
        assert_eq!(ip.addrs(), 12..20);
    }

    #[test]
    fn be_reads_are_checked() {
        assert_eq!(be16(&[1, 2], 0), Some(0x0102));
        assert_eq!(be16(&[1, 2], 1), None);
        assert_eq!(be16(&[1, 2], usize::MAX), None);
        assert_eq!(be32(&[1, 2, 3, 4], 0), Some(0x0102_0304));
        assert_eq!(be32(&[1, 2, 3], 0), None);
    }
}
