//! The verifier against real ML-DSA-65-signed logs and the ways an attacker (or a crash) can change
//! them: every finding names the right line, seq and problem.
#![allow(clippy::unwrap_used)]

use super::*;
use crate::audit::testing::{rehash, sample_log, signing_key};
use crate::audit::verify_files::{Outcome, verify_bytes};

/// file_start (line 1, seq 0), 10 events (lines 2-11, seq 1-10), checkpoint (line 12, seq 11).
fn log() -> Vec<Vec<u8>> {
    let key = signing_key(1);
    split(&sample_log(Some(&key), 10))
}

fn split(bytes: &[u8]) -> Vec<Vec<u8>> {
    let mut v: Vec<Vec<u8>> = bytes.split(|b| *b == b'\n').map(<[u8]>::to_vec).collect();
    assert_eq!(v.pop(), Some(Vec::new()), "ends with a newline");
    v
}

fn join(lines: &[Vec<u8>]) -> Vec<u8> {
    lines
        .iter()
        .flat_map(|l| l.iter().copied().chain([b'\n']))
        .collect()
}

fn pinned() -> Option<keymix::mldsa::VerifyingKey> {
    Some(signing_key(1).verifying_key().clone())
}

fn check(bytes: &[u8], key: Option<keymix::mldsa::VerifyingKey>) -> Result<Report, Finding> {
    match verify_bytes(&[("a.jsonl", bytes)], key) {
        Outcome::Verified(r) => Ok(r),
        Outcome::Failed(f) => Err(f),
    }
}

fn finding(bytes: &[u8]) -> Finding {
    check(bytes, pinned()).unwrap_err()
}

fn edit(line: &[u8], from: &str, to: &str) -> Vec<u8> {
    let text = String::from_utf8(line.to_vec()).unwrap();
    assert!(text.contains(from), "{text}");
    text.replacen(from, to, 1).into_bytes()
}

#[test]
fn a_generated_log_verifies_pinned_and_unpinned() {
    let bytes = join(&log());
    let r = check(&bytes, pinned()).unwrap();
    let t = r.total();
    assert_eq!(
        (t.records, t.signed, t.unsigned, t.seqs),
        (12, 1, 0, Some((0, 11)))
    );
    assert_eq!(r.uncovered(), 0);
    let text = r.render();
    assert!(text.contains("signer: pinned by --key"), "{text}");
    assert!(
        text.contains("0 records after the last signed checkpoint"),
        "{text}"
    );
    let unpinned = check(&bytes, None).unwrap().render();
    assert!(unpinned.contains("signer NOT pinned"), "{unpinned}");
}

#[test]
fn one_altered_byte_is_reported_at_that_record() {
    let mut lines = log();
    lines[5] = edit(&lines[5], "192.0.2.7", "192.0.2.8");
    let f = finding(&join(&lines));
    assert_eq!((f.line, f.seq), (6, Some(5)));
    assert_eq!(
        f.to_string(),
        "a.jsonl:6: seq 5: record altered (hash mismatch)"
    );
}

#[test]
fn a_deleted_record_is_reported() {
    let mut lines = log();
    lines.remove(5);
    let f = finding(&join(&lines));
    assert_eq!((f.line, f.seq), (6, Some(6)));
    assert_eq!(f.problem, "record removed or reordered (seq 6 follows 4)");
}

#[test]
fn swapped_records_are_reported() {
    let mut lines = log();
    lines.swap(5, 6);
    let f = finding(&join(&lines));
    assert_eq!(f.line, 6);
    assert_eq!(f.problem, "record removed or reordered (seq 6 follows 4)");
}

#[test]
fn an_altered_and_rehashed_record_breaks_the_next_prev() {
    let mut lines = log();
    lines[5] = rehash(&edit(&lines[5], "192.0.2.7", "192.0.2.8"));
    let f = finding(&join(&lines));
    assert_eq!((f.line, f.seq), (7, Some(6)));
    assert_eq!(
        f.problem,
        "chain broken (prev does not match the hash of seq 5)"
    );
}

#[test]
fn a_rewritten_chain_is_caught_by_the_signed_checkpoint() {
    let mut lines = log();
    lines[5] = edit(&lines[5], "192.0.2.7", "192.0.2.8");
    // Re-chain everything after the edit, checkpoint included (its prev and chain_hash).
    for i in 5..lines.len() {
        if i > 5 {
            let old_prev = parse_line(&log()[i]).unwrap().prev;
            let new_prev = parse_line(&lines[i - 1]).unwrap().hash;
            let text = String::from_utf8(lines[i].clone()).unwrap();
            lines[i] = text.replace(&hex(&old_prev), &hex(&new_prev)).into_bytes();
        }
        lines[i] = rehash(&lines[i]);
    }
    let f = finding(&join(&lines));
    assert_eq!((f.line, f.seq), (12, Some(11)));
    assert_eq!(f.problem, "bad checkpoint signature");
    let unpinned = check(&join(&lines), None).unwrap_err();
    assert_eq!(unpinned.problem, "bad checkpoint signature");
}

#[test]
fn a_forged_checkpoint_signature_is_caught() {
    let mut lines = log();
    let text = String::from_utf8(lines[11].clone()).unwrap();
    let at = text.find("\"sig\":\"").unwrap() + 20;
    let mut bytes = text.into_bytes();
    bytes[at] = if bytes[at] == b'A' { b'B' } else { b'A' };
    lines[11] = rehash(&bytes);
    let f = finding(&join(&lines));
    assert_eq!((f.line, f.seq), (12, Some(11)));
    assert!(f.problem.starts_with("bad checkpoint signature"), "{f}");
}

