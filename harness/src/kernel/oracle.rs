//! The kernel oracle: runs a single-thread input on real files and on the reference model, op by
//! op, and compares after every op (SPEC.md, "Real kernels"):
//!
//! - the op's exact result (count, bytes read or errno); background ops (`flush`, `complete`,
//!   `reclaim`, `evict`) only have to succeed, as their counts are the model's bookkeeping and
//!   the kernel calls return 0;
//! - every file's size (fstat) and full logical contents (pread back);
//! - every file's extent state from FIEMAP against the reference's per-block states, under the
//!   relation [`tolerated`] of the filesystem.
//!
//! After the input, an epilogue (fsync every file, complete, evict every file) runs on both
//! sides, then every file is fsynced and dropped from the page cache and everything is read
//! back from the disk and compared again. The kernel log is checked around the whole input.
//!
//! The reference runs with its capacity raised so that every file fits at its maximum size
//! (ENOSPC is not compared: a real filesystem's free space is not the model's), and on the
//! input's kernel view ([`super::exec::kernel_view`]). The oracle owns no model logic; the
//! reference is only driven through `apply` and [`Observe`].

use super::exec::{self, Executor, FsizeLimit, KOutcome};
use super::fiemap;
use super::kmsg::KmsgWatch;
use super::scratch;
use super::FsKind;
use crate::minimize::Signature;
use crate::report::{diff_labeled, hexdump};
use reference::model::RefFs;
use reference::pattern::writers_of;
use reference::{BlockObs, ExtentState, FileId, Input, Observe, Op, OpKind, Outcome};
use std::fmt::{self, Write as _};
use std::path::Path;

/// Where and how a kernel run happens.
#[derive(Clone, Debug)]
pub struct KernelTarget<'a> {
    /// Directory on the filesystem under test (files `f0`.. are made there).
    pub dir: &'a Path,
    /// Which filesystem it is (`None`: unknown, the strictest relation is used).
    pub fs: Option<FsKind>,
    /// The device's kernel name (`loop3`) for the kernel log checker, if we know it.
    pub device: Option<String>,
    /// Threaded runs: each thread repeats its op list for this long (`--repeat`).
    pub repeat: Option<std::time::Duration>,
    /// The filesystem journals every file's data (ext4 `data=journal`, `--jdata`): every file
    /// runs as a journaled-data file on both sides.
    pub jdata: bool,
}

/// Why an input could not be run on the kernel at all (not a finding).
#[derive(Debug)]
pub enum KernelError {
    /// The input uses something with no kernel analogue.
    Unsupported(String),
    /// Setting up the files failed.
    Setup(std::io::Error),
    /// SIGINT or SIGTERM arrived; the run stopped between ops.
    Interrupted,
    /// A scratch device could not be made.
    Scratch(scratch::ScratchError),
}

