//! Judging: an ordered chain of judges, each behind [`Judge`]. A judge is
//! shown one access to data (a [`Case`]) and returns the alerts it raises.
//! The policy judge comes first; anomaly detectors join the chain as one
//! file each in this folder.

pub mod policy;

use crate::event::{Event, PiiFinding};
use crate::model::{Access, Alert};
use crate::rules::RuleSet;

/// What a judge is shown: one access, who made it, and what was found in it.
#[derive(Debug, Clone, Copy)]
pub struct Case<'a> {
    /// The acting process's role.
    pub role: &'a str,
    /// The access.
    pub access: &'a Access,
    /// PII found in the payload (empty for other actions).
    pub findings: &'a [PiiFinding],
    /// The event the access came from (process, user, time).
    pub event: &'a Event,
}

/// One judge of the chain.
pub trait Judge: Send {
    /// A stable name, for logs and the status report.
    fn name(&self) -> &'static str;

    /// The alerts `case` raises (none when this judge sees nothing wrong).
    fn judge(&mut self, case: &Case<'_>) -> Vec<Alert>;

    /// Takes a new, validated rule set (a reload).
    fn reload(&mut self, rules: &RuleSet);
}

/// The judges, in the order they are asked.
pub struct Chain {
    judges: Vec<Box<dyn Judge>>,
}

impl Chain {
    /// A chain of `judges`, asked in order.
    pub fn new(judges: Vec<Box<dyn Judge>>) -> Self {
        Self { judges }
    }

    /// The daemon's chain: the policy, then (when they land) the detectors.
    pub fn standard(rules: &RuleSet) -> Self {
        Self::new(vec![Box::new(policy::PolicyJudge::new(rules))])
    }

    /// Every judge's alerts on `case`, in chain order.
    pub fn judge(&mut self, case: &Case<'_>) -> Vec<Alert> {
        let mut alerts = Vec::new();
        for j in &mut self.judges {
            alerts.extend(j.judge(case));
        }
        alerts
    }

    /// Hands a new rule set to every judge.
    pub fn reload(&mut self, rules: &RuleSet) {
        for j in &mut self.judges {
            j.reload(rules);
        }
    }

    /// The judges' names, in order.
    pub fn names(&self) -> Vec<&'static str> {
        self.judges.iter().map(|j| j.name()).collect()
    }
}
