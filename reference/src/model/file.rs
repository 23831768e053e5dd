//! One file of the reference model: its size, per-block state and cached folios.
//!
//! Owns: `size`, a `Vec<Block>` indexed by file block number (grown lazily up to the highest block
//! ever changed; blocks past its end are untouched holes), the page cache of the file as a map
//! from folio index to the folio's bytes (with a digest per block, forgotten whenever the bytes
//! may change), and the recorded writeback error.
//!
//! Invariants (SPEC.md; checked by `check_invariants`):
//! - a block is cached exactly when its folio is in `folios`; `dirty` and `writeback` are only
//!   ever set on cached blocks;
//! - `phys` is `Some` exactly for `Unwritten` and `Written` blocks;
//! - a dirty block is never a `Hole`; a `Delalloc` block is always dirty.

use crate::errno::Errno;
use crate::state::{BlockObs, CacheState, ExtentState};
use std::collections::BTreeMap;

/// The model's state of one file block (the cache state lives in [`File::folios`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Block {
    /// Extent state.
    pub extent: ExtentState,
    /// Physical block, for `Unwritten` and `Written`.
    pub phys: Option<u64>,
    /// Modified in the cache since last written back (journaled data: logged, not committed).
    pub dirty: bool,
    /// Part of an in-flight IO.
    pub writeback: bool,
}

impl Block {
    /// A block nothing ever touched.
    pub const HOLE: Block = Block {
        extent: ExtentState::Hole,
        phys: None,
        dirty: false,
        writeback: false,
    };
}

impl Default for Block {
    fn default() -> Self {
        Block::HOLE
    }
}

/// A cached folio's bytes and the digest of each of its blocks, computed on first request.
///
/// Invariant: a known digest is [`crate::block_digest`] of the block's current bytes. Writing
/// needs `&mut [u8]`, and handing that out forgets every digest, so none can go stale.
#[derive(Clone, Debug)]
pub(crate) struct FolioBytes {
    bytes: super::buffers::Bytes,
    digests: Box<[std::cell::Cell<Option<u32>>]>,
}

impl FolioBytes {
    /// A folio of `bytes` made of blocks of `bs` bytes.
    pub fn new(bytes: super::buffers::Bytes, bs: usize) -> FolioBytes {
        let n = bytes.len() / bs.max(1);
        FolioBytes {
            bytes,
            digests: vec![std::cell::Cell::new(None); n].into_boxed_slice(),
        }
    }

    /// Records `d` as the digest of block `i`, whose bytes were just copied from where that is
    /// their digest (a disk block, zeros); debug builds check it.
    pub fn know(&self, i: usize, d: u32) {
        debug_assert_eq!(d, {
            let bs = self.bytes.len() / self.digests.len();
            crate::block_digest(&self.bytes[i * bs..(i + 1) * bs])
        });
        if let Some(cell) = self.digests.get(i) {
            cell.set(Some(d));
        }
    }

    /// The digest of block `i` of the folio.
    pub fn digest(&self, i: usize) -> u32 {
        let cell = &self.digests[i];
        if let Some(d) = cell.get() {
            return d;
        }
        let bs = self.bytes.len() / self.digests.len();
        let d = crate::block_digest(&self.bytes[i * bs..(i + 1) * bs]);
        cell.set(Some(d));
        d
    }
}

impl FolioBytes {
    /// Bytes `[lo, hi)` for writing; only the digests of the blocks they touch are forgotten.
    pub fn write_range(&mut self, lo: usize, hi: usize) -> &mut [u8] {
        let bs = self.bytes.len() / self.digests.len().max(1);
        if hi > lo {
            for d in &self.digests[lo / bs..hi.div_ceil(bs)] {
                d.set(None);
            }
        }
        &mut self.bytes[lo..hi]
    }
}

impl std::ops::Deref for FolioBytes {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &self.bytes
    }
}

impl std::ops::DerefMut for FolioBytes {
    fn deref_mut(&mut self) -> &mut [u8] {
        for d in self.digests.iter() {
            d.set(None);
        }
        &mut self.bytes
    }
}

/// One file.
#[derive(Clone, Debug)]
pub(crate) struct File {
    /// Journaled data (no delalloc; dirty means logged in the running transaction).
    pub jdata: bool,
    /// File size in bytes.
    pub size: u64,
    /// Per-block state; index = file block number. Blocks past the end are [`Block::HOLE`].
    blocks: Vec<Block>,
    /// The page cache: folio index to the folio's bytes (always one folio long).
    pub folios: Folios,
    /// The recorded writeback error, reported and cleared by fsync.
    pub wb_error: Option<Errno>,
    /// The size on stable storage (XFS `di_size`, SPEC.md "Durability"): what a crash leaves.
    pub disk_size: u64,
    /// What the last successful fsync promised and nothing has changed since: runs
    /// `(first block, end block, physical block of the first)` of `Written` blocks, mapped
    /// contiguously, in block order (SPEC.md `fsync-durable`). Runs, not blocks, so that an fsync
    /// of a large file costs one entry per extent.
    pub promise: Vec<(u64, u64, u64)>,
    /// The size that fsync promised (lowered by truncates since).
    pub promised_size: u64,
    /// Blocks whose state changed since the oracle last asked: every [`File::block_mut`]
    /// notes its block ([`crate::model::RefFs::take_changed`]).
    changed: Changed,
}

