//! Cache and metadata lifecycle: memory reclaim of one folio, inode eviction, free-space btree
//! fault injection and repair.
//!
//! Owns: `Reclaim`, `EvictInode`, `CorruptAllocBtree`, `RepairAllocBtree`.
//! Invariants: reclaim only drops a folio it could trylock that is mapped, clean in every block
//! and not under writeback (so logged journaled-data blocks, which are dirty, stay), and frees its
//! private state; eviction drops the cache only when writeback left nothing dirty. Repair
//! rebuilds the free-space tree as the complement of every file's allocated extents and records
//! `repair-mismatch` if that differs from the tree it replaces (a leaked or doubly owned block).
//! Locks: reclaim: trylock only. Eviction: folio locks (writeback), then the invalidate lock
//! exclusive to drop folios. Fault injection and repair: every inode's invalidate lock shared in
//! file order (quiescing multi-step punches), repair also every ILOCK in file order, then the
//! allocator lock.

use super::alloc_btree::{FreeExtent, FreeSpaceTree};
use super::{Fs, Inode};
use reference::Outcome;

impl Fs {
    /// `Reclaim{folio}`: 1 if evicted.
    pub(crate) fn reclaim(&self, ino: &Inode, idx: u64) -> u64 {
        let Some(f) = ino.cache.get(idx) else {
            return 0;
        };
        let Some(lf) = f.try_lock() else { return 0 };
        {
            let st = lf.mem();
            if !st.mapped || st.writeback || st.dirty() != 0 {
                return 0;
            }
        }
        ino.cache.remove(&lf);
        // COMMIT POINT: reclaim (folio and its private state freed).
        1
    }

    /// `EvictInode`: write back and wait; drop the cache unless something stayed dirty.
    pub(crate) fn evict_inode(&self, ino: &Inode) -> u64 {
        self.writeback_range(ino, 0, u64::MAX, true);
        let _inv = ino.invalidate.write();
        let folios = ino.cache.range(0, u64::MAX);
        if folios.iter().any(|f| f.mem().dirty() != 0) {
            // COMMIT POINT: eviction refused (something stayed dirty).
            return 0;
        }
        for f in folios {
            let lf = f.lock();
            let clean = {
                let st = lf.mem();
                st.mapped && !st.writeback && st.dirty() == 0
            };
            if clean {
                ino.cache.remove(&lf);
            }
        }
        // COMMIT POINT: eviction (the whole cache dropped).
        1
    }

    /// `CorruptAllocBtree`.
    pub(crate) fn corrupt_alloc_btree(&self) -> Outcome {
        let _inv: Vec<_> = self.inodes.iter().map(|i| i.invalidate.read()).collect();
        let mut tree = self.alloc.lock();
        tree.corrupt_root();
        // COMMIT POINT: the root's CRC is bad.
        drop(tree);
        Outcome::Done(0)
    }

    /// `RepairAllocBtree`.
    pub(crate) fn repair_alloc_btree(&self) -> Outcome {
        let _inv: Vec<_> = self.inodes.iter().map(|i| i.invalidate.read()).collect();
        let maps: Vec<_> = self.inodes.iter().map(|i| i.ilock.lock()).collect();
        let mut used: Vec<(u64, u64)> = maps
            .iter()
            .flat_map(|em| {
                em.extents()
                    .filter(|(_, e)| e.state.is_allocated())
                    .map(|(_, e)| (e.phys, e.len))
            })
            .collect();
        used.sort_unstable();
        let cap = self.geometry.capacity_blocks;
        let mut free = Vec::new();
        let mut cursor = 0u64;
        for &(p, l) in &used {
            if p > cursor {
                free.push(FreeExtent {
                    start: cursor,
                    len: p - cursor,
                });
            }
            cursor = cursor.max(p.saturating_add(l));
        }
        if cursor < cap {
            free.push(FreeExtent {
                start: cursor,
                len: cap - cursor,
            });
        }
        let mut tree = self.alloc.lock();
        let old = tree.records();
        if old != free {
            self.record_violation(
                "repair-mismatch",
                format!(
                    "rebuilt free-space tree ({} extents, {} blocks) differs from the existing one ({} extents, {} blocks)",
                    free.len(),
                    free.iter().map(|e| e.len).sum::<u64>(),
                    old.len(),
                    old.iter().map(|e| e.len).sum::<u64>()
                ),
            );
        }
        *tree = FreeSpaceTree::from_extents(&free);
        // COMMIT POINT: repair (tree rebuilt, corruption cleared).
        drop(tree);
        drop(maps);
        Outcome::Done(0)
    }
}