impl fmt::Display for KernelError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KernelError::Unsupported(s) => write!(f, "cannot run on a kernel: {s}"),
            KernelError::Setup(e) => write!(f, "setting up the files: {e}"),
            KernelError::Interrupted => f.write_str("interrupted"),
            KernelError::Scratch(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for KernelError {}

impl From<scratch::ScratchError> for KernelError {
    fn from(e: scratch::ScratchError) -> Self {
        KernelError::Scratch(e)
    }
}

/// One executed op with both results.
#[derive(Clone, Debug)]
pub struct KTraceEntry {
    /// The input thread that ran it (0 in single-thread runs and in the epilogue).
    pub thread: usize,
    /// Sequence number.
    pub seq: u32,
    /// The op.
    pub op: Op,
    /// The reference's result.
    pub reference: Outcome,
    /// The kernel's result.
    pub kernel: KOutcome,
    /// Part of the end-of-run epilogue.
    pub epilogue: bool,
}

/// One thing that differs between the kernel and the reference.
#[derive(Clone, Debug)]
pub enum KMismatch {
    /// Results differ.
    Outcome {
        /// The reference's.
        reference: Outcome,
        /// The kernel's.
        kernel: KOutcome,
    },
    /// Sizes differ.
    Size {
        /// File.
        file: FileId,
        /// The reference's.
        reference: u64,
        /// The kernel's.
        kernel: u64,
    },
    /// Contents differ; byte windows from `base` around the first bad byte.
    Contents {
        /// File.
        file: FileId,
        /// First differing offset.
        first_bad: u64,
        /// Offset of the windows.
        base: u64,
        /// The reference's bytes.
        reference: Vec<u8>,
        /// The kernel's bytes.
        kernel: Vec<u8>,
    },
    /// Extent states outside the tolerated relation.
    Extents {
        /// File.
        file: FileId,
        /// The reference's blocks from 0.
        reference: Vec<BlockObs>,
        /// FIEMAP's states from 0.
        kernel: Vec<ExtentState>,
        /// The blocks that break the relation.
        bad: Vec<u64>,
        /// The file size the relation was judged with.
        size: u64,
    },
    /// The kernel logged trouble about the device.
    KernelLog {
        /// The log lines.
        lines: Vec<String>,
    },
    /// A read racing another thread's writers (threaded runs) returned a byte its offset never
    /// held: neither zero nor what any op of the run wrote there.
    RacyRead {
        /// File.
        file: FileId,
        /// File offset of the byte.
        offset: u64,
        /// The byte.
        byte: u8,
    },
    /// Observing the kernel's state failed (fstat, pread or FIEMAP).
    Observe {
        /// What failed.
        what: String,
    },
}

impl KMismatch {
    /// A stable name for signatures.
    pub fn name(&self) -> &'static str {
        match self {
            KMismatch::Outcome { .. } => "outcome",
            KMismatch::Size { .. } => "size",
            KMismatch::Contents { .. } => "contents",
            KMismatch::Extents { .. } => "extent-states",
            KMismatch::KernelLog { .. } => "kernel-log",
            KMismatch::RacyRead { .. } => "racy-read",
            KMismatch::Observe { .. } => "observe",
        }
    }
}

/// The result of one kernel run.
#[derive(Clone, Debug)]
pub struct KernelRun {
    /// Every op executed (cut at the divergence), epilogue included.
    pub trace: Vec<KTraceEntry>,
    /// Index into `trace` of the op after which they first disagreed, and what differed.
    pub divergence: Option<(usize, Vec<KMismatch>)>,
    /// Whether the input was changed to its kernel view (jdata, commit).
    pub kernel_view: bool,
    /// The filesystem the relation was judged for.
    pub fs: Option<FsKind>,
    /// Every file ran as journaled data (`--jdata`).
    pub jdata: bool,
}

impl KernelRun {
    /// Appends an op to the trace; a non-empty `mismatches` makes it the divergence. Returns
    /// whether it diverged.
    pub(super) fn record(&mut self, entry: KTraceEntry, mismatches: Vec<KMismatch>) -> bool {
        self.trace.push(entry);
        let diverged = !mismatches.is_empty();
        if diverged {
            self.divergence = Some((self.trace.len() - 1, mismatches));
        }
        diverged
    }

    /// Whether the kernel and the reference agreed throughout.
    pub fn ok(&self) -> bool {
        self.divergence.is_none()
    }

    /// The signature of a divergence, for the minimizer and the hunt.
    pub fn signature(&self) -> Option<Signature> {
        let (at, ms) = self.divergence.as_ref()?;
        Some(Signature {
            op: self
                .trace
                .get(*at)
                .filter(|e| !e.epilogue)
                .map(|e| e.op.kind()),
            mismatch: ms.first().map_or("unknown", KMismatch::name),
        })
    }
}

/// Order of the allocation path: a block goes Hole -> Delalloc -> Unwritten -> Written.
fn rank(s: ExtentState) -> u8 {
    match s {
        ExtentState::Hole => 0,
        ExtentState::Delalloc => 1,
        ExtentState::Unwritten => 2,
        ExtentState::Written => 3,
    }
}

