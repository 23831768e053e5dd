//! Direct IO, fsync, flush, IO completion, reclaim, eviction and the writeback error policies,
//! expected values derived by hand from SPEC.md.

use crate::common;
use common::*;
use reference::{Errno, Observe, Policy};

#[test]
fn direct_write_argument_errors() {
    let max = 16 << 10;
    let mut fs = fs_max(1024, 1, 64, max, Policy::KeepDirty, &[false]);
    assert_eq!(run(&mut fs, 1, dwrite(512, 1024)), err(Errno::Einval));
    assert_eq!(run(&mut fs, 2, dwrite(0, 100)), err(Errno::Einval));
    // len == 0 is Done(0) before the alignment check (it used to be EINVAL here; Linux 6.18 XFS
    // and ext4 return 0: xfs_file_write_iter returns before xfs_file_dio_write checks), and
    // EINVAL comes before EFBIG.
    assert_eq!(run(&mut fs, 3, dwrite(1, 0)), done(0));
    assert_eq!(
        run(&mut fs, 4, dwrite(u64::MAX, u64::MAX)),
        err(Errno::Einval)
    );
    assert_eq!(run(&mut fs, 5, dwrite(1024, 0)), done(0));
    assert_eq!(run(&mut fs, 6, dwrite(max, 1024)), err(Errno::Efbig));
    assert_eq!(run(&mut fs, 7, dwrite(max + 1024, 0)), done(0));
    // Cut short at the maximum.
    assert_eq!(run(&mut fs, 8, dwrite(max - 1024, 4096)), done(1024));
    assert_eq!(fs.size(0), max);
}

#[test]
fn direct_write_allocates_and_writes_the_disk() {
    let mut fs = default_fs();
    assert_eq!(run(&mut fs, 1, dwrite(1024, 2048)), done(2048));
    assert_eq!(fs.size(0), 3072);
    assert_eq!(extents(&fs, 0, 4), vec![Hole, Written, Written, Hole]);
    assert_eq!(caches(&fs, 0, 4), vec![NotCached; 4]);
    let c = fs.counters();
    assert_eq!((c.free, c.reserved, c.allocated), (254, 0, 2));
    assert_eq!(
        run(&mut fs, 2, read(0, 4096)),
        data(cat(&[&zeros(1024), &pattern(1, 1024, 2048)]))
    );
}

#[test]
fn direct_write_flushes_and_drops_the_cached_range() {
    let mut fs = default_fs();
    run(&mut fs, 1, write(0, 4096));
    assert_eq!(run(&mut fs, 2, dwrite(1024, 1024)), done(1024));
    // The flush allocated all four (Unwritten), the waited IO converted them, the drop removed the
    // folio; block 1 was then overwritten on disk.
    assert_eq!(extents(&fs, 0, 4), vec![Written; 4]);
    assert_eq!(caches(&fs, 0, 4), vec![NotCached; 4]);
    let c = fs.counters();
    assert_eq!(
        (c.free, c.reserved, c.allocated, c.inflight_ios),
        (252, 0, 4, 0)
    );
    let expect = cat(&[
        &pattern(1, 0, 1024),
        &pattern(2, 1024, 1024),
        &pattern(1, 2048, 2048),
    ]);
    assert_eq!(contents(&fs), expect);
}

#[test]
fn direct_write_after_failed_flush_returns_the_error_and_writes_nothing() {
    // Issue item 7, keep-dirty.
    let mut fs = default_fs();
    run(&mut fs, 1, corrupt());
    run(&mut fs, 2, write(0, 4096));
    assert_eq!(run(&mut fs, 3, dwrite(0, 1024)), err(Errno::Efscorrupted));
    assert_eq!(contents(&fs), pattern(2, 0, 4096));
    assert_eq!(extents(&fs, 0, 4), vec![Delalloc; 4]);
    assert_eq!(caches(&fs, 0, 4), vec![Dirty; 4]);
    // The error stays recorded for fsync.
    assert_eq!(fs.wb_error(0), Some(Errno::Efscorrupted));
    let c = fs.counters();
    assert_eq!((c.reserved, c.allocated), (4, 0));
}

