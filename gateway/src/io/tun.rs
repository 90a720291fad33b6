//! The Linux TUN device (`Documentation/networking/tuntap.rst`): open `/dev/net/tun`, attach it to
//! an interface with the `TUNSETIFF` ioctl (`IFF_TUN | IFF_NO_PI`: bare IP packets), then read and
//! write whole packets.
//!
//! **Offloads.** Asked for, the device is opened with `IFF_VNET_HDR` and `TUNSETOFFLOAD` tells the
//! kernel what qgw finishes itself (`include/uapi/linux/if_tun.h`): checksums (`TUN_F_CSUM`), TCP
//! segmentation (`TUN_F_TSO4/6`) and, on Linux ≥ 6.2, UDP segmentation (`TUN_F_USO4/6`). Every read
//! and write then starts with a `struct virtio_net_hdr` ([`super::offload::vnet`]), and reads may be
//! TCP or UDP super-packets of up to 64 KiB that [`super::offload`] splits. Each feature falls back
//! on its own: without USO the kernel keeps segmenting UDP itself; if `TUNSETOFFLOAD` refuses TSO
//! or the header itself, the device is reopened as a plain one-packet-per-read TUN. The header is
//! little-endian, which is the native order where offloads are used (big-endian hosts do without).
//!
//! This is the one module where `unsafe` is allowed: `TUNSETIFF` and `TUNSETOFFLOAD` are ioctls,
//! which no safe wrapper in our dependencies covers. Each unsafe block is one call with a pointer
//! to a fully initialised value that outlives it, or an integer argument.
#![allow(unsafe_code)]

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::os::unix::fs::OpenOptionsExt;

/// What the kernel hands qgw already offloaded, as `TUNSETOFFLOAD` accepted it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TunOffloads {
    /// Reads and writes carry a `virtio_net_hdr` (required by every other field).
    pub vnet_hdr: bool,
    /// TCP super-packets (TSO over IPv4 and IPv6) and partial checksums.
    pub tso: bool,
    /// UDP super-packets (USO, Linux ≥ 6.2).
    pub uso: bool,
}

impl TunOffloads {
    /// The offloads in use, as the names `qgw status` and the log print.
    pub fn names(self) -> Vec<&'static str> {
        [
            (self.vnet_hdr, "tun_vnet_hdr"),
            (self.tso, "tun_tso"),
            (self.uso, "tun_uso"),
        ]
        .into_iter()
        .filter_map(|(on, name)| on.then_some(name))
        .collect()
    }
}

/// An open TUN interface. Closing it (drop) removes the interface unless it was made persistent.
#[derive(Debug)]
pub struct Tun {
    file: File,
    name: String,
    offloads: TunOffloads,
}

impl Tun {
    /// Creates (or attaches to) TUN interface `name`, non-blocking; with `offload`, with as many
    /// offloads as the kernel grants (see the module doc).
    pub fn open(name: &str, offload: bool) -> io::Result<Self> {
        if name.is_empty() || name.len() >= libc::IFNAMSIZ || !name.is_ascii() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "interface name must be 1-15 ASCII bytes",
            ));
        }
        if offload && cfg!(target_endian = "little") {
            let file = open_device(name, true)?;
            if let Some(offloads) = set_offload(&file) {
                return Ok(Self {
                    file,
                    name: name.to_owned(),
                    offloads,
                });
            }
            // Without TSO the header buys nothing: reopen as a plain device.
            drop(file);
        }
        Ok(Self {
            file: open_device(name, false)?,
            name: name.to_owned(),
            offloads: TunOffloads::default(),
        })
    }

    /// The interface name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The offloads in use.
    pub fn offloads(&self) -> TunOffloads {
        self.offloads
    }

    /// Reads one packet (with offloads, a `virtio_net_hdr` and a packet of up to 64 KiB);
    /// `WouldBlock` when none is waiting.
    pub fn recv(&self, buf: &mut [u8]) -> io::Result<usize> {
        (&self.file).read(buf)
    }

    /// Writes one packet (with offloads, preceded by its `virtio_net_hdr`).
    pub fn send(&self, packet: &[u8]) -> io::Result<usize> {
        (&self.file).write(packet)
    }
}

fn open_device(name: &str, vnet_hdr: bool) -> io::Result<File> {
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open("/dev/net/tun")?;
    // SAFETY: `ifreq` is plain old data; all-zero is a valid value.
    let mut ifr: libc::ifreq = unsafe { std::mem::zeroed() };
    for (dst, src) in ifr.ifr_name.iter_mut().zip(name.bytes()) {
        *dst = src as libc::c_char;
    }
    let mut flags = libc::IFF_TUN | libc::IFF_NO_PI;
    if vnet_hdr {
        flags |= libc::IFF_VNET_HDR;
    }
    // IFF_TUN | IFF_NO_PI | IFF_VNET_HDR all fit in a c_short (0x0001 | 0x1000 | 0x4000).
    ifr.ifr_ifru.ifru_flags = flags as libc::c_short;
    // SAFETY: `file` is an open /dev/net/tun descriptor and `ifr` is a valid, initialised
    // `ifreq` that lives across the call; TUNSETIFF reads and writes only that struct.
    let rc = unsafe {
        libc::ioctl(
            file.as_raw_fd(),
            libc::TUNSETIFF,
            &mut ifr as *mut libc::ifreq,
        )
    };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(file)
}

/// Asks for checksum, TSO and USO offload, then for checksum and TSO alone; `None` if the kernel
/// refuses both.
fn set_offload(file: &File) -> Option<TunOffloads> {
    let tso = libc::TUN_F_CSUM | libc::TUN_F_TSO4 | libc::TUN_F_TSO6;
    let uso = libc::TUN_F_USO4 | libc::TUN_F_USO6;
    for (flags, uso) in [(tso | uso, true), (tso, false)] {
        // SAFETY: TUNSETOFFLOAD takes its argument by value (an unsigned long of flags); `file`
        // is an open TUN descriptor attached with IFF_VNET_HDR.
        let rc = unsafe {
            libc::ioctl(
                file.as_raw_fd(),
                libc::TUNSETOFFLOAD,
                libc::c_ulong::from(flags),
            )
        };
        if rc == 0 {
            return Some(TunOffloads {
                vnet_hdr: true,
                tso: true,
                uso,
            });
        }
    }
    None
}

impl AsFd for Tun {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.file.as_fd()
    }
}
