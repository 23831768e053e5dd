//! The page cache of one file: folios keyed by index (the `i_pages` xarray), each with its own
//! sleeping lock, its memory, per-block uptodate/dirty state and a writeback flag with waiters.
//!
//! Owns: cached file data and its per-block cache state.
//! Invariants:
//! - a folio in the index is `mapped`; removal clears `mapped` under the folio lock, so whoever
//!   locks a folio and finds it unmapped must look it up again (it was truncated or reclaimed);
//! - an unlocked mapped folio is fully uptodate (instantiation fills it before unlocking);
//! - the per-block state (`Ifs`, the iomap_folio_state analogue) exists while the folio is
//!   mapped and is freed when it leaves the cache;
//! - `writeback` is set exactly while `io` is some (one IO per folio at most: writeback waits for
//!   the previous IO before submitting), and `wb_mask` names the blocks of that IO.
//!
//! Locks (the order is in `lib.rs`): the folio lock (`LockedFolio`) is a sleeping lock held across
//! other locks and waits, built on the folio lock word (`Folio::locked`) and its condvar, and
//! checked by the lock-order checker as a lock of its own; the folio memory lock (`Folio::state`)
//! is held only for short copies and flag changes; the index lock (`PageCache::index`) is taken
//! under a folio lock for insertion and removal, never held while sleeping. Removal takes the
//! folio memory lock inside the index lock, which the order allows only to the folio's holder.

use super::change_log::ChangeLog;
use super::sync::lockdep::{self, Acquire, Token};
use super::sync::{Arc, Condvar, LockClass, Mutex, MutexGuard, RwLock, RwLockWriteGuard};
use std::collections::BTreeMap;

/// Per-block state of a folio (iomap_folio_state): bitmaps, bit `i` = block `i` of the folio.
#[derive(Clone, Copy, Debug, Default)]
pub struct Ifs {
    /// Blocks whose bytes are valid.
    pub uptodate: u64,
    /// Blocks modified since last written back (for journaled data: logged in the transaction).
    pub dirty: u64,
}

/// A folio's bytes with a lazily computed digest ([`vocab::block_digest`]) per block.
///
/// Invariant: a digest marked valid is the digest of the block's current bytes. Every mutable
/// access goes through `DerefMut`, which forgets all digests, so no write, zeroing or stray store
/// can leave a stale one: the oracle compares digests where both models have them, and the
/// writeback checksums (submit and completion) reuse them instead of hashing again.
pub struct FolioData {
    bytes: Box<[u8]>,
    /// Bit `i`: `sums[i]` is valid.
    valid: std::cell::Cell<u64>,
    sums: std::cell::RefCell<Vec<u32>>,
}

impl FolioData {
    /// Wraps a folio's bytes (no digest known yet).
    pub fn new(bytes: Box<[u8]>) -> FolioData {
        FolioData {
            bytes,
            valid: std::cell::Cell::new(0),
            sums: std::cell::RefCell::new(Vec::new()),
        }
    }

    /// The digest of block `i` of the folio (`bs`-byte blocks), computed once per change.
    pub fn digest(&self, i: usize, bs: usize) -> u32 {
        if self.valid.get() & (1u64 << i) != 0 {
            return self.sums.borrow()[i];
        }
        let d = vocab::block_digest(&self.bytes[i * bs..(i + 1) * bs]);
        self.keep(i, d);
        d
    }

    /// Keeps `d` as block `i`'s digest until its bytes change.
    fn keep(&self, i: usize, d: u32) {
        let mut sums = self.sums.borrow_mut();
        if sums.len() <= i {
            sums.resize(i + 1, 0);
        }
        sums[i] = d;
        self.valid.set(self.valid.get() | 1u64 << i);
    }
}

impl FolioData {
    /// Records `d` as the digest of block `i` (`bs`-byte blocks), whose bytes were just filled
    /// from where that is their digest (a disk block, zeros); debug builds check it.
    pub fn know(&self, i: usize, bs: usize, d: u32) {
        debug_assert_eq!(d, vocab::block_digest(&self.bytes[i * bs..(i + 1) * bs]));
        self.keep(i, d);
    }

