//! A run's input: geometry, writeback-error policy, files, one op list per thread, schedule bytes.
//!
//! This is the decoded form shared by binary inputs and text scripts; decoding and parsing live in
//! the harness. Op sequence numbers (which select the data pattern) are assigned by position:
//! thread 0's ops are numbered 1, 2, ..., then thread 1's continue the count, and so on.

use crate::geometry::Geometry;
use crate::op::Op;

/// What writeback does when it cannot allocate.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum Policy {
    /// Blocks stay `Delalloc`, dirty and reserved; the error is recorded; nothing is lost.
    #[default]
    KeepDirty,
    /// The failing folio's delalloc blocks are punched and its cached data dropped.
    Invalidate,
}

impl Policy {
    /// Script keyword.
    pub fn keyword(self) -> &'static str {
        match self {
            Policy::KeepDirty => "keep-dirty",
            Policy::Invalidate => "invalidate",
        }
    }

    /// Parses a script keyword.
    pub fn from_keyword(s: &str) -> Option<Policy> {
        match s {
            "keep-dirty" => Some(Policy::KeepDirty),
            "invalidate" => Some(Policy::Invalidate),
            _ => None,
        }
    }
}

/// Per-file flags.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct FileSpec {
    /// Journaled data (the gfs2 jdata analogue): no delalloc, writes go through a transaction.
    pub jdata: bool,
}

/// Everything a model needs to be built: the static part of an input.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Config {
    /// Geometry.
    pub geometry: Geometry,
    /// Writeback error policy.
    pub policy: Policy,
    /// The files, 1 to 4; all start empty.
    pub files: Vec<FileSpec>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            geometry: Geometry::default(),
            policy: Policy::KeepDirty,
            files: vec![FileSpec::default()],
        }
    }
}

/// A whole run.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Default)]
pub struct Input {
    /// The static configuration.
    pub config: Config,
    /// One op list per thread, 1 to 4 threads. One thread means a sequential run.
    pub threads: Vec<Vec<Op>>,
    /// Scheduler choices for concurrent runs (ignored by sequential runs).
    pub schedule: Vec<u8>,
}

impl Input {
    /// The sequence number of op `index` of thread `thread` (1-based, in thread order).
    pub fn seq_of(&self, thread: usize, index: usize) -> u32 {
        let before: usize = self.threads.iter().take(thread).map(Vec::len).sum();
        (before + index + 1) as u32
    }

    /// Total number of ops over all threads.
    pub fn op_count(&self) -> usize {
        self.threads.iter().map(Vec::len).sum()
    }

    /// Every op with its thread and sequence number, thread by thread.
    pub fn numbered_ops(&self) -> impl Iterator<Item = (usize, u32, &Op)> + '_ {
        let mut seq = 0u32;
        self.threads
            .iter()
            .enumerate()
            .flat_map(move |(t, ops)| ops.iter().map(move |op| (t, op)).collect::<Vec<_>>())
            .map(move |(t, op)| {
                seq += 1;
                (t, seq, op)
            })
    }
}
