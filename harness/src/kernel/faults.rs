//! Corrupted free-space btrees on real XFS: `corrupt` and `repair` as offline surgery on the
//! scratch device, and the rule that judges a run across them (no exact diff is possible: how
//! far a corrupted filesystem gets before it shuts down is the kernel's business).
//!
//! - `corrupt`: every file is fsynced (what is on disk now is what fsync acknowledged), the
//!   filesystem is unmounted, the CRC of every allocation group's free-space (bnobt) root block
//!   is broken with `xfs_db` (`write -c crc`, which skips the CRC update), and it is mounted
//!   again. Allocations then fail with EFSCORRUPTED, and a transaction that needs the btree
//!   (a punch, say) shuts the filesystem down.
//! - `repair`: unmount, `xfs_repair`; if the log is dirty (exit 2) a mount replays it, and if
//!   that mount fails too (log recovery hits the corruption), `xfs_repair -L` zeroes the log;
//!   then mount. The end of an input repairs a filesystem still corrupted.
//!
//! The rule (also in `reference/SPEC.md`, "Real kernels: corrupted free-space btrees"):
//! 1. every op returns a result or a clean error: a vocabulary outcome (EFSCORRUPTED, EIO,
//!    ENOSPC, ... included), or EIO, EFSCORRUPTED, ENOSPC or EROFS from any call the executor
//!    makes (a shut-down filesystem fails even `fstat`), never another errno;
//! 2. every byte a read returns is one its offset held at some moment: zero, or what some write
//!    of the run put there;
//! 3. after a repair, every byte that was on disk at the corruption reads back unchanged,
//!    unless an op during the corruption targeted it (then 2 applies);
//! 4. the kernel log shows no WARNING, BUG, Oops or other report outside the expected corruption
//!    reports (CRC errors, "Corruption detected", metadata I/O errors, shutdown, failed log
//!    recovery and their stack dumps).

use super::exec::{Executor, FsizeLimit, KOutcome};
use super::kmsg::KmsgWatch;
use super::scratch::{run, Scratch, ScratchError};
use super::FsKind;
use crate::minimize::Signature;
use reference::pattern::writers_of;
use reference::{FileId, Input, Op, Outcome};
use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::process::Command;

/// Kernel log messages that are a finding even while the free-space btree is corrupted.
const UNEXPECTED: [&str; 8] = [
    "WARNING:",
    "BUG:",
    "kernel BUG",
    "Oops",
    "general protection",
    "KASAN",
    "UBSAN",
    "blocked for more than",
];

/// Raw errnos that are clean errors of a corrupted filesystem: EIO, EFSCORRUPTED (EUCLEAN),
/// ENOSPC, EROFS.
const CLEAN_ERRNOS: [i32; 4] = [libc::EIO, libc::EUCLEAN, libc::ENOSPC, libc::EROFS];

/// Whether a kernel log message breaks rule 4.
pub fn unexpected_log(message: &str) -> bool {
    UNEXPECTED.iter().any(|t| message.contains(t))
}

/// How a repair went.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RepairPath {
    /// `xfs_repair` fixed it directly.
    Repaired,
    /// The log was dirty; a mount replayed it, then `xfs_repair` ran.
    Replayed,
    /// Log recovery failed too; `xfs_repair -L` zeroed the log.
    ZeroedLog,
}

/// Breaks the CRC of every allocation group's bnobt root; the filesystem must be unmounted.
fn break_bnobt_roots(dev: &str) -> Result<(), ScratchError> {
    let out = run(Command::new("xfs_db").args(["-c", "sb 0", "-c", "print agcount", dev]))?;
    let agcount: u32 = out
        .split('=')
        .nth(1)
        .and_then(|v| v.trim().parse().ok())
        .ok_or_else(|| ScratchError::Command {
            what: "xfs_db print agcount".into(),
            stderr: format!("unexpected output `{}`", out.trim()),
        })?;
    for ag in 0..agcount {
        run(Command::new("xfs_db").args([
            "-x",
            "-c",
            &format!("agf {ag}"),
            "-c",
            "addr bnoroot",
            "-c",
            "write -c crc 0xdeadbeef",
            dev,
        ]))?;
    }
    Ok(())
}

