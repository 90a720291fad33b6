//! Config parsing and validation: the issue's example, unknown keys, and errors that name the file,
//! line and field.
#![allow(clippy::unwrap_used)]

use super::*;

const KEY_A: &str = "eCT+gjt6ny4E9UmDw7ucGULZtjmoXNGy9eBX8JxIhlQ=";

/// Writes a key file readable only by its owner, as `umask 077; qgw genkey > f` would.
fn write_secret(path: &Path, text: &str) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, text).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).unwrap();
}

fn write_keys(dir: &Path) {
    write_secret(&dir.join("site-a.key"), &format!("{KEY_A}\n"));
    write_secret(
        &dir.join("ab.psk"),
        "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n",
    );
}

#[test]
fn group_or_world_readable_key_files_are_refused_naming_the_file() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    write_keys(d);
    std::fs::set_permissions(d.join("site-a.key"), std::fs::Permissions::from_mode(0o644)).unwrap();
    let path = d.join("site.yaml");
    let e = Config::parse(&path, &example(d))
        .and_then(|c| c.validate(&path))
        .unwrap_err()
        .to_string();
    assert!(e.contains("interface.private_key_file"), "{e}");
    assert!(
        e.contains("site-a.key") && e.contains("0644") && e.contains("chmod 600"),
        "{e}"
    );
}

fn example(dir: &Path) -> String {
    format!(
        r#"interface:
  name: qgw0
  address: 10.201.0.1/24          # one or more, v4/v6
  listen_port: 51820
  private_key_file: {dir}/site-a.key
  mtu: 1420
peers:
  - name: site-b
    public_key: "HIgo9xNzJMWLKASShiTqIybxZ0U3wGLiUeJ1PKf8ykw="
    endpoint: 10.200.0.2:51820
    allowed_ips: [10.201.0.2/32, 192.168.20.0/24]
    persistent_keepalive: 25
    preshared_key_file: {dir}/ab.psk
    hybrid: off
metrics:
  listen: 127.0.0.1:9586
"#,
        dir = dir.display()
    )
}

fn tmpdir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("qgw-config-test-{tag}-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    write_keys(&d);
    d
}

#[test]
fn the_issue_example_parses_and_validates() {
    let d = tmpdir("ok");
    let path = d.join("qgw.yaml");
    std::fs::write(&path, example(&d)).unwrap();
    let v = load(&path).unwrap();
    assert_eq!(v.name, "qgw0");
    assert_eq!(v.addresses, [("10.201.0.1".parse().unwrap(), 24)]);
    assert_eq!((v.listen_port, v.node.mtu), (51820, 1420));
    let (name, spec) = (&v.node.peers[0].name, &v.node.peers[0].wg);
    assert_eq!(name, "site-b");
    assert_eq!(spec.endpoint, Some("10.200.0.2:51820".parse().unwrap()));
    assert_eq!(spec.allowed_ips.len(), 2);
    assert_eq!(spec.persistent_keepalive, Some(Duration::from_secs(25)));
    assert!(spec.psk.is_some());
    std::fs::remove_dir_all(d).unwrap();
}

#[test]
fn unknown_keys_are_errors() {
    let d = tmpdir("unknown");
    let text = example(&d).replace("  mtu: 1420\n", "  mtu: 1420\n  mtux: 1\n");
    let e = Config::parse(Path::new("site.yaml"), &text).unwrap_err().0;
    assert!(e.contains("site.yaml") && e.contains("mtux"), "{e}");
    std::fs::remove_dir_all(d).unwrap();
}

#[test]
fn errors_name_file_line_and_field() {
    let d = tmpdir("bad");
    let path = Path::new("site.yaml");
    let cases = [
        (
            "10.200.0.2:51820",
            "nowhere",
            "site.yaml:10: peers[0] (site-b).endpoint",
        ),
        (
            "10.201.0.2/32,",
            "10.201.0.2/33,",
            "site.yaml:11: peers[0] (site-b).allowed_ips",
        ),
        (
            "\"HIgo9xNzJMWLKASShiTqIybxZ0U3wGLiUeJ1PKf8ykw=\"",
            "\"short\"",
            "site.yaml:9: peers[0] (site-b).public_key",
        ),
        ("mtu: 1420", "mtu: 100", "site.yaml:6: interface.mtu"),
        (
            "name: qgw0",
            "name: this-name-is-too-long",
            "site.yaml:2: interface.name",
        ),
    ];
    for (from, to, want) in cases {
        let text = example(&d).replace(from, to);
        let e = Config::parse(path, &text)
            .unwrap()
            .validate(path)
            .unwrap_err()
            .0;
        assert!(e.starts_with(want), "got {e:?}, want prefix {want:?}");
    }
    let text = example(&d).replace("site-a.key", "missing.key");
    let e = Config::parse(path, &text)
        .unwrap()
        .validate(path)
        .unwrap_err()
        .0;
    assert!(
        e.starts_with("site.yaml:5: interface.private_key_file: ")
            && e.contains("missing.key: cannot read"),
        "{e}"
    );
    std::fs::remove_dir_all(d).unwrap();
}

