//! The UDP edge: one non-blocking socket, datagrams moved in batches ([`Batch`]) so that one
//! system call carries many. With offloads (Linux ≥ 4.18 for GSO, ≥ 5.0 for GRO; `udp(7)`):
//! - **send**: a run of equal-length datagrams to one address (the sealed segments of a TCP
//!   super-packet, or a burst of small packets) goes as one `sendmsg` with a `UDP_SEGMENT` control
//!   message; the kernel cuts it into datagrams, on the NIC where it can. Without GSO, `sendmmsg`.
//! - **receive**: with `UDP_GRO` on, the kernel may hand several datagrams from one sender back to
//!   back in one buffer, with their size in a `UDP_GRO` control message; [`Batch::segmented`]
//!   says where they are. `recvmmsg` either way.
//!
//! **Outer TOS** (DSCP and ECN of the outer IP header, RFC 2474 §3, RFC 3168 §5; carried per
//! RFC 6040 by `classes::ecn`): a datagram committed with [`Batch::commit_with_tos`] goes with an
//! `IP_TOS` (`ip(7)`) or `IPV6_TCLASS` (`ipv6(7)`) control message, chosen by the destination's
//! family (a dual-stack socket sends to IPv4 through the IPv4 path, which reads only `IP_TOS`).
//! TOS 0 goes without one, as before, so the default path is unchanged. Received datagrams report
//! theirs through [`Batch::tos`] (`IP_RECVTOS`, `IPV6_RECVTCLASS`); a coalesced run has one, as
//! GRO only merges datagrams whose TOS and Traffic Class are equal (Linux `include/net/gro.h`,
//! `inet_gro_flush`: "All fields must match except length and checksum", `ipv6_gro_flush`:
//! "Flush if Traffic Class fields are different").
//!
//! A kernel or device that refuses GSO (`EIO` where the NIC cannot checksum, `EINVAL`) turns it off
//! for the socket's life and the batch goes again with `sendmmsg`; the log says so once.
//! Buffers are preallocated once: nothing allocates per packet. With GRO the receive headers
//! are made afresh per `recvmmsg` (see [`Udp::recv_batch`]).

use std::io::{self, IoSlice, IoSliceMut};
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};

use nix::errno::Errno;
use nix::sys::socket::{
    ControlMessage, ControlMessageOwned, MsgFlags, MultiHeaders, SockaddrStorage, recvmmsg,
    sendmmsg, sendmsg, setsockopt, sockopt,
};
use tracing::warn;

pub use super::batch::Batch;

/// Datagrams per `recvmmsg`/`sendmmsg`.
pub const BATCH: usize = 32;
/// Socket send and receive buffer size asked for (wireguard-go asks for 7 MiB): bursts of a fast
/// sender must not overflow the default ~208 KiB while the loop is busy with the other direction.
pub const SOCKET_BUFFER: usize = 4 << 20;
/// Segments per `UDP_SEGMENT` send (`UDP_MAX_SEGMENTS` in the kernel, 64 before Linux 6.9).
pub const GSO_MAX_SEGMENTS: usize = 64;
/// Bytes per `UDP_SEGMENT` send: one UDP datagram's payload at most (65535 − IPv6 and UDP headers,
/// rounded down).
pub const GSO_MAX_BYTES: usize = 65_000;
/// A receive slot with `UDP_GRO`: the largest coalesced datagram.
pub const GRO_SLOT: usize = 65_535;

/// Control message room per received datagram: a `UDP_GRO` segment size and an `IP_TOS` (1 byte)
/// or `IPV6_TCLASS` (an int), never both for one datagram.
fn rx_cmsg_space() -> Vec<u8> {
    nix::cmsg_space!(i32, i32)
}

/// The UDP offloads in use.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct UdpOffloads {
    /// Segmentation on send (`UDP_SEGMENT`).
    pub gso: bool,
    /// Coalescing on receive (`UDP_GRO`).
    pub gro: bool,
}

