//! The oracle: drives the reference and the implementation with the same ops and diffs everything
//! observable.
//!
//! Sequential runs compare, after every op: the op's outcome, every file's size and recorded
//! writeback error, the counters, the corruption flag, and the contents and block states of
//! every block that either model *changed* in that op, as each model's storage logs it
//! (`take_changed` on each side: every mutable access to a cached folio, a block's state, an
//! extent or a disk block notes its range; [`Changes`]). Both sides agreed everywhere after the
//! previous op, and a block in no log is unchanged on both, so this is exactly as strong as
//! comparing everything, and a stray change anywhere (outside the op's range, by a file-wide
//! op, by a completion of nothing) is caught at the op that made it: `stray_write.rs` proves it
//! for each kind of state on each side. Contents are compared through the per-block digests
//! each model keeps ([`Observe::digests`]; each model forgets a block's digest whenever its
//! bytes may change) and block states as runs ([`Observe::block_runs`]); bytes are compared
//! only where a digest is missing or differs, which is also what a report shows. The
//! implementation checks its per-block invariants where something changed (they cannot have
//! changed elsewhere), in the same look at its extents and folios as the comparison
//! ([`Fs::window_checked`]), and, after ops that complete IO or touch the free-space btree, its
//! whole-state ones; the reference checks all its invariants after those ops if it completed
//! IO, and otherwise reports the violations it saw as they happened. Where the whole state is
//! compared (crashes, the end of the run) both models check all their invariants; the
//! reference also checks itself after every op in its soak test. Cost per op therefore follows
//! what the op changed, not the file size. At the end of every run an epilogue repairs the
//! btree, fsyncs, completes all IO and evicts every file, and the whole state is compared
//! again: a cache that lies about the disk shows up there.
//!
//! The oracle owns no model logic: it only calls `apply` and the [`Observe`] trait of each side.

use crate::bugs::Bugs;
use crate::epilogue::run_ops;
use crate::fs::Fs;
use crate::probe::{Part, Probe};
use crate::signal::{self, Features};
use reference::model::replay::ReplayError;
use reference::model::RefFs;
use reference::{
    block_digest, BlockObs, Counters, Errno, FileId, Input, Observe, Op, Outcome, Step, Violation,
};

/// Which model.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Side {
    /// The reference model.
    Reference,
    /// The implementation under test.
    Implementation,
}

impl Side {
    /// Short name for reports.
    pub fn name(self) -> &'static str {
        match self {
            Side::Reference => "reference",
            Side::Implementation => "implementation",
        }
    }
}

/// An op's outcome as a run keeps it: a read's bytes become their length and CRC32C. A trace
/// holds an entry per op and a read returns up to a whole file (64 MiB at the geometry limit), so
/// keeping the bytes made a run's memory grow with every read (1.85 KB per op on a plain 4 KiB
/// script). Sequential runs compare the full outcomes before recording them; concurrent runs
/// compare recorded ones (the implementation's execution ends before the reference replays it,
/// so its read bytes would all be held at once), which misses a wrong read only if the wrong
/// bytes have the length and CRC32C of the right ones. Printed exactly like the [`Outcome`] it
/// stands for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Recorded {
    /// Success with a count.
    Done(u64),
    /// Success with data: its length and CRC32C.
    Data {
        /// Bytes returned.
        len: u64,
        /// Their CRC32C.
        crc32c: u32,
    },
    /// Failure.
    Err(Errno),
}

impl From<&Outcome> for Recorded {
    fn from(o: &Outcome) -> Self {
        match o {
            Outcome::Done(n) => Recorded::Done(*n),
            Outcome::Data(d) => Recorded::Data {
                len: d.len() as u64,
                crc32c: reference::crc32c(d),
            },
            Outcome::Err(e) => Recorded::Err(*e),
        }
    }
}

impl std::fmt::Display for Recorded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Recorded::Done(n) => write!(f, "ok {n:#x}"),
            Recorded::Data { len, crc32c } => write!(f, "data {len:#x} bytes crc32c {crc32c:08x}"),
            Recorded::Err(e) => write!(f, "err {e}"),
        }
    }
}

/// Bytes of read results one thread of a concurrent execution keeps in full until the replay
/// compares them (past it, its reads are kept as [`Recorded`] digests): full comparison and
/// readable reports for every practical input, bounded memory for any.
pub const HELD_READ_BYTES: usize = 16 << 20;

