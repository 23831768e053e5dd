//! Unit tests of the implementation's data structures: the free-space B+tree and the extent map.
//! They live inside the crate because those structures are private to it.

use crate::alloc_btree::{AllocError, FreeExtent, FreeSpaceTree};
use crate::extent_map::ExtentMap;
use vocab::ExtentState;

fn fe(start: u64, len: u64) -> FreeExtent {
    FreeExtent { start, len }
}

#[test]
fn btree_alloc_free_merge() {
    let mut t = FreeSpaceTree::new(100);
    assert_eq!(t.alloc(10).unwrap(), vec![fe(0, 10)]);
    assert_eq!(t.records(), vec![fe(10, 90)]);
    assert_eq!(t.alloc(0).unwrap(), vec![]);
    t.free(3, 4).unwrap();
    assert_eq!(t.records(), vec![fe(3, 4), fe(10, 90)]);
    // Allocation takes lowest blocks first, across extents.
    assert_eq!(t.alloc(6).unwrap(), vec![fe(3, 4), fe(10, 2)]);
    t.free(12, 0).unwrap();
    t.free(0, 3).unwrap();
    t.free(3, 4).unwrap();
    t.free(10, 2).unwrap();
    // Merged with both neighbours: [0,7) + [7,10) + ...
    t.free(7, 3).unwrap();
    assert_eq!(t.records(), vec![fe(0, 100)]);
    assert_eq!(t.free(50, 1), Err(AllocError::DoubleFree));
    assert_eq!(t.alloc(101), Err(AllocError::NoSpace));
    assert_eq!(t.records(), vec![fe(0, 100)], "failed ops change nothing");
    assert!(t.check().is_empty());
}

#[test]
fn btree_many_nodes_stay_ordered_and_checksummed() {
    let mut t = FreeSpaceTree::new(10_000);
    let all = t.alloc(10_000).unwrap();
    assert_eq!(all, vec![fe(0, 10_000)]);
    // Free every other block: thousands of records, several levels of nodes.
    let mut x: u64 = 12345;
    let mut order: Vec<u64> = (0..5000).map(|i| i * 2).collect();
    for i in (1..order.len()).rev() {
        x = x
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        order.swap(i, (x >> 33) as usize % (i + 1));
    }
    for &b in &order {
        t.free(b, 1).unwrap();
    }
    assert_eq!(t.records().len(), 5000);
    assert!(t.check().is_empty(), "{:?}", t.check());
    assert_eq!(t.free_blocks(), 5000);
    // Fill the gaps: everything merges back into one record.
    for &b in order.iter().rev() {
        t.free(b + 1, 1).unwrap();
    }
    assert_eq!(t.records(), vec![fe(0, 10_000)]);
    assert!(t.check().is_empty());
    // Allocate piecewise and free in random order.
    let pieces: Vec<Vec<FreeExtent>> = (0..100).map(|_| t.alloc(37).unwrap()).collect();
    assert_eq!(t.free_blocks(), 10_000 - 3700);
    for p in pieces.iter().rev() {
        for e in p {
            t.free(e.start, e.len).unwrap();
        }
    }
    assert_eq!(t.records(), vec![fe(0, 10_000)]);
}

#[test]
fn btree_corruption_and_rebuild() {
    let mut t = FreeSpaceTree::new(64);
    t.alloc(8).unwrap();
    t.corrupt_root();
    assert!(t.is_corrupt());
    assert_eq!(t.alloc(1), Err(AllocError::Corrupt));
    assert_eq!(t.free(0, 1), Err(AllocError::Corrupt));
    assert!(
        t.check().is_empty(),
        "the injected root CRC is not reported"
    );
    let rebuilt = FreeSpaceTree::from_extents(&[fe(8, 56)]);
    assert_eq!(rebuilt.records(), t.records());
    assert!(!rebuilt.is_corrupt());
    assert!(rebuilt.check().is_empty());
}

#[test]
fn extent_map_merges_and_bumps_cookie() {
    let mut m = ExtentMap::new();
    let s0 = m.seq();
    m.set(0, 4, ExtentState::Delalloc, 0);
    assert_ne!(m.seq(), s0);
    m.set(4, 4, ExtentState::Delalloc, 0);
    assert_eq!(m.extents().count(), 1, "delalloc neighbours merge");
    m.set(2, 2, ExtentState::Unwritten, 100);
    m.set(4, 2, ExtentState::Unwritten, 102);
    assert_eq!(
        m.extents().count(),
        3,
        "delalloc [0,2) unwritten [2,6) delalloc [6,8)"
    );
    let l = m.lookup(3, 100);
    assert_eq!(
        (l.start, l.len, l.state, l.phys),
        (3, 3, ExtentState::Unwritten, 101)
    );
    // Not physically contiguous: no merge.
    m.set(6, 1, ExtentState::Unwritten, 200);
    assert_eq!(m.extents().count(), 4);
    let before = m.seq();
    assert_eq!(
        m.convert(0, 10, ExtentState::Unwritten, ExtentState::Written),
        5
    );
    assert_ne!(m.seq(), before);
    assert_eq!(m.state_of(5), ExtentState::Written);
    m.set(0, 8, ExtentState::Hole, 0);
    assert_eq!(m.extents().count(), 0);
    let h = m.lookup(0, 50);
    assert_eq!((h.len, h.state), (50, ExtentState::Hole));
    assert_eq!(m.count(0, 50, ExtentState::Hole), 50);
    m.set(u64::MAX - 2, 5, ExtentState::Delalloc, 0);
    assert_eq!(m.end_block(), u64::MAX);
    assert!(!m.any_allocated(0, u64::MAX));
}
