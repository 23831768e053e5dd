//! Filesystem-wide space: the block counters, the physical block allocator, the disk contents and
//! the "free-space btree root is corrupt" flag.
//!
//! Owns: `free`, `reserved`, `allocated` (SPEC.md "Counters"), the set of physical blocks not
//! owned by any file, and the bytes of every physical block ever written.
//!
//! Invariants (checked by `check_invariants`, never assumed):
//! - `free + reserved + allocated == capacity`;
//! - the physical pool (blocks not owned by a file) holds exactly `free + reserved` blocks:
//!   a reservation is a promise on the pool, not a block taken from it;
//! - a physical block absent from the disk map holds stale bytes ([`vocab::stale_byte`]): it was
//!   never written since it was last free (SPEC.md "Durability").
//!
//! The counters and the pool are separate on purpose: the counters are what SPEC.md talks about,
//! the pool is what "double-owned" and "leaked" are checked against. The space and corruption
//! checks live here so that every op applies them in the same order (space first, SPEC.md "Space
//! checks").

use super::buffers::Bytes;
use crate::errno::Errno;
use std::collections::{BTreeMap, BTreeSet};

/// Counters, physical allocator, disk and corruption flag.
#[derive(Clone, Debug)]
pub(crate) struct Space {
    /// Device capacity in blocks.
    pub capacity: u64,
    /// Blocks neither reserved nor allocated.
    pub free: u64,
    /// Blocks reserved for delalloc.
    pub reserved: u64,
    /// Blocks allocated to files.
    pub allocated: u64,
    /// The free-space btree root has a bad CRC.
    pub corrupt: bool,
    /// Physical blocks `>= next_fresh` have never been handed out. Keeps `new` O(1) for large
    /// capacities: the pool is `[next_fresh, capacity) ∪ recycled`.
    next_fresh: u64,
    /// Physical blocks below `next_fresh` that were freed again.
    recycled: BTreeSet<u64>,
    /// Bytes of physical blocks written since they were last free, with their digest; an absent
    /// block holds stale bytes.
    disk: BTreeMap<u64, (Bytes, u32)>,
    /// Block size in bytes.
    bs: usize,
    /// Physical blocks whose bytes changed (written, or forgotten when freed) since the oracle
    /// last asked ([`crate::model::RefFs::take_changed`]); `disk` changes nowhere else.
    disk_changed: super::file::Changed,
}

impl Space {
    /// An empty device of `capacity` blocks of `bs` bytes.
    pub fn new(capacity: u64, bs: usize) -> Space {
        Space {
            capacity,
            free: capacity,
            reserved: 0,
            allocated: 0,
            corrupt: false,
            next_fresh: 0,
            recycled: BTreeSet::new(),
            disk: BTreeMap::new(),
            bs,
            disk_changed: Default::default(),
        }
    }

    /// Moves `n` blocks from `free` to `reserved` (a delalloc reservation: counters only, so it
    /// works while the root is corrupt).
    pub fn reserve(&mut self, n: u64) -> Result<(), Errno> {
        if self.free < n {
            return Err(Errno::Enospc);
        }
        self.free -= n;
        self.reserved += n;
        Ok(())
    }

    /// Moves `n` blocks from `reserved` back to `free` (counters only; never fails).
    pub fn release(&mut self, n: u64) {
        // Saturating: a model bug must show up as a counters violation, not a panic.
        let n = n.min(self.reserved);
        self.reserved -= n;
        self.free += n;
    }

    /// The check before allocating: `from_free` blocks must come out of `free` (ENOSPC if short),
    /// and if `touches_tree` (any allocation or free of a physical block at all) the root must be
    /// sound (EFSCORRUPTED). Space first, as XFS checks the counters before reading the btree.
    pub fn check_alloc(&self, from_free: u64, touches_tree: bool) -> Result<(), Errno> {
        if self.free < from_free {
            return Err(Errno::Enospc);
        }
        if self.corrupt && touches_tree {
            return Err(Errno::Efscorrupted);
        }
        Ok(())
    }

    /// Allocates one physical block out of `free`. The caller has passed [`Space::check_alloc`].
    pub fn alloc_from_free(&mut self) -> u64 {
        self.free = self.free.saturating_sub(1);
        self.allocated += 1;
        self.take_phys()
    }

    /// Allocates one physical block for a delalloc block: its reservation becomes the allocation.
    pub fn alloc_from_reserved(&mut self) -> u64 {
        self.reserved = self.reserved.saturating_sub(1);
        self.allocated += 1;
        self.take_phys()
    }

    /// Frees an allocated physical block: `allocated` to `free`, its bytes forgotten.
    pub fn free_phys(&mut self, phys: u64) {
        self.allocated = self.allocated.saturating_sub(1);
        self.free += 1;
        if self.disk.remove(&phys).is_some() {
            self.disk_changed.note(phys, phys.saturating_add(1));
        }
        self.recycled.insert(phys);
    }

