//! Determinism is sacred: every corpus input and reproducer, run in two separate processes,
//! gives an identical run (trace, commit order, outcomes, divergence), compared by digest.
//! Reproducers are run with their switch on, so the failing runs are checked too.

use std::path::{Path, PathBuf};
use std::process::Command;

fn corpus_files() -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../corpus");
    let mut out = Vec::new();
    for sub in ["sequential", "concurrent", "regressions", "bugs"] {
        if let Ok(rd) = std::fs::read_dir(root.join(sub)) {
            out.extend(
                rd.filter_map(|e| e.ok())
                    .map(|e| e.path())
                    .filter(|p| p.is_file()),
            );
        }
    }
    out.retain(|p| p.extension().is_none_or(|e| e != "md"));
    out.sort();
    out
}

fn digests(files: &[PathBuf], bug: Option<&str>) -> String {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_wbfuzz"));
    cmd.args(["run", "--quiet", "--digest"]);
    if let Some(b) = bug {
        cmd.args(["--bug", b]);
    }
    let out = cmd.args(files).output().expect("spawn wbfuzz");
    let text = String::from_utf8_lossy(&out.stdout);
    text.lines()
        .filter(|l| l.contains(": digest "))
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn two_processes_give_identical_runs() {
    let files = corpus_files();
    assert!(!files.is_empty(), "the corpus is empty");
    let (plain, repros): (Vec<PathBuf>, Vec<PathBuf>) = files
        .into_iter()
        .partition(|p| !p.components().any(|c| c.as_os_str() == "bugs"));
    let a = digests(&plain, None);
    let b = digests(&plain, None);
    assert_eq!(
        a.lines().count(),
        plain.len(),
        "one digest per input expected:\n{a}"
    );
    assert_eq!(a, b, "two processes disagree on the corpus");
    for p in &repros {
        let name = wbfuzz::bugs::Bug::of_reproducer(p).map(|b| b.name());
        let one = std::slice::from_ref(p);
        let (x, y) = (digests(one, name), digests(one, name));
        assert!(!x.is_empty(), "no digest for {}", p.display());
        assert_eq!(x, y, "{} runs differently in two processes", p.display());
    }
}
