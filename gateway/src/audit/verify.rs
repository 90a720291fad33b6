//! The verifier (docs/audit.md §6), sans-IO: fed the lines of one or more files in seq order, it
//! stops at the first altered, removed, reordered or malformed record or bad signature and says
//! where; otherwise it produces a [`Report`]. Memory is bounded: it keeps the last record's seq and
//! hash, the signer key, one summary per file and at most [`super::report::MAX_WARNINGS`] warnings.
//! The [`Report`] and its rendering are in [`super::report`].

use std::fmt;

use base64::Engine;
use keymix::mldsa::{Signature, VerifyingKey};

use super::chain::checkpoint_message;
use super::event::SignerInfo;
use super::json::{hex, parse_hex32};
use super::record::{Record, parse_line, peek_seq};
use super::report::{FileSummary, Report};
use super::{CHECKPOINT_LABEL, GENESIS_PREV, MAX_LINE_BYTES};

/// The first problem found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// The file.
    pub file: String,
    /// 1-based line number.
    pub line: u64,
    /// The record's seq, when readable.
    pub seq: Option<u64>,
    /// What is wrong.
    pub problem: String,
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}: ", self.file, self.line)?;
        if let Some(seq) = self.seq {
            write!(f, "seq {seq}: ")?;
        }
        f.write_str(&self.problem)
    }
}

type Key = (VerifyingKey, [u8; 32]);
type Problem = (Option<u64>, String);

/// Verifies a sequence of files, line by line.
#[derive(Debug)]
pub struct Verifier {
    pinned: Option<Key>,
    announced: Option<Key>,
    last: Option<(u64, [u8; 32])>,
    current: FileSummary,
    line_no: u64,
    prev_torn: Option<(String, u64)>,
    report: Report,
    failed: Option<Finding>,
}

impl Verifier {
    /// With `pinned`, every checkpoint must be signed and verify under that key.
    pub fn new(pinned: Option<VerifyingKey>) -> Self {
        let pinned = pinned.map(|k| {
            let fp = SignerInfo::new(&k).fingerprint;
            (k, fp)
        });
        Self {
            report: Report {
                pinned: pinned.as_ref().map(|(_, fp)| *fp),
                ..Report::default()
            },
            pinned,
            announced: None,
            last: None,
            current: FileSummary::default(),
            line_no: 0,
            prev_torn: None,
            failed: None,
        }
    }

    /// Starts the next file (files must come in seq order).
    pub fn begin_file(&mut self, name: &str) {
        self.current = FileSummary {
            name: name.to_owned(),
            ..FileSummary::default()
        };
        self.line_no = 0;
    }

    /// One complete line, without its `\n`.
    pub fn line(&mut self, line: &[u8]) -> Result<(), Finding> {
        if let Some(f) = &self.failed {
            return Err(f.clone());
        }
        self.line_no += 1;
        self.check_line(line).map_err(|(seq, problem)| {
            let f = Finding {
                file: self.current.name.clone(),
                line: self.line_no,
                seq,
                problem,
            };
            self.failed = Some(f.clone());
            f
        })
    }

    /// The current file ends in an incomplete line of `bytes` bytes.
    pub fn torn_tail(&mut self, bytes: u64) {
        self.current.torn_bytes = bytes;
    }

    /// Ends the current file.
    pub fn end_file(&mut self) -> Result<(), Finding> {
        if let Some(f) = &self.failed {
            return Err(f.clone());
        }
        let name = self.current.name.clone();
        if self.current.torn_bytes > 0 {
            if self.current.records == 0 {
                return Err(self.fail(1, None, "no complete record (incomplete line only)"));
            }
            self.prev_torn = Some((name.clone(), self.current.torn_bytes));
        } else if self.current.records == 0 {
            self.warn(format!("{name}: empty file"));
        }
        self.report.files.push(std::mem::take(&mut self.current));
        Ok(())
    }

    /// The report, once every file has ended.
    pub fn finish(mut self) -> Result<Report, Finding> {
        if let Some(f) = self.failed {
            return Err(f);
        }
        if let Some((name, bytes)) = self.prev_torn.take() {
            self.warn(format!(
                "{name} ends in an incomplete line of {bytes} bytes: a crash while writing (the \
                 daemon continues in a new file with chain_restart when it restarts) or a truncation"
            ));
        }
        self.report.announced = self.announced.as_ref().map(|(_, fp)| *fp);
        Ok(self.report)
    }

