//! WireGuard's `Noise_IKpsk2` handshake (whitepaper §5.4.2 initiation, §5.4.3 response, §5.4.5
//! transport keys), one struct per state, each consumed to produce the next.
//!
//! ```text
//! IKpsk2:  <- s
//!          ...
//!          -> e, es, s, ss, {timestamp}        (initiation)
//!          <- e, ee, se, psk, {}               (response)
//! ```
//!
//! The PSK (`Q`) is an argument of each handshake, not configuration: the initiator passes it to
//! [`create_initiation`] and it is stored in the returned [`InitiationSent`], so swapping the peer's
//! PSK later cannot change a handshake already on the wire. The responder passes it to
//! [`create_response`]. mac1/mac2 are added by [`super::cookie`].

use x25519_dalek::StaticSecret;
use zerocopy::FromZeros;

use super::constants::{
    KEY_LEN, LABEL_COOKIE, LABEL_MAC1, MSG_INITIATION, MSG_RESPONSE, TIMESTAMP_LEN,
};
use super::crypto::{Entropy, dh, hash, public_key};
use super::messages::{Header, Initiation, Response};
use super::noise::SymmetricState;
use super::secret::{Psk, Secret};
use crate::error::DropReason;

pub use super::psk::PskId;

/// A static X25519 key pair with the values derived from the public half.
pub struct StaticKeys {
    secret: StaticSecret,
    public: [u8; KEY_LEN],
    /// `HASH(LABEL_MAC1 || S_pub)`: key for verifying mac1 on messages to us (§5.4.4).
    pub mac1_key: [u8; KEY_LEN],
    /// `HASH(LABEL_COOKIE || S_pub)`: key for sealing cookies we send (§5.4.7).
    pub cookie_key: [u8; KEY_LEN],
}

impl std::fmt::Debug for StaticKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StaticKeys")
            .field("public", &self.public)
            .finish_non_exhaustive()
    }
}

impl StaticKeys {
    /// From a private key.
    pub fn new(secret: Secret<KEY_LEN>) -> Self {
        let secret = StaticSecret::from(*secret.expose());
        let public = public_key(&secret);
        Self {
            mac1_key: hash(&[LABEL_MAC1, &public]),
            cookie_key: hash(&[LABEL_COOKIE, &public]),
            secret,
            public,
        }
    }

    /// The public key.
    pub fn public(&self) -> &[u8; KEY_LEN] {
        &self.public
    }

    /// The private key (the hybrid pair keys are derived from `DH(S_priv, S_peer_pub)`).
    pub fn secret(&self) -> &StaticSecret {
        &self.secret
    }
}

/// What we know of a remote peer: its static key, the static-static DH, and its MAC keys.
#[derive(Debug)]
pub struct RemoteKeys {
    /// The peer's static public key.
    pub public: [u8; KEY_LEN],
    /// `DH(S_priv_local, S_pub_remote)`, precomputed (token `ss`).
    static_static: Secret<KEY_LEN>,
    /// `HASH(LABEL_MAC1 || S_pub_remote)`: key for mac1 on messages we send to the peer.
    pub mac1_key: [u8; KEY_LEN],
    /// `HASH(LABEL_COOKIE || S_pub_remote)`: key for opening cookie replies from the peer.
    pub cookie_key: [u8; KEY_LEN],
}

impl RemoteKeys {
    /// Precomputes the per-peer values. Fails for a low-order public key.
    pub fn new(local: &StaticKeys, public: [u8; KEY_LEN]) -> Result<Self, DropReason> {
        Ok(Self {
            static_static: dh(&local.secret, &public)?,
            mac1_key: hash(&[LABEL_MAC1, &public]),
            cookie_key: hash(&[LABEL_COOKIE, &public]),
            public,
        })
    }
}

