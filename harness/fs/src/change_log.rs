//! What changed since the oracle last asked: a log of ranges, kept by the storage itself.
//!
//! Owns: a list of half-open ranges `[lo, hi)` in the unit of whoever keeps it (folio indices
//! for a page cache, file blocks for an extent map, physical blocks for the disk).
//! Invariant: every mutable access to the state a log covers notes its range before the access
//! returns, so a range never noted holds exactly what it held at the last [`ChangeLog::take`]:
//! the oracle compares only the noted ranges after an op and is as exact as comparing
//! everything (its stray-store tests say so for each kind of state). Ranges are merged with
//! the last one noted when they touch, and the list collapses into one covering range past
//! [`MAX_RANGES`]: an over-approximation, never a loss.
//! Locks: a std mutex, a leaf held for a push: noting is bookkeeping and no scheduling point,
//! so keeping the log changes no schedule of a concurrent run.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;

/// Ranges a log keeps apart before collapsing into one covering range.
pub const MAX_RANGES: usize = 32;

/// A log of changed ranges.
#[derive(Debug, Default)]
pub struct ChangeLog {
    ranges: Mutex<Vec<(u64, u64)>>,
    /// Whether `ranges` may be non-empty: most takes find nothing, and skip the lock.
    any: AtomicBool,
    /// Bumped by every take: a keeper of many items notes each once per epoch
    /// ([`ChangeLog::note_once`]).
    epoch: AtomicU64,
}

/// Adds `[lo, hi)` to `ranges`, merged with the last range where they touch.
fn note_into(ranges: &mut Vec<(u64, u64)>, lo: u64, hi: u64) {
    if lo >= hi {
        return;
    }
    if let Some(last) = ranges.last_mut() {
        if lo <= last.1 && hi >= last.0 {
            *last = (last.0.min(lo), last.1.max(hi));
            return;
        }
    }
    if ranges.len() >= MAX_RANGES {
        let lo = ranges.iter().map(|r| r.0).min().unwrap_or(lo).min(lo);
        let hi = ranges.iter().map(|r| r.1).max().unwrap_or(hi).max(hi);
        ranges.clear();
        ranges.push((lo, hi));
        return;
    }
    ranges.push((lo, hi));
}

impl ChangeLog {
    /// `[lo, hi)` changed (or may have).
    pub fn note(&self, lo: u64, hi: u64) {
        let mut r = self.ranges.lock().unwrap_or_else(|p| p.into_inner());
        note_into(&mut r, lo, hi);
        self.any.store(true, Ordering::Release);
    }

    /// [`ChangeLog::note`], unless `seen` says this item was noted since the last take (it
    /// then records the current epoch). The oracle takes when the filesystem is quiescent, so
    /// no note races with the take that forgets it.
    pub fn note_once(&self, seen: &AtomicU64, lo: u64, hi: u64) {
        let e = self.epoch.load(Ordering::Acquire);
        if seen.load(Ordering::Acquire) != e {
            seen.store(e, Ordering::Release);
            self.note(lo, hi);
        }
    }

    /// Calls `f` with every range noted since the last take, and forgets them.
    pub fn take(&self, mut f: impl FnMut(u64, u64)) {
        if !self.any.load(Ordering::Acquire) {
            return;
        }
        let mut r = self.ranges.lock().unwrap_or_else(|p| p.into_inner());
        self.any.store(false, Ordering::Release);
        self.epoch.fetch_add(1, Ordering::AcqRel);
        for (lo, hi) in r.drain(..) {
            f(lo, hi);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn taken(log: &ChangeLog) -> Vec<(u64, u64)> {
        let mut v = Vec::new();
        log.take(|lo, hi| v.push((lo, hi)));
        v
    }

    #[test]
    fn touching_ranges_merge_and_apart_ones_stay_apart() {
        let log = ChangeLog::default();
        log.note(4, 8);
        log.note(8, 9);
        log.note(2, 5);
        log.note(20, 21);
        log.note(7, 7);
        assert_eq!(taken(&log), vec![(2, 9), (20, 21)]);
        assert_eq!(taken(&log), vec![], "a take forgets");
    }

    #[test]
    fn an_item_is_noted_once_per_epoch() {
        let log = ChangeLog::default();
        let seen = AtomicU64::new(u64::MAX);
        log.note_once(&seen, 4, 5);
        log.note_once(&seen, 4, 5);
        log.note(9, 10);
        assert_eq!(taken(&log), vec![(4, 5), (9, 10)]);
        log.note_once(&seen, 4, 5);
        assert_eq!(taken(&log), vec![(4, 5)], "noted again after a take");
    }

    #[test]
    fn too_many_ranges_collapse_into_one_covering_them_all() {
        let log = ChangeLog::default();
        for k in 0..MAX_RANGES as u64 {
            log.note(10 * k + 3, 10 * k + 4);
        }
        assert_eq!(taken(&log).len(), MAX_RANGES);
        for k in 0..=MAX_RANGES as u64 {
            log.note(10 * k + 3, 10 * k + 4);
        }
        assert_eq!(taken(&log), vec![(3, 10 * MAX_RANGES as u64 + 4)]);
    }
}
