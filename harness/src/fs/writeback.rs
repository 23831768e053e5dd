//! Asynchronous writeback and IO completion.
//!
//! Owns: the global FIFO of in-flight IOs ([`IoQueue`]), the writeback of one folio (delalloc
//! conversion, checksums, submission), the discard path for failed allocations, IO completion
//! (DMA from the folio at completion time, checksum verification, disk write, unwritten
//! conversion) and the writeback wait.
//! Invariants: an IO is completed by exactly one thread, the one that removed it from the FIFO
//! (`CompleteIo`, or a writeback waiter that claims it); a folio has at most one IO in flight;
//! `IoQueue::inflight` counts IOs submitted and not yet ended.
//! Locks: writeback of a folio holds the folio lock, then ILOCK (+ allocator lock) to convert
//! delalloc, releases them, and submits under the IO-queue lock (which nests the folio memory
//! lock to set the writeback flag atomically with the enqueue). Completion takes only the
//! IO-queue lock (to claim), the folio memory lock (to read the data), ILOCK (to convert), the
//! disk lock and leaf locks; it never takes a folio lock, so a folio-lock holder may wait for
//! writeback.

use super::page_cache::{Folio, LockedFolio};
use super::sync::{Arc, AtomicU64, Mutex, Ordering};
use super::{assign_phys, Fs, Geo, Inode};
use crate::bugs::Bug;
use reference::{Errno, ExtentState, Outcome, Policy};
use std::collections::BTreeMap;

/// One block of an IO.
#[derive(Clone, Copy, Debug)]
pub struct IoBlock {
    /// Block slot within the folio.
    pub slot: u32,
    /// Physical block it goes to.
    pub phys: u64,
    /// CRC32C of its bytes at submission.
    pub crc: u32,
}

/// An in-flight write IO of one folio's dirty blocks.
pub struct Io {
    /// Submission number (FIFO order).
    pub id: u64,
    /// The file.
    pub file: usize,
    /// The folio whose memory the device reads at completion.
    pub folio: Arc<Folio>,
    /// The blocks.
    pub blocks: Vec<IoBlock>,
}

/// The global FIFO of submitted, unclaimed IOs.
pub struct IoQueue {
    q: Mutex<(u64, BTreeMap<u64, Arc<Io>>)>,
    inflight: AtomicU64,
}

impl Default for IoQueue {
    fn default() -> Self {
        IoQueue::new()
    }
}

impl IoQueue {
    /// Empty.
    pub fn new() -> Self {
        IoQueue {
            q: Mutex::new((0, BTreeMap::new())),
            inflight: AtomicU64::new(0),
        }
    }

    /// Removes and returns the oldest IO: the caller now owns its completion.
    pub fn pop_oldest(&self) -> Option<Arc<Io>> {
        self.q.lock().1.pop_first().map(|(_, io)| io)
    }

    /// Removes IO `id` if it is still queued: true if the caller now owns its completion.
    pub fn claim(&self, id: u64) -> bool {
        self.q.lock().1.remove(&id).is_some()
    }

    /// IOs submitted and not yet completed.
    pub fn inflight(&self) -> u64 {
        self.inflight.load(Ordering::SeqCst)
    }

    /// Number of queued (unclaimed) IOs.
    pub fn queued(&self) -> usize {
        self.q.lock().1.len()
    }
}

/// What writing back one folio did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WbOutcome {
    /// Nothing dirty (or the folio left the cache).
    Skipped,
    /// One IO submitted.
    Submitted,
    /// The folio failed (allocation failure, or dirty data over a hole).
    Failed(Errno),
}

/// The result of flushing a range.
#[derive(Clone, Copy, Debug, Default)]
pub struct FlushResult {
    /// IOs submitted (journaled data: blocks committed).
    pub submitted: u64,
    /// The first error of this flush: a folio that failed, or an IO it completed with EIO.
    pub err: Option<Errno>,
}

