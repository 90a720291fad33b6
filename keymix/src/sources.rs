//! The set of key sources that went into an epoch, as bound into its transcript and reported in
//! metrics (`x25519+mlkem+qkd`, `x25519+mlkem`).

use core::fmt;

/// Which secrets an epoch's keys depend on. X25519 is always present (WireGuard's Noise handshake
/// mixes it with the PSK keymix derives); ML-KEM is always present when keymix derives a PSK; QKD
/// is present when the policy asked for it and the KME delivered.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct KeySources {
    bits: u8,
}

impl KeySources {
    /// Bit for X25519 (WireGuard Noise_IKpsk2 `es`, `ss`, `ee`, `se`).
    pub const X25519: u8 = 0x01;
    /// Bit for ML-KEM-768.
    pub const MLKEM: u8 = 0x02;
    /// Bit for a QKD key from the KME.
    pub const QKD: u8 = 0x04;

    /// X25519 + ML-KEM: the fallback of `qkd.policy: preferred`, and `qkd.policy: off`.
    pub const X25519_MLKEM: Self = Self {
        bits: Self::X25519 | Self::MLKEM,
    };
    /// X25519 + ML-KEM + QKD: the full hybrid.
    pub const X25519_MLKEM_QKD: Self = Self {
        bits: Self::X25519 | Self::MLKEM | Self::QKD,
    };

    /// The set for an epoch with or without a QKD key.
    pub fn hybrid(with_qkd: bool) -> Self {
        if with_qkd {
            Self::X25519_MLKEM_QKD
        } else {
            Self::X25519_MLKEM
        }
    }

    /// Decodes the wire/transcript byte; `None` for unknown bits or a set without X25519 and ML-KEM
    /// (keymix never derives a key from less).
    pub fn from_bits(bits: u8) -> Option<Self> {
        let known = Self::X25519 | Self::MLKEM | Self::QKD;
        let required = Self::X25519 | Self::MLKEM;
        (bits & !known == 0 && bits & required == required).then_some(Self { bits })
    }

    /// The encoded byte, as bound into the transcript.
    pub fn bits(self) -> u8 {
        self.bits
    }

    /// Whether a QKD key is part of the set.
    pub fn has_qkd(self) -> bool {
        self.bits & Self::QKD != 0
    }

    /// The sources by name, in label order (`qgw status`, the audit log).
    pub fn names(self) -> &'static [&'static str] {
        if self.has_qkd() {
            &["x25519", "mlkem", "qkd"]
        } else {
            &["x25519", "mlkem"]
        }
    }

    /// The metrics label value, e.g. `x25519+mlkem+qkd`.
    pub fn label(self) -> &'static str {
        if self.has_qkd() {
            "x25519+mlkem+qkd"
        } else {
            "x25519+mlkem"
        }
    }
}

impl fmt::Display for KeySources {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.label())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decoding_refuses_unknown_or_weaker_sets() {
        assert_eq!(KeySources::from_bits(0x03), Some(KeySources::X25519_MLKEM));
        assert_eq!(
            KeySources::from_bits(0x07),
            Some(KeySources::X25519_MLKEM_QKD)
        );
        assert_eq!(
            KeySources::from_bits(0x01),
            None,
            "X25519 alone is not hybrid"
        );
        assert_eq!(KeySources::from_bits(0x05), None, "no key without ML-KEM");
        assert_eq!(KeySources::from_bits(0x0F), None, "unknown bit");
    }

    #[test]
    fn labels_name_the_sources() {
        assert_eq!(KeySources::hybrid(true).to_string(), "x25519+mlkem+qkd");
        assert_eq!(KeySources::hybrid(false).to_string(), "x25519+mlkem");
    }
}
