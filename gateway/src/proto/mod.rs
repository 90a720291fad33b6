//! The sans-IO WireGuard protocol core (whitepaper §5 "Protocol & Cryptography", §6 "Timers").
//!
//! Every entry point takes `now: Instant` from the caller and returns what to do; nothing here reads
//! a clock, draws OS randomness implicitly or performs I/O. The interface-level part of WireGuard
//! (dispatch by message type, the index map, cryptokey routing, cookies under load) is in
//! [`crate::node`], which owns the peers. One concern per file:
//!
//! | file | concern | whitepaper |
//! |---|---|---|
//! | `constants` | protocol values and their source | §5.4, §6 |
//! | `secret` | the zeroizing secret type, constant-time compare | — |
//! | `crypto` | HASH, HMAC, MAC, KDF, DH, AEAD, XAEAD, injected entropy | §5.4 |
//! | `aead` | the data-path AEAD behind one trait (backend chosen by benchmark) | §5.4.6 |
//! | `messages` | wire formats with checked parsing | §5.4.2–§5.4.7 |
//! | `noise` | the symmetric state `(C, H)` and its per-token operations | §5.4 |
//! | `handshake` | `Noise_IKpsk2` initiation and response, PSK per handshake | §5.4.2–§5.4.5 |
//! | `cookie` | mac1, mac2, cookie replies | §5.3, §5.4.4, §5.4.7 |
//! | `tai64n` | handshake timestamps from the injected clock | §5.4.2 |
//! | `replay` | anti-replay sliding window (RFC 6479 layout) | §5.4.6 |
//! | `session` | transport keys, counters, padding, seal/open | §5.4.5–§5.4.6 |
//! | `keyring` | previous/current/next sessions, key confirmation | §6.1, §5.4.7 |
//! | `endpoint` | where a peer is, roaming on fresh authenticated messages | §2.1 |
//! | `timers` | all timers as deadlines and pure functions of `now` | §6 |
//! | `index` | session indices and the index → peer map | §5.4.2 |
//! | `psk` | which PSK keys the next handshake, hybrid PSK ids, who may initiate | §5.4.3 |
//! | `peer`, `peer_io` | the per-peer state machine: timers, polls, what it returns | §5.4, §6 |
//! | `peer_handshake` | a peer's initiation, response, cookie reply, confirmation | §5.4.2–§5.4.7 |
//! | `peer_transport` | a peer's in-place seal and open, rekey rules | §5.4.6, §6.1–§6.2 |
//! | `allowed_ips`, `ip` | cryptokey routing, longest prefix, IPv4 and IPv6 | §2 |
//! | `ratelimit` | handshake load detection, the one token bucket, per-source limits | §5.3 |

pub mod aead;
pub mod allowed_ips;
pub mod constants;
pub mod cookie;
pub mod crypto;
pub mod endpoint;
pub mod handshake;
pub mod index;
pub mod ip;
pub mod keyring;
pub mod messages;
pub mod noise;
pub mod peer;
mod peer_handshake;
pub mod peer_io;
mod peer_transport;
pub mod psk;
pub mod ratelimit;
pub mod replay;
pub mod secret;
pub mod session;
pub mod tai64n;
pub mod timers;

#[cfg(test)]
mod testing;
