//! Binary decoding: any byte string becomes a valid [`Input`].
//!
//! This module owns the binary input encoding that fuzzers mutate. Invariants, for every byte
//! string (the empty one included): decoding never panics and never fails; the geometry passes
//! [`Geometry::validate`] and lies within the decode bounds below; there are 1 to 4 files and
//! every op names one of them; thread and op counts respect the [`Mode`]; the schedule is at most
//! [`MAX_SCHEDULE`] bytes and is empty for single-thread inputs. Missing bytes read as zero, so a
//! truncated input decodes to a prefix of the ops of the full one.
//!
//! Payload bytes never come from the input: the data an op writes is the pattern of its sequence
//! number. Every field is bounded by construction (small [`Arbitrary`] newtypes for the header
//! bytes, context-bounded helpers for offsets and lengths), so a mutation of one byte changes one
//! field or one op, not the meaning of everything after it.
//!
//! # Layout
//!
//! ```text
//! byte 0   geometry: bits 0-1 block size (512, 1024, 4096, 1024), bits 2-3 folio pages
//!          (1, 2, 4, 1), bit 4 policy (0 keep-dirty, 1 invalidate), bits 5-6 files - 1
//! byte 1   jdata: file i is journaled-data iff bits 2i and 2i+1 are both set (1 in 4)
//! byte 2   capacity c: 8 + c*c/129 blocks (8..=512, biased small so ENOSPC happens)
//! byte 3   max file size: bits 0-3 = k - 1, max = k folios (k in 1..=16)
//! -- Concurrent and Any modes only --
//! byte 4   threads: Concurrent 2 + b%3, Any 1 + b%4
//! then     one op-count byte per thread: 1 + b%12 (1 + b%48 for a single thread)
//! -- all modes --
//! ops      thread 0's ops, then thread 1's, ...; decoding stops when the bytes run out (and in
//!          Sequential mode the op count is simply how many ops the bytes hold, up to 48)
//! rest     the schedule (at most 256 bytes; only with more than one thread)
//! ```
//!
//! One op is a head byte, then arguments by kind:
//!
//! ```text
//! head     bits 0-5 kind, through a 64-slot weight table (all 19 kinds), bits 6-7 file (mod files)
//! range    write read dwrite dread mwrite mread falloc punch zero flush:
//!          shape byte (bits 0-2 offset class, bits 3-5 length class, bits 6-7 flag), then the
//!          offset's value bytes, then the length's; flag: write `sync` iff both bits set,
//!          falloc/zero `keep-size` iff bit 6; dwrite/dread are rounded to blocks unless both are 0
//! truncate shape byte (bits 0-2 size class), then the size's value bytes
//! complete one byte: 255 if its low nibble is 0xf, else 1 + b%4
//! reclaim  one byte: folio b % (max/folio + 2)
//! crash    one byte: the land mask (bit k: the k-th oldest in-flight IO lands whole); one byte
//!          t: if t >= 0xc0, the low four bits of t are the torn mask (bit k: the k-th IO is
//!          torn) and two more bytes the tear bits, little-endian (one per block of the torn
//!          IOs, in order); otherwise nothing is torn. On any thread of any input.
//! others   fsync evict commit corrupt repair: no argument bytes
//! ```
//!
//! Offsets (`lim` = max + one folio; values through `int_in_range`, 1 to 3 bytes):
//! classes 0-2 block-aligned in `0..=lim`, 3-4 folio-aligned, 5 block-aligned plus a signed byte,
//! 6 any byte in `0..=lim`, 7 an edge picked by a byte (max - folio, max - block, max - 1, max,
//! max + block, 2^32, 2^40, 2^62). Lengths: classes 0-1 1 to 4 folios' worth of blocks, 2 one to
//! four folios, 3 1 byte to 2 blocks, 4 1 byte to 4 folios, 5 blocks plus a signed byte, 6 to the
//! end of the offset's folio, 7 special by a byte (0, to max, to max + 1, to max + folio,
//! 16 folios, 2^32, 2^40, 2^62). Offset plus length never overflows a `u64`.

