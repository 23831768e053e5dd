//! FIEMAP observation: the `FS_IOC_FIEMAP` ioctl (through rustix's typed ioctl, as rustix has
//! no FIEMAP wrapper), read as one [`ExtentState`] per file block: `DELALLOC` extents are
//! `Delalloc`, `UNWRITTEN` ones `Unwritten`, any other mapped extent `Written`, gaps `Hole`.
//!
//! No `FIEMAP_FLAG_SYNC`: the map is taken as it is, without writing anything back first (what
//! a filesystem does on its own inside FIEMAP is its business, and SPEC.md's relation allows
//! for it). Extents are fetched in batches until the last one or the end of the range.

use reference::ExtentState;
use std::fs::File;
use std::io;

const FIEMAP_EXTENT_LAST: u32 = 0x1;
const FIEMAP_EXTENT_DELALLOC: u32 = 0x4;
const FIEMAP_EXTENT_UNWRITTEN: u32 = 0x800;

/// `struct fiemap_extent` (linux/fiemap.h).
#[repr(C)]
#[derive(Clone, Copy, Default, Debug)]
struct FiemapExtent {
    fe_logical: u64,
    fe_physical: u64,
    fe_length: u64,
    fe_reserved64: [u64; 2],
    fe_flags: u32,
    fe_reserved: [u32; 3],
}

/// `struct fiemap` (the header the ioctl number encodes).
#[repr(C)]
#[derive(Clone, Copy, Default, Debug)]
struct FiemapHeader {
    fm_start: u64,
    fm_length: u64,
    fm_flags: u32,
    fm_mapped_extents: u32,
    fm_extent_count: u32,
    fm_reserved: u32,
}

/// Extents fetched per ioctl.
const BATCH: usize = 64;

/// The header followed by room for [`BATCH`] extents, as the kernel expects them in memory.
#[repr(C)]
struct FiemapBuf {
    header: FiemapHeader,
    extents: [FiemapExtent; BATCH],
}

/// `FS_IOC_FIEMAP`: `_IOWR('f', 11, struct fiemap)`.
const FS_IOC_FIEMAP: rustix::ioctl::Opcode =
    rustix::ioctl::opcode::read_write::<FiemapHeader>(b'f', 11);

/// One extent as FIEMAP reported it (logical bytes).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Extent {
    /// First byte.
    pub logical: u64,
    /// Length in bytes.
    pub length: u64,
    /// Its state.
    pub state: ExtentState,
}

/// Every extent of `[0, end)` of the file.
pub fn extents(file: &File, end: u64) -> io::Result<Vec<Extent>> {
    let mut out = Vec::new();
    let mut start = 0u64;
    while start < end {
        let mut buf = FiemapBuf {
            header: FiemapHeader {
                fm_start: start,
                fm_length: end - start,
                fm_extent_count: BATCH as u32,
                ..Default::default()
            },
            extents: [FiemapExtent::default(); BATCH],
        };
        // SAFETY: `FiemapBuf` is the layout FS_IOC_FIEMAP reads and writes: the header, then
        // `fm_extent_count` extents, all owned by `buf` for the duration of the call.
        unsafe {
            let ctl = rustix::ioctl::Updater::<FS_IOC_FIEMAP, FiemapBuf>::new(&mut buf);
            rustix::ioctl::ioctl(file, ctl)?;
        }
        let n = (buf.header.fm_mapped_extents as usize).min(BATCH);
        if n == 0 {
            break;
        }
        let mut last = false;
        for e in &buf.extents[..n] {
            let state = if e.fe_flags & FIEMAP_EXTENT_DELALLOC != 0 {
                ExtentState::Delalloc
            } else if e.fe_flags & FIEMAP_EXTENT_UNWRITTEN != 0 {
                ExtentState::Unwritten
            } else {
                ExtentState::Written
            };
            out.push(Extent {
                logical: e.fe_logical,
                length: e.fe_length,
                state,
            });
            last |= e.fe_flags & FIEMAP_EXTENT_LAST != 0;
        }
        let tail = &buf.extents[n - 1];
        let next = tail.fe_logical.saturating_add(tail.fe_length);
        if last || next <= start {
            break;
        }
        start = next;
    }
    Ok(out)
}

/// The extent state of blocks `[0, blocks)` of the file with block size `bs`. A block partly
/// covered by an extent takes that extent's state (a later extent over the same block wins:
/// FIEMAP reports in logical order, so that is the one covering its end).
pub fn block_states(file: &File, bs: u64, blocks: u64) -> io::Result<Vec<ExtentState>> {
    let mut v = vec![ExtentState::Hole; blocks as usize];
    if blocks == 0 {
        return Ok(v);
    }
    for e in extents(file, blocks.saturating_mul(bs))? {
        let first = e.logical / bs;
        let end = e.logical.saturating_add(e.length).div_ceil(bs).min(blocks);
        for b in first..end {
            v[b as usize] = e.state;
        }
    }
    Ok(v)
}

/// The highest block any extent of the file reaches (one past it), looking up to `limit` bytes.
pub fn block_span(file: &File, bs: u64, limit: u64) -> io::Result<u64> {
    Ok(extents(file, limit)?
        .iter()
        .map(|e| e.logical.saturating_add(e.length).div_ceil(bs))
        .max()
        .unwrap_or(0))
}
