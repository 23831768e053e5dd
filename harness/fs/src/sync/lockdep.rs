//! Lock order as code: a lockdep in miniature.
//!
//! Every lock of the implementation belongs to a [`LockClass`], given where it is built. The one
//! order table is [`ORDER`] with its two amendments, [`NESTED`] (classes of which a thread may hold
//! several, in increasing key order) and [`FOLIO_GUARDED`] (the edges that go against the order and
//! are allowed only to the holder of the folio lock); `lib.rs` ("# Lock order") describes the same
//! table, and a test holds the two together. Each thread (each shuttle task under shuttle) keeps
//! the locks it holds, with the source location where it took each; every blocking acquisition
//! checks each "held A, took B" edge against the table, so an acquisition against the order is a
//! finding even when no schedule deadlocks on it. A finding becomes a `lock-order` violation of the
//! [`crate::Fs`] whose op took the lock (reported by `check_invariants`).
//!
//! Owns: the order table, the per-thread held lists and findings, the process-wide graph of the
//! edges seen (each with the locations of its first sighting).
//! Invariants: an edge is marked valid (`VALID`) only after the table allowed it and it closed
//! no cycle in the graph; validity is a function of the edge alone, so a breach is reported every
//! time it happens, in every run, whatever other runs in the process saw (determinism). The
//! graph's nodes split the folio memory lock by whether its holder (or waiter) owns the folio's
//! lock, so that a cycle through it counts only if it needs two threads holding one folio lock at
//! once, which cannot happen; with the table right (a test proves it acyclic) the cycle check never
//! fires, and if it does, the table is wrong.
//! Per-thread state lives in a std thread-local: one slot per OS thread for std locks, and one per
//! shuttle task (indexed by task id, reset when a task is spawned and when a shuttle scope is
//! entered) for shuttle locks, since shuttle tasks share an OS thread.
//! Cost: with nothing new, an acquisition compares the thread's mask of held classes with the
//! mask of edges already valid into the class it takes (one relaxed load) and pushes an entry;
//! only an edge not yet valid scans the held list, and only a first-seen one takes the graph lock.
//! Checking is on in every shuttle execution, in debug and test builds, and wherever
//! [`set_checking`] turned it on; elsewhere (release runs on std primitives) an acquisition costs
//! one relaxed load.
//! Locks: the graph lock, a std mutex outside the order: taken only for a first-seen edge, never
//! while taking another lock, never across a scheduling point.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::panic::Location;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use vocab::Violation;

/// The class of a lock: which lock of which structure it is. Declared in the lock order: a thread
/// takes classes top to bottom ([`ORDER`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum LockClass {
    /// `Inode::iolock` (IOLOCK); nests by file index.
    IoLock,
    /// `Inode::invalidate` (the mapping invalidate lock); nests by file index.
    Invalidate,
    /// `Inode::handles` (open journal handles); nests by file index.
    Handles,
    /// The folio lock (`page_cache::LockedFolio`); nests by folio index.
    FolioLock,
    /// `Inode::ilock` (ILOCK); nests by file index.
    Ilock,
    /// `Fs::alloc` (the free-space btree).
    Alloc,
    /// The lock of `IoQueue` (the in-flight FIFO).
    IoQueue,
    /// `Inode::journal` (the running transaction's logged set).
    Journal,
    /// `PageCache::index` (the page-cache index); nests by file index.
    Index,
    /// `Folio::state` (the folio memory lock).
    FolioMem,
    /// `Inode::wb_err`; nests by file index.
    WbErr,
    /// `Fs::violations`.
    Violations,
    /// The disk's block map.
    Disk,
    /// `Folio::locked`, the word the folio lock is built on.
    FolioWord,
    /// `Inode::promise`: what a successful fsync promised (crash checks); nothing is taken
    /// inside it.
    Promise,
    /// `Fs::commit_log`: innermost of all.
    CommitLog,
}

/// Number of lock classes.
const CLASSES: usize = 16;

/// The lock order, outermost first. A thread holding a lock of class `A` may take a lock of class
/// `B` only if `B` comes after `A` here, except for the two amendments below.
pub const ORDER: [LockClass; CLASSES] = [
    LockClass::IoLock,
    LockClass::Invalidate,
    LockClass::Handles,
    LockClass::FolioLock,
    LockClass::Ilock,
    LockClass::Alloc,
    LockClass::IoQueue,
    LockClass::Journal,
    LockClass::Index,
    LockClass::FolioMem,
    LockClass::WbErr,
    LockClass::Violations,
    LockClass::Disk,
    LockClass::FolioWord,
    LockClass::Promise,
    LockClass::CommitLog,
];

/// Classes of which a thread may hold several at once, taken in strictly increasing key order
/// (file index, folio index). A lock taken without blocking (a folio created locked, a
/// successful trylock) joins the held set in any order: nobody can be waiting for it yet.
pub const NESTED: [LockClass; 7] = [
    LockClass::IoLock,
    LockClass::Invalidate,
    LockClass::Handles,
    LockClass::FolioLock,
    LockClass::Ilock,
    LockClass::Index,
    LockClass::WbErr,
];

/// The edges `(held, taken)` that go against [`ORDER`], each allowed only while the thread holds
/// the folio lock of the folio whose memory lock it holds. What makes them safe: every edge into
/// the folio memory lock from a class at or after `taken` (and before the folio memory lock) must
/// also be taken by the holder of that folio's lock, so a cycle would need two threads holding
/// one folio lock. The checker enforces both halves.
pub const FOLIO_GUARDED: [(LockClass, LockClass); 1] = [(LockClass::FolioMem, LockClass::Journal)];