use arbitrary::{Arbitrary, Unstructured};
use reference::{Config, FileSpec, Geometry, Input, Op, OpKind, Policy, PAGE_SIZE};

/// Most ops a single-thread input decodes to.
pub const MAX_SEQUENTIAL_OPS: usize = 48;
/// Most ops per thread when an input has more than one thread.
pub const MAX_THREAD_OPS: usize = 12;
/// Most schedule bytes an input decodes to.
pub const MAX_SCHEDULE: usize = 256;
/// Smallest device a decoded geometry has, in blocks.
pub const MIN_DECODED_CAPACITY: u64 = 8;
/// Largest device a decoded geometry has, in blocks.
pub const MAX_DECODED_CAPACITY: u64 = 512;
/// Largest maximum file size a decoded geometry has, in folios.
pub const MAX_DECODED_SIZE_FOLIOS: u64 = 16;

/// How many threads a binary input decodes to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum Mode {
    /// Exactly one thread, up to [`MAX_SEQUENTIAL_OPS`] ops, no schedule.
    #[default]
    Sequential,
    /// Two to four threads, up to [`MAX_THREAD_OPS`] ops each, and schedule bytes.
    Concurrent,
    /// One to four threads (a single thread gets up to [`MAX_SEQUENTIAL_OPS`] ops).
    Any,
}

/// Decodes any byte string into a valid input (see the module docs for the layout).
pub fn decode(data: &[u8], mode: Mode) -> Input {
    let mut u = Unstructured::new(data);
    let config = take::<Header>(&mut u).config();
    let g = config.geometry;
    let nfiles = config.files.len() as u8;

    let counts: Vec<usize> = match mode {
        Mode::Sequential => vec![MAX_SEQUENTIAL_OPS],
        Mode::Concurrent | Mode::Any => {
            let b = byte(&mut u);
            let n = match mode {
                Mode::Concurrent => 2 + b as usize % 3,
                _ => 1 + b as usize % 4,
            };
            let per = if n == 1 {
                MAX_SEQUENTIAL_OPS
            } else {
                MAX_THREAD_OPS
            };
            (0..n).map(|_| 1 + byte(&mut u) as usize % per).collect()
        }
    };

    let mut threads = Vec::with_capacity(counts.len());
    for &count in &counts {
        let mut ops = Vec::with_capacity(count.min(u.len()));
        while ops.len() < count && !u.is_empty() {
            ops.push(decode_op(&mut u, &g, nfiles));
        }
        threads.push(ops);
    }

    let schedule = if threads.len() > 1 {
        let rest = u.take_rest();
        rest[..rest.len().min(MAX_SCHEDULE)].to_vec()
    } else {
        Vec::new()
    };
    Input {
        config,
        threads,
        schedule,
    }
}

/// [`decode`] with [`Mode::Any`]: one to four threads.
pub fn decode_any_threads(data: &[u8]) -> Input {
    decode(data, Mode::Any)
}

/// One byte, zero once the input is exhausted.
fn byte(u: &mut Unstructured<'_>) -> u8 {
    u8::arbitrary(u).unwrap_or(0)
}

/// A value in `0..=max`, consuming as few bytes as the range needs; zero once exhausted.
fn upto(u: &mut Unstructured<'_>, max: u64) -> u64 {
    u.int_in_range(0..=max).unwrap_or(0)
}

/// A bounded newtype, with its default when decoding fails (it cannot: missing bytes are zeros).
fn take<'a, T: Arbitrary<'a> + Default>(u: &mut Unstructured<'a>) -> T {
    T::arbitrary(u).unwrap_or_default()
}

/// The four header bytes: geometry, policy and files.
#[derive(Clone, Copy, Debug, Default)]
struct Header {
    shape: GeometryByte,
    jdata: JdataByte,
    capacity: Capacity,
    max_folios: MaxFolios,
}