/// The tolerated relation between the reference's state of a block and FIEMAP's (SPEC.md, "Real
/// kernels"): inside EOF the kernel may be ahead of the reference on the allocation path (it
/// reserves, allocates and converts earlier or more: early writeback, larger folios,
/// speculative preallocation, zero-range edges, ext4's zero-out) but never behind it, with one
/// exception: a block the reference holds `Written` may still be `Unwritten` in the kernel until
/// everything is settled (the final comparison, after fsync), as the kernel's unwritten
/// conversion runs at IO completion in a workqueue, and Linux only waits for writeback before
/// a page is changed when the device asks for stable pages (a loop device does not), so its IO
/// may still be in flight where the reference's completed. Past EOF a reference hole may be anything (speculative preallocation), and the
/// reference's keep-size preallocation must still be allocated. The contents are compared
/// exactly elsewhere, so a kernel ahead of the reference can never hide wrong data.
pub fn tolerated(
    fs: Option<FsKind>,
    r: BlockObs,
    k: ExtentState,
    place: Place,
    settled: bool,
) -> bool {
    if place == Place::PastEof && r.extent == ExtentState::Hole {
        return true;
    }
    if fs == Some(FsKind::Ext4) {
        // ext4 frees blocks past EOF on its own (the orphan cleanup after a failed extending
        // direct write truncates to i_size), and its punch over EOF is rounded up to the end of
        // the page holding EOF, so blocks the reference keeps there (zeroed) become holes, and
        // stay holes when the file grows again.
        if place == Place::PastEof || (place == Place::Zero && k == ExtentState::Hole) {
            return true;
        }
    }
    if fs == Some(FsKind::Btrfs) && k == ExtentState::Delalloc && !settled {
        // btrfs reports a range as delalloc while it has dirty or in-flight data (until its
        // ordered extent completes), also over preallocated and written extents, and it zeroes
        // the partial EOF block through the page cache when the size grows.
        return true;
    }
    if r.extent == ExtentState::Written && k == ExtentState::Unwritten && !settled {
        return true;
    }
    rank(k) >= rank(r.extent)
}

/// Where a block lies, for [`tolerated`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Place {
    /// Inside EOF.
    InsideEof,
    /// Inside EOF, and all its bytes are zero.
    Zero,
    /// At or past the first block past EOF.
    PastEof,
}

/// Bytes of context on each side of the first bad byte.
const CONTEXT: u64 = 128;

pub(super) struct Checker<'a> {
    target: &'a KernelTarget<'a>,
    buf: Vec<u8>,
    /// Per file: blocks ext4 made holes (punch rounded out over EOF) that the reference keeps;
    /// their extent state is not compared until the reference frees them too (their contents
    /// still are).
    rounded: Vec<std::collections::BTreeSet<u64>>,
    /// Compare extent states (off in threaded runs until everything is on disk: which of a
    /// thread's writes another thread's flush caught depends on the interleaving).
    pub(super) extents: bool,
}

