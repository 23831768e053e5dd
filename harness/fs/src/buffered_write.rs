//! The buffered write path in iomap style (`iomap_file_buffered_write`,
//! `xfs_buffered_write_iomap_begin`, `iomap_write_begin/end`).
//!
//! Owns: the `Write` op and the [`Iomap`] it caches across folios.
//! Invariants: a write maps a range once (one extent's worth: offset, length, state, physical
//! block, and the extent map's sequence number as validity cookie) and reuses that mapping for
//! every folio in it. After locking each folio (and waiting for its writeback) the cookie is
//! compared with the extent map's current sequence number; if they differ the mapping may be
//! stale, so the folio is unlocked and the range is mapped again from that folio on. A new folio
//! is filled from the mapping before the copy: blocks the write does not cover keep what the
//! mapping says is there (zeros for hole / delalloc / unwritten, disk data for written).
//! Space is reserved (ordinary files: delalloc; journaled data: allocated) for every hole of the
//! whole write up front, so ENOSPC fails the write before anything changes.
//! Locks: IOLOCK exclusive for the write; ILOCK (+ allocator) for the reservation and each
//! mapping; per folio: the folio lock, then ILOCK briefly for the cookie check and the fill, then
//! the folio memory lock for the copy, then the journal lock (journaled data). The `sync` flush
//! runs after IOLOCK is dropped, as `generic_write_sync` does.

use super::folio_mask;
use super::page_cache::LockedFolio;
use super::sync::yield_point;
use super::{Fs, Inode};
use crate::bugs::Bug;
use vocab::fill_pattern;
use vocab::{Errno, ExtentState, Outcome, Step};

/// A cached mapping of a block range (`struct iomap`), valid while `cookie` equals the extent
/// map's sequence number.
#[derive(Clone, Copy, Debug)]
pub struct Iomap {
    /// First file block.
    pub start: u64,
    /// Length in blocks.
    pub len: u64,
    /// The state of every block in it.
    pub state: ExtentState,
    /// Physical block of `start` (allocated states).
    pub phys: u64,
    /// The extent map's sequence number when this was mapped.
    pub cookie: u64,
}

impl Iomap {
    /// Whether file block `b` is inside.
    #[inline]
    pub fn contains(&self, b: u64) -> bool {
        b >= self.start && b - self.start < self.len
    }

    /// Physical block of `b`.
    #[inline]
    pub fn phys_of(&self, b: u64) -> u64 {
        self.phys + (b - self.start)
    }
}

impl Fs {
    /// Reserves (delalloc) or allocates (journaled data) every hole of blocks `[b0, b1)`, all or
    /// nothing, and records the write's `WriteBegin` (op `seq`) with the counter change. Caller
    /// holds IOLOCK; takes ILOCK (and the allocator lock for journaled data).
    fn write_reserve(&self, ino: &Inode, seq: u32, b0: u64, b1: u64) -> Result<(), Errno> {
        let mut em = ino.ilock.lock();
        let holes: Vec<(u64, u64)> = em
            .mappings(b0, b1)
            .into_iter()
            .filter(|m| m.state == ExtentState::Hole)
            .map(|m| (m.start, m.len))
            .collect();
        let n: u64 = holes.iter().map(|h| h.1).sum();
        let begin = Step::WriteBegin { seq };
        if n == 0 {
            // COMMIT POINT: the write's start (nothing to reserve).
            self.record(begin);
            return Ok(());
        }
        if ino.jdata {
            let mut tree = self.alloc.lock();
            // COMMIT POINT: the write's start (holes allocated, or ENOSPC / EFSCORRUPTED).
            let pieces = self.commit(begin, || self.alloc_blocks_locked(&mut tree, n))?;
            drop(tree);
            super::assign_phys(&holes, &pieces, |b, len, p| {
                em.set(b, len, ExtentState::Unwritten, p)
            });
        } else {
            // COMMIT POINT: the write's start (holes reserved, or ENOSPC).
            self.commit(begin, || self.space.reserve(n))
                .map_err(|_| Errno::Enospc)?;
            for (b, len) in holes {
                em.set(b, len, ExtentState::Delalloc, 0);
            }
        }
        Ok(())
    }

