//! Journaled-data files, expected values derived by hand from SPEC.md ("Journal" and the jdata
//! clauses of each op).

use crate::common;
use common::*;
use reference::{Errno, Observe, Policy};

fn jfs(capacity: u64) -> reference::model::RefFs {
    fs_with(1024, 1, capacity, Policy::KeepDirty, &[true])
}

#[test]
fn jdata_write_allocates_at_once() {
    let mut fs = jfs(256);
    assert_eq!(run(&mut fs, 1, write(100, 5000)), done(5000));
    assert_eq!(
        extents(&fs, 0, 6),
        vec![Unwritten, Unwritten, Unwritten, Unwritten, Unwritten, Hole]
    );
    assert_eq!(caches(&fs, 0, 5), vec![Dirty; 5]);
    let c = fs.counters();
    assert_eq!(
        (c.free, c.reserved, c.allocated, c.inflight_ios),
        (251, 0, 5, 0)
    );
    assert_eq!(contents(&fs), cat(&[&zeros(100), &pattern(1, 100, 5000)]));
}

#[test]
fn jdata_write_enospc_and_efscorrupted_change_nothing() {
    let mut fs = jfs(2);
    assert_eq!(run(&mut fs, 1, write(0, 3000)), err(Errno::Enospc));
    assert_eq!(fs.size(0), 0);
    assert_eq!(fs.block_span(0), 0);
    assert_eq!(fs.counters().free, 2);
    run(&mut fs, 2, corrupt());
    assert_eq!(run(&mut fs, 3, write(0, 10)), err(Errno::Efscorrupted));
    assert_eq!(fs.size(0), 0);
    assert_eq!(fs.block_span(0), 0);
    assert_eq!(fs.counters().free, 2);
    // ENOSPC wins over corruption.
    assert_eq!(run(&mut fs, 4, write(0, 3000)), err(Errno::Enospc));
}

#[test]
fn jdata_write_over_allocated_blocks_works_while_corrupt() {
    let mut fs = jfs(256);
    run(&mut fs, 1, write(0, 1024));
    run(&mut fs, 2, corrupt());
    assert_eq!(run(&mut fs, 3, write(100, 100)), done(100));
    assert_eq!(run(&mut fs, 4, commit()), done(1));
    assert_eq!(extents(&fs, 0, 1), vec![Written]);
    assert_eq!(
        contents(&fs),
        cat(&[
            &pattern(1, 0, 100),
            &pattern(3, 100, 100),
            &pattern(1, 200, 824)
        ])
    );
}

#[test]
fn journal_commit_writes_in_place_with_no_io() {
    let mut fs = jfs(256);
    run(&mut fs, 1, write(100, 5000));
    assert_eq!(run(&mut fs, 2, commit()), done(5));
    assert_eq!(extents(&fs, 0, 5), vec![Written; 5]);
    assert_eq!(caches(&fs, 0, 8), vec![Clean; 8]);
    assert_eq!(writebacks(&fs, 0, 8), vec![false; 8]);
    assert_eq!(fs.counters().inflight_ios, 0);
    assert_eq!(run(&mut fs, 3, commit()), done(0));
    // The disk holds the data.
    assert_eq!(run(&mut fs, 4, reclaim(0)), done(1));
    assert_eq!(run(&mut fs, 5, reclaim(1)), done(1));
    assert_eq!(
        run(&mut fs, 6, read(0, 6000)),
        data(cat(&[&zeros(100), &pattern(1, 100, 5000)]))
    );
}

#[test]
fn jdata_fsync_and_flush_commit_the_whole_transaction() {
    let mut fs = jfs(256);
    run(&mut fs, 1, write(0, 1024));
    assert_eq!(run(&mut fs, 2, fsync()), done(0));
    assert_eq!((obs(&fs, 0).extent, obs(&fs, 0).cache), (Written, Clean));
    run(&mut fs, 3, write(0, 10));
    run(&mut fs, 4, write(8192, 10));
    assert_eq!(run(&mut fs, 5, flush(0, 0)), done(0));
    assert_eq!(obs(&fs, 0).cache, Dirty);
    // Any range commits everything: 2 blocks.
    assert_eq!(run(&mut fs, 6, flush(0, 1)), done(2));
    assert_eq!(extents(&fs, 8, 1), vec![Written]);
    assert_eq!(caches(&fs, 8, 1), vec![Clean]);
}

