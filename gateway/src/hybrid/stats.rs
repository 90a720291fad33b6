//! Counters of one hybrid peer, exported as metrics by the daemon.

use std::collections::HashMap;

use super::{HybridDrop, MAX_SOURCES, QkdFailure, SourceIndex};

/// What one QKD source last answered (§6.3).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SourceResult {
    /// A key (the master) or the keys the Init named (the slave).
    Delivered,
    /// The KME is unreachable, slow, or has no key.
    Unavailable,
    /// The KME does not know a key ID (or already delivered it).
    NotFound,
}

impl SourceResult {
    /// The status label.
    pub fn label(self) -> &'static str {
        match self {
            Self::Delivered => "delivered",
            Self::Unavailable => "unavailable",
            Self::NotFound => "not_found",
        }
    }

    pub(super) fn of<T>(result: &Result<T, QkdFailure>) -> Self {
        match result {
            Ok(_) => Self::Delivered,
            Err(QkdFailure::Unavailable) => Self::Unavailable,
            Err(QkdFailure::NotFound) => Self::NotFound,
        }
    }
}

/// One QKD source's counters.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct SourceStats {
    /// Answers with key material.
    pub delivered: u64,
    /// Failed answers (and requests that got no answer in time).
    pub failed: u64,
    /// The last answer.
    pub last: Option<SourceResult>,
}

/// Counters only ever increase.
#[derive(Debug, Default, Clone)]
pub struct HybridStats {
    /// Dropped datagrams or messages by reason.
    pub drops: HashMap<HybridDrop, u64>,
    /// Epochs installed with QKD.
    pub epochs_with_qkd: u64,
    /// Epochs installed without QKD.
    pub epochs_without_qkd: u64,
    /// ML-DSA-65 verifications performed (the costly step a flood must not reach).
    pub signature_verifications: u64,
    /// ML-DSA-65 signatures made.
    pub signatures: u64,
    /// ML-KEM-768 operations (keygen, encaps, decaps).
    pub kem_operations: u64,
    /// KME requests asked of the driver.
    pub kme_requests: u64,
    /// Init retransmissions answered from the cached Response.
    pub cached_answers: u64,
    /// QKD key IDs refused because they were seen before.
    pub qkd_key_reuse: u64,
    /// Exchanges refused with a Reject (sent by the slave, received by the master), by reason.
    pub rejects: HashMap<&'static str, u64>,
    /// Per QKD source, in `qkd.sources` order (§6.3).
    pub sources: [SourceStats; MAX_SOURCES],
}

impl HybridStats {
    pub(super) fn drop(&mut self, reason: HybridDrop) {
        *self.drops.entry(reason).or_default() += 1;
    }

    pub(super) fn source(&mut self, source: SourceIndex, result: SourceResult) {
        if let Some(s) = self.sources.get_mut(source.get()) {
            match result {
                SourceResult::Delivered => s.delivered += 1,
                _ => s.failed += 1,
            }
            s.last = Some(result);
        }
    }

    pub(super) fn reject(&mut self, reason: super::RejectReason) {
        *self.rejects.entry(reason.label()).or_default() += 1;
    }

    /// Every drop count by reason label (status, metrics, the audit's failure counts).
    pub fn drops_by_label(&self) -> std::collections::BTreeMap<String, u64> {
        (self.drops.iter())
            .map(|(reason, n)| (reason.label().to_owned(), *n))
            .collect()
    }

    /// Drops counted for `reason`.
    pub fn drops_for(&self, reason: HybridDrop) -> u64 {
        self.drops.get(&reason).copied().unwrap_or_default()
    }
}
