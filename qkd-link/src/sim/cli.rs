//! The `qkd-kme-sim` command line (hand-parsed: four flags do not justify an argument-parser
//! dependency).
//!
//! ```text
//! qkd-kme-sim pki --out DIR [--from-config FILE] [--san NAME_OR_IP]... [--force]
//! qkd-kme-sim serve --config FILE [--pki DIR]
//! ```

use std::ffi::OsString;
use std::path::PathBuf;

use super::error::SimError;

/// Usage text.
pub const USAGE: &str = "\
qkd-kme-sim: ETSI GS QKD 014 KME simulator

USAGE:
    qkd-kme-sim pki --out DIR [--from-config FILE] [--san NAME_OR_IP]... [--force]
        Write a demo CA (ca.pem) and certificates/keys for kme_a, kme_b (servers, valid for
        127.0.0.1, ::1, localhost and every --san) and sae_a, sae_b (clients, CN SAE_A, SAE_B).
        With --from-config FILE: a certificate for every KME and SAE of that simulator config.
    qkd-kme-sim serve --config FILE [--pki DIR]
        Serve every KME of FILE; certificates come from DIR or the file's pki_dir.
    qkd-kme-sim --help | --version
";

/// A parsed command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// Generate the demo PKI.
    Pki {
        /// Output directory.
        out: PathBuf,
        /// Extra names for the KME certificates.
        sans: Vec<String>,
        /// Overwrite existing files.
        force: bool,
        /// Certificates for the KMEs and SAEs of this simulator config instead of the demo four.
        from_config: Option<PathBuf>,
    },
    /// Run the simulator.
    Serve {
        /// Configuration file.
        config: PathBuf,
        /// PKI directory overriding the config's `pki_dir`.
        pki: Option<PathBuf>,
    },
    /// Print usage.
    Help,
    /// Print the version.
    Version,
}

/// Parses the arguments after the program name.
pub fn parse(args: impl IntoIterator<Item = OsString>) -> Result<Command, SimError> {
    let mut args = args.into_iter().map(|a| {
        a.into_string()
            .map_err(|a| SimError::Usage(format!("argument {a:?} is not valid UTF-8")))
    });
    let sub = match args.next().transpose()? {
        None => return Err(SimError::Usage(format!("missing command\n\n{USAGE}"))),
        Some(s) => s,
    };
    let mut flags: Vec<(String, Option<String>)> = Vec::new();
    let rest: Vec<String> = args.collect::<Result<_, _>>()?;
    let mut it = rest.into_iter();
    while let Some(arg) = it.next() {
        let Some(name) = arg.strip_prefix("--") else {
            return Err(SimError::Usage(format!(
                "unexpected argument {arg:?}\n\n{USAGE}"
            )));
        };
        let (name, inline) = match name.split_once('=') {
            Some((n, v)) => (n.to_string(), Some(v.to_string())),
            None => (name.to_string(), None),
        };
        let takes_value = matches!(
            name.as_str(),
            "out" | "san" | "config" | "pki" | "from-config"
        );
        let value = match (takes_value, inline) {
            (true, Some(v)) => Some(v),
            (true, None) => Some(
                it.next()
                    .ok_or_else(|| SimError::Usage(format!("--{name} needs a value")))?,
            ),
            (false, Some(_)) => return Err(SimError::Usage(format!("--{name} takes no value"))),
            (false, None) => None,
        };
        flags.push((name, value));
    }
    let single = |name: &str| -> Result<Option<String>, SimError> {
        let mut vals = flags
            .iter()
            .filter(|(n, _)| n == name)
            .filter_map(|(_, v)| v.clone());
        let first = vals.next();
        if vals.next().is_some() {
            return Err(SimError::Usage(format!("--{name} given more than once")));
        }
        Ok(first)
    };
    let allow = |allowed: &[&str]| -> Result<(), SimError> {
        match flags.iter().find(|(n, _)| !allowed.contains(&n.as_str())) {
            Some((n, _)) => Err(SimError::Usage(format!(
                "unknown option --{n} for `{sub}`\n\n{USAGE}"
            ))),
            None => Ok(()),
        }
    };
    match sub.as_str() {
        "-h" | "--help" | "help" => Ok(Command::Help),
        "-V" | "--version" => Ok(Command::Version),
        "pki" => {
            allow(&["out", "san", "force", "from-config"])?;
            let out =
                single("out")?.ok_or_else(|| SimError::Usage("pki needs --out DIR".into()))?;
            let sans = flags
                .iter()
                .filter(|(n, _)| n == "san")
                .filter_map(|(_, v)| v.clone())
                .collect();
            let force = flags.iter().any(|(n, _)| n == "force");
            Ok(Command::Pki {
                out: out.into(),
                sans,
                force,
                from_config: single("from-config")?.map(PathBuf::from),
            })
        }
        "serve" => {
            allow(&["config", "pki"])?;
            let config = single("config")?
                .ok_or_else(|| SimError::Usage("serve needs --config FILE".into()))?;
            Ok(Command::Serve {
                config: config.into(),
                pki: single("pki")?.map(PathBuf::from),
            })
        }
        other => Err(SimError::Usage(format!(
            "unknown command {other:?}\n\n{USAGE}"
        ))),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn p(args: &[&str]) -> Result<Command, SimError> {
        parse(args.iter().map(OsString::from))
    }

    #[test]
    fn documented_forms_parse() {
        assert_eq!(
            p(&[
                "pki",
                "--out",
                "pki",
                "--san",
                "kme.example",
                "--san=10.0.0.1"
            ])
            .unwrap(),
            Command::Pki {
                out: "pki".into(),
                sans: vec!["kme.example".into(), "10.0.0.1".into()],
                force: false,
                from_config: None
            }
        );
        assert_eq!(
            p(&[
                "serve",
                "--config",
                "configs/kme-sim.yaml",
                "--pki",
                "/tmp/pki"
            ])
            .unwrap(),
            Command::Serve {
                config: "configs/kme-sim.yaml".into(),
                pki: Some("/tmp/pki".into())
            }
        );
        assert_eq!(
            p(&["serve", "--config=c.yaml"]).unwrap(),
            Command::Serve {
                config: "c.yaml".into(),
                pki: None
            }
        );
        assert_eq!(p(&["--help"]).unwrap(), Command::Help);
        assert!(matches!(
            p(&["pki", "--out", "d", "--force"]).unwrap(),
            Command::Pki { force: true, .. }
        ));
        assert!(matches!(
            p(&[
                "pki",
                "--out",
                "d",
                "--from-config",
                "configs/kme-sim-region.yaml"
            ])
            .unwrap(),
            Command::Pki {
                from_config: Some(_),
                ..
            }
        ));
    }

    #[test]
    fn mistakes_are_usage_errors() {
        for args in [
            &[][..],
            &["pki"],
            &["pki", "--out"],
            &["pki", "--out", "a", "--out", "b"],
            &["pki", "--out", "a", "--config", "x"],
            &["serve"],
            &["serve", "--config", "c", "extra"],
            &["serve", "--config", "c", "--force=yes"],
            &["launch"],
        ] {
            assert!(matches!(p(args), Err(SimError::Usage(_))), "{args:?}");
        }
    }
}
