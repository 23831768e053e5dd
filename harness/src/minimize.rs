//! Structured minimization: shrinks a failing input to a small script that fails the same way.
//!
//! Works on the decoded [`Input`], not on bytes, so every candidate is valid by construction:
//! drop no-op ops and empty threads, drop threads, drop runs of ops, drop single ops, shrink
//! offsets and lengths, clear flags, simplify the geometry, policy and files, shorten the
//! schedule. A candidate is kept when it still diverges with the same [`Signature`]. Greedy
//! passes repeat until a whole round changes nothing.
//!
//! Removing an op or a thread from a concurrent input shifts every later scheduling decision,
//! so the raw schedule bytes of the smaller input describe another interleaving. The minimizer
//! therefore keeps the interleaving instead: it records the failing run's decisions, each
//! attributed to the op its task was running ([`Decision::op`]), drops the decisions of the
//! removed ops and threads, replays the rest in order ([`run_concurrent_planned`]) and takes
//! the schedule bytes that reproduce that run. Reusing the raw bytes stays as the fallback.

use crate::bugs::Bugs;
use crate::concurrent::{run_concurrent_decisions, run_concurrent_planned};
use crate::exec;
use crate::oracle::{Mismatch, Run};
use crate::schedule::Decision;
use reference::{FileId, Input, Op, OpKind};

/// What makes two failures "the same": the kind of op after which the models first disagreed and
/// the kind of the first mismatch there.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Signature {
    /// Kind of the op at the divergence (`None` for the end-of-run epilogue).
    pub op: Option<OpKind>,
    /// Discriminant name of the first mismatch.
    pub mismatch: &'static str,
}

impl std::fmt::Display for Signature {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.op {
            Some(k) => write!(f, "{} after {}", self.mismatch, k.keyword()),
            None => write!(f, "{} at end of run", self.mismatch),
        }
    }
}

fn mismatch_name(m: &Mismatch) -> &'static str {
    match m {
        Mismatch::Outcome { .. } => "outcome",
        Mismatch::Size { .. } => "size",
        Mismatch::Contents { .. } => "contents",
        Mismatch::Blocks { .. } => "block-states",
        Mismatch::Counters { .. } => "counters",
        Mismatch::WbError { .. } => "wb-error",
        Mismatch::Corruption { .. } => "corruption-flag",
        Mismatch::Invariant { violation, .. } => violation.name,
        Mismatch::Replay { .. } => "replay",
        Mismatch::Deadlock { .. } => "deadlock",
        Mismatch::Panic { .. } => "panic",
    }
}

/// The signature of a failing run (`None` if the run agreed).
pub fn signature(run: &Run) -> Option<Signature> {
    let d = run.divergence()?;
    let e = run.trace.get(d.at);
    Some(Signature {
        op: e.filter(|e| !e.epilogue).map(|e| e.op.kind()),
        mismatch: d.mismatches.first().map_or("unknown", mismatch_name),
    })
}

/// Minimization budget: candidate runs at most.
pub const DEFAULT_BUDGET: usize = 20_000;

/// Runs a candidate: the signature of its failure, `None` if it passes or cannot run.
type RunFn<'a> = Box<dyn FnMut(&Input) -> Option<Signature> + 'a>;

struct Shrinker<'a> {
    /// Runs a candidate: the signature of its failure, `None` if it passes or cannot run.
    run: RunFn<'a>,
    /// Model runs: the bug switches, for re-deriving schedules; `None` (kernel runs): candidates
    /// keep their schedule bytes.
    bugs: Option<Bugs>,
    target: Signature,
    budget: usize,
    /// The decisions of the current input's run (concurrent inputs), for [`Shrinker::remove`].
    decisions: Vec<Decision>,
    /// Accept another op kind at the divergence (see [`Shrinker::fails`]).
    relaxed: bool,
}

