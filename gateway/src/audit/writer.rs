//! The file edge of the audit trail (docs/audit.md §5): opens or continues the log, appends one
//! line per `write(2)` with `O_APPEND`, signs checkpoints when due by count or time, fsyncs on
//! checkpoints, and rotates. The chain itself is computed by [`super::chain`]; this file only
//! decides when to write what and keeps the file consistent when a write fails.
//!
//! * Files are created mode 0600, a missing parent directory mode 0700.
//! * A failed write is truncated away before the next one (no half line is ever followed by
//!   another record); the records lost this way are announced by a `records_lost` record.
//! * Errors are returned, never panicked on, and counted ([`AuditLog::write_errors`]).

use std::fs::{self, DirBuilder, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use keymix::mldsa::SigningKey;

use super::chain::{ChainState, Prepared};
use super::event::{AuditEvent, Body, FileStartReason, SignerInfo};
use super::tail::{self, Header};
use super::{DEFAULT_CHECKPOINT_RECORDS, DEFAULT_CHECKPOINT_SECONDS, DEFAULT_ROTATE_BYTES};

/// Validated `audit:` settings (`configs/README.md`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditSettings {
    /// The current log file; rotated files sit next to it.
    pub path: PathBuf,
    /// Rotate before a record would take the file past this size.
    pub rotate_bytes: u64,
    /// Sign a checkpoint after this many records.
    pub checkpoint_records: u64,
    /// ... or after this long, when at least one record is not yet covered.
    pub checkpoint_interval: Duration,
}

impl AuditSettings {
    /// `path` with the default limits.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self {
            path: path.into(),
            rotate_bytes: DEFAULT_ROTATE_BYTES,
            checkpoint_records: DEFAULT_CHECKPOINT_RECORDS,
            checkpoint_interval: Duration::from_secs(DEFAULT_CHECKPOINT_SECONDS),
        }
    }
}

/// An open audit log.
#[derive(Debug)]
pub struct AuditLog {
    settings: AuditSettings,
    signer: Option<Arc<SigningKey>>,
    signer_info: Option<SignerInfo>,
    file: File,
    /// Bytes of complete records in `file`.
    size: u64,
    /// A failed write may have left bytes after `size`.
    dirty: bool,
    file_first_seq: u64,
    header: Option<Header>,
    chain: ChainState,
    /// Records since the last checkpoint.
    unsigned: u64,
    last_checkpoint: SystemTime,
    /// Events that could not be written since the last written record.
    lost: u64,
    records_written: u64,
    write_errors: u64,
}

