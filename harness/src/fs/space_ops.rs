//! Space manipulation: `Fallocate`, `PunchHole`, `ZeroRange`, `Truncate`, and the zeroing rule
//! they share (`iomap_zero_range` / `iomap_truncate_page`).
//!
//! Owns: those ops.
//! Invariants: every check that can fail (ENOSPC before EFSCORRUPTED) happens before anything
//! changes; ZeroRange's space need is held as a reservation from its check until it settles, so a
//! concurrent reservation cannot make it fail half way; cached folios are cleaned or dropped
//! (each under its lock, after waiting for its writeback) before the extents under them are
//! punched, so writeback never finds dirty data over a punched block.
//! Locks: Fallocate takes IOLOCK exclusive; the others IOLOCK and the invalidate lock exclusive
//! (fault injection takes the invalidate locks shared, so the btree cannot turn corrupt between
//! a check and the frees). Then folio locks one at a time, then ILOCK + allocator.

use super::{Fs, Geo, Inode};
use reference::{Errno, ExtentState, Outcome};

impl Fs {
    /// The zeroing rule for bytes `[from, to)` of one block, clipped to EOF. Caller holds IOLOCK
    /// and the invalidate lock exclusive.
    pub(crate) fn zero_partial(&self, ino: &Inode, from: u64, to: u64) {
        let g = self.geo;
        let to = to.min(self.size(ino));
        if from >= to {
            return;
        }
        let b = from / g.bs;
        let idx = from / g.fsz;
        let slot = b - idx * g.bpf;
        let cached = ino.cache.get_locked(idx);
        let state = ino.ilock.lock().state_of(b);
        let lf = match state {
            ExtentState::Hole => return,
            ExtentState::Unwritten | ExtentState::Delalloc => {
                let Some(lf) = cached else { return };
                if state == ExtentState::Unwritten && lf.mem().dirty() & (1 << slot) == 0 {
                    return; // reads as zeros already
                }
                lf
            }
            ExtentState::Written => {
                let lf = match cached {
                    Some(lf) => lf,
                    None => {
                        let (lf, created) = ino.cache.get_or_create_locked(idx);
                        if created || !lf.mem().uptodate {
                            self.fill_folio(ino, &lf, None);
                        }
                        lf
                    }
                };
                if !self.has(crate::bugs::Bug::UnstablePages) {
                    self.wait_writeback(&lf);
                }
                lf
            }
        };
        {
            let mut st = lf.mem();
            let fstart = idx * g.fsz;
            st.data[(from - fstart) as usize..(to - fstart) as usize].fill(0);
        }
        if state == ExtentState::Written {
            self.log_blocks(ino, &lf, 1 << slot);
        }
    }

    /// Truncate-down's on-disk zeroing of the new EOF block: if block `new / bs` is `Written`,
    /// its bytes on disk from `new` to the block's end become zeros at once (SPEC.md Truncate;
    /// XFS writes the zeroed EOF folio back before logging the size change). The cached block,
    /// dirty with the same zeros, is written back later as usual. The read-modify-write of the
    /// disk block runs under ILOCK, which every disk writer of an allocated block (IO completion,
    /// journal commit, direct write) holds, so no completion can slip between read and write.
    fn zero_disk_tail(&self, ino: &Inode, new: u64) {
        let g = self.geo;
        let b = new / g.bs;
        let from = (new - b * g.bs) as usize;
        if from == 0 {
            return;
        }
        let em = ino.ilock.lock();
        let m = em.lookup(b, b + 1);
        if m.state != ExtentState::Written {
            return;
        }
        let mut buf = vec![0u8; g.bs as usize];
        self.disk.read(m.phys, &mut buf);
        buf[from..].fill(0);
        self.disk.write(m.phys, &buf);
        drop(em);
    }

    /// Zeroes the partial blocks at the edges of `[off, end)` (whole blocks are `[wb0, wb1)`).
    fn zero_edges(&self, ino: &Inode, off: u64, end: u64) {
        let bs = self.geo.bs;
        let (wb0, wb1) = (off.div_ceil(bs), end / bs);
        if wb0 > wb1 {
            self.zero_partial(ino, off, end);
            return;
        }
        if off % bs != 0 {
            self.zero_partial(ino, off, wb0 * bs);
        }
        if end % bs != 0 {
            self.zero_partial(ino, wb1 * bs, end);
        }
    }

