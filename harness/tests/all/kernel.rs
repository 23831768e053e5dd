//! Kernel runs: the syscall mapping on a plain temporary directory (no root needed), the
//! tolerated relation, and, where root, loop devices and the mkfs tools exist, scratch devices,
//! their cleanup on SIGINT, and the kernel log checker. Tests that need root skip with one line.

use reference::{Errno, ExtentState, Input, Op, Outcome};
use std::path::Path;
use std::process::{Command, Stdio};
use wbfuzz::input::script;
use wbfuzz::kernel::exec::{self, Executor, FsizeLimit};
use wbfuzz::kernel::oracle::{self, KernelTarget, Place};
use wbfuzz::kernel::scratch::{self, Scratch};
use wbfuzz::kernel::{fiemap, fs_kind_of, kmsg, FsKind};

/// RLIMIT_FSIZE is per process and the runs set it: tests that touch files take turns (a 320 MiB
/// image made while another test holds a 256 KiB limit would fail).
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

fn parse(text: &str) -> Input {
    script::parse(text).expect("test script parses")
}

/// A script of one file with these ops, block size `bs`.
fn one_file(bs: u32, ops: &str) -> Input {
    parse(&format!(
        "geometry block={bs} folio-pages=1 capacity=256 max-size=0x40000\npolicy keep-dirty\nfile f0\nthread 0\n{ops}"
    ))
}

/// The block size of the filesystem holding the temporary directory (the tests' scripts use it,
/// as `--dir` runs do).
fn tmp_block() -> u32 {
    fs_kind_of(&std::env::temp_dir()).map_or(4096, |(_, b)| b as u32)
}

fn ops_of(input: &Input) -> Vec<Op> {
    input.threads[0].clone()
}

/// Runs every op of `input` in a fresh temporary directory and returns the outcomes.
fn outcomes(input: &Input) -> (tempfile::TempDir, Executor, Vec<Outcome>) {
    let dir = tempfile::tempdir().expect("tempdir");
    let kind = fs_kind_of(dir.path()).expect("statfs").0;
    let mut k = Executor::create(dir.path(), input, kind).expect("create files");
    let _limit = FsizeLimit::set(input.config.geometry.max_file_size).expect("rlimit");
    let out = input
        .numbered_ops()
        .map(|(_, seq, op)| k.apply(seq, op).expect("errno in the vocabulary"))
        .collect();
    (dir, k, out)
}

#[test]
fn buffered_write_read_and_sync_write_are_pwrite_and_pread() {
    let _serial = serial();
    let bs = tmp_block();
    let input = one_file(
        bs,
        "write f0 0x10 0x100\nwrite f0 0x1000 0x10 sync\nread f0 0x0 0x2000\nread f0 0x5000 0x10\n",
    );
    let (_d, k, out) = outcomes(&input);
    assert_eq!(out[0], Outcome::Done(0x100));
    assert_eq!(out[1], Outcome::Done(0x10));
    let Outcome::Data(d) = &out[2] else {
        panic!("read returned {:?}", out[2])
    };
    // The read stops at EOF (0x1010) and shows each write's pattern at its offset, zeros between.
    assert_eq!(d.len(), 0x1010);
    assert!(d[..0x10].iter().all(|&b| b == 0));
    assert_eq!(
        &d[0x10..0x110],
        &reference::pattern::pattern(1, 0x10, 0x100)[..]
    );
    assert!(d[0x110..0x1000].iter().all(|&b| b == 0));
    assert_eq!(
        &d[0x1000..],
        &reference::pattern::pattern(2, 0x1000, 0x10)[..]
    );
    assert_eq!(
        out[3],
        Outcome::Data(vec![]),
        "a read past EOF returns nothing"
    );
    assert_eq!(k.size(0).unwrap(), 0x1010);
}