impl Fs {
    /// Waits until `folio` is not under writeback, completing its IO if nobody else is
    /// (`folio_wait_writeback`, with an always-ready device). Returns EIO if this call completed
    /// the IO and the device rejected it. The caller must not hold ILOCK or anything after it.
    pub(crate) fn wait_writeback(&self, folio: &Folio) -> Option<Errno> {
        let io = {
            let st = folio.mem();
            if !st.writeback {
                return None;
            }
            st.io.clone()
        };
        if let Some(io) = io {
            if self.ioq.claim(io.id) {
                return self.complete_io(&io);
            }
        }
        let mut st = folio.mem();
        while st.writeback {
            st = folio.wb_cv.wait(st);
        }
        None
    }

    /// Completes a claimed IO: the device reads the folio memory now, checks every block against
    /// its submit-time CRC, and either writes the disk and converts unwritten extents, or rejects
    /// the whole IO (EIO recorded on the file). Ends writeback and wakes waiters.
    pub(crate) fn complete_io(&self, io: &Io) -> Option<Errno> {
        let ino = &self.inodes[io.file];
        let bs = self.geo.bs as usize;
        let mut buf = vec![0u8; io.blocks.len() * bs];
        let mut bad = None;
        {
            let st = io.folio.mem();
            for (i, b) in io.blocks.iter().enumerate() {
                let off = b.slot as usize * bs;
                let src = &st.data[off..off + bs];
                if bad.is_none() && crc32c::crc32c(src) != b.crc {
                    bad = Some(b.slot);
                }
                buf[i * bs..(i + 1) * bs].copy_from_slice(src);
            }
        }
        let fb0 = io.folio.index * self.geo.bpf;
        let result = if let Some(slot) = bad {
            self.record_wb_error(ino, Errno::Eio);
            self.record_violation(
                "checksum-mismatch",
                format!(
                    "file {} block {}: data changed under writeback (IO {})",
                    io.file,
                    fb0 + slot as u64,
                    io.id
                ),
            );
            // COMMIT POINT: one IO completed (rejected by the device; nothing written).
            Some(Errno::Eio)
        } else {
            let mut em = ino.ilock.lock();
            self.disk.write_many(
                io.blocks
                    .iter()
                    .enumerate()
                    .map(|(i, b)| (b.phys, &buf[i * bs..(i + 1) * bs])),
            );
            let mut i = 0;
            while i < io.blocks.len() {
                let mut j = i + 1;
                while j < io.blocks.len() && io.blocks[j].slot == io.blocks[j - 1].slot + 1 {
                    j += 1;
                }
                let s = fb0 + io.blocks[i].slot as u64;
                em.convert(
                    s,
                    s + (j - i) as u64,
                    ExtentState::Unwritten,
                    ExtentState::Written,
                );
                i = j;
            }
            // COMMIT POINT: one IO completed (disk written, unwritten extents converted).
            drop(em);
            None
        };
        {
            let mut st = io.folio.mem();
            st.writeback = false;
            st.wb_mask = 0;
            st.io = None;
        }
        io.folio.wb_cv.notify_all();
        self.ioq.inflight.fetch_sub(1, Ordering::SeqCst);
        result
    }

    /// `CompleteIo{n}`: completes up to `n` IOs, oldest first.
    pub(crate) fn complete_n(&self, n: u64) -> u64 {
        let mut k = 0;
        while k < n {
            let Some(io) = self.ioq.pop_oldest() else {
                break;
            };
            self.complete_io(&io);
            k += 1;
        }
        k
    }

    /// Writes back one folio: locks it, waits for its previous IO, then [`Fs::writeback_locked`].
    /// A waited-for IO that failed is reported through `err`.
    pub(crate) fn writeback_folio(
        &self,
        ino: &Inode,
        folio: &Arc<Folio>,
        err: &mut Option<Errno>,
    ) -> WbOutcome {
        let lf = folio.lock();
        {
            // Only dirty folios are visited (the DIRTY tag): a clean folio under writeback is
            // neither waited for nor written.
            let st = lf.mem();
            if !st.mapped || st.dirty() == 0 {
                return WbOutcome::Skipped;
            }
        }
        if let Some(e) = self.wait_writeback(&lf) {
            err.get_or_insert(e);
        }
        let out = self.writeback_locked(ino, &lf);
        if let WbOutcome::Failed(e) = out {
            err.get_or_insert(e);
        }
        out
    }

