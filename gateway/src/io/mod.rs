//! The I/O edge: the TUN device and the UDP socket. The protocol core ([`crate::proto`]) never sees
//! these; the daemon's event loop moves bytes between them and the core.

pub mod batch;
pub mod notify;
pub mod offload;
pub mod tun;
pub mod udp;
