//! Every random choice wbfuzz makes outside the fuzz engines: the generator ([`SplitMix`]), the
//! hunt's inputs ([`generate`]) and swarm configurations ([`Swarm`]), generated schedule bursts
//! ([`draw_schedule`]), and random ops and configurations for property tests and benchmarks
//! ([`random_op`], [`random_config`]).
//!
//! Invariant: everything here is a pure function of the generator's state, so a hunt, a
//! benchmark corpus or a test sees the same inputs in the same order in every process.

use crate::exec::Target;
use crate::input::decode::{decode, MAX_SCHEDULE, MAX_THREAD_OPS};
use crate::schedule;
use reference::{Config, FileSpec, Geometry, Input, Op, OpKind, Policy};

/// SplitMix64: tiny, fast, and good enough to drive input generation.
#[derive(Clone, Debug)]
pub struct SplitMix(u64);

impl SplitMix {
    /// A generator for worker `worker` of a run seeded with `seed`.
    pub fn new(seed: u64, worker: u64) -> SplitMix {
        SplitMix(seed ^ worker.wrapping_mul(0xD1B5_4A32_D192_ED03))
    }

    /// Next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (`0` when `n` is 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }

    /// True with probability `1/n`.
    pub fn one_in(&mut self, n: u64) -> bool {
        self.below(n) == 0
    }

    /// Fills a buffer with random bytes.
    pub fn fill(&mut self, buf: &mut [u8]) {
        for chunk in buf.chunks_mut(8) {
            let v = self.next_u64().to_le_bytes();
            chunk.copy_from_slice(&v[..chunk.len()]);
        }
    }

    /// A byte string of random length `0..=max_len`.
    pub fn bytes(&mut self, max_len: usize) -> Vec<u8> {
        let mut v = vec![0u8; self.below(max_len as u64 + 1) as usize];
        self.fill(&mut v);
        v
    }
}

/// A swarm configuration: which op kinds an epoch may use.
#[derive(Clone, Copy, Debug)]
pub struct Swarm(u32);

impl Swarm {
    /// Draws a swarm: each kind on with probability 3/4, buffered writes always on. (With 1/2,
    /// races that need three kinds at once, like a fault against a direct write, were rarer
    /// than with no swarm at all.)
    pub fn draw(rng: &mut SplitMix) -> Swarm {
        let bits = rng.next_u64();
        Swarm((bits as u32 | (bits >> 32) as u32) | 1 << (OpKind::Write as u32))
    }

    /// Every kind enabled.
    pub const ALL: Swarm = Swarm(u32::MAX);

    /// This swarm without `kind`.
    pub const fn without(self, kind: OpKind) -> Swarm {
        Swarm(self.0 & !(1 << kind as u32))
    }

    /// Whether ops of `kind` are enabled.
    pub fn allows(self, kind: OpKind) -> bool {
        self.0 & (1 << kind as u32) != 0
    }

    /// Drops the disabled kinds' ops from an input.
    pub fn apply(self, input: &mut Input) {
        for ops in &mut input.threads {
            ops.retain(|op| self.allows(op.kind()));
        }
    }
}

/// Generates one hunt input: random bytes decoded for the target, filtered by the swarm.
/// Concurrent inputs get 2 to 4 threads of 8 to 12 ops each (the decoder allows 1 to 12, and
/// short byte strings cut the last threads short): every op is another place where a thread may
/// stop inside a window while another thread's op runs, so long threads give each execution
/// more chances than they cost. Inputs to the first finding, median of 9 seeds, with PCT of
/// depth 3-4 for 5/8 of the inputs, against the earlier 8-407 random bytes: completion-no-bump
/// 9.7k against 17k, punch-fault-window 263 against 934, reclaim-unlocked-check 757 against
/// 1,042, retry-skips-wait 928 against 1,335, at about 0.7x the execs/s; two threads of one to
/// three ops on one small file were 5-10x *worse* on all four.
///
/// A quarter of the concurrent inputs whose swarm allows crashes get one more crash, at a random
/// place of a random thread ([`random_crash`]): decoded crashes are rare (one op slot in 64),
/// and a crash that falls between two steps of another thread's op (a flush between two
/// folios, an fsync between its writeback and its wait) needs other threads running around it.
pub fn generate(rng: &mut SplitMix, target: Target, swarm: Swarm, buf: &mut Vec<u8>) -> Input {
    let len = if target == Target::Concurrent {
        // Long enough that every thread's ops decode and schedule bytes remain.
        CONCURRENT_BYTES + rng.below(MAX_SCHEDULE as u64) as usize
    } else {
        8 + rng.below(400) as usize
    };
    buf.resize(len, 0);
    rng.fill(buf);
    if target == Target::Concurrent {
        // Bytes 5 to 8: the op-count byte of each thread, `1 + b % 12` (the decode module's
        // layout; byte 4, the thread count, stays random).
        for b in &mut buf[5..9] {
            *b = (CONCURRENT_MIN_OPS - 1) as u8
                + rng.below((MAX_THREAD_OPS - CONCURRENT_MIN_OPS + 1) as u64) as u8;
        }
    }
    let mut input = decode(buf, target.mode());
    swarm.apply(&mut input);
    insert_crash(rng, target, swarm, &mut input);
    input
}