impl<'a> Arbitrary<'a> for Header {
    fn arbitrary(u: &mut Unstructured<'a>) -> arbitrary::Result<Self> {
        Ok(Header {
            shape: take(u),
            jdata: take(u),
            capacity: take(u),
            max_folios: take(u),
        })
    }
}

impl Header {
    fn config(self) -> Config {
        let GeometryByte {
            block_size,
            folio_pages,
            policy,
            files,
        } = self.shape;
        let geometry = Geometry {
            block_size,
            folio_pages,
            capacity_blocks: self.capacity.0,
            max_file_size: self.max_folios.0 * folio_pages as u64 * PAGE_SIZE,
        };
        let files = (0..files)
            .map(|i| FileSpec {
                jdata: self.jdata.0[i],
            })
            .collect();
        Config {
            geometry,
            policy,
            files,
        }
    }
}

/// Byte 0: block size, folio size, policy and file count.
#[derive(Clone, Copy, Debug)]
struct GeometryByte {
    block_size: u32,
    folio_pages: u32,
    policy: Policy,
    files: usize,
}

impl Default for GeometryByte {
    fn default() -> Self {
        GeometryByte {
            block_size: 512,
            folio_pages: 1,
            policy: Policy::KeepDirty,
            files: 1,
        }
    }
}

impl<'a> Arbitrary<'a> for GeometryByte {
    fn arbitrary(u: &mut Unstructured<'a>) -> arbitrary::Result<Self> {
        let b = byte(u);
        Ok(GeometryByte {
            block_size: [512, 1024, 4096, 1024][(b & 3) as usize],
            folio_pages: [1, 2, 4, 1][((b >> 2) & 3) as usize],
            policy: if b & 0x10 != 0 {
                Policy::Invalidate
            } else {
                Policy::KeepDirty
            },
            files: 1 + ((b >> 5) & 3) as usize,
        })
    }
}

/// Byte 1: which files are journaled-data (each 1 in 4).
#[derive(Clone, Copy, Debug, Default)]
struct JdataByte([bool; 4]);

impl<'a> Arbitrary<'a> for JdataByte {
    fn arbitrary(u: &mut Unstructured<'a>) -> arbitrary::Result<Self> {
        let b = byte(u);
        Ok(JdataByte(std::array::from_fn(|i| (b >> (2 * i)) & 3 == 3)))
    }
}

/// Byte 2: device capacity in blocks, 8..=512, quadratic so small devices are common.
#[derive(Clone, Copy, Debug)]
struct Capacity(u64);

impl Default for Capacity {
    fn default() -> Self {
        Capacity(MIN_DECODED_CAPACITY)
    }
}

impl<'a> Arbitrary<'a> for Capacity {
    fn arbitrary(u: &mut Unstructured<'a>) -> arbitrary::Result<Self> {
        let c = byte(u) as u64;
        Ok(Capacity(MIN_DECODED_CAPACITY + c * c / 129))
    }
}

/// Byte 3: maximum file size in folios, 1..=16.
#[derive(Clone, Copy, Debug)]
struct MaxFolios(u64);

impl Default for MaxFolios {
    fn default() -> Self {
        MaxFolios(1)
    }
}

impl<'a> Arbitrary<'a> for MaxFolios {
    fn arbitrary(u: &mut Unstructured<'a>) -> arbitrary::Result<Self> {
        Ok(MaxFolios(1 + (byte(u) & 0xf) as u64))
    }
}

