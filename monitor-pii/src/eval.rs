//! Precision, recall and F1 per type against labeled text: a finding counts
//! when a label of the same type overlaps it.

use std::collections::BTreeMap;

/// Counts for one type.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TypeScore {
    /// Labels found.
    pub tp: u64,
    /// Findings with no label.
    pub fp: u64,
    /// Labels missed.
    pub missed: u64,
}

impl TypeScore {
    /// tp / (tp + fp).
    pub fn precision(&self) -> f64 {
        ratio(self.tp, self.tp + self.fp)
    }
    /// tp / (tp + missed).
    pub fn recall(&self) -> f64 {
        ratio(self.tp, self.tp + self.missed)
    }
    /// Harmonic mean of precision and recall.
    pub fn f1(&self) -> f64 {
        let (p, r) = (self.precision(), self.recall());
        if p + r == 0.0 {
            0.0
        } else {
            2.0 * p * r / (p + r)
        }
    }
}

fn ratio(a: u64, b: u64) -> f64 {
    if b == 0 {
        1.0
    } else {
        a as f64 / b as f64
    }
}

/// A typed span: (type name, start, end).
pub type Span = (String, usize, usize);

/// Adds one record's outcome to `scores`.
pub fn score_record(labels: &[Span], found: &[Span], scores: &mut BTreeMap<String, TypeScore>) {
    let mut used = vec![false; found.len()];
    for (kind, s, e) in labels {
        let hit = found
            .iter()
            .enumerate()
            .find(|(i, (k, fs, fe))| !used[*i] && k == kind && fs < e && s < fe);
        let entry = scores.entry(kind.clone()).or_default();
        match hit {
            Some((i, _)) => {
                used[i] = true;
                entry.tp += 1;
            }
            None => entry.missed += 1,
        }
    }
    for (i, (kind, _, _)) in found.iter().enumerate() {
        if !used[i] {
            scores.entry(kind.clone()).or_default().fp += 1;
        }
    }
}

/// The F1 each type must reach on the evaluation corpus.
pub const GOALS: &[(&str, f64)] = &[
    ("CREDIT_CARD", 0.97),
    ("US_SSN", 0.97),
    ("IBAN_CODE", 0.97),
    ("US_BANK_ROUTING", 0.97),
    ("EMAIL_ADDRESS", 0.97),
    ("PHONE_NUMBER", 0.9),
    ("DATE_OF_BIRTH", 0.9),
    ("API_KEY", 0.9),
    ("AWS_ACCESS_KEY", 0.9),
    ("GITHUB_TOKEN", 0.9),
    ("SLACK_TOKEN", 0.9),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_overlaps_by_type() {
        let mut s = BTreeMap::new();
        let labels = vec![("A".to_owned(), 0, 5), ("A".to_owned(), 10, 15)];
        let found = vec![("A".to_owned(), 1, 5), ("B".to_owned(), 10, 15)];
        score_record(&labels, &found, &mut s);
        assert_eq!(
            s["A"],
            TypeScore {
                tp: 1,
                fp: 0,
                missed: 1
            }
        );
        assert_eq!(
            s["B"],
            TypeScore {
                tp: 0,
                fp: 1,
                missed: 0
            }
        );
        assert_eq!(s["A"].precision(), 1.0);
        assert_eq!(s["A"].recall(), 0.5);
    }
}