/// The baseline generator of `wbfuzz bench`'s "uniform ops" columns: random bytes of 8 to 407
/// bytes decoded for the target, every op kind allowed, and (concurrent target) the same crash
/// insertion as [`generate`]. It is what [`generate`] was before concurrent inputs got their
/// long form, kept so that the baselines stay comparable across versions.
pub fn generate_uniform(rng: &mut SplitMix, target: Target, buf: &mut Vec<u8>) -> Input {
    let len = 8 + rng.below(400) as usize;
    buf.resize(len, 0);
    rng.fill(buf);
    let mut input = decode(buf, target.mode());
    insert_crash(rng, target, Swarm::ALL, &mut input);
    input
}

/// Bytes a generated concurrent input has before its schedule: enough for 4 threads of
/// [`MAX_THREAD_OPS`] ops of the longest encoding.
const CONCURRENT_BYTES: usize = 4 * MAX_THREAD_OPS * 12;

/// Fewest ops per thread of a generated concurrent input.
const CONCURRENT_MIN_OPS: usize = 8;

/// The crash insertion of [`generate`] (concurrent target, a quarter of the inputs).
fn insert_crash(rng: &mut SplitMix, target: Target, swarm: Swarm, input: &mut Input) {
    if target == Target::Concurrent
        && input.threads.len() > 1
        && swarm.allows(OpKind::Crash)
        && rng.one_in(4)
    {
        let t = rng.below(input.threads.len() as u64) as usize;
        let at = rng.below(input.threads[t].len() as u64 + 1) as usize;
        input.threads[t].insert(at, random_crash(rng));
    }
}

/// A crash with random landings: a quarter of them tear some IOs.
pub fn random_crash(rng: &mut SplitMix) -> Op {
    let land = rng.below(16) as u32;
    let (torn, tear) = if rng.one_in(4) {
        (rng.below(16) as u32, rng.next_u64())
    } else {
        (0, 0)
    };
    Op::Crash { land, torn, tear }
}

/// Scheduling points a concurrent execution takes per op, roughly (median measured over
/// generated inputs: ~50): where a generated burst of switches may start.
const POINTS_PER_OP: u64 = 60;

/// Draws the schedule bytes of a concurrent input (`None`: keep the decoded ones). Decoded
/// random bytes switch threads every few hundred scheduling points, at random; half the inputs
/// get a burst instead: one thread runs to a random point, then 4 to 32 switches of 0-3 points
/// each, then long runs again. Races whose window is a few points wide inside one op (seed 000's
/// stale mapping) need exactly that, and it found them ~6x sooner than decoded bytes in a
/// 7-seed comparison; slow-moving interleavings are left to the decoded bytes and to the
/// shuttle strategies of the hunt.
pub fn draw_schedule(rng: &mut SplitMix, input: &Input) -> Option<Vec<u8>> {
    if input.threads.len() < 2 || rng.one_in(2) {
        return None;
    }
    let points = POINTS_PER_OP * input.op_count() as u64 + 1;
    let nibble = |rng: &mut SplitMix| rng.below(16) as u8;
    let mut out = Vec::new();
    schedule::encode_run(nibble(rng), rng.below(points), &mut out);
    for _ in 0..4 + rng.below(29) {
        out.push(nibble(rng) << 4 | rng.below(4) as u8);
    }
    out.push(nibble(rng) << 4 | 0x0f);
    out.truncate(MAX_SCHEDULE);
    Some(out)
}