/// An op's outcome as a concurrent execution keeps it until the replay: always its recorded
/// form, and a read's bytes while the thread's [`HELD_READ_BYTES`] budget lasts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Held {
    /// The recorded form.
    pub recorded: Recorded,
    /// A read's bytes, if kept.
    pub bytes: Option<Vec<u8>>,
}

impl Held {
    /// Keeps `o`, charging a read's bytes to `budget` while it lasts.
    pub fn keep(o: Outcome, budget: &mut usize) -> Held {
        let recorded = Recorded::from(&o);
        let bytes = match o {
            Outcome::Data(d) if d.len() <= *budget => {
                *budget -= d.len();
                Some(d)
            }
            _ => None,
        };
        Held { recorded, bytes }
    }

    /// Whether the reference's outcome `r` equals this one: in full where the bytes were kept,
    /// else by length and CRC32C.
    pub fn matches(&self, r: &Outcome) -> bool {
        match (r, &self.bytes) {
            (Outcome::Data(a), Some(b)) => a == b,
            _ => Recorded::from(r) == self.recorded,
        }
    }
}

/// Both outcomes of an op as the trace keeps them; `differ` says whether they differ (the
/// oracle compared them already), and equal outcomes are digested once.
pub fn record_pair(
    reference: &Outcome,
    implementation: &Outcome,
    differ: bool,
) -> (Recorded, Recorded) {
    let r = Recorded::from(reference);
    let i = if !differ {
        r.clone()
    } else {
        Recorded::from(implementation)
    };
    (r, i)
}

/// One executed op with both outcomes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TraceEntry {
    /// Thread that ran it (epilogue ops: thread 0).
    pub thread: usize,
    /// Sequence number (data pattern selector).
    pub seq: u32,
    /// The op.
    pub op: Op,
    /// The reference's outcome.
    pub reference: Recorded,
    /// The implementation's outcome.
    pub implementation: Recorded,
    /// Whether the op belongs to the end-of-run epilogue rather than the input.
    pub epilogue: bool,
}

/// One thing that differs between the models (or is wrong inside one of them).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Mismatch {
    /// The op returned different outcomes. `bytes`: both reads' bytes, where both sides kept
    /// them (always in sequential runs; in concurrent runs within [`HELD_READ_BYTES`]), so the
    /// report can show them.
    Outcome {
        reference: Recorded,
        implementation: Recorded,
        bytes: Option<(Vec<u8>, Vec<u8>)>,
    },
    /// File sizes differ.
    Size {
        file: FileId,
        reference: u64,
        implementation: u64,
    },
    /// Contents differ; `base` is the file offset of the two byte windows, which surround the
    /// first differing byte at `first_bad`.
    Contents {
        file: FileId,
        first_bad: u64,
        base: u64,
        reference: Vec<u8>,
        implementation: Vec<u8>,
    },
    /// Block states differ somewhere in blocks `[first, first + len)`.
    Blocks {
        file: FileId,
        first: u64,
        reference: Vec<BlockObs>,
        implementation: Vec<BlockObs>,
    },
    /// Counters differ.
    Counters {
        reference: Counters,
        implementation: Counters,
    },
    /// Recorded writeback errors differ.
    WbError {
        file: FileId,
        reference: Option<Errno>,
        implementation: Option<Errno>,
    },
    /// The corruption flag differs.
    Corruption {
        reference: bool,
        implementation: bool,
    },
    /// A model found one of its own invariants broken.
    Invariant { side: Side, violation: Violation },
    /// Concurrent run: commit log entry `index` is a step the reference cannot take there.
    Replay { index: usize, error: ReplayError },
    /// Concurrent run: every thread blocked.
    Deadlock { detail: String },
    /// Concurrent run: the implementation panicked.
    Panic { detail: String },
}

/// The first point where the models disagreed, and everything that differed there.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Divergence {
    /// Index into [`Run::trace`] of the op after which the difference was seen.
    pub at: usize,
    /// Everything that differed at that point.
    pub mismatches: Vec<Mismatch>,
}

/// Why a run checked nothing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rejection {
    /// The concurrent run went past this many scheduling points (an unfair schedule, not a
    /// finding).
    StepBound(usize),
}

impl std::fmt::Display for Rejection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Rejection::StepBound(n) => write!(
                f,
                "the concurrent run went past the step bound ({n} scheduling points)"
            ),
        }
    }
}

/// What a differential run concluded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Both models agreed on every op and on the end state.
    Agree,
    /// They disagreed (or one broke its invariants, deadlocked, panicked).
    Diverged(Divergence),
    /// Nothing was checked: the input was rejected.
    Rejected(Rejection),
}