#[test]
fn faults_clip_to_the_folio_and_eof_and_never_touch_past_eof() {
    let _serial = serial();
    let bs = tmp_block();
    let input = one_file(
        bs,
        "mwrite f0 0x0 0x10\nwrite f0 0x0 0x1800\nmwrite f0 0xff0 0x100\nmread f0 0x1700 0x1000\nmread f0 0x1800 0x1\nmwrite f0 0x1000 0x0\n",
    );
    let (_d, k, out) = outcomes(&input);
    assert_eq!(
        out[0],
        Outcome::Err(Errno::Efault),
        "a fault on an empty file"
    );
    // Clipped to the end of the page (folio-pages=1): 0x10 of 0x100 bytes.
    assert_eq!(out[2], Outcome::Done(0x10));
    let Outcome::Data(d) = &out[3] else {
        panic!("mread returned {:?}", out[3])
    };
    // Clipped to EOF at 0x1800.
    assert_eq!(&d[..], &reference::pattern::pattern(2, 0x1700, 0x100)[..]);
    assert_eq!(out[4], Outcome::Err(Errno::Efault), "a fault at EOF");
    assert_eq!(out[5], Outcome::Done(0), "an empty fault inside EOF");
    assert_eq!(k.size(0).unwrap(), 0x1800, "faults never change the size");
    let mut buf = Vec::new();
    k.read_all(0, &mut buf).unwrap();
    assert_eq!(
        &buf[0xff0..0x1000],
        &reference::pattern::pattern(3, 0xff0, 0x10)[..]
    );
    assert_eq!(
        &buf[0x1000..0x1010],
        &reference::pattern::pattern(2, 0x1000, 0x10)[..]
    );
}

#[test]
fn the_size_limit_gives_efbig_and_short_writes_without_killing_the_process() {
    let _serial = serial();
    let bs = tmp_block();
    let input = one_file(
        bs,
        "write f0 0x3ff00 0x200\nwrite f0 0x40000 0x1\ntruncate f0 0x40001\ntruncate f0 0x40000\nfalloc f0 0x3f000 0x2000 keep-size\nfalloc f0 0x0 0x0\npunch f0 0x40000 0x1\nwrite f0 0x50000 0x0\n",
    );
    let (_d, k, out) = outcomes(&input);
    assert_eq!(out[0], Outcome::Done(0x100), "cut short at max-size");
    assert_eq!(out[1], Outcome::Err(Errno::Efbig));
    assert_eq!(out[2], Outcome::Err(Errno::Efbig));
    assert_eq!(out[3], Outcome::Done(0));
    assert_eq!(out[4], Outcome::Err(Errno::Efbig));
    assert_eq!(
        out[5],
        Outcome::Err(Errno::Einval),
        "len 0 is EINVAL before EFBIG"
    );
    assert_eq!(out[6], Outcome::Err(Errno::Efbig));
    assert_eq!(out[7], Outcome::Done(0), "an empty write past the limit");
    assert_eq!(k.size(0).unwrap(), 0x40000);
}

#[test]
fn fallocate_family_and_background_ops() {
    let _serial = serial();
    let bs = tmp_block() as u64;
    let input = one_file(
        bs as u32,
        &format!(
            "falloc f0 0x0 {:#x} keep-size\nfalloc f0 0x0 {:#x}\nwrite f0 0x0 {:#x}\nflush f0 0x0 0x0\nflush f0 0x0 {:#x}\ncomplete 1\nreclaim f0 0\nzero f0 0x0 {:#x} keep-size\npunch f0 0x0 {:#x}\nevict f0\nfsync f0\ntruncate f0 0x10\n",
            4 * bs,
            bs,
            2 * bs,
            2 * bs,
            bs,
            bs
        ),
    );
    let (_d, k, out) = outcomes(&input);
    assert!(
        out.iter()
            .all(|o| *o == Outcome::Done(0) || *o == Outcome::Done(2 * bs)),
        "{out:?}"
    );
    assert_eq!(k.size(0).unwrap(), 0x10);
    let mut buf = Vec::new();
    k.read_all(0, &mut buf).unwrap();
    assert_eq!(buf, vec![0u8; 0x10], "punched and zeroed to zeros");
    // On a filesystem with FIEMAP, the punched first block is a hole again.
    if let Ok(states) = fiemap::block_states(k.file(0), bs, 1) {
        assert_eq!(states, vec![ExtentState::Hole]);
    }
}

