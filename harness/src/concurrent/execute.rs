//! Execution of a concurrent run: the implementation under shuttle (or on real threads).
//!
//! The implementation runs inside one shuttle execution, one shuttle thread per input thread,
//! under a [`ByteScheduler`] that reads the input's schedule bytes (or one of shuttle's own
//! schedulers). It records a [`Step`] at every commit point; the runner brackets each op with
//! `Begin` and `End`. After the threads join, the main task runs the epilogue (numbered in
//! [`crate::epilogue`]), still recorded, and captures a [`Snapshot`].
//!
//! An execution that produced nothing is an [`Abort`], classified by how it ended, not by any
//! message: a panic of the implementation is caught where it happens (in the task) and kept; a
//! shuttle failure after [`STEP_BOUND`] scheduling decisions (counted by our scheduler wrapper)
//! is the step bound; any other shuttle failure with no panic of ours is its deadlock detection
//! (all threads blocked).
//!
//! Locks: none across executions. Several shuttle executions run at once in one process (one
//! per hunt worker thread): shuttle's execution state and the sync facade's mode are
//! thread-local, and the process-wide panic hook is installed once ([`install_quiet_hook`]).
//! This needs generator 0.8.12 or later: earlier versions swapped the process-wide hook out and
//! back around every cancelled continuation, which is a race between threads (it could leave a
//! silent or the default hook installed), so executions had to be serialized.

use crate::bugs::Bugs;
use crate::epilogue::epilogue;
use crate::fs::{sync, Fs};
use crate::schedule::{ByteScheduler, Decision, PlanScheduler, Recorder};
use crate::snapshot::Snapshot;
use reference::{Input, Outcome, Step};
use std::collections::HashMap;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

/// Scheduling points one concurrent run may take before it is rejected as too long.
pub const STEP_BOUND: usize = 200_000;

/// What the implementation's execution produced.
pub(super) struct Execution {
    /// The commit log, in commit order.
    pub log: Vec<Step>,
    /// Every op's outcome by sequence number.
    pub outcomes: HashMap<u32, Outcome>,
    /// The implementation's end state.
    pub snapshot: Snapshot,
}

/// Why an execution produced nothing to compare.
pub(super) enum Abort {
    /// shuttle failed the execution with no panic of the implementation: its deadlock detection
    /// (every thread blocked; a finding). shuttle's description, for the report.
    Deadlock(String),
    /// The implementation panicked (a finding): the panic's message.
    Panic(String),
    /// Failed at the step bound (this many scheduling decisions): the input is rejected.
    StepBound(usize),
}

/// The first panic of the implementation in the current execution, caught in the task where it
/// happened. Only string payloads are the implementation's: the generator crate unwinds
/// cancelled continuations with a payload of its own, which passes through untouched.
type PanicSlot = Arc<Mutex<Option<String>>>;

/// Runs `f`, keeping the message of a panic of the implementation in `slot`, then unwinding on.
fn catching<T>(slot: &PanicSlot, f: impl FnOnce() -> T) -> T {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(v) => v,
        Err(p) => {
            if let Some(msg) = panic_message(&*p) {
                if let Ok(mut s) = slot.lock() {
                    s.get_or_insert(msg);
                }
            }
            std::panic::resume_unwind(p)
        }
    }
}

thread_local! {
    static QUIET: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

type Hook = dyn Fn(&std::panic::PanicHookInfo<'_>) + Send + Sync;

/// The hook wbfuzz keeps installed: silent for panics inside concurrent executions (the runner
/// catches and reports them itself) and for the generator crate's own unwinding of suspended
/// continuations; everything else goes to the hook that was there first (std's printer).
fn quiet_hook() -> &'static std::sync::Arc<Hook> {
    static HOOK: std::sync::OnceLock<std::sync::Arc<Hook>> = std::sync::OnceLock::new();
    HOOK.get_or_init(|| {
        let first: std::sync::Arc<Hook> = std::sync::Arc::from(std::panic::take_hook());
        std::sync::Arc::new(move |info| {
            let internal = info
                .location()
                .is_some_and(|l| l.file().contains("/generator-"));
            if !QUIET.with(|q| q.get()) && !internal {
                first(info);
            }
        })
    })
}

/// Installs [`quiet_hook`] as the process-wide panic hook, once. generator (0.8.12 on) and
/// shuttle each wrap the hook they find once, and never swap it again, so the hook stays ours
/// (possibly wrapped) for the life of the process, whatever threads run executions.
fn install_quiet_hook() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let hook = std::sync::Arc::clone(quiet_hook());
        std::panic::set_hook(Box::new(move |info| hook(info)));
    });
}

