//! Crashes in concurrent runs and torn IOs (SPEC.md "Durability"): a crash on any thread,
//! falling between two steps of another thread's op, replayed and judged right after the cut;
//! torn landings in both models, sequentially and concurrently; the minimizer keeps crashes.

use reference::{Op, Step};
use wbfuzz::bugs::{Bug, Bugs};
use wbfuzz::concurrent::{run_concurrent, run_concurrent_recorded, Sched};
use wbfuzz::exec;
use wbfuzz::input::script;
use wbfuzz::minimize;

const HEAD: &str = "\
geometry block=1024 folio-pages=1 capacity=64 max-size=0x10000
policy keep-dirty
file f0
";

fn parse(body: &str) -> reference::Input {
    script::parse(&format!("{HEAD}{body}")).expect("the test script parses")
}

/// Index in the log of `step`, if present.
fn at(log: &[Step], step: Step) -> Option<usize> {
    log.iter().position(|&s| s == step)
}

/// Thread 0 fallocates two folios, writes them and fsyncs (#3: two writebacks, then two
/// waits); thread 1 faults both folios in (so that it gets going late) and crashes (#6). Under shuttle's random scheduler some seeds put the cut inside
/// the fsync: after one of its steps and before its commit. Every run agrees with the switches
/// off (the fsync goes on after the mount on the recovered state); with `convert-at-submit` on,
/// a cut that catches an IO in flight brings back Written blocks that never got their data.
#[test]
fn a_crash_between_two_steps_of_an_fsync_is_replayed_and_judged() {
    let input = parse(
        "thread 0\n  falloc f0 0x0 0x2000\n  write f0 0x0 0x2000\n  fsync f0\n\
         thread 1\n  mread f0 0x0 0x1\n  mread f0 0x1000 0x1\n  crash\n",
    );
    let mut inside = 0;
    let mut found = 0;
    for seed in 0..600 {
        let (run, bytes) = run_concurrent_recorded(&input, Bugs::NONE, Sched::Random(seed));
        assert!(run.ok(), "seed {seed} diverged with every switch off");
        let log = &run.commit_log;
        let (Some(fb), Some(c), Some(fc)) = (
            at(log, Step::Begin { seq: 3 }),
            at(log, Step::Op { seq: 6 }),
            at(log, Step::Op { seq: 3 }),
        ) else {
            panic!("seed {seed}: the fsync or the crash did not commit");
        };
        let wrote = fb < c
            && log[fb..c]
                .iter()
                .any(|s| matches!(s, Step::Writeback { seq: 3, .. }));
        if wrote && c < fc {
            inside += 1;
            // The recorded bytes replay the very interleaving.
            let mut again = input.clone();
            again.schedule = bytes;
            assert_eq!(run_concurrent(&again, Bugs::NONE).commit_log, *log);
        }
        if run_concurrent_recorded(
            &input,
            Bugs::only(Bug::ConvertAtSubmit),
            Sched::Random(seed),
        )
        .0
        .diverged()
        {
            found += 1;
        }
    }
    assert!(inside > 0, "no seed put the crash inside the fsync");
    assert!(found > 0, "convert-at-submit was never found");
}

/// A torn IO, in a sequential and in a concurrent run (thread 1 crashes after thread 0's
/// flush: with no schedule bytes thread 0 runs first). Blocks 0-3 hold op 1's bytes, fsynced;
/// op 3 overwrites them, op 4 submits one IO, and `crash 0x0 torn 0x1 0x5` lands its block
/// slots 0 and 2 only (tear bits 0-3 = 0b0101). By hand: the blocks stay Written, the size
/// 0x1000 (fsynced), and the read after the mount returns op 3's bytes in blocks 0 and 2 and
/// op 1's in blocks 1 and 3.
#[test]
fn a_torn_overwrite_reads_back_mixed_in_both_models() {
    use reference::pattern::pattern;
    let ops = "  write f0 0x0 0x1000\n  fsync f0\n  write f0 0x0 0x1000\n  flush f0 0x0 0x1000\n";
    let want = [
        pattern(3, 0, 1024),
        pattern(1, 1024, 1024),
        pattern(3, 2048, 1024),
        pattern(1, 3072, 1024),
    ]
    .concat();
    for (input, read_seq) in [
        (
            parse(&format!(
                "thread 0\n{ops}  crash 0x0 torn 0x1 0x5\n  read f0 0x0 0x1000\n"
            )),
            6,
        ),
        (
            parse(&format!(
                "thread 0\n{ops}thread 1\n  crash 0x0 torn 0x1 0x5\n  read f0 0x0 0x1000\n"
            )),
            6,
        ),
    ] {
        let run = exec::run_input(&input, Bugs::NONE);
        assert!(run.ok(), "{}", script::print(&input));
        let read = run
            .trace
            .iter()
            .find(|e| e.seq == read_seq)
            .expect("the read ran");
        assert_eq!(
            read.reference,
            wbfuzz::oracle::Recorded::from(&reference::Outcome::Data(want.clone()))
        );
        if input.threads.len() > 1 {
            let torn = Step::Torn {
                seq: 5,
                file: 0,
                folio: 0,
                landed: 0b0101,
            };
            assert!(run.commit_log.contains(&torn), "{:?}", run.commit_log);
        }
    }
}

