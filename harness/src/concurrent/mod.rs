//! Concurrent differential runs: two rooms.
//!
//! - [`execute`]: runs the implementation inside one shuttle execution (one shuttle thread per
//!   input thread, under a [`ByteScheduler`](crate::schedule::ByteScheduler) that reads the
//!   input's schedule bytes, or one of shuttle's schedulers), then the epilogue on the main
//!   task; collects the commit log, every op's outcome and a snapshot; classifies an aborted
//!   execution by how it ended (a panic caught in a task, a stop at the step bound, a shuttle
//!   failure with no panic of ours: a deadlock), never by message text.
//! - [`oracle`]: hands the log to the reference's replayer
//!   ([`reference::model::replay::Replayer`]), which owns every rule of the spec, and compares
//!   what it derives with what the implementation did: each op's outcome, then the end states.
//!
//! Neither room holds a rule of the spec: the replayer decides what each step means.

mod execute;
mod oracle;

pub use execute::{Sched, STEP_BOUND};

use crate::bugs::Bugs;
use crate::oracle::Run;
use crate::probe::{Part, Probe};
use crate::schedule::encode_decisions;
use crate::signal::Features;
use reference::Input;
use std::sync::{Arc, Mutex};

/// Runs `input` concurrently under its schedule and checks it against the reference.
pub fn run_concurrent(input: &Input, bugs: Bugs) -> Run {
    oracle::check(input, execute::execute(input, bugs, Sched::Bytes, None))
}

/// [`run_concurrent_with`], also adding the run's feedback features ([`crate::signal`]) to
/// `sink`, and, with `record`, returning schedule bytes that replay the interleaving taken (as
/// [`run_concurrent_recorded`] does).
pub fn run_concurrent_signal(
    input: &Input,
    bugs: Bugs,
    sched: Sched,
    record: bool,
    sink: &mut Features,
) -> (Run, Option<Vec<u8>>) {
    let log = record.then(|| Arc::new(Mutex::new(Vec::new())));
    let run = oracle::check_signal(
        input,
        execute::execute(input, bugs, sched, log.clone()),
        sink,
    );
    let bytes = log.map(|l| encode_decisions(&l.lock().map(|l| l.clone()).unwrap_or_default()));
    (run, bytes)
}

/// [`run_concurrent`], charging the execution under shuttle to the implementation and the
/// check to its parts (`wbfuzz bench`'s breakdown).
pub fn run_concurrent_probed(input: &Input, bugs: Bugs, probe: &mut Probe) -> Run {
    let exec = probe.time(Part::Implementation, || {
        execute::execute(input, bugs, Sched::Bytes, None)
    });
    oracle::check_probed(input, exec, probe)
}

/// Runs `input` concurrently with the given scheduler (benchmark baselines use shuttle's own).
pub fn run_concurrent_with(input: &Input, bugs: Bugs, sched: Sched) -> Run {
    oracle::check(input, execute::execute(input, bugs, sched, None))
}

/// [`run_concurrent_with`], also returning schedule bytes that replay the interleaving the
/// scheduler chose: with them as the input's schedule, [`run_concurrent`] takes exactly the same
/// decisions. The hunt uses it to turn a finding of shuttle's PCT or random scheduler into an
/// ordinary, replayable script.
pub fn run_concurrent_recorded(input: &Input, bugs: Bugs, sched: Sched) -> (Run, Vec<u8>) {
    let log = Arc::new(Mutex::new(Vec::new()));
    let run = oracle::check(
        input,
        execute::execute(input, bugs, sched, Some(Arc::clone(&log))),
    );
    let decisions = log.lock().map(|l| l.clone()).unwrap_or_default();
    (run, encode_decisions(&decisions))
}

/// Runs `input` with its interleaving taken from `plan` (the task chosen at each scheduling
/// decision, as [`Decision::chosen`](crate::schedule::Decision) records it; where the planned
/// task cannot run, the current one keeps running), and returns the run, the decisions taken
/// and schedule bytes that replay them. The minimizer uses it to keep an interleaving when it
/// removes ops or threads.
pub fn run_concurrent_planned(
    input: &Input,
    bugs: Bugs,
    plan: Vec<usize>,
) -> (Run, Vec<crate::schedule::Decision>, Vec<u8>) {
    let log = Arc::new(Mutex::new(Vec::new()));
    let run = oracle::check(
        input,
        execute::execute_planned(input, bugs, plan, Arc::clone(&log)),
    );
    let decisions = log.lock().map(|l| l.clone()).unwrap_or_default();
    let bytes = encode_decisions(&decisions);
    (run, decisions, bytes)
}

/// [`run_concurrent`], also returning the decisions its byte scheduler took.
pub fn run_concurrent_decisions(
    input: &Input,
    bugs: Bugs,
) -> (Run, Vec<crate::schedule::Decision>) {
    let log = Arc::new(Mutex::new(Vec::new()));
    let run = oracle::check(
        input,
        execute::execute(input, bugs, Sched::Bytes, Some(Arc::clone(&log))),
    );
    let decisions = log.lock().map(|l| l.clone()).unwrap_or_default();
    (run, decisions)
}

/// Runs `input` on real threads and checks the interleaving that happened against the
/// reference. The interleaving is the OS's, not reproducible, but the commit log records the order
/// that happened, so the same replay checks it; for stress tests, fuzzing uses [`run_concurrent`].
pub fn run_real_threads(input: &Input, bugs: Bugs) -> Run {
    oracle::check(input, execute::execute_real_threads(input, bugs))
}
