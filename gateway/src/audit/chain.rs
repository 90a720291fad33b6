//! The hash chain (docs/audit.md §2, §4), sans-IO: given the chain state, an event and the time,
//! the exact bytes of the next line; and checkpoints signed with ML-DSA-65 (FIPS 204, through
//! `keymix::mldsa`). Nothing here touches a file or reads a clock.
//!
//! ```text
//! line  = body ',"hash":"' hex(hash) '"}' '\n'
//! body  = '{"seq":' seq ',"time":"' rfc3339 '","event":"' name '"' {',' member} ',"prev":"' hex(prev) '"'
//! hash  = SHA-256(RECORD_LABEL || body)            prev = hash of record seq-1 (genesis: 32 zero bytes)
//! sig   = ML-DSA-65.Sign(sk, CHECKPOINT_LABEL || seq_be64 || to_seq_be64 || chain_hash || key_fp,
//!                        ctx = CHECKPOINT_LABEL)
//! ```

use std::time::SystemTime;

use base64::Engine;
use keymix::mldsa::SigningKey;
use sha2::{Digest, Sha256};

use super::event::{AuditEvent, Body, SignerInfo};
use super::json::{Fields, hex, push_str, rfc3339};
use super::{CHECKPOINT_LABEL, GENESIS_PREV, RECORD_LABEL};

/// Where the chain stands: the next record's seq and the hash it must name as `prev`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChainState {
    /// Seq of the next record.
    pub next_seq: u64,
    /// Hash of the last record ([`GENESIS_PREV`] before the first).
    pub prev: [u8; 32],
}

/// One encoded line, not yet part of the chain until [`ChainState::commit`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Prepared {
    /// Its seq.
    pub seq: u64,
    /// The line, ending in `\n`.
    pub line: Vec<u8>,
    /// Its hash.
    pub hash: [u8; 32],
}

/// `SHA-256(RECORD_LABEL || body)`: the hash of a line given its bytes before `,"hash":"`.
pub fn record_hash(body: &[u8]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(RECORD_LABEL);
    h.update(body);
    h.finalize().into()
}

/// The message a checkpoint signature covers.
pub fn checkpoint_message(
    seq: u64,
    to_seq: u64,
    chain_hash: &[u8; 32],
    key_fp: &[u8; 32],
) -> Vec<u8> {
    let mut m = Vec::with_capacity(CHECKPOINT_LABEL.len() + 80);
    m.extend_from_slice(CHECKPOINT_LABEL);
    m.extend_from_slice(&seq.to_be_bytes());
    m.extend_from_slice(&to_seq.to_be_bytes());
    m.extend_from_slice(chain_hash);
    m.extend_from_slice(key_fp);
    m
}

impl ChainState {
    /// Before the first record of a new chain.
    pub fn genesis() -> Self {
        Self {
            next_seq: 0,
            prev: GENESIS_PREV,
        }
    }

    /// Continuing after record `seq` whose hash is `hash`.
    pub fn after(seq: u64, hash: [u8; 32]) -> Self {
        Self {
            next_seq: seq.saturating_add(1),
            prev: hash,
        }
    }

    /// Encodes a daemon event as the next line.
    pub fn prepare_event(&self, time: SystemTime, event: &AuditEvent) -> Prepared {
        self.prepare(time, &Body::Event(event))
    }

    /// Encodes any record as the next line.
    pub(super) fn prepare(&self, time: SystemTime, body: &Body<'_>) -> Prepared {
        let mut f = Fields::new();
        body.fields(self.next_seq, &mut f);
        self.finish(time, body.name(), f)
    }

    /// Encodes a checkpoint covering every record up to the last one (`to_seq = seq - 1`), signed
    /// when `signer` is given. Needs at least one record before it (the writer always has one).
    pub fn prepare_checkpoint(
        &self,
        time: SystemTime,
        signer: Option<&SigningKey>,
    ) -> Result<Prepared, keymix::Error> {
        let seq = self.next_seq;
        let to_seq = seq.saturating_sub(1);
        let mut f = Fields::new();
        f.u64("to_seq", to_seq).str("chain_hash", &hex(&self.prev));
        match signer {
            Some(key) => {
                let info = SignerInfo::new(key.verifying_key());
                let message = checkpoint_message(seq, to_seq, &self.prev, &info.fingerprint);
                let sig = key.sign(&message, CHECKPOINT_LABEL)?;
                let sig = base64::engine::general_purpose::STANDARD.encode(sig.as_bytes());
                f.str("key_fp", &hex(&info.fingerprint))
                    .str_unbounded("sig", &sig);
            }
            None => {
                f.opt_str("key_fp", None).opt_str("sig", None);
            }
        }
        Ok(self.finish(time, "checkpoint", f))
    }

