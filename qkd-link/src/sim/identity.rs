//! The SAE ID of a connecting client, from its certificate (ETSI GS QKD 014 §4: "the KME shall
//! confirm the SAE ID of the connecting SAE based on the certificate"; the spec leaves the binding
//! open, reference §1).
//!
//! Binding used here (as QuKayDee does): the certificate must chain to the configured CA (checked
//! by rustls during the handshake, with the clientAuth extended key usage), and its subject's one
//! and only Common Name is the SAE ID. A certificate with no CN, several CNs, or a CN that is not
//! a valid SAE ID yields no identity, and every request on that connection gets 401.

use rustls_pki_types::CertificateDer;
use x509_parser::prelude::{FromDer, X509Certificate};

use crate::ids::SaeId;

/// The SAE ID bound to a (chain-verified) end-entity certificate.
pub fn sae_id_from_cert(cert: &CertificateDer<'_>) -> Option<SaeId> {
    let (rest, parsed) = X509Certificate::from_der(cert.as_ref()).ok()?;
    if !rest.is_empty() {
        return None;
    }
    let mut cns = parsed.subject().iter_common_name();
    let cn = cns.next()?.as_str().ok()?;
    if cns.next().is_some() {
        return None;
    }
    SaeId::new(cn).ok()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use rcgen::{CertificateParams, DnType, KeyPair};

    use super::*;

    fn cert_with_cns(cns: &[&str]) -> CertificateDer<'static> {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        for cn in cns {
            params.distinguished_name.push(DnType::CommonName, *cn);
        }
        let key = KeyPair::generate().unwrap();
        params.self_signed(&key).unwrap().der().clone()
    }

    #[test]
    fn common_name_is_the_sae_id() {
        assert_eq!(
            sae_id_from_cert(&cert_with_cns(&["SAE_A"]))
                .unwrap()
                .as_str(),
            "SAE_A"
        );
    }

    #[test]
    fn missing_or_invalid_common_names_give_no_identity() {
        assert!(sae_id_from_cert(&cert_with_cns(&[])).is_none());
        assert!(sae_id_from_cert(&cert_with_cns(&["SAE A"])).is_none());
        assert!(sae_id_from_cert(&CertificateDer::from(vec![0x30, 0x03, 1, 2, 3])).is_none());
    }
}
