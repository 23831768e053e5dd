//! The implementation under test: an optimized, concurrent model of the XFS + iomap buffered
//! write / writeback / delalloc path, written against `reference/SPEC.md`.
//!
//! Owns: the [`Fs`] type, its inodes, and op dispatch. Each concept lives in its own module:
//! [`sync`] (the only door to std/shuttle), [`extent_map`], [`alloc_btree`], [`space`] (counters),
//! [`disk`], [`page_cache`], [`buffered_write`], [`buffered_read`], [`fault`], [`writeback`] (and
//! IO completion), [`direct_io`], [`space_ops`] (fallocate, punch, zero, truncate), [`journal`],
//! [`lifecycle`] (reclaim, eviction, fault injection and repair), [`crash`] (the size on disk,
//! fsync's promise and the power cut), [`wb_error`] (the writeback error slot) and [`observe`] (the
//! oracle's view and the invariant checks).
//!
//! # Lock order
//!
//! The order is code: [`sync::lockdep::ORDER`], amended by [`sync::lockdep::NESTED`] and
//! [`sync::lockdep::FOLIO_GUARDED`]. Every lock is built with its class, and [`sync::lockdep`]
//! checks every blocking acquisition against that table (in debug and test builds, in every
//! shuttle execution, and wherever checking was turned on); a breach is a `lock-order` violation
//! of the filesystem, naming both locks and where each was taken, even when no schedule
//! deadlocked on it. This list is the same table (a test compares them). A thread takes locks top
//! to bottom; any may be skipped:
//!
//! 1. `IOLOCK`: `Inode::iolock` (RwLock). User ops only; background ops never take it. Several
//!    only in file order: a crash takes every inode's, exclusive, to quiesce.
//! 2. `invalidate`: `Inode::invalidate`, the mapping invalidate lock (RwLock). Several only in
//!    file order: fault injection and repair take every inode's, shared, to quiesce multi-step
//!    space changes; a crash takes every inode's, exclusive.
//! 3. `handles`: `Inode::handles`, the open journal handles (zero-range shared, journal commit
//!    exclusive). Several only in file order: a crash takes every inode's, exclusive.
//! 4. `folio lock`: [`page_cache::LockedFolio`]. Several only in increasing (file, folio index)
//!    order (the crash holds every cached folio of every file; all others one file's): journal
//!    commit, eviction, punch, zero-range, truncate, direct write and a short write's punch hold
//!    every cached folio of a range. A folio created locked (zero-range's and truncate's edge
//!    folios) joins them in any order: it is taken without waiting, as nobody else can hold it.
//! 5. `ILOCK`: `Inode::ilock`, the extent map. Several only in file order (repair).
//! 6. `allocator`: `Fs::alloc`, the free-space btree.
//! 7. `IO queue`: the lock of `IoQueue`, the global in-flight FIFO.
//! 8. `journal`: `Inode::journal`, the running transaction's logged set.
//! 9. `page-cache index`: `PageCache::index`: lookups, insertion and removal (removal under the
//!    folio lock), and a journal commit's check, under the journal lock, for folios created after
//!    it listed the cache. Several only in file order: a crash holds every inode's across its
//!    commit point.
//! 10. `folio memory`: `Folio::state`, held for copies and flag changes. Removal takes it inside
//!     the index lock, IO completion inside ILOCK, writeback's submission inside the IO-queue lock.
//! 11. `writeback error`: `Inode::wb_err`; IO completion takes it inside the folio memory lock.
//!     Several only in file order: a crash holds every inode's across its commit point.
//! 12. `violations`: `Fs::violations`; IO completion's checksum check takes it inside the folio
//!     memory lock.
//! 13. `disk`: the device's block map.
//! 14. `folio lock word`: `Folio::locked`, the word the folio lock is built on, held only to flip
//!     it or to sleep on the folio's lock condvar.
//! 15. `fsync promise`: `Inode::promise`, what a successful fsync promised (the crash checks);
//!     built with `sync::Mutex::new_leaf`, so it is never a scheduling point.
//! 16. `commit log`: `Fs::commit_log`, innermost of all: a commit's effect takes no lock.
//!
//! One edge goes against the order: `folio memory` -> `journal`. A buffered write's copy and a
//! write fault log their blocks under the folio memory lock (so a journal commit, which takes the
//! logged set under the journal lock, sees the data and its logging together), a journal commit
//! looks up the page-cache index under the journal lock, and removal takes the folio memory lock
//! under the index lock: a cycle of classes. It cannot deadlock, because both of its edges at the
//! folio memory lock are taken by the holder of that very folio's lock (the copy and the fault
//! hold the folio they write, removal holds the folio it unmaps): closing the cycle would need two
//! threads holding one folio lock. The checker enforces exactly that argument: the edge
//! `folio memory` -> `journal` only while the thread holds that folio's lock, and every edge into
//! the folio memory lock from `journal` or `page-cache index` (the classes the edge leads to,
//! before the folio memory lock) only while the thread holds that folio's lock. Observation, which
//! looks folios up without locking them, therefore collects them before taking their memory locks.
//!
//! Waits: waiting for writeback never holds ILOCK or anything after it; the waiter completes the
//! folio's IO itself when it can claim it from the FIFO, else sleeps until the claimer (which
//! only takes ILOCK and leaves) ends writeback. Nobody sleeps on a folio lock while holding ILOCK.
//!
//! # Commit points
//!
//! Each op and each background sub-step takes effect at one place, marked `// COMMIT POINT:`,
//! inside the lock that makes it atomic.

