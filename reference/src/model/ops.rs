//! The operations of SPEC.md "Operations": argument checks (`op_*`, used by [`RefFs::apply`])
//! and the op-level steps that run under the op's locks (`*_locked`, [`RefFs::reserve_write`],
//! [`RefFs::write_folio`], ...), plus the zeroing rule and the punch of whole blocks they share.
//!
//! Every `op_*` function is the sequential composition listed in the module docs of
//! [`crate::model`]; each step re-clips its range to the maximum file size so that a replayer
//! passing odd arguments cannot make the block vector grow without bound.

use super::file::Block;
use super::RefFs;
use crate::errno::Errno;
use crate::geometry::DMA_ALIGNMENT;
use crate::op::{FileId, Outcome};
use crate::pattern::fill_pattern;
use crate::state::ExtentState;

/// Turns a step's `Result` into an op result with `Done(0)` on success.
fn done0(r: Result<(), Errno>) -> Outcome {
    match r {
        Ok(()) => Outcome::Done(0),
        Err(e) => Outcome::Err(e),
    }
}

impl RefFs {
    // ===== Write =====

    /// Argument checks of a buffered write: `Ok(n)` with the length cut at the maximum file size
    /// (`Ok(0)` for `len == 0`, which is `Done(0)` even past the maximum), or `EFBIG`.
    pub fn write_args(&self, off: u64, len: u64) -> Result<u64, Errno> {
        if len == 0 {
            return Ok(0);
        }
        if off >= self.max_size() {
            return Err(Errno::Efbig);
        }
        Ok(len.min(self.max_size() - off))
    }

    /// Step: the up-front space of a buffered write of `[off, off+n)`. Ordinary file: reserve one
    /// block per `Hole` block overlapping the range (ENOSPC: nothing changes) and make them
    /// `Delalloc` at once, not yet dirty nor cached: XFS creates the delalloc extent in
    /// `xfs_buffered_write_iomap_begin`, before any folio is touched, so a writeback of a folio
    /// racing with the copy converts (or, failing, punches) those blocks too. Sequentially the
    /// difference is invisible: [`RefFs::write_folio`] dirties every one of them before the op
    /// ends. Journaled data: allocate those holes now as `Unwritten` (ENOSPC, then EFSCORRUPTED:
    /// nothing changes).
    pub fn reserve_write(&mut self, file: FileId, off: u64, n: u64) -> Result<(), Errno> {
        let Some(fi) = self.fid(file) else {
            return Err(Errno::Einval);
        };
        let end = off.saturating_add(n).min(self.max_size());
        if end <= off {
            return Ok(());
        }
        let (b0, b1) = self.blocks_overlapping(off, end);
        let holes = self.files[fi].count(b0, b1, |b| b.extent == ExtentState::Hole);
        if self.files[fi].jdata {
            self.space.check_alloc(holes, holes > 0)?;
            self.allocate_holes(fi, b0, b1);
            Ok(())
        } else {
            self.space.reserve(holes)?;
            for b in b0..b1 {
                if self.files[fi].block(b).extent == ExtentState::Hole {
                    self.files[fi].block_mut(b).extent = ExtentState::Delalloc;
                }
            }
            Ok(())
        }
    }

    /// Step (a buffered write that stopped short, `Step::WritePunch`): the blocks overlapping
    /// `[from, end)`, the part of the write it did not copy, that are `Delalloc` and not dirty
    /// (the write's own unused reservation) become holes and their reservation is released, as
    /// `iomap_file_buffered_write_punch_delalloc` punches the delalloc range a short write leaves
    /// behind while keeping whatever is dirty in the cache. Ordinary files only: a journaled-data
    /// write allocates (`Unwritten`), which a short write keeps.
    pub fn punch_write_tail(&mut self, file: FileId, from: u64, end: u64) {
        let Some(fi) = self.fid(file) else { return };
        if self.files[fi].jdata {
            return;
        }
        let end = end.min(self.max_size());
        let (b0, b1) = self.blocks_overlapping(from, end);
        let b1 = b1.min(self.files[fi].block_len());
        let mut released = 0;
        for b in b0..b1 {
            let blk = self.files[fi].block_mut(b);
            if blk.extent == ExtentState::Delalloc && !blk.dirty {
                *blk = super::file::Block::HOLE;
                released += 1;
            }
        }
        self.space.release(released);
        self.files[fi].trim();
    }

    /// Allocates every `Hole` block of `[b0, b1)` as `Unwritten`. Space was checked.
    fn allocate_holes(&mut self, fi: usize, b0: u64, b1: u64) {
        for b in b0..b1 {
            if self.files[fi].block(b).extent == ExtentState::Hole {
                let p = self.space.alloc_from_free();
                let m = self.files[fi].block_mut(b);
                m.extent = ExtentState::Unwritten;
                m.phys = Some(p);
            }
        }
    }

