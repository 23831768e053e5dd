//! The oracle's view of the implementation ([`vocab::Observe`]) and its self-checks.
//!
//! Owns: read-only observation, `check_invariants`, and the gathering of what changed since the
//! oracle last asked (`Fs::take_changed`, from the logs the storage keeps: `change_log`).
//! Invariants: observation has no side effects (no instantiation, writeback or waiting); it is
//! called when the filesystem is quiescent, so it may read each structure under its own lock
//! without a global snapshot. Cost is proportional to the observed range (blocks/peek) or to the
//! filesystem's state (invariants).
//! Locks: one at a time: ILOCK, the page-cache index, folio memory (+ disk), allocator.

use super::extent_map::Mapping;
use super::page_cache::{Folio, FolioState};
use super::sync::Arc;
use super::{Fs, Inode};
use std::cell::RefCell;
use vocab::{
    BlockObs, CacheState, Counters, Errno, ExtentState, FileId, Geometry, Observe, Violation,
};

thread_local! {
    // Buffers the observation paths reuse from call to call (the oracle observes after every
    // op): taken from the pool, cleared and given back, so nesting just takes another one.
    static MAPS: RefCell<Vec<Vec<Mapping>>> = const { RefCell::new(Vec::new()) };
    static FOLIOS: RefCell<Vec<Vec<Arc<Folio>>>> = const { RefCell::new(Vec::new()) };
    static BITS: RefCell<Vec<Vec<(u64, u64, u64)>>> = const { RefCell::new(Vec::new()) };
}

/// Runs `f` with an empty buffer from `pool`, cleared and returned to the pool afterwards (no
/// `Arc` or other value outlives the call in it).
fn pooled<T: 'static, R>(
    pool: &'static std::thread::LocalKey<RefCell<Vec<Vec<T>>>>,
    f: impl FnOnce(&mut Vec<T>) -> R,
) -> R {
    let mut v = pool.with(|p| p.borrow_mut().pop()).unwrap_or_default();
    let r = f(&mut v);
    v.clear();
    pool.with(|p| p.borrow_mut().push(v));
    r
}

impl Fs {
    /// Appends to `out`, as `(file, first block, end block)`, every block range whose observable
    /// state may have changed since the last call, and forgets them: what the storage itself
    /// logged (each folio whose memory lock was taken for writing, each extent-map change, and
    /// the blocks of `Written` extents that map a disk block written or discarded). A block in
    /// no range shows exactly what it showed at the last call, so the oracle compares only
    /// these and misses nothing a whole comparison would see. Called when quiescent.
    pub fn take_changed(&self, out: &mut Vec<(FileId, u64, u64)>) {
        let bpf = self.geo.bpf;
        let mut phys = Vec::new();
        self.disk.log.take(|lo, hi| phys.push((lo, hi)));
        for (f, ino) in self.inodes.iter().enumerate() {
            let f = f as FileId;
            ino.cache.log.take(|lo, hi| {
                out.push((f, lo.saturating_mul(bpf), hi.saturating_mul(bpf)));
            });
            ino.extent_log.take(|lo, hi| out.push((f, lo, hi)));
            if phys.is_empty() {
                continue;
            }
            for (start, e) in ino.ilock.lock().extents() {
                if e.state != ExtentState::Written {
                    continue;
                }
                for &(lo, hi) in &phys {
                    let (a, b) = (lo.max(e.phys), hi.min(e.phys.saturating_add(e.len)));
                    if a < b {
                        out.push((f, start + (a - e.phys), start + (b - e.phys)));
                    }
                }
            }
        }
    }

    /// The invariant check after an op that changed only the blocks `changed` (`(file, first,
    /// end)`) and global state: the per-block invariants there, every invariant over the whole
    /// state (reservation and allocation totals, ownership, the btree, durability), the counter
    /// sum and every violation seen so far. Per-block invariants elsewhere cannot have changed.
    pub fn check_invariants_changed(&self, changed: &[(FileId, u64, u64)]) -> Vec<Violation> {
        self.check(Scope::Ranges {
            ranges: changed,
            whole_state: true,
        })
    }

    /// The per-block invariants of the blocks `changed` (`(file, first, end)`) and the counter
    /// sum, as [`Observe::check_invariants_in`] checks one range: after an op that changed only
    /// those blocks ([`Fs::take_changed`]), the per-block invariants elsewhere hold as before.
    pub fn check_invariants_in_ranges(&self, changed: &[(FileId, u64, u64)]) -> Vec<Violation> {
        self.check(Scope::Ranges {
            ranges: changed,
            whole_state: false,
        })
    }

