//! The UDP edge: one non-blocking socket, datagrams moved in batches with `recvmmsg`/`sendmmsg`
//! (one system call per batch instead of per packet; UDP GSO/GRO can later replace the batch with
//! segments without changing callers). Buffers are preallocated once: nothing allocates per packet.

use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};

use nix::sys::socket::{MsgFlags, MultiHeaders, SockaddrStorage, recvmmsg, sendmmsg};

/// Datagrams per system call.
pub const BATCH: usize = 32;
/// Socket send and receive buffer size asked for (wireguard-go asks for 7 MiB): bursts of a fast
/// sender must not overflow the default ~208 KiB while the loop is busy with the other direction.
pub const SOCKET_BUFFER: usize = 4 << 20;

/// A batch of datagram slots of `slot` bytes each, with their lengths and addresses.
#[derive(Debug)]
pub struct Batch {
    buf: Vec<u8>,
    slot: usize,
    lens: [usize; BATCH],
    addrs: [Option<SocketAddr>; BATCH],
    len: usize,
}

impl Batch {
    /// `BATCH` slots of `slot` bytes.
    pub fn new(slot: usize) -> Self {
        Self {
            buf: vec![0; slot * BATCH],
            slot,
            lens: [0; BATCH],
            addrs: [None; BATCH],
            len: 0,
        }
    }

    /// Slots in use.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether no slot is in use.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Whether every slot is in use.
    pub fn is_full(&self) -> bool {
        self.len == BATCH
    }

    /// Empties the batch.
    pub fn clear(&mut self) {
        self.len = 0;
    }

    /// Slot `i`'s buffer (full size) and address.
    pub fn slot_mut(&mut self, i: usize) -> (&mut [u8], Option<SocketAddr>) {
        let s = self.slot;
        (&mut self.buf[i * s..(i + 1) * s], self.addrs[i])
    }

    /// Slot `i`'s datagram.
    pub fn datagram(&self, i: usize) -> (&[u8], Option<SocketAddr>) {
        let s = self.slot;
        (&self.buf[i * s..i * s + self.lens[i]], self.addrs[i])
    }

    /// The next free slot's buffer, to fill and then [`Batch::commit`].
    pub fn next_slot(&mut self) -> Option<&mut [u8]> {
        let (i, s) = (self.len, self.slot);
        (i < BATCH).then(|| &mut self.buf[i * s..(i + 1) * s])
    }

    /// Marks the next slot as holding `len` bytes for `to`.
    pub fn commit(&mut self, len: usize, to: SocketAddr) {
        if self.len < BATCH {
            self.lens[self.len] = len.min(self.slot);
            self.addrs[self.len] = Some(to);
            self.len += 1;
        }
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
}

impl Udp {
    /// Binds `addr` (e.g. `[::]:51820`, dual-stack), non-blocking.
    pub fn bind(addr: SocketAddr) -> io::Result<Self> {
        let sock = UdpSocket::bind(addr)?;
        sock.set_nonblocking(true)?;
        // The *Force variants pass the sysctl limits (root); otherwise the limit caps the size.
        use nix::sys::socket::{setsockopt, sockopt};
        if setsockopt(&sock, sockopt::RcvBufForce, &SOCKET_BUFFER).is_err() {
            let _ = setsockopt(&sock, sockopt::RcvBuf, &SOCKET_BUFFER);
        }
        if setsockopt(&sock, sockopt::SndBufForce, &SOCKET_BUFFER).is_err() {
            let _ = setsockopt(&sock, sockopt::SndBuf, &SOCKET_BUFFER);
        }
        Ok(Self {
            sock,
            rx: MultiHeaders::preallocate(BATCH, None),
            tx: MultiHeaders::preallocate(BATCH, None),
        })
    }

    /// The bound address.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.sock.local_addr()
    }

    /// Receives up to `BATCH` datagrams into `batch` (cleared first); `WouldBlock` if none.
    pub fn recv_batch(&mut self, batch: &mut Batch) -> io::Result<usize> {
        batch.clear();
        let slot = batch.slot;
        let mut iovs: Vec<[io::IoSliceMut<'_>; 1]> = batch
            .buf
            .chunks_mut(slot)
            .map(|c| [io::IoSliceMut::new(c)])
            .collect();
        let fd = self.sock.as_raw_fd();
        let res = recvmmsg(
            fd,
            &mut self.rx,
            iovs.iter_mut(),
            MsgFlags::MSG_DONTWAIT,
            None,
        )
        .map_err(io::Error::from)?;
        let mut n = 0;
        for msg in res {
            batch.lens[n] = msg.bytes;
            batch.addrs[n] = msg.address.as_ref().and_then(to_std);
            n += 1;
        }
        batch.len = n;
        Ok(n)
    }

    /// Sends every datagram in `batch`; returns how many the kernel took.
    pub fn send_batch(&mut self, batch: &Batch) -> io::Result<usize> {
        let n = batch.len;
        if n == 0 {
            return Ok(0);
        }
        let iovs: Vec<[io::IoSlice<'_>; 1]> = (0..n)
            .map(|i| [io::IoSlice::new(batch.datagram(i).0)])
            .collect();
        let addrs: Vec<Option<SockaddrStorage>> = (0..n)
            .map(|i| batch.addrs[i].map(SockaddrStorage::from))
            .collect();
        let fd = self.sock.as_raw_fd();
        let res = sendmmsg(
            fd,
            &mut self.tx,
            iovs.iter(),
            addrs,
            [],
            MsgFlags::MSG_DONTWAIT,
        )
        .map_err(io::Error::from)?;
        Ok(res.count())
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
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn loopback_batch_round_trip() {
        let mut a = Udp::bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let mut b = Udp::bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let to = b.local_addr().unwrap();
        let mut tx = Batch::new(256);
        for i in 0..5u8 {
            let s = tx.next_slot().unwrap();
            s[..3].copy_from_slice(&[i, i, i]);
            tx.commit(3, to);
        }
        assert_eq!(a.send_batch(&tx).unwrap(), 5);
        let mut rx = Batch::new(256);
        let mut got = Vec::new();
        for _ in 0..1000 {
            match b.recv_batch(&mut rx) {
                Ok(n) => (0..n).for_each(|i| got.push(rx.datagram(i).0.to_vec())),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => std::thread::yield_now(),
                Err(e) => panic!("{e}"),
            }
            if got.len() == 5 {
                break;
            }
        }
        assert_eq!(got, (0..5u8).map(|i| vec![i, i, i]).collect::<Vec<_>>());
        assert_eq!(rx.datagram(0).1, Some(a.local_addr().unwrap()));
    }
}
