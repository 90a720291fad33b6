//! The byte-level encoding of audit lines (docs/audit.md §2): JSON string escaping, the ordered
//! field writer every record is built with, lowercase hex, and RFC 3339 UTC timestamps.
//!
//! The writer builds each line by hand rather than through a serializer so that the bytes are
//! fixed by this file alone: field order is the call order, numbers are decimal `u64`, strings are
//! escaped exactly as [`push_str`] says, and no whitespace is emitted. The verifier never
//! re-encodes: it hashes the bytes it read (see [`super::chain`]).

use std::fmt::Write as _;
use std::time::{SystemTime, UNIX_EPOCH};

use super::{MAX_FIELD_BYTES, MAX_LIST_ITEMS};

/// Appends `s` as a JSON string: `"` and `\` escaped, control characters as `\u00XX`, everything
/// else (including non-ASCII UTF-8) verbatim. The escaped text is cut at a character boundary to at
/// most [`MAX_FIELD_BYTES`], so no caller can make a line unboundedly long.
pub fn push_str(out: &mut String, s: &str) {
    push_escaped(out, s, MAX_FIELD_BYTES);
}

/// [`push_str`] without the length bound, for the writer's own fixed-size values (Base64 keys and
/// signatures).
pub fn push_str_unbounded(out: &mut String, s: &str) {
    push_escaped(out, s, usize::MAX);
}

fn push_escaped(out: &mut String, s: &str, max: usize) {
    out.push('"');
    let mut written = 0usize;
    let mut piece = String::new();
    for c in s.chars() {
        piece.clear();
        match c {
            '"' => piece.push_str("\\\""),
            '\\' => piece.push_str("\\\\"),
            c if u32::from(c) < 0x20 => {
                let _ = write!(piece, "\\u{:04x}", u32::from(c));
            }
            c => piece.push(c),
        }
        written = written.saturating_add(piece.len());
        if written > max {
            break;
        }
        out.push_str(&piece);
    }
    out.push('"');
}

/// Builds the comma-separated `"key":value` members of one line, in call order.
#[derive(Debug, Default)]
pub struct Fields {
    out: String,
}

impl Fields {
    /// Starts an empty member list.
    pub fn new() -> Self {
        Self::default()
    }

    fn key(&mut self, key: &str) -> &mut String {
        if !self.out.is_empty() {
            self.out.push(',');
        }
        push_str(&mut self.out, key);
        self.out.push(':');
        &mut self.out
    }

    /// `"key":"value"`.
    pub fn str(&mut self, key: &str, value: &str) -> &mut Self {
        push_str(self.key(key), value);
        self
    }

    /// `"key":"value"` without the length bound (writer-produced Base64 only).
    pub fn str_unbounded(&mut self, key: &str, value: &str) -> &mut Self {
        push_str_unbounded(self.key(key), value);
        self
    }

    /// `"key":"value"` or `"key":null`.
    pub fn opt_str(&mut self, key: &str, value: Option<&str>) -> &mut Self {
        match value {
            Some(v) => self.str(key, v),
            None => {
                self.key(key).push_str("null");
                self
            }
        }
    }

    /// `"key":123`.
    pub fn u64(&mut self, key: &str, value: u64) -> &mut Self {
        let out = self.key(key);
        let _ = write!(out, "{value}");
        self
    }

    /// `"key":["a","b"]`, at most [`MAX_LIST_ITEMS`] items.
    pub fn list(&mut self, key: &str, items: &[impl std::fmt::Display]) -> &mut Self {
        let out = self.key(key);
        out.push('[');
        for (i, item) in items.iter().take(MAX_LIST_ITEMS).enumerate() {
            if i > 0 {
                out.push(',');
            }
            push_str(out, &item.to_string());
        }
        out.push(']');
        self
    }

    /// The members written so far (no surrounding braces).
    pub fn into_string(self) -> String {
        self.out
    }
}

/// Lowercase hex.
pub fn hex(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    s
}

/// Parses exactly 64 lowercase hex digits.
pub fn parse_hex32(s: &str) -> Option<[u8; 32]> {
    let b = s.as_bytes();
    if b.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, pair) in b.chunks_exact(2).enumerate() {
        out[i] = (nibble(pair[0])? << 4) | nibble(pair[1])?;
    }
    Some(out)
}

fn nibble(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        _ => None,
    }
}

/// `YYYY-MM-DDTHH:MM:SS.mmmZ` (RFC 3339, UTC, milliseconds). Times before 1970 print as the epoch.
pub fn rfc3339(t: SystemTime) -> String {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = d.as_secs();
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (y, m, day) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        d.subsec_millis()
    )
}

/// Days since 1970-01-01 to a proleptic Gregorian date (H. Hinnant, "chrono-Compatible Low-Level
/// Date Algorithms", `civil_from_days`, restricted to non-negative day counts).
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z % 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + u64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn strings_are_escaped_and_bounded() {
        let mut s = String::new();
        push_str(&mut s, "a\"b\\c\n\u{1}é");
        assert_eq!(s, r#""a\"b\\c\u000a\u0001é""#);
        let parsed: String = serde_json::from_str(&s).expect("valid JSON");
        assert_eq!(parsed, "a\"b\\c\n\u{1}é");
        let mut long = String::new();
        push_str(&mut long, &"é\u{1}".repeat(MAX_FIELD_BYTES));
        assert!(long.len() <= MAX_FIELD_BYTES + 2);
        assert!(
            serde_json::from_str::<String>(&long).is_ok(),
            "cut at a char boundary"
        );
    }

    #[test]
    fn fields_keep_call_order() {
        let mut f = Fields::new();
        f.u64("seq", 7)
            .str("a", "x")
            .opt_str("b", None)
            .list("c", &["1", "2"]);
        assert_eq!(f.into_string(), r#""seq":7,"a":"x","b":null,"c":["1","2"]"#);
    }

    #[test]
    fn hex_round_trips_and_rejects_uppercase() {
        let h = hex(&[0xab; 32]);
        assert_eq!(parse_hex32(&h), Some([0xab; 32]));
        assert_eq!(parse_hex32(&h.to_uppercase()), None);
        assert_eq!(parse_hex32("ab"), None);
    }

    #[test]
    fn timestamps_are_rfc3339_utc() {
        let t = UNIX_EPOCH + Duration::from_millis(1_795_255_200_123);
        assert_eq!(rfc3339(t), "2026-11-21T10:00:00.123Z");
        assert_eq!(rfc3339(UNIX_EPOCH), "1970-01-01T00:00:00.000Z");
        let leap = UNIX_EPOCH + Duration::from_secs(951_782_400);
        assert_eq!(rfc3339(leap), "2000-02-29T00:00:00.000Z");
    }
}