impl<'a> Checker<'a> {
    /// A checker for the files of `input` on `target`.
    pub(super) fn new(target: &'a KernelTarget<'a>, input: &Input) -> Checker<'a> {
        Checker {
            target,
            buf: Vec::new(),
            rounded: vec![Default::default(); input.config.files.len()],
            extents: true,
        }
    }

    /// `settled`: all of the kernel's IO is known complete (after fsync of every file).
    pub(super) fn compare(
        &mut self,
        r: &RefFs,
        k: &Executor,
        settled: bool,
        out: &mut Vec<KMismatch>,
    ) {
        let bs = r.geometry().bs();
        for f in 0..k.file_count() as FileId {
            let rs = r.size(f);
            let ks = match k.size(f) {
                Ok(s) => s,
                Err(e) => {
                    out.push(KMismatch::Observe {
                        what: format!("fstat f{f}: {e}"),
                    });
                    continue;
                }
            };
            if rs != ks {
                out.push(KMismatch::Size {
                    file: f,
                    reference: rs,
                    kernel: ks,
                });
            }
            if let Err(e) = k.read_all(f, &mut self.buf) {
                out.push(KMismatch::Observe {
                    what: format!("pread f{f}: {e}"),
                });
                continue;
            }
            let mine = r.peek(f, 0, rs);
            if mine != self.buf {
                let first = mine
                    .iter()
                    .zip(&self.buf)
                    .position(|(a, b)| a != b)
                    .unwrap_or(mine.len().min(self.buf.len())) as u64;
                let base = first.saturating_sub(CONTEXT) & !15;
                let end = first + CONTEXT;
                let win = |v: &[u8]| {
                    v[(base as usize).min(v.len())..(end as usize).min(v.len())].to_vec()
                };
                out.push(KMismatch::Contents {
                    file: f,
                    first_bad: first,
                    base,
                    reference: win(&mine),
                    kernel: win(&self.buf),
                });
            }
            if !self.extents {
                continue;
            }
            // Extent states up to the furthest block either side has anything in.
            let limit = r
                .geometry()
                .max_file_size
                .saturating_mul(2)
                .max(ks.max(rs) + bs);
            let kspan = match fiemap::block_span(k.file(f), bs, limit) {
                Ok(s) => s,
                Err(e) => {
                    out.push(KMismatch::Observe {
                        what: format!("FIEMAP f{f}: {e}"),
                    });
                    continue;
                }
            };
            let span = r.block_span(f).max(kspan).max(rs.div_ceil(bs));
            let kb = match fiemap::block_states(k.file(f), bs, span) {
                Ok(v) => v,
                Err(e) => {
                    out.push(KMismatch::Observe {
                        what: format!("FIEMAP f{f}: {e}"),
                    });
                    continue;
                }
            };
            let rb = r.blocks(f, 0, span);
            let eof_blocks = rs.div_ceil(bs);
            let place = |b: u64| {
                if b >= eof_blocks {
                    return Place::PastEof;
                }
                let lo = (b * bs) as usize;
                let hi = ((b + 1) * bs).min(rs) as usize;
                if mine[lo..hi].iter().all(|&x| x == 0) {
                    Place::Zero
                } else {
                    Place::InsideEof
                }
            };
            let fs = self.target.fs;
            let rounded = &mut self.rounded[f as usize];
            rounded.retain(|&b| b < span && rb[b as usize].extent != ExtentState::Hole);
            let bad: Vec<u64> = (0..span)
                .filter(|&b| {
                    let (rs, ks) = (rb[b as usize], kb[b as usize]);
                    if rounded.contains(&b) {
                        return false;
                    }
                    // A block ext4 freed on its own (inside EOF over zeros, or past EOF) is not
                    // compared until the reference frees it too: the file may grow over it again
                    // (found by a 10-minute ext4 hunt: a punch past EOF, then a write over it).
                    if fs == Some(FsKind::Ext4)
                        && matches!(place(b), Place::Zero | Place::PastEof)
                        && ks == ExtentState::Hole
                        && rs.extent != ExtentState::Hole
                    {
                        rounded.insert(b);
                    }
                    !tolerated(fs, rs, ks, place(b), settled)
                })
                .collect();
            if !bad.is_empty() {
                out.push(KMismatch::Extents {
                    file: f,
                    reference: rb,
                    kernel: kb,
                    bad,
                    size: rs,
                });
            }
        }
    }
}

/// Whether two results agree (background ops: both succeeded).
pub(super) fn outcomes_agree(op: &Op, r: &Outcome, k: &KOutcome) -> bool {
    let Ok(k) = k else { return false };
    match op.kind() {
        OpKind::Flush | OpKind::CompleteIo | OpKind::Reclaim | OpKind::EvictInode => {
            matches!(r, Outcome::Done(_)) && matches!(k, Outcome::Done(_))
        }
        _ => r == k,
    }
}

/// Whether a direct read on whose EINVAL the two sides disagree follows a tolerated extent
/// difference: the alignment rule (SPEC, DirectRead) applied to the kernel's own extent states
/// (FIEMAP, after the read's flush) gives the kernel's verdict, and where the kernel served it,
/// the bytes are the reference's view of the disk. The kernel may be
/// ahead of the reference on the allocation path (EOF zeroing or speculative preallocation
/// allocating a block the reference keeps a hole), and where it is, the read's verdict is the
/// kernel's to give (SPEC, "Real kernels").
fn dread_follows_kernel_extents(
    r: &RefFs,
    k: &Executor,
    op: &Op,
    ro: &Outcome,
    ko: &KOutcome,
) -> bool {
    let Op::DirectRead { file, off, len } = *op else {
        return false;
    };
    if file as usize >= k.file_count() {
        return false;
    }
    let kernel_refused = match (ro, ko) {
        (Outcome::Data(_), Ok(Outcome::Err(reference::Errno::Einval))) => true,
        (Outcome::Err(reference::Errno::Einval), Ok(Outcome::Data(_))) => false,
        _ => return false,
    };
    let bs = r.geometry().bs();
    let end = off
        .saturating_add(len)
        .min(r.geometry().max_file_size.saturating_mul(2));
    let Ok(states) = fiemap::block_states(k.file(file), bs, end.div_ceil(bs) + 1) else {
        return false;
    };
    let written = |b: u64| states.get(b as usize) == Some(&ExtentState::Written);
    let edge = (off % bs != 0 && written(off / bs)) || (end % bs != 0 && written(end / bs));
    if kernel_refused {
        return edge
            || (off % reference::geometry::DMA_ALIGNMENT != 0
                && (off / bs + 1..end.div_ceil(bs)).any(written));
    }
    // The kernel served it: its own states must allow that, and the bytes must be the
    // reference's view of the disk (ext4 freeing a block the reference keeps zeroed, say).
    let Ok(Outcome::Data(kd)) = ko else {
        return false;
    };
    let size = r.size(file);
    let n = if off >= size { 0 } else { len.min(size - off) };
    !edge && *kd == r.read_disk(file, off, n)
}

