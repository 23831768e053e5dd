//! AFL++ target: the body of the libFuzzer `concurrent` target (two to four threads under a
//! schedule read from the input) under `afl::fuzz!`. Inputs are raw bytes decoded by the shared
//! code, so `corpus/concurrent/` seeds both engines. Bug switches come from `WBFUZZ_BUGS`.
//!
//! ```text
//! cd fuzz && cargo afl build --release --no-default-features --features afl
//! cargo afl fuzz -i ../corpus/concurrent -o afl-out target/release/afl_concurrent
//! ```
use wbfuzz::exec::{fuzz_one, Target};

fn main() {
    afl::fuzz!(|data: &[u8]| {
        fuzz_one(Target::Concurrent, data);
    });
}
