//! `struct virtio_net_hdr` (include/uapi/linux/virtio_net.h), the 10-byte header in front of every
//! packet read from or written to a TUN device opened with `IFF_VNET_HDR`.
//!
//! ```text
//! offset  size  field
//! 0       1     flags         NEEDS_CSUM (1), DATA_VALID (2)
//! 1       1     gso_type      NONE (0), TCPV4 (1), UDP (3, legacy UFO), TCPV6 (4), UDP_L4 (5), | ECN (0x80)
//! 2       2     hdr_len       length of the headers to copy into every segment
//! 4       2     gso_size      payload bytes per segment (the MSS)
//! 6       2     csum_start    where the checksummed range starts (the L4 header)
//! 8       2     csum_offset   where the checksum field is, from csum_start
//! ```
//!
//! The fields are in the device's byte order: with a little-endian virtio header
//! (`TUNSETVNETLE`, or a little-endian host, as on every platform we build for), little-endian.
//! We read and write them explicitly as little-endian.

use super::OffloadError;

/// Length of `struct virtio_net_hdr` (without the `num_buffers` of the mergeable variant).
pub const VNET_HDR_LEN: usize = 10;

/// `VIRTIO_NET_HDR_F_NEEDS_CSUM`: the L4 checksum field holds the pseudo-header sum; the
/// checksum over `csum_start..` is still to be computed and stored at `csum_start + csum_offset`.
pub const F_NEEDS_CSUM: u8 = 1;
/// `VIRTIO_NET_HDR_F_DATA_VALID`: the checksum has been verified (receive side only).
pub const F_DATA_VALID: u8 = 2;

/// `VIRTIO_NET_HDR_GSO_NONE`.
pub const GSO_NONE: u8 = 0;
/// `VIRTIO_NET_HDR_GSO_TCPV4`: TSO over IPv4.
pub const GSO_TCPV4: u8 = 1;
/// `VIRTIO_NET_HDR_GSO_UDP`: legacy UFO (cuts IP fragments); refused, we never enable it.
pub const GSO_UDP: u8 = 3;
/// `VIRTIO_NET_HDR_GSO_TCPV6`: TSO over IPv6.
pub const GSO_TCPV6: u8 = 4;
/// `VIRTIO_NET_HDR_GSO_UDP_L4`: USO, UDP segmentation (each segment a whole datagram).
pub const GSO_UDP_L4: u8 = 5;
/// `VIRTIO_NET_HDR_GSO_ECN`: the TCP stream uses ECN (the flag is or-ed into `gso_type`).
pub const GSO_ECN: u8 = 0x80;

/// The segmentation the kernel asks for (`gso_type` without [`GSO_ECN`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum GsoType {
    /// One packet as is.
    None,
    /// A TCP-over-IPv4 super-packet.
    TcpV4,
    /// A TCP-over-IPv6 super-packet.
    TcpV6,
    /// A UDP super-packet over IPv4 or IPv6, cut into whole datagrams.
    UdpL4,
}

impl GsoType {
    /// The wire value.
    pub fn to_wire(self) -> u8 {
        match self {
            Self::None => GSO_NONE,
            Self::TcpV4 => GSO_TCPV4,
            Self::TcpV6 => GSO_TCPV6,
            Self::UdpL4 => GSO_UDP_L4,
        }
    }

    /// The type for a wire value without [`GSO_ECN`]; legacy UFO and unknown values are refused.
    pub fn from_wire(value: u8) -> Result<Self, OffloadError> {
        match value {
            GSO_NONE => Ok(Self::None),
            GSO_TCPV4 => Ok(Self::TcpV4),
            GSO_TCPV6 => Ok(Self::TcpV6),
            GSO_UDP_L4 => Ok(Self::UdpL4),
            other => Err(OffloadError::UnsupportedGsoType(other)),
        }
    }
}

/// A parsed `struct virtio_net_hdr`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct VnetHdr {
    /// [`F_NEEDS_CSUM`], [`F_DATA_VALID`]; other bits are carried, not interpreted.
    pub flags: u8,
    /// The segmentation asked for.
    pub gso_type: GsoType,
    /// [`GSO_ECN`] was set in `gso_type`.
    pub ecn: bool,
    /// Length of the headers (IP + L4); informative only, [`super::Segments`] parses the headers.
    pub hdr_len: u16,
    /// Payload bytes per segment.
    pub gso_size: u16,
    /// Offset of the checksummed range (the L4 header), for [`F_NEEDS_CSUM`].
    pub csum_start: u16,
    /// Offset of the checksum field from `csum_start` (16 for TCP, 6 for UDP).
    pub csum_offset: u16,
}

