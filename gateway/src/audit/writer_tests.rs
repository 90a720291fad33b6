//! The writer on real files: permissions, checkpoints by count and time, rotation across files,
//! restart (resume, torn tail, missing current file), and what `qgw audit verify` makes of it.
#![allow(clippy::unwrap_used)]

use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use super::*;
use crate::audit::testing::{at, event, signing_key};
use crate::audit::verify_files::{Outcome, verify_files};

fn settings(dir: &Path) -> AuditSettings {
    AuditSettings::new(dir.join("log/qgw0.audit.jsonl"))
}

fn text(path: &Path) -> String {
    fs::read_to_string(path).unwrap()
}

fn count(path: &Path, event: &str) -> usize {
    text(path)
        .matches(&format!("\"event\":\"{event}\""))
        .count()
}

fn files(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = fs::read_dir(dir.join("log"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    v.sort();
    v
}

fn verify(paths: &[PathBuf], key: u8) -> Result<crate::audit::Report, crate::audit::Finding> {
    match verify_files(paths, Some(signing_key(key).verifying_key().clone())).unwrap() {
        Outcome::Verified(r) => Ok(r),
        Outcome::Failed(f) => Err(f),
    }
}

#[test]
fn open_creates_a_0600_file_in_a_new_0700_directory_and_starts_a_chain() {
    let dir = tempfile::tempdir().unwrap();
    let s = settings(dir.path());
    let mut log = AuditLog::open(&s, Some(signing_key(1)), at(0)).unwrap();
    log.record(at(1), event(0)).unwrap();
    log.close(at(2)).unwrap();
    let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&s.path), 0o600);
    assert_eq!(mode(&dir.path().join("log")), 0o700);
    let t = text(&s.path);
    assert!(
        t.starts_with("{\"seq\":0,") && t.contains("\"reason\":\"new_chain\""),
        "{t}"
    );
    assert_eq!(count(&s.path, "checkpoint"), 1, "close signs");
    let seed = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, [1u8; 32]);
    assert!(!t.contains(&seed), "no secret in the log");
    assert!(verify(std::slice::from_ref(&s.path), 1).is_ok());
}

#[test]
fn checkpoints_are_signed_after_n_records_and_after_the_interval() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = settings(dir.path());
    s.checkpoint_records = 4;
    let mut log = AuditLog::open(&s, Some(signing_key(1)), at(0)).unwrap();
    for i in 0..3 {
        log.record(at(1), event(i)).unwrap();
    }
    assert_eq!(count(&s.path, "checkpoint"), 1, "file_start + 3 events");
    assert_eq!(log.next_checkpoint_at(), None, "nothing uncovered");
    log.record(at(2), event(3)).unwrap();
    let due = log.next_checkpoint_at().unwrap();
    assert_eq!(due, at(1) + Duration::from_secs(60));
    log.tick(due - Duration::from_secs(1)).unwrap();
    assert_eq!(count(&s.path, "checkpoint"), 1, "not due yet");
    log.tick(due).unwrap();
    assert_eq!(count(&s.path, "checkpoint"), 2, "due by time");
    assert_eq!((log.records_written(), log.write_errors()), (7, 0));
    log.close(at(100)).unwrap();
    assert_eq!(count(&s.path, "checkpoint"), 2, "nothing left to cover");
}

/// Writes enough to rotate into at least three files; returns them, current file last.
fn rotated_log(dir: &Path) -> Vec<PathBuf> {
    let mut s = settings(dir);
    s.rotate_bytes = 8192;
    let mut log = AuditLog::open(&s, Some(signing_key(1)), at(0)).unwrap();
    for i in 0..40 {
        log.record(at(i * 40), event(i)).unwrap();
        log.tick(at(i * 40 + 1)).unwrap(); // time-based checkpoints too
    }
    log.close(at(2000)).unwrap();
    let mut all = files(dir);
    assert!(all.len() >= 3, "{all:?}");
    assert_eq!(
        all.remove(0),
        s.path,
        "the current file sorts first by name"
    );
    all.push(s.path);
    for f in &all {
        let len = fs::metadata(f).unwrap().len();
        assert!(
            len < 8192 + 5000,
            "{f:?}: more than its closing checkpoint over"
        );
    }
    all
}

#[test]
fn rotation_across_three_files_verifies_in_any_argument_order() {
    let dir = tempfile::tempdir().unwrap();
    let all = rotated_log(dir.path());
    assert!(all[0].to_string_lossy().ends_with(".00000000000000000000"));
    let mut reversed = all.clone();
    reversed.reverse();
    let mut rotated_left = all.clone();
    rotated_left.rotate_left(1);
    for order in [all.clone(), reversed, rotated_left] {
        let r = verify(&order, 1).unwrap();
        assert_eq!(r.files.len(), all.len());
        let lines: usize = all.iter().map(|f| text(f).lines().count()).sum();
        assert_eq!(r.total().records, lines as u64, "{}", r.render());
        assert!(r.total().signed >= 20, "time-based too: {}", r.render());
        assert_eq!(r.uncovered(), 0);
    }
}

