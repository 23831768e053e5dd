//! libFuzzer target: two to four threads under a schedule read from the input. Bug switches come
//! from `WBFUZZ_BUGS`.
#![no_main]
use libfuzzer_sys::fuzz_target;
use wbfuzz::exec::{fuzz_one, Target};

fuzz_target!(|data: &[u8]| fuzz_one(Target::Concurrent, data));

/// AddressSanitizer's defaults for this target (`ASAN_OPTIONS` still overrides them): no fake
/// stacks for stack-use-after-return. The Rust code is built without them (see
/// `fuzz/rustc-wrapper.sh`); this turns them off for libFuzzer's own C++ too, whose fake-frame
/// garbage collection after every run cost about an eighth of the concurrent target's time.
#[no_mangle]
pub extern "C" fn __asan_default_options() -> *const std::ffi::c_char {
    c"detect_stack_use_after_return=0".as_ptr()
}
