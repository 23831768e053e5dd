//! The `.wbf` script parser: a hand-written script, the implicit-thread and default rules, and
//! one error of each kind with its line number and message.

use reference::geometry::GeometryError;
use reference::{Config, FileSpec, Geometry, Input, Op, Policy};
use wbfuzz::input::script::{parse, print, ScriptError, ScriptErrorKind};

const GEOMETRY: &str = "geometry block=1024 folio-pages=1 capacity=256 max-size=0x40000\n";

fn geometry() -> Geometry {
    Geometry {
        block_size: 1024,
        folio_pages: 1,
        capacity_blocks: 256,
        max_file_size: 0x40000,
    }
}

#[test]
fn hand_written_script() {
    let text = "\
# wbfuzz script (comments start with '#', blank lines ignored, anywhere)

geometry max-size=262144 capacity=0x100 folio-pages=1 block=1024   # keys in any order
policy invalidate
file f0
   file f1 jdata
thread 0
  write f0 0x0 0x1400 sync
\tcorrupt
  # a comment between ops
  falloc f1 4096 0x1000 keep-size
  zero f0 0 0x10
  complete 0xff
  reclaim f1 3
  truncate f0 0x123
thread 1
  mwrite f1 0x200 0x10
  dwrite f0 0x400 0x400
  dread f1 0 1024
  mread f0 0x0 0x1
  read f0 0 0x2000
  punch f1 0x400 0x800
  flush f0 0 0xffffffffffffffff
  fsync f1
  evict f0
  commit f1
  repair
schedule 0a 1f
schedule 03 FF
";
    let expected = Input {
        config: Config {
            geometry: geometry(),
            policy: Policy::Invalidate,
            files: vec![FileSpec { jdata: false }, FileSpec { jdata: true }],
        },
        threads: vec![
            vec![
                Op::Write {
                    file: 0,
                    off: 0,
                    len: 0x1400,
                    sync: true,
                },
                Op::CorruptAllocBtree,
                Op::Fallocate {
                    file: 1,
                    off: 4096,
                    len: 0x1000,
                    keep_size: true,
                },
                Op::ZeroRange {
                    file: 0,
                    off: 0,
                    len: 0x10,
                    keep_size: false,
                },
                Op::CompleteIo { n: 255 },
                Op::Reclaim { file: 1, folio: 3 },
                Op::Truncate {
                    file: 0,
                    size: 0x123,
                },
            ],
            vec![
                Op::MmapWrite {
                    file: 1,
                    off: 0x200,
                    len: 0x10,
                },
                Op::DirectWrite {
                    file: 0,
                    off: 0x400,
                    len: 0x400,
                },
                Op::DirectRead {
                    file: 1,
                    off: 0,
                    len: 1024,
                },
                Op::MmapRead {
                    file: 0,
                    off: 0,
                    len: 1,
                },
                Op::Read {
                    file: 0,
                    off: 0,
                    len: 0x2000,
                },
                Op::PunchHole {
                    file: 1,
                    off: 0x400,
                    len: 0x800,
                },
                Op::Flush {
                    file: 0,
                    off: 0,
                    len: u64::MAX,
                },
                Op::Fsync { file: 1 },
                Op::EvictInode { file: 0 },
                Op::JournalCommit { file: 1 },
                Op::RepairAllocBtree,
            ],
        ],
        schedule: vec![0x0a, 0x1f, 0x03, 0xff],
    };
    let input = parse(text).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(input, expected);
    assert_eq!(parse(&print(&input)), Ok(input));
}

