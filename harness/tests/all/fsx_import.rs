//! `wbfuzz import-fsx`: fsx logs written by hand from fsx.c's log format, their translation
//! checked line by line against expectations derived by hand, errors with their line numbers,
//! and the translated scripts run on both models.

use std::process::Command;
use wbfuzz::bugs::Bugs;
use wbfuzz::exec;
use wbfuzz::fsx::{self, FsxArgs, FsxError, FsxErrorKind, ImportOptions};
use wbfuzz::input::script;

fn opts(args: &str) -> ImportOptions {
    ImportOptions {
        args: FsxArgs::parse(args).expect("valid fsx args"),
        ..ImportOptions::default()
    }
}

/// The geometry line and the op lines of the imported script.
fn translate(log: &str, o: &ImportOptions) -> (String, Vec<String>) {
    let imported = fsx::import(log, o).unwrap_or_else(|e| panic!("import failed: {e}"));
    let text = imported.script("test.fsxops");
    // The script must read back as the same input.
    assert_eq!(script::parse(&text).expect("script parses"), imported.input);
    let geometry = text
        .lines()
        .find(|l| l.starts_with("geometry "))
        .expect("geometry line")
        .to_string();
    let ops = text
        .lines()
        .skip_while(|l| *l != "thread 0")
        .skip(1)
        .map(|l| l.trim().to_string())
        .collect();
    (geometry, ops)
}

fn import_err(log: &str, o: &ImportOptions) -> FsxError {
    match fsx::import(log, o) {
        Ok(i) => panic!("expected an error, got {} ops", i.input.op_count()),
        Err(e) => e,
    }
}

fn assert_agrees(log: &str, o: &ImportOptions) {
    let imported = fsx::import(log, o).expect("import");
    let run = exec::run_input(&imported.input, Bugs::NONE);
    assert_eq!(run.rejected(), None);
    assert!(run.ok(), "models diverge on the imported log");
    // Input ops plus the epilogue ran.
    assert!(run.trace.len() > imported.input.op_count());
}

/// Every op fsx logs, each flag, skipped ops, comments. Sizes after each line are in the
/// comments; the third number of each line is the size before it, as fsx logs it.
const EVERY_OP: &str = "\
# hand-written fsx log
write 0x1000 0x2000 0x0
read 0x1800 0x800 0x3000
mapread 0xf00 0x1200 0x3000

mapwrite 0x2e00 0x1400 0x3000
truncate 0x0 0x1800 0x4200
fallocate 0x1000 0x3000 0x1800
fallocate 0x4000 0x1000 0x4000 keep_size
fallocate 0x0 0x800 0x4000 unshare
punch_hole 0x800 0x1000 0x4000
zero_range 0x3000 0x2000 0x4000
zero_range 0x5000 0x1000 0x5000 keep_size
fsync 0x0 0x0 0x5000
read_dontcache 0x0 0x100 0x5000
write_dontcache 0x5000 0x100 0x5000
write_atomic 0x6000 0x1000 0x5100
write 0x0 0x10 0x7000 close_open
skip read 0x9000 0x10 0x7000
skip zero_range 0x100 0x0 0x7000 keep_size
skip punch_hole 0x8000 0x10 0x7000 close_open
read 0x100 0x100 0x7000 *
skip collapse_range 0x1000 0x1000 0x7000
skip insert_range 0x1000 0x1000 0x7000
skip clone_range 0x0 0x1000 0x3000 0x7000
skip dedupe_range 0x0 0x1000 0x3000 0x7000
skip copy_range 0x0 0x1000 0x3000 0x7000
skip exchange_range 0x0 0x1000 0x3000 0x7000
skip write_atomic 0x1 0x2 0x7000
\tmapread\t0x6ff0 0x10 0x7000  
";

