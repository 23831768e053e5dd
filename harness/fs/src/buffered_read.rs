//! Buffered reads and folio instantiation (`filemap_read`, `filemap_create_folio`,
//! `iomap_read_folio`).
//!
//! Owns: filling a folio from the mapping and the `Read` op.
//! Invariants: a folio is filled while locked, from the mapping read under ILOCK in the same
//! critical section (`Written` blocks from disk, everything else zeros), so a fill can never mix
//! a mapping with data from a later change; blocks already uptodate are left alone.
//! Locks: `Read` takes IOLOCK shared; instantiation takes the invalidate lock shared (unless the
//! caller already holds it), then the new folio's lock, then ILOCK, then the folio memory and disk
//! locks. Reading an uptodate folio takes only its memory lock.

use super::buffered_write::Iomap;
use super::page_cache::{Folio, LockedFolio};
use super::sync::Arc;
use super::{Fs, Inode};
use vocab::{ExtentState, FileId, Outcome, Step};

impl Fs {
    /// Makes every non-uptodate block of a locked folio uptodate from the mapping. Blocks inside
    /// `iomap` are filled from it (the write path's cached mapping), the others from the extent
    /// map as it is now.
    ///
    /// With `inst = Some(seq)`, a fill that instantiates anything records `Instantiate` for op
    /// `seq` under ILOCK and the folio memory lock.
    pub(crate) fn fill_folio(
        &self,
        ino: &Inode,
        lf: &LockedFolio,
        iomap: Option<&Iomap>,
        inst: Option<u32>,
    ) {
        let g = self.geo;
        let fb0 = lf.index * g.bpf;
        let bs = g.bs as usize;
        let em = ino.ilock.lock();
        let mut st = lf.mem();
        let Some(ifs) = st.ifs.as_deref() else { return };
        let todo = g.all & !ifs.uptodate;
        if todo == 0 {
            st.uptodate = true;
            return;
        }
        em.for_each(fb0, fb0 + g.bpf, |m| {
            for b in m.start..m.end() {
                let i = (b - fb0) as usize;
                if todo & (1 << i) == 0 {
                    continue;
                }
                let (state, phys) = match iomap {
                    Some(im) if im.contains(b) => (im.state, im.phys_of(b)),
                    _ => (m.state, m.phys_of(b)),
                };
                // Only this block's digest is forgotten by taking it for writing; the one its
                // source has is then its own, so the comparison hashes only what writes change.
                let dst = st.data.range_mut(i * bs, (i + 1) * bs, bs);
                let known = if state == ExtentState::Written {
                    self.disk.read_digested(phys, dst)
                } else {
                    dst.fill(0);
                    Some(g.zero_digest)
                };
                if let Some(d) = known {
                    st.data.know(i, bs, d);
                }
            }
        });
        st.set_uptodate(todo, g.all);
        if let Some(seq) = inst {
            // COMMIT POINT: a folio instantiated (filled from the mapping under ILOCK).
            self.record(Step::Instantiate {
                seq,
                file: ino.idx as FileId,
                folio: lf.index,
            });
        }
        drop(st);
        drop(em);
    }

    /// Returns folio `idx` uptodate, instantiating it if absent (`filemap_get_pages`) and then
    /// recording `Instantiate` for op `seq`. Takes the invalidate lock shared around
    /// instantiation unless `have_invalidate`.
    pub(crate) fn read_folio(
        &self,
        ino: &Inode,
        seq: u32,
        idx: u64,
        have_invalidate: bool,
    ) -> Arc<Folio> {
        loop {
            if let Some(f) = ino.cache.get(idx) {
                if f.mem().uptodate {
                    return f;
                }
                // Someone is instantiating it, or it was truncated: lock and look again.
                let lf = f.lock();
                if !lf.mem().mapped {
                    continue;
                }
                self.fill_folio(ino, &lf, None, Some(seq));
                return lf.folio.clone();
            }
            let _inv = if have_invalidate {
                None
            } else {
                Some(ino.invalidate.read())
            };
            let (lf, created) = ino.cache.get_or_create_locked(idx);
            if created || !lf.mem().uptodate {
                self.fill_folio(ino, &lf, None, Some(seq));
            }
            return lf.folio.clone();
        }
    }

    /// Copies `[off, off+out.len())`, which must lie within folio `f`, out of it, if the folio
    /// is still cached; then, under its memory lock, commits `step` (whose effect runs inside the
    /// commit and may veto the copy by returning an error). `None` if the folio left the cache:
    /// the caller looks it up again.
    pub(crate) fn copy_from_folio_commit<E>(
        &self,
        f: &Folio,
        off: u64,
        out: &mut [u8],
        step: vocab::Step,
        check: impl FnOnce() -> Result<(), E>,
    ) -> Option<Result<(), E>> {
        let st = f.mem();
        if !st.mapped {
            return None;
        }
        let start = (off - f.index * self.geo.fsz) as usize;
        Some(self.commit(step, || {
            check()?;
            out.copy_from_slice(&st.data[start..start + out.len()]);
            Ok(())
        }))
    }

    /// `Read`: buffered read, instantiating absent folios. Each folio's copy is its `ReadFolio`
    /// commit (the size cannot change under IOLOCK shared).
    pub(crate) fn read(&self, ino: &Inode, seq: u32, off: u64, len: u64) -> Outcome {
        let _io = ino.iolock.read();
        let size = self.size(ino);
        if off >= size || len == 0 {
            // COMMIT POINT: an empty read.
            return self.early(seq, Outcome::Data(Vec::new()));
        }
        let n = len.min(size - off);
        let end = off + n;
        let mut out = vec![0u8; n as usize];
        let mut pos = off;
        while pos < end {
            let idx = pos / self.geo.fsz;
            let chunk_end = ((idx + 1) * self.geo.fsz).min(end);
            let f = self.read_folio(ino, seq, idx, false);
            let dst = &mut out[(pos - off) as usize..(chunk_end - off) as usize];
            let step = Step::ReadFolio { seq, folio: idx };
            // COMMIT POINT: one folio's bytes copied out.
            if self
                .copy_from_folio_commit(&f, pos, dst, step, || Ok::<(), ()>(()))
                .is_none()
            {
                continue; // reclaimed since instantiation: instantiate again
            }
            pos = chunk_end;
        }
        // COMMIT POINT: the read's result.
        self.record(Step::Op { seq });
        Outcome::Data(out)
    }
}