#[test]
fn fiemap_reads_unwritten_written_and_holes() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let (Some(kind), bs) = fs_kind_of(dir.path()).unwrap() else {
        eprintln!("skipped: the temporary directory is not on XFS, ext4 or btrfs");
        return;
    };
    let input = one_file(
        bs as u32,
        &format!(
            "falloc f0 0x0 {:#x}\nwrite f0 {:#x} {:#x}\nfsync f0\n",
            2 * bs,
            3 * bs,
            bs
        ),
    );
    let mut k = Executor::create(dir.path(), &input, Some(kind)).unwrap();
    for (_, seq, op) in input.numbered_ops() {
        k.apply(seq, op).unwrap();
    }
    let s = fiemap::block_states(k.file(0), bs, 5).unwrap();
    assert_eq!(
        s,
        vec![
            ExtentState::Unwritten,
            ExtentState::Unwritten,
            ExtentState::Hole,
            ExtentState::Written,
            ExtentState::Hole
        ],
        "{kind}"
    );
}

#[test]
fn unaligned_direct_io_is_einval_and_aligned_direct_io_round_trips() {
    let _serial = serial();
    let bs = tmp_block() as u64;
    let input = one_file(
        bs as u32,
        &format!(
            "dwrite f0 0x0 {:#x}\ndwrite f0 0x1 {:#x}\ndread f0 0x0 {:#x}\n",
            2 * bs,
            bs,
            2 * bs
        ),
    );
    let dir = tempfile::tempdir().unwrap();
    let kind = fs_kind_of(dir.path()).unwrap().0;
    let mut k = Executor::create(dir.path(), &input, kind).unwrap();
    let ops = ops_of(&input);
    match k.apply(1, &ops[0]) {
        Ok(Outcome::Done(n)) => assert_eq!(n, 2 * bs),
        other => {
            eprintln!("skipped: no O_DIRECT on the temporary directory ({other:?})");
            return;
        }
    }
    assert_eq!(k.apply(2, &ops[1]), Ok(Outcome::Err(Errno::Einval)));
    assert_eq!(
        k.apply(3, &ops[2]),
        Ok(Outcome::Data(reference::pattern::pattern(
            1,
            0,
            2 * bs as usize
        )))
    );
}

#[test]
fn kernel_view_and_refusals() {
    let _serial = serial();
    let input = parse(
        "geometry block=1024 folio-pages=4 capacity=64 max-size=0x10000\npolicy keep-dirty\nfile f0 jdata\nthread 0\n  write f0 0x0 0x10\n  commit f0\n",
    );
    let (v, changed) = exec::kernel_view(&input, false);
    assert!(changed);
    assert!(!v.config.files[0].jdata);
    assert_eq!(v.config.geometry.folio_pages, 1);
    assert_eq!(v.threads[0][1], Op::Fsync { file: 0 });
    // On ext4 data=journal every file is journaled data; commit is still fsync.
    let two = parse(
        "geometry block=1024 folio-pages=1 capacity=64 max-size=0x10000\npolicy keep-dirty\nfile f0 jdata\nfile f1\nthread 0\n  write f1 0x0 0x10\n",
    );
    let (v, changed) = exec::kernel_view(&two, true);
    assert!(changed, "f1 became journaled data");
    assert!(v.config.files.iter().all(|f| f.jdata));
    let (_, changed) = exec::kernel_view(&parse(
        "geometry block=1024 folio-pages=1 capacity=64 max-size=0x10000\npolicy keep-dirty\nfile f0 jdata\nthread 0\n  write f0 0x0 0x10\n",
    ), true);
    assert!(!changed);
    assert!(exec::unsupported(&input).is_none());
    let bad = parse(
        "geometry block=1024 folio-pages=1 capacity=64 max-size=0x10000\npolicy keep-dirty\nfile f0\nthread 0\n  corrupt\n",
    );
    assert!(exec::unsupported(&bad).is_some_and(|w| w.contains("corrupt")));
    assert!(FsKind::Xfs.refuses_block(512).is_some());
    assert!(FsKind::Ext4.refuses_block(512).is_some());
    assert!(FsKind::Btrfs.refuses_block(1024).is_some());
    assert!(FsKind::Xfs.refuses_block(1024).is_none());
    assert!(FsKind::Ext4.refuses_block(4096).is_none());
}

