//! `/etc/monitor/monitor.toml`: the daemon's settings, one key per
//! `monitor run` option (the option's long name: `ring-mib = 64`,
//! `sink-jsonl = ["/var/log/monitor/records.jsonl"]`). The defaults are
//! embedded; the file changes some; the command line overrides both.
//! Unknown keys and values of the wrong kind are refused with
//! `file:line:col`.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::Path;

use clap::CommandFactory as _;
use monitor_pii::RulesError;
use toml::Spanned;

/// Where the daemon's settings are read from by default (`MONITOR_CONFIG`
/// or `monitor run --config` name another file).
pub const DEFAULT_CONFIG: &str = "/etc/monitor/monitor.toml";

/// `monitor run`'s options: (long name, takes a value, repeatable).
fn run_options() -> Vec<(String, bool, bool)> {
    let cli = crate::cli::Cli::command();
    let run = cli.find_subcommand("run").expect("a run subcommand");
    run.get_arguments()
        .filter_map(|a| {
            let long = a.get_long()?.to_owned();
            let takes = a.get_action().takes_values();
            let many = matches!(a.get_action(), clap::ArgAction::Append);
            Some((long, takes, many))
        })
        .filter(|(l, _, _)| l != "help" && l != "config")
        .collect()
}

/// The settings in `src` (file `file`) as `monitor run` arguments.
pub fn args(src: &str, file: &str) -> Result<Vec<OsString>, RulesError> {
    let table: BTreeMap<Spanned<String>, Spanned<toml::Value>> =
        toml::from_str(src).map_err(|e| RulesError::from_toml(src, file, &e))?;
    let known = run_options();
    let mut out = Vec::new();
    for (key, value) in table {
        let at = |span: std::ops::Range<usize>, m: String| RulesError::at(src, file, span.start, m);
        let name = key.get_ref().replace('_', "-");
        let Some((long, takes, many)) = known.iter().find(|(l, _, _)| *l == name) else {
            let names: Vec<&str> = known.iter().map(|(l, _, _)| l.as_str()).collect();
            return Err(at(
                key.span(),
                format!(
                    "unknown setting `{}` (known: {})",
                    key.get_ref(),
                    names.join(", ")
                ),
            ));
        };
        let flag = format!("--{long}");
        let scalar = |v: &toml::Value| -> Option<String> {
            match v {
                toml::Value::String(s) => Some(s.clone()),
                toml::Value::Integer(i) => Some(i.to_string()),
                toml::Value::Float(f) => Some(f.to_string()),
                _ => None,
            }
        };
        match (value.get_ref(), takes, many) {
            (toml::Value::Boolean(b), false, _) => {
                if *b {
                    out.push(flag.into());
                }
            }
            (toml::Value::Array(items), true, true) => {
                for item in items {
                    let v = scalar(item).ok_or_else(|| {
                        at(
                            value.span(),
                            format!("`{name}` takes a list of strings or numbers"),
                        )
                    })?;
                    out.push(flag.clone().into());
                    out.push(v.into());
                }
            }
            (v, true, _) => {
                let v = scalar(v).ok_or_else(|| {
                    at(value.span(), format!("`{name}` takes a string or a number"))
                })?;
                out.push(flag.into());
                out.push(v.into());
            }
            (_, false, _) => {
                return Err(at(value.span(), format!("`{name}` is true or false")));
            }
        }
    }
    Ok(out)
}

/// Why the settings could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The file is invalid.
    #[error("{0}")]
    Invalid(#[from] RulesError),
}

/// The settings in `path` as `monitor run` arguments; none when `path` is
/// the default and does not exist.
pub fn load(path: &Path, explicit: bool) -> Result<Vec<OsString>, ConfigError> {
    match std::fs::read_to_string(path) {
        Ok(src) => Ok(args(&src, &path.display().to_string())?),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && !explicit => Ok(Vec::new()),
        Err(e) => Err(ConfigError::Io {
            path: path.display().to_string(),
            source: e,
        }),
    }
}

/// The config file a `monitor run` command line names (`--config PATH`,
/// else `MONITOR_CONFIG`, else the default), and whether it was named.
pub fn path_from(argv: &[OsString]) -> (std::path::PathBuf, bool) {
    let mut it = argv.iter();
    while let Some(a) = it.next() {
        let s = a.to_string_lossy();
        if s == "--config" {
            if let Some(p) = it.next() {
                return (p.into(), true);
            }
        } else if let Some(p) = s.strip_prefix("--config=") {
            return (p.into(), true);
        }
    }
    match std::env::var_os("MONITOR_CONFIG") {
        Some(p) => (p.into(), true),
        None => (DEFAULT_CONFIG.into(), false),
    }
}

/// `argv` with the settings of its config file put in just after `run`,
/// so the command line's own options override them.
pub fn with_config(argv: Vec<OsString>) -> Result<Vec<OsString>, ConfigError> {
    let Some(run) = argv.iter().position(|a| a == "run") else {
        return Ok(argv);
    };
    if argv[1..run]
        .iter()
        .any(|a| !a.to_string_lossy().starts_with('-'))
    {
        return Ok(argv); // `run` is an argument of another command
    }
    let (path, explicit) = path_from(&argv[run + 1..]);
    let settings = load(&path, explicit)?;
    let mut out: Vec<OsString> = argv[..=run].to_vec();
    out.extend(settings);
    out.extend(argv[run + 1..].iter().cloned());
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_become_options_and_bad_ones_are_refused_with_a_position() {
        let a = args(
            "ring-mib = 64\ncapture_inbound = true\nevents-stdout = false\nsink-jsonl = [\"/a\", \"/b\"]\nstate-dir = \"/srv/m\"\n",
            "monitor.toml",
        )
        .unwrap();
        let a: Vec<String> = a.iter().map(|s| s.to_string_lossy().into_owned()).collect();
        assert_eq!(
            a,
            [
                "--capture-inbound",
                "--ring-mib",
                "64",
                "--sink-jsonl",
                "/a",
                "--sink-jsonl",
                "/b",
                "--state-dir",
                "/srv/m"
            ]
        );
        let cases = [
            ("ring-mibs = 64\n", 1, 1, "unknown setting `ring-mibs`"),
            ("ring-mib = [1, 2]\n", 1, 12, "takes a string or a number"),
            ("capture-inbound = \"yes\"\n", 1, 19, "is true or false"),
            ("ring-mib = \n", 1, 12, ""),
        ];
        for (src, line, col, msg) in cases {
            let e = args(src, "monitor.toml").unwrap_err();
            assert_eq!((e.line, e.col), (line, col), "{src:?}: {e}");
            assert!(e.message.contains(msg), "{src:?}: {e}");
        }
    }

    #[test]
    fn the_command_line_overrides_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("monitor.toml");
        std::fs::write(&file, "ring-mib = 64\nstats-interval = 5\n").unwrap();
        let argv: Vec<OsString> = ["monitor", "run", "--config"]
            .iter()
            .map(OsString::from)
            .chain([
                file.clone().into_os_string(),
                "--ring-mib".into(),
                "8".into(),
            ])
            .collect();
        let merged = with_config(argv).unwrap();
        use clap::Parser as _;
        let cli = crate::cli::Cli::try_parse_from(merged).unwrap();
        let crate::cli::Command::Run(o) = cli.command else {
            panic!()
        };
        assert_eq!((o.ring_mib, o.stats_interval_secs), (8, 5));
    }
}
