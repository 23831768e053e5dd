//! The feedback signal: what a run did, as a set of hashed features, from what the oracle and
//! the concurrent replay observe anyway. The guided hunt ([`crate::hunt`]) keeps an input that
//! reaches a feature no earlier input reached; `wbfuzz corpus distill` ([`crate::distill`])
//! keeps the fewest inputs that reach them all. `docs/signal.md` lists every feature.
//!
//! Features of one run ([`Features`]):
//! - per op, its kind, its outcome class, where its range lies against EOF, and each abstract
//!   block class (extent state × cache state × under writeback: 24 classes) present in its scope
//!   on the reference before and after it; and each block's class transition;
//! - concurrent runs: for every op B and two consecutive commit steps of B, each commit step of
//!   another op A that ran between them, with A's and B's kinds and step kinds and whether A's
//!   step hit B's folio, B's file, or something else;
//! - concurrent runs: each contention event (a shuttle task found a lock another task held:
//!   [`wbfs::sync::Contention`]), as the lock's class and the classes each side held; and the
//!   pairs of op kinds that run in different threads.
//!
//! Each feature is hashed (FNV-1a, then a 64-bit finalizer) to one of [`MAP_BITS`] indices.
//! Invariants: a run's features are a pure function of the run (no global state; the
//! contention recorder is per OS thread and reset by each execution); [`SignalMap`] is the only
//! state kept across runs, and only where a caller keeps one. Locks: none.

use crate::oracle::{Recorded, Scope};
use reference::{BlockObs, CacheState, ExtentState, Observe, Op, Step};

/// Number of distinct feature indices (a power of two).
pub const MAP_BITS: u32 = 1 << 18;

/// Blocks observed per op scope at most: whole-file ops are summarized by their first blocks, so
/// the cost per op stays bounded whatever the file size.
const MAX_OBSERVED_BLOCKS: u64 = 256;

/// Feature families (the first hashed word), so equal tuples of different families differ.
#[derive(Clone, Copy)]
#[repr(u64)]
enum Family {
    Op = 1,
    Transition = 2,
    Outcome = 3,
    Interleave = 4,
    Contention = 5,
    Threads = 6,
}

/// The features one run reached: sorted, distinct indices below [`MAP_BITS`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Features {
    idx: Vec<u32>,
    sorted: bool,
}

impl Features {
    /// No features.
    pub fn new() -> Features {
        Features::default()
    }

    fn add(&mut self, family: Family, parts: &[u64]) {
        let mut h: u64 = 0xcbf2_9ce4_8422_2325 ^ family as u64;
        for &p in parts {
            for b in p.to_le_bytes() {
                h ^= b as u64;
                h = h.wrapping_mul(0x0000_0100_0000_01b3);
            }
        }
        h = (h ^ (h >> 33)).wrapping_mul(0xff51_afd7_ed55_8ccd);
        h ^= h >> 33;
        self.idx.push((h as u32) & (MAP_BITS - 1));
        self.sorted = false;
    }

    /// The distinct indices, sorted.
    pub fn indices(&mut self) -> &[u32] {
        if !self.sorted {
            self.idx.sort_unstable();
            self.idx.dedup();
            self.sorted = true;
        }
        &self.idx
    }

    /// Number of distinct features.
    pub fn len(&mut self) -> usize {
        self.indices().len()
    }

    /// Whether the run reached no feature.
    pub fn is_empty(&self) -> bool {
        self.idx.is_empty()
    }

    /// Forgets every feature, keeping the allocation.
    pub fn clear(&mut self) {
        self.idx.clear();
        self.sorted = true;
    }
}

/// The union of the features of many runs: a bitmap of [`MAP_BITS`] bits.
#[derive(Clone, Debug)]
pub struct SignalMap {
    words: Vec<u64>,
    count: usize,
}

impl Default for SignalMap {
    fn default() -> Self {
        SignalMap::new()
    }
}

impl SignalMap {
    /// An empty map.
    pub fn new() -> SignalMap {
        SignalMap {
            words: vec![0; (MAP_BITS / 64) as usize],
            count: 0,
        }
    }

    /// Features set.
    pub fn count(&self) -> usize {
        self.count
    }

    /// Whether feature `i` is set.
    pub fn has(&self, i: u32) -> bool {
        self.words[(i / 64) as usize] & (1 << (i % 64)) != 0
    }

    /// How many of `f`'s features are not set yet.
    pub fn novel(&self, f: &mut Features) -> usize {
        f.indices().iter().filter(|&&i| !self.has(i)).count()
    }

    /// Sets `f`'s features; returns how many were new.
    pub fn merge(&mut self, f: &mut Features) -> usize {
        let mut new = 0;
        for &i in f.indices() {
            let w = &mut self.words[(i / 64) as usize];
            let b = 1u64 << (i % 64);
            if *w & b == 0 {
                *w |= b;
                new += 1;
            }
        }
        self.count += new;
        new
    }
}

