//! Buffered write, read and mmap ops, expected values derived by hand from SPEC.md.

use crate::common;
use common::*;
use reference::{Errno, Observe, Policy};

#[test]
fn write_reserves_holes_and_reads_back() {
    // 1 KiB blocks, 4-block folios. Bytes [100, 5100) overlap blocks 0..=4 (5100 < 5120).
    let mut fs = default_fs();
    assert_eq!(run(&mut fs, 1, write(100, 5000)), done(5000));
    assert_eq!(fs.size(0), 5100);
    assert_eq!(
        extents(&fs, 0, 6),
        vec![Delalloc, Delalloc, Delalloc, Delalloc, Delalloc, Hole]
    );
    // Block 4 is in folio 1, which the write instantiated: blocks 5..=7 are cached clean.
    assert_eq!(
        caches(&fs, 0, 9),
        vec![Dirty, Dirty, Dirty, Dirty, Dirty, Clean, Clean, Clean, NotCached]
    );
    let c = fs.counters();
    assert_eq!(
        (c.free, c.reserved, c.allocated, c.inflight_ios),
        (251, 5, 0, 0)
    );
    let expect = cat(&[&zeros(100), &pattern(1, 100, 5000)]);
    assert_eq!(run(&mut fs, 2, read(0, 1 << 20)), data(expect.clone()));
    assert_eq!(contents(&fs), expect);
}

#[test]
fn overwrite_of_delalloc_reserves_nothing_more() {
    let mut fs = default_fs();
    run(&mut fs, 1, write(0, 1024));
    run(&mut fs, 2, write(0, 1024));
    run(&mut fs, 3, write(512, 1024)); // blocks 0 (delalloc) and 1 (hole): one more
    let c = fs.counters();
    assert_eq!((c.free, c.reserved), (254, 2));
    assert_eq!(
        contents(&fs),
        cat(&[&pattern(2, 0, 512), &pattern(3, 512, 1024)])
    );
}

#[test]
fn partial_block_write_keeps_other_bytes() {
    let mut fs = default_fs();
    run(&mut fs, 1, write(0, 1000));
    run(&mut fs, 2, write(500, 10));
    assert_eq!(
        contents(&fs),
        cat(&[
            &pattern(1, 0, 500),
            &pattern(2, 500, 10),
            &pattern(1, 510, 490)
        ])
    );
}

#[test]
fn extending_write_zeroes_the_old_eof_block_tail() {
    // Issue item 1: 100 bytes at 0, then a write at 3000: bytes [100, 3000) read as zeros.
    let mut fs = default_fs();
    run(&mut fs, 1, write(0, 100));
    run(&mut fs, 2, write(3000, 10));
    assert_eq!(fs.size(0), 3010);
    let expect = cat(&[&pattern(1, 0, 100), &zeros(2900), &pattern(2, 3000, 10)]);
    assert_eq!(run(&mut fs, 3, read(0, 4096)), data(expect));
}

#[test]
fn extending_write_after_writeback_and_reclaim_reads_zeros_in_the_gap() {
    // The old EOF block is Written and its folio gone: the gap must still read as zeros (the
    // disk holds zeros past EOF because the cache did when it was written back).
    let mut fs = default_fs();
    run(&mut fs, 1, write(0, 100));
    assert_eq!(run(&mut fs, 2, fsync()), done(0));
    assert_eq!(run(&mut fs, 3, reclaim(0)), done(1));
    run(&mut fs, 4, write(3000, 10));
    assert_eq!(extents(&fs, 0, 3), vec![Written, Hole, Delalloc]);
    let expect = cat(&[&pattern(1, 0, 100), &zeros(2900), &pattern(4, 3000, 10)]);
    assert_eq!(run(&mut fs, 5, read(0, 4096)), data(expect));
}

#[test]
fn write_at_or_past_max_is_efbig_and_changes_nothing() {
    let max = 16 << 10;
    let mut fs = fs_max(1024, 1, 64, max, Policy::KeepDirty, &[false]);
    run(&mut fs, 1, write(0, 10));
    let before = fs.counters();
    assert_eq!(run(&mut fs, 2, write(max, 1)), err(Errno::Efbig));
    assert_eq!(
        run(&mut fs, 3, write(u64::MAX, u64::MAX)),
        err(Errno::Efbig)
    );
    assert_eq!(fs.counters(), before);
    assert_eq!(fs.size(0), 10);
    // len == 0 is Done(0) even past the maximum.
    assert_eq!(run(&mut fs, 4, write(u64::MAX, 0)), done(0));
    assert_eq!(run(&mut fs, 5, write(max + 5, 0)), done(0));
}

