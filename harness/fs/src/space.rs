//! Filesystem-wide block accounting (the `xfs_mod_fdblocks` percpu counters): free, reserved
//! (delalloc) and allocated blocks.
//!
//! Owns: the three counters. Invariants: `free + reserved + allocated == capacity` whenever no
//! transfer is half done; every transfer is one compare-and-swap on `free` (the space check) plus
//! an add to the other side, so a check never sees more free space than exists.
//! Locks: none (atomics). Reservations happen under ILOCK, allocations under ILOCK + allocator
//! lock, but the counters do not rely on either.

use super::sync::{AtomicU64, Ordering};

/// The counters.
pub struct Space {
    free: AtomicU64,
    reserved: AtomicU64,
    allocated: AtomicU64,
}

/// Not enough free blocks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NoSpace;

impl Space {
    /// All `capacity` blocks free.
    pub fn new(capacity: u64) -> Self {
        Space {
            free: AtomicU64::new(capacity),
            reserved: AtomicU64::new(0),
            allocated: AtomicU64::new(0),
        }
    }

    /// Takes `n` from `free` if at least `n` are free.
    fn take(&self, n: u64) -> Result<(), NoSpace> {
        if n == 0 {
            return Ok(());
        }
        let mut cur = self.free.load(Ordering::SeqCst);
        loop {
            if cur < n {
                return Err(NoSpace);
            }
            match self
                .free
                .compare_exchange(cur, cur - n, Ordering::SeqCst, Ordering::SeqCst)
            {
                Ok(_) => return Ok(()),
                Err(now) => cur = now,
            }
        }
    }

    /// Delalloc reservation: `free -> reserved`.
    pub fn reserve(&self, n: u64) -> Result<(), NoSpace> {
        self.take(n)?;
        self.reserved.fetch_add(n, Ordering::SeqCst);
        Ok(())
    }

    /// Releases a delalloc reservation: `reserved -> free`.
    pub fn unreserve(&self, n: u64) {
        if n > 0 {
            self.reserved.fetch_sub(n, Ordering::SeqCst);
            self.free.fetch_add(n, Ordering::SeqCst);
        }
    }

    /// A non-delalloc allocation's space check and accounting: `free -> allocated`.
    pub fn take_for_alloc(&self, n: u64) -> Result<(), NoSpace> {
        self.take(n)?;
        self.allocated.fetch_add(n, Ordering::SeqCst);
        Ok(())
    }

    /// Undoes [`Space::take_for_alloc`] when the allocation itself then failed.
    pub fn untake_for_alloc(&self, n: u64) {
        self.free_allocated(n)
    }

    /// Delalloc conversion: `reserved -> allocated`.
    pub fn convert_reserved(&self, n: u64) {
        if n > 0 {
            self.reserved.fetch_sub(n, Ordering::SeqCst);
            self.allocated.fetch_add(n, Ordering::SeqCst);
        }
    }

    /// Freeing allocated blocks: `allocated -> free`.
    pub fn free_allocated(&self, n: u64) {
        if n > 0 {
            self.allocated.fetch_sub(n, Ordering::SeqCst);
            self.free.fetch_add(n, Ordering::SeqCst);
        }
    }

    /// ZeroRange's settlement, after its space check reserved `held` blocks: frees `a` allocated
    /// blocks, releases `d` reservations and the hold, and allocates `w` blocks. Infallible when
    /// the check held `w - a - d` (or more); clamps rather than wrap if a caller got it wrong.
    pub fn settle_zero(&self, a: u64, d: u64, w: u64, held: u64) {
        let mut cur = self.free.load(Ordering::SeqCst);
        loop {
            let new = (cur + held + a + d).saturating_sub(w);
            match self
                .free
                .compare_exchange(cur, new, Ordering::SeqCst, Ordering::SeqCst)
            {
                Ok(_) => break,
                Err(now) => cur = now,
            }
        }
        self.reserved.fetch_sub(held + d, Ordering::SeqCst);
        self.allocated.fetch_add(w, Ordering::SeqCst);
        self.allocated.fetch_sub(a, Ordering::SeqCst);
    }

    /// `(free, reserved, allocated)`.
    pub fn get(&self) -> (u64, u64, u64) {
        (
            self.free.load(Ordering::SeqCst),
            self.reserved.load(Ordering::SeqCst),
            self.allocated.load(Ordering::SeqCst),
        )
    }
}
