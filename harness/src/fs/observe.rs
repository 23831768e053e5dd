//! The oracle's view of the implementation ([`reference::Observe`]) and its self-checks.
//!
//! Owns: read-only observation and `check_invariants`.
//! Invariants: observation has no side effects (no instantiation, writeback or waiting); it is
//! called when the filesystem is quiescent, so it may read each structure under its own lock
//! without a global snapshot. Cost is proportional to the observed range (blocks/peek) or to the
//! filesystem's state (invariants).
//! Locks: one at a time: ILOCK, the page-cache index, folio memory (+ disk), allocator.

use super::page_cache::Folio;
use super::{Fs, Inode};
use reference::{
    BlockObs, CacheState, Counters, Errno, ExtentState, FileId, Geometry, Observe, Violation,
};
use std::collections::HashMap;

impl Fs {
    fn inode(&self, file: FileId) -> Option<&Inode> {
        self.inodes.get(file as usize)
    }

    /// The bytes of block `b` as the mapping (not the cache) has them.
    fn mapped_block(&self, ino: &Inode, b: u64, out: &mut [u8]) {
        let m = ino.ilock.lock().lookup(b, b + 1);
        if m.state == ExtentState::Written {
            self.disk.read(m.phys, out);
        } else {
            out.fill(0);
        }
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
        let Some(ino) = self.inode(file) else {
            return Vec::new();
        };
        let size = Fs::size(self, ino);
        if off >= size {
            return Vec::new();
        }
        let end = off.saturating_add(len).min(size);
        let g = self.geo;
        let bs = g.bs as usize;
        let mut out = vec![0u8; (end - off) as usize];
        let mut blk = vec![0u8; bs];
        let mut b = off / g.bs;
        while b * g.bs < end {
            let bstart = b * g.bs;
            let idx = bstart / g.fsz;
            let slot = (b - idx * g.bpf) as usize;
            let from_cache = ino.cache.get(idx).and_then(|f| {
                let st = f.mem();
                let up = st
                    .ifs
                    .as_ref()
                    .is_some_and(|i| i.uptodate & (1 << slot) != 0);
                up.then(|| blk.copy_from_slice(&st.data[slot * bs..(slot + 1) * bs]))
            });
            if from_cache.is_none() {
                self.mapped_block(ino, b, &mut blk);
            }
            let lo = bstart.max(off);
            let hi = (bstart + g.bs).min(end);
            out[(lo - off) as usize..(hi - off) as usize]
                .copy_from_slice(&blk[(lo - bstart) as usize..(hi - bstart) as usize]);
            b += 1;
        }
        out
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
        ino.cache.for_each(f0, f1, |f| {
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
        });
        out
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
        let mut v: Vec<Violation> = self.violations.lock().clone();
        let mut push = |name: &'static str, detail: String| v.push(Violation { name, detail });
        let g = self.geo;
        let bs = g.bs as usize;
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
        let mut delalloc_total = 0;
        let mut mapped_total = 0;
        let mut owners: Vec<(u64, u64, usize, u64)> = Vec::new();
        let mut blk = vec![0u8; bs];
        for ino in &self.inodes {
            let size = Fs::size(self, ino);
            // Extent-side facts, and which blocks are cached dirty.
            let exts: Vec<(u64, super::extent_map::Extent)> =
                ino.ilock.lock().extents().map(|(s, e)| (s, *e)).collect();
            let mut dirty_blocks: HashMap<u64, bool> = HashMap::new();
            for f in ino.cache.range(0, u64::MAX) {
                let fb0 = f.index * g.bpf;
                let st = f.mem();
                let dirty = st.dirty();
                for i in 0..g.bpf {
                    dirty_blocks.insert(fb0 + i, dirty & (1 << i) != 0);
                }
                // past-eof-zero
                let fstart = f.index * g.fsz;
                if fstart + g.fsz > size {
                    let from = size.saturating_sub(fstart) as usize;
                    if st.data[from..].iter().any(|&x| x != 0) {
                        push(
                            "past-eof-zero",
                            format!(
                                "file {} folio {} has non-zero bytes past EOF {size}",
                                ino.idx, f.index
                            ),
                        );
                    }
                }
                drop(st);
                self.check_clean_blocks(ino, &f, &mut blk, &mut push);
            }
            for (s, e) in &exts {
                match e.state {
                    ExtentState::Delalloc => {
                        delalloc_total += e.len;
                        for b in *s..s + e.len {
                            if dirty_blocks.get(&b) != Some(&true) {
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
                    _ => {
                        mapped_total += e.len;
                        owners.push((e.phys, e.len, ino.idx, *s));
                    }
                }
            }
            let ilock = ino.ilock.lock();
            for (&b, &d) in &dirty_blocks {
                if d && ilock.state_of(b) == ExtentState::Hole {
                    push(
                        "dirty-over-hole",
                        format!("file {} block {b} is dirty over a hole", ino.idx),
                    );
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
        v
    }
}

impl Fs {
    /// `clean-cache-matches-disk` for one folio.
    fn check_clean_blocks(
        &self,
        ino: &Inode,
        f: &Folio,
        blk: &mut [u8],
        push: &mut impl FnMut(&'static str, String),
    ) {
        let g = self.geo;
        let bs = g.bs as usize;
        let fb0 = f.index * g.bpf;
        let st = f.mem();
        let Some(ifs) = st.ifs.as_ref() else { return };
        for i in 0..g.bpf as usize {
            let bit = 1u64 << i;
            if ifs.dirty & bit != 0
                || ifs.uptodate & bit == 0
                || (st.writeback && st.wb_mask & bit != 0)
            {
                continue;
            }
            self.mapped_block(ino, fb0 + i as u64, blk);
            if st.data[i * bs..(i + 1) * bs] != *blk {
                push(
                    "clean-cache-matches-disk",
                    format!(
                        "file {} block {}: clean cached data differs from disk",
                        ino.idx,
                        fb0 + i as u64
                    ),
                );
            }
        }
    }
}
