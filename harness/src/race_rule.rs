//! The race rule of concurrent runs on a real kernel: which inputs can be judged without knowing
//! the interleaving, and how each op of such an input is judged.
//!
//! On a kernel the interleaving is not ours to choose or record, so the oracle may only rely on
//! facts every interleaving shares. The rule (also in `reference/SPEC.md`, "Real kernels:
//! concurrent runs"):
//!
//! - A file named by user ops of two or more threads is *shared*. Before the threads start, every
//!   shared file is extended to the geometry's maximum size (a sparse truncate, run on both
//!   sides), and no op may change a shared file's size: `truncate` on a shared file is refused.
//!   Writes stay inside the maximum size by construction, so `i_size` is the same in every
//!   interleaving.
//! - A *writer* (`write`, `dwrite`, `mwrite`, `falloc`, `punch`, `zero`) on a shared file owns the
//!   folios its range touches (folio = the geometry's folio, at least one page). Folios owned by
//!   one thread's writers may not be touched by another thread's writer. Then the final contents
//!   and every writer's result are those of the reference running the threads one after another.
//! - *Direct and page-cache writes of a shared file stay on one thread.* If one thread writes a
//!   shared file directly (`dwrite`), no other thread may write it through the page cache
//!   (`write`, `mwrite`, `zero`, `punch`: the last two zero partial blocks in the cache), even
//!   on other folios. Linux keeps a direct write coherent with the page cache only by
//!   invalidating the cache over its range before and after the IO, and that fails on a dirty
//!   folio; the kernel's folios are larger than a page (XFS and ext4 read ahead into multi-page
//!   folios), so a write fault on page 4 dirties the folio that holds page 6, whose bytes were
//!   read as zeros from the unwritten extent of a direct write in flight there. The cache then
//!   keeps those zeros over the direct write's data, writeback writes them to disk, and the
//!   next fsync returns EIO ("Page cache invalidation failure on direct I/O"). Found by the
//!   threaded hunts on XFS and ext4 (SPEC.md, "Known kernel finding: large folios").
//! - A *reader* (`read`, `dread`, `mread`) whose range touches no folio another thread writes is
//!   *exact*: its result is compared as in a single-thread run. A reader that does touch such a
//!   folio is *racy*: it must succeed, and every byte it returns must be a byte that offset held
//!   at some moment (zero, or what some op of the run wrote there); the bytes the file holds after
//!   the threads join are compared exactly. This is how a read fault on a hole racing a direct
//!   write that allocates it (a hole installed over written data) is caught.
//! - *Background* ops (`flush`, `complete`, `reclaim`, `evict`, `fsync`, `commit`) may run over
//!   anything; they change no logical contents, so they must succeed and nothing else.
//! - Fault injection (`corrupt`, `repair`) and `crash` are not part of threaded runs.
//!
//! Ops on files that are not shared are exact whatever they are.

use reference::{FileId, Input, Op, OpKind};
use std::collections::BTreeMap;
use std::fmt;

/// How the kernel oracle judges one op of a concurrent run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Judgement {
    /// Compared exactly with the reference run serially (thread 0's ops, then thread 1's, ...).
    Exact,
    /// A read over folios another thread writes: must succeed with bytes the offsets held.
    RacyRead,
    /// A background op: must succeed.
    Background,
}

/// Why an input breaks the race rule.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RuleError {
    /// A shared file's size would change.
    SizeChange {
        /// Thread of the op.
        thread: usize,
        /// Index of the op in its thread.
        index: usize,
        /// The file.
        file: FileId,
    },
    /// Two threads' writers touch the same folio of a shared file.
    SharedFolio {
        /// Thread of the later op.
        thread: usize,
        /// Index of the later op in its thread.
        index: usize,
        /// The file.
        file: FileId,
        /// The folio index.
        folio: u64,
        /// The thread whose writer touched it first.
        owner: usize,
    },
    /// A direct write and a page-cache write of one shared file on different threads.
    MixedDirectAndCached {
        /// Thread of the later op.
        thread: usize,
        /// Index of the later op in its thread.
        index: usize,
        /// The file.
        file: FileId,
        /// Whether the later op is the direct write (else it is the page-cache write).
        direct: bool,
        /// The other thread, which wrote the file the other way.
        other: usize,
    },
    /// An op that threaded kernel runs do not support.
    Unsupported {
        /// Thread of the op.
        thread: usize,
        /// Index of the op in its thread.
        index: usize,
        /// Its kind.
        kind: OpKind,
    },
}