#[test]
fn write_crossing_max_is_cut_short() {
    let max = 16 << 10;
    let mut fs = fs_max(1024, 1, 64, max, Policy::KeepDirty, &[false]);
    assert_eq!(run(&mut fs, 1, write(max - 100, 0x1000)), done(100));
    assert_eq!(fs.size(0), max);
    // Only block 15 (the last) was touched.
    assert_eq!(fs.counters().reserved, 1);
    assert_eq!(fs.peek(0, max - 100, 1000), pattern(1, max - 100, 100));
    assert_eq!(run(&mut fs, 2, write(0, u64::MAX)), done(max));
    assert_eq!(fs.counters().reserved, 16);
}

#[test]
fn enospc_changes_no_counter_and_no_byte() {
    // Issue item 5: a write needing more blocks than are free.
    let mut fs = fs_with(1024, 1, 4, Policy::KeepDirty, &[false]);
    run(&mut fs, 1, write(0, 1500)); // blocks 0, 1: free 2
    let before = fs.counters();
    let blocks_before = fs.blocks(0, 0, 8);
    // [1000, 5000) overlaps blocks 0..=4; holes 2..=4 need 3 > 2 free.
    assert_eq!(run(&mut fs, 2, write(1000, 4000)), err(Errno::Enospc));
    assert_eq!(fs.counters(), before);
    assert_eq!(fs.blocks(0, 0, 8), blocks_before);
    assert_eq!(fs.size(0), 1500);
    assert_eq!(contents(&fs), pattern(1, 0, 1500));
    // Exactly enough is fine: [1500, 4096) needs blocks 2 and 3.
    assert_eq!(run(&mut fs, 3, write(1500, 2596)), done(2596));
    assert_eq!(fs.counters().free, 0);
}

#[test]
fn write_waits_for_writeback_before_changing_the_folio() {
    // Issue item 6.
    let mut fs = default_fs();
    run(&mut fs, 1, write(0, 4096));
    assert_eq!(run(&mut fs, 2, flush_all()), done(1));
    assert_eq!(fs.counters().inflight_ios, 1);
    assert_eq!(writebacks(&fs, 0, 4), vec![true; 4]);
    assert_eq!(extents(&fs, 0, 4), vec![Unwritten; 4]);
    run(&mut fs, 3, write(0, 100));
    assert_eq!(fs.counters().inflight_ios, 0);
    assert_eq!(extents(&fs, 0, 4), vec![Written; 4]);
    assert_eq!(writebacks(&fs, 0, 4), vec![false; 4]);
    assert_eq!(caches(&fs, 0, 4), vec![Dirty, Clean, Clean, Clean]);
    assert_eq!(fs.wb_error(0), None);
    assert_eq!(run(&mut fs, 4, fsync()), done(0));
    assert_eq!(
        contents(&fs),
        cat(&[&pattern(3, 0, 100), &pattern(1, 100, 3996)])
    );
}

#[test]
fn sync_write_writes_back_and_completes() {
    let mut fs = default_fs();
    assert_eq!(run(&mut fs, 1, write_sync(0, 0x1400)), done(0x1400));
    assert_eq!(extents(&fs, 0, 5), vec![Written; 5]);
    assert_eq!(caches(&fs, 0, 8), vec![Clean; 8]);
    let c = fs.counters();
    assert_eq!(
        (c.free, c.reserved, c.allocated, c.inflight_ios),
        (251, 0, 5, 0)
    );
    // The disk holds the data: drop the cache and read again.
    assert_eq!(run(&mut fs, 2, evict()), done(1));
    assert_eq!(
        run(&mut fs, 3, read(0, 0x1400)),
        data(pattern(1, 0, 0x1400))
    );
}

#[test]
fn sync_write_on_corrupt_root_keep_dirty() {
    // Issue item 2, keep-dirty: 0x1400 bytes = blocks 0..=4 in folios 0 and 1.
    let mut fs = default_fs();
    run(&mut fs, 1, corrupt());
    assert_eq!(
        run(&mut fs, 2, write_sync(0, 0x1400)),
        err(Errno::Efscorrupted)
    );
    assert_eq!(
        extents(&fs, 0, 6),
        vec![Delalloc, Delalloc, Delalloc, Delalloc, Delalloc, Hole]
    );
    assert_eq!(caches(&fs, 0, 5), vec![Dirty; 5]);
    assert_eq!(fs.counters().reserved, 5);
    assert_eq!(fs.size(0), 0x1400);
    // O_SYNC reported the error, so it is cleared.
    assert_eq!(fs.wb_error(0), None);
    assert_eq!(contents(&fs), pattern(2, 0, 0x1400));
}