    fn fail(&mut self, line: u64, seq: Option<u64>, problem: &str) -> Finding {
        let f = Finding {
            file: self.current.name.clone(),
            line,
            seq,
            problem: problem.to_owned(),
        };
        self.failed = Some(f.clone());
        f
    }

    fn warn(&mut self, w: String) {
        if self.report.warnings.len() < super::report::MAX_WARNINGS {
            self.report.warnings.push(w);
        } else {
            self.report.more_warnings += 1;
        }
    }

    fn check_line(&mut self, line: &[u8]) -> Result<(), Problem> {
        if line.len() > MAX_LINE_BYTES {
            return Err((peek_seq(line), "malformed line (longer than 64 KiB)".into()));
        }
        let r = parse_line(line).map_err(|e| (peek_seq(line), e.to_string()))?;
        let seq = Some(r.seq);
        let bad = |p: String| (seq, p);
        if self.current.records == 0 {
            self.check_file_start(&r).map_err(bad)?;
        } else {
            self.check_link(&r).map_err(bad)?;
            if r.event == "file_start" || r.event == "chain_restart" {
                return Err(bad(format!("{} in the middle of a file", r.event)));
            }
        }
        match r.event.as_str() {
            "file_start" | "resume" | "chain_restart" => self.announce(&r).map_err(bad)?,
            "checkpoint" => self.check_checkpoint(&r).map_err(bad)?,
            "records_lost" => {
                let n = r.u64("count").unwrap_or(0);
                let name = self.current.name.clone();
                self.warn(format!(
                    "{name}:{}: {n} record(s) were lost to write errors before seq {}",
                    self.line_no, r.seq
                ));
            }
            _ => {}
        }
        let c = &mut self.current;
        c.records += 1;
        c.seqs = Some((c.seqs.map_or(r.seq, |(first, _)| first), r.seq));
        self.last = Some((r.seq, r.hash));
        Ok(())
    }

    fn check_link(&self, r: &Record) -> Result<(), String> {
        let Some((seq, hash)) = self.last else {
            return Ok(());
        };
        if r.seq != seq.saturating_add(1) {
            return Err(format!(
                "record removed or reordered (seq {} follows {seq})",
                r.seq
            ));
        }
        if r.prev != hash {
            return Err(format!(
                "chain broken (prev does not match the hash of seq {seq})"
            ));
        }
        Ok(())
    }

    fn check_file_start(&mut self, r: &Record) -> Result<(), String> {
        let new_chain = r.event == "file_start" && r.str("reason") == Some("new_chain");
        match (r.event.as_str(), r.str("reason")) {
            ("file_start", Some("new_chain" | "rotation")) => {}
            ("chain_restart", _) => {
                if r.u64("last_good_seq") != Some(r.seq.saturating_sub(1)) {
                    return Err("malformed chain_restart (last_good_seq is not seq - 1)".into());
                }
            }
            ("file_start", _) => return Err("malformed file_start (unknown reason)".into()),
            _ => {
                return Err(format!(
                    "file begins with {} instead of file_start or chain_restart (records removed from its start?)",
                    r.event
                ));
            }
        }
        if new_chain != (r.seq == 0) || (new_chain && r.prev != GENESIS_PREV) {
            return Err(
                "malformed start (only a new_chain file_start is seq 0, with a zero prev)".into(),
            );
        }
        let previous = self.report.files.last().map(|f| f.name.clone());
        match (self.last, previous) {
            (Some((seq, hash)), Some(prev_file)) => {
                if r.seq <= seq {
                    return Err(format!(
                        "files overlap or a second chain starts: this file starts at seq {} but {prev_file} already ends at seq {seq}",
                        r.seq
                    ));
                }
                if r.seq > seq + 1 {
                    return Err(format!(
                        "records removed: seq {}..={} missing between {prev_file} and this file (a rotated file not given?)",
                        seq + 1,
                        r.seq - 1
                    ));
                }
                if r.prev != hash {
                    return Err(format!(
                        "chain broken (prev does not match the hash of seq {seq}, the last record of {prev_file})"
                    ));
                }
            }
            _ if !new_chain => {
                let name = self.current.name.clone();
                self.warn(format!(
                    "{name} starts at seq {}, continuing a file not given: its start is not anchored",
                    r.seq
                ));
            }
            _ => {}
        }
        let name = self.current.name.clone();
        match (self.prev_torn.take(), r.event == "chain_restart") {
            (Some((file, bytes)), true) => self.warn(format!(
                "{file} ends in an incomplete line of {bytes} bytes (a crash while writing); {name} continues the chain after seq {} (chain_restart)",
                r.seq.saturating_sub(1)
            )),
            (Some((file, bytes)), false) => {
                return Err(format!(
                    "{file} ends in an incomplete line of {bytes} bytes, but this file does not start with chain_restart"
                ));
            }
            (None, true) => self.warn(format!(
                "{name}: chain_restart after seq {}: the file before it ended in an incomplete line (crash while writing)",
                r.seq.saturating_sub(1)
            )),
            (None, false) => {}
        }
        Ok(())
    }

