//! `qgw`: the gateway daemon and CLI. The command line is in `cli.rs` (clap), shared with
//! `build.rs`, which renders the man page and shell completions from it; `qgw --help` and
//! `qgw SUBCOMMAND --help` describe every subcommand, and the exit codes are 0 success, 1 error,
//! 2 usage. Errors are printed as one line (with their causes), never as a panic or backtrace.

mod cli;

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::Parser;
use gateway::config;
use gateway::control::status::b64;
use gateway::proto::crypto::{Entropy, OsEntropy};
use gateway::proto::handshake::StaticKeys;
use gateway::proto::secret::Secret;

use self::cli::{AuditCommand, Cli, Command};

fn main() -> ExitCode {
    // Usage errors exit 2 here, `--help` and `--version` 0.
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_max_level(tracing::Level::INFO)
        .with_writer(std::io::stderr)
        // Colour only on a terminal: log files and journald get plain text.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    match run(cli.command) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("qgw: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(command: Command) -> anyhow::Result<ExitCode> {
    match command {
        Command::Up { config } => {
            let cfg = config::load(&config)?;
            gateway::daemon::run(cfg)?;
        }
        Command::CheckConfig { file } => {
            let cfg = config::load(&file)?;
            println!("{}: ok ({} peers)", file.display(), cfg.node.peers.len());
        }
        Command::Genkey { mldsa: true } => {
            println!("{}", gateway::keyfile::generate_mldsa_private()?.as_str());
        }
        Command::Pubkey { mldsa: true } => {
            let text = stdin_secret()?;
            let key = gateway::keyfile::parse_mldsa_private(&text, "stdin")?;
            println!("{}", gateway::keyfile::mldsa_public_text(&key));
        }
        Command::Genkey { mldsa: false } => {
            let mut key = Secret::<32>::zero();
            OsEntropy.fill(key.expose_mut());
            // Clamp as `wg genkey` does, so the printed key is canonical.
            key.expose_mut()[0] &= 248;
            key.expose_mut()[31] = (key.expose()[31] & 127) | 64;
            println!("{}", b64(key.expose()));
        }
        Command::Pubkey { mldsa: false } => {
            let text = stdin_secret()?;
            let Some(key) = config::parse_key(&text) else {
                bail!("stdin: not a Base64 32-byte key")
            };
            println!("{}", b64(StaticKeys::new(Secret::new(key)).public()));
        }
        Command::Status { interface, json } => status(interface.as_deref(), json)?,
        Command::Audit {
            command: AuditCommand::Verify { key, files },
        } => return Ok(ExitCode::from(audit_verify(key.as_deref(), &files))),
    }
    Ok(ExitCode::SUCCESS)
}

/// A private key from stdin, in a buffer wiped on drop.
fn stdin_secret() -> anyhow::Result<zeroize::Zeroizing<String>> {
    let mut text = zeroize::Zeroizing::new(String::new());
    std::io::stdin()
        .read_to_string(&mut text)
        .context("reading stdin")?;
    Ok(text)
}

/// `qgw audit verify [--key FILE] FILE...` (docs/audit.md §6). Returns the exit code: 0 verified,
/// 1 the log fails verification (the first problem is printed with file:line), 2 I/O error.
fn audit_verify(key: Option<&Path>, files: &[PathBuf]) -> u8 {
    use gateway::audit::{Outcome, verify_files};
    let pinned = match key.map(gateway::keyfile::load_mldsa_public) {
        None => None,
        Some(Ok(k)) => Some(k),
        Some(Err(e)) => {
            eprintln!("qgw audit verify: --key {e}");
            return 2;
        }
    };
    match verify_files(files, pinned) {
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
fn status(interface: Option<&str>, json: bool) -> anyhow::Result<()> {
    use gateway::control::{self, status::Status};
    let paths = match interface {
        None => {
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
        Some(one) => vec![control::status_path(one)],
    };
    let mut all = Vec::new();
    for p in &paths {
        let answer = match control::query(p, "status\n\n") {
            // Listing all: a socket left by a killed instance is skipped, not fatal.
            Err(e) if interface.is_none() && e.kind() == std::io::ErrorKind::ConnectionRefused => {
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
            [one] if interface.is_some() => serde_json::to_string_pretty(one)?,
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
