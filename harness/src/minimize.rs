//! Structured minimization: shrinks a failing input to a small script that fails the same way.
//!
//! Works on the decoded [`Input`], not on bytes, so every candidate is valid by construction:
//! drop threads, drop runs of ops, drop single ops, shrink offsets and lengths, clear flags,
//! simplify the geometry, policy and files, shorten the schedule. A candidate is kept when it still
//! diverges with the same [`Signature`]. Greedy passes repeat until a whole round changes nothing.

use crate::bugs::Bugs;
use crate::exec;
use crate::oracle::{Mismatch, Run};
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

struct Shrinker {
    bugs: Bugs,
    target: Signature,
    budget: usize,
}

impl Shrinker {
    /// Whether `cand` still fails the same way.
    fn fails(&mut self, cand: &Input) -> bool {
        if self.budget == 0 {
            return false;
        }
        self.budget -= 1;
        let run = exec::run_input(cand, self.bugs);
        signature(&run).as_ref() == Some(&self.target)
    }

    /// Tries `cand`; on success replaces `cur` with it.
    fn try_replace(&mut self, cur: &mut Input, cand: Input) -> bool {
        if cand != *cur && self.fails(&cand) {
            *cur = cand;
            true
        } else {
            false
        }
    }
}

/// The op's shrinkable numbers: offset and length, a truncate size, a folio index, a count, a
/// crash's land mask.
fn op_numbers(op: &Op) -> Vec<u64> {
    let mut op = op.clone();
    if let Some((off, len)) = op.range_mut() {
        return vec![*off, *len];
    }
    match op {
        Op::Truncate { size, .. } => vec![size],
        Op::Reclaim { folio, .. } => vec![folio],
        Op::CompleteIo { n } => vec![n as u64],
        Op::Crash { land } => vec![land as u64],
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
        Op::Crash { land } => *land = v[0].min(u32::MAX as u64) as u32,
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
    let Some(target) = signature(&exec::run_input(input, bugs)) else {
        return input.clone();
    };
    let mut s = Shrinker {
        bugs,
        target,
        budget,
    };
    let mut cur = input.clone();
    loop {
        let before = cur.clone();
        // Threads.
        let mut t = 0;
        while cur.threads.len() > 1 && t < cur.threads.len() {
            let mut cand = cur.clone();
            cand.threads.remove(t);
            if !s.try_replace(&mut cur, cand) {
                t += 1;
            }
        }
        // Runs of ops, halving the chunk size, then single ops.
        for t in 0..cur.threads.len() {
            let mut chunk = cur.threads[t].len().div_ceil(2).max(1);
            loop {
                let mut i = 0;
                while i < cur.threads[t].len() {
                    let mut cand = cur.clone();
                    let end = (i + chunk).min(cand.threads[t].len());
                    cand.threads[t].drain(i..end);
                    if !s.try_replace(&mut cur, cand) {
                        i += chunk;
                    }
                }
                if chunk == 1 {
                    break;
                }
                chunk = chunk.div_ceil(2);
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
                        let mut cand = cur.clone();
                        cand.threads[t][i] = with_numbers(&cur.threads[t][i], &v);
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
        if cur == before || s.budget == 0 {
            return cur;
        }
    }
}