#[test]
fn defaults_and_implicit_thread() {
    // No policy, no file lines, ops without a thread header.
    let text = format!("{GEOMETRY}write f0 0 1\nthread 1\nfsync f0\n");
    let input = parse(&text).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(input.config.policy, Policy::KeepDirty);
    assert_eq!(input.config.files, vec![FileSpec::default()]);
    assert_eq!(
        input.threads,
        vec![
            vec![Op::Write {
                file: 0,
                off: 0,
                len: 1,
                sync: false
            }],
            vec![Op::Fsync { file: 0 }]
        ]
    );
    assert!(input.schedule.is_empty());

    // Nothing but a geometry: one empty thread 0.
    let input = parse(GEOMETRY).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(input.threads, vec![Vec::<Op>::new()]);
    assert_eq!(parse(&print(&input)), Ok(input));

    // Empty threads survive a round trip.
    let text = format!("{GEOMETRY}thread 0\nthread 1\n  corrupt\nthread 2\n");
    let input = parse(&text).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        input.threads,
        vec![vec![], vec![Op::CorruptAllocBtree], vec![]]
    );
    assert_eq!(parse(&print(&input)), Ok(input));
}

#[test]
fn printer_output_is_stable() {
    let input = Input {
        config: Config {
            geometry: geometry(),
            policy: Policy::KeepDirty,
            files: vec![FileSpec { jdata: false }, FileSpec { jdata: true }],
        },
        threads: vec![
            vec![
                Op::Write {
                    file: 0,
                    off: 0,
                    len: 0x1400,
                    sync: true,
                },
                Op::CorruptAllocBtree,
            ],
            vec![Op::MmapWrite {
                file: 1,
                off: 0x200,
                len: 0x10,
            }],
        ],
        schedule: (0..40).collect(),
    };
    let expected = "\
# wbfuzz script: 2 threads, 3 ops
geometry block=1024 folio-pages=1 capacity=256 max-size=0x40000
policy keep-dirty
file f0
file f1 jdata
thread 0
  write f0 0x0 0x1400 sync
  corrupt
thread 1
  mwrite f1 0x200 0x10
schedule 00 01 02 03 04 05 06 07 08 09 0a 0b 0c 0d 0e 0f 10 11 12 13 14 15 16 17 18 19 1a 1b 1c 1d 1e 1f
schedule 20 21 22 23 24 25 26 27
";
    assert_eq!(print(&input), expected);
}

/// Parses `text` expecting an error; checks its line, kind and that the message names `token`.
fn err(text: &str, line: usize, kind: ScriptErrorKind, token: &str) {
    let e: ScriptError = match parse(text) {
        Ok(input) => panic!("parsed:\n{text}\nto {input:?}"),
        Err(e) => e,
    };
    assert_eq!(e, ScriptError { line, kind }, "for\n{text}");
    let msg = e.to_string();
    assert!(msg.starts_with(&format!("line {line}: ")), "{msg}");
    assert!(msg.contains(token), "`{msg}` does not name `{token}`");
}

