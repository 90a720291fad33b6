//! `qgw`: the gateway daemon and CLI.
//!
//! ```text
//! qgw up --config FILE        run an interface until SIGINT/SIGTERM
//! qgw check-config FILE       validate a configuration without touching the network
//! qgw genkey                  print a new Base64 X25519 private key
//! qgw pubkey                  read a private key on stdin, print its public key
//! qgw genkey --mldsa          print a new Base64 ML-DSA-65 private key (its 32-byte seed)
//! qgw pubkey --mldsa          read an ML-DSA-65 private key on stdin, print its public key
//! qgw status [IFACE] [--json] show interfaces and peers (all running interfaces without IFACE)
//! qgw audit verify [--key PUB] FILE...
//!                             check an audit log's hash chain and signed checkpoints (docs/audit.md);
//!                             exit 0 verified, 1 altered/removed/reordered/malformed, 2 usage or I/O
//! ```

use std::io::Read;
use std::path::Path;

use anyhow::{Context, bail};
use gateway::config;
use gateway::control::status::b64;
use gateway::proto::crypto::{Entropy, OsEntropy};
use gateway::proto::handshake::StaticKeys;
use gateway::proto::secret::Secret;

const USAGE: &str = "usage: qgw up --config FILE | qgw check-config FILE | qgw genkey [--mldsa] | qgw pubkey [--mldsa] | qgw status [INTERFACE] [--json] | qgw audit verify [--key MLDSA_PUBLIC_KEY_FILE] FILE...";

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_max_level(tracing::Level::INFO)
        .with_writer(std::io::stderr)
        // Colour only on a terminal: log files and journald get plain text.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let args: Vec<String> = std::env::args().skip(1).collect();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    match args.as_slice() {
        ["up", "--config", file] | ["up", "-c", file] => {
            let cfg = config::load(Path::new(file))?;
            gateway::daemon::run(cfg)
        }
        ["check-config", file] => {
            let cfg = config::load(Path::new(file))?;
            println!("{file}: ok ({} peers)", cfg.node.peers.len());
            Ok(())
        }
        ["genkey", "--mldsa"] => {
            println!("{}", gateway::keyfile::generate_mldsa_private()?.as_str());
            Ok(())
        }
        ["pubkey", "--mldsa"] => {
            let mut text = zeroize::Zeroizing::new(String::new());
            std::io::stdin()
                .read_to_string(&mut text)
                .context("reading stdin")?;
            let key = gateway::keyfile::parse_mldsa_private(&text, "stdin")?;
            println!("{}", gateway::keyfile::mldsa_public_text(&key));
            Ok(())
        }
        ["genkey"] => {
            let mut key = Secret::<32>::zero();
            OsEntropy.fill(key.expose_mut());
            // Clamp as `wg genkey` does, so the printed key is canonical.
            key.expose_mut()[0] &= 248;
            key.expose_mut()[31] = (key.expose()[31] & 127) | 64;
            println!("{}", b64(key.expose()));
            Ok(())
        }
        ["pubkey"] => {
            let mut text = String::new();
            std::io::stdin()
                .read_to_string(&mut text)
                .context("reading stdin")?;
            let Some(key) = config::parse_key(&text) else {
                bail!("stdin: not a Base64 32-byte key")
            };
            println!("{}", b64(StaticKeys::new(Secret::new(key)).public()));
            Ok(())
        }
        ["status", rest @ ..] => status(rest),
        ["audit", "verify", rest @ ..] => std::process::exit(audit_verify(rest)),
        _ => bail!(USAGE),
    }
}

/// `qgw audit verify [--key FILE] FILE...` (docs/audit.md §6). Returns the exit code: 0 verified,
/// 1 the log fails verification (the first problem is printed with file:line), 2 usage or I/O error.
fn audit_verify(args: &[&str]) -> i32 {
    use gateway::audit::{Outcome, verify_files};
    let (key, files) = match args {
        ["--key", key, files @ ..] => (Some(*key), files),
        files => (None, files),
    };
    if files.is_empty() || files.iter().any(|f| f.starts_with("--")) {
        eprintln!("{USAGE}");
        return 2;
    }
    let pinned = match key.map(|k| gateway::keyfile::load_mldsa_public(Path::new(k))) {
        None => None,
        Some(Ok(k)) => Some(k),
        Some(Err(e)) => {
            eprintln!("qgw audit verify: --key {e}");
            return 2;
        }
    };
    let paths: Vec<std::path::PathBuf> = files.iter().map(std::path::PathBuf::from).collect();
    match verify_files(&paths, pinned) {
        Ok(Outcome::Verified(report)) => {
            print!("{}", report.render());
            0
        }
        Ok(Outcome::Failed(finding)) => {
            println!("FAILED: {finding}");
            1
        }
        Err(e) => {
            eprintln!("qgw audit verify: {e}");
            2
        }
    }
}

/// `qgw status [INTERFACE] [--json]`: asks each interface's control socket for its status.
fn status(args: &[&str]) -> anyhow::Result<()> {
    use gateway::control::{self, status::Status};
    let json = args.contains(&"--json");
    let names: Vec<&str> = args.iter().copied().filter(|a| *a != "--json").collect();
    let paths = match names.as_slice() {
        [] => {
            let dir = control::status_dir();
            let mut v: Vec<_> = std::fs::read_dir(&dir)
                .with_context(|| format!("{}: no qgw running?", dir.display()))?
                .filter_map(Result::ok)
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|x| x == "sock"))
                .collect();
            v.sort();
            v
        }
        [one] => vec![control::status_path(one)],
        _ => bail!(USAGE),
    };
    let mut all = Vec::new();
    for p in &paths {
        let answer = match control::query(p, "status\n\n") {
            // Listing all: a socket left by a killed instance is skipped, not fatal.
            Err(e) if names.is_empty() && e.kind() == std::io::ErrorKind::ConnectionRefused => {
                eprintln!("{}: stale socket, skipped", p.display());
                continue;
            }
            r => {
                r.with_context(|| format!("{}: is qgw running (and are you root)?", p.display()))?
            }
        };
        let st: Status = serde_json::from_str(answer.trim())
            .with_context(|| format!("{}: unexpected answer", p.display()))?;
        all.push(st);
    }
    if json {
        // One interface: its object; all of them: an array.
        let text = match all.as_slice() {
            [one] if !names.is_empty() => serde_json::to_string_pretty(one)?,
            _ => serde_json::to_string_pretty(&all)?,
        };
        println!("{text}");
    } else {
        let now = gateway::control::status::unix_now();
        let text: Vec<String> = all.iter().map(|s| s.render(now)).collect();
        print!("{}", text.join("\n"));
    }
    Ok(())
}
