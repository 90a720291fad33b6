//! Which preshared key keys a peer's next handshake (whitepaper §5.4.3: `Q`, mixed last with the
//! `psk` token, all zero when a peer has none) and who may start one (docs/protocol.md §2, §8).
//!
//! A plain peer keys every handshake with its configured PSK. A hybrid peer keys each handshake
//! with a fresh PSK made by the hybrid key agreement for one epoch, identified by a [`PskId`]
//! unique per installed key; once a session keyed by it is confirmed, that PSK is erased, so it
//! keys exactly one session and a hybrid peer never has a session without a hybrid PSK.

use std::num::NonZeroU64;

use super::secret::Psk;

/// Names one installed hybrid PSK; unique per peer for the life of the process (never the epoch
/// number, which a ratchet reset starts again at 1).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PskId(NonZeroU64);

impl PskId {
    /// The first id a peer hands out.
    pub const FIRST: Self = Self(NonZeroU64::MIN);

    /// The id after this one.
    pub fn next(self) -> Self {
        Self(self.0.saturating_add(1))
    }

    /// The number (logs).
    pub fn get(self) -> u64 {
        self.0.get()
    }
}

/// A PSK the hybrid key agreement made for one epoch.
#[derive(Debug)]
pub struct HybridPsk {
    /// The key (zeroized on drop).
    pub psk: Psk,
    /// Its id.
    pub id: PskId,
}

/// Where the PSK of a peer's next handshake comes from, and who may start a handshake.
#[derive(Debug)]
pub enum Keying {
    /// Plain WireGuard: every handshake, in either role, uses this PSK.
    Static(Psk),
    /// Hybrid master: initiates only with a fresh hybrid PSK; otherwise asks for an epoch.
    HybridMaster(Option<HybridPsk>),
    /// Hybrid slave: never initiates; answers only with a fresh hybrid PSK.
    HybridSlave(Option<HybridPsk>),
}

impl Default for Keying {
    fn default() -> Self {
        Self::Static(Psk::zero())
    }
}

impl Keying {
    /// The PSK (and its id, for hybrid keys) the next handshake would use; `None` for a hybrid
    /// peer without a fresh PSK (no handshake may be made then).
    pub fn for_next_handshake(&self) -> Option<(&Psk, Option<PskId>)> {
        match self {
            Self::Static(psk) => Some((psk, None)),
            Self::HybridMaster(Some(h)) | Self::HybridSlave(Some(h)) => Some((&h.psk, Some(h.id))),
            Self::HybridMaster(None) | Self::HybridSlave(None) => None,
        }
    }

    /// Whether this side may initiate now.
    pub fn may_initiate(&self) -> bool {
        matches!(self, Self::Static(_) | Self::HybridMaster(Some(_)))
    }

    /// Whether an initiation from the peer may be answered now.
    pub fn may_answer(&self) -> bool {
        self.for_next_handshake().is_some()
    }

    /// Whether the hybrid key agreement supplies the PSKs.
    pub fn is_hybrid(&self) -> bool {
        !matches!(self, Self::Static(_))
    }

    /// Installs a hybrid epoch's PSK for the next handshake (replacing an unused one). Refused
    /// (returned) for a plain peer.
    pub fn install(&mut self, fresh: HybridPsk) -> Result<(), HybridPsk> {
        match self {
            Self::HybridMaster(slot) | Self::HybridSlave(slot) => {
                *slot = Some(fresh);
                Ok(())
            }
            Self::Static(_) => Err(fresh),
        }
    }

    /// A session keyed by PSK `id` was confirmed: that PSK is spent and erased.
    pub fn consumed(&mut self, id: PskId) {
        if let Self::HybridMaster(slot) | Self::HybridSlave(slot) = self
            && slot.as_ref().is_some_and(|h| h.id == id)
        {
            *slot = None;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fresh(id: PskId) -> HybridPsk {
        HybridPsk {
            psk: Psk::new([7; 32]),
            id,
        }
    }

    #[test]
    fn a_plain_peer_always_keys_with_its_static_psk() {
        let k = Keying::default();
        assert!(k.may_initiate() && k.may_answer() && !k.is_hybrid());
        assert_eq!(k.for_next_handshake().map(|(_, id)| id), Some(None));
        let mut k = Keying::Static(Psk::new([1; 32]));
        assert!(k.install(fresh(PskId::FIRST)).is_err());
    }

    #[test]
    fn a_hybrid_psk_keys_one_session_then_is_erased() {
        let mut k = Keying::HybridMaster(None);
        assert!(!k.may_initiate() && !k.may_answer());
        assert!(k.install(fresh(PskId::FIRST)).is_ok());
        assert!(k.may_initiate() && k.may_answer());
        k.consumed(PskId::FIRST.next());
        assert!(
            k.may_initiate(),
            "another key's confirmation changes nothing"
        );
        k.consumed(PskId::FIRST);
        assert!(!k.may_initiate() && !k.may_answer());
    }

    #[test]
    fn a_hybrid_slave_answers_but_never_initiates() {
        let mut k = Keying::HybridSlave(None);
        assert!(k.install(fresh(PskId::FIRST)).is_ok());
        assert!(k.may_answer() && !k.may_initiate());
        assert_eq!(
            k.for_next_handshake().map(|(_, id)| id),
            Some(Some(PskId::FIRST))
        );
        assert!(PskId::FIRST.next() > PskId::FIRST);
    }
}
