//! `qkd-kme-sim pki`: a demo PKI for mutual TLS (ETSI GS QKD 014 §4).
//!
//! Writes `ca.pem` (a self-signed CA, path length 0), `kme_a.pem`/`kme_a.key` and
//! `kme_b.pem`/`kme_b.key` (server certificates, CN = KME ID, SAN 127.0.0.1, ::1, localhost and
//! every `--san`), and `sae_a.pem`/`sae_a.key`, `sae_b.pem`/`sae_b.key` (client certificates,
//! CN = SAE ID). Keys are ECDSA P-256, written with mode 0600; certificates are valid from one day
//! ago for five years. The CA's private key is not written: re-run the command to re-issue.
//! With `--from-config FILE` it writes instead one server certificate per KME of that simulator
//! configuration (at the KME's `cert`/`key` paths) and one client certificate per SAE
//! (`<lower-case SAE ID>.pem`/`.key`); trusted nodes have no listener and get none.

use std::io::Write as _;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SanType,
};

use super::config::SimConfig;
use super::error::SimError;

/// The entities of the demo PKI: (file stem, common name, is a server).
pub const ENTITIES: [(&str, &str, bool); 4] = [
    ("kme_a", "KME_A", true),
    ("kme_b", "KME_B", true),
    ("sae_a", "SAE_A", false),
    ("sae_b", "SAE_B", false),
];

const VALIDITY: Duration = Duration::from_secs(5 * 365 * 24 * 3600);
const BACKDATE: Duration = Duration::from_secs(24 * 3600);

fn pki_err(e: rcgen::Error) -> SimError {
    SimError::Pki(e.to_string())
}

fn validity(params: &mut CertificateParams) {
    let since_epoch = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or(Duration::ZERO);
    let now = rcgen::date_time_ymd(1970, 1, 1) + since_epoch;
    params.not_before = now - BACKDATE;
    params.not_after = now + VALIDITY;
}

fn san(name: &str) -> Result<SanType, SimError> {
    if let Ok(ip) = name.parse::<IpAddr>() {
        return Ok(SanType::IpAddress(ip));
    }
    let usage = || {
        SimError::Usage(format!(
            "--san {name:?} is neither an IP address nor a DNS name"
        ))
    };
    rustls_pki_types::DnsName::try_from(name).map_err(|_| usage())?;
    let dns = rcgen::string::Ia5String::try_from(name).map_err(|_| usage())?;
    Ok(SanType::DnsName(dns))
}

/// Generates the demo PKI into `out` (created if missing). Existing files are kept unless `force`.
pub fn generate(out: &Path, extra_sans: &[String], force: bool) -> Result<Vec<PathBuf>, SimError> {
    generate_entities(out, &ENTITIES, extra_sans, force)
}

/// The entities a simulator configuration needs: `(file stem, common name, is a server)` for
/// every KME (stem of its `cert`, default the lower-case ID) and every SAE (lower-case ID).
pub fn entities_of(cfg: &SimConfig) -> Result<Vec<(String, String, bool)>, SimError> {
    let mut out = Vec::new();
    for k in &cfg.kmes {
        let stem = match &k.cert {
            None => k.id.as_str().to_lowercase(),
            Some(c) => c
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default(),
        };
        let key_matches = k
            .key
            .as_ref()
            .is_none_or(|key| key.file_name() == Some(format!("{stem}.key").as_ref()));
        if stem.is_empty()
            || !key_matches
            || k.cert
                .as_ref()
                .is_some_and(|c| c.parent() != Some(Path::new("")))
        {
            return Err(SimError::Usage(format!(
                "KME {}: --from-config writes STEM.pem and STEM.key side by side; give the KME \
                 `cert: STEM.pem` and `key: STEM.key` (or neither)",
                k.id
            )));
        }
        out.push((stem, k.id.to_string(), true));
        for sae in &k.saes {
            out.push((sae.as_str().to_lowercase(), sae.to_string(), false));
        }
    }
    Ok(out)
}

/// As [`generate`], for every KME and SAE of a simulator configuration ([`entities_of`]).
pub fn generate_for(
    out: &Path,
    cfg: &SimConfig,
    extra_sans: &[String],
    force: bool,
) -> Result<Vec<PathBuf>, SimError> {
    let owned = entities_of(cfg)?;
    let entities: Vec<(&str, &str, bool)> = owned
        .iter()
        .map(|(stem, cn, server)| (stem.as_str(), cn.as_str(), *server))
        .collect();
    generate_entities(out, &entities, extra_sans, force)
}