/// The result of one differential run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Run {
    /// Every op executed, input ops first, then the epilogue (cut at the divergence).
    pub trace: Vec<TraceEntry>,
    /// What the run concluded.
    pub verdict: Verdict,
    /// Concurrent runs: the implementation's commit log, in commit order.
    pub commit_log: Vec<Step>,
}

impl Run {
    /// Whether the models were compared and agreed throughout.
    pub fn ok(&self) -> bool {
        self.verdict == Verdict::Agree
    }

    /// The divergence, if the models disagreed.
    pub fn divergence(&self) -> Option<&Divergence> {
        match &self.verdict {
            Verdict::Diverged(d) => Some(d),
            _ => None,
        }
    }

    /// Whether the models disagreed (a finding).
    pub fn diverged(&self) -> bool {
        self.divergence().is_some()
    }

    /// Why nothing was checked, if the input was rejected.
    pub fn rejected(&self) -> Option<Rejection> {
        match self.verdict {
            Verdict::Rejected(r) => Some(r),
            _ => None,
        }
    }
}

/// The part of the state an op's range covers: what the feedback signal observes around each
/// op ([`crate::signal`]; the comparison uses what the models logged as changed instead).
#[derive(Clone, Copy, Debug)]
pub(crate) enum Scope {
    /// Blocks `[first, end)` of one file (folio-aligned).
    Range { file: FileId, first: u64, end: u64 },
    /// All of every file.
    All,
}

/// The folios `op`'s range covers (file-wide ops: the whole file; a crash: everything).
pub(crate) fn scope_of(op: &Op, input: &Input) -> Scope {
    let g = &input.config.geometry;
    let folio_range = |file: FileId, off: u64, len: u64| {
        let end_byte = off.saturating_add(len.max(1));
        let first = g.folio_of(off) * g.blocks_per_folio();
        let end = g
            .folio_of(end_byte.saturating_sub(1))
            .saturating_add(1)
            .saturating_mul(g.blocks_per_folio());
        Scope::Range { file, first, end }
    };
    match *op {
        Op::Write { file, off, len, .. }
        | Op::Read { file, off, len }
        | Op::DirectWrite { file, off, len }
        | Op::DirectRead { file, off, len }
        | Op::Fallocate { file, off, len, .. }
        | Op::PunchHole { file, off, len }
        | Op::ZeroRange { file, off, len, .. } => folio_range(file, off, len),
        Op::MmapWrite { file, off, .. } | Op::MmapRead { file, off, .. } => {
            folio_range(file, off, 1)
        }
        Op::Reclaim { file, folio } => folio_range(file, folio.saturating_mul(g.folio_size()), 1),
        Op::Flush { file, off, len } => {
            // Journaled-data flushes commit the whole file.
            if input
                .config
                .files
                .get(file as usize)
                .is_some_and(|f| f.jdata)
            {
                Scope::Range {
                    file,
                    first: 0,
                    end: u64::MAX,
                }
            } else {
                folio_range(file, off, len)
            }
        }
        Op::Truncate { file, .. }
        | Op::Fsync { file }
        | Op::EvictInode { file }
        | Op::JournalCommit { file } => Scope::Range {
            file,
            first: 0,
            end: u64::MAX,
        },
        // A crash changes every file: the whole state is compared after it.
        Op::CompleteIo { .. } | Op::CorruptAllocBtree | Op::RepairAllocBtree | Op::Crash { .. } => {
            Scope::All
        }
    }
}

/// Bytes of context shown on each side of the first bad byte.
const CONTEXT: u64 = 128;

/// Whether a block's bytes are zero by definition: nothing cached and nothing on disk.
fn surely_zero(b: &BlockObs) -> bool {
    b.cache == reference::CacheState::NotCached && b.extent != reference::ExtentState::Written
}

