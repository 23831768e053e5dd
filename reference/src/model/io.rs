//! Page cache fill, writeback, IO completion and the journal: the steps every op that reads or
//! writes back the cache is built from (SPEC.md "Cache", "Writeback of one folio",
//! "IO completion", "Journal").
//!
//! Owns the global in-flight FIFO ([`InflightIo`]). Invariants: a block has `writeback` set
//! exactly while it belongs to an IO in the FIFO; a folio has at most one IO in flight (writeback
//! of a folio under writeback waits for it first); journaled-data files never have IO in flight.

use super::buffers::Bytes;
use super::RefFs;
use crate::config::Policy;
use crate::errno::Errno;
use crate::op::FileId;
use crate::state::{ExtentState, Violation};

/// One submitted, not yet completed IO: one folio's dirty blocks with the CRC32C of each block
/// computed at submit.
#[derive(Clone, Debug)]
pub(crate) struct InflightIo {
    /// File index.
    pub file: usize,
    /// Folio index.
    pub folio: u64,
    /// (file block, CRC32C of its bytes at submit), in block order.
    pub blocks: Vec<(u64, u32)>,
}

/// How an IO completion went.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Completion {
    /// Every checksum matched: the disk holds the data, `Unwritten` blocks are `Written`.
    Written,
    /// A checksum did not match: nothing was written and EIO is recorded on the file.
    Rejected,
}

impl RefFs {
    /// Step: instantiates folio `folio` of `file` if it is not cached, reading every block from
    /// the mapping (`Written` from disk, every other state as zeros). Never dirties, never fails;
    /// a folio past the maximum file size is left alone.
    pub fn instantiate_folio(&mut self, file: FileId, folio: u64) {
        let Some(fi) = self.fid(file) else { return };
        // A folio wholly past the maximum file size can hold no byte of the file; refusing it
        // keeps every cached folio index (and arithmetic on it) small.
        if self.files[fi].is_cached(folio) || folio >= self.max_size() / self.fsz() {
            return;
        }
        let first = folio.saturating_mul(self.bpf());
        let data = Bytes::filled(self.fsz() as usize, |data, zeroed| {
            for b in first..first.saturating_add(self.bpf()) {
                let blk = self.files[fi].block(b);
                let range = self.block_slice(b);
                match (blk.extent, blk.phys) {
                    (ExtentState::Written, Some(p)) => self.space.read_block(p, &mut data[range]),
                    _ if !zeroed => data[range].fill(0),
                    _ => {}
                }
            }
        });
        let folio_bytes = super::file::FolioBytes::new(data, self.bs() as usize);
        // Each block's digest is known already (the disk's, or a zero block's): the comparison
        // of this folio then hashes only the blocks a write changes.
        for (i, b) in (first..first.saturating_add(self.bpf())).enumerate() {
            let blk = self.files[fi].block(b);
            let known = match (blk.extent, blk.phys) {
                (ExtentState::Written, Some(p)) => self.space.digest(p),
                _ => Some(self.zero_digest),
            };
            if let Some(d) = known {
                folio_bytes.know(i, d);
            }
        }
        self.files[fi].folios.insert(folio, folio_bytes);
    }

