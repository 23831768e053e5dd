//! Commit points of concurrent runs.
//!
//! In a concurrent run the implementation records one [`Step`] at every commit point, inside the
//! lock that makes that step atomic, so the log's order is an order in which the steps really
//! took effect. The runner adds [`Step::Begin`] and [`Step::End`] around every op. The reference
//! then replays the steps in log order with its own step API and must reach the same outcomes
//! and the same end state; every step tagged with an op must lie between that op's `Begin` and
//! `End`.
//!
//! Which steps each op records (always ending with exactly one [`Step::Op`]):
//!
//! | op | steps |
//! |---|---|
//! | `Write` | `WriteBegin`, then per folio `Complete` (its writeback wait, if it waited), `Instantiate` (a folio left cached by a retry after a stale mapping) and `WriteFolio`; `WritePunch` if it stopped short of what it reserved; `sync`: the `Writeback`s and `Complete`s of its flush; `Op` |
//! | `Read` | per folio `Instantiate` (if it instantiated) and `ReadFolio`; `Op` |
//! | `MmapWrite` | `Instantiate` (if it instantiated), `Complete` (wait), `Op` |
//! | `MmapRead` | `Instantiate` (if it instantiated), `Op` |
//! | `DirectWrite` / `DirectRead` / `Fsync` / `EvictInode` | the `Writeback`s / `Commit` and `Complete`s of the flush; `Op` |
//! | `Flush` | `Writeback`s or `Commit`; `Op` |
//! | `CompleteIo` | `Complete`s; `Op` |
//! | `PunchHole` / `ZeroRange` / `Truncate` | `Complete`s (waits); `Op` |
//! | `Crash` | per in-flight IO, oldest first: `Complete` (landed whole), `Lost` or `Torn`; `Op` (the memory loss and the mount) |
//! | all others | `Op` |
//!
//! A fault that finds its folio gone after instantiating it faults it in again (a second
//! `Instantiate`). An op waits (records `Complete`) only for folios of its own file and range;
//! the reference's replayer (`reference::model::replay`) refuses any other.

use crate::op::FileId;
use std::fmt;

/// One recorded commit point.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Step {
    /// Op `seq` was called (recorded by the runner).
    Begin { seq: u32 },
    /// Op `seq` returned (recorded by the runner).
    End { seq: u32 },
    /// Buffered write `seq` checked its arguments and reserved (ordinary file) or allocated
    /// (journaled data) its `Hole` blocks. On failure the op records `Op` next.
    WriteBegin { seq: u32 },
    /// Buffered write `seq` copied its bytes into `folio` (instantiating it if absent), dirtied
    /// them, and extended the size to the end of what it has copied so far.
    WriteFolio { seq: u32, folio: u64 },
    /// Buffered write `seq` stopped short of its range (a folio's re-reservation failed): the
    /// `Delalloc` blocks of the part it did not copy that are not dirty became holes again and
    /// their reservation was released (`iomap_file_buffered_write_punch_delalloc`).
    WritePunch { seq: u32 },
    /// Buffered read `seq` copied its bytes out of `folio` (instantiating it if absent).
    ReadFolio { seq: u32, folio: u64 },
    /// Fault `seq` instantiated `folio` of `file`.
    Instantiate { seq: u32, file: FileId, folio: u64 },
    /// Op `seq` wrote back `folio` of `file`: submitted its IO, or failed and applied the policy.
    Writeback { seq: u32, file: FileId, folio: u64 },
    /// Op `seq` completed the in-flight IO of `folio` of `file` (CompleteIo, or a wait).
    Complete { seq: u32, file: FileId, folio: u64 },
    /// Op `seq` committed the journal transaction of `file`.
    Commit { seq: u32, file: FileId },
    /// Crash `seq` lost the in-flight IO of `folio` of `file` (the oldest left): nothing of it
    /// reached the disk. A whole landing is an ordinary `Complete` of the crash.
    Lost { seq: u32, file: FileId, folio: u64 },
    /// Crash `seq` tore the in-flight IO of `folio` of `file` (the oldest left): the IO's blocks
    /// in `landed` (bit `i` = block `i` of the folio) reached the disk, the others did not, and
    /// the IO never completed.
    Torn {
        seq: u32,
        file: FileId,
        folio: u64,
        landed: u32,
    },
    /// The rest of op `seq` took effect here, atomically; its outcome is decided here.
    Op { seq: u32 },
}

impl Step {
    /// The op this step belongs to.
    pub fn seq(&self) -> u32 {
        match *self {
            Step::Begin { seq }
            | Step::End { seq }
            | Step::WriteBegin { seq }
            | Step::WriteFolio { seq, .. }
            | Step::WritePunch { seq }
            | Step::ReadFolio { seq, .. }
            | Step::Instantiate { seq, .. }
            | Step::Writeback { seq, .. }
            | Step::Complete { seq, .. }
            | Step::Commit { seq, .. }
            | Step::Lost { seq, .. }
            | Step::Torn { seq, .. }
            | Step::Op { seq } => seq,
        }
    }
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Step::Begin { seq } => write!(f, "#{seq} begin"),
            Step::End { seq } => write!(f, "#{seq} end"),
            Step::WriteBegin { seq } => write!(f, "#{seq} write-begin"),
            Step::WriteFolio { seq, folio } => write!(f, "#{seq} write-folio {folio}"),
            Step::WritePunch { seq } => write!(f, "#{seq} write-punch"),
            Step::ReadFolio { seq, folio } => write!(f, "#{seq} read-folio {folio}"),
            Step::Instantiate { seq, file, folio } => {
                write!(f, "#{seq} instantiate f{file} folio {folio}")
            }
            Step::Writeback { seq, file, folio } => {
                write!(f, "#{seq} writeback f{file} folio {folio}")
            }
            Step::Complete { seq, file, folio } => {
                write!(f, "#{seq} complete-io f{file} folio {folio}")
            }
            Step::Commit { seq, file } => write!(f, "#{seq} journal-commit f{file}"),
            Step::Lost { seq, file, folio } => write!(f, "#{seq} lost-io f{file} folio {folio}"),
            Step::Torn {
                seq,
                file,
                folio,
                landed,
            } => write!(f, "#{seq} torn-io f{file} folio {folio} landed {landed:#x}"),
            Step::Op { seq } => write!(f, "#{seq} commit"),
        }
    }
}
