//! The kernel hunt and the kernel benchmark.
//!
//! The hunt draws single-thread inputs exactly as `wbfuzz hunt` does ([`crate::hunt::generate`]
//! with swarm epochs of 256 inputs), adapts each to the device ([`adapt`]: the filesystem's
//! block size, no `corrupt` / `repair`), and runs it on fresh files of one scratch filesystem
//! (one mkfs per hunt; the files are removed between inputs) with the kernel log checked around
//! every input. A finding is minimized against the kernel ([`crate::minimize::minimize_by`]) and
//! saved as a script with its report. One thread: the kernel is the shared state here, and
//! kernel runs are not deterministic anyway (SPEC.md, "Real kernels").
//!
//! The benchmark runs the benchmark corpus's sequential inputs with every op checked, and the
//! same ops as bare syscalls, and reports ops/s of both.

use super::exec::{self, Executor};
use super::kmsg::KmsgWatch;
use super::oracle::{self, KernelError, KernelRun, KernelTarget};
use super::scratch;
use super::scratch::Scratch;
use super::{faults, threads};
use crate::exec::Target;
use crate::generators::{generate, racy_kernel_input, SplitMix, Swarm};
use crate::input::script;
use crate::minimize::{self, Signature};
use reference::{Input, Op};
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// The input as the device runs it: the device's block size, and no `corrupt` / `repair` (the
/// fault hunt inserts its own) and no `crash` (no kernel analogue). Everything else is kept.
pub fn adapt(mut input: Input, block: u32) -> Input {
    input.config.geometry.block_size = block;
    for ops in &mut input.threads {
        ops.retain(|op| {
            !matches!(
                op,
                Op::CorruptAllocBtree | Op::RepairAllocBtree | Op::Crash { .. }
            )
        });
    }
    input
}

/// The geometry of generated threaded inputs: the device's block size, one-page folios, room for
/// the shared folios of [`racy_kernel_input`] and then some.
fn threaded_geometry(block: u32) -> reference::Geometry {
    reference::Geometry {
        block_size: block,
        folio_pages: 1,
        capacity_blocks: 4096,
        max_file_size: 64 << 10,
    }
}

/// Runs an input with the kernel log checked around it (when `/dev/kmsg` can be read).
pub fn run_checked(target: &KernelTarget<'_>, input: &Input) -> Result<KernelRun, KernelError> {
    let mut watch = if target.device.is_some() {
        KmsgWatch::open().ok()
    } else {
        None
    };
    if input.threads.len() > 1 {
        threads::run_threaded(target, input, watch.as_mut(), target.repeat)
    } else {
        oracle::run_on_kernel(target, input, watch.as_mut())
    }
}

/// Runs of each candidate while minimizing a threaded finding, and of the result for its
/// failure rate: the kernel's interleaving is not ours, so a candidate that fails once in that
/// many runs still fails.
const THREADED_TRIES: usize = 5;

/// How often `input` fails in `tries` runs (threaded kernel runs are not reproducible).
pub fn failure_rate(target: &KernelTarget<'_>, input: &Input, tries: usize) -> (usize, usize) {
    let fails = (0..tries)
        .filter(|_| run_checked(target, input).is_ok_and(|r| !r.ok()))
        .count();
    (fails, tries)
}

/// Minimizes a failing input against the kernel: candidates with another block size than
/// `block`, or that cannot run, count as passing; so does every candidate once `deadline` has
/// passed or the hunt was interrupted, which ends the minimization with what it has.
pub fn minimize_on_kernel(
    target: &KernelTarget<'_>,
    block: u32,
    input: &Input,
    budget: usize,
    deadline: Instant,
) -> Input {
    let tries = if input.threads.len() > 1 {
        THREADED_TRIES
    } else {
        1
    };
    minimize::minimize_by(input, budget, |cand| {
        if cand.config.geometry.block_size != block || out_of_time(deadline) {
            return None;
        }
        // A candidate that breaks the race rule cannot be judged: it counts as passing.
        (0..tries).find_map(|_| run_checked(target, cand).ok()?.signature())
    })
}

fn out_of_time(deadline: Instant) -> bool {
    scratch::interrupted() || Instant::now() >= deadline
}

/// The live progress line of both kernel hunts.
struct Progress {
    bar: Option<indicatif::ProgressBar>,
    start: Instant,
    what: String,
}