    /// Step: writes back folio `folio` of `file` (SPEC.md "Writeback of one folio").
    ///
    /// `Ok(true)`: an IO was submitted. `Ok(false)`: the folio is not cached or has no dirty
    /// block, nothing done (a clean folio under writeback is skipped, not waited for, as
    /// background writeback only looks at dirty folios). `Err(e)`: allocating its delalloc blocks
    /// failed; `e` is recorded on the file and the policy applied.
    ///
    /// On a journaled-data file writeback is a journal commit of the whole transaction:
    /// `Ok(true)` if it committed any block.
    pub fn writeback_folio(&mut self, file: FileId, folio: u64) -> Result<bool, Errno> {
        let Some(fi) = self.fid(file) else {
            return Err(Errno::Einval);
        };
        if self.files[fi].jdata {
            return Ok(self.journal_commit(file) > 0);
        }
        if !self.files[fi].is_cached(folio) {
            return Ok(false);
        }
        let first = folio * self.bpf();
        let last = first + self.bpf();
        if self.files[fi].count(first, last, |b| b.dirty) == 0 {
            return Ok(false);
        }
        // Only reachable with a dirty block under writeback, which correct code never makes;
        // SPEC.md: a folio already under writeback is first waited for.
        if self.files[fi].count(first, last, |b| b.writeback) > 0 {
            self.wait_writeback(file, folio);
        }

        // 1. If any dirty block is delalloc, allocate every delalloc block of the folio, as a
        // unit (SPEC.md). A clean delalloc block is the reservation of a buffered write still
        // copying (concurrent runs only): alone it does not make the folio allocate.
        let delalloc: Vec<u64> = (first..last)
            .filter(|&b| self.files[fi].block(b).extent == ExtentState::Delalloc)
            .collect();
        let dirty_delalloc = delalloc.iter().any(|&b| self.files[fi].block(b).dirty);
        if dirty_delalloc {
            let n = delalloc.len() as u64;
            // The reservation already holds the space, so ENOSPC means broken accounting; it is
            // handled like any allocation failure (SPEC.md).
            let check = if self.space.reserved < n {
                Err(Errno::Enospc)
            } else if self.space.corrupt {
                Err(Errno::Efscorrupted)
            } else {
                Ok(())
            };
            if let Err(e) = check {
                self.writeback_failed(fi, folio, e);
                return Err(e);
            }
            for b in delalloc {
                let p = self.space.alloc_from_reserved();
                let blk = self.files[fi].block_mut(b);
                blk.extent = ExtentState::Unwritten;
                blk.phys = Some(p);
            }
        }

        // 2. Submit one IO with the dirty blocks and their checksums computed now.
        let mut blocks = Vec::new();
        for b in first..last {
            if !self.files[fi].block(b).dirty {
                continue;
            }
            let crc = match self.files[fi].folios.get(&folio) {
                Some(data) => data.digest((b % self.bpf()) as usize),
                None => 0,
            };
            let blk = self.files[fi].block_mut(b);
            blk.dirty = false;
            blk.writeback = true;
            blocks.push((b, crc));
        }
        self.inflight.push_back(InflightIo {
            file: fi,
            folio,
            blocks,
        });
        Ok(true)
    }

    /// A folio's writeback could not allocate: record `e` and apply the policy.
    fn writeback_failed(&mut self, fi: usize, folio: u64, e: Errno) {
        self.files[fi].record_error(e);
        match self.policy {
            Policy::KeepDirty => {}
            Policy::Invalidate => {
                // Punch this folio's delalloc blocks (only this folio's) and drop the folio with
                // all its dirty data. Only dirty delalloc blocks: sequentially every delalloc
                // block is dirty; in a concurrent run a clean one is the reservation of a buffered
                // write still copying (see `reserve_write`), which keeps it and dirties it later.
                let first = folio * self.bpf();
                let (file, space) = (&mut self.files[fi], &mut self.space);
                for b in first..first + self.geo.blocks_per_folio() {
                    if file.block(b).extent == ExtentState::Delalloc && file.block(b).dirty {
                        space.release(1);
                        file.block_mut(b).extent = ExtentState::Hole;
                    }
                    if file.block(b).dirty {
                        file.block_mut(b).dirty = false;
                    }
                }
                file.folios.remove(&folio);
                file.trim();
            }
        }
    }

    /// Completes `io`: DMA from the folio memory now, checksum check, disk write and unwritten
    /// conversion, or rejection with EIO recorded.
    pub(super) fn complete(&mut self, io: InflightIo) -> Completion {
        let fi = io.file;
        // Everything below changes this folio's blocks only (and the disk blocks they map).
        let bpf = self.bpf();
        self.completed_io = true;
        let mut bad = None;
        match self.files[fi].folios.get(&io.folio) {
            Some(data) => {
                // The folio's digest of the block (kept true by `FolioBytes`: any write since
                // the submit forgot it) against the checksum taken at submit.
                for &(b, crc) in &io.blocks {
                    if data.digest((b % bpf) as usize) != crc {
                        bad = Some(b);
                        break;
                    }
                }
            }
            // Cannot happen: nothing drops a folio under writeback. Treat as a rejected IO.
            None => bad = io.blocks.first().map(|&(b, _)| b).or(Some(0)),
        }
        if let Some(b) = bad {
            self.found.push(Violation {
                name: "checksum-mismatch",
                detail: format!(
                    "file {fi} folio {} block {b}: data changed between submit and IO completion",
                    io.folio
                ),
            });
            for &(b, _) in &io.blocks {
                self.files[fi].block_mut(b).writeback = false;
            }
            self.files[fi].record_error(Errno::Eio);
            return Completion::Rejected;
        }
        for &(b, _) in &io.blocks {
            let range = self.block_slice(b);
            let file = &mut self.files[fi];
            let blk = file.block(b);
            if let (Some(p), Some(data)) = (blk.phys, file.folios.get(&io.folio)) {
                let d = data.digest((b % bpf) as usize);
                self.space.write_block_digested(p, &data[range], d);
            }
            let m = file.block_mut(b);
            if m.extent == ExtentState::Unwritten {
                m.extent = ExtentState::Written;
            }
            m.writeback = false;
        }
        // The size update is logged at IO completion, never before (SPEC.md "Durability"):
        // `xfs_end_ioend` sets di_size to the end of the completed IO, clipped to i_size.
        if let Some(&(last, _)) = io.blocks.last() {
            let bs = self.bs();
            let file = &mut self.files[fi];
            let end = ((last + 1) * bs).min(file.size);
            file.disk_size = file.disk_size.max(end);
        }
        Completion::Written
    }

