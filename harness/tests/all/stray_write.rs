//! A stray store into one model's state, outside the range of the op that follows, is still
//! caught by the digest-based comparison: at the first op whose comparison covers the block (a
//! file-wide op compares the whole file), never later, and the report shows the bytes. Both
//! models keep per-block digests that the comparison trusts; these tests show that a store made
//! after a digest was computed cannot leave it stale (it goes through the same accessor as every
//! write, which forgets the digests), on either side.

use reference::{Config, FileSpec, Geometry, Input, Observe, Op, Policy};
use wbfuzz::bugs::Bugs;
use wbfuzz::oracle::{run_sequential, run_sequential_disturbed, Mismatch, Run};

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

/// Runs `input` with a stray store to [`STRAY`] in `side`'s folio 2 just before op `k`
/// (asserting the folio was cached there, so the store happened).
fn scribbled(input: &Input, k: usize, side: Side) -> Run {
    let mut hit = false;
    let run = run_sequential_disturbed(input, Bugs::NONE, &mut |at, r, i| {
        if at == k {
            hit = match side {
                Side::Reference => r.scribble(0, STRAY, 0xEE),
                Side::Implementation => i.scribble(0, STRAY, 0xEE),
            };
        }
    });
    assert!(hit, "folio 2 was cached before op {k} ({side:?})");
    run
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

#[test]
fn a_stray_store_in_the_implementation_is_caught_at_the_next_file_wide_op() {
    // Before op 3 (fsync): by then folio 2's digest has been computed (op 1 compared the file).
    let run = scribbled(&input(), 3, Side::Implementation);
    assert_eq!(contents_mismatch_at(&run), Some((3, STRAY)));
}

#[test]
fn a_stray_store_in_the_reference_is_caught_at_the_next_file_wide_op() {
    let run = scribbled(&input(), 4, Side::Reference);
    assert_eq!(contents_mismatch_at(&run), Some((4, STRAY)));
}

#[test]
fn a_stray_store_before_a_ranged_op_elsewhere_is_caught_at_the_first_op_covering_it() {
    // Op 2 reads folio 0 only, so its comparison does not look at folio 2; op 3 (fsync)
    // compares the whole file and must catch it.
    let run = run_sequential_disturbed(&input(), Bugs::NONE, &mut |k, _, i| {
        if k == 2 {
            assert!(i.scribble(0, STRAY, 0xEE));
        }
    });
    assert_eq!(contents_mismatch_at(&run), Some((3, STRAY)));
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
/// two `CompleteIo`s (the first completes that IO, the second nothing) and an fsync. After a
/// `CompleteIo` the files are compared only where either model completed IO (folio 0, then
/// nothing): a stray store elsewhere is caught by the next comparison covering it, here the
/// fsync (file-wide), at the latest the whole comparison that ends the run.
fn completion_input() -> Input {
    let mut input = input();
    input.threads = vec![vec![
        Op::Write {
            file: 0,
            off: 0,
            len: 4 * BS,
            sync: false,
        },
        Op::Fsync { file: 0 },
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
    ]];
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
fn a_stray_store_before_a_completion_elsewhere_is_caught_at_the_next_file_wide_op() {
    // Op 4 completes folio 0's IO and compares folio 0 only; folio 2 is next compared by op 6.
    let run = scribbled(&completion_input(), 4, Side::Implementation);
    assert_eq!(contents_mismatch_at(&run), Some((6, STRAY)));
}

#[test]
fn a_stray_store_before_a_completion_of_nothing_is_caught_at_the_next_file_wide_op() {
    // Op 5 completes nothing: no file range is compared after it, and the implementation's
    // per-block invariants are checked nowhere.
    let run = scribbled(&completion_input(), 5, Side::Implementation);
    assert_eq!(contents_mismatch_at(&run), Some((6, STRAY)));
}

#[test]
fn a_stray_store_in_the_reference_before_a_completion_is_caught_there_by_its_self_check() {
    // The reference still checks all its invariants after every op that completes IO (op 4):
    // its clean folio 2 no longer matches the disk.
    let run = run_sequential_disturbed(&completion_input(), Bugs::NONE, &mut |k, r, _| {
        if k == 4 {
            assert!(r.scribble(0, STRAY, 0xEE));
        }
    });
    let d = run.divergence().expect("caught");
    assert_eq!(d.at, 4);
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
fn a_stray_store_in_the_reference_before_a_completion_of_nothing_is_caught_at_the_next_file_wide_op(
) {
    // Op 5 completes nothing in either model: the reference reports only the violations it saw
    // as they happened, and the fsync compares the whole file.
    let run = run_sequential_disturbed(&completion_input(), Bugs::NONE, &mut |k, r, _| {
        if k == 5 {
            assert!(r.scribble(0, STRAY, 0xEE));
        }
    });
    assert_eq!(contents_mismatch_at(&run), Some((6, STRAY)));
}

#[test]
fn a_stray_store_left_to_the_end_is_caught_by_the_final_whole_comparison() {
    // Without the input's last fsync, nothing in the input compares folio 2 again: the
    // epilogue does (its fsync of file 0 is file-wide; its last op compares everything).
    let mut input = completion_input();
    input.threads[0].pop();
    let mut hit = false;
    let run = run_sequential_disturbed(&input, Bugs::NONE, &mut |k, _, i| {
        if k == 5 {
            hit = i.scribble(0, STRAY, 0xEE);
        }
    });
    assert!(hit);
    let (at, bad) = contents_mismatch_at(&run).expect("caught");
    assert_eq!(bad, STRAY);
    assert!(run.trace[at].epilogue, "caught in the epilogue, at op {at}");
}