#[test]
fn every_op_translates_as_derived_by_hand() {
    let (geometry, ops) = translate(EVERY_OP, &ImportOptions::default());
    // No O_DIRECT ops: block 4096; max-size: fsx's default -l 256 KiB (the log reaches only
    // 0x7000); capacity: 0x40000 / 4096 = 64 blocks plus 64 spare.
    assert_eq!(
        geometry,
        "geometry block=4096 folio-pages=1 capacity=128 max-size=0x40000"
    );
    let expected = [
        // line 2
        "write f0 0x1000 0x2000",
        // line 3
        "read f0 0x1800 0x800",
        // line 4: [0xf00, 0x2100) over folios 0, 1, 2
        "mread f0 0xf00 0x100",
        "mread f0 0x1000 0x1000",
        "mread f0 0x2000 0x100",
        // line 6: [0x2e00, 0x4200) ends past EOF 0x3000: ftruncate first, a fault per folio,
        // then msync of the mapping from page 0x2000: folios 2, 3, 4
        "truncate f0 0x4200",
        "mwrite f0 0x2e00 0x200",
        "mwrite f0 0x3000 0x1000",
        "mwrite f0 0x4000 0x200",
        "flush f0 0x2000 0x2200",
        "complete 3",
        // line 7
        "truncate f0 0x1800",
        // lines 8-10 (unshare on an unshared file allocates as mode 0)
        "falloc f0 0x1000 0x3000",
        "falloc f0 0x4000 0x1000 keep-size",
        "falloc f0 0x0 0x800",
        // line 11
        "punch f0 0x800 0x1000",
        // lines 12-13
        "zero f0 0x3000 0x2000",
        "zero f0 0x5000 0x1000 keep-size",
        // line 14
        "fsync f0",
        // lines 15-17: dontcache and atomic are plain buffered IO here
        "read f0 0x0 0x100",
        "write f0 0x5000 0x100",
        "write f0 0x6000 0x1000",
        // line 18, then its close/open
        "write f0 0x0 0x10",
        "evict f0",
        // line 19-20 skipped; line 21's skip still closes and reopens (fsx does, after any op)
        "evict f0",
        // line 22 (the overlap marker means nothing)
        "read f0 0x100 0x100",
        // lines 23-29 skipped; line 30 with tabs and trailing blanks
        "mread f0 0x6ff0 0x10",
    ];
    assert_eq!(ops, expected);
    assert_agrees(EVERY_OP, &ImportOptions::default());
}

#[test]
fn unsupported_ops_are_refused_or_dropped_with_their_size_effect() {
    for (op, line) in [
        ("collapse_range", "collapse_range 0x1000 0x1000 0x3000"),
        ("insert_range", "insert_range 0x1000 0x1000 0x3000"),
        ("clone_range", "clone_range 0x0 0x1000 0x3000 0x3000"),
        ("dedupe_range", "dedupe_range 0x0 0x1000 0x2000 0x3000"),
        ("copy_range", "copy_range 0x0 0x1000 0x3000 0x3000"),
        ("exchange_range", "exchange_range 0x0 0x1000 0x2000 0x3000"),
    ] {
        let log = format!("write 0x0 0x3000 0x0\n{line}\n");
        let e = import_err(&log, &ImportOptions::default());
        assert_eq!(e.line, 2);
        assert_eq!(e.kind, FsxErrorKind::Unsupported(op.to_string()));
        assert_eq!(
            e.to_string(),
            format!(
                "line 2: `{op}` has no wbfuzz analogue (use --skip-unsupported to drop such ops)"
            )
        );
    }
    // Dropped: fsx's size goes on from the dropped op's effect (collapse: 0x3000 - 0x1000,
    // clone: max(0x2000, 0x3000 + 0x1000)), while the wbfuzz file keeps 0x3000. So the
    // mapwrite to [0x3800, 0x3900) (past fsx's 0x2000 but inside the wbfuzz file) extends
    // nothing, and the one to [0x3f00, 0x4100) extends the wbfuzz file to 0x4100.
    let log = "\
write 0x0 0x3000 0x0
collapse_range 0x1000 0x1000 0x3000
mapwrite 0x1800 0x100 0x2000
clone_range 0x0 0x1000 0x3000 0x2000
mapwrite 0x3f00 0x200 0x4000
read 0x0 0x10 0x4100
";
    let o = ImportOptions {
        skip_unsupported: true,
        ..ImportOptions::default()
    };
    let imported = fsx::import(log, &o).expect("import");
    assert!(imported.notes.iter().any(|n| n.contains("dropped 2 ops")
        && n.contains("line 2 collapse_range")
        && n.contains("line 4 clone_range")));
    let (_, ops) = translate(log, &o);
    assert_eq!(
        ops,
        [
            "write f0 0x0 0x3000",
            "mwrite f0 0x1800 0x100",
            "flush f0 0x1000 0x900",
            "complete 1",
            "truncate f0 0x4100",
            "mwrite f0 0x3f00 0x100",
            "mwrite f0 0x4000 0x100",
            "flush f0 0x3000 0x1100",
            "complete 2",
            "read f0 0x0 0x10",
        ]
    );
    assert_agrees(log, &o);
}

