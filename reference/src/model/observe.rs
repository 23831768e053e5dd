//! Side-effect-free observation ([`Observe`]), the read steps that only look, the btree
//! corrupt/repair steps, and the invariant check.
//!
//! Nothing here changes file or cache state: observation never instantiates, writes back or
//! waits. `repair` is here because it is the one op that is an invariant check (SPEC.md: repair
//! rebuilds the free-space tree from the extent maps and must find it equal).

use super::RefFs;
use crate::errno::Errno;
use crate::geometry::Geometry;
use crate::op::FileId;
use crate::state::{BlockObs, Counters, ExtentState, Observe, Violation};

impl RefFs {
    /// Fault injection for oracle tests: overwrites the cached byte of `file` at `off` with
    /// `byte`, changing nothing else (as a stray store would). Returns whether the byte's folio
    /// was cached.
    pub fn scribble(&mut self, file: FileId, off: u64, byte: u8) -> bool {
        let Some(fi) = self.fid(file) else {
            return false;
        };
        let fsz = self.fsz();
        match self.files[fi].folios.get_mut(&(off / fsz)) {
            Some(data) => {
                data[(off % fsz) as usize] = byte;
                true
            }
            None => false,
        }
    }

    /// Fault injection for oracle tests: a stray disk write: overwrites the first byte of the
    /// physical block that block `block` of `file` maps, through the device's writer. Returns
    /// whether the block was `Written`.
    pub fn scribble_disk(&mut self, file: FileId, block: u64, byte: u8) -> bool {
        let Some(fi) = self.fid(file) else {
            return false;
        };
        let blk = self.files[fi].block(block);
        let (ExtentState::Written, Some(p)) = (blk.extent, blk.phys) else {
            return false;
        };
        let mut buf = vec![0; self.bs() as usize];
        self.space.read_block(p, &mut buf);
        buf[0] = byte;
        self.space.write_block(p, &buf);
        true
    }

    /// Fault injection for oracle tests: a stray state change: block `block` of `file`, if
    /// `Written`, becomes `Unwritten`. Returns whether it was `Written`.
    pub fn scribble_block(&mut self, file: FileId, block: u64) -> bool {
        let Some(fi) = self.fid(file) else {
            return false;
        };
        if self.files[fi].block(block).extent != ExtentState::Written {
            return false;
        }
        self.files[fi].block_mut(block).extent = ExtentState::Unwritten;
        true
    }

    /// The bytes block `b` of file `fi` holds on disk as a read through the mapping sees them:
    /// `Written` blocks from their physical block, everything else zeros.
    fn disk_block(&self, fi: usize, b: u64, buf: &mut [u8]) {
        let blk = self.files[fi].block(b);
        match (blk.extent, blk.phys) {
            (ExtentState::Written, Some(p)) => self.space.read_block(p, buf),
            _ => buf.fill(0),
        }
    }

    /// Step (the copy-out of `Read` and `MmapRead`): the logical contents of `[off, off+len)`
    /// clipped to EOF, from the cache where cached and through the mapping elsewhere. Changes
    /// nothing (the ops instantiate first).
    pub fn read_cached(&self, file: FileId, off: u64, len: u64) -> Vec<u8> {
        let mut out = Vec::new();
        self.visit(file, off, len, &mut |s| out.extend_from_slice(s));
        out
    }

    /// Step (the copy-out of `DirectRead`): the disk's view of `[off, off+len)` clipped to EOF:
    /// `Written` blocks from disk, all others zeros, whatever the cache holds.
    pub fn read_disk(&self, file: FileId, off: u64, len: u64) -> Vec<u8> {
        let Some(fi) = self.fid(file) else {
            return Vec::new();
        };
        let size = self.files[fi].size;
        if off >= size {
            return Vec::new();
        }
        let end = off + len.min(size - off);
        let bs = self.bs();
        let mut out = Vec::with_capacity((end - off) as usize);
        let mut block = vec![0u8; bs as usize];
        let mut pos = off;
        while pos < end {
            let b = pos / bs;
            let stop = end.min((b + 1) * bs);
            self.disk_block(fi, b, &mut block);
            out.extend_from_slice(&block[(pos - b * bs) as usize..(stop - b * bs) as usize]);
            pos = stop;
        }
        out
    }

