//! Key files: permission checks (private key files must not be group- or world-accessible) and
//! the ML-DSA-65 key text formats of `qgw genkey --mldsa` / `qgw pubkey --mldsa`.
//!
//! * An ML-DSA private key file holds the Base64 of the 32-byte seed ξ (FIPS 204 §6.1 allows a
//!   key to be stored as its seed), one line, like a WireGuard key.
//! * An ML-DSA public key file holds the Base64 of the 1952-byte verifying key, one line.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use keymix::Secret;
use keymix::mldsa::{SEED_LEN, SigningKey, VerifyingKey};
use zeroize::Zeroizing;

/// What is wrong with a key file, naming the file.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum KeyFileError {
    /// The file could not be read.
    #[error("{path}: cannot read: {reason}")]
    Unreadable {
        /// The file.
        path: String,
        /// The OS error.
        reason: String,
    },
    /// A private key file is readable or writable by group or others.
    #[error(
        "{path}: private key file has mode {mode:04o}; it must not be group- or world-accessible (chmod 600 {path})"
    )]
    TooOpen {
        /// The file.
        path: String,
        /// Its permission bits.
        mode: u32,
    },
    /// The contents are not the expected key.
    #[error("{path}: {problem}")]
    Malformed {
        /// The file (or `stdin`).
        path: String,
        /// What is wrong.
        problem: &'static str,
    },
}

/// Reads a private key file after checking that only its owner can access it.
pub fn read_private(path: &Path) -> Result<Zeroizing<String>, KeyFileError> {
    let shown = path.display().to_string();
    let unreadable = |e: std::io::Error| KeyFileError::Unreadable {
        path: shown.clone(),
        reason: e.to_string(),
    };
    let mode = fs::metadata(path).map_err(unreadable)?.permissions().mode() & 0o7777;
    if mode & 0o077 != 0 {
        return Err(KeyFileError::TooOpen { path: shown, mode });
    }
    fs::read_to_string(path)
        .map(Zeroizing::new)
        .map_err(unreadable)
}

/// A new ML-DSA-65 private key, as file text.
pub fn generate_mldsa_private() -> Result<Zeroizing<String>, keymix::Error> {
    let key = SigningKey::generate()?;
    let seed = key
        .seed()
        .map(Secret::expose)
        .copied()
        .unwrap_or([0; SEED_LEN]);
    let seed = Zeroizing::new(seed);
    Ok(Zeroizing::new(STANDARD.encode(*seed)))
}

/// Parses ML-DSA-65 private key text (`origin` names the file for errors).
pub fn parse_mldsa_private(text: &str, origin: &str) -> Result<SigningKey, KeyFileError> {
    let bytes = Zeroizing::new(
        STANDARD
            .decode(text.trim())
            .map_err(|_| malformed(origin, "not Base64"))?,
    );
    let seed = Secret::<SEED_LEN>::from_slice(&bytes)
        .ok_or_else(|| malformed(origin, "not a 32-byte ML-DSA-65 seed (qgw genkey --mldsa)"))?;
    Ok(SigningKey::from_seed(seed))
}

/// Loads an ML-DSA-65 private key file (permissions checked).
pub fn load_mldsa_private(path: &Path) -> Result<SigningKey, KeyFileError> {
    let text = read_private(path)?;
    parse_mldsa_private(&text, &path.display().to_string())
}

/// The public key text of a signing key.
pub fn mldsa_public_text(key: &SigningKey) -> String {
    STANDARD.encode(key.verifying_key().as_bytes())
}

/// Parses ML-DSA-65 public key text.
pub fn parse_mldsa_public(text: &str, origin: &str) -> Result<VerifyingKey, KeyFileError> {
    let bytes = STANDARD
        .decode(text.trim())
        .map_err(|_| malformed(origin, "not Base64"))?;
    VerifyingKey::from_bytes(&bytes).map_err(|_| {
        malformed(
            origin,
            "not a 1952-byte ML-DSA-65 public key (qgw pubkey --mldsa)",
        )
    })
}

/// Loads an ML-DSA-65 public key file.
pub fn load_mldsa_public(path: &Path) -> Result<VerifyingKey, KeyFileError> {
    let shown = path.display().to_string();
    let text = fs::read_to_string(path).map_err(|e| KeyFileError::Unreadable {
        path: shown.clone(),
        reason: e.to_string(),
    })?;
    parse_mldsa_public(&text, &shown)
}

fn malformed(origin: &str, problem: &'static str) -> KeyFileError {
    KeyFileError::Malformed {
        path: origin.to_string(),
        problem,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn generated_keys_round_trip_through_their_text() {
        let private = generate_mldsa_private().expect("os randomness");
        let key = parse_mldsa_private(&private, "a.mldsa").expect("parses");
        let public = mldsa_public_text(&key);
        let vk = parse_mldsa_public(&public, "a.mldsa.pub").expect("parses");
        let sig = key.sign(b"m", b"ctx").expect("signs");
        assert!(vk.verify(b"m", b"ctx", &sig).is_ok());
        assert_eq!(
            parse_mldsa_private(&private, "x")
                .expect("again")
                .verifying_key(),
            &vk,
            "seed determines the key"
        );
    }

    #[test]
    fn malformed_text_names_the_file() {
        let err = parse_mldsa_private("not base64!", "/etc/qgw/a.mldsa").expect_err("refused");
        assert!(err.to_string().starts_with("/etc/qgw/a.mldsa: "));
        assert!(parse_mldsa_private(&STANDARD.encode([0u8; 31]), "f").is_err());
        assert!(parse_mldsa_public(&STANDARD.encode([0u8; 100]), "f").is_err());
    }

    #[test]
    fn group_or_world_accessible_private_keys_are_refused() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("a.mldsa");
        let mut f = fs::File::create(&path).expect("create");
        f.write_all(generate_mldsa_private().expect("rng").as_bytes())
            .expect("write");
        for (mode, ok) in [
            (0o600, true),
            (0o400, true),
            (0o640, false),
            (0o604, false),
            (0o660, false),
        ] {
            fs::set_permissions(&path, fs::Permissions::from_mode(mode)).expect("chmod");
            let result = load_mldsa_private(&path);
            assert_eq!(result.is_ok(), ok, "mode {mode:o}");
            if !ok {
                assert!(matches!(result, Err(KeyFileError::TooOpen { .. })));
            }
        }
    }
}
