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
use vocab::{Outcome, Step};

impl Fs {
    /// `Reclaim{folio}`: 1 if evicted.
    ///
    /// Reclaim sleeps on the folio lock rather than skipping a locked folio: an op holding a
    /// folio lock is in the middle of a step, and the reference, which has no folio locks, can
    /// only see reclaim before or after that step. Its decision is its commit: a miss under the
    /// index lock, a refusal under the folio memory lock, an eviction under both.
    pub(crate) fn reclaim(&self, ino: &Inode, seq: u32, idx: u64) -> u64 {
        loop {
            // COMMIT POINT (miss): nothing cached at `idx`.
            let Some(f) = ino.cache.get_then(idx, |hit| {
                if !hit {
                    self.record(Step::Op { seq });
                }
            }) else {
                return 0;
            };
            // BUG(reclaim-unlocked-check): a folio seen not under writeback before the folio
            // lock is not tested again under it; a flush holding the lock starts writeback in
            // between. (A folio seen busy is tested again: refusing is never the bug.)
            let idle_before =
                self.has(crate::bugs::Bug::ReclaimUnlockedCheck) && !f.mem().writeback;
            let lf = f.lock();
            {
                let st = lf.mem();
                if !st.mapped {
                    continue; // removed meanwhile: look again
                }
                if (st.writeback && !idle_before) || st.dirty() != 0 {
                    // COMMIT POINT: reclaim refused (dirty or under writeback).
                    self.record(Step::Op { seq });
                    return 0;
                }
            }
            // COMMIT POINT: reclaim (folio and its private state freed).
            ino.cache.remove_then(&lf, || self.record(Step::Op { seq }));
            return 1;
        }
    }

    /// `EvictInode`: write back and wait; drop the cache unless something stayed dirty. The
    /// decision is taken holding every folio lock of the file (and the invalidate lock), and
    /// the drop is one removal under the index lock, retried if a folio appeared meanwhile.
    pub(crate) fn evict_inode(&self, ino: &Inode, seq: u32) -> u64 {
        self.writeback_range(seq, ino, 0, u64::MAX, true);
        let _inv = ino.invalidate.write();
        loop {
            let held = ino.cache.lock_range(0, u64::MAX);
            for lf in &held {
                // IO a concurrent flush submitted after our wait.
                self.wait_writeback(seq, lf);
            }
            if held.iter().any(|lf| lf.mem().dirty() != 0) {
                // COMMIT POINT: eviction refused (something stayed dirty).
                self.record(Step::Op { seq });
                return 0;
            }
            // COMMIT POINT: eviction (the whole cache dropped at once).
            if ino
                .cache
                .remove_all_then(&held, || self.record(Step::Op { seq }))
                .is_some()
            {
                return 1;
            }
            // A folio was instantiated since the listing: decide again with it.
            drop(held);
        }
    }

    /// `CorruptAllocBtree`.
    pub(crate) fn corrupt_alloc_btree(&self, seq: u32) -> Outcome {
        let _inv: Vec<_> = self.inodes.iter().map(|i| i.invalidate.read()).collect();
        let mut tree = self.alloc.lock();
        tree.corrupt_root();
        // COMMIT POINT: the root's CRC is bad.
        self.record(Step::Op { seq });
        drop(tree);
        Outcome::Done(0)
    }

    /// `RepairAllocBtree`.
    pub(crate) fn repair_alloc_btree(&self, seq: u32) -> Outcome {
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
        self.record(Step::Op { seq });
        drop(tree);
        drop(maps);
        Outcome::Done(0)
    }
}
