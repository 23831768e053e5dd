//! Operations and their outcomes: what a thread does to the filesystem and what it gets back.
//!
//! Every op names its file by index into the run's file list. Offsets and lengths are bytes.
//! The exact semantics of each op are in the crate docs (`SPEC.md`), which both models follow.

use crate::errno::Errno;
use std::fmt;

/// Index of a file in the run's file list (0..4).
pub type FileId = u8;

/// One operation, user-visible or background.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Op {
    /// Buffered write of the op's pattern; `sync` adds an fsync of the written range (O_SYNC).
    Write {
        file: FileId,
        off: u64,
        len: u64,
        sync: bool,
    },
    /// Buffered read.
    Read { file: FileId, off: u64, len: u64 },
    /// O_DIRECT write; block-aligned offset and length or EINVAL.
    DirectWrite { file: FileId, off: u64, len: u64 },
    /// O_DIRECT read; block-aligned offset and length or EINVAL.
    DirectRead { file: FileId, off: u64, len: u64 },
    /// A write fault on the folio holding `off`, storing `len` pattern bytes (clipped).
    MmapWrite { file: FileId, off: u64, len: u64 },
    /// A read fault on the folio holding `off`, loading `len` bytes (clipped).
    MmapRead { file: FileId, off: u64, len: u64 },
    /// fsync(2): write back, wait, report the first writeback error since the last fsync.
    Fsync { file: FileId },
    /// fallocate(2) mode 0 (or KEEP_SIZE).
    Fallocate {
        file: FileId,
        off: u64,
        len: u64,
        keep_size: bool,
    },
    /// fallocate(2) PUNCH_HOLE | KEEP_SIZE.
    PunchHole { file: FileId, off: u64, len: u64 },
    /// fallocate(2) ZERO_RANGE (optionally KEEP_SIZE).
    ZeroRange {
        file: FileId,
        off: u64,
        len: u64,
        keep_size: bool,
    },
    /// truncate(2).
    Truncate { file: FileId, size: u64 },
    /// Background writeback of the dirty folios overlapping `[off, off+len)`.
    Flush { file: FileId, off: u64, len: u64 },
    /// Complete up to `n` in-flight IOs, oldest first.
    CompleteIo { n: u32 },
    /// Memory reclaim tries to evict folio number `folio` of the file.
    Reclaim { file: FileId, folio: u64 },
    /// Inode eviction: write back, wait, drop the whole cache (a no-op if anything stays dirty).
    EvictInode { file: FileId },
    /// Sets a bad CRC on the free-space btree root.
    CorruptAllocBtree,
    /// Clears it by rebuilding the free-space btree from the extent maps.
    RepairAllocBtree,
    /// Commits the journal transaction of a journaled-data file (a no-op on other files).
    JournalCommit { file: FileId },
    /// Power cut, then mount again (SPEC.md "Durability"): bit `k` of `torn` set means the
    /// `k`-th oldest in-flight IO is torn (each of its blocks, in block order, landed if the next
    /// bit of `tear`, bit 0 first, is set); otherwise bit `k` of `land` set means it reached the
    /// disk whole; every other in-flight IO is lost, and so is everything held only in memory.
    Crash { land: u32, torn: u32, tear: u64 },
}

/// The kind of an op, without its arguments: for op weights, tables and script keywords.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum OpKind {
    Write,
    Read,
    DirectWrite,
    DirectRead,
    MmapWrite,
    MmapRead,
    Fsync,
    Fallocate,
    PunchHole,
    ZeroRange,
    Truncate,
    Flush,
    CompleteIo,
    Reclaim,
    EvictInode,
    CorruptAllocBtree,
    RepairAllocBtree,
    JournalCommit,
    Crash,
}

