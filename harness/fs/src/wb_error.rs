//! An inode's writeback error slot (Linux: `mapping->wb_err`, read by fsync through an
//! `errseq_t`): the first writeback error not yet reported.
//!
//! Owns: the slot and a published copy of it. Invariant: whenever the slot's lock is free, the
//! published copy equals the slot: every change goes through [`WbErrGuard`], whose drop
//! publishes the value before it releases the lock. Locks: the slot is the `writeback error`
//! lock (a scheduling point, taken where the kernel orders its error records); the copy is read
//! with no lock by observation only ([`WbErr::peek`]: the oracle after an op, when no op is
//! running), so the comparison after every op takes no lock per file.

use crate::sync::{LockClass, Mutex, MutexGuard};
use std::ops::{Deref, DerefMut};
use std::sync::atomic::{AtomicU8, Ordering};
use vocab::Errno;

/// The slot: `None` until a writeback error is recorded, back to `None` when fsync reports it.
pub struct WbErr {
    slot: Mutex<Option<Errno>>,
    /// [`encode`] of the slot, as of the last guard's drop.
    published: AtomicU8,
}

fn encode(e: Option<Errno>) -> u8 {
    e.and_then(|e| Errno::ALL.iter().position(|&x| x == e))
        .map_or(0, |k| k as u8 + 1)
}

fn decode(v: u8) -> Option<Errno> {
    v.checked_sub(1)
        .and_then(|k| Errno::ALL.get(k as usize).copied())
}

impl WbErr {
    /// An empty slot of inode `idx` (the lock's nesting key: a crash holds every inode's).
    pub fn new(idx: u64) -> WbErr {
        WbErr {
            slot: Mutex::keyed(LockClass::WbErr, idx, None),
            published: AtomicU8::new(0),
        }
    }

    /// Takes the slot's lock.
    #[track_caller]
    pub fn lock(&self) -> WbErrGuard<'_> {
        WbErrGuard {
            guard: self.slot.lock(),
            published: &self.published,
        }
    }

    /// The slot's value without its lock, for observation between ops.
    pub fn peek(&self) -> Option<Errno> {
        decode(self.published.load(Ordering::Acquire))
    }
}

/// The held slot; publishes its value when dropped.
pub struct WbErrGuard<'a> {
    guard: MutexGuard<'a, Option<Errno>>,
    published: &'a AtomicU8,
}

impl Deref for WbErrGuard<'_> {
    type Target = Option<Errno>;
    fn deref(&self) -> &Option<Errno> {
        &self.guard
    }
}

impl DerefMut for WbErrGuard<'_> {
    fn deref_mut(&mut self) -> &mut Option<Errno> {
        &mut self.guard
    }
}

impl Drop for WbErrGuard<'_> {
    fn drop(&mut self) {
        // Still under the lock: a later holder's value is published after this one.
        self.published.store(encode(*self.guard), Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_errno_round_trips_and_a_change_is_published_when_the_guard_drops() {
        for e in Errno::ALL.into_iter().map(Some).chain([None]) {
            assert_eq!(decode(encode(e)), e);
        }
        let slot = WbErr::new(0);
        {
            let mut g = slot.lock();
            *g = Some(Errno::Eio);
        }
        assert_eq!(slot.peek(), Some(Errno::Eio));
        *slot.lock() = None;
        assert_eq!(slot.peek(), None);
    }
}