    /// Bytes `[lo, hi)` for writing, forgetting only the digests of the `bs`-byte blocks they
    /// overlap (a write into one block of a large folio keeps the others' digests).
    pub fn range_mut(&mut self, lo: usize, hi: usize, bs: usize) -> &mut [u8] {
        if hi > lo {
            let (b0, b1) = (lo / bs, hi.div_ceil(bs));
            let mask = if b1 - b0 >= 64 {
                u64::MAX
            } else {
                ((1u64 << (b1 - b0)) - 1) << b0
            };
            self.valid.set(self.valid.get() & !mask);
        }
        &mut self.bytes[lo..hi]
    }
}

impl std::ops::Deref for FolioData {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &self.bytes
    }
}

impl std::ops::DerefMut for FolioData {
    fn deref_mut(&mut self) -> &mut [u8] {
        self.valid.set(0);
        &mut self.bytes
    }
}

/// A folio's mutable state, behind its memory lock.
pub struct FolioState {
    /// The folio's bytes.
    pub data: FolioData,
    /// Per-block state; `None` once the folio left the cache and reclaim freed it.
    pub ifs: Option<Box<Ifs>>,
    /// All blocks uptodate (fast path for readers).
    pub uptodate: bool,
    /// Still in the page cache index.
    pub mapped: bool,
    /// An IO is in flight for this folio.
    pub writeback: bool,
    /// Blocks that belong to the in-flight IO.
    pub wb_mask: u64,
    /// The id of the in-flight IO in the IO queue (whoever waits on writeback claims it there
    /// and completes it). An id, not the IO: the IO holds the folio, not the other way round.
    pub io: Option<u64>,
}

impl FolioState {
    /// Dirty bitmap (0 when the private state was freed).
    #[inline]
    pub fn dirty(&self) -> u64 {
        self.ifs.as_ref().map(|i| i.dirty).unwrap_or(0)
    }

    /// Marks blocks dirty (and uptodate).
    #[inline]
    pub fn set_dirty(&mut self, mask: u64) {
        if let Some(i) = self.ifs.as_mut() {
            i.dirty |= mask;
            i.uptodate |= mask;
        }
    }

    /// Clears dirty bits.
    #[inline]
    pub fn clear_dirty(&mut self, mask: u64) {
        if let Some(i) = self.ifs.as_mut() {
            i.dirty &= !mask;
        }
    }

    /// Marks blocks uptodate; the folio becomes uptodate when all of `all` are.
    pub fn set_uptodate(&mut self, mask: u64, all: u64) {
        if let Some(i) = self.ifs.as_mut() {
            i.uptodate |= mask;
            self.uptodate = i.uptodate & all == all;
        }
    }
}

/// One folio.
pub struct Folio {
    /// Index in the file (in folio-size units).
    pub index: u64,
    /// Nesting key of its lock: (file, index), so that a crash may hold the folios of every file.
    key: u64,
    locked: Mutex<bool>,
    lock_cv: Condvar,
    /// The memory lock: data and flags.
    pub state: Mutex<FolioState>,
    /// Writeback waiters (with `state`).
    pub wb_cv: Condvar,
    /// The file's log of changed folios ([`PageCache::log`]): every mutable access to `state`
    /// notes this folio there ([`FolioMem`]).
    log: std::sync::Arc<ChangeLog>,
    /// The log's epoch when this folio was last noted there ([`ChangeLog::note_once`]).
    noted: std::sync::atomic::AtomicU64,
}