#[test]
fn o_direct_reads_and_writes_and_the_block_size() {
    let log = "\
write 0x0 0x3000 0x0
read 0x1000 0x1000 0x3000
mapread 0x2000 0x20 0x3000
";
    let (geometry, ops) = translate(log, &opts("-Z -r 4096 -w 4096 -q fsxfile"));
    assert_eq!(
        geometry,
        "geometry block=4096 folio-pages=1 capacity=128 max-size=0x40000"
    );
    assert_eq!(
        ops,
        [
            "dwrite f0 0x0 0x3000",
            "dread f0 0x1000 0x1000",
            "mread f0 0x2000 0x20",
        ]
    );
    assert_agrees(log, &opts("-Z -r 4096 -w 4096"));
    // 512-byte O_DIRECT: the largest block size dividing every O_DIRECT op is 512.
    let log = "write 0x200 0x400 0x0\nread 0x0 0x600 0x600\n";
    let (geometry, ops) = translate(log, &opts("-ZRW -r512 -w 512"));
    assert_eq!(
        geometry,
        "geometry block=512 folio-pages=1 capacity=576 max-size=0x40000"
    );
    assert_eq!(ops, ["dwrite f0 0x200 0x400", "dread f0 0x0 0x600"]);
    assert_agrees(log, &opts("-Z -r 512 -w 512"));
    // 1024-aligned: block 1024.
    let (geometry, _) = translate("write 0x400 0xc00 0x0\n", &opts("-Z"));
    assert!(geometry.starts_with("geometry block=1024 "));
    // A forced block size the O_DIRECT ops do not fit, and ops fitting none.
    let mut o = opts("-Z -w 512");
    o.block_size = Some(4096);
    let e = import_err(log, &o);
    assert_eq!(
        e.to_string(),
        "line 1: O_DIRECT `dwrite` has 0x200, not a multiple of the block size 4096"
    );
    let e = import_err(
        "write 0x0 0x1000 0x0\nwrite 0x1000 0x100 0x1000\n",
        &opts("-Z"),
    );
    assert_eq!(e.line, 2);
    assert!(matches!(
        e.kind,
        FsxErrorKind::DirectUnaligned {
            value: 0x100,
            block: 512,
            ..
        }
    ));
}

#[test]
fn fsync_after_writes_and_content_checks() {
    // -y: fsync after every write (not after a mapwrite, whose msync already syncs).
    // -X: after every op that ran, read the whole file and fault in its last page.
    let log = "\
write 0x0 0x1800 0x0
mapwrite 0x1800 0x800 0x1800
skip fallocate 0x10 0x20 0x2000
fsync 0x0 0x0 0x2000
";
    let (_, ops) = translate(log, &opts("-y -X"));
    assert_eq!(
        ops,
        [
            // line 1 and its fsync, then the check: size 0x1800, last page from 0x1000
            "write f0 0x0 0x1800",
            "fsync f0",
            "read f0 0x0 0x1800",
            "mread f0 0x1000 0x800",
            // line 2 extends to 0x2000; the check's last page starts at 0x1000 (0x2000 is
            // page aligned, so the page before it)
            "truncate f0 0x2000",
            "mwrite f0 0x1800 0x800",
            "flush f0 0x1000 0x1000",
            "complete 1",
            "read f0 0x0 0x2000",
            "mread f0 0x1000 0x1000",
            // line 3: a switched-off fallocate (length not 0) skips the check
            // line 4
            "fsync f0",
            "read f0 0x0 0x2000",
            "mread f0 0x1000 0x1000",
        ]
    );
    assert_agrees(log, &opts("-y -X"));
}