mod alloc_btree;
mod buffered_read;
mod buffered_write;
pub mod bugs;
pub mod change_log;
mod crash;
mod direct_io;
mod disk;
mod extent_map;
mod fault;
mod folio_mask;
mod journal;
mod lifecycle;
mod observe;
mod page_cache;
mod space;
mod space_ops;
pub mod sync;
mod wb_error;
mod writeback;

#[cfg(test)]
mod unit_tests;

use crate::bugs::{Bug, Bugs};
use alloc_btree::{AllocError, FreeExtent, FreeSpaceTree};
use disk::Disk;
use extent_map::ExtentMap;
use page_cache::PageCache;
use space::Space;
use std::collections::BTreeSet;
use sync::{AtomicBool, AtomicU64, LockClass, Mutex, Ordering, RwLock};
use vocab::{Config, Errno, Op, Outcome, Policy, Step, Violation};
use writeback::IoQueue;

/// Geometry constants, precomputed.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Geo {
    /// Block size.
    pub bs: u64,
    /// Folio size in bytes.
    pub fsz: u64,
    /// Blocks per folio (<= 32).
    pub bpf: u64,
    /// Bitmask of all blocks of a folio.
    pub all: u64,
    /// Maximum file size.
    pub max: u64,
    /// The digest of a block of zeros (what holes and unwritten blocks read as).
    pub zero_digest: u32,
}

/// One file.
pub(crate) struct Inode {
    /// Index in the file list.
    pub idx: usize,
    /// Journaled data (no delalloc, writes logged in a per-file transaction).
    pub jdata: bool,
    /// IOLOCK.
    pub iolock: RwLock<()>,
    /// The mapping invalidate lock (XFS MMAPLOCK).
    pub invalidate: RwLock<()>,
    /// i_size.
    pub size: AtomicU64,
    /// The size on stable storage (`di_size`): raised at IO completion, set by logged size
    /// changes and fsync; what a crash leaves as the size.
    pub disk_size: AtomicU64,
    /// The last successful fsync's promise, still standing: (size, runs `(first block, end
    /// block, physical block of the first)` of `Written` blocks). Checked by `fsync-durable`;
    /// kept in sequential runs only (the only ones with crashes). A leaf lock that is no scheduling point
    /// (`Mutex::new_leaf`): bookkeeping must not change what a schedule means.
    pub promise: Mutex<crash::Promise>,
    /// The page cache.
    pub cache: PageCache,
    /// ILOCK and the data fork it protects.
    pub ilock: Mutex<ExtentMap>,
    /// The data fork's log of changed blocks (`ExtentMap::log`), read without the ILOCK.
    pub extent_log: std::sync::Arc<change_log::ChangeLog>,
    /// The first writeback error not yet reported by fsync.
    pub wb_err: wb_error::WbErr,
    /// Blocks logged in the running transaction (journaled data only).
    pub journal: Mutex<BTreeSet<u64>>,
    /// Open transaction handles (jbd2's `t_updates`), journaled data only: an op that logs
    /// blocks after its commit point (zero-range) holds it shared from before that point until
    /// its blocks are logged; a journal commit holds it exclusive, so it never takes the logged
    /// set between such an op's commit and its logging.
    pub handles: RwLock<()>,
}

