//! The bug catalogue: runtime switches that re-create, in the implementation under test, the
//! mechanism of each catalogued kernel bug (`docs/design.md`, "The bugs the catalogue re-creates").
//! All are off by default.

use std::fmt;

/// One catalogued bug.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Bug {
    /// Seed 000: the buffered write does not revalidate its cached mapping after locking a folio.
    StaleMapping,
    /// Seed 001: a fault maps the range and inserts the folio without the invalidate lock held
    /// across both, installing hole zeros over blocks a racing DirectWrite just wrote.
    FaultHoleRace,
    /// Seed 002: write and page_mkwrite change a folio under writeback without waiting.
    UnstablePages,
    /// Seed 003: on writeback allocation failure the reservation is punched but the folio stays
    /// dirty.
    DiscardKeepsDirty,
    /// Seed 003: the discard punch covers the whole delalloc extent, not just the failing folio.
    DiscardWidePunch,
    /// Seed 004: a journaled-data write adds the folio's blocks to the transaction after
    /// unlocking the folio.
    PutFolioAfterUnlock,
    /// A direct write drops the invalidate lock between its flush and its cache drop (as before
    /// XFS's MMAPLOCK, "xfs: introduce mmap/truncate lock"): a write fault dirties a folio in
    /// between, and the drop discards the fault's data.
    DirtyAfterDioFlush,
    // The hard races: each needs another op to land inside a window of a few scheduling points.
    /// A window between two steps of an op: punch hole drops the cache of the range, then drops
    /// the invalidate lock before it punches the extents (truncate_pagecache_range before
    /// xfs_free_file_space with only IOLOCK held, as before XFS's MMAPLOCK): a fault or read in
    /// between instantiates the folio from the blocks about to be freed, and stale data stays
    /// cached over the hole.
    PunchFaultWindow,
    /// A check done before the lock that makes it valid: reclaim tests that the folio is not
    /// under writeback before taking the folio lock (the dirty test is under it); a flush holding
    /// the folio lock starts writeback in between, and reclaim drops a folio under IO.
    ReclaimUnlockedCheck,
    /// A sequence bump missing on one path: IO completion converts unwritten extents to written
    /// without changing the extent map's validity cookie, so a buffered write whose cached
    /// mapping says unwritten fills a new folio with zeros over blocks written meanwhile.
    CompletionNoBump,
    /// A wait missing on one path: when a buffered write finds its mapping stale at a folio and
    /// maps again, the retry relocks that folio without waiting for writeback (it waited the
    /// first time); a flush in between started writeback, and the copy changes the folio under
    /// the IO.
    RetrySkipsWait,
    /// Crash: writeback logs the unwritten-to-written conversion of an IO's blocks when it
    /// submits the IO instead of at its completion (the in-memory extent still converts at
    /// completion, so nothing shows without a power cut): a crash before the IO lands leaves
    /// written extents over blocks that never received their data, exposing stale disk bytes.
    /// XFS does the conversion in `xfs_end_ioend` for exactly this reason.
    ConvertAtSubmit,
    /// Crash: writeback logs the file size up to the end of an IO when it submits it, not when
    /// the IO completes: a crash before the data lands leaves a file whose size covers bytes
    /// that never reached the disk (they read as zeros). The XFS "NULL files" problem, fixed by
    /// updating di_size only at IO completion ("xfs: don't update i_size until data hits disk").
    SizeBeforeData,
}

impl Bug {
    /// Every bug, in catalogue order.
    pub const ALL: [Bug; 13] = [
        Bug::StaleMapping,
        Bug::FaultHoleRace,
        Bug::UnstablePages,
        Bug::DiscardKeepsDirty,
        Bug::DiscardWidePunch,
        Bug::PutFolioAfterUnlock,
        Bug::DirtyAfterDioFlush,
        Bug::PunchFaultWindow,
        Bug::ReclaimUnlockedCheck,
        Bug::CompletionNoBump,
        Bug::RetrySkipsWait,
        Bug::ConvertAtSubmit,
        Bug::SizeBeforeData,
    ];