    /// Whether any IO completed (by `CompleteIo`, a wait for writeback, a crash's landing) since
    /// the last call, forgotten: the oracle then runs this model's whole self-check, which
    /// checks what completions promise (checksums, durability).
    pub fn take_completed(&mut self) -> bool {
        std::mem::take(&mut self.completed_io)
    }

    /// Appends to `out`, as `(file, first block, end block)`, every block range whose observable
    /// state may have changed since the last call, and forgets them: the blocks whose state
    /// was changed ([`super::file::File::block_mut`]), the folios whose bytes or presence
    /// changed, and the `Written` blocks mapping a physical block whose bytes changed. Nothing
    /// else of a file is observable but its size and error, which the oracle compares after
    /// every op.
    pub fn take_changed(&mut self, out: &mut Vec<(FileId, u64, u64)>) {
        let bpf = self.bpf();
        let from = out.len();
        for (fi, f) in self.files.iter_mut().enumerate() {
            let file = fi as FileId;
            f.take_changed(|(lo, hi)| out.push((file, lo, hi)));
            f.folios.take_changed(|(lo, hi)| {
                out.push((file, lo.saturating_mul(bpf), hi.saturating_mul(bpf)))
            });
        }
        let [mut disk, mut covered] = std::mem::take(&mut self.changed_scratch);
        disk.clear();
        covered.clear();
        self.space.take_disk_changed(&mut disk);
        self.map_disk_changes(from, &disk, &mut covered, out);
        self.changed_scratch = [disk, covered];
    }

    /// Unless every physical block in `disk` (changed on disk this op) is shown by one of the
    /// changed blocks `out[from..]`, the blocks of every file that show a physical block in
    /// `disk`, appended to `out` (some may be among the changed ones already: the gathering
    /// merges them); `covered` is an empty buffer (for the physical runs the changed blocks
    /// show).
    fn map_disk_changes(
        &self,
        from: usize,
        disk: &[(u64, u64)],
        covered: &mut Vec<(u64, u64)>,
        out: &mut Vec<(FileId, u64, u64)>,
    ) {
        if disk.is_empty() {
            return;
        }
        // A disk write is almost always of blocks whose own state changed with it (a
        // completion, a journal commit): those are compared already. Only a physical block no
        // changed block maps needs the files searched for the blocks that show it. The changed
        // blocks' physical blocks are gathered as runs (consecutive file blocks are usually
        // consecutive on disk), so the check costs a step per block and a search per run.
        for &(file, lo, hi) in &out[from..] {
            let f = &self.files[file as usize];
            for b in lo..hi.min(f.block_len()) {
                let blk = f.block(b);
                if let (ExtentState::Written, Some(p)) = (blk.extent, blk.phys) {
                    match covered.last_mut() {
                        Some((_, e)) if *e == p => *e += 1,
                        _ => covered.push((p, p + 1)),
                    }
                }
            }
        }
        covered.sort_unstable();
        let mut merged = 0;
        for k in 0..covered.len() {
            let (lo, hi) = covered[k];
            match covered[..merged].last_mut() {
                Some((_, e)) if lo <= *e => *e = (*e).max(hi),
                _ => {
                    covered[merged] = (lo, hi);
                    merged += 1;
                }
            }
        }
        covered.truncate(merged);
        let uncovered = disk.iter().any(|&(lo, hi)| {
            let mut p = lo;
            while p < hi {
                // The run holding `p`, if any: covered up to its end.
                let i = covered.partition_point(|&(start, _)| start <= p);
                match i.checked_sub(1).map(|i| covered[i]) {
                    Some((_, end)) if p < end => p = end,
                    _ => return true,
                }
            }
            false
        });
        if !uncovered {
            return;
        }
        let (dlo, dhi) = disk
            .iter()
            .fold((u64::MAX, 0), |(a, b), r| (a.min(r.0), b.max(r.1)));
        for (fi, f) in self.files.iter().enumerate() {
            let file = fi as FileId;
            for b in 0..f.block_len() {
                let blk = f.block(b);
                let hit = blk.extent == ExtentState::Written
                    && blk.phys.is_some_and(|p| {
                        (dlo..dhi).contains(&p) && disk.iter().any(|&(lo, hi)| lo <= p && p < hi)
                    });
                if hit {
                    match out.last_mut() {
                        Some((g, _, e)) if *g == file && *e == b => *e += 1,
                        _ => out.push((file, b, b + 1)),
                    }
                }
            }
        }
    }