/// As [`generate`], for any set of `(file stem, common name, is a server)` entities.
pub fn generate_entities(
    out: &Path,
    entities: &[(&str, &str, bool)],
    extra_sans: &[String],
    force: bool,
) -> Result<Vec<PathBuf>, SimError> {
    std::fs::create_dir_all(out).map_err(|source| SimError::Write {
        path: out.to_path_buf(),
        source,
    })?;
    if !force {
        for name in std::iter::once("ca.pem".to_string()).chain(
            entities
                .iter()
                .flat_map(|(stem, _, _)| [format!("{stem}.pem"), format!("{stem}.key")]),
        ) {
            let path = out.join(name);
            if path.exists() {
                return Err(SimError::Exists { path });
            }
        }
    }
    let mut sans = vec![san("127.0.0.1")?, san("::1")?, san("localhost")?];
    for name in extra_sans {
        sans.push(san(name)?);
    }

    let ca_key = KeyPair::generate().map_err(pki_err)?;
    let mut ca = CertificateParams::new(Vec::<String>::new()).map_err(pki_err)?;
    ca.distinguished_name
        .push(DnType::CommonName, "qkd-kme-sim demo CA");
    ca.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    ca.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    validity(&mut ca);
    let ca_cert = ca.self_signed(&ca_key).map_err(pki_err)?;
    let issuer = Issuer::new(ca, ca_key);

    let mut written = vec![write(out, "ca.pem", ca_cert.pem().as_bytes(), 0o644)?];
    for &(stem, cn, server) in entities {
        let key = KeyPair::generate().map_err(pki_err)?;
        let mut params = CertificateParams::new(Vec::<String>::new()).map_err(pki_err)?;
        params.distinguished_name.push(DnType::CommonName, cn);
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = if server {
            params.subject_alt_names = sans.clone();
            vec![ExtendedKeyUsagePurpose::ServerAuth]
        } else {
            vec![ExtendedKeyUsagePurpose::ClientAuth]
        };
        params.use_authority_key_identifier_extension = true;
        validity(&mut params);
        let cert = params.signed_by(&key, &issuer).map_err(pki_err)?;
        written.push(write(
            out,
            &format!("{stem}.pem"),
            cert.pem().as_bytes(),
            0o644,
        )?);
        let key_pem = zeroize::Zeroizing::new(key.serialize_pem());
        written.push(write(
            out,
            &format!("{stem}.key"),
            key_pem.as_bytes(),
            0o600,
        )?);
    }
    Ok(written)
}

fn write(dir: &Path, name: &str, contents: &[u8], mode: u32) -> Result<PathBuf, SimError> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let path = dir.join(name);
    let werr = |source| SimError::Write {
        path: path.clone(),
        source,
    };
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(&path)
        .map_err(werr)?;
    // `mode` applies only on creation; force it for files being overwritten.
    file.set_permissions(std::fs::Permissions::from_mode(mode))
        .map_err(werr)?;
    file.write_all(contents).map_err(werr)?;
    file.sync_all().map_err(werr)?;
    Ok(path)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use std::os::unix::fs::PermissionsExt;

    use super::*;
    use crate::pem;
    use crate::sim::identity::sae_id_from_cert;

    #[test]
    fn writes_every_file_with_safe_permissions() {
        let dir = tempfile::tempdir().unwrap();
        let files = generate(
            dir.path(),
            &["kme.example.org".into(), "10.0.0.7".into()],
            false,
        )
        .unwrap();
        assert_eq!(files.len(), 9);
        for (stem, cn, server) in ENTITIES {
            let key = dir.path().join(format!("{stem}.key"));
            let mode = std::fs::metadata(&key).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600, "{stem}");
            pem::load_private_key(&key).unwrap();
            let cert = pem::load_certs(&dir.path().join(format!("{stem}.pem"))).unwrap();
            if !server {
                assert_eq!(sae_id_from_cert(&cert[0]).unwrap().as_str(), cn);
            }
        }
        pem::load_roots(&dir.path().join("ca.pem")).unwrap();
    }

    #[test]
    fn refuses_to_overwrite_without_force() {
        let dir = tempfile::tempdir().unwrap();
        generate(dir.path(), &[], false).unwrap();
        let before = std::fs::read(dir.path().join("ca.pem")).unwrap();
        assert!(matches!(
            generate(dir.path(), &[], false),
            Err(SimError::Exists { .. })
        ));
        generate(dir.path(), &[], true).unwrap();
        assert_ne!(before, std::fs::read(dir.path().join("ca.pem")).unwrap());
    }

    #[test]
    fn writes_a_certificate_for_every_kme_and_sae_of_a_config() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../configs/kme-sim-region.yaml");
        let cfg = SimConfig::load(&path).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let files = generate_for(dir.path(), &cfg, &[], false).unwrap();
        let saes: usize = cfg.kmes.iter().map(|k| k.saes.len()).sum();
        assert_eq!(files.len(), 1 + 2 * (cfg.kmes.len() + saes));
        for k in &cfg.kmes {
            let stem = k.id.as_str().to_lowercase();
            pem::load_certs(&dir.path().join(format!("{stem}.pem"))).unwrap();
        }
        let cert = pem::load_certs(&dir.path().join("sae_s10_10.pem")).unwrap();
        assert_eq!(sae_id_from_cert(&cert[0]).unwrap().as_str(), "SAE_S10_10");
        // The two-KME config names its files kme_a.pem/kme_a.key: the classic demo PKI.
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../configs/kme-sim-madrid.yaml");
        let stems: Vec<String> = entities_of(&SimConfig::load(&path).unwrap())
            .unwrap()
            .into_iter()
            .map(|e| e.0)
            .collect();
        assert_eq!(stems, ["kme_a", "sae_a", "kme_b", "sae_b"]);
    }

    #[test]
    fn rejects_unusable_san() {
        let dir = tempfile::tempdir().unwrap();
        assert!(matches!(
            generate(dir.path(), &["bad name!".into()], false),
            Err(SimError::Usage(_))
        ));
    }
}