thread_local! {
    /// The reference's bytes of the window being compared, reused across comparisons.
    static SCRATCH: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Whether both sides hold the same bytes in `[lo, hi)`: the reference's are gathered once into a
/// reused buffer and the implementation's compared slice by slice as it lends them, so the hot
/// path allocates nothing and copies once.
fn same_contents(file: FileId, lo: u64, hi: u64, r: &dyn Observe, i: &dyn Observe) -> bool {
    SCRATCH.with(|buf| {
        let mut buf = buf.borrow_mut();
        buf.clear();
        r.visit(file, lo, hi - lo, &mut |s| buf.extend_from_slice(s));
        let (mut at, mut same) = (0usize, true);
        i.visit(file, lo, hi - lo, &mut |s| {
            if same {
                same = buf.get(at..at + s.len()) == Some(s);
                at += s.len();
            }
        });
        same && at == buf.len()
    })
}

fn contents_mismatch(
    file: FileId,
    lo: u64,
    hi: u64,
    r: &dyn Observe,
    i: &dyn Observe,
) -> Option<Mismatch> {
    if same_contents(file, lo, hi, r, i) {
        return None;
    }
    // Rare path (a finding): materialize both sides to locate and show the difference.
    let a = r.peek(file, lo, hi - lo);
    let b = i.peek(file, lo, hi - lo);
    let first = a
        .iter()
        .zip(&b)
        .position(|(x, y)| x != y)
        .unwrap_or(a.len().min(b.len()));
    let first_bad = lo + first as u64;
    let base = first_bad.saturating_sub(CONTEXT) & !15;
    let len = (first_bad - base) + CONTEXT;
    Some(Mismatch::Contents {
        file,
        first_bad,
        base,
        reference: r.peek(file, base, len),
        implementation: i.peek(file, base, len),
    })
}

/// Block states as `(blocks, state)` runs ([`Observe::block_runs`]).
type Runs = Vec<(u64, BlockObs)>;

/// The implementation's side of a window: its block runs, and either the digests of every
/// block of the window ([`Fs::window_checked`]) or none (then they are asked per run of data,
/// as the reference's are).
type ImplWindow<'a> = dyn FnMut(FileId, u64, u64, &mut Runs, &mut Vec<Option<u32>>) + 'a;

/// Reused buffers of [`compare_window`]: both sides' block runs and digests.
#[derive(Default)]
struct Window {
    runs: (Runs, Runs),
    digests: (Vec<Option<u32>>, Vec<Option<u32>>),
    /// The implementation's digests of one run of data, when its window gave none.
    digests_run: Vec<Option<u32>>,
    /// Maximal runs `[lo, hi)` of blocks with data on either side.
    data: Vec<(u64, u64)>,
}

thread_local! {
    static WINDOW: std::cell::RefCell<Window> = std::cell::RefCell::new(Window::default());
}

/// Compares block states of blocks `[first, end)` and the contents of those of them that either
/// side holds data for (cached, or written on disk). Blocks that are neither on both sides read
/// as zeros by definition, so skipping them keeps the cost proportional to the data, not to the
/// file size. States are compared as runs (cost follows extents and folios), contents as the
/// per-block digests both models keep (cost follows the blocks with data, not their bytes);
/// bytes are compared where a digest is missing (a block reaching past EOF) or differs, and
/// that byte comparison is what a report shows.
///
/// The implementation's side is observed by `impl_window` ([`ImplWindow`]), which sees every
/// block of the range that either side's state reaches (past both block spans nothing is held).
fn compare_window(
    file: FileId,
    first: u64,
    end: u64,
    r: &dyn Observe,
    i: &dyn Observe,
    out: &mut Vec<Mismatch>,
    impl_window: &mut ImplWindow<'_>,
) {
    let span = r.block_span(file).max(i.block_span(file));
    let end = end.min(span);
    if end <= first {
        return;
    }
    WINDOW.with(|w| {
        let mut w = w.borrow_mut();
        let Window {
            runs: (ra, ia),
            digests: (rd, id),
            digests_run: id_run,
            data,
        } = &mut *w;
        ra.clear();
        ia.clear();
        rd.clear();
        id.clear();
        data.clear();
        // The reference's digests are asked per run of data below: its block states are kept
        // per block, so digests of a whole window would cost a step per hole (a snapshot's, a
        // hash per block); the implementation's come with its window when it gives them, a
        // step per extent.
        r.block_runs(file, first, end, ra);
        impl_window(file, first, end, ia, id);
        let impl_gave_digests = id.len() as u64 == end - first;
        // One sweep over both run lists: where the states differ, and where data is.
        let (mut x, mut y) = (ra.iter().copied(), ia.iter().copied());
        let (mut a, mut b) = (x.next(), y.next());
        let mut at = first;
        let mut states_differ = false;
        while at < end {
            let (Some((na, sa)), Some((nb, sb))) = (a, b) else {
                // A side described fewer blocks than asked: report it as a state mismatch.
                states_differ = true;
                break;
            };
            // Empty runs say nothing: step over them.
            if na == 0 {
                a = x.next();
                continue;
            }
            if nb == 0 {
                b = y.next();
                continue;
            }
            let n = na.min(nb).min(end - at);
            states_differ |= sa != sb;
            if !(surely_zero(&sa) && surely_zero(&sb)) {
                match data.last_mut() {
                    Some((_, hi)) if *hi == at => *hi += n,
                    _ => data.push((at, at + n)),
                }
            }
            at += n;
            a = if na > n { Some((na - n, sa)) } else { x.next() };
            b = if nb > n { Some((nb - n, sb)) } else { y.next() };
        }
        let bs = r.geometry().bs();
        let size = r.size(file).max(i.size(file));
        'runs: for &(lo, hi) in data.iter() {
            // This run's digests.
            rd.clear();
            r.digests(file, lo, hi, rd);
            let id: &[Option<u32>] = if impl_gave_digests {
                id.get((lo - first) as usize..).unwrap_or(&[])
            } else {
                id_run.clear();
                i.digests(file, lo, hi, id_run);
                id_run
            };
            let rd = &rd[..];
            // Blocks whose digests are missing or differ, compared byte by byte in runs.
            let mut k = 0u64;
            let n = hi - lo;
            while k < n {
                let same = |k: u64| {
                    let (p, q) = (rd.get(k as usize), id.get(k as usize));
                    matches!((p, q), (Some(Some(p)), Some(Some(q))) if p == q)
                };
                if same(k) {
                    k += 1;
                    continue;
                }
                let start = k;
                while k < n && !same(k) {
                    k += 1;
                }
                let blo = (lo + start).saturating_mul(bs).min(size);
                let bhi = (lo + k).saturating_mul(bs).min(size);
                if blo < bhi {
                    if let Some(m) = contents_mismatch(file, blo, bhi, r, i) {
                        out.push(m);
                        break 'runs;
                    }
                    // Same bytes: any digest given for them must be theirs.
                    for b in lo + start..lo + k {
                        let j = (b - lo) as usize;
                        let given = [
                            (Side::Reference, rd.get(j).copied().flatten()),
                            (Side::Implementation, id.get(j).copied().flatten()),
                        ];
                        if given.iter().all(|(_, d)| d.is_none()) {
                            continue;
                        }
                        let real = block_digest(&r.peek(file, b * bs, bs));
                        for (side, d) in given {
                            if d.is_some_and(|d| d != real) {
                                out.push(Mismatch::Invariant {
                                    side,
                                    violation: Violation {
                                        name: "digest-matches-bytes",
                                        detail: format!(
                                            "file {file} block {b}: digest {:08x}, bytes {real:08x}",
                                            d.unwrap_or(0)
                                        ),
                                    },
                                });
                            }
                        }
                    }
                }
            }
        }
        if states_differ {
            out.push(Mismatch::Blocks {
                file,
                first,
                reference: r.blocks(file, first, end - first),
                implementation: i.blocks(file, first, end - first),
            });
        }
    });
}

