//! The `qgw` command line as a user meets it: `--help` for every subcommand, `--version`, the
//! exit codes (0 success, 1 error, 2 usage), errors as one line without a panic or backtrace, the
//! same subcommands and flags as before clap, and the man pages and completions rendered at
//! build time from the same definition.
#![allow(clippy::unwrap_used)]

use std::io::Write;
use std::process::{Command, Output, Stdio};

const QGW: &str = env!("CARGO_BIN_EXE_qgw");

fn qgw(args: &[&str]) -> Output {
    Command::new(QGW)
        .args(args)
        .env("RUST_BACKTRACE", "1")
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

/// `qgw ARGS` with `input` on its stdin.
fn qgw_fed(args: &[&str], input: &[u8]) -> Output {
    let mut child = Command::new(QGW)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(input).unwrap();
    child.wait_with_output().unwrap()
}

fn text(o: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

/// Neither a panic nor a backtrace reaches the user, even with RUST_BACKTRACE=1.
#[track_caller]
fn assert_clean(o: &Output) {
    let (out, err) = text(o);
    for bad in ["panicked", "stack backtrace", "RUST_BACKTRACE"] {
        assert!(
            !err.contains(bad) && !out.contains(bad),
            "{bad}: {err}{out}"
        );
    }
}

const SUBCOMMANDS: &[&[&str]] = &[
    &[],
    &["up"],
    &["check-config"],
    &["genkey"],
    &["pubkey"],
    &["status"],
    &["audit"],
    &["audit", "verify"],
];

#[test]
fn every_subcommand_has_help_and_exits_0() {
    for sub in SUBCOMMANDS {
        let o = qgw(&[sub, &["--help"][..]].concat());
        let (out, _) = text(&o);
        assert_eq!(o.status.code(), Some(0), "{sub:?}: {out}");
        assert!(out.contains("Usage: qgw"), "{sub:?}: {out}");
        assert_clean(&o);
    }
    let (out, _) = text(&qgw(&["--help"]));
    for name in ["up", "check-config", "genkey", "pubkey", "status", "audit"] {
        assert!(out.contains(name), "{name} missing from --help: {out}");
    }
    assert!(out.contains("Exit codes"), "{out}");
}

#[test]
fn version_names_the_release() {
    let o = qgw(&["--version"]);
    let (out, _) = text(&o);
    assert_eq!(o.status.code(), Some(0));
    assert!(
        out.starts_with(&format!("qgw {}", env!("CARGO_PKG_VERSION"))),
        "{out}"
    );
}

#[test]
fn usage_errors_exit_2_with_a_hint() {
    for args in [
        &[][..],
        &["frobnicate"],
        &["up"],
        &["up", "--config"],
        &["check-config"],
        &["status", "a", "b"],
        &["genkey", "--bogus"],
        &["audit"],
        &["audit", "verify"],
    ] {
        let o = qgw(args);
        let (_, err) = text(&o);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {err}");
        let hint = err.contains("Usage: qgw") || err.contains("try '--help'");
        assert!(hint, "{args:?}: {err}");
        assert_clean(&o);
    }
}

#[test]
fn errors_exit_1_on_one_line_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nowhere.yaml");
    let o = qgw(&["check-config", missing.to_str().unwrap()]);
    let (_, err) = text(&o);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(
        err.starts_with("qgw: ") && err.contains("nowhere.yaml"),
        "{err}"
    );
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    assert_clean(&o);

    let bad = dir.path().join("bad.yaml");
    std::fs::write(&bad, "interface:\n  name: qgw0\n  bogus_field: 1\n").unwrap();
    let o = qgw(&["up", "--config", bad.to_str().unwrap()]);
    let (_, err) = text(&o);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(err.contains("bad.yaml:"), "file and line: {err}");
    assert_clean(&o);

    let o = qgw(&["status", "qgw-cli-test-none"]);
    assert_eq!(o.status.code(), Some(1));
    assert_clean(&o);
}

#[test]
fn check_config_names_the_line_and_field_of_a_class_or_egress_mistake() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("a.key");
    std::fs::write(&key, "eCT+gjt6ny4E9UmDw7ucGULZtjmoXNGy9eBX8JxIhlQ=\n").unwrap();
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
    let site = |classes: &str, rate: &str| {
        format!(
            "interface:\n  name: qgw0\n  address: 10.201.0.1/24\n  private_key_file: {}\n{classes}peers:\n  - name: site-b\n    public_key: \"gN65BZ+U0AatSgvoHf9KTL2BLd+s5ZVVxbqUIM3U/Cs=\"\n    egress_rate: {rate}\n",
            key.display()
        )
    };
    let rules = "classes:\n  - name: imaging\n    match: {protocol: tcp, ports: [443]}\n";
    let path = dir.path().join("site.yaml");
    for (yaml, code, want) in [
        (site(rules, "200mbit"), 0, "ok (1 peers)"),
        (
            site(&rules.replace("imaging", "video"), "200mbit"),
            1,
            "site.yaml:6: classes[0].name: must be one of telemonitoring, telemedicine, imaging, default",
        ),
        (
            site(rules, "200"),
            1,
            "site.yaml:11: peers[0] (site-b).egress_rate: 200 needs a unit",
        ),
    ] {
        std::fs::write(&path, &yaml).unwrap();
        let o = qgw(&["check-config", path.to_str().unwrap()]);
        let (out, err) = text(&o);
        assert_eq!(o.status.code(), Some(code), "{out}{err}");
        assert!(
            out.contains(want) || err.contains(want),
            "{want}: {out}{err}"
        );
        assert_clean(&o);
    }
}

#[test]
fn keys_round_trip_through_genkey_and_pubkey() {
    for mldsa in [false, true] {
        let flag: &[&str] = if mldsa { &["--mldsa"] } else { &[] };
        let private = qgw(&[&["genkey"][..], flag].concat());
        assert_eq!(private.status.code(), Some(0));
        let mut child = Command::new(QGW)
            .args([&["pubkey"][..], flag].concat())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(&private.stdout)
            .unwrap();
        let public = child.wait_with_output().unwrap();
        assert_eq!(public.status.code(), Some(0), "{:?}", text(&public));
        assert!(!public.stdout.is_empty());
    }
    let o = qgw_fed(&["pubkey"], b"");
    assert_eq!(o.status.code(), Some(1), "empty stdin is not a key");
    assert_clean(&o);
}

#[test]
fn audit_verify_keeps_its_exit_codes() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("none.jsonl");
    let o = qgw(&["audit", "verify", missing.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2), "an unreadable file is 2");
    let key = dir.path().join("none.pub");
    let o = qgw(&[
        "audit",
        "verify",
        "--key",
        key.to_str().unwrap(),
        missing.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(2), "an unreadable key is 2");
    assert_clean(&o);
}

#[test]
fn man_pages_and_completions_are_rendered_from_the_same_definition() {
    let out = std::path::Path::new(env!("OUT_DIR"));
    let man = std::fs::read_to_string(out.join("man/qgw.1")).unwrap();
    for name in ["check\\-config", "genkey", "status", "audit"] {
        assert!(man.contains(name), "{name} missing from qgw.1");
    }
    let up = std::fs::read_to_string(out.join("man/qgw-up.1")).unwrap();
    assert!(up.contains("\\-\\-config"), "{up}");
    for file in ["qgw.bash", "_qgw", "qgw.fish"] {
        let c = std::fs::read_to_string(out.join("completions").join(file)).unwrap();
        assert!(
            c.contains("check-config") && c.contains("--mldsa"),
            "{file}"
        );
    }
}
