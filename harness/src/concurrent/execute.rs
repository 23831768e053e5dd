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
//! shuttle failure after [`STEP_BOUND`] scheduling decisions (counted by the runner thread's scheduler)
//! is the step bound; any other shuttle failure with no panic of ours is its deadlock detection
//! (all threads blocked).
//!
//! Executions run on a runner thread per calling thread ([`Session`]), one shuttle `Runner::run`
//! kept going across executions so that shuttle's continuation stacks are reused, not mapped
//! and unmapped per input; the caller blocks until its execution's result comes back.
//!
//! Locks: none across executions. Several shuttle executions run at once in one process (one
//! per hunt worker thread, each on its own runner thread): shuttle's execution state and the
//! sync facade's mode are thread-local, and the process-wide panic hook is installed once ([`install_quiet_hook`]).
//! This needs generator 0.8.12 or later: earlier versions swapped the process-wide hook out and
//! back around every cancelled continuation, which is a race between threads (it could leave a
//! silent or the default hook installed), so executions had to be serialized.

use crate::bugs::Bugs;
use crate::epilogue::epilogue;
use crate::fs::{sync, Fs};
use crate::oracle::{Held, HELD_READ_BYTES};
use crate::schedule::{ByteScheduler, Decision, Pct, PlanScheduler, Recorder};
use crate::snapshot::Snapshot;
use reference::{Input, Step};
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
    pub outcomes: HashMap<u32, Held>,
    /// The implementation's end state.
    pub snapshot: Snapshot,
    /// The implementation's state at each crash's commit point, by the crash's sequence number
    /// (captured inside the crash, every quiescing lock held: the state right after the cut).
    pub crashes: HashMap<u32, Snapshot>,
    /// Contention events of a shuttle execution (for the feedback signal; empty on real
    /// threads, whose held locks the facade cannot see across threads).
    pub contention: Vec<sync::Contention>,
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
    let mut fs = Fs::new(&input.config, bugs);
    let crashes: Arc<Mutex<HashMap<u32, Snapshot>>> = Arc::default();
    let seen = Arc::clone(&crashes);
    fs.set_crash_hook(Box::new(move |fs, seq| {
        let snap = Snapshot::capture(fs);
        if let Ok(mut c) = seen.lock() {
            c.insert(seq, snap);
        }
    }));
    let fs = Arc::new(fs);
    fs.start_recording();
    sync::contention_start();
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
                    let mut budget = HELD_READ_BYTES;
                    ops.iter()
                        .enumerate()
                        .map(|(k, op)| {
                            let seq = first + k as u32;
                            crate::schedule::note_op(k as u32);
                            fs.record(Step::Begin { seq });
                            let o = fs.apply(seq, op);
                            fs.record(Step::End { seq });
                            (seq, Held::keep(o, &mut budget))
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
    let mut budget = HELD_READ_BYTES;
    for (seq, op) in &tail {
        fs.record(Step::Begin { seq: *seq });
        outcomes.insert(*seq, Held::keep(fs.apply(*seq, op), &mut budget));
        fs.record(Step::End { seq: *seq });
    }
    let snapshot = Snapshot::capture(&*fs);
    // Taken, not cloned: the hook is done with them (a clone copied every crash's contents).
    let crashes = crashes
        .lock()
        .map(|mut c| std::mem::take(&mut *c))
        .unwrap_or_default();
    Execution {
        log: fs.take_log(),
        outcomes,
        snapshot,
        crashes,
        contention: sync::contention_take(),
    }
}

/// Who decides the interleaving of a concurrent run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sched {
    /// The input's schedule bytes ([`ByteScheduler`]): what fuzzing uses.
    Bytes,
    /// shuttle's random scheduler with this seed (a baseline for benchmarks).
    Random(u64),
    /// shuttle's PCT scheduler (depth 3) with this seed (a baseline for benchmarks). Made for
    /// one execution, it draws no change points ([`Pct`]'s docs): each task runs until it blocks
    /// or yields, in an order drawn from the seed.
    Pct(u64),
    /// wbfuzz's own single-execution [`Pct`] with this seed, depth and estimated step count.
    Priority {
        /// The seed.
        seed: u64,
        /// Ordering constraints (change points + 1).
        depth: u32,
        /// Estimated contended decisions of the execution.
        steps: u64,
    },
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
        (Sched::Priority { seed, depth, steps }, None) => Box::new(Pct::new(seed, depth, steps)),
        (Sched::Priority { seed, depth, steps }, Some(log)) => {
            Box::new(Recorder::new(Pct::new(seed, depth, steps), log))
        }
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

/// Runs one execution of `input` under `scheduler` on this thread's runner ([`Session`]).
fn execute_under(
    input: &Input,
    bugs: Bugs,
    scheduler: Box<dyn shuttle::scheduler::Scheduler + Send>,
) -> Result<Execution, Abort> {
    install_quiet_hook();
    let job = Job {
        input: Arc::new(input.clone()),
        bugs,
        scheduler,
    };
    SESSION.with(|cell| {
        let mut slot = cell.borrow_mut();
        let session = slot.get_or_insert_with(Session::spawn);
        if let Some(r) = session.run(job) {
            return r;
        }
        // The runner thread is gone (it cannot be: it catches every failure); start another.
        *slot = None;
        Err(Abort::Deadlock("the shuttle runner thread ended".into()))
    })
}

/// One execution for a runner thread: the input and the scheduler that decides it.
struct Job {
    input: Arc<Input>,
    bugs: Bugs,
    scheduler: Box<dyn shuttle::scheduler::Scheduler + Send>,
}

thread_local! {
    /// This thread's runner thread, started at its first concurrent execution.
    static SESSION: std::cell::RefCell<Option<Session>> = const { std::cell::RefCell::new(None) };
}

/// The calling side of a runner thread: jobs in, results out, one at a time.
///
/// Why a thread: shuttle allocates a pool of continuations (each a stack: an mmap, an mprotect
/// and a munmap) per `Runner::run`. Run once per input, that is three memory-map syscalls per
/// task per input, and with two hunt workers in one process every munmap is a TLB shootdown of
/// the other core and a wait on the process's mmap lock: two workers ran at the speed of one.
/// A runner thread keeps one `Runner::run` going for as many executions as its caller asks
/// for (its scheduler blocks for the next job between executions), so the stacks are reused.
/// A failed execution (panic, deadlock, step bound) ends that `run`; the thread starts another.
struct Session {
    jobs: std::sync::mpsc::Sender<Job>,
    results: std::sync::mpsc::Receiver<Result<Execution, Abort>>,
}

impl Session {
    fn spawn() -> Session {
        let (jobs, job_rx) = std::sync::mpsc::channel();
        let (result_tx, results) = std::sync::mpsc::channel();
        let shared = Arc::new(RunnerState {
            jobs: Mutex::new(job_rx),
            results: Mutex::new(result_tx),
            current: Mutex::new(None),
            result: Mutex::new(None),
            panics: Arc::new(Mutex::new(None)),
            decisions: AtomicUsize::new(0),
            running: std::sync::atomic::AtomicBool::new(false),
        });
        std::thread::Builder::new()
            .name("wbfuzz-shuttle".into())
            .spawn(move || runner_thread(shared))
            .map(|_| ())
            .unwrap_or_else(|e| {
                // Without a thread there is nothing to run on: every job reports it.
                eprintln!("wbfuzz: cannot start a shuttle runner thread: {e}");
            });
        Session { jobs, results }
    }

    /// Runs `job`; `None` if the runner thread is gone.
    fn run(&self, job: Job) -> Option<Result<Execution, Abort>> {
        self.jobs.send(job).ok()?;
        self.results.recv().ok()
    }
}

/// What a runner thread's scheduler and body share.
struct RunnerState {
    jobs: Mutex<std::sync::mpsc::Receiver<Job>>,
    results: Mutex<std::sync::mpsc::Sender<Result<Execution, Abort>>>,
    /// The running job's input and switches.
    current: Mutex<Option<(Arc<Input>, Bugs)>>,
    /// The running job's execution, once its body returned.
    result: Mutex<Option<Execution>>,
    panics: PanicSlot,
    /// Scheduling decisions of the running job.
    decisions: AtomicUsize,
    /// Whether a job ran and its result is not sent yet.
    running: std::sync::atomic::AtomicBool,
}

impl RunnerState {
    /// Sends the running job's result: `failure` is shuttle's message if `Runner::run` failed.
    fn finish(&self, failure: Option<String>) {
        if !self.running.swap(false, Ordering::SeqCst) {
            return;
        }
        let panicked = self.panics.lock().ok().and_then(|mut s| s.take());
        let taken = self.result.lock().ok().and_then(|mut s| s.take());
        let at_bound = self.decisions.load(Ordering::SeqCst) >= STEP_BOUND;
        let r = match (panicked, at_bound, failure, taken) {
            (Some(msg), _, _, _) => Err(Abort::Panic(msg)),
            (None, true, Some(_), _) => Err(Abort::StepBound(STEP_BOUND)),
            (None, false, Some(shuttle_says), _) => Err(Abort::Deadlock(shuttle_says)),
            (None, _, None, Some(e)) => Ok(e),
            // shuttle returned without failing and without our result: nothing ran to the end.
            (None, _, None, None) => Err(Abort::Deadlock("the execution ended early".into())),
        };
        if let Ok(tx) = self.results.lock() {
            let _ = tx.send(r);
        }
    }
}

/// The scheduler of a runner thread: between executions it sends the last result and waits
/// for the next job, whose scheduler then decides (and whose decisions it counts: shuttle fails
/// an execution at [`STEP_BOUND`] decisions, and this count is how that failure is told from
/// the others).
struct Feed {
    state: Arc<RunnerState>,
    inner: Option<Box<dyn shuttle::scheduler::Scheduler + Send>>,
}

impl shuttle::scheduler::Scheduler for Feed {
    fn new_execution(&mut self) -> Option<shuttle::scheduler::Schedule> {
        self.state.finish(None);
        self.retire();
        let job = self.state.jobs.lock().ok()?.recv().ok()?;
        crate::schedule::set_in_execution(true);
        if let Ok(mut p) = self.state.panics.lock() {
            *p = None;
        }
        if let Ok(mut c) = self.state.current.lock() {
            *c = Some((job.input, job.bugs));
        }
        self.state.decisions.store(0, Ordering::SeqCst);
        self.state.running.store(true, Ordering::SeqCst);
        let mut inner = job.scheduler;
        let schedule = inner.new_execution();
        self.inner = Some(inner);
        schedule
    }

    fn next_task(
        &mut self,
        runnable: &[&shuttle::scheduler::Task],
        current: Option<shuttle::scheduler::TaskId>,
        is_yielding: bool,
    ) -> Option<shuttle::scheduler::TaskId> {
        self.state.decisions.fetch_add(1, Ordering::SeqCst);
        self.inner
            .as_mut()?
            .next_task(runnable, current, is_yielding)
    }

    fn next_u64(&mut self) -> u64 {
        self.inner.as_mut().map_or(0, |s| s.next_u64())
    }
}

impl Feed {
    /// Ends the last job's scheduler as `Runner::run` would: asked for another execution, each
    /// of ours declines (and shuttle's random scheduler stops holding its seed, which it prints
    /// on drop otherwise, as the seed of a failure).
    fn retire(&mut self) {
        if let Some(mut old) = self.inner.take() {
            let _ = old.new_execution();
        }
    }
}

impl Drop for Feed {
    fn drop(&mut self) {
        self.retire();
    }
}

/// The loop of a runner thread: one `Runner::run` for as long as jobs come, a new one after each
/// failed execution. Everything on this thread runs in shuttle mode with the hook quiet.
fn runner_thread(state: Arc<RunnerState>) {
    QUIET.with(|q| q.set(true));
    let _scope = sync::ShuttleScope::enter();
    loop {
        let mut config = shuttle::Config::new();
        // shuttle fails the execution at the bound (before its next decision): the decision
        // count tells that failure apart from every other.
        config.max_steps = shuttle::MaxSteps::FailAfter(STEP_BOUND);
        config.failure_persistence = shuttle::FailurePersistence::None;
        config.silence_warnings = true;
        let feed = Feed {
            state: Arc::clone(&state),
            inner: None,
        };
        let runner = shuttle::Runner::new(feed, config);
        let st = Arc::clone(&state);
        let body = move || {
            let Some((input, bugs)) = st.current.lock().ok().and_then(|c| c.clone()) else {
                return;
            };
            let panics = Arc::clone(&st.panics);
            let e = catching(&panics, || run_body(&input, bugs, &panics));
            if let Ok(mut slot) = st.result.lock() {
                *slot = Some(e);
            }
        };
        match catch_unwind(AssertUnwindSafe(move || runner.run(body))) {
            // The job channel closed: the calling thread is gone.
            Ok(_) => return,
            // An aborted execution's continuations unwound when the runner was dropped; the
            // payload is dropped here too.
            Err(p) => {
                let failure = panic_message(&*p).unwrap_or_default();
                drop(p);
                state.finish(Some(failure));
            }
        }
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