#[test]
fn begin_prealloc_and_existing_files() {
    // -b 3: the first two ops are only simulated; fsx writes their image (0x2000 bytes) just
    // before the third, and does not close/open while simulating.
    let log = "\
write 0x0 0x1000 0x0 close_open
write 0x1000 0x1000 0x1000
read 0x0 0x10 0x2000
";
    let (_, ops) = translate(log, &opts("-b 3"));
    assert_eq!(ops, ["write f0 0x0 0x2000", "read f0 0x0 0x10"]);
    // -x -l 1m: the XFS reservation of the whole -l first; max-size follows -l.
    let (geometry, ops) = translate("read 0x0 0x0 0x0\n", &opts("-x -l 1m"));
    assert_eq!(
        geometry,
        "geometry block=4096 folio-pages=1 capacity=320 max-size=0x100000"
    );
    assert_eq!(ops, ["falloc f0 0x0 0x100000 keep-size", "read f0 0x0 0x0"]);
    // -k: an existing file of the first line's size, written, clean and out of the cache.
    let log = "read 0x0 0x10 0x3000\ntruncate 0x0 0x1000 0x3000\n";
    let (_, ops) = translate(log, &opts("-k"));
    assert_eq!(
        ops,
        [
            "write f0 0x0 0x3000",
            "fsync f0",
            "evict f0",
            "read f0 0x0 0x10",
            "truncate f0 0x1000",
        ]
    );
    // -L -x: the existing file, the reservation of its size (fsx lite takes -l from the file),
    // then lite's zeroing write.
    let (_, ops) = translate("read 0x0 0x10 0x2000\n", &opts("-L -x"));
    assert_eq!(
        ops,
        [
            "write f0 0x0 0x2000",
            "fsync f0",
            "evict f0",
            "falloc f0 0x0 0x2000 keep-size",
            "write f0 0x0 0x2000",
            "read f0 0x0 0x10",
        ]
    );
    // Folio size and capacity from the options; mapped ops split at 8 KiB folios.
    let o = ImportOptions {
        folio_pages: 2,
        capacity: Some(1000),
        ..ImportOptions::default()
    };
    let (geometry, ops) = translate("write 0x0 0x5000 0x0\nmapread 0x1000 0x3000 0x5000\n", &o);
    assert_eq!(
        geometry,
        "geometry block=4096 folio-pages=2 capacity=1000 max-size=0x40000"
    );
    assert_eq!(
        ops,
        [
            "write f0 0x0 0x5000",
            "mread f0 0x1000 0x1000",
            "mread f0 0x2000 0x2000",
        ]
    );
}

#[test]
fn max_size_follows_the_largest_offset() {
    // -l 4k but a log reaching 0x5123: max-size is the end rounded up to a folio.
    let (geometry, _) = translate("truncate 0x0 0x5123 0x0\n", &opts("-l 4096"));
    assert_eq!(
        geometry,
        "geometry block=4096 folio-pages=1 capacity=70 max-size=0x6000"
    );
    // -l past wbfuzz's limit is clamped to it when the log stays inside.
    let (geometry, _) = translate("write 0x0 0x10 0x0\n", &opts("-l 128m"));
    assert!(geometry.ends_with("max-size=0x4000000"), "{geometry}");
    let e = import_err("write 0x3fff000 0x2000 0x0\n", &ImportOptions::default());
    assert_eq!(e.line, 1);
    assert_eq!(e.kind, FsxErrorKind::TooLarge { end: 0x4001000 });
}

