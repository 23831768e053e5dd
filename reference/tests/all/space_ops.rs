//! Fallocate, PunchHole, ZeroRange and Truncate, expected values derived by hand from SPEC.md.

use crate::common;
use common::*;
use reference::{Errno, Observe, Policy};

#[test]
fn fallocate_argument_errors() {
    let max = 16 << 10;
    let mut fs = fs_max(1024, 1, 64, max, Policy::KeepDirty, &[false]);
    assert_eq!(run(&mut fs, 1, falloc(0, 0, false)), err(Errno::Einval));
    // EINVAL comes before EFBIG.
    assert_eq!(
        run(&mut fs, 2, falloc(u64::MAX, 0, false)),
        err(Errno::Einval)
    );
    assert_eq!(
        run(&mut fs, 3, falloc(max - 10, 11, false)),
        err(Errno::Efbig)
    );
    assert_eq!(
        run(&mut fs, 4, falloc(u64::MAX, u64::MAX, true)),
        err(Errno::Efbig)
    );
    assert_eq!(run(&mut fs, 5, falloc(max - 10, 10, false)), done(0));
    assert_eq!(fs.size(0), max);
}

#[test]
fn fallocate_turns_holes_and_delalloc_into_unwritten() {
    let mut fs = default_fs();
    run(&mut fs, 1, write(0, 1024)); // block 0 Delalloc; folio 0 cached
    assert_eq!(run(&mut fs, 2, falloc(0, 4096, false)), done(0));
    assert_eq!(extents(&fs, 0, 4), vec![Unwritten; 4]);
    // Dirty data stays dirty.
    assert_eq!(caches(&fs, 0, 4), vec![Dirty, Clean, Clean, Clean]);
    let c = fs.counters();
    assert_eq!((c.free, c.reserved, c.allocated), (252, 0, 4));
    assert_eq!(fs.size(0), 4096);
    assert_eq!(contents(&fs), cat(&[&pattern(1, 0, 1024), &zeros(3072)]));
    // Writeback converts only the block it wrote.
    assert_eq!(run(&mut fs, 3, fsync()), done(0));
    assert_eq!(
        extents(&fs, 0, 4),
        vec![Written, Unwritten, Unwritten, Unwritten]
    );
    // Unwritten and Written are left alone by a second fallocate (nothing to allocate).
    assert_eq!(run(&mut fs, 4, falloc(0, 4096, false)), done(0));
    assert_eq!(fs.counters().allocated, 4);
}

#[test]
fn fallocate_keep_size_leaves_the_size() {
    let mut fs = default_fs();
    run(&mut fs, 1, write(0, 100));
    assert_eq!(run(&mut fs, 2, falloc(1000, 5000, true)), done(0));
    assert_eq!(fs.size(0), 100);
    // [1000, 6000) overlaps blocks 0..=5; block 0 was Delalloc.
    assert_eq!(
        extents(&fs, 0, 7),
        vec![Unwritten, Unwritten, Unwritten, Unwritten, Unwritten, Unwritten, Hole]
    );
    assert_eq!(run(&mut fs, 3, read(0, 10_000)), data(pattern(1, 0, 100)));
    assert_eq!(run(&mut fs, 4, falloc(1000, 5000, false)), done(0));
    assert_eq!(fs.size(0), 6000);
}

#[test]
fn fallocate_enospc_counts_holes_only() {
    let mut fs = fs_with(1024, 1, 4, Policy::KeepDirty, &[false]);
    run(&mut fs, 1, write(0, 2048)); // 2 reserved, 2 free
    let before = fs.counters();
    // [0, 5120) has 3 holes > 2 free.
    assert_eq!(run(&mut fs, 2, falloc(0, 5120, false)), err(Errno::Enospc));
    assert_eq!(fs.counters(), before);
    assert_eq!(fs.size(0), 2048);
    assert_eq!(
        extents(&fs, 0, 5),
        vec![Delalloc, Delalloc, Hole, Hole, Hole]
    );
    // [0, 4096): 2 holes, 2 delalloc: fits exactly.
    assert_eq!(run(&mut fs, 3, falloc(0, 4096, false)), done(0));
    let c = fs.counters();
    assert_eq!((c.free, c.reserved, c.allocated), (0, 0, 4));
}