/// Whether a direct read the reference refused only by the DMA-alignment clause (SPEC,
/// DirectRead: no `Written` block at an unaligned edge, `off` not a multiple of 512) was served
/// by the kernel with exactly the bytes the reference would have returned. Linux does not always
/// apply that check (seen: 1 KiB blocks, a hole then the Written EOF block, read from offset 1:
/// served), and the exact condition is not known yet (SPEC, "Real kernels"): the kernel's
/// verdict is accepted there, its bytes are not.
fn dread_dma_clause_served(r: &RefFs, op: &Op, ro: &Outcome, ko: &KOutcome) -> bool {
    let Op::DirectRead { file, off, len } = *op else {
        return false;
    };
    let (Outcome::Err(reference::Errno::Einval), Ok(Outcome::Data(kd))) = (ro, ko) else {
        return false;
    };
    let bs = r.geometry().bs();
    let end = off.saturating_add(len);
    let written = |b: u64| {
        r.blocks(file, b, 1)
            .first()
            .is_some_and(|o| o.extent == ExtentState::Written)
    };
    let edge = (off % bs != 0 && written(off / bs)) || (end % bs != 0 && written(end / bs));
    if edge || off % reference::geometry::DMA_ALIGNMENT == 0 {
        return false;
    }
    let size = r.size(file);
    let n = if off >= size { 0 } else { len.min(size - off) };
    *kd == r.read_disk(file, off, n)
}

/// Whether a direct read the reference refused for alignment (EINVAL) was served by ext4
/// mounted `data=journal` with the reference's bytes: ext4 has no direct IO on journaled data
/// and runs it buffered, where alignment does not matter (SPEC, "Real kernels", journaled data).
pub(super) fn journaled_direct_read_buffered(
    r: &RefFs,
    op: &Op,
    ro: &Outcome,
    ko: &KOutcome,
) -> bool {
    let Op::DirectRead { file, off, len } = *op else {
        return false;
    };
    let (Outcome::Err(reference::Errno::Einval), Ok(Outcome::Data(kd))) = (ro, ko) else {
        return false;
    };
    let size = r.size(file);
    let n = if off >= size { 0 } else { len.min(size - off) };
    *kd == r.read_cached(file, off, n)
}

/// The known XFS finding (SPEC, "Known kernel finding"): a direct read reaching past EOF into
/// speculative post-EOF delalloc returns EIO. Tolerated only exactly there (XFS, EIO, the request
/// ends past EOF, and FIEMAP shows a delalloc block past EOF inside it), so hunts go on finding
/// other things; `corpus/kernel/xfs-dread-past-eof-delalloc-eio.wbf` keeps the reproducer.
fn xfs_dread_into_post_eof_delalloc(
    fs: Option<FsKind>,
    r: &RefFs,
    k: &Executor,
    op: &Op,
    ko: &KOutcome,
) -> bool {
    let Op::DirectRead { file, off, len } = *op else {
        return false;
    };
    if fs != Some(FsKind::Xfs) || *ko != Ok(Outcome::Err(reference::Errno::Eio)) {
        return false;
    }
    if file as usize >= k.file_count() {
        return false;
    }
    let bs = r.geometry().bs();
    let size = r.size(file);
    let end = off
        .saturating_add(len)
        .min(r.geometry().max_file_size.saturating_mul(2));
    if end <= size {
        return false;
    }
    let Ok(states) = fiemap::block_states(k.file(file), bs, end.div_ceil(bs)) else {
        return false;
    };
    (size / bs..end.div_ceil(bs)).any(|b| states.get(b as usize) == Some(&ExtentState::Delalloc))
}

