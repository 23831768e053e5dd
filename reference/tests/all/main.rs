//! Every integration test of the reference model, in one test binary (one link instead of one
//! per file). `common` holds the helpers; `cargo test -p wbfuzz-reference --test all MODULE::`
//! runs one module.

mod buffered;
mod common;
mod crash;
mod direct_and_writeback;
mod jdata;
mod replay;
mod robustness;
mod soak;
mod space_ops;
mod steps_concurrent;