#[test]
fn fallocate_under_corruption() {
    let mut fs = default_fs();
    run(&mut fs, 1, write(0, 2048));
    run(&mut fs, 2, fsync()); // blocks 0, 1 Written
    run(&mut fs, 3, write(2048, 10)); // block 2 Delalloc
    run(&mut fs, 4, corrupt());
    let before = fs.counters();
    // A delalloc block needs the btree.
    assert_eq!(
        run(&mut fs, 5, falloc(2048, 1, false)),
        err(Errno::Efscorrupted)
    );
    // So does a hole.
    assert_eq!(
        run(&mut fs, 6, falloc(4096, 1024, false)),
        err(Errno::Efscorrupted)
    );
    assert_eq!(fs.counters(), before);
    assert_eq!(fs.size(0), 2058);
    // Only allocated blocks: nothing to allocate, succeeds (the size stays: 2048 < 2058).
    assert_eq!(run(&mut fs, 7, falloc(0, 2048, false)), done(0));
    assert_eq!(fs.size(0), 2058);
    assert_eq!(extents(&fs, 0, 3), vec![Written, Written, Delalloc]);
}

#[test]
fn fallocate_enospc_wins_over_corruption() {
    let mut fs = fs_with(1024, 1, 2, Policy::KeepDirty, &[false]);
    run(&mut fs, 1, corrupt());
    assert_eq!(run(&mut fs, 2, falloc(0, 3072, false)), err(Errno::Enospc));
    assert_eq!(
        run(&mut fs, 3, falloc(0, 2048, false)),
        err(Errno::Efscorrupted)
    );
}

#[test]
fn punch_argument_errors() {
    let max = 16 << 10;
    let mut fs = fs_max(1024, 1, 64, max, Policy::KeepDirty, &[false]);
    assert_eq!(run(&mut fs, 1, punch(0, 0)), err(Errno::Einval));
    assert_eq!(run(&mut fs, 2, punch(max, 1)), err(Errno::Efbig));
    assert_eq!(
        run(&mut fs, 3, punch(u64::MAX, u64::MAX)),
        err(Errno::Efbig)
    );
    assert_eq!(run(&mut fs, 4, punch(0, max)), done(0));
}

#[test]
fn punch_of_part_of_a_block_zeroes_only_that_part() {
    // Issue item 4.
    let mut fs = default_fs();
    run(&mut fs, 1, write(0, 4096));
    assert_eq!(run(&mut fs, 2, punch(100, 200)), done(0));
    assert_eq!(
        contents(&fs),
        cat(&[&pattern(1, 0, 100), &zeros(200), &pattern(1, 300, 3796)])
    );
    assert_eq!(extents(&fs, 0, 4), vec![Delalloc; 4]);
    assert_eq!(fs.counters().reserved, 4);
}

#[test]
fn punch_of_part_of_a_written_block_dirties_it() {
    let mut fs = default_fs();
    run(&mut fs, 1, write(0, 4096));
    run(&mut fs, 2, fsync());
    run(&mut fs, 3, reclaim(0));
    assert_eq!(run(&mut fs, 4, punch(100, 200)), done(0));
    // The zeroing rule instantiated the folio and dirtied block 0 only.
    assert_eq!(caches(&fs, 0, 4), vec![Dirty, Clean, Clean, Clean]);
    assert_eq!(extents(&fs, 0, 4), vec![Written; 4]);
    assert_eq!(
        contents(&fs),
        cat(&[&pattern(1, 0, 100), &zeros(200), &pattern(1, 300, 3796)])
    );
    run(&mut fs, 5, fsync());
    run(&mut fs, 6, reclaim(0));
    assert_eq!(
        contents(&fs),
        cat(&[&pattern(1, 0, 100), &zeros(200), &pattern(1, 300, 3796)])
    );
}

#[test]
fn punch_of_part_of_a_clean_unwritten_block_does_nothing() {
    let mut fs = default_fs();
    run(&mut fs, 1, falloc(0, 4096, false));
    assert_eq!(run(&mut fs, 2, punch(100, 200)), done(0));
    assert_eq!(caches(&fs, 0, 4), vec![NotCached; 4]);
    assert_eq!(extents(&fs, 0, 4), vec![Unwritten; 4]);
}

