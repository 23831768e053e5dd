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
use super::pattern_fill::fill as fill_pattern;
use super::sync::{yield_point, Arc};
use super::{Fs, Inode};
use crate::bugs::Bug;
use reference::{Errno, ExtentState, Outcome};

impl Fs {
    /// The read fault: returns folio `idx`, instantiating it if absent.
    pub(crate) fn fault_in(&self, ino: &Inode, idx: u64) -> Arc<Folio> {
        if !self.has(Bug::FaultHoleRace) {
            return self.read_folio(ino, idx, false);
        }
        if let Some(f) = ino.cache.get(idx) {
            if f.mem().uptodate {
                return f;
            }
            return self.read_folio(ino, idx, false);
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
        ino.cache.insert_filled(idx, data, g.all)
    }

    /// Clips a fault at `off` of `len` bytes to its folio and EOF: `Ok(None)` for nothing to do.
    fn fault_range(&self, ino: &Inode, off: u64, len: u64) -> Result<(u64, u64), Errno> {
        let size = self.size(ino);
        if off >= size {
            return Err(Errno::Efault);
        }
        let folio_end = (off / self.geo.fsz + 1) * self.geo.fsz;
        let n = len.min(folio_end - off).min(size - off);
        Ok((off / self.geo.fsz, n))
    }

    /// `MmapRead`.
    pub(crate) fn mmap_read(&self, ino: &Inode, off: u64, len: u64) -> Result<Outcome, Errno> {
        let (idx, n) = self.fault_range(ino, off, len)?;
        if n == 0 {
            return Ok(Outcome::Data(Vec::new()));
        }
        let f = self.fault_in(ino, idx);
        let mut out = vec![0u8; n as usize];
        self.copy_from_folio(&f, off, &mut out);
        // COMMIT POINT: the read fault (the copy out of the folio).
        Ok(Outcome::Data(out))
    }

    /// `MmapWrite`: read fault, then page_mkwrite, then the store.
    pub(crate) fn mmap_write(
        &self,
        ino: &Inode,
        seq: u32,
        off: u64,
        len: u64,
    ) -> Result<Outcome, Errno> {
        let g = self.geo;
        let (idx, n) = self.fault_range(ino, off, len)?;
        if n == 0 {
            return Ok(Outcome::Done(0));
        }
        loop {
            let f = self.fault_in(ino, idx);
            let _inv = ino.invalidate.read();
            let lf = f.lock();
            if !lf.mem().mapped {
                continue; // truncated or reclaimed since the fault: fault again
            }
            let size = self.size(ino);
            if off >= size {
                return Err(Errno::Efault);
            }
            let n = n.min(size - off);
            if !self.has(Bug::UnstablePages) {
                self.wait_writeback(&lf);
            }
            let fb0 = idx * g.bpf;
            let eof_block = size.div_ceil(g.bs);
            let fb_end = (fb0 + g.bpf).min(eof_block);
            {
                let mut em = ino.ilock.lock();
                let holes: Vec<(u64, u64)> = em
                    .mappings(fb0, fb_end)
                    .into_iter()
                    .filter(|m| m.state == ExtentState::Hole)
                    .map(|m| (m.start, m.len))
                    .collect();
                let k: u64 = holes.iter().map(|h| h.1).sum();
                if k > 0 {
                    if ino.jdata {
                        let pieces = self.alloc_blocks(k)?;
                        super::assign_phys(&holes, &pieces, |b, l, p| {
                            em.set(b, l, ExtentState::Unwritten, p)
                        });
                    } else {
                        self.space.reserve(k).map_err(|_| Errno::Enospc)?;
                        for (b, l) in holes {
                            em.set(b, l, ExtentState::Delalloc, 0);
                        }
                    }
                }
            }
            let mask = if fb_end > fb0 {
                super::Geo::mask(0, fb_end - fb0)
            } else {
                0
            };
            {
                let mut st = lf.mem();
                let s = (off - idx * g.fsz) as usize;
                fill_pattern(seq, off, &mut st.data[s..s + n as usize]);
            }
            self.log_blocks(ino, &lf, mask);
            // COMMIT POINT: the write fault (space reserved, data stored, folio dirty to EOF).
            return Ok(Outcome::Done(n));
        }
    }
}
