//! The device: physical block number -> block contents, sparse. A block not written since it was
//! last free holds stale bytes (`vocab::stale_byte`, SPEC.md "Durability"); freed blocks are
//! discarded back to that, so memory follows the live data.
//!
//! Owns: the bytes on disk and their digests. Invariants: every stored block is exactly `bs`
//! bytes and carries [`vocab::block_digest`] of them, set by the write that stored them.
//! Locks: one RwLock, a leaf: taken after every lock but the folio lock word and the commit log
//! (lock order, `lib.rs`), and nothing is taken inside it.

use super::change_log::ChangeLog;
use super::sync::{LockClass, RwLock};
use std::collections::btree_map::Entry;
use std::collections::BTreeMap;

/// The block device.
pub struct Disk {
    bs: usize,
    blocks: RwLock<BTreeMap<u64, Stored>>,
    /// Physical blocks written or discarded since the oracle last asked (`Fs::take_changed`):
    /// `blocks` is private and changed only by the three writers below, which note what they
    /// change.
    pub log: ChangeLog,
}

/// One written block: its bytes and their digest.
struct Stored {
    bytes: Box<[u8]>,
    digest: u32,
}

/// Stores `data` with its `digest` as block `phys` of `map`, reusing the block's memory.
fn store(map: &mut BTreeMap<u64, Stored>, phys: u64, data: &[u8], digest: u32) {
    match map.entry(phys) {
        Entry::Occupied(mut e) => {
            let b = e.get_mut();
            b.bytes.copy_from_slice(data);
            b.digest = digest;
        }
        Entry::Vacant(v) => {
            v.insert(Stored {
                bytes: data.to_vec().into_boxed_slice(),
                digest,
            });
        }
    }
}

impl Disk {
    /// A device of stale of `bs`-byte blocks.
    pub fn new(bs: usize) -> Self {
        Disk {
            bs,
            blocks: RwLock::new(LockClass::Disk, BTreeMap::new()),
            log: ChangeLog::default(),
        }
    }

    /// Copies block `phys` into `out` (`bs` bytes).
    #[track_caller]
    pub fn read(&self, phys: u64, out: &mut [u8]) {
        self.read_digested(phys, out);
    }

    /// [`Disk::read`], also giving the block's digest (`None`: stale bytes, not written since
    /// it was last free).
    #[track_caller]
    pub fn read_digested(&self, phys: u64, out: &mut [u8]) -> Option<u32> {
        match self.blocks.read().get(&phys) {
            Some(b) => {
                out.copy_from_slice(&b.bytes[..out.len()]);
                Some(b.digest)
            }
            None => {
                out.fill(vocab::stale_byte(phys));
                None
            }
        }
    }

    /// Calls `f` with the bytes of each block of `[start, start+len)` in order, under one read
    /// lock hold (`None`: not written since it was last free: stale bytes).
    #[track_caller]
    pub fn with_blocks(&self, start: u64, len: u64, mut f: impl FnMut(u64, Option<&[u8]>)) {
        let g = self.blocks.read();
        for p in start..start.saturating_add(len) {
            f(p, g.get(&p).map(|b| &b.bytes[..]));
        }
    }

    /// Pushes onto `out` the digest of each block of `[start, start+len)`, under one lock hold and
    /// one walk of the map (a block not written since it was last free: its stale bytes' digest).
    pub fn digests_into(&self, start: u64, len: u64, out: &mut Vec<Option<u32>>) {
        let g = self.blocks.read();
        let end = start.saturating_add(len);
        let mut held = g.range(start..end).peekable();
        for p in start..end {
            let d = match held.next_if(|(&k, _)| k == p) {
                Some((_, b)) => b.digest,
                None => vocab::block_digest(&vec![vocab::stale_byte(p); self.bs]),
            };
            out.push(Some(d));
        }
    }

    /// Sets `out[k]` to the digest of block `start + k` (`None`: not written since it was last
    /// free), under one lock hold and one walk of the map.
    pub fn digests_of(&self, start: u64, out: &mut [Option<u32>]) {
        let g = self.blocks.read();
        let end = start.saturating_add(out.len() as u64);
        out.fill(None);
        for (&p, b) in g.range(start..end) {
            out[(p - start) as usize] = Some(b.digest);
        }
    }

    /// Whether every block of `[start, start+len)` was written since it was last free (none
    /// holds stale bytes), under one lock hold and without a list.
    pub fn all_written(&self, start: u64, len: u64) -> bool {
        let end = start.saturating_add(len);
        self.blocks.read().range(start..end).count() as u64 == end - start
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
        let digest = vocab::block_digest(data);
        store(&mut self.blocks.write(), phys, data, digest);
        self.log.note(phys, phys.saturating_add(1));
    }

    /// Writes several blocks, each with its digest (the writeback checksum, already known),
    /// under one lock hold.
    #[track_caller]
    pub fn write_many<'a>(&self, blocks: impl IntoIterator<Item = (u64, &'a [u8], u32)>) {
        let mut g = self.blocks.write();
        // Noted as runs of contiguous blocks, one note per run.
        let mut run: Option<(u64, u64)> = None;
        for (phys, data, digest) in blocks {
            debug_assert_eq!(
                digest,
                vocab::block_digest(data),
                "digest of the written bytes"
            );
            store(&mut g, phys, data, digest);
            run = match run {
                Some((lo, hi)) if hi == phys => Some((lo, hi + 1)),
                Some((lo, hi)) => {
                    self.log.note(lo, hi);
                    Some((phys, phys.saturating_add(1)))
                }
                None => Some((phys, phys.saturating_add(1))),
            };
        }
        if let Some((lo, hi)) = run {
            self.log.note(lo, hi);
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
        self.log.note(start, end);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn taken(d: &Disk) -> Vec<(u64, u64)> {
        let mut v = Vec::new();
        d.log.take(|lo, hi| v.push((lo, hi)));
        v
    }

    #[test]
    fn every_writer_notes_what_it_changed() {
        let d = Disk::new(16);
        let b = [7u8; 16];
        let crc = vocab::block_digest(&b);
        d.write_many([5, 6, 7, 9].map(|p| (p, &b[..], crc)));
        assert_eq!(
            taken(&d),
            vec![(5, 8), (9, 10)],
            "one note per contiguous run"
        );
        d.write(2, &b);
        d.discard(6, 2);
        assert_eq!(taken(&d), vec![(2, 3), (6, 8)]);
        assert_eq!(taken(&d), vec![]);
    }
}
