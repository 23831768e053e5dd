//! Where a differential run's time goes: an optional per-part stopwatch that the oracles carry
//! through a run, for `wbfuzz bench`'s breakdown.
//!
//! Owns the accumulated time per [`Part`]. Invariant: a switched-off probe (the one every
//! ordinary run uses) reads no clock, so it changes neither results nor, measurably, speed; a
//! switched-on one only adds clock reads around each part. No locks: a probe belongs to one run.

use std::time::{Duration, Instant};

/// A part of a differential run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Part {
    /// The implementation executing ops (concurrent runs: under shuttle, scheduler included).
    Implementation,
    /// The reference executing ops (concurrent runs: replaying the commit log).
    Reference,
    /// Comparing what the two models show (outcomes, counters, sizes, states, contents).
    Comparison,
    /// Both models' invariant checks.
    Invariants,
}

impl Part {
    /// Every part, in report order.
    pub const ALL: [Part; 4] = [
        Part::Implementation,
        Part::Reference,
        Part::Comparison,
        Part::Invariants,
    ];

    /// Name in reports.
    pub fn name(self) -> &'static str {
        match self {
            Part::Implementation => "implementation",
            Part::Reference => "reference",
            Part::Comparison => "comparison",
            Part::Invariants => "invariants",
        }
    }
}

/// Time accumulated per part, or nothing when switched off.
#[derive(Clone, Debug, Default)]
pub struct Probe {
    on: bool,
    spent: [Duration; 4],
}

impl Probe {
    /// A probe that measures nothing (ordinary runs).
    pub fn off() -> Probe {
        Probe::default()
    }

    /// A probe that measures every part.
    pub fn on() -> Probe {
        Probe {
            on: true,
            ..Probe::default()
        }
    }

    /// Runs `f`, charging its time to `part` when measuring.
    #[inline]
    pub fn time<R>(&mut self, part: Part, f: impl FnOnce() -> R) -> R {
        if !self.on {
            return f();
        }
        let start = Instant::now();
        let r = f();
        self.spent[part as usize] += start.elapsed();
        r
    }

    /// Time charged to `part` so far.
    pub fn spent(&self, part: Part) -> Duration {
        self.spent[part as usize]
    }
}
