//! Deterministic-scheduler tests: the three concurrency-only bug switches produce their
//! corruption under some schedule, and never without the switch; no schedule deadlocks. Each
//! shuttle run is inside a `ShuttleScope`, so the implementation's locks are shuttle locks.

use reference::{pattern, Config, FileSpec, Geometry, Observe, Op, Policy};
use std::sync::atomic::{AtomicUsize, Ordering};
use wbfuzz::bugs::{Bug, Bugs};
use wbfuzz::fs::sync::{thread, Arc};
use wbfuzz::fs::Fs;
use wbfuzz::generators::{random_op, OpShape, SplitMix, Swarm};

fn config(jdata: bool) -> Config {
    Config {
        geometry: Geometry {
            block_size: 1024,
            folio_pages: 1,
            capacity_blocks: 64,
            max_file_size: 64 << 10,
        },
        policy: Policy::KeepDirty,
        files: vec![FileSpec { jdata }],
    }
}

/// Runs `scenario` under many random schedules; returns in how many the final state was wrong.
/// Each test passes its own counter (tests run in parallel).
fn bad_runs(
    bad: &'static AtomicUsize,
    bugs: Bugs,
    jdata: bool,
    scenario: fn(Arc<Fs>) -> Vec<u8>,
    want: fn() -> Vec<u8>,
) -> usize {
    bad.store(0, Ordering::SeqCst);
    let _scope = wbfuzz::fs::sync::ShuttleScope::enter();
    // A fixed seed: the same schedules on every run (determinism), enough of them that each
    // race shows up in many (FS_DEBUG=1 prints the bad ones).
    shuttle::check_random_with_seed(
        move || {
            let fs = Arc::new(Fs::new(&config(jdata), bugs));
            let got = scenario(fs.clone());
            if got != want() || !fs.check_invariants().is_empty() {
                if std::env::var("FS_DEBUG").is_ok() {
                    let pos = got.iter().zip(want()).position(|(a, b)| *a != b);
                    eprintln!(
                        "bad: len {} first diff {pos:?} inv {:?}",
                        got.len(),
                        fs.check_invariants()
                    );
                }
                bad.fetch_add(1, Ordering::SeqCst);
            }
        },
        0x5EED,
        1000,
    );
    bad.load(Ordering::SeqCst)
}

fn stale_mapping(fs: Arc<Fs>) -> Vec<u8> {
    fs.apply(
        1,
        &Op::Write {
            file: 0,
            off: 0,
            len: 4096,
            sync: false,
        },
    );
    fs.apply(
        2,
        &Op::Flush {
            file: 0,
            off: 0,
            len: 4096,
        },
    );
    let a = {
        let fs = fs.clone();
        thread::spawn(move || {
            fs.apply(
                3,
                &Op::Write {
                    file: 0,
                    off: 100,
                    len: 10,
                    sync: false,
                },
            );
        })
    };
    let b = {
        let fs = fs.clone();
        thread::spawn(move || {
            fs.apply(4, &Op::CompleteIo { n: 1 });
            fs.apply(5, &Op::Reclaim { file: 0, folio: 0 });
        })
    };
    a.join().ok();
    b.join().ok();
    fs.apply(6, &Op::Fsync { file: 0 });
    fs.apply(7, &Op::EvictInode { file: 0 });
    fs.peek(0, 0, 4096)
}

fn stale_mapping_want() -> Vec<u8> {
    let mut v = pattern(1, 0, 4096);
    v[100..110].copy_from_slice(&pattern(3, 100, 10));
    v
}

fn fault_hole(fs: Arc<Fs>) -> Vec<u8> {
    fs.apply(
        1,
        &Op::Truncate {
            file: 0,
            size: 4096,
        },
    );
    let a = {
        let fs = fs.clone();
        thread::spawn(move || {
            fs.apply(
                2,
                &Op::MmapRead {
                    file: 0,
                    off: 0,
                    len: 4096,
                },
            );
        })
    };
    let b = {
        let fs = fs.clone();
        thread::spawn(move || {
            fs.apply(
                3,
                &Op::DirectWrite {
                    file: 0,
                    off: 0,
                    len: 4096,
                },
            );
        })
    };
    a.join().ok();
    b.join().ok();
    fs.peek(0, 0, 4096)
}

fn fault_hole_want() -> Vec<u8> {
    pattern(3, 0, 4096)
}

