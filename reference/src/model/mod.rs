//! The sequential reference model: SPEC.md as code, one obviously correct step at a time.
//!
//! [`RefFs`] owns every file (module `file`), the filesystem-wide space and disk (module
//! `space`), and the global FIFO of in-flight IOs (module `io`). State is kept per block in plain
//! vectors and maps so that each rule of SPEC.md reads as a loop over the blocks or folios it
//! talks about; per-op cost is proportional to the range the op touches (or to the cached
//! folios inside it), never to the whole file or device.
//!
//! Where SPEC.md is silent or contradicts itself, the choice made is documented on the step that
//! makes it (e.g. [`RefFs::writeback_folio`] skipping clean folios under writeback, the on-disk
//! tail zeroing of `Truncate`).
//!
//! # Step API
//!
//! Every op is the sequential composition of public *step* methods. In concurrent runs the
//! implementation records the commit points of its sub-steps and a replayer calls the matching
//! steps one by one; [`RefFs::apply`] is the same composition in op order. Steps never validate
//! op arguments (that is [`RefFs::apply`]'s job, see the `*_args` helpers) but never panic either:
//! a bad file index makes a step a no-op (or `EINVAL`).
//!
//! | op | steps, in order |
//! |---|---|
//! | `Write` | [`RefFs::write_args`], [`RefFs::reserve_write`], per folio [`RefFs::write_folio`] (which waits and instantiates), [`RefFs::extend_size`]; `sync`: [`RefFs::flush_range`], [`RefFs::take_wb_error`] |
//! | `Read` | per folio [`RefFs::instantiate_folio`], then [`RefFs::read_cached`] |
//! | `DirectWrite` | [`RefFs::direct_write_args`], [`RefFs::flush_range`], [`RefFs::drop_folios`], [`RefFs::direct_write_locked`] |
//! | `DirectRead` | [`RefFs::direct_read_args`], [`RefFs::flush_range`], [`RefFs::direct_read_locked`] (alignment check, then [`RefFs::read_disk`]) |
//! | `MmapWrite` | [`RefFs::instantiate_folio`], [`RefFs::wait_writeback`], [`RefFs::mmap_write_locked`] |
//! | `MmapRead` | [`RefFs::instantiate_folio`], [`RefFs::read_cached`] |
//! | `Fsync` | per cached folio [`RefFs::writeback_folio`] (journaled data: [`RefFs::journal_commit`]), [`RefFs::wait_file_io`], [`RefFs::fsync_finish`] |
//! | `Fallocate` | [`RefFs::fallocate_locked`] |
//! | `PunchHole` | [`RefFs::wait_range`], [`RefFs::punch_locked`] |
//! | `ZeroRange` | [`RefFs::wait_range`], [`RefFs::zero_range_locked`] |
//! | `Truncate` | [`RefFs::wait_range`] (from the folio of the new size), [`RefFs::truncate_locked`] |
//! | `Flush` | per cached folio [`RefFs::writeback_folio`] (journaled data: [`RefFs::journal_commit`]) |
//! | `CompleteIo` | [`RefFs::complete_oldest_io`] up to `n` times |
//! | `Reclaim` | [`RefFs::reclaim`] |
//! | `EvictInode` | as `Fsync` up to [`RefFs::wait_file_io`], then [`RefFs::evict_finish`] |
//! | `CorruptAllocBtree` / `RepairAllocBtree` | [`RefFs::corrupt`] / [`RefFs::repair`] |
//! | `JournalCommit` | [`RefFs::journal_commit`] |
//! | `Crash` | [`RefFs::crash`]: each in-flight IO's [`Landing`], oldest first, as [`CrashChoice`] reads the op's arguments, then the memory loss and the mount (the replayer takes the landings one logged step at a time) |
//!
//! Waiting for writeback ([`RefFs::wait_writeback`], [`RefFs::complete_io_of`]) completes that
//! folio's IO out of FIFO order, as SPEC.md says; it is a step of its own so that a replayer can
//! put the completion where the implementation committed it.
//!
//! [`replay::Replayer`] is that replayer: it applies a concurrent run's commit log with these
//! steps, checks every step's precondition against this state, and derives every outcome.

mod buffers;
mod crash;
mod file;
mod io;
mod observe;
mod ops;
pub mod replay;
mod space;

pub use crash::{CrashChoice, Landing};
pub use io::Completion;

use crate::config::{Config, Policy};
use crate::errno::Errno;
use crate::geometry::{
    Geometry, BLOCK_SIZES, FOLIO_PAGES, MAX_CAPACITY_BLOCKS, MAX_FILES, MAX_FILE_SIZE_LIMIT,
};
use crate::op::{FileId, Op, Outcome};
use crate::state::Violation;
use file::File;
use io::InflightIo;
use space::Space;
use std::collections::VecDeque;

/// The reference filesystem: every file, the device, the IO queue.
#[derive(Clone, Debug)]
pub struct RefFs {
    /// Geometry (validated or clamped into range by [`RefFs::new`]).
    geo: Geometry,
    /// What writeback does when it cannot allocate.
    policy: Policy,
    /// The files, indexed by [`FileId`].
    files: Vec<File>,
    /// Counters, physical allocator, disk, corruption flag.
    space: Space,
    /// In-flight IOs of all files, oldest first.
    inflight: VecDeque<InflightIo>,
    /// Violations seen as they happened (a checksum mismatch at IO completion, a repair that
    /// found a different tree): no later look at the state can see them, so they are kept and
    /// reported by every later `check_invariants`.
    found: Vec<Violation>,
    /// Whether an IO completed since the oracle last asked ([`RefFs::take_completed`]).
    completed_io: bool,
    /// The digest of a block of zeros (what holes and unwritten blocks show).
    zero_digest: u32,
    /// Buffers [`RefFs::take_changed`] reuses: the disk's changed ranges, and the runs of
    /// physical blocks the changed file blocks show.
    changed_scratch: [Vec<(u64, u64)>; 2],
}

