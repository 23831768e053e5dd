//! Binary decoding properties: any bytes decode to a valid, bounded input in every mode, and
//! `decode -> print -> parse` gives the same input back.

use reference::geometry::{MAX_FILES, MAX_THREADS};
use reference::{FileSpec, Geometry, Input, Op, OpKind, Policy};
use std::collections::BTreeSet;
use wbfuzz::generators::SplitMix;
use wbfuzz::input::decode::{
    decode, Mode, MAX_DECODED_CAPACITY, MAX_DECODED_SIZE_FOLIOS, MAX_SCHEDULE, MAX_SEQUENTIAL_OPS,
    MAX_THREAD_OPS, MIN_DECODED_CAPACITY,
};
use wbfuzz::input::script;

const CASES: usize = 5000;
const MODES: [Mode; 3] = [Mode::Sequential, Mode::Concurrent, Mode::Any];

/// Checks every bound decoding promises.
fn check_bounds(input: &Input, mode: Mode, data: &[u8]) {
    let g = &input.config.geometry;
    g.validate().unwrap_or_else(|e| panic!("{data:02x?}: {e}"));
    assert!((MIN_DECODED_CAPACITY..=MAX_DECODED_CAPACITY).contains(&g.capacity_blocks));
    assert!(g.max_file_size <= MAX_DECODED_SIZE_FOLIOS * g.folio_size());
    let nfiles = input.config.files.len();
    assert!((1..=MAX_FILES).contains(&nfiles), "{nfiles} files");
    let nthreads = input.threads.len();
    match mode {
        Mode::Sequential => assert_eq!(nthreads, 1),
        Mode::Concurrent => assert!((2..=MAX_THREADS).contains(&nthreads)),
        Mode::Any => assert!((1..=MAX_THREADS).contains(&nthreads)),
    }
    let per_thread = if nthreads == 1 {
        MAX_SEQUENTIAL_OPS
    } else {
        MAX_THREAD_OPS
    };
    for ops in &input.threads {
        assert!(
            ops.len() <= per_thread,
            "{} ops in a thread of {nthreads}",
            ops.len()
        );
        for op in ops {
            if let Some(f) = op.file() {
                assert!((f as usize) < nfiles, "{op} with {nfiles} files");
            }
            let mut copy = op.clone();
            let (off, len) = match (copy.range_mut(), op) {
                (Some((off, len)), _) => (*off, *len),
                (None, Op::Truncate { size, .. }) => (*size, 0),
                _ => (0, 0),
            };
            assert!(off.checked_add(len).is_some(), "{op} overflows");
        }
    }
    if nthreads == 1 {
        assert!(input.schedule.is_empty());
    }
    assert!(input.schedule.len() <= MAX_SCHEDULE);
}

#[test]
fn decode_is_total_bounded_and_round_trips() {
    for mode in MODES {
        let mut rng = SplitMix::new(0x9e37_79b9_7f4a_7c15, 0);
        for _ in 0..CASES {
            let data = rng.bytes(600);
            let input = decode(&data, mode);
            check_bounds(&input, mode, &data);
            let text = script::print(&input);
            assert!(text.starts_with("# wbfuzz"));
            match script::parse(&text) {
                Ok(back) => assert_eq!(back, input, "round trip of\n{text}"),
                Err(e) => panic!("{e}\nin\n{text}"),
            }
            assert_eq!(script::print(&input), text, "printer not deterministic");
        }
    }
}

#[test]
fn short_inputs_decode() {
    for mode in MODES {
        let empty = decode(&[], mode);
        check_bounds(&empty, mode, &[]);
        assert_eq!(empty.op_count(), 0);
        for len in 0..16 {
            for fill in [0x00, 0xff, 0x5a] {
                let data = vec![fill; len];
                check_bounds(&decode(&data, mode), mode, &data);
            }
        }
    }
}

