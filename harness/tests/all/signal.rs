//! The feedback signal, the structural mutations and the distiller's set cover.

use wbfuzz::bugs::Bugs;
use wbfuzz::concurrent::{run_concurrent_signal, Sched};
use wbfuzz::distill::{distill, greedy_cover, Bounds};
use wbfuzz::exec::Target;
use wbfuzz::generators::{generate, SplitMix, Swarm};
use wbfuzz::input::script;
use wbfuzz::mutate::mutate;
use wbfuzz::oracle::run_sequential_signal;
use wbfuzz::signal::{Features, SignalMap};

fn parse(text: &str) -> reference::Input {
    script::parse(text).unwrap_or_else(|e| panic!("{e}"))
}

/// The same input reaches the same features in every run; different behaviour reaches
/// different ones.
#[test]
fn features_are_deterministic_and_tell_runs_apart() {
    let a = parse("geometry block=4096 folio-pages=1 capacity=64 max-size=0x10000\nfile f0\nthread 0\n  write f0 0x0 0x1000\n  flush f0 0x0 0x1000\n");
    let b = parse("geometry block=4096 folio-pages=1 capacity=64 max-size=0x10000\nfile f0\nthread 0\n  write f0 0x0 0x1000\n  read f0 0x0 0x1000\n  truncate f0 0x10\n  truncate f0 0x10\n  truncate f0 0x2000\n");
    let (mut fa, mut fa2, mut fb) = (Features::new(), Features::new(), Features::new());
    assert!(run_sequential_signal(&a, Bugs::NONE, &mut fa).ok());
    assert!(run_sequential_signal(&a, Bugs::NONE, &mut fa2).ok());
    assert!(run_sequential_signal(&b, Bugs::NONE, &mut fb).ok());
    assert_eq!(fa.indices(), fa2.indices());
    assert_ne!(fa.indices(), fb.indices());
    let mut map = SignalMap::new();
    assert_eq!(map.merge(&mut fa), fa.len());
    assert_eq!(map.novel(&mut fa2), 0, "a replay adds nothing");
    assert!(map.novel(&mut fb) > 0, "a read after a write is new");
}

/// Two interleavings of the same concurrent input reach different interleaving features, and
/// one interleaving the same features every time.
#[test]
fn concurrent_features_follow_the_interleaving() {
    let text = |schedule: &str| {
        format!(
            "geometry block=1024 folio-pages=1 capacity=98 max-size=0x2000\nfile f0\nthread 0\n  write f0 0x0 0x1\nthread 1\n  write f0 0x0 0x2\n  evict f0\nschedule {schedule}\n"
        )
    };
    let run = |s: &str| {
        let mut f = Features::new();
        let (r, _) =
            run_concurrent_signal(&parse(&text(s)), Bugs::NONE, Sched::Bytes, false, &mut f);
        assert!(r.ok());
        f
    };
    // The completion-no-bump reproducer's schedule, and thread 0 running first to its end.
    let mut racy = run("02 00 00 12 00 0a 17 10 02 07 05 19");
    let mut again = run("02 00 00 12 00 0a 17 10 02 07 05 19");
    let mut serial = run("0f");
    assert_eq!(racy.indices(), again.indices());
    let mut map = SignalMap::new();
    map.merge(&mut serial);
    assert!(
        map.novel(&mut racy) > 0,
        "the race reaches features a serial run does not"
    );
}

/// Mutated inputs stay valid and keep their target.
#[test]
fn mutations_keep_inputs_valid() {
    let mut rng = SplitMix::new(7, 0);
    let mut buf = Vec::new();
    for target in Target::ALL {
        for n in 0..1000 {
            let mut a = generate(&mut rng, target, Swarm::ALL, &mut buf);
            let mut b = generate(&mut rng, target, Swarm::ALL, &mut buf);
            // Empty schedules and donors without threads are edge cases the hunt meets.
            if n % 7 == 0 {
                a.schedule.clear();
                b.threads.clear();
            }
            let threads = a.threads.len();
            for _ in 0..12 {
                mutate(&mut rng, &mut a, Some(&b));
            }
            assert!(a.config.geometry.validate().is_ok());
            assert_eq!(a.threads.len() > 1, threads > 1, "target kept");
            assert!(a.threads.len() <= reference::geometry::MAX_THREADS);
            for op in a.threads.iter().flatten() {
                assert!(op
                    .file()
                    .is_none_or(|f| (f as usize) < a.config.files.len()));
                assert!(threads == 1 || !matches!(op, reference::Op::Crash { .. }));
            }
            // A mutated input is still an ordinary script.
            let printed = script::print(&a);
            assert_eq!(parse(&printed), a);
        }
    }
}

/// The cover takes sets by features per cost and leaves out a redundant one; a refused set is
/// replaced by the next best.
#[test]
fn greedy_cover_drops_redundant_sets() {
    // Set 2 covers what sets 0 and 1 cover, but costs more than both together.
    let sets = vec![vec![1, 2], vec![3], vec![1, 2, 3]];
    let cost = vec![2, 1, 10];
    let taken = greedy_cover(&sets, &cost, |_| true);
    assert_eq!(taken, vec![(1, 1), (0, 2)]);
    let taken = greedy_cover(&sets, &cost, |i| i != 0);
    assert_eq!(taken, vec![(1, 1), (2, 2)]);
}

/// A duplicate adds nothing to the cover; every passing input is a candidate. (Failing inputs
/// are left out too, but since crashes run in concurrent inputs no input built without a bug
/// switch fails: only a step-bound rejection would, which no short input reaches.)
#[test]
fn distill_keeps_one_of_two_equal_inputs() {
    let ok = parse("geometry block=4096 folio-pages=1 capacity=64 max-size=0x10000\nfile f0\nthread 0\n  write f0 0x0 0x1000\n");
    let same = ok.clone();
    let bounds = Bounds {
        max_count: 10,
        max_bytes: 1 << 20,
    };
    let d = distill(&[ok.clone(), same], bounds);
    assert_eq!((d.candidates, d.failing), (2, 0));
    assert_eq!(d.kept.len(), 1, "the duplicate adds nothing");
    assert_eq!(d.kept[0].input, ok);
    assert_eq!(d.covered, d.signal);
}