/// Compares the global state and every file whole, adding every mismatch to `out`.
fn compare_state(r: &dyn Observe, i: &dyn Observe, out: &mut Vec<Mismatch>) {
    let files = compare_global(r, i, out);
    for f in 0..files as FileId {
        compare_window(f, 0, u64::MAX, r, i, out, &mut |f, a, b, runs, _| {
            i.block_runs(f, a, b, runs)
        });
    }
}

/// Compares what every op is compared on (counters, the corruption flag, every file's size and
/// writeback error), adding every mismatch to `out`; returns the number of files both have.
fn compare_global(r: &dyn Observe, i: &dyn Observe, out: &mut Vec<Mismatch>) -> usize {
    let (rc, ic) = (r.counters(), i.counters());
    if rc != ic {
        out.push(Mismatch::Counters {
            reference: rc,
            implementation: ic,
        });
    }
    let (rb, ib) = (r.btree_corrupt(), i.btree_corrupt());
    if rb != ib {
        out.push(Mismatch::Corruption {
            reference: rb,
            implementation: ib,
        });
    }
    let files = r.file_count().min(i.file_count());
    for f in 0..files as FileId {
        let (rs, is) = (r.size(f), i.size(f));
        if rs != is {
            out.push(Mismatch::Size {
                file: f,
                reference: rs,
                implementation: is,
            });
        }
        let (re, ie) = (r.wb_error(f), i.wb_error(f));
        if re != ie {
            out.push(Mismatch::WbError {
                file: f,
                reference: re,
                implementation: ie,
            });
        }
    }
    files
}