impl LockClass {
    /// The name used in the lock-order doc and in findings.
    pub const fn name(self) -> &'static str {
        match self {
            LockClass::IoLock => "IOLOCK",
            LockClass::Invalidate => "invalidate",
            LockClass::Handles => "handles",
            LockClass::FolioLock => "folio lock",
            LockClass::Ilock => "ILOCK",
            LockClass::Alloc => "allocator",
            LockClass::IoQueue => "IO queue",
            LockClass::Journal => "journal",
            LockClass::Index => "page-cache index",
            LockClass::FolioMem => "folio memory",
            LockClass::WbErr => "writeback error",
            LockClass::Violations => "violations",
            LockClass::Disk => "disk",
            LockClass::FolioWord => "folio lock word",
            LockClass::Promise => "fsync promise",
            LockClass::CommitLog => "commit log",
        }
    }

    /// Position in [`ORDER`].
    #[inline]
    const fn rank(self) -> usize {
        self as usize
    }

    fn nests(self) -> bool {
        NESTED.contains(&self)
    }
}

/// Why an edge breaks the order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Breach {
    /// The order puts the taken class before the held one, and no amendment allows it.
    Inverted,
    /// A [`FOLIO_GUARDED`] edge taken without the folio lock of the held folio memory.
    Unguarded,
    /// The folio memory lock taken without its folio lock while holding a class that the given
    /// guarded edge can reach: that would close a cycle through the guarded edge.
    UnownedMemory((LockClass, LockClass)),
    /// A second lock of a class that never nests.
    Recursive,
    /// A nesting class taken not in increasing key order (or the same lock again).
    KeyOrder,
}

/// The table as a rule: may a thread holding `held` (`held_owned`: it is the folio memory lock of
/// a folio whose lock the thread holds) take `taken` (`taken_owned` likewise)? Same-class
/// acquisitions are only judged by class here; their key order is checked per acquisition.
pub(crate) fn check_edge(
    held: LockClass,
    held_owned: bool,
    taken: LockClass,
    taken_owned: bool,
) -> Result<(), Breach> {
    if held == taken {
        return if held.nests() {
            Ok(())
        } else {
            Err(Breach::Recursive)
        };
    }
    if held.rank() > taken.rank() {
        if !FOLIO_GUARDED.contains(&(held, taken)) {
            return Err(Breach::Inverted);
        }
        return if held_owned {
            Ok(())
        } else {
            Err(Breach::Unguarded)
        };
    }
    if taken == LockClass::FolioMem && !taken_owned {
        if let Some(&g) = FOLIO_GUARDED
            .iter()
            .find(|&&(from, to)| from == taken && to.rank() <= held.rank())
        {
            return Err(Breach::UnownedMemory(g));
        }
    }
    Ok(())
}

// --- checking on or off --------------------------------------------------------------------------

static FORCED: AtomicBool = AtomicBool::new(false);

/// Turns checking on (or back off) for locks on std primitives in this process. Shuttle
/// executions and debug builds always check.
pub fn set_checking(on: bool) {
    FORCED.store(on, Ordering::Relaxed);
}

/// Whether acquisitions of std-backed locks are checked.
#[inline]
pub(crate) fn std_checking() -> bool {
    cfg!(debug_assertions) || FORCED.load(Ordering::Relaxed)
}

// --- per-thread state ------------------------------------------------------------------------------

/// Which thread-local storage a lock's holder uses: the OS thread's (std primitives) or the
/// shuttle task's (shuttle primitives; shuttle tasks share one OS thread).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Ctx {
    Std,
    Shuttle,
}

/// One lock a thread holds.
struct Held {
    class: LockClass,
    /// The lock's identity (its address).
    ident: usize,
    /// For the folio lock and the folio memory lock: the folio's address (0 otherwise).
    folio: usize,
    /// Nesting key (file or folio index).
    key: u64,
    /// A folio memory lock taken while holding that folio's lock.
    owned: bool,
    loc: &'static Location<'static>,
}

#[derive(Default)]
struct ThreadState {
    held: Vec<Held>,
    /// How many held entries have each held-node bit ([`held_bit`]), and the mask of those with
    /// any: lets an acquisition whose every edge is known valid skip the scan of `held`.
    counts: [u16; 16],
    mask: u32,
    findings: Vec<Violation>,
}

/// The bit of a held lock in [`ThreadState::mask`] and [`VALID_PRED`]: its class, except that an
/// owned folio memory lock has bit 15 of its own.
#[inline]
fn held_bit(class: LockClass, owned: bool) -> u32 {
    if owned && class == LockClass::FolioMem {
        15
    } else {
        class as u32
    }
}

/// The held-node bits of a class (both of the folio memory lock's).
#[inline]
fn class_bits(class: LockClass) -> u32 {
    match class {
        LockClass::FolioMem => 1 << LockClass::FolioMem as u32 | 1 << 15,
        c => 1 << c as u32,
    }
}

impl ThreadState {
    fn push(&mut self, h: Held) {
        let b = held_bit(h.class, h.owned);
        self.counts[b as usize] += 1;
        self.mask |= 1 << b;
        self.held.push(h);
    }

    fn remove(&mut self, i: usize) {
        let h = self.held.swap_remove(i);
        let b = held_bit(h.class, h.owned) as usize;
        self.counts[b] -= 1;
        if self.counts[b] == 0 {
            self.mask &= !(1 << b);
        }
    }
}

