//! `Crash`: a power cut at the op's commit point, then a mount (SPEC.md "Durability").
//!
//! Owns the one rule that turns the whole in-memory state into what stable storage holds, and
//! the fate of each in-flight IO at the cut ([`Landing`], chosen by the op's arguments through
//! [`CrashChoice`]). The model keeps no second copy of the metadata: every metadata change is
//! durable when the step that makes it commits (the log is forced at every transaction commit),
//! so what a crash loses is exactly what SPEC.md calls memory-only: the page cache (dirty data, a
//! journaled-data file's running transaction), delalloc reservations, the recorded writeback
//! errors, the in-memory size beyond the size on disk, and every in-flight IO that does not land
//! (or lands torn).
//!
//! The crash is split in two so that a concurrent run's replay can take it step by step: each
//! in-flight IO's landing, oldest first ([`RefFs::land_oldest`]), then the memory loss and the
//! mount ([`RefFs::power_cut`]). A sequential crash is the two in a row.
//!
//! Invariants after a crash: nothing is cached, nothing is in flight, no block is `Delalloc`,
//! `reserved == 0`, and every file's size equals its size on disk.

use super::file::Block;
use super::io::InflightIo;
use super::RefFs;
use crate::state::ExtentState;
use crate::Violation;

/// What the power cut does to one in-flight IO.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Landing {
    /// It reached the disk whole and completed (as `CompleteIo` completes it).
    Whole,
    /// Nothing of it reached the disk.
    Lost,
    /// Torn: the blocks in the mask (bit `i` = block `i` of its folio) reached the disk, the
    /// others did not, and the IO never completed (no conversion, no size on disk).
    Torn(u32),
}

/// The crash's arguments, read IO by IO in FIFO order: which IO is torn or lands, and the
/// stream of per-block bits of torn IOs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CrashChoice {
    land: u32,
    torn: u32,
    tear: u64,
    /// IOs decided so far.
    k: u32,
    /// Bits of `tear` used so far.
    used: u32,
    /// IOs that landed whole so far.
    pub whole: u64,
}

impl CrashChoice {
    /// The choice of `Crash { land, torn, tear }`, before its first IO.
    pub fn new(land: u32, torn: u32, tear: u64) -> CrashChoice {
        CrashChoice {
            land,
            torn,
            tear,
            ..CrashChoice::default()
        }
    }

    /// The fate of the next IO, whose blocks sit at these slots of its folio (in block order),
    /// and moves on to the one after.
    pub fn next(&mut self, slots: impl IntoIterator<Item = u64>) -> Landing {
        let k = self.k;
        self.k = self.k.saturating_add(1);
        let bit = |mask: u32| k < 32 && mask & (1 << k) != 0;
        if bit(self.torn) {
            let mut landed = 0u32;
            for s in slots {
                if self.used < 64 && self.tear & (1 << self.used) != 0 {
                    landed |= 1 << s;
                }
                self.used = self.used.saturating_add(1);
            }
            Landing::Torn(landed)
        } else if bit(self.land) {
            self.whole += 1;
            Landing::Whole
        } else {
            Landing::Lost
        }
    }

    /// [`CrashChoice::next`] without moving on.
    pub fn peek(&self, slots: impl IntoIterator<Item = u64>) -> Landing {
        let mut c = *self;
        c.next(slots)
    }
}

impl RefFs {
    /// Step (`Crash { land, torn, tear }`): every in-flight IO, oldest first, meets its
    /// [`Landing`]; then memory is lost and the filesystem mounts again. Returns the number of
    /// IOs that landed whole.
    pub fn crash(&mut self, land: u32, torn: u32, tear: u64) -> u64 {
        let mut choice = CrashChoice::new(land, torn, tear);
        while let Some(slots) = self.oldest_slots() {
            let how = choice.next(slots);
            self.land_oldest(how);
        }
        self.power_cut();
        choice.whole
    }

    /// The folio slots of the oldest in-flight IO's blocks, in block order.
    pub(super) fn oldest_slots(&self) -> Option<Vec<u64>> {
        let bpf = self.bpf();
        let io = self.inflight.front()?;
        Some(io.blocks.iter().map(|&(b, _)| b - io.folio * bpf).collect())
    }

    /// The oldest in-flight IO meets its fate at the power cut. `false` if nothing is in flight.
    pub(super) fn land_oldest(&mut self, how: Landing) -> bool {
        let Some(io) = self.inflight.pop_front() else {
            return false;
        };
        match how {
            Landing::Whole => {
                self.complete(io);
            }
            Landing::Lost => self.end_writeback(&io),
            Landing::Torn(landed) => {
                self.tear(&io, landed);
                self.end_writeback(&io);
            }
        }
        true
    }

    /// A torn IO's landed blocks: the device writes what the folio holds now, as a completion
    /// would, but only if every block of the IO still matches its checksum (the device checks
    /// the IO as a whole, as at completion); nothing else changes.
    fn tear(&mut self, io: &InflightIo, landed: u32) {
        let fi = io.file;
        let bpf = self.bpf();
        let Some(data) = self.files[fi].folios.get(&io.folio) else {
            return;
        };
        let bad = io
            .blocks
            .iter()
            .find(|&&(b, crc)| crate::crc32c(&data[self.block_slice(b)]) != crc);
        if let Some(&(b, _)) = bad {
            self.found.push(Violation {
                name: "checksum-mismatch",
                detail: format!(
                    "file {fi} folio {} block {b}: data changed between submit and the torn landing",
                    io.folio
                ),
            });
            return;
        }
        let writes: Vec<(u64, Vec<u8>)> = io
            .blocks
            .iter()
            .filter(|&&(b, _)| landed & (1 << (b - io.folio * bpf)) != 0)
            .filter_map(|&(b, _)| {
                let p = self.files[fi].block(b).phys?;
                Some((p, data[self.block_slice(b)].to_vec()))
            })
            .collect();
        for (p, bytes) in writes {
            self.space.write_block(p, &bytes);
        }
    }

    /// An IO that did not complete: its blocks' writeback ends, nothing else changes.
    fn end_writeback(&mut self, io: &InflightIo) {
        for &(b, _) in &io.blocks {
            self.files[io.file].block_mut(b).writeback = false;
        }
    }

    /// The power cut's memory loss and the mount, once no IO is in flight (SPEC.md "Crash").
    pub(super) fn power_cut(&mut self) {
        let mut released = 0;
        let bs = self.bs();
        for f in &mut self.files {
            for b in 0..f.block_len() {
                let m = f.block_mut(b);
                if m.extent == ExtentState::Delalloc {
                    *m = Block::HOLE;
                    released += 1;
                }
                m.dirty = false;
                m.writeback = false;
            }
            f.folios.clear();
            f.wb_error = None;
            f.size = f.disk_size;
            f.trim();
            // A torn IO may have put bytes past the recovered size into the EOF block on disk
            // (it landed, its size update did not); past EOF reads as zero again (SPEC, Crash).
            let (eof, tail) = (f.size / bs, (f.size % bs) as usize);
            if let (true, ExtentState::Written, Some(p)) =
                (tail != 0, f.block(eof).extent, f.block(eof).phys)
            {
                let mut buf = vec![0u8; bs as usize];
                self.space.read_block(p, &mut buf);
                if buf[tail..].iter().any(|&x| x != 0) {
                    buf[tail..].fill(0);
                    self.space.write_block(p, &buf);
                }
            }
        }
        self.space.release(released);
    }
}