#[test]
fn bad_lines_name_their_line() {
    let d = ImportOptions::default();
    let cases: &[(&str, &str)] = &[
        (
            "write 0x0 0x10 0x0\nfrobnicate 0x0 0x0 0x0\n",
            "line 2: unknown fsx operation `frobnicate`",
        ),
        ("skip\n", "line 1: `skip` is missing its operation"),
        (
            "write 0x0 0x10\n",
            "line 1: `write` is missing its file size",
        ),
        (
            "clone_range 0x0 0x10 0x0\n",
            "line 1: `clone_range` is missing its file size",
        ),
        ("read 0x0 0xzz 0x0\n", "line 1: `0xzz` is not a number"),
        ("read 0x0 -1 0x0\n", "line 1: `-1` is not a number"),
        ("read 0x0 09 0x0\n", "line 1: `09` is not a number"),
        (
            "read 0x0 0x10 0x0 0x5\n",
            "line 1: unknown flag `0x5` on `read`",
        ),
        (
            "write 0x0 0x10 0x0 keep_size\n",
            "line 1: flag `keep_size` means nothing on `write`",
        ),
        (
            "zero_range 0x0 0x10 0x0 unshare\n",
            "line 1: flag `unshare` means nothing on `zero_range`",
        ),
        (
            "write 0x0 0x10 0x0\nread 0x0 0x10 0x20\n",
            "line 2: the log says the file was 0x20 bytes here, the lines before make 0x10: \
             not a whole fsx log from an empty file (fsx keeps only its last 10000 ops), or the \
             --args differ from the run's",
        ),
        (
            "write 0xffffffffffffffff 0x10 0x0\n",
            "line 1: offset + length overflows",
        ),
    ];
    for (log, want) in cases {
        assert_eq!(import_err(log, &d).to_string(), *want, "log {log:?}");
    }
    // fsx re-logs a two-range op it skips while replaying with three numbers (no destination).
    let (_, ops) = translate("skip clone_range 0x0 0x1000 0x0\nread 0x0 0x0 0x0\n", &d);
    assert_eq!(ops, ["read f0 0x0 0x0"]);
    let e = import_err("skip clone_range 0x0 0x1000 0x0 0x10\n", &d);
    assert!(matches!(
        e.kind,
        FsxErrorKind::SizeMismatch {
            logged: 0x10,
            expected: 0
        }
    ));
    assert_eq!(
        import_err("clone_range 0x0 0x1000 0x0 keep_size\n", &d).to_string(),
        "line 1: `keep_size` is not a number"
    );
    // Sizes past 64 bits from dropped ops saturate instead of wrapping.
    let o = ImportOptions {
        skip_unsupported: true,
        ..ImportOptions::default()
    };
    let log =
        "insert_range 0x0 0xffffffffffff0000 0x0\ninsert_range 0x0 0x10000 0xffffffffffff0000\n\
               read 0x0 0x0 0xffffffffffffffff\n";
    let (_, ops) = translate(log, &o);
    assert_eq!(ops, ["read f0 0x0 0x0"]);
    // Octal, as strtoul reads it: 010 is 8.
    let (_, ops) = translate("write 010 0x8 0\n", &d);
    assert_eq!(ops, ["write f0 0x8 0x8"]);
    // Boundaries of -r, -w, -t are checked: fsx applies them before it logs.
    let e = import_err("write 0x10 0x10 0x0\n", &opts("-w 4096"));
    assert_eq!(
        e.to_string(),
        "line 1: `write` offset 0x10 is not a multiple of -w 4096: the log does not come from \
         these --args"
    );
    let e = import_err("truncate 0x0 0x1001 0x0\n", &opts("-t 4k"));
    assert!(matches!(
        e.kind,
        FsxErrorKind::Misaligned { flag: "-t", .. }
    ));
    let e = import_err(
        "write 0x0 0x2000 0x0\nread 0x0 0x1001 0x2000\n",
        &opts("-Z -r 0x1000"),
    );
    assert_eq!(e.line, 2);
    // Bad options.
    let o = ImportOptions {
        folio_pages: 3,
        ..ImportOptions::default()
    };
    assert_eq!(
        import_err("", &o).to_string(),
        "options: bad geometry: folio of 3 pages is not one of 1, 2, 4"
    );
}