    /// Step (`CompleteIo`): completes the oldest in-flight IO. `None` if none is in flight.
    pub fn complete_oldest_io(&mut self) -> Option<Completion> {
        let io = self.inflight.pop_front()?;
        Some(self.complete(io))
    }

    /// Step: completes the in-flight IO of folio `folio` of `file`, out of FIFO order (a wait for
    /// writeback: the device is always ready). `None` if the folio has no IO in flight.
    pub fn complete_io_of(&mut self, file: FileId, folio: u64) -> Option<Completion> {
        let fi = self.fid(file)?;
        let pos = self
            .inflight
            .iter()
            .position(|io| io.file == fi && io.folio == folio)?;
        let io = self.inflight.remove(pos)?;
        Some(self.complete(io))
    }

    /// Step: waits for writeback on one folio, i.e. [`RefFs::complete_io_of`] ignoring how it went
    /// (an EIO is recorded on the file either way).
    pub fn wait_writeback(&mut self, file: FileId, folio: u64) {
        self.complete_io_of(file, folio);
    }

    /// Step: waits for writeback on every folio overlapping `[off, off+len)`, in index order.
    /// Returns the first rejected completion as `EIO` (what a flush that waits reports).
    pub fn wait_range(&mut self, file: FileId, off: u64, len: u64) -> Result<(), Errno> {
        let Some(fi) = self.fid(file) else {
            return Err(Errno::Einval);
        };
        if len == 0 {
            return Ok(());
        }
        let (first, last) = self.folios_overlapping(off, off.saturating_add(len));
        let mut result = Ok(());
        for f in self.files[fi].cached_in(first, last) {
            if self.complete_io_of(file, f) == Some(Completion::Rejected) && result.is_ok() {
                result = Err(Errno::Eio);
            }
        }
        result
    }

    /// Step: waits for (completes) every in-flight IO of `file`, oldest first.
    pub fn wait_file_io(&mut self, file: FileId) {
        let Some(fi) = self.fid(file) else { return };
        while let Some(pos) = self.inflight.iter().position(|io| io.file == fi) {
            if let Some(io) = self.inflight.remove(pos) {
                self.complete(io);
            }
        }
    }

    /// Step: commits the journal transaction of a journaled-data file: every logged (dirty) block
    /// is written in place, `Unwritten` becomes `Written`, the blocks become clean. Returns the
    /// number of blocks committed; 0 on an ordinary file (a no-op). Never fails.
    pub fn journal_commit(&mut self, file: FileId) -> u64 {
        let Some(fi) = self.fid(file) else { return 0 };
        if !self.files[fi].jdata {
            return 0;
        }
        let bpf = self.bpf();
        let mut committed = 0;
        // Dirty blocks are always cached, so the cached folios are all there is to look at.
        for f in self.files[fi].cached_in(0, u64::MAX) {
            for b in f * bpf..(f + 1) * bpf {
                let blk = self.files[fi].block(b);
                if !blk.dirty {
                    continue;
                }
                let range = self.block_slice(b);
                if let (Some(p), Some(data)) = (blk.phys, self.files[fi].folios.get(&f)) {
                    let d = data.digest((b % bpf) as usize);
                    self.space.write_block_digested(p, &data[range], d);
                }
                let m = self.files[fi].block_mut(b);
                if m.extent == ExtentState::Unwritten {
                    m.extent = ExtentState::Written;
                }
                m.dirty = false;
                committed += 1;
            }
        }
        // The running transaction carries the inode's size with the data (ext4 data=journal
        // updates i_disksize in the write's handle): committing makes it durable.
        let f = &mut self.files[fi];
        f.disk_size = f.size;
        committed
    }

