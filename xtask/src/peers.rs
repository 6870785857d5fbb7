//! `cargo xtask eval-peers`: the detector on the peers' own test vectors
//! (gitleaks' rule tests, Presidio's recognizer tests), vendored under
//! `monitor-pii/tests/peers` with their licences.

use std::collections::BTreeMap;

use anyhow::{bail, Context as _};
use monitor_pii::eval::Span;
use serde::Deserialize;

use crate::pii::scan_texts;
use crate::workspace_root;

const GITLEAKS: &str = "monitor-pii/tests/peers/gitleaks.jsonl";
const PRESIDIO: &str = "monitor-pii/tests/peers/presidio.jsonl";
/// Presidio cases the detector answers otherwise on purpose, each with why.
const BY_DESIGN: &str = "monitor-pii/tests/peers/presidio-by-design.jsonl";

/// The detector's credential types: a gitleaks vector is found when one of
/// these is reported in it.
const CREDENTIALS: &[&str] = &[
    "API_KEY",
    "AWS_ACCESS_KEY",
    "GITHUB_TOKEN",
    "SLACK_TOKEN",
    "JWT",
    "PRIVATE_KEY",
];

/// The gitleaks families the detector claims, by rule id prefix.
const CLAIMED: &[(&str, &[&str])] = &[
    ("aws", &["aws-access-token"]),
    ("github", &["github-"]),
    ("slack", &["slack-"]),
    ("stripe", &["stripe-"]),
    ("google api key", &["gcp-api-key"]),
    ("openai", &["openai-"]),
    ("jwt", &["jwt"]),
    ("private key", &["private-key"]),
    ("generic assignment", &["generic-api-key"]),
];

/// Recall goal per claimed family, and the most negatives it may flag.
const RECALL_GOAL: f64 = 0.95;
const FALSE_FLAG_GOAL: f64 = 0.02;

#[derive(Deserialize)]
struct GitleaksVector {
    rule: String,
    kind: String,
    text: String,
}

#[derive(Deserialize)]
struct ByDesign {
    text: String,
    reason: String,
}

#[derive(Deserialize)]
struct PresidioCase {
    #[serde(rename = "type")]
    kind: String,
    text: String,
    spans: Vec<(usize, usize)>,
    strong: Vec<bool>,
}

fn read_jsonl<T: for<'de> Deserialize<'de>>(path: &str) -> anyhow::Result<Vec<T>> {
    std::fs::read_to_string(workspace_root().join(path))
        .with_context(|| format!("reading {path}"))?
        .lines()
        .enumerate()
        .map(|(i, l)| serde_json::from_str(l).with_context(|| format!("{path}:{}", i + 1)))
        .collect()
}

fn family(rule: &str) -> Option<&'static str> {
    CLAIMED
        .iter()
        .find(|(_, prefixes)| prefixes.iter().any(|p| rule.starts_with(p)))
        .map(|(name, _)| *name)
}

#[derive(Default)]
struct Tally {
    tp: usize,
    found: usize,
    fp: usize,
    flagged: usize,
}

/// The findings of each text, in the order given.
fn scan_each<'a>(texts: impl Iterator<Item = &'a str>) -> anyhow::Result<Vec<Vec<Span>>> {
    let texts: Vec<&str> = texts.collect();
    let mut found = scan_texts(texts.iter().enumerate().map(|(i, t)| (i as u64, *t)))?;
    Ok((0..texts.len() as u64)
        .map(|i| found.remove(&i).unwrap_or_default())
        .collect())
}