impl RefFs {
    /// A filesystem with the config's geometry, policy and files, all empty.
    ///
    /// The config is validated by callers; an invalid geometry is clamped into range (never a
    /// panic) and [`crate::state::Observe::geometry`] reports the clamped one. Files past
    /// [`MAX_FILES`] are ignored.
    pub fn new(config: &Config) -> RefFs {
        // No debug_assert on validity: a bad config must not panic even in debug builds.
        let mut geo = config.geometry;
        if !BLOCK_SIZES.contains(&geo.block_size) {
            geo.block_size = 1024;
        }
        if !FOLIO_PAGES.contains(&geo.folio_pages) {
            geo.folio_pages = 1;
        }
        geo.capacity_blocks = geo.capacity_blocks.clamp(1, MAX_CAPACITY_BLOCKS);
        let fsz = geo.folio_size();
        geo.max_file_size = (geo.max_file_size.min(MAX_FILE_SIZE_LIMIT) / fsz * fsz).max(fsz);
        let files = config
            .files
            .iter()
            .take(MAX_FILES)
            .map(|spec| File::new(spec.jdata))
            .collect();
        RefFs {
            geo,
            policy: config.policy,
            files,
            space: Space::new(geo.capacity_blocks, geo.block_size as usize),
            inflight: VecDeque::new(),
            found: Vec::new(),
            completed_io: false,
            zero_digest: crate::block_digest(&observe::zeros_of(geo.block_size as usize)),
            changed_scratch: Default::default(),
        }
    }

    /// Applies op number `seq` (which selects the data pattern) and returns its result, exactly
    /// as SPEC.md describes. An op naming a file that does not exist is a no-op returning
    /// `EINVAL`.
    pub fn apply(&mut self, seq: u32, op: &Op) -> Outcome {
        if let Some(file) = op.file() {
            if self.fid(file).is_none() {
                return Outcome::Err(Errno::Einval);
            }
        }
        match *op {
            Op::Write {
                file,
                off,
                len,
                sync,
            } => self.op_write(seq, file, off, len, sync),
            Op::Read { file, off, len } => self.op_read(file, off, len),
            Op::DirectWrite { file, off, len } => self.op_direct_write(seq, file, off, len),
            Op::DirectRead { file, off, len } => self.op_direct_read(file, off, len),
            Op::MmapWrite { file, off, len } => self.op_mmap_write(seq, file, off, len),
            Op::MmapRead { file, off, len } => self.op_mmap_read(file, off, len),
            Op::Fsync { file } => self.op_fsync(file),
            Op::Fallocate {
                file,
                off,
                len,
                keep_size,
            } => self.op_fallocate(file, off, len, keep_size),
            Op::PunchHole { file, off, len } => self.op_punch(file, off, len),
            Op::ZeroRange {
                file,
                off,
                len,
                keep_size,
            } => self.op_zero_range(file, off, len, keep_size),
            Op::Truncate { file, size } => self.op_truncate(file, size),
            Op::Flush { file, off, len } => self.op_flush(file, off, len),
            Op::CompleteIo { n } => self.op_complete_io(n),
            Op::Reclaim { file, folio } => Outcome::Done(self.reclaim(file, folio) as u64),
            Op::EvictInode { file } => self.op_evict(file),
            Op::CorruptAllocBtree => {
                self.corrupt();
                Outcome::Done(0)
            }
            Op::RepairAllocBtree => {
                self.repair();
                Outcome::Done(0)
            }
            Op::JournalCommit { file } => Outcome::Done(self.journal_commit(file)),
            Op::Crash { land, torn, tear } => Outcome::Done(self.crash(land, torn, tear)),
        }
    }

    // ----- small helpers shared by the step modules -----

    /// The file's index if it exists.
    fn fid(&self, file: FileId) -> Option<usize> {
        let i = file as usize;
        (i < self.files.len()).then_some(i)
    }

    /// Block size in bytes.
    fn bs(&self) -> u64 {
        self.geo.bs()
    }

    /// Folio size in bytes.
    fn fsz(&self) -> u64 {
        self.geo.folio_size()
    }

    /// Blocks per folio.
    fn bpf(&self) -> u64 {
        self.geo.blocks_per_folio()
    }

    /// The maximum file size.
    fn max_size(&self) -> u64 {
        self.geo.max_file_size
    }

    /// Blocks overlapping the non-empty byte range `[off, end)`: `[b0, b1)`.
    fn blocks_overlapping(&self, off: u64, end: u64) -> (u64, u64) {
        (off / self.bs(), end.div_ceil(self.bs()))
    }

    /// Blocks whole inside `[off, end)`: `[b0, b1)`, empty (`b0 == b1`) if none.
    fn whole_blocks(&self, off: u64, end: u64) -> (u64, u64) {
        let b0 = off.div_ceil(self.bs());
        let b1 = end / self.bs();
        (b0, b1.max(b0))
    }

    /// Folios overlapping the non-empty byte range `[off, end)`: `first..=last`.
    fn folios_overlapping(&self, off: u64, end: u64) -> (u64, u64) {
        (off / self.fsz(), (end - 1) / self.fsz())
    }

    /// Byte range of block `b` inside its folio's buffer.
    fn block_slice(&self, b: u64) -> std::ops::Range<usize> {
        let start = ((b % self.bpf()) * self.bs()) as usize;
        start..start + self.bs() as usize
    }
}