/// Both models' whole invariant checks, adding every violation to `out`.
fn check_invariants(r: &dyn Observe, i: &dyn Observe, out: &mut Vec<Mismatch>) {
    for v in r.check_invariants() {
        out.push(Mismatch::Invariant {
            side: Side::Reference,
            violation: v,
        });
    }
    for v in i.check_invariants() {
        out.push(Mismatch::Invariant {
            side: Side::Implementation,
            violation: v,
        });
    }
}

/// Compares the whole state and checks both models' invariants; returns every mismatch found,
/// charging each part to `probe`.
fn compare(r: &dyn Observe, i: &dyn Observe, probe: &mut Probe) -> Vec<Mismatch> {
    let mut out = Vec::new();
    probe.time(Part::Comparison, || compare_state(r, i, &mut out));
    probe.time(Part::Invariants, || check_invariants(r, i, &mut out));
    out
}

/// What an op changed, gathered for its comparison: each model's own log of changed blocks
/// ([`RefFs::take_changed`], [`Fs::take_changed`]), the blocks between each file's old and new
/// size on either side (a size change alone changes which bytes a file shows); sorted and
/// merged per file. The models' logs are kept by their storage (every
/// mutable access to a folio, a block's state, an extent or a disk block notes it), so a block
/// in none of these ranges shows what it showed after the previous op on both sides, where
/// they agreed: comparing the ranges is as exact as comparing everything, at the cost of what
/// changed (the stray-store tests check this for each kind of state on each side).
#[derive(Default)]
struct Changes {
    /// `(file, first block, end block)`, merged after [`Changes::gather`].
    ranges: Vec<(FileId, u64, u64)>,
    /// Each file's size on each side after the previous op.
    sizes: Vec<(u64, u64)>,
}

impl Changes {
    /// Gathers what changed since the last call.
    fn gather(&mut self, r: &mut RefFs, i: &Fs) {
        let out = &mut self.ranges;
        out.clear();
        r.take_changed(out);
        i.take_changed(out);
        let bs = r.geometry().bs().max(1);
        let files = r.file_count().min(i.file_count());
        self.sizes.resize(files, (0, 0));
        for (f, old) in self.sizes.iter_mut().enumerate() {
            let f = f as FileId;
            let new = (r.size(f), i.size(f));
            for (a, b) in [(old.0, new.0), (old.1, new.1)] {
                if a != b {
                    out.push((f, a.min(b) / bs, a.max(b).div_ceil(bs)));
                }
            }
            *old = new;
        }
        out.sort_unstable();
        let mut merged = 0;
        for k in 0..out.len() {
            let (f, lo, hi) = out[k];
            if hi <= lo || f as usize >= files {
                continue;
            }
            match out[..merged].last_mut() {
                Some((g, _, e)) if *g == f && lo <= *e => *e = (*e).max(hi),
                _ => {
                    out[merged] = (f, lo, hi);
                    merged += 1;
                }
            }
        }
        out.truncate(merged);
    }
}

/// Whether `op`, which changed the blocks `changed`, gets the implementation's invariants over
/// its whole state (reservation and allocation totals, ownership, the btree, durability) after
/// it, besides the per-block ones where it changed something: the ops that change the
/// free-space tree, and a `CompleteIo` that completed something (a completion of nothing
/// changed nothing). Every other op has them checked at the next such op, a crash or the end of
/// the run.
fn checks_whole_state(op: &Op, changed: &[(FileId, u64, u64)]) -> bool {
    match op {
        Op::CorruptAllocBtree | Op::RepairAllocBtree => true,
        Op::CompleteIo { .. } => !changed.is_empty(),
        _ => false,
    }
}

