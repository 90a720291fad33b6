//! Loading PEM certificates and private keys for mutual TLS (ETSI GS QKD 014 §4: both ends
//! authenticate with certificates), and the one rustls crypto provider qkd-link uses.
//!
//! Private key files must not be readable or writable by group or others: a key file with any of
//! the `0o077` permission bits set is refused with [`Error::InsecureKeyFile`], before it is read.
//! Key file contents are held in zeroizing buffers while parsed.

use std::path::Path;
use std::sync::Arc;

use rustls::RootCertStore;
use rustls::crypto::CryptoProvider;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use zeroize::Zeroizing;

use crate::error::Error;

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

/// Refuses a private key file that group or others may access.
pub fn check_key_permissions(path: &Path) -> Result<(), Error> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let meta = std::fs::metadata(path).map_err(|source| Error::Io {
            path: path.to_path_buf(),
            source,
        })?;
        let mode = meta.permissions().mode() & 0o7777;
        if mode & 0o077 != 0 {
            return Err(Error::InsecureKeyFile {
                path: path.to_path_buf(),
                mode,
            });
        }
    }
    Ok(())
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

/// The private key in a PEM file (PKCS#8, SEC1 or PKCS#1), after the permission check.
pub fn load_private_key(path: &Path) -> Result<PrivateKeyDer<'static>, Error> {
    check_key_permissions(path)?;
    let bytes = Zeroizing::new(read(path)?);
    PrivateKeyDer::from_pem_slice(&bytes).map_err(|e| Error::Pem {
        path: path.to_path_buf(),
        problem: format!("no usable private key: {e}"),
    })
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
