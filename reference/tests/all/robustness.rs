//! Robustness (absurd arguments, bad file indices, bad configs), the step API, a long scripted
//! sequence with counters checked after every op, and the resolved SPEC.md ambiguities.

use crate::common;
use common::*;
use reference::model::{Completion, RefFs};
use reference::{Config, Errno, FileSpec, Geometry, Observe, Op, Outcome, Policy};

/// Every op with the largest arguments there are, on every geometry corner: no panic, no huge
/// allocation, invariants hold.
#[test]
fn huge_offsets_and_lengths_never_panic() {
    for (bs, fp) in [(512, 1), (1024, 2), (4096, 4)] {
        for policy in [Policy::KeepDirty, Policy::Invalidate] {
            let mut fs = fs_with(bs, fp, 64, policy, &[false, true]);
            let mut seq = 0;
            for file in 0..2u8 {
                run(
                    &mut fs,
                    1,
                    Op::Write {
                        file,
                        off: 0,
                        len: 5000,
                        sync: false,
                    },
                );
                for (off, len) in [
                    (u64::MAX, u64::MAX),
                    (u64::MAX, 1),
                    (u64::MAX - 1, 2),
                    (1, u64::MAX),
                    (0, u64::MAX),
                ] {
                    let ops = [
                        Op::Write {
                            file,
                            off,
                            len,
                            sync: true,
                        },
                        Op::Read { file, off, len },
                        Op::DirectWrite { file, off, len },
                        Op::DirectRead { file, off, len },
                        Op::MmapWrite { file, off, len },
                        Op::MmapRead { file, off, len },
                        Op::Fallocate {
                            file,
                            off,
                            len,
                            keep_size: true,
                        },
                        Op::PunchHole { file, off, len },
                        Op::ZeroRange {
                            file,
                            off,
                            len,
                            keep_size: false,
                        },
                        Op::Truncate { file, size: off },
                        Op::Flush { file, off, len },
                        Op::Reclaim { file, folio: off },
                        Op::CompleteIo { n: u32::MAX },
                        Op::EvictInode { file },
                        Op::JournalCommit { file },
                    ];
                    for op in ops {
                        seq += 1;
                        run(&mut fs, seq, op);
                    }
                }
                assert!(fs.size(file) <= 256 << 10);
                assert!(fs.peek(file, u64::MAX, u64::MAX).is_empty());
                assert!(fs.blocks(file, u64::MAX - 5, u64::MAX).len() <= 5);
            }
        }
    }
}

#[test]
fn absurd_block_requests_are_bounded() {
    let fs = default_fs();
    // 256 KiB max / 1 KiB = 256 blocks; a request for u64::MAX blocks is cut 2^20 past that.
    assert_eq!(fs.blocks(0, 0, u64::MAX).len(), 256 + (1 << 20));
    assert_eq!(fs.blocks(0, 0, 1000).len(), 1000);
}

#[test]
fn bad_file_index_is_einval_and_changes_nothing() {
    let mut fs = default_fs();
    run(&mut fs, 1, write(0, 10));
    let before = fs.counters();
    for op in [
        Op::Write {
            file: 1,
            off: 0,
            len: 10,
            sync: false,
        },
        Op::Read {
            file: 4,
            off: 0,
            len: 10,
        },
        Op::DirectWrite {
            file: 1,
            off: 0,
            len: 1024,
        },
        Op::DirectRead {
            file: 255,
            off: 0,
            len: 1024,
        },
        Op::MmapWrite {
            file: 1,
            off: 0,
            len: 1,
        },
        Op::MmapRead {
            file: 1,
            off: 0,
            len: 1,
        },
        Op::Fsync { file: 1 },
        Op::Fallocate {
            file: 1,
            off: 0,
            len: 1,
            keep_size: false,
        },
        Op::PunchHole {
            file: 1,
            off: 0,
            len: 1,
        },
        Op::ZeroRange {
            file: 1,
            off: 0,
            len: 1,
            keep_size: false,
        },
        Op::Truncate { file: 1, size: 0 },
        Op::Flush {
            file: 1,
            off: 0,
            len: 1,
        },
        Op::Reclaim { file: 1, folio: 0 },
        Op::EvictInode { file: 1 },
        Op::JournalCommit { file: 1 },
    ] {
        assert_eq!(run(&mut fs, 2, op), err(Errno::Einval));
    }
    assert_eq!(fs.counters(), before);
    assert_eq!(fs.size(1), 0);
    assert!(fs.peek(1, 0, 10).is_empty());
    assert!(fs.blocks(1, 0, 10).is_empty());
    assert_eq!(fs.block_span(1), 0);
    assert_eq!(fs.wb_error(1), None);
    assert_eq!(contents(&fs), pattern(1, 0, 10));
}