impl Folio {
    fn new(
        file: usize,
        index: u64,
        size: usize,
        locked: bool,
        log: &std::sync::Arc<ChangeLog>,
    ) -> Folio {
        Folio {
            index,
            key: ((file as u64) << 48) | (index & ((1 << 48) - 1)),
            locked: Mutex::new(LockClass::FolioWord, locked),
            lock_cv: Condvar::new(),
            state: Mutex::new(
                LockClass::FolioMem,
                FolioState {
                    data: FolioData::new(vec![0u8; size].into_boxed_slice()),
                    ifs: Some(Box::default()),
                    uptodate: false,
                    mapped: true,
                    writeback: false,
                    wb_mask: 0,
                    io: None,
                },
            ),
            wb_cv: Condvar::new(),
            log: log.clone(),
            noted: std::sync::atomic::AtomicU64::new(u64::MAX),
        }
    }

    /// The memory lock.
    #[inline]
    #[track_caller]
    pub fn mem(&self) -> FolioMem<'_> {
        FolioMem {
            guard: self.state.lock_of_folio(self as *const Folio as usize),
            folio: self,
            noted: false,
        }
    }

    /// The checker's record of taking this folio's lock (`blocking`: by waiting for it).
    #[inline]
    #[track_caller]
    fn note_lock(&self, blocking: bool) -> Token {
        let ctx = self.locked.lockdep_ctx();
        if !lockdep::checking(ctx) {
            return Token::NONE;
        }
        let me = self as *const Folio as usize;
        let a = Acquire {
            class: LockClass::FolioLock,
            ident: me,
            folio: me,
            key: self.key,
            blocking,
        };
        lockdep::acquire(self.locked.lockdep_ctx(), a, std::panic::Location::caller())
    }

    /// Sleeps until the folio lock is ours (`folio_lock`).
    #[track_caller]
    pub fn lock(self: &Arc<Self>) -> LockedFolio {
        let held = self.note_lock(true);
        let mut g = self.locked.lock();
        while *g {
            g = self.lock_cv.wait(g);
        }
        *g = true;
        drop(g);
        LockedFolio {
            folio: self.clone(),
            _held: held,
        }
    }

    /// The lock of a folio just created locked: taken without waiting (nobody else can hold it).
    #[track_caller]
    fn created_locked(self: &Arc<Self>) -> LockedFolio {
        LockedFolio {
            folio: self.clone(),
            _held: self.note_lock(false),
        }
    }

    fn unlock(&self) {
        let mut g = self.locked.lock();
        *g = false;
        drop(g);
        self.lock_cv.notify_all();
    }
}

/// A held folio memory lock ([`Folio::mem`]). Reading goes through `Deref`; the first mutable
/// access notes the folio in its file's change log, so no change to a folio's bytes, flags or
/// per-block state (nor its removal, which clears them under this lock) escapes the oracle's
/// comparison of what changed.
pub struct FolioMem<'a> {
    guard: MutexGuard<'a, FolioState>,
    folio: &'a Folio,
    noted: bool,
}

impl FolioMem<'_> {
    /// Sleeps on the folio's writeback waiters, giving up the memory lock meanwhile.
    #[track_caller]
    pub fn wait_writeback(self) -> Self {
        let FolioMem {
            guard,
            folio,
            noted,
        } = self;
        FolioMem {
            guard: folio.wb_cv.wait(guard),
            folio,
            noted,
        }
    }
}

impl std::ops::Deref for FolioMem<'_> {
    type Target = FolioState;
    #[inline]
    fn deref(&self) -> &FolioState {
        &self.guard
    }
}

impl std::ops::DerefMut for FolioMem<'_> {
    #[inline]
    fn deref_mut(&mut self) -> &mut FolioState {
        if !self.noted {
            self.noted = true;
            let (f, i) = (self.folio, self.folio.index);
            f.log.note_once(&f.noted, i, i.saturating_add(1));
        }
        &mut self.guard
    }
}

/// A held folio lock; dropping it unlocks (`folio_unlock`).
pub struct LockedFolio {
    /// The folio.
    pub folio: Arc<Folio>,
    /// The checker's entry for the lock (left after the unlock: its drop runs after ours).
    _held: Token,
}

impl std::ops::Deref for LockedFolio {
    type Target = Folio;
    fn deref(&self) -> &Folio {
        &self.folio
    }
}