#[test]
fn jdata_reclaim_refuses_a_logged_folio() {
    let mut fs = jfs(256);
    run(&mut fs, 1, write(0, 10));
    assert_eq!(run(&mut fs, 2, reclaim(0)), done(0));
    assert_eq!(run(&mut fs, 3, commit()), done(1));
    assert_eq!(run(&mut fs, 4, reclaim(0)), done(1));
    assert_eq!(contents(&fs), pattern(1, 0, 10));
}

#[test]
fn journal_commit_on_an_ordinary_file_does_nothing() {
    let mut fs = default_fs();
    run(&mut fs, 1, write(0, 10));
    assert_eq!(run(&mut fs, 2, commit()), done(0));
    assert_eq!((obs(&fs, 0).extent, obs(&fs, 0).cache), (Delalloc, Dirty));
}

#[test]
fn jdata_mmap_write_allocates_the_holes_inside_eof() {
    let mut fs = jfs(256);
    run(&mut fs, 1, truncate(2500));
    assert_eq!(run(&mut fs, 2, mwrite(0, 10)), done(10));
    assert_eq!(
        extents(&fs, 0, 4),
        vec![Unwritten, Unwritten, Unwritten, Hole]
    );
    assert_eq!(caches(&fs, 0, 4), vec![Dirty, Dirty, Dirty, Clean]);
    assert_eq!(fs.counters().allocated, 3);
    assert_eq!(fs.counters().reserved, 0);
    // Corrupt with holes to allocate: EFSCORRUPTED, the read fault stays done.
    run(&mut fs, 3, truncate(8000));
    run(&mut fs, 4, corrupt());
    assert_eq!(run(&mut fs, 5, mwrite(4096, 10)), err(Errno::Efscorrupted));
    assert_eq!(caches(&fs, 4, 4), vec![Clean; 4]);
    assert_eq!(extents(&fs, 4, 4), vec![Hole; 4]);
}

#[test]
fn jdata_direct_write_commits_then_writes_the_disk() {
    let mut fs = jfs(256);
    run(&mut fs, 1, write(0, 4096));
    assert_eq!(run(&mut fs, 2, dwrite(1024, 1024)), done(1024));
    assert_eq!(extents(&fs, 0, 4), vec![Written; 4]);
    assert_eq!(caches(&fs, 0, 4), vec![NotCached; 4]);
    let expect = cat(&[
        &pattern(1, 0, 1024),
        &pattern(2, 1024, 1024),
        &pattern(1, 2048, 2048),
    ]);
    assert_eq!(contents(&fs), expect);
}

#[test]
fn jdata_truncate_zeroing_logs_the_written_block() {
    let mut fs = jfs(256);
    run(&mut fs, 1, write(0, 2048));
    run(&mut fs, 2, commit());
    assert_eq!(run(&mut fs, 3, truncate(1500)), done(0));
    assert_eq!(caches(&fs, 0, 2), vec![Clean, Dirty]);
    assert_eq!(run(&mut fs, 4, commit()), done(1));
    assert_eq!(run(&mut fs, 5, evict()), done(1));
    assert_eq!(run(&mut fs, 6, truncate(2048)), done(0));
    assert_eq!(contents(&fs), cat(&[&pattern(1, 0, 1500), &zeros(548)]));
}

#[test]
fn jdata_evict_commits_and_drops() {
    let mut fs = jfs(256);
    run(&mut fs, 1, write(0, 5000));
    run(&mut fs, 2, corrupt()); // commit never fails
    assert_eq!(run(&mut fs, 3, evict()), done(1));
    assert_eq!(caches(&fs, 0, 8), vec![NotCached; 8]);
    assert_eq!(extents(&fs, 0, 5), vec![Written; 5]);
    assert_eq!(fs.wb_error(0), None);
    assert_eq!(contents(&fs), pattern(1, 0, 5000));
}