#[test]
fn direct_write_after_failed_flush_under_invalidate() {
    let mut fs = fs_with(1024, 1, 256, Policy::Invalidate, &[false]);
    run(&mut fs, 1, corrupt());
    run(&mut fs, 2, write(0, 4096));
    assert_eq!(run(&mut fs, 3, dwrite(0, 1024)), err(Errno::Efscorrupted));
    // The failing folio was punched and dropped; the direct write wrote nothing.
    assert_eq!(extents(&fs, 0, 4), vec![Hole; 4]);
    assert_eq!(contents(&fs), zeros(4096));
    assert_eq!(fs.counters().free, 256);
}

#[test]
fn direct_write_enospc_and_efscorrupted_after_the_drop() {
    let mut fs = fs_with(1024, 1, 2, Policy::KeepDirty, &[false]);
    run(&mut fs, 1, dwrite(0, 1024));
    run(&mut fs, 2, read(0, 10)); // caches folio 0, clean
    assert_eq!(caches(&fs, 0, 1), vec![Clean]);
    // Blocks 0..=2: two holes, one free.
    assert_eq!(run(&mut fs, 3, dwrite(0, 3072)), err(Errno::Enospc));
    assert_eq!(fs.size(0), 1024);
    assert_eq!(extents(&fs, 0, 3), vec![Written, Hole, Hole]);
    // The drop stays done.
    assert_eq!(caches(&fs, 0, 1), vec![NotCached]);
    run(&mut fs, 4, corrupt());
    // A hole needs allocating while corrupt.
    assert_eq!(
        run(&mut fs, 5, dwrite(1024, 1024)),
        err(Errno::Efscorrupted)
    );
    // Over an allocated block nothing is allocated: fine while corrupt.
    assert_eq!(run(&mut fs, 6, dwrite(0, 1024)), done(1024));
    assert_eq!(contents(&fs), pattern(6, 0, 1024));
}

#[test]
fn direct_read_alignment_and_eof() {
    let mut fs = default_fs();
    run(&mut fs, 1, write(0, 1500));
    // The flush makes blocks 0 and 1 Written; then an unaligned edge inside a Written block is
    // EINVAL (start 1 in block 0; end 1000 in block 0).
    assert_eq!(run(&mut fs, 2, dread(1, 1024)), err(Errno::Einval));
    assert_eq!(extents(&fs, 0, 2), vec![Written; 2]);
    assert_eq!(run(&mut fs, 3, dread(0, 1000)), err(Errno::Einval));
    assert_eq!(run(&mut fs, 4, dread(2048, 1024)), data(vec![]));
    assert_eq!(run(&mut fs, 5, dread(0, 0)), data(vec![]));
    // Clipped to the size: 1500 bytes.
    assert_eq!(run(&mut fs, 6, dread(0, 2048)), data(pattern(1, 0, 1500)));
}

#[test]
fn direct_read_flushes_first_and_returns_the_disk_view() {
    let mut fs = default_fs();
    run(&mut fs, 1, write(0, 2048));
    assert_eq!(run(&mut fs, 2, dread(0, 2048)), data(pattern(1, 0, 2048)));
    assert_eq!(extents(&fs, 0, 2), vec![Written; 2]);
    // The cache is not dropped.
    assert_eq!(caches(&fs, 0, 4), vec![Clean; 4]);
    assert_eq!(fs.counters().inflight_ios, 0);
    // Unwritten blocks read as zeros on disk.
    run(&mut fs, 3, falloc(2048, 2048, false));
    assert_eq!(run(&mut fs, 4, dread(2048, 2048)), data(zeros(2048)));
}

