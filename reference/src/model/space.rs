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
//! - a physical block absent from the disk table holds stale bytes ([`vocab::stale_byte`]): it was
//!   never written since it was last free (SPEC.md "Durability").
//!
//! The counters and the pool are separate on purpose: the counters are what SPEC.md talks about,
//! the pool is what "double-owned" and "leaked" are checked against. The space and corruption
//! checks live here so that every op applies them in the same order (space first, SPEC.md "Space
//! checks").

use super::buffers::Bytes;
use crate::errno::Errno;
use std::collections::BTreeSet;

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
    disk: DiskTable,
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
            disk: DiskTable::default(),
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
        if self.disk.remove(phys).is_some() {
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
        match self.disk.get(phys) {
            Some((data, _)) => buf.copy_from_slice(data),
            None => buf.fill(crate::pattern::stale_byte(phys)),
        }
    }

    /// The bytes of physical block `phys`, `None` if not written since it was last free (it then
    /// holds stale bytes, see [`Space::read_block`]).
    pub fn block(&self, phys: u64) -> Option<&[u8]> {
        self.disk.get(phys).map(|(b, _)| &b[..])
    }

    /// The digest of physical block `phys`, `None` if not written since it was last free (it
    /// then holds stale bytes).
    pub fn digest(&self, phys: u64) -> Option<u32> {
        self.disk.get(phys).map(|&(_, d)| d)
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
        self.disk.write(phys, data, digest);
    }
}

/// Physical block number -> (bytes, digest), for blocks written since they were last free: a
/// table of 64-block chunks indexed by block number, made as blocks are first written. The
/// allocator hands out the lowest free block ([`Space::take_phys`]), so the table follows the
/// high-water mark of allocation; a lookup is two indexings where an ordered map's was a search
/// (and a first write an insertion that moved its neighbours: together a twentieth of the
/// reference's time). Blocks from [`TABLE_END`] on (only a broken state, or a test, names one:
/// the allocator stays below the capacity plus what a broken accounting hands out past it, one
/// at a time) are kept in an ordered map instead, so that no block number sizes the table.
#[derive(Clone, Debug, Default)]
struct DiskTable {
    chunks: Vec<Option<Box<Chunk>>>,
    beyond: std::collections::BTreeMap<u64, (Bytes, u32)>,
}

/// Blocks per chunk of the [`DiskTable`].
const CHUNK: usize = 64;

/// One chunk of the [`DiskTable`]: its blocks' bytes and digests, `None` where stale.
type Chunk = [Option<(Bytes, u32)>; CHUNK];

/// Where the [`DiskTable`]'s chunks end: twice the largest capacity.
const TABLE_END: u64 = 2 * crate::geometry::MAX_CAPACITY_BLOCKS;

impl DiskTable {
    fn get(&self, phys: u64) -> Option<&(Bytes, u32)> {
        if phys >= TABLE_END {
            return self.beyond.get(&phys);
        }
        let c = (phys / CHUNK as u64) as usize;
        self.chunks.get(c)?.as_ref()?[(phys % CHUNK as u64) as usize].as_ref()
    }

    /// Sets block `phys` to `data` with its `digest`, reusing the block's memory if it holds
    /// data already (its chunk made if need be).
    fn write(&mut self, phys: u64, data: &[u8], digest: u32) {
        let slot = if phys >= TABLE_END {
            match self.beyond.entry(phys) {
                std::collections::btree_map::Entry::Occupied(e) => e.into_mut(),
                std::collections::btree_map::Entry::Vacant(e) => {
                    e.insert((Bytes::copied(data), digest));
                    return;
                }
            }
        } else {
            let c = (phys / CHUNK as u64) as usize;
            if self.chunks.len() <= c {
                self.chunks.resize_with(c + 1, || None);
            }
            let chunk = self.chunks[c].get_or_insert_with(|| Box::new([const { None }; CHUNK]));
            match &mut chunk[(phys % CHUNK as u64) as usize] {
                Some(held) => held,
                empty => {
                    *empty = Some((Bytes::copied(data), digest));
                    return;
                }
            }
        };
        slot.0.copy_from_slice(data);
        slot.1 = digest;
    }

    fn remove(&mut self, phys: u64) -> Option<(Bytes, u32)> {
        if phys >= TABLE_END {
            return self.beyond.remove(&phys);
        }
        let c = (phys / CHUNK as u64) as usize;
        self.chunks.get_mut(c)?.as_mut()?[(phys % CHUNK as u64) as usize].take()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_disk_holds_what_was_written_where_it_was_written() {
        let mut s = Space::new(256, 512);
        let block = |x: u8| vec![x; 512];
        // Both sides of a chunk boundary, and a block in a chunk far past the others.
        for (p, x) in [(63u64, 1u8), (64, 2), (200, 3), (u64::MAX, 4)] {
            s.write_block(p, &block(x));
        }
        for (p, x) in [(63u64, 1u8), (64, 2), (200, 3), (u64::MAX, 4)] {
            assert_eq!(s.block(p), Some(&block(x)[..]), "block {p}");
            assert_eq!(s.digest(p), Some(crate::block_digest(&block(x))));
        }
        // Never written: stale, in a made chunk, in a chunk not made, and past any chunk.
        for p in [0u64, 62, 65, 130, 199, 201, 1 << 40, u64::MAX - 1] {
            assert_eq!(s.block(p), None, "block {p}");
            assert_eq!(s.digest(p), None, "block {p}");
        }
        let mut buf = vec![0u8; 512];
        s.read_block(65, &mut buf);
        assert!(buf.iter().all(|&b| b == crate::pattern::stale_byte(65)));
        // Overwritten in place; freed: forgotten, and its neighbour kept.
        s.write_block(64, &block(9));
        assert_eq!(s.block(64), Some(&block(9)[..]));
        s.write_block(u64::MAX, &block(8));
        assert_eq!(s.block(u64::MAX), Some(&block(8)[..]));
        assert_eq!(s.digest(u64::MAX), Some(crate::block_digest(&block(8))));
        s.allocated = 2;
        s.free_phys(64);
        assert_eq!(s.block(64), None);
        assert_eq!(s.block(63), Some(&block(1)[..]));
        s.free_phys(u64::MAX);
        assert_eq!(s.block(u64::MAX), None);
    }
}