    fn finish(&self, time: SystemTime, name: &str, members: Fields) -> Prepared {
        let members = members.into_string();
        let mut body = format!("{{\"seq\":{},\"time\":", self.next_seq);
        push_str(&mut body, &rfc3339(time));
        body.push_str(",\"event\":");
        push_str(&mut body, name);
        if !members.is_empty() {
            body.push(',');
            body.push_str(&members);
        }
        body.push_str(",\"prev\":\"");
        body.push_str(&hex(&self.prev));
        body.push('"');
        let hash = record_hash(body.as_bytes());
        body.push_str(",\"hash\":\"");
        body.push_str(&hex(&hash));
        body.push_str("\"}\n");
        Prepared {
            seq: self.next_seq,
            line: body.into_bytes(),
            hash,
        }
    }

    /// Makes a prepared line part of the chain (call once it is written).
    pub fn commit(&mut self, p: &Prepared) {
        *self = Self::after(p.seq, p.hash);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, UNIX_EPOCH};

    fn t(ms: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_millis(ms)
    }

    #[test]
    fn the_line_format_is_exact() {
        let chain = ChainState::genesis();
        let p = chain.prepare_event(
            t(1_795_255_200_123),
            &AuditEvent::PeerUp {
                peer: "site-b".into(),
            },
        );
        let line = String::from_utf8(p.line.clone()).expect("utf-8");
        let body = format!(
            "{{\"seq\":0,\"time\":\"2026-11-21T10:00:00.123Z\",\"event\":\"peer_up\",\"peer\":\"site-b\",\"prev\":\"{}\"",
            "0".repeat(64)
        );
        assert_eq!(line, format!("{body},\"hash\":\"{}\"}}\n", hex(&p.hash)));
        assert_eq!(p.hash, record_hash(body.as_bytes()));
        let v: serde_json::Value = serde_json::from_str(&line).expect("valid JSON");
        assert_eq!(v["peer"], "site-b");
    }

    #[test]
    fn commit_links_the_next_record_to_this_hash() {
        let mut chain = ChainState::genesis();
        let a = chain.prepare_event(t(0), &AuditEvent::Stop { reason: "x".into() });
        chain.commit(&a);
        assert_eq!(chain, ChainState::after(0, a.hash));
        let b = chain.prepare_event(t(1), &AuditEvent::Stop { reason: "x".into() });
        assert_eq!(b.seq, 1);
        let text = String::from_utf8(b.line).expect("utf-8");
        assert!(text.contains(&format!("\"prev\":\"{}\"", hex(&a.hash))));
    }

    #[test]
    fn a_signed_checkpoint_verifies_under_the_signers_key_only() {
        let key = SigningKey::from_seed(keymix::Secret::new([7; 32]));
        let other = SigningKey::from_seed(keymix::Secret::new([8; 32]));
        let chain = ChainState::after(4, [9; 32]);
        let p = chain.prepare_checkpoint(t(0), Some(&key)).expect("signs");
        let v: serde_json::Value = serde_json::from_slice(&p.line).expect("JSON");
        assert_eq!(v["to_seq"], 4);
        assert_eq!(v["chain_hash"], hex(&[9; 32]));
        let fp = SignerInfo::new(key.verifying_key()).fingerprint;
        assert_eq!(v["key_fp"], hex(&fp));
        let sig = base64::engine::general_purpose::STANDARD
            .decode(v["sig"].as_str().expect("sig"))
            .expect("base64");
        let sig = keymix::mldsa::Signature::from_bytes(&sig).expect("length");
        let m = checkpoint_message(5, 4, &[9; 32], &fp);
        assert!(
            key.verifying_key()
                .verify(&m, CHECKPOINT_LABEL, &sig)
                .is_ok()
        );
        assert!(
            other
                .verifying_key()
                .verify(&m, CHECKPOINT_LABEL, &sig)
                .is_err()
        );
        let unsigned = chain.prepare_checkpoint(t(0), None).expect("no key");
        let v: serde_json::Value = serde_json::from_slice(&unsigned.line).expect("JSON");
        assert!(v["sig"].is_null() && v["key_fp"].is_null());
    }
}
