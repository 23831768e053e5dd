//! Randomized tests of the implementation alone: sequential runs that must keep every invariant
//! after every op, and a real-threads smoke test (no panic, no deadlock, invariants at the end).

use reference::{Config, FileSpec, Geometry, Observe, Op, Policy};
use std::sync::mpsc;
use std::sync::Arc;
use std::time::Duration;
use wbfuzz::bugs::Bugs;
use wbfuzz::fs::Fs;

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

fn random_op(r: &mut Rng, files: u8, bs: u64) -> Op {
    let file = r.below(files as u64) as u8;
    let off = if r.below(2) == 0 {
        r.below(40_000)
    } else {
        r.below(40) * bs
    };
    let len = if r.below(2) == 0 {
        r.below(12_000)
    } else {
        r.below(12) * bs
    };
    match r.below(19) {
        0..=2 => Op::Write {
            file,
            off,
            len,
            sync: r.below(8) == 0,
        },
        3 => Op::Read { file, off, len },
        4 => Op::DirectWrite { file, off, len },
        5 => Op::DirectRead { file, off, len },
        6 => Op::MmapWrite { file, off, len },
        7 => Op::MmapRead { file, off, len },
        8 => Op::Fsync { file },
        9 => Op::Fallocate {
            file,
            off,
            len,
            keep_size: r.below(2) == 0,
        },
        10 => Op::PunchHole { file, off, len },
        11 => Op::ZeroRange {
            file,
            off,
            len,
            keep_size: r.below(2) == 0,
        },
        12 => Op::Truncate {
            file,
            size: r.below(40_000),
        },
        13 => Op::Flush { file, off, len },
        14 => Op::CompleteIo {
            n: r.below(4) as u32,
        },
        15 => Op::Reclaim {
            file,
            folio: r.below(12),
        },
        16 => Op::EvictInode { file },
        17 => {
            if r.below(4) == 0 {
                Op::CorruptAllocBtree
            } else {
                Op::RepairAllocBtree
            }
        }
        _ => Op::JournalCommit { file },
    }
}

fn config(r: &mut Rng) -> Config {
    let bs = [512, 1024, 4096][r.below(3) as usize];
    let folio_pages = [1, 2, 4][r.below(3) as usize];
    Config {
        geometry: Geometry {
            block_size: bs,
            folio_pages,
            capacity_blocks: 16 + r.below(200),
            max_file_size: 64 << 10,
        },
        policy: if r.below(2) == 0 {
            Policy::KeepDirty
        } else {
            Policy::Invalidate
        },
        files: (0..1 + r.below(3))
            .map(|_| FileSpec {
                jdata: r.below(3) == 0,
            })
            .collect(),
    }
}

/// Repair, write everything back, complete all IO, evict: the end-of-run quiescing.
fn settle(fs: &Fs, files: usize) {
    fs.apply(u32::MAX, &Op::RepairAllocBtree);
    for f in 0..files as u8 {
        fs.apply(u32::MAX, &Op::Fsync { file: f });
        fs.apply(u32::MAX, &Op::EvictInode { file: f });
    }
    fs.apply(u32::MAX, &Op::CompleteIo { n: u32::MAX });
}

#[test]
fn sequential_random_runs_keep_invariants() {
    for seed in 1..=300u64 {
        let mut r = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
        let cfg = config(&mut r);
        let fs = Fs::new(&cfg, Bugs::NONE);
        let files = cfg.files.len();
        for seq in 1..=60u32 {
            let op = random_op(&mut r, files as u8, cfg.geometry.bs());
            fs.apply(seq, &op);
            let v = fs.check_invariants();
            assert!(v.is_empty(), "seed {seed} op {seq} {op}: {v:?}");
        }
        settle(&fs, files);
        let v = fs.check_invariants();
        assert!(v.is_empty(), "seed {seed} after settling: {v:?}");
        for f in 0..files as u8 {
            // Fully written back and evicted: nothing cached, nothing delalloc.
            let blocks = fs.blocks(f, 0, fs.block_span(f));
            assert!(
                blocks
                    .iter()
                    .all(|b| b.cache == reference::CacheState::NotCached),
                "seed {seed}"
            );
            assert!(
                blocks
                    .iter()
                    .all(|b| b.extent != reference::ExtentState::Delalloc),
                "seed {seed}"
            );
        }
        assert_eq!(fs.counters().inflight_ios, 0);
    }
}

#[test]
fn threads_smoke_no_deadlock() {
    for seed in 1..=12u64 {
        let mut r = Rng(seed.wrapping_mul(0xD1B5_4A32_D192_ED03) | 1);
        let mut cfg = config(&mut r);
        cfg.files = vec![
            FileSpec { jdata: false },
            FileSpec { jdata: true },
            FileSpec { jdata: false },
        ];
        let fs = Arc::new(Fs::new(&cfg, Bugs::NONE));
        let (tx, rx) = mpsc::channel();
        let handles: Vec<_> = (0..4u64)
            .map(|t| {
                let fs = fs.clone();
                let tx = tx.clone();
                let bs = cfg.geometry.bs();
                std::thread::spawn(move || {
                    let mut r = Rng((seed << 8 | t).wrapping_mul(0x2545_F491_4F6C_DD1D) | 1);
                    for i in 0..400u32 {
                        // Threads 0 and 1 share file 0; 2 and 3 spread over all files.
                        let mut op = random_op(&mut r, 3, bs);
                        if t < 2 {
                            op = retarget(op, 0);
                        }
                        fs.apply(t as u32 * 1000 + i + 1, &op);
                    }
                    tx.send(()).ok();
                })
            })
            .collect();
        drop(tx);
        for _ in 0..4 {
            rx.recv_timeout(Duration::from_secs(120))
                .expect("deadlock: a thread did not finish");
        }
        for h in handles {
            h.join().expect("no panic");
        }
        settle(&fs, 3);
        let v = fs.check_invariants();
        assert!(v.is_empty(), "seed {seed}: {v:?}");
    }
}

fn retarget(op: Op, f: u8) -> Op {
    match op {
        Op::Write { off, len, sync, .. } => Op::Write {
            file: f,
            off,
            len,
            sync,
        },
        Op::Read { off, len, .. } => Op::Read { file: f, off, len },
        Op::DirectWrite { off, len, .. } => Op::DirectWrite { file: f, off, len },
        Op::MmapWrite { off, len, .. } => Op::MmapWrite { file: f, off, len },
        Op::Flush { off, len, .. } => Op::Flush { file: f, off, len },
        Op::Reclaim { folio, .. } => Op::Reclaim { file: f, folio },
        other => other,
    }
}
