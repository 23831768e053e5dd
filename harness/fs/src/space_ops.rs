//! Space manipulation: `Fallocate`, `PunchHole`, `ZeroRange`, `Truncate`, and the zeroing rule
//! they share (`iomap_zero_range` / `iomap_truncate_page`).
//!
//! Owns: those ops.
//! Invariants: every check that can fail (ENOSPC before EFSCORRUPTED) happens before anything
//! changes; ZeroRange's space need is held as a reservation from its check until it settles, so a
//! concurrent reservation cannot make it fail half way; cached folios are cleaned or dropped
//! (each under its lock, after waiting for its writeback) before the extents under them are
//! punched, so writeback never finds dirty data over a punched block.
//! Commit: punch, zero-range and truncate lock every cached folio they touch (in index order),
//! wait for their writeback, and hold them until their commit point, so no writeback, reclaim
//! or journal commit sees them half done; the checks that can fail commit the op on failure
//! (nothing changed yet); the edge zeroing, the cache drop, the extent changes, the counters and
//! i_size then take effect with the `Op` step recorded under ILOCK, the allocator lock and the
//! page-cache index lock. The one window left: ZeroRange holds its space need as a reservation
//! from its check to its commit (other files' reservations see it a little early).
//! Locks: Fallocate takes IOLOCK exclusive; the others IOLOCK and the invalidate lock exclusive
//! (fault injection takes the invalidate locks shared, so the btree cannot turn corrupt between
//! a check and the frees). Then folio locks in index order (folios created for zeroing are new,
//! so never contended), then ILOCK + allocator + index.

use super::alloc_btree::FreeSpaceTree;
use super::extent_map::ExtentMap;
use super::page_cache::LockedFolio;
use super::sync::Ordering;
use super::{Fs, Inode};
use std::collections::BTreeMap;
use vocab::{Errno, ExtentState, Outcome, Step};

/// Folios an op holds locked until its commit, by index.
type Held = BTreeMap<u64, LockedFolio>;

impl Fs {
    /// Locks every cached folio with index in `[f0, f1)` in order and waits for its writeback
    /// (completions are op `seq`'s).
    fn lock_and_wait(&self, seq: u32, ino: &Inode, f0: u64, f1: u64) -> Held {
        let held: Held = ino
            .cache
            .lock_range(f0, f1)
            .into_iter()
            .map(|lf| (lf.index, lf))
            .collect();
        for lf in held.values() {
            self.wait_writeback(seq, lf);
        }
        held
    }

    /// The zeroing rule for bytes `[from, to)` of one block, clipped to EOF (`size`, the size
    /// before the op), on folios the op
    /// holds. A `Written` block whose folio is not cached gets one (filled, locked, added to
    /// `held`; no step of its own: it is part of the op's commit). Caller holds IOLOCK and the
    /// invalidate lock exclusive, and has waited for the writeback of every held folio.
    pub(crate) fn zero_partial(&self, ino: &Inode, held: &mut Held, from: u64, to: u64, size: u64) {
        let g = self.geo;
        let to = to.min(size);
        if from >= to {
            return;
        }
        let b = from / g.bs;
        let idx = from / g.fsz;
        let slot = b - idx * g.bpf;
        let state = ino.ilock.lock().state_of(b);
        match state {
            ExtentState::Hole => return,
            ExtentState::Unwritten | ExtentState::Delalloc => {
                let Some(lf) = held.get(&idx) else { return };
                if state == ExtentState::Unwritten && lf.mem().dirty() & (1 << slot) == 0 {
                    return; // reads as zeros already
                }
            }
            ExtentState::Written => {
                if let std::collections::btree_map::Entry::Vacant(slot_entry) = held.entry(idx) {
                    let (lf, created) = ino.cache.get_or_create_locked(idx);
                    if created || !lf.mem().uptodate {
                        self.fill_folio(ino, &lf, None, None);
                    }
                    if !self.has(crate::bugs::Bug::UnstablePages) {
                        self.wait_writeback(0, &lf); // a new folio: never under writeback
                    }
                    slot_entry.insert(lf);
                }
            }
        }
        let Some(lf) = held.get(&idx) else { return };
        {
            let mut st = lf.mem();
            let fstart = idx * g.fsz;
            st.data[(from - fstart) as usize..(to - fstart) as usize].fill(0);
        }
        if state == ExtentState::Written {
            self.log_blocks(ino, lf, 1 << slot);
        }
    }

