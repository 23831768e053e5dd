//! The oracle's view of the implementation ([`vocab::Observe`]) and its self-checks.
//!
//! Owns: read-only observation and `check_invariants`.
//! Invariants: observation has no side effects (no instantiation, writeback or waiting); it is
//! called when the filesystem is quiescent, so it may read each structure under its own lock
//! without a global snapshot. Cost is proportional to the observed range (blocks/peek) or to the
//! filesystem's state (invariants).
//! Locks: one at a time: ILOCK, the page-cache index, folio memory (+ disk), allocator.

use super::page_cache::{Folio, FolioState};
use super::sync::MutexGuard;
use super::{Fs, Inode};
use vocab::{
    BlockObs, CacheState, Counters, Errno, ExtentState, FileId, Geometry, Observe, Violation,
};

impl Fs {
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
        let mut out = Vec::new();
        self.visit(file, off, len, &mut |s| out.extend_from_slice(s));
        out
    }

    /// Lends cached bytes under the folio's memory lock and disk bytes under the disk lock, one
    /// block at a time (a folio may mix uptodate and not-uptodate blocks).
    fn visit(&self, file: FileId, off: u64, len: u64, out: &mut dyn FnMut(&[u8])) {
        static ZEROS: [u8; 4096] = [0; 4096];
        let Some(ino) = self.inode(file) else { return };
        let size = Fs::size(self, ino);
        if off >= size {
            return;
        }
        let end = off.saturating_add(len).min(size);
        let g = self.geo;
        let mut pos = off;
        while pos < end {
            let idx = pos / g.fsz;
            let fstart = idx * g.fsz;
            let fend = end.min(fstart + g.fsz);
            if let Some(f) = ino.cache.get(idx) {
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
            }
            let b = pos / g.bs;
            let stop = end.min((b + 1) * g.bs);
            let (lo, hi) = ((pos - b * g.bs) as usize, (stop - b * g.bs) as usize);
            let m = ino.ilock.lock().lookup(b, b + 1);
            if m.state == ExtentState::Written {
                self.disk.with_block(m.phys, |d| match d {
                    Some(d) => out(&d[lo..hi]),
                    None => out(&vec![vocab::stale_byte(m.phys); hi - lo]),
                });
            } else {
                out(&ZEROS[lo..hi]);
            }
            pos = stop;
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
        let maps = ino.ilock.lock().mappings(first, end);
        // (first block, dirty bits, writeback bits) of each cached folio in the range; folio
        // memory is not locked under the index lock (lock order, `lib.rs`).
        let folios: Vec<(u64, u64, u64)> = ino
            .cache
            .range(first / g.bpf, end.div_ceil(g.bpf))
            .iter()
            .map(|f| {
                let st = f.mem();
                let wb = if st.writeback { st.wb_mask } else { 0 };
                (f.index * g.bpf, st.dirty(), wb)
            })
            .collect();
        let mut fi = 0;
        for m in maps {
            let mut b = m.start;
            while b < m.end() {
                while fi < folios.len() && folios[fi].0 + g.bpf <= b {
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
        let bs = g.bs as usize;
        let size = Fs::size(self, ino);
        // Blocks wholly below EOF; the rest get `None`.
        let whole = (size / g.bs).clamp(first, end);
        let maps = ino.ilock.lock().mappings(first, whole);
        let folios = ino.cache.range(first / g.bpf, whole.div_ceil(g.bpf));
        let mut fi = 0;
        // The folio of the last block looked at, its memory lock held across its blocks (the
        // disk lock, a leaf, may be taken inside it).
        let mut held: Option<(u64, MutexGuard<'_, FolioState>)> = None;
        for m in maps {
            for b in m.start..m.end() {
                while fi < folios.len() && (folios[fi].index + 1) * g.bpf <= b {
                    fi += 1;
                }
                let folio = folios.get(fi).filter(|f| f.index * g.bpf <= b);
                let cached = folio.and_then(|f| {
                    if held.as_ref().is_none_or(|(idx, _)| *idx != f.index) {
                        drop(held.take()); // one folio memory lock at a time
                        held = Some((f.index, f.mem()));
                    }
                    let st = &held.as_ref()?.1;
                    let i = (b - f.index * g.bpf) as usize;
                    let up = st.ifs.as_ref().map_or(0, |x| x.uptodate);
                    (up & (1 << i) != 0).then(|| st.data.digest(i, bs))
                });
                let d = match cached {
                    Some(d) => d,
                    None if m.state == ExtentState::Written => {
                        let p = m.phys_of(b);
                        self.disk
                            .digest(p)
                            .unwrap_or_else(|| vocab::block_digest(&vec![vocab::stale_byte(p); bs]))
                    }
                    None => g.zero_digest,
                };
                out.push(Some(d));
            }
        }
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
        self.inode(file).and_then(|i| *i.wb_err.lock())
    }

    fn btree_corrupt(&self) -> bool {
        self.alloc.lock().is_corrupt()
    }

    fn check_invariants(&self) -> Vec<Violation> {
        self.check(None)
    }

    fn check_invariants_in(&self, file: FileId, first: u64, end: u64) -> Vec<Violation> {
        self.check(Some((file as usize, first, end)))
    }
}

impl Fs {
    /// The invariant check. Without a scope: every invariant over the whole filesystem. With
    /// `scope = (file, first, end)`: the per-block invariants of the folios holding blocks
    /// `[first, end)` of `file`, and the O(1) counter sum; the invariants over the whole state
    /// (reservation and allocation totals, ownership, the btree) are left to the next unscoped
    /// check, so that the oracle's check after each op costs what the op touched and not what
    /// the filesystem holds (the counters themselves are compared with the reference every op).
    fn check(&self, scope: Option<(usize, u64, u64)>) -> Vec<Violation> {
        // Breaches of the lock order by the observing thread itself (ops report their own).
        self.report_lock_findings();
        let mut v: Vec<Violation> = self.violations.lock().clone();
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
            Some((file, first, end)) => {
                if let Some(ino) = self.inodes.get(file) {
                    self.check_blocks(ino, first, end, &mut push);
                }
            }
            None => {
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
        let g = self.geo;
        let size = Fs::size(self, ino);
        let folios = ino.cache.range(b0 / g.bpf, b1.div_ceil(g.bpf));
        let em = ino.ilock.lock();
        // Dirty masks by folio, in index order (for the delalloc check below).
        let mut dirty_of: Vec<(u64, u64)> = Vec::with_capacity(folios.len());
        for f in &folios {
            let fb0 = f.index * g.bpf;
            let st = f.mem();
            let dirty = st.dirty();
            dirty_of.push((f.index, dirty));
            if dirty != 0 {
                em.for_each(fb0, fb0 + g.bpf, |m| {
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
                });
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
            self.check_clean_blocks(ino, &em, f, &st, push);
        }
        let mut reported = false;
        em.for_each(b0, b1, |m| {
            if m.state != ExtentState::Delalloc || reported {
                return;
            }
            for b in m.start..m.end() {
                let i = dirty_of.partition_point(|&(idx, _)| idx < b / g.bpf);
                let dirty = dirty_of
                    .get(i)
                    .is_some_and(|&(idx, d)| idx == b / g.bpf && d & (1 << (b % g.bpf)) != 0);
                if !dirty {
                    push(
                        "delalloc-not-dirty",
                        format!(
                            "file {} block {b} is delalloc but not cached dirty",
                            ino.idx
                        ),
                    );
                    reported = true;
                    return;
                }
            }
        });
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
    fn check_clean_blocks(
        &self,
        ino: &Inode,
        em: &super::extent_map::ExtentMap,
        f: &Folio,
        st: &super::page_cache::FolioState,
        push: &mut impl FnMut(&'static str, String),
    ) {
        let g = self.geo;
        let bs = g.bs as usize;
        let fb0 = f.index * g.bpf;
        let Some(ifs) = st.ifs.as_ref() else { return };
        let skip = ifs.dirty | !ifs.uptodate | if st.writeback { st.wb_mask } else { 0 };
        em.for_each(fb0, fb0 + g.bpf, |m| {
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
                    match self.disk.digest(p) {
                        Some(d) => d == st.data.digest(i, bs),
                        None => cached.iter().all(|&x| x == vocab::stale_byte(p)),
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
        });
    }
}

/// Whether every byte is zero (memcmp against a static zero block, much faster than a byte loop).
fn is_zero(b: &[u8]) -> bool {
    static ZEROS: [u8; 4096] = [0; 4096];
    b.chunks(4096).all(|c| c == &ZEROS[..c.len()])
}
