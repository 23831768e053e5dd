//! Threaded runs on a real kernel: every input thread on its own OS thread, released together,
//! judged by the race rule ([`crate::race_rule`]) without knowing the interleaving.
//!
//! Sequence of a run: the rule plans the input (or refuses it, naming the op); shared files are
//! extended to the maximum size on both sides; the reference runs the threads one after another
//! (thread 0's ops, then thread 1's, ...), which the rule makes equal to every interleaving for
//! what is compared; the kernel runs them at once behind a barrier, each op optionally delayed
//! by the input's schedule bytes (byte `k` of the schedule: microseconds of spinning before the
//! `k`-th op in sequence order, to shift the interleaving), and with `--repeat` each thread runs
//! its list again and again for that long (the reference then runs each thread's list as many
//! times as it ran, which the rule makes as good as any order); then every op is judged as the plan
//! says, sizes and contents are compared, the epilogue runs on both sides with the same
//! comparisons, and the files are read back from the disk, where extent states are compared
//! too (before that, which writes another thread's flush caught depends on the interleaving). The interleaving is the kernel's: a threaded run is not
//! reproducible, and its report says so.

use super::exec::{self, Executor, FsizeLimit, KOutcome};
use super::kmsg::KmsgWatch;
use super::oracle::{
    check_kernel_log, compare_from_disk, epilogue, outcomes_agree, reference_config, writer_seqs,
    Checker, KMismatch, KTraceEntry, KernelError, KernelRun, KernelTarget,
};
use super::scratch;
use crate::race_rule::{self, Judgement, Plan};
use reference::model::RefFs;
use reference::pattern::writers_of;
use reference::{Input, Op, OpKind, Outcome};
use std::sync::Barrier;
use std::time::{Duration, Instant};

/// The plan of a threaded input, or why it cannot be judged (naming the op).
pub fn plan(input: &Input) -> Result<Plan, KernelError> {
    race_rule::plan(input).map_err(|e| {
        let (t, i) = e.position();
        let op = input.threads.get(t).and_then(|ops| ops.get(i));
        KernelError::Unsupported(format!(
            "thread {t} op {} (`{}`) breaks the race rule of threaded kernel runs: {e}",
            i + 1,
            op.map(|o| o.to_string()).unwrap_or_default()
        ))
    })
}

/// Spins for `us` microseconds (a sleep would hand the interleaving to the scheduler's tick).
fn spin(us: u64) {
    let until = Instant::now() + Duration::from_micros(us);
    while Instant::now() < until {
        std::hint::spin_loop();
    }
}

/// Whether a racy read's bytes are all bytes their offsets held at some moment: zero, or the
/// pattern of some writing op of the run at that offset. Returns the first offending offset.
fn racy_bytes_ok(input: &Input, off: u64, data: &[u8]) -> Option<(u64, u8)> {
    let writers = writer_seqs(input);
    data.iter().enumerate().find_map(|(k, &b)| {
        let at = off + k as u64;
        (b != 0 && writers_of(b, at, writers.iter().copied()).is_empty()).then_some((at, b))
    })
}

/// Judges one op's kernel result against the reference's serial result.
/// EIO, the error of a direct read that met a delalloc extent a racing buffered write or fault
/// made ("Direct I/O collision with buffered writes!", `iomap_dio_iter`), which also records the
/// error for the file's next fsync.
const COLLISION: KOutcome = Ok(Outcome::Err(reference::Errno::Eio));

/// Whether a direct read of thread `t`, `op`, may collide with another thread's page-cache
/// writes though its pages are disjoint from theirs: the kernel's folios are larger than a page
/// (readahead adds multi-page folios), and a buffered write or write fault makes the whole
/// folio dirty, delalloc over its neighbouring pages too, so a direct read of such a page meets
/// delalloc and fails with [`COLLISION`] (SPEC.md, "Collisions").
fn large_folio_collision(input: &Input, t: usize, op: &Op) -> bool {
    let Op::DirectRead { file, .. } = *op else {
        return false;
    };
    input.threads.iter().enumerate().any(|(u, ops)| {
        u != t
            && ops.iter().any(|o| {
                o.file() == Some(file)
                    && matches!(
                        o.kind(),
                        OpKind::Write | OpKind::MmapWrite | OpKind::ZeroRange | OpKind::PunchHole
                    )
            })
    })
}

/// Whether a direct read may collide with a racing buffered writer (see [`COLLISION`]): a racy
/// one, or one sharing a kernel folio with another thread's page-cache writes.
fn collisions_possible(input: &Input, plan: &Plan) -> bool {
    input
        .threads
        .iter()
        .zip(&plan.judgements)
        .enumerate()
        .any(|(t, (ops, js))| {
            ops.iter().zip(js).any(|(op, j)| {
                (*j == Judgement::RacyRead && op.kind() == OpKind::DirectRead)
                    || large_folio_collision(input, t, op)
            })
        })
}

