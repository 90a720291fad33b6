//! Loading PEM certificates and private keys for mutual TLS (ETSI GS QKD 014 §4: both ends
//! authenticate with certificates), and the one rustls crypto provider qkd-link uses.
//!
//! Private key files are read by [`crate::keyfile`]: opened once without following a symbolic
//! link and checked with `fstat` on the opened descriptor. A key file with any of the `0o077`
//! permission bits set is refused with [`Error::InsecureKeyFile`]; a symbolic link, a file that is
//! not regular or too large, or one owned by neither this process's user nor root with
//! [`Error::KeyFileRefused`]. Key file contents are held in zeroizing buffers while parsed.

use std::path::Path;
use std::sync::Arc;

use rustls::RootCertStore;
use rustls::crypto::CryptoProvider;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use zeroize::Zeroizing;

use crate::error::Error;
use crate::keyfile::{self, KeyFileProblem};

/// The rustls provider for every client and server in qkd-link: `ring` (builds without cmake or
/// a C toolchain beyond `cc`, quick to compile; docs/dependencies.md says why).
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn read(path: &Path) -> Result<Vec<u8>, Error> {
    std::fs::read(path).map_err(|source| Error::Io {
        path: path.to_path_buf(),
        source,
    })
}

/// Every certificate in a PEM file (a leaf followed by intermediates, or a CA bundle).
pub fn load_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, Error> {
    let bytes = read(path)?;
    let certs = CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| Error::Pem {
            path: path.to_path_buf(),
            problem: format!("invalid PEM: {e}"),
        })?;
    if certs.is_empty() {
        return Err(Error::Pem {
            path: path.to_path_buf(),
            problem: "no CERTIFICATE block found".into(),
        });
    }
    Ok(certs)
}

/// The private key in a PEM file (PKCS#8, SEC1 or PKCS#1), read by [`keyfile::read_private_file`]
/// (symbolic links, other owners and group/other access refused).
pub fn load_private_key(path: &Path) -> Result<PrivateKeyDer<'static>, Error> {
    let bytes: Zeroizing<Vec<u8>> =
        keyfile::read_private_file(path).map_err(|p| key_file_error(path, p))?;
    PrivateKeyDer::from_pem_slice(&bytes).map_err(|e| Error::Pem {
        path: path.to_path_buf(),
        problem: format!("no usable private key: {e}"),
    })
}

/// The error for a key file `path` that [`keyfile`] refused.
fn key_file_error(path: &Path, problem: KeyFileProblem) -> Error {
    let path = path.to_path_buf();
    match problem {
        KeyFileProblem::Io(source) => Error::Io { path, source },
        KeyFileProblem::Mode { mode } => Error::InsecureKeyFile { path, mode },
        problem => Error::KeyFileRefused { path, problem },
    }
}

/// A root store holding every certificate of a CA bundle.
pub fn load_roots(path: &Path) -> Result<RootCertStore, Error> {
    let mut roots = RootCertStore::empty();
    for cert in load_certs(path)? {
        roots.add(cert).map_err(|e| Error::Pem {
            path: path.to_path_buf(),
            problem: format!("not a usable CA certificate: {e}"),
        })?;
    }
    Ok(roots)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    #[test]
    fn group_readable_key_is_refused_with_the_file_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sae.key");
        std::fs::write(
            &path,
            "-----BEGIN PRIVATE KEY-----\n-----END PRIVATE KEY-----\n",
        )
        .unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o640)).unwrap();
        let err = load_private_key(&path).unwrap_err();
        assert!(matches!(err, Error::InsecureKeyFile { mode: 0o640, .. }));
        let text = err.to_string();
        assert!(
            text.contains("sae.key") && text.contains("chmod 600"),
            "{text}"
        );
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o604)).unwrap();
        assert!(load_private_key(&path).is_err());
    }

    const KEY: &str = "-----BEGIN PRIVATE KEY-----\n-----END PRIVATE KEY-----\n";

    #[test]
    fn a_symlink_to_a_0600_key_is_refused_with_the_file_named() {
        let dir = tempfile::tempdir().unwrap();
        let key = dir.path().join("sae.key");
        std::fs::write(&key, KEY).unwrap();
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
        let link = dir.path().join("link.key");
        std::os::unix::fs::symlink(&key, &link).unwrap();
        assert!(load_private_key(&key).is_ok(), "the file itself is read");
        let err = load_private_key(&link).unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("link.key") && text.contains("symbolic link"),
            "{text}"
        );
    }

    #[test]
    fn a_key_owned_by_another_user_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let key = dir.path().join("sae.key");
        std::fs::write(&key, KEY).unwrap();
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
        let me = keyfile::effective_uid();
        let (text, owner) = if me == 0 {
            // As root (CI), the file is given to nobody; the process's own uid is checked.
            std::os::unix::fs::chown(&key, Some(65534), Some(65534)).unwrap();
            (load_private_key(&key).unwrap_err().to_string(), 65534)
        } else {
            // Not root: our file, as a process of another user sees it.
            let other = if me == 65534 { 65533 } else { 65534 };
            let refused = keyfile::read_private_file_as(&key, other).unwrap_err();
            (key_file_error(&key, refused).to_string(), me)
        };
        assert!(
            text.contains("sae.key") && text.contains(&format!("owned by uid {owner}")),
            "{text}"
        );
    }

    #[test]
    fn missing_or_empty_files_are_reported() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("nope.pem");
        assert!(matches!(load_certs(&missing), Err(Error::Io { .. })));
        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "").unwrap();
        let err = load_certs(&empty).unwrap_err();
        assert!(err.to_string().contains("empty.pem"), "{err}");
        let key = dir.path().join("k.key");
        std::fs::write(&key, "junk").unwrap();
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert!(matches!(load_private_key(&key), Err(Error::Pem { .. })));
    }
}
