//! The synchronization facade: the only module of the implementation that names `std::sync` or
//! `shuttle`.
//!
//! Every primitive picks its backend when it is created: inside a [`ShuttleScope`] (entered by
//! the concurrent runner around a shuttle execution) it is the shuttle primitive, so that the
//! deterministic scheduler decides every interleaving; otherwise the std one (sequential runs,
//! real-thread stress tests). The rest of `fs` is written once against this module and runs both
//! ways in the same binary; the branch per lock operation costs nothing measurable.
//!
//! Owns: nothing. Invariants: a primitive never mixes backends (a guard or a wait always matches
//! the lock it came from); lock poisoning is never surfaced (a panicking thread already fails the
//! run; the data behind the lock is still what it was), so the wrappers return guards, not
//! `LockResult`s. Atomics are std atomics in both modes: they are not scheduling points, which
//! is fine because every atomic in `fs` is read or written under a lock that is one.
//! Locks: every lock operation is a scheduling point under shuttle; [`yield_point`] adds explicit
//! ones where the write, writeback and fault paths drop and retake state. Every lock has a
//! [`LockClass`], given at construction, and every acquisition goes through [`lockdep`], which
//! checks it against the lock order.

pub mod lockdep;

use lockdep::{Acquire, Ctx, Token};
use std::cell::Cell;
use std::ops::{Deref, DerefMut};
use std::panic::Location;

pub use lockdep::{contention_start, contention_take, Contention, LockClass};

pub use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
pub use std::sync::Arc;

thread_local! {
    static SHUTTLE: Cell<bool> = const { Cell::new(false) };
}

pub(crate) fn shuttle_mode() -> bool {
    SHUTTLE.with(|s| s.get())
}

/// While alive, primitives created on this thread are shuttle primitives. Shuttle runs every
/// task of an execution on the thread that called `Runner::run`, so entering the scope around
/// the run covers everything the execution creates.
pub struct ShuttleScope {
    prev: bool,
}

impl ShuttleScope {
    /// Enters shuttle mode on this thread.
    pub fn enter() -> ShuttleScope {
        lockdep::reset_tasks();
        ShuttleScope {
            prev: SHUTTLE.with(|s| s.replace(true)),
        }
    }
}

impl Drop for ShuttleScope {
    fn drop(&mut self) {
        SHUTTLE.with(|s| s.set(self.prev));
    }
}

/// Threads: spawn and yield through the same facade (std or shuttle, by mode).
pub mod thread {
    /// A handle to join a spawned thread.
    pub enum JoinHandle<T> {
        /// A real thread.
        Std(std::thread::JoinHandle<T>),
        /// A shuttle task.
        Shuttle(shuttle::thread::JoinHandle<T>),
    }

    impl<T> JoinHandle<T> {
        /// Waits for the thread; `Err` if it panicked.
        pub fn join(self) -> std::thread::Result<T> {
            match self {
                JoinHandle::Std(h) => h.join(),
                JoinHandle::Shuttle(h) => h.join(),
            }
        }
    }

    /// Spawns a thread of the current mode.
    pub fn spawn<F, T>(f: F) -> JoinHandle<T>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        if super::shuttle_mode() {
            JoinHandle::Shuttle(shuttle::thread::spawn(move || {
                super::lockdep::task_started();
                f()
            }))
        } else {
            JoinHandle::Std(std::thread::spawn(f))
        }
    }

    /// Yields to the scheduler.
    pub fn yield_now() {
        if super::shuttle_mode() {
            shuttle::thread::yield_now()
        } else {
            std::thread::yield_now()
        }
    }
}

/// An explicit scheduling point between two steps that must not be assumed atomic (between
/// mapping and folio work, between folios). A no-op on real threads, where the OS scheduler
/// preempts anywhere anyway.
#[inline]
pub fn yield_point() {
    if shuttle_mode() {
        shuttle::thread::yield_now();
    }
}

/// A mutual-exclusion lock whose `lock` ignores poisoning, of one [`LockClass`] (checked by
/// [`lockdep`]).
pub struct Mutex<T> {
    class: LockClass,
    key: u64,
    inner: MutexInner<T>,
}