#[test]
fn direct_read_returns_the_flush_error() {
    let mut fs = default_fs();
    run(&mut fs, 1, corrupt());
    run(&mut fs, 2, write(0, 100));
    assert_eq!(run(&mut fs, 3, dread(0, 1024)), err(Errno::Efscorrupted));
    assert_eq!(extents(&fs, 0, 1), vec![Delalloc]);
}

#[test]
fn fsync_returns_then_clears_the_error() {
    let mut fs = default_fs();
    run(&mut fs, 1, corrupt());
    run(&mut fs, 2, write(0, 100));
    // The folio fails; Flush counts submitted IOs only.
    assert_eq!(run(&mut fs, 3, flush_all()), done(0));
    assert_eq!(fs.wb_error(0), Some(Errno::Efscorrupted));
    assert_eq!(run(&mut fs, 4, fsync()), err(Errno::Efscorrupted));
    assert_eq!(fs.wb_error(0), None);
    run(&mut fs, 5, repair());
    assert_eq!(run(&mut fs, 6, fsync()), done(0));
    assert_eq!(extents(&fs, 0, 1), vec![Written]);
    assert_eq!(caches(&fs, 0, 1), vec![Clean]);
    assert_eq!(run(&mut fs, 7, fsync()), done(0));
}

#[test]
fn flush_returns_the_number_of_ios() {
    let mut fs = default_fs();
    run(&mut fs, 1, write(0, 3 * 4096));
    assert_eq!(run(&mut fs, 2, flush(0, 0)), done(0));
    // Only folio 1 overlaps [5000, 5001).
    assert_eq!(run(&mut fs, 3, flush(5000, 1)), done(1));
    assert_eq!(
        writebacks(&fs, 0, 12),
        [vec![false; 4], vec![true; 4], vec![false; 4]].concat()
    );
    assert_eq!(run(&mut fs, 4, flush_all()), done(2));
    assert_eq!(fs.counters().inflight_ios, 3);
    // Nothing dirty left: nothing submitted, and clean folios under writeback are skipped.
    assert_eq!(run(&mut fs, 5, flush_all()), done(0));
    assert_eq!(fs.counters().inflight_ios, 3);
    assert_eq!(run(&mut fs, 6, flush(u64::MAX, u64::MAX)), done(0));
}

#[test]
fn complete_io_is_fifo_and_counts() {
    let mut fs = default_fs();
    // Submit folio 2, then 0, then 1.
    run(&mut fs, 1, write(8192, 10));
    run(&mut fs, 2, flush_all());
    run(&mut fs, 3, write(0, 10));
    run(&mut fs, 4, flush(0, 4096));
    run(&mut fs, 5, write(4096, 10));
    run(&mut fs, 6, flush(4096, 4096));
    assert_eq!(fs.counters().inflight_ios, 3);
    assert_eq!(run(&mut fs, 7, complete(1)), done(1));
    assert_eq!(obs(&fs, 8).extent, Written);
    assert!(!obs(&fs, 8).writeback);
    assert_eq!(
        (obs(&fs, 0).extent, obs(&fs, 0).writeback),
        (Unwritten, true)
    );
    assert_eq!(
        (obs(&fs, 4).extent, obs(&fs, 4).writeback),
        (Unwritten, true)
    );
    assert_eq!(run(&mut fs, 8, complete(1)), done(1));
    assert_eq!(
        (obs(&fs, 0).extent, obs(&fs, 0).writeback),
        (Written, false)
    );
    assert_eq!(
        (obs(&fs, 4).extent, obs(&fs, 4).writeback),
        (Unwritten, true)
    );
    assert_eq!(run(&mut fs, 9, complete(10)), done(1));
    assert_eq!(run(&mut fs, 10, complete(u32::MAX)), done(0));
    assert_eq!(run(&mut fs, 11, complete(0)), done(0));
    assert_eq!(fs.counters().inflight_ios, 0);
}

