//! The per-file extent map (the XFS data fork): a B-tree of merged extents keyed by first file
//! block, plus the sequence number that iomap uses as its validity cookie.
//!
//! Owns: the logical-to-physical mapping and the extent state of every file block.
//! Invariants: extents never overlap; holes are not stored (a gap is a hole); no stored extent has
//! state `Hole` or length 0; two neighbouring extents are never mergeable (same state and, when
//! allocated, physically contiguous); `seq` changes on every modification, so a cookie taken under
//! the lock and compared later tells whether any mapping may have changed in between (except
//! through [`ExtentMap::convert_keeping_cookie`], which exists only for the `completion-no-bump`
//! bug switch).
//! Locks: the whole map lives behind the inode's ILOCK (`Inode::ilock`); this module takes none.

use crate::change_log::ChangeLog;
use std::collections::BTreeMap;
use vocab::ExtentState;

/// One stored extent (never a hole).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Extent {
    /// Length in blocks (> 0).
    pub len: u64,
    /// First physical block (meaningless, kept 0, for `Delalloc`).
    pub phys: u64,
    /// `Delalloc`, `Unwritten` or `Written`.
    pub state: ExtentState,
}

/// A mapping of a block range to one state: what a lookup returns, holes included.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Mapping {
    /// First file block.
    pub start: u64,
    /// Length in blocks (> 0).
    pub len: u64,
    /// Extent state.
    pub state: ExtentState,
    /// Physical block of `start` when allocated.
    pub phys: u64,
}

impl Mapping {
    /// One past the last block.
    #[inline]
    pub fn end(&self) -> u64 {
        self.start + self.len
    }

    /// Physical block of file block `b` (which must lie inside the mapping).
    #[inline]
    pub fn phys_of(&self, b: u64) -> u64 {
        self.phys + (b - self.start)
    }
}

/// The extent B-tree of one file.
#[derive(Debug, Default)]
pub struct ExtentMap {
    map: BTreeMap<u64, Extent>,
    seq: u64,
    /// Blocks whose mapping changed since the oracle last asked: every change goes through
    /// [`ExtentMap::set`], which notes its range. Shared with the inode ([`ExtentMap::log`]) so
    /// that the oracle takes it without the ILOCK.
    log: std::sync::Arc<ChangeLog>,
}

fn mergeable(a_start: u64, a: &Extent, b_start: u64, b: &Extent) -> bool {
    a_start + a.len == b_start
        && a.state == b.state
        && (a.state == ExtentState::Delalloc || a.phys + a.len == b.phys)
}

impl ExtentMap {
    /// An empty map: every block a hole.
    pub fn new() -> Self {
        ExtentMap::default()
    }

    /// The validity cookie: changes whenever any mapping changes.
    #[inline]
    pub fn seq(&self) -> u64 {
        self.seq
    }

    /// The mapping of block `b`, extended as far as the state stays the same, clipped to `limit`
    /// (exclusive; must be > b).
    pub fn lookup(&self, b: u64, limit: u64) -> Mapping {
        if let Some((&s, e)) = self.map.range(..=b).next_back() {
            if b < s + e.len {
                let phys = if e.state == ExtentState::Delalloc {
                    0
                } else {
                    e.phys + (b - s)
                };
                let end = (s + e.len).min(limit);
                return Mapping {
                    start: b,
                    len: end - b,
                    state: e.state,
                    phys,
                };
            }
        }
        let next = self
            .map
            .range(b..)
            .next()
            .map(|(&s, _)| s)
            .unwrap_or(u64::MAX);
        Mapping {
            start: b,
            len: next.min(limit) - b,
            state: ExtentState::Hole,
            phys: 0,
        }
    }

    /// The state of one block.
    #[inline]
    pub fn state_of(&self, b: u64) -> ExtentState {
        self.lookup(b, b + 1).state
    }

    /// The stored extent containing block `b`, with its start.
    pub fn containing(&self, b: u64) -> Option<(u64, Extent)> {
        let (&s, &e) = self.map.range(..=b).next_back()?;
        (b < s + e.len).then_some((s, e))
    }

    /// Calls `f` on every mapping (holes included) covering `[start, end)`, in order.
    pub fn for_each(&self, start: u64, end: u64, mut f: impl FnMut(Mapping)) {
        let mut b = start;
        while b < end {
            let m = self.lookup(b, end);
            b = m.end();
            f(m);
        }
    }

    /// The mappings covering `[start, end)`, holes included.
    pub fn mappings(&self, start: u64, end: u64) -> Vec<Mapping> {
        let mut v = Vec::new();
        self.mappings_into(start, end, &mut v);
        v
    }