enum MutexInner<T> {
    Std(std::sync::Mutex<T>),
    Shuttle(shuttle::sync::Mutex<T>),
}

/// Guard of a [`Mutex`].
pub struct MutexGuard<'a, T> {
    inner: MutexGuardInner<'a, T>,
    // Dropped after the lock is released (fields drop in order).
    _held: Token,
}

enum MutexGuardInner<'a, T> {
    Std(std::sync::MutexGuard<'a, T>),
    Shuttle(shuttle::sync::MutexGuard<'a, T>),
}

impl<T> Mutex<T> {
    /// A new unlocked mutex of class `class`.
    pub fn new(class: LockClass, value: T) -> Self {
        Mutex::keyed(class, 0, value)
    }

    /// A new unlocked mutex of a nesting class, with its nesting key (see [`lockdep::NESTED`]).
    pub fn keyed(class: LockClass, key: u64, value: T) -> Self {
        let inner = if shuttle_mode() {
            MutexInner::Shuttle(shuttle::sync::Mutex::new(value))
        } else {
            MutexInner::Std(std::sync::Mutex::new(value))
        };
        Mutex { class, key, inner }
    }

    /// A leaf lock that is never a scheduling point (the std backend in both modes), for
    /// bookkeeping that no interleaving can depend on: its holder must not take any other lock
    /// or reach a scheduling point before it lets go, so under shuttle it is never contended.
    /// Adding such a lock leaves every recorded schedule meaning what it meant.
    pub fn new_leaf(class: LockClass, value: T) -> Self {
        Mutex {
            class,
            key: 0,
            inner: MutexInner::Std(std::sync::Mutex::new(value)),
        }
    }

    #[inline]
    fn ctx(&self) -> Ctx {
        match self.inner {
            MutexInner::Std(_) => Ctx::Std,
            MutexInner::Shuttle(_) => Ctx::Shuttle,
        }
    }

    #[inline(always)]
    #[track_caller]
    fn note(&self, folio: usize, blocking: bool) -> Token {
        let ctx = self.ctx();
        if !lockdep::checking(ctx) {
            return Token::NONE;
        }
        let a = Acquire {
            class: self.class,
            ident: self as *const Self as usize,
            folio,
            key: self.key,
            blocking,
        };
        lockdep::acquire(ctx, a, Location::caller())
    }

    /// Blocks until the lock is held.
    #[inline(always)]
    #[track_caller]
    pub fn lock(&self) -> MutexGuard<'_, T> {
        self.lock_of_folio(0)
    }

    /// [`Mutex::lock`] for the memory lock of the folio at address `folio` (so that the checker
    /// can tell whether the caller holds that folio's lock).
    #[inline(always)]
    #[track_caller]
    pub(crate) fn lock_of_folio(&self, folio: usize) -> MutexGuard<'_, T> {
        let held = self.note(folio, true);
        let inner = match &self.inner {
            MutexInner::Std(m) => MutexGuardInner::Std(m.lock().unwrap_or_else(|e| e.into_inner())),
            MutexInner::Shuttle(m) => {
                MutexGuardInner::Shuttle(m.lock().unwrap_or_else(|e| e.into_inner()))
            }
        };
        MutexGuard { inner, _held: held }
    }

    /// Takes the lock if it is free (not a blocking acquisition: no order is checked for it).
    #[inline]
    #[track_caller]
    pub fn try_lock(&self) -> Option<MutexGuard<'_, T>> {
        let inner = match &self.inner {
            MutexInner::Std(m) => match m.try_lock() {
                Ok(g) => MutexGuardInner::Std(g),
                Err(std::sync::TryLockError::Poisoned(e)) => MutexGuardInner::Std(e.into_inner()),
                Err(std::sync::TryLockError::WouldBlock) => return None,
            },
            MutexInner::Shuttle(m) => match m.try_lock() {
                Ok(g) => MutexGuardInner::Shuttle(g),
                Err(std::sync::TryLockError::Poisoned(e)) => {
                    MutexGuardInner::Shuttle(e.into_inner())
                }
                Err(std::sync::TryLockError::WouldBlock) => return None,
            },
        };
        Some(MutexGuard {
            inner,
            _held: self.note(0, false),
        })
    }

    /// The checker's context of this lock (which thread-local state its holders use).
    #[inline]
    pub(crate) fn lockdep_ctx(&self) -> Ctx {
        self.ctx()
    }
}

