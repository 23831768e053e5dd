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

use super::folio_mask;
use super::page_cache::{Folio, LockedFolio};
use super::sync::{Arc, AtomicU64, LockClass, Mutex, Ordering};
use super::{assign_phys, Fs, Inode};
use crate::bugs::Bug;
use std::collections::BTreeMap;
use vocab::{Errno, ExtentState, FileId, Outcome, Policy, Step};

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
    /// Slots whose unwritten-to-written conversion was logged at submit: only under the
    /// `convert-at-submit` bug (correct code converts at completion), see `crash::lose_io`.
    pub logged_convert: u64,
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
            q: Mutex::new(LockClass::IoQueue, (0, BTreeMap::new())),
            inflight: AtomicU64::new(0),
        }
    }

    /// Removes and returns the oldest IO: the caller now owns its completion.
    #[track_caller]
    pub fn pop_oldest(&self) -> Option<Arc<Io>> {
        self.q.lock().1.pop_first().map(|(_, io)| io)
    }

    /// Removes IO `id` if it is still queued: the caller now owns its completion.
    #[track_caller]
    pub fn claim(&self, id: u64) -> Option<Arc<Io>> {
        self.q.lock().1.remove(&id)
    }

    /// Removes and returns every queued IO, oldest first, at once: the caller (a crash) now owns
    /// them all. One acquisition, so no `CompleteIo` can take one from the middle of the FIFO.
    #[track_caller]
    pub fn drain_all(&self) -> Vec<Arc<Io>> {
        std::mem::take(&mut self.q.lock().1).into_values().collect()
    }

    /// One claimed IO ends without completing (lost in a crash).
    pub fn end_one(&self) {
        self.inflight.fetch_sub(1, Ordering::SeqCst);
    }

    /// IOs submitted and not yet completed.
    pub fn inflight(&self) -> u64 {
        self.inflight.load(Ordering::SeqCst)
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
    /// The first allocation failure of this flush.
    pub alloc_err: Option<Errno>,
    /// The first EIO of an IO this flush completed.
    pub io_err: Option<Errno>,
}

impl FlushResult {
    /// The flush's error (SPEC.md resolved details): the first allocation failure, otherwise the
    /// first EIO of a completion it waited for.
    pub fn err(&self) -> Option<Errno> {
        self.alloc_err.or(self.io_err)
    }
}

impl Fs {
    /// Waits until `folio` is not under writeback, completing its IO if nobody else is
    /// (`folio_wait_writeback`, with an always-ready device). Returns EIO if this call completed
    /// the IO and the device rejected it. The caller must not hold ILOCK or anything after it.
    pub(crate) fn wait_writeback(&self, seq: u32, folio: &Folio) -> Option<Errno> {
        loop {
            let id = {
                let st = folio.mem();
                if !st.writeback {
                    return None;
                }
                st.io
            };
            let Some(id) = id else {
                // Cannot happen (`writeback` is set exactly while `io` is); never spin on it.
                return None;
            };
            if let Some(io) = self.ioq.claim(id) {
                return self.complete_io(seq, &io);
            }
            // Another thread claimed this IO and completes it: sleep until it has, then look
            // again. A new IO may have been submitted for the folio meanwhile, and nobody else
            // may ever claim that one: sleeping until `writeback` clears would then hang.
            let mut st = folio.mem();
            while st.writeback && st.io == Some(id) {
                st = st.wait_writeback();
            }
        }
    }

