//! Page faults on a mapped file: the read fault (`filemap_fault`) and the write fault
//! (`xfs_filemap_page_mkwrite` -> `iomap_page_mkwrite`).
//!
//! Owns: `MmapRead` and `MmapWrite`.
//! Invariants: a folio is instantiated under the invalidate lock (shared) and filled while it is
//! locked in the page cache, so nothing that changes the mapping under the invalidate lock
//! (direct IO, punch, truncate) can slip between mapping and insertion. page_mkwrite re-checks,
//! under the folio lock, that the folio is still in the cache (else it faults again), waits for
//! writeback (stable pages), reserves delalloc for the folio's holes inside EOF, then dirties the
//! folio up to EOF.
//! Locks: invalidate lock shared, then the folio lock, then ILOCK (+ allocator for journaled
//! data), then the folio memory lock and the journal lock. Faults never take IOLOCK.

use super::page_cache::Folio;
use super::sync::{yield_point, Arc};
use super::{Fs, Inode};
use crate::bugs::Bug;
use vocab::fill_pattern;
use vocab::{Errno, ExtentState, FileId, Outcome, Step};

impl Fs {
    /// The read fault of op `seq`: returns folio `idx`, instantiating it if absent (then
    /// recording `Instantiate`).
    pub(crate) fn fault_in(&self, ino: &Inode, seq: u32, idx: u64) -> Arc<Folio> {
        if !self.has(Bug::FaultHoleRace) {
            return self.read_folio(ino, seq, idx, false);
        }
        if let Some(f) = ino.cache.get(idx) {
            if f.mem().uptodate {
                return f;
            }
            return self.read_folio(ino, seq, idx, false);
        }
        // BUG(fault-hole-race): map the folio's blocks first (a snapshot), then drop the
        // invalidate lock and insert a folio filled from that snapshot without re-checking: a
        // direct write in between allocates and writes the blocks, and the fault installs hole
        // zeros over them.
        let g = self.geo;
        let fb0 = idx * g.bpf;
        let bs = g.bs as usize;
        let inv = ino.invalidate.read();
        let snapshot = ino.ilock.lock().mappings(fb0, fb0 + g.bpf);
        drop(inv);
        yield_point();
        let mut data = vec![0u8; g.fsz as usize].into_boxed_slice();
        for m in snapshot {
            if m.state == ExtentState::Written {
                for b in m.start..m.end() {
                    let i = (b - fb0) as usize;
                    self.disk
                        .read(m.phys_of(b), &mut data[i * bs..(i + 1) * bs]);
                }
            }
        }
        // The instantiation takes effect at the (late) insert: that is where it is recorded.
        let step = Step::Instantiate {
            seq,
            file: ino.idx as FileId,
            folio: idx,
        };
        ino.cache.insert_filled(idx, data, g.all, |inserted| {
            if inserted {
                self.record(step);
            }
        })
    }

    /// Clips a fault at `off` of `len` bytes to its folio and EOF: `(folio, n)`, EFAULT at or
    /// past EOF.
    fn fault_range(&self, ino: &Inode, off: u64, len: u64) -> Result<(u64, u64), Errno> {
        let size = self.size(ino);
        if off >= size {
            return Err(Errno::Efault);
        }
        let folio_end = (off / self.geo.fsz + 1) * self.geo.fsz;
        let n = len.min(folio_end - off).min(size - off);
        Ok((off / self.geo.fsz, n))
    }

    /// `MmapRead`. The size check and the copy are its commit, under the folio lock (as
    /// `filemap_fault` locks the folio) and the folio memory lock.
    pub(crate) fn mmap_read(
        &self,
        ino: &Inode,
        seq: u32,
        off: u64,
        len: u64,
    ) -> Result<Outcome, Errno> {
        // COMMIT POINT (if it fails or is empty): the fault's checks.
        let early = self.commit_if(Step::Op { seq }, || match self.fault_range(ino, off, len) {
            Err(e) => (Some(Err(e)), true),
            Ok((_, 0)) => (Some(Ok(Outcome::Data(Vec::new()))), true),
            Ok(_) => (None, false),
        });
        if let Some(r) = early {
            return r;
        }
        let idx = off / self.geo.fsz;
        loop {
            let f = self.fault_in(ino, seq, idx);
            // filemap_fault returns the folio locked (VM_FAULT_LOCKED): an op that holds the
            // folio lock across a multi-step change (punch, truncate, zero-range) is never seen
            // half done.
            let lf = f.lock();
            let st = lf.mem();
            if !st.mapped {
                continue; // reclaimed since the fault: fault again
            }
            let start = (off - idx * self.geo.fsz) as usize;
            // COMMIT POINT: the read fault (the copy out of the folio).
            return self.commit(Step::Op { seq }, || {
                let (_, n) = self.fault_range(ino, off, len)?;
                Ok(Outcome::Data(st.data[start..start + n as usize].to_vec()))
            });
        }
    }