impl UdpOffloads {
    /// The offloads in use, as the names `qgw status` and the log print.
    pub fn names(self) -> Vec<&'static str> {
        [(self.gso, "udp_gso"), (self.gro, "udp_gro")]
            .into_iter()
            .filter_map(|(on, name)| on.then_some(name))
            .collect()
    }
}

fn to_std(a: &SockaddrStorage) -> Option<SocketAddr> {
    if let Some(v4) = a.as_sockaddr_in() {
        return Some(SocketAddr::from((v4.ip(), v4.port())));
    }
    // A dual-stack socket reports IPv4 peers as `::ffff:a.b.c.d`; keep them IPv4 so endpoints
    // print and compare as configured (the socket sends to IPv4 addresses as well).
    a.as_sockaddr_in6()
        .map(|v6| match v6.ip().to_ipv4_mapped() {
            Some(v4) => SocketAddr::from((v4, v6.port())),
            None => SocketAddr::from((v6.ip(), v6.port())),
        })
}

/// A UDP socket with batched I/O.
#[derive(Debug)]
pub struct Udp {
    sock: UdpSocket,
    rx: MultiHeaders<SockaddrStorage>,
    tx: MultiHeaders<SockaddrStorage>,
    /// `sendmmsg` headers with room for one TOS control message, for runs with a TOS.
    tx_tos: MultiHeaders<SockaddrStorage>,
    offloads: UdpOffloads,
    /// Datagrams the kernel refused for want of send buffer (`EAGAIN`, `ENOBUFS`).
    send_dropped: u64,
}

impl Udp {
    /// Binds `addr` (e.g. `[::]:51820`, dual-stack), non-blocking; with `offload`, turns on what
    /// the kernel has of GSO and GRO.
    pub fn bind(addr: SocketAddr, offload: bool) -> io::Result<Self> {
        let sock = UdpSocket::bind(addr)?;
        sock.set_nonblocking(true)?;
        // The *Force variants pass the sysctl limits (root); otherwise the limit caps the size.
        if setsockopt(&sock, sockopt::RcvBufForce, &SOCKET_BUFFER).is_err() {
            let _ = setsockopt(&sock, sockopt::RcvBuf, &SOCKET_BUFFER);
        }
        if setsockopt(&sock, sockopt::SndBufForce, &SOCKET_BUFFER).is_err() {
            let _ = setsockopt(&sock, sockopt::SndBuf, &SOCKET_BUFFER);
        }
        let offloads = if offload {
            UdpOffloads {
                // A kernel that knows UDP_SEGMENT answers for it (0: no default segment size).
                gso: nix::sys::socket::getsockopt(&sock, sockopt::UdpGsoSegment).is_ok(),
                gro: setsockopt(&sock, sockopt::UdpGroSegment, &true).is_ok(),
            }
        } else {
            UdpOffloads::default()
        };
        // Report each datagram's TOS: IPv4 datagrams (also on a dual-stack socket) with IP_TOS,
        // IPv6 ones with IPV6_TCLASS. Without it, every datagram reads as TOS 0 (Not-ECT).
        let v4 = setsockopt(&sock, sockopt::IpRecvTos, &true);
        let v6 = match addr.is_ipv6() {
            true => setsockopt(&sock, sockopt::Ipv6RecvTClass, &true),
            false => Ok(()),
        };
        if let Err(e) = v4.and(v6) {
            warn!(error = %e, "cannot read the outer TOS of received datagrams (ECN marks are lost)");
        }
        Ok(Self {
            sock,
            rx: MultiHeaders::preallocate(BATCH, Some(rx_cmsg_space())),
            tx: MultiHeaders::preallocate(BATCH, None),
            tx_tos: MultiHeaders::preallocate(BATCH, Some(nix::cmsg_space!(i32))),
            offloads,
            send_dropped: 0,
        })
    }

