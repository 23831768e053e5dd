//! The minimizer on race findings: no-op ops and empty threads go, and removing ops keeps the
//! failing interleaving of the rest (the result still fails with its switch on).

use wbfuzz::bugs::{Bug, Bugs};
use wbfuzz::exec;
use wbfuzz::input::script;
use wbfuzz::minimize::{self, is_noop};

/// A `completion-no-bump` finding as `wbfuzz hunt --bug completion-no-bump --seed 1` saved it
/// before the minimizer dropped no-ops: empty writes, `complete 0`, an empty thread, a
/// 22-byte schedule.
const RAW: &str = "\
geometry block=1024 folio-pages=1 capacity=98 max-size=0x2000
policy keep-dirty
file f0 jdata
file f1
thread 0
  complete 1
  write f0 0x0 0x0
  write f1 0x0 0x1 sync
  write f1 0x400 0x1
thread 1
thread 2
  falloc f0 0x0 0x0
  zero f0 0x0 0x1
  flush f1 0x1000 0x1
  write f0 0x0 0x0
thread 3
  complete 0
  reclaim f0 0
  flush f1 0x0 0x0
  repair
  write f1 0x0 0x593
  evict f1
schedule 04 0a 00 1b 16 12 1a 18 12 1a 18 10 08 04 00 15 10 0b 02 0a 03 05
";

#[test]
fn race_finding_loses_noops_empty_threads_and_keeps_failing() {
    let bugs = Bugs::only(Bug::CompletionNoBump);
    let input = script::parse(RAW).expect("the script parses");
    assert!(
        exec::run_input(&input, bugs).diverged(),
        "the raw finding fails with its switch on"
    );
    let small = minimize::minimize(&input, bugs, minimize::DEFAULT_BUDGET);
    let text = script::print(&small);
    assert!(
        exec::run_input(&small, bugs).diverged(),
        "minimized input no longer fails:\n{text}"
    );
    assert!(
        !exec::run_input(&small, Bugs::NONE).diverged(),
        "minimized input fails with the switch off:\n{text}"
    );
    assert!(
        small.threads.iter().flatten().all(|op| !is_noop(op)),
        "a no-op survived:\n{text}"
    );
    assert!(
        small.threads.iter().all(|t| !t.is_empty()),
        "an empty thread survived:\n{text}"
    );
    assert!(small.op_count() <= 6, "more than 6 ops:\n{text}");
}

/// Findings as the hunt makes them (generated inputs, its scheduling strategies, the schedule
/// recorded as bytes), minimized: each still fails, and has no no-op op and no empty thread
/// left (length shrinking must not make one, and removing a thread's last ops removes it).
#[test]
fn hunt_findings_minimize_without_noops_or_empty_threads() {
    use wbfuzz::exec::Target;
    use wbfuzz::generators::{generate, SplitMix, Swarm};
    use wbfuzz::hunt::{run_hunt_input, Baseline};
    for bug in [
        Bug::PunchFaultWindow,
        Bug::RetrySkipsWait,
        Bug::ReclaimUnlockedCheck,
    ] {
        let bugs = Bugs::only(bug);
        // The seed whose reclaim-unlocked-check finding kept an empty thread before the fix.
        let seed = 1001;
        let mut rng = SplitMix::new(seed, 0);
        let mut buf = Vec::new();
        let found = (0..20_000).find_map(|_| {
            let mut input = generate(&mut rng, Target::Concurrent, Swarm::ALL, &mut buf);
            let run = run_hunt_input(bugs, Baseline::Bytes, &mut rng, &mut input);
            run.diverged().then_some(input)
        });
        let input = found.unwrap_or_else(|| panic!("{bug} not found with seed {seed}"));
        let small = minimize::minimize(&input, bugs, minimize::DEFAULT_BUDGET);
        let text = script::print(&small);
        assert!(
            exec::run_input(&small, bugs).diverged(),
            "{bug}: no longer fails:\n{text}"
        );
        assert!(
            small.threads.iter().flatten().all(|op| !is_noop(op)),
            "{bug}: a no-op survived:\n{text}"
        );
        assert!(
            small.threads.iter().all(|t| !t.is_empty()),
            "{bug}: an empty thread survived:\n{text}"
        );
    }
}