impl Progress {
    fn new(on: bool, what: String) -> Self {
        let bar = on.then(|| {
            let b = indicatif::ProgressBar::new_spinner();
            b.set_style(
                indicatif::ProgressStyle::with_template("{spinner} [{elapsed_precise}] {msg}")
                    .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner()),
            );
            b
        });
        Progress {
            bar,
            start: Instant::now(),
            what,
        }
    }

    fn show(&self, sum: &KernelHuntSummary, doing: &str) {
        let Some(b) = &self.bar else { return };
        let secs = self.start.elapsed().as_secs_f64().max(1e-9);
        b.set_message(format!(
            "{} inputs, {:.1} inputs/s, {:.0} ops/s, {} findings, {}{doing}",
            sum.execs,
            sum.execs as f64 / secs,
            sum.ops as f64 / secs,
            sum.findings.len(),
            self.what,
        ));
        b.tick();
    }

    fn finish(self) {
        if let Some(b) = self.bar {
            b.finish_and_clear();
        }
    }
}

/// Why a kernel-log finding rarely reproduces, for its report.
const ONCE_PER_BOOT: &str = "note: most kernel warnings are WARN_ON_ONCE, printed once per boot: \
     after the first, reruns (and the minimizer's candidates) cannot show it again, so judge \
     this finding by the input that found it, on a fresh boot\n";

/// Settings of a kernel hunt.
#[derive(Clone, Debug)]
pub struct KernelHuntConfig {
    /// Wall-clock budget (minimization included).
    pub time: Duration,
    /// Seed of the generator.
    pub seed: u64,
    /// Where findings go.
    pub out_dir: PathBuf,
    /// Live progress line on stderr.
    pub progress: bool,
    /// Keep going after the first finding (one per signature).
    pub keep_going: bool,
    /// Most candidate runs per minimization.
    pub minimize_budget: usize,
    /// Threaded inputs under the race rule ([`crate::race_rule`]) instead of single-thread ones.
    pub threads: bool,
}

/// One minimized kernel finding.
#[derive(Clone, Debug)]
pub struct KernelFinding {
    /// How it diverged.
    pub signature: Signature,
    /// Ops in the minimized input.
    pub ops: usize,
    /// Time from the start to the unminimized finding.
    pub found_after: Duration,
    /// Inputs run when it was found.
    pub found_after_execs: u64,
    /// The script written.
    pub path: Option<PathBuf>,
    /// The report of the minimized input.
    pub report: String,
}

/// What a kernel hunt did.
#[derive(Clone, Debug, Default)]
pub struct KernelHuntSummary {
    /// Inputs run.
    pub execs: u64,
    /// Ops run (epilogues included).
    pub ops: u64,
    /// Wall time.
    pub elapsed: Duration,
    /// Findings, in order.
    pub findings: Vec<KernelFinding>,
    /// Stopped by SIGINT / SIGTERM.
    pub interrupted: bool,
    /// Fault hunts: the kernel log lines seen, by kind ([`log_kind`]), most frequent first.
    pub log_kinds: Vec<(String, u64)>,
}

/// A kernel log line with its device, numbers and hex dumps taken out, so lines of one kind
/// count together: `XFS (loop2): metadata I/O error in "xfs_btree_read_buf_block+0x9c/0x130" at
/// daddr 0x20 len 8 error 74` becomes `XFS: metadata I/O error in "xfs_btree_read_buf_block" at
/// daddr # len # error #`. Hex dump lines of corrupted buffers are `(hex dump)`.
pub fn log_kind(line: &str) -> String {
    let line = line.trim();
    let line = match line.split_once("): ") {
        Some((head, rest)) if head.contains(" (loop") => {
            format!("{}: {rest}", head.split(" (").next().unwrap_or(head))
        }
        _ => line.to_string(),
    };
    if line
        .split(':')
        .next()
        .is_some_and(|h| h.len() == 8 && h.chars().all(|c| c.is_ascii_hexdigit()))
    {
        return "(hex dump)".into();
    }
    // A stack dump (XFS prints one with every internal error): its frames and registers.
    let frame = line.starts_with("? ")
        || (line.contains("+0x") && !line.contains(' '))
        || (line.starts_with('<') && line.ends_with('>') && !line.contains(' '));
    if frame {
        return "(stack frame)".into();
    }
    let registers = [
        "RIP:", "RSP:", "RAX:", "RDX:", "RBP:", "R10:", "R13:", "R08:", "Code:",
    ];
    if registers.iter().any(|r| line.starts_with(r)) {
        return "(registers)".into();
    }
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '+' && chars.peek().is_some_and(|d| *d == '0') {
            // "+0x9c/0x130": the offset in the function.
            while chars
                .peek()
                .is_some_and(|d| d.is_ascii_alphanumeric() || *d == '/')
            {
                chars.next();
            }
        } else if c.is_ascii_digit() {
            while chars.peek().is_some_and(|d| d.is_ascii_alphanumeric()) {
                chars.next();
            }
            if !out.ends_with('#') {
                out.push('#');
            }
        } else {
            out.push(c);
        }
    }
    out
}