#[test]
fn errors_name_line_and_token() {
    use ScriptErrorKind::*;
    let g = GEOMETRY;
    err(
        &format!("{g}\nwrit f0 0 1\n"),
        3,
        UnknownKeyword("writ".into()),
        "`writ`",
    );
    err(
        &format!("{g}write f0 0\n"),
        2,
        MissingArgument {
            keyword: "write".into(),
            what: "length",
        },
        "`write` is missing its length",
    );
    err(
        &format!("{g}read f0 0x1g 1\n"),
        2,
        BadNumber("0x1g".into()),
        "`0x1g`",
    );
    err(
        &format!("{g}read f0 -1 1\n"),
        2,
        BadNumber("-1".into()),
        "`-1`",
    );
    err(
        &format!("{g}read f0 0x10000000000000000 1\n"),
        2,
        NumberOutOfRange {
            token: "0x10000000000000000".into(),
            max: u64::MAX,
        },
        "0x10000000000000000",
    );
    err(
        &format!("{g}complete 4294967296\n"),
        2,
        NumberOutOfRange {
            token: "4294967296".into(),
            max: u32::MAX as u64,
        },
        "4294967296",
    );
    err(
        &format!("{g}write f0 0 1 keep-size\n"),
        2,
        UnknownFlag {
            keyword: "write",
            flag: "keep-size".into(),
        },
        "`keep-size`",
    );
    err(
        &format!("{g}falloc f0 0 1 keep-size keep-size\n"),
        2,
        DuplicateFlag("keep-size".into()),
        "`keep-size`",
    );
    err(
        &format!("{g}fsync f0 now\n"),
        2,
        UnexpectedToken("now".into()),
        "`now`",
    );
    err(
        &format!("{g}thread 0 1\n"),
        2,
        UnexpectedToken("1".into()),
        "`1`",
    );
    err(&format!("{g}fsync 0\n"), 2, BadFileRef("0".into()), "`0`");
    err(
        &format!("{g}file f0\nfile f1\n\nfsync f2\n"),
        5,
        FileOutOfRange {
            token: "f2".into(),
            files: 2,
        },
        "`f2`",
    );
    err(
        &format!("{g}evict f1\n"),
        2,
        FileOutOfRange {
            token: "f1".into(),
            files: 1,
        },
        "`f1`",
    );
    err(
        &format!("{g}file f0\nfile f2\n"),
        3,
        FileOutOfOrder {
            token: "f2".into(),
            expected: 1,
        },
        "`file f2`",
    );
    err(
        &format!("{g}file f0\nfile f1\nfile f2\nfile f3\nfile f4\n"),
        6,
        TooManyFiles,
        "4 files",
    );
    err(
        &format!("{g}file f0 jdata sync\n"),
        2,
        UnknownFlag {
            keyword: "file",
            flag: "sync".into(),
        },
        "`sync`",
    );
    err(
        &format!("{g}thread 1\n"),
        2,
        ThreadOutOfOrder {
            got: 1,
            expected: 0,
        },
        "`thread 1`",
    );
    err(
        &format!("{g}thread 0\nthread 2\n"),
        3,
        ThreadOutOfOrder {
            got: 2,
            expected: 1,
        },
        "`thread 2`",
    );
    err(
        &format!("{g}corrupt\nthread 0\n"),
        3,
        ImplicitThreadZero,
        "`thread 0`",
    );
    err(
        &format!("{g}thread 0\nthread 1\nthread 2\nthread 3\nthread 4\n"),
        6,
        TooManyThreads(4),
        "`thread 4`",
    );
    err(
        "geometry block=1024 folio-pages=1 capacity=256 max=0x40000\n",
        1,
        BadGeometryField("max=0x40000".into()),
        "`max=0x40000`",
    );
    err(
        "geometry block=1024 folio-pages=1 capacity=256 max-size\n",
        1,
        BadGeometryField("max-size".into()),
        "`max-size`",
    );
    err(
        "geometry block=1024 block=512 folio-pages=1 capacity=256 max-size=0x40000\n",
        1,
        DuplicateGeometryKey("block".into()),
        "`block`",
    );
    err(
        "\n\ngeometry block=1024 folio-pages=1 max-size=0x1000\n",
        3,
        MissingGeometryKey("capacity"),
        "capacity=",
    );
    err(
        "geometry block=1000 folio-pages=1 capacity=256 max-size=0x40000\n",
        1,
        BadGeometry(GeometryError::BlockSize(1000)),
        "block size 1000",
    );
    err(
        "geometry block=1024 folio-pages=1 capacity=256 max-size=0x1800\n",
        1,
        BadGeometry(GeometryError::MaxFileSize(0x1800)),
        "6144",
    );
    err(
        "geometry block=0x100000000 folio-pages=1 capacity=256 max-size=0x40000\n",
        1,
        NumberOutOfRange {
            token: "block=0x100000000".into(),
            max: u32::MAX as u64,
        },
        "block=0x100000000",
    );
    err(
        "# only a comment\nfile f0\nthread 0\n",
        3,
        MissingGeometry,
        "geometry",
    );
    err("", 1, MissingGeometry, "geometry");
    err(
        &format!("{g}{g}"),
        2,
        DuplicateLine("geometry"),
        "`geometry`",
    );
    err(
        &format!("{g}policy invalidate\npolicy keep-dirty\n"),
        3,
        DuplicateLine("policy"),
        "`policy`",
    );
    err(
        &format!("{g}policy lazy\n"),
        2,
        UnknownPolicy("lazy".into()),
        "`lazy`",
    );
    err(
        &format!("{g}policy\n"),
        2,
        MissingArgument {
            keyword: "policy".into(),
            what: "policy name",
        },
        "`policy`",
    );
    err(
        &format!("{g}thread 0\nfile f0\n"),
        3,
        HeaderAfterOps("file"),
        "`file`",
    );
    err(
        &format!("{g}repair\npolicy invalidate\n"),
        3,
        HeaderAfterOps("policy"),
        "`policy`",
    );
    err(
        &format!("{g}schedule 0a 1\n"),
        2,
        BadScheduleByte("1".into()),
        "`1`",
    );
    err(
        &format!("{g}schedule 0x1f\n"),
        2,
        BadScheduleByte("0x1f".into()),
        "`0x1f`",
    );
    err(
        &format!("{g}schedule +1\n"),
        2,
        BadScheduleByte("+1".into()),
        "`+1`",
    );
}