    /// Step: the flush of an O_SYNC write or a direct IO: writes back every cached folio
    /// overlapping `[off, off+len)` in index order (journaled data: a commit), continuing after
    /// failures, then waits for those folios' IO. Returns the first error of this flush
    /// (allocation failure, or EIO at a waited completion); errors also stay recorded.
    pub fn flush_range(&mut self, file: FileId, off: u64, len: u64) -> Result<(), Errno> {
        let Some(fi) = self.fid(file) else {
            return Err(Errno::Einval);
        };
        if len == 0 {
            return Ok(());
        }
        if self.files[fi].jdata {
            self.journal_commit(file);
            return Ok(());
        }
        let (first, last) = self.folios_overlapping(off, off.saturating_add(len));
        let mut result = Ok(());
        for f in self.files[fi].cached_in(first, last) {
            if let Err(e) = self.writeback_folio(file, f) {
                if result.is_ok() {
                    result = Err(e);
                }
            }
        }
        let waited = self.wait_range(file, off, len);
        result.and(waited)
    }

    /// Step: fsync's (and eviction's) writeback: every dirty folio of the file, continuing after
    /// failures (journaled data: a commit). Errors are recorded, not returned.
    pub fn writeback_file(&mut self, file: FileId) {
        let Some(fi) = self.fid(file) else { return };
        if self.files[fi].jdata {
            self.journal_commit(file);
            return;
        }
        for f in self.files[fi].cached_in(0, u64::MAX) {
            // Errors are recorded on the file by writeback itself.
            let _ = self.writeback_folio(file, f);
        }
    }

    /// Step: takes the recorded writeback error, clearing it (what fsync reports).
    pub fn take_wb_error(&mut self, file: FileId) -> Option<Errno> {
        let fi = self.fid(file)?;
        self.files[fi].wb_error.take()
    }

    /// Step: the end of fsync: the recorded error, cleared, or `Done(0)`. On success the log
    /// force makes the size durable and the file's contents are what fsync promised (SPEC.md
    /// "Durability"): the promise of `fsync-durable` is taken here.
    pub fn fsync_finish(&mut self, file: FileId) -> crate::op::Outcome {
        match self.take_wb_error(file) {
            Some(e) => crate::op::Outcome::Err(e),
            None => {
                self.take_promise(file);
                crate::op::Outcome::Done(0)
            }
        }
    }

    /// Step: the end of an O_SYNC write (`vfs_fsync_range`): the recorded error, cleared; on
    /// success the size is durable (the log force of `xfs_file_fsync`).
    pub fn sync_finish(&mut self, file: FileId) -> Option<Errno> {
        let fi = self.fid(file)?;
        let e = self.files[fi].wb_error.take();
        if e.is_none() {
            let f = &mut self.files[fi];
            f.disk_size = f.size;
        }
        e
    }

    /// A successful fsync of `file`: the size is durable, and so is every `Written` block below
    /// it (its IO completed in the fsync, or earlier); the promise records where they are. A block
    /// that is dirty or under writeback again (a concurrent write between the fsync's waits and
    /// its report) is not promised: its disk bytes are about to change. The promise holds no
    /// bytes: the oracle compares contents with the other model; this names the loss.
    fn take_promise(&mut self, file: FileId) {
        let Some(fi) = self.fid(file) else { return };
        let bs = self.bs();
        let f = &self.files[fi];
        let mut promise: Vec<(u64, u64, u64)> = Vec::new();
        for b in 0..f.size.div_ceil(bs).min(f.block_len()) {
            let blk = f.block(b);
            if blk.dirty || blk.writeback {
                continue;
            }
            if let (ExtentState::Written, Some(p)) = (blk.extent, blk.phys) {
                match promise.last_mut() {
                    Some((s, e, p0)) if *e == b && *p0 + (b - *s) == p => *e = b + 1,
                    _ => promise.push((b, b + 1, p)),
                }
            }
        }
        let f = &mut self.files[fi];
        f.disk_size = f.size;
        f.promise = promise;
        f.promised_size = f.size;
    }
}
