//! Replays the fuzz corpora (`fuzz/corpus/qkd_*`) through the response parsers as a plain test,
//! so the fuzz seeds (and any crash reproducers added there) are checked by `cargo test` even
//! where cargo-fuzz is not installed.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;

use qkd_link::api::parse::{KeyExpectation, parse_error_body, parse_key_container, parse_status};

fn corpus(target: &str) -> Vec<Vec<u8>> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../fuzz/corpus")
        .join(target);
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    assert!(!files.is_empty(), "{} has no seeds", dir.display());
    files.iter().map(|f| std::fs::read(f).unwrap()).collect()
}

#[test]
fn status_corpus() {
    let seeds = corpus("qkd_status");
    assert!(
        seeds.iter().any(|s| parse_status(s).is_ok()),
        "the spec example parses"
    );
}

#[test]
fn key_container_corpus() {
    let mut accepted = 0;
    for data in corpus("qkd_key_container") {
        let Some((&sel, body)) = data.split_first() else {
            continue;
        };
        let number = usize::from(sel & 0x07);
        let size_bits = match (sel >> 3) & 0x03 {
            0 => None,
            1 => Some(256),
            2 => Some(512),
            _ => Some(8),
        };
        if let Ok(keys) = parse_key_container(
            body,
            &KeyExpectation {
                number,
                size_bits,
                ids: None,
            },
        ) {
            assert_eq!(keys.len(), number);
            accepted += 1;
        }
    }
    assert!(accepted >= 2, "the seed containers parse");
}

#[test]
fn error_body_corpus() {
    let seeds = corpus("qkd_error_body");
    for data in &seeds {
        let e = parse_error_body(data);
        assert!(e.details.len() <= qkd_link::api::parse::MAX_ERROR_DETAILS);
        assert!(e.message.chars().count() <= qkd_link::api::parse::MAX_ERROR_MESSAGE);
    }
    assert!(
        seeds
            .iter()
            .any(|s| parse_error_body(s).message.starts_with("not all"))
    );
}