#[test]
fn hostile_text_never_panics() {
    let pieces = [
        "geometry",
        "block=512",
        "folio-pages=4",
        "capacity=8",
        "max-size=0x4000",
        "policy",
        "invalidate",
        "file",
        "f0",
        "f1",
        "f9",
        "jdata",
        "thread",
        "0",
        "1",
        "4",
        "write",
        "mwrite",
        "complete",
        "reclaim",
        "sync",
        "keep-size",
        "0x",
        "0xffffffffffffffffff",
        "#",
        "schedule",
        "ff",
        "\n",
        "\n",
        "\n",
        "\t",
        "é",
        "\u{0}",
        "=",
    ];
    let mut x = 0x1234_5678_9abc_def0u64;
    let mut parsed = 0;
    for i in 0..20_000 {
        let mut text = if i % 2 == 0 {
            GEOMETRY.to_string()
        } else {
            String::new()
        };
        for _ in 0..(x % 40) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            text.push_str(pieces[(x % pieces.len() as u64) as usize]);
            text.push(' ');
        }
        if let Ok(input) = parse(&text) {
            parsed += 1;
            assert_eq!(parse(&print(&input)), Ok(input));
        }
    }
    assert!(parsed > 100, "only {parsed} texts parsed");
}

/// The reproducer of `discard-keeps-dirty` as a plain script with `\n` line ends.
const REPRO: &str = "# a comment line\ngeometry block=1024 folio-pages=1 capacity=64 max-size=0x10000\npolicy keep-dirty\nfile f0\nthread 0\n  corrupt\n  write f0 0x0 0x1400 sync\n  dwrite f0 0x0 0x1400\n";

#[test]
fn bom_and_every_line_ending_parse_alike() {
    let plain = parse(REPRO).expect("plain script parses");
    assert_eq!(plain.op_count(), 3);
    let bom = format!("\u{feff}{REPRO}");
    let crlf = REPRO.replace('\n', "\r\n");
    let cr = REPRO.replace('\n', "\r");
    // Mixed ends.
    let mixed = REPRO.replacen('\n', "\r", 2).replacen('\n', "\r\n", 2);
    for (what, text) in [
        ("BOM", &bom),
        ("CRLF", &crlf),
        ("CR", &cr),
        ("mixed", &mixed),
    ] {
        assert_eq!(parse(text).as_ref(), Ok(&plain), "{what}");
    }
    // Line numbers count CR-only lines as lines: line 3 of a CR script is named as line 3.
    let bad = "geometry block=1024 folio-pages=1 capacity=64 max-size=0x10000\rwrite f0 0 1\rwrit f0 0 1\r";
    let e = parse(bad).expect_err("typo on line 3");
    assert_eq!(e.line, 3);
    assert_eq!(e.kind, ScriptErrorKind::UnknownKeyword("writ".into()));
    // A BOM that is not at the very start is not skipped: it is part of the keyword.
    let e = parse(&format!("{GEOMETRY}\u{feff}write f0 0 1\n")).expect_err("BOM inside");
    assert_eq!(e.to_string(), "line 2: unknown keyword `\\u{feff}write`");
}