#[test]
fn invalid_config_is_clamped_not_a_panic() {
    let geometry = Geometry {
        block_size: 3000,
        folio_pages: 3,
        capacity_blocks: 0,
        max_file_size: u64::MAX,
    };
    let config = Config {
        geometry,
        policy: Policy::KeepDirty,
        files: vec![FileSpec::default(); 9],
    };
    let mut fs = RefFs::new(&config);
    assert!(fs.geometry().validate().is_ok());
    assert_eq!(fs.file_count(), 4);
    assert_eq!(fs.apply(1, &write(0, 10)), done(10));
    assert_eq!(fs.apply(2, &write(0, 100_000)), err(Errno::Enospc));
    assert!(fs.check_invariants().is_empty());
}

#[test]
fn step_api_composes_a_write_like_apply() {
    // The steps listed in the model's docs, called one by one, give the state `apply` gives.
    let mut by_op = default_fs();
    let mut by_steps = default_fs();
    run(&mut by_op, 1, write(3000, 3000));
    run(&mut by_op, 2, flush_all());
    run(&mut by_op, 3, write(100, 5000));

    let n = by_steps.write_args(3000, 3000).unwrap();
    by_steps.reserve_write(0, 3000, n).unwrap();
    by_steps.write_folio(1, 0, 3000, 1096);
    by_steps.write_folio(1, 0, 4096, 1904);
    by_steps.extend_size(0, 6000);
    assert_eq!(by_steps.writeback_folio(0, 0), Ok(true));
    assert_eq!(by_steps.writeback_folio(0, 1), Ok(true));
    assert_eq!(by_steps.writeback_folio(0, 2), Ok(false));
    by_steps.reserve_write(0, 100, 5000).unwrap();
    by_steps.write_folio(3, 0, 100, 3996); // waits: completes folio 0's IO
    by_steps.write_folio(3, 0, 4096, 1004); // waits: completes folio 1's IO
    by_steps.extend_size(0, 5100);

    assert!(by_steps.check_invariants().is_empty());
    assert_eq!(contents(&by_steps), contents(&by_op));
    assert_eq!(by_steps.blocks(0, 0, 8), by_op.blocks(0, 0, 8));
    assert_eq!(by_steps.counters(), by_op.counters());
}

#[test]
fn step_api_io_completion_reports_how_it_went() {
    let mut fs = default_fs();
    run(&mut fs, 1, write(0, 10));
    run(&mut fs, 2, write(4096, 10));
    run(&mut fs, 3, flush_all());
    assert_eq!(fs.complete_io_of(0, 1), Some(Completion::Written));
    assert_eq!(fs.complete_io_of(0, 1), None);
    assert_eq!(fs.complete_oldest_io(), Some(Completion::Written));
    assert_eq!(fs.complete_oldest_io(), None);
    // A failing writeback step returns the error and records it.
    run(&mut fs, 4, corrupt());
    run(&mut fs, 5, write(8192, 10));
    assert_eq!(fs.writeback_folio(0, 2), Err(Errno::Efscorrupted));
    assert_eq!(fs.take_wb_error(0), Some(Errno::Efscorrupted));
    assert_eq!(fs.fsync_finish(0), done(0));
    assert!(fs.check_invariants().is_empty());
}

#[test]
fn counters_sum_to_capacity_through_a_long_sequence() {
    let mut fs = fs_with(512, 2, 40, Policy::KeepDirty, &[false, true]);
    let ops = [
        write(0, 3000),
        Op::Write {
            file: 1,
            off: 100,
            len: 2000,
            sync: false,
        },
        falloc(4096, 4096, true),
        flush(0, 1),
        write(1000, 9000),
        corrupt(),
        punch(512, 1024),
        zero(0, 600, false),
        flush_all(),
        truncate(700),
        repair(),
        truncate(700),
        fsync(),
        dwrite(1024, 2048),
        mwrite(100, 5),
        Op::JournalCommit { file: 1 },
        write(0, 20_000),
        complete(1),
        reclaim(0),
        evict(),
        zero(1024, 10_000, true),
        dread(0, 4096),
        truncate(0),
        Op::Truncate { file: 1, size: 0 },
    ];
    for (i, op) in ops.into_iter().enumerate() {
        run(&mut fs, i as u32 + 1, op);
        let c = fs.counters();
        assert_eq!(c.free + c.reserved + c.allocated, 40, "after op {}", i + 1);
    }
    let c = fs.counters();
    assert_eq!(
        (c.free, c.reserved, c.allocated, c.inflight_ios),
        (40, 0, 0, 0)
    );
}