/// Offline corruption: unmount, break every bnobt root, mount.
pub fn corrupt(s: &mut Scratch) -> Result<(), ScratchError> {
    s.unmount()?;
    let dev = s.device().to_string();
    break_bnobt_roots(&dev)?;
    s.mount()
}

/// Offline repair: unmount, `xfs_repair` (replaying or zeroing a dirty log as needed), mount.
pub fn repair(s: &mut Scratch) -> Result<RepairPath, ScratchError> {
    s.unmount()?;
    let dev = s.device().to_string();
    let path = match run(Command::new("xfs_repair").arg(&dev)) {
        Ok(_) => RepairPath::Repaired,
        Err(_) => {
            // Exit 2: a dirty log; replay it by mounting, else zero it.
            if s.mount().is_ok() && s.unmount().is_ok() {
                run(Command::new("xfs_repair").arg(&dev))?;
                RepairPath::Replayed
            } else {
                run(Command::new("xfs_repair").args(["-L", &dev]))?;
                RepairPath::ZeroedLog
            }
        }
    };
    s.mount()?;
    Ok(path)
}

/// One op of a fault run, with what the kernel returned.
#[derive(Clone, Debug)]
pub struct FaultStep {
    /// Sequence number.
    pub seq: u32,
    /// The op.
    pub op: Op,
    /// What happened (`corrupt` / `repair` describe themselves).
    pub result: String,
}

/// What a fault run did and, if it broke the rule, how.
#[derive(Clone, Debug)]
pub struct FaultRun {
    /// Every op run.
    pub steps: Vec<FaultStep>,
    /// The broken rule (its number and name) and the details.
    pub failure: Option<(&'static str, String)>,
    /// Kernel log lines seen during the run (expected ones included), for the report.
    pub log: Vec<String>,
}

impl FaultRun {
    /// The signature of a failure, for the minimizer and the hunt.
    pub fn signature(&self) -> Option<Signature> {
        let (rule, _) = self.failure.as_ref()?;
        Some(Signature {
            op: self.steps.last().map(|s| s.op.kind()),
            mismatch: rule,
        })
    }

