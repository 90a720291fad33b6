//! DoS mitigation (whitepaper §5.3, §5.4.4, §5.4.7): mac1 on every handshake message, and under
//! load mac2, keyed by a cookie the responder hands out in an XChaCha20-Poly1305-sealed cookie reply.
//!
//! * [`stamp`] / [`verify_mac1`]: `mac1 = MAC(HASH(LABEL_MAC1 || S_pub_receiver), msg_alpha)`.
//! * [`CookieChecker`] (responder side, one per interface): `cookie = MAC(R_secret, ip || port)`
//!   with `R_secret` rotated every `COOKIE_REFRESH_TIME`; verifies mac2, builds cookie replies.
//! * [`CookieJar`] (initiator side, one per peer): remembers the mac1 it sent (the reply's AAD)
//!   and the cookie it received, for `COOKIE_REFRESH_TIME`.

use std::net::{IpAddr, SocketAddr};
use std::time::Instant;

use super::constants::{
    COOKIE_REFRESH_TIME, KEY_LEN, MAC_LEN, MSG_COOKIE_REPLY, REKEY_TIMEOUT, TAG_LEN,
};
use super::crypto::{Entropy, mac, xaead_open, xaead_seal};
use super::messages::{CookieReply, Header, MacProtected};
use super::secret::{Secret, ct_eq};
use crate::error::DropReason;

/// Writes mac1 and mac2 into `msg` (§5.4.4); mac2 is zero without a cookie.
pub fn stamp<M: MacProtected + zerocopy::FromBytes>(
    msg: &mut M,
    mac1_key: &[u8; KEY_LEN],
    cookie: Option<&Secret<MAC_LEN>>,
) {
    let m1 = mac(mac1_key, &[msg.mac1_input()]);
    let len = msg.as_bytes().len();
    msg.as_mut_bytes()[len - 2 * MAC_LEN..len - MAC_LEN].copy_from_slice(&m1);
    let m2 = cookie.map_or([0u8; MAC_LEN], |c| mac(c.expose(), &[msg.mac2_input()]));
    msg.as_mut_bytes()[len - MAC_LEN..].copy_from_slice(&m2);
}

/// Checks mac1 against our own mac1 key (constant time).
pub fn verify_mac1<M: MacProtected>(
    msg: &M,
    our_mac1_key: &[u8; KEY_LEN],
) -> Result<(), DropReason> {
    let expected = mac(our_mac1_key, &[msg.mac1_input()]);
    if ct_eq(&expected, msg.mac1()) {
        Ok(())
    } else {
        Err(DropReason::InvalidMac1)
    }
}

/// The responder's cookie secret and the key it seals cookie replies with.
pub struct CookieChecker {
    secret: Secret<KEY_LEN>,
    secret_born: Option<Instant>,
    /// `HASH(LABEL_COOKIE || S_pub_local)`.
    seal_key: [u8; KEY_LEN],
}

impl std::fmt::Debug for CookieChecker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CookieChecker")
            .field("secret_born", &self.secret_born)
            .finish_non_exhaustive()
    }
}

fn addr_bytes(src: SocketAddr, out: &mut [u8; 18]) -> &[u8] {
    let port = src.port().to_be_bytes();
    match src.ip() {
        IpAddr::V4(ip) => {
            out[..4].copy_from_slice(&ip.octets());
            out[4..6].copy_from_slice(&port);
            &out[..6]
        }
        IpAddr::V6(ip) => {
            out[..16].copy_from_slice(&ip.octets());
            out[16..18].copy_from_slice(&port);
            &out[..18]
        }
    }
}

impl CookieChecker {
    /// A checker for our static key's cookie key (`StaticKeys::cookie_key`).
    pub fn new(local_cookie_key: [u8; KEY_LEN]) -> Self {
        Self {
            secret: Secret::zero(),
            secret_born: None,
            seal_key: local_cookie_key,
        }
    }

    /// The cookie `src` should use now, rotating the secret if it is older than two minutes.
    fn cookie(&mut self, now: Instant, rng: &mut dyn Entropy, src: SocketAddr) -> Secret<MAC_LEN> {
        let stale = self
            .secret_born
            .is_none_or(|t| now.saturating_duration_since(t) >= COOKIE_REFRESH_TIME);
        if stale {
            rng.fill(self.secret.expose_mut());
            self.secret_born = Some(now);
        }
        let mut buf = [0u8; 18];
        Secret::new(mac(self.secret.expose(), &[addr_bytes(src, &mut buf)]))
    }

