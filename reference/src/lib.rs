//! wbfuzz's specification as code: the vocabulary both models share (geometry, ops, outcomes,
//! observable block states, errors, the data pattern, run inputs) and the sequential reference
//! model ([`model::RefFs`]).
//!
//! The implementation under test (the `wbfuzz` crate's `fs` module) depends on the vocabulary
//! modules only, never on [`model`]; the reference never depends on the implementation. Two
//! independent implementations of one spec is what makes a diff between them mean something.
//!
//! The semantics below are the contract both follow.
#![doc = include_str!("../SPEC.md")]

pub mod config;
pub mod errno;
pub mod geometry;
pub mod model;
pub mod op;
pub mod pattern;
pub mod state;
pub mod step;

pub use config::{Config, FileSpec, Input, Policy};
pub use errno::Errno;
pub use geometry::{Geometry, GeometryError, PAGE_SIZE};
pub use op::{FileId, Op, OpKind, Outcome};
pub use pattern::{fill_pattern, pattern, pattern_byte};
pub use state::{BlockObs, CacheState, Counters, ExtentState, Observe, Violation};
pub use step::Step;