/// The comparison after an op that is not compared whole: the global state, the state of the
/// blocks `changed` ([`Changes`]), the implementation's per-block invariants there (they cannot
/// have changed elsewhere; checked with the comparison, [`Fs::window_checked`]) and, with
/// `whole_state`, its invariants over the whole state, and the reference's self-check: whole if
/// it completed IO (`reference_completed`: its completions check checksums and durability),
/// else the violations it saw as they happened.
fn compare_changed(
    changed: &[(FileId, u64, u64)],
    reference_completed: bool,
    whole_state: bool,
    r: &RefFs,
    i: &Fs,
    probe: &mut Probe,
) -> Vec<Mismatch> {
    let mut out = Vec::new();
    // The implementation's per-block invariants of the changed blocks, checked in the same look
    // as their comparison (charged to it).
    let mut per_block = Vec::new();
    probe.time(Part::Comparison, || {
        compare_global(r, i, &mut out);
        for &(f, lo, hi) in changed {
            compare_window(f, lo, hi, r, i, &mut out, &mut |f, a, b, runs, d| {
                i.window_checked(f, a, b, runs, d, &mut per_block)
            });
        }
    });
    probe.time(Part::Invariants, || {
        let own = if reference_completed {
            r.check_invariants()
        } else {
            r.found().to_vec()
        };
        for v in own {
            out.push(Mismatch::Invariant {
                side: Side::Reference,
                violation: v,
            });
        }
        // The per-block ones were checked with the comparison.
        let own = if whole_state {
            i.check_invariants_changed(&[])
        } else {
            i.check_invariants_in_ranges(&[])
        };
        for v in own.into_iter().chain(per_block.drain(..)) {
            out.push(Mismatch::Invariant {
                side: Side::Implementation,
                violation: v,
            });
        }
    });
    out
}

/// Compares everything the two sides show: the end-of-run comparison.
pub fn compare_all(r: &dyn Observe, i: &dyn Observe) -> Vec<Mismatch> {
    compare_all_probed(r, i, &mut Probe::off())
}

/// [`compare_all`], charging comparison and invariant checks to `probe`.
pub fn compare_all_probed(r: &dyn Observe, i: &dyn Observe, probe: &mut Probe) -> Vec<Mismatch> {
    compare(r, i, probe)
}

/// Runs `input` sequentially on both models, comparing after every op and after the epilogue.
///
/// Threads are run one after another in thread order (a sequential run has one thread; a
/// multi-thread input run here is serialized, which is one valid schedule of it).
pub fn run_sequential(input: &Input, bugs: Bugs) -> Run {
    run_sequential_inner(input, bugs, None, &mut Probe::off(), &mut |_, _, _| {})
}

/// [`run_sequential`], also adding the run's feedback features ([`crate::signal`]) to `sink`:
/// each op's kind, outcome and the reference's block classes in its scope before and after it.
pub fn run_sequential_signal(input: &Input, bugs: Bugs, sink: &mut Features) -> Run {
    run_sequential_inner(
        input,
        bugs,
        Some(sink),
        &mut Probe::off(),
        &mut |_, _, _| {},
    )
}

/// [`run_sequential`], charging each part of the run to `probe` (`wbfuzz bench`'s breakdown).
pub fn run_sequential_probed(input: &Input, bugs: Bugs, probe: &mut Probe) -> Run {
    run_sequential_inner(input, bugs, None, probe, &mut |_, _, _| {})
}

/// [`run_sequential`] with `disturb(k, reference, implementation)` called before op `k` (an
/// index into the trace) is applied: tests corrupt one model's state directly there (e.g. with
/// `scribble`) to check at which op the oracle notices.
pub fn run_sequential_disturbed(
    input: &Input,
    bugs: Bugs,
    disturb: &mut dyn FnMut(usize, &mut RefFs, &Fs),
) -> Run {
    run_sequential_inner(input, bugs, None, &mut Probe::off(), disturb)
}