    /// Step: one folio's part of a buffered write, after [`RefFs::reserve_write`]: the bytes
    /// `[off, off+len)` (clipped to the folio holding `off`). Waits for the folio's writeback,
    /// instantiates it if absent, copies pattern `seq` in, and marks the blocks overlapping the
    /// range dirty. A `Hole` block in the range (ordinary file) is one whose reservation a failed
    /// writeback punched after [`RefFs::reserve_write`]: the folio's holes are reserved again
    /// (all or nothing, before the copy) and become `Delalloc`, as
    /// `xfs_buffered_write_iomap_begin` does when it maps a hole; see
    /// [`RefFs::write_folio_checked`] for the failure. The size is not changed (see
    /// [`RefFs::extend_size`]).
    pub fn write_folio(&mut self, seq: u32, file: FileId, off: u64, len: u64) {
        let _ = self.write_folio_checked(seq, file, off, len);
    }

    /// [`RefFs::write_folio`], telling whether the folio's re-reservation failed: `Err(ENOSPC)`
    /// (after the writeback wait and the instantiation) with nothing of the copy done, as
    /// `xfs_buffered_write_iomap_begin` fails a write on a hole it cannot reserve (the write is
    /// then short, or fails if nothing was copied yet). Sequentially this never fails.
    pub fn write_folio_checked(
        &mut self,
        seq: u32,
        file: FileId,
        off: u64,
        len: u64,
    ) -> Result<(), Errno> {
        let Some(fi) = self.fid(file) else {
            return Err(Errno::Einval);
        };
        let fsz = self.fsz();
        let folio = off / fsz;
        let folio_end = (folio + 1).saturating_mul(fsz);
        let end = off.saturating_add(len).min(self.max_size()).min(folio_end);
        if end <= off {
            return Ok(());
        }
        self.wait_writeback(file, folio);
        self.instantiate_folio(file, folio);
        let jdata = self.files[fi].jdata;
        let (b0, b1) = self.blocks_overlapping(off, end);
        if !jdata {
            let holes = self.files[fi].count(b0, b1, |b| b.extent == ExtentState::Hole);
            self.space.reserve(holes)?;
        }
        let start = folio * fsz;
        if let Some(data) = self.files[fi].folios.get_mut(&folio) {
            fill_pattern(
                seq,
                off,
                data.write_range((off - start) as usize, (end - start) as usize),
            );
        }
        for b in b0..b1 {
            let m = self.files[fi].block_mut(b);
            if !jdata && m.extent == ExtentState::Hole {
                m.extent = ExtentState::Delalloc;
            }
            m.dirty = true;
        }
        self.files[fi].unpromise(b0, b1);
        Ok(())
    }

    /// Step: `size = max(size, end)` (end clipped to the maximum file size).
    pub fn extend_size(&mut self, file: FileId, end: u64) {
        let Some(fi) = self.fid(file) else { return };
        let end = end.min(self.max_size());
        let f = &mut self.files[fi];
        f.size = f.size.max(end);
    }

    /// `Write`.
    pub(super) fn op_write(
        &mut self,
        seq: u32,
        file: FileId,
        off: u64,
        len: u64,
        sync: bool,
    ) -> Outcome {
        let n = match self.write_args(off, len) {
            Err(e) => return Outcome::Err(e),
            Ok(0) => return Outcome::Done(0),
            Ok(n) => n,
        };
        let end = off + n;
        if let Err(e) = self.reserve_write(file, off, n) {
            return Outcome::Err(e);
        }
        let fsz = self.fsz();
        let (first, last) = self.folios_overlapping(off, end);
        for f in first..=last {
            let a = off.max(f * fsz);
            let b = end.min((f + 1) * fsz);
            self.write_folio(seq, file, a, b - a);
        }
        self.extend_size(file, end);
        if sync {
            // O_SYNC is vfs_fsync_range: it reports (and clears) the recorded error, whichever
            // flush recorded it, so the flush's own result is not what is returned.
            let _ = self.flush_range(file, off, n);
            if let Some(e) = self.sync_finish(file) {
                return Outcome::Err(e);
            }
        }
        Outcome::Done(n)
    }

    // ===== Read, MmapRead, DirectRead =====

    /// `Read`.
    pub(super) fn op_read(&mut self, file: FileId, off: u64, len: u64) -> Outcome {
        let Some(fi) = self.fid(file) else {
            return Outcome::Err(Errno::Einval);
        };
        let size = self.files[fi].size;
        if len == 0 || off >= size {
            return Outcome::Data(Vec::new());
        }
        let n = len.min(size - off);
        let (first, last) = self.folios_overlapping(off, off + n);
        for f in first..=last {
            self.instantiate_folio(file, f);
        }
        Outcome::Data(self.read_cached(file, off, n))
    }

