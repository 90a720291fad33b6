//! A QKD key ID (ETSI GS QKD 014 §6.3: `key_ID`, "UUID format"): the one type that carries a key's
//! name from the KME's reply through the hybrid exchange's wire format into the key schedule's
//! transcript and the audit log. Accepted only as the 36-character hyphenated form; case-insensitive
//! on input, lower case on output, so both ends bind the same bytes.

use core::fmt;

use uuid::Uuid;

use crate::Error;

/// A key ID: a UUID.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct KeyId(Uuid);

impl KeyId {
    /// Length of the text form (`8-4-4-4-12` hex digits with hyphens): the only form on the wire,
    /// in transcripts and in the audit log.
    pub const TEXT_LEN: usize = 36;

    /// Parses the 36-character hyphenated form only (no braces, URN or 32-digit forms), in either
    /// case, as a KME may send it.
    pub fn parse(s: &str) -> Result<Self, Error> {
        let b = s.as_bytes();
        let shape_ok = b.len() == Self::TEXT_LEN
            && b.iter().enumerate().all(|(i, c)| match i {
                8 | 13 | 18 | 23 => *c == b'-',
                _ => c.is_ascii_hexdigit(),
            });
        if !shape_ok {
            return Err(Error::InvalidKeyId(excerpt(s)));
        }
        Uuid::try_parse(s)
            .map(Self)
            .map_err(|_| Error::InvalidKeyId(excerpt(s)))
    }

    /// Parses only the canonical (lower-case) text, as the wire format carries it: any other
    /// spelling of the same UUID is refused, so a signed message has one encoding.
    pub fn parse_canonical(bytes: &[u8]) -> Result<Self, Error> {
        let text = core::str::from_utf8(bytes).map_err(|_| Error::InvalidKeyId(String::new()))?;
        let id = Self::parse(text)?;
        if id.text().as_bytes() != bytes {
            return Err(Error::InvalidKeyId(excerpt(text)));
        }
        Ok(id)
    }

    /// A random (version 4) UUID from 16 bytes of entropy.
    pub fn from_random_bytes(bytes: [u8; 16]) -> Self {
        Self(uuid::Builder::from_random_bytes(bytes).into_uuid())
    }

    /// The 16 raw bytes.
    pub fn as_bytes(&self) -> &[u8; 16] {
        self.0.as_bytes()
    }

    /// The canonical text: lower-case hyphenated, [`KeyId::TEXT_LEN`] bytes.
    pub fn text(&self) -> TextForm {
        let mut buf = [0u8; Self::TEXT_LEN];
        self.0.hyphenated().encode_lower(&mut buf);
        TextForm(buf)
    }
}

/// The canonical text of a [`KeyId`], without allocating.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct TextForm([u8; KeyId::TEXT_LEN]);

impl TextForm {
    /// The ASCII bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// The text.
    pub fn as_str(&self) -> &str {
        core::str::from_utf8(&self.0).unwrap_or_default()
    }
}

/// Truncates untrusted text for error messages so a hostile peer cannot make them huge.
fn excerpt(s: &str) -> String {
    const MAX: usize = 80;
    let mut out: String = s.chars().filter(|c| !c.is_control()).take(MAX).collect();
    if s.chars().count() > MAX {
        out.push('…');
    }
    out
}

impl fmt::Debug for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KeyId({})", self.text().as_str())
    }
}

impl fmt::Display for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.text().as_str())
    }
}

impl core::str::FromStr for KeyId {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn key_ids_accept_only_the_hyphenated_uuid_form() {
        let id = KeyId::parse("bc490419-7d60-487f-adc1-4ddcc177c139").unwrap();
        assert_eq!(id.to_string(), "bc490419-7d60-487f-adc1-4ddcc177c139");
        let upper = KeyId::parse("BC490419-7D60-487F-ADC1-4DDCC177C139").unwrap();
        assert_eq!(id, upper, "UUIDs are case-insensitive on input");
        for bad in [
            "",
            "bc4904197d60487fadc14ddcc177c139",
            "{bc490419-7d60-487f-adc1-4ddcc177c139}",
            "urn:uuid:bc490419-7d60-487f-adc1-4ddcc177c139",
            "bc490419-7d60-487f-adc1-4ddcc177c13g",
            "bc490419-7d60-487f-adc1_4ddcc177c139",
            "bc490419-7d60-487f-adc1-4ddcc177c1390",
            "ébc490419-7d60-487f-adc1-4ddcc177c13",
        ] {
            assert!(KeyId::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_wire_takes_only_the_canonical_spelling() {
        let text = b"bc490419-7d60-487f-adc1-4ddcc177c139";
        let id = KeyId::parse_canonical(text).unwrap();
        assert_eq!(id.text().as_bytes(), text);
        assert!(KeyId::parse_canonical(b"BC490419-7d60-487f-adc1-4ddcc177c139").is_err());
        assert!(KeyId::parse_canonical(&[0xff; 36]).is_err());
    }

    proptest::proptest! {
        /// What the `keymix_key_id` fuzz target checks, on stable: no input panics, and an
        /// accepted ID's canonical text is its input in lower case.
        #[test]
        fn parsing_any_text_never_panics_and_round_trips(
            s in "[0-9a-fA-F-]{36}|[0-9a-f]{8}-[0-9a-fA-F]{4}-[0-9a-f]{4}-[0-9A-F]{4}-[0-9a-f]{12}|\\PC{0,40}"
        ) {
            if let Ok(id) = KeyId::parse(&s) {
                let text = id.text();
                proptest::prop_assert_eq!(text.as_str(), s.to_ascii_lowercase());
                proptest::prop_assert_eq!(KeyId::parse_canonical(text.as_bytes()).ok(), Some(id));
            }
            if let Ok(id) = KeyId::parse_canonical(s.as_bytes()) {
                let text = id.text();
                proptest::prop_assert_eq!(text.as_bytes(), s.as_bytes());
            }
        }

        #[test]
        fn every_uuid_has_one_wire_spelling(bytes in proptest::prelude::any::<[u8; 16]>()) {
            let id = KeyId::from_random_bytes(bytes);
            let text = id.to_string();
            proptest::prop_assert_eq!(KeyId::parse_canonical(text.as_bytes()).ok(), Some(id));
            let upper = text.to_ascii_uppercase();
            proptest::prop_assert_eq!(KeyId::parse(&upper).ok(), Some(id));
            if upper != text {
                proptest::prop_assert!(KeyId::parse_canonical(upper.as_bytes()).is_err());
            }
        }
    }

    #[test]
    fn random_key_ids_are_version_4_and_errors_are_bounded() {
        let id = KeyId::from_random_bytes([0xff; 16]);
        let text = id.to_string();
        assert_eq!(&text[14..15], "4");
        assert_eq!(KeyId::parse(&text).unwrap(), id);
        let long = "a\u{7}".repeat(200);
        let Err(Error::InvalidKeyId(e)) = KeyId::parse(&long) else {
            panic!("refused")
        };
        assert!(e.chars().count() <= 81 && !e.contains('\u{7}'));
    }
}