#[test]
fn bad_args_are_errors() {
    for (args, want) in [
        ("-Q", "`-Q` is not an fsx option"),
        ("-l", "`-l` needs a value"),
        ("-q -l abc", "`-l abc`: not a number fsx accepts"),
        ("-r 0", "`-r 0`: not a number fsx accepts"),
        ("--bogus", "`--bogus` is not an fsx option"),
        (
            "-b 5 -i /dev/x",
            "-b with -i: fsx does not log the fsyncs of the ops it simulates",
        ),
    ] {
        let e = FsxArgs::parse(args).expect_err(args);
        assert_eq!(e.to_string(), want, "args {args:?}");
    }
    let a = FsxArgs::parse("-qZ -N 1000 -S 0 -l 2m -o 64k -r 1b --record-ops --duration=3 f")
        .expect("valid");
    assert!(a.o_direct);
    assert_eq!(a.maxfilelen, 2 << 20);
    assert_eq!(a.readbdy, 512);
}

/// A small xorshift generator: the same texts on every run.
struct XorShift(u64);
impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

#[test]
fn random_text_never_panics() {
    let mut rng = XorShift(0xF5C0_1337_2026);
    let words = [
        "skip",
        "read",
        "write",
        "mapread",
        "mapwrite",
        "truncate",
        "fallocate",
        "punch_hole",
        "zero_range",
        "collapse_range",
        "clone_range",
        "fsync",
        "keep_size",
        "close_open",
        "unshare",
        "*",
        "0x0",
        "0x1000",
        "0xffffffff",
        "0x3fff000",
        "07",
        "-",
        "#",
        "\t",
        "\n",
        "0x40000",
        "0x10",
        "99999999999999999999999",
    ];
    let arg_words = [
        "-Z", "-X", "-y", "-b", "2", "-k", "-L", "-x", "-l", "8k", "-r", "512", "-e",
    ];
    let mut ok = 0;
    for k in 0..3000 {
        let text: String = if k % 3 == 0 {
            (0..rng.next() % 300)
                .map(|_| char::from(rng.next() as u8 % 128))
                .collect()
        } else {
            (0..rng.next() % 60)
                .map(|_| {
                    let w = words[(rng.next() % words.len() as u64) as usize];
                    let sep = if rng.next().is_multiple_of(4) {
                        "\n"
                    } else {
                        " "
                    };
                    format!("{w}{sep}")
                })
                .collect()
        };
        let args: Vec<&str> = (0..rng.next() % 4)
            .map(|_| arg_words[(rng.next() % arg_words.len() as u64) as usize])
            .collect();
        let Ok(args) = FsxArgs::parse(&args.join(" ")) else {
            continue;
        };
        let o = ImportOptions {
            args,
            skip_unsupported: k % 2 == 0,
            ..ImportOptions::default()
        };
        match fsx::import(&text, &o) {
            Ok(imp) => {
                ok += 1;
                imp.input
                    .config
                    .geometry
                    .validate()
                    .expect("valid geometry");
                let s = imp.script("random");
                assert_eq!(script::parse(&s).expect("parses"), imp.input);
            }
            Err(e) => assert!(!e.to_string().is_empty()),
        }
    }
    assert!(ok > 0, "no random log imported");
    eprintln!("{ok} of 3000 random texts imported");
}

/// fsx's own size rule for an op that ran (the test's copy, from fsx.c's reading).
fn size_after(op: &str, off: u64, len: u64, dest: u64, keep: bool, size: u64) -> u64 {
    match op {
        "write" | "mapwrite" | "write_atomic" => size.max(off + len),
        "truncate" => len,
        "fallocate" | "zero_range" if !keep => size.max(off + len),
        "collapse_range" => size - len,
        "insert_range" => size + len,
        "clone_range" | "copy_range" => size.max(dest + len),
        _ => size,
    }
}