/// Transport keys and indices of a completed handshake (§5.4.5), not yet a session.
#[derive(Debug)]
pub struct TransportKeys {
    /// Key for messages we send.
    pub send: Secret<KEY_LEN>,
    /// Key for messages we receive.
    pub recv: Secret<KEY_LEN>,
    /// Our index (the receiver field of messages sent to us).
    pub local_index: u32,
    /// The peer's index (the receiver field of messages we send).
    pub remote_index: u32,
    /// Whether we initiated the handshake.
    pub initiator: bool,
    /// Which PSK was mixed in.
    pub psk_id: Option<PskId>,
}

/// The initiator's state between sending the initiation and receiving the response.
pub struct InitiationSent {
    state: SymmetricState,
    ephemeral: StaticSecret,
    psk: Psk,
    psk_id: Option<PskId>,
    /// Our index for the coming session.
    pub local_index: u32,
}

impl std::fmt::Debug for InitiationSent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InitiationSent")
            .field("local_index", &self.local_index)
            .field("psk_id", &self.psk_id)
            .finish_non_exhaustive()
    }
}

impl InitiationSent {
    /// Which PSK this handshake mixes in.
    pub fn psk_id(&self) -> Option<PskId> {
        self.psk_id
    }
}

/// Builds a handshake initiation (§5.4.2) into `msg` (mac1/mac2 left zero).
pub fn create_initiation(
    local: &StaticKeys,
    remote: &RemoteKeys,
    psk: (&Psk, Option<PskId>),
    local_index: u32,
    timestamp: &[u8; TIMESTAMP_LEN],
    rng: &mut dyn Entropy,
    msg: &mut Initiation,
) -> Result<InitiationSent, DropReason> {
    let mut st = SymmetricState::new(&remote.public);
    let ephemeral = super::crypto::x25519_secret(rng);
    let e_pub = public_key(&ephemeral);
    msg.header = Header::new(MSG_INITIATION);
    msg.sender.set(local_index);
    // e
    msg.ephemeral = e_pub;
    st.mix_ephemeral(&e_pub);
    // es
    let k = st.mix_dh_key(&ephemeral, &remote.public)?;
    // s
    let (ct, tag) = msg.encrypted_static.split_at_mut(KEY_LEN);
    ct.copy_from_slice(&local.public);
    tag.copy_from_slice(&st.encrypt_and_hash(&k, ct));
    // ss
    let k = st.mix_key2(&remote.static_static);
    // {timestamp}
    let (ct, tag) = msg.encrypted_timestamp.split_at_mut(TIMESTAMP_LEN);
    ct.copy_from_slice(timestamp);
    tag.copy_from_slice(&st.encrypt_and_hash(&k, ct));
    msg.mac1 = [0; 16];
    msg.mac2 = [0; 16];
    Ok(InitiationSent {
        state: st,
        ephemeral,
        psk: psk.0.duplicate(),
        psk_id: psk.1,
        local_index,
    })
}

/// An initiation whose `s` decrypted: the caller looks up the peer by [`Self::initiator_static`],
/// then calls [`Self::finish`].
#[derive(Debug)]
pub struct InitiationOpened<'m> {
    state: SymmetricState,
    msg: &'m Initiation,
    initiator_static: [u8; KEY_LEN],
}

/// First half of consuming an initiation (§5.4.2, responder side): tokens `e`, `es`, `s`.
pub fn open_initiation<'m>(
    local: &StaticKeys,
    msg: &'m Initiation,
) -> Result<InitiationOpened<'m>, DropReason> {
    let mut st = SymmetricState::new(&local.public);
    // e
    st.mix_ephemeral(&msg.ephemeral);
    // es
    let k = st.mix_dh_key(&local.secret, &msg.ephemeral)?;
    // s
    let mut initiator_static = [0u8; KEY_LEN];
    st.decrypt_and_hash(&k, &msg.encrypted_static, &mut initiator_static)?;
    Ok(InitiationOpened {
        state: st,
        msg,
        initiator_static,
    })
}