    /// The partial edge ranges of `[off, end)` that the zeroing rule applies to.
    fn edge_ranges(&self, off: u64, end: u64) -> Vec<(u64, u64)> {
        let bs = self.geo.bs;
        let (wb0, wb1) = (off.div_ceil(bs), end / bs);
        if wb0 > wb1 {
            return vec![(off, end)];
        }
        let mut v = Vec::new();
        if !off.is_multiple_of(bs) {
            v.push((off, wb0 * bs));
        }
        if !end.is_multiple_of(bs) {
            v.push((wb1 * bs, end));
        }
        v
    }

    /// Instantiates (locked, in `held`) the folio of every `Written` edge block of `[off, end)`
    /// inside EOF that is not cached, so that the zeroing after the op's commit point needs no
    /// new folio. Returns the folios it created (to drop again if the op fails).
    fn prepare_edges(&self, ino: &Inode, held: &mut Held, off: u64, end: u64) -> Vec<u64> {
        let g = self.geo;
        let size = self.size(ino);
        let mut created = Vec::new();
        for (from, to) in self.edge_ranges(off, end) {
            let idx = from / g.fsz;
            if from >= to.min(size) || held.contains_key(&idx) {
                continue;
            }
            if ino.ilock.lock().state_of(from / g.bs) != ExtentState::Written {
                continue;
            }
            let (lf, fresh) = ino.cache.get_or_create_locked(idx);
            if fresh || !lf.mem().uptodate {
                self.fill_folio(ino, &lf, None, None);
            }
            if fresh {
                created.push(idx);
            }
            held.insert(idx, lf);
        }
        created
    }

    /// Zeroes the partial blocks at the edges of `[off, end)` (whole blocks are `[wb0, wb1)`).
    fn zero_edges(&self, ino: &Inode, held: &mut Held, off: u64, end: u64, size: u64) {
        for (from, to) in self.edge_ranges(off, end) {
            self.zero_partial(ino, held, from, to, size);
        }
    }

    /// Truncate-down's on-disk zeroing of the new EOF block: if block `new / bs` is `Written`,
    /// its bytes on disk from `new` to the block's end become zeros at once (SPEC.md Truncate: a
    /// simplification; XFS only writes back `[i_disk_size, new)` inside truncate). The cached block,
    /// dirty with the same zeros, is written back later as usual. The read-modify-write of the
    /// disk block runs under ILOCK, which every disk writer of an allocated block (IO completion,
    /// journal commit, direct write) holds, so no completion can slip between read and write.
    fn zero_disk_tail(&self, em: &ExtentMap, new: u64) {
        let g = self.geo;
        let b = new / g.bs;
        let from = (new - b * g.bs) as usize;
        if from == 0 {
            return;
        }
        let m = em.lookup(b, b + 1);
        if m.state != ExtentState::Written {
            return;
        }
        let mut buf = vec![0u8; g.bs as usize];
        self.disk.read(m.phys, &mut buf);
        buf[from..].fill(0);
        self.disk.write(m.phys, &buf);
    }

    /// Cache side of punching whole blocks `[wb0, wb1)` on held folios: in folios partly inside,
    /// those blocks become clean zeros; the folios entirely inside are returned (taken out of
    /// `held`) for the caller to remove at its commit.
    fn punch_cache(&self, held: &mut Held, wb0: u64, wb1: u64) -> Vec<LockedFolio> {
        let g = self.geo;
        let mut gone = Vec::new();
        if wb0 >= wb1 {
            return gone;
        }
        let (lo, hi) = (wb0.saturating_mul(g.bs), wb1.saturating_mul(g.bs));
        let (f0, f1) = (lo / g.fsz, hi.div_ceil(g.fsz));
        let idxs: Vec<u64> = held.range(f0..f1).map(|(&i, _)| i).collect();
        for i in idxs {
            let fstart = i * g.fsz;
            if fstart >= lo && fstart + g.fsz <= hi {
                if let Some(lf) = held.remove(&i) {
                    gone.push(lf);
                }
                continue;
            }
            let Some(lf) = held.get(&i) else { continue };
            let mask = super::folio_mask::overlapping(&g, i, lo, hi);
            let mut st = lf.mem();
            let bs = g.bs as usize;
            for k in 0..g.bpf as usize {
                if mask & (1 << k) != 0 {
                    st.data[k * bs..(k + 1) * bs].fill(0);
                }
            }
            st.clear_dirty(mask);
        }
        gone
    }