    fn inode(&self, file: FileId) -> Option<&Inode> {
        self.inodes.get(file as usize)
    }

    /// Fault injection for oracle tests: overwrites the cached byte of `file` at `off` with
    /// `byte` in place, as a stray store by a buggy path would (no flag, state or counter
    /// changes). Returns whether an uptodate cached block held the byte. It stores through the
    /// same accessor as every write, so it is also the proof that no store can leave a digest
    /// stale.
    pub fn scribble(&self, file: FileId, off: u64, byte: u8) -> bool {
        let Some(ino) = self.inode(file) else {
            return false;
        };
        let g = self.geo;
        let Some(f) = ino.cache.get(off / g.fsz) else {
            return false;
        };
        let mut st = f.mem();
        let i = (off % g.fsz) / g.bs;
        if st.ifs.as_ref().map_or(0, |x| x.uptodate) & (1 << i) == 0 {
            return false;
        }
        st.data[(off % g.fsz) as usize] = byte;
        true
    }

    /// Fault injection for oracle tests: a stray disk write, as a buggy IO path would make it:
    /// overwrites the first byte of the physical block that block `block` of `file` maps
    /// (through the device's own writer, nothing else changed). Returns whether the block was
    /// `Written`.
    pub fn scribble_disk(&self, file: FileId, block: u64, byte: u8) -> bool {
        let Some(ino) = self.inode(file) else {
            return false;
        };
        let m = ino.ilock.lock().lookup(block, block + 1);
        if m.state != ExtentState::Written {
            return false;
        }
        let phys = m.phys_of(block);
        let mut buf = vec![0; self.geo.bs as usize];
        self.disk.read(phys, &mut buf);
        buf[0] = byte;
        self.disk.write(phys, &buf);
        true
    }

    /// Fault injection for oracle tests: a stray mapping change, as a buggy conversion would
    /// make it: block `block` of `file`, if `Written`, becomes `Unwritten` in the extent map
    /// (through the map's own setter). Returns whether it was `Written`.
    pub fn scribble_extent(&self, file: FileId, block: u64) -> bool {
        let Some(ino) = self.inode(file) else {
            return false;
        };
        let mut map = ino.ilock.lock();
        let m = map.lookup(block, block + 1);
        if m.state != ExtentState::Written {
            return false;
        }
        let phys = m.phys_of(block);
        map.set(block, 1, ExtentState::Unwritten, phys);
        true
    }
}

impl Observe for Fs {
    fn geometry(&self) -> Geometry {
        self.geometry
    }

    fn file_count(&self) -> usize {
        self.inodes.len()
    }

    fn size(&self, file: FileId) -> u64 {
        self.inode(file).map(|i| Fs::size(self, i)).unwrap_or(0)
    }

    fn peek(&self, file: FileId, off: u64, len: u64) -> Vec<u8> {
        // Sized once: a snapshot peeks whole files, and growing block by block reallocated
        // (and page-faulted) the copy log(size) times.
        let shown = Observe::size(self, file).saturating_sub(off).min(len);
        let mut out = Vec::with_capacity(usize::try_from(shown).unwrap_or(0));
        self.visit(file, off, len, &mut |s| out.extend_from_slice(s));
        out
    }