/// Changed ranges `[lo, hi)`, in whatever unit their keeper uses, kept short: a range touching
/// the last one noted extends it (changes come in runs), and past [`Changed::LIMIT`] ranges
/// they are replaced by the one range covering them all (more to compare, nothing missed).
#[derive(Clone, Debug, Default)]
pub(crate) struct Changed(Vec<(u64, u64)>);

impl Changed {
    const LIMIT: usize = 48;

    /// Notes `[lo, hi)`. Inlined: every block a step mutates is noted, and the usual note
    /// extends the last range.
    #[inline]
    pub fn note(&mut self, lo: u64, hi: u64) {
        if hi <= lo {
            return;
        }
        if let Some(r) = self.0.last_mut().filter(|r| lo <= r.1 && r.0 <= hi) {
            r.0 = r.0.min(lo);
            r.1 = r.1.max(hi);
        } else {
            self.note_apart(lo, hi);
        }
    }

    /// [`Changed::note`] of a range apart from the last one.
    #[cold]
    fn note_apart(&mut self, lo: u64, hi: u64) {
        if self.0.len() == Self::LIMIT {
            let lo = self.0.iter().fold(lo, |m, r| m.min(r.0));
            let hi = self.0.iter().fold(hi, |m, r| m.max(r.1));
            self.0 = vec![(lo, hi)];
        } else {
            self.0.push((lo, hi));
        }
    }

    /// Calls `f` with each range noted since the last take, forgotten.
    pub fn take(&mut self, f: impl FnMut((u64, u64))) {
        self.0.drain(..).for_each(f);
    }
}

/// A file's page cache: folio index to the folio's bytes. Mutation is only through the methods
/// below, and each notes the folio (in folio indices) in the cache's own log, so no change of
/// a cached byte or of what is cached goes unnoticed by the oracle.
#[derive(Clone, Debug, Default)]
pub(crate) struct Folios {
    map: BTreeMap<u64, FolioBytes>,
    changed: Changed,
}

impl Folios {
    /// The folio at `k`.
    pub fn get(&self, k: &u64) -> Option<&FolioBytes> {
        self.map.get(k)
    }

    /// The folio at `k`, for writing.
    pub fn get_mut(&mut self, k: &u64) -> Option<&mut FolioBytes> {
        let f = self.map.get_mut(k)?;
        self.changed.note(*k, k.saturating_add(1));
        Some(f)
    }

    /// Caches `v` at `k`.
    pub fn insert(&mut self, k: u64, v: FolioBytes) {
        self.changed.note(k, k.saturating_add(1));
        self.map.insert(k, v);
    }

    /// Drops the folio at `k`.
    pub fn remove(&mut self, k: &u64) {
        if self.map.remove(k).is_some() {
            self.changed.note(*k, k.saturating_add(1));
        }
    }

    /// Drops every folio.
    pub fn clear(&mut self) {
        if let (Some((&a, _)), Some((&b, _))) =
            (self.map.first_key_value(), self.map.last_key_value())
        {
            self.changed.note(a, b.saturating_add(1));
        }
        self.map.clear();
    }

    /// Whether a folio is cached at `k`.
    pub fn contains_key(&self, k: &u64) -> bool {
        self.map.contains_key(k)
    }

    /// The cached folios in `r`, in order.
    pub fn range<R: std::ops::RangeBounds<u64>>(
        &self,
        r: R,
    ) -> std::collections::btree_map::Range<'_, u64, FolioBytes> {
        self.map.range(r)
    }

    /// The last cached folio.
    pub fn last_key_value(&self) -> Option<(&u64, &FolioBytes)> {
        self.map.last_key_value()
    }

    /// Every cached folio's index, in order.
    pub fn keys(&self) -> std::collections::btree_map::Keys<'_, u64, FolioBytes> {
        self.map.keys()
    }

    /// Every cached folio, in order.
    pub fn iter(&self) -> std::collections::btree_map::Iter<'_, u64, FolioBytes> {
        self.map.iter()
    }

    /// Calls `f` with the folio index ranges changed since the last take, forgotten.
    pub fn take_changed(&mut self, f: impl FnMut((u64, u64))) {
        self.changed.take(f)
    }
}

impl File {
    /// An empty file.
    pub fn new(jdata: bool) -> File {
        File {
            jdata,
            size: 0,
            blocks: Vec::new(),
            folios: Folios::default(),
            wb_error: None,
            disk_size: 0,
            promise: Vec::new(),
            promised_size: 0,
            changed: Changed::default(),
        }
    }

    /// Blocks `[b0, b1)` are overwritten, punched or truncated: fsync's promise on them ends.
    pub fn unpromise(&mut self, b0: u64, b1: u64) {
        if b0 >= b1 || self.promise.is_empty() {
            return;
        }
        let mut kept = Vec::with_capacity(self.promise.len() + 1);
        for &(s, e, p) in &self.promise {
            if e <= b0 || s >= b1 {
                kept.push((s, e, p));
                continue;
            }
            if s < b0 {
                kept.push((s, b0, p));
            }
            if e > b1 {
                kept.push((b1, e, p + (b1 - s)));
            }
        }
        self.promise = kept;
    }