#[test]
fn sync_write_on_corrupt_root_invalidate() {
    // Issue item 2, invalidate: both folios fail and are dropped; their delalloc blocks punched.
    let mut fs = fs_with(1024, 1, 256, Policy::Invalidate, &[false]);
    run(&mut fs, 1, corrupt());
    assert_eq!(
        run(&mut fs, 2, write_sync(0, 0x1400)),
        err(Errno::Efscorrupted)
    );
    assert_eq!(fs.size(0), 0x1400);
    assert_eq!(extents(&fs, 0, 8), vec![Hole; 8]);
    assert_eq!(caches(&fs, 0, 8), vec![NotCached; 8]);
    let c = fs.counters();
    assert_eq!((c.free, c.reserved, c.allocated), (256, 0, 0));
    assert_eq!(run(&mut fs, 3, read(0, 0x1400)), data(zeros(0x1400)));
}

#[test]
fn read_clips_to_eof_and_ignores_empty_requests() {
    let mut fs = default_fs();
    run(&mut fs, 1, write(0, 1500));
    assert_eq!(run(&mut fs, 2, read(1500, 10)), data(vec![]));
    assert_eq!(run(&mut fs, 3, read(u64::MAX, u64::MAX)), data(vec![]));
    assert_eq!(run(&mut fs, 4, read(0, 0)), data(vec![]));
    assert_eq!(
        run(&mut fs, 5, read(1400, u64::MAX)),
        data(pattern(1, 1400, 100))
    );
}

#[test]
fn read_instantiates_clean_folios() {
    let mut fs = default_fs();
    run(&mut fs, 1, write(0, 8192));
    run(&mut fs, 2, fsync());
    assert_eq!(run(&mut fs, 3, reclaim(0)), done(1));
    assert_eq!(run(&mut fs, 4, reclaim(1)), done(1));
    assert_eq!(caches(&fs, 0, 8), vec![NotCached; 8]);
    // [5000, 5001) is in folio 1 only.
    assert_eq!(run(&mut fs, 5, read(5000, 1)), data(pattern(1, 5000, 1)));
    assert_eq!(
        caches(&fs, 0, 8),
        vec![NotCached, NotCached, NotCached, NotCached, Clean, Clean, Clean, Clean]
    );
}

#[test]
fn mmap_read_faults_in_one_folio_clipped_to_folio_and_eof() {
    let mut fs = default_fs();
    run(&mut fs, 1, write(0, 6000));
    run(&mut fs, 2, fsync());
    run(&mut fs, 3, reclaim(0));
    run(&mut fs, 4, reclaim(1));
    assert_eq!(run(&mut fs, 5, mread(6000, 1)), err(Errno::Efault));
    assert_eq!(run(&mut fs, 6, mread(u64::MAX, 1)), err(Errno::Efault));
    // Clipped to folio 0's end.
    assert_eq!(
        run(&mut fs, 7, mread(4000, 1000)),
        data(pattern(1, 4000, 96))
    );
    assert_eq!(
        caches(&fs, 0, 8),
        vec![Clean, Clean, Clean, Clean, NotCached, NotCached, NotCached, NotCached]
    );
    // Clipped to EOF in folio 1.
    assert_eq!(
        run(&mut fs, 8, mread(5900, 1000)),
        data(pattern(1, 5900, 100))
    );
    assert_eq!(caches(&fs, 4, 4), vec![Clean; 4]);
    assert_eq!(run(&mut fs, 9, mread(10, 0)), data(vec![]));
}

#[test]
fn mmap_write_past_eof_is_efault() {
    let mut fs = default_fs();
    assert_eq!(run(&mut fs, 1, mwrite(0, 10)), err(Errno::Efault));
    run(&mut fs, 2, write(0, 100));
    assert_eq!(run(&mut fs, 3, mwrite(100, 10)), err(Errno::Efault));
    assert_eq!(
        run(&mut fs, 4, mwrite(u64::MAX, u64::MAX)),
        err(Errno::Efault)
    );
    assert_eq!(contents(&fs), pattern(2, 0, 100));
}

