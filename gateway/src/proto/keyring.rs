//! Key rotation (whitepaper §6.1 and the reference implementations' "keypairs"): up to three
//! sessions per peer.
//!
//! * `current`: the session we send with.
//! * `previous`: the one before; still accepted on receive until it expires, so packets in flight
//!   during a rekey are not lost.
//! * `next` (responder only): derived from a handshake we answered, but not used to send until the
//!   initiator proves it holds the keys by sending under them (§5.4.7 "key confirmation").
//!
//! Every session index leaving the ring is returned to the interface's index table.

use super::index::IndexTable;
use super::session::Session;

/// Which slot a received message matched.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Slot {
    /// The current session.
    Current,
    /// The previous session.
    Previous,
    /// The unconfirmed next session.
    Next,
}

/// The sessions of one peer.
#[derive(Debug, Default)]
pub struct KeyRing {
    current: Option<Session>,
    previous: Option<Session>,
    next: Option<Session>,
}

fn release(indices: &mut dyn IndexTable, s: Option<Session>) {
    if let Some(s) = s {
        indices.release(s.local_index());
    }
}

impl KeyRing {
    /// The session we send with.
    pub fn current(&self) -> Option<&Session> {
        self.current.as_ref()
    }

    /// Initiator side: the session from a response we consumed is confirmed and becomes current.
    /// An unconfirmed `next` (from a simultaneous handshake) becomes `previous`, else the old
    /// current does.
    pub fn install_confirmed(&mut self, session: Session, indices: &mut dyn IndexTable) {
        let demoted = match self.next.take() {
            Some(next) => {
                release(indices, self.current.take());
                Some(next)
            }
            None => self.current.take(),
        };
        release(indices, std::mem::replace(&mut self.previous, demoted));
        self.current = Some(session);
    }

    /// Responder side: the session waits in `next`; an older `next` and `previous` are dropped.
    pub fn install_unconfirmed(&mut self, session: Session, indices: &mut dyn IndexTable) {
        release(indices, self.next.replace(session));
        release(indices, self.previous.take());
    }

    /// Key confirmation: `next` becomes current, current becomes previous.
    pub fn confirm_next(&mut self, indices: &mut dyn IndexTable) {
        if let Some(next) = self.next.take() {
            release(indices, self.previous.take());
            self.previous = self.current.replace(next);
        }
    }

    /// The session whose local index is `index`.
    pub fn find(&self, index: u32) -> Option<&Session> {
        [&self.current, &self.previous, &self.next]
            .into_iter()
            .flatten()
            .find(|s| s.local_index() == index)
    }

    /// The session whose local index is `index`, and its slot.
    pub fn find_mut(&mut self, index: u32) -> Option<(Slot, &mut Session)> {
        let matches = |s: &Option<Session>| s.as_ref().is_some_and(|s| s.local_index() == index);
        if matches(&self.current) {
            self.current.as_mut().map(|s| (Slot::Current, s))
        } else if matches(&self.previous) {
            self.previous.as_mut().map(|s| (Slot::Previous, s))
        } else if matches(&self.next) {
            self.next.as_mut().map(|s| (Slot::Next, s))
        } else {
            None
        }
    }

    /// Erases every session (zero-keys timer, peer removal).
    pub fn clear(&mut self, indices: &mut dyn IndexTable) {
        release(indices, self.current.take());
        release(indices, self.previous.take());
        release(indices, self.next.take());
    }

    /// Whether no session is held.
    pub fn is_empty(&self) -> bool {
        self.current.is_none() && self.previous.is_none() && self.next.is_none()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::crypto::Entropy;
    use crate::proto::handshake::TransportKeys;
    use crate::proto::secret::Secret;
    use std::time::Instant;

    #[derive(Default)]
    struct Released(Vec<u32>);
    impl IndexTable for Released {
        fn allocate(&mut self, _: &mut dyn Entropy) -> u32 {
            unreachable!("the ring never allocates")
        }
        fn release(&mut self, index: u32) {
            self.0.push(index);
        }
    }

    fn s(index: u32) -> Session {
        let keys = TransportKeys {
            send: Secret::new([1; 32]),
            recv: Secret::new([2; 32]),
            local_index: index,
            remote_index: 0,
            initiator: true,
            psk_id: None,
        };
        Session::new(keys, Instant::now(), u64::from(index))
    }

    fn slot(r: &mut KeyRing, i: u32) -> Option<Slot> {
        r.find_mut(i).map(|(slot, _)| slot)
    }

    #[test]
    fn initiator_rotation_keeps_one_previous() {
        let (mut r, mut rel) = (KeyRing::default(), Released::default());
        r.install_confirmed(s(1), &mut rel);
        r.install_confirmed(s(2), &mut rel);
        assert_eq!(
            (slot(&mut r, 2), slot(&mut r, 1)),
            (Some(Slot::Current), Some(Slot::Previous))
        );
        r.install_confirmed(s(3), &mut rel);
        assert_eq!(rel.0, [1]);
        assert_eq!(slot(&mut r, 1), None);
    }

    #[test]
    fn responder_waits_for_confirmation() {
        let (mut r, mut rel) = (KeyRing::default(), Released::default());
        r.install_confirmed(s(1), &mut rel);
        r.install_unconfirmed(s(2), &mut rel);
        assert_eq!(r.current().map(Session::local_index), Some(1));
        assert_eq!(slot(&mut r, 2), Some(Slot::Next));
        r.install_unconfirmed(s(3), &mut rel);
        assert_eq!(rel.0, [2], "a newer unconfirmed session replaces the older");
        r.confirm_next(&mut rel);
        assert_eq!(
            (slot(&mut r, 3), slot(&mut r, 1)),
            (Some(Slot::Current), Some(Slot::Previous))
        );
        r.clear(&mut rel);
        assert!(r.is_empty());
        assert_eq!(rel.0, [2, 3, 1]);
    }

    #[test]
    fn simultaneous_handshakes_keep_the_unconfirmed_as_previous() {
        let (mut r, mut rel) = (KeyRing::default(), Released::default());
        r.install_confirmed(s(1), &mut rel);
        r.install_unconfirmed(s(2), &mut rel);
        r.install_confirmed(s(3), &mut rel);
        assert_eq!(rel.0, [1]);
        assert_eq!(
            (slot(&mut r, 3), slot(&mut r, 2)),
            (Some(Slot::Current), Some(Slot::Previous))
        );
    }
}