#[test]
fn the_relation_lets_the_kernel_be_ahead_never_behind() {
    let _serial = serial();
    use reference::{BlockObs, CacheState};
    let b = |extent, cache, writeback| BlockObs {
        extent,
        cache,
        writeback,
    };
    let (h, d, u, w) = (
        ExtentState::Hole,
        ExtentState::Delalloc,
        ExtentState::Unwritten,
        ExtentState::Written,
    );
    let clean = CacheState::Clean;
    let t = |fs, r, k, place, settled| oracle::tolerated(fs, r, k, place, settled);
    let xfs = Some(FsKind::Xfs);
    let inside = Place::InsideEof;
    // Ahead: allowed.
    assert!(t(xfs, b(h, clean, false), u, inside, true));
    assert!(t(xfs, b(d, CacheState::Dirty, false), w, inside, true));
    // Behind: refused.
    assert!(!t(xfs, b(d, CacheState::Dirty, false), h, inside, false));
    assert!(!t(xfs, b(u, clean, false), h, inside, false));
    assert!(!t(xfs, b(w, clean, false), d, inside, false));
    // IO completion may lag until settled.
    assert!(t(xfs, b(w, clean, false), u, inside, false));
    assert!(!t(xfs, b(w, clean, false), u, inside, true));
    // Past EOF: a reference hole may be anything, preallocation must stay (XFS).
    assert!(t(
        xfs,
        b(h, CacheState::NotCached, false),
        w,
        Place::PastEof,
        true
    ));
    assert!(!t(
        xfs,
        b(u, CacheState::NotCached, false),
        h,
        Place::PastEof,
        true
    ));
    // ext4 frees past EOF and rounds punches: tolerated there only.
    let ext4 = Some(FsKind::Ext4);
    assert!(t(
        ext4,
        b(u, CacheState::NotCached, false),
        h,
        Place::PastEof,
        true
    ));
    assert!(t(
        ext4,
        b(d, CacheState::Dirty, false),
        h,
        Place::Zero,
        true
    ));
    assert!(!t(
        xfs,
        b(d, CacheState::Dirty, false),
        h,
        Place::Zero,
        true
    ));
    assert!(!t(ext4, b(d, CacheState::Dirty, false), h, inside, true));
}

#[test]
fn a_dir_run_agrees_and_compares_the_whole_file() {
    let _serial = serial();
    let bs = tmp_block() as u64;
    let input = one_file(
        bs as u32,
        &format!(
            "write f0 0x0 {:#x}\nwrite f0 {:#x} 0x10 sync\nfsync f0\ntruncate f0 {:#x}\nread f0 0x0 {:#x}\nevict f0\n",
            3 * bs,
            5 * bs,
            2 * bs + 7,
            6 * bs
        ),
    );
    let dir = tempfile::tempdir().unwrap();
    let kind = fs_kind_of(dir.path()).unwrap().0;
    let target = KernelTarget {
        dir: dir.path(),
        fs: kind,
        device: None,
        repeat: None,
        jdata: false,
    };
    let run = oracle::run_on_kernel(&target, &input, None).expect("runs");
    assert!(run.ok(), "{}", oracle::render("t", &input, &run));
    // The input's 6 ops and the epilogue (fsync, complete, evict).
    assert_eq!(run.trace.len(), 6 + 3);
    assert!(
        std::fs::read_dir(dir.path()).unwrap().next().is_none(),
        "files removed after the run"
    );
}

#[test]
fn cli_kernel_run_on_a_dir_and_refusals() {
    let _serial = serial();
    let bs = tmp_block();
    let dir = tempfile::tempdir().unwrap();
    let ok = dir.path().join("ok.wbf");
    std::fs::write(
        &ok,
        script::print(&one_file(
            bs,
            "write f0 0x0 0x1000\nfsync f0\nread f0 0x0 0x1000\n",
        )),
    )
    .unwrap();
    let bad = dir.path().join("bad.wbf");
    std::fs::write(
        &bad,
        script::print(&one_file(bs, "corrupt\nwrite f0 0x0 0x10\n")),
    )
    .unwrap();
    let work = tempfile::tempdir().unwrap();
    let run = |files: &[&Path]| {
        Command::new(env!("CARGO_BIN_EXE_wbfuzz"))
            .args(["kernel", "run", "-q", "--dir"])
            .arg(work.path())
            .args(files)
            .output()
            .unwrap()
    };
    let out = run(&[&ok]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(text.contains("kernel and reference agree"), "{text}");
    let out = run(&[&ok, &bad]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(2), "{text}");
    assert!(
        text.contains("refused") && text.contains("corrupt"),
        "{text}"
    );
    // Neither --mkfs nor --dir: usage error.
    let out = Command::new(env!("CARGO_BIN_EXE_wbfuzz"))
        .args(["kernel", "run"])
        .arg(&ok)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}

/// Why root tests cannot run here, if they cannot.
fn no_root_reason(fs: FsKind) -> Option<String> {
    scratch::preflight(fs, 4096).err().map(|e| e.to_string())
}

fn mounted(path: &str) -> bool {
    std::fs::read_to_string("/proc/mounts")
        .unwrap_or_default()
        .contains(path)
}

fn attached(image: &str) -> bool {
    let out = Command::new("losetup").arg("-a").output();
    out.is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains(image))
}

