//! The file-reading edge of `qgw audit verify` (docs/audit.md §6): orders the given files by the
//! seq their first line claims, then streams each through the [`Verifier`] line by line, reading at
//! most [`MAX_LINE_BYTES`] + 1 bytes per line (bounded memory for any input).

use std::fs::File;
use std::io::{self, BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

use keymix::mldsa::VerifyingKey;

use super::MAX_LINE_BYTES;
use super::record::peek_seq;
use super::report::Report;
use super::verify::{Finding, Verifier};

/// The verdict.
#[derive(Debug)]
pub enum Outcome {
    /// Nothing altered, removed or reordered.
    Verified(Report),
    /// The first problem.
    Failed(Finding),
}

/// Verifies `paths` (rotated files and the current one, in any order). I/O errors (a file that
/// cannot be read) are errors naming the file, not findings.
pub fn verify_files(paths: &[PathBuf], pinned: Option<VerifyingKey>) -> io::Result<Outcome> {
    let mut ordered = Vec::with_capacity(paths.len());
    for p in paths {
        ordered.push((first_seq(p).map_err(|e| named(p, e))?, p));
    }
    // Files whose first line claims no seq go first, so that their problem is the one reported.
    ordered.sort_by_key(|(seq, _)| *seq);
    let mut v = Verifier::new(pinned);
    for (_, p) in ordered {
        v.begin_file(&p.display().to_string());
        if let Err(f) = feed(&mut v, p).map_err(|e| named(p, e))? {
            return Ok(Outcome::Failed(f));
        }
        if let Err(f) = v.end_file() {
            return Ok(Outcome::Failed(f));
        }
    }
    Ok(match v.finish() {
        Ok(r) => Outcome::Verified(r),
        Err(f) => Outcome::Failed(f),
    })
}

/// [`verify_files`] over in-memory files `(name, bytes)` (tests, fuzzing): same ordering, same
/// line limit.
pub fn verify_bytes(files: &[(&str, &[u8])], pinned: Option<VerifyingKey>) -> Outcome {
    let mut ordered: Vec<_> = files
        .iter()
        .map(|(name, bytes)| {
            let first = bytes.split(|b| *b == b'\n').next().unwrap_or_default();
            (peek_seq(first), *name, *bytes)
        })
        .collect();
    ordered.sort_by_key(|(seq, _, _)| *seq);
    let mut v = Verifier::new(pinned);
    for (_, name, bytes) in ordered {
        v.begin_file(name);
        let mut rest = bytes;
        while !rest.is_empty() {
            let Some(nl) = rest.iter().position(|b| *b == b'\n') else {
                if rest.len() > MAX_LINE_BYTES
                    && let Err(f) = v.line(rest)
                {
                    return Outcome::Failed(f);
                }
                v.torn_tail(rest.len() as u64);
                break;
            };
            if let Err(f) = v.line(&rest[..nl]) {
                return Outcome::Failed(f);
            }
            rest = &rest[nl + 1..];
        }
        if let Err(f) = v.end_file() {
            return Outcome::Failed(f);
        }
    }
    match v.finish() {
        Ok(r) => Outcome::Verified(r),
        Err(f) => Outcome::Failed(f),
    }
}

fn feed(v: &mut Verifier, path: &Path) -> io::Result<Result<(), Finding>> {
    let mut reader = BufReader::new(File::open(path)?);
    let mut buf = Vec::new();
    loop {
        buf.clear();
        let limit = MAX_LINE_BYTES as u64 + 1;
        if (&mut reader).take(limit).read_until(b'\n', &mut buf)? == 0 {
            return Ok(Ok(()));
        }
        if buf.last() == Some(&b'\n') {
            buf.pop();
        } else if buf.len() <= MAX_LINE_BYTES {
            v.torn_tail(buf.len() as u64);
            return Ok(Ok(()));
        }
        // A line over the limit is refused by the verifier; reading stops there.
        if let Err(f) = v.line(&buf) {
            return Ok(Err(f));
        }
    }
}

fn first_seq(path: &Path) -> io::Result<Option<u64>> {
    let mut line = Vec::new();
    BufReader::new(File::open(path)?)
        .take(MAX_LINE_BYTES as u64)
        .read_until(b'\n', &mut line)?;
    Ok(peek_seq(&line))
}

fn named(path: &Path, e: io::Error) -> io::Error {
    io::Error::new(e.kind(), format!("{}: {e}", path.display()))
}