impl Shrinker<'_> {
    /// Whether `cand` still fails the same way. With `relaxed` (removing no-ops), the same kind
    /// of mismatch after any op will do, and becomes the target: an empty `read` the report
    /// happened to name is no part of the failure.
    fn fails(&mut self, cand: &Input) -> bool {
        if self.budget == 0 {
            return false;
        }
        self.budget -= 1;
        match (self.run)(cand) {
            Some(sig) if sig == self.target => true,
            Some(sig) if self.relaxed && sig.mismatch == self.target.mismatch => {
                self.target = sig;
                true
            }
            _ => false,
        }
    }

    /// Tries `cand`; on success replaces `cur` with it.
    fn try_replace(&mut self, cur: &mut Input, cand: Input) -> bool {
        if cand != *cur && self.fails(&cand) {
            *cur = cand;
            self.refresh(cur);
            true
        } else {
            false
        }
    }

    /// Records the decisions of `cur`'s run (concurrent inputs only).
    fn refresh(&mut self, cur: &Input) {
        self.decisions.clear();
        if let (Some(bugs), true) = (self.bugs, cur.threads.len() >= 2) {
            self.decisions = run_concurrent_decisions(cur, bugs).1;
        }
    }

    /// Removes the ops `ops` (thread, index) and then the threads `threads` from `cur`, keeping
    /// the interleaving of what remains (see the module doc), else with the raw schedule bytes;
    /// on success replaces `cur`.
    fn remove(&mut self, cur: &mut Input, ops: &[(usize, usize)], threads: &[usize]) -> bool {
        if ops.is_empty() && threads.is_empty() {
            return false;
        }
        let mut cand = cur.clone();
        let mut sorted = ops.to_vec();
        sorted.sort_unstable();
        for &(t, i) in sorted.iter().rev() {
            if i < cand.threads[t].len() {
                cand.threads[t].remove(i);
            }
        }
        // A thread the removed ops leave empty goes too (an empty thread is not minimal).
        let mut ts = threads.to_vec();
        if cand.threads.len() > 1 {
            ts.extend((0..cand.threads.len()).filter(|&t| cand.threads[t].is_empty()));
        }
        ts.sort_unstable();
        ts.dedup();
        for &t in ts.iter().rev() {
            cand.threads.remove(t);
        }
        if cand.threads.is_empty() {
            return false;
        }
        if let (Some(bugs), true) = (
            self.bugs,
            cur.threads.len() >= 2 && !self.decisions.is_empty() && self.budget > 0,
        ) {
            // Task 0 is the main task (the epilogue); input thread t runs as task t + 1.
            let plan: Vec<usize> = self
                .decisions
                .iter()
                .filter_map(|d| {
                    if d.chosen == 0 {
                        return Some(0);
                    }
                    let t = d.chosen - 1;
                    if ts.contains(&t) {
                        return None;
                    }
                    if let Some(k) = d.op {
                        if sorted.contains(&(t, k as usize)) {
                            return None;
                        }
                    }
                    Some(1 + t - ts.iter().filter(|&&x| x < t).count())
                })
                .collect();
            let mut planned = cand.clone();
            if planned.threads.len() >= 2 {
                self.budget -= 1;
                let (run, _, bytes) = run_concurrent_planned(&planned, bugs, plan);
                planned.schedule = bytes;
                let same = signature(&run).is_some_and(|g| {
                    g == self.target || (self.relaxed && g.mismatch == self.target.mismatch)
                });
                if same && self.try_replace(cur, planned) {
                    return true;
                }
            } else {
                planned.schedule.clear();
                if self.try_replace(cur, planned) {
                    return true;
                }
            }
        }
        self.try_replace(cur, cand)
    }
}

/// Whether `op` changes nothing and waits for nothing whatever runs beside it: empty reads and
/// writes of every kind, `complete 0`, empty fallocate-style ops (EINVAL).
pub fn is_noop(op: &Op) -> bool {
    match *op {
        Op::Write { len, .. }
        | Op::Read { len, .. }
        | Op::DirectWrite { len, .. }
        | Op::DirectRead { len, .. }
        | Op::MmapWrite { len, .. }
        | Op::MmapRead { len, .. }
        | Op::Fallocate { len, .. }
        | Op::PunchHole { len, .. }
        | Op::ZeroRange { len, .. } => len == 0,
        Op::CompleteIo { n } => n == 0,
        _ => false,
    }
}

/// The op's shrinkable numbers: offset and length, a truncate size, a folio index, a count, a
/// crash's land mask, torn mask and tear bits.
fn op_numbers(op: &Op) -> Vec<u64> {
    let mut op = op.clone();
    if let Some((off, len)) = op.range_mut() {
        return vec![*off, *len];
    }
    match op {
        Op::Truncate { size, .. } => vec![size],
        Op::Reclaim { folio, .. } => vec![folio],
        Op::CompleteIo { n } => vec![n as u64],
        Op::Crash { land, torn, tear } => vec![land as u64, torn as u64, tear],
        _ => vec![],
    }
}