    /// `iomap_begin`: maps the block holding `pos`, clipped to the write's end. A hole found
    /// here (the up-front reservation was punched by a failed writeback meanwhile) is allocated
    /// again for journaled data; for an ordinary file it is reserved again per folio, at the
    /// copy (as `xfs_buffered_write_iomap_begin` would reserve it).
    fn iomap_begin(&self, ino: &Inode, pos: u64, end: u64) -> Result<Iomap, Errno> {
        let bs = self.geo.bs;
        let b = pos / bs;
        let bend = end.div_ceil(bs);
        let mut em = ino.ilock.lock();
        let mut m = em.lookup(b, bend);
        if m.state == ExtentState::Hole && ino.jdata {
            let pieces = self.alloc_blocks(m.len)?;
            super::assign_phys(&[(m.start, m.len)], &pieces, |s, l, p| {
                em.set(s, l, ExtentState::Unwritten, p)
            });
            m = em.lookup(b, bend);
        }
        // Ordinary file: a hole here is a reservation a failed writeback punched after
        // `write_reserve`; `copy_into_folio` reserves it again, folio by folio, inside the
        // folio's commit.
        Ok(Iomap {
            start: m.start,
            len: m.len,
            state: m.state,
            phys: m.phys,
            cookie: em.seq(),
        })
    }

    /// `Write`.
    pub(crate) fn write(
        &self,
        ino: &Inode,
        seq: u32,
        off: u64,
        len: u64,
        sync: bool,
    ) -> Result<Outcome, Errno> {
        let early = |r: Result<Outcome, Errno>| {
            self.record(Step::WriteBegin { seq });
            self.early(seq, r)
        };
        if len == 0 {
            return early(Ok(Outcome::Done(0)));
        }
        let max = self.geo.max;
        if off >= max {
            return early(Err(Errno::Efbig));
        }
        let n = len.min(max - off);
        let end = off + n;
        let written = {
            let _io = ino.iolock.write();
            let bs = self.geo.bs;
            if let Err(e) = self.write_reserve(ino, seq, off / bs, end.div_ceil(bs)) {
                return Err(self.early(seq, e));
            }
            let mut pos = off;
            // The folio where the last mapping turned out stale (the retry starts there).
            let mut stale_at = None;
            while pos < end {
                let iomap = match self.iomap_begin(ino, pos, end) {
                    Ok(m) => m,
                    Err(e) if pos == off => return Err(self.early(seq, e)),
                    Err(_) => break, // a short write
                };
                yield_point();
                match self.write_iter(ino, seq, &iomap, pos, end, stale_at) {
                    Ok((p, stale)) => {
                        stale_at = stale.then_some(p / self.geo.fsz);
                        pos = p;
                    }
                    Err((p, e)) if p == off => {
                        self.punch_write_tail(ino, seq, p, end);
                        return Err(self.early(seq, e));
                    }
                    Err((p, _)) => {
                        self.punch_write_tail(ino, seq, p, end);
                        pos = p;
                        break; // a short write
                    }
                }
            }
            pos - off
        };
        if sync {
            let (f0, f1) = self.folio_span(off, written);
            self.writeback_range(seq, ino, f0, f1, true);
            let mut err = ino.wb_err.lock();
            // COMMIT POINT: the O_SYNC report (the flush's folios and IOs commit as sub-steps),
            // under the error lock every error record takes. O_SYNC is vfs_fsync_range: the log
            // force makes i_size durable with the report (inside the commit, as fsync does).
            let ok = err.is_none();
            self.commit(Step::Op { seq }, || {
                if ok {
                    ino.disk_size
                        .store(self.size(ino), super::sync::Ordering::SeqCst);
                }
            });
            if let Some(e) = err.take() {
                return Err(e);
            }
        } else {
            // COMMIT POINT: the write's result (each folio committed on its own).
            self.record(Step::Op { seq });
        }
        Ok(Outcome::Done(written))
    }

