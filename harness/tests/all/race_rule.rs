//! The race rule of threaded kernel runs: hand-built inputs with the decision derived from the
//! rule's text, and every generated racy input satisfying it.

use reference::{Config, FileSpec, Geometry, Input, Op, OpKind};
use wbfuzz::generators::{racy_kernel_input, SplitMix};
use wbfuzz::race_rule::{plan, Judgement, RuleError};

/// 1 KiB blocks, one-page (4 KiB) folios.
fn geometry() -> Geometry {
    Geometry {
        block_size: 1024,
        folio_pages: 1,
        capacity_blocks: 1024,
        max_file_size: 64 << 10,
    }
}

fn input(threads: Vec<Vec<Op>>) -> Input {
    Input {
        config: Config {
            geometry: geometry(),
            files: vec![FileSpec::default(), FileSpec::default()],
            ..Config::default()
        },
        threads,
        schedule: Vec::new(),
    }
}

fn write(file: u8, off: u64, len: u64) -> Op {
    Op::Write {
        file,
        off,
        len,
        sync: false,
    }
}

#[test]
fn writers_of_two_threads_on_one_folio_are_refused_with_the_folio_and_its_owner() {
    // Thread 0 writes bytes 0x100..0x200 (folio 0); thread 1's second op writes 0xf00..0x1100,
    // which touches folios 0 and 1: folio 0 belongs to thread 0.
    let i = input(vec![
        vec![write(0, 0x100, 0x100)],
        vec![Op::Fsync { file: 0 }, write(0, 0xf00, 0x200)],
    ]);
    let e = plan(&i).unwrap_err();
    assert_eq!(
        e,
        RuleError::SharedFolio {
            thread: 1,
            index: 1,
            file: 0,
            folio: 0,
            owner: 0
        }
    );
    assert_eq!(e.position(), (1, 1));
    assert!(e
        .to_string()
        .contains("f0 folio 0 is already written by thread 0"));
}

#[test]
fn disjoint_folios_are_exact_and_background_ops_go_anywhere() {
    let i = input(vec![
        vec![write(0, 0, 0x1000), Op::Reclaim { file: 0, folio: 1 }],
        vec![
            Op::MmapWrite {
                file: 0,
                off: 0x1000,
                len: 0x400,
            },
            Op::Flush {
                file: 0,
                off: 0,
                len: 0x10000,
            },
            Op::CompleteIo { n: 3 },
        ],
    ]);
    let p = plan(&i).expect("rule holds");
    assert_eq!(p.shared, vec![0]);
    assert_eq!(
        p.judgements,
        vec![
            vec![Judgement::Exact, Judgement::Background],
            vec![
                Judgement::Exact,
                Judgement::Background,
                Judgement::Background
            ],
        ]
    );
}

#[test]
fn reads_over_another_threads_folio_are_racy_and_others_exact() {
    // Thread 0 direct-writes folio 2. Thread 1 direct-writes folio 3, read-faults folio 2 (racy:
    // seed 001's window), reads folio 3 (only it writes there: exact), and reads bytes
    // 0x1800..0x2800, folios 1 and 2: racy, folio 2 is thread 0's.
    let i = input(vec![
        vec![Op::DirectWrite {
            file: 0,
            off: 0x2000,
            len: 0x1000,
        }],
        vec![
            Op::DirectWrite {
                file: 0,
                off: 0x3000,
                len: 0x400,
            },
            Op::MmapRead {
                file: 0,
                off: 0x2400,
                len: 0x10,
            },
            Op::Read {
                file: 0,
                off: 0x3000,
                len: 0x800,
            },
            Op::Read {
                file: 0,
                off: 0x1800,
                len: 0x1000,
            },
        ],
    ]);
    let p = plan(&i).expect("rule holds");
    assert_eq!(
        p.judgements[1],
        vec![
            Judgement::Exact,
            Judgement::RacyRead,
            Judgement::Exact,
            Judgement::RacyRead
        ]
    );
    assert_eq!(p.judgements[0], vec![Judgement::Exact]);
}

#[test]
fn direct_and_cached_writes_of_a_shared_file_stay_on_one_thread() {
    let dwrite = |off| Op::DirectWrite {
        file: 0,
        off,
        len: 0x1000,
    };
    let mwrite = |off| Op::MmapWrite {
        file: 0,
        off,
        len: 1,
    };
    // The kernel finding's shape: thread 1's write fault on page 4 and thread 0's direct write
    // of page 6 are page-disjoint, but a large folio can hold both.
    let i = input(vec![vec![dwrite(0x6000)], vec![mwrite(0x4000)]]);
    let e = plan(&i).unwrap_err();
    assert_eq!(
        e,
        RuleError::MixedDirectAndCached {
            thread: 1,
            index: 0,
            file: 0,
            direct: false,
            other: 0
        }
    );
    assert!(e
        .to_string()
        .contains("f0 is written directly by thread 0, so no other thread may write it through the page cache"));
    // The other way round, with punch and zero-range counted as page-cache writers.
    for cached in [
        write(0, 0x4000, 0x10),
        Op::PunchHole {
            file: 0,
            off: 0x4000,
            len: 0x10,
        },
        Op::ZeroRange {
            file: 0,
            off: 0x4000,
            len: 0x10,
            keep_size: true,
        },
    ] {
        let i = input(vec![
            vec![Op::Fsync { file: 0 }, cached],
            vec![dwrite(0x8000)],
        ]);
        assert!(
            matches!(
                plan(&i),
                Err(RuleError::MixedDirectAndCached {
                    thread: 1,
                    index: 0,
                    direct: true,
                    other: 0,
                    ..
                })
            ),
            "{:?}",
            plan(&i)
        );
    }
    // Allowed: one thread mixing both, direct writers on several threads, cached writers on
    // several threads, falloc anywhere, and each thread's own file.
    let falloc = Op::Fallocate {
        file: 0,
        off: 0x9000,
        len: 0x1000,
        keep_size: true,
    };
    for ok in [
        vec![
            vec![dwrite(0x6000), mwrite(0x4000)],
            vec![Op::Read {
                file: 0,
                off: 0,
                len: 1,
            }],
        ],
        vec![vec![dwrite(0x6000)], vec![dwrite(0x4000), falloc.clone()]],
        vec![vec![mwrite(0x6000)], vec![write(0, 0x4000, 1), falloc]],
        vec![
            vec![dwrite(0x6000)],
            vec![
                write(1, 0x6000, 1),
                Op::Read {
                    file: 0,
                    off: 0,
                    len: 1,
                },
            ],
        ],
    ] {
        assert!(plan(&input(ok.clone())).is_ok(), "{ok:?}");
    }
}

