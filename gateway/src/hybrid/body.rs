//! Message bodies of the hybrid exchange, byte by byte as docs/protocol.md §5 specifies, and the
//! signed transcripts `T_I`, `T_R`. Decoding goes through a bounds-checked cursor: no panic and no
//! allocation beyond the key-ID strings on any input.

use keymix::mldsa::{SIGNATURE_LEN, Signature};
use keymix::mlkem::{CIPHERTEXT_LEN, Ciphertext, ENCAPSULATION_KEY_LEN, EncapsulationKey};
use keymix::{KeyId, KeySources, PeerIdentity, labels};
use sha2::{Digest, Sha256};

use super::constants::{KEY_ID_LEN, MAX_KEY_IDS};
use super::{HybridDrop, SourceIndex};

/// `flags` bit 0 of an Init: derive from the genesis chain key (§5.1, §9).
const FLAG_GENESIS: u8 = 0x01;
/// `flags` bit 1 of an Init: every key-ID entry starts with its source index (§5.1, §6.3). Only
/// with key IDs; without it, every key ID is the first source's and the layout is version 1's.
const FLAG_SOURCE_TAGGED: u8 = 0x02;

/// §5.1. `sig` covers `T_I`.
#[derive(Debug)]
pub struct Init {
    /// The epoch this exchange makes.
    pub epoch: u64,
    /// Derive from the genesis chain key (the master has no ratchet state).
    pub genesis: bool,
    /// The sources the master intends.
    pub sources: KeySources,
    /// TAI64N of the master's clock.
    pub timestamp: [u8; 12],
    /// Tag of the chain key the master derives from (zero with `genesis`).
    pub chain_tag: [u8; 16],
    /// Fresh ML-KEM-768 encapsulation key.
    pub ek: EncapsulationKey,
    /// QKD key IDs from the master's `enc_keys` (empty without QKD).
    pub key_ids: Vec<KeyId>,
    /// The source of each key ID, when tagged (`FLAG_SOURCE_TAGGED`): as many as `key_ids`, in
    /// non-decreasing order. `None`: all are the first source's.
    pub tags: Option<Vec<SourceIndex>>,
}

/// §5.2. `sig` covers `T_R`.
#[derive(Debug)]
pub struct Response {
    /// Echo of the Init's epoch.
    pub epoch: u64,
    /// Echo of the Init's sources.
    pub sources: KeySources,
    /// ML-KEM-768 ciphertext to the Init's `ek`.
    pub ct: Ciphertext,
    /// keymix key-confirmation tag.
    pub confirm: [u8; 16],
}

/// Why an EpochRequest is sent (§5.3).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RequestReason {
    /// The slave's rekey timer is due.
    RekeyDue = 1,
    /// The slave has packets and no session.
    NoSession = 2,
    /// The slave lost its ratchet state.
    ChainMismatch = 3,
}

/// §5.3, unsigned.
#[derive(Debug, PartialEq, Eq)]
pub struct EpochRequest {
    /// The slave's newest epoch.
    pub current_epoch: u64,
    /// TAI64N, increasing.
    pub timestamp: [u8; 12],
    /// Why.
    pub reason: RequestReason,
}

/// Why the slave refuses an Init (§5.4).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RejectReason {
    /// The slave's KME could not deliver the key.
    QkdUnavailable = 1,
    /// The key ID was unknown or already used.
    QkdRefused = 2,
    /// The Init's chain tag does not match the slave's ratchet.
    ChainMismatch = 3,
    /// The sources are not acceptable under the slave's policy.
    PolicyMismatch = 4,
}

impl RejectReason {
    /// The metrics label.
    pub fn label(self) -> &'static str {
        match self {
            Self::QkdUnavailable => "qkd_unavailable",
            Self::QkdRefused => "qkd_refused",
            Self::ChainMismatch => "chain_mismatch",
            Self::PolicyMismatch => "policy_mismatch",
        }
    }
}

/// §5.4 (body without signature).
#[derive(Debug, PartialEq, Eq)]
pub struct Reject {
    /// The Init's epoch.
    pub epoch: u64,
    /// Why.
    pub reason: RejectReason,
}

