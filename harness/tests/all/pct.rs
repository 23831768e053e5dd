//! wbfuzz's PCT scheduler (`schedule::Pct`): deterministic, and its change points reach
//! interleavings that shuttle's PCT, made for a single execution as the hunt makes schedulers,
//! never reaches (it draws change points only from its second iteration on).

use std::collections::HashSet;
use wbfuzz::bugs::{Bug, Bugs};
use wbfuzz::concurrent::{run_concurrent_recorded, run_concurrent_with, Sched};
use wbfuzz::input::script;

/// The completion-no-bump reproducer's ops without their schedule: the write of thread 0 must
/// stop between its mapping and its folio while thread 1's eviction writes back, completes and
/// drops the folio.
const RACE: &str = "# wbfuzz script
geometry block=1024 folio-pages=1 capacity=98 max-size=0x2000
policy keep-dirty
file f0
thread 0
  write f0 0x0 0x1
thread 1
  write f0 0x0 0x2
  evict f0
";

fn pct(seed: u64, depth: u32) -> Sched {
    Sched::Priority {
        seed,
        depth,
        steps: 60,
    }
}

#[test]
fn same_seed_same_schedule() {
    let input = script::parse(RACE).expect("parses");
    for seed in 0..20 {
        let (a, bytes_a) = run_concurrent_recorded(&input, Bugs::NONE, pct(seed, 3));
        let (b, bytes_b) = run_concurrent_recorded(&input, Bugs::NONE, pct(seed, 3));
        assert_eq!(a.commit_log, b.commit_log, "seed {seed}");
        assert_eq!(bytes_a, bytes_b, "seed {seed}");
    }
}

#[test]
fn change_points_reach_what_single_execution_shuttle_pct_cannot() {
    let input = script::parse(RACE).expect("parses");
    let bugs = Bugs::only(Bug::CompletionNoBump);
    let logs = |sched: &dyn Fn(u64) -> Sched| {
        let mut seen = HashSet::new();
        let mut found = 0;
        for seed in 0..400 {
            let run = run_concurrent_with(&input, bugs, sched(seed));
            found += usize::from(run.diverged());
            seen.insert(format!("{:?}", run.commit_log));
        }
        (seen.len(), found)
    };
    let (shuttle_orders, shuttle_found) = logs(&Sched::Pct);
    let (flat_orders, flat_found) = logs(&|s| pct(s, 1));
    let (deep_orders, deep_found) = logs(&|s| pct(s, 3));
    // Without change points a task runs until it blocks or yields: only the priority order of
    // the two threads is drawn.
    assert!(
        shuttle_orders <= 2 && flat_orders <= 2,
        "{shuttle_orders} {flat_orders}"
    );
    assert_eq!((shuttle_found, flat_found), (0, 0));
    assert!(
        deep_orders > 10,
        "{deep_orders} commit orders with change points"
    );
    assert!(
        deep_found > 0,
        "PCT depth 3 never stopped the write inside the eviction"
    );
}