/// Runs both suites and prints the tables; fails when a claimed family
/// misses its goal or a Presidio case disagrees without a listed reason.
pub fn evaluate() -> anyhow::Result<()> {
    crate::cargo(&["build", "--release", "-p", "monitor"])?;
    let vectors: Vec<GitleaksVector> = read_jsonl(GITLEAKS)?;
    let found = scan_each(vectors.iter().map(|v| v.text.as_str()))?;
    let mut claimed: BTreeMap<&str, Tally> = BTreeMap::new();
    let mut others = Tally::default();
    for (i, v) in vectors.iter().enumerate() {
        let hit = found[i]
            .iter()
            .any(|(k, _, _)| CREDENTIALS.contains(&k.as_str()));
        let t = match family(&v.rule) {
            Some(name) => claimed.entry(name).or_default(),
            None => &mut others,
        };
        if v.kind == "tp" {
            t.tp += 1;
            t.found += usize::from(hit);
        } else {
            t.fp += 1;
            t.flagged += usize::from(hit);
        }
    }
    println!(
        "gitleaks' rule vectors ({GITLEAKS}): distinct true positives found, negatives flagged\n"
    );
    println!(
        "{:<20} {:>10} {:>8} {:>10} {:>8}  goal (recall >= {RECALL_GOAL}, flagged <= {FALSE_FLAG_GOAL})",
        "family", "found", "recall", "flagged", "share"
    );
    let mut missed = 0;
    let (mut all_tp, mut all_found, mut all_fp, mut all_flagged) = (0, 0, 0, 0);
    for (name, t) in &claimed {
        let recall = ratio(t.found, t.tp);
        let share = if t.fp == 0 {
            0.0
        } else {
            t.flagged as f64 / t.fp as f64
        };
        let met = recall >= RECALL_GOAL && share <= FALSE_FLAG_GOAL;
        missed += usize::from(!met);
        println!(
            "{name:<20} {:>10} {recall:>8.3} {:>10} {share:>8.3}  {}",
            format!("{}/{}", t.found, t.tp),
            format!("{}/{}", t.flagged, t.fp),
            if met { "met" } else { "MISSED" }
        );
        all_tp += t.tp;
        all_found += t.found;
        all_fp += t.fp;
        all_flagged += t.flagged;
    }
    println!(
        "{:<20} {:>10} {:>8.3} {:>10}",
        "claimed, together",
        format!("{all_found}/{all_tp}"),
        ratio(all_found, all_tp),
        format!("{all_flagged}/{all_fp}"),
    );
    println!(
        "{:<20} {:>10} {:>8.3} {:>10}  (families the detector does not claim)",
        "not claimed",
        format!("{}/{}", others.found, others.tp),
        ratio(others.found, others.tp),
        format!("{}/{}", others.flagged, others.fp),
    );

    let cases: Vec<PresidioCase> = read_jsonl(PRESIDIO)?;
    let found = scan_each(cases.iter().map(|c| c.text.as_str()))?;
    let by_design: Vec<ByDesign> = read_jsonl(BY_DESIGN)?;
    // Per type: cases agreeing, cases, cases answered otherwise by design.
    let mut agree: BTreeMap<&str, (usize, usize, usize)> = BTreeMap::new();
    let mut unexplained = Vec::new();
    for (i, c) in cases.iter().enumerate() {
        let ours: Vec<(usize, usize)> = found[i]
            .iter()
            .filter(|(k, _, _)| *k == c.kind)
            .map(|(_, s, e)| (*s, *e))
            .collect();
        let overlaps = |a: (usize, usize), b: (usize, usize)| a.0 < b.1 && b.0 < a.1;
        // Every span Presidio claims is found, and nothing is found where
        // it expects nothing (its low-score guesses may go either way).
        let claims_found = c
            .spans
            .iter()
            .zip(&c.strong)
            .filter(|(_, strong)| **strong)
            .all(|(s, _)| ours.iter().any(|o| overlaps(*o, *s)));
        let nothing_extra = ours
            .iter()
            .all(|o| c.spans.iter().any(|s| overlaps(*o, *s)));
        let e = agree.entry(c.kind.as_str()).or_default();
        e.1 += 1;
        if claims_found && nothing_extra {
            e.0 += 1;
        } else if let Some(d) = by_design.iter().find(|d| d.text == c.text) {
            e.2 += 1;
            println!("  by design: {:?}: {}", c.text, d.reason);
        } else {
            unexplained.push(format!(
                "{} {:?} expected {:?}, found {ours:?}",
                c.kind, c.text, c.spans
            ));
        }
    }
    for u in &unexplained {
        println!("  disagrees: {u}");
    }
    println!("\nPresidio's recognizer cases ({PRESIDIO}): cases where the detector agrees, and where it answers otherwise by design ({BY_DESIGN})\n");
    println!(
        "{:<18} {:>10} {:>8} {:>10} {:>8}",
        "type", "agree", "share", "by design", "other"
    );
    let (mut a, mut n, mut d) = (0, 0, 0);
    for (kind, (ok, total, designed)) in &agree {
        println!(
            "{kind:<18} {:>10} {:>8.3} {designed:>10} {:>8}",
            format!("{ok}/{total}"),
            ratio(*ok, *total),
            total - ok - designed
        );
        a += ok;
        n += total;
        d += designed;
    }
    println!(
        "{:<18} {:>10} {:>8.3} {d:>10} {:>8}",
        "all",
        format!("{a}/{n}"),
        ratio(a, n),
        n - a - d
    );
    if !unexplained.is_empty() {
        missed += 1;
        println!("goal: agreement wherever Presidio's expectation is not a low-score guess: {} case(s) disagree without a reason", unexplained.len());
    }
    if missed > 0 {
        bail!("{missed} goal(s) missed");
    }
    Ok(())
}

fn ratio(a: usize, b: usize) -> f64 {
    if b == 0 {
        1.0
    } else {
        a as f64 / b as f64
    }
}