    /// Completes a claimed IO for op `seq`: the device reads the folio memory now, checks every
    /// block against its submit-time CRC, and either writes the disk and converts unwritten
    /// extents, or rejects the whole IO (EIO recorded on the file). Ends writeback and wakes
    /// waiters.
    ///
    /// The whole completion runs under ILOCK and the folio memory lock, and records its
    /// `Complete` step there: the DMA, the disk write, the conversion, the end of writeback and
    /// the error record are one atomic step for everyone who looks at the extents (ILOCK) or at
    /// the folio's flags (memory lock).
    pub(crate) fn complete_io(&self, seq: u32, io: &Io) -> Option<Errno> {
        let ino = &self.inodes[io.file];
        let bs = self.geo.bs as usize;
        let fb0 = io.folio.index * self.geo.bpf;
        let mut em = ino.ilock.lock();
        let mut st = io.folio.mem();
        let bad = io
            .blocks
            .iter()
            .find(|b| st.data.digest(b.slot as usize, bs) != b.crc);
        let result = if let Some(b) = bad {
            self.record_violation(
                "checksum-mismatch",
                format!(
                    "file {} block {}: data changed under writeback (IO {})",
                    io.file,
                    fb0 + b.slot as u64,
                    io.id
                ),
            );
            Some(Errno::Eio)
        } else {
            self.disk.write_many(io.blocks.iter().map(|b| {
                let off = b.slot as usize * bs;
                (b.phys, &st.data[off..off + bs], b.crc)
            }));
            let mut i = 0;
            while i < io.blocks.len() {
                let mut j = i + 1;
                while j < io.blocks.len() && io.blocks[j].slot == io.blocks[j - 1].slot + 1 {
                    j += 1;
                }
                let s = fb0 + io.blocks[i].slot as u64;
                let (e, from, to) = (
                    s + (j - i) as u64,
                    ExtentState::Unwritten,
                    ExtentState::Written,
                );
                if self.has(Bug::CompletionNoBump) {
                    // BUG(completion-no-bump): the conversion changes the mapping but not the
                    // cookie; a write holding an unwritten mapping of these blocks trusts it.
                    em.convert_keeping_cookie(s, e, from, to);
                } else {
                    em.convert(s, e, from, to);
                }
                i = j;
            }
            if let Some(last) = io.blocks.last() {
                // di_size follows the data: raised when the IO completes, never before.
                self.log_size_to(ino, (fb0 + last.slot as u64 + 1) * self.geo.bs);
            }
            None
        };
        st.writeback = false;
        st.wb_mask = 0;
        st.io = None;
        self.ioq.inflight.fetch_sub(1, Ordering::SeqCst);
        {
            let mut err = ino.wb_err.lock();
            if result.is_some() && err.is_none() {
                *err = result;
            }
            // COMMIT POINT: one IO completed (disk written and unwritten extents converted, or
            // rejected with EIO recorded; writeback ended).
            self.record(Step::Complete {
                seq,
                file: io.file as FileId,
                folio: io.folio.index,
            });
        }
        drop(st);
        drop(em);
        io.folio.wb_cv.notify_all();
        result
    }

    /// `CompleteIo{n}`: completes up to `n` IOs, oldest first.
    pub(crate) fn complete_n(&self, seq: u32, n: u64) -> u64 {
        let mut k = 0;
        while k < n {
            let Some(io) = self.ioq.pop_oldest() else {
                break;
            };
            self.complete_io(seq, &io);
            k += 1;
        }
        k
    }

    /// Writes back one folio for op `seq`: locks it, waits for its previous IO, then
    /// [`Fs::writeback_locked`]. Allocation failures go to `res.alloc_err`, a waited-for IO that
    /// failed to `res.io_err`.
    pub(crate) fn writeback_folio(
        &self,
        seq: u32,
        ino: &Inode,
        folio: &Arc<Folio>,
        res: &mut FlushResult,
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
        if let Some(e) = self.wait_writeback(seq, &lf) {
            res.io_err.get_or_insert(e);
        }
        let out = self.writeback_locked(seq, ino, &lf);
        if let WbOutcome::Failed(e) = out {
            res.alloc_err.get_or_insert(e);
        }
        out
    }

    /// Records a writeback error on the file and the `Writeback` step of a folio that failed,
    /// in one critical section of the error lock (so that fsync's report, which takes the error
    /// under the same lock, is ordered with it).
    /// `release` is the number of delalloc reservations the policy punched: they go back to the
    /// free counter inside the commit, ordered with every other space check.
    fn record_failed_writeback(&self, seq: u32, ino: &Inode, folio: u64, e: Errno, release: u64) {
        let mut err = ino.wb_err.lock();
        if err.is_none() {
            *err = Some(e);
        }
        let step = Step::Writeback {
            seq,
            file: ino.idx as FileId,
            folio,
        };
        // COMMIT POINT: one folio written back, failed (error recorded, policy applied).
        self.commit(step, || self.space.unreserve(release));
        drop(err);
    }