/// A block's abstract class, 0..24: extent state × cache state × under writeback.
fn class(b: &BlockObs) -> u8 {
    let e = match b.extent {
        ExtentState::Hole => 0,
        ExtentState::Delalloc => 1,
        ExtentState::Unwritten => 2,
        ExtentState::Written => 3,
    };
    let c = match b.cache {
        CacheState::NotCached => 0,
        CacheState::Clean => 1,
        CacheState::Dirty => 2,
    };
    (e * 3 + c) * 2 + b.writeback as u8
}

/// What the signal keeps of a model's state in an op's scope.
#[derive(Clone, Debug, Default)]
pub(crate) struct Obs {
    /// The size of the op's file (0 for ops on no file).
    size: u64,
    /// Classes of the observed blocks, in block order.
    classes: Vec<u8>,
    /// The set of those classes.
    mask: u32,
}

/// Observes `r`'s block classes in `scope` (at most [`MAX_OBSERVED_BLOCKS`] blocks).
pub(crate) fn observe(r: &dyn Observe, scope: Scope) -> Obs {
    let mut obs = Obs::default();
    let take = |file, first: u64, end: u64, obs: &mut Obs| {
        if file as usize >= r.file_count() {
            return;
        }
        let end = if end == u64::MAX {
            r.block_span(file)
        } else {
            end
        };
        let budget = MAX_OBSERVED_BLOCKS.saturating_sub(obs.classes.len() as u64);
        let end = end.min(first.saturating_add(budget));
        if end > first {
            for b in r.blocks(file, first, end - first) {
                let c = class(&b);
                obs.mask |= 1 << c;
                obs.classes.push(c);
            }
        }
    };
    match scope {
        Scope::Range { file, first, end } => {
            if (file as usize) < r.file_count() {
                obs.size = r.size(file);
            }
            take(file, first, end, &mut obs);
        }
        Scope::All => {
            for f in 0..r.file_count() {
                take(f as u8, 0, u64::MAX, &mut obs);
            }
        }
    }
    obs
}

/// An outcome's class: success with nothing, with something, or its errno.
fn outcome_class(o: &Recorded) -> u64 {
    match o {
        Recorded::Done(0) => 0,
        Recorded::Done(_) => 1,
        Recorded::Data { len: 0, .. } => 2,
        Recorded::Data { .. } => 3,
        Recorded::Err(e) => 16 + *e as u64,
    }
}

/// Where `op`'s range lies against the file size `size` before it.
fn eof_relation(op: &Op, size: u64) -> u64 {
    let range = op.range();
    match (range, op) {
        (Some((off, len)), _) => match off.saturating_add(len) {
            e if e <= size => 0,
            _ if off < size => 1,
            _ if off == size => 2,
            _ => 3,
        },
        (None, Op::Truncate { size: to, .. }) => match (*to).cmp(&size) {
            std::cmp::Ordering::Less => 4,
            std::cmp::Ordering::Equal => 5,
            std::cmp::Ordering::Greater => 6,
        },
        _ => 8,
    }
}

/// Adds one op's features: kind, EOF relation, class sets before and after, outcome, and each
/// block's class transition.
pub(crate) fn op_features(f: &mut Features, op: &Op, before: &Obs, after: &Obs, out: &Recorded) {
    let kind = op.kind() as u64;
    let oc = outcome_class(out);
    let eof = eof_relation(op, before.size);
    f.add(Family::Outcome, &[kind, oc, eof]);
    // Each class present before and after (not the sets themselves: their combinations are so
    // many that nearly every input reached a new one, and the corpus kept half of all inputs).
    for (when, mask) in [(0u64, before.mask), (1, after.mask)] {
        for c in 0..24u64 {
            if mask & (1 << c) != 0 {
                f.add(Family::Op, &[kind, when, c, oc]);
            }
        }
    }
    let untouched = class(&BlockObs::UNTOUCHED);
    let n = before.classes.len().max(after.classes.len());
    // The same transition in many blocks is one feature: hash each once per op.
    let mut seen = [0u64; 9];
    for k in 0..n {
        let b = before.classes.get(k).copied().unwrap_or(untouched) as u64;
        let a = after.classes.get(k).copied().unwrap_or(untouched) as u64;
        let key = (b * 24 + a) as usize;
        if seen[key / 64] & (1 << (key % 64)) != 0 {
            continue;
        }
        seen[key / 64] |= 1 << (key % 64);
        f.add(Family::Transition, &[kind, b, a]);
    }
}