#[test]
fn punch_whole_blocks_releases_and_frees() {
    let mut fs = default_fs();
    run(&mut fs, 1, write(0, 4096));
    // Blocks 1 and 2 are whole in [1024, 3072); the folio is only partly inside.
    assert_eq!(run(&mut fs, 2, punch(1024, 2048)), done(0));
    assert_eq!(extents(&fs, 0, 4), vec![Delalloc, Hole, Hole, Delalloc]);
    assert_eq!(caches(&fs, 0, 4), vec![Dirty, Clean, Clean, Dirty]);
    assert_eq!(fs.counters().reserved, 2);
    assert_eq!(
        contents(&fs),
        cat(&[&pattern(1, 0, 1024), &zeros(2048), &pattern(1, 3072, 1024)])
    );
    // Written data, whole folio inside the range: folio removed, blocks freed.
    run(&mut fs, 3, fsync());
    assert_eq!(fs.counters().allocated, 2);
    assert_eq!(run(&mut fs, 4, punch(0, 4096)), done(0));
    assert_eq!(extents(&fs, 0, 4), vec![Hole; 4]);
    assert_eq!(caches(&fs, 0, 4), vec![NotCached; 4]);
    let c = fs.counters();
    assert_eq!((c.free, c.reserved, c.allocated), (256, 0, 0));
    assert_eq!(fs.size(0), 4096);
    assert_eq!(contents(&fs), zeros(4096));
}

#[test]
fn punch_waits_for_writeback() {
    let mut fs = default_fs();
    run(&mut fs, 1, write(0, 8192));
    run(&mut fs, 2, flush_all());
    assert_eq!(fs.counters().inflight_ios, 2);
    run(&mut fs, 3, punch(0, 10));
    // Folio 0's IO completed; folio 1's is still in flight.
    assert_eq!(fs.counters().inflight_ios, 1);
    assert_eq!(
        extents(&fs, 0, 5),
        vec![Written, Written, Written, Written, Unwritten]
    );
    assert_eq!(obs(&fs, 0).cache, Dirty);
}

#[test]
fn punch_under_corruption() {
    let mut fs = default_fs();
    run(&mut fs, 1, write(0, 4096));
    run(&mut fs, 2, fsync());
    run(&mut fs, 3, write(4096, 4096)); // blocks 4..=7 Delalloc
    run(&mut fs, 4, corrupt());
    let before = fs.counters();
    assert_eq!(run(&mut fs, 5, punch(1024, 1024)), err(Errno::Efscorrupted));
    assert_eq!(fs.counters(), before);
    assert_eq!(extents(&fs, 1, 1), vec![Written]);
    assert_eq!(
        contents(&fs),
        cat(&[&pattern(1, 0, 4096), &pattern(3, 4096, 4096)])
    );
    // Delalloc-only whole blocks: counters only, fine.
    assert_eq!(run(&mut fs, 6, punch(4096, 2048)), done(0));
    assert_eq!(extents(&fs, 4, 4), vec![Hole, Hole, Delalloc, Delalloc]);
    assert_eq!(fs.counters().reserved, 2);
    // No whole block at all: just the zeroing, which never fails.
    assert_eq!(run(&mut fs, 7, punch(10, 10)), done(0));
    assert_eq!(obs(&fs, 0).cache, Dirty);
    assert_eq!(
        fs.peek(0, 0, 30),
        cat(&[&pattern(1, 0, 10), &zeros(10), &pattern(1, 20, 10)])
    );
}

#[test]
fn punch_past_eof_zeroes_nothing_but_frees_blocks() {
    let mut fs = default_fs();
    run(&mut fs, 1, write(0, 100));
    run(&mut fs, 2, falloc(4096, 4096, true));
    assert_eq!(fs.counters().allocated, 4);
    assert_eq!(run(&mut fs, 3, punch(4096, 4096)), done(0));
    assert_eq!(fs.counters().allocated, 0);
    assert_eq!(fs.size(0), 100);
}

#[test]
fn zero_range_argument_errors() {
    let max = 16 << 10;
    let mut fs = fs_max(1024, 1, 64, max, Policy::KeepDirty, &[false]);
    assert_eq!(run(&mut fs, 1, zero(5, 0, false)), err(Errno::Einval));
    assert_eq!(run(&mut fs, 2, zero(max - 1, 2, false)), err(Errno::Efbig));
    assert_eq!(run(&mut fs, 3, zero(u64::MAX, 2, true)), err(Errno::Efbig));
}

