//! AFL++ target: the body of the libFuzzer `sequential` target (one thread, every op diffed
//! against the reference) under `afl::fuzz!`. Inputs are raw bytes decoded by the shared code, so
//! `corpus/sequential/` seeds both engines. Bug switches come from `WBFUZZ_BUGS`.
//!
//! ```text
//! cd fuzz && cargo afl build --release --no-default-features --features afl
//! cargo afl fuzz -i ../corpus/sequential -o afl-out target/release/afl_sequential
//! ```
use wbfuzz::exec::{fuzz_one, Target};

fn main() {
    afl::fuzz!(|data: &[u8]| {
        fuzz_one(Target::Sequential, data);
    });
}