    /// Cache side of punching whole blocks `[wb0, wb1)`: folios entirely inside are removed, in
    /// the others the blocks become clean zeros. Each folio is locked and its writeback waited.
    fn punch_cache(&self, ino: &Inode, wb0: u64, wb1: u64) {
        let g = self.geo;
        if wb0 >= wb1 {
            return;
        }
        let (lo, hi) = (wb0.saturating_mul(g.bs), wb1.saturating_mul(g.bs));
        let (f0, f1) = (lo / g.fsz, hi.div_ceil(g.fsz));
        for f in ino.cache.range(f0, f1) {
            let lf = f.lock();
            if !lf.mem().mapped {
                continue;
            }
            self.wait_writeback(&lf);
            let fstart = lf.index * g.fsz;
            if fstart >= lo && fstart + g.fsz <= hi {
                ino.cache.remove(&lf);
                continue;
            }
            let mask = g.overlap_mask(lf.index, lo, hi);
            let mut st = lf.mem();
            let bs = g.bs as usize;
            for i in 0..g.bpf as usize {
                if mask & (1 << i) != 0 {
                    st.data[i * bs..(i + 1) * bs].fill(0);
                }
            }
            st.clear_dirty(mask);
        }
    }

    /// Waits for writeback on every cached folio overlapping `[off, end)`.
    fn wait_range(&self, ino: &Inode, off: u64, end: u64) {
        let (f0, f1) = self.folio_span(off, end.saturating_sub(off));
        for f in ino.cache.range(f0, f1) {
            self.wait_writeback(&f);
        }
    }

    /// EFSCORRUPTED if blocks `[b0, b1)` hold an allocated block while the btree is unreadable.
    fn check_free_possible(&self, ino: &Inode, b0: u64, b1: u64) -> Result<(), Errno> {
        if b0 >= b1 {
            return Ok(());
        }
        let em = ino.ilock.lock();
        if em.any_allocated(b0, b1) {
            self.alloc
                .lock()
                .check_readable()
                .map_err(super::alloc_errno)?;
        }
        Ok(())
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
        off: u64,
        len: u64,
        keep_size: bool,
    ) -> Result<Outcome, Errno> {
        let end = self.range_end(off, len)?;
        let g = self.geo;
        let _io = ino.iolock.write();
        let (b0, b1) = (off / g.bs, end.div_ceil(g.bs));
        {
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
            if nh + nd > 0 {
                self.space.take_for_alloc(nh).map_err(|_| Errno::Enospc)?;
                let res = self.alloc.lock().alloc(nh + nd);
                let pieces = match res {
                    Ok(p) => p,
                    Err(e) => {
                        self.space.untake_for_alloc(nh);
                        return Err(super::alloc_errno(e));
                    }
                };
                self.space.convert_reserved(nd);
                let mut runs: Vec<(u64, u64)> = holes.into_iter().chain(dl).collect();
                runs.sort_unstable();
                super::assign_phys(&runs, &pieces, |b, l, p| {
                    em.set(b, l, ExtentState::Unwritten, p)
                });
            }
            if !keep_size {
                ino.size.fetch_max(end, super::sync::Ordering::SeqCst);
            }
            // COMMIT POINT: fallocate (blocks allocated unwritten, i_size).
        }
        Ok(Outcome::Done(0))
    }

    /// `PunchHole`.
    pub(crate) fn punch_hole(&self, ino: &Inode, off: u64, len: u64) -> Result<Outcome, Errno> {
        let end = self.range_end(off, len)?;
        let _io = ino.iolock.write();
        let _inv = ino.invalidate.write();
        self.wait_range(ino, off, end);
        let bs = self.geo.bs;
        let (wb0, wb1) = (off.div_ceil(bs), end / bs);
        self.check_free_possible(ino, wb0, wb1)?;
        self.zero_edges(ino, off, end);
        self.punch_cache(ino, wb0, wb1);
        let mut em = ino.ilock.lock();
        self.punch_blocks(&mut em, wb0, wb1)?;
        // COMMIT POINT: punch (whole blocks are holes; edges zeroed and cache dropped above
        // under the same IOLOCK + invalidate lock).
        Ok(Outcome::Done(0))
    }