    /// Checks mac2 of a message from `src` (call only when under load, after mac1 verified).
    pub fn verify_mac2<M: MacProtected>(
        &mut self,
        now: Instant,
        rng: &mut dyn Entropy,
        msg: &M,
        src: SocketAddr,
    ) -> Result<(), DropReason> {
        let cookie = self.cookie(now, rng, src);
        let expected = mac(cookie.expose(), &[msg.mac2_input()]);
        if ct_eq(&expected, msg.mac2()) {
            Ok(())
        } else {
            Err(DropReason::CookieRequired)
        }
    }

    /// Builds the cookie reply to `msg` from `src` (§5.4.7): `{cookie}` sealed under our cookie key
    /// with a random 24-byte nonce and `msg`'s mac1 as AAD.
    pub fn reply<M: MacProtected>(
        &mut self,
        now: Instant,
        rng: &mut dyn Entropy,
        msg: &M,
        src: SocketAddr,
        out: &mut CookieReply,
    ) {
        let cookie = self.cookie(now, rng, src);
        out.header = Header::new(MSG_COOKIE_REPLY);
        out.receiver.set(msg.sender());
        rng.fill(&mut out.nonce);
        let (ct, tag) = out.encrypted_cookie.split_at_mut(MAC_LEN);
        ct.copy_from_slice(cookie.expose());
        let t = xaead_seal(&self.seal_key, &out.nonce, msg.mac1(), ct);
        tag.copy_from_slice(&t);
    }
}

/// The initiator's per-peer cookie state.
#[derive(Debug, Default)]
pub struct CookieJar {
    /// mac1 of the last handshake message we sent (the AAD of a reply to it).
    last_mac1: Option<[u8; MAC_LEN]>,
    cookie: Option<(Secret<MAC_LEN>, Instant)>,
}

impl CookieJar {
    /// Stamps mac1 and (with a fresh cookie) mac2 on an outgoing handshake message to a peer whose
    /// mac1 key is `peer_mac1_key`.
    pub fn stamp<M: MacProtected + zerocopy::FromBytes>(
        &mut self,
        now: Instant,
        msg: &mut M,
        peer_mac1_key: &[u8; KEY_LEN],
    ) {
        // A cookie is used for COOKIE_REFRESH_TIME minus a margin, as the responder may rotate.
        let fresh = self.cookie.as_ref().filter(|(_, at)| {
            now.saturating_duration_since(*at) < COOKIE_REFRESH_TIME - REKEY_TIMEOUT
        });
        stamp(msg, peer_mac1_key, fresh.map(|(c, _)| c));
        self.last_mac1 = Some(*msg.mac1());
    }

    /// Opens a cookie reply from the peer whose cookie key is `peer_cookie_key` and stores it.
    pub fn consume(
        &mut self,
        now: Instant,
        reply: &CookieReply,
        peer_cookie_key: &[u8; KEY_LEN],
    ) -> Result<(), DropReason> {
        let aad = self.last_mac1.ok_or(DropReason::Unexpected)?;
        let mut cookie = [0u8; MAC_LEN];
        let (ct, tag) = reply.encrypted_cookie.split_at(MAC_LEN);
        cookie.copy_from_slice(ct);
        let tag: &[u8; TAG_LEN] = tag.try_into().map_err(|_| DropReason::Malformed)?;
        xaead_open(peer_cookie_key, &reply.nonce, &aad, &mut cookie, tag)?;
        self.cookie = Some((Secret::new(cookie), now));
        // One reply per message: a second reply to the same mac1 is unexpected.
        self.last_mac1 = None;
        Ok(())
    }