#[test]
fn complete_io_is_global_across_files() {
    let mut fs = fs_with(1024, 1, 256, Policy::KeepDirty, &[false, false]);
    run(
        &mut fs,
        1,
        reference::Op::Write {
            file: 1,
            off: 0,
            len: 10,
            sync: false,
        },
    );
    run(
        &mut fs,
        2,
        reference::Op::Flush {
            file: 1,
            off: 0,
            len: 10,
        },
    );
    run(&mut fs, 3, write(0, 10));
    run(&mut fs, 4, flush_all());
    assert_eq!(run(&mut fs, 5, complete(1)), done(1));
    assert_eq!(fs.blocks(1, 0, 1)[0].extent, Written);
    assert_eq!(obs(&fs, 0).extent, Unwritten);
}

#[test]
fn reclaim_refuses_dirty_and_writeback_and_keeps_contents() {
    let mut fs = default_fs();
    run(&mut fs, 1, write(0, 4096));
    assert_eq!(run(&mut fs, 2, reclaim(0)), done(0)); // dirty
    run(&mut fs, 3, flush_all());
    assert_eq!(run(&mut fs, 4, reclaim(0)), done(0)); // under writeback
    run(&mut fs, 5, complete(1));
    let before = contents(&fs);
    assert_eq!(run(&mut fs, 6, reclaim(0)), done(1));
    assert_eq!(caches(&fs, 0, 4), vec![NotCached; 4]);
    assert_eq!(contents(&fs), before);
    assert_eq!(run(&mut fs, 7, reclaim(0)), done(0)); // not cached
    assert_eq!(run(&mut fs, 8, reclaim(u64::MAX)), done(0));
    assert_eq!(run(&mut fs, 9, read(0, 4096)), data(pattern(1, 0, 4096)));
}

#[test]
fn reclaim_accepts_a_clean_hole_folio() {
    let mut fs = default_fs();
    run(&mut fs, 1, truncate(4096));
    run(&mut fs, 2, read(0, 1));
    assert_eq!(caches(&fs, 0, 4), vec![Clean; 4]);
    assert_eq!(run(&mut fs, 3, reclaim(0)), done(1));
    assert_eq!(fs.block_span(0), 0);
}

#[test]
fn evict_is_a_no_op_while_dirty_remains_and_succeeds_after_repair() {
    let mut fs = default_fs();
    run(&mut fs, 1, write(0, 100));
    run(&mut fs, 2, write(8192, 100));
    run(&mut fs, 3, corrupt());
    assert_eq!(run(&mut fs, 4, evict()), done(0));
    assert_eq!(
        extents(&fs, 0, 9),
        vec![Delalloc, Hole, Hole, Hole, Hole, Hole, Hole, Hole, Delalloc]
    );
    assert_eq!(obs(&fs, 0).cache, Dirty);
    // Eviction does not report or clear the error.
    assert_eq!(fs.wb_error(0), Some(Errno::Efscorrupted));
    run(&mut fs, 5, repair());
    assert_eq!(run(&mut fs, 6, evict()), done(1));
    assert_eq!(
        extents(&fs, 0, 9),
        vec![Written, Hole, Hole, Hole, Hole, Hole, Hole, Hole, Written]
    );
    assert_eq!(caches(&fs, 0, 12), vec![NotCached; 12]);
    assert_eq!(fs.counters().inflight_ios, 0);
    assert_eq!(fs.wb_error(0), Some(Errno::Efscorrupted));
    assert_eq!(run(&mut fs, 7, fsync()), err(Errno::Efscorrupted));
    let expect = cat(&[&pattern(1, 0, 100), &zeros(8092), &pattern(2, 8192, 100)]);
    assert_eq!(contents(&fs), expect);
}