thread_local! {
    /// The state of this OS thread (locks on std primitives).
    static STD_STATE: RefCell<ThreadState> = const {
        RefCell::new(ThreadState { held: Vec::new(), counts: [0; 16], mask: 0, findings: Vec::new() })
    };
    /// The states of the shuttle tasks run on this OS thread, by task id. Shuttle's own
    /// task-locals would do, but each access hashes its key: 14% of a concurrent run's
    /// instructions.
    static TASKS: RefCell<Vec<ThreadState>> = const { RefCell::new(Vec::new()) };
}

/// Whose state: the OS thread's, or a shuttle task's (by task id).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Slot {
    Std,
    Task(usize),
}

/// The calling thread's slot for a lock of context `ctx`; `None` outside any shuttle task (while
/// shuttle tears an aborted execution down).
#[inline]
fn current_slot(ctx: Ctx) -> Option<Slot> {
    match ctx {
        Ctx::Std => Some(Slot::Std),
        Ctx::Shuttle => shuttle::current::get_current_task().map(|t| Slot::Task(usize::from(t))),
    }
}

/// Runs `f` on a slot's state; `None` during thread-local destruction.
#[inline]
fn with_slot<R>(slot: Slot, f: impl FnOnce(&mut ThreadState) -> R) -> Option<R> {
    match slot {
        Slot::Std => STD_STATE
            .try_with(|c| c.try_borrow_mut().ok().map(|mut s| f(&mut s)))
            .ok()
            .flatten(),
        Slot::Task(t) => TASKS
            .try_with(|c| {
                let mut tasks = c.try_borrow_mut().ok()?;
                if tasks.len() <= t {
                    tasks.resize_with(t + 1, ThreadState::default);
                }
                Some(f(&mut tasks[t]))
            })
            .ok()
            .flatten(),
    }
}

/// Forgets every shuttle task's state on this OS thread: a new shuttle scope starts from nothing
/// (task ids are reused by every execution; an aborted one may have left findings behind).
pub(crate) fn reset_tasks() {
    let _ = TASKS.try_with(|c| {
        if let Ok(mut t) = c.try_borrow_mut() {
            t.iter_mut().for_each(forget);
            t.clear();
        }
    });
}

/// Starts the calling shuttle task from nothing (a spawned task's id may be one an earlier
/// execution used).
pub(crate) fn task_started() {
    if let Some(slot) = current_slot(Ctx::Shuttle) {
        with_slot(slot, forget);
    }
}

/// Empties a state, keeping [`PENDING`] right.
fn forget(s: &mut ThreadState) {
    PENDING.fetch_sub(s.findings.len() as u64, Ordering::Relaxed);
    *s = ThreadState::default();
}

// --- the process-wide graph ----------------------------------------------------------------------

const EDGE_BITS: usize = CLASSES * 2 * CLASSES * 2;

/// Edges allowed and seen, one bit per `(held, held_owned, taken, taken_owned)`.
static VALID: [AtomicU64; EDGE_BITS.div_ceil(64)] =
    [const { AtomicU64::new(0) }; EDGE_BITS.div_ceil(64)];

/// For each class taken (and, for the folio memory lock, owned or not), the held-node bits
/// ([`held_bit`]) of the edges into it marked valid.
static VALID_PRED: [AtomicU32; CLASSES * 2] = [const { AtomicU32::new(0) }; CLASSES * 2];

#[inline]
fn pred_index(taken: LockClass, owned: bool) -> usize {
    taken as usize * 2 + (owned && taken == LockClass::FolioMem) as usize
}

/// An edge of the class graph; the owned flags are only ever set for the folio memory lock.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Edge {
    held: LockClass,
    held_owned: bool,
    taken: LockClass,
    taken_owned: bool,
}

impl Edge {
    fn new(held: LockClass, held_owned: bool, taken: LockClass, taken_owned: bool) -> Edge {
        let mem = |c: LockClass, o: bool| o && c == LockClass::FolioMem;
        Edge {
            held,
            held_owned: mem(held, held_owned),
            taken,
            taken_owned: mem(taken, taken_owned),
        }
    }

    fn bit(self) -> usize {
        ((self.held as usize * 2 + self.held_owned as usize) * CLASSES + self.taken as usize) * 2
            + self.taken_owned as usize
    }

    fn is_valid(self) -> bool {
        let b = self.bit();
        VALID[b / 64].load(Ordering::Relaxed) & (1 << (b % 64)) != 0
    }

    fn mark_valid(self) {
        let b = self.bit();
        VALID[b / 64].fetch_or(1 << (b % 64), Ordering::Relaxed);
        VALID_PRED[pred_index(self.taken, self.taken_owned)]
            .fetch_or(1 << held_bit(self.held, self.held_owned), Ordering::Relaxed);
    }

    /// Node the edge leaves (the held lock's "out" node).
    fn from(self) -> usize {
        node_out(self.held, self.held_owned)
    }

    /// Node the edge enters (the taken lock's "in" node).
    fn to(self) -> usize {
        node_in(self.taken, self.taken_owned)
    }
}

/// Graph nodes: one per class, except the folio memory lock, which has four: entered by a waiter
/// that owns the folio lock or not, left by a holder that owns it or not. Entering and leaving
/// connect unless both own it (two threads cannot hold one folio lock).
const MEM_IN_OWNED: usize = CLASSES;
const MEM_IN_FREE: usize = CLASSES + 1;
const MEM_OUT_OWNED: usize = CLASSES + 2;
const MEM_OUT_FREE: usize = CLASSES + 3;
const NODES: usize = CLASSES + 4;

fn node_in(c: LockClass, owned: bool) -> usize {
    match (c, owned) {
        (LockClass::FolioMem, true) => MEM_IN_OWNED,
        (LockClass::FolioMem, false) => MEM_IN_FREE,
        _ => c as usize,
    }
}

