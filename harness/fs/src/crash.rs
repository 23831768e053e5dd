//! Durability: what is on stable storage, and the `Crash` op that keeps only that.
//!
//! Owns: each inode's size on disk (`Inode::disk_size`) and fsync's standing promise
//! (`Inode::promise`), the bookkeeping that keeps them (after each op, [`Fs::after_op`]; IO
//! completion and journal commits raise `disk_size` themselves), and the power cut.
//!
//! The rule (SPEC.md "Durability"): a metadata change is durable when the step that makes it
//! commits, except what lives only in memory: the page cache, delalloc reservations, writeback
//! errors, the in-memory size past `disk_size`, and in-flight IOs that do not land. So a crash
//! needs no second copy of the extent map: it drops exactly those.
//!
//! Locks: the crash quiesces the filesystem before the cut, like a freeze: every inode's IOLOCK,
//! then every invalidate lock, then every journal handles lock (each exclusive, in file order),
//! then every cached folio's lock (file order, then folio order), all held to the end; then,
//! from the cache's removal to the commit point, every page-cache index lock and every error
//! lock (file order): whatever a background op could see of the cut (a reclaim's miss, an
//! fsync's report) is ordered with the commit. With them no user op can be half-way
//! (buffered and direct IO, space changes and faults hold one of the first two from their first
//! step to their last), no IO can be submitted (writeback holds the folio's lock) and no folio
//! instantiated. Background steps that hold none of them (a flush or fsync between two folios, a
//! `CompleteIo` between two completions, a journal commit) run before or after the cut; an IO a
//! waiter had already claimed completes before it (the crash waits on the folio), so the FIFO
//! the crash drains holds every IO still in flight. `Inode::promise` is a leaf, taken after
//! ILOCK and the folio memory locks.

use super::page_cache::LockedFolio;
use super::sync::Ordering;
use super::writeback::Io;
use super::{Fs, Inode};
use vocab::{ExtentState, FileId, Op, Outcome, Step};

/// fsync's standing promise: (size, runs `(first block, end block, physical block of the
/// first)` of `Written` blocks).
pub(crate) type Promise = (u64, Vec<(u64, u64, u64)>);

/// Called at a crash's commit point, with every lock of the quiesce still held (concurrent
/// runs capture the state right after the cut with it).
pub type CrashHook = Box<dyn Fn(&Fs, u32) + Send + Sync>;

/// The crash's arguments, read IO by IO in FIFO order (SPEC.md "Crash"): the `k`-th IO is torn
/// if bit `k` of `torn` is set (each of its blocks, in block order, lands if the next unused bit
/// of `tear` is set), else lands whole if bit `k` of `land` is set, else is lost.
struct Cut {
    land: u32,
    torn: u32,
    tear: u64,
    next_bit: u32,
}

/// The fate of one IO at the cut.
enum Fate {
    Whole,
    Lost,
    Torn(u32),
}

impl Cut {
    fn fate(&mut self, k: u32, io: &Io) -> Fate {
        let set = |m: u32| k < 32 && (m >> k) & 1 == 1;
        if set(self.torn) {
            let mut landed = 0u32;
            for b in &io.blocks {
                if self.next_bit < 64 && (self.tear >> self.next_bit) & 1 == 1 {
                    landed |= 1 << b.slot;
                }
                self.next_bit = self.next_bit.saturating_add(1);
            }
            Fate::Torn(landed)
        } else if set(self.land) {
            Fate::Whole
        } else {
            Fate::Lost
        }
    }
}

impl Fs {
    /// Installs the hook called at every crash's commit point.
    pub fn set_crash_hook(&mut self, hook: CrashHook) {
        self.crash_hook = Some(hook);
    }