/// The filesystem under test. `Send + Sync`: every op may run on any thread.
pub struct Fs {
    pub(crate) geo: Geo,
    pub(crate) geometry: vocab::Geometry,
    pub(crate) policy: Policy,
    pub(crate) bugs: Bugs,
    pub(crate) inodes: Vec<Inode>,
    pub(crate) space: Space,
    pub(crate) alloc: Mutex<FreeSpaceTree>,
    pub(crate) ioq: IoQueue,
    pub(crate) disk: Disk,
    /// Invariant violations seen by the code itself (checksum mismatches at IO completion, a
    /// repair that found a different tree, writeback over a hole); reported by
    /// `check_invariants` from then on.
    pub(crate) violations: Mutex<Vec<Violation>>,
    /// Whether `violations` holds any: set under its lock after a push, so the check after
    /// every op reads it instead of taking the lock.
    pub(crate) any_violation: AtomicBool,
    /// Concurrent runs: the commit log, in commit order (see [`vocab::step`]).
    commit_log: Mutex<Vec<Step>>,
    /// Whether [`Fs::record`] appends to the log (off in sequential runs: no cost there).
    pub(crate) recording: AtomicBool,
    /// Called at every crash's commit point ([`Fs::set_crash_hook`]).
    crash_hook: Option<crash::CrashHook>,
}

impl Fs {
    /// Starts recording commit points (concurrent runs).
    pub fn start_recording(&self) {
        self.recording.store(true, Ordering::SeqCst);
    }

    /// Records one commit point. Called inside the lock that makes the step atomic, so the
    /// log's order is an order in which the steps took effect. The log lock is a leaf.
    #[inline]
    #[track_caller]
    pub fn record(&self, step: Step) {
        if self.recording.load(Ordering::Relaxed) {
            self.commit_log.lock().push(step);
        }
    }

    /// Runs `effect` and records `step` as one atomic commit: while recording, both happen
    /// under the log lock, so effects on state that has no lock of its own (the space counters,
    /// i_size) are ordered exactly as their steps are. `effect` must not take any lock (the log
    /// lock is innermost of all). Without recording it only runs `effect`.
    #[inline]
    #[track_caller]
    pub(crate) fn commit<R>(&self, step: Step, effect: impl FnOnce() -> R) -> R {
        if self.recording.load(Ordering::Relaxed) {
            let mut log = self.commit_log.lock();
            let r = effect();
            log.push(step);
            r
        } else {
            effect()
        }
    }

    /// [`Fs::commit`] where the effect decides whether the step is recorded (second element):
    /// a check that commits the op if it fails and otherwise lets the caller go on.
    #[inline]
    #[track_caller]
    pub(crate) fn commit_if<R>(&self, step: Step, effect: impl FnOnce() -> (R, bool)) -> R {
        if self.recording.load(Ordering::Relaxed) {
            let mut log = self.commit_log.lock();
            let (r, rec) = effect();
            if rec {
                log.push(step);
            }
            r
        } else {
            effect().0
        }
    }

    /// Takes the commit log recorded so far.
    pub fn take_log(&self) -> Vec<Step> {
        std::mem::take(&mut *self.commit_log.lock())
    }

