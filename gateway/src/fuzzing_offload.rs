//! The body of the `gateway_tun_offload` fuzz target (see `fuzzing.rs`): TUN reads split into
//! segments and merged back by the coalescer.

use std::hint::black_box;

/// Feeds `data` as a TUN read: the first [`VNET_HDR_LEN`](crate::io::offload::VNET_HDR_LEN)
/// bytes a vnet header, the rest the packet. Its segments fit a 65 KiB buffer and number at most
/// one per `gso_size` bytes (plus one); they and the raw packet go through two small coalescers,
/// TCP only and TCP + UDP, whose every write fits a vnet header + 65535 bytes and splits again
/// without a refusal; the TCP-only one never writes a UDP super-packet (`GSO_UDP_L4`), and the
/// other's are at most 64 datagrams.
pub fn tun_offload(data: &[u8]) {
    use crate::io::offload::{Coalescer, Segments, VNET_HDR_LEN, VnetHdr};
    let (head, packet) = data.split_at(data.len().min(VNET_HDR_LEN));
    let mut packets = Vec::new();
    if let Ok(hdr) = VnetHdr::parse(head)
        && let Ok(mut segments) = black_box(Segments::new(&hdr, packet))
    {
        let bound = packet.len() / usize::from(hdr.gso_size).max(1) + 1;
        assert!(segments.count() <= bound);
        let mut buf = vec![0u8; 65 * 1024];
        while let Some(len) = segments.next_into(&mut buf) {
            assert!(len <= buf.len());
            packets.push(buf[..len].to_vec());
            assert!(packets.len() <= segments.count());
        }
        assert_eq!(packets.len(), segments.count());
    }
    packets.push(packet.to_vec());
    for udp in [false, true] {
        coalesce_checked(Coalescer::with_udp(3, udp), &packets);
    }
}

/// Pushes `packets` through `coalescer` (draining when full) and checks every write it makes.
fn coalesce_checked(mut coalescer: crate::io::offload::Coalescer, packets: &[Vec<u8>]) {
    use crate::io::offload::{GsoType, Push, Segments, VNET_HDR_LEN, VnetHdr};
    let udp = coalescer.merges_udp();
    let mut check_write = |bytes: &[u8]| {
        assert!(bytes.len() <= VNET_HDR_LEN + 65535);
        let hdr = VnetHdr::parse(bytes).expect("we write valid headers");
        let packet = bytes.get(VNET_HDR_LEN..).unwrap_or_default();
        let again = Segments::new(&hdr, packet);
        assert!(again.is_ok(), "{hdr:?}: {again:?}");
        if hdr.gso_type == GsoType::UdpL4 {
            assert!(udp, "GSO_UDP_L4 written with UDP coalescing off");
            assert!(again.is_ok_and(|s| s.count() <= 64));
        }
        Ok(())
    };
    for p in packets {
        if coalescer.push(p) == Push::Full {
            let _ = coalescer.drain(&mut check_write);
            assert_ne!(coalescer.push(p), Push::Full);
        }
    }
    let _ = coalescer.drain(&mut check_write);
    assert!(coalescer.is_empty());
}
