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

/// Appends the bytes that give the thread picked by nibble `t` (as `runnable[t % len]`) a run of
/// exactly `points` scheduling points from the next decision on, the longest runs first (used by
/// generators that place context switches at chosen points). If the thread blocks or ends early,
/// the remaining bytes pick whoever is `runnable[t % len]` then.
pub fn encode_run(t: u8, points: u64, out: &mut Vec<u8>) {
    let mut left = points;
    while left > 0 {
        // Every byte is one decision point plus RUNS[k] more.
        let k = RUNS.iter().rposition(|&r| u64::from(r) < left).unwrap_or(0);
        out.push((t & 0x0f) << 4 | k as u8);
        left -= u64::from(RUNS[k]) + 1;
    }
}

/// `Scheduler::new_execution` of a scheduler made for exactly one execution: the first call
/// starts it, every later one declines.
fn single_execution(started: &mut bool) -> Option<Schedule> {
    if std::mem::replace(started, true) {
        return None;
    }
    Some(Schedule::new(0))
}

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
        single_execution(&mut self.started)
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

/// One scheduling decision as a scheduler took it: the runnable tasks in shuttle's order, the
/// task that was running, and the task chosen.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Decision {
    /// Runnable task ids, in the order shuttle passed them.
    pub runnable: Vec<usize>,
    /// The task that ran before the decision.
    pub current: Option<usize>,
    /// The task chosen.
    pub chosen: usize,
    /// The op (index in its input thread) the chosen task was in when it was chosen, as the
    /// runner noted it ([`note_op`]); `None` before its first op and for the main task.
    pub op: Option<u32>,
}

thread_local! {
    /// Per shuttle task id: the op index it is running ([`note_op`]). shuttle runs every task of
    /// an execution on the OS thread that runs the execution, so this is per execution.
    static TASK_OP: std::cell::RefCell<Vec<Option<u32>>> = const { std::cell::RefCell::new(Vec::new()) };
}

