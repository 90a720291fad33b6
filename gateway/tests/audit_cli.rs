//! `qgw audit verify` end to end: a log written by the library (rotated into several files) is
//! verified by the real binary, and altered copies fail with exit code 1 and a message naming the
//! right file and line (docs/audit.md §6).
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::Command;

use gateway::audit::testing::{at, event, signing_key};
use gateway::audit::{AuditLog, AuditSettings};

struct Run {
    code: i32,
    out: String,
}

fn qgw(args: &[&str]) -> Run {
    let o = Command::new(env!("CARGO_BIN_EXE_qgw"))
        .args(args)
        .output()
        .unwrap();
    Run {
        code: o.status.code().unwrap(),
        out: format!(
            "{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        ),
    }
}

/// Writes a rotated log and the signer's public key file; returns (key file, files oldest first).
fn setup(dir: &Path) -> (String, Vec<String>) {
    let mut s = AuditSettings::new(dir.join("qgw0.audit.jsonl"));
    s.rotate_bytes = 8192;
    let key = signing_key(1);
    let mut log = AuditLog::open(&s, Some(key.clone()), at(0)).unwrap();
    for i in 0..80 {
        log.record(at(i), event(i)).unwrap();
    }
    log.close(at(40)).unwrap();
    let pubkey = dir.join("site-a.mldsa.pub");
    std::fs::write(&pubkey, gateway::keyfile::mldsa_public_text(&key)).unwrap();
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().contains(".jsonl"))
        .collect();
    files.sort();
    files.rotate_left(1); // the current file (shortest name) last
    let files = files.iter().map(|p| p.display().to_string()).collect();
    (pubkey.display().to_string(), files)
}

fn with_key<'a>(key: &'a str, files: &'a [String]) -> Vec<&'a str> {
    let mut v = vec!["audit", "verify", "--key", key];
    v.extend(files.iter().map(String::as_str));
    v
}

/// Asserts that `run` failed verification (exit code 1) and that its output says every one of
/// `wants`.
#[track_caller]
fn assert_refused(run: &Run, wants: &[&str]) {
    assert_eq!(run.code, 1, "{}", run.out);
    for want in wants {
        assert!(run.out.contains(want), "{}", run.out);
    }
}

/// Copies `file` to `<file>.altered` with its lines changed by `f`.
fn altered(file: &str, f: impl Fn(&mut Vec<String>)) -> String {
    let text = std::fs::read_to_string(file).unwrap();
    let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
    f(&mut lines);
    let out = lines.join("\n") + "\n";
    let path = format!("{file}.altered");
    std::fs::write(&path, out).unwrap();
    path
}

#[test]
fn audit_verify_accepts_a_written_log_and_names_the_altered_line() {
    let dir = tempfile::tempdir().unwrap();
    let (key, files) = setup(dir.path());
    assert!(files.len() >= 3, "{files:?}");

    let ok = qgw(&with_key(&key, &files));
    assert_eq!(ok.code, 0, "{}", ok.out);
    assert!(
        ok.out.contains("signer: pinned by --key") && ok.out.contains("OK:"),
        "{}",
        ok.out
    );
    let mut reversed = files.clone();
    reversed.reverse();
    assert_eq!(qgw(&with_key(&key, &reversed)).code, 0, "any order");

    let mut unpinned = vec!["audit", "verify"];
    unpinned.extend(files.iter().map(String::as_str));
    let run = qgw(&unpinned);
    assert_eq!(run.code, 0, "{}", run.out);
    assert!(run.out.contains("signer NOT pinned"), "{}", run.out);

    // One changed byte in line 3 of the middle file.
    let middle = &files[1];
    let changed = altered(middle, |l| {
        l[2] = l[2]
            .replacen("site-b", "site-x", 1)
            .replacen("invalid_mac1", "invalid_mac2", 1);
    });
    let mut set = files.clone();
    set[1] = changed.clone();
    let run = qgw(&with_key(&key, &set));
    let line = format!("FAILED: {changed}:3: seq ");
    assert_refused(&run, &[&line, "record altered (hash mismatch)"]);

    // Line 4 of the middle file deleted.
    let deleted = altered(middle, |l| {
        l.remove(3);
    });
    let run = qgw(&["audit", "verify", "--key", &key, &deleted]);
    let line = format!("{deleted}:4: seq ");
    assert_refused(&run, &[&line, "record removed or reordered"]);
}

#[test]
fn audit_verify_refuses_a_wrong_key_a_missing_file_and_bad_usage() {
    let dir = tempfile::tempdir().unwrap();
    let (key, files) = setup(dir.path());
    let other = dir.path().join("other.mldsa.pub");
    std::fs::write(&other, gateway::keyfile::mldsa_public_text(&signing_key(2))).unwrap();
    let other = other.display().to_string();
    let run = qgw(&with_key(&other, &files));
    assert_refused(&run, &["not the pinned (--key) key"]);

    let mut gap = files.clone();
    gap.remove(1);
    let run = qgw(&with_key(&key, &gap));
    let line = format!("FAILED: {}:1:", gap[1]);
    assert_refused(&run, &[&line, "missing between"]);

    assert_eq!(qgw(&["audit", "verify"]).code, 2);
    assert_eq!(
        qgw(&["audit", "verify", "/nonexistent/qgw.audit.jsonl"]).code,
        2
    );
    assert_eq!(
        qgw(&["audit", "verify", "--key", "/nonexistent", &files[0]]).code,
        2
    );
}
