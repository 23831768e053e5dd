//! wbfuzz: differential fuzzing of a filesystem's buffered write / writeback / delalloc path.
//!
//! - [`fs`]: the optimized concurrent implementation under test (XFS + iomap style).
//! - [`input`]: binary input decoding (`arbitrary`) and the `.wbf` script format.
//! - [`oracle`]: runs both models and diffs them after every op; the run's [`oracle::Verdict`].
//! - [`concurrent`]: concurrent runs: execution under shuttle, and the oracle that hands the
//!   commit log to the reference's replayer.
//! - [`distill`]: the fewest inputs covering a corpus's signal (`wbfuzz corpus distill`).
//! - [`epilogue`]: the end-of-run epilogue and the numbering of a run's ops.
//! - [`report`]: divergence reports.
//! - [`bugs`]: the bug catalogue switches.
//! - [`fsx`]: import of xfstests `fsx --record-ops` logs.
//! - [`generators`]: every random choice outside the fuzz engines.
//! - [`kernel`]: the same inputs on a real kernel's XFS, ext4 or btrfs, the reference as oracle.
//! - [`signal`]: the feedback signal of a run (hashed features of what the models observed).
//! - [`mutate`]: structural mutations of inputs for the guided hunt.
//! - [`race_rule`]: which threaded kernel inputs can be judged, and how.

pub mod bench;
pub mod concurrent;
pub mod distill;
pub mod epilogue;
pub mod exec;
pub mod fsx;
pub mod generators;
pub mod hunt;
pub mod input;
pub mod kernel;
pub mod minimize;
pub mod mutate;
pub mod oracle;
pub mod probe;
pub mod race_rule;
pub mod report;
pub mod schedule;
pub mod signal;
pub mod snapshot;

/// The implementation under test (the `wbfuzz-fs` crate).
pub use wbfs as fs;
/// The bug catalogue switches of the implementation.
pub use wbfs::bugs;