    /// A fresh filesystem: empty files, all space free, nothing cached.
    pub fn new(config: &Config, bugs: Bugs) -> Fs {
        let g = config.geometry;
        let bs = g.bs().max(1);
        let fsz = g.folio_size().max(bs);
        let bpf = (fsz / bs).clamp(1, 64);
        let geo = Geo {
            bs,
            fsz,
            bpf,
            all: folio_mask::range(0, bpf),
            max: g.max_file_size,
            zero_digest: vocab::block_digest(&vec![0u8; bs as usize]),
        };
        let inodes = config
            .files
            .iter()
            .enumerate()
            .map(|(idx, f)| {
                let map = ExtentMap::new();
                Inode {
                    extent_log: map.log(),
                    idx,
                    jdata: f.jdata,
                    iolock: RwLock::keyed(LockClass::IoLock, idx as u64, ()),
                    invalidate: RwLock::keyed(LockClass::Invalidate, idx as u64, ()),
                    size: AtomicU64::new(0),
                    disk_size: AtomicU64::new(0),
                    promise: Mutex::new_leaf(LockClass::Promise, (0, Vec::new())),
                    cache: PageCache::new(idx, fsz as usize),
                    ilock: Mutex::keyed(LockClass::Ilock, idx as u64, map),
                    wb_err: wb_error::WbErr::new(idx as u64),
                    journal: Mutex::new(LockClass::Journal, BTreeSet::new()),
                    handles: RwLock::keyed(LockClass::Handles, idx as u64, ()),
                }
            })
            .collect();
        Fs {
            geo,
            geometry: g,
            policy: config.policy,
            bugs,
            inodes,
            space: Space::new(g.capacity_blocks),
            alloc: Mutex::new(LockClass::Alloc, FreeSpaceTree::new(g.capacity_blocks)),
            ioq: IoQueue::new(),
            disk: Disk::new(bs as usize),
            violations: Mutex::new(LockClass::Violations, Vec::new()),
            any_violation: AtomicBool::new(false),
            commit_log: Mutex::new(LockClass::CommitLog, Vec::new()),
            recording: AtomicBool::new(false),
            crash_hook: None,
        }
    }

    /// Runs one op (op number `seq`, which selects the data pattern). Safe to call from several
    /// threads at once; never panics on any argument. Lock-order breaches the op committed
    /// become violations of this filesystem.
    pub fn apply(&self, seq: u32, op: &Op) -> Outcome {
        let out = self.apply_op(seq, op);
        self.report_lock_findings();
        out
    }

    /// Moves the calling thread's lock-order findings ([`sync::lockdep`]) into
    /// [`Fs::violations`], once each. Called with no lock held.
    pub(crate) fn report_lock_findings(&self) {
        let found = sync::lockdep::take_findings(sync::shuttle_mode);
        if found.is_empty() {
            return;
        }
        let mut v = self.violations.lock();
        for f in found {
            if !v.contains(&f) {
                v.push(f);
            }
        }
        self.any_violation.store(!v.is_empty(), Ordering::Release);
    }

    fn apply_op(&self, seq: u32, op: &Op) -> Outcome {
        let res = match *op {
            Op::CompleteIo { n } => {
                let k = self.complete_n(seq, n as u64);
                // COMMIT POINT: CompleteIo's count (each completion committed on its own).
                self.record(Step::Op { seq });
                Ok(Outcome::Done(k))
            }
            Op::CorruptAllocBtree => Ok(self.corrupt_alloc_btree(seq)),
            Op::Crash { land, torn, tear } => Ok(Outcome::Done(self.crash(seq, land, torn, tear))),
            Op::RepairAllocBtree => Ok(self.repair_alloc_btree(seq)),
            _ => {
                let Some(ino) = op.file().and_then(|f| self.inodes.get(f as usize)) else {
                    // COMMIT POINT: a bad file index fails before anything.
                    self.record(Step::Op { seq });
                    return Outcome::Err(Errno::Einval);
                };
                let out = self.apply_file(ino, seq, op).unwrap_or_else(Outcome::Err);
                self.after_op(ino, op, &out);
                return out;
            }
        };
        res.unwrap_or_else(Outcome::Err)
    }

    /// Records `Op { seq }` for an op that fails (or finishes) before taking any lock, and
    /// passes its result through.
    pub(crate) fn early<T>(&self, seq: u32, r: T) -> T {
        // COMMIT POINT: argument checks (nothing changes).
        self.record(Step::Op { seq });
        r
    }