impl Init {
    /// The signed part of the body (everything before `sig_I`).
    pub fn encode_unsigned(&self) -> Vec<u8> {
        let ids = self.key_ids.len() * (2 + KEY_ID_LEN);
        let mut out = Vec::with_capacity(1223 + ids + SIGNATURE_LEN);
        out.extend_from_slice(&self.epoch.to_le_bytes());
        let tagged = if self.tags.is_some() {
            FLAG_SOURCE_TAGGED
        } else {
            0
        };
        out.push(if self.genesis { FLAG_GENESIS } else { 0 } | tagged);
        out.push(self.sources.bits());
        out.extend_from_slice(&self.timestamp);
        out.extend_from_slice(&self.chain_tag);
        out.extend_from_slice(self.ek.as_bytes());
        out.push(u8::try_from(self.key_ids.len()).unwrap_or(u8::MAX));
        for (n, id) in self.key_ids.iter().enumerate() {
            if let Some(tags) = &self.tags {
                out.push(tags.get(n).map_or(u8::MAX, |t| t.byte()));
            }
            let text = id.text();
            out.push(u8::try_from(text.as_bytes().len()).unwrap_or(u8::MAX));
            out.extend_from_slice(text.as_bytes());
        }
        out
    }

    /// Each key ID with its source, in order (untagged: all the first source's).
    pub fn sourced_key_ids(&self) -> impl Iterator<Item = (SourceIndex, KeyId)> + '_ {
        let tag = |n: usize| {
            (self.tags.as_ref()).map_or(SourceIndex::FIRST, |t| {
                t.get(n).copied().unwrap_or(SourceIndex::FIRST)
            })
        };
        (self.key_ids.iter().enumerate()).map(move |(n, id)| (tag(n), *id))
    }

    /// The timestamp of an Init whose body starts with `prefix` (its first fragment is enough),
    /// so freshness can be judged before the whole message is in (§4 step 5).
    pub fn timestamp_of(prefix: &[u8]) -> Option<[u8; 12]> {
        prefix.get(10..22)?.try_into().ok()
    }

    /// Parses a body into the Init, its signed part and its signature.
    pub fn decode(body: &[u8]) -> Result<(Self, &[u8], Signature), HybridDrop> {
        let (unsigned, sig) = split_signature(body)?;
        let mut r = Reader(unsigned);
        let epoch = r.u64()?;
        let flags = r.u8()?;
        if flags & !(FLAG_GENESIS | FLAG_SOURCE_TAGGED) != 0 {
            return Err(HybridDrop::Malformed);
        }
        let tagged = flags & FLAG_SOURCE_TAGGED != 0;
        let sources = KeySources::from_bits(r.u8()?).ok_or(HybridDrop::Malformed)?;
        let timestamp = r.array::<12>()?;
        let chain_tag = r.array::<16>()?;
        let ek = EncapsulationKey::from_bytes(r.take(ENCAPSULATION_KEY_LEN)?)
            .map_err(|_| HybridDrop::BadEncapsulationKey)?;
        let count = usize::from(r.u8()?);
        if count > MAX_KEY_IDS || (count > 0) != sources.has_qkd() || (tagged && count == 0) {
            return Err(HybridDrop::Malformed);
        }
        let mut key_ids = Vec::with_capacity(count);
        let mut tags = Vec::with_capacity(if tagged { count } else { 0 });
        for _ in 0..count {
            if tagged {
                let tag = SourceIndex::new(usize::from(r.u8()?)).ok_or(HybridDrop::Malformed)?;
                if tags.last().is_some_and(|last| *last > tag) {
                    return Err(HybridDrop::Malformed);
                }
                tags.push(tag);
            }
            let len = usize::from(r.u8()?);
            if len != KEY_ID_LEN {
                return Err(HybridDrop::Malformed);
            }
            let id = KeyId::parse_canonical(r.take(len)?).map_err(|_| HybridDrop::Malformed)?;
            if key_ids.contains(&id) {
                return Err(HybridDrop::Malformed);
            }
            key_ids.push(id);
        }
        r.end()?;
        let init = Self {
            epoch,
            genesis: flags & FLAG_GENESIS != 0,
            sources,
            timestamp,
            chain_tag,
            ek,
            key_ids,
            tags: tagged.then_some(tags),
        };
        Ok((init, unsigned, sig))
    }
}

impl Response {
    /// The signed part of the body.
    pub fn encode_unsigned(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(8 + 1 + CIPHERTEXT_LEN + 16 + SIGNATURE_LEN);
        out.extend_from_slice(&self.epoch.to_le_bytes());
        out.push(self.sources.bits());
        out.extend_from_slice(self.ct.as_bytes());
        out.extend_from_slice(&self.confirm);
        out
    }

    /// Parses a body into the Response, its signed part and its signature.
    pub fn decode(body: &[u8]) -> Result<(Self, &[u8], Signature), HybridDrop> {
        let (unsigned, sig) = split_signature(body)?;
        let mut r = Reader(unsigned);
        let epoch = r.u64()?;
        let sources = KeySources::from_bits(r.u8()?).ok_or(HybridDrop::Malformed)?;
        let ct =
            Ciphertext::from_bytes(r.take(CIPHERTEXT_LEN)?).map_err(|_| HybridDrop::Malformed)?;
        let confirm = r.array::<16>()?;
        r.end()?;
        Ok((
            Self {
                epoch,
                sources,
                ct,
                confirm,
            },
            unsigned,
            sig,
        ))
    }
}