impl VnetHdr {
    /// A plain packet: no flags, no segmentation (what a single packet is written with).
    pub const NONE: VnetHdr = VnetHdr {
        flags: 0,
        gso_type: GsoType::None,
        ecn: false,
        hdr_len: 0,
        gso_size: 0,
        csum_start: 0,
        csum_offset: 0,
    };

    /// Parses the header at the start of `bytes` (the packet follows at [`VNET_HDR_LEN`]).
    pub fn parse(bytes: &[u8]) -> Result<Self, OffloadError> {
        let b: &[u8; VNET_HDR_LEN] = bytes
            .get(..VNET_HDR_LEN)
            .and_then(|b| b.try_into().ok())
            .ok_or(OffloadError::TooShort)?;
        let le = |at: usize| u16::from_le_bytes([b[at], b[at + 1]]);
        Ok(Self {
            flags: b[0],
            gso_type: GsoType::from_wire(b[1] & !GSO_ECN)?,
            ecn: b[1] & GSO_ECN != 0,
            hdr_len: le(2),
            gso_size: le(4),
            csum_start: le(6),
            csum_offset: le(8),
        })
    }

    /// Writes the header in its wire form.
    pub fn write(&self, out: &mut [u8; VNET_HDR_LEN]) {
        out[0] = self.flags;
        out[1] = self.gso_type.to_wire() | if self.ecn { GSO_ECN } else { 0 };
        out[2..4].copy_from_slice(&self.hdr_len.to_le_bytes());
        out[4..6].copy_from_slice(&self.gso_size.to_le_bytes());
        out[6..8].copy_from_slice(&self.csum_start.to_le_bytes());
        out[8..10].copy_from_slice(&self.csum_offset.to_le_bytes());
    }

    /// [`F_NEEDS_CSUM`] is set.
    pub fn needs_csum(&self) -> bool {
        self.flags & F_NEEDS_CSUM != 0
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn known_bytes() {
        // A TSO IPv4 super-packet as Linux hands it: NEEDS_CSUM, TCPV4|ECN, 20+32 header bytes,
        // MSS 1448, checksum field at 20 + 16.
        let wire = [1, 0x81, 52, 0, 0xa8, 0x05, 20, 0, 16, 0];
        let h = VnetHdr::parse(&wire).unwrap();
        assert_eq!(
            h,
            VnetHdr {
                flags: F_NEEDS_CSUM,
                gso_type: GsoType::TcpV4,
                ecn: true,
                hdr_len: 52,
                gso_size: 1448,
                csum_start: 20,
                csum_offset: 16,
            }
        );
        assert!(h.needs_csum());
        let mut out = [0u8; VNET_HDR_LEN];
        h.write(&mut out);
        assert_eq!(out, wire);
        VnetHdr::NONE.write(&mut out);
        assert_eq!(out, [0; VNET_HDR_LEN]);
        assert!(!VnetHdr::NONE.needs_csum());
    }

    #[test]
    fn refusals() {
        assert_eq!(VnetHdr::parse(&[0; 9]), Err(OffloadError::TooShort));
        let mut wire = [0u8; 12];
        for (t, ok) in [
            (0, true),
            (1, true),
            (2, false),
            (3, false),
            (4, true),
            (5, true),
            (6, false),
        ] {
            wire[1] = t;
            assert_eq!(VnetHdr::parse(&wire).is_ok(), ok, "gso type {t}");
            wire[1] = t | GSO_ECN;
            assert_eq!(VnetHdr::parse(&wire).is_ok(), ok, "gso type {t} with ECN");
        }
        wire[1] = GSO_UDP;
        assert_eq!(
            VnetHdr::parse(&wire),
            Err(OffloadError::UnsupportedGsoType(GSO_UDP))
        );
    }

    proptest! {
        #[test]
        fn write_parse_round_trip(wire in proptest::array::uniform10(any::<u8>())) {
            if let Ok(h) = VnetHdr::parse(&wire) {
                let mut out = [0u8; VNET_HDR_LEN];
                h.write(&mut out);
                prop_assert_eq!(out, wire);
            }
        }
    }
}