    /// EFSCORRUPTED if blocks `[b0, b1)` hold an allocated block while the btree is unreadable;
    /// on failure the op `seq` commits here (nothing changed).
    fn check_free_possible(&self, ino: &Inode, seq: u32, b0: u64, b1: u64) -> Result<(), Errno> {
        if b0 >= b1 {
            return Ok(());
        }
        let em = ino.ilock.lock();
        if em.any_allocated(b0, b1) {
            let tree = self.alloc.lock();
            if let Err(e) = tree.check_readable() {
                // COMMIT POINT: the op fails its corruption check.
                self.record(Step::Op { seq });
                return Err(super::alloc_errno(e));
            }
        }
        Ok(())
    }

    /// Frees every allocated block of `[start, end)` in the tree and on disk and makes the range
    /// a hole; returns `(allocated blocks freed, delalloc blocks released)` for the caller to
    /// settle in the counters at its commit. Caller holds ILOCK and the allocator lock and has
    /// checked that the tree is readable.
    fn punch_extents(
        &self,
        em: &mut ExtentMap,
        tree: &mut FreeSpaceTree,
        start: u64,
        end: u64,
    ) -> (u64, u64) {
        if start >= end {
            return (0, 0);
        }
        let (mut a, mut d) = (0, 0);
        for m in em.mappings(start, end) {
            match m.state {
                ExtentState::Delalloc => d += m.len,
                s if s.is_allocated() => {
                    if let Err(e) = tree.free(m.phys, m.len) {
                        self.record_violation(
                            "double-owned",
                            format!("freeing physical blocks {}+{} failed: {e:?}", m.phys, m.len),
                        );
                        continue;
                    }
                    a += m.len;
                    self.disk.discard(m.phys, m.len);
                }
                _ => {}
            }
        }
        em.set(start, end - start, ExtentState::Hole, 0);
        (a, d)
    }

    /// Validates `(off, len)` for fallocate-style ops: EINVAL for 0, EFBIG past the maximum.
    fn range_end(&self, off: u64, len: u64) -> Result<u64, Errno> {
        if len == 0 {
            return Err(Errno::Einval);
        }
        match off.checked_add(len) {
            Some(e) if e <= self.geo.max => Ok(e),
            _ => Err(Errno::Efbig),
        }
    }

    /// `Fallocate`.
    pub(crate) fn fallocate(
        &self,
        ino: &Inode,
        seq: u32,
        off: u64,
        len: u64,
        keep_size: bool,
    ) -> Result<Outcome, Errno> {
        let end = match self.range_end(off, len) {
            Ok(e) => e,
            Err(e) => return self.early(seq, Err(e)),
        };
        let g = self.geo;
        let _io = ino.iolock.write();
        let (b0, b1) = (off / g.bs, end.div_ceil(g.bs));
        let mut em = ino.ilock.lock();
        let maps = em.mappings(b0, b1);
        let pick = |st: ExtentState| -> Vec<(u64, u64)> {
            maps.iter()
                .filter(|m| m.state == st)
                .map(|m| (m.start, m.len))
                .collect()
        };
        let (holes, dl) = (pick(ExtentState::Hole), pick(ExtentState::Delalloc));
        let nh: u64 = holes.iter().map(|h| h.1).sum();
        let nd: u64 = dl.iter().map(|h| h.1).sum();
        let mut tree = self.alloc.lock();
        // COMMIT POINT: fallocate (blocks allocated unwritten, i_size), or its failure.
        let pieces = self.commit(Step::Op { seq }, || {
            let mut pieces = Vec::new();
            if nh + nd > 0 {
                self.space.take_for_alloc(nh).map_err(|_| Errno::Enospc)?;
                pieces = match tree.alloc(nh + nd) {
                    Ok(p) => p,
                    Err(e) => {
                        self.space.untake_for_alloc(nh);
                        return Err(super::alloc_errno(e));
                    }
                };
                self.space.convert_reserved(nd);
            }
            if !keep_size && ino.size.fetch_max(end, Ordering::SeqCst) < end {
                // The size change is logged with the op's transaction (durable with it).
                ino.disk_size.store(end, Ordering::SeqCst);
            }
            Ok(pieces)
        })?;
        drop(tree);
        if nh + nd > 0 {
            let mut runs: Vec<(u64, u64)> = holes.into_iter().chain(dl).collect();
            runs.sort_unstable();
            super::assign_phys(&runs, &pieces, |b, l, p| {
                em.set(b, l, ExtentState::Unwritten, p)
            });
        }
        drop(em);
        Ok(Outcome::Done(0))
    }