#[test]
fn zero_range_zeroes_edges_and_makes_whole_blocks_unwritten() {
    let mut fs = default_fs();
    run(&mut fs, 1, write(0, 4096));
    run(&mut fs, 2, fsync());
    // [512, 3000): block 1 whole; blocks 0 and 2 partial.
    assert_eq!(run(&mut fs, 3, zero(512, 2488, false)), done(0));
    assert_eq!(
        extents(&fs, 0, 4),
        vec![Written, Unwritten, Written, Written]
    );
    assert_eq!(caches(&fs, 0, 4), vec![Dirty, Clean, Dirty, Clean]);
    let c = fs.counters();
    assert_eq!((c.free, c.reserved, c.allocated), (252, 0, 4));
    assert_eq!(
        contents(&fs),
        cat(&[&pattern(1, 0, 512), &zeros(2488), &pattern(1, 3000, 1096)])
    );
    assert_eq!(fs.size(0), 4096);
}

#[test]
fn zero_range_keep_size() {
    let mut fs = default_fs();
    run(&mut fs, 1, write(0, 100));
    assert_eq!(run(&mut fs, 2, zero(2048, 2048, true)), done(0));
    assert_eq!(fs.size(0), 100);
    assert_eq!(
        extents(&fs, 0, 4),
        vec![Delalloc, Hole, Unwritten, Unwritten]
    );
    assert_eq!(run(&mut fs, 3, zero(2048, 4096, false)), done(0));
    assert_eq!(fs.size(0), 6144);
    assert_eq!(
        extents(&fs, 0, 7),
        vec![Delalloc, Hole, Unwritten, Unwritten, Unwritten, Unwritten, Hole]
    );
    assert_eq!(contents(&fs), cat(&[&pattern(1, 0, 100), &zeros(6044)]));
}

#[test]
fn zero_range_enospc_formula() {
    // W = 4 whole blocks; A = 1 allocated, D = 1 delalloc; free = 2: 2 + 1 + 1 >= 4 fits.
    let mut fs = fs_with(1024, 1, 4, Policy::KeepDirty, &[false]);
    run(&mut fs, 1, falloc(0, 1024, false));
    run(&mut fs, 2, write(1024, 1024));
    assert_eq!(run(&mut fs, 3, zero(0, 4096, false)), done(0));
    assert_eq!(extents(&fs, 0, 4), vec![Unwritten; 4]);
    let c = fs.counters();
    assert_eq!((c.free, c.reserved, c.allocated), (0, 0, 4));
    assert_eq!(contents(&fs), zeros(4096));

    // Capacity 3: free 1 + 1 + 1 < 4: ENOSPC, nothing changes.
    let mut fs = fs_with(1024, 1, 3, Policy::KeepDirty, &[false]);
    run(&mut fs, 1, falloc(0, 1024, false));
    run(&mut fs, 2, write(1024, 1024));
    let before = fs.counters();
    assert_eq!(run(&mut fs, 3, zero(0, 4096, false)), err(Errno::Enospc));
    assert_eq!(fs.counters(), before);
    assert_eq!(fs.size(0), 2048);
    assert_eq!(extents(&fs, 0, 4), vec![Unwritten, Delalloc, Hole, Hole]);
    assert_eq!(contents(&fs), cat(&[&zeros(1024), &pattern(2, 1024, 1024)]));
}

#[test]
fn zero_range_under_corruption() {
    let mut fs = default_fs();
    run(&mut fs, 1, write(0, 4096));
    run(&mut fs, 2, corrupt());
    // Whole blocks, even all delalloc or holes: EFSCORRUPTED.
    assert_eq!(
        run(&mut fs, 3, zero(0, 1024, false)),
        err(Errno::Efscorrupted)
    );
    assert_eq!(
        run(&mut fs, 4, zero(8192, 1024, false)),
        err(Errno::Efscorrupted)
    );
    assert_eq!(fs.size(0), 4096);
    assert_eq!(contents(&fs), pattern(1, 0, 4096));
    // No whole block: zeroing only.
    assert_eq!(run(&mut fs, 5, zero(10, 10, false)), done(0));
    assert_eq!(
        fs.peek(0, 0, 30),
        cat(&[&pattern(1, 0, 10), &zeros(10), &pattern(1, 20, 10)])
    );
}

