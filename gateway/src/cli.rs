// The command line of `qgw`, for the binary (`main.rs`) and for `build.rs`, which renders the man
// page and the shell completions from it at build time (so they cannot drift from the parser).
// Only clap and std here: build.rs includes this file as it is.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

/// Exit codes, the same for every subcommand (also in the man page).
const EXIT_CODES: &str = "Exit codes:
  0  success (for `audit verify`: the log verified)
  1  error: a configuration, key or I/O problem, a daemon that is not running, or (for
     `audit verify`) a log that fails verification
  2  usage: an unknown subcommand or flag, a missing argument (for `audit verify` also an
     unreadable file or key)";

/// qgw: a WireGuard-compatible VPN gateway whose keys stay secret after large quantum computers
/// exist, by mixing ML-KEM-768 and keys from QKD hardware (ETSI GS QKD 014) into every epoch.
#[derive(Debug, Parser)]
#[command(
    name = "qgw",
    version,
    long_version = long_version(),
    after_help = EXIT_CODES,
    propagate_version = true,
    subcommand_required = true,
    arg_required_else_help = true
)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The version with the git commit it was built from, when known.
fn long_version() -> &'static str {
    match option_env!("QGW_GIT_COMMIT") {
        Some(commit) => {
            let text = format!("{} (commit {commit})", env!("CARGO_PKG_VERSION"));
            Box::leak(text.into_boxed_str())
        }
        None => env!("CARGO_PKG_VERSION"),
    }
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run a gateway interface until SIGINT or SIGTERM.
    ///
    /// Creates the TUN interface, its addresses and routes, binds the UDP port and starts the
    /// hybrid key agreement of every hybrid peer. A configuration that fails validation stops it
    /// before anything touches the network.
    Up {
        /// The site's configuration (YAML; see configs/README.md).
        #[arg(short, long, value_name = "FILE")]
        config: PathBuf,
    },
    /// Validate a configuration without touching the network.
    ///
    /// Parses FILE, loads its key files and checks every field; an error names the file, the
    /// line and the field.
    CheckConfig {
        /// The configuration to check.
        #[arg(value_name = "FILE")]
        file: PathBuf,
    },
    /// Print a new private key in Base64 (X25519, as `wg genkey`; or ML-DSA-65 with --mldsa).
    Genkey {
        /// An ML-DSA-65 site signing key (its 32-byte seed) instead of an X25519 key.
        #[arg(long)]
        mldsa: bool,
    },
    /// Read a private key on stdin and print its public key (as `wg pubkey`).
    Pubkey {
        /// The key on stdin is an ML-DSA-65 private key.
        #[arg(long)]
        mldsa: bool,
    },
    /// Show running interfaces and their peers.
    ///
    /// Asks each interface's status socket (root or the qgw user): handshakes, hybrid epochs
    /// and their key sources, QKD key IDs, offloads, drops.
    Status {
        /// One interface (default: every running one).
        #[arg(value_name = "INTERFACE")]
        interface: Option<String>,
        /// Machine-readable JSON (one object for one interface, else an array).
        #[arg(long)]
        json: bool,
    },
    /// Work with the audit log (docs/audit.md).
    Audit {
        /// What to do with it.
        #[command(subcommand)]
        command: AuditCommand,
    },
}

/// `qgw audit` subcommands.
#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Check an audit log's hash chain and signed checkpoints.
    ///
    /// Exits 0 with a summary when every record chains and every checkpoint verifies, 1 naming
    /// the first altered, removed, reordered or malformed record, 2 on a usage or I/O error.
    /// Rotated files verify together, in any order.
    Verify {
        /// The site's ML-DSA-65 public key: checkpoints must be signed with it.
        #[arg(long, value_name = "MLDSA_PUBLIC_KEY_FILE")]
        key: Option<PathBuf>,
        /// The log files.
        #[arg(value_name = "FILE", required = true)]
        files: Vec<PathBuf>,
    },
}
