//! `wbfuzz corpus distill`: the fewest inputs that reach all the signal a corpus reached.
//!
//! Each candidate is replayed deterministically (sequential inputs op by op, concurrent ones
//! under their schedule bytes) for its features ([`crate::signal`]); inputs that diverge or are
//! rejected are left out (a distilled corpus is a regression corpus: it must pass). A greedy set
//! cover then takes, while the bounds allow, the input reaching the most features not yet
//! covered per byte of its script (ties: the shorter script, then the earlier candidate), so the
//! result is a pure function of the candidates' order and contents. The kept inputs are written as
//! `.wbf` scripts, named by rank, into one directory.
//!
//! Owns: nothing across calls. Locks: none (candidates are replayed in parallel with rayon; each
//! replay is independent).

use crate::bugs::Bugs;
use crate::concurrent::{run_concurrent_signal, Sched};
use crate::input::script;
use crate::oracle;
use crate::signal::Features;
use rayon::prelude::*;
use reference::Input;
use std::collections::BinaryHeap;
use std::path::Path;

/// Bounds of a distilled corpus.
#[derive(Clone, Copy, Debug)]
pub struct Bounds {
    /// Most inputs kept.
    pub max_count: usize,
    /// Most bytes of scripts kept, all together.
    pub max_bytes: usize,
}

/// The prefix of every file `write` makes (and removes before writing).
pub const FILE_PREFIX: &str = "distilled-";

/// One kept input.
#[derive(Clone, Debug)]
pub struct Kept {
    /// The input.
    pub input: Input,
    /// Its script, as written.
    pub script: String,
    /// Features it added to the cover when it was taken.
    pub gain: usize,
}

/// What a distillation kept and covered.
#[derive(Clone, Debug, Default)]
pub struct Distilled {
    /// The kept inputs, in the order the cover took them.
    pub kept: Vec<Kept>,
    /// Candidates replayed.
    pub candidates: usize,
    /// Candidates left out because they diverged or were rejected.
    pub failing: usize,
    /// Distinct features all passing candidates reach.
    pub signal: usize,
    /// Of those, features the kept inputs reach.
    pub covered: usize,
}

impl Distilled {
    /// Bytes of all kept scripts.
    pub fn bytes(&self) -> usize {
        self.kept.iter().map(|k| k.script.len()).sum()
    }
}

/// Replays `input` as a corpus replay does (concurrent: under its schedule bytes) and returns its
/// features, or `None` if it diverged or was rejected.
pub fn features_of(input: &Input) -> Option<Features> {
    let mut f = Features::new();
    let run = if input.threads.len() > 1 {
        run_concurrent_signal(input, Bugs::NONE, Sched::Bytes, false, &mut f).0
    } else {
        oracle::run_sequential_signal(input, Bugs::NONE, &mut f)
    };
    run.ok().then_some(f)
}

/// The greedy weighted set cover: indices of `sets` (each sorted and distinct), in the order
/// taken, each time the set with the most uncovered elements per unit of `cost` (at least 1),
/// while `admit(index)` allows it (asked once per set about to be taken; a refused set is skipped
/// for good, e.g. past a byte bound). Ties go to the lower cost, then the lower index. The
/// classic ln(n)-approximation of the smallest cover; by cost per element, so that small inputs
/// reaching a few features win over big ones reaching the same features and more of what
/// several small ones reach. Returns (index, gain) pairs.
pub fn greedy_cover(
    sets: &[Vec<u32>],
    cost: &[usize],
    mut admit: impl FnMut(usize) -> bool,
) -> Vec<(usize, usize)> {
    use std::cmp::Reverse;
    let universe = sets
        .iter()
        .flatten()
        .copied()
        .max()
        .map_or(0, |m| m as usize + 1);
    let mut covered = vec![false; universe];
    // Gain per cost, fixed point (integers order exactly the same in every process).
    let key = |gain: usize, i: usize| (((gain as u128) << 32) / cost[i].max(1) as u128) as u64;
    // Lazy greedy: a set's gain only shrinks, so a popped set whose recomputed key still tops the
    // heap is the best.
    let mut heap: BinaryHeap<(u64, Reverse<usize>, Reverse<usize>)> = sets
        .iter()
        .enumerate()
        .map(|(i, s)| (key(s.len(), i), Reverse(cost[i]), Reverse(i)))
        .collect();
    let mut out = Vec::new();
    while let Some((_, c, Reverse(i))) = heap.pop() {
        let gain = sets[i].iter().filter(|&&e| !covered[e as usize]).count();
        if gain == 0 {
            continue;
        }
        let now = (key(gain, i), c, Reverse(i));
        if heap.peek().is_some_and(|top| now < *top) {
            heap.push(now);
            continue;
        }
        if !admit(i) {
            continue;
        }
        for &e in &sets[i] {
            covered[e as usize] = true;
        }
        out.push((i, gain));
    }
    out
}

/// Distills `candidates` within `bounds`.
pub fn distill(candidates: &[Input], bounds: Bounds) -> Distilled {
    let replayed: Vec<Option<Vec<u32>>> = candidates
        .par_iter()
        .map(|i| features_of(i).map(|mut f| f.indices().to_vec()))
        .collect();
    let failing = replayed.iter().filter(|r| r.is_none()).count();
    let (idx, sets): (Vec<usize>, Vec<Vec<u32>>) = replayed
        .into_iter()
        .enumerate()
        .filter_map(|(k, r)| r.map(|s| (k, s)))
        .unzip();
    let scripts: Vec<String> = idx.iter().map(|&k| script::print(&candidates[k])).collect();
    let cost: Vec<usize> = idx.iter().zip(&scripts).map(|(_, s)| s.len()).collect();
    let mut signal: Vec<u32> = sets.iter().flatten().copied().collect();
    signal.sort_unstable();
    signal.dedup();
    let mut bytes = 0usize;
    let mut count = 0usize;
    let taken = greedy_cover(&sets, &cost, |i| {
        let len = scripts[i].len();
        if count >= bounds.max_count || bytes + len > bounds.max_bytes {
            return false;
        }
        count += 1;
        bytes += len;
        true
    });
    let covered = {
        let mut c: Vec<u32> = taken
            .iter()
            .flat_map(|&(i, _)| sets[i].iter().copied())
            .collect();
        c.sort_unstable();
        c.dedup();
        c.len()
    };
    Distilled {
        kept: taken
            .into_iter()
            .map(|(i, gain)| Kept {
                input: candidates[idx[i]].clone(),
                script: scripts[i].clone(),
                gain,
            })
            .collect(),
        candidates: candidates.len(),
        failing,
        signal: signal.len(),
        covered,
    }
}

/// Writes the kept inputs into `dir` as `distilled-NNNN.wbf` (after removing every earlier
/// `distilled-*.wbf` there; other files are left alone).
pub fn write(dir: &Path, d: &Distilled) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    for e in std::fs::read_dir(dir)? {
        let p = e?.path();
        let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if name.starts_with(FILE_PREFIX) && name.ends_with(".wbf") {
            std::fs::remove_file(&p)?;
        }
    }
    for (k, kept) in d.kept.iter().enumerate() {
        let text = format!(
            "# wbfuzz corpus distill: rank {k}, {} new features\n{}",
            kept.gain, kept.script
        );
        std::fs::write(dir.join(format!("{FILE_PREFIX}{k:04}.wbf")), text)?;
    }
    Ok(())
}