    /// Writes back a locked folio that is not under writeback (`iomap_writepage_map`).
    pub(crate) fn writeback_locked(&self, ino: &Inode, lf: &LockedFolio) -> WbOutcome {
        let g = self.geo;
        let dirty = lf.mem().dirty();
        if dirty == 0 {
            return WbOutcome::Skipped;
        }
        let fb0 = lf.index * g.bpf;
        let mut state = [ExtentState::Hole; 64];
        let mut phys = [0u64; 64];
        let mut em = ino.ilock.lock();
        let collect = |em: &super::extent_map::ExtentMap,
                       state: &mut [ExtentState; 64],
                       phys: &mut [u64; 64]| {
            em.for_each(fb0, fb0 + g.bpf, |m| {
                for b in m.start..m.end() {
                    state[(b - fb0) as usize] = m.state;
                    phys[(b - fb0) as usize] = m.phys_of(b);
                }
            });
        };
        collect(&em, &mut state, &mut phys);
        let mask_of = |st: ExtentState, state: &[ExtentState; 64]| {
            (0..g.bpf)
                .filter(|&i| state[i as usize] == st)
                .fold(0u64, |m, i| m | 1 << i)
        };
        let holes = mask_of(ExtentState::Hole, &state);
        if dirty & holes != 0 {
            // The XFS WARN in xfs_bmapi_convert_delalloc: dirty data with no backing.
            drop(em);
            self.record_wb_error(ino, Errno::Efscorrupted);
            self.record_violation(
                "writeback-over-hole",
                format!(
                    "file {} folio {}: dirty blocks {:#x} have no extent",
                    ino.idx,
                    lf.index,
                    dirty & holes
                ),
            );
            return WbOutcome::Failed(Errno::Efscorrupted);
        }
        let delalloc = mask_of(ExtentState::Delalloc, &state);
        if dirty & delalloc != 0 {
            let runs = mask_runs(delalloc, fb0);
            let k = delalloc.count_ones() as u64;
            // Delalloc conversion: the reservation becomes the allocation, no space check.
            let res = self.alloc.lock().alloc(k);
            match res {
                Ok(pieces) => {
                    self.space.convert_reserved(k);
                    assign_phys(&runs, &pieces, |b, len, p| {
                        em.set(b, len, ExtentState::Unwritten, p);
                    });
                    collect(&em, &mut state, &mut phys);
                }
                Err(e) => {
                    let errno = super::alloc_errno(e);
                    self.discard_failed_folio(ino, lf, em, &runs);
                    self.record_wb_error(ino, errno);
                    return WbOutcome::Failed(errno);
                }
            }
        }
        drop(em);
        // Checksums of the dirty blocks, computed now (submit time).
        let bs = g.bs as usize;
        let mut blocks = Vec::with_capacity(dirty.count_ones() as usize);
        {
            let st = lf.mem();
            for (i, &p) in phys.iter().enumerate().take(g.bpf as usize) {
                if dirty & (1 << i) != 0 {
                    let crc = crc32c::crc32c(&st.data[i * bs..(i + 1) * bs]);
                    blocks.push(IoBlock {
                        slot: i as u32,
                        phys: p,
                        crc,
                    });
                }
            }
        }
        let mut q = self.ioq.q.lock();
        let id = q.0;
        q.0 += 1;
        let io = Arc::new(Io {
            id,
            file: ino.idx,
            folio: lf.folio.clone(),
            blocks,
        });
        {
            let mut st = lf.mem();
            st.clear_dirty(dirty);
            st.writeback = true;
            st.wb_mask = dirty;
            st.io = Some(io.clone());
        }
        q.1.insert(id, io);
        self.ioq.inflight.fetch_add(1, Ordering::SeqCst);
        // COMMIT POINT: one folio written back (IO submitted, blocks clean + under writeback).
        drop(q);
        WbOutcome::Submitted
    }

