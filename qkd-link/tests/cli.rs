//! The `qkd-kme-sim` binary as documented: `pki --out DIR`, then `serve --config FILE --pki DIR`,
//! with our client fetching matching keys from both KMEs; SIGTERM stops it cleanly.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use common::sae;
use qkd_link::api::KeyRequest;
use qkd_link::{ClientConfig, KmeClient, RetryPolicy};

const BIN: &str = env!("CARGO_BIN_EXE_qkd-kme-sim");

/// Our own child process; killed (by its PID, via `Child::kill`) if the test panics early.
struct ChildGuard(Option<std::process::Child>);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        if let Some(mut child) = self.0.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

#[test]
fn pki_writes_the_documented_files() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(BIN)
        .args(["pki", "--out"])
        .arg(dir.path())
        .args(["--san", "kme.hospital.example", "--san", "10.1.2.3"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for f in [
        "ca.pem",
        "kme_a.pem",
        "kme_a.key",
        "kme_b.pem",
        "kme_b.key",
        "sae_a.pem",
        "sae_a.key",
        "sae_b.pem",
        "sae_b.key",
    ] {
        assert!(dir.path().join(f).is_file(), "{f} missing");
    }
    // A second run refuses to overwrite; usage errors exit 2.
    let again = Command::new(BIN)
        .args(["pki", "--out"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("--force"));
    let usage = Command::new(BIN).arg("pki").output().unwrap();
    assert_eq!(usage.status.code(), Some(2));
}

#[test]
fn serve_runs_a_config_and_stops_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let pki = dir.path().join("pki");
    assert!(
        Command::new(BIN)
            .args(["pki", "--out"])
            .arg(&pki)
            .status()
            .unwrap()
            .success()
    );
    let config = dir.path().join("sim.yaml");
    let shipped = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../configs/kme-sim.yaml"
    ))
    .unwrap();
    // The shipped config on ephemeral ports (fixed ports may be busy on a shared machine).
    let yaml = shipped
        .replace("127.0.0.1:8440", "127.0.0.1:0")
        .replace("127.0.0.1:8441", "127.0.0.1:0")
        .replace("127.0.0.1:8442", "127.0.0.1:0");
    std::fs::write(&config, yaml).unwrap();
    let mut guard = ChildGuard(Some(
        Command::new(BIN)
            .args(["serve", "--config"])
            .arg(&config)
            .arg("--pki")
            .arg(&pki)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    ));
    let child = guard.0.as_mut().unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut urls = std::collections::HashMap::new();
    loop {
        let line = rx
            .recv_timeout(Duration::from_secs(30))
            .expect("simulator did not start");
        if line == "ready" {
            break;
        }
        let (id, url) = line.split_once(' ').unwrap();
        urls.insert(id.to_string(), url.to_string());
    }
    let rt = tokio::runtime::Runtime::new().unwrap();
    let result = rt.block_on(async {
        let client = |file: &str, id: &str, kme: &str| {
            let mut cfg = ClientConfig::new(
                urls[kme].clone(),
                sae(id),
                pki.join("ca.pem"),
                pki.join(format!("{file}.pem")),
                pki.join(format!("{file}.key")),
            );
            cfg.retry = RetryPolicy::none();
            KmeClient::new(cfg).unwrap()
        };
        let a = client("sae_a", "SAE_A", "KME_A");
        let b = client("sae_b", "SAE_B", "KME_B");
        let status = a.status(&sae("SAE_B")).await?;
        assert!(
            status.stored_key_count >= 25_000,
            "initial_key_count of the shipped config"
        );
        let keys = a
            .enc_keys(
                &sae("SAE_B"),
                &KeyRequest {
                    number: Some(2),
                    ..Default::default()
                },
            )
            .await?;
        let ids: Vec<_> = keys.iter().map(|k| k.id()).collect();
        let theirs = b.dec_keys(&sae("SAE_A"), &ids).await?;
        assert_eq!(keys[1].expose(), theirs[1].expose());
        Ok::<_, qkd_link::Error>(())
    });
    // Stop our own child by its PID with SIGTERM and expect a clean exit.
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let mut exited = None;
    for _ in 0..100 {
        if let Some(status) = child.try_wait().unwrap() {
            exited = Some(status);
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    if exited.is_some() {
        guard.0 = None;
    }
    result.unwrap();
    assert!(exited.expect("exit within 10 s of SIGTERM").success());
}