    /// `ZeroRange`.
    pub(crate) fn zero_range(
        &self,
        ino: &Inode,
        off: u64,
        len: u64,
        keep_size: bool,
    ) -> Result<Outcome, Errno> {
        let end = self.range_end(off, len)?;
        let _io = ino.iolock.write();
        let _inv = ino.invalidate.write();
        self.wait_range(ino, off, end);
        let bs = self.geo.bs;
        let (wb0, wb1) = (off.div_ceil(bs), end / bs);
        let w = wb1.saturating_sub(wb0);
        let mut held = 0;
        if w > 0 {
            let em = ino.ilock.lock();
            let mut a = 0;
            let mut d = 0;
            em.for_each(wb0, wb1, |m| match m.state {
                ExtentState::Delalloc => d += m.len,
                s if s.is_allocated() => a += m.len,
                _ => {}
            });
            held = w.saturating_sub(a + d);
            self.space.reserve(held).map_err(|_| Errno::Enospc)?;
            if let Err(e) = self.alloc.lock().check_readable() {
                self.space.unreserve(held);
                return Err(super::alloc_errno(e));
            }
        }
        self.zero_edges(ino, off, end);
        self.punch_cache(ino, wb0, wb1);
        let mut em = ino.ilock.lock();
        if w > 0 {
            let maps = em.mappings(wb0, wb1);
            let (mut a, mut d) = (0, 0);
            let mut tree = self.alloc.lock();
            for m in &maps {
                match m.state {
                    ExtentState::Delalloc => d += m.len,
                    s if s.is_allocated() => {
                        a += m.len;
                        if let Err(e) = tree.free(m.phys, m.len) {
                            self.record_violation(
                                "double-owned",
                                format!("zero-range free {}+{}: {e:?}", m.phys, m.len),
                            );
                        }
                        self.disk.discard(m.phys, m.len);
                    }
                    _ => {}
                }
            }
            let pieces = match tree.alloc(w) {
                Ok(p) => p,
                Err(e) => {
                    // Only reachable with broken accounting: leave the range a hole.
                    drop(tree);
                    self.space.settle_zero(a, d, 0, held);
                    em.set(wb0, w, ExtentState::Hole, 0);
                    return Err(super::alloc_errno(e));
                }
            };
            drop(tree);
            self.space.settle_zero(a, d, w, held);
            em.set(wb0, w, ExtentState::Hole, 0);
            super::assign_phys(&[(wb0, w)], &pieces, |b, l, p| {
                em.set(b, l, ExtentState::Unwritten, p)
            });
        }
        if !keep_size {
            ino.size.fetch_max(end, super::sync::Ordering::SeqCst);
        }
        // COMMIT POINT: zero-range (whole blocks unwritten, edges zeroed, i_size).
        drop(em);
        Ok(Outcome::Done(0))
    }

    /// `Truncate`.
    pub(crate) fn truncate(&self, ino: &Inode, new: u64) -> Result<Outcome, Errno> {
        let g = self.geo;
        if new > g.max {
            return Err(Errno::Efbig);
        }
        let _io = ino.iolock.write();
        let _inv = ino.invalidate.write();
        let old = self.size(ino);
        if new >= old {
            ino.size.store(new, super::sync::Ordering::SeqCst);
            // COMMIT POINT: truncate up (i_size only).
            return Ok(Outcome::Done(0));
        }
        let keep = new.div_ceil(g.bs);
        let first = new / g.fsz;
        for f in ino.cache.range(first, u64::MAX) {
            self.wait_writeback(&f);
        }
        self.check_free_possible(ino, keep, u64::MAX)?;
        if new % g.bs != 0 {
            self.zero_partial(ino, new, keep * g.bs);
            self.zero_disk_tail(ino, new);
        }
        // Cache: folios from keep*bs on go; in the EOF folio, blocks >= keep become clean zeros.
        let cut = (keep * g.bs).div_ceil(g.fsz);
        for f in ino.cache.range(cut, u64::MAX) {
            let lf = f.lock();
            if lf.mem().mapped {
                self.wait_writeback(&lf);
                ino.cache.remove(&lf);
            }
        }
        if keep > 0 && keep % g.bpf != 0 {
            if let Some(lf) = ino.cache.get_locked((keep - 1) / g.bpf) {
                self.wait_writeback(&lf);
                let slot = keep % g.bpf;
                let mask = Geo::mask(slot, g.bpf);
                let mut st = lf.mem();
                let bs = g.bs as usize;
                st.data[slot as usize * bs..].fill(0);
                st.clear_dirty(mask);
            }
        }
        let mut em = ino.ilock.lock();
        let end = em.end_block().max(keep);
        self.punch_blocks(&mut em, keep, end)?;
        ino.size.store(new, super::sync::Ordering::SeqCst);
        // COMMIT POINT: truncate down (blocks past EOF freed, i_size).
        Ok(Outcome::Done(0))
    }
}
