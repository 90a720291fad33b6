//! Reading a private key file (the client key of ETSI GS QKD 014 §4's mutual TLS, the
//! simulator's server keys, and the gateway's own key files) without a check-then-read race.
//!
//! The file is opened once, without following a symbolic link in its last component
//! (`O_NOFOLLOW`; and `O_NONBLOCK`, so a FIFO cannot stall the open), and every check is made with
//! `fstat` on the opened descriptor, so what is checked is what is read: a regular file, owned by
//! the effective user of the process or by root (OpenSSH's rule for key files), with no group or
//! other permission bits, at most [`MAX_KEY_FILE`] bytes. The contents are read into a zeroizing
//! buffer of fixed size that never reallocates.

use std::fs::{File, OpenOptions};
use std::io::Read;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::Path;

use zeroize::Zeroizing;

/// Largest private key file read (a PEM RSA-4096 key is about 3.3 KiB).
pub const MAX_KEY_FILE: u64 = 64 * 1024;

/// Why a private key file is refused. The caller names the file.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KeyFileProblem {
    /// Opening, `fstat` or reading failed.
    #[error("cannot read: {0}")]
    Io(#[source] std::io::Error),
    /// The path names a symbolic link.
    #[error(
        "is a symbolic link; private key files are opened without following links (name the file itself)"
    )]
    Symlink,
    /// Not a regular file (a directory, FIFO, device or socket).
    #[error("is not a regular file")]
    NotAFile,
    /// Owned by someone other than the process's effective user and root.
    #[error(
        "is owned by uid {owner}; it must be owned by the user this process runs as (uid {euid}) or by root (chown)"
    )]
    Owner {
        /// The file's owner.
        owner: u32,
        /// The process's effective uid.
        euid: u32,
    },
    /// Readable, writable or executable by group or others.
    #[error("has mode {mode:04o}; it must not be group- or world-accessible (chmod 600)")]
    Mode {
        /// The permission bits.
        mode: u32,
    },
    /// Larger than [`MAX_KEY_FILE`], or grew while it was read.
    #[error("is larger than {MAX_KEY_FILE} bytes (or grew while being read)")]
    TooLarge,
}

/// The effective uid of this process.
pub fn effective_uid() -> u32 {
    nix::unistd::geteuid().as_raw()
}

/// Reads the private key file `path` after the checks above, for this process.
pub fn read_private_file(path: &Path) -> Result<Zeroizing<Vec<u8>>, KeyFileProblem> {
    read_private_file_as(path, effective_uid())
}

/// As [`read_private_file`], for a process whose effective uid is `euid` (tests check the owner
/// rule with it whoever runs them).
pub fn read_private_file_as(path: &Path, euid: u32) -> Result<Zeroizing<Vec<u8>>, KeyFileProblem> {
    let mut file = open(path)?;
    let meta = file.metadata().map_err(KeyFileProblem::Io)?;
    if !meta.file_type().is_file() {
        return Err(KeyFileProblem::NotAFile);
    }
    let owner = meta.uid();
    if owner != euid && owner != 0 {
        return Err(KeyFileProblem::Owner { owner, euid });
    }
    let mode = meta.mode() & 0o7777;
    if mode & 0o077 != 0 {
        return Err(KeyFileProblem::Mode { mode });
    }
    if meta.len() > MAX_KEY_FILE {
        return Err(KeyFileProblem::TooLarge);
    }
    // One byte more than the file holds: filling it means the file grew since `fstat`.
    let size = usize::try_from(meta.len()).map_err(|_| KeyFileProblem::TooLarge)? + 1;
    let mut buf = Zeroizing::new(vec![0u8; size]);
    let mut filled = 0;
    loop {
        match file.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(KeyFileProblem::Io(e)),
        }
        if filled == size {
            return Err(KeyFileProblem::TooLarge);
        }
    }
    buf.truncate(filled);
    Ok(buf)
}

fn open(path: &Path) -> Result<File, KeyFileProblem> {
    OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path)
        .map_err(|e| match e.raw_os_error() {
            Some(libc::ELOOP) => KeyFileProblem::Symlink,
            _ => KeyFileProblem::Io(e),
        })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    fn key(dir: &Path, mode: u32) -> std::path::PathBuf {
        let path = dir.join("k.key");
        std::fs::write(&path, b"secret").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
        path
    }

    #[test]
    fn the_owner_must_be_the_effective_user_or_root() {
        let dir = tempfile::tempdir().unwrap();
        let path = key(dir.path(), 0o600);
        let me = effective_uid();
        assert_eq!(
            read_private_file_as(&path, me).unwrap().as_slice(),
            b"secret"
        );
        if me != 0 {
            // Not root: our file, as seen by a process of another user, whoever runs the test.
            let other = if me == 65534 { 65533 } else { 65534 };
            match read_private_file_as(&path, other) {
                Err(KeyFileProblem::Owner { owner, euid }) => {
                    assert_eq!((owner, euid), (me, other));
                }
                r => panic!("expected Owner, got {r:?}"),
            }
            return;
        }
        // Root (CI): our file is root's, which every user's process accepts; given to nobody,
        // it is refused by root's process and accepted by nobody's.
        assert!(read_private_file_as(&path, 1000).is_ok(), "root-owned");
        std::os::unix::fs::chown(&path, Some(65534), None).unwrap();
        match read_private_file(&path) {
            Err(KeyFileProblem::Owner { owner, euid }) => assert_eq!((owner, euid), (65534, 0)),
            r => panic!("expected Owner, got {r:?}"),
        }
        assert!(read_private_file_as(&path, 65534).is_ok());
    }

    #[test]
    fn symlinks_other_file_types_open_modes_and_big_files_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = key(dir.path(), 0o600);
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(&path, &link).unwrap();
        assert!(matches!(
            read_private_file(&link),
            Err(KeyFileProblem::Symlink)
        ));
        assert!(matches!(
            read_private_file(dir.path()),
            Err(KeyFileProblem::NotAFile)
        ));
        for mode in [0o640, 0o604, 0o610, 0o601] {
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
            assert!(
                matches!(read_private_file(&path), Err(KeyFileProblem::Mode { mode: m }) if m == mode),
                "{mode:o}"
            );
        }
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o400)).unwrap();
        assert!(read_private_file(&path).is_ok());
        let big = dir.path().join("big.key");
        std::fs::write(&big, vec![b'a'; MAX_KEY_FILE as usize + 1]).unwrap();
        std::fs::set_permissions(&big, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert!(matches!(
            read_private_file(&big),
            Err(KeyFileProblem::TooLarge)
        ));
        let missing = dir.path().join("missing.key");
        assert!(matches!(
            read_private_file(&missing),
            Err(KeyFileProblem::Io(_))
        ));
    }
}