impl OpKind {
    /// Every kind, in declaration order.
    pub const ALL: [OpKind; 19] = [
        OpKind::Write,
        OpKind::Read,
        OpKind::DirectWrite,
        OpKind::DirectRead,
        OpKind::MmapWrite,
        OpKind::MmapRead,
        OpKind::Fsync,
        OpKind::Fallocate,
        OpKind::PunchHole,
        OpKind::ZeroRange,
        OpKind::Truncate,
        OpKind::Flush,
        OpKind::CompleteIo,
        OpKind::Reclaim,
        OpKind::EvictInode,
        OpKind::CorruptAllocBtree,
        OpKind::RepairAllocBtree,
        OpKind::JournalCommit,
        OpKind::Crash,
    ];

    /// The script keyword of this kind.
    pub fn keyword(self) -> &'static str {
        match self {
            OpKind::Write => "write",
            OpKind::Read => "read",
            OpKind::DirectWrite => "dwrite",
            OpKind::DirectRead => "dread",
            OpKind::MmapWrite => "mwrite",
            OpKind::MmapRead => "mread",
            OpKind::Fsync => "fsync",
            OpKind::Fallocate => "falloc",
            OpKind::PunchHole => "punch",
            OpKind::ZeroRange => "zero",
            OpKind::Truncate => "truncate",
            OpKind::Flush => "flush",
            OpKind::CompleteIo => "complete",
            OpKind::Reclaim => "reclaim",
            OpKind::EvictInode => "evict",
            OpKind::CorruptAllocBtree => "corrupt",
            OpKind::RepairAllocBtree => "repair",
            OpKind::JournalCommit => "commit",
            OpKind::Crash => "crash",
        }
    }

    /// Parses a script keyword.
    pub fn from_keyword(s: &str) -> Option<OpKind> {
        OpKind::ALL.into_iter().find(|k| k.keyword() == s)
    }
}

impl Op {
    /// The kind of this op.
    pub fn kind(&self) -> OpKind {
        match self {
            Op::Write { .. } => OpKind::Write,
            Op::Read { .. } => OpKind::Read,
            Op::DirectWrite { .. } => OpKind::DirectWrite,
            Op::DirectRead { .. } => OpKind::DirectRead,
            Op::MmapWrite { .. } => OpKind::MmapWrite,
            Op::MmapRead { .. } => OpKind::MmapRead,
            Op::Fsync { .. } => OpKind::Fsync,
            Op::Fallocate { .. } => OpKind::Fallocate,
            Op::PunchHole { .. } => OpKind::PunchHole,
            Op::ZeroRange { .. } => OpKind::ZeroRange,
            Op::Truncate { .. } => OpKind::Truncate,
            Op::Flush { .. } => OpKind::Flush,
            Op::CompleteIo { .. } => OpKind::CompleteIo,
            Op::Reclaim { .. } => OpKind::Reclaim,
            Op::EvictInode { .. } => OpKind::EvictInode,
            Op::CorruptAllocBtree => OpKind::CorruptAllocBtree,
            Op::RepairAllocBtree => OpKind::RepairAllocBtree,
            Op::JournalCommit { .. } => OpKind::JournalCommit,
            Op::Crash { .. } => OpKind::Crash,
        }
    }

    /// The file the op works on, if it works on one.
    pub fn file(&self) -> Option<FileId> {
        // One match (in `file_mut`) decides which ops name a file; an op is a few words to copy.
        self.clone().file_mut().copied()
    }

    /// Mutable access to the op's file index, if it names a file (for tools that renumber files).
    pub fn file_mut(&mut self) -> Option<&mut FileId> {
        match self {
            Op::Write { file, .. }
            | Op::Read { file, .. }
            | Op::DirectWrite { file, .. }
            | Op::DirectRead { file, .. }
            | Op::MmapWrite { file, .. }
            | Op::MmapRead { file, .. }
            | Op::Fsync { file }
            | Op::Fallocate { file, .. }
            | Op::PunchHole { file, .. }
            | Op::ZeroRange { file, .. }
            | Op::Truncate { file, .. }
            | Op::Flush { file, .. }
            | Op::Reclaim { file, .. }
            | Op::EvictInode { file }
            | Op::JournalCommit { file } => Some(file),
            Op::CompleteIo { .. }
            | Op::CorruptAllocBtree
            | Op::RepairAllocBtree
            | Op::Crash { .. } => None,
        }
    }

