//! Every integration test of the `wbfuzz` crate, in one test binary (one link instead of one
//! per file). Each module is one concern; `cargo test -p wbfuzz --test all MODULE::` runs one.

mod cli;
mod corpus;
mod crash_concurrent;
mod determinism;
mod distilled;
mod fs_ops;
mod fs_shuttle;
mod fs_threads;
mod fsx_import;
mod input_roundtrip;
mod input_script;
mod kernel;
mod minimize;
mod pct;
mod race_rule;
mod replay_oracle;
mod report;
mod schedule_record;
mod signal;
mod stray_write;
mod stress;
