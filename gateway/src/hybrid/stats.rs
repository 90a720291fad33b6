//! Counters of one hybrid peer, exported as metrics by the daemon.

use std::collections::HashMap;

use super::HybridDrop;

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
}

impl HybridStats {
    pub(super) fn drop(&mut self, reason: HybridDrop) {
        *self.drops.entry(reason).or_default() += 1;
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
