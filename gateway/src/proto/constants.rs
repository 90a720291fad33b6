//! Protocol constants, each with its source.
//!
//! Specification values come from the WireGuard whitepaper (Donenfeld, "WireGuard: Next Generation
//! Kernel Network Tunnel", revision e2da747) §5.4 (handshake), §5.4.7 (cookies) and §6 (timers),
//! cross-checked against wireguard-go `device/constants.go`. Implementation values are ours and say so.

use std::time::Duration;

// ---------------------------------------------------------------------------------------------
// Specification: Noise construction (§5.4)
// ---------------------------------------------------------------------------------------------

/// Noise protocol name, hashed into the initial chaining key (§5.4, "Construction").
pub const CONSTRUCTION: &[u8] = b"Noise_IKpsk2_25519_ChaChaPoly_BLAKE2s";
/// Protocol identifier mixed into the initial hash (§5.4, "Identifier").
pub const IDENTIFIER: &[u8] = b"WireGuard v1 zx2c4 Jason@zx2c4.com";
/// Label for the mac1 key, `HASH(LABEL_MAC1 || S_pub)` (§5.4.4).
pub const LABEL_MAC1: &[u8] = b"mac1----";
/// Label for the cookie key, `HASH(LABEL_COOKIE || S_pub)` (§5.4.7).
pub const LABEL_COOKIE: &[u8] = b"cookie--";

// ---------------------------------------------------------------------------------------------
// Specification: sizes (§5.4.2–§5.4.7); all derived from the primitive sizes.
// ---------------------------------------------------------------------------------------------

/// X25519 public/private key and BLAKE2s-256 output length.
pub const KEY_LEN: usize = 32;
/// Poly1305 tag length.
pub const TAG_LEN: usize = 16;
/// Keyed BLAKE2s-128 output length (mac1, mac2, cookie).
pub const MAC_LEN: usize = 16;
/// TAI64N timestamp length.
pub const TIMESTAMP_LEN: usize = 12;
/// XChaCha20-Poly1305 nonce length (cookie reply).
pub const XNONCE_LEN: usize = 24;

/// Message type of a handshake initiation (§5.4.2).
pub const MSG_INITIATION: u8 = 1;
/// Message type of a handshake response (§5.4.3).
pub const MSG_RESPONSE: u8 = 2;
/// Message type of a cookie reply (§5.4.7).
pub const MSG_COOKIE_REPLY: u8 = 3;
/// Message type of transport data (§5.4.6).
pub const MSG_TRANSPORT: u8 = 4;

/// Handshake initiation: type, sender, `e`, `{s}`, `{timestamp}`, mac1, mac2.
pub const INITIATION_LEN: usize =
    4 + 4 + KEY_LEN + (KEY_LEN + TAG_LEN) + (TIMESTAMP_LEN + TAG_LEN) + MAC_LEN + MAC_LEN;
/// Handshake response: type, sender, receiver, `e`, `{}`, mac1, mac2.
pub const RESPONSE_LEN: usize = 4 + 4 + 4 + KEY_LEN + TAG_LEN + MAC_LEN + MAC_LEN;
/// Cookie reply: type, receiver, nonce, `{cookie}`.
pub const COOKIE_REPLY_LEN: usize = 4 + 4 + XNONCE_LEN + (MAC_LEN + TAG_LEN);
/// Transport header: type, receiver, counter.
pub const TRANSPORT_HEADER_LEN: usize = 4 + 4 + 8;
/// Smallest transport message: header and the tag of an empty (keepalive) payload.
pub const TRANSPORT_MIN_LEN: usize = TRANSPORT_HEADER_LEN + TAG_LEN;
/// Plaintext padding multiple for transport data (§5.4.6).
pub const PADDING_MULTIPLE: usize = 16;

// ---------------------------------------------------------------------------------------------
// Specification: timers and limits (§6.1–§6.5)
// ---------------------------------------------------------------------------------------------

/// After this many messages a new handshake is initiated (§6.1).
pub const REKEY_AFTER_MESSAGES: u64 = 1 << 60;
/// After this many messages a key is never used again (§6.1).
pub const REJECT_AFTER_MESSAGES: u64 = u64::MAX - (1 << 13);
/// The initiator of a session rekeys after this age (§6.1).
pub const REKEY_AFTER_TIME: Duration = Duration::from_secs(120);
/// No key is used after this age (§6.1).
pub const REJECT_AFTER_TIME: Duration = Duration::from_secs(180);
/// Give up retrying a handshake after this long (§6.4).
pub const REKEY_ATTEMPT_TIME: Duration = Duration::from_secs(90);
/// Retry an unanswered initiation after this long, plus jitter (§6.4).
pub const REKEY_TIMEOUT: Duration = Duration::from_secs(5);
/// Send a keepalive if data was received but nothing sent for this long (§6.5).
pub const KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(10);
/// A cookie secret / received cookie is valid this long (§5.4.7).
pub const COOKIE_REFRESH_TIME: Duration = Duration::from_secs(120);
/// Upper bound of the random jitter added to `REKEY_TIMEOUT` (wireguard-go
/// `RekeyTimeoutJitterMaxMs`; the whitepaper §6.4 says "a small random jitter").
pub const REKEY_TIMEOUT_JITTER_MAX: Duration = Duration::from_millis(334);
/// At most one initiation per peer is processed per this interval (wireguard-go
/// `HandshakeInitationRate`, kernel `INITIATIONS_PER_SECOND` = 50).
pub const INITIATION_RATE: Duration = Duration::from_millis(20);

// ---------------------------------------------------------------------------------------------
// Implementation choices
// ---------------------------------------------------------------------------------------------

/// Bits tracked by the anti-replay window (kernel `COUNTER_BITS_TOTAL`; RFC 6479 ring of words).
pub const REPLAY_BITS_TOTAL: usize = 8192;
/// Datagrams larger than this are never valid WireGuard messages (maximum IP packet + overhead).
pub const MAX_MESSAGE_LEN: usize = 65535;