    /// `PunchHole`.
    pub(crate) fn punch_hole(
        &self,
        ino: &Inode,
        seq: u32,
        off: u64,
        len: u64,
    ) -> Result<Outcome, Errno> {
        let end = match self.range_end(off, len) {
            Ok(e) => e,
            Err(e) => return self.early(seq, Err(e)),
        };
        let _io = ino.iolock.write();
        let mut inv = ino.invalidate.write();
        let (f0, f1) = self.folio_span(off, end - off);
        let mut held = self.lock_and_wait(seq, ino, f0, f1);
        let bs = self.geo.bs;
        let (wb0, wb1) = (off.div_ceil(bs), end / bs);
        self.check_free_possible(ino, seq, wb0, wb1)?;
        if self.has(crate::bugs::Bug::PunchFaultWindow) {
            // BUG(punch-fault-window): the folios wholly inside the range are dropped first
            // (truncate_pagecache_range) and the extents punched later, with the invalidate lock
            // let go in between: a fault or read there instantiates a folio from the blocks about
            // to be freed, and the punch, which dropped the cache already, leaves it cached.
            let fsz = self.geo.fsz;
            let inside = |i: u64| i * fsz >= wb0 * bs && (i + 1) * fsz <= wb1 * bs;
            let gone: Vec<LockedFolio> = held
                .keys()
                .copied()
                .filter(|&i| inside(i))
                .collect::<Vec<_>>()
                .into_iter()
                .filter_map(|i| held.remove(&i))
                .collect();
            ino.cache
                .remove_many_then(&gone.iter().collect::<Vec<_>>(), || ());
            drop(gone);
            drop(held);
            drop(inv);
            super::sync::yield_point();
            inv = ino.invalidate.write();
            held = self.lock_and_wait(seq, ino, f0, f1);
            held.retain(|&i, _| !inside(i));
            self.check_free_possible(ino, seq, wb0, wb1)?;
        }
        self.zero_edges(ino, &mut held, off, end, self.size(ino));
        let gone = self.punch_cache(&mut held, wb0, wb1);
        let mut em = ino.ilock.lock();
        let mut tree = self.alloc.lock();
        let (a, d) = self.punch_extents(&mut em, &mut tree, wb0, wb1);
        let refs: Vec<_> = gone.iter().collect();
        // COMMIT POINT: punch (edges zeroed, cache dropped, whole blocks holes, counters).
        ino.cache.remove_many_then(&refs, || {
            self.commit(Step::Op { seq }, || {
                self.space.free_allocated(a);
                self.space.unreserve(d);
            })
        });
        drop(tree);
        drop(em);
        drop(held);
        drop(inv);
        Ok(Outcome::Done(0))
    }

    /// `ZeroRange`. The space check, the counters and i_size are its commit (under ILOCK and
    /// the allocator lock, every affected folio held); the cache and extent changes follow while
    /// everything stays locked.
    pub(crate) fn zero_range(
        &self,
        ino: &Inode,
        seq: u32,
        off: u64,
        len: u64,
        keep_size: bool,
    ) -> Result<Outcome, Errno> {
        let end = match self.range_end(off, len) {
            Ok(e) => e,
            Err(e) => return self.early(seq, Err(e)),
        };
        let _io = ino.iolock.write();
        let _inv = ino.invalidate.write();
        // The edges are logged after the commit point below (the commit can still fail with
        // nothing changed): keep journal commits out until they are.
        let _handle = ino.jdata.then(|| ino.handles.read());
        let (f0, f1) = self.folio_span(off, end - off);
        let mut held = self.lock_and_wait(seq, ino, f0, f1);
        let old_size = self.size(ino);
        let created = self.prepare_edges(ino, &mut held, off, end);
        let bs = self.geo.bs;
        let (wb0, wb1) = (off.div_ceil(bs), end / bs);
        let w = wb1.saturating_sub(wb0);
        let em = ino.ilock.lock();
        let tree = self.alloc.lock();
        let (mut a, mut d) = (0, 0);
        em.for_each(wb0, wb1, |m| match m.state {
            ExtentState::Delalloc => d += m.len,
            s if s.is_allocated() => a += m.len,
            _ => {}
        });
        // COMMIT POINT: zero-range (ENOSPC / EFSCORRUPTED with nothing changed, or the counters
        // and i_size; the cache and extents change below, everything still locked).
        let res = self.commit(Step::Op { seq }, || {
            if w > 0 {
                let (free, _, _) = self.space.get();
                if free.saturating_add(a).saturating_add(d) < w {
                    return Err(Errno::Enospc);
                }
                tree.check_readable().map_err(super::alloc_errno)?;
                self.space.settle_zero(a, d, w, 0);
            }
            if !keep_size && ino.size.fetch_max(end, Ordering::SeqCst) < end {
                // The size change is logged with the op's transaction (durable with it).
                ino.disk_size.store(end, Ordering::SeqCst);
            }
            Ok(())
        });
        if let Err(e) = res {
            drop(tree);
            drop(em);
            let gone: Vec<LockedFolio> = created.iter().filter_map(|i| held.remove(i)).collect();
            let refs: Vec<_> = gone.iter().collect();
            ino.cache.remove_many_then(&refs, || ());
            return Err(e);
        }
        // Nothing that could see the extents, the btree or these folios between here and the
        // end runs meanwhile: every folio is held, and IOLOCK + the invalidate lock exclude the
        // rest (repair and fault injection included); the counters are already settled.
        drop(tree);
        drop(em);
        self.zero_edges(ino, &mut held, off, end, old_size);
        let gone = self.punch_cache(&mut held, wb0, wb1);
        let mut em = ino.ilock.lock();
        let mut tree = self.alloc.lock();
        self.punch_extents(&mut em, &mut tree, wb0, wb1);
        if w > 0 {
            match tree.alloc(w) {
                Ok(pieces) => super::assign_phys(&[(wb0, w)], &pieces, |b, l, p| {
                    em.set(b, l, ExtentState::Unwritten, p)
                }),
                Err(e) => self.record_violation(
                    "zero-range-alloc",
                    format!("allocating {w} blocks after the space check failed: {e:?}"),
                ),
            }
        }
        drop(tree);
        let refs: Vec<_> = gone.iter().collect();
        ino.cache.remove_many_then(&refs, || ());
        drop(em);
        drop(held);
        Ok(Outcome::Done(0))
    }

