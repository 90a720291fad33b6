//! Key files: reading private key files safely and the ML-DSA-65 key text formats of
//! `qgw genkey --mldsa` / `qgw pubkey --mldsa`.
//!
//! * A private key file (X25519 key, PSK, ML-DSA seed) is read by qkd-link's
//!   [`qkd_link::keyfile`], the one reader of key files: opened once without following a
//!   symbolic link (`O_NOFOLLOW`), then checked with `fstat` on the opened descriptor, so there is
//!   no check-then-read race. It must be a regular file owned by the user qgw runs as or by root,
//!   with no group or other permission bits (docs/design.md §5).
//! * An ML-DSA private key file holds the Base64 of the 32-byte seed ξ (FIPS 204 §6.1 allows a
//!   key to be stored as its seed), one line, like a WireGuard key.
//! * An ML-DSA public key file holds the Base64 of the 1952-byte verifying key, one line.

use std::fs;
use std::path::Path;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use keymix::Secret;
use keymix::mldsa::{SEED_LEN, SigningKey, VerifyingKey};
use qkd_link::keyfile::KeyFileProblem;
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
    /// A symbolic link, not a regular file, too large, or owned by neither qgw's user nor root.
    #[error("{path}: private key file {problem}")]
    Refused {
        /// The file.
        path: String,
        /// What is wrong.
        problem: String,
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

/// Reads a private key file (see the module documentation for what is refused).
pub fn read_private(path: &Path) -> Result<Zeroizing<String>, KeyFileError> {
    read_private_as(path, qkd_link::keyfile::effective_uid())
}

/// As [`read_private`], for a process whose effective uid is `euid` (tests of the owner rule).
fn read_private_as(path: &Path, euid: u32) -> Result<Zeroizing<String>, KeyFileError> {
    let shown = path.display().to_string();
    let read = qkd_link::keyfile::read_private_file_as(path, euid);
    let mut bytes = read.map_err(|p| match p {
        KeyFileProblem::Io(e) => KeyFileError::Unreadable {
            path: shown.clone(),
            reason: e.to_string(),
        },
        KeyFileProblem::Mode { mode } => KeyFileError::TooOpen {
            path: shown.clone(),
            mode,
        },
        problem => KeyFileError::Refused {
            path: shown.clone(),
            problem: problem.to_string(),
        },
    })?;
    match String::from_utf8(std::mem::take(&mut *bytes)) {
        Ok(text) => Ok(Zeroizing::new(text)),
        Err(e) => {
            drop(Zeroizing::new(e.into_bytes()));
            Err(malformed(&shown, "not UTF-8 text"))
        }
    }
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
    use std::os::unix::fs::PermissionsExt;

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

    /// A 0600 ML-DSA key file in `dir`.
    fn key_file(dir: &Path) -> std::path::PathBuf {
        let path = dir.join("a.mldsa");
        fs::write(&path, generate_mldsa_private().expect("rng").as_bytes()).expect("write");
        fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).expect("chmod");
        path
    }

    #[test]
    fn a_symlink_to_a_valid_key_is_refused() {
        let dir = tempfile::tempdir().expect("temp dir");
        let key = key_file(dir.path());
        let link = dir.path().join("link.mldsa");
        std::os::unix::fs::symlink(&key, &link).expect("symlink");
        assert!(load_mldsa_private(&key).is_ok());
        let e = load_mldsa_private(&link).expect_err("refused").to_string();
        assert!(e.starts_with(&format!("{}: ", link.display())), "{e}");
        assert!(e.contains("symbolic link"), "{e}");
    }

    #[test]
    fn a_key_owned_by_another_user_is_refused() {
        let dir = tempfile::tempdir().expect("temp dir");
        let key = key_file(dir.path());
        let me = qkd_link::keyfile::effective_uid();
        let shows_owner = |e: &str, owner: u32| {
            e.starts_with(&format!("{}: ", key.display()))
                && e.contains(&format!("owned by uid {owner}"))
                && e.contains("chown")
        };
        if me == 0 {
            // As root (CI), the file is given to nobody; the process's own uid is checked.
            std::os::unix::fs::chown(&key, Some(65534), Some(65534)).expect("chown as root");
            let e = load_mldsa_private(&key).expect_err("refused").to_string();
            assert!(shows_owner(&e, 65534), "{e}");
        } else {
            // Not root: our file, as a process of another user sees it.
            let other = if me == 65534 { 65533 } else { 65534 };
            let e = read_private_as(&key, other)
                .expect_err("refused")
                .to_string();
            assert!(shows_owner(&e, me), "{e}");
        }
    }

    #[test]
    fn only_regular_files_are_read_and_a_fifo_does_not_block() {
        let dir = tempfile::tempdir().expect("temp dir");
        let fifo = dir.path().join("a.fifo");
        let made = std::process::Command::new("mkfifo")
            .args(["-m", "600"])
            .arg(&fifo)
            .status()
            .expect("mkfifo");
        assert!(made.success());
        let (tx, rx) = std::sync::mpsc::channel();
        let path = fifo.clone();
        std::thread::spawn(move || tx.send(read_private(&path).map(|_| ())));
        let result = rx
            .recv_timeout(std::time::Duration::from_secs(5))
            .expect("returns without a writer on the FIFO");
        let e = result.expect_err("refused").to_string();
        assert!(e.contains("not a regular file"), "{e}");
        fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o700)).expect("chmod");
        let e = read_private(dir.path()).expect_err("refused").to_string();
        assert!(e.contains("not a regular file"), "{e}");
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