#[test]
fn scratch_devices_mount_run_and_leave_nothing_behind() {
    let _serial = serial();
    for fs in [FsKind::Xfs, FsKind::Ext4] {
        if let Some(why) = no_root_reason(fs) {
            eprintln!("skipped ({fs} scratch device): {why}");
            continue;
        }
        let s = Scratch::create(fs, 1024, scratch::image_size(1, 1 << 20)).expect("scratch");
        let (mnt, image) = (
            s.dir().display().to_string(),
            s.image().display().to_string(),
        );
        assert!(mounted(&mnt) && attached(&image));
        assert_eq!(fs_kind_of(s.dir()).unwrap(), (Some(fs), 1024));
        let input = one_file(
            1024,
            "write f0 0x10 0x1000\ndwrite f0 0x1000 0x400\nfsync f0\n",
        );
        let target = KernelTarget {
            dir: s.dir(),
            fs: Some(fs),
            device: Some(s.device_name().to_string()),
            repeat: None,
            jdata: false,
        };
        let run = wbfuzz::kernel::hunt::run_checked(&target, &input).unwrap();
        assert!(run.ok(), "{}", oracle::render("t", &input, &run));
        // A warning about this device logged during a run is a finding of that run.
        if let (Ok(mut watch), Ok(mut w)) = (
            kmsg::KmsgWatch::open(),
            std::fs::OpenOptions::new().write(true).open("/dev/kmsg"),
        ) {
            use std::io::Write;
            // One write() is one kernel log record: format first.
            let line = format!(
                "<4>wbfuzz test: XFS ({}): metadata I/O error: fake, for the checker\n",
                s.device_name()
            );
            w.write_all(line.as_bytes()).unwrap();
            let run = oracle::run_on_kernel(&target, &input, Some(&mut watch)).unwrap();
            let report = oracle::render("t", &input, &run);
            assert_eq!(
                run.signature().map(|s| s.mismatch),
                Some("kernel-log"),
                "{report}"
            );
            assert!(report.contains("fake, for the checker"), "{report}");
        }
        s.destroy().expect("cleanup");
        assert!(!mounted(&mnt), "{mnt} still mounted");
        assert!(!attached(&image), "{image} still attached");
        assert!(!Path::new(&image).exists());
    }
}

#[test]
fn an_impossible_block_size_is_refused_clearly() {
    let _serial = serial();
    if let Some(why) = no_root_reason(FsKind::Btrfs) {
        eprintln!("skipped (btrfs block size refusal): {why}");
        return;
    }
    let e = scratch::preflight(FsKind::Btrfs, 1024)
        .unwrap_err()
        .to_string();
    assert!(e.contains("btrfs") && e.contains("4096"), "{e}");
}

