//! Observable state: what the oracle compares between the two models after every op.
//!
//! Physical block numbers are private to each model; only logical state and counts are observed.

use crate::errno::Errno;
use crate::geometry::Geometry;
use crate::op::FileId;
use std::fmt;

/// Extent state of one file block.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ExtentState {
    /// Nothing allocated or reserved; reads as zeros.
    Hole,
    /// Reserved, no physical block; the data lives only in the page cache (always dirty).
    Delalloc,
    /// Allocated, reads as zeros until written back (converted at IO completion).
    Unwritten,
    /// Allocated; the disk holds the data.
    Written,
}

impl ExtentState {
    /// A one-letter code for compact maps: `.` hole, `d` delalloc, `u` unwritten, `W` written.
    pub fn code(self) -> char {
        match self {
            ExtentState::Hole => '.',
            ExtentState::Delalloc => 'd',
            ExtentState::Unwritten => 'u',
            ExtentState::Written => 'W',
        }
    }

    /// True for Unwritten and Written: a physical block backs the file block.
    pub fn is_allocated(self) -> bool {
        matches!(self, ExtentState::Unwritten | ExtentState::Written)
    }
}

/// Page-cache state of one file block.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum CacheState {
    /// The block's folio is not in the page cache.
    NotCached,
    /// Cached and equal to what a read from the mapping would return.
    Clean,
    /// Cached and modified since it was last written back (or logged, for journaled data).
    Dirty,
}

impl CacheState {
    /// A one-letter code: `-` not cached, `c` clean, `D` dirty.
    pub fn code(self) -> char {
        match self {
            CacheState::NotCached => '-',
            CacheState::Clean => 'c',
            CacheState::Dirty => 'D',
        }
    }
}

/// Everything observable about one file block.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct BlockObs {
    /// Extent state.
    pub extent: ExtentState,
    /// Cache state.
    pub cache: CacheState,
    /// The block is part of an in-flight (submitted, not completed) IO.
    pub writeback: bool,
}

impl BlockObs {
    /// A hole that is not cached and not under IO: the state of every block never touched.
    pub const UNTOUCHED: BlockObs = BlockObs {
        extent: ExtentState::Hole,
        cache: CacheState::NotCached,
        writeback: false,
    };
}

impl fmt::Display for BlockObs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}{}{}",
            self.extent.code(),
            self.cache.code(),
            if self.writeback { 'w' } else { ' ' }
        )
    }
}

/// Filesystem-wide block accounting. `free + reserved + allocated == capacity` always.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct Counters {
    /// Blocks neither allocated nor reserved.
    pub free: u64,
    /// Blocks reserved for delalloc (one per `Delalloc` file block).
    pub reserved: u64,
    /// Blocks allocated to files (`Unwritten` or `Written`).
    pub allocated: u64,
    /// IOs submitted and not yet completed, all files.
    pub inflight_ios: u64,
}

/// An invariant that a model found broken in itself.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Violation {
    /// Stable name, e.g. `dirty-over-hole`, `reserved-equals-delalloc`.
    pub name: &'static str,
    /// What exactly is wrong, with file and block numbers.
    pub detail: String,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.name, self.detail)
    }
}

/// The content digest of one block's bytes: their CRC32C. Both models keep one per block they
/// hold (each in its own way) so that the oracle compares four bytes per unchanged block instead
/// of the block; a digest mismatch is followed by a byte comparison, which is what a report shows.
#[inline]
pub fn block_digest(bytes: &[u8]) -> u32 {
    crate::checksum::crc32c(bytes)
}

/// Read-only observation of a model's state, with no side effects (nothing is instantiated,
/// written back or waited for). Both models implement it; the oracle compares through it.
pub trait Observe {
    /// The geometry the model was built with.
    fn geometry(&self) -> Geometry;
    /// Number of files.
    fn file_count(&self) -> usize;
    /// Current size of the file.
    fn size(&self, file: FileId) -> u64;
    /// Logical contents of `[off, off+len)` clipped to EOF, as a buffered read would return them.
    fn peek(&self, file: FileId, off: u64, len: u64) -> Vec<u8>;
    /// The same bytes as [`Observe::peek`], handed to `f` in order as consecutive slices that
    /// together make up the clipped range. Models override it to lend their own memory instead
    /// of copying: the oracle compares contents after every op, and copies were its main cost.
    fn visit(&self, file: FileId, off: u64, len: u64, f: &mut dyn FnMut(&[u8])) {
        f(&self.peek(file, off, len));
    }
    /// One past the highest block of the file whose state is not [`BlockObs::UNTOUCHED`]
    /// (0 if none): how far [`Observe::blocks`] must look to see everything.
    fn block_span(&self, file: FileId) -> u64;
    /// Observable state of blocks `[first, first+count)`.
    fn blocks(&self, file: FileId, first: u64, count: u64) -> Vec<BlockObs>;
    /// Block states of `[first, end)` run-length encoded: `(blocks, state)` runs in block order
    /// covering exactly `end - first` blocks (adjacent runs may hold equal states). What
    /// [`Observe::blocks`] says, in space proportional to the runs; models override it to build
    /// the runs from their own extents and folios without a per-block vector.
    fn block_runs(&self, file: FileId, first: u64, end: u64, out: &mut Vec<(u64, BlockObs)>) {
        for b in self.blocks(file, first, end.saturating_sub(first)) {
            match out.last_mut() {
                Some((n, s)) if *s == b => *n += 1,
                _ => out.push((1, b)),
            }
        }
    }
    /// Content digests of blocks `[first, end)`, one entry per block in order: `Some` of
    /// [`block_digest`] of the block's bytes (as [`Observe::peek`] shows them) for a block that
    /// lies wholly below EOF, `None` for one that does not, or whose digest the model does not
    /// keep (the oracle compares the bytes of `None` blocks).
    fn digests(&self, file: FileId, first: u64, end: u64, out: &mut Vec<Option<u32>>) {
        let bs = self.geometry().bs();
        let size = self.size(file);
        for b in first..end {
            out.push(
                (b.saturating_add(1).saturating_mul(bs) <= size)
                    .then(|| block_digest(&self.peek(file, b * bs, bs))),
            );
        }
    }
    /// Filesystem-wide counters.
    fn counters(&self) -> Counters;
    /// The writeback error recorded on the file and not yet reported by fsync.
    fn wb_error(&self, file: FileId) -> Option<Errno>;
    /// Whether the free-space btree root is currently marked corrupt.
    fn btree_corrupt(&self) -> bool;
    /// Checks the model's internal invariants; empty when all hold.
    fn check_invariants(&self) -> Vec<Violation>;
    /// [`Observe::check_invariants`] with the per-block checks limited to blocks `[first, end)`
    /// of `file` (the global ones still run): the oracle's check after an op that changed only
    /// those blocks. Models without a cheaper scoped check need not override it.
    fn check_invariants_in(&self, file: FileId, first: u64, end: u64) -> Vec<Violation> {
        let _ = (file, first, end);
        self.check_invariants()
    }
}