    /// The bound address.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.sock.local_addr()
    }

    /// The offloads in use.
    pub fn offloads(&self) -> UdpOffloads {
        self.offloads
    }

    /// Datagrams dropped because the send buffer was full, since the socket was bound.
    pub fn send_dropped(&self) -> u64 {
        self.send_dropped
    }

    /// The receive slot size for datagrams of at most `largest` bytes: with GRO, room for the
    /// largest coalesced buffer.
    pub fn receive_slot(&self, largest: usize) -> usize {
        if self.offloads.gro {
            GRO_SLOT.max(largest)
        } else {
            largest
        }
    }

    /// Receives up to `BATCH` datagrams (or coalesced runs of them) into `batch` (cleared first);
    /// `WouldBlock` if none.
    pub fn recv_batch(&mut self, batch: &mut Batch) -> io::Result<usize> {
        batch.clear();
        let slot = batch.slot;
        let n_slots = batch.capacity().min(BATCH);
        let mut chunks = batch.buf.chunks_mut(slot);
        let mut iovs: [[IoSliceMut<'_>; 1]; BATCH] =
            std::array::from_fn(|_| [IoSliceMut::new(chunks.next().unwrap_or_default())]);
        if self.offloads.gro {
            // The kernel sets a message's control length to what it wrote and nix's headers keep
            // that value: a slot that once received an uncoalesced datagram (a TOS message only)
            // would never again be told a segment size. Fresh headers per call (one allocation
            // per system call, not per datagram) restore the full length. Without GRO every
            // datagram brings the same one TOS message (`IP_TOS` and `IPV6_TCLASS` both take
            // `CMSG_SPACE(4)`), so the length written back is the length the next one needs.
            self.rx = MultiHeaders::preallocate(BATCH, Some(rx_cmsg_space()));
        }
        let fd = self.sock.as_raw_fd();
        let res = recvmmsg(
            fd,
            &mut self.rx,
            iovs[..n_slots].iter_mut(),
            MsgFlags::MSG_DONTWAIT,
            None,
        )
        .map_err(io::Error::from)?;
        let mut n = 0;
        for msg in res {
            let (mut segment, mut tos) = (0, 0);
            if let Ok(cmsgs) = msg.cmsgs() {
                for c in cmsgs {
                    match c {
                        ControlMessageOwned::UdpGroSegments(size) => {
                            segment = usize::try_from(size).unwrap_or(0);
                        }
                        ControlMessageOwned::Ipv4Tos(t) => tos = t,
                        ControlMessageOwned::Ipv6TClass(t) => tos = u8::try_from(t).unwrap_or(0),
                        _ => {}
                    }
                }
            }
            batch.lens[n] = msg.bytes;
            batch.addrs[n] = msg.address.as_ref().and_then(to_std);
            batch.segments[n] = segment;
            batch.tos[n] = tos;
            n += 1;
        }
        batch.len = n;
        Ok(n)
    }

    /// Sends every datagram in `batch`: runs of them as `UDP_SEGMENT` sends with GSO, otherwise
    /// `sendmmsg`. Returns how many datagrams the kernel took.
    pub fn send_batch(&mut self, batch: &Batch) -> io::Result<usize> {
        if !self.offloads.gso {
            return self.send_each(batch, 0);
        }
        let mut sent = 0;
        let mut start = 0;
        while start < batch.len {
            let end = batch.gso_run(start, GSO_MAX_SEGMENTS, GSO_MAX_BYTES);
            match self.send_segmented(batch, start, end) {
                Ok(()) => sent += end - start,
                Err(Errno::EAGAIN | Errno::ENOBUFS) => self.send_dropped += (end - start) as u64,
                Err(e @ (Errno::EIO | Errno::EINVAL)) => {
                    warn!(error = %e, "UDP GSO refused; sending one datagram per message from now on");
                    self.offloads.gso = false;
                    return Ok(sent + self.send_each(batch, start)?);
                }
                Err(e) => return Err(e.into()),
            }
            start = end;
        }
        Ok(sent)
    }

    /// Datagrams `start..end` of `batch` as one `sendmsg`, segmented by the kernel.
    fn send_segmented(&self, batch: &Batch, start: usize, end: usize) -> Result<(), Errno> {
        let mut iov = [IoSlice::new(&[]); GSO_MAX_SEGMENTS];
        for (slot, i) in iov.iter_mut().zip(start..end) {
            *slot = IoSlice::new(batch.datagram(i).0);
        }
        let Some(to) = batch.addrs[start] else {
            return Ok(());
        };
        let size = u16::try_from(batch.lens[start]).map_err(|_| Errno::EINVAL)?;
        let (tos, tclass) = (batch.tos[start], i32::from(batch.tos[start]));
        let both = [
            ControlMessage::UdpGsoSegments(&size),
            tos_cmsg(&tos, &tclass, to),
        ];
        // One datagram needs no segmentation (and a segment size above its length is refused by
        // older kernels); TOS 0 needs no control message.
        let cmsgs: &[ControlMessage<'_>] = match (end - start > 1, tos != 0) {
            (true, true) => &both,
            (true, false) => &both[..1],
            (false, true) => &both[1..],
            (false, false) => &[],
        };
        let to = SockaddrStorage::from(to);
        let fd = self.sock.as_raw_fd();
        sendmsg(
            fd,
            &iov[..end - start],
            cmsgs,
            MsgFlags::MSG_DONTWAIT,
            Some(&to),
        )?;
        Ok(())
    }

    /// Datagrams `start..` of `batch` with `sendmmsg`, up to `BATCH` per call, a call per run of
    /// datagrams that share a TOS control message (nix gives every message of a call the same).
    fn send_each(&mut self, batch: &Batch, mut start: usize) -> io::Result<usize> {
        let mut sent = 0;
        while start < batch.len {
            let end = batch.tos_run(start, BATCH);
            let iovs: [[IoSlice<'_>; 1]; BATCH] = std::array::from_fn(|k| match start + k < end {
                true => [IoSlice::new(batch.datagram(start + k).0)],
                false => [IoSlice::new(&[])],
            });
            let addrs: [Option<SockaddrStorage>; BATCH] = std::array::from_fn(|k| {
                (start + k < end)
                    .then(|| batch.addrs[start + k].map(SockaddrStorage::from))
                    .flatten()
            });
            let (tos, tclass) = (batch.tos[start], i32::from(batch.tos[start]));
            let one = batch.addrs[start].map(|to| [tos_cmsg(&tos, &tclass, to)]);
            // The headers with control room only where a control message fills it exactly: the
            // kernel would read the rest of a larger room as a malformed message.
            let (headers, cmsgs): (_, &[ControlMessage<'_>]) = match &one {
                Some(one) if tos != 0 => (&mut self.tx_tos, one),
                _ => (&mut self.tx, &[]),
            };
            let fd = self.sock.as_raw_fd();
            let res = sendmmsg(
                fd,
                headers,
                iovs[..end - start].iter(),
                &addrs[..end - start],
                cmsgs,
                MsgFlags::MSG_DONTWAIT,
            );
            let taken = match res {
                Ok(r) => r.count(),
                Err(Errno::EAGAIN | Errno::ENOBUFS) => 0,
                Err(e) => return Err(e.into()),
            };
            sent += taken;
            // What the kernel did not take is lost, as on a congested link (never retried later,
            // behind newer packets).
            self.send_dropped += (end - start - taken) as u64;
            start = end;
        }
        Ok(sent)
    }

    /// Sends one datagram (handshakes, rare paths).
    pub fn send_to(&self, data: &[u8], to: SocketAddr) -> io::Result<usize> {
        self.sock.send_to(data, to)
    }
}

/// The control message that sends a datagram to `to` with TOS `tos` (`tclass` is the same value as
/// an int): `IP_TOS` for an IPv4 destination, `IPV6_TCLASS` for an IPv6 one (Linux reads each only
/// on its own family's send path, and a dual-stack socket sends to IPv4 through the IPv4 path).
fn tos_cmsg<'a>(tos: &'a u8, tclass: &'a i32, to: SocketAddr) -> ControlMessage<'a> {
    match Batch::sends_as_ipv4(to) {
        true => ControlMessage::Ipv4Tos(tos),
        false => ControlMessage::Ipv6TClass(tclass),
    }
}

impl AsFd for Udp {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.sock.as_fd()
    }
}

#[cfg(test)]
#[path = "udp_tests.rs"]
mod tests;