fn judge(
    input: &Input,
    collide: bool,
    (t, j): (usize, Judgement),
    op: &Op,
    r: &Outcome,
    k: &KOutcome,
) -> Option<KMismatch> {
    let outcome = || KMismatch::Outcome {
        reference: r.clone(),
        kernel: k.clone(),
    };
    // Only the collision's EIO is tolerated; any data is judged as the plan says.
    if *k == COLLISION && large_folio_collision(input, t, op) {
        return None;
    }
    match j {
        Judgement::Exact if outcomes_agree(op, r, k) => None,
        Judgement::Exact => Some(outcome()),
        Judgement::Background => match k {
            Ok(Outcome::Done(_)) => None,
            // The error a collision recorded, reported by the next fsync.
            _ if collide && *k == COLLISION && op.kind() == OpKind::Fsync => None,
            _ => Some(outcome()),
        },
        // Linux leaves a direct read racing buffered writes of its range to the user: EIO.
        Judgement::RacyRead if op.kind() == OpKind::DirectRead && *k == COLLISION => None,
        Judgement::RacyRead => {
            let (Ok(Outcome::Data(kd)), Outcome::Data(rd)) = (k, r) else {
                return Some(outcome());
            };
            // Sizes are fixed while threads run, so the length is not in doubt.
            if kd.len() != rd.len() {
                return Some(outcome());
            }
            let (file, off) = match *op {
                Op::Read { file, off, .. }
                | Op::DirectRead { file, off, .. }
                | Op::MmapRead { file, off, .. } => (file, off),
                _ => return Some(outcome()),
            };
            racy_bytes_ok(input, off, kd).map(|(offset, byte)| KMismatch::RacyRead {
                file,
                offset,
                byte,
            })
        }
    }
}