fn node_out(c: LockClass, owned: bool) -> usize {
    match (c, owned) {
        (LockClass::FolioMem, true) => MEM_OUT_OWNED,
        (LockClass::FolioMem, false) => MEM_OUT_FREE,
        _ => c as usize,
    }
}

/// The source locations of an edge's first sighting: where the held lock was taken, where the
/// second one was.
type Sighting = (&'static Location<'static>, &'static Location<'static>);

/// The graph of edges seen (self-edges of nesting classes left out: key order makes them
/// acyclic).
#[derive(Default)]
struct Graph {
    edges: BTreeMap<Edge, Sighting>,
}

impl Graph {
    /// A path of edges from node `from` to node `to`, if any.
    fn path(&self, from: usize, to: usize) -> Option<Vec<Edge>> {
        let inner = |n: usize| -> &'static [usize] {
            match n {
                MEM_IN_OWNED => &[MEM_OUT_FREE],
                MEM_IN_FREE => &[MEM_OUT_OWNED, MEM_OUT_FREE],
                _ => &[],
            }
        };
        // Depth-first; each node reached remembers the node before it and the edge it was
        // reached by (`None`: a link inside the folio memory lock).
        let mut prev: [Option<(usize, Option<Edge>)>; NODES] = [None; NODES];
        prev[from] = Some((from, None));
        let mut stack = vec![from];
        while let Some(n) = stack.pop() {
            if n == to {
                let mut path = Vec::new();
                let mut cur = to;
                while cur != from {
                    let (p, e) = prev[cur]?;
                    path.extend(e);
                    cur = p;
                }
                path.reverse();
                return Some(path);
            }
            let next = inner(n).iter().map(|&m| (m, None)).chain(
                self.edges
                    .keys()
                    .filter(|e| e.from() == n)
                    .map(|&e| (e.to(), Some(e))),
            );
            for (m, e) in next {
                if prev[m].is_none() {
                    prev[m] = Some((n, e));
                    stack.push(m);
                }
            }
        }
        None
    }
}

static GRAPH: std::sync::Mutex<Option<Graph>> = std::sync::Mutex::new(None);

// --- acquisition and release ---------------------------------------------------------------------

/// A lock's entry in its holder's held list; dropping it removes the entry (from the slot it
/// was taken in: a guard never changes threads, and shuttle's teardown of an aborted execution,
/// which unwinds every task outside any task, still finds it). Empty when the acquisition was
/// not checked. Small (16 bytes): every guard carries one.
pub(crate) struct Token {
    /// 0: empty; 1: the OS thread's slot; `2 + t`: shuttle task `t`'s.
    slot: u32,
    class: LockClass,
    ident: usize,
}

impl Token {
    /// The token of an unchecked acquisition.
    pub(crate) const NONE: Token = Token {
        slot: 0,
        class: LockClass::IoLock,
        ident: 0,
    };

    fn new(slot: Slot, class: LockClass, ident: usize) -> Token {
        let slot = match slot {
            Slot::Std => 1,
            Slot::Task(t) => u32::try_from(t).map_or(0, |t| t.saturating_add(2)),
        };
        Token { slot, class, ident }
    }
}

impl Drop for Token {
    #[inline(always)]
    fn drop(&mut self) {
        if self.slot != 0 {
            let slot = match self.slot {
                1 => Slot::Std,
                t => Slot::Task(t as usize - 2),
            };
            release(slot, self.ident, self.class);
        }
    }
}

/// What is being acquired.
#[derive(Clone, Copy)]
pub(crate) struct Acquire {
    pub class: LockClass,
    /// The lock's address.
    pub ident: usize,
    /// The folio's address, for the folio lock and the folio memory lock (0 otherwise).
    pub folio: usize,
    /// Nesting key.
    pub key: u64,
    /// Whether the acquisition may block (edges are checked only for those).
    pub blocking: bool,
}

/// Whether acquisitions of a lock of context `ctx` are checked (see [`acquire`]).
#[inline(always)]
pub(crate) fn checking(ctx: Ctx) -> bool {
    ctx == Ctx::Shuttle || std_checking()
}

/// Records that the calling thread is taking (`blocking`: about to wait for) the lock `a`, taken
/// at `loc`; checks every edge from the locks it holds. Call before waiting, and only where
/// [`checking`]: an edge against the order is a finding whether or not this acquisition would
/// deadlock.
#[inline(never)]
pub(crate) fn acquire(ctx: Ctx, a: Acquire, loc: &'static Location<'static>) -> Token {
    let Some(slot) = current_slot(ctx) else {
        return Token::NONE;
    };
    if a.blocking && CONTENTION_ON.with(|c| c.get()) {
        note_contention(slot, a);
    }
    let pushed = with_slot(slot, |s| {
        let owned = a.class == LockClass::FolioMem
            && s.held
                .iter()
                .any(|h| h.class == LockClass::FolioLock && h.folio == a.folio);
        // Nothing to check if no lock of this class is held and every held lock's edge to it is
        // known valid (the usual case, in a few instructions).
        let known = s.mask & class_bits(a.class) == 0
            && s.mask & !VALID_PRED[pred_index(a.class, owned)].load(Ordering::Relaxed) == 0;
        if a.blocking && !known {
            check_held(s, a, owned, loc);
        }
        s.push(Held {
            class: a.class,
            ident: a.ident,
            folio: a.folio,
            key: a.key,
            owned,
            loc,
        });
    });
    match pushed {
        Some(()) => Token::new(slot, a.class, a.ident),
        None => Token::NONE,
    }
}

// --- contention events ---------------------------------------------------------------------------