fn put_after_unlock(fs: Arc<Fs>) -> Vec<u8> {
    let a = {
        let fs = fs.clone();
        thread::spawn(move || {
            fs.apply(
                1,
                &Op::Write {
                    file: 0,
                    off: 0,
                    len: 4096,
                    sync: false,
                },
            );
        })
    };
    let b = {
        let fs = fs.clone();
        thread::spawn(move || {
            // Memory pressure: reclaim keeps trying while the write runs.
            for _ in 0..16 {
                fs.apply(2, &Op::Reclaim { file: 0, folio: 0 });
            }
        })
    };
    a.join().ok();
    b.join().ok();
    fs.apply(3, &Op::Fsync { file: 0 });
    fs.apply(4, &Op::EvictInode { file: 0 });
    fs.peek(0, 0, 4096)
}

fn put_after_unlock_want() -> Vec<u8> {
    pattern(1, 0, 4096)
}

#[test]
fn stale_mapping_found_only_with_switch() {
    static BAD: AtomicUsize = AtomicUsize::new(0);
    assert_eq!(
        bad_runs(&BAD, Bugs::NONE, false, stale_mapping, stale_mapping_want),
        0
    );
    assert!(
        bad_runs(
            &BAD,
            Bugs::only(Bug::StaleMapping),
            false,
            stale_mapping,
            stale_mapping_want
        ) > 0
    );
}

#[test]
fn fault_hole_race_found_only_with_switch() {
    static BAD: AtomicUsize = AtomicUsize::new(0);
    assert_eq!(
        bad_runs(&BAD, Bugs::NONE, false, fault_hole, fault_hole_want),
        0
    );
    assert!(
        bad_runs(
            &BAD,
            Bugs::only(Bug::FaultHoleRace),
            false,
            fault_hole,
            fault_hole_want
        ) > 0
    );
}

#[test]
fn put_folio_after_unlock_found_only_with_switch() {
    static BAD: AtomicUsize = AtomicUsize::new(0);
    assert_eq!(
        bad_runs(
            &BAD,
            Bugs::NONE,
            true,
            put_after_unlock,
            put_after_unlock_want
        ),
        0
    );
    assert!(
        bad_runs(
            &BAD,
            Bugs::only(Bug::PutFolioAfterUnlock),
            true,
            put_after_unlock,
            put_after_unlock_want
        ) > 0
    );
}

/// Two files, offsets in the first 12 blocks of 512 bytes, lengths up to 8 blocks: ops of
/// three threads collide on the same folios.
const SHAPE: OpShape = OpShape {
    files: 2,
    granule: 512,
    folio: 512,
    span: 12 * 512,
    max_len: 8 * 512,
    unaligned: true,
    kinds: Swarm::ALL,
};

#[test]
fn random_concurrent_ops_never_deadlock_and_settle_clean() {
    // FS_SHUTTLE_SEEDS / FS_SHUTTLE_ITERS scale this up for a longer soak.
    let env = |k: &str, d: u64| {
        std::env::var(k)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(d)
    };
    let (seeds, iters) = (
        env("FS_SHUTTLE_SEEDS", 6),
        env("FS_SHUTTLE_ITERS", 100) as usize,
    );
    for seed in 1..=seeds {
        for policy in [Policy::KeepDirty, Policy::Invalidate] {
            let _scope = wbfuzz::fs::sync::ShuttleScope::enter();
            shuttle::check_random_with_seed(
                move || {
                    let cfg = Config {
                        geometry: Geometry {
                            block_size: 512,
                            folio_pages: 1 + (seed % 2) as u32,
                            capacity_blocks: 48,
                            max_file_size: 64 << 10,
                        },
                        policy,
                        files: vec![
                            FileSpec { jdata: false },
                            FileSpec {
                                jdata: seed % 3 == 0,
                            },
                        ],
                    };
                    let fs = Arc::new(Fs::new(&cfg, Bugs::NONE));
                    let hs: Vec<_> = (0..3u64)
                        .map(|t| {
                            let fs = fs.clone();
                            thread::spawn(move || {
                                let mut r = SplitMix::new(seed, t);
                                for i in 0..12 {
                                    let op = random_op(&mut r, &SHAPE).expect("kinds enabled");
                                    fs.apply(t as u32 * 100 + i + 1, &op);
                                }
                            })
                        })
                        .collect();
                    for h in hs {
                        h.join().expect("no panic");
                    }
                    fs.apply(1000, &Op::RepairAllocBtree);
                    for f in 0..2 {
                        fs.apply(1000, &Op::Fsync { file: f });
                        fs.apply(1000, &Op::EvictInode { file: f });
                    }
                    fs.apply(1000, &Op::CompleteIo { n: u32::MAX });
                    let v = fs.check_invariants();
                    assert!(v.is_empty(), "{v:?}");
                },
                seed,
                iters,
            );
        }
    }
}
