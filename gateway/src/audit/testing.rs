//! Helpers shared by the audit tests, the integration test of `qgw audit verify` and the fuzz
//! target: deterministic signing keys, an in-memory sample log, and re-hashing an edited line (what
//! an attacker without the signing key can do).

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use keymix::mldsa::SigningKey;

use super::chain::{ChainState, record_hash};
use super::event::{AuditEvent, Body, FileStartReason, SignerInfo};
use super::json::hex;

/// An ML-DSA-65 key from a fixed seed.
pub fn signing_key(seed: u8) -> Arc<SigningKey> {
    Arc::new(SigningKey::from_seed(keymix::Secret::new([seed; 32])))
}

/// A fixed time plus `secs`.
pub fn at(secs: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_795_255_200 + secs)
}

/// A sample event number `i`.
pub fn event(i: u64) -> AuditEvent {
    match i % 3 {
        0 => AuditEvent::EpochInstalled {
            peer: "site-b".into(),
            epoch: i,
            role: "master".into(),
            sources: vec!["x25519".into(), "mlkem".into(), "qkd".into()],
            qkd_key_ids: vec![
                keymix::KeyId::parse(&format!("7a1e0b5c-0000-4000-8000-{i:012}"))
                    .unwrap_or_else(|_| unreachable!("a UUID")),
            ],
        },
        1 => AuditEvent::AuthFailure {
            peer: None,
            reason: "invalid_mac1".into(),
            source: Some("192.0.2.7:51820".into()),
            count: i,
        },
        _ => AuditEvent::PeerUp {
            peer: "site-b".into(),
        },
    }
}

/// A one-file log: `file_start`, `events` events, a checkpoint (signed with `signer`).
pub fn sample_log(signer: Option<&SigningKey>, events: u64) -> Vec<u8> {
    let info = signer.map(|k| SignerInfo::new(k.verifying_key()));
    let mut chain = ChainState::genesis();
    let mut out = Vec::new();
    let p = chain.prepare(
        at(0),
        &Body::FileStart(FileStartReason::NewChain, info.as_ref()),
    );
    out.extend_from_slice(&p.line);
    chain.commit(&p);
    for i in 0..events {
        let p = chain.prepare_event(at(i + 1), &event(i));
        out.extend_from_slice(&p.line);
        chain.commit(&p);
    }
    if let Ok(p) = chain.prepare_checkpoint(at(events + 1), signer) {
        out.extend_from_slice(&p.line);
    }
    out
}

/// Recomputes the hash of an edited line (without `\n`) so that it is self-consistent again.
pub fn rehash(line: &[u8]) -> Vec<u8> {
    let body = &line[..line.len().saturating_sub(75)];
    let mut out = body.to_vec();
    out.extend_from_slice(b",\"hash\":\"");
    out.extend_from_slice(hex(&record_hash(body)).as_bytes());
    out.extend_from_slice(b"\"}");
    out
}