impl RuleError {
    /// Thread and index of the op that breaks the rule.
    pub fn position(&self) -> (usize, usize) {
        match *self {
            RuleError::SizeChange { thread, index, .. }
            | RuleError::SharedFolio { thread, index, .. }
            | RuleError::MixedDirectAndCached { thread, index, .. }
            | RuleError::Unsupported { thread, index, .. } => (thread, index),
        }
    }
}

impl fmt::Display for RuleError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RuleError::SizeChange { file, .. } => write!(
                f,
                "f{file} is used by several threads, so its size must not change (no truncate)"
            ),
            RuleError::SharedFolio {
                file, folio, owner, ..
            } => write!(
                f,
                "f{file} folio {folio} is already written by thread {owner}: writers of different \
                 threads must touch different folios"
            ),
            RuleError::MixedDirectAndCached {
                file,
                direct,
                other,
                ..
            } => {
                let (this, that) = if *direct {
                    ("directly", "through the page cache")
                } else {
                    ("through the page cache", "directly")
                };
                write!(
                    f,
                    "f{file} is written {that} by thread {other}, so no other thread may write \
                     it {this} (Linux does not keep the two coherent across its large folios)"
                )
            }
            RuleError::Unsupported { kind, .. } => write!(
                f,
                "`{}` is not supported in threaded kernel runs",
                kind.keyword()
            ),
        }
    }
}

impl std::error::Error for RuleError {}

/// What the rule decided for an input.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Plan {
    /// Files named by user ops of several threads (extended to the maximum size first).
    pub shared: Vec<FileId>,
    /// One judgement per op, per thread, in input order.
    pub judgements: Vec<Vec<Judgement>>,
}

fn is_writer(kind: OpKind) -> bool {
    matches!(
        kind,
        OpKind::Write
            | OpKind::DirectWrite
            | OpKind::MmapWrite
            | OpKind::Fallocate
            | OpKind::PunchHole
            | OpKind::ZeroRange
    )
}

/// Writers whose bytes go through the page cache (punch and zero-range zero partial blocks there).
fn is_cached_writer(kind: OpKind) -> bool {
    matches!(
        kind,
        OpKind::Write | OpKind::MmapWrite | OpKind::PunchHole | OpKind::ZeroRange
    )
}

fn is_reader(kind: OpKind) -> bool {
    matches!(kind, OpKind::Read | OpKind::DirectRead | OpKind::MmapRead)
}

fn is_background(kind: OpKind) -> bool {
    matches!(
        kind,
        OpKind::Flush
            | OpKind::CompleteIo
            | OpKind::Reclaim
            | OpKind::EvictInode
            | OpKind::Fsync
            | OpKind::JournalCommit
    )
}

/// The folios `[first, end)` an op's byte range touches (`None`: it touches no bytes). Fault ops
/// act on the folio holding their offset only, as the spec clips them.
fn folios(op: &Op, folio: u64) -> Option<(u64, u64)> {
    let mut op = op.clone();
    let is_fault = matches!(op.kind(), OpKind::MmapRead | OpKind::MmapWrite);
    let (off, len) = op.range_mut().map(|(o, l)| (*o, *l))?;
    if len == 0 {
        return None;
    }
    let first = off / folio;
    if is_fault {
        return Some((first, first + 1));
    }
    Some((first, off.saturating_add(len).div_ceil(folio)))
}