thread_local! {
    /// Whether a shuttle execution runs on this OS thread (its tasks run here too).
    static IN_EXECUTION: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Marks this OS thread as running a shuttle execution (`true`, forgetting every noted op) or
/// not (`false`): [`note_op`] asks shuttle for the current task only inside one.
pub fn set_in_execution(on: bool) {
    IN_EXECUTION.with(|c| c.set(on));
    TASK_OP.with(|t| t.borrow_mut().clear());
}

/// Notes that the current shuttle task starts op `k` of its thread (outside a shuttle
/// execution: nothing). Read by [`Recorder`] to attribute decisions to ops, so the minimizer can
/// drop an op's scheduling decisions with the op.
pub fn note_op(k: u32) {
    if !IN_EXECUTION.with(|c| c.get()) {
        return;
    }
    if let Some(id) = shuttle::current::get_current_task() {
        let id = usize::from(id);
        TASK_OP.with(|t| {
            let mut t = t.borrow_mut();
            if t.len() <= id {
                t.resize(id + 1, None);
            }
            t[id] = Some(k);
        });
    }
}

fn op_of(task: usize) -> Option<u32> {
    TASK_OP.with(|t| t.borrow().get(task).copied().flatten())
}

/// Follows a plan of chosen task ids, one per decision (a recorded run's choices, edited): at
/// decision `i` it picks `plan[i]` if runnable, else keeps the current task, else the first
/// runnable; after the plan, the serial fallback of [`ByteScheduler`]. Recorded and re-encoded
/// ([`encode_decisions`]), it turns an edited interleaving into schedule bytes.
#[derive(Clone, Debug)]
pub struct PlanScheduler {
    plan: Vec<usize>,
    pos: usize,
    started: bool,
}

impl PlanScheduler {
    /// A scheduler following `plan`.
    pub fn new(plan: Vec<usize>) -> Self {
        PlanScheduler {
            plan,
            pos: 0,
            started: false,
        }
    }
}

impl Scheduler for PlanScheduler {
    fn new_execution(&mut self) -> Option<Schedule> {
        single_execution(&mut self.started)
    }

    fn next_task(
        &mut self,
        runnable: &[&Task],
        current: Option<TaskId>,
        _is_yielding: bool,
    ) -> Option<TaskId> {
        let want = self.plan.get(self.pos).copied();
        self.pos += 1;
        let current = current.filter(|c| runnable.iter().any(|t| t.id() == *c));
        let pick = want.and_then(|w| runnable.iter().find(|t| usize::from(t.id()) == w));
        Some(match (pick, current) {
            (Some(t), _) => t.id(),
            (None, Some(c)) => c,
            (None, None) => runnable[0].id(),
        })
    }

    fn next_u64(&mut self) -> u64 {
        0x5EED
    }
}

/// Wraps any scheduler and records its decisions, so that an execution driven by another
/// scheduler (shuttle's PCT or random ones, as hunt strategies) can be re-expressed as schedule
/// bytes with [`encode_decisions`].
pub struct Recorder<S> {
    inner: S,
    log: std::sync::Arc<std::sync::Mutex<Vec<Decision>>>,
}

impl<S> Recorder<S> {
    /// Records `inner`'s decisions into `log`.
    pub fn new(inner: S, log: std::sync::Arc<std::sync::Mutex<Vec<Decision>>>) -> Self {
        Recorder { inner, log }
    }
}

impl<S: Scheduler> Scheduler for Recorder<S> {
    fn new_execution(&mut self) -> Option<Schedule> {
        self.inner.new_execution()
    }

    fn next_task(
        &mut self,
        runnable: &[&Task],
        current: Option<TaskId>,
        is_yielding: bool,
    ) -> Option<TaskId> {
        let chosen = self.inner.next_task(runnable, current, is_yielding)?;
        if let Ok(mut log) = self.log.lock() {
            log.push(Decision {
                runnable: runnable.iter().map(|t| usize::from(t.id())).collect(),
                current: current.map(usize::from),
                chosen: usize::from(chosen),
                op: op_of(usize::from(chosen)),
            });
        }
        Some(chosen)
    }

    fn next_u64(&mut self) -> u64 {
        self.inner.next_u64()
    }
}

/// Schedule bytes that make [`ByteScheduler`] take exactly `decisions` (which must come from one
/// execution of the same input: same runnable sets in the same order), then fall back to its
/// serial choice. Decisions after the last one that differs from that fallback are left to it, so
/// the bytes stop there. Each byte picks the chosen task by its index in the runnable list and
/// keeps it for the longest run that the recording keeps it for.
pub fn encode_decisions(decisions: &[Decision]) -> Vec<u8> {
    // The fallback's choice at each decision: keep the current task if runnable, else the first.
    let fallback = |d: &Decision| match d.current {
        Some(c) if d.runnable.contains(&c) => c,
        _ => d.runnable.first().copied().unwrap_or(d.chosen),
    };
    let Some(last) = decisions.iter().rposition(|d| d.chosen != fallback(d)) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    let mut run_left = 0u64;
    for (i, d) in decisions[..=last].iter().enumerate() {
        let cur_runnable = d.current.filter(|c| d.runnable.contains(c));
        if cur_runnable.is_some() && run_left > 0 {
            // ByteScheduler keeps the current task here; the runs below never overshoot.
            debug_assert_eq!(cur_runnable, Some(d.chosen));
            run_left -= 1;
            continue;
        }
        // A nibble names the runnable index: fine for up to 16 tasks (wbfuzz runs at most 5).
        let t = d.runnable.iter().position(|&x| x == d.chosen).unwrap_or(0);
        debug_assert!(t < 16, "more than 16 runnable tasks");
        // How many of the following decisions keep the chosen task while it stays runnable.
        let keep = decisions[i + 1..]
            .iter()
            .take_while(|n| n.chosen == d.chosen && n.runnable.contains(&d.chosen))
            .count() as u64;
        let k = RUNS
            .iter()
            .rposition(|&r| u64::from(r) <= keep)
            .unwrap_or(0);
        out.push(((t & 0x0f) as u8) << 4 | k as u8);
        run_left = u64::from(RUNS[k]);
    }
    out
}

/// PCT (Burckhardt et al., "A Randomized Scheduler with Probabilistic Guarantees of Finding
/// Bugs", ASPLOS 2010) for a single execution: every task gets a random priority, the highest
/// priority runnable task runs, and at `depth - 1` change points drawn uniformly among the
/// first `steps` decisions with more than one runnable task the running task drops below every
/// task. A bug that needs `d` ordering constraints is hit with probability at least
/// `1 / (n * k^(d-1))` for `n` tasks and `k` steps.
///
/// shuttle's own PCT scheduler draws its change points only from the second iteration on (the
/// first one measures the step count), so a scheduler made for one execution, as the hunt makes
/// them, runs with none: each task then runs until it blocks or yields. This one takes the step
/// count as an estimate instead (a change point past the real end changes nothing, so the
/// effective depth of an execution is at most `depth`). Like shuttle's, a yielding task drops
/// too, so spin-waits make progress.
///
/// Invariant: every choice is a pure function of the seed and the runnable sets.
#[derive(Clone, Debug)]
pub struct Pct {
    rng: crate::generators::SplitMix,
    /// Priority per task id; `None` until the task is first seen.
    priorities: Vec<Option<i64>>,
    /// Sorted decision indices at which the running task drops.
    change_points: Vec<u64>,
    /// Decisions with more than one runnable task so far.
    steps: u64,
    /// The next priority a dropped task gets (below every earlier one).
    low: i64,
    started: bool,
}

impl Pct {
    /// A scheduler for one execution with `depth - 1` change points among the first `steps`
    /// contended decisions.
    pub fn new(seed: u64, depth: u32, steps: u64) -> Pct {
        let mut rng = crate::generators::SplitMix::new(seed, 0x9C7);
        let mut change_points: Vec<u64> = (1..depth).map(|_| 1 + rng.below(steps.max(1))).collect();
        change_points.sort_unstable();
        Pct {
            rng,
            priorities: Vec::new(),
            change_points,
            steps: 0,
            low: 0,
            started: false,
        }
    }

    fn priority(&mut self, task: usize) -> i64 {
        if self.priorities.len() <= task {
            self.priorities.resize(task + 1, None);
        }
        match self.priorities[task] {
            Some(p) => p,
            None => {
                // Positive and distinct with overwhelming probability; ties go to the lower id.
                let p = (self.rng.next_u64() >> 2) as i64 + 1;
                self.priorities[task] = Some(p);
                p
            }
        }
    }

    fn drop_task(&mut self, task: usize) {
        self.priority(task);
        self.low -= 1;
        self.priorities[task] = Some(self.low);
    }
}

impl Scheduler for Pct {
    fn new_execution(&mut self) -> Option<Schedule> {
        single_execution(&mut self.started)
    }

    fn next_task(
        &mut self,
        runnable: &[&Task],
        current: Option<TaskId>,
        is_yielding: bool,
    ) -> Option<TaskId> {
        for t in runnable {
            self.priority(usize::from(t.id()));
        }
        if runnable.len() > 1 {
            self.steps += 1;
            // Two change points may fall on one decision (drawn independently): both pass.
            let mut change = false;
            while self.change_points.first().is_some_and(|&c| c <= self.steps) {
                self.change_points.remove(0);
                change = true;
            }
            if let Some(c) = current {
                if change || is_yielding {
                    self.drop_task(usize::from(c));
                }
            }
        }
        runnable
            .iter()
            .max_by_key(|t| {
                let id = usize::from(t.id());
                (self.priorities[id], std::cmp::Reverse(id))
            })
            .map(|t| t.id())
    }

    fn next_u64(&mut self) -> u64 {
        self.rng.next_u64()
    }
}
