//! Real-threads stress: the implementation on OS threads with std primitives, several threads of
//! many ops each on shared files, then the same commit-log replay on the reference as concurrent
//! fuzz runs get, and a quiescent comparison of contents and extent state after the end-of-run
//! flush and eviction. The interleavings are the OS's (not reproducible), so this complements
//! the deterministic shuttle runs rather than replacing them; it is bounded in ops, not time.

use reference::{Config, FileSpec, Geometry, Input, OpKind, Policy};
use wbfuzz::bugs::Bugs;
use wbfuzz::concurrent::run_real_threads;
use wbfuzz::generators::{random_op, OpShape, SplitMix};
use wbfuzz::report;

/// Every op kind but fault injection, repair, journal commits, eviction and crashes (eviction waits for
/// writeback the other threads keep producing; the rest are covered by the shuttle runs).
fn shape(g: &Geometry, files: u8) -> OpShape {
    let mut shape = OpShape::for_geometry(g, files);
    for k in [
        OpKind::CorruptAllocBtree,
        OpKind::RepairAllocBtree,
        OpKind::JournalCommit,
        OpKind::EvictInode,
        // Crashes: covered by the shuttle runs (a crash empties the cache this test piles up).
        OpKind::Crash,
    ] {
        shape.kinds = shape.kinds.without(k);
    }
    shape
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
        let shape = shape(&geometry, files);
        let threads = (0..4)
            .map(|_| {
                (0..150)
                    .filter_map(|_| random_op(&mut rng, &shape))
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
