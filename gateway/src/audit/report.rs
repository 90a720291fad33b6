//! What `qgw audit verify` prints on success (docs/audit.md §6): one summary line per file, the
//! totals, how much of the log a signature covers, who the signer is (pinned or not), and the
//! warnings. Pure data and formatting.

use std::fmt::Write as _;

use super::json::hex;

/// Most warnings kept (further ones are counted).
pub const MAX_WARNINGS: usize = 64;

/// What one file holds.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FileSummary {
    /// The file.
    pub name: String,
    /// Seq of its first and last record.
    pub seqs: Option<(u64, u64)>,
    /// Records.
    pub records: u64,
    /// Signed checkpoints.
    pub signed: u64,
    /// Unsigned checkpoints.
    pub unsigned: u64,
    /// Seq of its last signed checkpoint.
    pub last_signed: Option<u64>,
    /// Length of an incomplete last line.
    pub torn_bytes: u64,
}

/// The result of a successful verification.
#[derive(Debug, Clone, Default)]
pub struct Report {
    /// Per file, in seq order.
    pub files: Vec<FileSummary>,
    /// Things that are not tampering but need saying.
    pub warnings: Vec<String>,
    /// Warnings beyond [`MAX_WARNINGS`].
    pub more_warnings: u64,
    /// Fingerprint of the `--key` every signature was checked against.
    pub pinned: Option<[u8; 32]>,
    /// Fingerprint of the last signer the log announced.
    pub announced: Option<[u8; 32]>,
}

impl FileSummary {
    fn line(&self, name: &str) -> String {
        let mut s = match self.seqs {
            Some((a, b)) => format!("{name}: seq {a}-{b} ({} records)", self.records),
            None => format!("{name}: no records"),
        };
        let _ = write!(
            s,
            ", checkpoints {} signed / {} unsigned, last signed checkpoint: {}",
            self.signed,
            self.unsigned,
            self.last_signed
                .map_or("none".to_owned(), |q| format!("seq {q}"))
        );
        if self.torn_bytes > 0 {
            let _ = write!(
                s,
                ", ends in an incomplete line of {} bytes",
                self.torn_bytes
            );
        }
        s
    }
}

impl Report {
    /// All files together (`name` is the file count).
    pub fn total(&self) -> FileSummary {
        let mut t = FileSummary {
            name: match self.files.len() {
                1 => "total (1 file)".to_owned(),
                n => format!("total ({n} files)"),
            },
            ..FileSummary::default()
        };
        for f in &self.files {
            t.records += f.records;
            t.signed += f.signed;
            t.unsigned += f.unsigned;
            t.last_signed = f.last_signed.or(t.last_signed);
            t.torn_bytes = f.torn_bytes;
            if let Some((a, b)) = f.seqs {
                t.seqs = Some((t.seqs.map_or(a, |(first, _)| first), b));
            }
        }
        t
    }

    /// Records after the last signed checkpoint (all of them without one).
    pub fn uncovered(&self) -> u64 {
        let t = self.total();
        match (t.seqs, t.last_signed) {
            (Some((_, last)), Some(signed)) => last.saturating_sub(signed),
            _ => t.records,
        }
    }

    /// The text `qgw audit verify` prints.
    pub fn render(&self) -> String {
        let mut out = String::new();
        for f in &self.files {
            let _ = writeln!(out, "{}", f.line(&f.name));
        }
        let t = self.total();
        let _ = writeln!(out, "{}", t.line(&t.name));
        let _ = writeln!(
            out,
            "{} records after the last signed checkpoint are not yet covered by a signature",
            self.uncovered()
        );
        match (self.pinned, self.announced, t.signed) {
            (_, _, 0) => {
                let _ = writeln!(
                    out,
                    "WARNING: nothing is signed: no checkpoint carries a signature (no ML-DSA key \
                     configured), so the log is only hash-chained and anyone who can write it can \
                     rewrite it consistently"
                );
            }
            (Some(fp), _, _) => {
                let _ = writeln!(
                    out,
                    "signer: pinned by --key (ML-DSA-65 key fingerprint {})",
                    hex(&fp)
                );
            }
            (None, announced, _) => {
                let fp = announced.map_or("none".to_owned(), |fp| hex(&fp));
                let _ = writeln!(
                    out,
                    "NOTE: signer NOT pinned: signatures were checked against the key the log itself \
                     announces (fingerprint {fp}), which proves nothing about who wrote it; pass \
                     --key with the site's ML-DSA-65 public key (qgw pubkey --mldsa)"
                );
            }
        }
        for w in &self.warnings {
            let _ = writeln!(out, "warning: {w}");
        }
        if self.more_warnings > 0 {
            let _ = writeln!(out, "warning: ... and {} more", self.more_warnings);
        }
        out.push_str("OK: no record altered, removed or reordered\n");
        out
    }
}
