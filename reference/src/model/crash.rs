//! `Crash`: a power cut at the op's commit point, then a mount (SPEC.md "Durability").
//!
//! Owns the one rule that turns the whole in-memory state into what stable storage holds. The
//! model keeps no second copy of the metadata: every metadata change is durable when the step
//! that makes it commits (the log is forced at every transaction commit), so what a crash loses
//! is exactly what SPEC.md calls memory-only: the page cache (dirty data, a journaled-data file's
//! running transaction), delalloc reservations, the recorded writeback errors, the in-memory
//! size beyond the size on disk, and every in-flight IO that does not land.
//!
//! Invariants after a crash: nothing is cached, nothing is in flight, no block is `Delalloc`,
//! `reserved == 0`, and every file's size equals its size on disk.

use super::file::Block;
use super::RefFs;
use crate::state::ExtentState;

impl RefFs {
    /// Step (`Crash { land }`): the `k`-th oldest in-flight IO lands (completes as usual: disk
    /// written, unwritten blocks converted, size on disk extended) if bit `k` of `land` is set;
    /// the others never reach the disk (their blocks keep their extent state and the disk its old
    /// bytes). Then memory is lost and the filesystem mounts again. Returns the number of IOs
    /// that landed.
    pub fn crash(&mut self, land: u32) -> u64 {
        let ios: Vec<_> = self.inflight.drain(..).collect();
        let mut landed = 0;
        for (k, io) in ios.into_iter().enumerate() {
            if k < 32 && land & (1 << k) != 0 {
                self.complete(io);
                landed += 1;
            } else {
                for &(b, _) in &io.blocks {
                    self.files[io.file].block_mut(b).writeback = false;
                }
            }
        }
        let mut released = 0;
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
        }
        self.space.release(released);
        landed
    }
}