    /// A readable report.
    pub fn render(&self, name: &str, input: &Input) -> String {
        let mut s = format!("wbfuzz kernel faults: {name}\n");
        let _ = writeln!(s, "config: {}", crate::report::config_line(input));
        for st in &self.steps {
            let _ = writeln!(
                s,
                "  #{:<4} {:<34} -> {}",
                st.seq,
                st.op.to_string(),
                st.result
            );
        }
        match &self.failure {
            Some((rule, why)) => {
                let _ = writeln!(s, "RULE BROKEN: {rule}: {why}");
            }
            None => s.push_str("every rule held\n"),
        }
        if !self.log.is_empty() {
            let _ = writeln!(s, "kernel log during the run ({} lines):", self.log.len());
            for l in self.log.iter().take(40) {
                let _ = writeln!(s, "  {l}");
            }
        }
        s
    }
}

/// The byte range an op may change, if it changes file contents.
fn target(op: &Op) -> Option<(FileId, u64, u64)> {
    match *op {
        Op::Write { file, off, len, .. }
        | Op::DirectWrite { file, off, len }
        | Op::PunchHole { file, off, len }
        | Op::ZeroRange { file, off, len, .. }
        | Op::Fallocate { file, off, len, .. } => Some((file, off, off.saturating_add(len))),
        Op::MmapWrite { file, off, len } => Some((file, off, off.saturating_add(len))),
        Op::Truncate { file, size } => Some((file, size, u64::MAX)),
        _ => None,
    }
}

/// Checks every byte of `data` (file offset `off`) against rule 2; `old` is what the file held
/// on disk at the corruption, if known.
fn held_at_some_moment(
    writers: &[u32],
    off: u64,
    data: &[u8],
    old: Option<&[u8]>,
) -> Option<(u64, u8)> {
    data.iter().enumerate().find_map(|(k, &b)| {
        let at = off + k as u64;
        let was = old.and_then(|o| o.get(at as usize)).copied();
        let ok = b == 0 || was == Some(b) || !writers_of(b, at, writers.iter().copied()).is_empty();
        (!ok).then_some((at, b))
    })
}

/// Runs a single-thread input with `corrupt` / `repair` on an XFS scratch device and judges it by
/// the rule of this module. The input's files are removed afterwards.
pub fn run_with_faults(
    s: &mut Scratch,
    input: &Input,
    watch: Option<&mut KmsgWatch>,
) -> Result<FaultRun, ScratchError> {
    if s.fs() != FsKind::Xfs {
        return Err(ScratchError::Command {
            what: "corrupt".into(),
            stderr: "free-space btree corruption is implemented for XFS only".into(),
        });
    }
    let io = |what: &'static str| move |e: std::io::Error| ScratchError::Io(what, e);
    let (input, _) = super::exec::kernel_view(input, false);
    let files = input.config.files.len();
    let writers = super::oracle::writer_seqs(&input);
    // max-size as on every kernel run (EFBIG past it), so no op can make a file larger.
    let max = input.config.geometry.max_file_size;
    let _limit = FsizeLimit::set(max).map_err(io("setting RLIMIT_FSIZE"))?;
    let mut ex = Some(
        Executor::create(s.dir(), &input, Some(FsKind::Xfs)).map_err(io("creating the files"))?,
    );
    let mut run = FaultRun {
        steps: Vec::new(),
        failure: None,
        log: Vec::new(),
    };
    let mut durable: Option<Vec<Vec<u8>>> = None;
    let mut targeted: Vec<BTreeSet<(u64, u64)>> = vec![BTreeSet::new(); files];
    let mut buf = Vec::new();
    let mut ops: Vec<(u32, Op)> = input
        .numbered_ops()
        .map(|(_, q, op)| (q, op.clone()))
        .collect();
    // A filesystem still corrupted at the end is repaired and checked.
    ops.push((input.op_count() as u32 + 1, Op::RepairAllocBtree));
    for (seq, op) in ops {
        if run.failure.is_some() {
            break;
        }
        match op {
            Op::CorruptAllocBtree => {
                if durable.is_some() {
                    run.steps.push(FaultStep {
                        seq,
                        op,
                        result: "already corrupted".into(),
                    });
                    continue;
                }
                let e = ex.take().expect("an executor outside corrupt/repair");
                let mut snap = Vec::new();
                for f in 0..files as FileId {
                    let _ = e.file(f).sync_all();
                    e.read_all(f, &mut buf)
                        .map_err(io("reading before the corruption"))?;
                    snap.push(buf.clone());
                }
                drop(e);
                corrupt(s)?;
                durable = Some(snap);
                ex = Some(
                    Executor::open_existing(s.dir(), &input, Some(FsKind::Xfs))
                        .map_err(io("reopening the files"))?,
                );
                run.steps.push(FaultStep {
                    seq,
                    op,
                    result: "bnobt roots broken (xfs_db), mounted".into(),
                });
            }
            Op::RepairAllocBtree => {
                let Some(snap) = durable.take() else {
                    run.steps.push(FaultStep {
                        seq,
                        op,
                        result: "not corrupted".into(),
                    });
                    continue;
                };
                drop(ex.take());
                let path = repair(s)?;
                let e = Executor::open_existing(s.dir(), &input, Some(FsKind::Xfs))
                    .map_err(io("reopening the files"))?;
                run.steps.push(FaultStep {
                    seq,
                    op,
                    result: format!("repaired ({path:?}), mounted"),
                });
                for f in 0..files {
                    let size = e.size(f as FileId).map_err(io("fstat after the repair"))?;
                    if size > max {
                        run.failure = Some((
                            "3 fsync-durable",
                            format!(
                                "f{f} is {size:#x} bytes after the repair, past max-size {max:#x}"
                            ),
                        ));
                        break;
                    }
                    e.read_all(f as FileId, &mut buf)
                        .map_err(io("reading after the repair"))?;
                    let hit = |at: u64| targeted[f].iter().any(|&(a, b)| a <= at && at < b);
                    let lost = (0..snap[f].len() as u64)
                        .find(|&at| !hit(at) && buf.get(at as usize) != snap[f].get(at as usize));
                    if let Some(at) = lost {
                        run.failure = Some((
                            "3 fsync-durable",
                            format!(
                                "f{f} byte {at:#x} was {:02x} on disk at the corruption, no op targeted it, and after the repair it reads {}",
                                snap[f][at as usize],
                                buf.get(at as usize).map_or("nothing (past EOF)".into(), |b| format!("{b:02x}"))
                            ),
                        ));
                        break;
                    }
                    if let Some((at, b)) = held_at_some_moment(&writers, 0, &buf, Some(&snap[f])) {
                        run.failure = Some((
                            "2 held-at-some-moment",
                            format!("after the repair f{f} byte {at:#x} reads {b:02x}: never written there"),
                        ));
                        break;
                    }
                    targeted[f].clear();
                }
                ex = Some(e);
            }
            _ => {
                let e = ex.as_mut().expect("an executor outside corrupt/repair");
                let k: KOutcome = e.apply(seq, &op);
                run.steps.push(FaultStep {
                    seq,
                    op: op.clone(),
                    result: match &k {
                        Ok(o) => o.to_string(),
                        Err(err) => format!("error {err}"),
                    },
                });
                if durable.is_some() {
                    if let Some((f, a, b)) = target(&op) {
                        if (f as usize) < files {
                            targeted[f as usize].insert((a, b));
                        }
                    }
                }
                match &k {
                    // A corrupted or shut-down filesystem fails calls the executor expects to
                    // succeed (fstat, open, sync_file_range) with these: clean errors too.
                    Err(err) if CLEAN_ERRNOS.contains(&err.errno) => {}
                    Err(err) => {
                        run.failure = Some((
                            "1 clean-error",
                            format!("`{op}` failed outside the vocabulary: {err}"),
                        ));
                    }
                    Ok(Outcome::Data(d)) => {
                        let off = match op {
                            Op::Read { off, .. }
                            | Op::DirectRead { off, .. }
                            | Op::MmapRead { off, .. } => off,
                            _ => 0,
                        };
                        let old = durable
                            .as_ref()
                            .and_then(|d| op.file().and_then(|f| d.get(f as usize)))
                            .map(|v| v.as_slice());
                        if let Some((at, b)) = held_at_some_moment(&writers, off, d, old) {
                            run.failure = Some((
                                "2 held-at-some-moment",
                                format!("`{op}` returned {b:02x} at {at:#x}: never written there"),
                            ));
                        }
                    }
                    Ok(_) => {}
                }
            }
        }
    }
    if let Some(w) = watch {
        if let Ok(lines) = w.new_messages() {
            if run.failure.is_none() {
                let dev = s.device_name();
                if let Some(l) = lines
                    .iter()
                    .find(|l| unexpected_log(l) && super::kmsg::about_device(l, dev))
                {
                    run.failure = Some(("4 kernel-log", format!("unexpected kernel report: {l}")));
                }
            }
            run.log = lines;
        }
    }
    // Leave the filesystem repaired and the files gone, whatever happened.
    drop(ex);
    if durable.is_some() {
        repair(s)?;
    }
    for f in 0..files {
        let _ = std::fs::remove_file(s.dir().join(format!("f{f}")));
    }
    Ok(run)
}
