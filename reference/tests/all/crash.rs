//! `Crash`: what survives a power cut (SPEC.md "Durability"), expected values derived by hand.

use crate::common;
use common::*;
use reference::{Observe, Op, Policy};

fn crash(land: u32) -> Op {
    Op::Crash {
        land,
        torn: 0,
        tear: 0,
    }
}

#[test]
fn unflushed_write_is_lost_with_its_size_and_reservation() {
    // 1 KiB blocks, 1-page folios (4 blocks), 256 blocks. The write makes blocks 0-3 Delalloc
    // (4 reserved) and the size 4096 in memory only.
    let mut fs = default_fs();
    run(&mut fs, 1, write(0, 4096));
    assert_eq!(run(&mut fs, 2, crash(0)), done(0));
    assert_eq!(fs.size(0), 0);
    assert_eq!(extents(&fs, 0, 4), vec![Hole; 4]);
    assert_eq!(caches(&fs, 0, 4), vec![NotCached; 4]);
    let c = fs.counters();
    assert_eq!(
        (c.free, c.reserved, c.allocated, c.inflight_ios),
        (256, 0, 0, 0)
    );
}

#[test]
fn io_not_landed_leaves_unwritten_blocks_and_the_old_size() {
    // The flush allocates blocks 0-3 (Unwritten, allocated 4) and submits one IO; the size on
    // disk is still 0: di_size moves at IO completion. The allocation itself is durable.
    let mut fs = default_fs();
    run(&mut fs, 1, write(0, 4096));
    assert_eq!(run(&mut fs, 2, flush_all()), done(1));
    assert_eq!(run(&mut fs, 3, crash(0)), done(0));
    assert_eq!(fs.size(0), 0);
    assert_eq!(extents(&fs, 0, 4), vec![Unwritten; 4]);
    assert_eq!(writebacks(&fs, 0, 4), vec![false; 4]);
    let c = fs.counters();
    assert_eq!((c.free, c.reserved, c.allocated), (252, 0, 4));
}

#[test]
fn landed_io_converts_and_extends_the_size_to_its_end() {
    // Two folios, two IOs (oldest: folio 0). Mask 0b10 lands only folio 1's IO: its blocks
    // become Written, di_size = min(i_size 8192, end of that IO 8192) = 8192; folio 0's blocks
    // stay Unwritten and read as zeros.
    let mut fs = default_fs();
    run(&mut fs, 1, write(0, 8192));
    assert_eq!(run(&mut fs, 2, flush_all()), done(2));
    assert_eq!(run(&mut fs, 3, crash(0b10)), done(1));
    assert_eq!(fs.size(0), 8192);
    assert_eq!(
        extents(&fs, 0, 8),
        vec![Unwritten, Unwritten, Unwritten, Unwritten, Written, Written, Written, Written]
    );
    assert_eq!(contents(&fs), cat(&[&zeros(4096), &pattern(1, 4096, 4096)]));
}

#[test]
fn landed_io_size_is_clipped_to_the_in_memory_size() {
    // A 100-byte write: the IO's end (block 0, 1024) is past i_size 100, so di_size = 100.
    let mut fs = default_fs();
    run(&mut fs, 1, write(0, 100));
    run(&mut fs, 2, flush_all());
    assert_eq!(run(&mut fs, 3, crash(1)), done(1));
    assert_eq!(fs.size(0), 100);
    assert_eq!(contents(&fs), pattern(1, 0, 100));
}

#[test]
fn fsynced_data_survives_and_later_dirty_data_does_not() {
    let mut fs = default_fs();
    run(&mut fs, 1, write(0, 2048));
    assert_eq!(run(&mut fs, 2, fsync()), done(0));
    // Overwrite the first block in the cache only; extend the file in memory only.
    run(&mut fs, 3, write(0, 1024));
    run(&mut fs, 4, write(2048, 1024));
    assert_eq!(fs.size(0), 3072);
    run(&mut fs, 5, crash(0));
    // The fsync made size 2048 and blocks 0-1 durable; #3 and #4 were memory only.
    assert_eq!(fs.size(0), 2048);
    assert_eq!(contents(&fs), pattern(1, 0, 2048));
    assert_eq!(extents(&fs, 0, 3), vec![Written, Written, Hole]);
}

#[test]
fn logged_size_changes_are_durable_at_once() {
    // fallocate without keep-size and truncate up log the size in their transaction.
    let mut fs = default_fs();
    run(&mut fs, 1, falloc(0, 3000, false));
    run(&mut fs, 2, truncate(5000));
    run(&mut fs, 3, crash(0));
    assert_eq!(fs.size(0), 5000);
    assert_eq!(
        extents(&fs, 0, 4),
        vec![Unwritten, Unwritten, Unwritten, Hole]
    );
    assert_eq!(contents(&fs), zeros(5000));
}

#[test]
fn direct_write_is_durable_when_it_returns() {
    let mut fs = default_fs();
    assert_eq!(run(&mut fs, 1, dwrite(1024, 2048)), done(2048));
    run(&mut fs, 2, crash(0));
    assert_eq!(fs.size(0), 3072);
    assert_eq!(contents(&fs), cat(&[&zeros(1024), &pattern(1, 1024, 2048)]));
}

