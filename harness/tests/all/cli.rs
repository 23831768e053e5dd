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
