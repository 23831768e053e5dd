//! Deterministic soak: a xorshift PRNG drives 20,000 random ops over random geometries (every
//! block size, folio size, both policies, journaled data on and off, capacities small enough for
//! ENOSPC, corruption and repair interleaved). After every op the model's invariants must hold
//! and its observations must agree with each other; ops that SPEC.md says cannot change logical
//! contents must not.

use reference::model::RefFs;
use reference::{Config, ExtentState, FileSpec, Geometry, Observe, Op, Outcome, Policy};

/// xorshift64*: small, deterministic, good enough to pick ops.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
}

struct Run {
    fs: RefFs,
    /// The run's config and ops so far, printed when a check fails.
    trace: Vec<String>,
    bs: u64,
    max: u64,
    files: u8,
    policy: Policy,
}

fn new_run(rng: &mut Rng) -> Run {
    let block_size = [512u32, 1024, 4096][rng.below(3) as usize];
    let folio_pages = [1u32, 2, 4][rng.below(3) as usize];
    let folio = folio_pages as u64 * 4096;
    let max = folio * (2 + rng.below(5));
    let capacity = 2 + rng.below(3 * max / block_size as u64);
    let policy = if rng.chance(50) {
        Policy::KeepDirty
    } else {
        Policy::Invalidate
    };
    let files = 1 + rng.below(3) as u8;
    let geometry = Geometry {
        block_size,
        folio_pages,
        capacity_blocks: capacity,
        max_file_size: max,
    };
    geometry.validate().expect("valid");
    let specs = (0..files)
        .map(|_| FileSpec {
            jdata: rng.chance(30),
        })
        .collect();
    let config = Config {
        geometry,
        policy,
        files: specs,
    };
    let trace = vec![format!("{config:?}")];
    let fs = RefFs::new(&config);
    Run {
        fs,
        trace,
        bs: block_size as u64,
        max,
        files,
        policy,
    }
}

/// An offset: mostly inside the maximum size, sometimes at its edge or absurd.
fn offset(rng: &mut Rng, run: &Run) -> u64 {
    match rng.below(20) {
        0 => u64::MAX - rng.below(3),
        1 => run.max - rng.below(2),
        2..=7 => rng.below(run.max / run.bs + 1) * run.bs,
        _ => rng.below(run.max),
    }
}

fn length(rng: &mut Rng, run: &Run) -> u64 {
    match rng.below(20) {
        0 => 0,
        1 => u64::MAX,
        2..=7 => (1 + rng.below(8)) * run.bs,
        _ => 1 + rng.below(run.max / 2),
    }
}

/// Direct writes need block alignment (direct reads only where an unaligned end meets a Written
/// block): round down most of the time, keep the odd value sometimes.
fn aligned(rng: &mut Rng, run: &Run, v: u64) -> u64 {
    if rng.chance(85) {
        v / run.bs * run.bs
    } else {
        v
    }
}

fn random_op(rng: &mut Rng, run: &Run) -> Op {
    let file = rng.below(run.files as u64) as u8;
    let (off, len) = (offset(rng, run), length(rng, run));
    match rng.below(100) {
        0..=19 => Op::Write {
            file,
            off,
            len,
            sync: rng.chance(10),
        },
        20..=25 => Op::Read { file, off, len },
        26..=29 => Op::DirectWrite {
            file,
            off: aligned(rng, run, off),
            len: aligned(rng, run, len),
        },
        30..=32 => Op::DirectRead {
            file,
            off: aligned(rng, run, off),
            len: aligned(rng, run, len),
        },
        33..=37 => Op::MmapWrite {
            file,
            off: rng.below(run.max),
            len,
        },
        38..=40 => Op::MmapRead {
            file,
            off: rng.below(run.max),
            len,
        },
        41..=44 => Op::Fsync { file },
        45..=48 => Op::Fallocate {
            file,
            off,
            len,
            keep_size: rng.chance(50),
        },
        49..=53 => Op::PunchHole { file, off, len },
        54..=57 => Op::ZeroRange {
            file,
            off,
            len,
            keep_size: rng.chance(50),
        },
        58..=62 => Op::Truncate {
            file,
            size: if rng.chance(5) {
                u64::MAX
            } else {
                rng.below(run.max + 1)
            },
        },
        63..=72 => Op::Flush { file, off, len },
        73..=80 => Op::CompleteIo {
            n: rng.below(4) as u32,
        },
        81..=86 => Op::Reclaim {
            file,
            folio: rng.below(run.max / 4096 + 2),
        },
        87..=88 => Op::EvictInode { file },
        89..=92 => Op::CorruptAllocBtree,
        93..=97 => Op::RepairAllocBtree,
        _ => Op::JournalCommit { file },
    }
}

/// Ops after which logical contents must be exactly as before. Writeback under the invalidate
/// policy may drop data, so it only counts under keep-dirty.
fn preserves_contents(op: &Op, policy: Policy) -> bool {
    match op {
        Op::Read { .. }
        | Op::MmapRead { .. }
        | Op::CompleteIo { .. }
        | Op::Reclaim { .. }
        | Op::CorruptAllocBtree
        | Op::RepairAllocBtree
        | Op::JournalCommit { .. } => true,
        Op::Flush { .. } | Op::Fsync { .. } | Op::EvictInode { .. } | Op::DirectRead { .. } => {
            policy == Policy::KeepDirty
        }
        _ => false,
    }
}