#[test]
fn address_lists_and_cidr_parsing() {
    assert_eq!(
        parse_cidr("fd00::1/64"),
        Some(("fd00::1".parse().unwrap(), 64))
    );
    assert_eq!(
        parse_cidr("10.0.0.1"),
        Some(("10.0.0.1".parse().unwrap(), 32))
    );
    assert_eq!(parse_cidr("10.0.0.1/"), None);
    assert_eq!(parse_cidr("::/129"), None);
    let d = tmpdir("list");
    let text = example(&d).replace(
        "address: 10.201.0.1/24",
        "address: [10.201.0.1/24, \"fd00::1/64\"]",
    );
    let v = Config::parse(Path::new("x"), &text)
        .unwrap()
        .validate(Path::new("x"))
        .unwrap();
    assert_eq!(v.addresses.len(), 2);
    std::fs::remove_dir_all(d).unwrap();
}

#[test]
fn small_mtu_only_without_ipv6_and_danger_settings_are_bounded() {
    let d = tmpdir("mtu");
    let path = Path::new("site.yaml");
    let check = |text: String| Config::parse(path, &text).unwrap().validate(path);
    let v4 = example(&d).replace("mtu: 1420", "mtu: 1220");
    assert_eq!(check(v4.clone()).unwrap().node.mtu, 1220);
    let v6 = v4.replace("10.201.0.1/24", "[10.201.0.1/24, \"fd00::1/64\"]");
    let e = check(v6).unwrap_err().0;
    assert!(e.starts_with("site.yaml:6: interface.mtu: IPv6"), "{e}");
    let extra =
        |line: &str| example(&d).replace("  mtu: 1420\n", &format!("  mtu: 1420\n  {line}\n"));
    let v = check(extra("danger_rekey_after_seconds: 5")).unwrap();
    assert_eq!(v.node.danger_rekey_after, Some(Duration::from_secs(5)));
    assert_eq!(
        v.node.load_threshold,
        crate::proto::ratelimit::DEFAULT_LOAD_THRESHOLD
    );
    assert!(v.uapi);
    assert!(v.offload, "offloads are on by default");
    let e = check(extra("danger_rekey_after_seconds: 0")).unwrap_err().0;
    assert!(
        e.starts_with("site.yaml:7: interface.danger_rekey_after_seconds"),
        "{e}"
    );
    let v = check(extra("handshake_load_threshold: 20")).unwrap();
    assert_eq!(v.node.load_threshold, 20);
    assert!(!check(extra("uapi: false")).unwrap().uapi);
    assert!(!check(extra("offload: false")).unwrap().offload);
    assert_eq!(v.threads, crate::config::default_threads());
    assert!((1..=4).contains(&v.threads), "one per two cores, at most 4");
    assert_eq!(check(extra("threads: 1")).unwrap().threads, 1);
    assert_eq!(check(extra("threads: 8")).unwrap().threads, 8);
    for bad in ["threads: 0", "threads: 65"] {
        let e = check(extra(bad)).unwrap_err().0;
        assert!(e.starts_with("site.yaml:7: interface.threads"), "{e}");
    }
    std::fs::remove_dir_all(d).unwrap();
}

/// Every example site config in `configs/` validates, with its key files replaced by fixtures
/// (the examples point at /etc/qgw/, which a test must not read).
#[test]
fn every_example_site_config_validates() {
    let configs = Path::new(env!("CARGO_MANIFEST_DIR")).join("../configs");
    let d = tmpdir("examples");
    let mut seen = 0;
    for entry in std::fs::read_dir(&configs).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if !(name.starts_with("site-") && name.ends_with(".yaml")) {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        let mldsa = crate::keyfile::generate_mldsa_private().unwrap();
        let mldsa_pub = crate::keyfile::mldsa_public_text(
            &crate::keyfile::parse_mldsa_private(&mldsa, "t").unwrap(),
        );
        for line in text.lines() {
            if let Some((_, file)) = line.split_once("_file: /etc/qgw/") {
                let file = d.join(file.trim());
                std::fs::create_dir_all(file.parent().unwrap()).unwrap();
                let name = file.to_string_lossy().into_owned();
                let content = if name.ends_with(".mldsa") {
                    mldsa.to_string()
                } else if name.ends_with(".mldsa.pub") {
                    mldsa_pub.clone()
                } else {
                    format!("{KEY_A}\n")
                };
                write_secret(&file, &content);
            }
        }
        let text = text.replace("/etc/qgw/", &format!("{}/", d.display()));
        let v = Config::parse(&path, &text)
            .and_then(|c| c.validate(&path))
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(!v.node.peers.is_empty(), "{name} has no peer");
        seen += 1;
    }
    assert!(
        seen >= 4,
        "expected configs/site-{{a,b}}.yaml and site-{{a,b}}-hybrid.yaml, found {seen}"
    );
    std::fs::remove_dir_all(d).unwrap();
}
