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
//! ones where the write, writeback and fault paths drop and retake state.

use std::cell::Cell;
use std::ops::{Deref, DerefMut};

pub use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
pub use std::sync::Arc;

thread_local! {
    static SHUTTLE: Cell<bool> = const { Cell::new(false) };
}

fn shuttle_mode() -> bool {
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
            JoinHandle::Shuttle(shuttle::thread::spawn(f))
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

/// A mutual-exclusion lock whose `lock` ignores poisoning.
pub enum Mutex<T> {
    /// std backend.
    Std(std::sync::Mutex<T>),
    /// shuttle backend.
    Shuttle(shuttle::sync::Mutex<T>),
}

/// Guard of a [`Mutex`].
pub enum MutexGuard<'a, T> {
    /// std backend.
    Std(std::sync::MutexGuard<'a, T>),
    /// shuttle backend.
    Shuttle(shuttle::sync::MutexGuard<'a, T>),
}

impl<T> Mutex<T> {
    /// A new unlocked mutex.
    pub fn new(value: T) -> Self {
        if shuttle_mode() {
            Mutex::Shuttle(shuttle::sync::Mutex::new(value))
        } else {
            Mutex::Std(std::sync::Mutex::new(value))
        }
    }

    /// A leaf lock that is never a scheduling point (the std backend in both modes), for
    /// bookkeeping that no interleaving can depend on: its holder must not take any other lock
    /// or reach a scheduling point before it lets go, so under shuttle it is never contended.
    /// Adding such a lock leaves every recorded schedule meaning what it meant.
    pub fn new_leaf(value: T) -> Self {
        Mutex::Std(std::sync::Mutex::new(value))
    }

    /// Blocks until the lock is held.
    #[inline]
    pub fn lock(&self) -> MutexGuard<'_, T> {
        match self {
            Mutex::Std(m) => MutexGuard::Std(m.lock().unwrap_or_else(|e| e.into_inner())),
            Mutex::Shuttle(m) => MutexGuard::Shuttle(m.lock().unwrap_or_else(|e| e.into_inner())),
        }
    }

    /// Takes the lock if it is free.
    #[inline]
    pub fn try_lock(&self) -> Option<MutexGuard<'_, T>> {
        match self {
            Mutex::Std(m) => match m.try_lock() {
                Ok(g) => Some(MutexGuard::Std(g)),
                Err(std::sync::TryLockError::Poisoned(e)) => Some(MutexGuard::Std(e.into_inner())),
                Err(std::sync::TryLockError::WouldBlock) => None,
            },
            Mutex::Shuttle(m) => match m.try_lock() {
                Ok(g) => Some(MutexGuard::Shuttle(g)),
                Err(std::sync::TryLockError::Poisoned(e)) => {
                    Some(MutexGuard::Shuttle(e.into_inner()))
                }
                Err(std::sync::TryLockError::WouldBlock) => None,
            },
        }
    }
}

impl<T> Deref for MutexGuard<'_, T> {
    type Target = T;
    #[inline]
    fn deref(&self) -> &T {
        match self {
            MutexGuard::Std(g) => g,
            MutexGuard::Shuttle(g) => g,
        }
    }
}

impl<T> DerefMut for MutexGuard<'_, T> {
    #[inline]
    fn deref_mut(&mut self) -> &mut T {
        match self {
            MutexGuard::Std(g) => g,
            MutexGuard::Shuttle(g) => g,
        }
    }
}

/// A reader-writer lock whose guards ignore poisoning.
// The shuttle variant is larger; boxing it would put an indirection on every lock of the fast
// (std) path.
#[allow(clippy::large_enum_variant)]
pub enum RwLock<T> {
    /// std backend.
    Std(std::sync::RwLock<T>),
    /// shuttle backend.
    Shuttle(shuttle::sync::RwLock<T>),
}

/// Shared guard of a [`RwLock`].
pub enum RwLockReadGuard<'a, T> {
    /// std backend.
    Std(std::sync::RwLockReadGuard<'a, T>),
    /// shuttle backend.
    Shuttle(shuttle::sync::RwLockReadGuard<'a, T>),
}

/// Exclusive guard of a [`RwLock`].
pub enum RwLockWriteGuard<'a, T> {
    /// std backend.
    Std(std::sync::RwLockWriteGuard<'a, T>),
    /// shuttle backend.
    Shuttle(shuttle::sync::RwLockWriteGuard<'a, T>),
}

impl<T> RwLock<T> {
    /// A new unlocked lock.
    pub fn new(value: T) -> Self {
        if shuttle_mode() {
            RwLock::Shuttle(shuttle::sync::RwLock::new(value))
        } else {
            RwLock::Std(std::sync::RwLock::new(value))
        }
    }

    /// Shared access.
    #[inline]
    pub fn read(&self) -> RwLockReadGuard<'_, T> {
        match self {
            RwLock::Std(l) => RwLockReadGuard::Std(l.read().unwrap_or_else(|e| e.into_inner())),
            RwLock::Shuttle(l) => {
                RwLockReadGuard::Shuttle(l.read().unwrap_or_else(|e| e.into_inner()))
            }
        }
    }

    /// Exclusive access.
    #[inline]
    pub fn write(&self) -> RwLockWriteGuard<'_, T> {
        match self {
            RwLock::Std(l) => RwLockWriteGuard::Std(l.write().unwrap_or_else(|e| e.into_inner())),
            RwLock::Shuttle(l) => {
                RwLockWriteGuard::Shuttle(l.write().unwrap_or_else(|e| e.into_inner()))
            }
        }
    }
}

impl<T> Deref for RwLockReadGuard<'_, T> {
    type Target = T;
    #[inline]
    fn deref(&self) -> &T {
        match self {
            RwLockReadGuard::Std(g) => g,
            RwLockReadGuard::Shuttle(g) => g,
        }
    }
}

impl<T> Deref for RwLockWriteGuard<'_, T> {
    type Target = T;
    #[inline]
    fn deref(&self) -> &T {
        match self {
            RwLockWriteGuard::Std(g) => g,
            RwLockWriteGuard::Shuttle(g) => g,
        }
    }
}

impl<T> DerefMut for RwLockWriteGuard<'_, T> {
    #[inline]
    fn deref_mut(&mut self) -> &mut T {
        match self {
            RwLockWriteGuard::Std(g) => g,
            RwLockWriteGuard::Shuttle(g) => g,
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
    #[inline]
    pub fn wait<'a, T>(&self, guard: MutexGuard<'a, T>) -> MutexGuard<'a, T> {
        match (self, guard) {
            (Condvar::Std(c, sleepers), MutexGuard::Std(g)) => {
                sleepers.fetch_add(1, Ordering::SeqCst);
                let g = c.wait(g).unwrap_or_else(|e| e.into_inner());
                sleepers.fetch_sub(1, Ordering::SeqCst);
                MutexGuard::Std(g)
            }
            (Condvar::Shuttle(c), MutexGuard::Shuttle(g)) => {
                MutexGuard::Shuttle(c.wait(g).unwrap_or_else(|e| e.into_inner()))
            }
            _ => panic!("condvar and mutex from different sync backends"),
        }
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