/// The ops run after the input on both sides: fsync every file, complete, evict every file.
pub fn epilogue(input: &Input) -> Vec<Op> {
    let files = input.config.files.len() as FileId;
    let mut ops: Vec<Op> = (0..files).map(|file| Op::Fsync { file }).collect();
    ops.push(Op::CompleteIo { n: u32::MAX });
    ops.extend((0..files).map(|file| Op::EvictInode { file }));
    ops
}

/// The reference's configuration for a kernel run: the kernel view, with the capacity raised so
/// that every file fits at its maximum size (ENOSPC is not compared).
pub fn reference_config(input: &Input) -> reference::Config {
    let mut c = input.config.clone();
    let g = &mut c.geometry;
    let need = c.files.len() as u64 * g.max_file_size.div_ceil(g.bs()) + 64;
    g.capacity_blocks = need.clamp(g.capacity_blocks, reference::geometry::MAX_CAPACITY_BLOCKS);
    c
}

/// Runs `input` on the kernel in `target.dir` and on the reference, comparing after every op;
/// the input's files are removed afterwards. `watch` (positioned before the run) checks the
/// kernel log for the device. The input's block size must be the filesystem's.
pub fn run_on_kernel(
    target: &KernelTarget<'_>,
    input: &Input,
    watch: Option<&mut KmsgWatch>,
) -> Result<KernelRun, KernelError> {
    if let Some(why) = exec::unsupported(input) {
        return Err(KernelError::Unsupported(why));
    }
    let (input, changed) = exec::kernel_view(input, target.jdata);
    let mut reference = RefFs::new(&reference_config(&input));
    let mut kernel = Executor::create(target.dir, &input, target.fs).map_err(KernelError::Setup)?;
    let limit = FsizeLimit::set(input.config.geometry.max_file_size).map_err(KernelError::Setup)?;
    let mut checker = Checker::new(target, &input);
    let mut run = KernelRun {
        trace: Vec::new(),
        divergence: None,
        kernel_view: changed,
        fs: target.fs,
        jdata: target.jdata,
    };
    let body: Vec<(u32, Op, bool)> = input
        .numbered_ops()
        .map(|(_, seq, op)| (seq, op.clone(), false))
        .collect();
    let last = input.op_count() as u32;
    let tail = epilogue(&input)
        .into_iter()
        .enumerate()
        .map(|(k, op)| (last + 1 + k as u32, op, true));
    let mut interrupted = false;
    for (seq, op, epi) in body.into_iter().chain(tail) {
        if scratch::interrupted() {
            interrupted = true;
            break;
        }
        let r = reference.apply(seq, &op);
        let k = kernel.apply(seq, &op);
        let mut ms = Vec::new();
        let tolerated = outcomes_agree(&op, &r, &k)
            || dread_follows_kernel_extents(&reference, &kernel, &op, &r, &k)
            || dread_dma_clause_served(&reference, &op, &r, &k)
            || xfs_dread_into_post_eof_delalloc(target.fs, &reference, &kernel, &op, &k)
            || (target.jdata && journaled_direct_read_buffered(&reference, &op, &r, &k));
        if !tolerated {
            ms.push(KMismatch::Outcome {
                reference: r.clone(),
                kernel: k.clone(),
            });
        }
        checker.compare(&reference, &kernel, false, &mut ms);
        let entry = KTraceEntry {
            thread: 0,
            seq,
            op,
            reference: r,
            kernel: k,
            epilogue: epi,
        };
        if run.record(entry, ms) {
            break;
        }
    }
    if run.divergence.is_none() && !interrupted {
        compare_from_disk(&mut checker, &reference, &kernel, &mut run);
    }
    drop(limit);
    check_kernel_log(target, watch, &mut run);
    kernel.remove().map_err(KernelError::Setup)?;
    if interrupted {
        return Err(KernelError::Interrupted);
    }
    Ok(run)
}