/// The op with its numbers replaced (same order as [`op_numbers`]).
fn with_numbers(op: &Op, v: &[u64]) -> Op {
    let mut op = op.clone();
    if let Some((off, len)) = op.range_mut() {
        (*off, *len) = (v[0], v[1]);
        return op;
    }
    match &mut op {
        Op::Truncate { size, .. } => *size = v[0],
        Op::Reclaim { folio, .. } => *folio = v[0],
        Op::CompleteIo { n } => *n = v[0].min(u32::MAX as u64) as u32,
        Op::Crash { land, torn, tear } => {
            *land = v[0].min(u32::MAX as u64) as u32;
            *torn = v[1].min(u32::MAX as u64) as u32;
            *tear = v[2];
        }
        _ => {}
    }
    op
}

/// Smaller values to try for a number, most aggressive first.
fn smaller(x: u64, bs: u64, fs: u64) -> Vec<u64> {
    let mut v = vec![
        0,
        1,
        x / 2,
        x & !(fs - 1),
        x & !(bs - 1),
        x.saturating_sub(bs),
        x.saturating_sub(1),
    ];
    v.retain(|&c| c < x);
    v.dedup();
    v
}

fn clear_flag(op: &Op) -> Option<Op> {
    match *op {
        Op::Write {
            file,
            off,
            len,
            sync: true,
        } => Some(Op::Write {
            file,
            off,
            len,
            sync: false,
        }),
        Op::Fallocate {
            file,
            off,
            len,
            keep_size: true,
        } => Some(Op::Fallocate {
            file,
            off,
            len,
            keep_size: false,
        }),
        Op::ZeroRange {
            file,
            off,
            len,
            keep_size: true,
        } => Some(Op::ZeroRange {
            file,
            off,
            len,
            keep_size: false,
        }),
        _ => None,
    }
}

/// The op after file `removed` was deleted from the file list: later files move down by one.
fn renumber_after_removal(op: &Op, removed: FileId) -> Op {
    let mut op = op.clone();
    if let Some(file) = op.file_mut() {
        if *file > removed {
            *file -= 1;
        }
    }
    op
}

/// Shrinks `input`, which must fail with `bugs`, to a small input that fails the same way.
/// Returns the input unchanged if it does not fail at all.
pub fn minimize(input: &Input, bugs: Bugs, budget: usize) -> Input {
    minimize_with(
        input,
        budget,
        Some(bugs),
        Box::new(move |cand| signature(&exec::run_input(cand, bugs))),
    )
}

/// [`minimize`] against any run function: `run` returns the signature of a failing candidate
/// (`None` if it passes or cannot run), e.g. a run on a real kernel. Candidates keep their
/// schedule bytes (no interleaving to re-derive).
pub fn minimize_by(
    input: &Input,
    budget: usize,
    run: impl FnMut(&Input) -> Option<Signature>,
) -> Input {
    minimize_with(input, budget, None, Box::new(run))
}

