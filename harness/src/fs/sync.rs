//! The synchronization facade: the only module of the implementation that names `std::sync` or
//! `shuttle`.
//!
//! Without the `shuttle` feature every primitive is the std one (real threads); with it, the
//! shuttle equivalents, so that a deterministic scheduler picks every interleaving. The rest of
//! `fs` is written once against this module.
//!
//! Owns: nothing. Invariants: lock poisoning is never surfaced (a panicking thread already fails
//! the run; the data behind the lock is still what it was), so the wrappers return guards, not
//! `LockResult`s. Locks: every lock operation is a scheduling point under shuttle; [`yield_point`]
//! adds explicit ones where the write, writeback and fault paths drop and retake state.

#[cfg(feature = "shuttle")]
use shuttle::sync as imp;
#[cfg(not(feature = "shuttle"))]
use std::sync as imp;

#[cfg(feature = "shuttle")]
pub use shuttle::sync::atomic::{AtomicBool, AtomicU64, Ordering};
#[cfg(not(feature = "shuttle"))]
pub use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

pub use imp::{Arc, MutexGuard, RwLockReadGuard, RwLockWriteGuard};

/// Threads: spawn and yield through the same facade.
pub mod thread {
    #[cfg(feature = "shuttle")]
    pub use shuttle::thread::{spawn, yield_now, JoinHandle};
    #[cfg(not(feature = "shuttle"))]
    pub use std::thread::{spawn, yield_now, JoinHandle};
}

/// An explicit scheduling point between two steps that must not be assumed atomic (between
/// mapping and folio work, between folios). A no-op on real threads, where the OS scheduler
/// preempts anywhere anyway.
#[inline]
pub fn yield_point() {
    #[cfg(feature = "shuttle")]
    shuttle::thread::yield_now();
}

/// A mutual-exclusion lock whose `lock` ignores poisoning.
pub struct Mutex<T>(imp::Mutex<T>);

impl<T> Mutex<T> {
    /// A new unlocked mutex.
    pub fn new(value: T) -> Self {
        Mutex(imp::Mutex::new(value))
    }

    /// Blocks until the lock is held.
    #[inline]
    pub fn lock(&self) -> MutexGuard<'_, T> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A reader-writer lock whose guards ignore poisoning.
pub struct RwLock<T>(imp::RwLock<T>);

impl<T> RwLock<T> {
    /// A new unlocked lock.
    pub fn new(value: T) -> Self {
        RwLock(imp::RwLock::new(value))
    }

    /// Shared access.
    #[inline]
    pub fn read(&self) -> RwLockReadGuard<'_, T> {
        self.0.read().unwrap_or_else(|e| e.into_inner())
    }

    /// Exclusive access.
    #[inline]
    pub fn write(&self) -> RwLockWriteGuard<'_, T> {
        self.0.write().unwrap_or_else(|e| e.into_inner())
    }
}

/// A condition variable paired with [`Mutex`].
pub struct Condvar(imp::Condvar);

impl Condvar {
    /// A new condition variable.
    pub fn new() -> Self {
        Condvar(imp::Condvar::new())
    }

    /// Releases the guard's lock, sleeps until notified, retakes the lock.
    #[inline]
    pub fn wait<'a, T>(&self, guard: MutexGuard<'a, T>) -> MutexGuard<'a, T> {
        self.0.wait(guard).unwrap_or_else(|e| e.into_inner())
    }

    /// Wakes every waiter.
    #[inline]
    pub fn notify_all(&self) {
        self.0.notify_all()
    }
}

impl Default for Condvar {
    fn default() -> Self {
        Condvar::new()
    }
}
