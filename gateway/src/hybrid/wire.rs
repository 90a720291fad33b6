//! Hybrid datagrams: the fragment header, its MAC, splitting a message into fragments
//! (docs/protocol.md §4). Parsing never panics and never allocates; the MAC is checked in
//! constant time before anything else looks at the payload.

use std::sync::Arc;

use super::HybridDrop;
use super::constants::{
    FRAGMENT_PAYLOAD, HEADER_LEN, MAC_LEN, MAX_DATAGRAM, MAX_FRAGMENTS, MESSAGE_TYPE, MIN_DATAGRAM,
    VERSION,
};
use super::pair::PairKeys;

/// One hybrid datagram as sent: immutable and shared, so a message kept for retransmission
/// (the master's Init, the slave's cached answer) is queued again without copying.
pub type Datagram = Arc<[u8]>;

/// What a hybrid message is (§4 `kind`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Kind {
    /// Master → slave: ML-KEM key, QKD key IDs, signature (§5.1).
    Init,
    /// Slave → master: ciphertext, confirmation, signature (§5.2).
    Response,
    /// Slave → master: please start an epoch (§5.3).
    EpochRequest,
    /// Slave → master: refusal with a reason, signed (§5.4).
    Reject,
}

impl Kind {
    fn from_byte(byte: u8) -> Option<Self> {
        Some(match byte {
            1 => Self::Init,
            2 => Self::Response,
            3 => Self::EpochRequest,
            4 => Self::Reject,
            _ => return None,
        })
    }

    fn byte(self) -> u8 {
        match self {
            Self::Init => 1,
            Self::Response => 2,
            Self::EpochRequest => 3,
            Self::Reject => 4,
        }
    }
}

/// A parsed fragment header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    /// Message kind.
    pub kind: Kind,
    /// 0-based fragment index.
    pub index: u8,
    /// Fragments in the message.
    pub count: u8,
    /// Locates the peer pair.
    pub pair_id: [u8; 8],
    /// The exchange this message belongs to (zero for EpochRequest).
    pub exchange_id: u64,
}

/// A fragment whose header is well formed; its MAC is not yet checked.
#[derive(Debug)]
pub struct Fragment<'a> {
    /// The header.
    pub header: Header,
    /// The payload bytes.
    pub payload: &'a [u8],
    authenticated: &'a [u8],
    mac: &'a [u8],
}

/// Whether `datagram` is a hybrid message (first byte), for the interface's dispatch.
pub fn is_hybrid(datagram: &[u8]) -> bool {
    datagram.first() == Some(&MESSAGE_TYPE)
}

/// Checks the header's shape (§4 step 1). No secret is needed.
pub fn parse(datagram: &[u8]) -> Result<Fragment<'_>, HybridDrop> {
    if !(MIN_DATAGRAM..=MAX_DATAGRAM).contains(&datagram.len()) {
        return Err(HybridDrop::Malformed);
    }
    let (authenticated, mac) = datagram.split_at(datagram.len() - MAC_LEN);
    let (head, payload) = authenticated.split_at(HEADER_LEN);
    let kind = Kind::from_byte(head[2]).ok_or(HybridDrop::Malformed)?;
    let (index, count) = (head[3], head[4]);
    let shape_ok = head[0] == MESSAGE_TYPE
        && head[1] == VERSION
        && head[5..8] == [0, 0, 0]
        && index < count
        && usize::from(count) <= MAX_FRAGMENTS
        && (index + 1 == count || payload.len() == FRAGMENT_PAYLOAD);
    if !shape_ok {
        return Err(HybridDrop::Malformed);
    }
    let mut pair_id = [0u8; 8];
    pair_id.copy_from_slice(&head[8..16]);
    let mut exchange = [0u8; 8];
    exchange.copy_from_slice(&head[16..24]);
    Ok(Fragment {
        header: Header {
            kind,
            index,
            count,
            pair_id,
            exchange_id: u64::from_le_bytes(exchange),
        },
        payload,
        authenticated,
        mac,
    })
}