impl Drop for LockedFolio {
    fn drop(&mut self) {
        self.folio.unlock();
    }
}

/// The page cache index of one file.
pub struct PageCache {
    /// The file's index (the folio locks' nesting key).
    file: usize,
    folio_size: usize,
    index: RwLock<BTreeMap<u64, Arc<Folio>>>,
    /// Folio indices whose state changed since the oracle last asked (`Fs::take_changed`).
    pub log: std::sync::Arc<ChangeLog>,
}

impl PageCache {
    /// An empty cache of `folio_size`-byte folios.
    pub fn new(file: usize, folio_size: usize) -> Self {
        PageCache {
            file,
            folio_size,
            index: RwLock::keyed(LockClass::Index, file as u64, BTreeMap::new()),
            log: Default::default(),
        }
    }

    /// The folio at `index`, if cached (not locked).
    #[inline]
    #[track_caller]
    pub fn get(&self, index: u64) -> Option<Arc<Folio>> {
        self.index.read().get(&index).cloned()
    }

    /// The folio at `index`, if cached, looked up with `then` run under the index lock (so a
    /// commit recorded there for a miss is ordered with every insertion).
    #[track_caller]
    pub fn get_then(&self, index: u64, then: impl FnOnce(bool)) -> Option<Arc<Folio>> {
        let idx = self.index.read();
        let f = idx.get(&index).cloned();
        then(f.is_some());
        f
    }

