//! Real-threads stress: the implementation on OS threads with std primitives, several threads of
//! many ops each on shared files, then the same commit-log replay on the reference as concurrent
//! fuzz runs get, and a quiescent comparison of contents and extent state after the end-of-run
//! flush and eviction. The interleavings are the OS's (not reproducible), so this complements
//! the deterministic shuttle runs rather than replacing them; it is bounded in ops, not time.

use reference::{Config, FileSpec, Geometry, Input, Op, Policy};
use wbfuzz::bugs::Bugs;
use wbfuzz::concurrent::run_real_threads;
use wbfuzz::hunt::SplitMix;
use wbfuzz::report;

fn random_op(rng: &mut SplitMix, g: &Geometry, files: u8) -> Op {
    let file = (rng.next_u64() % files as u64) as u8;
    let span = g.max_file_size;
    let bs = g.bs();
    let off = rng.next_u64() % span;
    let aligned = off / bs * bs;
    let len = 1 + rng.next_u64() % (3 * g.folio_size());
    let blen = (1 + rng.next_u64() % 8) * bs;
    match rng.next_u64() % 20 {
        0..=4 => Op::Write {
            file,
            off,
            len,
            sync: rng.next_u64() % 8 == 0,
        },
        5 | 6 => Op::Read { file, off, len },
        7 => Op::DirectWrite {
            file,
            off: aligned,
            len: blen,
        },
        8 => Op::DirectRead {
            file,
            off: aligned,
            len: blen,
        },
        9 => Op::MmapWrite { file, off, len },
        10 => Op::MmapRead { file, off, len },
        11 => Op::Flush {
            file,
            off: 0,
            len: span,
        },
        12 | 13 => Op::CompleteIo {
            n: 1 + (rng.next_u64() % 3) as u32,
        },
        14 => Op::Reclaim {
            file,
            folio: off / g.folio_size(),
        },
        15 => Op::Fsync { file },
        16 => Op::PunchHole { file, off, len },
        17 => Op::Truncate { file, size: off },
        18 => Op::Fallocate {
            file,
            off,
            len,
            keep_size: rng.next_u64() % 2 == 0,
        },
        _ => Op::ZeroRange {
            file,
            off,
            len,
            keep_size: true,
        },
    }
}

#[test]
fn real_threads_agree_with_the_reference() {
    let mut failures = Vec::new();
    for round in 0..24u64 {
        let mut rng = SplitMix::new(0x57E55, round);
        let geometry = Geometry {
            block_size: [512, 1024, 4096][(round % 3) as usize],
            folio_pages: [1, 2, 4][(round / 3 % 3) as usize],
            capacity_blocks: 4096,
            max_file_size: 256 << 10,
        };
        let files = 1 + (round % 2) as u8;
        let config = Config {
            geometry,
            policy: if round % 4 == 3 {
                Policy::Invalidate
            } else {
                Policy::KeepDirty
            },
            files: (0..files)
                .map(|f| FileSpec {
                    jdata: round % 5 == 4 && f == 1,
                })
                .collect(),
        };
        let threads = (0..4)
            .map(|_| {
                (0..150)
                    .map(|_| random_op(&mut rng, &geometry, files))
                    .collect()
            })
            .collect();
        let input = Input {
            config,
            threads,
            schedule: vec![],
        };
        let run = run_real_threads(&input, Bugs::NONE);
        if run.diverged() {
            failures.push(report::render(
                &format!("stress round {round}"),
                &input,
                Bugs::NONE,
                &run,
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of 24 rounds diverged; first:\n{}",
        failures.len(),
        failures[0]
    );
}
