//! libFuzzer target: two to four threads under a schedule read from the input. Bug switches come
//! from `WBFUZZ_BUGS`.
#![no_main]
use libfuzzer_sys::fuzz_target;
use wbfuzz::exec::{fuzz_one, Target};

fuzz_target!(|data: &[u8]| fuzz_one(Target::Concurrent, data));