#[test]
fn corrupt_and_repair_toggle_the_root() {
    let mut fs = default_fs();
    assert!(!fs.btree_corrupt());
    assert_eq!(run(&mut fs, 1, corrupt()), done(0));
    assert!(fs.btree_corrupt());
    assert_eq!(run(&mut fs, 2, corrupt()), done(0));
    assert_eq!(run(&mut fs, 3, repair()), done(0));
    assert!(!fs.btree_corrupt());
    assert_eq!(run(&mut fs, 4, repair()), done(0));
    assert!(!fs.btree_corrupt());
}

#[test]
fn reservation_works_while_corrupt_but_writeback_does_not() {
    let mut fs = default_fs();
    run(&mut fs, 1, corrupt());
    assert_eq!(run(&mut fs, 2, write(0, 2048)), done(2048));
    assert_eq!(fs.counters().reserved, 2);
    assert_eq!(run(&mut fs, 3, flush_all()), done(0));
    assert_eq!(extents(&fs, 0, 2), vec![Delalloc; 2]);
    assert_eq!(caches(&fs, 0, 2), vec![Dirty; 2]);
    run(&mut fs, 4, repair());
    assert_eq!(run(&mut fs, 5, flush_all()), done(1));
    assert_eq!(extents(&fs, 0, 2), vec![Unwritten; 2]);
}

#[test]
fn invalidate_drops_each_failing_folio_and_leaves_allocated_blocks() {
    // Folios 0 and 1 hold written data. Then, corrupt: folio 0 is rewritten (no delalloc in it),
    // folios 2 and 3 get delalloc blocks. Flush: folio 0 is submitted, folios 2 and 3 each fail
    // and each is dropped on its own.
    let mut fs = fs_with(1024, 1, 256, Policy::Invalidate, &[false]);
    run(&mut fs, 1, write(0, 8192));
    run(&mut fs, 2, fsync());
    run(&mut fs, 3, corrupt());
    run(&mut fs, 4, write(0, 1024));
    run(&mut fs, 5, write(8192, 1024));
    run(&mut fs, 6, write(12288, 1024));
    assert_eq!(fs.counters().reserved, 2);
    assert_eq!(run(&mut fs, 7, flush_all()), done(1));
    assert_eq!(fs.wb_error(0), Some(Errno::Efscorrupted));
    assert_eq!(extents(&fs, 0, 8), vec![Written; 8]);
    assert_eq!(caches(&fs, 0, 8), vec![Clean; 8]);
    assert_eq!(writebacks(&fs, 0, 4), vec![true, false, false, false]);
    assert_eq!(extents(&fs, 8, 8), vec![Hole; 8]);
    assert_eq!(caches(&fs, 8, 8), vec![NotCached; 8]);
    let c = fs.counters();
    assert_eq!((c.free, c.reserved, c.allocated), (248, 0, 8));
    assert_eq!(fs.size(0), 13312);
    let expect = cat(&[&pattern(4, 0, 1024), &pattern(1, 1024, 7168), &zeros(5120)]);
    assert_eq!(contents(&fs), expect);
}

#[test]
fn invalidate_drops_the_whole_failing_folio_including_dirty_written_blocks() {
    let mut fs = fs_with(1024, 1, 256, Policy::Invalidate, &[false]);
    run(&mut fs, 1, write(0, 1024));
    run(&mut fs, 2, fsync());
    run(&mut fs, 3, corrupt());
    run(&mut fs, 4, write(0, 2048)); // block 0 Written dirty, block 1 Delalloc
    assert_eq!(run(&mut fs, 5, flush_all()), done(0));
    assert_eq!(extents(&fs, 0, 2), vec![Written, Hole]);
    assert_eq!(caches(&fs, 0, 4), vec![NotCached; 4]);
    // The folio's dirty data is lost: block 0 reads the disk again.
    assert_eq!(contents(&fs), cat(&[&pattern(1, 0, 1024), &zeros(1024)]));
    assert_eq!(fs.counters().reserved, 0);
}