    fn apply_file(&self, ino: &Inode, seq: u32, op: &Op) -> Result<Outcome, Errno> {
        match *op {
            Op::Write { off, len, sync, .. } => self.write(ino, seq, off, len, sync),
            Op::Read { off, len, .. } => Ok(self.read(ino, seq, off, len)),
            Op::DirectWrite { off, len, .. } => self.direct_write(ino, seq, off, len),
            Op::DirectRead { off, len, .. } => self.direct_read(ino, seq, off, len),
            Op::MmapWrite { off, len, .. } => self.mmap_write(ino, seq, off, len),
            Op::MmapRead { off, len, .. } => self.mmap_read(ino, seq, off, len),
            Op::Fsync { .. } => self.fsync(seq, ino),
            Op::Fallocate {
                off,
                len,
                keep_size,
                ..
            } => self.fallocate(ino, seq, off, len, keep_size),
            Op::PunchHole { off, len, .. } => self.punch_hole(ino, seq, off, len),
            Op::ZeroRange {
                off,
                len,
                keep_size,
                ..
            } => self.zero_range(ino, seq, off, len, keep_size),
            Op::Truncate { size, .. } => self.truncate(ino, seq, size),
            Op::Flush { off, len, .. } => Ok(self.flush(seq, ino, off, len)),
            Op::Reclaim { folio, .. } => Ok(Outcome::Done(self.reclaim(ino, seq, folio))),
            Op::EvictInode { .. } => Ok(Outcome::Done(self.evict_inode(ino, seq))),
            Op::JournalCommit { .. } => {
                let k = if ino.jdata {
                    self.journal_commit(seq, ino)
                } else {
                    0
                };
                // COMMIT POINT: JournalCommit's count (the commit itself is a `Commit` step).
                self.record(Step::Op { seq });
                Ok(Outcome::Done(k))
            }
            Op::CompleteIo { .. }
            | Op::CorruptAllocBtree
            | Op::RepairAllocBtree
            | Op::Crash { .. } => Err(self.early(seq, Errno::Einval)),
        }
    }

    #[inline]
    pub(crate) fn has(&self, bug: Bug) -> bool {
        self.bugs.has(bug)
    }

    #[inline]
    pub(crate) fn size(&self, ino: &Inode) -> u64 {
        ino.size.load(Ordering::SeqCst)
    }

    /// Records an invariant violation the code detected in itself.
    #[track_caller]
    pub(crate) fn record_violation(&self, name: &'static str, detail: String) {
        let mut v = self.violations.lock();
        v.push(Violation { name, detail });
        self.any_violation.store(true, Ordering::Release);
    }

    /// Allocates `n` physical blocks that are not backed by a delalloc reservation: the space
    /// check (ENOSPC) first, then the btree read (EFSCORRUPTED). Caller holds ILOCK; all or
    /// nothing.
    #[track_caller]
    pub(crate) fn alloc_blocks(&self, n: u64) -> Result<Vec<FreeExtent>, Errno> {
        if n == 0 {
            return Ok(Vec::new());
        }
        let mut tree = self.alloc.lock();
        self.alloc_blocks_locked(&mut tree, n)
    }

    /// [`Fs::alloc_blocks`] with the allocator lock already held (so that the caller can record
    /// its step under it, ordered with corruption and repair).
    pub(crate) fn alloc_blocks_locked(
        &self,
        tree: &mut FreeSpaceTree,
        n: u64,
    ) -> Result<Vec<FreeExtent>, Errno> {
        if n == 0 {
            return Ok(Vec::new());
        }
        self.space.take_for_alloc(n).map_err(|_| Errno::Enospc)?;
        tree.alloc(n).map_err(|e| {
            self.space.untake_for_alloc(n);
            alloc_errno(e)
        })
    }
}

/// The errno an allocator failure surfaces as.
pub(crate) fn alloc_errno(e: AllocError) -> Errno {
    match e {
        AllocError::Corrupt => Errno::Efscorrupted,
        AllocError::NoSpace => Errno::Enospc,
        AllocError::DoubleFree => Errno::Efscorrupted,
    }
}

/// Calls `f(file_block, len, phys)` pairing file ranges `runs` with physical extents `pieces`
/// in order (both cover the same number of blocks).
pub(crate) fn assign_phys(
    runs: &[(u64, u64)],
    pieces: &[FreeExtent],
    mut f: impl FnMut(u64, u64, u64),
) {
    let mut pi = 0;
    let mut poff = 0;
    for &(start, len) in runs {
        let mut done = 0;
        while done < len && pi < pieces.len() {
            let p = pieces[pi];
            let take = (len - done).min(p.len - poff);
            f(start + done, take, p.start + poff);
            done += take;
            poff += take;
            if poff == p.len {
                pi += 1;
                poff = 0;
            }
        }
    }
}