#[test]
fn sigint_cleans_up_the_scratch_device() {
    let _serial = serial();
    if let Some(why) = no_root_reason(FsKind::Ext4) {
        eprintln!("skipped (SIGINT cleanup): {why}");
        return;
    }
    // Long enough to be interrupted in the middle: 4,900 writes and fsyncs (under the
    // 10,000-op limit of a script).
    let mut ops = String::new();
    for k in 0..4_900 {
        ops.push_str(&format!(
            "write f0 {:#x} 0x10\nfsync f0\n",
            (k % 64) * 0x400
        ));
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("long.wbf");
    std::fs::write(&path, script::print(&one_file(1024, &ops))).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_wbfuzz"))
        .args(["kernel", "run", "-q", "--mkfs", "ext4"])
        .arg(&path)
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    // Wait for "... on /dev/loopN mounted at DIR".
    let mut err = std::io::BufReader::new(child.stderr.take().unwrap());
    let mut line = String::new();
    std::io::BufRead::read_line(&mut err, &mut line).unwrap();
    let mnt = line
        .rsplit(' ')
        .next()
        .unwrap_or_default()
        .trim()
        .to_string();
    let dev = line
        .split(' ')
        .find(|w| w.starts_with("/dev/loop"))
        .unwrap_or_default()
        .to_string();
    assert!(
        !mnt.is_empty() && !dev.is_empty(),
        "unexpected line `{line}`"
    );
    assert!(mounted(&mnt));
    std::thread::sleep(std::time::Duration::from_millis(300));
    let pid = rustix::process::Pid::from_raw(child.id() as i32).unwrap();
    rustix::process::kill_process(pid, rustix::process::Signal::INT).unwrap();
    let status = child.wait().unwrap();
    let mut rest = String::new();
    let _ = std::io::Read::read_to_string(&mut err, &mut rest);
    assert_eq!(status.code(), Some(130), "{rest}");
    assert!(!mounted(&mnt), "{mnt} still mounted after SIGINT");
    let losetup = Command::new("losetup").arg("-a").output().unwrap();
    let list = String::from_utf8_lossy(&losetup.stdout);
    assert!(
        !list.lines().any(|l| l.starts_with(&format!("{dev}:"))),
        "{dev} still attached after SIGINT: {list}"
    );
}

#[test]
fn a_kernel_warning_about_the_device_is_a_finding() {
    let _serial = serial();
    let watch = kmsg::KmsgWatch::open();
    let writable = std::fs::OpenOptions::new().write(true).open("/dev/kmsg");
    let (Ok(mut watch), Ok(mut w)) = (watch, writable) else {
        eprintln!(
            "skipped (kernel log checker): /dev/kmsg cannot be read and written (needs root)"
        );
        return;
    };
    use std::io::Write;
    // Device names no real loop device has here, so nothing else can match them.
    writeln!(
        w,
        "<4>wbfuzz test: XFS (loop9999): WARNING: fake warning for the checker"
    )
    .unwrap();
    writeln!(
        w,
        "<4>wbfuzz test: XFS (loop99990): metadata I/O error (another device)"
    )
    .unwrap();
    writeln!(
        w,
        "<6>wbfuzz test: XFS (loop9999): Mounting V5 Filesystem (not trouble)"
    )
    .unwrap();
    let found: Vec<String> = watch
        .findings("loop9999")
        .unwrap()
        .into_iter()
        .filter(|l| l.contains("wbfuzz test"))
        .collect();
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(found[0].contains("fake warning"));
}

const RACE_BREAKER: &str = "geometry block=4096 folio-pages=1 capacity=64 max-size=0x10000
policy keep-dirty
file f0
thread 0
  write f0 0x0 0x100
thread 1
  flush f0 0x0 0x10000
  write f0 0x800 0x100
";

/// Thread 0 direct-writes folio 0 and read-faults folio 1 while thread 1 direct-writes folio 1
/// (the racy read of seed 001's window) and flushes everything. (Both write directly: the race
/// rule keeps a shared file's direct and page-cache writes on one thread.)
const RACY_OK: &str = "geometry block=4096 folio-pages=1 capacity=64 max-size=0x10000
policy keep-dirty
file f0
thread 0
  dwrite f0 0x0 0x1000
  mread f0 0x1000 0x10
thread 1
  flush f0 0x0 0x10000
  dwrite f0 0x1000 0x1000
  read f0 0x1000 0x1000
";

#[test]
fn a_threaded_script_that_breaks_the_race_rule_is_refused_with_its_line() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("breaker.wbf");
    std::fs::write(&script, RACE_BREAKER).unwrap();
    let files = dir.path().join("files");
    std::fs::create_dir(&files).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_wbfuzz"))
        .args(["kernel", "run", "--dir"])
        .arg(&files)
        .arg(&script)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(2), "{stdout}");
    // Line 8 is thread 1's second op, the write into folio 0 that thread 0 owns.
    assert!(
        stdout.contains("refused: line 8: thread 1 op 2 breaks the race rule")
            && stdout.contains("f0 folio 0 is already written by thread 0"),
        "{stdout}"
    );
}