/// Where and how big the ops of [`random_op`] are.
#[derive(Clone, Copy, Debug)]
pub struct OpShape {
    /// Files to choose from (`f0..files`).
    pub files: u8,
    /// Alignment unit of aligned offsets and lengths (the block size).
    pub granule: u64,
    /// Folio size in bytes (reclaim picks a folio of the span).
    pub folio: u64,
    /// Offsets (and truncate sizes) lie in `0..span`.
    pub span: u64,
    /// Lengths lie in `0..=max_len`.
    pub max_len: u64,
    /// One offset or length in three is unaligned; off: all are multiples of `granule`.
    pub unaligned: bool,
    /// The op kinds to draw from (buffered writes are drawn three times as often).
    pub kinds: Swarm,
}

impl OpShape {
    /// Ops spread over a geometry's whole maximum file size, lengths up to three folios.
    pub fn for_geometry(g: &Geometry, files: u8) -> OpShape {
        OpShape {
            files,
            granule: g.bs(),
            folio: g.folio_size(),
            span: g.max_file_size,
            max_len: 3 * g.folio_size(),
            unaligned: true,
            kinds: Swarm::ALL,
        }
    }
}

/// One random op of `shape`: uniform over the enabled kinds, buffered writes weighted 3x.
/// Returns `None` when `shape.kinds` enables none of them.
pub fn random_op(rng: &mut SplitMix, shape: &OpShape) -> Option<Op> {
    let enabled: Vec<OpKind> = OpKind::ALL
        .into_iter()
        .filter(|&k| shape.kinds.allows(k))
        .collect();
    if enabled.is_empty() {
        return None;
    }
    let writes = if shape.kinds.allows(OpKind::Write) {
        2
    } else {
        0
    };
    let pick = rng.below(enabled.len() as u64 + writes) as usize;
    let kind = enabled.get(pick).copied().unwrap_or(OpKind::Write);
    let g = shape.granule.max(1);
    let pos = |rng: &mut SplitMix, limit: u64| {
        let v = rng.below(limit + 1);
        if shape.unaligned && rng.one_in(3) {
            v
        } else {
            v / g * g
        }
    };
    let file = rng.below(shape.files as u64) as u8;
    let off = pos(rng, shape.span.saturating_sub(1));
    let len = pos(rng, shape.max_len);
    Some(match kind {
        OpKind::Write => Op::Write {
            file,
            off,
            len,
            sync: rng.one_in(8),
        },
        OpKind::Read => Op::Read { file, off, len },
        OpKind::DirectWrite => Op::DirectWrite { file, off, len },
        OpKind::DirectRead => Op::DirectRead { file, off, len },
        OpKind::MmapWrite => Op::MmapWrite { file, off, len },
        OpKind::MmapRead => Op::MmapRead { file, off, len },
        OpKind::Fsync => Op::Fsync { file },
        OpKind::Fallocate => Op::Fallocate {
            file,
            off,
            len,
            keep_size: rng.one_in(2),
        },
        OpKind::PunchHole => Op::PunchHole { file, off, len },
        OpKind::ZeroRange => Op::ZeroRange {
            file,
            off,
            len,
            keep_size: rng.one_in(2),
        },
        OpKind::Truncate => Op::Truncate { file, size: off },
        OpKind::Flush => Op::Flush { file, off, len },
        OpKind::CompleteIo => Op::CompleteIo {
            n: 1 + rng.below(3) as u32,
        },
        OpKind::Reclaim => Op::Reclaim {
            file,
            folio: off / shape.folio.max(1),
        },
        OpKind::EvictInode => Op::EvictInode { file },
        OpKind::JournalCommit => Op::JournalCommit { file },
        OpKind::CorruptAllocBtree => Op::CorruptAllocBtree,
        OpKind::RepairAllocBtree => Op::RepairAllocBtree,
        OpKind::Crash => random_crash(rng),
    })
}

/// A random configuration: every block and folio size, both policies, 1-3 files (a third of
/// them journaled), capacities from 16 blocks (ENOSPC likely) to 215, 64 KiB files.
pub fn random_config(rng: &mut SplitMix) -> Config {
    Config {
        geometry: Geometry {
            block_size: [512, 1024, 4096][rng.below(3) as usize],
            folio_pages: [1, 2, 4][rng.below(3) as usize],
            capacity_blocks: 16 + rng.below(200),
            max_file_size: 64 << 10,
        },
        policy: if rng.one_in(2) {
            Policy::KeepDirty
        } else {
            Policy::Invalidate
        },
        files: (0..1 + rng.below(3))
            .map(|_| FileSpec {
                jdata: rng.one_in(3),
            })
            .collect(),
    }
}

/// Folios of the shared file a generated racy kernel input works on.
const RACY_FOLIOS: u64 = 8;