    /// The violations seen as they happened (a checksum mismatch at IO completion, a repair
    /// that found a different tree), which every [`Observe::check_invariants`] reports first.
    pub fn found(&self) -> &[Violation] {
        &self.found
    }

    /// Step (`CorruptAllocBtree`): marks the free-space btree root's CRC bad.
    pub fn corrupt(&mut self) {
        self.space.corrupt = true;
    }

    /// Step (`RepairAllocBtree`): rebuilds the free-space tree from every file's extent map and
    /// compares it with the allocator's (a leaked or doubly owned block is recorded as a
    /// violation), then clears the corruption.
    pub fn repair(&mut self) {
        let found = self.physical_ownership();
        self.found.extend(found);
        self.space.corrupt = false;
    }

    /// Checks that the physical blocks mapped by the files and the allocator's pool partition the
    /// device: no block mapped twice or mapped while in the pool, none lost.
    fn physical_ownership(&self) -> Vec<Violation> {
        // The mapped blocks as runs of consecutive physical blocks: when no run touches the pool
        // or the device's end and no two overlap, nothing is doubly owned and the count is all
        // there is to check; otherwise the per-block walk below names every offending block.
        let mut runs: Vec<(u64, u64)> = Vec::new();
        for f in &self.files {
            for b in 0..f.block_len() {
                let Some(p) = f.block(b).phys else { continue };
                match runs.last_mut() {
                    Some((s, n)) if *s + *n == p => *n += 1,
                    _ => runs.push((p, 1)),
                }
            }
        }
        runs.sort_unstable();
        let disjoint = runs.windows(2).all(|w| w[0].0 + w[0].1 <= w[1].0);
        if disjoint && !runs.iter().any(|&(p, n)| self.space.pool_overlaps(p, n)) {
            let mapped: u64 = runs.iter().map(|&(_, n)| n).sum();
            return self.ownership_count(mapped);
        }
        let mut v = Vec::new();
        // (physical, file, block) for every mapped block; sorted, a physical block mapped twice
        // shows up as two neighbours.
        let mut owned: Vec<(u64, usize, u64)> = Vec::new();
        for (fi, f) in self.files.iter().enumerate() {
            for b in 0..f.block_len() {
                let Some(p) = f.block(b).phys else { continue };
                owned.push((p, fi, b));
                if self.space.is_pool(p) || p >= self.space.capacity {
                    v.push(Violation {
                        name: "double-owned",
                        detail: format!("physical block {p} of file {fi} block {b} is also free (or past the device)"),
                    });
                }
            }
        }
        owned.sort_unstable();
        let mut distinct = owned.len() as u64;
        for w in owned.windows(2) {
            let ((p, of, ob), (q, fi, b)) = (w[0], w[1]);
            if p == q {
                distinct -= 1;
                v.push(Violation {
                    name: "double-owned",
                    detail: format!(
                        "physical block {p} mapped by file {of} block {ob} and file {fi} block {b}"
                    ),
                });
            }
        }
        v.extend(self.ownership_count(distinct));
        v
    }

    /// `allocated-equals-mapped` for `distinct` mapped physical blocks: with the pool they
    /// make up the device exactly.
    fn ownership_count(&self, distinct: u64) -> Vec<Violation> {
        if distinct + self.space.pool_len() == self.space.capacity {
            return Vec::new();
        }
        vec![Violation {
            name: "allocated-equals-mapped",
            detail: format!(
                "{distinct} blocks mapped + {} in the free pool != capacity {} (leaked or lost blocks)",
                self.space.pool_len(),
                self.space.capacity
            ),
        }]
    }
}

impl Observe for RefFs {
    fn geometry(&self) -> Geometry {
        self.geo
    }

    fn file_count(&self) -> usize {
        self.files.len()
    }

