//! Where a peer is: the endpoint its datagrams go to, and roaming (whitepaper §2.1: the endpoint
//! follows the source address of authenticated packets).
//!
//! A MAC or an AEAD tag proves who made a datagram, not who sent it: an on-path attacker can
//! forward a genuine datagram from another address ahead of the original (or replay a recorded
//! one that is still fresh to a receiver that just restarted). If one such datagram moved the
//! endpoint, as it does in wireguard-go, both sides of a hybrid pair — whose slave never
//! initiates — could end up sending to addresses where nobody listens, with nothing left to bring
//! them back. So a new address becomes the endpoint only once **two** fresh authenticated
//! messages came from it without one from the current endpoint in between (each message counts
//! once: replay windows, timestamps and consumed handshakes see to that). A peer that really
//! moved sends many; an attacker would have to relay the peer's traffic, which is being the path
//! and no more than it could do by dropping. An endpoint from the configuration (or the first one
//! learned) is taken at once.

use std::net::SocketAddr;

/// A peer's endpoint and the address it may be roaming to.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Endpoint {
    current: Option<SocketAddr>,
    candidate: Option<SocketAddr>,
}

impl Endpoint {
    /// Where datagrams go.
    pub fn get(&self) -> Option<SocketAddr> {
        self.current
    }

    /// Sets it (configuration, `wg set … endpoint`).
    pub fn set(&mut self, addr: SocketAddr) {
        self.current = Some(addr);
        self.candidate = None;
    }

    /// A fresh, authenticated message came from `from`; whether the endpoint moved.
    pub fn observe(&mut self, from: SocketAddr) -> bool {
        match self.current {
            Some(current) if current == from => {
                self.candidate = None;
                false
            }
            Some(_) if self.candidate != Some(from) => {
                self.candidate = Some(from);
                false
            }
            _ => {
                self.set(from);
                true
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(port: u16) -> SocketAddr {
        SocketAddr::from(([192, 0, 2, 1], port))
    }

    #[test]
    fn the_first_address_is_taken_and_a_new_one_needs_two_messages() {
        let mut e = Endpoint::default();
        assert!(e.observe(addr(1)), "nothing known yet: at once");
        assert!(!e.observe(addr(2)), "one message from elsewhere");
        assert_eq!(e.get(), Some(addr(1)));
        assert!(e.observe(addr(2)), "a second one: the peer moved");
        assert_eq!(e.get(), Some(addr(2)));
    }

    #[test]
    fn single_messages_from_many_addresses_or_interleaved_move_nothing() {
        let mut e = Endpoint::default();
        e.set(addr(1));
        for port in 100..200 {
            assert!(!e.observe(addr(port)));
            assert!(!e.observe(addr(1)), "the peer itself in between");
        }
        for port in 300..400 {
            assert!(!e.observe(addr(port)), "a new address each time");
        }
        assert_eq!(e.get(), Some(addr(1)));
        e.set(addr(7));
        assert!(!e.observe(addr(399)), "configuration clears a candidate");
        assert_eq!(e.get(), Some(addr(7)));
    }
}