    /// `Crash { land, torn, tear }`: IO number `k` in FIFO order is torn if bit `k` of `torn` is
    /// set, else lands whole if bit `k` of `land` is set (an ordinary completion), else is lost;
    /// then memory goes and the filesystem mounts again. Returns the number of IOs that landed
    /// whole.
    pub(crate) fn crash(&self, seq: u32, land: u32, torn: u32, tear: u64) -> u64 {
        let _io: Vec<_> = self.inodes.iter().map(|i| i.iolock.write()).collect();
        let _inv: Vec<_> = self.inodes.iter().map(|i| i.invalidate.write()).collect();
        // No journal commit either: it would see the transaction and the cache half cut.
        let _handles: Vec<_> = self.inodes.iter().map(|i| i.handles.write()).collect();
        let held: Vec<Vec<LockedFolio>> = self
            .inodes
            .iter()
            .map(|i| i.cache.lock_range(0, u64::MAX))
            .collect();
        let ios = self.ioq.drain_all();
        // IOs claimed by a waiter before the drain are being completed: they complete first.
        for lf in held.iter().flatten() {
            let mut st = lf.mem();
            while st.writeback && !ios.iter().any(|io| st.io == Some(io.id)) {
                st = st.wait_writeback();
            }
        }
        let mut cut = Cut {
            land,
            torn,
            tear,
            next_bit: 0,
        };
        let mut landed = 0;
        for (k, io) in ios.iter().enumerate() {
            match cut.fate(u32::try_from(k).unwrap_or(u32::MAX), io) {
                Fate::Whole => {
                    self.complete_io(seq, io);
                    landed += 1;
                }
                Fate::Lost => self.lose_io(seq, io, None),
                Fate::Torn(mask) => self.lose_io(seq, io, Some(mask)),
            }
        }
        let mut released = 0;
        for ino in &self.inodes {
            let mut em = ino.ilock.lock();
            let delalloc: Vec<(u64, u64)> = em
                .extents()
                .filter(|(_, e)| e.state == ExtentState::Delalloc)
                .map(|(s, e)| (s, e.len))
                .collect();
            for (s, l) in delalloc {
                em.set(s, l, ExtentState::Hole, 0);
                released += l;
            }
            drop(em);
            ino.journal.lock().clear();
        }
        // The cache goes under every index lock, held to the commit point: a reclaim decides a
        // miss under it and must not see a folio gone before the cut.
        let mut held = held;
        let mut index = Vec::with_capacity(self.inodes.len());
        for (ino, held) in self.inodes.iter().zip(held.iter_mut()) {
            loop {
                if let Some(g) = ino.cache.remove_all_held(held) {
                    index.push(g);
                    break;
                }
                // Cannot happen (nothing instantiates under the quiesce); never lose a folio.
                held.clear();
                *held = ino.cache.lock_range(0, u64::MAX);
            }
        }
        // The rest is seen by fsync's and O_SYNC's report (under the error lock): all of it
        // under every error lock, with the commit.
        let mut errs: Vec<_> = self.inodes.iter().map(|i| i.wb_err.lock()).collect();
        for err in errs.iter_mut() {
            **err = None;
        }
        // COMMIT POINT: the power cut and the mount. The sizes and the counters change inside
        // the commit (under the log lock): argument checks read them there with no other lock.
        self.commit(Step::Op { seq }, || {
            self.space.unreserve(released);
            for ino in &self.inodes {
                ino.size
                    .store(ino.disk_size.load(Ordering::SeqCst), Ordering::SeqCst);
            }
        });
        drop(errs);
        drop(index);
        // The mount: a torn IO may have put bytes past the recovered size into the EOF block on
        // disk (it landed, its size update did not); past EOF reads as zero again (SPEC, Crash).
        // Nothing can look: every IOLOCK and every cached folio lock is still held.
        for ino in &self.inodes {
            let size = ino.size.load(Ordering::SeqCst);
            let (eof, tail) = (size / self.geo.bs, (size % self.geo.bs) as usize);
            if tail == 0 {
                continue;
            }
            let em = ino.ilock.lock();
            let mut phys = None;
            em.for_each(eof, eof + 1, |m| {
                if m.state == ExtentState::Written {
                    phys = Some(m.phys_of(eof));
                }
            });
            if let Some(p) = phys {
                let mut buf = vec![0u8; self.geo.bs as usize];
                self.disk.read(p, &mut buf);
                if buf[tail..].iter().any(|&x| x != 0) {
                    buf[tail..].fill(0);
                    let d = vocab::block_digest(&buf);
                    self.disk.write_many([(p, &buf[..], d)]);
                }
            }
            drop(em);
        }
        if let Some(hook) = &self.crash_hook {
            hook(self, seq);
        }
        // The folio locks (of folios now gone) go last: a reclaim waiting for one must not
        // find the folio gone before the commit point.
        drop(held);
        landed
    }