/// One contention event: a shuttle task blocked on a lock another task of the same execution
/// held. The feedback signal of the hunt (the harness's `signal` module) hashes these; the
/// held-class masks say what each side was doing (a writeback holds the folio lock, a write
/// the iolock and the folio lock, ...).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Contention {
    /// The class of the lock waited for.
    pub class: LockClass,
    /// Classes the waiting task held (bit `c` for class `c`), the folio lock's owned memory lock
    /// as bit 15.
    pub waiter_held: u32,
    /// Classes the holding task held.
    pub holder_held: u32,
}

thread_local! {
    /// Whether [`acquire`] records contention on this OS thread (off: one thread-local read per
    /// blocking shuttle acquisition).
    static CONTENTION_ON: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
    /// The events recorded since [`contention_start`].
    static CONTENTION: RefCell<Vec<Contention>> = const { RefCell::new(Vec::new()) };
}

/// Most events kept per execution: the signal needs which kinds occur, not how often.
const MAX_CONTENTION: usize = 4096;

/// Starts recording contention on this OS thread (the shuttle executions run on it), dropping
/// whatever an earlier execution left.
pub fn contention_start() {
    CONTENTION_ON.with(|c| c.set(true));
    CONTENTION.with(|c| c.borrow_mut().clear());
}

/// Stops recording and returns the events recorded since [`contention_start`].
pub fn contention_take() -> Vec<Contention> {
    CONTENTION_ON.with(|c| c.set(false));
    CONTENTION.with(|c| std::mem::take(&mut *c.borrow_mut()))
}

/// Records an event if another shuttle task holds the lock `a` the task of `slot` is about to
/// wait for. Only shuttle tasks are looked at: their held lists all live on this OS thread, so
/// the scan is exact and takes no scheduling point (std threads cannot see each other's).
#[cold]
fn note_contention(slot: Slot, a: Acquire) {
    let Slot::Task(me) = slot else { return };
    let found = TASKS
        .try_with(|c| {
            let tasks = c.try_borrow().ok()?;
            let holder = tasks
                .iter()
                .enumerate()
                .find(|(t, s)| *t != me && s.held.iter().any(|h| h.ident == a.ident))?;
            Some(Contention {
                class: a.class,
                waiter_held: tasks.get(me).map_or(0, |s| s.mask),
                holder_held: holder.1.mask,
            })
        })
        .ok()
        .flatten();
    if let Some(ev) = found {
        let _ = CONTENTION.try_with(|c| {
            if let Ok(mut v) = c.try_borrow_mut() {
                if v.len() < MAX_CONTENTION {
                    v.push(ev);
                }
            }
        });
    }
}

/// Checks each held class's edge to `a` (once per class), and same-class key order.
fn check_held(s: &mut ThreadState, a: Acquire, owned: bool, loc: &'static Location<'static>) {
    let ThreadState { held, findings, .. } = s;
    let mut seen = 0u32;
    for h in held.iter() {
        if h.class == a.class {
            if !a.class.nests() {
                report(findings, breach_text(Breach::Recursive, h, a, loc));
            } else if a.key <= h.key {
                report(findings, breach_text(Breach::KeyOrder, h, a, loc));
            }
            continue;
        }
        let bit = 1u32 << h.class as u32;
        if seen & bit != 0 {
            continue;
        }
        seen |= bit;
        let e = Edge::new(h.class, h.owned, a.class, owned);
        if e.is_valid() {
            continue;
        }
        match check_edge(e.held, e.held_owned, e.taken, e.taken_owned) {
            Err(b) => report(findings, breach_text(b, h, a, loc)),
            Ok(()) => {
                if let Some(text) = first_sighting(e, (h.loc, loc)) {
                    report(findings, text);
                }
            }
        }
    }
}

/// Adds an allowed edge to the graph; marks it valid unless it closes a cycle, which it returns
/// described.
#[cold]
fn first_sighting(e: Edge, at: Sighting) -> Option<String> {
    let mut g = GRAPH.lock().unwrap_or_else(|p| p.into_inner());
    let g = g.get_or_insert_with(Graph::default);
    g.edges.entry(e).or_insert(at);
    match g.path(e.to(), e.from()) {
        None => {
            e.mark_valid();
            None
        }
        Some(back) => {
            let mut text = format!(
                "`{}` taken at {} while holding `{}` taken at {} closes a cycle of lock classes:",
                e.taken.name(),
                at.1,
                e.held.name(),
                at.0
            );
            for b in back {
                let (l0, l1) = g.edges[&b];
                let _ = write!(
                    text,
                    " `{}` -> `{}` ({l0} -> {l1});",
                    b.held.name(),
                    b.taken.name()
                );
            }
            Some(text)
        }
    }
}

fn breach_text(b: Breach, h: &Held, a: Acquire, loc: &'static Location<'static>) -> String {
    let (held, taken) = (h.class.name(), a.class.name());
    let both = format!(
        "`{taken}` taken at {loc} while holding `{held}` taken at {}",
        h.loc
    );
    match b {
        Breach::Inverted => format!("{both}: the lock order puts `{taken}` before `{held}`"),
        Breach::Unguarded => format!(
            "{both}, without that folio's lock: `{held}` -> `{taken}` goes against the lock \
             order and is allowed only to the folio lock's holder"
        ),
        Breach::UnownedMemory((from, to)) => format!(
            "{both}, without that folio's lock: with the folio-guarded edge `{}` -> `{}` this \
             can close a cycle",
            from.name(),
            to.name()
        ),
        Breach::Recursive => format!("{both}: `{taken}` locks never nest"),
        Breach::KeyOrder if h.ident == a.ident => format!("{both}: the same lock again"),
        Breach::KeyOrder => format!(
            "{both}: several `{taken}` locks only in increasing order (key {} after {})",
            a.key, h.key
        ),
    }
}