    /// The switch name used by `--bug` and `WBFUZZ_BUGS`.
    pub fn name(self) -> &'static str {
        match self {
            Bug::StaleMapping => "stale-mapping",
            Bug::FaultHoleRace => "fault-hole-race",
            Bug::UnstablePages => "unstable-pages",
            Bug::DiscardKeepsDirty => "discard-keeps-dirty",
            Bug::DiscardWidePunch => "discard-wide-punch",
            Bug::PutFolioAfterUnlock => "put-folio-after-unlock",
            Bug::DirtyAfterDioFlush => "dirty-after-dio-flush",
            Bug::PunchFaultWindow => "punch-fault-window",
            Bug::ReclaimUnlockedCheck => "reclaim-unlocked-check",
            Bug::CompletionNoBump => "completion-no-bump",
            Bug::RetrySkipsWait => "retry-skips-wait",
            Bug::ConvertAtSubmit => "convert-at-submit",
            Bug::SizeBeforeData => "size-before-data",
        }
    }

    /// Whether finding it needs a concurrent run.
    pub fn needs_concurrency(self) -> bool {
        matches!(
            self,
            Bug::StaleMapping
                | Bug::FaultHoleRace
                | Bug::PutFolioAfterUnlock
                | Bug::DirtyAfterDioFlush
                | Bug::PunchFaultWindow
                | Bug::ReclaimUnlockedCheck
                | Bug::CompletionNoBump
                | Bug::RetrySkipsWait
        )
    }

    /// Parses a switch name.
    pub fn from_name(s: &str) -> Option<Bug> {
        Bug::ALL.into_iter().find(|b| b.name() == s)
    }

    /// The bug a reproducer in `corpus/bugs/` is for: its file name starts with the switch name
    /// (`discard-keeps-dirty.wbf`, `stale-mapping-2.wbf`).
    pub fn of_reproducer(path: &std::path::Path) -> Option<Bug> {
        let stem = path.file_stem()?.to_string_lossy();
        Bug::ALL
            .into_iter()
            .filter(|b| stem.starts_with(b.name()))
            .max_by_key(|b| b.name().len())
    }

    fn bit(self) -> u32 {
        1 << (self as u32)
    }
}

impl fmt::Display for Bug {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// An unknown bug name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UnknownBug(pub String);

impl fmt::Display for UnknownBug {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<_> = Bug::ALL.iter().map(|b| b.name()).collect();
        write!(
            f,
            "unknown bug switch `{}` (known: {})",
            self.0,
            names.join(", ")
        )
    }
}

impl std::error::Error for UnknownBug {}

/// A set of enabled bug switches.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Bugs(u32);

impl Bugs {
    /// No bug enabled: the correct implementation.
    pub const NONE: Bugs = Bugs(0);

    /// Just this one.
    pub fn only(bug: Bug) -> Bugs {
        Bugs(bug.bit())
    }

    /// Adds a switch.
    pub fn with(self, bug: Bug) -> Bugs {
        Bugs(self.0 | bug.bit())
    }

    /// Whether a switch is on.
    #[inline]
    pub fn has(self, bug: Bug) -> bool {
        self.0 & bug.bit() != 0
    }

    /// Whether no switch is on.
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The switches that are on.
    pub fn iter(self) -> impl Iterator<Item = Bug> {
        Bug::ALL.into_iter().filter(move |b| self.has(*b))
    }

    /// Parses a comma-separated list of names (empty string: none).
    pub fn parse_list(s: &str) -> Result<Bugs, UnknownBug> {
        s.split(',')
            .map(str::trim)
            .filter(|n| !n.is_empty())
            .try_fold(Bugs::NONE, |acc, n| {
                Bug::from_name(n)
                    .map(|b| acc.with(b))
                    .ok_or_else(|| UnknownBug(n.to_string()))
            })
    }

    /// The switches named by the `WBFUZZ_BUGS` environment variable (used by the fuzz targets).
    pub fn from_env() -> Result<Bugs, UnknownBug> {
        match std::env::var("WBFUZZ_BUGS") {
            Ok(v) => Bugs::parse_list(&v),
            Err(_) => Ok(Bugs::NONE),
        }
    }
}

impl fmt::Display for Bugs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<_> = self.iter().map(|b| b.name()).collect();
        if names.is_empty() {
            f.write_str("none")
        } else {
            f.write_str(&names.join(","))
        }
    }
}