    /// Takes the lowest block of the pool. With correct accounting the pool is never empty here;
    /// if it were, the returned number is past the capacity and the invariant check reports it.
    fn take_phys(&mut self) -> u64 {
        if let Some(p) = self.recycled.pop_first() {
            return p;
        }
        let p = self.next_fresh;
        self.next_fresh += 1;
        p
    }

    /// Whether `phys` is in the pool (not owned by any file).
    pub fn is_pool(&self, phys: u64) -> bool {
        phys >= self.next_fresh || self.recycled.contains(&phys)
    }

    /// Whether any of physical blocks `[start, start + len)` is in the pool or past the device.
    pub fn pool_overlaps(&self, start: u64, len: u64) -> bool {
        let end = start.saturating_add(len);
        end > self.next_fresh.min(self.capacity) || self.recycled.range(start..end).next().is_some()
    }

    /// Number of blocks in the pool.
    pub fn pool_len(&self) -> u64 {
        self.capacity.saturating_sub(self.next_fresh) + self.recycled.len() as u64
    }

    /// Copies physical block `phys` into `buf` (one block long); stale bytes if not written
    /// since it was last free.
    pub fn read_block(&self, phys: u64, buf: &mut [u8]) {
        match self.disk.get(&phys) {
            Some((data, _)) => buf.copy_from_slice(data),
            None => buf.fill(crate::pattern::stale_byte(phys)),
        }
    }

    /// How many physical blocks of `[lo, hi)` hold data (written since they were last free).
    pub fn written_in(&self, lo: u64, hi: u64) -> u64 {
        if hi <= lo {
            return 0;
        }
        self.disk.range(lo..hi).count() as u64
    }

    /// The bytes of physical block `phys`, `None` if not written since it was last free (it then
    /// holds stale bytes, see [`Space::read_block`]).
    pub fn block(&self, phys: u64) -> Option<&[u8]> {
        self.disk.get(&phys).map(|(b, _)| &b[..])
    }

    /// A walk of the disk for digests asked block after block ([`DiskWalk`]).
    pub fn walk(&self) -> DiskWalk<'_> {
        DiskWalk {
            space: self,
            at: 0,
            rest: None,
        }
    }

    /// Appends to `out` the physical block ranges whose bytes changed since the last take,
    /// forgotten.
    pub fn take_disk_changed(&mut self, out: &mut Vec<(u64, u64)>) {
        self.disk_changed.take(|r| out.push(r))
    }

    /// Writes one block's bytes to physical block `phys`.
    pub fn write_block(&mut self, phys: u64, data: &[u8]) {
        self.write_block_digested(phys, data, crate::block_digest(data));
    }

    /// [`Space::write_block`] with the bytes' digest already known (a cached block's, which its
    /// folio keeps true: [`super::file::FolioBytes`]). The block's memory is reused when it
    /// holds data already.
    pub fn write_block_digested(&mut self, phys: u64, data: &[u8], digest: u32) {
        debug_assert_eq!(data.len(), self.bs);
        debug_assert_eq!(digest, crate::block_digest(data));
        self.disk_changed.note(phys, phys.saturating_add(1));
        match self.disk.get_mut(&phys) {
            Some((bytes, d)) => {
                bytes.copy_from_slice(data);
                *d = digest;
            }
            None => {
                self.disk.insert(phys, (Bytes::copied(data), digest));
            }
        }
    }
}

type DiskRange<'a> = std::collections::btree_map::Range<'a, u64, (Bytes, u32)>;

/// The disk's digests asked for in mostly increasing block order, answered by one walk of the
/// disk map: whole-file observations and checks ask block after block, and consecutive file
/// blocks are usually consecutive on disk, so stepping replaces a map search per block (the
/// searches were 40% of the whole self-check). A step back or a jump ahead restarts the walk
/// with one search.
pub struct DiskWalk<'a> {
    space: &'a Space,
    /// The block asked last; the map from there on (searched at the first question).
    at: u64,
    rest: Option<std::iter::Peekable<DiskRange<'a>>>,
}

impl DiskWalk<'_> {
    /// How far ahead a step may go before a search is cheaper than stepping.
    const STEP: u64 = 64;

    /// The digest of physical block `phys`, `None` if not written since it was last free
    /// (it then holds stale bytes).
    pub fn digest(&mut self, phys: u64) -> Option<u32> {
        if phys < self.at || phys - self.at > Self::STEP {
            self.rest = None;
        }
        self.at = phys;
        let rest = self
            .rest
            .get_or_insert_with(|| self.space.disk.range(phys..).peekable());
        while rest.next_if(|(&k, _)| k < phys).is_some() {}
        rest.peek()
            .filter(|(&k, _)| k == phys)
            .map(|(_, &(_, d))| d)
    }
}
