//! Build-time work for `qgw`:
//! - records the git commit for `qgw_build_info{commit}` and `qgw --version` (`unknown` / absent
//!   when not built from a checkout, e.g. from a source tarball or a Docker context without `.git`);
//! - renders the man pages and the bash, zsh and fish completions from the clap definition the
//!   binary parses with (`src/cli.rs`), into `OUT_DIR` and, for packaging, into
//!   `target/<profile>/qgw-assets/{man,completions}/`.

use std::path::{Path, PathBuf};
use std::process::Command as Process;

use clap::CommandFactory;
use clap_complete::Shell;

#[allow(dead_code)]
mod cli {
    include!("src/cli.rs");
}

fn main() -> std::io::Result<()> {
    let commit = Process::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty() && s.bytes().all(|b| b.is_ascii_hexdigit()));
    if let Some(c) = &commit {
        println!("cargo:rustc-env=QGW_GIT_COMMIT={c}");
    }
    // Rebuild when HEAD moves (a branch ref change shows up in the packed or loose refs).
    for path in ["../.git/HEAD", "../.git/refs/heads", "../.git/packed-refs"] {
        if Path::new(path).exists() {
            println!("cargo:rerun-if-changed={path}");
        }
    }
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed=src/cli.rs");

    let Some(out) = std::env::var_os("OUT_DIR").map(PathBuf::from) else {
        return Ok(());
    };
    render(&out)?;
    // OUT_DIR is target/<profile>/build/gateway-<hash>/out: packaging wants a stable path.
    if let Some(profile_dir) = out.ancestors().nth(3) {
        render(&profile_dir.join("qgw-assets"))?;
    }
    Ok(())
}

/// Man pages (`qgw.1`, `qgw-up.1`, …) into `dir/man`, completions into `dir/completions`.
fn render(dir: &Path) -> std::io::Result<()> {
    let man = dir.join("man");
    let completions = dir.join("completions");
    std::fs::create_dir_all(&man)?;
    std::fs::create_dir_all(&completions)?;
    clap_mangen::generate_to(cli::Cli::command(), &man)?;
    for shell in [Shell::Bash, Shell::Zsh, Shell::Fish] {
        clap_complete::generate_to(shell, &mut cli::Cli::command(), "qgw", &completions)?;
    }
    Ok(())
}