    /// Lends cached bytes under the folio's memory lock (a folio may mix uptodate and
    /// not-uptodate blocks: each uptodate run in one piece) and the bytes behind the rest as
    /// the extent map says (disk bytes under one disk lock hold per mapping, zeros otherwise).
    /// The cache is looked up once and the extent map once per stretch of uncached folios: a
    /// concurrent run's snapshot reads whole files with these locks, and under shuttle every
    /// acquisition is a scheduling point (three per block made the snapshot a quarter of a
    /// concurrent exec).
    fn visit(&self, file: FileId, off: u64, len: u64, out: &mut dyn FnMut(&[u8])) {
        let Some(ino) = self.inode(file) else { return };
        let size = Fs::size(self, ino);
        if off >= size {
            return;
        }
        let end = off.saturating_add(len).min(size);
        let g = self.geo;
        let folios = ino.cache.range(off / g.fsz, end.div_ceil(g.fsz));
        let mut next = folios.iter().peekable();
        let mut maps: Vec<Mapping> = Vec::new();
        let mut pos = off;
        while pos < end {
            let idx = pos / g.fsz;
            let fstart = idx * g.fsz;
            let fend = end.min(fstart + g.fsz);
            while next.next_if(|f| f.index < idx).is_some() {}
            // Where the bytes from `pos` stop coming from the cache: the end of this folio's
            // non-uptodate block, or the next cached folio.
            let uncached_to = match next.peek() {
                Some(f) if f.index == idx => {
                    let st = f.mem();
                    let up = st.ifs.as_ref().map_or(0, |i| i.uptodate);
                    // The longest run of uptodate blocks from `pos`, lent in one piece.
                    let mut stop = pos;
                    while stop < fend && up & (1 << ((stop - fstart) / g.bs)) != 0 {
                        stop = ((stop / g.bs) + 1) * g.bs;
                    }
                    let stop = stop.min(fend);
                    if stop > pos {
                        out(&st.data[(pos - fstart) as usize..(stop - fstart) as usize]);
                        pos = stop;
                        continue;
                    }
                    end.min((pos / g.bs + 1) * g.bs)
                }
                Some(f) => end.min(f.index * g.fsz),
                None => end,
            };
            // `[pos, uncached_to)` as the extent map says, in one ILOCK hold.
            maps.clear();
            let (b0, b1) = (pos / g.bs, uncached_to.div_ceil(g.bs));
            ino.ilock.lock().mappings_into(b0, b1, &mut maps);
            for m in &maps {
                // The bytes of this mapping within `[pos, uncached_to)`.
                let lo = pos.max(m.start * g.bs);
                let hi = uncached_to.min(m.end() * g.bs);
                if lo >= hi {
                    continue;
                }
                if m.state == ExtentState::Written {
                    let (first, p0) = (lo / g.bs, m.phys_of(lo / g.bs));
                    self.disk
                        .with_blocks(p0, hi.div_ceil(g.bs) - first, |p, d| {
                            // This block's byte offset in the file, and its part of `[lo, hi)`.
                            let at = (first + (p - p0)) * g.bs;
                            let (from, to) = (
                                (lo.max(at) - at) as usize,
                                (hi.min(at + g.bs) - at) as usize,
                            );
                            match d {
                                Some(d) => out(&d[from..to]),
                                None => out(&vec![vocab::stale_byte(p); to - from]),
                            }
                        });
                } else {
                    let mut at = lo;
                    while at < hi {
                        let n = (hi - at).min(ZEROS.len() as u64);
                        out(&ZEROS[..n as usize]);
                        at += n;
                    }
                }
            }
            pos = uncached_to;
        }
    }

    fn block_span(&self, file: FileId) -> u64 {
        let Some(ino) = self.inode(file) else {
            return 0;
        };
        let ext = ino.ilock.lock().end_block();
        ext.max(ino.cache.end_index() * self.geo.bpf)
    }

    fn blocks(&self, file: FileId, first: u64, count: u64) -> Vec<BlockObs> {
        let mut out = vec![BlockObs::UNTOUCHED; count as usize];
        let Some(ino) = self.inode(file) else {
            return out;
        };
        let g = self.geo;
        let end = first.saturating_add(count);
        ino.ilock.lock().for_each(first, end, |m| {
            for b in m.start..m.end() {
                out[(b - first) as usize].extent = m.state;
            }
        });
        let (f0, f1) = (first / g.bpf, end.div_ceil(g.bpf));
        // Collected first: the folio memory lock is not taken inside the index lock without the
        // folio lock (lock order, `lib.rs`).
        for f in ino.cache.range(f0, f1) {
            let st = f.mem();
            let dirty = st.dirty();
            let fb0 = f.index * g.bpf;
            for i in 0..g.bpf {
                let b = fb0 + i;
                if b < first || b >= end {
                    continue;
                }
                let o = &mut out[(b - first) as usize];
                o.cache = if dirty & (1 << i) != 0 {
                    CacheState::Dirty
                } else {
                    CacheState::Clean
                };
                o.writeback = st.writeback && st.wb_mask & (1 << i) != 0;
            }
        }
        out
    }

