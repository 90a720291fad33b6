//! The audit events (docs/audit.md §3): what the daemon records, and the records the writer adds
//! by itself (file start, resume, chain restart, lost records, checkpoints). Each renders to the
//! event-specific members of one line, in a fixed order.
//!
//! No variant carries a secret: names, addresses, reasons, public-key fingerprints and QKD key IDs
//! (ETSI GS QKD 014 `key_ID`s are identifiers that both KMEs already know; the key bytes never leave
//! the hybrid layer).

use std::path::Path;

use base64::Engine;
use sha2::{Digest, Sha256};

use super::json::{Fields, hex};
use crate::hybrid::{EpochInfo, Role};
pub use crate::ops::PolicyState;

/// A security event for the audit trail. Construct the variants directly or with the helpers
/// ([`AuditEvent::config_loaded`], [`AuditEvent::epoch_installed`]).
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuditEvent {
    /// The daemon started.
    Start {
        /// `CARGO_PKG_VERSION`.
        version: String,
        /// Interface name.
        interface: String,
        /// Process ID.
        pid: u32,
    },
    /// A configuration file was loaded and validated.
    ConfigLoaded {
        /// The file.
        path: String,
        /// SHA-256 of its bytes, lowercase hex.
        sha256: String,
    },
    /// The daemon stops.
    Stop {
        /// Why (signal, error).
        reason: String,
    },
    /// A peer's first confirmed session after none.
    PeerUp {
        /// Peer name.
        peer: String,
    },
    /// A peer's keys expired or were zeroed: no session left.
    PeerDown {
        /// Peer name.
        peer: String,
        /// Why.
        reason: String,
    },
    /// A hybrid epoch's PSK was installed.
    EpochInstalled {
        /// Peer name.
        peer: String,
        /// Epoch number.
        epoch: u64,
        /// `master` or `slave`.
        role: String,
        /// Key sources, e.g. `["x25519", "mlkem", "qkd"]`.
        sources: Vec<String>,
        /// ETSI 014 key IDs of the QKD keys used (identifiers, never key bytes).
        qkd_key_ids: Vec<keymix::KeyId>,
    },
    /// WireGuard confirmed the first session keyed by an epoch's PSK: from now on that epoch's
    /// keys carry the peer's traffic.
    EpochInUse {
        /// Peer name.
        peer: String,
        /// Epoch number.
        epoch: u64,
        /// ETSI 014 key IDs of its QKD keys (identifiers, never key bytes).
        qkd_key_ids: Vec<keymix::KeyId>,
    },
    /// A peer's policy state changed.
    PolicyTransition {
        /// Peer name.
        peer: String,
        /// Old state (`None`: the first classification after start, recorded as `startup`).
        from: Option<PolicyState>,
        /// New state.
        to: PolicyState,
    },
    /// A peer stopped passing traffic because its policy forbids keys without QKD.
    FailClosedEnter {
        /// Peer name.
        peer: String,
        /// Why.
        reason: String,
    },
    /// A fail-closed peer has keys again.
    FailClosedExit {
        /// Peer name.
        peer: String,
    },
    /// The two sites derived different keys for an epoch (the Response's key confirmation
    /// failed): their KMEs disagree on a QKD key's bytes. The epoch was abandoned.
    KeyMismatch {
        /// Peer name.
        peer: String,
        /// The epoch.
        epoch: u64,
        /// ETSI 014 key IDs of the QKD keys concerned (identifiers, never key bytes).
        qkd_key_ids: Vec<keymix::KeyId>,
    },
    /// Authentication failures, aggregated per (peer, reason) and interval by
    /// [`crate::ops::Watch`] so a flood costs one record per interval.
    AuthFailure {
        /// The configured peer, when known.
        peer: Option<String>,
        /// What failed (e.g. `invalid_mac1`, `bad_signature`).
        reason: String,
        /// Source address of the last occurrence, when known.
        source: Option<String>,
        /// Occurrences this record stands for.
        count: u64,
    },
}

impl AuditEvent {
    /// `config_loaded` with the SHA-256 of the file's bytes (as [`crate::config::load`] records it).
    pub fn config_loaded(path: &Path, sha256: &[u8; 32]) -> Self {
        Self::ConfigLoaded {
            path: path.display().to_string(),
            sha256: hex(sha256),
        }
    }

    /// `epoch_installed` from the hybrid layer's [`EpochInfo`].
    pub fn epoch_installed(peer: &str, role: Role, info: &EpochInfo) -> Self {
        Self::EpochInstalled {
            peer: peer.to_owned(),
            epoch: info.epoch,
            role: role.label().to_owned(),
            sources: info
                .sources
                .names()
                .iter()
                .map(|s| (*s).to_owned())
                .collect(),
            qkd_key_ids: info.key_ids.clone(),
        }
    }