    fn size(&self, file: FileId) -> u64 {
        self.fid(file).map_or(0, |fi| self.files[fi].size)
    }

    fn peek(&self, file: FileId, off: u64, len: u64) -> Vec<u8> {
        self.read_cached(file, off, len)
    }

    /// Cached folios lend their bytes; elsewhere each block comes through the mapping (`Written`
    /// blocks from disk, everything else zeros).
    fn visit(&self, file: FileId, off: u64, len: u64, out: &mut dyn FnMut(&[u8])) {
        static ZEROS: [u8; 1 << 16] = [0; 1 << 16];
        let Some(fi) = self.fid(file) else { return };
        let f = &self.files[fi];
        if off >= f.size {
            return;
        }
        let end = off + len.min(f.size - off);
        let (bs, fsz) = (self.bs(), self.fsz());
        let mut pos = off;
        while pos < end {
            let folio = pos / fsz;
            if let Some(data) = f.folios.get(&folio) {
                let stop = end.min((folio + 1) * fsz);
                out(&data[(pos - folio * fsz) as usize..(stop - folio * fsz) as usize]);
                pos = stop;
                continue;
            }
            let b = pos / bs;
            let stop = end.min((b + 1) * bs);
            let (lo, hi) = ((pos - b * bs) as usize, (stop - b * bs) as usize);
            let blk = f.block(b);
            match (blk.extent, blk.phys) {
                (ExtentState::Written, Some(p)) => match self.space.block(p) {
                    Some(data) => out(&data[lo..hi]),
                    // Never written since allocated: the stale bytes show (SPEC.md
                    // "Durability"; `no-stale-exposure` reports it too).
                    None => out(&vec![crate::pattern::stale_byte(p); hi - lo]),
                },
                _ => out(&ZEROS[lo..hi]),
            }
            pos = stop;
        }
    }

    fn block_span(&self, file: FileId) -> u64 {
        let Some(fi) = self.fid(file) else { return 0 };
        let f = &self.files[fi];
        let mut span = f.block_len();
        while span > 0 && f.block(span - 1) == super::file::Block::HOLE {
            span -= 1;
        }
        // Every block of a cached folio is Clean or Dirty, so not untouched.
        if let Some((&last, _)) = f.folios.last_key_value() {
            span = span.max((last + 1) * self.bpf());
        }
        span
    }

    /// Returns exactly `count` entries, unless `count` reaches more than 2^20 blocks past the
    /// last block that can ever be touched (the one holding the maximum file size): such a request
    /// is cut there, so that an absurd `count` cannot allocate absurd memory. Blocks past that
    /// point are always [`BlockObs::UNTOUCHED`].
    fn blocks(&self, file: FileId, first: u64, count: u64) -> Vec<BlockObs> {
        let Some(fi) = self.fid(file) else {
            return Vec::new();
        };
        let limit = self
            .geo
            .blocks_for(self.max_size())
            .max(self.block_span(file))
            .max(first);
        let end = first
            .saturating_add(count)
            .min(limit.saturating_add(1 << 20));
        let f = &self.files[fi];
        let mut cached = f.cached_walk(first, self.bpf());
        (first..end).map(|b| f.obs_cached(b, cached(b))).collect()
    }

    /// One walk over the block vector and the cached folios of the range; the untouched blocks
    /// past the vector's end are one run.
    fn block_runs(&self, file: FileId, first: u64, end: u64, out: &mut Vec<(u64, BlockObs)>) {
        if end <= first {
            return;
        }
        let mut add = |n: u64, o: BlockObs| {
            if let Some((k, last)) = out.last_mut() {
                if *last == o {
                    *k += n;
                    return;
                }
            }
            out.push((n, o));
        };
        let Some(fi) = self.fid(file) else {
            add(end - first, BlockObs::UNTOUCHED);
            return;
        };
        let f = &self.files[fi];
        let bpf = self.bpf();
        // Past both the vector and the last cached folio every block is untouched.
        let touched = f
            .folios
            .last_key_value()
            .map_or(0, |(&k, _)| (k + 1) * bpf)
            .max(f.block_len())
            .clamp(first, end);
        let mut next_cached = f.next_cached_walk(first, bpf);
        let mut b = first;
        while b < touched {
            let next = next_cached(b);
            if next == Some(b / bpf) {
                add(1, f.obs_cached(b, true));
                b += 1;
                continue;
            }
            // Not cached up to the next cached folio (the walk's answer for the stretch): a
            // stretch of holes is one run, other blocks are looked at one by one.
            let stretch_end = next.map_or(touched, |k| (k * bpf).clamp(b, touched));
            while b < stretch_end {
                let holes = f.holes_from(b, stretch_end);
                if holes > 0 {
                    add(holes, BlockObs::UNTOUCHED);
                    b += holes;
                } else {
                    add(1, f.obs_cached(b, false));
                    b += 1;
                }
            }
        }
        if end > touched {
            add(end - touched, BlockObs::UNTOUCHED);
        }
    }

