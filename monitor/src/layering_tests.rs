//! The layering rule, checked: no pipeline stage imports another stage.
//! Stages speak through the shared vocabulary (`model`, `event`, `wire`,
//! `rules`, `status`); `pipeline.rs`, `daemon/` and `cli/` compose them.

use std::path::{Path, PathBuf};

/// The pipeline stages (a module file or folder each) and the followers.
const STAGES: [&str; 12] = [
    "sensor", "enrich", "role", "payload", "classify", "judge", "record", "sinks", "output",
    "server", "anomaly", "respond",
];

fn sources(path: &Path, out: &mut Vec<PathBuf>) {
    if !path.exists() {
        return;
    }
    if path.is_dir() {
        for e in std::fs::read_dir(path).unwrap().flatten() {
            sources(&e.path(), out);
        }
    } else if path.extension().is_some_and(|e| e == "rs") {
        out.push(path.to_owned());
    }
}

/// The top-level modules `src` names through `crate::`.
fn imports(src: &str) -> Vec<String> {
    src.match_indices("crate::")
        .map(|(i, m)| {
            src[i + m.len()..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect()
        })
        .collect()
}

#[test]
fn no_stage_imports_another_stage() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut broken = Vec::new();
    for stage in STAGES {
        let mut files = Vec::new();
        sources(&root.join(stage), &mut files);
        sources(&root.join(format!("{stage}.rs")), &mut files);
        assert!(!files.is_empty(), "stage {stage} has no source");
        for file in files {
            let src = std::fs::read_to_string(&file).unwrap();
            for module in imports(&src) {
                // The query server answers from the store, the anomaly
                // learner keeps its state there and appends its alerts, and
                // the responder runner appends its runs: they use `record`.
                let allowed = module == stage
                    || (matches!(stage, "server" | "anomaly" | "respond") && module == "record");
                if STAGES.contains(&module.as_str()) && !allowed {
                    broken.push(format!("{} imports {module}", file.display()));
                }
            }
        }
    }
    assert!(
        broken.is_empty(),
        "stages import stages:\n{}",
        broken.join("\n")
    );
}