    /// The `event` member's value.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Start { .. } => "start",
            Self::ConfigLoaded { .. } => "config_loaded",
            Self::Stop { .. } => "stop",
            Self::PeerUp { .. } => "peer_up",
            Self::PeerDown { .. } => "peer_down",
            Self::EpochInstalled { .. } => "epoch_installed",
            Self::EpochInUse { .. } => "epoch_in_use",
            Self::PolicyTransition { .. } => "policy_transition",
            Self::FailClosedEnter { .. } => "fail_closed_enter",
            Self::FailClosedExit { .. } => "fail_closed_exit",
            Self::KeyMismatch { .. } => "qkd_key_mismatch",
            Self::AuthFailure { .. } => "auth_failure",
        }
    }

    fn fields(&self, f: &mut Fields) {
        match self {
            Self::Start {
                version,
                interface,
                pid,
            } => f
                .str("version", version)
                .str("interface", interface)
                .u64("pid", u64::from(*pid)),
            Self::ConfigLoaded { path, sha256 } => f.str("path", path).str("sha256", sha256),
            Self::Stop { reason } => f.str("reason", reason),
            Self::PeerUp { peer } | Self::FailClosedExit { peer } => f.str("peer", peer),
            Self::PeerDown { peer, reason } | Self::FailClosedEnter { peer, reason } => {
                f.str("peer", peer).str("reason", reason)
            }
            Self::EpochInstalled {
                peer,
                epoch,
                role,
                sources,
                qkd_key_ids,
            } => f
                .str("peer", peer)
                .u64("epoch", *epoch)
                .str("role", role)
                .list("sources", sources)
                .list("qkd_key_ids", qkd_key_ids),
            Self::PolicyTransition { peer, from, to } => f
                .str("peer", peer)
                .str("from", from.map_or("startup", PolicyState::label))
                .str("to", to.label()),
            Self::EpochInUse {
                peer,
                epoch,
                qkd_key_ids,
            }
            | Self::KeyMismatch {
                peer,
                epoch,
                qkd_key_ids,
            } => f
                .str("peer", peer)
                .u64("epoch", *epoch)
                .list("qkd_key_ids", qkd_key_ids),
            Self::AuthFailure {
                peer,
                reason,
                source,
                count,
            } => f
                .opt_str("peer", peer.as_deref())
                .str("reason", reason)
                .opt_str("source", source.as_deref())
                .u64("count", *count),
        };
    }
}

/// The public half of the checkpoint signer, announced at the start of every file and on every
/// resume so that each file can be checked on its own (docs/audit.md §4).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignerInfo {
    /// SHA-256 of the ML-DSA-65 verifying key.
    pub fingerprint: [u8; 32],
    /// The verifying key, Base64 (as `qgw pubkey --mldsa` prints it).
    pub public_key: String,
}

impl SignerInfo {
    /// From a verifying key.
    pub fn new(key: &keymix::mldsa::VerifyingKey) -> Self {
        Self {
            fingerprint: Sha256::digest(key.as_bytes()).into(),
            public_key: base64::engine::general_purpose::STANDARD.encode(key.as_bytes()),
        }
    }
}

/// Why a file's first record starts it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileStartReason {
    /// Seq 0: a new chain.
    NewChain,
    /// The previous file was rotated away; the chain continues.
    Rotation,
}

/// What one line records: a daemon event or one of the writer's own records.
#[derive(Debug)]
pub(super) enum Body<'a> {
    /// A daemon event.
    Event(&'a AuditEvent),
    /// First record of a file.
    FileStart(FileStartReason, Option<&'a SignerInfo>),
    /// The writer reopened an intact file and continues it.
    Resume(Option<&'a SignerInfo>),
    /// First record of a file after the previous file ended in a torn line.
    ChainRestart {
        /// Bytes of the incomplete last line left in the previous file.
        torn_bytes: u64,
        /// Name of the previous file (its final path component).
        previous_file: &'a str,
        /// Announced signer.
        signer: Option<&'a SignerInfo>,
    },
    /// Records that could not be written (I/O errors) since the last written record.
    RecordsLost(u64),
}

impl Body<'_> {
    /// The `event` member's value.
    pub(super) fn name(&self) -> &'static str {
        match self {
            Self::Event(e) => e.name(),
            Self::FileStart(..) => "file_start",
            Self::Resume(_) => "resume",
            Self::ChainRestart { .. } => "chain_restart",
            Self::RecordsLost(_) => "records_lost",
        }
    }

    /// Appends the event-specific members.
    pub(super) fn fields(&self, seq: u64, f: &mut Fields) {
        match self {
            Self::Event(e) => e.fields(f),
            Self::FileStart(reason, signer) => {
                let reason = match reason {
                    FileStartReason::NewChain => "new_chain",
                    FileStartReason::Rotation => "rotation",
                };
                f.str("reason", reason);
                signer_fields(f, *signer);
            }
            Self::Resume(signer) => signer_fields(f, *signer),
            Self::ChainRestart {
                torn_bytes,
                previous_file,
                signer,
            } => {
                f.u64("last_good_seq", seq.saturating_sub(1))
                    .u64("torn_bytes", *torn_bytes)
                    .str("previous_file", previous_file);
                signer_fields(f, *signer);
            }
            Self::RecordsLost(count) => {
                f.u64("count", *count);
            }
        }
    }
}

fn signer_fields(f: &mut Fields, signer: Option<&SignerInfo>) {
    match signer {
        Some(s) => f
            .str("key_fp", &hex(&s.fingerprint))
            .str_unbounded("public_key", &s.public_key),
        None => f.opt_str("key_fp", None).opt_str("public_key", None),
    };
}

/// Event names only the writer may produce; the verifier gives them meaning.
pub const WRITER_EVENTS: [&str; 5] = [
    "file_start",
    "resume",
    "chain_restart",
    "records_lost",
    "checkpoint",
];