impl<T> Deref for MutexGuard<'_, T> {
    type Target = T;
    #[inline]
    fn deref(&self) -> &T {
        match &self.inner {
            MutexGuardInner::Std(g) => g,
            MutexGuardInner::Shuttle(g) => g,
        }
    }
}

impl<T> DerefMut for MutexGuard<'_, T> {
    #[inline]
    fn deref_mut(&mut self) -> &mut T {
        match &mut self.inner {
            MutexGuardInner::Std(g) => g,
            MutexGuardInner::Shuttle(g) => g,
        }
    }
}

/// A reader-writer lock whose guards ignore poisoning, of one [`LockClass`]. Shared and
/// exclusive acquisitions are checked alike.
pub struct RwLock<T> {
    class: LockClass,
    key: u64,
    inner: RwLockInner<T>,
}

// The shuttle variant is larger; boxing it would put an indirection on every lock of the fast
// (std) path.
#[allow(clippy::large_enum_variant)]
enum RwLockInner<T> {
    Std(std::sync::RwLock<T>),
    Shuttle(shuttle::sync::RwLock<T>),
}

/// Shared guard of a [`RwLock`].
pub struct RwLockReadGuard<'a, T> {
    inner: RwLockReadGuardInner<'a, T>,
    _held: Token,
}

enum RwLockReadGuardInner<'a, T> {
    Std(std::sync::RwLockReadGuard<'a, T>),
    Shuttle(shuttle::sync::RwLockReadGuard<'a, T>),
}

/// Exclusive guard of a [`RwLock`].
pub struct RwLockWriteGuard<'a, T> {
    inner: RwLockWriteGuardInner<'a, T>,
    _held: Token,
}

enum RwLockWriteGuardInner<'a, T> {
    Std(std::sync::RwLockWriteGuard<'a, T>),
    Shuttle(shuttle::sync::RwLockWriteGuard<'a, T>),
}

impl<T> RwLock<T> {
    /// A new unlocked lock of class `class`.
    pub fn new(class: LockClass, value: T) -> Self {
        RwLock::keyed(class, 0, value)
    }

    /// A new unlocked lock of a nesting class, with its nesting key (see [`lockdep::NESTED`]).
    pub fn keyed(class: LockClass, key: u64, value: T) -> Self {
        let inner = if shuttle_mode() {
            RwLockInner::Shuttle(shuttle::sync::RwLock::new(value))
        } else {
            RwLockInner::Std(std::sync::RwLock::new(value))
        };
        RwLock { class, key, inner }
    }

    #[inline(always)]
    #[track_caller]
    fn note(&self) -> Token {
        let ctx = match self.inner {
            RwLockInner::Std(_) => Ctx::Std,
            RwLockInner::Shuttle(_) => Ctx::Shuttle,
        };
        if !lockdep::checking(ctx) {
            return Token::NONE;
        }
        let a = Acquire {
            class: self.class,
            ident: self as *const Self as usize,
            folio: 0,
            key: self.key,
            blocking: true,
        };
        lockdep::acquire(ctx, a, Location::caller())
    }

    /// Shared access.
    #[inline(always)]
    #[track_caller]
    pub fn read(&self) -> RwLockReadGuard<'_, T> {
        let held = self.note();
        let inner = match &self.inner {
            RwLockInner::Std(l) => {
                RwLockReadGuardInner::Std(l.read().unwrap_or_else(|e| e.into_inner()))
            }
            RwLockInner::Shuttle(l) => {
                RwLockReadGuardInner::Shuttle(l.read().unwrap_or_else(|e| e.into_inner()))
            }
        };
        RwLockReadGuard { inner, _held: held }
    }

    /// Exclusive access.
    #[inline(always)]
    #[track_caller]
    pub fn write(&self) -> RwLockWriteGuard<'_, T> {
        let held = self.note();
        let inner = match &self.inner {
            RwLockInner::Std(l) => {
                RwLockWriteGuardInner::Std(l.write().unwrap_or_else(|e| e.into_inner()))
            }
            RwLockInner::Shuttle(l) => {
                RwLockWriteGuardInner::Shuttle(l.write().unwrap_or_else(|e| e.into_inner()))
            }
        };
        RwLockWriteGuard { inner, _held: held }
    }
}