/// The message of a panic raised by `panic!` (and everything built on it), `None` for other
/// payloads.
fn panic_message(p: &(dyn std::any::Any + Send)) -> Option<String> {
    if let Some(s) = p.downcast_ref::<&str>() {
        Some(s.to_string())
    } else {
        p.downcast_ref::<String>().cloned()
    }
}

/// The body of a concurrent execution: one thread per input thread (spawned through the sync
/// facade, so shuttle tasks inside a shuttle execution and real threads outside one), each op
/// bracketed by `Begin`/`End`, then the epilogue and the snapshot.
fn run_body(input: &Input, bugs: Bugs, panics: &PanicSlot) -> Execution {
    let fs = Arc::new(Fs::new(&input.config, bugs));
    fs.start_recording();
    let tail = epilogue(input);
    let handles: Vec<_> = input
        .threads
        .iter()
        .enumerate()
        .map(|(t, ops)| {
            let fs = Arc::clone(&fs);
            let first = input.seq_of(t, 0);
            let ops = ops.clone();
            let panics = Arc::clone(panics);
            sync::thread::spawn(move || {
                catching(&panics, || {
                    ops.iter()
                        .enumerate()
                        .map(|(k, op)| {
                            let seq = first + k as u32;
                            crate::schedule::note_op(k as u32);
                            fs.record(Step::Begin { seq });
                            let o = fs.apply(seq, op);
                            fs.record(Step::End { seq });
                            (seq, o)
                        })
                        .collect::<Vec<_>>()
                })
            })
        })
        .collect();
    let mut outcomes = HashMap::new();
    for h in handles {
        match h.join() {
            Ok(list) => outcomes.extend(list),
            // Surface the thread's panic as the execution's.
            Err(p) => std::panic::resume_unwind(p),
        }
    }
    for (seq, op) in &tail {
        fs.record(Step::Begin { seq: *seq });
        outcomes.insert(*seq, fs.apply(*seq, op));
        fs.record(Step::End { seq: *seq });
    }
    let snapshot = Snapshot::capture(&*fs);
    Execution {
        log: fs.take_log(),
        outcomes,
        snapshot,
    }
}

/// Who decides the interleaving of a concurrent run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sched {
    /// The input's schedule bytes ([`ByteScheduler`]): what fuzzing uses.
    Bytes,
    /// shuttle's random scheduler with this seed (a baseline for benchmarks).
    Random(u64),
    /// shuttle's PCT scheduler (depth 3) with this seed (a baseline for benchmarks).
    Pct(u64),
}

/// Runs `input`'s threads under `sched` in one shuttle execution; `record` also logs the
/// scheduler's decisions.
pub(super) fn execute(
    input: &Input,
    bugs: Bugs,
    sched: Sched,
    record: Option<Arc<Mutex<Vec<Decision>>>>,
) -> Result<Execution, Abort> {
    use shuttle::scheduler::{PctScheduler, RandomScheduler};
    let scheduler: Box<dyn shuttle::scheduler::Scheduler + Send> = match (sched, record) {
        (Sched::Bytes, None) => Box::new(ByteScheduler::new(&input.schedule)),
        (Sched::Bytes, Some(log)) => {
            Box::new(Recorder::new(ByteScheduler::new(&input.schedule), log))
        }
        (Sched::Random(seed), None) => Box::new(RandomScheduler::new_from_seed(seed, 1)),
        (Sched::Random(seed), Some(log)) => {
            Box::new(Recorder::new(RandomScheduler::new_from_seed(seed, 1), log))
        }
        (Sched::Pct(seed), None) => Box::new(PctScheduler::new_from_seed(seed, 3, 1)),
        (Sched::Pct(seed), Some(log)) => {
            Box::new(Recorder::new(PctScheduler::new_from_seed(seed, 3, 1), log))
        }
    };
    execute_under(input, bugs, scheduler)
}

/// Runs `input` following `plan` (chosen task ids, one per decision: an edited recording, see
/// [`PlanScheduler`]), recording the decisions taken into `log`.
pub(super) fn execute_planned(
    input: &Input,
    bugs: Bugs,
    plan: Vec<usize>,
    log: Arc<Mutex<Vec<Decision>>>,
) -> Result<Execution, Abort> {
    execute_under(
        input,
        bugs,
        Box::new(Recorder::new(PlanScheduler::new(plan), log)),
    )
}

