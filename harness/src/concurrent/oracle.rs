//! The concurrent oracle: the reference replays the implementation's commit log and the two
//! are compared.
//!
//! The reference's [`Replayer`] applies every step with the reference's own rules and refuses
//! any it cannot take (reported as [`Mismatch::Replay`] naming the log entry); at every op's
//! `End` the outcome it derived must equal the implementation's; right after each crash's commit
//! point the whole states (and both models' invariants, `fsync-durable` and
//! `no-stale-exposure` among them) must agree; after the log, the replayer checks every op ran,
//! and the end states must agree. This room
//! holds no rule of the spec: it only drives the replayer and compares.

use super::execute::{Abort, Execution};
use crate::epilogue::run_ops;
use crate::oracle::{
    compare_all, compare_all_probed, scope_of, Divergence, Mismatch, Recorded, Rejection, Run,
    TraceEntry, Verdict,
};
use crate::probe::{Part, Probe};
use crate::signal::{self, Features};
use reference::model::replay::Replayer;
use reference::{Input, Outcome, Step};
use std::collections::HashMap;

/// Checks one execution of `input` (or reports how it aborted).
pub(super) fn check(input: &Input, exec: Result<Execution, Abort>) -> Run {
    check_in(input, exec, None, &mut Probe::off())
}

/// [`check`], also adding the run's feedback features to `sink`: each op's block classes on the
/// replaying reference at its `Begin` and its `End`, the interleaving of the commit log, the
/// contention events and the threads' op mix ([`crate::signal`]).
pub(super) fn check_signal(
    input: &Input,
    exec: Result<Execution, Abort>,
    sink: &mut Features,
) -> Run {
    check_in(input, exec, Some(sink), &mut Probe::off())
}

/// [`check`], charging the replay to the reference and the end comparison to its parts.
pub(super) fn check_probed(
    input: &Input,
    exec: Result<Execution, Abort>,
    probe: &mut Probe,
) -> Run {
    check_in(input, exec, None, probe)
}

fn check_in(
    input: &Input,
    exec: Result<Execution, Abort>,
    mut sink: Option<&mut Features>,
    probe: &mut Probe,
) -> Run {
    let exec = match exec {
        Ok(e) => e,
        Err(Abort::StepBound(n)) => {
            return Run {
                trace: vec![],
                verdict: Verdict::Rejected(Rejection::StepBound(n)),
                commit_log: vec![],
            }
        }
        Err(Abort::Deadlock(detail)) => return aborted(Mismatch::Deadlock { detail }),
        Err(Abort::Panic(detail)) => return aborted(Mismatch::Panic { detail }),
    };
    let ops = run_ops(input);
    let mut rp = Replayer::new(&input.config, ops.iter().map(|o| (o.seq, o.op.clone())));
    let by_seq: HashMap<u32, usize> = ops.iter().enumerate().map(|(k, o)| (o.seq, k)).collect();
    let mut trace = Vec::new();
    let mut mismatches = Vec::new();
    if let Some(f) = sink.as_deref_mut() {
        signal::log_features(f, &exec.log, |seq| by_seq.get(&seq).map(|&k| &ops[k].op));
        signal::contention_features(f, &exec.contention);
        signal::shape_features(f, &input.threads);
    }
    // Each open op's observation at its `Begin`, for the signal.
    let mut begun: HashMap<u32, signal::Obs> = HashMap::new();
    for (index, &step) in exec.log.iter().enumerate() {
        if let Err(error) = probe.time(Part::Reference, || rp.step(step)) {
            mismatches.push(Mismatch::Replay { index, error });
            break;
        }
        if let (Some(_), Step::Begin { seq }) = (&sink, step) {
            if let Some(&k) = by_seq.get(&seq) {
                begun.insert(
                    seq,
                    signal::observe(rp.model(), scope_of(&ops[k].op, input)),
                );
            }
        }
        // A crash is judged at its commit point (the state right after the cut), and named in
        // the trace there if the states differ: its `End` may come after other threads' steps.
        let crash_differs = match step {
            Step::Op { seq } => exec.crashes.get(&seq).is_some_and(|after| {
                mismatches = compare_all(rp.model(), after);
                !mismatches.is_empty()
            }),
            _ => false,
        };
        let seq = match step {
            Step::End { seq } => seq,
            Step::Op { seq } if crash_differs => seq,
            _ => continue,
        };
        // The replayer accepted the `End`: the op exists and committed.
        let (Some(&k), Some(reference)) = (by_seq.get(&seq), rp.outcome(seq)) else {
            continue;
        };
        let Some(implementation) = exec.outcomes.get(&seq) else {
            continue;
        };
        let planned = &ops[k];
        if let (Some(f), Some(before)) = (sink.as_deref_mut(), begun.remove(&seq)) {
            let after = signal::observe(rp.model(), scope_of(&planned.op, input));
            signal::op_features(f, &planned.op, &before, &after, &Recorded::from(reference));
        }
        trace.push(TraceEntry {
            thread: planned.thread,
            seq,
            op: planned.op.clone(),
            reference: Recorded::from(reference),
            implementation: implementation.recorded.clone(),
            epilogue: planned.epilogue,
        });
        if crash_differs {
            break;
        }
        if !implementation.matches(reference) {
            let bytes = match (reference, &implementation.bytes) {
                (Outcome::Data(r), Some(i)) => Some((r.clone(), i.clone())),
                _ => None,
            };
            mismatches.push(Mismatch::Outcome {
                reference: Recorded::from(reference),
                implementation: implementation.recorded.clone(),
                bytes,
            });
            break;
        }
    }
    if mismatches.is_empty() {
        if let Some(&last) = exec.log.last() {
            if let Err(error) = probe.time(Part::Reference, || rp.finish(last)) {
                mismatches.push(Mismatch::Replay {
                    index: exec.log.len() - 1,
                    error,
                });
            }
        }
    }
    if mismatches.is_empty() {
        mismatches = compare_all_probed(rp.model(), &exec.snapshot, probe);
    }
    let verdict = if mismatches.is_empty() {
        Verdict::Agree
    } else {
        Verdict::Diverged(Divergence {
            at: trace.len().saturating_sub(1),
            mismatches,
        })
    };
    Run {
        trace,
        verdict,
        commit_log: exec.log,
    }
}

fn aborted(m: Mismatch) -> Run {
    Run {
        trace: vec![],
        verdict: Verdict::Diverged(Divergence {
            at: 0,
            mismatches: vec![m],
        }),
        commit_log: vec![],
    }
}