fn save(
    cfg: &KernelHuntConfig,
    name: &str,
    input: &Input,
    sig: &Signature,
    report: &str,
) -> Option<PathBuf> {
    std::fs::create_dir_all(&cfg.out_dir).ok()?;
    let path = cfg.out_dir.join(format!("{name}.wbf"));
    let text = format!(
        "# wbfuzz kernel hunt finding: {sig}\n{}",
        script::print(input)
    );
    std::fs::write(&path, text).ok()?;
    std::fs::write(cfg.out_dir.join(format!("{name}.txt")), report).ok()?;
    Some(path)
}

/// Saves a finding (script and report, with the once-per-boot note for kernel-log findings)
/// and adds it to the summary. Returns whether the hunt goes on.
fn record_finding(
    cfg: &KernelHuntConfig,
    sum: &mut KernelHuntSummary,
    name: &str,
    small: &Input,
    sig: Signature,
    mut report: String,
    found_after: Duration,
) -> bool {
    // Fault findings name their rule ("4 kernel-log"), the others the mismatch ("kernel-log").
    if sig.mismatch.ends_with("kernel-log") {
        report.push_str(ONCE_PER_BOOT);
    }
    let path = save(cfg, name, small, &sig, &report);
    sum.findings.push(KernelFinding {
        signature: sig,
        ops: small.op_count(),
        found_after,
        found_after_execs: sum.execs,
        path,
        report,
    });
    cfg.keep_going
}

/// Runs a kernel hunt on `target` (a mounted filesystem of block size `block`).
pub fn kernel_hunt(
    target: &KernelTarget<'_>,
    block: u32,
    cfg: &KernelHuntConfig,
) -> Result<KernelHuntSummary, KernelError> {
    let start = Instant::now();
    let deadline = start + cfg.time;
    let mut rng = SplitMix::new(cfg.seed, 0);
    let mut buf = Vec::new();
    let mut sum = KernelHuntSummary::default();
    let fsname = target.fs.map_or("unknown", |f| f.name());
    let progress = Progress::new(cfg.progress, format!("{fsname} block {block}"));
    'outer: while Instant::now() < deadline {
        let swarm = Swarm::draw(&mut rng);
        for _ in 0..256 {
            if Instant::now() >= deadline {
                break 'outer;
            }
            if scratch::interrupted() {
                sum.interrupted = true;
                break 'outer;
            }
            let input = if cfg.threads {
                racy_kernel_input(&mut rng, threaded_geometry(block))
            } else {
                adapt(
                    generate(&mut rng, Target::Sequential, swarm, &mut buf),
                    block,
                )
            };
            let run = match run_checked(target, &input) {
                Ok(r) => r,
                Err(KernelError::Interrupted) => {
                    sum.interrupted = true;
                    break 'outer;
                }
                Err(KernelError::Unsupported(_)) => continue,
                Err(e) => return Err(e),
            };
            sum.execs += 1;
            sum.ops += run.trace.len() as u64;
            progress.show(&sum, "");
            let Some(sig) = run.signature() else { continue };
            if sum.findings.iter().any(|f| f.signature == sig) {
                continue;
            }
            let found_after = start.elapsed();
            progress.show(&sum, ", minimizing a finding");
            let small = minimize_on_kernel(target, block, &input, cfg.minimize_budget, deadline);
            let name = format!(
                "kernel-{fsname}-b{block}-s{}-{}",
                cfg.seed,
                sum.findings.len()
            );
            let mut report = match run_checked(target, &small) {
                Ok(r) if !r.ok() => oracle::render(&name, &small, &r),
                // The kernel's nondeterminism: the minimized input passed this time.
                _ => oracle::render(&name, &input, &run),
            };
            if small.threads.len() > 1 {
                let (fails, tries) = failure_rate(target, &small, 2 * THREADED_TRIES);
                report.push_str(&format!(
                    "threaded kernel run: the interleaving is the kernel's, so this is not \
                     reproducible; the minimized input failed {fails} of {tries} reruns\n"
                ));
            }
            if !record_finding(cfg, &mut sum, &name, &small, sig, report, found_after) {
                break 'outer;
            }
        }
    }
    progress.finish();
    sum.elapsed = start.elapsed();
    Ok(sum)
}