#[test]
fn journaled_data_survives_only_committed() {
    // File 0 is journaled data: the write allocates (Unwritten) and logs blocks 0-1; the commit
    // writes them in place and the size with them. The second write's transaction is lost, its
    // allocation of block 2 stays (Unwritten, reading zeros, past the durable size).
    let mut fs = fs_with(1024, 1, 64, Policy::KeepDirty, &[true]);
    run(&mut fs, 1, write(0, 2048));
    assert_eq!(run(&mut fs, 2, commit()), done(2));
    run(&mut fs, 3, write(1024, 2048));
    run(&mut fs, 4, crash(0));
    assert_eq!(fs.size(0), 2048);
    assert_eq!(extents(&fs, 0, 3), vec![Written, Written, Unwritten]);
    assert_eq!(contents(&fs), pattern(1, 0, 2048));
    assert_eq!(fs.counters().allocated, 3);
}

#[test]
fn crash_keeps_the_corrupt_root_and_forgets_the_error() {
    // With the root corrupt, the flush fails to allocate and records EFSCORRUPTED (memory);
    // the corruption is on disk and stays.
    let mut fs = default_fs();
    run(&mut fs, 1, corrupt());
    run(&mut fs, 2, write(0, 1024));
    run(&mut fs, 3, flush_all());
    assert!(fs.wb_error(0).is_some());
    run(&mut fs, 4, crash(0));
    assert!(fs.btree_corrupt());
    assert_eq!(fs.wb_error(0), None);
    assert_eq!(fs.counters().reserved, 0);
}

#[test]
fn truncate_and_punch_end_what_fsync_promised() {
    // fsync promises size 4096 and blocks 0-3. The truncate lowers the promise to 1024 and the
    // punch ends it on block 0; the crash then keeps size 1024 and a hole, and `run` checks
    // that `fsync-durable` still holds (it would not if the promise outlived the changes).
    let mut fs = default_fs();
    run(&mut fs, 1, write(0, 4096));
    run(&mut fs, 2, fsync());
    run(&mut fs, 3, truncate(1024));
    run(&mut fs, 4, punch(0, 1024));
    run(&mut fs, 5, crash(0));
    assert_eq!(fs.size(0), 1024);
    assert_eq!(extents(&fs, 0, 2), vec![Hole, Hole]);
    assert_eq!(contents(&fs), zeros(1024));
}

fn torn(land: u32, torn: u32, tear: u64) -> Op {
    Op::Crash { land, torn, tear }
}

#[test]
fn torn_overwrite_mixes_new_and_old_blocks_on_disk() {
    // Blocks 0-3 hold op 1's bytes, fsynced (Written, size 4096 durable). Op 3 overwrites them
    // and op 4 submits one IO of the four blocks. The crash tears it with tear bits 0b0101:
    // block slots 0 and 2 reach the disk, 1 and 3 keep op 1's bytes. The IO never completed, but
    // the blocks were Written already, so they read as what the disk holds.
    let mut fs = default_fs();
    run(&mut fs, 1, write(0, 4096));
    assert_eq!(run(&mut fs, 2, fsync()), done(0));
    run(&mut fs, 3, write(0, 4096));
    assert_eq!(run(&mut fs, 4, flush_all()), done(1));
    assert_eq!(run(&mut fs, 5, torn(0, 1, 0b0101)), done(0));
    assert_eq!(fs.size(0), 4096);
    assert_eq!(extents(&fs, 0, 4), vec![Written; 4]);
    assert_eq!(
        contents(&fs),
        cat(&[
            &pattern(3, 0, 1024),
            &pattern(1, 1024, 1024),
            &pattern(3, 2048, 1024),
            &pattern(1, 3072, 1024),
        ])
    );
    assert!(fs.check_invariants().is_empty());
}

#[test]
fn torn_ios_take_the_tear_bits_in_order_and_never_convert() {
    // Op 1 writes 8192 bytes; op 2 allocates blocks 0-7 (Unwritten) and submits two IOs, folio
    // 0's first. Both torn (0b11): IO 0 takes tear bits 0-3 (0b0001: slot 0), IO 1 bits 4-7
    // (0b1000: slot 3, block 7). Torn IOs never complete: no conversion, di_size stays 0, so
    // the file comes back empty over its 8 allocated Unwritten blocks; `land` is ignored for a
    // torn IO. The landed blocks hold data, so nothing is stale even if mapped.
    let mut fs = default_fs();
    run(&mut fs, 1, write(0, 8192));
    assert_eq!(run(&mut fs, 2, flush_all()), done(2));
    assert_eq!(run(&mut fs, 3, torn(0b11, 0b11, 0b1000_0001)), done(0));
    assert_eq!(fs.size(0), 0);
    assert_eq!(extents(&fs, 0, 8), vec![Unwritten; 8]);
    let c = fs.counters();
    assert_eq!((c.free, c.reserved, c.allocated), (248, 0, 8));
    // Extending the file over them again reads zeros: Unwritten blocks are never read.
    assert_eq!(run(&mut fs, 4, truncate(8192)), done(0));
    assert_eq!(contents(&fs), zeros(8192));
}