/// Over the random cases, everything the fuzzer should reach is reached often enough.
#[test]
fn decoded_inputs_cover_the_interesting_space() {
    let mut rng = SplitMix::new(42, 0);
    let mut kinds = BTreeSet::new();
    let (mut direct, mut aligned) = (0u32, 0u32);
    let (mut zero_len, mut efbig, mut ops) = (0u32, 0u32, 0u32);
    let (mut jdata, mut invalidate, mut block_sizes, mut folio_pages) =
        (false, false, BTreeSet::new(), BTreeSet::new());
    let mut thread_counts = BTreeSet::new();
    for i in 0..CASES {
        let data = rng.bytes(600);
        let input = decode(&data, MODES[i % 3]);
        let g = input.config.geometry;
        block_sizes.insert(g.block_size);
        folio_pages.insert(g.folio_pages);
        thread_counts.insert(input.threads.len());
        jdata |= input.config.files.iter().any(|f| f.jdata);
        invalidate |= input.config.policy == Policy::Invalidate;
        for ops_t in &input.threads {
            for op in ops_t {
                ops += 1;
                kinds.insert(op.kind());
                match *op {
                    Op::DirectWrite { off, len, .. } | Op::DirectRead { off, len, .. } => {
                        direct += 1;
                        if off % g.bs() == 0 && len % g.bs() == 0 {
                            aligned += 1;
                        }
                    }
                    Op::Write { off, len, .. } => {
                        zero_len += (len == 0) as u32;
                        efbig += (len > 0 && off >= g.max_file_size) as u32;
                    }
                    _ => {}
                }
            }
        }
    }
    assert_eq!(kinds.len(), OpKind::ALL.len(), "unreached kinds");
    assert!(
        aligned * 10 >= direct * 7,
        "only {aligned} of {direct} direct ops aligned"
    );
    assert!(
        zero_len > 0 && efbig > 0,
        "zero-length {zero_len}, EFBIG {efbig}"
    );
    assert!(ops > 10 * CASES as u32, "{ops} ops");
    assert!(jdata && invalidate);
    assert_eq!(block_sizes.len(), 3);
    assert_eq!(folio_pages.len(), 3);
    assert_eq!(thread_counts, (1..=4).collect());
}

/// Pins the binary layout: a change here invalidates every stored binary corpus entry.
#[test]
fn layout_is_stable() {
    // Header: 4096-byte blocks, 2-page folios, invalidate, 2 files; f1 jdata; capacity 8 + 16*16/129
    // = 9; max 3 folios.
    let data = [
        0b0011_0110,                // block 4096, folio 2 pages, invalidate, 2 files
        0b0000_1100,                // f1 jdata
        16,                         // capacity 9
        2,                          // max 3 folios = 0x6000
        0x40,                       // write (slot 0) f1
        0b1100_0000 | (2 << 3) | 3, // shape: folio-aligned offset, folio-multiple length, sync
        1,                          // offset folio 1
        1,                          // length 2 folios
        63,                         // slot 63: commit f0
        0x80 | 48,                  // slot 48: complete; file bits ignored
        0x0f,                       // n = 255
        13,                         // slot 13: dwrite f0
        0b0100_0110,                // shape: any byte offset, block length, align flag
        0x12,
        0x34, // offset 0x1234 % 0x8001 -> rounded down to 0x1000
        2,    // length 3 blocks
    ];
    let input = decode(&data, Mode::Sequential);
    let expected = Input {
        config: reference::Config {
            geometry: Geometry {
                block_size: 4096,
                folio_pages: 2,
                capacity_blocks: 9,
                max_file_size: 0x6000,
            },
            policy: Policy::Invalidate,
            files: vec![FileSpec { jdata: false }, FileSpec { jdata: true }],
        },
        threads: vec![vec![
            Op::Write {
                file: 1,
                off: 0x2000,
                len: 0x4000,
                sync: true,
            },
            Op::JournalCommit { file: 0 },
            Op::CompleteIo { n: 255 },
            Op::DirectWrite {
                file: 0,
                off: 0x1000,
                len: 0x3000,
            },
        ]],
        schedule: vec![],
    };
    assert_eq!(input, expected);

    // Concurrent: the same header, 2 threads of 1 op each, the rest is the schedule.
    let mut conc = data[..4].to_vec();
    conc.extend([0, 0, 0, 63, 63, 1, 2, 3]);
    let input = decode(&conc, Mode::Concurrent);
    assert_eq!(
        input.threads,
        vec![
            vec![Op::JournalCommit { file: 0 }],
            vec![Op::JournalCommit { file: 0 }]
        ]
    );
    assert_eq!(input.schedule, vec![1, 2, 3]);
}