    /// Runs from the extent map's mappings and, inside cached folios, the folios' per-block
    /// bits: cost follows extents and cached folios, not the range's length.
    fn block_runs(&self, file: FileId, first: u64, end: u64, out: &mut Vec<(u64, BlockObs)>) {
        let mut push = |n: u64, o: BlockObs| match out.last_mut() {
            Some((k, s)) if *s == o => *k += n,
            _ => out.push((n, o)),
        };
        let Some(ino) = self.inode(file) else {
            if end > first {
                push(end - first, BlockObs::UNTOUCHED);
            }
            return;
        };
        if end <= first {
            return;
        }
        let g = self.geo;
        pooled(&MAPS, |maps| {
            ino.ilock.lock().mappings_into(first, end, maps);
            pooled(&FOLIOS, |arcs| {
                ino.cache
                    .range_into(first / g.bpf, end.div_ceil(g.bpf), arcs);
                pooled(&BITS, |folios| {
                    // (first block, dirty bits, writeback bits) of each cached folio in the
                    // range; folio memory is not locked under the index lock (lock order,
                    // `lib.rs`).
                    folios.extend(arcs.iter().map(|f| {
                        let st = f.mem();
                        let wb = if st.writeback { st.wb_mask } else { 0 };
                        (f.index * g.bpf, st.dirty(), wb)
                    }));
                    runs_of(g.bpf, maps, folios, &mut push);
                })
            })
        });
    }

    /// Digests from where the bytes live, as [`Observe::visit`] reads them: an uptodate cached
    /// block's from its folio (kept until the folio's bytes change), a written block's from the
    /// disk (set when written), zeros' computed once per call.
    fn digests(&self, file: FileId, first: u64, end: u64, out: &mut Vec<Option<u32>>) {
        let Some(ino) = self.inode(file) else {
            out.extend((first..end).map(|_| None));
            return;
        };
        if end <= first {
            return;
        }
        let g = self.geo;
        let size = Fs::size(self, ino);
        // Blocks wholly below EOF; the rest get `None`.
        let whole = (size / g.bs).clamp(first, end);
        let base = out.len() as u64;
        pooled(&MAPS, |maps| {
            pooled(&FOLIOS, |folios| {
                ino.ilock.lock().mappings_into(first, whole, maps);
                ino.cache
                    .range_into(first / g.bpf, whole.div_ceil(g.bpf), folios);
                // The disk lock is not held while folio memory is locked below.
                self.uncached_digests(maps.iter().copied(), whole, out);
                for f in folios.iter() {
                    let st = f.mem();
                    self.cached_digests(f.index * g.bpf, &st, (first, whole), base, out);
                }
            })
        });
        out.extend((whole..end).map(|_| None));
    }

    fn counters(&self) -> Counters {
        let (free, reserved, allocated) = self.space.get();
        Counters {
            free,
            reserved,
            allocated,
            inflight_ios: self.ioq.inflight(),
        }
    }

    fn wb_error(&self, file: FileId) -> Option<Errno> {
        self.inode(file).and_then(|i| i.wb_err.peek())
    }

    fn btree_corrupt(&self) -> bool {
        self.alloc.lock().is_corrupt()
    }

    fn check_invariants(&self) -> Vec<Violation> {
        self.check(Scope::Whole)
    }

    fn check_invariants_in(&self, file: FileId, first: u64, end: u64) -> Vec<Violation> {
        self.check(Scope::Ranges {
            ranges: &[(file, first, end)],
            whole_state: false,
        })
    }
}

impl Fs {
    /// Pushes onto `out` the digests of the blocks of `maps` (in order) as they are without the
    /// cache: the disk's for `Written` blocks (one walk of the disk per mapping), zeros' for the
    /// rest; `None` from block `whole` on (blocks reaching past EOF).
    fn uncached_digests(
        &self,
        maps: impl Iterator<Item = Mapping>,
        whole: u64,
        out: &mut Vec<Option<u32>>,
    ) {
        for m in maps {
            let hi = m.end().min(whole);
            if m.start < hi {
                if m.state == ExtentState::Written {
                    self.disk.digests_into(m.phys, hi - m.start, out);
                } else {
                    out.extend(std::iter::repeat_n(
                        Some(self.geo.zero_digest),
                        (hi - m.start) as usize,
                    ));
                }
            }
            let past = m.start.max(whole);
            out.extend((past..m.end().max(past)).map(|_| None));
        }
    }