/// A concurrent input for a real kernel that satisfies the race rule
/// ([`crate::race_rule`]) by construction: 2-4 threads share file `f0`, whose first
/// [`RACY_FOLIOS`] folios are dealt out to owner threads; each thread writes only folios it
/// owns, while flushes, IO waits, reclaim and eviction (another thread's writeback racing a
/// write: seeds 000 and 002) and reads and read faults (a read fault on a hole racing the direct
/// write that allocates it: seed 001) go anywhere. `f0` is written either only directly (a
/// third of the inputs) or only through the page cache, as the rule demands of writes by
/// different threads. Thread 0 also has a private file `f1` it may truncate and write any way.
/// `geometry` must allow at least [`RACY_FOLIOS`] folios per file.
pub fn racy_kernel_input(rng: &mut SplitMix, geometry: Geometry) -> Input {
    let folio = geometry.folio_size();
    let bs = geometry.bs();
    let threads = 2 + rng.below(3) as usize;
    let direct = rng.one_in(3);
    let owner: Vec<usize> = (0..RACY_FOLIOS)
        .map(|_| rng.below(threads as u64) as usize)
        .collect();
    let mut lists = Vec::with_capacity(threads);
    for t in 0..threads {
        let own: Vec<u64> = (0..RACY_FOLIOS)
            .filter(|&k| owner[k as usize] == t)
            .collect();
        let n = 4 + rng.below(9);
        let mut ops = Vec::new();
        for _ in 0..n {
            let any = rng.below(RACY_FOLIOS);
            let in_folio = |rng: &mut SplitMix, k: u64, aligned: bool| {
                let (o, l) = if aligned {
                    let blocks = folio / bs;
                    let first = rng.below(blocks);
                    (first * bs, (1 + rng.below(blocks - first)) * bs)
                } else {
                    let o = rng.below(folio);
                    (o, 1 + rng.below(folio - o))
                };
                (k * folio + o, l)
            };
            let op = match rng.below(20) {
                // Writers, on a folio this thread owns (thread 0 falls back to its own file).
                0..=7 => {
                    let (file, k) = match own.get(rng.below(own.len() as u64) as usize) {
                        Some(&k) => (0, k),
                        None if t == 0 => (1, any),
                        None => (0, u64::MAX),
                    };
                    if k == u64::MAX {
                        Op::Flush {
                            file: 0,
                            off: any * folio,
                            len: folio,
                        }
                    } else {
                        let (off, len) = in_folio(rng, k, false);
                        let kind = match (file, direct) {
                            (0, true) => 3,
                            (0, false) => [0, 1, 2, 5, 6, 7][rng.below(6) as usize],
                            _ => rng.below(8),
                        };
                        match kind {
                            0..=2 => Op::Write {
                                file,
                                off,
                                len,
                                sync: rng.one_in(6),
                            },
                            3 | 4 => {
                                let (off, len) = in_folio(rng, k, true);
                                Op::DirectWrite { file, off, len }
                            }
                            5 => Op::MmapWrite { file, off, len },
                            6 => Op::PunchHole { file, off, len },
                            _ => Op::ZeroRange {
                                file,
                                off,
                                len,
                                keep_size: true,
                            },
                        }
                    }
                }
                // Background racers, anywhere.
                8..=9 => Op::Flush {
                    file: 0,
                    off: any * folio,
                    len: (1 + rng.below(2)) * folio,
                },
                10 => Op::CompleteIo {
                    n: 1 + rng.below(4) as u32,
                },
                11 | 12 => Op::Reclaim {
                    file: 0,
                    folio: any,
                },
                13 => Op::EvictInode { file: 0 },
                14 => Op::Fsync { file: 0 },
                // Readers, anywhere: racy where another thread writes.
                15 | 16 => Op::MmapRead {
                    file: 0,
                    off: any * folio + rng.below(folio),
                    len: 1 + rng.below(folio),
                },
                17 => {
                    let (off, len) = in_folio(rng, any, true);
                    Op::DirectRead { file: 0, off, len }
                }
                18 if t == 0 => Op::Truncate {
                    file: 1,
                    size: rng.below(RACY_FOLIOS * folio),
                },
                _ => {
                    let (off, len) = in_folio(rng, any, false);
                    Op::Read { file: 0, off, len }
                }
            };
            ops.push(op);
        }
        lists.push(ops);
    }
    Input {
        config: Config {
            geometry,
            policy: Policy::KeepDirty,
            files: vec![FileSpec::default(), FileSpec::default()],
        },
        threads: lists,
        schedule: Vec::new(),
    }
}
