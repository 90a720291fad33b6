//! Wire formats of the four WireGuard messages (whitepaper §5.4.2 initiation, §5.4.3 response,
//! §5.4.7 cookie reply, §5.4.6 transport data), as zerocopy structs with explicit little-endian
//! fields and compile-time size checks.
//!
//! Untrusted bytes enter only through [`Message::parse`], which checks the length and the reserved
//! bytes before any field is read; after that no accessor can panic.

use zerocopy::little_endian::{U32, U64};
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout, Unaligned};

use super::constants::{
    COOKIE_REPLY_LEN, INITIATION_LEN, KEY_LEN, MAC_LEN, MSG_COOKIE_REPLY, MSG_INITIATION,
    MSG_RESPONSE, MSG_TRANSPORT, RESPONSE_LEN, TAG_LEN, TIMESTAMP_LEN, TRANSPORT_HEADER_LEN,
    TRANSPORT_MIN_LEN, XNONCE_LEN,
};
use crate::error::DropReason;

/// First four bytes of every message: a type byte and three reserved zero bytes (§5.4.2).
#[repr(C)]
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned,
)]
pub struct Header {
    /// Message type (1–4).
    pub msg_type: u8,
    /// Must be zero.
    pub reserved: [u8; 3],
}

impl Header {
    /// The header of a message of type `t`.
    pub const fn new(t: u8) -> Self {
        Self {
            msg_type: t,
            reserved: [0; 3],
        }
    }
}

/// Handshake initiation (§5.4.2): `type=1, sender, e, {s}, {timestamp}, mac1, mac2`.
#[repr(C)]
#[derive(Debug, Clone, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
pub struct Initiation {
    /// Type 1 and reserved zeros.
    pub header: Header,
    /// The initiator's session index `I_i`.
    pub sender: U32,
    /// The initiator's ephemeral public key (token `e`).
    pub ephemeral: [u8; KEY_LEN],
    /// The initiator's static public key, sealed (token `s`).
    pub encrypted_static: [u8; KEY_LEN + TAG_LEN],
    /// TAI64N timestamp, sealed.
    pub encrypted_timestamp: [u8; TIMESTAMP_LEN + TAG_LEN],
    /// `MAC(HASH(LABEL_MAC1 || S_r), msg_alpha)`.
    pub mac1: [u8; MAC_LEN],
    /// `MAC(cookie, msg_beta)` or zeros.
    pub mac2: [u8; MAC_LEN],
}

/// Handshake response (§5.4.3): `type=2, sender, receiver, e, {}, mac1, mac2`.
#[repr(C)]
#[derive(Debug, Clone, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
pub struct Response {
    /// Type 2 and reserved zeros.
    pub header: Header,
    /// The responder's session index `I_r`.
    pub sender: U32,
    /// The initiator's session index `I_i`.
    pub receiver: U32,
    /// The responder's ephemeral public key (token `e`).
    pub ephemeral: [u8; KEY_LEN],
    /// The empty payload, sealed (authenticates the whole handshake incl. `psk`).
    pub encrypted_nothing: [u8; TAG_LEN],
    /// As in [`Initiation::mac1`].
    pub mac1: [u8; MAC_LEN],
    /// As in [`Initiation::mac2`].
    pub mac2: [u8; MAC_LEN],
}

/// Cookie reply (§5.4.7): `type=3, receiver, nonce, {cookie}`.
#[repr(C)]
#[derive(Debug, Clone, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
pub struct CookieReply {
    /// Type 3 and reserved zeros.
    pub header: Header,
    /// The sender index of the handshake message this answers.
    pub receiver: U32,
    /// Random XChaCha20 nonce.
    pub nonce: [u8; XNONCE_LEN],
    /// The cookie, sealed with the mac1 of the message this answers as AAD.
    pub encrypted_cookie: [u8; MAC_LEN + TAG_LEN],
}

/// Transport data header (§5.4.6): `type=4, receiver, counter`, followed by the sealed packet.
#[repr(C)]
#[derive(Debug, Clone, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
pub struct TransportHeader {
    /// Type 4 and reserved zeros.
    pub header: Header,
    /// The receiver's session index.
    pub receiver: U32,
    /// The nonce counter.
    pub counter: U64,
}

const _: () = assert!(size_of::<Initiation>() == INITIATION_LEN && INITIATION_LEN == 148);
const _: () = assert!(size_of::<Response>() == RESPONSE_LEN && RESPONSE_LEN == 92);
const _: () = assert!(size_of::<CookieReply>() == COOKIE_REPLY_LEN && COOKIE_REPLY_LEN == 64);
const _: () = assert!(size_of::<TransportHeader>() == TRANSPORT_HEADER_LEN);