impl EpochRequest {
    /// Encodes the body.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(21);
        out.extend_from_slice(&self.current_epoch.to_le_bytes());
        out.extend_from_slice(&self.timestamp);
        out.push(self.reason as u8);
        out
    }

    /// Parses a body.
    pub fn decode(body: &[u8]) -> Result<Self, HybridDrop> {
        let mut r = Reader(body);
        let current_epoch = r.u64()?;
        let timestamp = r.array::<12>()?;
        let reason = match r.u8()? {
            1 => RequestReason::RekeyDue,
            2 => RequestReason::NoSession,
            3 => RequestReason::ChainMismatch,
            _ => return Err(HybridDrop::Malformed),
        };
        r.end()?;
        Ok(Self {
            current_epoch,
            timestamp,
            reason,
        })
    }
}

impl Reject {
    /// The signed part of the body.
    pub fn encode_unsigned(&self) -> Vec<u8> {
        let mut out = self.epoch.to_le_bytes().to_vec();
        out.push(self.reason as u8);
        out
    }

    /// Parses a body into the Reject, its signed part and its signature.
    pub fn decode(body: &[u8]) -> Result<(Self, &[u8], Signature), HybridDrop> {
        let (unsigned, sig) = split_signature(body)?;
        let mut r = Reader(unsigned);
        let epoch = r.u64()?;
        let reason = match r.u8()? {
            1 => RejectReason::QkdUnavailable,
            2 => RejectReason::QkdRefused,
            3 => RejectReason::ChainMismatch,
            4 => RejectReason::PolicyMismatch,
            _ => return Err(HybridDrop::Malformed),
        };
        r.end()?;
        Ok((Self { epoch, reason }, unsigned, sig))
    }
}

/// `T_I = "qgw v1 hybrid init" ‖ I_master ‖ I_slave ‖ exchange_id ‖ unsigned Init` (§5.1).
pub fn init_transcript(
    master: &PeerIdentity,
    slave: &PeerIdentity,
    exchange_id: u64,
    unsigned: &[u8],
) -> Vec<u8> {
    let mut t = Vec::with_capacity(labels::HYBRID_INIT.len() + 128 + 8 + unsigned.len());
    t.extend_from_slice(labels::HYBRID_INIT);
    t.extend_from_slice(master.as_bytes());
    t.extend_from_slice(slave.as_bytes());
    t.extend_from_slice(&exchange_id.to_le_bytes());
    t.extend_from_slice(unsigned);
    t
}

/// `label ‖ SHA-256(T_I) ‖ unsigned body`: the signed message of a Response or Reject (§5.2, §5.4).
pub fn reply_transcript(label: &[u8], init_transcript_hash: &[u8; 32], unsigned: &[u8]) -> Vec<u8> {
    let mut t = Vec::with_capacity(label.len() + 32 + unsigned.len());
    t.extend_from_slice(label);
    t.extend_from_slice(init_transcript_hash);
    t.extend_from_slice(unsigned);
    t
}

/// SHA-256 of a transcript.
pub fn digest(transcript: &[u8]) -> [u8; 32] {
    Sha256::digest(transcript).into()
}

/// Appends a signature to an unsigned body.
pub fn with_signature(mut unsigned: Vec<u8>, signature: &Signature) -> Vec<u8> {
    unsigned.extend_from_slice(signature.as_bytes());
    unsigned
}

fn split_signature(body: &[u8]) -> Result<(&[u8], Signature), HybridDrop> {
    let split = body
        .len()
        .checked_sub(SIGNATURE_LEN)
        .ok_or(HybridDrop::Malformed)?;
    let (unsigned, sig) = body.split_at(split);
    let sig = Signature::from_bytes(sig).map_err(|_| HybridDrop::Malformed)?;
    Ok((unsigned, sig))
}

/// A bounds-checked reader over a body.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], HybridDrop> {
        if self.0.len() < n {
            return Err(HybridDrop::Malformed);
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], HybridDrop> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }

    fn u8(&mut self) -> Result<u8, HybridDrop> {
        Ok(self.take(1)?[0])
    }

    fn u64(&mut self) -> Result<u64, HybridDrop> {
        Ok(u64::from_le_bytes(self.array::<8>()?))
    }

    fn end(&self) -> Result<(), HybridDrop> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(HybridDrop::Malformed)
        }
    }
}

#[cfg(test)]
#[path = "body_tests.rs"]
mod tests;
