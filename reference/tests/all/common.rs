//! Helpers shared by the reference model's integration tests: building a model, running ops with
//! the invariant check after each, and reading block states back as plain lists.
//!
//! Expected values in the tests are derived by hand from SPEC.md; these helpers only shorten the
//! spelling of ops and observations.
#![allow(dead_code, unused_imports)]

use reference::model::RefFs;
use reference::{
    BlockObs, CacheState, Config, Errno, ExtentState, FileSpec, Geometry, Observe, Op, Outcome,
    Policy,
};

pub use reference::pattern::pattern;
pub use reference::CacheState::{Clean, Dirty, NotCached};
pub use reference::ExtentState::{Delalloc, Hole, Unwritten, Written};

/// Block size 1 KiB, folio 1 page, capacity 256 blocks, max size 256 KiB, keep-dirty, one file.
pub fn default_fs() -> RefFs {
    fs_with(1024, 1, 256, Policy::KeepDirty, &[false])
}

/// A model with the given geometry (max file size 256 KiB), policy and files (`true` =
/// journaled data).
pub fn fs_with(bs: u32, folio_pages: u32, capacity: u64, policy: Policy, jdata: &[bool]) -> RefFs {
    fs_max(bs, folio_pages, capacity, 256 << 10, policy, jdata)
}

/// As [`fs_with`] with an explicit maximum file size.
pub fn fs_max(
    bs: u32,
    folio_pages: u32,
    capacity: u64,
    max: u64,
    policy: Policy,
    jdata: &[bool],
) -> RefFs {
    let geometry = Geometry {
        block_size: bs,
        folio_pages,
        capacity_blocks: capacity,
        max_file_size: max,
    };
    geometry.validate().expect("test geometry must be valid");
    let config = Config {
        geometry,
        policy,
        files: jdata.iter().map(|&j| FileSpec { jdata: j }).collect(),
    };
    RefFs::new(&config)
}

/// Applies `op` as op number `seq` and asserts that every invariant still holds.
pub fn run(fs: &mut RefFs, seq: u32, op: Op) -> Outcome {
    let out = fs.apply(seq, &op);
    let v = fs.check_invariants();
    assert!(v.is_empty(), "after op {seq} ({op}): {v:?}");
    out
}

/// Extent states of blocks `[first, first+count)` of file 0.
pub fn extents(fs: &RefFs, first: u64, count: u64) -> Vec<ExtentState> {
    fs.blocks(0, first, count)
        .iter()
        .map(|b| b.extent)
        .collect()
}

/// Cache states of blocks `[first, first+count)` of file 0.
pub fn caches(fs: &RefFs, first: u64, count: u64) -> Vec<CacheState> {
    fs.blocks(0, first, count).iter().map(|b| b.cache).collect()
}

/// Writeback flags of blocks `[first, first+count)` of file 0.
pub fn writebacks(fs: &RefFs, first: u64, count: u64) -> Vec<bool> {
    fs.blocks(0, first, count)
        .iter()
        .map(|b| b.writeback)
        .collect()
}

/// One block observation.
pub fn obs(fs: &RefFs, b: u64) -> BlockObs {
    fs.blocks(0, b, 1)[0]
}

/// The whole logical contents of file 0.
pub fn contents(fs: &RefFs) -> Vec<u8> {
    fs.peek(0, 0, u64::MAX)
}

/// `n` zero bytes.
pub fn zeros(n: usize) -> Vec<u8> {
    vec![0; n]
}

/// Concatenation.
pub fn cat(parts: &[&[u8]]) -> Vec<u8> {
    parts.concat()
}

// Op constructors for file 0.

pub fn write(off: u64, len: u64) -> Op {
    Op::Write {
        file: 0,
        off,
        len,
        sync: false,
    }
}
pub fn write_sync(off: u64, len: u64) -> Op {
    Op::Write {
        file: 0,
        off,
        len,
        sync: true,
    }
}
pub fn read(off: u64, len: u64) -> Op {
    Op::Read { file: 0, off, len }
}
pub fn dwrite(off: u64, len: u64) -> Op {
    Op::DirectWrite { file: 0, off, len }
}
pub fn dread(off: u64, len: u64) -> Op {
    Op::DirectRead { file: 0, off, len }
}
pub fn mwrite(off: u64, len: u64) -> Op {
    Op::MmapWrite { file: 0, off, len }
}
pub fn mread(off: u64, len: u64) -> Op {
    Op::MmapRead { file: 0, off, len }
}
pub fn fsync() -> Op {
    Op::Fsync { file: 0 }
}
pub fn falloc(off: u64, len: u64, keep_size: bool) -> Op {
    Op::Fallocate {
        file: 0,
        off,
        len,
        keep_size,
    }
}
pub fn punch(off: u64, len: u64) -> Op {
    Op::PunchHole { file: 0, off, len }
}
pub fn zero(off: u64, len: u64, keep_size: bool) -> Op {
    Op::ZeroRange {
        file: 0,
        off,
        len,
        keep_size,
    }
}
pub fn truncate(size: u64) -> Op {
    Op::Truncate { file: 0, size }
}
pub fn flush(off: u64, len: u64) -> Op {
    Op::Flush { file: 0, off, len }
}
pub fn flush_all() -> Op {
    Op::Flush {
        file: 0,
        off: 0,
        len: u64::MAX,
    }
}
pub fn complete(n: u32) -> Op {
    Op::CompleteIo { n }
}
pub fn reclaim(folio: u64) -> Op {
    Op::Reclaim { file: 0, folio }
}
pub fn evict() -> Op {
    Op::EvictInode { file: 0 }
}
pub fn corrupt() -> Op {
    Op::CorruptAllocBtree
}
pub fn repair() -> Op {
    Op::RepairAllocBtree
}
pub fn commit() -> Op {
    Op::JournalCommit { file: 0 }
}

pub fn done(n: u64) -> Outcome {
    Outcome::Done(n)
}
pub fn err(e: Errno) -> Outcome {
    Outcome::Err(e)
}
pub fn data(d: Vec<u8>) -> Outcome {
    Outcome::Data(d)
}
