//! Concurrent differential runs (DESIGN.md sections 6 and 7).
//!
//! The implementation runs inside one shuttle execution, one shuttle thread per input thread,
//! under a [`ByteScheduler`] that reads the input's schedule bytes. It records a [`Step`] at every
//! commit point; the runner brackets each op with `Begin` and `End`. After the threads join, the
//! main task runs the end-of-run epilogue (repair, fsync, complete all IO, evict), still
//! recorded, and captures a [`Snapshot`].
//!
//! The reference then replays the log, step by step, with its own step API, deriving each op's
//! outcome from the steps of that op, and the oracle checks: every op's outcome equals the
//! implementation's; every step lies between its op's `Begin` and `End`; every step is one the
//! reference can take (an IO it completes is in flight in the reference too); the end states are
//! equal; both models' invariants hold. All threads blocked is a deadlock, reported with the
//! schedule; a run past [`STEP_BOUND`] scheduling points is rejected, not reported.

use crate::bugs::Bugs;
use crate::fs::{sync, Fs};
use crate::oracle::{compare_all, epilogue, Divergence, Mismatch, Recorded, Run, TraceEntry};
use crate::schedule::{encode_decisions, ByteScheduler, Decision, Recorder};
use crate::snapshot::Snapshot;
use reference::model::{Completion, RefFs};
use reference::{Errno, Input, Op, Outcome, Step};
use std::collections::HashMap;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{Arc, Mutex};

/// Scheduling points one concurrent run may take before it is rejected as too long.
pub const STEP_BOUND: usize = 200_000;

/// What the implementation's execution produced.
struct Execution {
    log: Vec<Step>,
    /// Each op's outcome, recorded as it ends (a read's bytes as their digest: see [`Recorded`]).
    outcomes: HashMap<u32, Recorded>,
    snapshot: Snapshot,
}

