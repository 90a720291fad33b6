//! The data path's cost per packet, for an instruction counter (`valgrind --tool=callgrind`):
//! two nodes (sites 1 and 2) complete a handshake, then MODE runs COUNT times.
//!
//!   packet_cost MODE COUNT
//!   seal      a 1420-byte IPv4 packet from TUN sealed by site 1 (`Node::handle_tun_packet`)
//!   seal-open the same, then opened by site 2 (`Node::handle_datagram`)
//!   tso-seal  a 64 KiB TCP super-packet as TUN hands it with offloads, cut into 1420-byte
//!             packets (`Segments`, checksums included) and each sealed; COUNT counts packets
//!   seal-open-gro  seal-open, then the opened packet pushed into the TCP coalescer (drained to a
//!             sink every 44 packets, as the daemon drains per receive batch)
//!
//! Instructions per packet = (total(COUNT2) − total(COUNT1)) / (COUNT2 − COUNT1), which cancels the
//! set-up; `gateway/bench/packet-cost.sh` runs it. Deterministic: keys, clock and packets are fixed.

use std::hint::black_box;
use std::time::Instant;

use gateway::io::offload::{Coalescer, GsoType, Segments, VNET_HDR_LEN, VnetHdr};
use gateway::node::testing::{Site, node, plain};
use gateway::node::{Node, Received};

const A: Site = Site(1);
const B: Site = Site(2);
const MTU: usize = 1420;
/// The TCP payload of one full-size IPv4 segment (1420 − 20 − 20).
const MSS: usize = MTU - 40;

/// Moves every datagram `from` has for `to` until neither has any.
fn pump(a: &mut Node, b: &mut Node, now: Instant) {
    let mut out = vec![0u8; 2048];
    for _ in 0..8 {
        let mut moved = false;
        while let Some(t) = a.poll_transmit(now, &mut out) {
            let _ = b.handle_datagram(now, A.addr(), &mut out[..t.len]);
            moved = true;
        }
        while let Some(t) = b.poll_transmit(now, &mut out) {
            let _ = a.handle_datagram(now, B.addr(), &mut out[..t.len]);
            moved = true;
        }
        if !moved {
            return;
        }
    }
}

/// An IPv4 + TCP header (checksums left to [`Segments`]) for `payload` bytes from site 1 to 2.
fn tcp_header(payload: usize) -> Vec<u8> {
    let mut h = vec![0u8; 40];
    h[0] = 0x45;
    h[2..4].copy_from_slice(&((40 + payload) as u16).to_be_bytes());
    h[6] = 0x40; // DF
    h[8] = 64;
    h[9] = 6;
    h[12..16].copy_from_slice(&A.ip(1));
    h[16..20].copy_from_slice(&B.ip(1));
    h[20..22].copy_from_slice(&40000u16.to_be_bytes());
    h[22..24].copy_from_slice(&5001u16.to_be_bytes());
    h[32] = 5 << 4;
    h[33] = 0x10; // ACK
    h
}

fn main() {
    let mut args = std::env::args().skip(1);
    let mode = args.next().unwrap_or_default();
    let count: usize = args.next().and_then(|c| c.parse().ok()).unwrap_or(1000);
    let now = Instant::now();
    let mut a = node(now, plain(A, &[B], false), 1);
    let mut b = node(now, plain(B, &[A], false), 2);

    let mut super_packet = vec![0u8; VNET_HDR_LEN];
    VnetHdr {
        flags: 1,
        gso_type: GsoType::TcpV4,
        ecn: false,
        hdr_len: 40,
        gso_size: MSS as u16,
        csum_start: 20,
        csum_offset: 16,
    }
    .write(
        (&mut super_packet[..VNET_HDR_LEN])
            .try_into()
            .unwrap_or(&mut [0; 10]),
    );
    super_packet.extend(tcp_header(44 * MSS));
    super_packet.resize(VNET_HDR_LEN + 40 + 44 * MSS, 0x5A);
    // Its 44 full-size segments (contiguous sequence numbers, valid checksums), the packets of
    // the per-packet modes.
    let mut buf = vec![0u8; MTU + 96];
    let hdr = VnetHdr::parse(&super_packet).unwrap_or(VnetHdr::NONE);
    let Ok(mut segments) = Segments::new(&hdr, &super_packet[VNET_HDR_LEN..]) else {
        panic!("the super-packet is refused");
    };
    let mut packets = Vec::new();
    while let Some(len) = segments.next_into(&mut buf) {
        packets.push(buf[..len].to_vec());
    }
    assert_eq!(packets.len(), 44);

    // The first packet is staged until the handshake completes.
    buf[16..16 + MTU].copy_from_slice(&packets[0]);
    let _ = a.handle_tun_packet(now, &mut buf, MTU);
    pump(&mut a, &mut b, now);

    let mut gro = Coalescer::new(64);
    let (mut sink, mut written) = (0usize, 0usize);

    let mut done = 0;
    while done < count {
        match mode.as_str() {
            "tso-seal" => {
                let hdr = VnetHdr::parse(&super_packet).unwrap_or(VnetHdr::NONE);
                let Ok(mut segments) = Segments::new(&hdr, &super_packet[VNET_HDR_LEN..]) else {
                    panic!("the super-packet is refused");
                };
                while done < count {
                    let Some(len) = segments.next_into(&mut buf[16..16 + MTU]) else {
                        break;
                    };
                    black_box(a.handle_tun_packet(now, &mut buf, len).ok());
                    done += 1;
                }
            }
            "seal" | "seal-open" | "seal-open-gro" => {
                buf[16..16 + MTU].copy_from_slice(&packets[done % 44]);
                let Ok(Some(t)) = a.handle_tun_packet(now, &mut buf, MTU) else {
                    panic!("no session");
                };
                if mode != "seal" {
                    let got = b.handle_datagram(now, A.addr(), &mut buf[..t.len]);
                    let Received::Packet { packet: range, .. } = got else {
                        panic!("not opened: {got:?}");
                    };
                    if mode == "seal-open-gro" {
                        black_box(gro.push(&buf[range]));
                        if done % 44 == 43 {
                            written += gro
                                .drain(|w| {
                                    sink += w.len();
                                    Ok(())
                                })
                                .written;
                        }
                    }
                }
                done += 1;
            }
            _ => {
                eprintln!("usage: packet_cost seal|seal-open|tso-seal|seal-open-gro COUNT");
                std::process::exit(2);
            }
        }
    }
    black_box(sink);
    // The coalescer merged each run of 44 segments into one write.
    assert!(
        mode != "seal-open-gro" || written <= count / 44 + 1,
        "{written} writes"
    );
}