    /// Cached blocks' digests come from their folio, written blocks' from the disk map (both
    /// kept by the model), anything else reads as zeros; blocks reaching past EOF get `None`.
    fn digests(&self, file: FileId, first: u64, end: u64, out: &mut Vec<Option<u32>>) {
        let Some(fi) = self.fid(file) else {
            out.extend((first..end).map(|_| None));
            return;
        };
        let f = &self.files[fi];
        let (bs, bpf) = (self.bs(), self.bpf());
        // The cached folios from `first` on, walked once alongside the blocks.
        let mut folios = f.folios.range(first / bpf..).peekable();
        // Blocks wholly below EOF get digests, the rest `None`.
        let whole = (f.size / bs).min(end).max(first);
        let mut b = first;
        while b < whole {
            let folio = b / bpf;
            while folios.next_if(|(&k, _)| k < folio).is_some() {}
            let d = if let Some((_, data)) = folios.peek().filter(|(&k, _)| k == folio) {
                data.digest((b % bpf) as usize)
            } else {
                let blk = f.block(b);
                if blk == super::file::Block::HOLE {
                    // A stretch of uncached holes, up to the next cached folio, reads as zeros:
                    // one step for it, so that a large sparse file costs its data, not its size.
                    let next_cached = folios
                        .peek()
                        .map_or(whole, |(&k, _)| (k * bpf).clamp(b + 1, whole));
                    let n = f.holes_from(b, next_cached).clamp(1, whole - b);
                    out.extend(std::iter::repeat_n(Some(self.zero_digest), n as usize));
                    b += n;
                    continue;
                }
                match (blk.extent, blk.phys) {
                    (ExtentState::Written, Some(p)) => self.space.digest(p).unwrap_or_else(|| {
                        crate::block_digest(&vec![crate::pattern::stale_byte(p); bs as usize])
                    }),
                    _ => self.zero_digest,
                }
            };
            out.push(Some(d));
            b += 1;
        }
        out.extend((whole..end).map(|_| None));
    }

    fn counters(&self) -> Counters {
        Counters {
            free: self.space.free,
            reserved: self.space.reserved,
            allocated: self.space.allocated,
            inflight_ios: self.inflight.len() as u64,
        }
    }

    fn wb_error(&self, file: FileId) -> Option<Errno> {
        self.fid(file).and_then(|fi| self.files[fi].wb_error)
    }

    fn btree_corrupt(&self) -> bool {
        self.space.corrupt
    }

