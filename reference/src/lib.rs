//! wbfuzz's specification as code: the sequential reference model ([`model::RefFs`]) and, in
//! [`model`], the step API concurrent runs are replayed with.
//!
//! The vocabulary both models share lives in the `wbfuzz-vocab` crate and is re-exported here.
//! The implementation under test (`wbfuzz-fs`) depends on the vocabulary only; this crate never
//! depends on the implementation. Cargo enforces both directions: two independent
//! implementations of one spec is what makes a diff between them mean something.
//!
//! The semantics below are the contract both follow.
#![doc = include_str!("../SPEC.md")]

pub mod model;

pub use vocab::{
    block_digest, crc32c, fill_pattern, pattern_byte, BlockObs, CacheState, Config, Counters,
    Errno, ExtentState, FileId, FileSpec, Geometry, GeometryError, Input, Observe, Op, OpKind,
    Outcome, Policy, Step, Violation, PAGE_SIZE,
};
pub use vocab::{config, errno, geometry, op, pattern, state, step};