/// Findings in all threads' lists, not yet taken: lets [`take_findings`] skip the thread-local
/// lookup in the (usual) case where there are none.
static PENDING: AtomicU64 = AtomicU64::new(0);

/// Adds a finding to the thread's list unless it is there already.
fn report(findings: &mut Vec<Violation>, detail: String) {
    if !findings.iter().any(|f| f.detail == detail) {
        findings.push(Violation {
            name: "lock-order",
            detail,
        });
        PENDING.fetch_add(1, Ordering::Relaxed);
    }
}

#[inline(never)]
fn release(slot: Slot, ident: usize, class: LockClass) {
    with_slot(slot, |s| {
        if let Some(i) = s
            .held
            .iter()
            .rposition(|h| h.ident == ident && h.class == class)
        {
            s.remove(i);
        }
    });
}

/// One edge of the process-wide graph: a thread held `held` and took `taken`, first seen with
/// the held lock taken at `held_at` and the other at `taken_at`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ObservedEdge {
    /// The class held.
    pub held: LockClass,
    /// The held lock was the folio memory lock of a folio whose lock the thread held.
    pub held_owned: bool,
    /// The class taken.
    pub taken: LockClass,
    /// The lock taken was the folio memory lock of a folio whose lock the thread held.
    pub taken_owned: bool,
    /// Where the held lock was taken (first sighting).
    pub held_at: String,
    /// Where the second lock was taken (first sighting).
    pub taken_at: String,
}