impl<T> Deref for RwLockReadGuard<'_, T> {
    type Target = T;
    #[inline]
    fn deref(&self) -> &T {
        match &self.inner {
            RwLockReadGuardInner::Std(g) => g,
            RwLockReadGuardInner::Shuttle(g) => g,
        }
    }
}

impl<T> Deref for RwLockWriteGuard<'_, T> {
    type Target = T;
    #[inline]
    fn deref(&self) -> &T {
        match &self.inner {
            RwLockWriteGuardInner::Std(g) => g,
            RwLockWriteGuardInner::Shuttle(g) => g,
        }
    }
}

impl<T> DerefMut for RwLockWriteGuard<'_, T> {
    #[inline]
    fn deref_mut(&mut self) -> &mut T {
        match &mut self.inner {
            RwLockWriteGuardInner::Std(g) => g,
            RwLockWriteGuardInner::Shuttle(g) => g,
        }
    }
}

/// A condition variable paired with [`Mutex`].
///
/// The std backend counts its sleepers so that `notify_all` with nobody waiting (the common case:
/// every folio unlock and every IO completion notifies) costs an atomic load instead of a futex
/// syscall; unconditional notifies were a fifth of the implementation's sequential profile. This is
/// race-free because every caller changes the waited-for condition under the paired mutex before
/// notifying: a sleeper registers (under that mutex) before it releases it in `wait`, so a notifier
/// that changed the condition under the mutex afterwards sees the registration. Shuttle's condvar
/// is used as is, so schedules (and every recorded reproducer) are unchanged.
pub enum Condvar {
    /// std backend, with the number of threads inside `wait`.
    Std(std::sync::Condvar, AtomicU64),
    /// shuttle backend.
    Shuttle(shuttle::sync::Condvar),
}

impl Condvar {
    /// A new condition variable.
    pub fn new() -> Self {
        if shuttle_mode() {
            Condvar::Shuttle(shuttle::sync::Condvar::new())
        } else {
            Condvar::Std(std::sync::Condvar::new(), AtomicU64::new(0))
        }
    }

    /// Releases the guard's lock, sleeps until notified, retakes the lock.
    ///
    /// # Panics
    /// If the guard's backend differs from the condvar's: a construction bug, not an input one.
    ///
    /// The lock stays in the checker's held list throughout: the thread takes nothing while it
    /// sleeps, and retakes the lock holding what it held when it first took it.
    #[inline]
    pub fn wait<'a, T>(&self, guard: MutexGuard<'a, T>) -> MutexGuard<'a, T> {
        let MutexGuard { inner, _held } = guard;
        let inner = match (self, inner) {
            (Condvar::Std(c, sleepers), MutexGuardInner::Std(g)) => {
                sleepers.fetch_add(1, Ordering::SeqCst);
                let g = c.wait(g).unwrap_or_else(|e| e.into_inner());
                sleepers.fetch_sub(1, Ordering::SeqCst);
                MutexGuardInner::Std(g)
            }
            (Condvar::Shuttle(c), MutexGuardInner::Shuttle(g)) => {
                MutexGuardInner::Shuttle(c.wait(g).unwrap_or_else(|e| e.into_inner()))
            }
            _ => panic!("condvar and mutex from different sync backends"),
        };
        MutexGuard { inner, _held }
    }

    /// Wakes every waiter. The condition must have been changed under the paired mutex.
    #[inline]
    pub fn notify_all(&self) {
        match self {
            Condvar::Std(c, sleepers) => {
                if sleepers.load(Ordering::SeqCst) != 0 {
                    c.notify_all()
                }
            }
            Condvar::Shuttle(c) => c.notify_all(),
        }
    }
}

impl Default for Condvar {
    fn default() -> Self {
        Condvar::new()
    }
}