impl Fragment<'_> {
    /// §4 step 3: the MAC under `K_pair`, compared in constant time.
    pub fn verify(&self, keys: &PairKeys) -> Result<(), HybridDrop> {
        if keymix::ct_eq(&keys.mac(&[self.authenticated]), self.mac) {
            Ok(())
        } else {
            Err(HybridDrop::BadMac)
        }
    }
}

/// Splits `body` into MAC'd datagrams (§4): every fragment but the last carries exactly
/// [`FRAGMENT_PAYLOAD`] bytes. `body` must fit in [`MAX_FRAGMENTS`] fragments (our own messages
/// always do; the caller builds them).
pub fn fragment(keys: &PairKeys, kind: Kind, exchange_id: u64, body: &[u8]) -> Vec<Datagram> {
    let chunks: Vec<&[u8]> = body.chunks(FRAGMENT_PAYLOAD).collect();
    debug_assert!(!chunks.is_empty() && chunks.len() <= MAX_FRAGMENTS);
    let count = u8::try_from(chunks.len()).unwrap_or(u8::MAX);
    chunks
        .iter()
        .enumerate()
        .map(|(index, chunk)| {
            let mut datagram = Vec::with_capacity(HEADER_LEN + chunk.len() + MAC_LEN);
            datagram.extend_from_slice(&[MESSAGE_TYPE, VERSION, kind.byte()]);
            datagram.push(u8::try_from(index).unwrap_or(u8::MAX));
            datagram.extend_from_slice(&[count, 0, 0, 0]);
            datagram.extend_from_slice(keys.pair_id());
            datagram.extend_from_slice(&exchange_id.to_le_bytes());
            datagram.extend_from_slice(chunk);
            let mac = keys.mac(&[&datagram]);
            datagram.extend_from_slice(&mac);
            Datagram::from(datagram)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use x25519_dalek::{PublicKey, StaticSecret};

    fn keys() -> PairKeys {
        let b = PublicKey::from(&StaticSecret::from([2u8; 32])).to_bytes();
        PairKeys::derive(&StaticSecret::from([1u8; 32]), &b).expect("valid")
    }

    #[test]
    fn fragments_round_trip_and_every_bit_is_authenticated() {
        let keys = keys();
        let body: Vec<u8> = (0..3000).map(|i| i as u8).collect();
        let datagrams = fragment(&keys, Kind::Init, 77, &body);
        assert_eq!(datagrams.len(), 3);
        assert!(datagrams.iter().all(|d| d.len() <= MAX_DATAGRAM));
        for d in &datagrams {
            let f = parse(d).expect("well formed");
            assert_eq!(f.header.exchange_id, 77);
            assert!(f.verify(&keys).is_ok());
            for bit in [0usize, 8 * 20, 8 * 100, 8 * (d.len() - 1)] {
                let mut t = d.to_vec();
                t[bit / 8] ^= 1 << (bit % 8);
                let rejected = parse(&t).and_then(|f| f.verify(&keys));
                assert!(rejected.is_err(), "bit {bit} flipped still verifies");
            }
        }
    }

    #[test]
    fn malformed_headers_are_refused() {
        let keys = keys();
        let d = fragment(&keys, Kind::Response, 1, &[7u8; 10])
            .remove(0)
            .to_vec();
        for (offset, value) in [
            (0usize, 0x52u8),
            (1, 2),
            (2, 9),
            (3, 1),
            (4, 0),
            (4, 9),
            (5, 1),
        ] {
            let mut t = d.clone();
            t[offset] = value;
            assert!(
                matches!(parse(&t), Err(HybridDrop::Malformed)),
                "offset {offset}"
            );
        }
        assert!(parse(&d[..MIN_DATAGRAM - 1]).is_err());
        assert!(parse(&vec![MESSAGE_TYPE; MAX_DATAGRAM + 1]).is_err());
    }
}
