//! A materialized copy of everything a model lets the oracle observe.
//!
//! Concurrent runs execute the implementation inside a shuttle execution, whose locks cannot be
//! taken once the execution has ended; the runner captures a [`Snapshot`] at the end of the
//! execution and the oracle compares the reference against it through the same [`Observe`]
//! trait it uses for live models.

use reference::{BlockObs, Counters, Errno, FileId, Geometry, Observe, Violation};

/// One file's observable state.
#[derive(Clone, Debug, PartialEq, Eq)]
struct FileSnap {
    size: u64,
    contents: Vec<u8>,
    blocks: Vec<BlockObs>,
    wb_error: Option<Errno>,
}

/// Everything observable about a model at one moment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Snapshot {
    geometry: Geometry,
    files: Vec<FileSnap>,
    counters: Counters,
    corrupt: bool,
    violations: Vec<Violation>,
}

impl Snapshot {
    /// Copies everything `m` shows.
    pub fn capture(m: &dyn Observe) -> Snapshot {
        let files = (0..m.file_count() as FileId)
            .map(|f| {
                let size = m.size(f);
                FileSnap {
                    size,
                    contents: m.peek(f, 0, size),
                    blocks: m.blocks(f, 0, m.block_span(f)),
                    wb_error: m.wb_error(f),
                }
            })
            .collect();
        Snapshot {
            geometry: m.geometry(),
            files,
            counters: m.counters(),
            corrupt: m.btree_corrupt(),
            violations: m.check_invariants(),
        }
    }

    fn file(&self, f: FileId) -> Option<&FileSnap> {
        self.files.get(f as usize)
    }
}

impl Observe for Snapshot {
    fn geometry(&self) -> Geometry {
        self.geometry
    }

    fn file_count(&self) -> usize {
        self.files.len()
    }

    fn size(&self, file: FileId) -> u64 {
        self.file(file).map_or(0, |f| f.size)
    }

    fn peek(&self, file: FileId, off: u64, len: u64) -> Vec<u8> {
        let Some(f) = self.file(file) else {
            return Vec::new();
        };
        let start = off.min(f.size) as usize;
        let end = off.saturating_add(len).min(f.size) as usize;
        f.contents[start..end].to_vec()
    }

    fn visit(&self, file: FileId, off: u64, len: u64, out: &mut dyn FnMut(&[u8])) {
        let Some(f) = self.file(file) else { return };
        let start = off.min(f.size) as usize;
        let end = off.saturating_add(len).min(f.size) as usize;
        out(&f.contents[start..end]);
    }

    fn block_span(&self, file: FileId) -> u64 {
        self.file(file).map_or(0, |f| f.blocks.len() as u64)
    }

    /// Digests of the copied bytes, computed here: asking the model for its own at capture
    /// time would take a lock per folio inside the shuttle execution, each a scheduling point,
    /// for a comparison made once per run.
    fn digests(&self, file: FileId, first: u64, end: u64, out: &mut Vec<Option<u32>>) {
        let Some(f) = self.file(file) else {
            out.extend((first..end).map(|_| None));
            return;
        };
        let bs = self.geometry.bs();
        for b in first..end {
            let (lo, hi) = (b.saturating_mul(bs), b.saturating_add(1).saturating_mul(bs));
            out.push(
                (hi <= f.size)
                    .then(|| reference::block_digest(&f.contents[lo as usize..hi as usize])),
            );
        }
    }

    fn blocks(&self, file: FileId, first: u64, count: u64) -> Vec<BlockObs> {
        let Some(f) = self.file(file) else {
            return Vec::new();
        };
        // Past the captured span every block is untouched; cap like the models do so a huge
        // count cannot allocate without bound.
        let count = count.min((f.blocks.len() as u64).saturating_sub(first) + (1 << 20));
        (first..first.saturating_add(count))
            .map(|b| {
                f.blocks
                    .get(b as usize)
                    .copied()
                    .unwrap_or(BlockObs::UNTOUCHED)
            })
            .collect()
    }

    fn counters(&self) -> Counters {
        self.counters
    }

    fn wb_error(&self, file: FileId) -> Option<Errno> {
        self.file(file).and_then(|f| f.wb_error)
    }

    fn btree_corrupt(&self) -> bool {
        self.corrupt
    }

    fn check_invariants(&self) -> Vec<Violation> {
        self.violations.clone()
    }
}