    /// [`ExtentMap::mappings`] appended to `out` (a buffer the caller reuses).
    pub fn mappings_into(&self, start: u64, end: u64, out: &mut Vec<Mapping>) {
        self.for_each(start, end, |m| out.push(m));
    }

    /// Number of blocks of `[start, end)` in `state`.
    pub fn count(&self, start: u64, end: u64, state: ExtentState) -> u64 {
        let mut n = 0;
        self.for_each(start, end, |m| {
            if m.state == state {
                n += m.len;
            }
        });
        n
    }

    /// Whether any block of `[start, end)` is allocated (`Unwritten` or `Written`).
    pub fn any_allocated(&self, start: u64, end: u64) -> bool {
        self.map
            .range(..end)
            .rev()
            .take_while(|(&s, e)| s + e.len > start)
            .any(|(_, e)| e.state.is_allocated())
    }

    /// One past the last mapped block (0 when the file is all hole).
    pub fn end_block(&self) -> u64 {
        self.map
            .iter()
            .next_back()
            .map(|(&s, e)| s + e.len)
            .unwrap_or(0)
    }

    /// Every stored extent, in order.
    pub fn extents(&self) -> impl Iterator<Item = (u64, &Extent)> + '_ {
        self.map.iter().map(|(&s, e)| (s, e))
    }

    /// Splits the extent containing `b` (if any, and if it starts before `b`) at `b`.
    fn split_at(&mut self, b: u64) {
        let Some((&s, &e)) = self.map.range(..b).next_back() else {
            return;
        };
        if s + e.len <= b {
            return;
        }
        let head = b - s;
        let tail = Extent {
            len: e.len - head,
            phys: if e.state == ExtentState::Delalloc {
                0
            } else {
                e.phys + head
            },
            state: e.state,
        };
        if let Some(x) = self.map.get_mut(&s) {
            x.len = head;
        }
        self.map.insert(b, tail);
    }

    /// Merges the extent starting at `s` with its neighbours where possible.
    fn merge_around(&mut self, s: u64) {
        let mut s = s;
        let Some(&cur) = self.map.get(&s) else { return };
        let mut cur = cur;
        if let Some((&ps, &p)) = self.map.range(..s).next_back() {
            if mergeable(ps, &p, s, &cur) {
                self.map.remove(&s);
                cur = Extent {
                    len: p.len + cur.len,
                    ..p
                };
                s = ps;
                self.map.insert(s, cur);
            }
        }
        let next = s + cur.len;
        if let Some(&n) = self.map.get(&next) {
            if mergeable(s, &cur, next, &n) {
                self.map.remove(&next);
                if let Some(x) = self.map.get_mut(&s) {
                    x.len += n.len;
                }
            }
        }
    }

    /// Sets blocks `[start, start+len)` to one state (`Hole` removes them), physically
    /// contiguous from `phys` when allocated. Bumps the cookie.
    pub fn set(&mut self, start: u64, len: u64, state: ExtentState, phys: u64) {
        if len == 0 {
            return;
        }
        self.seq = self.seq.wrapping_add(1);
        let end = start.saturating_add(len);
        self.log.note(start, end);
        self.split_at(start);
        self.split_at(end);
        let keys: Vec<u64> = self.map.range(start..end).map(|(&s, _)| s).collect();
        for k in keys {
            self.map.remove(&k);
        }
        if state == ExtentState::Hole {
            return;
        }
        let phys = if state == ExtentState::Delalloc {
            0
        } else {
            phys
        };
        self.map.insert(
            start,
            Extent {
                len: end - start,
                phys,
                state,
            },
        );
        self.merge_around(start);
    }

    /// Changes every block of `[start, end)` in state `from` to state `to`, keeping its physical
    /// block (for `Unwritten` -> `Written`). Returns how many blocks changed.
    pub fn convert(&mut self, start: u64, end: u64, from: ExtentState, to: ExtentState) -> u64 {
        let mut n = 0;
        for m in self.mappings(start, end) {
            if m.state == from {
                self.set(m.start, m.len, to, m.phys);
                n += m.len;
            }
        }
        n
    }

    /// The log of changed blocks ([`ChangeLog`]).
    pub fn log(&self) -> std::sync::Arc<ChangeLog> {
        self.log.clone()
    }

    /// [`ExtentMap::convert`] without changing the cookie: breaks the map's invariant on purpose,
    /// for the `completion-no-bump` bug switch only.
    pub fn convert_keeping_cookie(
        &mut self,
        start: u64,
        end: u64,
        from: ExtentState,
        to: ExtentState,
    ) -> u64 {
        let seq = self.seq;
        let n = self.convert(start, end, from, to);
        self.seq = seq;
        n
    }
}