    /// The discard path after a failed writeback allocation (`xfs_discard_folio`), holding the
    /// folio lock and ILOCK. Policy `keep-dirty` changes nothing; `invalidate` punches this
    /// folio's delalloc blocks and drops the folio.
    fn discard_failed_folio(
        &self,
        ino: &Inode,
        lf: &LockedFolio,
        mut em: super::sync::MutexGuard<'_, super::extent_map::ExtentMap>,
        runs: &[(u64, u64)],
    ) {
        let keeps_dirty = self.has(Bug::DiscardKeepsDirty);
        if self.policy == Policy::KeepDirty && !keeps_dirty {
            return;
        }
        let wide = self.has(Bug::DiscardWidePunch) && self.policy == Policy::Invalidate;
        for &(start, len) in runs {
            let (s, e) = if wide {
                // BUG(discard-wide-punch): punch the whole delalloc extent around the folio's
                // blocks, not just the folio's part of it.
                match em.containing(start) {
                    Some((s, x)) if x.state == ExtentState::Delalloc => {
                        (s.min(start), (s + x.len).max(start + len))
                    }
                    _ => (start, start + len),
                }
            } else {
                (start, start + len)
            };
            let n = em.count(s, e, ExtentState::Delalloc);
            em.set(s, e - s, ExtentState::Hole, 0);
            self.space.unreserve(n);
        }
        drop(em);
        if keeps_dirty {
            // BUG(discard-keeps-dirty): the reservation is gone but the folio stays dirty.
            return;
        }
        ino.cache.remove(lf);
    }

    /// Writes back every cached folio with index in `[f0, f1)` (journaled data: commits), then,
    /// if `wait`, waits for the IO of every folio in the range.
    pub(crate) fn writeback_range(&self, ino: &Inode, f0: u64, f1: u64, wait: bool) -> FlushResult {
        let mut res = FlushResult::default();
        if ino.jdata {
            res.submitted = self.journal_commit(ino);
            return res;
        }
        for f in ino.cache.range(f0, f1) {
            if self.writeback_folio(ino, &f, &mut res.err) == WbOutcome::Submitted {
                res.submitted += 1;
            }
        }
        if wait {
            for f in ino.cache.range(f0, f1) {
                if let Some(e) = self.wait_writeback(&f) {
                    res.err.get_or_insert(e);
                }
            }
        }
        res
    }

    /// The folio index range overlapping bytes `[off, off+len)` (saturating).
    pub(crate) fn folio_span(&self, off: u64, len: u64) -> (u64, u64) {
        let end = off.saturating_add(len);
        if end <= off {
            return (0, 0);
        }
        (off / self.geo.fsz, (end - 1) / self.geo.fsz + 1)
    }

    /// `Flush{off, len}`: background writeback of a range.
    pub(crate) fn flush(&self, ino: &Inode, off: u64, len: u64) -> Outcome {
        if len == 0 {
            return Outcome::Done(0);
        }
        let (f0, f1) = self.folio_span(off, len);
        // No commit point of its own: each folio written back commits in `writeback_locked`.
        Outcome::Done(self.writeback_range(ino, f0, f1, false).submitted)
    }

    /// `Fsync`: write back everything, wait for all of the file's IO, report and clear the error.
    pub(crate) fn fsync(&self, ino: &Inode) -> Result<Outcome, Errno> {
        self.writeback_range(ino, 0, u64::MAX, true);
        let mut err = ino.wb_err.lock();
        // COMMIT POINT: fsync's report (its writeback and waits commit as sub-steps).
        match err.take() {
            Some(e) => Err(e),
            None => Ok(Outcome::Done(0)),
        }
    }
}

/// Runs of set bits of a folio mask as `(first file block, len)`.
pub(crate) fn mask_runs(mask: u64, fb0: u64) -> Vec<(u64, u64)> {
    let mut runs = Vec::new();
    let mut m = mask;
    while m != 0 {
        let s = m.trailing_zeros() as u64;
        let len = (m >> s).trailing_ones() as u64;
        runs.push((fb0 + s, len));
        m &= !Geo::mask(s, s + len);
    }
    runs
}
