//! How the writer finds where an existing file's chain ends (docs/audit.md §5, "Restart"): it reads
//! the last [`WINDOW`] bytes, not the whole file, and classifies them; [`plan`] turns that into the
//! chain state and the opening record of the writer's session. [`classify`] is pure; the rest is the
//! small file edge around it.

use std::fs::{self, File};
use std::io::{self, BufRead, BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use super::MAX_LINE_BYTES;
use super::chain::ChainState;
use super::event::FileStartReason;
use super::record::{parse_line, peek_seq};

/// Enough for a torn partial line plus the complete line before it.
pub const WINDOW: u64 = 2 * MAX_LINE_BYTES as u64 + 2;

/// The end of an existing file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Tail {
    /// No bytes.
    Empty,
    /// Ends with a complete, self-consistent record.
    Intact {
        /// Its seq.
        seq: u64,
        /// Its hash.
        hash: [u8; 32],
    },
    /// Ends with an incomplete line (a crash mid-write) after a complete, self-consistent record.
    Torn {
        /// Seq of the last complete record.
        seq: u64,
        /// Its hash.
        hash: [u8; 32],
        /// Length of the incomplete line.
        torn_bytes: u64,
    },
    /// The chain cannot be continued from this file; says why.
    Unusable(String),
}

/// Classifies the last bytes of a file; `whole` says whether `window` starts at the file's start.
pub fn classify(window: &[u8], whole: bool) -> Tail {
    if window.is_empty() {
        return Tail::Empty;
    }
    let (complete, torn) = match window.iter().rposition(|b| *b == b'\n') {
        Some(nl) => (&window[..nl], window.len() - nl - 1),
        None if whole => return Tail::Unusable("no complete record (no newline)".into()),
        None => return Tail::Unusable("last line is longer than any record".into()),
    };
    let last = match complete.iter().rposition(|b| *b == b'\n') {
        Some(nl) => &complete[nl + 1..],
        None if whole => complete,
        None => return Tail::Unusable("last line is longer than any record".into()),
    };
    let record = match parse_line(last) {
        Ok(r) => r,
        Err(e) => {
            let seq = peek_seq(last).map_or("?".to_owned(), |s| s.to_string());
            return Tail::Unusable(format!("last complete record (seq {seq}) is invalid: {e}"));
        }
    };
    if torn == 0 {
        Tail::Intact {
            seq: record.seq,
            hash: record.hash,
        }
    } else {
        Tail::Torn {
            seq: record.seq,
            hash: record.hash,
            torn_bytes: torn as u64,
        }
    }
}

/// Reads and classifies the end of `path`.
pub fn read_tail(path: &Path) -> io::Result<Tail> {
    let mut f = File::open(path)?;
    let len = f.metadata()?.len();
    // One byte more than the window: if it is the newline before a line, that line is complete.
    let start = len.saturating_sub(WINDOW + 1);
    f.seek(SeekFrom::Start(start))?;
    let mut window = Vec::new();
    f.take(WINDOW + 1).read_to_end(&mut window)?;
    Ok(classify(&window, start == 0))
}

/// The seq the first line of `path` claims (unchecked; for naming a rotated file).
pub fn first_seq(path: &Path) -> io::Result<Option<u64>> {
    let mut line = Vec::new();
    BufReader::new(File::open(path)?)
        .take(MAX_LINE_BYTES as u64)
        .read_until(b'\n', &mut line)?;
    Ok(peek_seq(&line))
}

/// `<path>.<seq, 20 digits>`: the name a file whose first record is `seq` is rotated to.
pub fn rotated_name(path: &Path, seq: u64) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(format!(".{seq:020}"));
    PathBuf::from(name)
}

/// The rotated sibling of `path` with the highest first seq, if any.
pub fn latest_rotated(path: &Path) -> io::Result<Option<PathBuf>> {
    let (Some(dir), Some(base)) = (path.parent(), path.file_name()) else {
        return Ok(None);
    };
    let dir = if dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        dir
    };
    let mut prefix = base.to_owned();
    prefix.push(".");
    let prefix = prefix.to_string_lossy().into_owned();
    let mut best: Option<(u64, PathBuf)> = None;
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name();
        let Some(digits) = name.to_str().and_then(|n| n.strip_prefix(prefix.as_str())) else {
            continue;
        };
        if digits.len() != 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
            continue;
        }
        let Ok(seq) = digits.parse::<u64>() else {
            continue;
        };
        if best.as_ref().is_none_or(|(b, _)| seq > *b) {
            best = Some((seq, entry.path()));
        }
    }
    Ok(best.map(|(_, p)| p))
}

/// The record a file (or a writer session) must start with before any other.
#[derive(Debug, Clone)]
pub(super) enum Header {
    /// `file_start`.
    FileStart(FileStartReason),
    /// `resume`.
    Resume,
    /// `chain_restart` after `torn_bytes` left in the file named `previous`.
    ChainRestart {
        /// Length of the incomplete line.
        torn_bytes: u64,
        /// Final path component of the torn file.
        previous: String,
    },
}