/// Why an execution produced nothing to compare.
enum Abort {
    /// Every thread blocked: a deadlock (a finding).
    Deadlock(String),
    /// The implementation panicked (a finding).
    Panic(String),
    /// Past the step bound: the input is rejected.
    TooLong,
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

/// (Re)installs [`quiet_hook`]. Needed after every execution, not once: the generator crate
/// under shuttle swaps the process-wide hook out and back around each cancelled continuation,
/// and two threads doing that at once can leave std's default hook (or a silent one) installed.
fn install_quiet_hook() {
    let hook = std::sync::Arc::clone(quiet_hook());
    std::panic::set_hook(Box::new(move |info| hook(info)));
}

fn panic_message(p: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = p.downcast_ref::<&str>() {
        s.to_string()
    } else if let Some(s) = p.downcast_ref::<String>() {
        s.clone()
    } else {
        "(non-string panic)".to_string()
    }
}

/// Every op of a run by sequence number: (thread, op, is_epilogue).
type OpTable = HashMap<u32, (usize, Op, bool)>;

/// The run's op table, and the epilogue ops with their sequence numbers.
fn op_table(input: &Input) -> (OpTable, Vec<(u32, Op)>) {
    let mut table: OpTable = input
        .numbered_ops()
        .map(|(t, seq, op)| (seq, (t, op.clone(), false)))
        .collect();
    let base = input.op_count() as u32;
    let tail: Vec<(u32, Op)> = epilogue(input)
        .into_iter()
        .enumerate()
        .map(|(k, op)| (base + 1 + k as u32, op))
        .collect();
    for (seq, op) in &tail {
        table.insert(*seq, (input.threads.len(), op.clone(), true));
    }
    (table, tail)
}

/// The body of a concurrent execution: one thread per input thread (spawned through the sync
/// facade, so shuttle tasks inside a shuttle execution and real threads outside one), each op
/// bracketed by `Begin`/`End`, then the epilogue and the snapshot.
fn run_body(input: &Input, bugs: Bugs) -> Execution {
    let fs = Arc::new(Fs::new(&input.config, bugs));
    fs.start_recording();
    let (_, tail) = op_table(input);
    let handles: Vec<_> = input
        .threads
        .iter()
        .enumerate()
        .map(|(t, ops)| {
            let fs = Arc::clone(&fs);
            let first = input.seq_of(t, 0);
            let ops = ops.clone();
            sync::thread::spawn(move || {
                ops.iter()
                    .enumerate()
                    .map(|(k, op)| {
                        let seq = first + k as u32;
                        fs.record(Step::Begin { seq });
                        let o = Recorded::from(&fs.apply(seq, op));
                        fs.record(Step::End { seq });
                        (seq, o)
                    })
                    .collect::<Vec<_>>()
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
        outcomes.insert(*seq, Recorded::from(&fs.apply(*seq, op)));
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

fn execute(
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
    install_quiet_hook();
    let result: Arc<Mutex<Option<Execution>>> = Arc::new(Mutex::new(None));
    let out = Arc::clone(&result);
    let shared = Arc::new(input.clone());
    let mut config = shuttle::Config::new();
    config.max_steps = shuttle::MaxSteps::FailAfter(STEP_BOUND);
    config.failure_persistence = shuttle::FailurePersistence::None;
    config.silence_warnings = true;
    let runner = shuttle::Runner::new(scheduler, config);
    let body = move || {
        let e = run_body(&shared, bugs);
        if let Ok(mut slot) = out.lock() {
            *slot = Some(e);
        }
    };
    QUIET.with(|q| q.set(true));
    let scope = sync::ShuttleScope::enter();
    // One shuttle execution at a time per process: the generator crate swaps the process-wide
    // panic hook around every cancelled continuation, which is not thread-safe.
    static SERIAL: Mutex<()> = Mutex::new(());
    let serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let r = catch_unwind(AssertUnwindSafe(move || runner.run(body)));
    drop(serial);
    drop(scope);
    // An aborted execution's continuations unwind when the runner is dropped (inside the
    // closure above); the payload is dropped here too, before the hook speaks again.
    let r = r.map_err(|p| panic_message(&*p));
    install_quiet_hook();
    QUIET.with(|q| q.set(false));
    if let Err(msg) = r {
        return Err(if msg.contains("exceeded max_steps") {
            Abort::TooLong
        } else if msg.contains("deadlock") {
            Abort::Deadlock(msg)
        } else {
            Abort::Panic(msg)
        });
    }
    let taken = result.lock().ok().and_then(|mut s| s.take());
    taken.ok_or_else(|| Abort::Panic("execution produced no result".into()))
}

/// Runs the implementation on real OS threads (std primitives): the interleaving is the OS's,
/// not reproducible, but the commit log still records the order that happened, so the same
/// replay checks it. For stress tests; fuzzing uses [`run_concurrent`].
fn execute_real_threads(input: &Input, bugs: Bugs) -> Result<Execution, Abort> {
    catch_unwind(AssertUnwindSafe(|| run_body(input, bugs)))
        .map_err(|p| Abort::Panic(panic_message(&*p)))
}

/// What the reference derived for one op while replaying its steps.
#[derive(Default)]
struct OpCtx {
    begun: bool,
    ended: bool,
    /// Bytes after argument checks (writes, reads, faults).
    n: u64,
    /// The outcome, once decided.
    outcome: Option<Outcome>,
    /// First error of this op's flush: allocation failure, else EIO of a waited completion.
    alloc_err: Option<Errno>,
    io_err: Option<Errno>,
    /// IOs submitted / completed / blocks committed by this op.
    submitted: u64,
    completed: u64,
    committed: u64,
    /// Bytes a buffered read collected, folio by folio.
    data: Vec<u8>,
    /// A buffered write that stopped short: the byte range it reserved and did not copy.
    unwritten: Option<(u64, u64)>,
}

impl OpCtx {
    fn flush_err(&self) -> Option<Errno> {
        self.alloc_err.or(self.io_err)
    }
}

struct Replayer<'a> {
    r: RefFs,
    ops: &'a OpTable,
    ctx: HashMap<u32, OpCtx>,
    fsz: u64,
    jdata: Vec<bool>,
}

impl Replayer<'_> {
    fn op(&self, seq: u32) -> Option<&Op> {
        self.ops.get(&seq).map(|(_, op, _)| op)
    }

    /// Applies one step; `Err` describes a step the reference cannot take.
    fn step(&mut self, step: Step) -> Result<(), String> {
        let seq = step.seq();
        let Some(op) = self.op(seq).cloned() else {
            return Err(format!("step `{step}` names no op of this run"));
        };
        let fsz = self.fsz;
        let ctx = self.ctx.entry(seq).or_default();
        match step {
            Step::Begin { .. } => {
                ctx.begun = true;
                return Ok(());
            }
            Step::End { .. } => {
                ctx.ended = true;
                return Ok(());
            }
            _ if !ctx.begun || ctx.ended => {
                return Err(format!("step `{step}` lies outside its op"))
            }
            _ => {}
        }
        let r = &mut self.r;
        match (step, &op) {
            (Step::WriteBegin { .. }, &Op::Write { file, off, len, .. }) => {
                match r.write_args(off, len) {
                    Err(e) => ctx.outcome = Some(Outcome::Err(e)),
                    Ok(0) => ctx.outcome = Some(Outcome::Done(0)),
                    Ok(n) => match r.reserve_write(file, off, n) {
                        Err(e) => ctx.outcome = Some(Outcome::Err(e)),
                        Ok(()) => ctx.n = n,
                    },
                }
            }
            (Step::WriteFolio { folio, .. }, &Op::Write { file, off, .. }) => {
                let end = off + ctx.n;
                let a = off.max(folio.saturating_mul(fsz));
                let b = end.min(folio.saturating_add(1).saturating_mul(fsz));
                if ctx.n == 0 || a >= b {
                    return Err(format!("step `{step}` is outside the write's range"));
                }
                // A racing failed writeback may have punched this folio's reservation; the
                // write then re-reserves, and on ENOSPC it ends here: short if it copied
                // anything, failed if not (as xfs_buffered_write_iomap_begin).
                let stop = |ctx: &mut OpCtx| ctx.unwritten = Some((a, end));
                match r.write_folio_checked(seq, file, a, b - a) {
                    Ok(()) => r.extend_size(file, b),
                    Err(e) if a == off => {
                        stop(ctx);
                        ctx.outcome = Some(Outcome::Err(e));
                    }
                    Err(_) => {
                        // Short: the outcome is decided at the op's commit, after an O_SYNC
                        // write's flush (whose error it reports, as generic_write_sync does).
                        stop(ctx);
                        ctx.n = a - off;
                    }
                }
            }
            (Step::WritePunch { .. }, &Op::Write { file, .. }) => match ctx.unwritten.take() {
                Some((from, end)) => r.punch_write_tail(file, from, end),
                None => return Err(format!("step `{step}`: the write did not stop short")),
            },
            (Step::ReadFolio { folio, .. }, &Op::Read { file, off, len }) => {
                if ctx.data.is_empty() && ctx.n == 0 {
                    // The size cannot change under a read (IOLOCK shared excludes every op that
                    // changes it), so the size at its first folio is the size for all of it.
                    let sz = reference::Observe::size(r, file);
                    ctx.n = if off >= sz { 0 } else { len.min(sz - off) };
                }
                let end = off + ctx.n;
                let a = off.max(folio.saturating_mul(fsz));
                let b = end.min(folio.saturating_add(1).saturating_mul(fsz));
                if a >= b {
                    return Err(format!("step `{step}` is outside the read's range"));
                }
                r.instantiate_folio(file, folio);
                ctx.data.extend(r.read_cached(file, a, b - a));
            }
            (Step::Instantiate { file, folio, .. }, _) => r.instantiate_folio(file, folio),
            (Step::Writeback { file, folio, .. }, _) => match r.writeback_folio(file, folio) {
                Ok(true) => ctx.submitted += 1,
                Ok(false) => {}
                Err(e) => {
                    ctx.alloc_err.get_or_insert(e);
                }
            },
            (Step::Complete { file, folio, .. }, _) => match r.complete_io_of(file, folio) {
                None => {
                    return Err(format!(
                    "step `{step}`: the reference has no IO in flight for f{file} folio {folio}"
                ))
                }
                Some(Completion::Written) => ctx.completed += 1,
                Some(Completion::Rejected) => {
                    ctx.completed += 1;
                    ctx.io_err.get_or_insert(Errno::Eio);
                }
            },
            (Step::Commit { file, .. }, _) => ctx.committed += r.journal_commit(file),
            (Step::Op { .. }, _) => {
                let out = self.finish(seq, &op);
                if let Some(c) = self.ctx.get_mut(&seq) {
                    c.outcome = Some(out);
                }
            }
            _ => return Err(format!("step `{step}` does not belong to op `{op}`")),
        }
        Ok(())
    }

    /// The op's final commit: the part of it that is atomic, and its outcome.
    fn finish(&mut self, seq: u32, op: &Op) -> Outcome {
        let r = &mut self.r;
        let ctx = self.ctx.entry(seq).or_default();
        if let Some(o) = &ctx.outcome {
            // Decided earlier (a write that failed its checks).
            return o.clone();
        }
        match *op {
            Op::Write { file, sync, .. } => {
                if sync {
                    if let Some(e) = r.take_wb_error(file) {
                        return Outcome::Err(e);
                    }
                }
                Outcome::Done(ctx.n)
            }
            Op::Read { .. } => Outcome::Data(std::mem::take(&mut ctx.data)),
            Op::DirectWrite { file, off, len } => {
                let (bs, max) = geo(r);
                if off % bs != 0 || len % bs != 0 {
                    return Outcome::Err(Errno::Einval);
                }
                if len == 0 {
                    return Outcome::Done(0);
                }
                if off >= max {
                    return Outcome::Err(Errno::Efbig);
                }
                if let Some(e) = ctx.flush_err() {
                    return Outcome::Err(e);
                }
                let n = len.min(max - off);
                r.drop_folios(file, off, n);
                r.direct_write_locked(seq, file, off, n)
            }
            Op::DirectRead { file, off, len } => {
                let (bs, _) = geo(r);
                if off % bs != 0 || len % bs != 0 {
                    return Outcome::Err(Errno::Einval);
                }
                let sz = reference::Observe::size(r, file);
                let n = if off >= sz { 0 } else { len.min(sz - off) };
                if n == 0 {
                    return Outcome::Data(Vec::new());
                }
                if let Some(e) = ctx.flush_err() {
                    return Outcome::Err(e);
                }
                Outcome::Data(r.read_disk(file, off, n))
            }
            Op::MmapWrite { file, off, len } => match r.fault_args(file, off, len) {
                Err(e) => Outcome::Err(e),
                Ok(0) => Outcome::Done(0),
                Ok(n) => r.mmap_write_locked(seq, file, off, n),
            },
            Op::MmapRead { file, off, len } => match r.fault_args(file, off, len) {
                Err(e) => Outcome::Err(e),
                Ok(0) => Outcome::Data(Vec::new()),
                Ok(n) => Outcome::Data(r.read_cached(file, off, n)),
            },
            Op::Fsync { file } => r.fsync_finish(file),
            Op::Flush { file, len, .. } => {
                if len == 0 {
                    Outcome::Done(0)
                } else if self.jdata.get(file as usize).copied().unwrap_or(false) {
                    Outcome::Done(ctx.committed)
                } else {
                    Outcome::Done(ctx.submitted)
                }
            }
            Op::CompleteIo { .. } => Outcome::Done(ctx.completed),
            Op::EvictInode { file } => Outcome::Done(r.evict_finish(file)),
            Op::JournalCommit { .. } => Outcome::Done(ctx.committed),
            // Fallocate, punch, zero-range, truncate, reclaim, corrupt, repair: atomic at their
            // commit, after any waits already replayed as `Complete` steps.
            _ => r.apply(seq, op),
        }
    }
}

/// Block size and maximum file size.
fn geo(r: &RefFs) -> (u64, u64) {
    let g = reference::Observe::geometry(r);
    (g.bs(), g.max_file_size)
}

/// Runs `input` concurrently under its schedule and checks it against the reference.
pub fn run_concurrent(input: &Input, bugs: Bugs) -> Run {
    check(input, execute(input, bugs, Sched::Bytes, None))
}

/// Runs `input` concurrently with the given scheduler (benchmark baselines use shuttle's own).
pub fn run_concurrent_with(input: &Input, bugs: Bugs, sched: Sched) -> Run {
    check(input, execute(input, bugs, sched, None))
}

/// [`run_concurrent_with`], also returning schedule bytes that replay the interleaving the
/// scheduler chose: with them as the input's schedule, [`run_concurrent`] takes exactly the same
/// decisions. The hunt uses it to turn a finding of shuttle's PCT or random scheduler into an
/// ordinary, replayable script.
pub fn run_concurrent_recorded(input: &Input, bugs: Bugs, sched: Sched) -> (Run, Vec<u8>) {
    let log = Arc::new(Mutex::new(Vec::new()));
    let run = check(input, execute(input, bugs, sched, Some(Arc::clone(&log))));
    let decisions = log.lock().map(|l| l.clone()).unwrap_or_default();
    (run, encode_decisions(&decisions))
}

/// Runs `input` on real threads and checks the interleaving that happened against the
/// reference. The interleaving is the OS's, not reproducible, but the commit log records the order
/// that happened, so the same replay checks it; for stress tests, fuzzing uses [`run_concurrent`].
pub fn run_real_threads(input: &Input, bugs: Bugs) -> Run {
    check(input, execute_real_threads(input, bugs))
}

fn check(input: &Input, exec: Result<Execution, Abort>) -> Run {
    let (table, _) = op_table(input);
    let exec = match exec {
        Ok(e) => e,
        Err(Abort::TooLong) => {
            return Run {
                trace: vec![],
                divergence: None,
                commit_log: vec![],
                rejected: true,
            }
        }
        Err(Abort::Deadlock(msg)) => return aborted(Mismatch::Deadlock { detail: msg }),
        Err(Abort::Panic(msg)) => return aborted(Mismatch::Panic { detail: msg }),
    };
    let mut rp = Replayer {
        r: RefFs::new(&input.config),
        ops: &table,
        ctx: HashMap::new(),
        fsz: input.config.geometry.folio_size(),
        jdata: input.config.files.iter().map(|f| f.jdata).collect(),
    };
    let mut trace = Vec::new();
    let mut mismatches = Vec::new();
    for (k, &step) in exec.log.iter().enumerate() {
        if let Err(detail) = rp.step(step) {
            mismatches.push(Mismatch::Replay {
                index: k,
                step,
                detail,
            });
            break;
        }
        if let Step::End { seq } = step {
            let (thread, op, epi) =
                table
                    .get(&seq)
                    .cloned()
                    .unwrap_or((0, Op::CorruptAllocBtree, true));
            // Taken, not cloned: nothing reads an op's outcome after its end.
            let reference = rp
                .ctx
                .get_mut(&seq)
                .and_then(|c| c.outcome.take())
                .map(|o| Recorded::from(&o));
            let implementation = exec
                .outcomes
                .get(&seq)
                .cloned()
                .unwrap_or(Recorded::Err(Errno::Einval));
            let Some(reference) = reference else {
                mismatches.push(Mismatch::Replay {
                    index: k,
                    step,
                    detail: format!("op #{seq} ended without a commit point"),
                });
                break;
            };
            let differ = reference != implementation;
            trace.push(TraceEntry {
                thread,
                seq,
                op,
                reference: reference.clone(),
                implementation: implementation.clone(),
                epilogue: epi,
            });
            if differ {
                mismatches.push(Mismatch::Outcome {
                    reference,
                    implementation,
                });
                break;
            }
        }
    }
    if mismatches.is_empty() {
        mismatches = compare_all(&rp.r, &exec.snapshot);
    }
    let divergence = (!mismatches.is_empty()).then(|| Divergence {
        at: trace.len().saturating_sub(1),
        mismatches,
    });
    Run {
        trace,
        divergence,
        commit_log: exec.log,
        rejected: false,
    }
}

fn aborted(m: Mismatch) -> Run {
    Run {
        trace: vec![],
        divergence: Some(Divergence {
            at: 0,
            mismatches: vec![m],
        }),
        commit_log: vec![],
        rejected: false,
    }
}