#[test]
fn a_missing_middle_file_is_reported_and_a_lone_rotated_file_verifies() {
    let dir = tempfile::tempdir().unwrap();
    let all = rotated_log(dir.path());
    let without_middle = [all[0].clone(), all[2].clone()];
    let f = verify(&without_middle, 1).unwrap_err();
    assert_eq!(f.line, 1);
    assert!(f.problem.contains("missing between"), "{f}");
    let alone = verify(&[all[1].clone()], 1).unwrap();
    assert!(
        alone.warnings[0].contains("not anchored"),
        "{:?}",
        alone.warnings
    );
}

#[test]
fn reopening_an_intact_file_resumes_the_chain() {
    let dir = tempfile::tempdir().unwrap();
    let s = settings(dir.path());
    for round in 0..2 {
        let mut log = AuditLog::open(&s, Some(signing_key(1)), at(round)).unwrap();
        log.record(at(round), event(round)).unwrap();
        log.close(at(round)).unwrap();
    }
    assert_eq!(count(&s.path, "resume"), 1);
    let r = verify(std::slice::from_ref(&s.path), 1).unwrap();
    assert_eq!(
        r.total().records,
        6,
        "two rounds of opening record, event, checkpoint"
    );
}

#[test]
fn a_torn_tail_is_rotated_away_and_the_chain_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let s = settings(dir.path());
    let mut log = AuditLog::open(&s, Some(signing_key(1)), at(0)).unwrap();
    log.record(at(1), event(0)).unwrap();
    drop(log); // a crash: no final checkpoint
    let mut f = OpenOptions::new().append(true).open(&s.path).unwrap();
    f.write_all(b"{\"seq\":2,\"time\":\"2026").unwrap();
    let mut log = AuditLog::open(&s, Some(signing_key(1)), at(5)).unwrap();
    log.record(at(6), event(1)).unwrap();
    log.close(at(7)).unwrap();
    let torn = tail::rotated_name(&s.path, 0);
    assert!(text(&torn).ends_with("\"time\":\"2026"));
    let t = text(&s.path);
    assert!(
        t.starts_with("{\"seq\":2,") && t.contains("\"event\":\"chain_restart\""),
        "{t}"
    );
    assert!(t.contains("\"last_good_seq\":1,\"torn_bytes\":21"), "{t}");
    let r = verify(&[s.path.clone(), torn.clone()], 1).unwrap();
    assert!(
        r.warnings.iter().any(|w| w.contains("chain_restart")),
        "{:?}",
        r.warnings
    );
    assert_eq!(
        r.uncovered(),
        0,
        "the new file's checkpoint covers the torn file's records"
    );
    let alone = verify(&[torn], 1).unwrap();
    assert!(alone.warnings[0].contains("incomplete line of 21 bytes"));
}

#[test]
fn an_unusable_tail_refuses_to_continue() {
    let dir = tempfile::tempdir().unwrap();
    let s = settings(dir.path());
    AuditLog::open(&s, None, at(0))
        .unwrap()
        .close(at(0))
        .unwrap();
    let altered = text(&s.path).replacen("checkpoint", "checkpoinT", 1);
    fs::write(&s.path, altered).unwrap();
    let e = AuditLog::open(&s, None, at(1)).unwrap_err();
    assert_eq!(e.kind(), io::ErrorKind::InvalidData);
    assert!(e.to_string().contains("qgw audit verify"), "{e}");
}

#[test]
fn a_missing_current_file_continues_from_the_latest_rotated_one() {
    let dir = tempfile::tempdir().unwrap();
    let s = settings(dir.path());
    let mut log = AuditLog::open(&s, None, at(0)).unwrap();
    log.record(at(1), event(0)).unwrap();
    log.close(at(2)).unwrap();
    // A crash between the rename of a rotation and the creation of the new file.
    let rotated = tail::rotated_name(&s.path, 0);
    fs::rename(&s.path, &rotated).unwrap();
    let log = AuditLog::open(&s, None, at(3)).unwrap();
    log.close(at(4)).unwrap();
    assert!(text(&s.path).contains("\"reason\":\"rotation\""));
    let r = match verify_files(&[rotated, s.path.clone()], None).unwrap() {
        Outcome::Verified(r) => r,
        Outcome::Failed(f) => panic!("{f}"),
    };
    assert_eq!(r.files.len(), 2);
    assert!(r.render().contains("nothing is signed"));
}