    /// `Truncate`.
    pub(crate) fn truncate(&self, ino: &Inode, seq: u32, new: u64) -> Result<Outcome, Errno> {
        let g = self.geo;
        if new > g.max {
            return self.early(seq, Err(Errno::Efbig));
        }
        let _io = ino.iolock.write();
        let _inv = ino.invalidate.write();
        let old = self.size(ino);
        if new > old {
            // COMMIT POINT: truncate up (i_size only).
            // xfs_setattr_size logs the new size: durable with the commit.
            self.commit(Step::Op { seq }, || {
                ino.size.store(new, Ordering::SeqCst);
                ino.disk_size.store(new, Ordering::SeqCst);
            });
            return Ok(Outcome::Done(0));
        }
        // Down or to the same size: xfs_setattr_size calls xfs_itruncate_extents for
        // `newsize <= oldsize`, so even an unchanged size drops every block past the EOF block
        // (keep-size preallocation included).
        let keep = new.div_ceil(g.bs);
        let mut held = self.lock_and_wait(seq, ino, new / g.fsz, u64::MAX);
        self.check_free_possible(ino, seq, keep, u64::MAX)?;
        if !new.is_multiple_of(g.bs) {
            // iomap_truncate_page zeroes to the end of the EOF block whatever the old size was,
            // so the clip is the block's end: with `new == old` a Written EOF block still gets
            // dirtied (its tail is past EOF and already zero).
            self.zero_partial(ino, &mut held, new, keep * g.bs, keep * g.bs);
        }
        // Cache: folios from keep*bs on go; in the EOF folio, blocks >= keep become clean zeros.
        let cut = (keep * g.bs).div_ceil(g.fsz);
        let gone: Vec<LockedFolio> = held.split_off(&cut).into_values().collect();
        if keep > 0 && !keep.is_multiple_of(g.bpf) {
            if let Some(lf) = held.get(&((keep - 1) / g.bpf)) {
                let slot = keep % g.bpf;
                let mask = super::folio_mask::range(slot, g.bpf);
                let mut st = lf.mem();
                let bs = g.bs as usize;
                st.data[slot as usize * bs..].fill(0);
                st.clear_dirty(mask);
            }
        }
        let mut em = ino.ilock.lock();
        self.zero_disk_tail(&em, new);
        let mut tree = self.alloc.lock();
        let end = em.end_block().max(keep);
        let (a, d) = self.punch_extents(&mut em, &mut tree, keep, end);
        let refs: Vec<_> = gone.iter().collect();
        // COMMIT POINT: truncate down (tail zeroed, cache past EOF dropped, blocks past EOF
        // freed, counters, i_size).
        ino.cache.remove_many_then(&refs, || {
            self.commit(Step::Op { seq }, || {
                self.space.free_allocated(a);
                self.space.unreserve(d);
                ino.size.store(new, Ordering::SeqCst);
                ino.disk_size.store(new, Ordering::SeqCst);
            })
        });
        drop(tree);
        drop(em);
        drop(held);
        Ok(Outcome::Done(0))
    }
}
