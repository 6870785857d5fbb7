//! `cargo xtask gen-pii-corpus` and `cargo xtask eval-pii`.

use std::collections::BTreeMap;
use std::process::{Command, Stdio};

use anyhow::{bail, Context as _};
use monitor_pii::eval::{score_record, Span, TypeScore, GOALS};
use serde_json::Value;

use crate::{cargo, workspace_root};

const RECORDS: usize = 2000;
const SEED: u64 = 20261122;
const CORPUS: &str = "monitor-pii/tests/corpus/pii.jsonl";

/// Writes the evaluation corpus (deterministic).
pub fn generate() -> anyhow::Result<()> {
    let path = workspace_root().join(CORPUS);
    std::fs::write(&path, monitor_pii::synth::eval_corpus(RECORDS, SEED))?;
    println!("wrote {} ({RECORDS} records)", path.display());
    Ok(())
}

fn spans(v: &Value, list: &str) -> Vec<Span> {
    v[list]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|l| {
                    let n = |k: &str| l[k].as_u64().unwrap_or(0) as usize;
                    (
                        l["type"].as_str().unwrap_or("").to_owned(),
                        n("start"),
                        n("end"),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Runs `monitor scan --jsonl` over the corpus and prints P/R/F1 per type.
pub fn evaluate() -> anyhow::Result<()> {
    cargo(&["build", "--release", "-p", "monitor"])?;
    let corpus = std::fs::read_to_string(workspace_root().join(CORPUS))?;
    let key = std::env::temp_dir().join(format!("monitor-eval-key-{}", std::process::id()));
    let mut child = Command::new(workspace_root().join("target/release/monitor"))
        .args([
            "scan",
            "--jsonl",
            "--text-field",
            "text",
            "--id-field",
            "id",
            "--key-file",
        ])
        .arg(&key)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .context("running monitor scan")?;
    let mut stdin = child.stdin.take().context("stdin")?;
    let input = corpus.clone();
    let feeder =
        std::thread::spawn(move || std::io::Write::write_all(&mut stdin, input.as_bytes()));
    let out = child.wait_with_output()?;
    feeder
        .join()
        .map_err(|_| anyhow::anyhow!("feeder panicked"))??;
    std::fs::remove_file(&key).ok();
    if !out.status.success() {
        bail!("monitor scan failed: {}", out.status);
    }
    let results: BTreeMap<u64, Vec<Span>> = String::from_utf8(out.stdout)?
        .lines()
        .map(|l| {
            let v: Value = serde_json::from_str(l).expect("scan output is JSON");
            (v["id"].as_u64().unwrap_or(u64::MAX), spans(&v, "findings"))
        })
        .collect();
    let mut scores: BTreeMap<String, TypeScore> = BTreeMap::new();
    for line in corpus.lines() {
        let rec: Value = serde_json::from_str(line)?;
        let id = rec["id"].as_u64().unwrap_or(0);
        let found = results.get(&id).cloned().unwrap_or_default();
        score_record(&spans(&rec, "labels"), &found, &mut scores);
    }
    println!(
        "PII detector on {} labeled records ({CORPUS})\n",
        corpus.lines().count()
    );
    println!(
        "{:<18} {:>7} {:>5} {:>5} {:>6} {:>9} {:>7} {:>7}  goal",
        "type", "support", "tp", "fp", "missed", "precision", "recall", "F1"
    );
    let mut missed_goals = 0;
    for (kind, s) in &scores {
        let goal = GOALS.iter().find(|(k, _)| k == kind).map(|(_, g)| *g);
        let verdict = match goal {
            Some(g) if s.f1() >= g => format!(">= {g}: met"),
            Some(g) => {
                missed_goals += 1;
                format!(">= {g}: MISSED")
            }
            None => "-".to_owned(),
        };
        println!(
            "{kind:<18} {:>7} {:>5} {:>5} {:>6} {:>9.3} {:>7.3} {:>7.3}  {verdict}",
            s.tp + s.missed,
            s.tp,
            s.fp,
            s.missed,
            s.precision(),
            s.recall(),
            s.f1()
        );
    }
    if missed_goals > 0 {
        bail!("{missed_goals} type(s) below their F1 goal");
    }
    Ok(())
}