#[test]
fn truncate_down_then_up_reads_zeros_in_the_gap() {
    // Issue item 3, delalloc data.
    let mut fs = default_fs();
    run(&mut fs, 1, write(0, 4096));
    assert_eq!(run(&mut fs, 2, truncate(1500)), done(0));
    // keep = 2 blocks; blocks 2, 3 punched but the folio (holding block 1) stays.
    assert_eq!(extents(&fs, 0, 4), vec![Delalloc, Delalloc, Hole, Hole]);
    assert_eq!(caches(&fs, 0, 4), vec![Dirty, Dirty, Clean, Clean]);
    assert_eq!(fs.counters().reserved, 2);
    assert_eq!(run(&mut fs, 3, truncate(4096)), done(0));
    assert_eq!(
        run(&mut fs, 4, read(0, 4096)),
        data(cat(&[&pattern(1, 0, 1500), &zeros(2596)]))
    );
}

#[test]
fn truncate_down_then_up_reads_zeros_with_written_data() {
    let mut fs = default_fs();
    run(&mut fs, 1, write(0, 8192));
    run(&mut fs, 2, fsync());
    run(&mut fs, 3, reclaim(0));
    assert_eq!(run(&mut fs, 4, truncate(1500)), done(0));
    // The tail of block 1 is zeroed in the cache and dirty; folio 1 is gone.
    assert_eq!(
        extents(&fs, 0, 8),
        vec![Written, Written, Hole, Hole, Hole, Hole, Hole, Hole]
    );
    assert_eq!(
        caches(&fs, 0, 8),
        vec![Clean, Dirty, Clean, Clean, NotCached, NotCached, NotCached, NotCached]
    );
    let c = fs.counters();
    assert_eq!((c.free, c.allocated), (254, 2));
    assert_eq!(run(&mut fs, 5, truncate(8192)), done(0));
    assert_eq!(contents(&fs), cat(&[&pattern(1, 0, 1500), &zeros(6692)]));
    run(&mut fs, 6, evict());
    assert_eq!(contents(&fs), cat(&[&pattern(1, 0, 1500), &zeros(6692)]));
}

#[test]
fn truncate_grow_only_moves_eof_and_efbig() {
    let max = 16 << 10;
    let mut fs = fs_max(1024, 1, 64, max, Policy::KeepDirty, &[false]);
    assert_eq!(run(&mut fs, 1, truncate(max + 1)), err(Errno::Efbig));
    assert_eq!(run(&mut fs, 2, truncate(u64::MAX)), err(Errno::Efbig));
    assert_eq!(run(&mut fs, 3, truncate(max)), done(0));
    assert_eq!(fs.size(0), max);
    assert_eq!(fs.block_span(0), 0);
    assert_eq!(fs.counters().free, 64);
    assert_eq!(contents(&fs), zeros(max as usize));
}

#[test]
fn truncate_to_zero_releases_everything() {
    let mut fs = default_fs();
    run(&mut fs, 1, write(0, 3000));
    run(&mut fs, 2, fsync());
    run(&mut fs, 3, write(5000, 3000));
    assert_eq!(run(&mut fs, 4, truncate(0)), done(0));
    assert_eq!(fs.size(0), 0);
    assert_eq!(fs.block_span(0), 0);
    let c = fs.counters();
    assert_eq!((c.free, c.reserved, c.allocated), (256, 0, 0));
}

#[test]
fn truncate_under_corruption() {
    let mut fs = default_fs();
    run(&mut fs, 1, write(0, 4096));
    run(&mut fs, 2, fsync());
    run(&mut fs, 3, write(4096, 4096));
    run(&mut fs, 4, corrupt());
    let before = fs.counters();
    // Blocks >= 2 include allocated ones: EFSCORRUPTED, nothing else changes.
    assert_eq!(run(&mut fs, 5, truncate(1500)), err(Errno::Efscorrupted));
    assert_eq!(fs.counters(), before);
    assert_eq!(fs.size(0), 8192);
    assert_eq!(
        contents(&fs),
        cat(&[&pattern(1, 0, 4096), &pattern(3, 4096, 4096)])
    );
    assert_eq!(caches(&fs, 0, 2), vec![Clean; 2]);
    // Past block 4 only delalloc: releasing reservations is fine while corrupt.
    assert_eq!(run(&mut fs, 6, truncate(4500)), done(0));
    assert_eq!(fs.size(0), 4500);
    assert_eq!(
        extents(&fs, 0, 8),
        vec![Written, Written, Written, Written, Delalloc, Hole, Hole, Hole]
    );
    assert_eq!(fs.counters().reserved, 1);
    assert_eq!(
        contents(&fs),
        cat(&[&pattern(1, 0, 4096), &pattern(3, 4096, 404)])
    );
}

