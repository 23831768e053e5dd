//! The distilled corpus (`corpus/distilled/`, made by `wbfuzz corpus distill` from a bug-free
//! guided hunt): it replays clean, and with a hard race switch on it catches the race without the
//! switch's own reproducer (the corpus was distilled with every switch off; nothing in it was
//! picked by hand). Inputs are replayed in parallel with rayon.

use rayon::prelude::*;
use std::path::{Path, PathBuf};
use wbfuzz::bugs::{Bug, Bugs};
use wbfuzz::exec;
use wbfuzz::report;

fn distilled() -> Vec<(PathBuf, reference::Input)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../corpus/distilled");
    let mut paths: Vec<PathBuf> = std::fs::read_dir(&dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|x| x == "wbf"))
                .collect()
        })
        .unwrap_or_default();
    paths.sort();
    paths
        .into_iter()
        .map(|p| {
            let input = exec::load(&p, None).unwrap_or_else(|e| panic!("{e}"));
            (p, input)
        })
        .collect()
}

#[test]
fn distilled_corpus_replays_clean() {
    let corpus = distilled();
    assert!(
        corpus.len() >= 20,
        "corpus/distilled/ holds {} scripts; regenerate it with `wbfuzz corpus distill`",
        corpus.len()
    );
    let concurrent = corpus.iter().filter(|(_, i)| i.threads.len() > 1).count();
    assert!(
        concurrent > 0 && concurrent < corpus.len(),
        "both targets are distilled"
    );
    let failures: Vec<String> = corpus
        .par_iter()
        .filter_map(|(p, input)| {
            let run = exec::run_input(input, Bugs::NONE);
            (!run.ok()).then(|| report::render(&p.display().to_string(), input, Bugs::NONE, &run))
        })
        .collect();
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// The hard race switches the distilled corpus must catch at least three of.
const RACES: [Bug; 4] = [
    Bug::PunchFaultWindow,
    Bug::ReclaimUnlockedCheck,
    Bug::CompletionNoBump,
    Bug::RetrySkipsWait,
];

#[test]
fn distilled_corpus_catches_hard_races() {
    let corpus = distilled();
    let caught: Vec<(Bug, Option<&PathBuf>)> = RACES
        .iter()
        .map(|&bug| {
            let hit = corpus
                .par_iter()
                .find_first(|(_, input)| exec::run_input(input, Bugs::only(bug)).diverged())
                .map(|(p, _)| p);
            (bug, hit)
        })
        .collect();
    let n = caught.iter().filter(|(_, h)| h.is_some()).count();
    let table: Vec<String> = caught
        .iter()
        .map(|(b, h)| {
            format!(
                "{b}: {}",
                h.map_or("missed".into(), |p| p.display().to_string())
            )
        })
        .collect();
    assert!(
        n >= 3,
        "caught {n} of {}:\n{}",
        RACES.len(),
        table.join("\n")
    );
}