    /// The op's byte range `(off, len)`, for ops that have one.
    pub fn range(&self) -> Option<(u64, u64)> {
        self.clone().range_mut().map(|(o, l)| (*o, *l))
    }

    /// Mutable access to the op's byte range `(off, len)`, for ops that have one.
    pub fn range_mut(&mut self) -> Option<(&mut u64, &mut u64)> {
        match self {
            Op::Write { off, len, .. }
            | Op::Read { off, len, .. }
            | Op::DirectWrite { off, len, .. }
            | Op::DirectRead { off, len, .. }
            | Op::MmapWrite { off, len, .. }
            | Op::MmapRead { off, len, .. }
            | Op::Fallocate { off, len, .. }
            | Op::PunchHole { off, len, .. }
            | Op::ZeroRange { off, len, .. }
            | Op::Flush { off, len, .. } => Some((off, len)),
            _ => None,
        }
    }
}

impl fmt::Display for Op {
    /// The script form of the op, e.g. `write f0 0x0 0x1400 sync`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let k = self.kind().keyword();
        match *self {
            Op::Write {
                file,
                off,
                len,
                sync,
            } => {
                write!(
                    f,
                    "{k} f{file} {off:#x} {len:#x}{}",
                    if sync { " sync" } else { "" }
                )
            }
            Op::Read { file, off, len }
            | Op::DirectWrite { file, off, len }
            | Op::DirectRead { file, off, len }
            | Op::MmapWrite { file, off, len }
            | Op::MmapRead { file, off, len }
            | Op::PunchHole { file, off, len }
            | Op::Flush { file, off, len } => write!(f, "{k} f{file} {off:#x} {len:#x}"),
            Op::Fallocate {
                file,
                off,
                len,
                keep_size,
            }
            | Op::ZeroRange {
                file,
                off,
                len,
                keep_size,
            } => {
                write!(
                    f,
                    "{k} f{file} {off:#x} {len:#x}{}",
                    if keep_size { " keep-size" } else { "" }
                )
            }
            Op::Truncate { file, size } => write!(f, "{k} f{file} {size:#x}"),
            Op::CompleteIo { n } => write!(f, "{k} {n}"),
            Op::Reclaim { file, folio } => write!(f, "{k} f{file} {folio}"),
            Op::Fsync { file } | Op::EvictInode { file } | Op::JournalCommit { file } => {
                write!(f, "{k} f{file}")
            }
            Op::CorruptAllocBtree
            | Op::RepairAllocBtree
            | Op::Crash {
                land: 0,
                torn: 0,
                tear: 0,
            } => f.write_str(k),
            Op::Crash {
                land,
                torn: 0,
                tear: 0,
            } => write!(f, "{k} {land:#x}"),
            Op::Crash { land, torn, tear } => write!(f, "{k} {land:#x} torn {torn:#x} {tear:#x}"),
        }
    }
}

/// What an op returned.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Outcome {
    /// Success with a count: bytes written, IOs completed, folios evicted (see `SPEC.md`).
    Done(u64),
    /// Success with the bytes a read returned.
    Data(Vec<u8>),
    /// Failure.
    Err(Errno),
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Outcome::Done(n) => write!(f, "ok {n:#x}"),
            Outcome::Data(d) => {
                write!(
                    f,
                    "data {:#x} bytes crc32c {:08x}",
                    d.len(),
                    crate::checksum::crc32c(d)
                )
            }
            Outcome::Err(e) => write!(f, "err {e}"),
        }
    }
}