#[test]
fn truncate_zeroing_survives_an_invalidated_folio() {
    // SPEC.md premise "bytes past EOF are zero on disk" with the invalidate policy: the zeroed
    // tail of a Written EOF block is dirty in a folio that also holds a delalloc block; the
    // folio's writeback fails and the folio is dropped. The bytes past EOF must still read as
    // zeros when the file grows again (see the model's `zero_disk_tail`).
    let mut fs = fs_with(1024, 1, 256, Policy::Invalidate, &[false]);
    run(&mut fs, 1, write(0, 4096));
    run(&mut fs, 2, fsync());
    run(&mut fs, 3, truncate(1500));
    run(&mut fs, 4, punch(0, 1024));
    run(&mut fs, 5, write(0, 10));
    run(&mut fs, 6, corrupt());
    assert_eq!(run(&mut fs, 7, flush_all()), done(0));
    assert_eq!(caches(&fs, 0, 4), vec![NotCached; 4]);
    // Block 0's new data is lost (it was delalloc); block 1 reads the disk.
    assert_eq!(
        run(&mut fs, 8, read(0, 1500)),
        data(cat(&[&zeros(1024), &pattern(1, 1024, 476)]))
    );
    run(&mut fs, 9, truncate(4096));
    assert_eq!(
        contents(&fs),
        cat(&[&zeros(1024), &pattern(1, 1024, 476), &zeros(2596)])
    );
    run(&mut fs, 10, reclaim(0));
    assert_eq!(
        contents(&fs),
        cat(&[&zeros(1024), &pattern(1, 1024, 476), &zeros(2596)])
    );
}

#[test]
fn writeback_skips_a_clean_folio_under_writeback() {
    // Resolved ambiguity: "A folio with no dirty block is skipped" comes before "a folio under
    // writeback is first waited for" (background writeback only looks at dirty folios).
    let mut fs = default_fs();
    run(&mut fs, 1, write(0, 10));
    run(&mut fs, 2, flush_all());
    assert_eq!(run(&mut fs, 3, flush_all()), done(0));
    assert_eq!(fs.counters().inflight_ios, 1);
    // Fsync waits for every IO of the file.
    assert_eq!(run(&mut fs, 4, fsync()), done(0));
    assert_eq!(fs.counters().inflight_ios, 0);
}

#[test]
fn sync_write_reports_an_older_recorded_error() {
    // O_SYNC is vfs_fsync_range: it reports whatever error is recorded, even one recorded by an
    // earlier flush, and clears it.
    let mut fs = default_fs();
    run(&mut fs, 1, corrupt());
    run(&mut fs, 2, write(8192, 10));
    run(&mut fs, 3, flush_all());
    run(&mut fs, 4, repair());
    assert_eq!(run(&mut fs, 5, write_sync(0, 10)), err(Errno::Efscorrupted));
    assert_eq!(fs.wb_error(0), None);
    assert_eq!(extents(&fs, 0, 1), vec![Written]);
    assert_eq!(run(&mut fs, 6, write_sync(0, 10)), done(10));
}

#[test]
fn outcome_of_every_op_kind_on_an_empty_file() {
    let mut fs = default_fs();
    let expect: Vec<(Op, Outcome)> = vec![
        (read(0, 10), data(vec![])),
        (dread(0, 1024), data(vec![])),
        (mread(0, 1), err(Errno::Efault)),
        (mwrite(0, 1), err(Errno::Efault)),
        (fsync(), done(0)),
        (flush_all(), done(0)),
        (complete(3), done(0)),
        (reclaim(0), done(0)),
        (evict(), done(1)),
        (commit(), done(0)),
        (punch(0, 4096), done(0)),
        (truncate(0), done(0)),
    ];
    for (i, (op, out)) in expect.into_iter().enumerate() {
        assert_eq!(run(&mut fs, i as u32 + 1, op.clone()), out, "{op}");
    }
    assert_eq!(fs.block_span(0), 0);
}
