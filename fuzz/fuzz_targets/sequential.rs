//! libFuzzer target: one thread, every op diffed against the reference. Bug switches come from
//! `WBFUZZ_BUGS` (e.g. `WBFUZZ_BUGS=unstable-pages cargo fuzz run sequential`).
#![no_main]
use libfuzzer_sys::fuzz_target;
use wbfuzz::exec::{fuzz_one, Target};

fuzz_target!(|data: &[u8]| fuzz_one(Target::Sequential, data));