    fn check_invariants(&self) -> Vec<Violation> {
        let mut v = self.found.clone();
        let s = &self.space;
        if s.free + s.reserved + s.allocated != s.capacity {
            v.push(Violation {
                name: "counters-sum",
                detail: format!(
                    "free {} + reserved {} + allocated {} != capacity {}",
                    s.free, s.reserved, s.allocated, s.capacity
                ),
            });
        }
        let (bpf, fsz) = (self.bpf(), self.fsz());
        let mut delalloc = 0u64;
        let mut mapped = 0u64;
        let zero_digest = self.zero_digest;
        for (fi, f) in self.files.iter().enumerate() {
            let span = self.block_span(fi as FileId);
            let mut next_cached = f.next_cached_walk(0, bpf);
            let mut b = 0;
            while b < span {
                let blk = f.block(b);
                let next = next_cached(b);
                let cached = next == Some(b / bpf);
                // An uncached hole breaks no per-block rule: skip the whole stretch of them up to
                // the next cached folio.
                if blk == super::file::Block::HOLE && !cached {
                    let stretch_end = next.map_or(span, |k| (k * bpf).clamp(b + 1, span));
                    b += f.holes_from(b, stretch_end).max(1);
                    continue;
                }
                match blk.extent {
                    ExtentState::Delalloc => delalloc += 1,
                    ExtentState::Unwritten | ExtentState::Written => mapped += 1,
                    ExtentState::Hole => {}
                }
                if blk.extent.is_allocated() != blk.phys.is_some() {
                    v.push(Violation {
                        name: "allocated-equals-mapped",
                        detail: format!(
                            "file {fi} block {b}: {:?} with physical block {:?}",
                            blk.extent, blk.phys
                        ),
                    });
                }
                if let (ExtentState::Written, Some(p)) = (blk.extent, blk.phys) {
                    if s.digest(p).is_none() {
                        v.push(Violation {
                            name: "no-stale-exposure",
                            detail: format!(
                                "file {fi} block {b} is written but physical block {p} holds \
                                 stale bytes (no data reached it since it was allocated)"
                            ),
                        });
                    }
                }
                if blk.dirty && blk.extent == ExtentState::Hole {
                    v.push(Violation {
                        name: "dirty-over-hole",
                        detail: format!("file {fi} block {b} is dirty over a hole"),
                    });
                }
                if blk.extent == ExtentState::Delalloc && !(cached && blk.dirty) {
                    v.push(Violation {
                        name: "delalloc-not-dirty",
                        detail: format!("file {fi} block {b} is delalloc but not cached and dirty"),
                    });
                }
                if (blk.dirty || blk.writeback) && !cached {
                    v.push(Violation {
                        name: "dirty-not-cached",
                        detail: format!(
                            "file {fi} block {b}: dirty {} writeback {} but not cached",
                            blk.dirty, blk.writeback
                        ),
                    });
                }
                if f.jdata && (blk.writeback || blk.extent == ExtentState::Delalloc) {
                    v.push(Violation {
                        name: "jdata-no-delalloc",
                        detail: format!(
                            "file {fi} block {b} of a journaled-data file is {:?} / writeback {}",
                            blk.extent, blk.writeback
                        ),
                    });
                }
                if cached && !blk.dirty && !blk.writeback {
                    if let Some(data) = f.folios.get(&(b / bpf)) {
                        // The disk's digest against the folio's where the disk holds the
                        // block; the bytes themselves against stale bytes or zeros.
                        let cached = &data[self.block_slice(b)];
                        let same = match (blk.extent, blk.phys) {
                            (ExtentState::Written, Some(p)) => match s.digest(p) {
                                Some(d) => d == data.digest((b % bpf) as usize),
                                None => {
                                    let stale = crate::pattern::stale_byte(p);
                                    cached.iter().all(|&x| x == stale)
                                }
                            },
                            // Zeros: compared through the folio's digest.
                            _ => data.digest((b % bpf) as usize) == zero_digest,
                        };
                        if !same {
                            v.push(Violation {
                                name: "clean-cache-matches-disk",
                                detail: format!(
                                    "file {fi} block {b}: clean cached bytes differ from disk"
                                ),
                            });
                        }
                    }
                }
                b += 1;
            }
            v.extend(self.fsync_promise_broken(fi));
            for (&folio, data) in f.folios.iter() {
                let start = folio * fsz;
                let from = f.size.max(start).min(start + fsz);
                let tail = &data[(from - start) as usize..];
                // Compare against zeros first (a memcmp); locate the byte only when it fails.
                if tail == &zeros_of(tail.len())[..] {
                    continue;
                }
                if let Some(i) = tail.iter().position(|&x| x != 0) {
                    v.push(Violation {
                        name: "past-eof-zero",
                        detail: format!(
                            "file {fi}: non-zero cached byte at {:#x}, past EOF {:#x}",
                            from + i as u64,
                            f.size
                        ),
                    });
                }
            }
        }
        if delalloc != s.reserved {
            v.push(Violation {
                name: "reserved-equals-delalloc",
                detail: format!("reserved {} != {delalloc} delalloc blocks", s.reserved),
            });
        }
        if mapped != s.allocated {
            v.push(Violation {
                name: "allocated-equals-mapped",
                detail: format!(
                    "allocated {} != {mapped} unwritten/written blocks",
                    s.allocated
                ),
            });
        }
        v.extend(self.physical_ownership());
        let in_io: u64 = self.inflight.iter().map(|io| io.blocks.len() as u64).sum();
        let wb: u64 = self
            .files
            .iter()
            .map(|f| f.count(0, f.block_len(), |b| b.writeback))
            .sum();
        if in_io != wb {
            v.push(Violation {
                name: "writeback-matches-io",
                detail: format!("{wb} blocks under writeback but {in_io} blocks in in-flight IOs"),
            });
        }
        v
    }
}