fn run_sequential_inner(
    input: &Input,
    bugs: Bugs,
    mut sink: Option<&mut Features>,
    probe: &mut Probe,
    disturb: &mut dyn FnMut(usize, &mut RefFs, &Fs),
) -> Run {
    let mut reference = RefFs::new(&input.config);
    let implementation = Fs::new(&input.config, bugs);
    let ops = run_ops(input);
    let last_seq = ops.last().map_or(0, |o| o.seq);
    let mut trace = Vec::with_capacity(ops.len());
    let mut changes = Changes::default();
    for planned in ops {
        disturb(trace.len(), &mut reference, &implementation);
        let (thread, seq, op, is_epilogue) =
            (planned.thread, planned.seq, planned.op, planned.epilogue);
        let before = sink
            .as_ref()
            .map(|_| signal::observe(&reference, scope_of(&op, input)));
        let r = probe.time(Part::Reference, || reference.apply(seq, &op));
        let i = probe.time(Part::Implementation, || implementation.apply(seq, &op));
        let mut mismatches = Vec::new();
        let differ = probe.time(Part::Comparison, || r != i);
        let bytes = match (&r, &i) {
            (Outcome::Data(a), Outcome::Data(b)) if differ => Some((a.clone(), b.clone())),
            _ => None,
        };
        // Taken after every op, so that the logs name only this op's changes.
        let reference_completed = reference.take_completed();
        // A crash changes every file, and after the epilogue's last op everything is compared;
        // every other op is compared where either model changed something (file-wide ops
        // included: an fsync compares the folios it wrote back, not the whole file).
        let whole = matches!(op, Op::Crash { .. }) || (is_epilogue && seq == last_seq);
        probe.time(Part::Comparison, || {
            changes.gather(&mut reference, &implementation)
        });
        if whole {
            mismatches.extend(compare(&reference, &implementation, probe));
        } else {
            mismatches.extend(compare_changed(
                &changes.ranges,
                reference_completed && checks_whole_state(&op, &changes.ranges),
                checks_whole_state(&op, &changes.ranges),
                &reference,
                &implementation,
                probe,
            ));
        }
        let (r, i) = record_pair(&r, &i, differ);
        if let (Some(f), Some(before)) = (sink.as_deref_mut(), before) {
            let after = signal::observe(&reference, scope_of(&op, input));
            signal::op_features(f, &op, &before, &after, &r);
        }
        if differ {
            mismatches.insert(
                0,
                Mismatch::Outcome {
                    reference: r.clone(),
                    implementation: i.clone(),
                    bytes,
                },
            );
        }
        trace.push(TraceEntry {
            thread,
            seq,
            op,
            reference: r,
            implementation: i,
            epilogue: is_epilogue,
        });
        if !mismatches.is_empty() {
            let at = trace.len() - 1;
            return Run {
                trace,
                verdict: Verdict::Diverged(Divergence { at, mismatches }),
                commit_log: vec![],
            };
        }
    }
    Run {
        trace,
        verdict: Verdict::Agree,
        commit_log: vec![],
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use reference::{Config, FileSpec, Geometry, Policy};

    const BS: u64 = 4096;

    /// Both models with one file of 256 clean cached blocks (written, fsynced), and the
    /// changes of that set-up taken.
    fn models() -> (RefFs, Fs, Changes) {
        let config = Config {
            geometry: Geometry {
                block_size: BS as u32,
                folio_pages: 1,
                capacity_blocks: 1024,
                max_file_size: 512 * BS,
            },
            policy: Policy::KeepDirty,
            files: vec![FileSpec { jdata: false }],
        };
        let (mut r, i) = (RefFs::new(&config), Fs::new(&config, Bugs::NONE));
        let mut changes = Changes::default();
        for (seq, op) in [
            Op::Write {
                file: 0,
                off: 0,
                len: 256 * BS,
                sync: false,
            },
            Op::Fsync { file: 0 },
        ]
        .iter()
        .enumerate()
        {
            assert_eq!(r.apply(seq as u32, op), i.apply(seq as u32, op));
        }
        changes.gather(&mut r, &i);
        (r, i, changes)
    }

    /// Applies `op` to both models and returns what the oracle would compare after it.
    fn after(op: Op, r: &mut RefFs, i: &Fs, changes: &mut Changes) -> Vec<(FileId, u64, u64)> {
        assert_eq!(r.apply(9, &op), i.apply(9, &op), "{op:?}");
        changes.gather(r, i);
        changes.ranges.clone()
    }

    #[test]
    fn an_fsync_compares_the_folios_it_wrote_back_not_the_file() {
        let (mut r, i, mut changes) = models();
        let write = Op::Write {
            file: 0,
            off: 100 * BS + 7,
            len: 10,
            sync: false,
        };
        assert_eq!(after(write, &mut r, &i, &mut changes), vec![(0, 100, 101)]);
        assert_eq!(
            after(Op::Fsync { file: 0 }, &mut r, &i, &mut changes),
            vec![(0, 100, 101)],
            "writeback of one folio, its conversion and its disk block"
        );
        assert_eq!(
            after(Op::Fsync { file: 0 }, &mut r, &i, &mut changes),
            vec![],
            "a clean file: nothing to write back, nothing to compare"
        );
    }

    #[test]
    fn a_read_of_cached_data_compares_nothing_and_a_size_change_its_blocks() {
        let (mut r, i, mut changes) = models();
        let read = Op::Read {
            file: 0,
            off: 0,
            len: 256 * BS,
        };
        assert_eq!(after(read, &mut r, &i, &mut changes), vec![]);
        // Extending by truncate changes no stored block of either model: the blocks between
        // the old and the new size are compared because the size moved.
        let grow = Op::Truncate {
            file: 0,
            size: 300 * BS + 1,
        };
        assert_eq!(after(grow, &mut r, &i, &mut changes), vec![(0, 256, 301)]);
    }
}
