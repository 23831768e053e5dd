//! wbfuzz's shared vocabulary: everything both models and the harness must name the same way
//! (geometry, ops, outcomes, observable block states, errors, the data pattern, run inputs, the
//! commit steps of concurrent runs and the one checksum), and nothing else.
//!
//! This crate holds no semantics: the reference model (`wbfuzz-reference`) and the
//! implementation under test (`wbfuzz-fs`) each depend on it and never on each other, so a
//! rule of the specification can live in only one of them.

pub mod checksum;
pub mod config;
pub mod errno;
pub mod geometry;
pub mod op;
pub mod pattern;
pub mod state;
pub mod step;

pub use checksum::{crc32c, Crc32c};
pub use config::{Config, FileSpec, Input, Policy};
pub use errno::Errno;
pub use geometry::{Geometry, GeometryError, PAGE_SIZE};
pub use op::{FileId, Op, OpKind, Outcome};
pub use pattern::{fill_pattern, pattern, pattern_byte, stale_byte};
pub use state::{block_digest, BlockObs, CacheState, Counters, ExtentState, Observe, Violation};
pub use step::Step;