/// A torn IO over Unwritten blocks: correct code never converts (the IO did not complete), so
/// both switches still show, sequentially and concurrently: `convert-at-submit` brings back the
/// blocks that did not land as Written over stale bytes, `size-before-data` a size over data
/// that never completed.
#[test]
fn torn_landings_still_find_both_crash_switches() {
    let seq = "thread 0\n  write f0 0x0 0x1000\n  flush f0 0x0 0x1000\n  crash 0x0 torn 0x1 0x3\n  read f0 0x0 0x1000\n";
    let conc = "thread 0\n  write f0 0x0 0x1000\n  flush f0 0x0 0x1000\nthread 1\n  crash 0x0 torn 0x1 0x3\n  read f0 0x0 0x1000\n";
    for body in [seq, conc] {
        let input = parse(body);
        assert!(exec::run_input(&input, Bugs::NONE).ok(), "{body}");
        for bug in [Bug::ConvertAtSubmit, Bug::SizeBeforeData] {
            assert!(
                exec::run_input(&input, Bugs::only(bug)).diverged(),
                "{bug} not found by\n{body}"
            );
        }
    }
}

/// The minimizer shrinks a padded concurrent crash finding and keeps its crash (the failure
/// needs the cut), with the interleaving kept.
#[test]
fn the_minimizer_keeps_the_crash_point() {
    let bugs = Bugs::only(Bug::ConvertAtSubmit);
    let input = parse(
        "thread 0\n  read f0 0x0 0x10\n  falloc f0 0x0 0x1000\n  write f0 0x0 0x1000\n  \
         mread f0 0x0 0x10\n  flush f0 0x0 0x1000\n  read f0 0x0 0x1000\n\
         thread 1\n  reclaim f0 3\n  crash 0x0 torn 0x0 0x0\n  complete 1\n  read f0 0x0 0x1000\n\
         thread 2\n  read f0 0x0 0x1\n",
    );
    assert!(exec::run_input(&input, bugs).diverged());
    let small = minimize::minimize(&input, bugs, minimize::DEFAULT_BUDGET);
    let text = script::print(&small);
    assert!(exec::run_input(&small, bugs).diverged(), "{text}");
    assert!(!exec::run_input(&small, Bugs::NONE).diverged(), "{text}");
    assert!(
        small
            .threads
            .iter()
            .flatten()
            .any(|op| matches!(op, Op::Crash { .. })),
        "the crash was dropped:\n{text}"
    );
    assert!(small.op_count() < input.op_count(), "{text}");
}

/// The mid-fsync reproducers in corpus/bugs really cut the fsync in two: with every switch off
/// the log holds, in this order, the fsync's writeback of folio 0, the crash losing that IO,
/// the crash's commit and only then the fsync's commit (and both models agree).
#[test]
fn the_mid_fsync_reproducers_cut_the_fsync() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../corpus/bugs");
    for name in [
        "convert-at-submit-mid-fsync.wbf",
        "size-before-data-mid-fsync.wbf",
    ] {
        let input = exec::load(&dir.join(name), None).expect("the reproducer loads");
        let run = exec::run_input(&input, Bugs::NONE);
        assert!(run.ok(), "{name}");
        let log = &run.commit_log;
        let order = [
            Step::Writeback {
                seq: 2,
                file: 0,
                folio: 0,
            },
            Step::Lost {
                seq: 5,
                file: 0,
                folio: 0,
            },
            Step::Op { seq: 5 },
            Step::Op { seq: 2 },
        ]
        .map(|s| at(log, s).unwrap_or_else(|| panic!("{name}: no `{s}` in the log")));
        assert!(order.windows(2).all(|w| w[0] < w[1]), "{name}: {order:?}");
    }
}