    fn announce(&mut self, r: &Record) -> Result<(), String> {
        let key = match (r.str("key_fp"), r.str("public_key")) {
            (Some(fp), Some(pk)) => {
                let bytes = base64::engine::general_purpose::STANDARD
                    .decode(pk)
                    .map_err(|_| "malformed public_key (not Base64)".to_owned())?;
                let vk = VerifyingKey::from_bytes(&bytes)
                    .map_err(|_| "malformed public_key (not an ML-DSA-65 key)".to_owned())?;
                let info = SignerInfo::new(&vk);
                if parse_hex32(fp) != Some(info.fingerprint) {
                    return Err("announced public_key does not match its key_fp".into());
                }
                Some((vk, info.fingerprint))
            }
            _ if r.is_null("key_fp") && r.is_null("public_key") => None,
            _ => {
                return Err(
                    "malformed signer (key_fp and public_key must both be set or null)".into(),
                );
            }
        };
        let old = self.announced.as_ref().map(|(_, fp)| *fp);
        let new = key.as_ref().map(|(_, fp)| *fp);
        if old.is_some() && old != new {
            let show = |k: Option<[u8; 32]>| k.map_or("none".to_owned(), |fp| hex(&fp));
            let name = self.current.name.clone();
            self.warn(format!(
                "{name}:{}: the announced signer changes at seq {} (from {} to {})",
                self.line_no,
                r.seq,
                show(old),
                show(new)
            ));
        }
        self.announced = key;
        Ok(())
    }

    fn check_checkpoint(&mut self, r: &Record) -> Result<(), String> {
        let chain_hash = r.str("chain_hash").and_then(parse_hex32);
        if r.seq == 0 || r.u64("to_seq") != Some(r.seq - 1) || chain_hash != Some(r.prev) {
            return Err("malformed checkpoint (must cover exactly the records before it)".into());
        }
        match (r.str("key_fp"), r.str("sig")) {
            (Some(fp), Some(sig)) => {
                let fp = parse_hex32(fp).ok_or("malformed checkpoint key_fp")?;
                let Some((vk, want)) = self.pinned.as_ref().or(self.announced.as_ref()) else {
                    return Err("signed checkpoint, but no signer key was announced".into());
                };
                if fp != *want {
                    let whose = if self.pinned.is_some() {
                        "the pinned (--key)"
                    } else {
                        "the announced"
                    };
                    return Err(format!(
                        "bad checkpoint signature (signed by key {}, not {whose} key {})",
                        hex(&fp),
                        hex(want)
                    ));
                }
                let sig = base64::engine::general_purpose::STANDARD
                    .decode(sig)
                    .ok()
                    .and_then(|b| Signature::from_bytes(&b).ok())
                    .ok_or("bad checkpoint signature (malformed)")?;
                let message = checkpoint_message(r.seq, r.seq - 1, &r.prev, &fp);
                vk.verify(&message, CHECKPOINT_LABEL, &sig)
                    .map_err(|_| "bad checkpoint signature".to_owned())?;
                self.current.signed += 1;
                self.current.last_signed = Some(r.seq);
            }
            _ if r.is_null("key_fp") && r.is_null("sig") => {
                if self.pinned.is_some() {
                    return Err(
                        "unsigned checkpoint, but --key requires every checkpoint to be signed"
                            .into(),
                    );
                }
                self.current.unsigned += 1;
            }
            _ => {
                return Err(
                    "malformed checkpoint (key_fp and sig must both be set or null)".into(),
                );
            }
        }
        Ok(())
    }
}

#[cfg(test)]
#[path = "verify_tests.rs"]
mod tests;