    /// An IO the power cut catches in flight: it never completes. Torn (`Some(landed)`): the
    /// folio slots in `landed` reached the disk (the device writes what the folio holds now, if
    /// the whole IO still matches its checksums, as at completion); the others did not. Lost
    /// (`None`): nothing did. Its blocks keep their
    /// extent state, except under `convert-at-submit`, whose conversion was logged at submit.
    fn lose_io(&self, seq: u32, io: &Io, torn: Option<u32>) {
        let landed = torn.unwrap_or(0);
        let ino = &self.inodes[io.file];
        let bs = self.geo.bs as usize;
        let fb0 = io.folio.index * self.geo.bpf;
        let mut em = ino.ilock.lock();
        if io.logged_convert != 0 {
            for b in super::folio_mask::blocks(io.logged_convert, fb0) {
                em.convert(b, b + 1, ExtentState::Unwritten, ExtentState::Written);
            }
        }
        let mut st = io.folio.mem();
        if landed != 0 {
            let bad = io.blocks.iter().find(|b| {
                let off = b.slot as usize * bs;
                vocab::crc32c(&st.data[off..off + bs]) != b.crc
            });
            if let Some(b) = bad {
                self.record_violation(
                    "checksum-mismatch",
                    format!(
                        "file {} block {}: data changed under writeback (IO {}, torn at a crash)",
                        io.file,
                        fb0 + b.slot as u64,
                        io.id
                    ),
                );
            } else {
                self.disk.write_many(
                    io.blocks
                        .iter()
                        .filter(|b| (landed >> b.slot) & 1 == 1)
                        .map(|b| {
                            let off = b.slot as usize * bs;
                            (b.phys, &st.data[off..off + bs], b.crc)
                        }),
                );
            }
        }
        st.writeback = false;
        st.wb_mask = 0;
        st.io = None;
        self.ioq.end_one();
        let (file, folio) = (io.file as FileId, io.folio.index);
        // COMMIT POINT: the IO's fate at the cut.
        self.record(if torn.is_some() {
            Step::Torn {
                seq,
                file,
                folio,
                landed,
            }
        } else {
            Step::Lost { seq, file, folio }
        });
        drop(st);
        drop(em);
        io.folio.wb_cv.notify_all();
    }

    /// Raises the size on disk to `end` clipped to i_size (an IO's completion, `xfs_end_ioend`).
    pub(crate) fn log_size_to(&self, ino: &Inode, end: u64) {
        let end = end.min(self.size(ino));
        ino.disk_size.fetch_max(end, Ordering::SeqCst);
    }

    /// Durability bookkeeping of a finished user op: fsync's promise, and the end of the promise
    /// on blocks the op changed (sizes on disk are set at the ops' commit points).
    ///
    /// The promise ends on a changed range even when the op failed: a failed O_SYNC write has
    /// still copied its data, and may have written part of it back; ending it where nothing
    /// changed only checks less.
    pub(crate) fn after_op(&self, ino: &Inode, op: &Op, out: &Outcome) {
        let ok = !matches!(out, Outcome::Err(_));
        let g = self.geo;
        let blocks = |off: u64, len: u64| {
            let end = off.saturating_add(len).min(g.max);
            (off / g.bs, end.div_ceil(g.bs))
        };
        match *op {
            // The size on disk itself is set at each op's commit point (O_SYNC's report, the
            // direct write, fallocate and zero-range growing the file, truncate, fsync): a crash
            // may come right after it.
            Op::Write { off, len, .. } | Op::DirectWrite { off, len, .. } => {
                let (b0, b1) = blocks(off, len);
                self.unpromise(ino, b0, b1);
            }
            Op::MmapWrite { off, .. } => {
                let fb0 = off / g.fsz * g.bpf;
                self.unpromise(ino, fb0, fb0 + g.bpf);
            }
            Op::PunchHole { off, len, .. } => {
                let (b0, b1) = blocks(off, len);
                self.unpromise(ino, b0, b1);
            }
            Op::ZeroRange { off, len, .. } => {
                let (b0, b1) = blocks(off, len);
                self.unpromise(ino, b0, b1);
            }
            Op::Truncate { .. } if ok => {
                let new = self.size(ino);
                let mut p = ino.promise.lock();
                p.0 = p.0.min(new);
                drop(p);
                self.unpromise(ino, new / g.bs, u64::MAX);
            }
            Op::Fsync { .. } if ok => self.take_promise(ino),
            _ => {}
        }
    }