    /// Lays over `out`, whose entry `base` is block `first`, the digests of the uptodate blocks
    /// in `[first, whole)` of the folio at block `fb0` (state `st`, its memory lock held): a
    /// cached block reads from its folio, not from where [`Fs::uncached_digests`] looked.
    fn cached_digests(
        &self,
        fb0: u64,
        st: &FolioState,
        (first, whole): (u64, u64),
        base: u64,
        out: &mut [Option<u32>],
    ) {
        let up = st.ifs.as_ref().map_or(0, |x| x.uptodate);
        for b in fb0.max(first)..(fb0 + self.geo.bpf).min(whole) {
            let i = (b - fb0) as usize;
            // The mappings cover the range exactly, so the slot exists.
            if let Some(d) = out.get_mut((base + b - first) as usize) {
                if up & (1 << i) != 0 {
                    *d = Some(st.data.digest(i, self.geo.bs as usize));
                }
            }
        }
    }
}

/// Where [`Fs::check_blocks_of`] puts the window it observes besides its checks: the caller's
/// runs and digests, and scratch buffers.
struct View<'a> {
    runs: &'a mut Vec<(u64, BlockObs)>,
    digests: &'a mut Vec<Option<u32>>,
    bits: &'a mut Vec<(u64, u64, u64)>,
    clipped: &'a mut Vec<Mapping>,
}

impl Fs {
    /// The block runs ([`Observe::block_runs`]) and digests ([`Observe::digests`]) of blocks
    /// `[first, end)` of `file`, and the per-block invariants of those blocks
    /// (`dirty-over-hole`, `past-eof-zero`, `clean-cache-matches-disk`, `delalloc-not-dirty`)
    /// in one look, violations added to `violations`: the oracle's comparison of what an op
    /// changed. The invariants that are not per block are left to
    /// [`Fs::check_invariants_in_ranges`] / [`Fs::check_invariants_changed`] with no ranges.
    pub fn window_checked(
        &self,
        file: FileId,
        first: u64,
        end: u64,
        runs: &mut Vec<(u64, BlockObs)>,
        digests: &mut Vec<Option<u32>>,
        violations: &mut Vec<Violation>,
    ) {
        let Some(ino) = self.inode(file) else {
            if end > first {
                runs.push((end - first, BlockObs::UNTOUCHED));
                digests.extend((first..end).map(|_| None));
            }
            return;
        };
        if end <= first {
            return;
        }
        let g = self.geo;
        let mut push =
            |name: &'static str, detail: String| violations.push(Violation { name, detail });
        pooled(&FOLIOS, |folios| {
            pooled(&MAPS, |maps| {
                pooled(&MAPS, |clipped| {
                    pooled(&BITS, |bits| {
                        ino.cache
                            .range_into(first / g.bpf, end.div_ceil(g.bpf), folios);
                        let view = View {
                            runs,
                            digests,
                            bits,
                            clipped,
                        };
                        self.check_blocks_of(ino, folios, maps, first, end, Some(view), &mut push)
                    })
                })
            })
        })
    }
}

/// What an invariant check covers.
#[derive(Clone, Copy)]
enum Scope<'a> {
    /// Everything.
    Whole,
    /// The per-block invariants of blocks `ranges` (`(file, first, end)`) and the counter sum;
    /// with `whole_state`, also every invariant over the whole state.
    Ranges {
        ranges: &'a [(FileId, u64, u64)],
        whole_state: bool,
    },
}

impl Fs {
    /// The invariant check. `Whole`: every invariant over the whole filesystem. `Ranges`: the
    /// per-block invariants of the folios holding the ranges' blocks and the O(1) counter sum;
    /// the invariants over the whole state (reservation and allocation totals, ownership, the
    /// btree, durability) only with `whole_state`, else left to the next check that has them,
    /// so that the oracle's check after each op costs what the op changed and not what the
    /// filesystem holds (the counters themselves are compared with the reference every op).
    fn check(&self, scope: Scope<'_>) -> Vec<Violation> {
        // Breaches of the lock order by the observing thread itself (ops report their own).
        self.report_lock_findings();
        let mut v: Vec<Violation> = if self.any_violation.load(crate::sync::Ordering::Acquire) {
            self.violations.lock().clone()
        } else {
            Vec::new()
        };
        let mut push = |name: &'static str, detail: String| v.push(Violation { name, detail });
        let (free, reserved, allocated) = self.space.get();
        if free + reserved + allocated != self.geometry.capacity_blocks {
            push(
                "counters-sum",
                format!(
                    "free {free} + reserved {reserved} + allocated {allocated} != capacity {}",
                    self.geometry.capacity_blocks
                ),
            );
        }
        match scope {
            Scope::Ranges {
                ranges,
                whole_state,
            } => {
                for &(file, first, end) in ranges {
                    if let Some(ino) = self.inode(file) {
                        self.check_blocks(ino, first, end, &mut push);
                    }
                }
                if whole_state {
                    self.check_global(reserved, allocated, &mut push);
                    self.check_durability(&mut push);
                }
            }
            Scope::Whole => {
                for ino in &self.inodes {
                    self.check_blocks(ino, 0, u64::MAX, &mut push);
                }
                self.check_global(reserved, allocated, &mut push);
                self.check_durability(&mut push);
            }
        }
        v
    }