#[test]
fn keep_dirty_keeps_every_failing_folio() {
    let mut fs = default_fs();
    run(&mut fs, 1, write(0, 8192));
    run(&mut fs, 2, fsync());
    run(&mut fs, 3, corrupt());
    run(&mut fs, 4, write(0, 1024));
    run(&mut fs, 5, write(8192, 1024));
    run(&mut fs, 6, write(12288, 1024));
    assert_eq!(run(&mut fs, 7, flush_all()), done(1));
    assert_eq!(
        extents(&fs, 8, 5),
        vec![Delalloc, Hole, Hole, Hole, Delalloc]
    );
    assert_eq!(caches(&fs, 8, 5), vec![Dirty, Clean, Clean, Clean, Dirty]);
    assert_eq!(fs.counters().reserved, 2);
    let expect = cat(&[
        &pattern(4, 0, 1024),
        &pattern(1, 1024, 7168),
        &pattern(5, 8192, 1024),
        &zeros(3072),
        &pattern(6, 12288, 1024),
    ]);
    assert_eq!(contents(&fs), expect);
}

#[test]
fn direct_io_of_length_zero_is_zero_at_any_offset() {
    let mut fs = default_fs();
    assert_eq!(run(&mut fs, 1, dwrite(512, 0)), done(0));
    assert_eq!(run(&mut fs, 2, dread(512, 0)), data(vec![]));
    assert_eq!(run(&mut fs, 3, dwrite(1, 0)), done(0));
    assert_eq!(fs.size(0), 0);
    assert_eq!(fs.block_span(0), 0);
    // Nothing else happens either: no flush, no cache drop.
    run(&mut fs, 4, write(0, 1024));
    assert_eq!(run(&mut fs, 5, dread(1, 0)), data(vec![]));
    assert_eq!(run(&mut fs, 6, dwrite(513, 0)), done(0));
    assert_eq!(extents(&fs, 0, 1), vec![Delalloc]);
    assert_eq!(caches(&fs, 0, 1), vec![Dirty]);
    assert_eq!(fs.size(0), 1024);
}

#[test]
fn direct_read_unaligned_without_a_mapped_block_is_served() {
    let mut fs = default_fs();
    // Empty file: at EOF, nothing to read.
    assert_eq!(run(&mut fs, 1, dread(512, 1024)), data(vec![]));
    // All holes, size 4096.
    run(&mut fs, 2, truncate(4096));
    assert_eq!(run(&mut fs, 3, dread(512, 1024)), data(zeros(1024)));
    // Clipped to EOF: 4096 - 3000 = 1096 bytes.
    assert_eq!(run(&mut fs, 4, dread(3000, 5000)), data(zeros(1096)));
    assert_eq!(run(&mut fs, 5, dread(0, 100)), data(zeros(100)));
    // Unwritten blocks 4..=7 read as zeros too.
    run(&mut fs, 6, falloc(4096, 4096, false));
    assert_eq!(extents(&fs, 4, 4), vec![Unwritten; 4]);
    assert_eq!(run(&mut fs, 7, dread(4196, 200)), data(zeros(200)));
    assert_eq!(extents(&fs, 0, 8), cat_ext(&[&[Hole; 4], &[Unwritten; 4]]));
}

fn cat_ext(parts: &[&[reference::ExtentState]]) -> Vec<reference::ExtentState> {
    parts.iter().flat_map(|p| p.iter().copied()).collect()
}