    /// `MmapRead`.
    pub(super) fn op_mmap_read(&mut self, file: FileId, off: u64, len: u64) -> Outcome {
        let n = match self.fault_args(file, off, len) {
            Err(e) => return Outcome::Err(e),
            Ok(0) => return Outcome::Data(Vec::new()),
            Ok(n) => n,
        };
        self.instantiate_folio(file, off / self.fsz());
        Outcome::Data(self.read_cached(file, off, n))
    }

    /// Argument checks of a fault at `off`: EFAULT at or past EOF, else the length clipped to the
    /// folio holding `off` and to EOF.
    pub fn fault_args(&self, file: FileId, off: u64, len: u64) -> Result<u64, Errno> {
        let Some(fi) = self.fid(file) else {
            return Err(Errno::Einval);
        };
        let size = self.files[fi].size;
        if off >= size {
            return Err(Errno::Efault);
        }
        let folio_end = (off / self.fsz() + 1) * self.fsz();
        Ok(len.min(folio_end - off).min(size - off))
    }

    /// Argument checks of a direct write: `Ok(0)` for `len == 0` (whatever the offset:
    /// `xfs_file_write_iter` returns 0 for an empty write before `xfs_file_dio_write` looks at the
    /// alignment), EINVAL if `off` or `len` is not a multiple of the block size (the up-front
    /// sector check of `xfs_file_dio_write`; the sector size is the block size here), EFBIG at or
    /// past the maximum size, else `Ok(n)` with the length cut at the maximum.
    pub fn direct_write_args(&self, off: u64, len: u64) -> Result<u64, Errno> {
        if len == 0 {
            return Ok(0);
        }
        if !off.is_multiple_of(self.bs()) || !len.is_multiple_of(self.bs()) {
            return Err(Errno::Einval);
        }
        if off >= self.max_size() {
            return Err(Errno::Efbig);
        }
        Ok(len.min(self.max_size() - off))
    }

    /// Argument checks of a direct read: the number of bytes it covers, `min(len, size - off)`,
    /// and 0 (the op returns no data, nothing else happens) for `len == 0` or `off >= size`
    /// (`xfs_file_dio_read` returns 0 for an empty read, `__iomap_dio_rw` for a read at or past
    /// EOF), whatever the alignment: alignment is only checked after the flush, per mapping.
    pub fn direct_read_args(&self, file: FileId, off: u64, len: u64) -> Result<u64, Errno> {
        let Some(fi) = self.fid(file) else {
            return Err(Errno::Einval);
        };
        let size = self.files[fi].size;
        if len == 0 || off >= size {
            return Ok(0);
        }
        Ok(len.min(size - off))
    }

    /// Whether a direct read of `[off, off+len)` (the requested range, not clipped to EOF) meets
    /// a `Written` block at an unaligned edge. `iomap_dio_iter` serves `Hole` and `Unwritten`
    /// mappings with `iomap_dio_hole_iter` (zeros, no alignment check) and only a mapped extent
    /// goes to `iomap_dio_bio_iter`, which fails with EINVAL when the part of the extent inside
    /// the request does not start and end on a block boundary. Extents are whole blocks, so that
    /// part can only be unaligned where the request's own start or end falls inside a `Written`
    /// block.
    ///
    /// The buffer is checked too (`bdev_iter_is_aligned`): where a mapped extent begins inside
    /// the request, after a hole or unwritten prefix was zero-filled, the buffer position there,
    /// `b * bs - off`, must be a multiple of [`DMA_ALIGNMENT`]. With `bs` a multiple of it, that
    /// fails exactly when `off` is not: then any `Written` block after the first one met is
    /// EINVAL (seen on Linux 6.18: a hole then a written 4 KiB block, read from 0x200 is served,
    /// from 0x100 is EINVAL).
    fn direct_read_misaligned(&self, fi: usize, off: u64, len: u64) -> bool {
        let bs = self.bs();
        // Past the maximum size every block is a hole; saturating keeps a huge length there.
        let end = off.saturating_add(len);
        let written = |b: u64| self.files[fi].block(b).extent == ExtentState::Written;
        if (!off.is_multiple_of(bs) && written(off / bs))
            || (!end.is_multiple_of(bs) && written(end / bs))
        {
            return true;
        }
        if off.is_multiple_of(DMA_ALIGNMENT) {
            return false;
        }
        let last = end.min(self.max_size()).div_ceil(bs);
        (off / bs + 1..last).any(written)
    }

    /// `DirectRead`.
    pub(super) fn op_direct_read(&mut self, file: FileId, off: u64, len: u64) -> Outcome {
        let n = match self.direct_read_args(file, off, len) {
            Err(e) => return Outcome::Err(e),
            Ok(0) => return Outcome::Data(Vec::new()),
            Ok(n) => n,
        };
        if let Err(e) = self.flush_range(file, off, n) {
            return Outcome::Err(e);
        }
        self.direct_read_locked(file, off, len)
    }

