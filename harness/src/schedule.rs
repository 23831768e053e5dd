//! Fuzz-chosen thread schedules: a shuttle [`Scheduler`] whose every choice is read from the
//! input's schedule bytes, so the fuzzer explores interleavings as it explores ops.
//!
//! Encoding, one byte per context switch decision: the low nibble `k` says "let the chosen
//! thread run `RUNS[k]` more scheduling points before the next decision" (0 to 4096, short runs
//! finely graded, long runs coarsely), the high nibble `t` picks
//! the next thread as `runnable[t % runnable.len()]`. Short byte strings therefore express the
//! interleavings that matter (run A up to its mapping, switch to B for a few steps, back to A)
//! and a single mutated byte moves one switch. When the bytes run out, the fallback is
//! deterministic and serial: keep running the current thread while it can run, else the first
//! runnable one.
//!
//! Invariants: a scheduler is used for exactly one execution; every choice is a pure function of
//! the bytes and the sequence of runnable sets, so a run is a pure function of its input.

use shuttle::scheduler::{Schedule, Scheduler, Task, TaskId};

/// How many more scheduling points the chosen thread runs, by low nibble: mostly short runs
/// (precise switches right after a mapping or a folio), with a tail of long ones, so random
/// bytes also give the few-preemption schedules (one thread runs far, then one switch at the
/// right place) that races like seed 000's need, as PCT does.
const RUNS: [u32; 16] = [
    0, 1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 64, 128, 256, 1024, 4096,
];

/// Reads scheduling decisions from bytes.
#[derive(Clone, Debug)]
pub struct ByteScheduler {
    bytes: Vec<u8>,
    pos: usize,
    run_left: u32,
    started: bool,
    rng: u64,
    decisions: u64,
}

impl ByteScheduler {
    /// A scheduler that follows `bytes`.
    pub fn new(bytes: &[u8]) -> ByteScheduler {
        ByteScheduler {
            bytes: bytes.to_vec(),
            pos: 0,
            run_left: 0,
            started: false,
            rng: 0x5EED,
            decisions: 0,
        }
    }

    /// Scheduling decisions taken so far (for step accounting in reports).
    pub fn decisions(&self) -> u64 {
        self.decisions
    }
}

impl Scheduler for ByteScheduler {
    fn new_execution(&mut self) -> Option<Schedule> {
        if self.started {
            return None;
        }
        self.started = true;
        Some(Schedule::new(0))
    }

    fn next_task(
        &mut self,
        runnable: &[&Task],
        current: Option<TaskId>,
        _is_yielding: bool,
    ) -> Option<TaskId> {
        self.decisions += 1;
        let current_runnable = current.filter(|c| runnable.iter().any(|t| t.id() == *c));
        if let Some(c) = current_runnable {
            if self.run_left > 0 {
                self.run_left -= 1;
                return Some(c);
            }
        }
        match self.bytes.get(self.pos) {
            Some(&b) => {
                self.pos += 1;
                self.run_left = RUNS[(b & 0x0f) as usize];
                Some(runnable[(b >> 4) as usize % runnable.len()].id())
            }
            None => {
                self.run_left = u32::MAX;
                Some(current_runnable.unwrap_or_else(|| runnable[0].id()))
            }
        }
    }

    fn next_u64(&mut self) -> u64 {
        // Nothing in wbfuzz asks shuttle for randomness; keep it deterministic all the same.
        self.rng = self
            .rng
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        self.rng
    }
}