/// Where a writer opening `path` continues the chain, and with which record (docs/audit.md §5,
/// "Restart"). Renames a torn `path` away first, like a rotation.
pub(super) fn plan(path: &Path) -> io::Result<(ChainState, Header)> {
    let existing = match fs::metadata(path) {
        Ok(m) => m.len(),
        Err(e) if e.kind() == io::ErrorKind::NotFound => 0,
        Err(e) => return Err(e),
    };
    let (chain, header) = if existing > 0 {
        match read_tail(path)? {
            Tail::Intact { seq, hash } => (ChainState::after(seq, hash), Header::Resume),
            Tail::Torn {
                seq,
                hash,
                torn_bytes,
            } => {
                let first = first_seq(path)?.unwrap_or(seq);
                let rotated = rotated_name(path, first);
                rename_new(path, &rotated)?;
                let previous = file_name(&rotated);
                let header = Header::ChainRestart {
                    torn_bytes,
                    previous,
                };
                (ChainState::after(seq, hash), header)
            }
            Tail::Empty => (
                ChainState::genesis(),
                Header::FileStart(FileStartReason::NewChain),
            ),
            Tail::Unusable(why) => return Err(unusable(path, &why)),
        }
    } else {
        match latest_rotated(path)? {
            None => (
                ChainState::genesis(),
                Header::FileStart(FileStartReason::NewChain),
            ),
            Some(previous) => match read_tail(&previous)? {
                Tail::Intact { seq, hash } => (
                    ChainState::after(seq, hash),
                    Header::FileStart(FileStartReason::Rotation),
                ),
                Tail::Torn {
                    seq,
                    hash,
                    torn_bytes,
                } => {
                    let previous = file_name(&previous);
                    let header = Header::ChainRestart {
                        torn_bytes,
                        previous,
                    };
                    (ChainState::after(seq, hash), header)
                }
                Tail::Empty => return Err(unusable(&previous, "empty rotated file")),
                Tail::Unusable(why) => return Err(unusable(&previous, &why)),
            },
        }
    };
    Ok((chain, header))
}

/// Renames without ever replacing an existing file.
pub(super) fn rename_new(from: &Path, to: &Path) -> io::Result<()> {
    if to.exists() {
        let msg = format!("{} already exists; not overwriting it", to.display());
        return Err(io::Error::new(io::ErrorKind::AlreadyExists, msg));
    }
    fs::rename(from, to)
}

fn file_name(path: &Path) -> String {
    path.file_name().map_or_else(
        || path.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    )
}

fn unusable(path: &Path, why: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!(
            "{}: cannot continue the audit chain: {why}; check it with `qgw audit verify` and move it aside",
            path.display()
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::chain::ChainState;
    use crate::audit::event::AuditEvent;
    use std::time::UNIX_EPOCH;

    fn two_lines() -> (Vec<u8>, [u8; 32]) {
        let mut chain = ChainState::genesis();
        let mut out = Vec::new();
        for _ in 0..2 {
            let p = chain.prepare_event(UNIX_EPOCH, &AuditEvent::Stop { reason: "r".into() });
            out.extend_from_slice(&p.line);
            chain.commit(&p);
        }
        (out, chain.prev)
    }

    #[test]
    fn intact_torn_and_unusable_ends() {
        let (bytes, last) = two_lines();
        assert_eq!(classify(&bytes, true), Tail::Intact { seq: 1, hash: last });
        let mut torn = bytes.clone();
        torn.extend_from_slice(b"{\"seq\":2,\"ti");
        assert_eq!(
            classify(&torn, true),
            Tail::Torn {
                seq: 1,
                hash: last,
                torn_bytes: 12
            }
        );
        assert_eq!(classify(&[], true), Tail::Empty);
        assert!(matches!(classify(b"{\"seq\":0", true), Tail::Unusable(_)));
        let mut altered = bytes.clone();
        let at = altered.len() - 90;
        altered[at] ^= 1;
        assert!(matches!(classify(&altered, true), Tail::Unusable(_)));
        // Both lines have the same length: the window starts at the newline ending line 1.
        let from_newline = &bytes[bytes.len() / 2 - 1..];
        assert!(matches!(
            classify(from_newline, false),
            Tail::Intact { seq: 1, .. }
        ));
        let mid_line = &bytes[bytes.len() / 2 + 1..];
        assert!(matches!(classify(mid_line, false), Tail::Unusable(_)));
    }

    #[test]
    fn rotated_names_sort_by_seq() {
        let p = Path::new("/var/log/qgw/qgw0.audit.jsonl");
        assert_eq!(
            rotated_name(p, 256),
            Path::new("/var/log/qgw/qgw0.audit.jsonl.00000000000000000256")
        );
        let dir = tempfile::tempdir().expect("tmp");
        let base = dir.path().join("a.jsonl");
        for seq in [0, 300, 20] {
            std::fs::write(rotated_name(&base, seq), b"").expect("write");
        }
        std::fs::write(dir.path().join("a.jsonl.bak"), b"").expect("write");
        assert_eq!(
            latest_rotated(&base).expect("dir"),
            Some(rotated_name(&base, 300))
        );
    }
}