/// Slots out of 64 that the head byte's kind field gives each op kind.
const KIND_WEIGHTS: [(OpKind, u8); 19] = [
    (OpKind::Write, 10),
    (OpKind::Read, 3),
    (OpKind::DirectWrite, 4),
    (OpKind::DirectRead, 3),
    (OpKind::MmapWrite, 4),
    (OpKind::MmapRead, 2),
    (OpKind::Fsync, 3),
    (OpKind::Fallocate, 3),
    (OpKind::PunchHole, 3),
    (OpKind::ZeroRange, 3),
    (OpKind::Truncate, 4),
    (OpKind::Flush, 6),
    (OpKind::CompleteIo, 5),
    (OpKind::Reclaim, 4),
    (OpKind::EvictInode, 2),
    (OpKind::CorruptAllocBtree, 2),
    (OpKind::RepairAllocBtree, 1),
    (OpKind::Crash, 1),
    (OpKind::JournalCommit, 1),
];

const _: () = {
    let mut sum = 0;
    let mut i = 0;
    while i < KIND_WEIGHTS.len() {
        assert!(KIND_WEIGHTS[i].1 > 0, "every op kind must be reachable");
        sum += KIND_WEIGHTS[i].1 as u32;
        i += 1;
    }
    assert!(sum == 64, "kind weights must fill the 6-bit kind field");
};

/// The kind in slot `slot` (0..64) of the weight table.
fn kind_of_slot(slot: u8) -> OpKind {
    let mut left = slot;
    for (kind, weight) in KIND_WEIGHTS {
        if left < weight {
            return kind;
        }
        left -= weight;
    }
    OpKind::Write
}

/// An op's head byte: kind and file selector.
#[derive(Clone, Copy, Debug)]
struct OpHead {
    kind: OpKind,
    file_sel: u8,
}

impl Default for OpHead {
    fn default() -> Self {
        OpHead {
            kind: OpKind::Write,
            file_sel: 0,
        }
    }
}

impl<'a> Arbitrary<'a> for OpHead {
    fn arbitrary(u: &mut Unstructured<'a>) -> arbitrary::Result<Self> {
        let b = byte(u);
        Ok(OpHead {
            kind: kind_of_slot(b & 63),
            file_sel: b >> 6,
        })
    }
}

/// A range op's shape byte: offset class, length class, flag bits.
#[derive(Clone, Copy, Debug, Default)]
struct Shape {
    off_class: u8,
    len_class: u8,
    flag: u8,
}

impl<'a> Arbitrary<'a> for Shape {
    fn arbitrary(u: &mut Unstructured<'a>) -> arbitrary::Result<Self> {
        let b = byte(u);
        Ok(Shape {
            off_class: b & 7,
            len_class: (b >> 3) & 7,
            flag: b >> 6,
        })
    }
}

/// A file offset (or truncate size) of class `class` (see the module docs).
fn offset(u: &mut Unstructured<'_>, class: u8, g: &Geometry) -> u64 {
    let (bs, fs, max) = (g.bs(), g.folio_size(), g.max_file_size);
    let lim = max + fs;
    match class {
        0..=2 => upto(u, lim / bs) * bs,
        3 | 4 => upto(u, lim / fs) * fs,
        5 => {
            let base = upto(u, lim / bs) * bs;
            base.saturating_add_signed(byte(u) as i8 as i64)
        }
        6 => upto(u, lim),
        _ => [
            max - fs,
            max - bs,
            max - 1,
            max,
            max + bs,
            1 << 32,
            1 << 40,
            1 << 62,
        ][byte(u) as usize % 8],
    }
}

/// A length of class `class` for a range starting at `off` (see the module docs).
fn length(u: &mut Unstructured<'_>, class: u8, off: u64, g: &Geometry) -> u64 {
    let (bs, fs, max) = (g.bs(), g.folio_size(), g.max_file_size);
    let blocks4 = 4 * fs / bs;
    match class {
        0 | 1 => (1 + upto(u, blocks4 - 1)) * bs,
        2 => (1 + upto(u, 3)) * fs,
        3 => 1 + upto(u, 2 * bs - 1),
        4 => 1 + upto(u, 4 * fs - 1),
        5 => {
            let base = (1 + upto(u, blocks4 - 1)) * bs;
            base.saturating_add_signed(byte(u) as i8 as i64).max(1)
        }
        6 => fs - off % fs,
        _ => match byte(u) % 8 {
            0 => 0,
            1 => max.saturating_sub(off),
            2 => max.saturating_sub(off) + 1,
            3 => (max + fs).saturating_sub(off),
            4 => 16 * fs,
            5 => 1 << 32,
            6 => 1 << 40,
            _ => 1 << 62,
        },
    }
}