    /// Step: the copy-out of a direct read of `[off, off+len)` after its flush: EINVAL if a
    /// `Written` block lies at an unaligned edge of the requested range (see
    /// `direct_read_misaligned`; the flush stays done, as `kiocb_write_and_wait` runs before the
    /// mapping loop), otherwise the disk's view clipped to EOF ([`RefFs::read_disk`]).
    pub fn direct_read_locked(&self, file: FileId, off: u64, len: u64) -> Outcome {
        let Some(fi) = self.fid(file) else {
            return Outcome::Err(Errno::Einval);
        };
        if self.direct_read_misaligned(fi, off, len) {
            return Outcome::Err(Errno::Einval);
        }
        Outcome::Data(self.read_disk(file, off, len))
    }

    // ===== DirectWrite =====

    /// `DirectWrite`.
    pub(super) fn op_direct_write(
        &mut self,
        seq: u32,
        file: FileId,
        off: u64,
        len: u64,
    ) -> Outcome {
        let n = match self.direct_write_args(off, len) {
            Err(e) => return Outcome::Err(e),
            Ok(0) => return Outcome::Done(0),
            Ok(n) => n,
        };
        if let Err(e) = self.flush_range(file, off, n) {
            return Outcome::Err(e);
        }
        self.drop_folios(file, off, n);
        self.direct_write_locked(seq, file, off, n)
    }

    /// Step: drops every cached folio overlapping `[off, off+len)` (after a successful flush they
    /// are clean and idle; page-cache invalidation before a direct write).
    pub fn drop_folios(&mut self, file: FileId, off: u64, len: u64) {
        let Some(fi) = self.fid(file) else { return };
        let end = off.saturating_add(len);
        if end <= off {
            return;
        }
        let (first, last) = self.folios_overlapping(off, end);
        let bpf = self.bpf();
        for f in self.files[fi].cached_in(first, last) {
            let file = &mut self.files[fi];
            file.folios.remove(&f);
            for b in f * bpf..(f + 1) * bpf {
                if file.block(b).dirty {
                    file.block_mut(b).dirty = false;
                }
            }
        }
    }

    /// Step: the allocation and disk write of a direct write of `[off, off+n)` (block aligned),
    /// after the flush and the cache drop. ENOSPC / EFSCORRUPTED if any `Hole` block needs
    /// allocating and cannot be: nothing changes. Otherwise every block of the range ends
    /// `Written` with pattern `seq` on disk, the size extends, `Done(n)`.
    pub fn direct_write_locked(&mut self, seq: u32, file: FileId, off: u64, n: u64) -> Outcome {
        let Some(fi) = self.fid(file) else {
            return Outcome::Err(Errno::Einval);
        };
        let end = off.saturating_add(n).min(self.max_size());
        if end <= off {
            return Outcome::Done(0);
        }
        let (b0, b1) = self.blocks_overlapping(off, end);
        let holes = self.files[fi].count(b0, b1, |b| b.extent == ExtentState::Hole);
        // No Delalloc block survives the flush; if one did it would be allocated from its
        // reservation, as fallocate does.
        let delalloc = self.files[fi].count(b0, b1, |b| b.extent == ExtentState::Delalloc);
        if let Err(e) = self.space.check_alloc(holes, holes + delalloc > 0) {
            return Outcome::Err(e);
        }
        let bs = self.bs();
        let mut buf = vec![0u8; bs as usize];
        for b in b0..b1 {
            let blk = self.files[fi].block(b);
            let p = match (blk.extent, blk.phys) {
                (ExtentState::Hole, _) => self.space.alloc_from_free(),
                (ExtentState::Delalloc, _) => self.space.alloc_from_reserved(),
                (_, Some(p)) => p,
                // An allocated block without a physical block is an invariant violation that
                // check_invariants reports; give it one so the write still lands somewhere.
                (_, None) => self.space.alloc_from_free(),
            };
            fill_pattern(seq, b * bs, &mut buf);
            self.space.write_block(p, &buf);
            let m = self.files[fi].block_mut(b);
            m.extent = ExtentState::Written;
            m.phys = Some(p);
        }
        self.extend_size(file, end);
        // A direct write's size update is logged at its (synchronous) completion.
        let f = &mut self.files[fi];
        f.unpromise(b0, b1);
        f.disk_size = f.disk_size.max(end);
        Outcome::Done(end - off)
    }

    // ===== MmapWrite =====

    /// `MmapWrite`.
    pub(super) fn op_mmap_write(&mut self, seq: u32, file: FileId, off: u64, len: u64) -> Outcome {
        let n = match self.fault_args(file, off, len) {
            Err(e) => return Outcome::Err(e),
            Ok(0) => return Outcome::Done(0),
            Ok(n) => n,
        };
        let folio = off / self.fsz();
        // The read fault comes first and stays done even if the write fault fails.
        self.instantiate_folio(file, folio);
        self.wait_writeback(file, folio);
        self.mmap_write_locked(seq, file, off, n)
    }