    /// Copies the write into the folios of one mapping; returns where it stopped (the end of the
    /// folio holding the mapping's end, or the folio where the mapping turned out stale, and
    /// whether it did). `stale_at`: the folio where the previous mapping turned out stale, if this is the retry.
    fn write_iter(
        &self,
        ino: &Inode,
        seq: u32,
        iomap: &Iomap,
        mut pos: u64,
        end: u64,
        stale_at: Option<u64>,
    ) -> Result<(u64, bool), (u64, Errno)> {
        let g = self.geo;
        let map_end = end.min((iomap.start + iomap.len).saturating_mul(g.bs));
        while pos < map_end {
            let idx = pos / g.fsz;
            // The whole of the write's part of this folio in one copy, even where the folio
            // spans more than this mapping: `WriteFolio` is atomic per folio (blocks past the
            // mapping are filled from the extent map as it is now, under ILOCK).
            let chunk_end = ((idx + 1) * g.fsz).min(end);
            let (lf, created) = ino.cache.get_or_create_locked(idx);
            // BUG(retry-skips-wait): the retry trusts the wait it did before it unlocked the folio;
            // writeback may have started on it since.
            let waited = self.has(Bug::RetrySkipsWait) && stale_at == Some(idx);
            if !self.has(Bug::UnstablePages) && !waited {
                // Stable pages: the device may be reading this folio right now.
                self.wait_writeback(seq, &lf);
            }
            // BUG(stale-mapping): without this check a new folio is filled from a mapping that
            // writeback + IO completion + reclaim may have made stale.
            if !self.has(Bug::StaleMapping) && ino.ilock.lock().seq() != iomap.cookie {
                if created {
                    // Left cached and uptodate for the retry: an instantiation of its own.
                    self.fill_folio(ino, &lf, None, Some(seq));
                }
                return Ok((pos, true));
            }
            if created {
                // Instantiated as part of this folio's `WriteFolio` (no step of its own).
                self.fill_folio(ino, &lf, Some(iomap), None);
            }
            if let Err(e) = self.copy_into_folio(ino, &lf, seq, pos, chunk_end) {
                return Err((pos, e));
            }
            drop(lf);
            if ino.jdata && self.has(Bug::PutFolioAfterUnlock) {
                // BUG(put-folio-after-unlock): the blocks join the transaction after the folio
                // lock is dropped; reclaim may have evicted the folio (and the data) meanwhile.
                yield_point();
                if let Some(lf) = ino.cache.get_locked(idx) {
                    self.log_blocks(ino, &lf, folio_mask::overlapping(&g, idx, pos, chunk_end));
                }
                // What the reference is told is the late log's effect: the folio's data as
                // it is now (lost if reclaim dropped it), dirty in the transaction.
            }
            yield_point();
            pos = chunk_end;
        }
        Ok((pos, false))
    }