/// A commit step's kind.
fn step_kind(s: &Step) -> u64 {
    match s {
        Step::Begin { .. } => 0,
        Step::End { .. } => 1,
        Step::WriteBegin { .. } => 2,
        Step::WriteFolio { .. } => 3,
        Step::WritePunch { .. } => 4,
        Step::ReadFolio { .. } => 5,
        Step::Instantiate { .. } => 6,
        Step::Writeback { .. } => 7,
        Step::Complete { .. } => 8,
        Step::Commit { .. } => 9,
        Step::Op { .. } => 10,
        Step::Lost { .. } => 11,
        Step::Torn { .. } => 12,
    }
}

/// The file and folio a step works on, where it names them (`op_file`: the op's own file).
fn step_place(s: &Step, op_file: Option<u8>) -> (Option<u8>, Option<u64>) {
    match *s {
        Step::WriteFolio { folio, .. } | Step::ReadFolio { folio, .. } => (op_file, Some(folio)),
        Step::Instantiate { file, folio, .. }
        | Step::Writeback { file, folio, .. }
        | Step::Complete { file, folio, .. }
        | Step::Lost { file, folio, .. }
        | Step::Torn { file, folio, .. } => (Some(file), Some(folio)),
        Step::Commit { file, .. } => (Some(file), None),
        _ => (op_file, None),
    }
}

/// How step places relate: same folio (2), same file (1), neither or unknown (0).
fn relation(a: (Option<u8>, Option<u64>), b: (Option<u8>, Option<u64>)) -> u64 {
    match (a, b) {
        ((Some(fa), Some(pa)), (Some(fb), Some(pb))) if fa == fb && pa == pb => 2,
        ((Some(fa), _), (Some(fb), _)) if fa == fb => 1,
        _ => 0,
    }
}

/// Steps of other ops remembered per open op between two of its steps (the first few tell
/// which window was entered; more add nothing a shorter run of the same kinds lacks).
const MAX_PENDING: usize = 6;

struct OpenOp {
    seq: u32,
    kind: u64,
    file: Option<u8>,
    last: u64,
    last_place: (Option<u8>, Option<u64>),
    /// (kind of A, step kind of A, relation to B's last place)
    pending: Vec<(u64, u64, u64)>,
}

/// Adds the interleaving features of a concurrent commit log: which step of which op ran inside
/// which window of another. `op_of(seq)` names each op.
pub(crate) fn log_features<'a>(
    f: &mut Features,
    log: &[Step],
    op_of: impl Fn(u32) -> Option<&'a Op>,
) {
    let mut open: Vec<OpenOp> = Vec::new();
    for s in log {
        let seq = s.seq();
        let op = op_of(seq);
        let kind = op.map_or(u64::MAX, |o| o.kind() as u64);
        let file = op.and_then(Op::file);
        let sk = step_kind(s);
        let place = step_place(s, file);
        for b in open.iter_mut().filter(|b| b.seq != seq) {
            let e = (kind, sk, relation(place, b.last_place));
            if b.pending.len() < MAX_PENDING && !b.pending.contains(&e) {
                b.pending.push(e);
            }
        }
        if let Step::Begin { .. } = s {
            open.push(OpenOp {
                seq,
                kind,
                file,
                last: sk,
                last_place: place,
                pending: Vec::new(),
            });
            continue;
        }
        let Some(k) = open.iter().position(|b| b.seq == seq) else {
            continue;
        };
        let b = &mut open[k];
        for &(ak, ask, rel) in &b.pending {
            f.add(Family::Interleave, &[b.kind, b.last, sk, ak, ask, rel]);
        }
        b.pending.clear();
        b.last = sk;
        b.last_place = step_place(s, b.file);
        if let Step::End { .. } = s {
            open.swap_remove(k);
        }
    }
}

/// Adds the contention events of a concurrent execution.
pub(crate) fn contention_features(f: &mut Features, events: &[wbfs::sync::Contention]) {
    for e in events {
        f.add(
            Family::Contention,
            &[e.class as u64, e.waiter_held as u64, e.holder_held as u64],
        );
    }
}

/// Adds the input's shape: how many threads, and which op kinds each thread runs (so a corpus
/// keeps inputs with a new mix of racers even before they reach a new interleaving).
pub(crate) fn shape_features(f: &mut Features, threads: &[Vec<Op>]) {
    if threads.len() < 2 {
        return;
    }
    let mut kinds: Vec<u64> = threads
        .iter()
        .map(|t| t.iter().fold(0u64, |m, o| m | 1 << o.kind() as u64))
        .collect();
    kinds.sort_unstable();
    for (i, &a) in kinds.iter().enumerate() {
        for &b in &kinds[i + 1..] {
            for ka in 0..20 {
                if a & (1 << ka) == 0 {
                    continue;
                }
                for kb in 0..20 {
                    if b & (1 << kb) != 0 {
                        f.add(Family::Threads, &[ka.min(kb), ka.max(kb)]);
                    }
                }
            }
        }
    }
}