/// A parsed datagram, borrowing the caller's buffer.
#[derive(Debug)]
pub enum Message<'a> {
    /// Type 1.
    Initiation(&'a Initiation),
    /// Type 2.
    Response(&'a Response),
    /// Type 3.
    CookieReply(&'a CookieReply),
    /// Type 4: header and `encrypted_encapsulated_packet` (ciphertext including its tag).
    Transport(&'a TransportHeader, &'a [u8]),
}

impl<'a> Message<'a> {
    /// Parses `datagram`. Checks length, type and reserved bytes; never panics.
    pub fn parse(datagram: &'a [u8]) -> Result<Self, DropReason> {
        let (header, _) = Header::ref_from_prefix(datagram).map_err(|_| DropReason::Malformed)?;
        if header.reserved != [0; 3] {
            return Err(DropReason::Malformed);
        }
        let m = match header.msg_type {
            MSG_INITIATION => Self::Initiation(exact(datagram)?),
            MSG_RESPONSE => Self::Response(exact(datagram)?),
            MSG_COOKIE_REPLY => Self::CookieReply(exact(datagram)?),
            MSG_TRANSPORT if datagram.len() >= TRANSPORT_MIN_LEN => {
                let (h, rest) = TransportHeader::ref_from_prefix(datagram)
                    .map_err(|_| DropReason::Malformed)?;
                Self::Transport(h, rest)
            }
            _ => return Err(DropReason::Malformed),
        };
        Ok(m)
    }

    /// The type byte of a datagram that parsed.
    pub fn msg_type(&self) -> u8 {
        match self {
            Self::Initiation(_) => MSG_INITIATION,
            Self::Response(_) => MSG_RESPONSE,
            Self::CookieReply(_) => MSG_COOKIE_REPLY,
            Self::Transport(..) => MSG_TRANSPORT,
        }
    }
}

fn exact<T: FromBytes + KnownLayout + Immutable>(b: &[u8]) -> Result<&T, DropReason> {
    T::ref_from_bytes(b).map_err(|_| DropReason::Malformed)
}

/// Messages that carry mac1 and mac2 as their last 32 bytes (§5.4.4).
pub trait MacProtected: IntoBytes + Immutable {
    /// `msg_alpha`: the bytes mac1 covers (everything before mac1).
    fn mac1_input(&self) -> &[u8] {
        let b = self.as_bytes();
        &b[..b.len() - 2 * MAC_LEN]
    }
    /// `msg_beta`: the bytes mac2 covers (everything before mac2).
    fn mac2_input(&self) -> &[u8] {
        let b = self.as_bytes();
        &b[..b.len() - MAC_LEN]
    }
    /// The mac1 field.
    fn mac1(&self) -> &[u8; MAC_LEN];
    /// The mac2 field.
    fn mac2(&self) -> &[u8; MAC_LEN];
    /// The sender index (the receiver of a cookie reply to this message).
    fn sender(&self) -> u32;
}

impl MacProtected for Initiation {
    fn mac1(&self) -> &[u8; MAC_LEN] {
        &self.mac1
    }
    fn mac2(&self) -> &[u8; MAC_LEN] {
        &self.mac2
    }
    fn sender(&self) -> u32 {
        self.sender.get()
    }
}

impl MacProtected for Response {
    fn mac1(&self) -> &[u8; MAC_LEN] {
        &self.mac1
    }
    fn mac2(&self) -> &[u8; MAC_LEN] {
        &self.mac2
    }
    fn sender(&self) -> u32 {
        self.sender.get()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn exact_sizes_parse_and_others_do_not() {
        for (t, len) in [(1u8, 148usize), (2, 92), (3, 64)] {
            let mut b = vec![0u8; len];
            b[0] = t;
            assert_eq!(Message::parse(&b).map(|m| m.msg_type()), Ok(t));
            b.push(0);
            assert_eq!(
                Message::parse(&b).map(|m| m.msg_type()),
                Err(DropReason::Malformed)
            );
            b.truncate(len - 1);
            assert_eq!(
                Message::parse(&b).map(|m| m.msg_type()),
                Err(DropReason::Malformed)
            );
        }
    }

    #[test]
    fn transport_needs_header_and_tag() {
        let mut b = vec![0u8; TRANSPORT_MIN_LEN - 1];
        b[0] = 4;
        assert!(Message::parse(&b).is_err());
        b.push(0);
        b[8] = 7;
        match Message::parse(&b) {
            Ok(Message::Transport(h, rest)) => {
                assert_eq!(h.counter.get(), 7);
                assert_eq!(rest.len(), TAG_LEN);
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn reserved_bytes_and_unknown_types_are_rejected() {
        let mut b = vec![0u8; 148];
        b[0] = 1;
        b[2] = 1;
        assert_eq!(
            Message::parse(&b).map(|m| m.msg_type()),
            Err(DropReason::Malformed)
        );
        for t in [0u8, 5, 255] {
            let mut b = vec![0u8; 148];
            b[0] = t;
            assert_eq!(
                Message::parse(&b).map(|m| m.msg_type()),
                Err(DropReason::Malformed)
            );
        }
        assert!(Message::parse(&[]).is_err());
        assert!(Message::parse(&[1, 0, 0]).is_err());
    }

    #[test]
    fn mac_regions_cover_the_right_bytes() {
        let mut b = [0u8; 148];
        b[0] = 1;
        let m = Initiation::ref_from_bytes(&b[..]).expect("148 bytes");
        assert_eq!(m.mac1_input().len(), 116);
        assert_eq!(m.mac2_input().len(), 132);
    }

    proptest! {
        #[test]
        fn parse_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            let _ = Message::parse(&bytes);
        }

        #[test]
        fn parse_never_panics_on_plausible_headers(t in 0u8..6, len in 0usize..200, fill in any::<u8>()) {
            let mut b = vec![fill; len];
            if let Some(x) = b.first_mut() { *x = t; }
            for r in b.iter_mut().skip(1).take(3) { *r = 0; }
            if let Ok(m) = Message::parse(&b) {
                prop_assert_eq!(m.msg_type(), t);
            }
        }
    }
}
