//! Journaled data (the gfs2 jdata analogue): the per-file running transaction and its commit.
//!
//! Owns: committing a file's transaction.
//! Invariants: a dirty block of a journaled-data file is a block logged in its transaction; the
//! set `Inode::journal` names every logged block (possibly also blocks since cleaned by a punch or
//! truncate, which commit skips). Commit writes each logged, still-dirty block in place, converts
//! `Unwritten` to `Written` and cleans the block; it never fails and leaves no IO in flight.
//! A commit is atomic: it locks every cached folio of the file (in index order) before it takes
//! the logged set, and holds them, with ILOCK, until its commit point, so no block can be logged,
//! cleaned or reclaimed half way through it. Blocks are only ever logged under their folio lock,
//! so once every folio is held the set cannot grow; if the set names a folio created after the
//! folios were listed, the set is put back and the commit starts over.
//! Blocks are logged before their op's commit point, except zero-range's edges, logged after it
//! (its commit can still fail with nothing changed); zero-range holds `Inode::handles` shared
//! until they are logged, and a commit holds it exclusive (jbd2 waits for open handles too).
//! Locks: `Inode::handles` exclusive, folio locks in increasing index order, ILOCK, the journal
//! lock (a leaf) to take the set, the folio memory locks one at a time and the disk lock.

use super::folio_mask;
use super::page_cache::LockedFolio;
use super::{Fs, Inode};
use std::collections::BTreeMap;
use vocab::{ExtentState, FileId, Step};

impl Fs {
    /// Commits the file's running transaction for op `seq`; returns the number of blocks
    /// committed.
    pub(crate) fn journal_commit(&self, seq: u32, ino: &Inode) -> u64 {
        let g = self.geo;
        // No op is between its commit point and the logging of its blocks (zero-range).
        let _handles = ino.handles.write();
        loop {
            let held: BTreeMap<u64, LockedFolio> = ino
                .cache
                .range(0, u64::MAX)
                .into_iter()
                .map(|f| f.lock())
                .filter(|lf| lf.mem().mapped)
                .map(|lf| (lf.index, lf))
                .collect();
            let mut em = ino.ilock.lock();
            let logged = {
                let mut j = ino.journal.lock();
                let uncovered = j.iter().any(|&b| {
                    let idx = b / g.bpf;
                    !held.contains_key(&idx) && ino.cache.get(idx).is_some()
                });
                if uncovered {
                    // A folio logged after the listing: start over with it included.
                    drop(j);
                    drop(em);
                    drop(held);
                    continue;
                }
                // COMMIT POINT: the transaction commits here, under the journal lock (every
                // logger adds its blocks under it before its own commit point) with every folio
                // of the file and ILOCK held until the blocks below are written and clean. The
                // transaction carries i_size with the data (ext4 data=journal updates
                // i_disksize in the write's handle): the commit makes it durable, here (a write
                // may extend i_size once the folios are let go).
                self.commit(
                    Step::Commit {
                        seq,
                        file: ino.idx as FileId,
                    },
                    || {
                        ino.disk_size
                            .store(self.size(ino), super::sync::Ordering::SeqCst)
                    },
                );
                std::mem::take(&mut *j)
            };
            let bs = g.bs as usize;
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
                let Some(lf) = held.get(&idx) else {
                    continue; // dropped from the cache since it was logged: nothing dirty left
                };
                let mut done = 0u64;
                {
                    let st = lf.mem();
                    let todo = st.dirty() & mask;
                    for blk in folio_mask::blocks(todo, fb0) {
                        let m = em.lookup(blk, blk + 1);
                        if !m.state.is_allocated() {
                            continue; // cannot be logged without backing; left for the invariants
                        }
                        let i = (blk - fb0) as usize;
                        self.disk.write(m.phys, &st.data[i * bs..(i + 1) * bs]);
                        done |= 1 << i;
                    }
                }
                for blk in folio_mask::blocks(done, fb0) {
                    em.convert(blk, blk + 1, ExtentState::Unwritten, ExtentState::Written);
                }
                lf.mem().clear_dirty(done);
                committed += done.count_ones() as u64;
            }
            drop(em);
            drop(held);
            return committed;
        }
    }
}
