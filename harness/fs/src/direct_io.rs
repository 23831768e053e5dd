//! Direct IO (`iomap_dio_rw` with XFS's `xfs_direct_write_iomap_begin`).
//!
//! Owns: `DirectWrite` and `DirectRead`.
//! Invariants: before touching the disk, the range's dirty cache is written back and waited for
//! (`filemap_write_and_wait_range`); a write then drops the range's folios
//! (`invalidate_inode_pages2_range`) under the invalidate lock, so no fault can re-instantiate a
//! folio from the old mapping until the new blocks are written; allocation is all or nothing.
//! Locks: a write takes IOLOCK and the invalidate lock exclusive; a read IOLOCK shared. Then folio
//! locks one at a time (flush, drop), then ILOCK + allocator + disk for the allocation and the
//! device write, which happen in one ILOCK critical section.

use super::{Fs, Inode};
use vocab::fill_pattern;
use vocab::geometry::DMA_ALIGNMENT;
use vocab::{Errno, ExtentState, Outcome, Step};

impl Fs {
    /// `DirectWrite`. After the flush, the range's folios are locked (and waited for), then the
    /// cache drop, the allocation, the disk write and the size change are one commit under
    /// ILOCK, the allocator lock and the page-cache index lock.
    pub(crate) fn direct_write(
        &self,
        ino: &Inode,
        seq: u32,
        off: u64,
        len: u64,
    ) -> Result<Outcome, Errno> {
        let g = self.geo;
        // xfs_file_write_iter returns 0 for an empty write before xfs_file_dio_write checks the
        // alignment (to the sector size, which is the block size here).
        if len == 0 {
            return self.early(seq, Ok(Outcome::Done(0)));
        }
        if !off.is_multiple_of(g.bs) || !len.is_multiple_of(g.bs) {
            return self.early(seq, Err(Errno::Einval));
        }
        if off >= g.max {
            return self.early(seq, Err(Errno::Efbig));
        }
        let n = len.min(g.max - off);
        let end = off + n;
        let _io = ino.iolock.write();
        let mut inv = ino.invalidate.write();
        let (f0, f1) = self.folio_span(off, n);
        if let Some(e) = self.writeback_range(seq, ino, f0, f1, true).err() {
            return self.early(seq, Err(e));
        }
        if self.has(crate::bugs::Bug::DirtyAfterDioFlush) {
            // BUG(dirty-after-dio-flush): the invalidate lock is not held from the flush to the
            // drop; a write fault may dirty a folio of the range in between, and the drop below
            // discards it with its data.
            drop(inv);
            super::sync::yield_point();
            inv = ino.invalidate.write();
        }
        let held = ino.cache.lock_range(f0, f1);
        for lf in &held {
            self.wait_writeback(seq, lf);
        }
        let (b0, b1) = (off / g.bs, end / g.bs);
        let mut em = ino.ilock.lock();
        let maps = em.mappings(b0, b1);
        let holes: Vec<(u64, u64)> = maps
            .iter()
            .filter(|m| m.state == ExtentState::Hole)
            .map(|m| (m.start, m.len))
            .collect();
        // No delalloc can remain after the flush; convert any leftover reservation anyway so the
        // accounting stays whole.
        let dl: Vec<(u64, u64)> = maps
            .iter()
            .filter(|m| m.state == ExtentState::Delalloc)
            .map(|m| (m.start, m.len))
            .collect();
        let nh: u64 = holes.iter().map(|h| h.1).sum();
        let nd: u64 = dl.iter().map(|h| h.1).sum();
        let mut tree = self.alloc.lock();
        let refs: Vec<_> = held.iter().collect();
        // COMMIT POINT: the direct write (cache dropped, blocks allocated, i_size extended; the
        // disk write follows under the same ILOCK, which every reader of the disk holds).
        let res = ino.cache.remove_many_then(&refs, || {
            self.commit(Step::Op { seq }, || {
                // ENOSPC before EFSCORRUPTED (alloc_blocks_locked checks the space first).
                let pieces = self.alloc_blocks_locked(&mut tree, nh)?;
                if nd > 0 {
                    tree.check_readable().map_err(super::alloc_errno)?;
                }
                let dpieces = if nd > 0 {
                    let p = tree.alloc(nd).map_err(super::alloc_errno)?;
                    self.space.convert_reserved(nd);
                    p
                } else {
                    Vec::new()
                };
                ino.size.fetch_max(end, super::sync::Ordering::SeqCst);
                // Its completion is synchronous: the size on disk covers what it writes.
                ino.disk_size.fetch_max(end, super::sync::Ordering::SeqCst);
                Ok((pieces, dpieces))
            })
        });
        drop(tree);
        let (pieces, dpieces) = res?;
        super::assign_phys(&holes, &pieces, |b, l, p| {
            em.set(b, l, ExtentState::Written, p)
        });
        super::assign_phys(&dl, &dpieces, |b, l, p| {
            em.set(b, l, ExtentState::Written, p)
        });
        em.convert(b0, b1, ExtentState::Unwritten, ExtentState::Written);
        let bs = g.bs as usize;
        let mut buf = vec![0u8; bs];
        for m in em.mappings(b0, b1) {
            for b in m.start..m.end() {
                fill_pattern(seq, b * g.bs, &mut buf);
                self.disk.write(m.phys_of(b), &buf);
            }
        }
        drop(em);
        drop(held);
        drop(inv);
        Ok(Outcome::Done(n))
    }