impl RefFs {
    /// `fsync-durable` for file `fi`: every block the last successful fsync promised (and
    /// nothing changed since) is still `Written` at the same physical block, which still holds
    /// data, and the size on disk covers the promised size (SPEC.md "Durability"). One violation
    /// per promised run at most.
    fn fsync_promise_broken(&self, fi: usize) -> Vec<Violation> {
        let f = &self.files[fi];
        let mut v = Vec::new();
        if f.disk_size < f.promised_size {
            v.push(Violation {
                name: "fsync-durable",
                detail: format!(
                    "file {fi}: size on disk {:#x} is below the size fsync made durable {:#x}",
                    f.disk_size, f.promised_size
                ),
            });
        }
        for &(s, e, p0) in &f.promise {
            for b in s..e {
                let blk = f.block(b);
                let here = blk.phys.is_some_and(|p| self.space.block(p).is_some());
                if blk.extent != ExtentState::Written || blk.phys != Some(p0 + (b - s)) || !here {
                    v.push(Violation {
                        name: "fsync-durable",
                        detail: format!(
                            "file {fi} block {b}: the data an fsync made durable is gone ({:?}, \
                             physical {:?}, promised {})",
                            blk.extent,
                            blk.phys,
                            p0 + (b - s)
                        ),
                    });
                    break;
                }
            }
        }
        v
    }
}

/// A zero buffer of at least `len` bytes (folios are at most 16 KiB; larger requests allocate).
pub(super) fn zeros_of(len: usize) -> std::borrow::Cow<'static, [u8]> {
    static ZEROS: [u8; 1 << 16] = [0; 1 << 16];
    match ZEROS.get(..len) {
        Some(z) => std::borrow::Cow::Borrowed(z),
        None => std::borrow::Cow::Owned(vec![0; len]),
    }
}

#[cfg(test)]
mod tests {
    //! The ownership check's two paths: runs when nothing is wrong, the per-block walk naming
    //! every offending block otherwise. The broken states are made by hand (no correct op makes
    //! them).

    use super::*;
    use crate::config::{Config, FileSpec, Policy};
    use crate::op::Op;

    /// Two files, each with four written blocks (physical 0-3 and 4-7), on a 16-block device.
    fn fs() -> RefFs {
        let config = Config {
            geometry: Geometry {
                block_size: 512,
                folio_pages: 1,
                capacity_blocks: 16,
                max_file_size: 1 << 16,
            },
            policy: Policy::KeepDirty,
            files: vec![FileSpec { jdata: false }, FileSpec { jdata: false }],
        };
        let mut fs = RefFs::new(&config);
        for file in 0..2 {
            fs.apply(
                1,
                &Op::Write {
                    file,
                    off: 0,
                    len: 4 * 512,
                    sync: true,
                },
            );
        }
        fs
    }