#[test]
fn direct_read_unaligned_edge_in_a_written_block_is_einval() {
    let mut fs = default_fs();
    run(&mut fs, 1, dwrite(1024, 1024)); // block 1 Written, size 2048
                                         // Start 512 in hole block 0, end 2048 aligned: served.
    let expect = cat(&[&zeros(512), &pattern(1, 1024, 1024)]);
    assert_eq!(run(&mut fs, 2, dread(512, 1536)), data(expect.clone()));
    // End 1536 inside Written block 1.
    assert_eq!(run(&mut fs, 3, dread(512, 1024)), err(Errno::Einval));
    // Start 1536 inside Written block 1.
    assert_eq!(run(&mut fs, 4, dread(1536, 512)), err(Errno::Einval));
    // End 2560 in block 2, a hole past EOF: served, clipped to 1536 bytes.
    assert_eq!(run(&mut fs, 5, dread(512, 2048)), data(expect));
    // Both edges in hole block 0.
    assert_eq!(run(&mut fs, 6, dread(0, 100)), data(zeros(100)));
}

#[test]
fn direct_read_buffer_position_of_a_written_block_must_be_dma_aligned() {
    // 1 KiB blocks: hole block 0, Written block 1. The buffer position of block 1 is 1024 - off.
    let mut fs = default_fs();
    run(&mut fs, 1, dwrite(1024, 1024));
    // off 512: position 512, a multiple of 512: served (zeros, then #1's block).
    let expect = cat(&[&zeros(512), &pattern(1, 1024, 1024)]);
    assert_eq!(run(&mut fs, 2, dread(512, 1536)), data(expect));
    // off 256: position 768: EINVAL, although both request ends lie in holes or on boundaries.
    assert_eq!(run(&mut fs, 3, dread(256, 1792)), err(Errno::Einval));
    // off 1 over holes only (block 0 and the hole block 2 past EOF): still served.
    assert_eq!(run(&mut fs, 4, dread(1, 100)), data(zeros(100)));
}

#[test]
fn direct_read_unaligned_end_is_checked_before_the_eof_clip() {
    let mut fs = default_fs();
    run(&mut fs, 1, dwrite(0, 4096));
    run(&mut fs, 2, truncate(3584)); // block 3 stays, Written, EOF inside it
                                     // Aligned request: served, clipped to EOF (512 bytes).
    assert_eq!(
        run(&mut fs, 3, dread(3072, 1024)),
        data(pattern(1, 3072, 512))
    );
    // Ends exactly at EOF, but EOF is inside Written block 3: EINVAL.
    assert_eq!(run(&mut fs, 4, dread(3072, 512)), err(Errno::Einval));
    assert_eq!(run(&mut fs, 5, dread(0, 3584)), err(Errno::Einval));
    // End 6144 aligned: blocks 2..=3 then holes past EOF.
    assert_eq!(
        run(&mut fs, 6, dread(2048, 4096)),
        data(pattern(1, 2048, 1536))
    );

    // Unaligned end in a hole past the written data: served.
    let mut fs = default_fs();
    run(&mut fs, 1, dwrite(0, 1024));
    run(&mut fs, 2, truncate(4096));
    assert_eq!(
        run(&mut fs, 3, dread(0, 1536)),
        data(cat(&[&pattern(1, 0, 1024), &zeros(512)]))
    );
    assert_eq!(
        run(&mut fs, 4, dread(0, 1025)),
        data(cat(&[&pattern(1, 0, 1024), &zeros(1)]))
    );
}

#[test]
fn direct_read_unaligned_flushes_before_the_alignment_check() {
    let mut fs = default_fs();
    run(&mut fs, 1, write(0, 1024));
    assert_eq!(extents(&fs, 0, 1), vec![Delalloc]);
    // kiocb_write_and_wait runs first: the block is written back (and the waited IO makes it
    // Written), then the mapping is a Written block at an unaligned start.
    assert_eq!(run(&mut fs, 2, dread(512, 512)), err(Errno::Einval));
    assert_eq!(extents(&fs, 0, 1), vec![Written]);
    assert_eq!(caches(&fs, 0, 1), vec![Clean]);
    let c = fs.counters();
    assert_eq!(
        (c.free, c.reserved, c.allocated, c.inflight_ios),
        (255, 0, 1, 0)
    );
    assert_eq!(contents(&fs), pattern(1, 0, 1024));
}