#[test]
fn the_large_folio_collision_finding_is_refused_at_the_fault_line() {
    // The kernel finding of SPEC.md, "Known kernel finding: large folios": the rule keeps a
    // shared file's direct and page-cache writes on one thread, so the script is refused at
    // thread 1's write fault, line 16.
    let _serial = serial();
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../corpus/kernel/large-folio-dwrite-mwrite-collision.wbf"
    );
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_wbfuzz"))
        .args(["kernel", "run", "--dir"])
        .arg(dir.path())
        .arg(script)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(2), "{stdout}");
    assert!(
        stdout.contains("refused: line 16: thread 1 op 2 breaks the race rule")
            && stdout.contains("f0 is written directly by thread 0"),
        "{stdout}"
    );
}

/// Journaled data on ext4 (`--jdata`: mounted data=journal): buffered, mapped and direct IO
/// (which ext4 runs buffered on journaled data, so the unaligned direct read at 0x2080 is served
/// with the file's bytes where the spec refuses it), punch, commit and fsync.
const JDATA_OK: &str = "geometry block=4096 folio-pages=1 capacity=256 max-size=0x40000
policy keep-dirty
file f0 jdata
file f1
thread 0
  write f0 0x0 0x3000
  read f0 0x1000 0x100
  commit f0
  write f0 0x1800 0x10
  mwrite f0 0x2000 0x10
  dwrite f0 0x4000 0x1000
  dread f0 0x0 0x1000
  dread f0 0x2080 0x80
  punch f0 0x1000 0x800
  fsync f0
  write f1 0x0 0x10
  reclaim f1 0
  read f1 0x0 0x10
";

#[test]
fn journaled_data_runs_on_ext4_mounted_data_journal() {
    let _serial = serial();
    if let Some(why) = no_root_reason(FsKind::Ext4) {
        eprintln!("skipped (ext4 data=journal): {why}");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("jdata.wbf");
    std::fs::write(&script, JDATA_OK).unwrap();
    let run = |extra: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_wbfuzz"))
            .args(["kernel", "run", "--mkfs", "ext4"])
            .args(extra)
            .arg(&script)
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    };
    let (code, stdout) = run(&["--jdata"]);
    assert_eq!(code, Some(0), "{stdout}");
    assert!(stdout.contains("kernel and reference agree"), "{stdout}");
    // Without data=journal the unaligned direct read is refused by ext4 as by the spec, so the
    // same script agrees too; the difference is in how the files are written.
    let (code, stdout) = run(&[]);
    assert_eq!(code, Some(0), "{stdout}");
    // --jdata is an ext4 mount option.
    let out = Command::new(env!("CARGO_BIN_EXE_wbfuzz"))
        .args(["kernel", "run", "--mkfs", "xfs", "--jdata"])
        .arg(&script)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--jdata mounts ext4 data=journal"));
}