fn check_observations(run: &Run, seq: u32, op: &Op) {
    let v = run.fs.check_invariants();
    if !v.is_empty() {
        panic!("op {seq} {op}: {v:?}\nrun:\n{}", run.trace.join("\n"));
    }
    let c = run.fs.counters();
    assert_eq!(
        c.free + c.reserved + c.allocated,
        run.fs.geometry().capacity_blocks
    );
    for f in 0..run.files {
        let size = run.fs.size(f);
        assert!(size <= run.max, "op {seq} {op}: size {size} past max");
        let whole = run.fs.peek(f, 0, u64::MAX);
        assert_eq!(whole.len() as u64, size);
        // `visit` lends the same bytes `peek` copies, also for unaligned windows.
        let lo = (seq as u64 * 331) % (size + 1);
        let len = (seq as u64 * 1237) % (size + 700);
        let mut lent = Vec::new();
        run.fs.visit(f, lo, len, &mut |s| lent.extend_from_slice(s));
        assert_eq!(
            lent,
            run.fs.peek(f, lo, len),
            "op {seq}: visit {lo:#x}+{len:#x}"
        );
        let span = run.fs.block_span(f);
        assert!(span <= run.max.div_ceil(run.bs), "op {seq}: span {span}");
        let blocks = run.fs.blocks(f, 0, span + 4);
        assert_eq!(blocks.len() as u64, span + 4);
        assert!(blocks[span as usize..]
            .iter()
            .all(|b| *b == reference::BlockObs::UNTOUCHED));
    }
}

fn check_outcome(before_size: u64, op: &Op, out: &Outcome, max: u64) {
    match (op, out) {
        (Op::Read { off, len, .. }, Outcome::Data(d)) => {
            let expect = if *off >= before_size {
                0
            } else {
                (*len).min(before_size - off)
            };
            assert_eq!(d.len() as u64, expect, "{op}");
        }
        (Op::Write { off, len, .. }, Outcome::Done(n)) => {
            assert!(*n <= *len && (*n == 0 || off + n <= max), "{op} -> {n}");
        }
        (Op::Read { .. } | Op::MmapRead { .. } | Op::DirectRead { .. }, Outcome::Done(_)) => {
            panic!("{op}: {out}")
        }
        _ => {}
    }
}

/// The end-of-run procedure (`docs/design.md`, "From bytes to a report"): repair, write everything back, complete all
/// IO, evict every cache. Afterwards nothing is delalloc or dirty and contents survive eviction.
fn drain(run: &mut Run, seq: &mut u32) {
    let mut apply = |run: &mut Run, op: Op| {
        *seq += 1;
        let out = run.fs.apply(*seq, &op);
        check_observations(run, *seq, &op);
        out
    };
    apply(run, Op::RepairAllocBtree);
    for file in 0..run.files {
        let before = run.fs.peek(file, 0, u64::MAX);
        apply(run, Op::Fsync { file });
        apply(run, Op::CompleteIo { n: u32::MAX });
        assert_eq!(apply(run, Op::EvictInode { file }), Outcome::Done(1));
        assert_eq!(
            run.fs.peek(file, 0, u64::MAX),
            before,
            "eviction changed file {file}"
        );
        let span = run.fs.block_span(file);
        assert!(run
            .fs
            .blocks(file, 0, span)
            .iter()
            .all(|b| b.extent != ExtentState::Delalloc));
    }
    let c = run.fs.counters();
    assert_eq!((c.reserved, c.inflight_ios), (0, 0));
}

#[test]
fn soak_20000_random_ops() {
    // WBFUZZ_SOAK_SEED / WBFUZZ_SOAK_OPS run other seeds or longer soaks by hand.
    let env = |name: &str, default: u64| {
        std::env::var(name)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    };
    let mut rng = Rng(env("WBFUZZ_SOAK_SEED", 0x5EED_CAFE_F00D_1234) | 1);
    let target = env("WBFUZZ_SOAK_OPS", 20_000);
    let mut total = 0;
    let mut seq = 0u32;
    let mut outcomes = std::collections::BTreeMap::new();
    while total < target {
        let mut run = new_run(&mut rng);
        let ops = 50 + rng.below(250);
        for _ in 0..ops {
            let op = random_op(&mut rng, &run);
            seq += 1;
            let file = op.file().unwrap_or(0);
            let size_before = run.fs.size(file);
            let keep = preserves_contents(&op, run.policy);
            let before = if keep {
                Some(run.fs.peek(file, 0, u64::MAX))
            } else {
                None
            };
            let out = run.fs.apply(seq, &op);
            run.trace.push(format!("{seq}: {op} -> {out}"));
            check_observations(&run, seq, &op);
            check_outcome(size_before, &op, &out, run.max);
            if let Some(before) = before {
                assert_eq!(
                    run.fs.peek(file, 0, u64::MAX),
                    before,
                    "op {seq} {op} changed contents"
                );
            }
            let kind = match &out {
                Outcome::Err(e) => format!("{:?} {e}", op.kind()),
                _ => format!("{:?} ok", op.kind()),
            };
            *outcomes.entry(kind).or_insert(0u32) += 1;
            total += 1;
        }
        drain(&mut run, &mut seq);
    }
    // The soak is only worth something if it reaches the error paths.
    for must in [
        "Write ENOSPC",
        "Write EFSCORRUPTED",
        "Fsync EFSCORRUPTED",
        "DirectWrite EINVAL",
        "Truncate EFSCORRUPTED",
    ] {
        assert!(
            outcomes.contains_key(must),
            "soak never produced {must}: {outcomes:?}"
        );
    }
}
