//! A run under shuttle's PCT or random scheduler or wbfuzz's PCT, re-expressed as schedule bytes, replays exactly:
//! same commit order, same outcomes, same divergence. This is what lets `wbfuzz hunt` search with
//! those schedulers and still save every finding as an ordinary script.

use wbfuzz::bugs::{Bug, Bugs};
use wbfuzz::concurrent::{run_concurrent, run_concurrent_recorded, Sched};
use wbfuzz::exec::Target;
use wbfuzz::generators::{generate, SplitMix, Swarm};

fn replays(bugs: Bugs, inputs: usize, seed: u64) -> usize {
    let mut rng = SplitMix::new(seed, 0);
    let mut buf = Vec::new();
    let mut diverged = 0;
    for k in 0..inputs {
        let mut input = generate(&mut rng, Target::Concurrent, Swarm::ALL, &mut buf);
        let s = rng.next_u64();
        let sched = match k % 3 {
            0 => Sched::Pct(s),
            1 => Sched::Random(s),
            _ => Sched::Priority {
                seed: s,
                depth: 3,
                steps: 20 * input.op_count() as u64,
            },
        };
        let (run, bytes) = run_concurrent_recorded(&input, bugs, sched);
        input.schedule = bytes;
        let again = run_concurrent(&input, bugs);
        assert_eq!(run.commit_log, again.commit_log, "input {k} ({sched:?})");
        assert_eq!(run.trace, again.trace, "input {k} ({sched:?})");
        assert_eq!(run.verdict, again.verdict, "input {k} ({sched:?})");
        diverged += usize::from(run.diverged());
    }
    diverged
}

#[test]
fn recorded_schedules_replay_exactly() {
    assert_eq!(replays(Bugs::NONE, 120, 11), 0);
}

#[test]
fn recorded_findings_replay_exactly() {
    // With the race switches on some of these runs diverge; the bytes must reproduce each one.
    let bugs = Bugs::only(Bug::StaleMapping)
        .with(Bug::FaultHoleRace)
        .with(Bug::PutFolioAfterUnlock);
    let diverged = replays(bugs, 400, 12);
    assert!(diverged > 0, "no run diverged: the test checks nothing");
}

/// The hunt's concurrent inputs are long (2 to 4 threads of 8 to 12 ops, one more op where a
/// crash was inserted), the baseline's keep the old short form (1 to 12 ops, threads cut short).
#[test]
fn generated_concurrent_inputs_have_long_threads_and_the_baseline_does_not() {
    use wbfuzz::generators::generate_uniform;
    let mut rng = SplitMix::new(5, 0);
    let mut buf = Vec::new();
    let mut short = 0;
    for _ in 0..200 {
        let input = generate(&mut rng, Target::Concurrent, Swarm::ALL, &mut buf);
        assert!((2..=4).contains(&input.threads.len()));
        for t in &input.threads {
            assert!((8..=13).contains(&t.len()), "a thread of {} ops", t.len());
        }
        let base = generate_uniform(&mut rng, Target::Concurrent, &mut buf);
        short += base.threads.iter().filter(|t| t.len() < 8).count();
    }
    assert!(short > 100, "{short} short baseline threads");
}