/// Checks an input against the race rule and judges each op.
pub fn plan(input: &Input) -> Result<Plan, RuleError> {
    let folio = input.config.geometry.folio_size().max(reference::PAGE_SIZE);
    // Files named by user (non-background) ops, and by which threads.
    let mut users: BTreeMap<FileId, Vec<usize>> = BTreeMap::new();
    for (t, ops) in input.threads.iter().enumerate() {
        for (i, op) in ops.iter().enumerate() {
            let kind = op.kind();
            if matches!(
                kind,
                OpKind::CorruptAllocBtree | OpKind::RepairAllocBtree | OpKind::Crash
            ) {
                return Err(RuleError::Unsupported {
                    thread: t,
                    index: i,
                    kind,
                });
            }
            if let (Some(f), false) = (op.file(), is_background(kind)) {
                let v = users.entry(f).or_default();
                if !v.contains(&t) {
                    v.push(t);
                }
            }
        }
    }
    let shared: Vec<FileId> = users
        .iter()
        .filter(|(_, ts)| ts.len() > 1)
        .map(|(&f, _)| f)
        .collect();
    // Folio ownership of shared files, first writer wins; later writers of other threads fail.
    let mut owner: BTreeMap<(FileId, u64), usize> = BTreeMap::new();
    // The first thread that wrote each shared file directly, and through the cache.
    let mut direct: BTreeMap<FileId, usize> = BTreeMap::new();
    let mut cached: BTreeMap<FileId, usize> = BTreeMap::new();
    for (t, ops) in input.threads.iter().enumerate() {
        for (i, op) in ops.iter().enumerate() {
            let Some(f) = op.file().filter(|f| shared.contains(f)) else {
                continue;
            };
            if op.kind() == OpKind::Truncate {
                return Err(RuleError::SizeChange {
                    thread: t,
                    index: i,
                    file: f,
                });
            }
            if !is_writer(op.kind()) {
                continue;
            }
            let Some((first, end)) = folios(op, folio) else {
                continue;
            };
            let is_direct = op.kind() == OpKind::DirectWrite;
            if is_direct || is_cached_writer(op.kind()) {
                let (mine, theirs) = if is_direct {
                    (&mut direct, &cached)
                } else {
                    (&mut cached, &direct)
                };
                if let Some(&other) = theirs.get(&f).filter(|&&o| o != t) {
                    return Err(RuleError::MixedDirectAndCached {
                        thread: t,
                        index: i,
                        file: f,
                        direct: is_direct,
                        other,
                    });
                }
                mine.entry(f).or_insert(t);
            }
            for k in first..end {
                let o = *owner.entry((f, k)).or_insert(t);
                if o != t {
                    return Err(RuleError::SharedFolio {
                        thread: t,
                        index: i,
                        file: f,
                        folio: k,
                        owner: o,
                    });
                }
            }
        }
    }
    let judgements = input
        .threads
        .iter()
        .enumerate()
        .map(|(t, ops)| {
            ops.iter()
                .map(|op| {
                    let kind = op.kind();
                    if is_background(kind) {
                        return Judgement::Background;
                    }
                    let racy = is_reader(kind)
                        && op.file().filter(|f| shared.contains(f)).is_some_and(|f| {
                            folios(op, folio).is_some_and(|(a, b)| {
                                (a..b).any(|k| owner.get(&(f, k)).is_some_and(|&o| o != t))
                            })
                        });
                    if racy {
                        Judgement::RacyRead
                    } else {
                        Judgement::Exact
                    }
                })
                .collect()
        })
        .collect();
    Ok(Plan { shared, judgements })
}

/// The 1-based line of op `index` of thread `thread` in a script's text, so a refusal can name
/// it: op lines are the lines that are not blank, not comments and not one of the header
/// keywords; ops before any `thread` line belong to thread 0.
pub fn script_line(text: &str, thread: usize, index: usize) -> Option<usize> {
    let mut current = 0usize;
    let mut count = 0usize;
    for (k, raw) in text.lines().enumerate() {
        let line = raw.split('#').next().unwrap_or("").trim();
        let mut words = line.split_whitespace();
        match words.next() {
            None => continue,
            Some("geometry" | "policy" | "file" | "schedule") => continue,
            Some("thread") => {
                current = words.next().and_then(|n| n.parse().ok())?;
                count = 0;
            }
            Some(_) => {
                if current == thread {
                    if count == index {
                        return Some(k + 1);
                    }
                    count += 1;
                }
            }
        }
    }
    None
}
