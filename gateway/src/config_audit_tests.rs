//! The `audit:` block: defaults, relative paths, and every misconfiguration refused with the file,
//! line, field and problem.
#![allow(clippy::unwrap_used)]

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use crate::config::Config;

const KEY_A: &str = "eCT+gjt6ny4E9UmDw7ucGULZtjmoXNGy9eBX8JxIhlQ=";

fn check(dir: &Path, audit: &str) -> Result<crate::config::Validated, String> {
    let key = dir.join("a.key");
    std::fs::write(&key, KEY_A).unwrap();
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
    let text = format!(
        "interface:\n  name: qgw0\n  address: 10.201.0.1/24\n  private_key_file: {}\n{audit}",
        key.display()
    );
    let path = dir.join("site-a.yaml");
    Config::parse(&path, &text)
        .and_then(|c| c.validate(&path))
        .map_err(|e| e.0)
}

#[test]
fn no_block_means_no_audit_trail() {
    let dir = tempfile::tempdir().unwrap();
    assert!(check(dir.path(), "").unwrap().audit.is_none());
}

#[test]
fn defaults_and_a_path_relative_to_the_config_file() {
    let dir = tempfile::tempdir().unwrap();
    let v = check(dir.path(), "audit:\n  path: log/qgw0.audit.jsonl\n").unwrap();
    let a = v.audit.unwrap();
    assert_eq!(a.path, dir.path().join("log/qgw0.audit.jsonl"));
    assert_eq!(a.rotate_bytes, 64 * 1024 * 1024);
    assert_eq!(a.checkpoint_records, 256);
    assert_eq!(a.checkpoint_interval.as_secs(), 60);
    let v = check(
        dir.path(),
        "audit:\n  path: /var/log/qgw/a.jsonl\n  rotate_bytes: 65536\n  checkpoint_records: 1\n  checkpoint_seconds: 5\n",
    )
    .unwrap();
    let a = v.audit.unwrap();
    assert_eq!(a.path, Path::new("/var/log/qgw/a.jsonl"));
    assert_eq!((a.rotate_bytes, a.checkpoint_records), (65536, 1));
    assert_eq!(a.checkpoint_interval.as_secs(), 5);
}

#[test]
fn misconfigurations_name_file_line_field_and_problem() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("logs")).unwrap();
    let cases = [
        (
            "audit:\n  path: a.jsonl\n  rotate_bytes: 1000\n",
            ":7: audit.rotate_bytes: must be at least 65536",
        ),
        (
            "audit:\n  path: a.jsonl\n  checkpoint_records: 0\n",
            ":7: audit.checkpoint_records: must be 1-1000000",
        ),
        (
            "audit:\n  path: a.jsonl\n  checkpoint_seconds: 0\n",
            ":7: audit.checkpoint_seconds: must be 1-86400",
        ),
        ("audit:\n  path: \"\"\n", ":6: audit.path: must name a file"),
        ("audit:\n  path: logs\n", ":6: audit.path: is a directory"),
    ];
    for (block, want) in cases {
        let e = check(dir.path(), block).unwrap_err();
        assert!(
            e.contains("site-a.yaml") && e.contains(want),
            "{block:?}: {e}"
        );
    }
    let unknown = check(dir.path(), "audit:\n  path: a.jsonl\n  rotate: 1\n").unwrap_err();
    assert!(unknown.contains("rotate"), "{unknown}");
    let missing = check(dir.path(), "audit:\n  rotate_bytes: 70000\n").unwrap_err();
    assert!(missing.contains("path"), "{missing}");
}
