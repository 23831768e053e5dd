//! Memory for block-sized and folio-sized bytes, reused instead of allocated: every block written
//! to the disk and every cached folio holds a buffer, and one run makes and drops hundreds of
//! them (their allocations and frees were about a quarter of the reference's time on the bench
//! corpus).
//!
//! Owns: a free list per thread of buffers by length, holding at most [`POOL_BYTES`] bytes
//! (beyond that a dropped buffer is freed). Invariant: a buffer handed out holds unspecified
//! bytes (a dropped buffer's old contents), never uninitialised memory; every constructor here
//! has all of them written, except that a new (zeroed) buffer's filler is told it needs none
//! of its zeros written. No locks: the lists are thread-local, and a buffer dropped on another
//! thread than made it joins that thread's list.

use std::cell::RefCell;

/// At most this many bytes wait in one thread's free lists (a few runs' worth of blocks).
const POOL_BYTES: usize = 32 << 20;

/// The free buffers of one thread, by length (a run uses one block size and one folio size, so
/// the list of lengths stays short).
#[derive(Default)]
struct Pool {
    by_len: Vec<(usize, Vec<Box<[u8]>>)>,
    bytes: usize,
}

thread_local! {
    static POOL: RefCell<Pool> = RefCell::new(Pool::default());
}

/// A buffer of `len` unspecified bytes, and whether they are all zero (a new allocation).
fn take(len: usize) -> (Box<[u8]>, bool) {
    let reused = POOL
        .try_with(|p| {
            let mut p = p.borrow_mut();
            let b = p
                .by_len
                .iter_mut()
                .find(|(l, _)| *l == len)
                .and_then(|(_, free)| free.pop());
            if b.is_some() {
                p.bytes -= len;
            }
            b
        })
        .ok()
        .flatten();
    match reused {
        Some(b) => (b, false),
        None => (vec![0u8; len].into_boxed_slice(), true),
    }
}

/// Keeps `b` for a later [`take`] of its length, if the pool has room.
fn give(b: Box<[u8]>) {
    let len = b.len();
    if len == 0 {
        return;
    }
    // During thread teardown the pool may be gone: then `b` is simply freed.
    let _ = POOL.try_with(|p| {
        let mut p = p.borrow_mut();
        if p.bytes + len > POOL_BYTES {
            return;
        }
        p.bytes += len;
        match p.by_len.iter_mut().find(|(l, _)| *l == len) {
            Some((_, free)) => free.push(b),
            None => p.by_len.push((len, vec![b])),
        }
    });
}

/// Bytes whose memory goes back to the thread's free list when dropped.
#[derive(Debug)]
pub(crate) struct Bytes(Box<[u8]>);

impl Bytes {
    /// A copy of `data`.
    pub fn copied(data: &[u8]) -> Bytes {
        let (mut b, _) = take(data.len());
        b.copy_from_slice(data);
        Bytes(b)
    }

    /// `len` bytes, each set by `fill`, which is given the whole buffer and whether it is all
    /// zero already (a new allocation, which the allocator zeroes lazily): unless it is, `fill`
    /// must write every byte, since it holds a dropped buffer's bytes until then.
    pub fn filled(len: usize, fill: impl FnOnce(&mut [u8], bool)) -> Bytes {
        let (mut b, zeroed) = take(len);
        fill(&mut b, zeroed);
        Bytes(b)
    }
}

impl Clone for Bytes {
    fn clone(&self) -> Bytes {
        Bytes::copied(&self.0)
    }
}

impl Drop for Bytes {
    fn drop(&mut self) {
        give(std::mem::take(&mut self.0));
    }
}

impl std::ops::Deref for Bytes {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &self.0
    }
}

impl std::ops::DerefMut for Bytes {
    fn deref_mut(&mut self) -> &mut [u8] {
        &mut self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reused_buffer_holds_what_its_constructor_wrote() {
        let a = Bytes::copied(&[7u8; 512]);
        drop(a);
        // The same memory comes back for the same length; its old sevens must be gone.
        let b = Bytes::filled(512, |b, zeroed| {
            assert!(!zeroed, "a reused buffer is not new");
            b.fill(0)
        });
        assert!(b.iter().all(|&x| x == 0));
        // A length never dropped before is a new, zeroed allocation.
        let n = Bytes::filled(1536, |b, zeroed| {
            assert!(zeroed && b.iter().all(|&x| x == 0));
        });
        assert_eq!(n.len(), 1536);
        let c = Bytes::copied(&[1, 2, 3]);
        assert_eq!(&c[..], &[1, 2, 3]);
        assert_eq!(&c.clone()[..], &[1, 2, 3]);
    }

    #[test]
    fn the_pool_keeps_at_most_its_bound() {
        let big: Vec<Bytes> = (0..(POOL_BYTES / 65536 + 8))
            .map(|_| Bytes::filled(65536, |b, _| b.fill(1)))
            .collect();
        drop(big);
        let held = POOL.with(|p| p.borrow().bytes);
        assert!(held <= POOL_BYTES, "{held}");
        let counted: usize =
            POOL.with(|p| p.borrow().by_len.iter().map(|(l, f)| l * f.len()).sum());
        assert_eq!(counted, held);
    }
}
