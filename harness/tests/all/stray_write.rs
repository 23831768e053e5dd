//! A stray change to one model's state, outside the range of the op that follows, is caught at
//! that very op, whatever the op (ranged elsewhere, file-wide, a completion, a completion of
//! nothing), on either side, for each kind of state: a cached byte, a disk block, a block's
//! mapping. The oracle compares after each op only what changed, as each model's storage logs
//! it; these tests are the proof that the logs miss nothing (each stray change goes through the
//! same accessor as a buggy path would, and none is announced to the oracle). They also show
//! that a store made after a digest was computed cannot leave it stale (the accessor forgets
//! the digests) and that the report shows the bytes.

use reference::{Config, FileSpec, Geometry, Input, Observe, Op, Policy};
use wbfuzz::bugs::Bugs;
use wbfuzz::oracle::{run_sequential, run_sequential_disturbed, Mismatch, Run};

use reference::model::RefFs;
use wbfuzz::fs::Fs;

const BS: u64 = 4096;

/// Four clean cached folios of file 0 (written, fsynced), then a read of folio 0 (a ranged op),
/// an fsync (file-wide) and a truncate to the same size (file-wide).
fn input() -> Input {
    Input {
        config: Config {
            geometry: Geometry {
                block_size: BS as u32,
                folio_pages: 1,
                capacity_blocks: 64,
                max_file_size: 16 * BS,
            },
            policy: Policy::KeepDirty,
            files: vec![FileSpec { jdata: false }],
        },
        threads: vec![vec![
            Op::Write {
                file: 0,
                off: 0,
                len: 4 * BS,
                sync: false,
            },
            Op::Fsync { file: 0 },
            Op::Read {
                file: 0,
                off: 0,
                len: BS,
            },
            Op::Fsync { file: 0 },
            Op::Truncate {
                file: 0,
                size: 4 * BS,
            },
        ]],
        schedule: vec![],
    }
}

/// The byte the tests scribble over: inside folio 2, which only the first op wrote.
const STRAY: u64 = 2 * BS + 5;

/// Which model a test scribbles into.
#[derive(Clone, Copy, Debug)]
enum Side {
    Reference,
    Implementation,
}

/// Runs `input` with `stray` applied to one side just before op `k` (asserting it changed
/// something).
fn disturbed(input: &Input, k: usize, side: Side, stray: fn(&mut RefFs, &Fs, Side) -> bool) -> Run {
    let mut hit = false;
    let run = run_sequential_disturbed(input, Bugs::NONE, &mut |at, r, i| {
        if at == k {
            hit = stray(r, i, side);
        }
    });
    assert!(hit, "the stray change happened before op {k} ({side:?})");
    run
}

/// A stray store to [`STRAY`] in `side`'s folio 2 (which must be cached, so that it happens).
fn store_stray(r: &mut RefFs, i: &Fs, side: Side) -> bool {
    match side {
        Side::Reference => r.scribble(0, STRAY, 0xEE),
        Side::Implementation => i.scribble(0, STRAY, 0xEE),
    }
}

/// Runs `input` with a stray store to [`STRAY`] in `side`'s folio 2 just before op `k`.
fn scribbled(input: &Input, k: usize, side: Side) -> Run {
    disturbed(input, k, side, store_stray)
}

fn contents_mismatch_at(run: &Run) -> Option<(usize, u64)> {
    let d = run.divergence()?;
    d.mismatches.iter().find_map(|m| match m {
        Mismatch::Contents {
            first_bad,
            reference,
            implementation,
            base,
            ..
        } => {
            let k = (first_bad - base) as usize;
            assert_ne!(
                reference.get(k),
                implementation.get(k),
                "the report shows the differing byte"
            );
            Some((d.at, *first_bad))
        }
        _ => None,
    })
}

#[test]
fn the_undisturbed_input_agrees() {
    let run = run_sequential(&input(), Bugs::NONE);
    assert!(run.ok(), "{:?}", run.verdict);
    assert_eq!(run.trace.iter().filter(|t| !t.epilogue).count(), 5);
}

/// Asserts that a stray store into either model before op `k` of `input` is caught at op `k`,
/// for each `k` of `ops`.
fn assert_caught_at_the_op(input: &Input, ops: impl IntoIterator<Item = usize>) {
    for k in ops {
        for side in [Side::Reference, Side::Implementation] {
            let run = scribbled(input, k, side);
            assert_eq!(
                contents_mismatch_at(&run),
                Some((k, STRAY)),
                "op {k}, {side:?}"
            );
        }
    }
}

#[test]
fn a_stray_store_is_caught_at_the_op_it_precedes_whatever_the_op() {
    // Op 2 reads folio 0 only (ranged, elsewhere), op 3 is an fsync and op 4 a truncate to the
    // same size (file-wide, changing nothing of folio 2).
    assert_caught_at_the_op(&input(), 2..5);
}