    /// `MmapWrite`: read fault, then page_mkwrite, then the store. page_mkwrite's checks, its
    /// reservation and the store are one commit, under the folio lock, ILOCK (and the allocator
    /// lock for journaled data) and the folio memory lock.
    pub(crate) fn mmap_write(
        &self,
        ino: &Inode,
        seq: u32,
        off: u64,
        len: u64,
    ) -> Result<Outcome, Errno> {
        let g = self.geo;
        // COMMIT POINT (if it fails or is empty): the fault's checks.
        let early = self.commit_if(Step::Op { seq }, || match self.fault_range(ino, off, len) {
            Err(e) => (Some(Err(e)), true),
            Ok((_, 0)) => (Some(Ok(Outcome::Done(0))), true),
            Ok(_) => (None, false),
        });
        if let Some(r) = early {
            return r;
        }
        let idx = off / g.fsz;
        let fb0 = idx * g.bpf;
        loop {
            let f = self.fault_in(ino, seq, idx);
            let _inv = ino.invalidate.read();
            let lf = f.lock();
            if !lf.mem().mapped {
                continue; // truncated or reclaimed since the fault: fault again
            }
            if !self.has(Bug::UnstablePages) {
                self.wait_writeback(seq, &lf);
            }
            let mut em = ino.ilock.lock();
            let mut tree = ino.jdata.then(|| self.alloc.lock());
            let mut st = lf.mem();
            // Journaled data logs the blocks before the commit point (a journal commit decides
            // what it takes under the journal lock).
            let mut journal = ino.jdata.then(|| ino.journal.lock());
            // COMMIT POINT: the write fault (space reserved, data stored, folio dirty to EOF).
            let res = self.commit(Step::Op { seq }, || {
                let (_, n) = self.fault_range(ino, off, len)?;
                let size = self.size(ino);
                let fb_end = (fb0 + g.bpf).min(size.div_ceil(g.bs));
                let holes: Vec<(u64, u64)> = em
                    .mappings(fb0, fb_end)
                    .into_iter()
                    .filter(|m| m.state == ExtentState::Hole)
                    .map(|m| (m.start, m.len))
                    .collect();
                let k: u64 = holes.iter().map(|h| h.1).sum();
                let mut pieces = Vec::new();
                if k > 0 {
                    match tree.as_mut() {
                        Some(t) => pieces = self.alloc_blocks_locked(t, k)?,
                        None => self.space.reserve(k).map_err(|_| Errno::Enospc)?,
                    }
                }
                let s = (off - idx * g.fsz) as usize;
                fill_pattern(
                    seq,
                    off,
                    st.data.range_mut(s, s + n as usize, g.bs as usize),
                );
                let mask = if fb_end > fb0 {
                    super::folio_mask::range(0, fb_end - fb0)
                } else {
                    0
                };
                st.set_dirty(mask);
                if let Some(j) = journal.as_mut() {
                    j.extend(super::folio_mask::blocks(mask, fb0));
                }
                Ok((n, holes, pieces))
            });
            drop(journal);
            drop(st);
            drop(tree);
            let (n, holes, pieces) = res?;
            if ino.jdata {
                super::assign_phys(&holes, &pieces, |b, l, p| {
                    em.set(b, l, ExtentState::Unwritten, p)
                });
            } else {
                for (b, l) in holes {
                    em.set(b, l, ExtentState::Delalloc, 0);
                }
            }
            drop(em);
            return Ok(Outcome::Done(n));
        }
    }
}
