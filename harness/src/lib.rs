//! wbfuzz: differential fuzzing of a filesystem's buffered write / writeback / delalloc path.
//!
//! - [`fs`]: the optimized concurrent implementation under test (XFS + iomap style).
//! - [`input`]: binary input decoding (`arbitrary`) and the `.wbf` script format.
//! - [`oracle`]: runs both models and diffs them after every op.
//! - [`report`]: divergence reports.
//! - [`bugs`]: the bug catalogue switches.
//! - [`kernel`]: the same inputs on a real kernel's XFS, ext4 or btrfs, the reference as oracle.

pub mod bench;
pub mod concurrent;
pub mod exec;
pub mod hunt;
pub mod input;
pub mod kernel;
pub mod minimize;
pub mod oracle;
pub mod report;
pub mod schedule;
pub mod snapshot;

/// The implementation under test (the `wbfuzz-fs` crate).
pub use wbfs as fs;
/// The bug catalogue switches of the implementation.
pub use wbfs::bugs;