#[test]
fn a_stray_store_of_the_same_byte_changes_nothing() {
    // Scribbling the byte that is already there forgets the digests but changes no content:
    // the run must agree (the digests are recomputed, not reported).
    let run = run_sequential_disturbed(&input(), Bugs::NONE, &mut |k, r, i| {
        if k == 3 {
            let byte = r.peek(0, STRAY, 1)[0];
            assert_ne!(byte, 0, "the write put pattern bytes there");
            assert!(i.scribble(0, STRAY, byte));
            assert!(r.scribble(0, STRAY, byte));
        }
    });
    assert!(run.ok(), "{:?}", run.verdict);
}

/// Four clean cached folios of file 0, then folio 0 rewritten and flushed (one IO in flight),
/// two `CompleteIo`s (the first completes that IO, the second nothing) and an fsync.
fn completion_input() -> Input {
    let mut input = input();
    // The write and fsync of `input`, then the rest.
    input.threads[0].truncate(2);
    input.threads[0].extend([
        Op::Write {
            file: 0,
            off: 0,
            len: BS,
            sync: false,
        },
        Op::Flush {
            file: 0,
            off: 0,
            len: BS,
        },
        Op::CompleteIo { n: 1 },
        Op::CompleteIo { n: 1 },
        Op::Fsync { file: 0 },
    ]);
    input
}

#[test]
fn the_completions_are_where_the_test_says() {
    let run = run_sequential(&completion_input(), Bugs::NONE);
    assert!(run.ok(), "{:?}", run.verdict);
    let done = |k: usize| run.trace[k].reference.to_string();
    assert_eq!(done(4), "ok 0x1", "op 4 completes the flushed IO");
    assert_eq!(done(5), "ok 0x0", "op 5 completes nothing");
}

#[test]
fn a_stray_store_before_a_completion_is_caught_at_the_completion() {
    // Op 4 completes folio 0's IO, op 5 completes nothing: neither touches folio 2.
    assert_caught_at_the_op(&completion_input(), [4, 5]);
}

/// [`input`] with folio 2 reclaimed after the fsync: block 2 is `Written` and not cached, so
/// reads see its disk block. Op 3 reads folio 0.
fn uncached_input() -> Input {
    let mut input = input();
    input.threads[0].insert(2, Op::Reclaim { file: 0, folio: 2 });
    input
}

fn disk_stray(r: &mut RefFs, i: &Fs, side: Side) -> bool {
    match side {
        Side::Reference => r.scribble_disk(0, 2, 0xEE),
        Side::Implementation => i.scribble_disk(0, 2, 0xEE),
    }
}

fn extent_stray(r: &mut RefFs, i: &Fs, side: Side) -> bool {
    match side {
        Side::Reference => r.scribble_block(0, 2),
        Side::Implementation => i.scribble_extent(0, 2),
    }
}

#[test]
fn a_stray_disk_write_under_an_uncached_block_is_caught_at_the_next_op() {
    let input = uncached_input();
    assert!(run_sequential(&input, Bugs::NONE).ok());
    for side in [Side::Reference, Side::Implementation] {
        let run = disturbed(&input, 3, side, disk_stray);
        assert_eq!(contents_mismatch_at(&run), Some((3, 2 * BS)), "{side:?}");
    }
}

#[test]
fn a_stray_disk_write_under_a_clean_cached_block_breaks_an_invariant_at_the_next_op() {
    // The cache still shows the right bytes; the implementation's per-block check of what
    // changed (the disk block maps file block 2) finds its clean cache no longer on disk.
    let run = disturbed(&input(), 2, Side::Implementation, disk_stray);
    let d = run.divergence().expect("caught");
    assert_eq!(d.at, 2);
    assert!(
        d.mismatches.iter().any(|m| matches!(
            m,
            Mismatch::Invariant { violation, .. } if violation.name == "clean-cache-matches-disk"
        )),
        "{:?}",
        d.mismatches
    );
}

#[test]
fn a_stray_mapping_change_is_caught_at_the_next_op() {
    // Written -> Unwritten: the block's state differs (cached or not), and uncached it reads
    // zeros.
    for (input, k) in [(input(), 2), (uncached_input(), 3)] {
        for side in [Side::Reference, Side::Implementation] {
            let run = disturbed(&input, k, side, extent_stray);
            let d = run.divergence().expect("caught");
            assert_eq!(d.at, k, "{side:?}");
            assert!(
                d.mismatches.iter().any(|m| matches!(
                    m,
                    Mismatch::Blocks { file: 0, first, .. } if *first <= 2
                )),
                "{side:?}: {:?}",
                d.mismatches
            );
        }
    }
}
