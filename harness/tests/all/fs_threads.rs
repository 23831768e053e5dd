//! Randomized tests of the implementation alone: sequential runs that must keep every invariant
//! after every op, and a real-threads smoke test (no panic, no deadlock, invariants at the end).

use reference::{FileSpec, Observe, Op};
use std::sync::mpsc;
use std::sync::Arc;
use std::time::Duration;
use wbfuzz::bugs::Bugs;
use wbfuzz::fs::Fs;
use wbfuzz::generators::{random_config, random_op, OpShape, SplitMix, Swarm};

/// Ops over the first 40,000 bytes, lengths up to 12,000, half of them block-aligned.
fn shape(files: u8, bs: u64) -> OpShape {
    OpShape {
        files,
        granule: bs,
        folio: bs,
        span: 40_000,
        max_len: 12_000,
        unaligned: true,
        kinds: Swarm::ALL,
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
        let mut r = SplitMix::new(seed, 0);
        let cfg = random_config(&mut r);
        let fs = Fs::new(&cfg, Bugs::NONE);
        let files = cfg.files.len();
        let shape = shape(files as u8, cfg.geometry.bs());
        for seq in 1..=60u32 {
            let op = random_op(&mut r, &shape).expect("every kind enabled");
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
        let mut r = SplitMix::new(seed, 1);
        let mut cfg = random_config(&mut r);
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
                let shape = shape(3, cfg.geometry.bs());
                std::thread::spawn(move || {
                    let mut r = SplitMix::new(seed, 2 + t);
                    for i in 0..400u32 {
                        // Threads 0 and 1 share file 0; 2 and 3 spread over all files.
                        let mut op = random_op(&mut r, &shape).expect("every kind enabled");
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
