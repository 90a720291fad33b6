//! Requests for this site's KME and their replies, as values (ETSI GS QKD 014 §5.2 "Get key" for
//! the master, §5.3 "Get key with key IDs" for the slave). The node never waits for a KME: the
//! driver carries each [`KmeRequest`] out off the packet path and hands the answer back with
//! [`Node::handle_kme_reply`] (docs/protocol.md §7).

use std::time::Instant;

use keymix::KeyId;
use qkd_link::SaeId;

use super::{Node, PeerId};
use crate::hybrid::{Prefetched, QkdResult, RequestId};

/// One of this site's KMEs: its position in the top-level `qkd:` (the single-KME form is
/// [`KmeId::FIRST`], named `kme`). Each has its own mutual-TLS client (docs/protocol.md §6.3).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct KmeId(u8);

impl KmeId {
    /// The first (with the single-KME form, the only) KME.
    pub const FIRST: Self = Self(0);

    /// The KME at position `i` of `qkd.kmes` (at most [`crate::hybrid::MAX_KMES`]).
    pub fn new(i: usize) -> Option<Self> {
        u8::try_from(i)
            .ok()
            .filter(|_| i < crate::hybrid::MAX_KMES)
            .map(Self)
    }

    /// The position in `qkd.kmes`.
    pub fn index(self) -> usize {
        usize::from(self.0)
    }
}

/// What to ask the KME.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KmeOp {
    /// Master: one fresh key shared with the slave's SAE (`enc_keys`, or a prefetched key).
    Fetch {
        /// The peer gateway's SAE ID.
        slave: SaeId,
        /// Whether a prefetched key may serve.
        prefetched: Prefetched,
    },
    /// Slave: the keys the master fetched (`dec_keys`).
    Resolve {
        /// The peer gateway's SAE ID.
        master: SaeId,
        /// The key IDs from the master's Init.
        key_ids: Vec<KeyId>,
    },
}

/// A request for the site's KME on behalf of one peer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KmeRequest {
    /// The peer whose exchange needs it.
    pub peer: PeerId,
    /// Echo this in the [`KmeReply`].
    pub id: RequestId,
    /// Which of this site's KMEs to ask (the peer's QKD source names it).
    pub kme: KmeId,
    /// What to ask.
    pub op: KmeOp,
}

/// The KME's answer to a [`KmeRequest`].
#[derive(Debug)]
pub struct KmeReply {
    /// The request's peer.
    pub peer: PeerId,
    /// The request's id.
    pub id: RequestId,
    /// The key material (key IDs and bytes), or why there is none.
    pub result: QkdResult,
}

impl KmeRequest {
    /// The reply to this request.
    pub fn reply(&self, result: QkdResult) -> KmeReply {
        KmeReply {
            peer: self.peer,
            id: self.id,
            result,
        }
    }
}

impl Node {
    /// Delivers the KME's answer. A reply nobody waits for any more (the exchange moved on or
    /// gave up) is dropped, and its key with it (zeroized).
    pub fn handle_kme_reply(&mut self, now: Instant, reply: KmeReply) {
        let KmeReply { peer, id, result } = reply;
        let Some(hybrid) = self.peers.get_mut(peer).and_then(|p| p.hybrid.as_mut()) else {
            return;
        };
        hybrid.handle_qkd_result(now, id, result);
        self.settle(now, peer);
    }
}