    fn names(fs: &RefFs) -> Vec<&'static str> {
        fs.physical_ownership().iter().map(|v| v.name).collect()
    }

    #[test]
    fn a_correct_state_has_no_ownership_violation() {
        let fs = fs();
        assert_eq!(
            fs.files[1].block(0).phys,
            Some(4),
            "the layout the tests assume"
        );
        assert!(names(&fs).is_empty(), "{:?}", fs.physical_ownership());
    }

    #[test]
    fn a_promised_block_whose_data_is_gone_is_named() {
        let mut fs = fs();
        fs.apply(2, &Op::Fsync { file: 0 });
        assert_eq!(
            fs.files[0].promise,
            vec![(0, 4, 0)],
            "the promise the test assumes"
        );
        assert!(fs.fsync_promise_broken(0).is_empty());
        // Block 2's data forgotten on disk, as if its write had never landed.
        fs.space.free_phys(2);
        let v = fs.fsync_promise_broken(0);
        assert_eq!(v.len(), 1, "{v:?}");
        assert!(
            v[0].name == "fsync-durable" && v[0].detail.contains("file 0 block 2"),
            "{v:?}"
        );
        // Block 3 moved elsewhere: the first broken block of the run is still the one named.
        let mut fs2 = self::fs();
        fs2.apply(2, &Op::Fsync { file: 0 });
        fs2.files[0].block_mut(3).phys = Some(9);
        let v = fs2.fsync_promise_broken(0);
        assert!(
            v.len() == 1 && v[0].detail.contains("file 0 block 3"),
            "{v:?}"
        );
    }

    #[test]
    fn a_block_mapped_twice_is_named() {
        let mut fs = fs();
        fs.files[1].block_mut(2).phys = Some(1);
        let v = fs.physical_ownership();
        assert!(
            v.iter().any(|v| v.name == "double-owned"
                && v.detail
                    .contains("physical block 1 mapped by file 0 block 1 and file 1 block 2")),
            "{v:?}"
        );
        // Physical block 6 is no longer mapped and not in the pool: lost.
        assert!(names(&fs).contains(&"allocated-equals-mapped"), "{v:?}");
    }

    #[test]
    fn a_mapped_block_in_the_pool_is_named() {
        let mut fs = fs();
        fs.files[0].block_mut(3).phys = Some(9);
        let v = fs.physical_ownership();
        assert!(
            v.iter().any(|v| v.name == "double-owned"
                && v.detail
                    .contains("physical block 9 of file 0 block 3 is also free")),
            "{v:?}"
        );
    }

    /// What [`RefFs::map_disk_changes`] adds for the disk ranges `disk` when the changed blocks
    /// are `changed`.
    fn disk_changes(
        fs: &RefFs,
        changed: &[(FileId, u64, u64)],
        disk: &[(u64, u64)],
    ) -> Vec<(FileId, u64, u64)> {
        let mut out = changed.to_vec();
        fs.map_disk_changes(0, disk, &mut Vec::new(), &mut out);
        out.split_off(changed.len())
    }

    #[test]
    fn a_disk_change_is_searched_for_only_where_no_changed_block_shows_it() {
        let fs = fs();
        // File 0's blocks 0-3 show physical 0-3, file 1's blocks 2-3 physical 6-7: two runs.
        let changed = [(0, 0, 4), (1, 2, 4)];
        // Disk changes every one of which a changed block shows: nothing to add.
        for disk in [&[(0, 4)][..], &[(1, 3), (6, 8)], &[(3, 4), (6, 7)]] {
            assert_eq!(disk_changes(&fs, &changed, disk), vec![], "{disk:?}");
        }
        // Physical 4-5 lie between the two runs: every block showing a changed physical block
        // is added, file 0's block 3 (physical 3) and file 1's blocks 0-2 (4-6).
        assert_eq!(
            disk_changes(&fs, &changed, &[(3, 7)]),
            vec![(0, 3, 4), (1, 0, 3)]
        );
        assert_eq!(
            disk_changes(&fs, &changed, &[(0, 2), (5, 6)]),
            vec![(0, 0, 2), (1, 1, 2)]
        );
        // Physical 8 is past the last run (and mapped by no file); nothing changed at all.
        assert_eq!(disk_changes(&fs, &changed, &[(7, 9)]), vec![(1, 3, 4)]);
        assert_eq!(disk_changes(&fs, &[], &[(2, 3)]), vec![(0, 2, 3)]);
    }

    #[test]
    fn a_leaked_block_is_counted() {
        let mut fs = fs();
        *fs.files[1].block_mut(3) = super::super::file::Block::HOLE;
        assert_eq!(names(&fs), vec!["allocated-equals-mapped"]);
    }
}