    /// If the cache holds exactly the locked folios `lfs` (given in index order), removes them
    /// all and returns the index lock, still held (a crash keeps every file's until its commit
    /// point, so that a reclaim's miss, decided under it, is ordered with the whole cut). `None`
    /// (nothing removed) if any other folio is cached.
    #[track_caller]
    pub fn remove_all_held(
        &self,
        lfs: &[LockedFolio],
    ) -> Option<RwLockWriteGuard<'_, BTreeMap<u64, Arc<Folio>>>> {
        let mut idx = self.index.write();
        let same = idx.len() == lfs.len()
            && idx
                .iter()
                .zip(lfs)
                .all(|((_, f), lf)| Arc::ptr_eq(f, &lf.folio));
        if !same {
            return None;
        }
        idx.clear();
        for lf in lfs {
            unmap(&mut idx, lf);
        }
        Some(idx)
    }

    /// If the cache holds exactly the locked folios `lfs` (given in index order), removes them
    /// all and runs `then` under the index lock: `Some` of its result. `None` (nothing removed)
    /// if any other folio is cached.
    #[track_caller]
    pub fn remove_all_then<R>(&self, lfs: &[LockedFolio], then: impl FnOnce() -> R) -> Option<R> {
        let idx = self.remove_all_held(lfs)?;
        let r = then();
        drop(idx);
        Some(r)
    }

    /// The cached folio at `index`, locked and still mapped, or `None`.
    #[track_caller]
    pub fn get_locked(&self, index: u64) -> Option<LockedFolio> {
        loop {
            let f = self.get(index)?;
            let lf = f.lock();
            if lf.mem().mapped {
                return Some(lf);
            }
        }
    }

    /// The folio at `index` locked, creating it (locked, not uptodate, zeroed) if absent
    /// (`__filemap_get_folio(FGP_LOCK | FGP_CREAT)`). The flag says whether it was created: the
    /// caller must then make it uptodate before unlocking.
    #[track_caller]
    pub fn get_or_create_locked(&self, index: u64) -> (LockedFolio, bool) {
        loop {
            if let Some(lf) = self.get_locked(index) {
                return (lf, false);
            }
            let f = Arc::new(Folio::new(
                self.file,
                index,
                self.folio_size,
                true,
                &self.log,
            ));
            let lf = f.created_locked();
            let mut idx = self.index.write();
            if idx.contains_key(&index) {
                continue;
            }
            idx.insert(index, f);
            drop(idx);
            // Cached now, even before its memory is first written.
            self.log.note(index, index.saturating_add(1));
            return (lf, true);
        }
    }

    /// Inserts an already uptodate, unlocked folio unless one is present; returns the cached
    /// folio either way (`filemap_add_folio`, losing the race gracefully). `then(inserted)` runs
    /// under the index lock, so a commit recorded there is ordered with every lookup.
    #[track_caller]
    pub fn insert_filled(
        &self,
        index: u64,
        data: Box<[u8]>,
        all: u64,
        then: impl FnOnce(bool),
    ) -> Arc<Folio> {
        let f = Arc::new(Folio::new(self.file, index, 0, false, &self.log));
        {
            let mut st = f.mem();
            st.data = FolioData::new(data);
            st.set_uptodate(all, all);
        }
        let mut idx = self.index.write();
        let inserted = !idx.contains_key(&index);
        if inserted {
            self.log.note(index, index.saturating_add(1));
        }
        let r = idx.entry(index).or_insert(f).clone();
        then(inserted);
        r
    }

    /// Removes a locked folio from the cache and frees its private state
    /// (`filemap_remove_folio` + `folio_release`), running `then` under both the index lock and
    /// the folio memory lock once the folio is gone: a commit recorded there is ordered with every lookup and with
    /// every copy out of the folio (readers check `mapped` under the memory lock).
    #[track_caller]
    pub fn remove_then(&self, lf: &LockedFolio, then: impl FnOnce()) {
        let mut idx = self.index.write();
        let st = unmap(&mut idx, lf);
        then();
        drop(st);
        drop(idx);
    }

    /// Removes several locked folios of this cache at once and runs `then` under the index lock
    /// (after every folio is gone and marked unmapped): a commit recorded there takes the whole
    /// removal as one atomic step.
    #[track_caller]
    pub fn remove_many_then<R>(&self, lfs: &[&LockedFolio], then: impl FnOnce() -> R) -> R {
        let mut idx = self.index.write();
        for lf in lfs {
            unmap(&mut idx, lf);
        }
        let r = then();
        drop(idx);
        r
    }

    /// Locks every cached folio with index in `[first, end)`, in increasing index order, and
    /// returns those still mapped.
    #[track_caller]
    pub fn lock_range(&self, first: u64, end: u64) -> Vec<LockedFolio> {
        let mut held = Vec::new();
        for f in self.range(first, end) {
            let lf = f.lock();
            if lf.mem().mapped {
                held.push(lf);
            }
        }
        held
    }

    /// The cached folios with index in `[first, end)`, in order.
    #[track_caller]
    pub fn range(&self, first: u64, end: u64) -> Vec<Arc<Folio>> {
        if first >= end {
            return Vec::new();
        }
        self.index
            .read()
            .range(first..end)
            .map(|(_, f)| f.clone())
            .collect()
    }

    /// [`PageCache::range`] appended to `out` (a buffer the caller reuses).
    #[track_caller]
    pub fn range_into(&self, first: u64, end: u64, out: &mut Vec<Arc<Folio>>) {
        if first < end {
            out.extend(self.index.read().range(first..end).map(|(_, f)| f.clone()));
        }
    }

    /// One past the highest cached folio index (0 if empty).
    #[track_caller]
    pub fn end_index(&self) -> u64 {
        self.index
            .read()
            .keys()
            .next_back()
            .map(|k| k + 1)
            .unwrap_or(0)
    }
}

/// Takes `lf` out of the index (if this very folio is still there) and marks it unmapped with its
/// per-block state freed; returns its memory lock, still held.
#[track_caller]
fn unmap<'a>(idx: &mut BTreeMap<u64, Arc<Folio>>, lf: &'a LockedFolio) -> FolioMem<'a> {
    if idx
        .get(&lf.index)
        .is_some_and(|f| Arc::ptr_eq(f, &lf.folio))
    {
        idx.remove(&lf.index);
    }
    let mut st = lf.mem();
    st.mapped = false;
    st.ifs = None;
    st.uptodate = false;
    st
}