#[test]
fn the_wrong_key_fails() {
    let bytes = join(&log());
    let f = check(&bytes, Some(signing_key(2).verifying_key().clone())).unwrap_err();
    assert_eq!(f.line, 12);
    assert!(f.problem.contains("not the pinned (--key) key"), "{f}");
}

#[test]
fn a_log_rewritten_with_another_key_passes_only_unpinned() {
    let forged = sample_log(Some(&signing_key(2)), 10);
    assert!(
        check(&forged, None)
            .unwrap()
            .render()
            .contains("NOT pinned")
    );
    assert!(check(&forged, pinned()).is_err(), "--key catches it");
}

#[test]
fn an_unsigned_log_says_nothing_is_signed_and_fails_with_a_key() {
    let bytes = sample_log(None, 4);
    let r = check(&bytes, None).unwrap();
    assert_eq!((r.total().signed, r.total().unsigned), (0, 1));
    assert!(r.render().contains("nothing is signed"), "{}", r.render());
    let f = check(&bytes, pinned()).unwrap_err();
    assert!(f.problem.starts_with("unsigned checkpoint"), "{f}");
}

#[test]
fn a_torn_last_line_is_a_warning() {
    let mut bytes = join(&log());
    bytes.extend_from_slice(b"{\"seq\":12,\"time\":\"20");
    let r = check(&bytes, pinned()).unwrap();
    assert_eq!(r.total().records, 12);
    assert!(
        r.warnings[0].contains("incomplete line of 20 bytes"),
        "{:?}",
        r.warnings
    );
}

#[test]
fn removing_the_head_of_a_file_is_reported() {
    let mut lines = log();
    lines.remove(0);
    let f = finding(&join(&lines));
    assert_eq!(f.line, 1);
    assert!(f.problem.contains("instead of file_start"), "{f}");
}

#[test]
fn records_after_the_last_signed_checkpoint_are_counted_as_uncovered() {
    let mut lines = log();
    let mut chain =
        crate::audit::chain::ChainState::after(11, parse_line(&lines[11]).unwrap().hash);
    for i in 0..3 {
        let mut p = chain.prepare_event(
            crate::audit::testing::at(100 + i),
            &crate::audit::testing::event(i),
        );
        chain.commit(&p);
        p.line.pop();
        lines.push(p.line);
    }
    let r = check(&join(&lines), pinned()).unwrap();
    assert_eq!(r.uncovered(), 3);
    assert!(
        r.render()
            .contains("3 records after the last signed checkpoint are not yet covered")
    );
}

#[test]
fn garbage_and_overlong_lines_are_findings_not_panics() {
    let f = finding(b"not json\n");
    assert_eq!(f.line, 1);
    assert!(f.problem.starts_with("malformed line"), "{f}");
    let mut long = vec![b'x'; MAX_LINE_BYTES + 10];
    long.push(b'\n');
    assert!(finding(&long).problem.contains("longer than 64 KiB"));
    assert!(finding(b"\xff\xfe\n").problem.starts_with("malformed line"));
    assert!(
        finding(b"{\"seq\":0")
            .problem
            .contains("no complete record")
    );
    let empty = check(b"", None).unwrap();
    assert!(empty.warnings[0].contains("empty file"));
}

#[test]
fn files_are_ordered_by_first_seq_and_gaps_between_them_reported() {
    let lines = log();
    let (a, b) = (join(&lines[..6]), join(&lines[6..]));
    // The second part starts with an event, not a file start: refused, naming that file.
    let Outcome::Failed(f) = verify_bytes(&[("b", &b), ("a", &a)], pinned()) else {
        panic!("second part has no file_start");
    };
    assert_eq!((f.file.as_str(), f.line), ("b", 1));
}

#[test]
fn the_fuzz_body_handles_edge_inputs() {
    for d in [&[][..], &[0], &[1], &[3], &[7], &[1, 0, 0, 0xff], &[5; 300]] {
        crate::fuzzing::audit_verify(d);
    }
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(64))]

    #[test]
    fn the_verifier_never_panics(data in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..4096)) {
        crate::fuzzing::audit_verify(&data);
    }

    #[test]
    fn any_single_bit_flip_in_a_signed_log_fails(at in 0usize..100_000, bit in 0u8..8) {
        let mut bytes = join(&log());
        // Not the final newline: without it the checkpoint is an incomplete last line, which
        // verifies with a warning (equivalent to truncating the unsigned tail, docs/audit.md §7).
        let i = at % (bytes.len() - 1);
        bytes[i] ^= 1 << bit;
        proptest::prop_assert!(check(&bytes, pinned()).is_err(), "flip at {}", i);
    }
}

#[test]
fn a_log_written_by_an_independent_implementation_verifies() {
    // Written by an independent Python implementation of docs/audit.md §2, not by this crate
    // (the fuzz seed's first byte is the fuzz body's mode byte).
    let seed = include_bytes!("../../../fuzz/corpus/gateway_audit_verify/seed-unsigned-log");
    let r = check(&seed[1..], None).unwrap();
    assert_eq!((r.total().records, r.total().unsigned), (5, 1));
    let mut altered = seed[1..].to_vec();
    let at = altered.windows(6).position(|w| w == b"site-b").unwrap();
    altered[at + 5] = b'c';
    assert_eq!(check(&altered, None).unwrap_err().line, 3);
}