    /// The state of block `b` (a hole past the vector).
    pub fn block(&self, b: u64) -> Block {
        usize::try_from(b)
            .ok()
            .and_then(|i| self.blocks.get(i))
            .copied()
            .unwrap_or(Block::HOLE)
    }

    /// How many blocks from `b` on (up to `end`) are [`Block::HOLE`] in the vector or past its
    /// end: one tight scan, so that observations skip the untouched stretches below the highest
    /// block in a few instructions per block instead of a full look at each.
    pub fn holes_from(&self, b: u64, end: u64) -> u64 {
        if b >= end {
            return 0;
        }
        let len = self.block_len();
        if b >= len {
            return end - b;
        }
        let stop = end.min(len);
        let n = self.blocks[b as usize..stop as usize]
            .iter()
            .take_while(|x| **x == Block::HOLE)
            .count() as u64;
        if b + n == len {
            end - b
        } else {
            n
        }
    }

    /// Mutable state of block `b`, growing the vector. Callers only pass blocks below the maximum
    /// file size (every mutating range is clipped to it first), so the growth is bounded.
    pub fn block_mut(&mut self, b: u64) -> &mut Block {
        self.changed.note(b, b.saturating_add(1));
        let i = b as usize;
        if i >= self.blocks.len() {
            self.blocks.resize(i + 1, Block::HOLE);
        }
        &mut self.blocks[i]
    }

    /// Number of entries in the vector: every block at or past it is an unmapped, clean, idle hole
    /// (cached or not, as `folios` says).
    pub fn block_len(&self) -> u64 {
        self.blocks.len() as u64
    }

    /// Drops trailing untouched entries so that loops bounded by [`File::block_len`] stay short.
    pub fn trim(&mut self) {
        while self.blocks.last() == Some(&Block::HOLE) {
            self.blocks.pop();
        }
    }

    /// Calls `f` with the block ranges changed since the last take (by [`File::block_mut`]),
    /// forgotten.
    pub fn take_changed(&mut self, f: impl FnMut((u64, u64))) {
        self.changed.take(f)
    }

    /// Records a writeback error unless one is recorded already (the first error wins).
    pub fn record_error(&mut self, e: Errno) {
        if self.wb_error.is_none() {
            self.wb_error = Some(e);
        }
    }

    /// Number of blocks in `[b0, b1)` whose state satisfies `pred`, without touching the vector
    /// past its end (those blocks are holes, counted in one step).
    pub fn count(&self, b0: u64, b1: u64, pred: impl Fn(&Block) -> bool) -> u64 {
        if b0 >= b1 {
            return 0;
        }
        let len = self.block_len();
        let mut n = (b0.min(len)..b1.min(len))
            .filter(|&b| pred(&self.blocks[b as usize]))
            .count() as u64;
        if b1 > len && pred(&Block::HOLE) {
            n += b1 - b0.max(len);
        }
        n
    }

    /// Whether folio `f` is in the cache.
    pub fn is_cached(&self, f: u64) -> bool {
        self.folios.contains_key(&f)
    }

    /// Indices of the cached folios in `[first, last]` (inclusive), in order. Cost is the number
    /// of cached folios returned, whatever the range.
    pub fn cached_in(&self, first: u64, last: u64) -> Vec<u64> {
        if first > last {
            return Vec::new();
        }
        self.folios.range(first..=last).map(|(&f, _)| f).collect()
    }

    /// Whether each folio `first / bpf ..` is cached, answered in increasing block order by
    /// walking the cache once (instead of one map lookup per block, which made whole-file
    /// observations cost a lookup per block).
    pub fn cached_walk(&self, first: u64, bpf: u64) -> impl FnMut(u64) -> bool + '_ {
        let mut next = self.next_cached_walk(first, bpf);
        move |b: u64| next(b) == Some(b / bpf)
    }

    /// [`File::cached_walk`] answering with the first cached folio at or after block `b`'s
    /// (`None`: none): where an uncached stretch ends, from the same walk, so that skipping a
    /// stretch needs no map search of its own.
    pub fn next_cached_walk(&self, first: u64, bpf: u64) -> impl FnMut(u64) -> Option<u64> + '_ {
        let mut it = self.folios.range(first / bpf..).map(|(&k, _)| k).peekable();
        move |b: u64| {
            let folio = b / bpf;
            while it.next_if(|&k| k < folio).is_some() {}
            it.peek().copied()
        }
    }

    /// Observable state of block `b` whose folio is cached or not as `cached` says.
    pub fn obs_cached(&self, b: u64, cached: bool) -> BlockObs {
        let blk = self.block(b);
        let cache = if !cached {
            CacheState::NotCached
        } else if blk.dirty {
            CacheState::Dirty
        } else {
            CacheState::Clean
        };
        BlockObs {
            extent: blk.extent,
            cache,
            writeback: blk.writeback,
        }
    }
}