/// The end of every kernel run: fsync, drop the cache, read everything back from the disk and
/// compare (extent states judged as settled).
pub(super) fn compare_from_disk(
    checker: &mut Checker<'_>,
    reference: &RefFs,
    kernel: &Executor,
    run: &mut KernelRun,
) {
    let mut ms = Vec::new();
    match kernel.sync_and_drop_cache() {
        Ok(()) => checker.compare(reference, kernel, true, &mut ms),
        Err(e) => ms.push(KMismatch::Observe {
            what: format!("fsync + DONTNEED: {e}"),
        }),
    }
    if !ms.is_empty() {
        run.divergence = Some((run.trace.len().saturating_sub(1), ms));
    }
}

/// The kernel log checker around a run: new trouble about the device joins the divergence.
pub(super) fn check_kernel_log(
    target: &KernelTarget<'_>,
    watch: Option<&mut KmsgWatch>,
    run: &mut KernelRun,
) {
    let (Some(w), Some(dev)) = (watch, target.device.as_deref()) else {
        return;
    };
    match w.findings(dev) {
        Ok(lines) if !lines.is_empty() => {
            let at = run.trace.len().saturating_sub(1);
            let m = KMismatch::KernelLog { lines };
            match &mut run.divergence {
                Some((_, ms)) => ms.push(m),
                None => run.divergence = Some((at, vec![m])),
            }
        }
        Ok(_) => {}
        Err(e) => eprintln!("wbfuzz: reading /dev/kmsg: {e}"),
    }
}

/// Sequence numbers of the ops of `input` that write data (whose pattern a byte can carry).
pub(super) fn writer_seqs(input: &Input) -> Vec<u32> {
    input
        .numbered_ops()
        .filter(|(_, _, op)| {
            matches!(
                op.kind(),
                OpKind::Write | OpKind::DirectWrite | OpKind::MmapWrite
            )
        })
        .map(|(_, seq, _)| seq)
        .collect()
}

fn show(k: &KOutcome) -> String {
    match k {
        Ok(o) => o.to_string(),
        Err(e) => format!("error {e}"),
    }
}

fn trace_line(e: &KTraceEntry, mark: bool) -> String {
    let agree = outcomes_agree(&e.op, &e.reference, &e.kernel);
    let outcome = if e.kernel.as_ref() == Ok(&e.reference) {
        e.reference.to_string()
    } else if agree {
        format!("{} (reference {})", show(&e.kernel), e.reference)
    } else {
        format!("reference {} | kernel {}", e.reference, show(&e.kernel))
    };
    format!(
        "{} {:<3} #{:<4} {:<34} -> {}",
        if mark { ">>" } else { "  " },
        if e.epilogue {
            "end".to_string()
        } else {
            format!("t{}", e.thread)
        },
        e.seq,
        e.op.to_string(),
        outcome
    )
}

/// The op trace, one line per op; the op where the divergence was seen is marked.
pub fn render_trace(run: &KernelRun) -> String {
    let at = run.divergence.as_ref().map(|d| d.0);
    let mut s = String::new();
    for (k, e) in run.trace.iter().enumerate() {
        let _ = writeln!(s, "{}", trace_line(e, Some(k) == at));
    }
    s
}

fn extent_map(states: &[ExtentState]) -> String {
    let mut s = String::new();
    let mut k = 0;
    while k < states.len() {
        let mut j = k;
        while j + 1 < states.len() && states[j + 1] == states[k] {
            j += 1;
        }
        let _ = writeln!(s, "blocks {k:>5}-{j:<5} {:?}", states[k]);
        k = j + 1;
    }
    s
}

fn ranges(v: &[u64]) -> String {
    let mut parts = Vec::new();
    let mut k = 0;
    while k < v.len() {
        let mut j = k;
        while j + 1 < v.len() && v[j + 1] == v[j] + 1 {
            j += 1;
        }
        parts.push(if j == k {
            v[k].to_string()
        } else {
            format!("{}-{}", v[k], v[j])
        });
        k = j + 1;
    }
    parts.join(", ")
}