/// Every allowed edge this process has seen so far, in class order (breaches are not edges of
/// the graph: they are findings).
pub fn observed_edges() -> Vec<ObservedEdge> {
    let g = GRAPH.lock().unwrap_or_else(|p| p.into_inner());
    g.as_ref()
        .map(|g| {
            g.edges
                .iter()
                .map(|(e, (h, t))| ObservedEdge {
                    held: e.held,
                    held_owned: e.held_owned,
                    taken: e.taken,
                    taken_owned: e.taken_owned,
                    held_at: h.to_string(),
                    taken_at: t.to_string(),
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Takes the findings of the calling thread (shuttle task inside a shuttle execution).
#[inline]
pub(crate) fn take_findings(in_shuttle: impl FnOnce() -> bool) -> Vec<Violation> {
    if PENDING.load(Ordering::Relaxed) == 0 {
        return Vec::new();
    }
    take_pending(in_shuttle())
}

#[cold]
fn take_pending(in_shuttle: bool) -> Vec<Violation> {
    let slot = if in_shuttle {
        current_slot(Ctx::Shuttle)
    } else if std_checking() {
        Some(Slot::Std)
    } else {
        None
    };
    let found = slot
        .and_then(|s| with_slot(s, |s| std::mem::take(&mut s.findings)))
        .unwrap_or_default();
    PENDING.fetch_sub(found.len() as u64, Ordering::Relaxed);
    found
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sync::{Mutex, RwLock};

    /// Every allowed edge, as the checker judges it, over all classes and owned flags.
    fn allowed_graph() -> Graph {
        let mut g = Graph::default();
        let here = Location::caller();
        for &a in &ORDER {
            for &b in &ORDER {
                if a == b {
                    continue;
                }
                for ao in [false, true] {
                    for bo in [false, true] {
                        if check_edge(a, ao, b, bo).is_ok() {
                            g.edges.insert(Edge::new(a, ao, b, bo), (here, here));
                        }
                    }
                }
            }
        }
        g
    }

    #[test]
    fn order_table_is_the_enum_order() {
        for (i, c) in ORDER.iter().enumerate() {
            assert_eq!(c.rank(), i, "{c:?} is declared out of ORDER");
        }
        for (from, to) in FOLIO_GUARDED {
            assert_eq!(
                from,
                LockClass::FolioMem,
                "only the folio memory lock has guarded edges"
            );
            assert!(
                to.rank() < from.rank(),
                "a guarded edge goes against the order"
            );
        }
    }

    #[test]
    fn allowed_edges_form_no_cycle() {
        let g = allowed_graph();
        for e in g.edges.keys() {
            assert!(
                g.path(e.to(), e.from()).is_none(),
                "the table allows a cycle through {e:?}"
            );
        }
    }

    /// The folio memory lock's split nodes: a class cycle through it counts only when it does
    /// not need the same folio lock on both sides.
    #[test]
    fn cycle_search_splits_the_folio_memory_lock() {
        use LockClass::*;
        let here = Location::caller();
        let mut g = Graph::default();
        let back = Edge::new(FolioMem, true, Journal, false);
        for e in [back, Edge::new(Journal, false, Index, false)] {
            g.edges.insert(e, (here, here));
        }
        g.edges
            .insert(Edge::new(Index, false, FolioMem, true), (here, here));
        assert_eq!(
            g.path(back.to(), back.from()),
            None,
            "both sides own the folio"
        );
        let free = Edge::new(Index, false, FolioMem, false);
        g.edges.insert(free, (here, here));
        assert_eq!(
            g.path(back.to(), back.from()),
            Some(vec![Edge::new(Journal, false, Index, false), free]),
            "an unowned way in closes the cycle"
        );
    }

    #[test]
    fn checker_enforces_the_table() {
        use LockClass::*;
        // Forward edges of the order.
        for (i, &a) in ORDER.iter().enumerate() {
            for &b in &ORDER[i + 1..] {
                let expect_free = !(b == FolioMem && (a == Journal || a == Index));
                assert_eq!(check_edge(a, false, b, true), Ok(()), "{a:?} -> {b:?}");
                assert_eq!(
                    check_edge(a, false, b, false).is_ok(),
                    expect_free,
                    "{a:?} -> unowned {b:?}"
                );
            }
        }
        // Backward edges: only the guarded one, only when owned.
        for (i, &a) in ORDER.iter().enumerate() {
            for &b in &ORDER[..i] {
                let guarded = (a, b) == (FolioMem, Journal);
                assert_eq!(
                    check_edge(a, true, b, false).is_ok(),
                    guarded,
                    "{a:?} -> {b:?}"
                );
                let want = if guarded {
                    Breach::Unguarded
                } else {
                    Breach::Inverted
                };
                assert_eq!(check_edge(a, false, b, false), Err(want), "{a:?} -> {b:?}");
            }
        }
        // Same class: only the nesting ones.
        for &a in &ORDER {
            let nests = matches!(
                a,
                IoLock | Invalidate | Handles | FolioLock | Ilock | Index | WbErr
            );
            assert_eq!(check_edge(a, false, a, false).is_ok(), nests, "{a:?} twice");
        }
    }

    /// The "# Lock order" section of lib.rs lists exactly [`ORDER`], marks exactly the
    /// [`NESTED`] classes as taken several at once, and names every [`FOLIO_GUARDED`] edge.
    #[test]
    fn lib_doc_describes_the_table() {
        let lib = include_str!("../lib.rs");
        let doc: Vec<&str> = lib
            .lines()
            .take_while(|l| l.starts_with("//!"))
            .map(|l| l.trim_start_matches("//!").trim())
            .collect();
        let start = doc
            .iter()
            .position(|l| *l == "# Lock order")
            .expect("lib.rs has a `# Lock order` section");
        let end = doc[start + 1..]
            .iter()
            .position(|l| l.starts_with("# "))
            .map_or(doc.len(), |p| start + 1 + p);
        let section = &doc[start..end];
        // Numbered items, with their continuation lines (up to the next blank line).
        let mut items: Vec<String> = Vec::new();
        let mut in_item = false;
        for l in section {
            let numbered = l
                .split_once(". ")
                .filter(|(n, _)| n.parse::<usize>().is_ok());
            if let Some((n, rest)) = numbered {
                assert_eq!(n.parse::<usize>().ok(), Some(items.len() + 1), "item {l}");
                items.push(rest.to_string());
                in_item = true;
            } else if l.is_empty() {
                in_item = false;
            } else if in_item {
                if let Some(last) = items.last_mut() {
                    last.push(' ');
                    last.push_str(l);
                }
            }
        }
        let names: Vec<String> = items
            .iter()
            .map(|i| {
                i.strip_prefix('`')
                    .and_then(|r| r.split_once('`'))
                    .map(|(n, _)| n.to_string())
                    .unwrap_or_default()
            })
            .collect();
        let want: Vec<String> = ORDER.iter().map(|c| c.name().to_string()).collect();
        assert_eq!(
            names, want,
            "lib.rs lists the lock order differently from ORDER"
        );
        for (item, c) in items.iter().zip(ORDER) {
            assert_eq!(
                item.contains("Several"),
                c.nests(),
                "lib.rs item `{}` and NESTED disagree",
                c.name()
            );
        }
        let text = section.join(" ");
        for (a, b) in FOLIO_GUARDED {
            let edge = format!("`{}` -> `{}`", a.name(), b.name());
            assert!(
                text.contains(&edge),
                "lib.rs does not name the guarded edge {edge}"
            );
        }
    }

    /// This thread's findings so far, taken; also turns checking on, which release builds
    /// leave off unless asked (these tests check the checker, in any build).
    fn take() -> Vec<Violation> {
        set_checking(true);
        take_findings(|| false)
    }

    #[test]
    fn wrong_order_is_reported_with_both_locks_and_places() {
        take();
        let ilock = Mutex::keyed(LockClass::Ilock, 0, ());
        let journal = Mutex::new(LockClass::Journal, ());
        let (j, jline) = (journal.lock(), line!());
        let (i, iline) = (ilock.lock(), line!());
        drop(i);
        drop(j);
        let found = take();
        assert_eq!(found.len(), 1, "{found:?}");
        let d = &found[0].detail;
        assert_eq!(found[0].name, "lock-order");
        assert!(d.contains("`ILOCK` taken at"), "{d}");
        assert!(d.contains("while holding `journal` taken at"), "{d}");
        assert!(d.contains(&format!("lockdep.rs:{jline}:")), "{d}");
        assert!(d.contains(&format!("lockdep.rs:{iline}:")), "{d}");
        // The right order is not a finding, and a wrong edge is reported again next time.
        let i = ilock.lock();
        let j = journal.lock();
        drop((j, i));
        assert!(take().is_empty());
        let j = journal.lock();
        let i = ilock.lock();
        drop((i, j));
        assert_eq!(take().len(), 1);
    }

    #[test]
    fn nesting_follows_keys() {
        take();
        let a = RwLock::keyed(LockClass::Invalidate, 0, ());
        let b = RwLock::keyed(LockClass::Invalidate, 1, ());
        {
            let _a = a.read();
            let _b = b.read();
        }
        assert!(take().is_empty());
        {
            let _b = b.read();
            let _a = a.write();
        }
        let found = take();
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(found[0].detail.contains("increasing order (key 0 after 1)"));
        let x = Mutex::new(LockClass::Disk, ());
        let y = Mutex::new(LockClass::Disk, ());
        {
            let _x = x.lock();
            let _y = y.lock();
        }
        let found = take();
        assert!(
            found[0].detail.contains("`disk` locks never nest"),
            "{found:?}"
        );
    }

    #[test]
    fn guarded_edge_needs_the_folio_lock() {
        take();
        let journal = Mutex::new(LockClass::Journal, ());
        let mem = Mutex::new(LockClass::FolioMem, ());
        {
            let _m = mem.lock();
            let _j = journal.lock();
        }
        let found = take();
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(found[0].detail.contains("without that folio's lock"));
        assert!(found[0].detail.contains("`folio memory` -> `journal`"));
    }

    #[test]
    fn try_lock_adds_no_edge() {
        take();
        let ilock = Mutex::keyed(LockClass::Ilock, 0, ());
        let journal = Mutex::new(LockClass::Journal, ());
        let j = journal.lock();
        let i = ilock.try_lock().expect("free");
        drop((i, j));
        assert!(take().is_empty());
    }

    #[test]
    fn shuttle_tasks_have_their_own_held_lists() {
        use crate::sync::{thread, Arc, ShuttleScope};
        let _scope = ShuttleScope::enter();
        shuttle::check_random_with_seed(
            || {
                let ilock = Arc::new(Mutex::keyed(LockClass::Ilock, 0, ()));
                let journal = Arc::new(Mutex::new(LockClass::Journal, ()));
                // One task holds the journal lock across a yield while another takes ILOCK:
                // no thread holds both, so no finding (one list per OS thread would make one
                // whenever the journal lock is taken first).
                let (i, j) = (Arc::clone(&ilock), Arc::clone(&journal));
                let a = thread::spawn(move || {
                    let g = j.lock();
                    thread::yield_now();
                    drop(g);
                    take_findings(|| true)
                });
                let b = thread::spawn(move || {
                    let g = i.lock();
                    thread::yield_now();
                    drop(g);
                    take_findings(|| true)
                });
                assert_eq!(a.join().ok(), Some(Vec::new()));
                assert_eq!(b.join().ok(), Some(Vec::new()));
                // The wrong order inside one task is that task's finding.
                let c = thread::spawn(move || {
                    let j = journal.lock();
                    let i = ilock.lock();
                    drop((i, j));
                    take_findings(|| true)
                });
                let found = c.join().ok().unwrap_or_default();
                assert_eq!(found.len(), 1, "{found:?}");
                assert!(found[0].detail.contains("`ILOCK` taken at"));
                assert!(
                    take_findings(|| true).is_empty(),
                    "the main task took nothing"
                );
            },
            7,
            50,
        );
    }

    /// A breach inside the filesystem's locks is a `lock-order` violation of that filesystem,
    /// reported by `check_invariants` (how the oracle reports it in `wbfuzz run` and `hunt`).
    #[test]
    fn fs_reports_a_breach_as_a_violation() {
        use crate::bugs::Bugs;
        use crate::Fs;
        use vocab::{Config, Observe, Op};
        take();
        let fs = Fs::new(&Config::default(), Bugs::NONE);
        assert!(fs.check_invariants().is_empty());
        {
            let _j = fs.inodes[0].journal.lock();
            let _i = fs.inodes[0].ilock.lock();
        }
        fs.apply(1, &Op::Fsync { file: 0 });
        let v = fs.check_invariants();
        assert_eq!(v.len(), 1, "{v:?}");
        assert_eq!(v[0].name, "lock-order");
        assert!(v[0]
            .detail
            .contains("`ILOCK` taken at harness/fs/src/sync/lockdep.rs:"));
        assert!(v[0].detail.contains("while holding `journal` taken at"));
        // Reported once, and still there (violations are sticky).
        fs.apply(2, &Op::Fsync { file: 0 });
        assert_eq!(fs.check_invariants(), v);
    }

    /// The code really takes the edges of the class cycle the lock-order doc argues about, each
    /// with the folio lock held, and the checker lets them through.
    #[test]
    fn the_documented_cycle_edges_are_real_and_guarded() {
        use crate::bugs::Bugs;
        use crate::Fs;
        use vocab::{Config, FileSpec, Observe, Op};
        let config = Config {
            files: vec![FileSpec { jdata: true }],
            ..Config::default()
        };
        let fs = Fs::new(&config, Bugs::NONE);
        let ops = [
            Op::Write {
                file: 0,
                off: 0,
                len: 5000,
                sync: false,
            },
            Op::JournalCommit { file: 0 },
            Op::Write {
                file: 0,
                off: 100,
                len: 10,
                sync: false,
            },
            Op::MmapWrite {
                file: 0,
                off: 50,
                len: 10,
            },
            // Removes the logged folios; the commit then looks them up in the index.
            Op::PunchHole {
                file: 0,
                off: 0,
                len: 8192,
            },
            Op::JournalCommit { file: 0 },
        ];
        for (seq, op) in ops.iter().enumerate() {
            fs.apply(seq as u32 + 1, op);
        }
        assert!(fs.check_invariants().is_empty());
        let seen = observed_edges();
        let has = |held, held_owned, taken, taken_owned| {
            seen.iter().any(|e| {
                (e.held, e.held_owned, e.taken, e.taken_owned)
                    == (held, held_owned, taken, taken_owned)
            })
        };
        use LockClass::*;
        assert!(
            has(FolioMem, true, Journal, false),
            "copy / fault log under folio memory"
        );
        assert!(
            has(Journal, false, Index, false),
            "journal commit looks up the index"
        );
        assert!(
            has(Index, false, FolioMem, true),
            "removal unmaps under the index"
        );
        assert!(!has(Index, false, FolioMem, false) && !has(Journal, false, FolioMem, false));
    }
}
