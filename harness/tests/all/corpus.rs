//! Replays the checked-in corpus: every seed input and regression script must pass with all bug
//! switches off, and every catalogued bug's reproducer must fail with its switch on and pass with
//! it off. Files are replayed in parallel with rayon; a failure names the file.

use rayon::prelude::*;
use std::path::{Path, PathBuf};
use wbfuzz::bugs::{Bug, Bugs};
use wbfuzz::exec::{self, Target};
use wbfuzz::report;

fn corpus_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../corpus")
}

fn files_in(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = match std::fs::read_dir(dir) {
        Ok(rd) => rd
            .filter_map(|e| e.ok())
            .map(|e| e.path())
            .filter(|p| p.is_file())
            .collect(),
        Err(_) => Vec::new(),
    };
    v.retain(|p| {
        !p.file_name()
            .is_some_and(|n| n.to_string_lossy().starts_with('.'))
    });
    v.retain(|p| p.extension().is_none_or(|e| e != "md"));
    v.sort();
    v
}

fn bug_of(path: &Path) -> Option<Bug> {
    Bug::of_reproducer(path)
}

fn replay_clean(paths: Vec<PathBuf>, target: Option<Target>) -> Vec<String> {
    paths
        .par_iter()
        .filter_map(|p| {
            let input = match exec::load(p, target) {
                Ok(i) => i,
                Err(e) => return Some(format!("{e}")),
            };
            let run = exec::run_input(&input, Bugs::NONE);
            if let Some(why) = run.rejected() {
                return Some(format!("{}: rejected ({why}): checks nothing", p.display()));
            }
            (!run.ok()).then(|| report::render(&p.display().to_string(), &input, Bugs::NONE, &run))
        })
        .collect()
}

#[test]
fn seed_corpora_and_regressions_pass() {
    let root = corpus_dir();
    let mut failures = Vec::new();
    for t in Target::ALL {
        failures.extend(replay_clean(files_in(&root.join(t.name())), Some(t)));
    }
    failures.extend(replay_clean(files_in(&root.join("regressions")), None));
    assert!(
        failures.is_empty(),
        "{} corpus files diverged:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn every_bug_has_a_reproducer_that_fails_on_and_passes_off() {
    let files = files_in(&corpus_dir().join("bugs"));
    let mut covered = Vec::new();
    let problems: Vec<String> = files
        .par_iter()
        .filter_map(|p| {
            let Some(bug) = bug_of(p) else {
                return Some(format!("{}: file name names no bug switch", p.display()));
            };
            let input = match exec::load(p, None) {
                Ok(i) => i,
                Err(e) => return Some(e.to_string()),
            };
            let off = exec::run_input(&input, Bugs::NONE);
            if let Some(why) = off.rejected() {
                return Some(format!("{}: rejected ({why}): checks nothing", p.display()));
            }
            if !off.ok() {
                return Some(format!(
                    "{} diverges with every switch off:\n{}",
                    p.display(),
                    report::render(&p.display().to_string(), &input, Bugs::NONE, &off)
                ));
            }
            let on = exec::run_input(&input, Bugs::only(bug));
            if !on.diverged() {
                return Some(format!(
                    "{} passes with `{bug}` on: it reproduces nothing",
                    p.display()
                ));
            }
            None
        })
        .collect();
    for p in &files {
        if let Some(b) = bug_of(p) {
            covered.push(b);
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    for b in Bug::ALL {
        assert!(
            covered.contains(&b),
            "no reproducer in corpus/bugs/ for `{b}`"
        );
    }
}