    /// `iomap_write_end` for one folio: reserves any hole of `[pos, end)` again (ordinary file;
    /// ENOSPC: nothing of this folio changes), copies the pattern in, marks the blocks dirty
    /// (journaled data: logs them while the folio is locked), extends i_size, and records the
    /// `WriteFolio` step, all under ILOCK and the folio memory lock (readers copy under it) with
    /// the counter and size changes inside the commit. The step is recorded even when the
    /// reservation fails: the reference's `write_folio` fails the same way there.
    fn copy_into_folio(
        &self,
        ino: &Inode,
        lf: &LockedFolio,
        seq: u32,
        pos: u64,
        end: u64,
    ) -> Result<(), Errno> {
        let g = self.geo;
        let mask = folio_mask::overlapping(&g, lf.index, pos, end);
        let fstart = lf.index * g.fsz;
        let late_log = ino.jdata && self.has(Bug::PutFolioAfterUnlock);
        let mut em = (!ino.jdata).then(|| ino.ilock.lock());
        let holes: Vec<(u64, u64)> = em
            .as_ref()
            .map(|em| {
                em.mappings(pos / g.bs, end.div_ceil(g.bs))
                    .into_iter()
                    .filter(|m| m.state == ExtentState::Hole)
                    .map(|m| (m.start, m.len))
                    .collect()
            })
            .unwrap_or_default();
        let k: u64 = holes.iter().map(|h| h.1).sum();
        let mut st = lf.mem();
        let mut journal = (ino.jdata && !late_log).then(|| ino.journal.lock());
        // COMMIT POINT: one folio of a buffered write (space, data copied, blocks dirty, i_size).
        let res = self.commit(
            Step::WriteFolio {
                seq,
                folio: lf.index,
            },
            || {
                if k > 0 {
                    self.space.reserve(k).map_err(|_| Errno::Enospc)?;
                }
                let s = (pos - fstart) as usize;
                let e = (end - fstart) as usize;
                fill_pattern(seq, pos, st.data.range_mut(s, e, g.bs as usize));
                if late_log {
                    st.set_uptodate(mask, g.all);
                } else {
                    st.set_dirty(mask);
                }
                if let Some(j) = journal.as_mut() {
                    j.extend(folio_mask::blocks(mask, lf.index * g.bpf));
                }
                ino.size.fetch_max(end, super::sync::Ordering::SeqCst);
                Ok(())
            },
        );
        drop(journal);
        drop(st);
        if res.is_ok() {
            if let Some(em) = em.as_mut() {
                for (b, l) in holes {
                    em.set(b, l, ExtentState::Delalloc, 0);
                }
            }
        }
        res
    }

    /// The end of a buffered write whose folio re-reservation failed at `from` (ordinary files):
    /// the `Delalloc` blocks of `[from, end)` that are not dirty, the reservation it made and
    /// did not use, become holes again and are unreserved, as
    /// `iomap_file_buffered_write_punch_delalloc` punches after a short write. Under the
    /// invalidate lock (no fault can instantiate and dirty a block meanwhile), the cached folios
    /// of the range locked (their dirty bits hold still) and ILOCK, in one commit.
    fn punch_write_tail(&self, ino: &Inode, seq: u32, from: u64, end: u64) {
        if ino.jdata || from >= end {
            return;
        }
        let g = self.geo;
        let _inv = ino.invalidate.write();
        let (f0, f1) = self.folio_span(from, end - from);
        let held = ino.cache.lock_range(f0, f1);
        let dirty: Vec<(u64, u64)> = held.iter().map(|lf| (lf.index, lf.mem().dirty())).collect();
        let is_dirty = |b: u64| {
            let idx = b / g.bpf;
            dirty
                .iter()
                .any(|&(i, d)| i == idx && d & (1 << (b - idx * g.bpf)) != 0)
        };
        let mut em = ino.ilock.lock();
        let mut punch = Vec::new();
        em.for_each(from / g.bs, end.div_ceil(g.bs), |m| {
            if m.state == ExtentState::Delalloc {
                punch.extend((m.start..m.end()).filter(|&b| !is_dirty(b)));
            }
        });
        // COMMIT POINT: the unused reservation of a short write released.
        self.commit(Step::WritePunch { seq }, || {
            for &b in &punch {
                em.set(b, 1, ExtentState::Hole, 0);
            }
            self.space.unreserve(punch.len() as u64);
        });
        drop(em);
        drop(held);
    }

    /// Marks blocks of a locked folio dirty and, for journaled data, logs them.
    pub(crate) fn log_blocks(&self, ino: &Inode, lf: &LockedFolio, mask: u64) {
        lf.mem().set_dirty(mask);
        if ino.jdata {
            ino.journal
                .lock()
                .extend(folio_mask::blocks(mask, lf.index * self.geo.bpf));
        }
    }
}