    /// Step: page_mkwrite and the store, after the read fault and the writeback wait, with the
    /// folio locked: every `Hole` block of the folio inside EOF is reserved (`Delalloc`; journaled
    /// data: allocated `Unwritten`), the pattern is stored at `[off, off+n)` (clipped to the folio
    /// and EOF), every block of the folio inside EOF is dirtied. No size change.
    pub fn mmap_write_locked(&mut self, seq: u32, file: FileId, off: u64, n: u64) -> Outcome {
        let Some(fi) = self.fid(file) else {
            return Outcome::Err(Errno::Einval);
        };
        let n = match self.fault_args(file, off, n) {
            Err(e) => return Outcome::Err(e),
            Ok(n) => n,
        };
        let folio = off / self.fsz();
        let size = self.files[fi].size;
        let fb0 = folio * self.bpf();
        let fb1 = (fb0 + self.bpf()).min(size.div_ceil(self.bs()));
        let holes = self.files[fi].count(fb0, fb1, |b| b.extent == ExtentState::Hole);
        if self.files[fi].jdata {
            if let Err(e) = self.space.check_alloc(holes, holes > 0) {
                return Outcome::Err(e);
            }
            self.allocate_holes(fi, fb0, fb1);
        } else {
            if let Err(e) = self.space.reserve(holes) {
                return Outcome::Err(e);
            }
            for b in fb0..fb1 {
                let m = self.files[fi].block_mut(b);
                if m.extent == ExtentState::Hole {
                    m.extent = ExtentState::Delalloc;
                }
            }
        }
        // Already cached after the read fault; kept so that the step stands on its own.
        self.instantiate_folio(file, folio);
        let start = folio * self.fsz();
        if let Some(data) = self.files[fi].folios.get_mut(&folio) {
            fill_pattern(
                seq,
                off,
                data.write_range((off - start) as usize, (off + n - start) as usize),
            );
        }
        for b in fb0..fb1 {
            self.files[fi].block_mut(b).dirty = true;
        }
        self.files[fi].unpromise(fb0, fb1);
        Outcome::Done(n)
    }

    // ===== Fsync, Flush, CompleteIo, Reclaim, EvictInode =====

    /// `Fsync`.
    pub(super) fn op_fsync(&mut self, file: FileId) -> Outcome {
        self.writeback_file(file);
        self.wait_file_io(file);
        self.fsync_finish(file)
    }

    /// `Flush`: `Done(k)` with `k` IOs submitted (journaled data: blocks committed).
    pub(super) fn op_flush(&mut self, file: FileId, off: u64, len: u64) -> Outcome {
        let Some(fi) = self.fid(file) else {
            return Outcome::Err(Errno::Einval);
        };
        if len == 0 {
            return Outcome::Done(0);
        }
        if self.files[fi].jdata {
            return Outcome::Done(self.journal_commit(file));
        }
        let end = off.saturating_add(len);
        if end <= off {
            return Outcome::Done(0);
        }
        let (first, last) = self.folios_overlapping(off, end);
        let mut submitted = 0;
        for f in self.files[fi].cached_in(first, last) {
            if let Ok(true) = self.writeback_folio(file, f) {
                submitted += 1;
            }
        }
        Outcome::Done(submitted)
    }

    /// `CompleteIo`.
    pub(super) fn op_complete_io(&mut self, n: u32) -> Outcome {
        let mut completed = 0;
        while completed < u64::from(n) && self.complete_oldest_io().is_some() {
            completed += 1;
        }
        Outcome::Done(completed)
    }

    /// Step (`Reclaim`): removes folio `folio` if it is cached, clean in every block and not under
    /// writeback. Returns whether it was removed.
    pub fn reclaim(&mut self, file: FileId, folio: u64) -> bool {
        let Some(fi) = self.fid(file) else {
            return false;
        };
        if !self.files[fi].is_cached(folio) {
            return false;
        }
        let first = folio * self.bpf();
        let last = first + self.bpf();
        if self.files[fi].count(first, last, |b| b.dirty || b.writeback) > 0 {
            return false;
        }
        self.files[fi].folios.remove(&folio);
        true
    }

    /// `EvictInode`.
    pub(super) fn op_evict(&mut self, file: FileId) -> Outcome {
        self.writeback_file(file);
        self.wait_file_io(file);
        Outcome::Done(self.evict_finish(file))
    }

    /// Step: the end of eviction, after its writeback and wait: if any block is still dirty,
    /// nothing (0); otherwise drop every folio of the file (1).
    pub fn evict_finish(&mut self, file: FileId) -> u64 {
        let Some(fi) = self.fid(file) else { return 0 };
        let bpf = self.bpf();
        let f = &self.files[fi];
        // Dirty blocks are always cached: looking at the cached folios is enough.
        let dirty = f
            .folios
            .keys()
            .any(|&fo| f.count(fo * bpf, (fo + 1) * bpf, |b| b.dirty) > 0);
        if dirty {
            return 0;
        }
        self.files[fi].folios.clear();
        1
    }

