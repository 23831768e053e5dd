//! Step-API regressions found by concurrent differential hunts: interleavings of the correct
//! implementation that the reference's steps must be able to express. Expected values are derived
//! by hand from SPEC.md and XFS (`xfs_buffered_write_iomap_begin`).

use crate::common;

use common::*;
use reference::{Observe, Op, Policy};

/// corpus/regressions/write-reserve-punched.wbf: a buffered write reserves its holes up front and
/// they become `Delalloc` at once (not when the folio is copied). A failed writeback under
/// `invalidate` that runs between the reservation and the copy punches them; the copy then
/// reserves again, so the accounting stays whole and a later writeback succeeds.
#[test]
fn write_reserves_again_a_hole_punched_after_its_reservation() {
    let mut fs = fs_with(4096, 1, 64, Policy::Invalidate, &[false]);
    // Op 1: write [0, 1) (dirty, delalloc), and the btree root goes bad.
    assert_eq!(
        fs.apply(
            1,
            &Op::Write {
                file: 0,
                off: 0,
                len: 1,
                sync: false
            }
        ),
        reference::Outcome::Done(1)
    );
    fs.corrupt();
    // Op 3 starts: block 0 is already Delalloc, nothing to reserve.
    assert_eq!(fs.reserve_write(0, 0, 1), Ok(()));
    assert_eq!(fs.counters().reserved, 1);
    // A writeback of folio 0 fails: invalidate punches block 0 and drops the folio.
    assert_eq!(
        fs.writeback_folio(0, 0),
        Err(reference::Errno::Efscorrupted)
    );
    assert_eq!(fs.blocks(0, 0, 1)[0].extent, Hole);
    assert_eq!(fs.counters().reserved, 0);
    // Op 3 copies its folio: the hole is reserved again.
    fs.write_folio(3, 0, 0, 1);
    fs.extend_size(0, 1);
    assert_eq!(fs.blocks(0, 0, 1)[0].extent, Delalloc);
    assert_eq!(fs.blocks(0, 0, 1)[0].cache, Dirty);
    assert_eq!(fs.counters().reserved, 1);
    assert!(fs.check_invariants().is_empty());
    fs.repair();
    assert_eq!(fs.writeback_folio(0, 0), Ok(true));
    assert_eq!(fs.counters().reserved, 0);
    assert!(fs.check_invariants().is_empty());
}

/// The reservation makes every hole of the range `Delalloc` before any folio is copied.
#[test]
fn reserve_write_makes_holes_delalloc_at_once() {
    let mut fs = default_fs();
    assert_eq!(fs.reserve_write(0, 1000, 3000), Ok(()));
    let ext: Vec<_> = fs.blocks(0, 0, 5).iter().map(|b| b.extent).collect();
    assert_eq!(ext, vec![Delalloc, Delalloc, Delalloc, Delalloc, Hole]);
    assert_eq!(fs.counters().reserved, 4);
}

/// corpus/regressions/writeback-clean-delalloc.wbf: SPEC.md allocates a folio's delalloc blocks
/// only "if any dirty block of the folio is Delalloc". A clean delalloc block (the reservation of
/// a write still copying) next to a dirty `Written` block does not make writeback allocate, so a
/// corrupt root does not fail it.
#[test]
fn writeback_ignores_a_clean_delalloc_reservation() {
    let mut fs = fs_with(1024, 1, 64, Policy::KeepDirty, &[false]);
    let dw = Op::DirectWrite {
        file: 0,
        off: 1024,
        len: 1024,
    };
    assert_eq!(fs.apply(1, &dw), reference::Outcome::Done(1024));
    assert_eq!(
        fs.apply(
            2,
            &Op::Write {
                file: 0,
                off: 1024,
                len: 1,
                sync: false
            }
        ),
        reference::Outcome::Done(1)
    );
    fs.corrupt();
    // A write of block 0 has reserved it (Delalloc, clean) but not copied yet.
    assert_eq!(fs.reserve_write(0, 0, 1), Ok(()));
    assert_eq!(fs.writeback_folio(0, 0), Ok(true));
    let b: Vec<_> = fs
        .blocks(0, 0, 2)
        .iter()
        .map(|b| (b.extent, b.writeback))
        .collect();
    assert_eq!(b, vec![(Delalloc, false), (Written, true)]);
}

/// corpus/regressions/short-write-punch-delalloc.wbf: a write that stops short gives back the
/// reservation of the part it did not copy (`WritePunch`, as
/// `iomap_file_buffered_write_punch_delalloc`), keeping whatever is dirty in that part.
#[test]
fn a_short_write_punches_its_unused_reservation_and_keeps_dirty_blocks() {
    // 1 KiB blocks, one-page folios: 4 blocks per folio, 64 blocks of space.
    let mut fs = fs_with(1024, 1, 64, Policy::KeepDirty, &[false]);
    // An earlier write left block 5 (folio 1) dirty: delalloc with data.
    assert_eq!(
        fs.apply(
            1,
            &Op::Write {
                file: 0,
                off: 5 * 1024,
                len: 1,
                sync: false
            }
        ),
        reference::Outcome::Done(1)
    );
    assert_eq!(fs.counters().reserved, 1);
    // Write 2 covers blocks 0..8 (folios 0 and 1): 7 new reservations.
    assert_eq!(fs.reserve_write(0, 0, 8 * 1024), Ok(()));
    assert_eq!(fs.counters().reserved, 8);
    // It copies folio 0, then stops short before folio 1.
    fs.write_folio(2, 0, 0, 4 * 1024);
    fs.extend_size(0, 4 * 1024);
    fs.punch_write_tail(0, 4 * 1024, 8 * 1024);
    let ext: Vec<_> = fs.blocks(0, 0, 8).iter().map(|b| b.extent).collect();
    assert_eq!(
        ext,
        vec![Delalloc, Delalloc, Delalloc, Delalloc, Hole, Delalloc, Hole, Hole]
    );
    // Folio 0's 4 blocks and write 1's block 5 stay reserved; blocks 4, 6 and 7 are free again.
    assert_eq!(fs.counters().reserved, 5);
    assert_eq!(fs.counters().free, 64 - 5);
    assert!(fs.check_invariants().is_empty());
}