fn execute_under(
    input: &Input,
    bugs: Bugs,
    scheduler: Box<dyn shuttle::scheduler::Scheduler + Send>,
) -> Result<Execution, Abort> {
    crate::schedule::set_in_execution(true);
    let decisions = Arc::new(AtomicUsize::new(0));
    let scheduler = Counting {
        inner: scheduler,
        decisions: Arc::clone(&decisions),
    };
    install_quiet_hook();
    let result: Arc<Mutex<Option<Execution>>> = Arc::new(Mutex::new(None));
    let panics: PanicSlot = Arc::new(Mutex::new(None));
    let out = Arc::clone(&result);
    let caught = Arc::clone(&panics);
    let shared = Arc::new(input.clone());
    let mut config = shuttle::Config::new();
    // shuttle fails the execution at the bound (before its next decision): `Counting` tells
    // that failure apart from every other by the decisions it counted.
    config.max_steps = shuttle::MaxSteps::FailAfter(STEP_BOUND);
    config.failure_persistence = shuttle::FailurePersistence::None;
    config.silence_warnings = true;
    let runner = shuttle::Runner::new(scheduler, config);
    let body = move || {
        let e = catching(&caught, || run_body(&shared, bugs, &caught));
        if let Ok(mut slot) = out.lock() {
            *slot = Some(e);
        }
    };
    QUIET.with(|q| q.set(true));
    let scope = sync::ShuttleScope::enter();
    let r = catch_unwind(AssertUnwindSafe(move || runner.run(body)));
    crate::schedule::set_in_execution(false);
    drop(scope);
    // An aborted execution's continuations unwind when the runner is dropped (inside the
    // closure above); the payload is dropped here too, before the hook speaks again.
    let failure = r.err().map(|p| panic_message(&*p).unwrap_or_default());
    QUIET.with(|q| q.set(false));
    let panicked = panics.lock().ok().and_then(|mut s| s.take());
    let taken = result.lock().ok().and_then(|mut s| s.take());
    let at_bound = decisions.load(Ordering::SeqCst) >= STEP_BOUND;
    match (panicked, at_bound, failure, taken) {
        (Some(msg), _, _, _) => Err(Abort::Panic(msg)),
        (None, true, Some(_), _) => Err(Abort::StepBound(STEP_BOUND)),
        (None, false, Some(shuttle_says), _) => Err(Abort::Deadlock(shuttle_says)),
        (None, _, None, Some(e)) => Ok(e),
        // shuttle returned without failing and without our result: nothing ran to the end.
        (None, _, None, None) => Err(Abort::Deadlock("the execution ended early".into())),
    }
}

/// The scheduler of an execution, counting its decisions: shuttle fails an execution at
/// [`STEP_BOUND`] decisions, and this count is how that failure is told from the others.
struct Counting {
    inner: Box<dyn shuttle::scheduler::Scheduler + Send>,
    decisions: Arc<AtomicUsize>,
}

impl shuttle::scheduler::Scheduler for Counting {
    fn new_execution(&mut self) -> Option<shuttle::scheduler::Schedule> {
        self.inner.new_execution()
    }

    fn next_task(
        &mut self,
        runnable: &[&shuttle::scheduler::Task],
        current: Option<shuttle::scheduler::TaskId>,
        is_yielding: bool,
    ) -> Option<shuttle::scheduler::TaskId> {
        self.decisions.fetch_add(1, Ordering::SeqCst);
        self.inner.next_task(runnable, current, is_yielding)
    }

    fn next_u64(&mut self) -> u64 {
        self.inner.next_u64()
    }
}

/// Runs the implementation on real OS threads (std primitives): the interleaving is the OS's,
/// not reproducible, but the commit log still records the order that happened, so the same
/// replay checks it. For stress tests; fuzzing uses shuttle ([`execute`]).
pub(super) fn execute_real_threads(input: &Input, bugs: Bugs) -> Result<Execution, Abort> {
    let panics: PanicSlot = Arc::new(Mutex::new(None));
    catch_unwind(AssertUnwindSafe(|| run_body(input, bugs, &panics))).map_err(|p| {
        let caught = panics.lock().ok().and_then(|mut s| s.take());
        Abort::Panic(caught.or_else(|| panic_message(&*p)).unwrap_or_default())
    })
}