    /// The promise of a successful fsync: every `Written` block below i_size is durable
    /// (sequentially nothing is dirty or under writeback after a successful fsync); the size
    /// was made durable at the fsync's commit point ([`Fs::fsync`]).
    /// Concurrent runs keep no promise: they have no crash, and a racing write could dirty a
    /// block between the fsync's waits and this. The promise holds no bytes: the oracle compares
    /// contents with the reference; this names the loss.
    fn take_promise(&self, ino: &Inode) {
        let g = self.geo;
        if self.recording.load(Ordering::Relaxed) {
            return;
        }
        let size = self.size(ino);
        let mut runs: Vec<(u64, u64, u64)> = Vec::new();
        ino.ilock.lock().for_each(0, size.div_ceil(g.bs), |m| {
            if m.state == ExtentState::Written {
                runs.push((m.start, m.end(), m.phys_of(m.start)));
            }
        });
        *ino.promise.lock() = (size, runs);
    }

    /// Blocks `[b0, b1)` changed: fsync's promise on them ends.
    fn unpromise(&self, ino: &Inode, b0: u64, b1: u64) {
        let mut p = ino.promise.lock();
        if b0 >= b1 || p.1.is_empty() {
            return;
        }
        let old = std::mem::take(&mut p.1);
        for (s, e, phys) in old {
            if e <= b0 || s >= b1 {
                p.1.push((s, e, phys));
                continue;
            }
            if s < b0 {
                p.1.push((s, b0, phys));
            }
            if e > b1 {
                p.1.push((b1, e, phys + (b1 - s)));
            }
        }
    }

    /// `no-stale-exposure` and `fsync-durable` over every file (the unscoped invariant check).
    pub(crate) fn check_durability(&self, push: &mut impl FnMut(&'static str, String)) {
        for ino in &self.inodes {
            let em = ino.ilock.lock();
            for (s, e) in em.extents() {
                if e.state != ExtentState::Written || self.disk.all_written(e.phys, e.len) {
                    continue;
                }
                for p in self.disk.stale_in(e.phys, e.len) {
                    push(
                        "no-stale-exposure",
                        format!(
                            "file {} block {} is written but physical block {p} holds stale bytes",
                            ino.idx,
                            s + (p - e.phys)
                        ),
                    );
                }
            }
            // A copy: the disk lock below must not be taken under the leaf.
            let p = ino.promise.lock().clone();
            let disk_size = ino.disk_size.load(Ordering::SeqCst);
            if disk_size < p.0 {
                push(
                    "fsync-durable",
                    format!(
                        "file {}: size on disk {disk_size:#x} below the fsynced size {:#x}",
                        ino.idx, p.0
                    ),
                );
            }
            for &(s, e, phys) in &p.1 {
                em.for_each(s, e, |m| {
                    let want = phys + (m.start - s);
                    let ok = m.state == ExtentState::Written
                        && m.phys_of(m.start) == want
                        && self.disk.all_written(want, m.len);
                    if !ok {
                        push(
                            "fsync-durable",
                            format!(
                                "file {} blocks {}..{}: data an fsync made durable is gone",
                                ino.idx,
                                m.start,
                                m.end()
                            ),
                        );
                    }
                });
            }
        }
    }
}