/// Runs a threaded `input` on the kernel in `target.dir` and judges it (see the module doc).
pub fn run_threaded(
    target: &KernelTarget<'_>,
    input: &Input,
    watch: Option<&mut KmsgWatch>,
    repeat: Option<Duration>,
) -> Result<KernelRun, KernelError> {
    if let Some(why) = exec::unsupported(input) {
        return Err(KernelError::Unsupported(why));
    }
    let (input, changed) = exec::kernel_view(input, target.jdata);
    let plan = plan(&input)?;
    let collide = collisions_possible(&input, &plan);
    let max = input.config.geometry.max_file_size;
    let mut reference = RefFs::new(&reference_config(&input));
    let mut kernel = Executor::create(target.dir, &input, target.fs).map_err(KernelError::Setup)?;
    let limit = FsizeLimit::set(max).map_err(KernelError::Setup)?;
    let mut checker = Checker::new(target, &input);
    checker.extents = false;
    let mut run = KernelRun {
        trace: Vec::new(),
        divergence: None,
        kernel_view: changed,
        fs: target.fs,
        jdata: target.jdata,
    };
    // Prologue: shared files at their maximum size on both sides (sequence 0 writes nothing).
    for &file in &plan.shared {
        let op = Op::Truncate { file, size: max };
        let (r, k) = (reference.apply(0, &op), kernel.apply(0, &op));
        if !outcomes_agree(&op, &r, &k) {
            return Err(KernelError::Unsupported(format!(
                "extending shared file f{file} to {max:#x} failed: {k:?}"
            )));
        }
    }
    let numbered: Vec<(usize, u32, Op)> = input
        .numbered_ops()
        .map(|(t, seq, op)| (t, seq, op.clone()))
        .collect();
    let per_thread: Vec<Vec<(u32, Op)>> = (0..input.threads.len())
        .map(|t| {
            numbered
                .iter()
                .filter(|(tt, _, _)| *tt == t)
                .map(|(_, seq, op)| (*seq, op.clone()))
                .collect()
        })
        .collect();
    // The kernel, all threads at once; with `repeat`, each thread runs its list again until the
    // time is up (at least once), as stress tests do.
    let executors = (0..input.threads.len())
        .map(|_| kernel.share())
        .collect::<std::io::Result<Vec<_>>>()
        .map_err(KernelError::Setup)?;
    let barrier = Barrier::new(input.threads.len());
    let schedule = &input.schedule;
    let kernel_out: Vec<Vec<KOutcome>> = std::thread::scope(|s| {
        let handles: Vec<_> = executors
            .into_iter()
            .zip(&per_thread)
            .map(|(mut ex, ops)| {
                let barrier = &barrier;
                s.spawn(move || {
                    super::kmsg::note_our_thread();
                    barrier.wait();
                    let start = Instant::now();
                    let mut out = Vec::new();
                    loop {
                        for (seq, op) in ops {
                            if let Some(&d) = schedule.get(*seq as usize - 1) {
                                spin(d as u64);
                            }
                            out.push(ex.apply(*seq, op));
                        }
                        if ops.is_empty() || repeat.is_none_or(|r| start.elapsed() >= r) {
                            break out;
                        }
                    }
                })
            })
            .collect();
        handles
            .into_iter()
            // A panicking worker is wbfuzz's own bug: let it surface as one.
            .map(|h| h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
            .collect()
    });
    // The reference, serially (thread 0's runs of its list, then thread 1's, ...), judging each
    // kernel result as it goes.
    'judge: for (t, ops) in per_thread.iter().enumerate() {
        for (k_index, k) in kernel_out[t].iter().enumerate() {
            let index = k_index % ops.len();
            let (seq, op) = &ops[index];
            let r = reference.apply(*seq, op);
            let bad = judge(&input, collide, (t, plan.judgements[t][index]), op, &r, k);
            let entry = KTraceEntry {
                thread: t,
                seq: *seq,
                op: op.clone(),
                reference: r,
                kernel: k.clone(),
                epilogue: false,
            };
            if run.record(entry, bad.into_iter().collect()) {
                break 'judge;
            }
        }
    }
    // After the join: the whole state, then the epilogue op by op, then from the disk.
    if run.divergence.is_none() {
        let mut ms = Vec::new();
        checker.compare(&reference, &kernel, false, &mut ms);
        if !ms.is_empty() {
            run.divergence = Some((run.trace.len().saturating_sub(1), ms));
        }
    }
    let last = input.op_count() as u32;
    for (k, op) in epilogue(&input).into_iter().enumerate() {
        if run.divergence.is_some() || scratch::interrupted() {
            break;
        }
        let seq = last + 1 + k as u32;
        let (r, kr) = (reference.apply(seq, &op), kernel.apply(seq, &op));
        let mut ms = Vec::new();
        let collided = collide && op.kind() == OpKind::Fsync && kr == COLLISION;
        if !outcomes_agree(&op, &r, &kr) && !collided {
            ms.push(KMismatch::Outcome {
                reference: r.clone(),
                kernel: kr.clone(),
            });
        }
        checker.compare(&reference, &kernel, false, &mut ms);
        let entry = KTraceEntry {
            thread: 0,
            seq,
            op,
            reference: r,
            kernel: kr,
            epilogue: true,
        };
        run.record(entry, ms);
    }
    if run.divergence.is_none() {
        checker.extents = true;
        compare_from_disk(&mut checker, &reference, &kernel, &mut run);
    }
    drop(limit);
    check_kernel_log(target, watch, &mut run);
    kernel.remove().map_err(KernelError::Setup)?;
    if scratch::interrupted() {
        return Err(KernelError::Interrupted);
    }
    Ok(run)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::input::script;

    /// The shape of a threaded XFS finding (2026-12-01, CI, 0 of 10 reruns): thread 1's direct
    /// read of page 3 is exact by the rule (no other thread writes page 3), but thread 0 write-
    /// faults page 7, whose kernel folio may hold pages 4-7; `with` adds thread 2's
    /// direct-read-only twin on another file.
    fn input() -> Input {
        script::parse(
            "geometry block=4096 folio-pages=1 capacity=4096 max-size=0x10000\n\
             policy keep-dirty\nfile f0\nfile f1\n\
             thread 0\n  mwrite f0 0x7000 0x1\n  dread f1 0x0 0x1000\n\
             thread 1\n  read f0 0x3000 0x10\n  dread f0 0x3000 0x1000\n\
             thread 2\n  dread f1 0x1000 0x1000\n",
        )
        .expect("the script parses")
    }

    fn judged(t: usize, index: usize, k: &KOutcome) -> Option<KMismatch> {
        let input = input();
        let plan = plan(&input).expect("the rule plans it");
        let op = &input.threads[t][index];
        let data = Outcome::Data(vec![0; 0x1000]);
        let collide = collisions_possible(&input, &plan);
        judge(
            &input,
            collide,
            (t, plan.judgements[t][index]),
            op,
            &data,
            k,
        )
    }

    #[test]
    fn a_direct_read_sharing_a_kernel_folio_with_another_threads_write_may_collide() {
        let input = input();
        let plan = plan(&input).expect("the rule plans it");
        assert_eq!(
            plan.judgements[1][1],
            Judgement::Exact,
            "pages disjoint: exact"
        );
        assert!(judged(1, 1, &COLLISION).is_none(), "EIO tolerated");
        // Its data is still judged exactly.
        assert!(judged(1, 1, &Ok(Outcome::Data(vec![1; 0x1000]))).is_some());
        assert!(
            collisions_possible(&input, &plan),
            "so an fsync may report it"
        );
    }

    #[test]
    fn a_direct_read_of_a_file_no_other_thread_writes_through_the_cache_may_not() {
        // f1 is read directly by threads 0 and 2 and written by nobody.
        assert!(judged(2, 0, &COLLISION).is_some());
        assert!(judged(0, 1, &COLLISION).is_some());
        // And thread 0's own write fault does not count against thread 0.
        assert!(!large_folio_collision(&input(), 0, &input().threads[0][1]));
    }
}