    // ===== Fallocate, PunchHole, ZeroRange, Truncate =====

    /// Argument checks of the fallocate family: EINVAL for `len == 0`, EFBIG past the maximum
    /// size; `Ok(end)` otherwise.
    pub fn fallocate_args(&self, off: u64, len: u64) -> Result<u64, Errno> {
        if len == 0 {
            return Err(Errno::Einval);
        }
        match off.checked_add(len) {
            Some(end) if end <= self.max_size() => Ok(end),
            _ => Err(Errno::Efbig),
        }
    }

    /// `Fallocate`.
    pub(super) fn op_fallocate(
        &mut self,
        file: FileId,
        off: u64,
        len: u64,
        keep_size: bool,
    ) -> Outcome {
        match self.fallocate_args(off, len) {
            Err(e) => Outcome::Err(e),
            Ok(_) => done0(self.fallocate_locked(file, off, len, keep_size)),
        }
    }

    /// Step: fallocate of `[off, off+len)` under its locks. `Hole` blocks need a new block each
    /// (ENOSPC), any `Hole` or `Delalloc` needs the btree (EFSCORRUPTED); nothing changes on
    /// failure. `Hole` and `Delalloc` become `Unwritten` (dirty data stays dirty); the size
    /// extends unless `keep_size`.
    pub fn fallocate_locked(
        &mut self,
        file: FileId,
        off: u64,
        len: u64,
        keep_size: bool,
    ) -> Result<(), Errno> {
        let Some(fi) = self.fid(file) else {
            return Err(Errno::Einval);
        };
        let end = off.saturating_add(len).min(self.max_size());
        if end <= off {
            return Ok(());
        }
        let (b0, b1) = self.blocks_overlapping(off, end);
        let holes = self.files[fi].count(b0, b1, |b| b.extent == ExtentState::Hole);
        let delalloc = self.files[fi].count(b0, b1, |b| b.extent == ExtentState::Delalloc);
        self.space.check_alloc(holes, holes + delalloc > 0)?;
        for b in b0..b1 {
            let p = match self.files[fi].block(b).extent {
                ExtentState::Hole => self.space.alloc_from_free(),
                ExtentState::Delalloc => self.space.alloc_from_reserved(),
                ExtentState::Unwritten | ExtentState::Written => continue,
            };
            let m = self.files[fi].block_mut(b);
            m.extent = ExtentState::Unwritten;
            m.phys = Some(p);
        }
        if !keep_size {
            self.extend_size_logged(fi, end);
        }
        Ok(())
    }

    /// `size = max(size, end)` as a logged size change (fallocate, zero-range: the new size
    /// goes into the transaction, `xfs_setattr_size`), durable at once (SPEC.md "Durability").
    fn extend_size_logged(&mut self, fi: usize, end: u64) {
        let end = end.min(self.max_size());
        let f = &mut self.files[fi];
        if end > f.size {
            f.size = end;
            f.disk_size = end;
        }
    }

    /// `PunchHole`.
    pub(super) fn op_punch(&mut self, file: FileId, off: u64, len: u64) -> Outcome {
        if let Err(e) = self.fallocate_args(off, len) {
            return Outcome::Err(e);
        }
        // An EIO found while waiting is recorded on the file for fsync; punch does not report it.
        let _ = self.wait_range(file, off, len);
        done0(self.punch_locked(file, off, len))
    }

    /// Step: punch of `[off, off+len)` after waiting for writeback on its folios. EFSCORRUPTED if
    /// the root is corrupt and a whole block in the range is allocated (nothing changes);
    /// otherwise the partial edge blocks are zeroed and the whole blocks punched, cache included.
    pub fn punch_locked(&mut self, file: FileId, off: u64, len: u64) -> Result<(), Errno> {
        let Some(fi) = self.fid(file) else {
            return Err(Errno::Einval);
        };
        let end = off.saturating_add(len).min(self.max_size());
        if end <= off {
            return Ok(());
        }
        let (w0, w1) = self.whole_blocks(off, end);
        if self.space.corrupt && self.files[fi].count(w0, w1, |b| b.extent.is_allocated()) > 0 {
            return Err(Errno::Efscorrupted);
        }
        self.zero_edges(fi, off, end);
        self.punch_blocks(fi, w0, w1);
        let (b0, b1) = self.blocks_overlapping(off, end);
        self.files[fi].unpromise(b0, b1);
        Ok(())
    }

    /// `ZeroRange`.
    pub(super) fn op_zero_range(
        &mut self,
        file: FileId,
        off: u64,
        len: u64,
        keep_size: bool,
    ) -> Outcome {
        if let Err(e) = self.fallocate_args(off, len) {
            return Outcome::Err(e);
        }
        let _ = self.wait_range(file, off, len);
        done0(self.zero_range_locked(file, off, len, keep_size))
    }

