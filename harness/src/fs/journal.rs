//! Journaled data (the gfs2 jdata analogue): the per-file running transaction and its commit.
//!
//! Owns: committing a file's transaction.
//! Invariants: a dirty block of a journaled-data file is a block logged in its transaction; the
//! set `Inode::journal` names every logged block (possibly also blocks since cleaned by a punch or
//! truncate, which commit skips). Commit writes each logged, still-dirty block in place, converts
//! `Unwritten` to `Written` and cleans the block; it never fails and leaves no IO in flight.
//! Locks: the journal lock (a leaf) only to take the set; then per folio, the folio lock, ILOCK,
//! the folio memory lock and the disk lock.

use super::buffered_write::mask_blocks;
use super::{Fs, Inode};
use reference::ExtentState;

impl Fs {
    /// Commits the file's running transaction; returns the number of blocks committed.
    pub(crate) fn journal_commit(&self, ino: &Inode) -> u64 {
        let g = self.geo;
        let logged = std::mem::take(&mut *ino.journal.lock());
        let mut committed = 0;
        let mut it = logged.into_iter().peekable();
        while let Some(b) = it.next() {
            let idx = b / g.bpf;
            let fb0 = idx * g.bpf;
            let mut mask = 1u64 << (b - fb0);
            while let Some(&nb) = it.peek() {
                if nb / g.bpf != idx {
                    break;
                }
                mask |= 1 << (nb - fb0);
                it.next();
            }
            let Some(lf) = ino.cache.get_locked(idx) else {
                continue;
            };
            let mut em = ino.ilock.lock();
            let bs = g.bs as usize;
            let mut done = 0u64;
            {
                let st = lf.mem();
                let todo = st.dirty() & mask;
                for blk in mask_blocks(todo, fb0) {
                    let m = em.lookup(blk, blk + 1);
                    if !m.state.is_allocated() {
                        continue; // cannot be logged without backing; left for the invariants
                    }
                    let i = (blk - fb0) as usize;
                    self.disk.write(m.phys, &st.data[i * bs..(i + 1) * bs]);
                    done |= 1 << i;
                }
            }
            for blk in mask_blocks(done, fb0) {
                em.convert(blk, blk + 1, ExtentState::Unwritten, ExtentState::Written);
            }
            lf.mem().clear_dirty(done);
            committed += done.count_ones() as u64;
            // COMMIT POINT: one folio's logged blocks committed (disk written, clean).
            drop(em);
        }
        committed
    }
}
