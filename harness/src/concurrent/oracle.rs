//! The concurrent oracle: the reference replays the implementation's commit log and the two
//! are compared.
//!
//! The reference's [`Replayer`] applies every step with the reference's own rules and refuses
//! any it cannot take (reported as [`Mismatch::Replay`] naming the log entry); at every op's
//! `End` the outcome it derived must equal the implementation's; after the log, the replayer
//! checks every op ran, and the end states (and both models' invariants) must agree. This room
//! holds no rule of the spec: it only drives the replayer and compares.

use super::execute::{Abort, Execution};
use crate::epilogue::run_ops;
use crate::oracle::{
    compare_all_probed, Divergence, Mismatch, Recorded, Rejection, Run, TraceEntry, Verdict,
};
use crate::probe::{Part, Probe};
use reference::model::replay::Replayer;
use reference::{Input, Outcome, Step};
use std::collections::HashMap;

/// Checks one execution of `input` (or reports how it aborted).
pub(super) fn check(input: &Input, exec: Result<Execution, Abort>) -> Run {
    check_probed(input, exec, &mut Probe::off())
}

/// [`check`], charging the replay to the reference and the end comparison to its parts.
pub(super) fn check_probed(
    input: &Input,
    exec: Result<Execution, Abort>,
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
    for (index, &step) in exec.log.iter().enumerate() {
        if let Err(error) = probe.time(Part::Reference, || rp.step(step)) {
            mismatches.push(Mismatch::Replay { index, error });
            break;
        }
        let Step::End { seq } = step else { continue };
        // The replayer accepted the `End`: the op exists and committed.
        let (Some(&k), Some(reference)) = (by_seq.get(&seq), rp.outcome(seq)) else {
            continue;
        };
        let Some(implementation) = exec.outcomes.get(&seq) else {
            continue;
        };
        let planned = &ops[k];
        trace.push(TraceEntry {
            thread: planned.thread,
            seq,
            op: planned.op.clone(),
            reference: Recorded::from(reference),
            implementation: implementation.recorded.clone(),
            epilogue: planned.epilogue,
        });
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