    /// Per-block invariants of the cached folios and delalloc extents holding blocks `[b0, b1)`:
    /// `dirty-over-hole`, `past-eof-zero`, `clean-cache-matches-disk`, `delalloc-not-dirty`.
    fn check_blocks(
        &self,
        ino: &Inode,
        b0: u64,
        b1: u64,
        push: &mut impl FnMut(&'static str, String),
    ) {
        pooled(&FOLIOS, |folios| {
            pooled(&MAPS, |maps| {
                ino.cache
                    .range_into(b0 / self.geo.bpf, b1.div_ceil(self.geo.bpf), folios);
                self.check_blocks_of(ino, folios, maps, b0, b1, None, push)
            })
        })
    }

    /// [`Fs::check_blocks`] with `folios` the cached folios of the range and `maps` an empty
    /// buffer for its mappings; with `view`, also the block runs and digests of `[b0, b1)` from
    /// the same look (the oracle's comparison after an op: one ILOCK hold and one memory lock per
    /// folio for the comparison and the checks).
    #[allow(clippy::too_many_arguments)]
    fn check_blocks_of(
        &self,
        ino: &Inode,
        folios: &[Arc<Folio>],
        maps: &mut Vec<Mapping>,
        b0: u64,
        b1: u64,
        mut view: Option<View<'_>>,
        push: &mut impl FnMut(&'static str, String),
    ) {
        let g = self.geo;
        let size = Fs::size(self, ino);
        // Blocks wholly below EOF have digests; the rest get `None`.
        let whole = (size / g.bs).min(b1).max(b0);
        let em = ino.ilock.lock();
        // One walk of the extent map over the range and the folios' whole blocks (the first and
        // last folio may reach outside `[b0, b1)`); each check below reads its slice of it.
        let lo = folios.first().map_or(b0, |f| (f.index * g.bpf).min(b0));
        let hi = folios
            .last()
            .map_or(b1, |f| ((f.index + 1) * g.bpf).max(b1));
        em.mappings_into(lo, hi, maps);
        let maps = &maps[..];
        let base = view.as_ref().map_or(0, |v| v.digests.len() as u64);
        if let Some(v) = view.as_mut() {
            // The disk's and zeros' digests first; cached blocks' are laid over them below.
            self.uncached_digests(clip(maps, b0, b1), whole, v.digests);
        }
        let mut cursor = 0;
        // Dirty masks by folio, in index order (for the delalloc check below).
        let mut dirty_of: Vec<(u64, u64)> = Vec::with_capacity(folios.len());
        for f in folios {
            let fb0 = f.index * g.bpf;
            let st = f.mem();
            let dirty = st.dirty();
            dirty_of.push((f.index, dirty));
            while cursor < maps.len() && maps[cursor].end() <= fb0 {
                cursor += 1;
            }
            let here = clip(&maps[cursor..], fb0, fb0 + g.bpf);
            // Before the cached digests are laid over them: the window's disk and zero digests
            // spare the clean-block check a second walk of the disk.
            let known = view
                .as_ref()
                .map(|v| (b0, whole, v.digests.get(base as usize..).unwrap_or(&[])));
            self.check_clean_blocks(ino, here.clone(), f, &st, known, push);
            if let Some(v) = view.as_mut() {
                self.cached_digests(fb0, &st, (b0, whole), base, v.digests);
                let wb = if st.writeback { st.wb_mask } else { 0 };
                v.bits.push((fb0, dirty, wb));
            }
            if dirty != 0 {
                for m in here.clone() {
                    if m.state == ExtentState::Hole {
                        for b in m.start..m.end() {
                            if dirty & (1 << (b - fb0)) != 0 {
                                push(
                                    "dirty-over-hole",
                                    format!("file {} block {b} is dirty over a hole", ino.idx),
                                );
                            }
                        }
                    }
                }
            }
            let fstart = f.index * g.fsz;
            if fstart + g.fsz > size {
                let from = size.saturating_sub(fstart) as usize;
                if !is_zero(&st.data[from..]) {
                    push(
                        "past-eof-zero",
                        format!(
                            "file {} folio {} has non-zero bytes past EOF {size}",
                            ino.idx, f.index
                        ),
                    );
                }
            }
        }
        drop(em);
        if let Some(v) = view {
            v.clipped.extend(clip(maps, b0, b1));
            let mut put = |n: u64, o: BlockObs| match v.runs.last_mut() {
                Some((k, s)) if *s == o => *k += n,
                _ => v.runs.push((n, o)),
            };
            runs_of(g.bpf, v.clipped, v.bits, &mut put);
        }
        for m in clip(maps, b0, b1) {
            if m.state != ExtentState::Delalloc {
                continue;
            }
            let unbacked = (m.start..m.end()).find(|&b| {
                let i = dirty_of.partition_point(|&(idx, _)| idx < b / g.bpf);
                !dirty_of
                    .get(i)
                    .is_some_and(|&(idx, d)| idx == b / g.bpf && d & (1 << (b % g.bpf)) != 0)
            });
            if let Some(b) = unbacked {
                push(
                    "delalloc-not-dirty",
                    format!(
                        "file {} block {b} is delalloc but not cached dirty",
                        ino.idx
                    ),
                );
                break;
            }
        }
    }

    /// Invariants over the whole state: reservations equal delalloc blocks, allocations equal
    /// mapped blocks, no physical block owned twice (by two files, or by a file and the free
    /// tree), and the free-space btree's order and CRCs.
    fn check_global(
        &self,
        reserved: u64,
        allocated: u64,
        push: &mut impl FnMut(&'static str, String),
    ) {
        let mut delalloc_total = 0;
        let mut mapped_total = 0;
        let mut owners: Vec<(u64, u64, usize, u64)> = Vec::new();
        for ino in &self.inodes {
            for (s, e) in ino.ilock.lock().extents() {
                if e.state == ExtentState::Delalloc {
                    delalloc_total += e.len;
                } else {
                    mapped_total += e.len;
                    owners.push((e.phys, e.len, ino.idx, s));
                }
            }
        }
        if reserved != delalloc_total {
            push(
                "reserved-equals-delalloc",
                format!("reserved {reserved} != delalloc blocks {delalloc_total}"),
            );
        }
        if allocated != mapped_total {
            push(
                "allocated-equals-mapped",
                format!("allocated {allocated} != mapped blocks {mapped_total}"),
            );
        }
        owners.sort_unstable();
        for w in owners.windows(2) {
            if w[0].0 + w[0].1 > w[1].0 {
                push(
                    "double-owned",
                    format!(
                        "physical block {} is mapped by file {} block {} and file {} block {}",
                        w[1].0, w[0].2, w[0].3, w[1].2, w[1].3
                    ),
                );
            }
        }
        let tree = self.alloc.lock();
        for (name, detail) in tree.check() {
            push(name, detail);
        }
        // A block both free in the tree and mapped by a file is doubly owned too.
        let recs = tree.records();
        drop(tree);
        for &(p, l, f, b) in &owners {
            let i = recs.partition_point(|e| e.start + e.len <= p);
            if recs.get(i).is_some_and(|e| e.start < p + l) {
                push(
                    "double-owned",
                    format!("file {f} block {b} (physical {p}) is also in the free-space tree"),
                );
            }
        }
    }

    /// `clean-cache-matches-disk` for one folio, given its file's extent map and its state.
    /// `known`: `(first, end, digests)`, the digests of blocks `[first, end)` without the cache
    /// (as [`Fs::uncached_digests`] gives them), where a window has them already.
    fn check_clean_blocks(
        &self,
        ino: &Inode,
        maps: impl Iterator<Item = Mapping>,
        f: &Folio,
        st: &FolioState,
        known: Option<(u64, u64, &[Option<u32>])>,
        push: &mut impl FnMut(&'static str, String),
    ) {
        let g = self.geo;
        let bs = g.bs as usize;
        let fb0 = f.index * g.bpf;
        let Some(ifs) = st.ifs.as_ref() else { return };
        let skip = ifs.dirty | !ifs.uptodate | if st.writeback { st.wb_mask } else { 0 };
        // The disk's digests of a mapping's blocks, fetched under one disk lock hold (a mapping
        // inside one folio has at most 64 blocks).
        let mut on_disk = [None; 64];
        let from_window = |b: u64| {
            known
                .filter(|&(lo, hi, _)| lo <= b && b < hi)
                .and_then(|(lo, _, d)| d.get((b - lo) as usize).copied().flatten())
        };
        for m in maps {
            let checked = |b: u64| skip & (1 << (b - fb0)) == 0;
            if !(m.start..m.end()).any(checked) {
                continue;
            }
            if m.state == ExtentState::Written
                && (m.start..m.end()).any(|b| checked(b) && from_window(b).is_none())
            {
                self.disk.digests_of(m.phys, &mut on_disk[..m.len as usize]);
            }
            for b in m.start..m.end() {
                let i = (b - fb0) as usize;
                if skip & (1 << i) != 0 {
                    continue;
                }
                let cached = &st.data[i * bs..(i + 1) * bs];
                // Digests first (both kept: the folio's until its bytes change, the disk's since
                // the write): a clean block is compared without reading it again.
                let same = if m.state == ExtentState::Written {
                    let p = m.phys_of(b);
                    if let Some(d) = from_window(b) {
                        // The disk's digest, or that of the stale bytes of a block never
                        // written since it was last free.
                        d == st.data.digest(i, bs)
                    } else {
                        match on_disk[(b - m.start) as usize] {
                            Some(d) => d == st.data.digest(i, bs),
                            None => cached.iter().all(|&x| x == vocab::stale_byte(p)),
                        }
                    }
                } else {
                    // Zeros: the folio's digest (usually kept since the comparison just asked
                    // for it) against that of a zero block.
                    st.data.digest(i, bs) == g.zero_digest
                };
                if !same {
                    push(
                        "clean-cache-matches-disk",
                        format!(
                            "file {} block {b}: clean cached data differs from disk",
                            ino.idx
                        ),
                    );
                }
            }
        }
    }
}

/// The block runs of `maps` (in order) with the cached folios' bits `folios` laid over them.
fn runs_of(
    bpf: u64,
    maps: &[Mapping],
    folios: &[(u64, u64, u64)],
    push: &mut impl FnMut(u64, BlockObs),
) {
    let mut fi = 0;
    for m in maps.iter().copied() {
        let mut b = m.start;
        while b < m.end() {
            while fi < folios.len() && folios[fi].0 + bpf <= b {
                fi += 1;
            }
            match folios.get(fi) {
                Some(&(fb0, dirty, wb)) if fb0 <= b => {
                    let i = b - fb0;
                    push(
                        1,
                        BlockObs {
                            extent: m.state,
                            cache: if dirty & (1 << i) != 0 {
                                CacheState::Dirty
                            } else {
                                CacheState::Clean
                            },
                            writeback: wb & (1 << i) != 0,
                        },
                    );
                    b += 1;
                }
                next => {
                    let stop = next.map_or(m.end(), |&(fb0, _, _)| fb0.min(m.end()));
                    push(
                        stop - b,
                        BlockObs {
                            extent: m.state,
                            cache: CacheState::NotCached,
                            writeback: false,
                        },
                    );
                    b = stop;
                }
            }
        }
    }
}

/// The mappings of `maps` (in order, covering a range that starts at or before `lo`) clipped to
/// `[lo, hi)`: what `ExtentMap::for_each(lo, hi)` would yield, from one earlier walk.
fn clip(maps: &[Mapping], lo: u64, hi: u64) -> impl Iterator<Item = Mapping> + Clone + '_ {
    maps.iter()
        .skip_while(move |m| m.end() <= lo)
        .take_while(move |m| m.start < hi)
        .map(move |m| {
            let start = m.start.max(lo);
            let end = m.end().min(hi);
            Mapping {
                start,
                len: end - start,
                state: m.state,
                phys: if m.state == ExtentState::Delalloc || m.state == ExtentState::Hole {
                    m.phys
                } else {
                    m.phys_of(start)
                },
            }
        })
}

/// A block of zeros, lent for holes and compared against.
static ZEROS: [u8; 4096] = [0; 4096];

/// Whether every byte is zero (memcmp against [`ZEROS`], much faster than a byte loop).
fn is_zero(b: &[u8]) -> bool {
    b.chunks(ZEROS.len()).all(|c| c == &ZEROS[..c.len()])
}