/// The responder's state after a valid initiation from a known peer.
#[derive(Debug)]
pub struct InitiationReceived {
    state: SymmetricState,
    remote_ephemeral: [u8; KEY_LEN],
    /// The initiator's index.
    pub remote_index: u32,
    /// The decrypted TAI64N timestamp; the caller rejects it unless newer than the last one.
    pub timestamp: [u8; TIMESTAMP_LEN],
}

impl InitiationOpened<'_> {
    /// The initiator's static public key (decrypted, not yet authenticated by `ss`).
    pub fn initiator_static(&self) -> &[u8; KEY_LEN] {
        &self.initiator_static
    }

    /// Second half: tokens `ss` and `{timestamp}` with the looked-up peer's keys.
    pub fn finish(mut self, remote: &RemoteKeys) -> Result<InitiationReceived, DropReason> {
        if remote.public != self.initiator_static {
            return Err(DropReason::UnknownPeer);
        }
        // ss
        let k = self.state.mix_key2(&remote.static_static);
        // {timestamp}
        let mut timestamp = [0u8; TIMESTAMP_LEN];
        self.state
            .decrypt_and_hash(&k, &self.msg.encrypted_timestamp, &mut timestamp)?;
        Ok(InitiationReceived {
            remote_ephemeral: self.msg.ephemeral,
            remote_index: self.msg.sender.get(),
            state: self.state.clone(),
            timestamp,
        })
    }
}

/// Builds the response (§5.4.3) to `init` with `psk`, and derives the transport keys (§5.4.5).
pub fn create_response(
    init: InitiationReceived,
    remote: &RemoteKeys,
    psk: (&Psk, Option<PskId>),
    local_index: u32,
    rng: &mut dyn Entropy,
    msg: &mut Response,
) -> Result<TransportKeys, DropReason> {
    let mut st = init.state;
    let ephemeral = super::crypto::x25519_secret(rng);
    let e_pub = public_key(&ephemeral);
    *msg = Response::new_zeroed();
    msg.header = Header::new(MSG_RESPONSE);
    msg.sender.set(local_index);
    msg.receiver.set(init.remote_index);
    // e
    msg.ephemeral = e_pub;
    st.mix_ephemeral(&e_pub);
    // ee
    st.mix_dh(&ephemeral, &init.remote_ephemeral)?;
    // se
    st.mix_dh(&ephemeral, &remote.public)?;
    // psk
    let k = st.mix_psk(psk.0);
    // {}
    msg.encrypted_nothing = st.encrypt_and_hash(&k, &mut []);
    let (recv, send) = st.split();
    Ok(TransportKeys {
        send,
        recv,
        local_index,
        remote_index: init.remote_index,
        initiator: false,
        psk_id: psk.1,
    })
}

/// Consumes the response (§5.4.3, initiator side) with the PSK captured at initiation.
pub fn consume_response(
    sent: &InitiationSent,
    local: &StaticKeys,
    msg: &Response,
) -> Result<TransportKeys, DropReason> {
    if msg.receiver.get() != sent.local_index {
        return Err(DropReason::UnknownIndex);
    }
    let mut st = sent.state.clone();
    // e
    st.mix_ephemeral(&msg.ephemeral);
    // ee
    st.mix_dh(&sent.ephemeral, &msg.ephemeral)?;
    // se
    st.mix_dh(&local.secret, &msg.ephemeral)?;
    // psk
    let k = st.mix_psk(&sent.psk);
    // {}
    st.decrypt_and_hash(&k, &msg.encrypted_nothing, &mut [])?;
    let (send, recv) = st.split();
    Ok(TransportKeys {
        send,
        recv,
        local_index: sent.local_index,
        remote_index: msg.sender.get(),
        initiator: true,
        psk_id: sent.psk_id,
    })
}

#[cfg(test)]
#[path = "handshake_tests.rs"]
mod tests;