#[test]
fn a_fault_touches_only_the_folio_holding_its_offset() {
    // The spec clips a fault to its folio: an mwrite of 3 folios' length at 0 owns folio 0 only,
    // so thread 1 may write folio 1.
    let i = input(vec![
        vec![Op::MmapWrite {
            file: 0,
            off: 0,
            len: 0x3000,
        }],
        vec![write(0, 0x1000, 0x1000)],
    ]);
    assert!(plan(&i).is_ok());
    // An empty write owns nothing.
    let i = input(vec![vec![write(0, 0, 0)], vec![write(0, 0, 0x10)]]);
    assert!(plan(&i).is_ok());
}

#[test]
fn size_changes_of_shared_files_and_fault_injection_are_refused() {
    let i = input(vec![
        vec![write(0, 0, 0x10)],
        vec![Op::Truncate { file: 0, size: 0 }],
    ]);
    assert_eq!(
        plan(&i).unwrap_err(),
        RuleError::SizeChange {
            thread: 1,
            index: 0,
            file: 0
        }
    );
    // A file only one thread's user ops name is private: its owner may truncate it, and another
    // thread's background ops on it do not make it shared.
    let i = input(vec![
        vec![write(1, 0, 0x10), Op::Truncate { file: 1, size: 3 }],
        vec![Op::EvictInode { file: 1 }, write(0, 0, 0x10)],
    ]);
    let p = plan(&i).expect("rule holds");
    assert!(p.shared.is_empty());
    let i = input(vec![vec![write(0, 0, 1)], vec![Op::CorruptAllocBtree]]);
    assert_eq!(
        plan(&i).unwrap_err(),
        RuleError::Unsupported {
            thread: 1,
            index: 0,
            kind: OpKind::CorruptAllocBtree
        }
    );
}

#[test]
fn every_generated_racy_input_satisfies_the_rule() {
    let mut racy = 0;
    let mut threads = [0usize; 5];
    // Inputs whose shared file is written directly, and through the cache, by several threads.
    let (mut direct, mut cached) = (0, 0);
    for seed in 0..3000u64 {
        let mut rng = SplitMix::new(seed, 7);
        let g = Geometry {
            block_size: [1024, 4096][(seed % 2) as usize],
            folio_pages: [1, 2][(seed / 2 % 2) as usize],
            capacity_blocks: 4096,
            max_file_size: 1 << 20,
        };
        let i = racy_kernel_input(&mut rng, g);
        let p = plan(&i).unwrap_or_else(|e| panic!("seed {seed}: {e} at {:?}", e.position()));
        // Only f0 can be shared (f1 is thread 0's own); it is not when no other thread's user
        // op happened to name it.
        assert!(p.shared.iter().all(|&f| f == 0), "seed {seed}");
        threads[i.threads.len()] += 1;
        let writers = |kinds: &[OpKind]| {
            i.threads
                .iter()
                .filter(|ops| {
                    ops.iter()
                        .any(|op| op.file() == Some(0) && kinds.contains(&op.kind()))
                })
                .count()
        };
        direct += usize::from(writers(&[OpKind::DirectWrite]) > 1);
        cached += usize::from(writers(&[OpKind::Write, OpKind::MmapWrite]) > 1);
        racy += p
            .judgements
            .iter()
            .flatten()
            .filter(|j| **j == Judgement::RacyRead)
            .count();
    }
    // The generator must actually produce races: read faults over other threads' folios, and
    // every thread count.
    assert!(racy > 1000, "only {racy} racy reads");
    assert!(threads[2..].iter().all(|&n| n > 500), "{threads:?}");
    assert!(
        direct > 300 && cached > 1000,
        "direct {direct}, cached {cached}"
    );
}

#[test]
fn script_lines_of_ops_are_found_past_headers_comments_and_blank_lines() {
    let text = "# a comment\ngeometry block=1024 folio-pages=1 capacity=64 max-size=0x10000\n\
                file f0\n  write f0 0 1\nthread 1\n\n  # note\n  fsync f0\n  write f0 0x800 1 # late\n";
    // Ops before any `thread` line are thread 0's.
    assert_eq!(wbfuzz::race_rule::script_line(text, 0, 0), Some(4));
    assert_eq!(wbfuzz::race_rule::script_line(text, 1, 0), Some(8));
    assert_eq!(wbfuzz::race_rule::script_line(text, 1, 1), Some(9));
    assert_eq!(wbfuzz::race_rule::script_line(text, 1, 2), None);
    assert_eq!(wbfuzz::race_rule::script_line(text, 2, 0), None);
}
