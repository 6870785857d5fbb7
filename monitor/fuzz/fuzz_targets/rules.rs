//! Any text as any rules file: no panic, and a refusal points inside the
//! text (line and column of a real position).
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use monitor::rules::{classes::ClassRules, policy::Policy, roles::RoleRules, RuleSet};
use monitor_pii::{PiiRules, RulesError};

fn check(src: &str, e: &RulesError) {
    let lines = src.lines().count().max(1);
    assert!(e.line <= lines + 1, "line {} of {lines}: {e}", e.line);
}

fuzz_target!(|data: &[u8]| {
    let Some((&which, rest)) = data.split_first() else {
        return;
    };
    let src = String::from_utf8_lossy(rest);
    static SHIPPED: OnceLock<RuleSet> = OnceLock::new();
    let shipped = SHIPPED.get_or_init(RuleSet::shipped);
    let result = match which % 4 {
        0 => RoleRules::parse(&src, "roles.toml").map(drop),
        1 => ClassRules::parse(&src, "classes.toml", &shipped.pii).map(drop),
        2 => Policy::parse(&src, "policy.toml", &shipped.roles, &shipped.classes, &shipped.pii)
            .map(drop),
        _ => PiiRules::parse(&src, "pii.toml").map(drop),
    };
    if let Err(e) = result {
        check(&src, &e);
    }
});