#[test]
fn mmap_write_clips_to_folio_and_eof_and_dirties_the_folio_up_to_eof() {
    // Size 6000 by truncate: no block allocated. A fault at 4000 in folio 0.
    let mut fs = default_fs();
    run(&mut fs, 1, truncate(6000));
    assert_eq!(run(&mut fs, 2, mwrite(4000, 10_000)), done(96));
    // Every block of folio 0 is inside EOF: all four reserved and dirty.
    assert_eq!(
        extents(&fs, 0, 8),
        vec![Delalloc, Delalloc, Delalloc, Delalloc, Hole, Hole, Hole, Hole]
    );
    assert_eq!(
        caches(&fs, 0, 8),
        vec![Dirty, Dirty, Dirty, Dirty, NotCached, NotCached, NotCached, NotCached]
    );
    assert_eq!(fs.counters().reserved, 4);
    assert_eq!(fs.size(0), 6000);
    assert_eq!(
        contents(&fs),
        cat(&[&zeros(4000), &pattern(2, 4000, 96), &zeros(1904)])
    );
    // In folio 1, EOF clips: [5990, 6000).
    assert_eq!(run(&mut fs, 3, mwrite(5990, 100)), done(10));
    // Blocks 4 (4096..) and 5 (5120..) are inside EOF; 6 (6144) and 7 are not.
    assert_eq!(extents(&fs, 4, 4), vec![Delalloc, Delalloc, Hole, Hole]);
    assert_eq!(caches(&fs, 4, 4), vec![Dirty, Dirty, Clean, Clean]);
    assert_eq!(fs.counters().reserved, 6);
}

#[test]
fn mmap_write_reserves_only_holes_inside_eof() {
    let mut fs = default_fs();
    run(&mut fs, 1, truncate(2500));
    assert_eq!(run(&mut fs, 2, mwrite(0, 10)), done(10));
    // Blocks 0..=2 start below 2500; block 3 starts at 3072.
    assert_eq!(extents(&fs, 0, 4), vec![Delalloc, Delalloc, Delalloc, Hole]);
    assert_eq!(caches(&fs, 0, 4), vec![Dirty, Dirty, Dirty, Clean]);
    assert_eq!(fs.counters().reserved, 3);
    assert_eq!(contents(&fs), cat(&[&pattern(2, 0, 10), &zeros(2490)]));
}

#[test]
fn mmap_write_enospc_keeps_the_read_fault() {
    let mut fs = fs_with(1024, 1, 2, Policy::KeepDirty, &[false]);
    run(&mut fs, 1, truncate(4096));
    let before = fs.counters();
    assert_eq!(run(&mut fs, 2, mwrite(0, 10)), err(Errno::Enospc));
    assert_eq!(fs.counters(), before);
    // The read fault instantiated the folio; it stays, clean.
    assert_eq!(caches(&fs, 0, 4), vec![Clean; 4]);
    assert_eq!(extents(&fs, 0, 4), vec![Hole; 4]);
    assert_eq!(contents(&fs), zeros(4096));
}

#[test]
fn mmap_write_waits_for_writeback_and_keeps_written_blocks() {
    let mut fs = default_fs();
    run(&mut fs, 1, write(0, 4096));
    run(&mut fs, 2, flush_all());
    assert_eq!(run(&mut fs, 3, mwrite(10, 10)), done(10));
    assert_eq!(fs.counters().inflight_ios, 0);
    assert_eq!(extents(&fs, 0, 4), vec![Written; 4]);
    assert_eq!(caches(&fs, 0, 4), vec![Dirty; 4]);
    // Nothing to reserve: every block was allocated.
    assert_eq!(fs.counters().reserved, 0);
    assert_eq!(run(&mut fs, 4, fsync()), done(0));
    assert_eq!(
        contents(&fs),
        cat(&[
            &pattern(1, 0, 10),
            &pattern(3, 10, 10),
            &pattern(1, 20, 4076)
        ])
    );
}

#[test]
fn large_folio_write_with_small_blocks() {
    // 512-byte blocks, 4-page folios (32 blocks per folio).
    let mut fs = fs_with(512, 4, 1024, Policy::KeepDirty, &[false]);
    assert_eq!(run(&mut fs, 1, write(16_000, 1000)), done(1000));
    // Bytes [16000, 17000): blocks 31 (15872..16384), 32, 33 (16896..17408).
    assert_eq!(
        extents(&fs, 30, 5),
        vec![Hole, Delalloc, Delalloc, Delalloc, Hole]
    );
    // Folios 0 (blocks 0..32) and 1 (32..64) are both instantiated.
    assert_eq!(caches(&fs, 30, 5), vec![Clean, Dirty, Dirty, Dirty, Clean]);
    assert_eq!(run(&mut fs, 2, flush_all()), done(2));
    assert_eq!(fs.counters().inflight_ios, 2);
    assert_eq!(writebacks(&fs, 30, 5), vec![false, true, true, true, false]);
}