fn minimize_with<'a>(
    input: &Input,
    budget: usize,
    bugs: Option<Bugs>,
    mut run: RunFn<'a>,
) -> Input {
    let Some(target) = run(input) else {
        return input.clone();
    };
    let mut s = Shrinker {
        run,
        bugs,
        target,
        budget,
        decisions: Vec::new(),
        relaxed: false,
    };
    let mut cur = input.clone();
    s.refresh(&cur);
    loop {
        let before = cur.clone();
        // No-op ops and empty threads: all at once, then one by one.
        let noops: Vec<(usize, usize)> = cur
            .threads
            .iter()
            .enumerate()
            .flat_map(|(t, ops)| {
                ops.iter()
                    .enumerate()
                    .filter(|(_, op)| is_noop(op))
                    .map(move |(i, _)| (t, i))
            })
            .collect();
        let empty: Vec<usize> = (0..cur.threads.len())
            .filter(|&t| cur.threads[t].iter().all(is_noop))
            .filter(|_| cur.threads.len() > 1)
            .collect();
        s.relaxed = true;
        if !s.remove(&mut cur, &noops, &empty) {
            for &(t, i) in noops.iter().rev() {
                s.remove(&mut cur, &[(t, i)], &[]);
            }
        }
        s.relaxed = false;
        // Threads.
        let mut t = 0;
        while cur.threads.len() > 1 && t < cur.threads.len() {
            if !s.remove(&mut cur, &[], &[t]) {
                t += 1;
            }
        }
        // Runs of ops, halving the chunk size, then single ops. Removing a thread's last ops
        // removes the thread: the next one moves into its index.
        let mut t = 0;
        while t < cur.threads.len() {
            let threads = cur.threads.len();
            let mut chunk = cur.threads[t].len().div_ceil(2).max(1);
            'chunks: loop {
                let mut i = 0;
                while i < cur.threads[t].len() {
                    let end = (i + chunk).min(cur.threads[t].len());
                    let ops: Vec<(usize, usize)> = (i..end).map(|k| (t, k)).collect();
                    if s.remove(&mut cur, &ops, &[]) {
                        if cur.threads.len() < threads {
                            break 'chunks;
                        }
                    } else {
                        i += chunk;
                    }
                }
                if chunk == 1 {
                    break;
                }
                chunk = chunk.div_ceil(2);
            }
            if cur.threads.len() == threads {
                t += 1;
            }
        }
        // Numbers and flags of each op.
        let (bs, fs) = (cur.config.geometry.bs(), cur.config.geometry.folio_size());
        for t in 0..cur.threads.len() {
            for i in 0..cur.threads[t].len() {
                if let Some(op) = clear_flag(&cur.threads[t][i]) {
                    let mut cand = cur.clone();
                    cand.threads[t][i] = op;
                    s.try_replace(&mut cur, cand);
                }
                let nums = op_numbers(&cur.threads[t][i]);
                for k in 0..nums.len() {
                    for c in smaller(op_numbers(&cur.threads[t][i])[k], bs, fs) {
                        let mut v = op_numbers(&cur.threads[t][i]);
                        v[k] = c;
                        let op = with_numbers(&cur.threads[t][i], &v);
                        // A no-op would be removed next round if it could be; if the failure
                        // needs it (its lock round trips move the schedule), it would stay.
                        if is_noop(&op) {
                            continue;
                        }
                        let mut cand = cur.clone();
                        cand.threads[t][i] = op;
                        if s.try_replace(&mut cur, cand) {
                            break;
                        }
                    }
                }
            }
        }
        // Files: drop unused ones, clear jdata.
        let mut f = 0;
        while f < cur.config.files.len() {
            if cur.config.files[f].jdata {
                let mut cand = cur.clone();
                cand.config.files[f].jdata = false;
                s.try_replace(&mut cur, cand);
            }
            let used = cur
                .threads
                .iter()
                .flatten()
                .any(|op| op.file() == Some(f as FileId));
            if !used && cur.config.files.len() > 1 {
                let mut cand = cur.clone();
                cand.config.files.remove(f);
                for ops in &mut cand.threads {
                    for op in ops.iter_mut() {
                        *op = renumber_after_removal(op, f as FileId);
                    }
                }
                if s.try_replace(&mut cur, cand) {
                    continue;
                }
            }
            f += 1;
        }
        // Geometry and policy, towards the defaults a reader expects.
        let g = cur.config.geometry;
        let mut geos = Vec::new();
        if g.folio_pages != 1 {
            let mut n = g;
            n.folio_pages = 1;
            n.max_file_size = n.max_file_size.div_ceil(n.folio_size()) * n.folio_size();
            geos.push(n);
        }
        for bsz in [4096u32, 1024] {
            if g.block_size != bsz {
                let mut n = g;
                n.block_size = bsz;
                geos.push(n);
            }
        }
        for n in geos {
            if n.validate().is_ok() {
                let mut cand = cur.clone();
                cand.config.geometry = n;
                s.try_replace(&mut cur, cand);
            }
        }
        if cur.config.policy != reference::Policy::KeepDirty {
            let mut cand = cur.clone();
            cand.config.policy = reference::Policy::KeepDirty;
            s.try_replace(&mut cur, cand);
        }
        // Schedule: shorter, then simpler bytes.
        while !cur.schedule.is_empty() {
            let mut cand = cur.clone();
            let keep = cand.schedule.len() / 2;
            cand.schedule.truncate(keep);
            if !s.try_replace(&mut cur, cand) {
                break;
            }
        }
        while !cur.schedule.is_empty() {
            let mut cand = cur.clone();
            cand.schedule.pop();
            if !s.try_replace(&mut cur, cand) {
                break;
            }
        }
        // Then single decisions, last first (a dropped byte merges two runs).
        let mut i = cur.schedule.len();
        while i > 0 && s.budget > 0 {
            i -= 1;
            if i < cur.schedule.len() {
                let mut cand = cur.clone();
                cand.schedule.remove(i);
                s.try_replace(&mut cur, cand);
            }
        }
        if cur == before || s.budget == 0 {
            return cur;
        }
    }
}