    /// Writes back a locked folio that is not under writeback (`iomap_writepage_map`) for op
    /// `seq`. ILOCK (and the allocator lock, when delalloc blocks are converted) is held from
    /// the mapping to the submission, so the conversion, the submission and the `Writeback`
    /// step are one atomic step for everyone who reads the extents, the counters or the btree.
    pub(crate) fn writeback_locked(&self, seq: u32, ino: &Inode, lf: &LockedFolio) -> WbOutcome {
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
            self.record_violation(
                "writeback-over-hole",
                format!(
                    "file {} folio {}: dirty blocks {:#x} have no extent",
                    ino.idx,
                    lf.index,
                    dirty & holes
                ),
            );
            self.record_failed_writeback(seq, ino, lf.index, Errno::Efscorrupted, 0);
            drop(em);
            return WbOutcome::Failed(Errno::Efscorrupted);
        }
        let delalloc = mask_of(ExtentState::Delalloc, &state);
        let mut tree = None;
        if dirty & delalloc != 0 {
            let runs = folio_mask::runs(delalloc, fb0);
            let k = delalloc.count_ones() as u64;
            // Delalloc conversion: the reservation becomes the allocation, no space check.
            let mut t = self.alloc.lock();
            match t.alloc(k) {
                Ok(pieces) => {
                    self.space.convert_reserved(k);
                    assign_phys(&runs, &pieces, |b, len, p| {
                        em.set(b, len, ExtentState::Unwritten, p);
                    });
                    collect(&em, &mut state, &mut phys);
                    tree = Some(t);
                }
                Err(e) => {
                    let errno = super::alloc_errno(e);
                    // Only the dirty delalloc blocks are punched: a delalloc block of this folio
                    // that is not dirty is the reservation of a buffered write still copying
                    // (it dirties the block before it returns), which keeps it.
                    let dirty_runs = folio_mask::runs(delalloc & dirty, fb0);
                    let (drop_folio, release) = self.discard_failed_folio(&mut em, &dirty_runs);
                    if drop_folio {
                        // The folio leaves the cache in the same step (under the index lock).
                        ino.cache.remove_then(lf, || {
                            self.record_failed_writeback(seq, ino, lf.index, errno, release)
                        });
                    } else {
                        self.record_failed_writeback(seq, ino, lf.index, errno, release);
                    }
                    drop(t);
                    drop(em);
                    return WbOutcome::Failed(errno);
                }
            }
        }
        // Checksums of the dirty blocks, computed now (submit time).
        let bs = g.bs as usize;
        let mut blocks = Vec::with_capacity(dirty.count_ones() as usize);
        {
            let st = lf.mem();
            for (i, &p) in phys.iter().enumerate().take(g.bpf as usize) {
                if dirty & (1 << i) != 0 {
                    let crc = st.data.digest(i, bs);
                    blocks.push(IoBlock {
                        slot: i as u32,
                        phys: p,
                        crc,
                    });
                }
            }
        }
        // BUG(convert-at-submit): the conversion of the IO's unwritten blocks is logged now,
        // before their data is on disk (the in-memory extent still converts at completion).
        let logged_convert = if self.has(Bug::ConvertAtSubmit) {
            mask_of(ExtentState::Unwritten, &state) & dirty
        } else {
            0
        };
        if self.has(Bug::SizeBeforeData) {
            // BUG(size-before-data): di_size is logged up to the IO's end at submit.
            let last = 63 - dirty.leading_zeros() as u64;
            self.log_size_to(ino, (fb0 + last + 1) * g.bs);
        }
        let mut q = self.ioq.q.lock();
        let id = q.0;
        q.0 += 1;
        let io = Arc::new(Io {
            id,
            file: ino.idx,
            folio: lf.folio.clone(),
            blocks,
            logged_convert,
        });
        {
            let mut st = lf.mem();
            st.clear_dirty(dirty);
            st.writeback = true;
            st.wb_mask = dirty;
            st.io = Some(id);
            q.1.insert(id, io);
            self.ioq.inflight.fetch_add(1, Ordering::SeqCst);
            // COMMIT POINT: one folio written back (IO submitted, blocks clean + under writeback).
            self.record(Step::Writeback {
                seq,
                file: ino.idx as FileId,
                folio: lf.index,
            });
        }
        drop(q);
        drop(tree);
        drop(em);
        WbOutcome::Submitted
    }

    /// The discard path after a failed writeback allocation (`xfs_discard_folio`), holding the
    /// folio lock, ILOCK and the allocator lock. Policy `keep-dirty` changes nothing;
    /// `invalidate` punches this folio's delalloc blocks and drops the folio.
    /// Returns whether the folio must now be dropped and how many reservations to release (the
    /// caller does both together with its commit).
    fn discard_failed_folio(
        &self,
        em: &mut super::extent_map::ExtentMap,
        runs: &[(u64, u64)],
    ) -> (bool, u64) {
        let keeps_dirty = self.has(Bug::DiscardKeepsDirty);
        if self.policy == Policy::KeepDirty && !keeps_dirty {
            return (false, 0);
        }
        let mut release = 0;
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
            release += em.count(s, e, ExtentState::Delalloc);
            em.set(s, e - s, ExtentState::Hole, 0);
        }
        // BUG(discard-keeps-dirty): the reservation is gone but the folio stays dirty.
        (!keeps_dirty, release)
    }

    /// Writes back every cached folio with index in `[f0, f1)` for op `seq` (journaled data:
    /// commits), then, if `wait`, waits for the IO of every folio in the range.
    pub(crate) fn writeback_range(
        &self,
        seq: u32,
        ino: &Inode,
        f0: u64,
        f1: u64,
        wait: bool,
    ) -> FlushResult {
        let mut res = FlushResult::default();
        if ino.jdata {
            res.submitted = self.journal_commit(seq, ino);
            return res;
        }
        for f in ino.cache.range(f0, f1) {
            if self.writeback_folio(seq, ino, &f, &mut res) == WbOutcome::Submitted {
                res.submitted += 1;
            }
        }
        if wait {
            for f in ino.cache.range(f0, f1) {
                if let Some(e) = self.wait_writeback(seq, &f) {
                    res.io_err.get_or_insert(e);
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
    pub(crate) fn flush(&self, seq: u32, ino: &Inode, off: u64, len: u64) -> Outcome {
        if len == 0 {
            self.record(Step::Op { seq });
            return Outcome::Done(0);
        }
        let (f0, f1) = self.folio_span(off, len);
        // Each folio written back commits in `writeback_locked`; the count is decided by them.
        let n = self.writeback_range(seq, ino, f0, f1, false).submitted;
        // COMMIT POINT: the flush's result (nothing of its own takes effect here).
        self.record(Step::Op { seq });
        Outcome::Done(n)
    }

    /// `Fsync`: write back everything, wait for all of the file's IO, report and clear the error.
    pub(crate) fn fsync(&self, seq: u32, ino: &Inode) -> Result<Outcome, Errno> {
        self.writeback_range(seq, ino, 0, u64::MAX, true);
        let mut err = ino.wb_err.lock();
        // COMMIT POINT: fsync's report (its writeback and waits commit as sub-steps), under the
        // error lock every error record also takes. The log force makes i_size durable with
        // it, inside the commit: a write extending i_size commits under the log lock too, and a
        // crash right after this commit point must find the size.
        let ok = err.is_none();
        self.commit(Step::Op { seq }, || {
            if ok {
                ino.disk_size.store(self.size(ino), Ordering::SeqCst);
            }
        });
        match err.take() {
            Some(e) => Err(e),
            None => Ok(Outcome::Done(0)),
        }
    }
}