    /// Step: zero range of `[off, off+len)` after waiting for writeback on its folios. With `W`
    /// the whole blocks, `A` the allocated and `D` the delalloc ones among them: ENOSPC if
    /// `free + |A| + |D| < |W|`, EFSCORRUPTED if corrupt and `W` is not empty (nothing changes);
    /// otherwise zero the edges, punch `W`, allocate all of `W` as `Unwritten`, extend the size
    /// unless `keep_size`.
    pub fn zero_range_locked(
        &mut self,
        file: FileId,
        off: u64,
        len: u64,
        keep_size: bool,
    ) -> Result<(), Errno> {
        let Some(fi) = self.fid(file) else {
            return Err(Errno::Einval);
        };
        let end = off.saturating_add(len).min(self.max_size());
        if end <= off {
            return Ok(());
        }
        let (w0, w1) = self.whole_blocks(off, end);
        let whole = w1 - w0;
        let allocated = self.files[fi].count(w0, w1, |b| b.extent.is_allocated());
        let delalloc = self.files[fi].count(w0, w1, |b| b.extent == ExtentState::Delalloc);
        if self
            .space
            .free
            .saturating_add(allocated)
            .saturating_add(delalloc)
            < whole
        {
            return Err(Errno::Enospc);
        }
        if self.space.corrupt && whole > 0 {
            return Err(Errno::Efscorrupted);
        }
        self.zero_edges(fi, off, end);
        self.punch_blocks(fi, w0, w1);
        for b in w0..w1 {
            let p = self.space.alloc_from_free();
            let m = self.files[fi].block_mut(b);
            m.extent = ExtentState::Unwritten;
            m.phys = Some(p);
        }
        let (b0, b1) = self.blocks_overlapping(off, end);
        self.files[fi].unpromise(b0, b1);
        if !keep_size {
            self.extend_size_logged(fi, end);
        }
        Ok(())
    }

    /// `Truncate`.
    pub(super) fn op_truncate(&mut self, file: FileId, new: u64) -> Outcome {
        let Some(fi) = self.fid(file) else {
            return Outcome::Err(Errno::Einval);
        };
        if new > self.max_size() {
            return Outcome::Err(Errno::Efbig);
        }
        if new <= self.files[fi].size {
            // Every folio from the one holding byte `new` to the end.
            let _ = self.wait_range(file, new, u64::MAX - new);
        }
        done0(self.truncate_locked(file, new))
    }

    /// Step: truncate to `new` after waiting for writeback on the folios from the one holding
    /// byte `new` on. Growing only sets the size. Shrinking or keeping the size (XFS's
    /// `xfs_setattr_size` runs `xfs_itruncate_extents` whenever `newsize <= oldsize`, so a
    /// truncate to the same size frees the keep-size preallocation past EOF): EFSCORRUPTED if
    /// corrupt and any block past the new EOF block is allocated (nothing changes); otherwise
    /// zero the tail of the new EOF block (the zeroing rule, plus the on-disk tail of a
    /// `Written` block: see `zero_disk_tail`), punch every block past it (cache included), set
    /// the size.
    pub fn truncate_locked(&mut self, file: FileId, new: u64) -> Result<(), Errno> {
        let Some(fi) = self.fid(file) else {
            return Err(Errno::Einval);
        };
        let new = new.min(self.max_size());
        if new > self.files[fi].size {
            // `xfs_setattr_size` logs the new size in its transaction: durable at once.
            self.files[fi].size = new;
            self.files[fi].disk_size = new;
            return Ok(());
        }
        let keep = new.div_ceil(self.bs());
        let len = self.files[fi].block_len();
        if self.space.corrupt && self.files[fi].count(keep, len, |b| b.extent.is_allocated()) > 0 {
            return Err(Errno::Efscorrupted);
        }
        if keep > 0 {
            // The whole tail of the EOF block, not clipped to EOF: `iomap_truncate_page` zeroes
            // from `new` to the end of the block, so a `Written` EOF block is dirtied even by a
            // truncate to the same size (whose tail, past EOF, already reads as zeros).
            self.zero_truncate_tail(fi, keep - 1, new, keep * self.bs());
            self.zero_disk_tail(fi, keep - 1, new);
        }
        self.punch_blocks(fi, keep, u64::MAX);
        let eof_block = new / self.bs();
        let f = &mut self.files[fi];
        f.size = new;
        f.disk_size = new;
        f.promised_size = f.promised_size.min(new);
        f.unpromise(eof_block, u64::MAX);
        Ok(())
    }

    // ===== Shared pieces: the zeroing rule and the punch of whole blocks =====

