//! The few IP header fields the tunnel reads (whitepaper §2 cryptokey routing, §5.4.6): version,
//! total length (to strip the zero padding after decryption) and source/destination addresses.
//! RFC 791 (IPv4) and RFC 8200 (IPv6); checked reads only, never a panic.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Addresses and true length of an IP packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IpInfo {
    /// Source address.
    pub src: IpAddr,
    /// Destination address.
    pub dst: IpAddr,
    /// Length from the header (≤ the buffer length).
    pub len: usize,
}

fn array<const N: usize>(b: &[u8], at: usize) -> Option<[u8; N]> {
    b.get(at..at + N)?.try_into().ok()
}

/// Parses the header of the IP packet at the start of `packet` (which may carry padding after it).
/// `None` for anything that is not a complete IPv4/IPv6 header with a length that fits.
pub fn parse(packet: &[u8]) -> Option<IpInfo> {
    let version = packet.first()? >> 4;
    let (src, dst, len) = match version {
        4 => {
            let ihl = usize::from(packet[0] & 0x0f) * 4;
            let len = usize::from(u16::from_be_bytes(array(packet, 2)?));
            if ihl < 20 || len < ihl {
                return None;
            }
            let src = IpAddr::V4(Ipv4Addr::from(array::<4>(packet, 12)?));
            let dst = IpAddr::V4(Ipv4Addr::from(array::<4>(packet, 16)?));
            (src, dst, len)
        }
        6 => {
            let payload = usize::from(u16::from_be_bytes(array(packet, 4)?));
            let src = IpAddr::V6(Ipv6Addr::from(array::<16>(packet, 8)?));
            let dst = IpAddr::V6(Ipv6Addr::from(array::<16>(packet, 24)?));
            (src, dst, 40 + payload)
        }
        _ => return None,
    };
    (len <= packet.len()).then_some(IpInfo { src, dst, len })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn v4(len: u16) -> Vec<u8> {
        let mut p = vec![0u8; usize::from(len)];
        p[0] = 0x45;
        p[2..4].copy_from_slice(&len.to_be_bytes());
        p[12..16].copy_from_slice(&[10, 0, 0, 1]);
        p[16..20].copy_from_slice(&[10, 0, 0, 2]);
        p
    }

    #[test]
    fn ipv4_with_padding() {
        let mut p = v4(28);
        p.extend_from_slice(&[0; 4]);
        let i = parse(&p).unwrap();
        assert_eq!(
            (i.src, i.dst, i.len),
            ("10.0.0.1".parse().unwrap(), "10.0.0.2".parse().unwrap(), 28)
        );
    }

    #[test]
    fn ipv6_header() {
        let mut p = vec![0u8; 48];
        p[0] = 0x60;
        p[4..6].copy_from_slice(&8u16.to_be_bytes());
        p[23] = 1;
        p[39] = 2;
        let i = parse(&p).unwrap();
        assert_eq!(
            (i.src, i.dst, i.len),
            ("::1".parse().unwrap(), "::2".parse().unwrap(), 48)
        );
        p.truncate(47);
        assert_eq!(parse(&p), None, "length beyond the buffer");
    }

    #[test]
    fn rejects_short_or_odd_headers() {
        assert_eq!(parse(&[]), None);
        assert_eq!(parse(&[0x45; 19]), None);
        let mut p = v4(20);
        p[0] = 0x44; // IHL 16 bytes
        assert_eq!(parse(&p), None);
        assert_eq!(parse(&[0x70; 60]), None);
    }

    proptest! {
        #[test]
        fn never_panics(b in proptest::collection::vec(any::<u8>(), 0..100)) {
            if let Some(i) = parse(&b) {
                prop_assert!(i.len <= b.len());
            }
        }
    }
}
