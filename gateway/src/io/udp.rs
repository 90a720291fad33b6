//! The UDP edge: one non-blocking socket, datagrams moved in batches ([`Batch`]) so that one
//! system call carries many. With offloads (Linux ≥ 4.18 for GSO, ≥ 5.0 for GRO; `udp(7)`):
//! - **send**: a run of equal-length datagrams to one address (the sealed segments of a TCP
//!   super-packet, or a burst of small packets) goes as one `sendmsg` with a `UDP_SEGMENT` control
//!   message; the kernel cuts it into datagrams, on the NIC where it can. Without GSO, `sendmmsg`.
//! - **receive**: with `UDP_GRO` on, the kernel may hand several datagrams from one sender back to
//!   back in one buffer, with their size in a `UDP_GRO` control message; [`Batch::segmented`]
//!   says where they are. `recvmmsg` either way.
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
        let cmsg = offloads.gro.then(|| nix::cmsg_space!(i32));
        Ok(Self {
            sock,
            rx: MultiHeaders::preallocate(BATCH, cmsg),
            tx: MultiHeaders::preallocate(BATCH, None),
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
            // The kernel sets a message's control length to what it wrote, 0 when it had no
            // control message, and nix's headers keep that value: a slot that once received an
            // uncoalesced datagram would never again be told a segment size. Fresh headers per
            // call (one allocation per system call, not per datagram) restore the full length.
            self.rx = MultiHeaders::preallocate(BATCH, Some(nix::cmsg_space!(i32)));
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
            let mut segment = 0;
            if let Ok(cmsgs) = msg.cmsgs() {
                for c in cmsgs {
                    if let ControlMessageOwned::UdpGroSegments(size) = c {
                        segment = usize::try_from(size).unwrap_or(0);
                    }
                }
            }
            batch.lens[n] = msg.bytes;
            batch.addrs[n] = msg.address.as_ref().and_then(to_std);
            batch.segments[n] = segment;
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
        let to = SockaddrStorage::from(to);
        let size = u16::try_from(batch.lens[start]).map_err(|_| Errno::EINVAL)?;
        let cmsg = [ControlMessage::UdpGsoSegments(&size)];
        // One datagram needs no segmentation (and a segment size above its length is refused by
        // older kernels).
        let cmsgs: &[ControlMessage<'_>] = if end - start > 1 { &cmsg } else { &[] };
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

    /// Datagrams `start..` of `batch` with `sendmmsg`, up to `BATCH` per call.
    fn send_each(&mut self, batch: &Batch, mut start: usize) -> io::Result<usize> {
        let mut sent = 0;
        while start < batch.len {
            let end = batch.len.min(start + BATCH);
            let iovs: [[IoSlice<'_>; 1]; BATCH] = std::array::from_fn(|k| match start + k < end {
                true => [IoSlice::new(batch.datagram(start + k).0)],
                false => [IoSlice::new(&[])],
            });
            let addrs: [Option<SockaddrStorage>; BATCH] = std::array::from_fn(|k| {
                (start + k < end)
                    .then(|| batch.addrs[start + k].map(SockaddrStorage::from))
                    .flatten()
            });
            let fd = self.sock.as_raw_fd();
            let res = sendmmsg(
                fd,
                &mut self.tx,
                iovs[..end - start].iter(),
                &addrs[..end - start],
                [],
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

impl AsFd for Udp {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.sock.as_fd()
    }
}

#[cfg(test)]
#[path = "udp_tests.rs"]
mod tests;