    /// `DirectRead`. Alignment is not an argument check: as `iomap_dio_rw` does, the read
    /// flushes first and then walks the mappings of the requested range (not clipped to EOF),
    /// filling holes and unwritten extents with zeros at any offset and refusing (EINVAL) a
    /// written extent whose part inside the request is not block aligned (`iomap_dio_bio_iter`).
    pub(crate) fn direct_read(
        &self,
        ino: &Inode,
        seq: u32,
        off: u64,
        len: u64,
    ) -> Result<Outcome, Errno> {
        let g = self.geo;
        if len == 0 {
            // xfs_file_dio_read: nothing to read, whatever the offset.
            return self.early(seq, Ok(Outcome::Data(Vec::new())));
        }
        let _io = ino.iolock.read();
        let size = self.size(ino);
        if off >= size {
            // __iomap_dio_rw returns 0 at or past EOF before looking at anything else.
            return self.early(seq, Ok(Outcome::Data(Vec::new())));
        }
        let n = len.min(size - off);
        let (f0, f1) = self.folio_span(off, n);
        if let Some(e) = self.writeback_range(seq, ino, f0, f1, true).err() {
            return self.early(seq, Err(e));
        }
        let bs = g.bs as usize;
        let (b0, b1) = (off / g.bs, (off + n).div_ceil(g.bs));
        let em = ino.ilock.lock();
        // The request's own end, past EOF if it goes there; a huge one lies past every extent.
        let req_end = off.saturating_add(len);
        let mut misaligned = [off, req_end]
            .into_iter()
            .any(|e| e % g.bs != 0 && em.state_of(e / g.bs) == ExtentState::Written);
        // iomap also checks the buffer where a mapped extent begins inside the request: its
        // position there (a multiple of the block size minus `off`) must be DMA-aligned.
        if !misaligned && !off.is_multiple_of(DMA_ALIGNMENT) {
            let last = req_end.min(g.max).div_ceil(g.bs);
            em.for_each(off / g.bs + 1, last.max(off / g.bs + 1), |m| {
                misaligned |= m.state == ExtentState::Written;
            });
        }
        if misaligned {
            // COMMIT POINT: the direct read fails on a mapped extent it cannot read unaligned
            // (the flush above stays done).
            self.record(Step::Op { seq });
            return Err(Errno::Einval);
        }
        let mut out = vec![0u8; (b1 - b0) as usize * bs];
        em.for_each(b0, b1, |m| {
            if m.state == ExtentState::Written {
                for b in m.start..m.end() {
                    let i = (b - b0) as usize;
                    self.disk.read(m.phys_of(b), &mut out[i * bs..(i + 1) * bs]);
                }
            }
        });
        // COMMIT POINT: the direct read (the disk's view under ILOCK).
        self.record(Step::Op { seq });
        drop(em);
        let skip = (off - b0 * g.bs) as usize;
        Ok(Outcome::Data(out[skip..skip + n as usize].to_vec()))
    }
}