#[test]
fn invisible_characters_are_printed_escaped() {
    // A zero-width space alone as a keyword, and glued to a real one.
    let e = parse(&format!("{GEOMETRY}\u{200b} f0 0 1\n")).expect_err("zero-width keyword");
    assert_eq!(e.kind, ScriptErrorKind::UnknownKeyword("\u{200b}".into()));
    assert_eq!(e.to_string(), "line 2: unknown keyword `\\u{200b}`");
    let e = parse(&format!("{GEOMETRY}wri\u{200d}te f0 0 1\n")).expect_err("joiner inside");
    assert_eq!(e.to_string(), "line 2: unknown keyword `wri\\u{200d}te`");
    // Control characters and backslashes too; visible non-ASCII stays as it is.
    let e = parse(&format!("{GEOMETRY}write f0 0 1 s\u{7}ync\n")).expect_err("bell in a flag");
    assert_eq!(
        e.to_string(),
        "line 2: unknown flag `s\\u{7}ync` for `write`"
    );
    let e = parse(&format!("{GEOMETRY}écrire\\ f0\n")).expect_err("French");
    assert_eq!(e.to_string(), "line 2: unknown keyword `écrire\\\\`");
}

#[test]
fn scripts_hold_at_most_the_op_limit() {
    use wbfuzz::input::script::MAX_SCRIPT_OPS;
    let mut text = String::from(GEOMETRY);
    text.push_str("thread 0\n");
    for k in 0..MAX_SCRIPT_OPS {
        text.push_str(if k % 2 == 0 {
            "  write f0 0x0 0x200\n"
        } else {
            "  read f0 0x0 0x200\n"
        });
    }
    let input = parse(&text).expect("exactly the limit parses");
    assert_eq!(input.op_count(), MAX_SCRIPT_OPS);
    // One more op, in a second thread: refused on its own line (geometry, thread 0, the ops,
    // thread 1, then the op).
    text.push_str("thread 1\n  fsync f0\n");
    let e = parse(&text).expect_err("one past the limit");
    assert_eq!(e.line, MAX_SCRIPT_OPS + 4);
    assert_eq!(e.kind, ScriptErrorKind::TooManyOps);
    assert!(e.to_string().contains("more than 10000 ops"), "{e}");
}

#[test]
fn crash_takes_optional_land_and_torn_masks_on_any_thread() {
    use ScriptErrorKind::*;
    let g = GEOMETRY;
    let input = parse(&format!(
        "{g}crash\ncrash 0x5\ncrash 7\ncrash 1 torn 0x2 5\n"
    ))
    .expect("parses");
    let c = |land, torn, tear| Op::Crash { land, torn, tear };
    assert_eq!(
        input.threads,
        vec![vec![c(0, 0, 0), c(5, 0, 0), c(7, 0, 0), c(1, 2, 5)]]
    );
    // The printer writes the masks only when they are not 0, and reads back to the same ops.
    let text = print(&input);
    assert!(
        text.contains("  crash\n  crash 0x5\n  crash 0x7\n  crash 0x1 torn 0x2 0x5\n"),
        "{text}"
    );
    assert_eq!(parse(&text).expect("round trip"), input);
    err(
        &format!("{g}crash 0x100000000\n"),
        2,
        NumberOutOfRange {
            token: "0x100000000".into(),
            max: u32::MAX as u64,
        },
        "0x100000000",
    );
    err(
        &format!("{g}crash 1 2\n"),
        2,
        UnexpectedToken("2".into()),
        "`2`",
    );
    err(
        &format!("{g}crash 1 torn 2\n"),
        2,
        MissingArgument {
            keyword: "crash".into(),
            what: "tear bits",
        },
        "tear bits",
    );
    // A crash on any thread of a concurrent script.
    let two = parse(&format!(
        "{g}thread 0\n  write f0 0 1\n  crash\nthread 1\n  read f0 0 1\n  crash 3\n"
    ))
    .expect("parses");
    assert_eq!(two.threads[0][1], c(0, 0, 0));
    assert_eq!(two.threads[1][1], c(3, 0, 0));
}
