//! `qkd-kme-sim`: the ETSI GS QKD 014 KME simulator. See qkd-link/README.md.

use std::process::ExitCode;

use qkd_link::sim::cli::{self, Command, USAGE};
use qkd_link::sim::{SimConfig, SimError, pki};

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_target(false)
        .init();
    let command = match cli::parse(std::env::args_os().skip(1)) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("qkd-kme-sim: {e}");
            return ExitCode::from(2);
        }
    };
    let result = match command {
        Command::Help => {
            print!("{USAGE}");
            Ok(())
        }
        Command::Version => {
            println!("qkd-kme-sim {}", env!("CARGO_PKG_VERSION"));
            Ok(())
        }
        Command::Pki {
            out,
            sans,
            force,
            from_config,
        } => match from_config {
            None => pki::generate(&out, &sans, force),
            Some(path) => {
                SimConfig::load(&path).and_then(|cfg| pki::generate_for(&out, &cfg, &sans, force))
            }
        }
        .map(|files| {
            for f in files {
                println!("{}", f.display());
            }
        }),
        Command::Serve { config, pki } => serve(&config, pki),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("qkd-kme-sim: {e}");
            ExitCode::FAILURE
        }
    }
}

fn serve(config: &std::path::Path, pki: Option<std::path::PathBuf>) -> Result<(), SimError> {
    let cfg = SimConfig::load(config)?;
    let pki_dir = pki.or_else(|| cfg.pki_dir.clone()).ok_or_else(|| {
        SimError::Usage(format!(
            "no PKI directory: pass --pki DIR or set pki_dir in {}",
            config.display()
        ))
    })?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|source| SimError::Bind {
            addr: ([127, 0, 0, 1], 0).into(),
            source,
        })?;
    runtime.block_on(async {
        let kme_ids: Vec<String> = cfg.kmes.iter().map(|k| k.id.to_string()).collect();
        let handle = qkd_link::sim::start(cfg, &pki_dir).await?;
        // One line per listener on stdout, for scripts and tests (ports may be 0 in the config).
        for id in &kme_ids {
            if let Some(url) = handle.kme_url(id) {
                println!("{id} {url}");
            }
        }
        if let Some(admin) = handle.admin_addr() {
            println!("admin http://{admin}");
        }
        println!("ready");
        wait_for_signal().await;
        tracing::info!("shutting down");
        handle.shutdown().await;
        Ok(())
    })
}

async fn wait_for_signal() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = async {
            match term.as_mut() {
                Some(t) => { t.recv().await; }
                None => std::future::pending::<()>().await,
            }
        } => {}
    }
}