/// One row of the kernel benchmark.
#[derive(Clone, Debug)]
pub struct BenchRow {
    /// Filesystem.
    pub fs: String,
    /// Block size.
    pub block: u32,
    /// Inputs timed per pass (those that agree).
    pub inputs: usize,
    /// Ops per pass (epilogues included).
    pub ops: u64,
    /// Ops per second with every op checked against the reference.
    pub checked_ops_per_sec: f64,
    /// Ops per second of the same ops as bare syscalls (no reference, no comparison).
    pub syscall_ops_per_sec: f64,
    /// Inputs left out because they diverge on this filesystem.
    pub divergences: usize,
}

/// Runs the input's ops and the epilogue as bare syscalls (no reference, no comparison) with the
/// same setup and end (fresh files, final fsync and cache drop, removal); returns the ops run.
fn run_bare(target: &KernelTarget<'_>, input: &Input) -> Result<u64, KernelError> {
    let (input, _) = exec::kernel_view(input, target.jdata);
    let mut k = Executor::create(target.dir, &input, target.fs).map_err(KernelError::Setup)?;
    let limit =
        exec::FsizeLimit::set(input.config.geometry.max_file_size).map_err(KernelError::Setup)?;
    let tail = oracle::epilogue(&input);
    let last = input.op_count() as u32;
    for (_, seq, op) in input.numbered_ops() {
        let _ = k.apply(seq, op);
    }
    for (j, op) in tail.iter().enumerate() {
        let _ = k.apply(last + 1 + j as u32, op);
    }
    let _ = k.sync_and_drop_cache();
    drop(limit);
    k.remove().map_err(KernelError::Setup)?;
    Ok((input.op_count() + tail.len()) as u64)
}

/// Benchmarks `inputs` on `target`: one checked pass finds the inputs on which the kernel and
/// the reference agree (a divergence ends a run early, which would distort the rates); then
/// passes over those until `time` has passed, checked and bare, give ops/s of both.
pub fn bench(
    target: &KernelTarget<'_>,
    block: u32,
    inputs: &[Input],
    time: Duration,
) -> Result<BenchRow, KernelError> {
    let adapted: Vec<Input> = inputs
        .iter()
        .map(|i| adapt(exec::kernel_view(i, target.jdata).0, block))
        .filter(|i| exec::unsupported(i).is_none())
        .collect();
    let mut inputs = Vec::new();
    let mut divergences = 0;
    for input in adapted {
        if run_checked(target, &input)?.ok() {
            inputs.push(input);
        } else {
            divergences += 1;
        }
    }
    if inputs.is_empty() {
        return Err(KernelError::Unsupported(
            "no benchmark input agrees on this filesystem".into(),
        ));
    }
    let per_pass: u64 = inputs
        .iter()
        .map(|i| (i.op_count() + oracle::epilogue(i).len()) as u64)
        .sum();
    // Checked and bare runs of each input alternate, so that drift in the machine's load and in
    // the filesystem's background work (journal commits, writeback) falls on both alike.
    let (mut ops, mut t) = (0u64, Duration::ZERO);
    let (mut bops, mut bt) = (0u64, Duration::ZERO);
    while t < time || bt < time {
        for input in &inputs {
            let s = Instant::now();
            let run = run_checked(target, input)?;
            t += s.elapsed();
            ops += run.trace.len() as u64;
            let s = Instant::now();
            bops += run_bare(target, input)?;
            bt += s.elapsed();
            if scratch::interrupted() {
                return Err(KernelError::Interrupted);
            }
        }
    }
    let checked = ops as f64 / t.as_secs_f64().max(1e-9);
    Ok(BenchRow {
        fs: target.fs.map_or("unknown", |f| f.name()).to_string(),
        block,
        inputs: inputs.len(),
        ops: per_pass,
        checked_ops_per_sec: checked,
        syscall_ops_per_sec: bops as f64 / bt.as_secs_f64().max(1e-9),
        divergences,
    })
}

