//! The tamper-evident audit trail (the full specification and threat model are in `docs/audit.md`): a JSON-lines file of security events, separate from the debug log, with no
//! secret in it, each record hash-chained to the previous one and periodically covered by a
//! checkpoint signed with the site's ML-DSA-65 key.
//!
//! # Format (docs/audit.md §2)
//!
//! One record per line, members in a fixed order, the hash last:
//!
//! ```text
//! {"seq":17,"time":"2026-11-21T10:00:00.123Z","event":"epoch_installed",<event members>,"prev":"<64 hex>","hash":"<64 hex>"}
//! ```
//!
//! * `hash = SHA-256(RECORD_LABEL || the exact line bytes before ,"hash":")`; the verifier checks
//!   the suffix is exactly `,"hash":"<64 lowercase hex>"}`, recomputes the hash over the bytes it
//!   read, and only then parses them as JSON. No canonicalisation is ever needed.
//! * `prev` is the hash of record `seq - 1`; the first record of a chain (`seq` 0) has 64 zeros.
//! * `checkpoint` records carry `to_seq` (= `seq - 1`), `chain_hash` (= `prev`), `key_fp`
//!   (SHA-256 of the ML-DSA-65 verifying key) and `sig`, an ML-DSA-65 signature (context
//!   [`CHECKPOINT_LABEL`]) over `CHECKPOINT_LABEL || seq || to_seq || chain_hash || key_fp`
//!   (integers 8-byte big-endian); without a key both are `null` (unsigned).
//! * Every file starts with `file_start` (or `chain_restart` after a torn file) announcing the
//!   signer's `key_fp` and `public_key`; a writer reopening an intact file appends `resume`.
//!
//! # Modules
//!
//! | file | concern |
//! |---|---|
//! | [`event`] | [`AuditEvent`] and the writer's own records, rendered to members |
//! | `json` | the byte-level encoding: string escaping, hex, RFC 3339 time |
//! | [`chain`] | sans-IO hash chain and checkpoint signing |
//! | [`record`] | parsing and self-checking one line |
//! | [`writer`] | [`AuditLog`]: the file edge (append, fsync, rotate, restart) |
//! | `tail` | restart: where an existing file's chain ends, and how the writer continues it |
//! | [`verify`] | sans-IO verifier over the lines of one or more files |
//! | [`report`] | what a successful verification prints |
//! | [`verify_files`] | `qgw audit verify`: reading files for the verifier |

pub mod chain;
pub mod event;
mod json;
pub mod record;
pub mod report;
/// Crate-visible for the fuzz body (`crate::fuzzing::audit_verify`).
pub(crate) mod tail;
#[doc(hidden)]
pub mod testing;
pub mod verify;
pub mod verify_files;
pub mod writer;

pub use event::{AuditEvent, PolicyState};
pub use report::Report;
pub use verify::{Finding, Verifier};
pub use verify_files::{Outcome, verify_bytes, verify_files};
pub use writer::{AuditLog, AuditSettings};

// Format (docs/audit.md §2). The labels live with every other `qgw v1` label in keymix; neither is a
// prefix of the other, and each is followed by data whose start differs (`{` vs. an 8-byte integer).

/// Prefix of every record hash input.
pub const RECORD_LABEL: &[u8] = keymix::labels::AUDIT_RECORD;
/// Prefix of every checkpoint signature message, and its ML-DSA-65 context string.
pub const CHECKPOINT_LABEL: &[u8] = keymix::labels::AUDIT_CHECKPOINT;
/// `prev` of the first record of a chain.
pub const GENESIS_PREV: [u8; 32] = [0; 32];
/// Longest line the verifier reads (a writer's line stays far below: a checkpoint is ~4.7 KiB,
/// the largest event under 40 KiB given the two limits below).
pub const MAX_LINE_BYTES: usize = 64 * 1024;
/// Longest escaped string member the writer emits; longer values are cut at a character boundary.
pub const MAX_FIELD_BYTES: usize = 1024;
/// Most items of a list member (`sources`, `qkd_key_ids`) the writer emits.
pub const MAX_LIST_ITEMS: usize = 16;

// Defaults of the `audit:` settings (configs/README.md).

/// `rotate_bytes` default: 64 MiB.
pub const DEFAULT_ROTATE_BYTES: u64 = 64 * 1024 * 1024;
/// `rotate_bytes` minimum: 64 KiB.
pub const MIN_ROTATE_BYTES: u64 = 64 * 1024;
/// `checkpoint_records` default.
pub const DEFAULT_CHECKPOINT_RECORDS: u64 = 256;
/// `checkpoint_seconds` default.
pub const DEFAULT_CHECKPOINT_SECONDS: u64 = 60;
