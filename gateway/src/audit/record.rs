//! Reading one audit line back (docs/audit.md §2): checks the `,"hash":"…"}` suffix, recomputes the
//! hash over the exact bytes before it, and only then parses those bytes as JSON. No
//! canonicalisation: a line is accepted only if its bytes hash to the value it carries. Every check
//! is a checked constructor over untrusted bytes; nothing here can panic.

use serde_json::{Map, Value};

use super::chain::record_hash;
use super::json::parse_hex32;

const HASH_KEY: &[u8] = b",\"hash\":\"";
/// `,"hash":"` + 64 hex digits + `"}`.
const SUFFIX_LEN: usize = HASH_KEY.len() + 64 + 2;

/// A line whose hash matches its bytes.
#[derive(Debug, Clone)]
pub struct Record {
    /// `seq`.
    pub seq: u64,
    /// `prev`.
    pub prev: [u8; 32],
    /// `hash` (recomputed and equal).
    pub hash: [u8; 32],
    /// `event`.
    pub event: String,
    /// Every member, for event-specific fields.
    pub members: Map<String, Value>,
}

/// Why a line was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LineError {
    /// The bytes do not hash to the `hash` they carry.
    Altered,
    /// Not a well-formed record; says what is wrong.
    Malformed(&'static str),
}

impl std::fmt::Display for LineError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Altered => f.write_str("record altered (hash mismatch)"),
            Self::Malformed(what) => write!(f, "malformed line ({what})"),
        }
    }
}

impl Record {
    /// A string member.
    pub fn str(&self, key: &str) -> Option<&str> {
        self.members.get(key).and_then(Value::as_str)
    }

    /// An unsigned integer member.
    pub fn u64(&self, key: &str) -> Option<u64> {
        self.members.get(key).and_then(Value::as_u64)
    }

    /// Whether `key` is present and `null`.
    pub fn is_null(&self, key: &str) -> bool {
        self.members.get(key).is_some_and(Value::is_null)
    }
}

/// Parses and self-checks one line (without its `\n`).
pub fn parse_line(line: &[u8]) -> Result<Record, LineError> {
    if line.len() < SUFFIX_LEN + 2 {
        return Err(LineError::Malformed("too short for a record"));
    }
    let (body, suffix) = line.split_at(line.len() - SUFFIX_LEN);
    let (key, rest) = suffix.split_at(HASH_KEY.len());
    let (digits, close) = rest.split_at(64);
    if key != HASH_KEY || close != b"\"}" {
        return Err(LineError::Malformed(
            "does not end in ,\"hash\":\"<64 hex>\"}",
        ));
    }
    let stated = std::str::from_utf8(digits)
        .ok()
        .and_then(parse_hex32)
        .ok_or(LineError::Malformed("hash is not 64 lowercase hex digits"))?;
    let hash = record_hash(body);
    if hash != stated {
        return Err(LineError::Altered);
    }
    let mut json = Vec::with_capacity(body.len() + 1);
    json.extend_from_slice(body);
    json.push(b'}');
    let Ok(Value::Object(members)) = serde_json::from_slice::<Value>(&json) else {
        return Err(LineError::Malformed("not a JSON object"));
    };
    if !body.starts_with(b"{\"seq\":") {
        return Err(LineError::Malformed("does not start with {\"seq\":"));
    }
    let seq = members
        .get("seq")
        .and_then(Value::as_u64)
        .ok_or(LineError::Malformed("seq is not an unsigned integer"))?;
    let prev = members
        .get("prev")
        .and_then(Value::as_str)
        .and_then(parse_hex32)
        .ok_or(LineError::Malformed("prev is not 64 lowercase hex digits"))?;
    let event = members
        .get("event")
        .and_then(Value::as_str)
        .ok_or(LineError::Malformed("no event name"))?
        .to_owned();
    if members.get("time").and_then(Value::as_str).is_none() {
        return Err(LineError::Malformed("no time"));
    }
    Ok(Record {
        seq,
        prev,
        hash,
        event,
        members,
    })
}

/// The `seq` a line claims, read textually from its `{"seq":N` prefix without any check: for
/// sorting files and for naming the record in a report when the line itself is refused.
pub fn peek_seq(line: &[u8]) -> Option<u64> {
    let rest = line.strip_prefix(b"{\"seq\":")?;
    let digits = rest.iter().take_while(|b| b.is_ascii_digit()).count();
    std::str::from_utf8(rest.get(..digits)?).ok()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::chain::ChainState;
    use crate::audit::event::AuditEvent;
    use std::time::UNIX_EPOCH;

    fn line() -> Vec<u8> {
        let mut l = ChainState::after(41, [3; 32])
            .prepare_event(
                UNIX_EPOCH,
                &AuditEvent::PeerDown {
                    peer: "b".into(),
                    reason: "keys expired".into(),
                },
            )
            .line;
        l.pop();
        l
    }

    #[test]
    fn a_written_line_parses_back() {
        let r = parse_line(&line()).expect("valid");
        assert_eq!(
            (r.seq, r.prev, r.event.as_str()),
            (42, [3; 32], "peer_down")
        );
        assert_eq!(r.str("reason"), Some("keys expired"));
        assert_eq!(peek_seq(&line()), Some(42));
    }

    #[test]
    fn any_changed_byte_is_refused() {
        let good = line();
        for i in 0..good.len() {
            let mut bad = good.clone();
            bad[i] ^= 0x01;
            assert!(parse_line(&bad).is_err(), "byte {i}");
        }
        let mut bad = good.clone();
        let at = bad.len() - 40;
        bad.insert(at, b'0');
        assert!(parse_line(&bad).is_err());
    }

    #[test]
    fn garbage_is_malformed_not_a_panic() {
        for input in [&b""[..], b"{}", b"{\"seq\":1}", &[0xff; 100]] {
            assert!(matches!(parse_line(input), Err(LineError::Malformed(_))));
        }
        assert_eq!(parse_line(&line()[5..]).err(), Some(LineError::Altered));
        assert_eq!(peek_seq(b"{\"seq\":x"), None);
        assert_eq!(peek_seq(b"{\"seq\":99999999999999999999999"), None);
    }
}
