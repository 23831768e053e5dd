//! The `wbfuzz` command as a user meets it: exit codes, error messages, `show` on arbitrary bytes.

use rayon::prelude::*;
use std::path::PathBuf;
use std::process::Command;

fn wbfuzz() -> Command {
    Command::new(env!("CARGO_BIN_EXE_wbfuzz"))
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("wbfuzz-cli-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("create scratch dir");
    dir
}

/// A small xorshift generator: the test's byte strings are the same on every run.
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
fn show_never_panics_on_random_bytes() {
    let dir = scratch("show");
    let mut rng = XorShift(0x5EED_0FB1_7E55);
    let inputs: Vec<(PathBuf, Vec<u8>)> = (0..1000)
        .map(|k| {
            let len = (rng.next() % 700) as usize;
            let bytes: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
            // Half of them as concurrent-target inputs.
            let sub = if k % 2 == 0 {
                "sequential"
            } else {
                "concurrent"
            };
            std::fs::create_dir_all(dir.join(sub)).expect("mkdir");
            (dir.join(sub).join(format!("in{k}")), bytes)
        })
        .collect();
    for (p, b) in &inputs {
        std::fs::write(p, b).expect("write input");
    }
    let failures: Vec<String> = inputs
        .par_iter()
        .filter_map(|(p, _)| {
            let out = wbfuzz().arg("show").arg(p).output().expect("spawn wbfuzz");
            let stdout = String::from_utf8_lossy(&out.stdout);
            let ok =
                out.status.success() && stdout.contains("geometry ") && stdout.contains("thread 0");
            (!ok).then(|| {
                format!(
                    "{}: status {:?}, stderr {}",
                    p.display(),
                    out.status,
                    String::from_utf8_lossy(&out.stderr)
                )
            })
        })
        .collect();
    let _ = std::fs::remove_dir_all(&dir);
    assert!(
        failures.is_empty(),
        "{} of 1000 failed, first: {}",
        failures.len(),
        failures[0]
    );
}

#[test]
fn syntax_error_exits_2_and_names_the_line() {
    let dir = scratch("syntax");
    let p = dir.join("bad.wbf");
    std::fs::write(&p, "geometry block=1024 folio-pages=1 capacity=64 max-size=0x10000\nwrite f0 0x0 0x100\nwrit f0 0x0 0x10\n")
        .expect("write script");
    let out = wbfuzz().arg("run").arg(&p).output().expect("spawn wbfuzz");
    let stderr = String::from_utf8_lossy(&out.stderr);
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(out.status.code(), Some(2), "stderr: {stderr}");
    assert!(
        stderr.contains("line 3:"),
        "stderr should name line 3: {stderr}"
    );
    assert!(
        stderr.contains("writ"),
        "stderr should name the bad token: {stderr}"
    );
}

#[test]
fn unreadable_file_and_unknown_bug_exit_2() {
    let out = wbfuzz()
        .args(["run", "/nonexistent/x.wbf"])
        .output()
        .expect("spawn");
    assert_eq!(out.status.code(), Some(2));
    let out = wbfuzz()
        .args(["run", "--bug", "no-such-bug", "/nonexistent/x.wbf"])
        .output()
        .expect("spawn");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown bug switch"));
    // A missing libFuzzer build is refused before any measuring starts.
    let out = wbfuzz()
        .args(["bench", "--libfuzzer", "/nonexistent"])
        .output()
        .expect("spawn");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no libFuzzer target"));
}

#[test]
fn run_prints_each_op_with_its_result_and_exits_0() {
    let dir = scratch("ok");
    let p = dir.join("ok.wbf");
    std::fs::write(&p, "geometry block=1024 folio-pages=1 capacity=64 max-size=0x10000\nwrite f0 0x0 0x100\nread f0 0x0 0x200\n")
        .expect("write script");
    let out = wbfuzz().arg("run").arg(&p).output().expect("spawn wbfuzz");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(out.status.code(), Some(0), "stdout: {stdout}");
    assert!(
        stdout.contains("write f0 0x0 0x100") && stdout.contains("ok 0x100"),
        "{stdout}"
    );
    // The read returns the 0x100 bytes that exist, not 0x200.
    assert!(
        stdout.contains("read f0 0x0 0x200") && stdout.contains("data 0x100 bytes"),
        "{stdout}"
    );
}

/// Two threads of 150 writes of 64 folios each: far past the 200,000 scheduling points a
/// concurrent run may take (each folio copy is several).
fn too_long_script() -> String {
    let mut s = String::from(
        "geometry block=1024 folio-pages=1 capacity=4096 max-size=0x40000\npolicy keep-dirty\nfile f0\n",
    );
    for t in 0..2 {
        s.push_str(&format!("thread {t}\n"));
        for _ in 0..150 {
            s.push_str("  write f0 0x0 0x40000\n");
        }
    }
    s
}

#[test]
fn a_rejected_input_is_counted_as_rejected_and_exits_3() {
    let dir = scratch("rejected");
    let p = dir.join("long.wbf");
    std::fs::write(&p, too_long_script()).expect("write script");
    let out = wbfuzz()
        .args(["run", "-q"])
        .arg(&p)
        .output()
        .expect("spawn wbfuzz");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(out.status.code(), Some(3), "stdout: {stdout}");
    assert!(
        stdout.contains("rejected: the concurrent run went past the step bound"),
        "{stdout}"
    );
    assert!(
        stdout.contains("1 inputs, 0 passed, 1 rejected, 0 diverged"),
        "{stdout}"
    );
}

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn reproducer() -> Vec<u8> {
    std::fs::read(repo().join("corpus/bugs/discard-keeps-dirty.wbf")).expect("read reproducer")
}

fn run_out(cmd: &mut Command) -> (Option<i32>, String, String) {
    let out = cmd.output().expect("spawn wbfuzz");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A reproducer renamed, with a BOM, or with other line ends is still a script: with its bug
/// switch on it diverges (before, any name but `.wbf` ran it as 58 random binary ops, "models
/// agree", exit 0).
#[test]
fn a_script_is_a_script_whatever_its_name_and_line_ends() {
    let dir = scratch("byname");
    let text = reproducer();
    let utf8 = String::from_utf8(text.clone()).expect("reproducer is UTF-8");
    let variants: Vec<(&str, Vec<u8>)> = vec![
        ("repro", text.clone()),
        ("repro.txt", text.clone()),
        ("bom.bin", [b"\xef\xbb\xbf".as_slice(), &text].concat()),
        ("crlf", utf8.replace('\n', "\r\n").into_bytes()),
        ("cr", utf8.replace('\n', "\r").into_bytes()),
    ];
    let paths: Vec<PathBuf> = variants
        .iter()
        .map(|(name, bytes)| {
            let p = dir.join(name);
            std::fs::write(&p, bytes).expect("write variant");
            p
        })
        .collect();
    let (code, stdout, _) = run_out(
        wbfuzz()
            .args(["run", "--quiet", "--bug", "discard-keeps-dirty"])
            .args(&paths)
            .env_remove("WBFUZZ_BUGS"),
    );
    assert_eq!(code, Some(1), "{stdout}");
    assert!(
        stdout.contains("bug switches: discard-keeps-dirty (--bug)"),
        "{stdout}"
    );
    for p in &paths {
        let line = format!("{}: read as script (by content)", p.display());
        assert!(stdout.contains(&line), "missing `{line}` in\n{stdout}");
    }
    assert!(
        stdout.contains("5 inputs, 0 passed, 0 rejected, 5 diverged"),
        "{stdout}"
    );
    // Forced the other way, the same file is a binary input, and the header says so.
    let (code, stdout, _) = run_out(
        wbfuzz()
            .args(["run", "--quiet", "--binary"])
            .arg(&paths[0])
            .env_remove("WBFUZZ_BUGS"),
    );
    assert_eq!(code, Some(0), "{stdout}");
    assert!(
        stdout.contains(
            "read as binary input for the sequential target (guessed from the path), --binary"
        ),
        "{stdout}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// Text that is not a script is refused, not decoded as random bytes; `--script` on a binary file
/// says it is not text.
#[test]
fn text_that_is_no_script_and_forced_forms_are_refused_clearly() {
    let dir = scratch("text");
    let typo = dir.join("typo");
    std::fs::write(
        &typo,
        "geometri block=1024 folio-pages=1 capacity=64 max-size=0x10000\nwrite f0 0 1\n",
    )
    .expect("write");
    let (code, _, stderr) = run_out(wbfuzz().args(["run"]).arg(&typo));
    assert_eq!(code, Some(2));
    assert!(
        stderr.contains("text but not a script (line 1: `geometri` is not a script keyword)")
            && stderr.contains("--binary"),
        "{stderr}"
    );
    let seed = std::fs::read_dir(repo().join("corpus/sequential"))
        .expect("corpus")
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .find(|p| std::str::from_utf8(&std::fs::read(p).unwrap_or_default()).is_err())
        .expect("a seed that is not UTF-8");
    let (code, _, stderr) = run_out(wbfuzz().args(["show", "--script"]).arg(&seed));
    assert_eq!(code, Some(2));
    assert!(
        stderr.contains("--script, but it is not text (not UTF-8 at byte"),
        "{stderr}"
    );
    // Past the size bound nothing is read whole.
    let huge = dir.join("huge");
    std::fs::write(&huge, vec![0u8; (16 << 20) + 1]).expect("write");
    let (code, _, stderr) = run_out(wbfuzz().args(["show"]).arg(&huge));
    assert_eq!(code, Some(2));
    assert!(stderr.contains("larger than 16 MiB"), "{stderr}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// Every checked-in fuzz seed and benchmark input sniffs as binary, every script as a script, and
/// random byte strings (of every length up to 64, where a short text is likeliest) never as one.
#[test]
fn corpora_are_binary_scripts_are_scripts_random_bytes_never_scripts() {
    use wbfuzz::input::{sniff, Sniffed};
    let root = repo().join("corpus");
    let mut seen = 0;
    for sub in [
        "sequential",
        "concurrent",
        "bench/sequential",
        "bench/concurrent",
    ] {
        for e in std::fs::read_dir(root.join(sub)).expect("corpus dir") {
            let p = e.expect("entry").path();
            let bytes = std::fs::read(&p).expect("read seed");
            assert!(
                matches!(sniff(&bytes), Sniffed::Binary(_)),
                "{} sniffs as {:?}",
                p.display(),
                sniff(&bytes)
            );
            seen += 1;
        }
    }
    assert!(seen > 250, "only {seen} corpus files");
    for sub in ["bugs", "regressions"] {
        for e in std::fs::read_dir(root.join(sub)).expect("corpus dir") {
            let p = e.expect("entry").path();
            if p.extension().is_some_and(|x| x == "wbf") {
                let bytes = std::fs::read(&p).expect("read script");
                assert_eq!(sniff(&bytes), Sniffed::Script, "{}", p.display());
            }
        }
    }
    let mut rng = XorShift(0xB17E_5C41_97ED);
    // Bytes from the printable and whitespace range half of the time: text-like noise.
    for k in 0..200_000u64 {
        let len = (k % 65) as usize;
        let bytes: Vec<u8> = (0..len)
            .map(|_| {
                let r = rng.next();
                if k % 2 == 0 {
                    r as u8
                } else if r % 8 < 2 {
                    [b'\n', b' ', b'#', b'\r'][(r >> 3) as usize % 4]
                } else {
                    0x20 + ((r >> 8) % 95) as u8
                }
            })
            .collect();
        assert_ne!(sniff(&bytes), Sniffed::Script, "{bytes:?}");
    }
}

/// `run A B C` with a bad B runs A and C, reports B, prints the summary and exits 2.
#[test]
fn a_bad_input_is_reported_and_the_others_still_run() {
    let dir = scratch("badmiddle");
    let ok = "geometry block=1024 folio-pages=1 capacity=64 max-size=0x10000\nwrite f0 0x0 0x100\n";
    let (a, b, c) = (dir.join("a.wbf"), dir.join("b.wbf"), dir.join("c.wbf"));
    std::fs::write(&a, ok).expect("write");
    std::fs::write(&b, format!("{ok}writ f0 0 1\n")).expect("write");
    std::fs::write(&c, ok).expect("write");
    let (code, stdout, stderr) = run_out(
        wbfuzz()
            .args(["run", "--quiet"])
            .args([&a, &b, &c])
            .env_remove("WBFUZZ_BUGS"),
    );
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(code, Some(2), "{stdout}");
    assert!(
        stderr.contains("b.wbf: line 3: unknown keyword `writ`"),
        "{stderr}"
    );
    assert!(
        stdout.contains(&format!("{}: not run", b.display())),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!("{}: ok (", c.display())),
        "C did not run:\n{stdout}"
    );
    assert!(
        stdout.contains("3 inputs, 2 passed, 0 rejected, 0 diverged, 1 could not be read"),
        "{stdout}"
    );
}

/// A crash found by a fuzzer under `WBFUZZ_BUGS` replays under it in `run` and `minimize`;
/// `--bug` wins over it; the header names the switches and where they came from.
#[test]
fn run_and_minimize_honour_wbfuzz_bugs() {
    let dir = scratch("envbugs");
    let p = dir.join("crash-1234");
    std::fs::write(&p, reproducer()).expect("write");
    let (code, stdout, _) = run_out(
        wbfuzz()
            .args(["run", "--quiet"])
            .arg(&p)
            .env("WBFUZZ_BUGS", "discard-keeps-dirty"),
    );
    assert_eq!(code, Some(1), "{stdout}");
    assert!(
        stdout.contains("bug switches: discard-keeps-dirty (WBFUZZ_BUGS)"),
        "{stdout}"
    );
    let (code, stdout, _) = run_out(
        wbfuzz()
            .args(["run", "--quiet", "--bug", "unstable-pages"])
            .arg(&p)
            .env("WBFUZZ_BUGS", "discard-keeps-dirty"),
    );
    assert_eq!(code, Some(0), "{stdout}");
    assert!(
        stdout.contains(
            "bug switches: unstable-pages (--bug; WBFUZZ_BUGS=discard-keeps-dirty ignored)"
        ),
        "{stdout}"
    );
    let (code, stdout, _) = run_out(
        wbfuzz()
            .args(["run", "--quiet"])
            .arg(&p)
            .env_remove("WBFUZZ_BUGS"),
    );
    assert_eq!(code, Some(0), "{stdout}");
    assert!(
        stdout.contains("bug switches: none (no --bug, no WBFUZZ_BUGS)"),
        "{stdout}"
    );
    let (code, _, stderr) = run_out(
        wbfuzz()
            .args(["run"])
            .arg(&p)
            .env("WBFUZZ_BUGS", "no-such-bug"),
    );
    assert_eq!(code, Some(2));
    assert!(
        stderr.contains("WBFUZZ_BUGS: unknown bug switch `no-such-bug`"),
        "{stderr}"
    );
    let (code, stdout, stderr) = run_out(
        wbfuzz()
            .args(["minimize", "--budget", "200"])
            .arg(&p)
            .env("WBFUZZ_BUGS", "discard-keeps-dirty"),
    );
    assert_eq!(code, Some(0), "{stderr}");
    assert!(
        stderr.contains(
            "read as script (by content); bug switches: discard-keeps-dirty (WBFUZZ_BUGS)"
        ),
        "{stderr}"
    );
    assert!(
        stdout.starts_with("# wbfuzz minimize (bug switches: discard-keeps-dirty)"),
        "{stdout}"
    );
    let (code, _, stderr) = run_out(
        wbfuzz()
            .args(["minimize"])
            .arg(&p)
            .env_remove("WBFUZZ_BUGS"),
    );
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(code, Some(2));
    assert!(stderr.contains("the models agree"), "{stderr}");
}

/// `oss-fuzz/check-local.sh` runs each fuzzer with every [libfuzzer] option of its .options file
/// (it used to pass `max_len` alone, dropping the concurrent target's `len_control = 0`).
#[test]
fn check_local_passes_every_libfuzzer_option() {
    let dir = scratch("options");
    let f = dir.join("concurrent.options");
    // As build.sh writes it, plus what else an options file may hold.
    std::fs::write(
        &f,
        "[libfuzzer]\nmax_len = 1024\nlen_control = 0\n\n# a comment\n[asan]\ndetect_leaks = 0\n",
    )
    .expect("write");
    let (code, stdout, stderr) = run_out(
        Command::new("bash")
            .arg(repo().join("oss-fuzz/check-local.sh"))
            .arg("--options-flags")
            .arg(&f),
    );
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(stdout, "-max_len=1024\n-len_control=0\n");
    let build = std::fs::read_to_string(repo().join("oss-fuzz/build.sh")).expect("build.sh");
    assert!(
        build.contains(r"max_len = 1024\nlen_control = 0\n"),
        "build.sh no longer writes the options this test mirrors"
    );
}

/// A run's trace keeps a read's bytes as length and CRC32C, so its memory is a fixed size per
/// op (a 10 MB script used to hold 1.85 KB per op, most of it read data, twice).
#[test]
fn traces_hold_reads_as_digests() {
    use reference::model::RefFs;
    use wbfuzz::oracle::{Recorded, TraceEntry};
    let text = "geometry block=1024 folio-pages=1 capacity=64 max-size=0x10000\nwrite f0 0x0 0x3000\nread f0 0x100 0x2000\n";
    let input = wbfuzz::input::parse(text).expect("parse");
    let run = wbfuzz::exec::run_input(&input, wbfuzz::bugs::Bugs::NONE);
    assert!(run.ok());
    // What the read returns, from the reference alone.
    let mut r = RefFs::new(&input.config);
    let ops: Vec<_> = input.threads[0].clone();
    r.apply(1, &ops[0]);
    let reference::Outcome::Data(bytes) = r.apply(2, &ops[1]) else {
        panic!("the read returns data")
    };
    assert_eq!(bytes.len(), 0x2000);
    let want = Recorded::Data {
        len: 0x2000,
        crc32c: reference::crc32c(&bytes),
    };
    assert_eq!(run.trace[1].reference, want);
    assert_eq!(run.trace[1].implementation, want);
    assert!(
        std::mem::size_of::<TraceEntry>() <= 128,
        "a trace entry grew to {} bytes",
        std::mem::size_of::<TraceEntry>()
    );
}