#[test]
fn a_threaded_run_on_a_scratch_filesystem_agrees() {
    let _serial = serial();
    for fs in [FsKind::Xfs, FsKind::Ext4] {
        if let Some(why) = no_root_reason(fs) {
            eprintln!("skipped (threaded kernel run on {}): {why}", fs.name());
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let script = dir.path().join("racy.wbf");
        std::fs::write(&script, RACY_OK).unwrap();
        // The interleaving is the kernel's: every one of several runs must agree, also with
        // each thread looping over its list for 100 ms (`--repeat`).
        for k in 0..5 {
            let repeat: &[&str] = if k == 0 { &["--repeat", "100"] } else { &[] };
            let out = Command::new(env!("CARGO_BIN_EXE_wbfuzz"))
                .args(["kernel", "run", "-q", "--mkfs", fs.name()])
                .args(repeat)
                .arg(&script)
                .output()
                .unwrap();
            let stdout = String::from_utf8_lossy(&out.stdout);
            assert_eq!(out.status.code(), Some(0), "{}: {stdout}", fs.name());
            assert!(stdout.contains("kernel and reference agree"), "{stdout}");
        }
    }
}

#[test]
fn the_fault_rule_knows_expected_corruption_reports_from_warnings() {
    use wbfuzz::kernel::faults::unexpected_log;
    // Expected while the btree is corrupted (as XFS on Linux 6.18 logs them).
    for l in [
        "XFS (loop0): Metadata CRC error detected at xfs_allocbt_read_verify+0x12/0xd0, xfs_bnobt block 0x8",
        "XFS (loop0): Unmount and run xfs_repair",
        "XFS (loop0): metadata I/O error in \"xfs_btree_read_buf_block+0x9c/0x130\" at daddr 0x8 len 2 error 74",
        "XFS (loop0): Internal error xfs_extent_free_recover_work at line 690 of file fs/xfs/xfs_extfree_item.c.",
        "XFS (loop0): Corruption detected. Unmount and run xfs_repair",
    ] {
        assert!(!unexpected_log(l), "{l}");
    }
    for l in [
        "WARNING: CPU: 0 PID: 12 at fs/xfs/libxfs/xfs_bmap.c:4560 xfs_bmapi_convert_delalloc",
        "BUG: kernel NULL pointer dereference, address: 0000000000000008",
        "Oops: 0000 [#1] PREEMPT SMP",
    ] {
        assert!(unexpected_log(l), "{l}");
    }
}

#[test]
fn a_corruption_round_trip_keeps_fsynced_data_and_leaves_a_mountable_filesystem() {
    let _serial = serial();
    if let Some(why) = no_root_reason(FsKind::Xfs) {
        eprintln!("skipped (XFS corruption round trip): {why}");
        return;
    }
    if Command::new("xfs_db").arg("-V").output().is_err() {
        eprintln!("skipped (XFS corruption round trip): xfs_db missing (apt-get install xfsprogs)");
        return;
    }
    let mut s = Scratch::create(FsKind::Xfs, 1024, scratch::image_size(4, 1 << 20)).unwrap();
    // 16 KiB fsynced, then under corruption: an allocating write must fail cleanly, a punch
    // shuts the filesystem down; repair needs the log zeroed (xfs_repair -L). Bytes 0x1000..
    // 0x4000 were never targeted while corrupted and must read back.
    let input = one_file(
        1024,
        "write f0 0x0 0x4000\nfsync f0\ncorrupt\nwrite f0 0x8000 0x1000 sync\npunch f0 0x0 0x1000\nread f0 0x1000 0x100\nrepair\nread f0 0x1000 0x3000\n",
    );
    let run = wbfuzz::kernel::faults::run_with_faults(&mut s, &input, None).unwrap();
    let report = run.render("round-trip", &input);
    assert!(run.failure.is_none(), "{report}");
    assert!(report.contains("repaired ("), "{report}");
    // The sync write could not allocate: EFSCORRUPTED (or EIO once shut down).
    assert!(
        run.steps
            .iter()
            .any(|st| st.op.to_string().starts_with("write f0 0x8000")
                && (st.result.contains("EFSCORRUPTED") || st.result.contains("EIO"))),
        "{report}"
    );
    // The read after the repair returns the fsynced bytes of op #1 (the rule compared them).
    let after = run.steps.iter().find(|st| st.seq == 8).unwrap();
    assert!(after.result.starts_with("data 0x3000 bytes"), "{report}");
    // Mountable and usable afterwards.
    std::fs::write(s.dir().join("after"), b"ok").unwrap();
    assert_eq!(std::fs::read(s.dir().join("after")).unwrap(), b"ok");
    s.destroy().unwrap();
}

#[test]
fn a_threaded_trace_names_each_ops_thread_and_marks_the_divergence() {
    use oracle::{KMismatch, KTraceEntry, KernelRun};
    let entry = |thread, seq, epilogue| KTraceEntry {
        thread,
        seq,
        op: Op::Fsync { file: 0 },
        reference: Outcome::Done(0),
        kernel: Ok(Outcome::Done(0)),
        epilogue,
    };
    let run = KernelRun {
        trace: vec![entry(0, 1, false), entry(2, 2, false), entry(0, 3, true)],
        divergence: Some((
            1,
            vec![KMismatch::Outcome {
                reference: Outcome::Done(0),
                kernel: Ok(Outcome::Err(Errno::Eio)),
            }],
        )),
        kernel_view: false,
        fs: Some(FsKind::Xfs),
        jdata: false,
    };
    let lines: Vec<String> = oracle::render_trace(&run)
        .lines()
        .map(String::from)
        .collect();
    assert!(lines[0].starts_with("   t0  #1 "), "{lines:?}");
    assert!(lines[1].starts_with(">> t2  #2 "), "{lines:?}");
    assert!(lines[2].starts_with("   end #3 "), "{lines:?}");
}