    /// Applies the zeroing rule to the partial (not whole) blocks at the edges of `[off, end)`.
    fn zero_edges(&mut self, fi: usize, off: u64, end: u64) {
        let bs = self.bs();
        let first = off / bs;
        let last = (end - 1) / bs;
        let edges = if first == last {
            vec![first]
        } else {
            vec![first, last]
        };
        for b in edges {
            let start = b * bs;
            let stop = start + bs;
            if off <= start && stop <= end {
                continue; // whole: punched, not zeroed
            }
            self.zero_block_range(fi, b, off.max(start), end.min(stop));
        }
    }

    /// The zeroing rule (SPEC.md) for bytes `[from, to)` inside block `b`, first clipped to EOF.
    fn zero_block_range(&mut self, fi: usize, b: u64, from: u64, to: u64) {
        let to = to.min(self.files[fi].size);
        self.zero_truncate_tail(fi, b, from, to);
    }

    /// The zeroing rule for bytes `[from, to)` inside block `b`, without the clip to EOF
    /// (truncate's EOF block tail; every other user goes through `zero_block_range`).
    fn zero_truncate_tail(&mut self, fi: usize, b: u64, from: u64, to: u64) {
        if from >= to {
            return;
        }
        let blk = self.files[fi].block(b);
        let folio = b / self.bpf();
        let zero_cached = match blk.extent {
            ExtentState::Hole => false,
            // iomap_zero_iter skips unwritten mappings unless dirty data sits over them.
            ExtentState::Unwritten => blk.dirty,
            ExtentState::Delalloc => true,
            ExtentState::Written => {
                let file = self.fid_of(fi);
                self.wait_writeback(file, folio);
                self.instantiate_folio(file, folio);
                self.files[fi].block_mut(b).dirty = true;
                true
            }
        };
        if zero_cached {
            let start = folio * self.fsz();
            if let Some(data) = self.files[fi].folios.get_mut(&folio) {
                data[(from - start) as usize..(to - start) as usize].fill(0);
            }
        }
    }

    /// Zeroes the on-disk bytes of `Written` block `b` from byte `new` (the new EOF) to the block's
    /// end (SPEC.md, Truncate). Required by the premise "bytes past EOF are zero on disk": the
    /// zeroing rule only dirties the cached block, and if the invalidate policy later drops that
    /// folio (its other blocks failing delalloc conversion) the disk's stale tail would be read
    /// back past EOF, and exposed by a later extension. A simplification of XFS, which writes
    /// back only `[i_disk_size, new)` inside truncate and so leaves a zeroed EOF block below the
    /// on-disk size dirty until the next writeback. Unobservable otherwise: the block stays dirty
    /// in the cache with the same zeros, and its writeback writes them again.
    fn zero_disk_tail(&mut self, fi: usize, b: u64, new: u64) {
        let blk = self.files[fi].block(b);
        let (ExtentState::Written, Some(p)) = (blk.extent, blk.phys) else {
            return;
        };
        let bs = self.bs();
        let mut buf = vec![0u8; bs as usize];
        self.space.read_block(p, &mut buf);
        let from = new.saturating_sub(b * bs).min(bs) as usize;
        buf[from..].fill(0);
        self.space.write_block(p, &buf);
    }

    /// The [`FileId`] of file index `fi` (always in range: files are at most four).
    fn fid_of(&self, fi: usize) -> FileId {
        fi as FileId
    }

    /// Every block of `[w0, w1)` becomes an idle, clean `Hole`: a `Delalloc` block releases its
    /// reservation, an allocated one is freed. Cache: a folio entirely inside is removed; in a
    /// folio partly inside, those blocks become clean zeros. The caller has checked corruption
    /// and waited for writeback.
    fn punch_blocks(&mut self, fi: usize, w0: u64, w1: u64) {
        if w0 >= w1 {
            return;
        }
        let len = self.files[fi].block_len();
        for b in w0..w1.min(len) {
            let blk = self.files[fi].block(b);
            match (blk.extent, blk.phys) {
                (ExtentState::Delalloc, _) => self.space.release(1),
                (ExtentState::Unwritten | ExtentState::Written, Some(p)) => self.space.free_phys(p),
                _ => {}
            }
            *self.files[fi].block_mut(b) = Block::HOLE;
        }
        let bpf = self.bpf();
        let bs = self.bs() as usize;
        for f in self.files[fi].cached_in(w0 / bpf, (w1 - 1) / bpf) {
            let fb0 = f * bpf;
            let fb1 = fb0 + bpf;
            let file = &mut self.files[fi];
            if w0 <= fb0 && fb1 <= w1 {
                file.folios.remove(&f);
            } else if let Some(data) = file.folios.get_mut(&f) {
                let z0 = (w0.max(fb0) - fb0) as usize * bs;
                let z1 = (w1.min(fb1) - fb0) as usize * bs;
                data[z0..z1].fill(0);
            }
        }
        self.files[fi].trim();
    }
}