fn render_mismatch(m: &KMismatch, run: &KernelRun) -> String {
    match m {
        KMismatch::Outcome { reference, kernel } => {
            format!("outcome: reference {reference}, kernel {}\n", show(kernel))
        }
        KMismatch::Size {
            file,
            reference,
            kernel,
        } => format!("f{file} size: reference {reference:#x}, kernel {kernel:#x}\n"),
        KMismatch::Contents {
            file,
            first_bad,
            base,
            reference,
            kernel,
        } => {
            let seqs: Vec<u32> = run
                .trace
                .iter()
                .filter(|e| {
                    matches!(
                        e.op,
                        Op::Write { .. } | Op::DirectWrite { .. } | Op::MmapWrite { .. }
                    )
                })
                .map(|e| e.seq)
                .collect();
            let k = (first_bad - base) as usize;
            let describe = |bytes: &[u8]| match bytes.get(k) {
                None => "nothing (past EOF)".to_string(),
                Some(0) => "00 (zeros: no data)".to_string(),
                Some(&b) => {
                    let w = writers_of(b, *first_bad, seqs.iter().copied());
                    if w.is_empty() {
                        format!("{b:02x} (written by no op of this run)")
                    } else {
                        let n: Vec<String> = w.iter().map(|s| format!("#{s}")).collect();
                        format!("{b:02x} (as written by op {})", n.join(" or "))
                    }
                }
            };
            format!(
                "f{file} contents differ first at {first_bad:#x}: reference {}, kernel {}\n{}",
                describe(reference),
                describe(kernel),
                diff_labeled(
                    &hexdump(*base, reference),
                    &hexdump(*base, kernel),
                    "reference",
                    "kernel"
                )
            )
        }
        KMismatch::Extents {
            file,
            reference,
            kernel,
            bad,
            size,
        } => {
            let r: Vec<ExtentState> = reference.iter().map(|b| b.extent).collect();
            format!(
                "f{file} extent states break the {} relation at blocks {} (size {size:#x}):\n{}",
                run.fs.map_or("default", FsKind::name),
                ranges(bad),
                diff_labeled(
                    &extent_map(&r),
                    &extent_map(kernel),
                    "reference",
                    "kernel (FIEMAP)"
                )
            )
        }
        KMismatch::KernelLog { lines } => {
            let mut s = "the kernel logged trouble about the device:\n".to_string();
            for l in lines {
                let _ = writeln!(s, "  {l}");
            }
            s
        }
        KMismatch::RacyRead { file, offset, byte } => format!(
            "f{file} byte {offset:#x} read as {byte:02x} while other threads wrote: no op of the \
             run wrote that byte there, and it is not zero\n"
        ),
        KMismatch::Observe { what } => format!("observing the kernel failed: {what}\n"),
    }
}

/// The full report of a kernel run of `input` named `name` (empty if it agreed).
pub fn render(name: &str, input: &Input, run: &KernelRun) -> String {
    let Some((at, ms)) = &run.divergence else {
        return String::new();
    };
    let mut s = String::new();
    let _ = writeln!(
        s,
        "wbfuzz kernel: DIVERGENCE in {name} (filesystem: {})",
        run.fs.map_or("unknown", FsKind::name)
    );
    let _ = writeln!(s, "config: {}", crate::report::config_line(input));
    if run.kernel_view {
        let _ = writeln!(
            s,
            "{}",
            if run.jdata {
                "note: every file runs as a journaled-data file (ext4 mounted data=journal) and `commit` as `fsync`"
            } else {
                "note: journaled-data files run as ordinary files and `commit` as `fsync` (no kernel analogue)"
            }
        );
    }
    if input.config.geometry.folio_pages != 1 {
        let _ = writeln!(
            s,
            "note: folio-pages={} runs as 1 on both sides (the kernel picks its own folio sizes)",
            input.config.geometry.folio_pages
        );
    }
    let _ = writeln!(s, "\nop trace (thread, seq, op -> outcome):");
    s.push_str(&render_trace(run));
    if let Some(e) = run.trace.get(*at) {
        let _ = writeln!(
            s,
            "\nfirst divergence after {} #{} `{}`:",
            if e.epilogue { "end-of-run" } else { "op" },
            e.seq,
            e.op
        );
    }
    for m in ms {
        for line in render_mismatch(m, run).lines() {
            let _ = writeln!(s, "  {line}");
        }
    }
    s
}