/// Decodes one op; `nfiles` is 1..=4.
fn decode_op(u: &mut Unstructured<'_>, g: &Geometry, nfiles: u8) -> Op {
    let head = take::<OpHead>(u);
    let file = head.file_sel % nfiles;
    let range = |u: &mut Unstructured<'_>| {
        let s = take::<Shape>(u);
        let off = offset(u, s.off_class, g);
        let len = length(u, s.len_class, off, g);
        (off, len, s.flag)
    };
    match head.kind {
        OpKind::Write => {
            let (off, len, flag) = range(u);
            Op::Write {
                file,
                off,
                len,
                sync: flag == 3,
            }
        }
        OpKind::Read => {
            let (off, len, _) = range(u);
            Op::Read { file, off, len }
        }
        OpKind::DirectWrite | OpKind::DirectRead => {
            let (mut off, mut len, flag) = range(u);
            if flag != 0 {
                off -= off % g.bs();
                len = len.div_ceil(g.bs()) * g.bs();
            }
            if head.kind == OpKind::DirectWrite {
                Op::DirectWrite { file, off, len }
            } else {
                Op::DirectRead { file, off, len }
            }
        }
        OpKind::MmapWrite => {
            let (off, len, _) = range(u);
            Op::MmapWrite { file, off, len }
        }
        OpKind::MmapRead => {
            let (off, len, _) = range(u);
            Op::MmapRead { file, off, len }
        }
        OpKind::Fsync => Op::Fsync { file },
        OpKind::Fallocate => {
            let (off, len, flag) = range(u);
            Op::Fallocate {
                file,
                off,
                len,
                keep_size: flag & 1 != 0,
            }
        }
        OpKind::PunchHole => {
            let (off, len, _) = range(u);
            Op::PunchHole { file, off, len }
        }
        OpKind::ZeroRange => {
            let (off, len, flag) = range(u);
            Op::ZeroRange {
                file,
                off,
                len,
                keep_size: flag & 1 != 0,
            }
        }
        OpKind::Truncate => {
            let s = take::<Shape>(u);
            Op::Truncate {
                file,
                size: offset(u, s.off_class, g),
            }
        }
        OpKind::Flush => {
            let (off, len, _) = range(u);
            Op::Flush { file, off, len }
        }
        OpKind::CompleteIo => {
            let b = byte(u);
            Op::CompleteIo {
                n: if b & 0xf == 0xf {
                    255
                } else {
                    1 + (b & 3) as u32
                },
            }
        }
        OpKind::Reclaim => {
            let folios = g.max_file_size / g.folio_size() + 2;
            Op::Reclaim {
                file,
                folio: byte(u) as u64 % folios,
            }
        }
        OpKind::EvictInode => Op::EvictInode { file },
        OpKind::CorruptAllocBtree => Op::CorruptAllocBtree,
        OpKind::RepairAllocBtree => Op::RepairAllocBtree,
        OpKind::JournalCommit => Op::JournalCommit { file },
        OpKind::Crash => {
            let land = byte(u) as u32;
            let t = byte(u);
            let (torn, tear) = if t >= 0xc0 {
                (
                    u32::from(t & 0xf),
                    u64::from(byte(u)) | u64::from(byte(u)) << 8,
                )
            } else {
                (0, 0)
            };
            Op::Crash { land, torn, tear }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_has_a_slot() {
        for kind in OpKind::ALL {
            assert!(
                (0..64).any(|s| kind_of_slot(s) == kind),
                "{kind:?} unreachable"
            );
        }
    }
}