/// Block 0 Written with 1000 bytes, blocks 1..=8 keep-size preallocation past EOF.
fn prealloc_past_eof() -> reference::model::RefFs {
    let mut fs = default_fs();
    run(&mut fs, 1, write(0, 1000));
    run(&mut fs, 2, fsync());
    assert_eq!(run(&mut fs, 3, falloc(1024, 8192, true)), done(0));
    assert_eq!(fs.size(0), 1000);
    let mut ext = vec![Written];
    ext.extend([Unwritten; 8]);
    assert_eq!(extents(&fs, 0, 9), ext);
    let c = fs.counters();
    assert_eq!((c.free, c.allocated), (247, 9));
    assert_eq!(caches(&fs, 0, 4), vec![Clean; 4]);
    fs
}

#[test]
fn truncate_to_the_same_size_frees_preallocation_past_eof() {
    let mut fs = prealloc_past_eof();
    // keep = ceil(1000 / 1024) = 1: blocks 1.. are freed, as a shrink would.
    assert_eq!(run(&mut fs, 4, truncate(1000)), done(0));
    assert_eq!(fs.size(0), 1000);
    let mut ext = vec![Written];
    ext.extend([Hole; 8]);
    assert_eq!(extents(&fs, 0, 9), ext);
    let c = fs.counters();
    assert_eq!((c.free, c.reserved, c.allocated), (255, 0, 1));
    // The EOF block's tail [1000, 1024) is zeroed unclipped: Written, so block 0 is dirtied
    // (iomap_truncate_page); blocks 1..=3 of folio 0 are clean zeros.
    assert_eq!(caches(&fs, 0, 4), vec![Dirty, Clean, Clean, Clean]);
    assert_eq!(contents(&fs), pattern(1, 0, 1000));
    assert_eq!(run(&mut fs, 5, flush_all()), done(1));
}

#[test]
fn truncate_to_the_same_aligned_size_frees_without_zeroing() {
    let mut fs = default_fs();
    run(&mut fs, 1, write(0, 2048));
    run(&mut fs, 2, fsync());
    run(&mut fs, 3, falloc(2048, 2048, true));
    assert_eq!(
        extents(&fs, 0, 4),
        vec![Written, Written, Unwritten, Unwritten]
    );
    assert_eq!(run(&mut fs, 4, truncate(2048)), done(0));
    assert_eq!(extents(&fs, 0, 4), vec![Written, Written, Hole, Hole]);
    assert_eq!(caches(&fs, 0, 4), vec![Clean; 4]);
    assert_eq!(fs.counters().allocated, 2);
}

#[test]
fn truncate_to_zero_of_an_empty_file_frees_its_preallocation() {
    let mut fs = default_fs();
    run(&mut fs, 1, falloc(0, 4096, true));
    assert_eq!(fs.size(0), 0);
    assert_eq!(fs.counters().allocated, 4);
    assert_eq!(run(&mut fs, 2, truncate(0)), done(0));
    assert_eq!(fs.block_span(0), 0);
    let c = fs.counters();
    assert_eq!((c.free, c.allocated), (256, 0));
}

#[test]
fn truncate_up_keeps_preallocation_past_the_new_eof() {
    // xfs_setattr_size only frees for newsize <= oldsize (checked on Linux 6.18, XFS and ext4).
    let mut fs = prealloc_past_eof();
    assert_eq!(run(&mut fs, 4, truncate(3000)), done(0));
    assert_eq!(fs.size(0), 3000);
    let mut ext = vec![Written];
    ext.extend([Unwritten; 8]);
    assert_eq!(extents(&fs, 0, 9), ext);
    assert_eq!(fs.counters().allocated, 9);
    assert_eq!(caches(&fs, 0, 4), vec![Clean; 4]);
}

#[test]
fn truncate_to_the_same_size_under_corruption() {
    let mut fs = prealloc_past_eof();
    run(&mut fs, 4, corrupt());
    let before = fs.counters();
    // Blocks >= 1 are allocated: freeing them needs the btree.
    assert_eq!(run(&mut fs, 5, truncate(1000)), err(Errno::Efscorrupted));
    assert_eq!(fs.counters(), before);
    assert_eq!(extents(&fs, 1, 1), vec![Unwritten]);
    assert_eq!(caches(&fs, 0, 1), vec![Clean]);
}