/// A hunt of corruption phases on an XFS scratch device (`kernel hunt --faults`): each input is
/// a generated single-thread input with a `corrupt` inserted at a random point and, half the
/// time, a `repair` later (else the end repairs), judged by the rule of [`faults`]. A failure is
/// minimized by rerunning candidates on the device (each run costs two remounts and an
/// `xfs_repair`, about a second, so at most [`FAULT_MINIMIZE_BUDGET`] runs and never past the
/// deadline) and saved as a script with its report.
pub fn fault_hunt(
    s: &mut Scratch,
    block: u32,
    cfg: &KernelHuntConfig,
) -> Result<KernelHuntSummary, KernelError> {
    let start = Instant::now();
    let deadline = start + cfg.time;
    let mut rng = SplitMix::new(cfg.seed, 0);
    let mut buf = Vec::new();
    let mut sum = KernelHuntSummary::default();
    let progress = Progress::new(
        cfg.progress,
        format!("xfs block {block}, corruption phases"),
    );
    let mut census: std::collections::BTreeMap<String, u64> = Default::default();
    while Instant::now() < deadline {
        if scratch::interrupted() {
            sum.interrupted = true;
            break;
        }
        let mut input = adapt(
            generate(&mut rng, Target::Sequential, Swarm::ALL, &mut buf),
            block,
        );
        let ops = &mut input.threads[0];
        let at = rng.below(ops.len() as u64 + 1) as usize;
        ops.insert(at, Op::CorruptAllocBtree);
        if rng.one_in(2) {
            let back = at + 1 + rng.below((ops.len() - at) as u64) as usize;
            ops.insert(back, Op::RepairAllocBtree);
        }
        let run = run_faults_checked(s, &input)?;
        let dev = s.device_name().to_string();
        for l in run
            .log
            .iter()
            .filter(|l| super::kmsg::about_device(l, &dev))
        {
            *census.entry(log_kind(l)).or_insert(0) += 1;
        }
        sum.execs += 1;
        sum.ops += run.steps.len() as u64;
        progress.show(&sum, "");
        let Some(sig) = run.signature() else { continue };
        if sum.findings.iter().any(|f| f.signature == sig) {
            continue;
        }
        let found_after = start.elapsed();
        progress.show(&sum, ", minimizing a finding");
        let mut failed: Option<KernelError> = None;
        let small = minimize::minimize_by(
            &input,
            cfg.minimize_budget.min(FAULT_MINIMIZE_BUDGET),
            |cand| {
                if failed.is_some()
                    || cand.config.geometry.block_size != block
                    || out_of_time(deadline)
                {
                    return None;
                }
                match run_faults_checked(s, cand) {
                    Ok(r) => r.signature(),
                    Err(e) => {
                        failed = Some(e);
                        None
                    }
                }
            },
        );
        if let Some(e) = failed {
            return Err(e);
        }
        let name = format!(
            "kernel-faults-b{block}-s{}-{}",
            cfg.seed,
            sum.findings.len()
        );
        // The report of the minimized input if it still fails on this run, else the original's.
        let report = match run_faults_checked(s, &small)? {
            r if r.signature().is_some() => r.render(&name, &small),
            _ => run.render(&name, &input),
        };
        if !record_finding(cfg, &mut sum, &name, &small, sig, report, found_after) {
            break;
        }
    }
    progress.finish();
    sum.elapsed = start.elapsed();
    sum.log_kinds = census.into_iter().collect();
    sum.log_kinds
        .sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    Ok(sum)
}

/// Most device runs spent minimizing one fault finding.
pub const FAULT_MINIMIZE_BUDGET: usize = 150;

/// One fault run with the kernel log checked around it.
fn run_faults_checked(s: &mut Scratch, input: &Input) -> Result<faults::FaultRun, KernelError> {
    let mut watch = KmsgWatch::open().ok();
    Ok(faults::run_with_faults(s, input, watch.as_mut())?)
}

#[cfg(test)]
mod tests {
    use super::log_kind;

    #[test]
    fn log_lines_of_one_kind_count_together() {
        let a = r#"XFS (loop2): metadata I/O error in "xfs_btree_read_buf_block+0x9c/0x130" at daddr 0x20 len 8 error 74"#;
        let b = r#"XFS (loop13): metadata I/O error in "xfs_btree_read_buf_block+0x9c/0x130" at daddr 0x1d8 len 8 error 74"#;
        assert_eq!(log_kind(a), log_kind(b));
        assert_eq!(
            log_kind(a),
            r#"XFS: metadata I/O error in "xfs_btree_read_buf_block" at daddr # len # error #"#
        );
        assert_eq!(
            log_kind(
                "  00000010: 00 00 00 00 00 00 00 20 00 00 06 e8 00 00 01 80  ....... ........"
            ),
            "(hex dump)"
        );
        assert_eq!(
            log_kind("? xfs_defer_finish_recovery+0x2c/0x80"),
            "(stack frame)"
        );
        assert_eq!(
            log_kind("xfs_trans_read_buf_map+0x1b8/0x2f0"),
            "(stack frame)"
        );
        assert_eq!(log_kind("<TASK>"), "(stack frame)");
        assert_eq!(
            log_kind("RAX: ffffffffffffffda RBX: 0000000000000001"),
            "(registers)"
        );
        assert_ne!(
            log_kind("XFS (loop2): Ending clean mount"),
            log_kind("XFS (loop2): Unmount and run xfs_repair")
        );
    }
}