impl AuditLog {
    /// Opens `settings.path`, continuing its chain (or the latest rotated file's) if there is one,
    /// and writes the opening record: `file_start` (new file), `resume` (intact existing file) or
    /// `chain_restart` (the existing file ended in a torn line; it is rotated away first).
    /// `signer` is the site's ML-DSA-65 key; without it checkpoints are written unsigned.
    pub fn open(
        settings: &AuditSettings,
        signer: Option<Arc<SigningKey>>,
        now: SystemTime,
    ) -> io::Result<Self> {
        let path = &settings.path;
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty())
            && !dir.exists()
        {
            DirBuilder::new().recursive(true).mode(0o700).create(dir)?;
        }
        let (chain, header) = tail::plan(path)?;
        let file = open_append(path)?;
        let size = file.metadata()?.len();
        sync_dir(path)?;
        let mut log = Self {
            settings: settings.clone(),
            signer_info: signer
                .as_deref()
                .map(|k| SignerInfo::new(k.verifying_key())),
            signer,
            file,
            size,
            dirty: false,
            file_first_seq: chain.next_seq,
            header: Some(header),
            chain,
            unsigned: 0,
            last_checkpoint: now,
            lost: 0,
            records_written: 0,
            write_errors: 0,
        };
        if let Some(first) = tail::first_seq(path)? {
            log.file_first_seq = first;
        }
        let opened = log.write_pending(now);
        log.counted(opened)?;
        Ok(log)
    }

    /// Appends `event`, rotating first if the file would grow past `rotate_bytes`, and signs a
    /// checkpoint after it when `checkpoint_records` records are uncovered.
    pub fn record(&mut self, now: SystemTime, event: AuditEvent) -> io::Result<()> {
        let written = self.write_event(now, &event);
        if written.is_err() {
            self.lost = self.lost.saturating_add(1);
        }
        self.counted(written)?;
        if self.unsigned >= self.settings.checkpoint_records {
            let signed = self.checkpoint_or_rotate(now);
            self.counted(signed)?;
        }
        Ok(())
    }

    /// Signs a checkpoint if `checkpoint_interval` has passed since the last one and a record is
    /// uncovered. Call it at [`AuditLog::next_checkpoint_at`].
    pub fn tick(&mut self, now: SystemTime) -> io::Result<()> {
        if now < self.last_checkpoint {
            self.last_checkpoint = now; // the wall clock went back: measure from here
        }
        let due = now
            .duration_since(self.last_checkpoint)
            .is_ok_and(|d| d >= self.settings.checkpoint_interval);
        if !due {
            return Ok(());
        }
        let result = self.write_pending(now).and_then(|()| {
            if self.unsigned > 0 {
                self.checkpoint_or_rotate(now)
            } else {
                Ok(())
            }
        });
        self.counted(result)
    }

    /// Counts `n` records that never reached the log (its writer fell behind); the log announces
    /// them with the next record, as it does its own write failures.
    pub fn lost_before_writing(&mut self, n: u64) {
        self.lost = self.lost.saturating_add(n);
    }

    /// Writes a final checkpoint (if any record is uncovered) and syncs the file.
    pub fn close(mut self, now: SystemTime) -> io::Result<()> {
        let result = self.write_pending(now).and_then(|()| {
            if self.unsigned > 0 {
                self.checkpoint(now)
            } else {
                self.file.sync_data()
            }
        });
        self.counted(result)
    }

    /// When [`AuditLog::tick`] will next sign, if anything is uncovered.
    pub fn next_checkpoint_at(&self) -> Option<SystemTime> {
        let pending = self.unsigned > 0 || self.header.is_some() || self.lost > 0;
        pending.then(|| self.last_checkpoint + self.settings.checkpoint_interval)
    }

    /// Records written since [`AuditLog::open`] (including checkpoints and the writer's own).
    pub fn records_written(&self) -> u64 {
        self.records_written
    }

    /// I/O errors since [`AuditLog::open`].
    pub fn write_errors(&self) -> u64 {
        self.write_errors
    }

    /// The current file.
    pub fn path(&self) -> &Path {
        &self.settings.path
    }

    fn counted<T>(&mut self, result: io::Result<T>) -> io::Result<T> {
        if result.is_err() {
            self.write_errors = self.write_errors.saturating_add(1);
        }
        result
    }

    fn write_event(&mut self, now: SystemTime, event: &AuditEvent) -> io::Result<()> {
        self.write_pending(now)?;
        let len = self.chain.prepare_event(now, event).line.len() as u64;
        if self.would_overflow(len) {
            self.rotate(now)?;
            self.write_pending(now)?;
        }
        self.write_body(now, &Body::Event(event))
    }

    /// The opening record (if not yet written), then the note of lost records (if any).
    fn write_pending(&mut self, now: SystemTime) -> io::Result<()> {
        if let Some(header) = self.header.take() {
            let info = self.signer_info.clone();
            let body = match &header {
                Header::FileStart(reason) => Body::FileStart(*reason, info.as_ref()),
                Header::Resume => Body::Resume(info.as_ref()),
                Header::ChainRestart {
                    torn_bytes,
                    previous,
                } => Body::ChainRestart {
                    torn_bytes: *torn_bytes,
                    previous_file: previous,
                    signer: info.as_ref(),
                },
            };
            if let Err(e) = self.write_body(now, &body) {
                self.header = Some(header);
                return Err(e);
            }
        }
        if self.lost > 0 {
            self.write_body(now, &Body::RecordsLost(self.lost))?;
            self.lost = 0;
        }
        Ok(())
    }

    fn write_body(&mut self, now: SystemTime, body: &Body<'_>) -> io::Result<()> {
        let p = self.chain.prepare(now, body);
        self.append(&p)
    }

    /// Whether a line of `len` bytes would take a file holding more than its opening record past
    /// `rotate_bytes`.
    fn would_overflow(&self, len: u64) -> bool {
        let more_than_header = self.chain.next_seq > self.file_first_seq.saturating_add(1);
        more_than_header && self.size.saturating_add(len) > self.settings.rotate_bytes
    }

    /// A checkpoint, or a rotation (which closes the file with a checkpoint) when this one would
    /// take the file past `rotate_bytes`: a file exceeds it by at most its closing checkpoint.
    fn checkpoint_or_rotate(&mut self, now: SystemTime) -> io::Result<()> {
        let p = self.prepare_checkpoint(now)?;
        if self.would_overflow(p.line.len() as u64) {
            return self.rotate(now);
        }
        self.append_checkpoint(now, &p)
    }

    fn prepare_checkpoint(&self, now: SystemTime) -> io::Result<Prepared> {
        self.chain
            .prepare_checkpoint(now, self.signer.as_deref())
            .map_err(|e| io::Error::other(format!("signing an audit checkpoint: {e}")))
    }

    fn checkpoint(&mut self, now: SystemTime) -> io::Result<()> {
        let p = self.prepare_checkpoint(now)?;
        self.append_checkpoint(now, &p)
    }

    fn append_checkpoint(&mut self, now: SystemTime, p: &Prepared) -> io::Result<()> {
        self.append(p)?;
        self.file.sync_data()?;
        self.unsigned = 0;
        self.last_checkpoint = now;
        Ok(())
    }

    fn append(&mut self, p: &Prepared) -> io::Result<()> {
        if self.dirty {
            self.file.set_len(self.size)?;
            self.dirty = false;
        }
        if let Err(e) = self.file.write_all(&p.line) {
            self.dirty = true;
            return Err(e);
        }
        self.size = self.size.saturating_add(p.line.len() as u64);
        self.chain.commit(p);
        self.unsigned = self.unsigned.saturating_add(1);
        self.records_written = self.records_written.saturating_add(1);
        Ok(())
    }

    /// Checkpoint, rename the file to `<path>.<first seq>`, start a new one.
    fn rotate(&mut self, now: SystemTime) -> io::Result<()> {
        self.checkpoint(now)?;
        let path = self.settings.path.clone();
        let rotated = tail::rotated_name(&path, self.file_first_seq);
        tail::rename_new(&path, &rotated)?;
        let file = match open_append(&path) {
            Ok(f) => f,
            Err(e) => {
                let _ = fs::rename(&rotated, &path);
                return Err(e);
            }
        };
        self.file = file;
        self.size = 0;
        self.dirty = false;
        self.file_first_seq = self.chain.next_seq;
        self.header = Some(Header::FileStart(FileStartReason::Rotation));
        sync_dir(&path)
    }
}

fn open_append(path: &Path) -> io::Result<File> {
    OpenOptions::new()
        .append(true)
        .create(true)
        .mode(0o600)
        .open(path)
}

fn sync_dir(path: &Path) -> io::Result<()> {
    match path.parent().filter(|d| !d.as_os_str().is_empty()) {
        Some(dir) => File::open(dir)?.sync_all(),
        None => File::open(".")?.sync_all(),
    }
}

#[cfg(test)]
#[path = "writer_tests.rs"]
mod tests;
