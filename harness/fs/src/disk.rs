//! The device: physical block number -> block contents, sparse. A block not written since it was
//! last free holds stale bytes (`vocab::stale_byte`, SPEC.md "Durability"); freed blocks are
//! discarded back to that, so memory follows the live data.
//!
//! Owns: the bytes on disk. Invariants: every stored block is exactly `bs` bytes.
//! Locks: one RwLock, a leaf: taken after every lock but the folio lock word and the commit log
//! (lock order, `lib.rs`), and nothing is taken inside it.

use super::sync::{LockClass, RwLock};
use std::collections::BTreeMap;

/// The block device.
pub struct Disk {
    bs: usize,
    blocks: RwLock<BTreeMap<u64, Box<[u8]>>>,
}

impl Disk {
    /// A device of stale of `bs`-byte blocks.
    pub fn new(bs: usize) -> Self {
        Disk {
            bs,
            blocks: RwLock::new(LockClass::Disk, BTreeMap::new()),
        }
    }

    /// Copies block `phys` into `out` (`bs` bytes).
    #[track_caller]
    pub fn read(&self, phys: u64, out: &mut [u8]) {
        match self.blocks.read().get(&phys) {
            Some(b) => out.copy_from_slice(&b[..out.len()]),
            None => out.fill(vocab::stale_byte(phys)),
        }
    }

    /// Calls `f` with block `phys`'s bytes under the read lock (`None`: not written since it was
    /// last free: stale bytes).
    #[track_caller]
    pub fn with_block<R>(&self, phys: u64, f: impl FnOnce(Option<&[u8]>) -> R) -> R {
        f(self.blocks.read().get(&phys).map(|b| &b[..]))
    }

    /// The blocks of `[start, start+len)` not written since they were last free (they hold
    /// stale bytes), under one lock hold.
    pub fn stale_in(&self, start: u64, len: u64) -> Vec<u64> {
        let g = self.blocks.read();
        let end = start.saturating_add(len);
        let mut held = g.range(start..end).map(|(&k, _)| k).peekable();
        (start..end)
            .filter(|&b| held.next_if_eq(&b).is_none())
            .collect()
    }

    /// Writes `data` (`bs` bytes) to block `phys`.
    #[track_caller]
    pub fn write(&self, phys: u64, data: &[u8]) {
        debug_assert_eq!(data.len(), self.bs, "disk writes are whole blocks");
        let mut g = self.blocks.write();
        match g.get_mut(&phys) {
            Some(b) => b.copy_from_slice(data),
            None => {
                g.insert(phys, data.to_vec().into_boxed_slice());
            }
        }
    }

    /// Writes several blocks under one lock hold.
    #[track_caller]
    pub fn write_many<'a>(&self, blocks: impl IntoIterator<Item = (u64, &'a [u8])>) {
        let mut g = self.blocks.write();
        for (phys, data) in blocks {
            match g.get_mut(&phys) {
                Some(b) => b.copy_from_slice(data),
                None => {
                    g.insert(phys, data.to_vec().into_boxed_slice());
                }
            }
        }
    }

    /// Discards `[start, start+len)` (freed blocks).
    #[track_caller]
    pub fn discard(&self, start: u64, len: u64) {
        let mut g = self.blocks.write();
        let end = start.saturating_add(len);
        let keys: Vec<u64> = g.range(start..end).map(|(&k, _)| k).collect();
        for k in keys {
            g.remove(&k);
        }
    }
}