#[test]
fn random_consistent_logs_import_and_agree() {
    let mut rng = XorShift(0x0F5C_0A11_00F5);
    let ops = [
        "read",
        "write",
        "mapread",
        "mapwrite",
        "truncate",
        "fallocate",
        "punch_hole",
        "zero_range",
        "fsync",
        "read_dontcache",
        "write_atomic",
        "collapse_range",
        "insert_range",
        "clone_range",
        "copy_range",
    ];
    let mut ran = 0;
    for k in 0..200 {
        let mut log = String::new();
        let mut size = 0u64;
        for _ in 0..(rng.next() % 40) {
            let op = ops[(rng.next() % ops.len() as u64) as usize];
            let off = rng.next() % 0x10000;
            let mut len = rng.next() % 0x8000;
            let dest = rng.next() % 0x10000;
            let keep = rng.next().is_multiple_of(2) && matches!(op, "fallocate" | "zero_range");
            let skip = rng.next().is_multiple_of(8);
            let reads = matches!(op, "read" | "mapread" | "read_dontcache");
            if op == "collapse_range" {
                len = len.min(size);
            }
            // fsx trims reads to the file and skips zero-length ones.
            let skip = skip || (reads && (off + len > size || len == 0));
            let args = match op {
                "clone_range" | "copy_range" => format!("{off:#x} {len:#x} {dest:#x} {size:#x}"),
                "truncate" => format!("0x0 {len:#x} {size:#x}"),
                "fsync" => format!("0x0 0x0 {size:#x}"),
                _ => format!("{off:#x} {len:#x} {size:#x}"),
            };
            log.push_str(&format!(
                "{}{op} {args}{}{}\n",
                if skip { "skip " } else { "" },
                if keep { " keep_size" } else { "" },
                if rng.next().is_multiple_of(10) {
                    " close_open"
                } else {
                    ""
                },
            ));
            if !skip {
                size = size_after(op, off, len, dest, keep, size);
            }
        }
        let o = ImportOptions {
            skip_unsupported: true,
            args: FsxArgs::parse(if k % 4 == 0 { "-X -y" } else { "" }).expect("args"),
            ..ImportOptions::default()
        };
        let imported = fsx::import(&log, &o).unwrap_or_else(|e| panic!("{e} in\n{log}"));
        if k % 10 == 0 {
            let run = exec::run_input(&imported.input, Bugs::NONE);
            assert!(run.ok(), "models diverge on\n{log}");
            ran += 1;
        }
    }
    assert_eq!(ran, 20);
}

#[test]
fn cli_imports_and_the_script_runs() {
    let dir = std::env::temp_dir().join(format!("wbfuzz-fsx-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("scratch dir");
    let log = dir.join("every.fsxops");
    let out = dir.join("every.wbf");
    std::fs::write(&log, EVERY_OP).expect("write log");
    let bin = env!("CARGO_BIN_EXE_wbfuzz");
    let st = Command::new(bin)
        .args(["import-fsx", "--args", "-q -S 1"])
        .arg(&log)
        .arg("-o")
        .arg(&out)
        .output()
        .expect("run import-fsx");
    assert!(
        st.status.success(),
        "{}",
        String::from_utf8_lossy(&st.stderr)
    );
    let st = Command::new(bin)
        .args(["run", "-q"])
        .arg(&out)
        .output()
        .expect("run");
    assert_eq!(st.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&st.stdout).contains("1 passed, 0 rejected, 0 diverged"));
    // A bad line: exit 2 and `line N:`.
    std::fs::write(&log, "write 0x0 0x10 0x0\ncollapse_range 0x0 0x1000 0x10\n").expect("write");
    let st = Command::new(bin)
        .arg("import-fsx")
        .arg(&log)
        .output()
        .expect("run import-fsx");
    assert_eq!(st.status.code(), Some(2));
    let err = String::from_utf8_lossy(&st.stderr);
    assert!(
        err.contains("every.fsxops: line 2: `collapse_range` has no wbfuzz analogue"),
        "{err}"
    );
    let st = Command::new(bin)
        .args(["import-fsx", "--args", "-Q"])
        .arg(&log)
        .output()
        .expect("run import-fsx");
    assert_eq!(st.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&st.stderr).contains("--args: `-Q` is not an fsx option"));
    let _ = std::fs::remove_dir_all(&dir);
}