    /// Whether a cookie is held (tests, status).
    pub fn has_cookie(&self) -> bool {
        self.cookie.is_some()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::proto::crypto::SeededEntropy;
    use crate::proto::handshake::StaticKeys;
    use crate::proto::messages::Initiation;
    use zerocopy::FromZeros;

    fn setup() -> (StaticKeys, Initiation, SocketAddr) {
        let responder = StaticKeys::new(Secret::new([4u8; 32]));
        let mut msg = Initiation::new_zeroed();
        msg.header = Header::new(1);
        msg.sender.set(77);
        msg.ephemeral = [9u8; 32];
        (responder, msg, "192.0.2.1:51820".parse().unwrap())
    }

    #[test]
    fn mac1_verifies_only_under_the_right_key_and_bytes() {
        let (r, mut msg, _) = setup();
        stamp(&mut msg, &r.mac1_key, None);
        verify_mac1(&msg, &r.mac1_key).unwrap();
        assert_eq!(msg.mac2, [0u8; 16]);
        assert_eq!(verify_mac1(&msg, &[0u8; 32]), Err(DropReason::InvalidMac1));
        msg.ephemeral[0] ^= 1;
        assert_eq!(verify_mac1(&msg, &r.mac1_key), Err(DropReason::InvalidMac1));
    }

    #[test]
    fn cookie_round_trip_makes_mac2_valid() {
        let (r, mut msg, src) = setup();
        let mut rng = SeededEntropy::new(1);
        let mut checker = CookieChecker::new(r.cookie_key);
        let mut jar = CookieJar::default();
        let t0 = Instant::now();
        jar.stamp(t0, &mut msg, &r.mac1_key);
        assert_eq!(
            checker.verify_mac2(t0, &mut rng, &msg, src),
            Err(DropReason::CookieRequired)
        );
        let mut reply = CookieReply::new_zeroed();
        checker.reply(t0, &mut rng, &msg, src, &mut reply);
        assert_eq!(reply.receiver.get(), 77);
        jar.consume(t0, &reply, &r.cookie_key).unwrap();
        assert_eq!(
            jar.consume(t0, &reply, &r.cookie_key),
            Err(DropReason::Unexpected)
        );
        jar.stamp(t0, &mut msg, &r.mac1_key);
        verify_mac1(&msg, &r.mac1_key).unwrap();
        checker.verify_mac2(t0, &mut rng, &msg, src).unwrap();
        // Another source address does not share the cookie.
        let other: SocketAddr = "[2001:db8::1]:51820".parse().unwrap();
        assert!(checker.verify_mac2(t0, &mut rng, &msg, other).is_err());
    }

    #[test]
    fn cookies_expire_on_both_sides() {
        let (r, mut msg, src) = setup();
        let mut rng = SeededEntropy::new(2);
        let mut checker = CookieChecker::new(r.cookie_key);
        let mut jar = CookieJar::default();
        let t0 = Instant::now();
        jar.stamp(t0, &mut msg, &r.mac1_key);
        let mut reply = CookieReply::new_zeroed();
        checker.reply(t0, &mut rng, &msg, src, &mut reply);
        jar.consume(t0, &reply, &r.cookie_key).unwrap();
        // The responder rotated its secret: the old cookie no longer verifies.
        let later = t0 + COOKIE_REFRESH_TIME;
        jar.stamp(t0, &mut msg, &r.mac1_key);
        assert!(checker.verify_mac2(later, &mut rng, &msg, src).is_err());
        // The initiator stops using a cookie near its end of life.
        jar.stamp(
            t0 + COOKIE_REFRESH_TIME - REKEY_TIMEOUT,
            &mut msg,
            &r.mac1_key,
        );
        assert_eq!(msg.mac2, [0u8; 16]);
    }

    #[test]
    fn forged_or_misdirected_replies_are_refused() {
        let (r, mut msg, src) = setup();
        let mut rng = SeededEntropy::new(3);
        let mut checker = CookieChecker::new(r.cookie_key);
        let mut jar = CookieJar::default();
        let mut reply = CookieReply::new_zeroed();
        checker.reply(Instant::now(), &mut rng, &msg, src, &mut reply);
        assert_eq!(
            jar.consume(Instant::now(), &reply, &r.cookie_key),
            Err(DropReason::Unexpected)
        );
        jar.stamp(Instant::now(), &mut msg, &r.mac1_key);
        // Sealed for a different mac1 (the stamp changed it): AAD mismatch.
        assert_eq!(
            jar.consume(Instant::now(), &reply, &r.cookie_key),
            Err(DropReason::DecryptFailed)
        );
        assert!(!jar.has_cookie());
    }
}
