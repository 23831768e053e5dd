//! `wbfuzz bench`: throughput, overhead, a per-part breakdown, growth and time-to-find, measured
//! criterion-style (warm-up, then several timed samples; medians reported) and written as
//! markdown tables and JSON (the report structs, serialized).
//!
//! The benchmark corpus is `corpus/bench/<target>/`, checked in, so numbers from different
//! commits measure the same inputs.

use crate::bugs::{Bug, Bugs};
use crate::exec::{self, Target};
use crate::fs::Fs;
use crate::generators::SplitMix;
use crate::hunt::{self, HuntConfig};
use crate::oracle;
use crate::probe::{Part, Probe};
use reference::model::RefFs;
use reference::{Config, FileSpec, Geometry, Input, Op, Policy};
use serde::{Serialize, Serializer};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// What to measure and for how long.
#[derive(Clone, Debug)]
pub struct BenchConfig {
    /// Directory holding `sequential/` and `concurrent/` benchmark inputs.
    pub corpus: PathBuf,
    /// Timed samples per measurement (the median is reported).
    pub samples: usize,
    /// Minimum time per sample.
    pub sample_time: Duration,
    /// Runs per bug for time-to-find (the median is reported); 0 skips time-to-find.
    pub find_runs: usize,
    /// Time limit of one time-to-find run.
    pub find_limit: Duration,
    /// Worker threads of the time-to-find hunts.
    pub jobs: usize,
    /// Only these bugs for time-to-find (empty: all).
    pub bugs: Vec<Bug>,
    /// Only time-to-find (skip throughput and growth).
    pub find_only: bool,
    /// Directory holding the built libFuzzer targets (`sequential`, `concurrent`), for the
    /// cargo-fuzz column of time-to-find; `None` skips it.
    pub libfuzzer: Option<PathBuf>,
}

/// Median of a list of measurements.
fn median(mut v: Vec<f64>) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

/// Seconds per input of each measured function, one entry per round ([`per_input_each`]).
struct Sampled(Vec<Vec<f64>>);

impl Sampled {
    /// Function `k`'s median seconds per input.
    fn median(&self, k: usize) -> f64 {
        median(self.0[k].clone())
    }

    /// The lowest and highest ratio of function `num`'s time to function `den`'s within one
    /// round: how far the machine's drift moved the ratio while it was measured (the two
    /// samples of a round are taken back to back, so a ratio within a round holds better than
    /// one across rounds).
    fn ratio_range(&self, num: usize, den: usize) -> (f64, f64) {
        self.0[num]
            .iter()
            .zip(&self.0[den])
            .map(|(a, b)| a / b)
            .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), r| {
                (lo.min(r), hi.max(r))
            })
    }
}

/// Runs each of `fs` over all inputs repeatedly: a warm-up of each, then `samples` rounds, in
/// each of which every function takes one sample of at least `sample_time`; returns each
/// one's seconds per input, round by round. Interleaved so that the ratios between them (the
/// overheads) hold on a machine whose speed drifts: a shared VM's drifted by 10% within a
/// minute, which measuring one function after the other turned into a 10% error in the
/// overhead.
fn per_input_each(
    cfg: &BenchConfig,
    inputs: &[Input],
    fs: &mut [&mut dyn FnMut(&Input)],
) -> Sampled {
    if inputs.is_empty() {
        return Sampled(vec![vec![f64::NAN]; fs.len()]);
    }
    for f in fs.iter_mut() {
        for i in inputs {
            f(i);
        }
    }
    let mut samples = vec![Vec::with_capacity(cfg.samples); fs.len()];
    for _ in 0..cfg.samples.max(1) {
        for (f, s) in fs.iter_mut().zip(&mut samples) {
            let start = Instant::now();
            let mut n = 0u64;
            while start.elapsed() < cfg.sample_time {
                for i in inputs {
                    f(i);
                }
                n += inputs.len() as u64;
            }
            s.push(start.elapsed().as_secs_f64() / n as f64);
        }
    }
    Sampled(samples)
}

/// Loads every input of one target's benchmark corpus, in file-name order.
pub fn load_corpus(dir: &Path, target: Target) -> Vec<Input> {
    let mut paths: Vec<PathBuf> = std::fs::read_dir(dir.join(target.name()))
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .map(|e| e.path())
                .filter(|p| p.is_file())
                .collect()
        })
        .unwrap_or_default();
    paths.sort();
    paths
        .iter()
        .filter_map(|p| exec::load(p, Some(target)).ok())
        .collect()
}

/// Writes a fresh benchmark corpus: `count` inputs per target from a fixed seed, as the hunt
/// generates them (swarm off, so every op kind appears).
pub fn write_corpus(dir: &Path, count: usize) -> std::io::Result<()> {
    for t in Target::ALL {
        let d = dir.join(t.name());
        std::fs::create_dir_all(&d)?;
        let mut rng = SplitMix::new(0xBE4C, t as u64);
        for k in 0..count {
            let len = 16 + (rng.next_u64() % 300) as usize;
            let mut buf = vec![0u8; len];
            rng.fill(&mut buf);
            std::fs::write(d.join(format!("bench-{k:04}")), &buf)?;
        }
    }
    Ok(())
}

/// Every op a differential run executes, epilogue included, so the alone-runs do the same work.
fn all_ops(input: &Input) -> Vec<(u32, Op)> {
    crate::epilogue::run_ops(input)
        .into_iter()
        .map(|o| (o.seq, o.op))
        .collect()
}

fn run_impl_only(input: &Input) {
    let fs = Fs::new(&input.config, Bugs::NONE);
    for (seq, op) in all_ops(input) {
        std::hint::black_box(fs.apply(seq, &op));
    }
}

fn run_ref_only(input: &Input) {
    let mut r = RefFs::new(&input.config);
    for (seq, op) in all_ops(input) {
        std::hint::black_box(r.apply(seq, &op));
    }
}

/// One throughput row.
#[derive(Clone, Debug, Serialize)]
pub struct Throughput {
    /// Target name.
    pub target: &'static str,
    /// Inputs in its corpus.
    pub inputs: usize,
    /// Differential execs per second on one core.
    pub execs_per_sec: f64,
    /// Implementation-alone execs per second.
    pub impl_per_sec: f64,
    /// Reference-alone execs per second.
    pub ref_per_sec: f64,
    /// The lowest and highest overhead vs the implementation alone within one sampling round
    /// (the reported overhead is the ratio of the medians): the spread the machine's drift
    /// left in it.
    pub overhead_range: (f64, f64),
}

/// One growth row: a synthetic input of `ops` ops on a file of `file_size` bytes.
#[derive(Clone, Debug, Serialize)]
pub struct Growth {
    /// Ops per input.
    pub ops: usize,
    /// Maximum file size (the ops spread over all of it).
    pub file_size: u64,
    /// Microseconds per differential exec.
    pub us_per_exec: f64,
    /// Microseconds per exec of the two models alone (implementation, then reference, same
    /// ops, nothing compared): the floor under `us_per_exec`.
    pub models_us_per_exec: f64,
}

/// One goal of issue 14, as this run measured it: met, or the measured floor that prevents it.
#[derive(Clone, Debug, Serialize)]
pub struct Goal {
    /// What is measured.
    pub what: &'static str,
    /// The goal (`>=` for rates, `<=` for ratios, as `at_least` says).
    pub goal: f64,
    /// Whether the goal is a lower bound.
    pub at_least: bool,
    /// What this run measured.
    pub measured: f64,
    /// The best the measurement could be with the oracle free (the models, or shuttle, alone).
    pub floor: f64,
    /// What the floor is.
    pub floor_is: &'static str,
}

impl Goal {
    /// Whether the measurement meets the goal.
    pub fn met(&self) -> bool {
        if self.at_least {
            self.measured >= self.goal
        } else {
            self.measured <= self.goal
        }
    }
}

/// One time-to-find run that found the bug.
#[derive(Clone, Copy, Debug, Serialize)]
pub struct Found {
    /// Seconds from the start of the hunt.
    pub secs: f64,
    /// Inputs executed by then (all workers): the machine-independent measure.
    pub execs: u64,
    /// Ops of the minimized finding (0 where not known: libFuzzer runs).
    pub ops: usize,
    /// Threads of the minimized finding (0 where not known).
    pub threads: usize,
    /// No-op ops and empty threads left in the minimized finding (the minimizer removes all).
    pub leftovers: usize,
}

/// One time-to-find row: one entry per run (`None`: not found within the limit).
#[derive(Clone, Debug, Serialize)]
pub struct TimeToFind {
    /// The bug.
    #[serde(serialize_with = "bug_name")]
    pub bug: Bug,
    /// `wbfuzz hunt --feedback`: feedback-guided (corpus of new-signal inputs, structural mutations),
    /// swarm testing for fresh inputs, mixed scheduling strategies.
    pub hunt: Vec<Option<Found>>,
    /// `wbfuzz hunt` (the default): the same without feedback (fresh swarm inputs only).
    pub blind: Vec<Option<Found>>,
    /// Baseline: uniformly random ops (no swarm) with shuttle's random scheduler.
    pub baseline: Vec<Option<Found>>,
    /// Inputs each baseline run executed, found or not (a run that found nothing searched until
    /// the limit: what "N times fewer inputs" is measured against then).
    pub baseline_searched: Vec<u64>,
    /// Baseline: uniformly random ops with shuttle's PCT scheduler (race bugs only). Made for one
    /// execution, shuttle's PCT draws no change points: each task runs until it blocks or yields.
    pub pct: Vec<Option<Found>>,
    /// The libFuzzer target from an empty corpus, one process (empty when not measured).
    pub libfuzzer: Vec<Option<Found>>,
}

impl TimeToFind {
    /// How many times fewer inputs (medians) a hunt needed than the random baseline; where the
    /// baseline's median run found nothing, a lower bound from the inputs it searched.
    pub fn ratio(&self, hunt: &[Option<Found>]) -> String {
        let Some(h) = median_execs(hunt) else {
            return "-".to_string();
        };
        match median_execs(&self.baseline) {
            Some(r) => format!("{:.1}x", r as f64 / h.max(1) as f64),
            None => {
                let mut searched = self.baseline_searched.clone();
                searched.sort_unstable();
                match searched.get(searched.len() / 2) {
                    Some(&r) => format!("> {:.1}x", r as f64 / h.max(1) as f64),
                    None => "-".to_string(),
                }
            }
        }
    }
}

/// A bug as its switch name.
fn bug_name<S: Serializer>(bug: &Bug, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(bug.name())
}

/// Where one target's differential run spends its time: microseconds per exec by part, from runs
/// with the oracle's [`Probe`] switched on (its clock reads are charged to `other`).
#[derive(Clone, Debug, Serialize)]
pub struct Breakdown {
    /// Target name.
    pub target: &'static str,
    /// The implementation's ops (concurrent: executed under shuttle, scheduling included).
    pub implementation_us: f64,
    /// The reference's ops (concurrent: the commit-log replay).
    pub reference_us: f64,
    /// Comparing outcomes and states.
    pub comparison_us: f64,
    /// Both models' invariant checks.
    pub invariants_us: f64,
    /// Everything else: model construction, the op plan, the trace, the probe itself.
    pub other_us: f64,
    /// The whole exec.
    pub total_us: f64,
    /// Concurrent: shuttle's share of `implementation_us` (that minus the implementation alone,
    /// from the throughput table); `None` for sequential runs.
    pub shuttle_us: Option<f64>,
}

/// Everything one `wbfuzz bench` measured.
#[derive(Clone, Debug, Serialize)]
pub struct BenchReport {
    /// Machine description.
    pub machine: String,
    /// Throughput per target.
    pub throughput: Vec<Throughput>,
    /// Per-part breakdown per target.
    pub breakdown: Vec<Breakdown>,
    /// Issue 14's goals against this run's numbers.
    pub goals: Vec<Goal>,
    /// Growth table.
    pub growth: Vec<Growth>,
    /// Time to find each bug.
    pub find: Vec<TimeToFind>,
}

/// The synthetic growth input: writes, reads, flushes and completions of 4 KiB spread evenly
/// over the file, so each op does the same work whatever the file size.
pub fn growth_input(ops: usize, file_size: u64) -> Input {
    let geometry = Geometry {
        block_size: 4096,
        folio_pages: 1,
        capacity_blocks: (file_size / 4096) * 2 + 64,
        max_file_size: file_size,
    };
    let mut rng = SplitMix::new(0x6E0, ops as u64 ^ file_size);
    let folios = file_size / 4096;
    let list = (0..ops)
        .map(|k| {
            let off = (rng.next_u64() % folios) * 4096;
            match k % 4 {
                0 | 1 => Op::Write {
                    file: 0,
                    off,
                    len: 4096,
                    sync: false,
                },
                2 => Op::Flush {
                    file: 0,
                    off,
                    len: 4096,
                },
                _ => Op::Read {
                    file: 0,
                    off,
                    len: 4096,
                },
            }
        })
        .chain(std::iter::once(Op::CompleteIo { n: u32::MAX }))
        .collect();
    Input {
        config: Config {
            geometry,
            policy: Policy::KeepDirty,
            files: vec![FileSpec::default()],
        },
        threads: vec![list],
        schedule: vec![],
    }
}

/// Median of runs where `None` (not found within the limit) counts as longer than any time;
/// `None` when at least half the runs found nothing.
fn median_opt(v: &[Option<Found>]) -> Option<Found> {
    let mut sorted = v.to_vec();
    sorted.sort_by(|a, b| match (a, b) {
        (Some(x), Some(y)) => x.secs.total_cmp(&y.secs),
        (Some(_), None) => std::cmp::Ordering::Less,
        (None, Some(_)) => std::cmp::Ordering::Greater,
        (None, None) => std::cmp::Ordering::Equal,
    });
    sorted.get(sorted.len() / 2).copied().flatten()
}

/// Median inputs-to-find, with not-found runs counting as more than any.
fn median_execs(v: &[Option<Found>]) -> Option<u64> {
    let mut e: Vec<u64> = v.iter().map(|x| x.map_or(u64::MAX, |f| f.execs)).collect();
    e.sort_unstable();
    e.get(e.len() / 2).copied().filter(|&x| x != u64::MAX)
}

fn time_to_find(
    cfg: &BenchConfig,
    bug: Bug,
    swarm: bool,
    scheduler: hunt::Baseline,
    feedback: bool,
    seed: u64,
) -> (Option<Found>, u64) {
    let targets = if bug.needs_concurrency() {
        vec![Target::Concurrent]
    } else {
        vec![Target::Sequential]
    };
    let out = std::env::temp_dir().join(format!("wbfuzz-bench-{}", std::process::id()));
    let h = HuntConfig {
        time: cfg.find_limit,
        jobs: cfg.jobs,
        bugs: Bugs::only(bug),
        seed,
        targets,
        out_dir: out.clone(),
        stop_on_first: true,
        progress: false,
        swarm,
        scheduler,
        feedback,
    };
    let summary = hunt::hunt(&h);
    let _ = std::fs::remove_dir_all(&out);
    let found = summary.findings.first().map(|f| Found {
        secs: f.found_after.as_secs_f64(),
        execs: f.found_after_execs,
        ops: f.ops,
        threads: f.input.threads.len(),
        leftovers: f
            .input
            .threads
            .iter()
            .map(|t| {
                t.iter().filter(|op| crate::minimize::is_noop(op)).count()
                    + usize::from(t.is_empty())
            })
            .sum(),
    });
    (found, found.map_or(summary.execs, |f| f.execs))
}

/// Runs the libFuzzer binary of the bug's target from an empty corpus with the bug switched on
/// (`WBFUZZ_BUGS`), one process, until the first crash or the time limit. The concurrent target
/// runs with `-len_control=0` (as in its OSS-Fuzz options): schedules need the whole input.
fn libfuzzer_time_to_find(cfg: &BenchConfig, dir: &Path, bug: Bug, seed: u64) -> Option<Found> {
    let target = if bug.needs_concurrency() {
        Target::Concurrent
    } else {
        Target::Sequential
    };
    let work = std::env::temp_dir().join(format!("wbfuzz-bench-lf-{}", std::process::id()));
    let corpus = work.join("corpus");
    std::fs::create_dir_all(&corpus).ok()?;
    let mut cmd = std::process::Command::new(dir.join(target.name()));
    cmd.arg(&corpus)
        .arg(format!("-seed={seed}"))
        .arg(format!(
            "-max_total_time={}",
            cfg.find_limit.as_secs().max(1)
        ))
        .arg(format!("-artifact_prefix={}/", work.display()))
        .arg("-print_final_stats=1")
        .env("WBFUZZ_BUGS", bug.name())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped());
    if target == Target::Concurrent {
        cmd.arg("-len_control=0");
    }
    let start = Instant::now();
    let out = cmd.output().ok();
    let secs = start.elapsed().as_secs_f64();
    let _ = std::fs::remove_dir_all(&work);
    let out = out?;
    if out.status.success() {
        return None;
    }
    // `stat::number_of_executed_units: N` (printed on a crash with -print_final_stats=1).
    let stderr = String::from_utf8_lossy(&out.stderr);
    let execs = stderr
        .lines()
        .find_map(|l| l.strip_prefix("stat::number_of_executed_units:"))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or(0);
    Some(Found {
        secs,
        execs,
        ops: 0,
        threads: 0,
        leftovers: 0,
    })
}

/// Runs every input `cfg.samples` times with the probe on; returns the breakdown per exec.
fn breakdown(cfg: &BenchConfig, target: Target, inputs: &[Input], impl_alone: f64) -> Breakdown {
    let mut probe = Probe::on();
    let run = |i: &Input, probe: &mut Probe| {
        std::hint::black_box(if i.threads.len() > 1 {
            crate::concurrent::run_concurrent_probed(i, Bugs::NONE, probe)
        } else {
            oracle::run_sequential_probed(i, Bugs::NONE, probe)
        });
    };
    for i in inputs {
        run(i, &mut Probe::off());
    }
    let start = Instant::now();
    let mut n = 0u64;
    for _ in 0..cfg.samples.max(1) {
        for i in inputs {
            run(i, &mut probe);
        }
        n += inputs.len() as u64;
    }
    let per = |d: Duration| d.as_secs_f64() * 1e6 / n.max(1) as f64;
    let total_us = per(start.elapsed());
    let us = |p: Part| per(probe.spent(p));
    let parts: f64 = Part::ALL.iter().map(|&p| us(p)).sum();
    Breakdown {
        target: target.name(),
        implementation_us: us(Part::Implementation),
        reference_us: us(Part::Reference),
        comparison_us: us(Part::Comparison),
        invariants_us: us(Part::Invariants),
        other_us: (total_us - parts).max(0.0),
        total_us,
        shuttle_us: (target == Target::Concurrent)
            .then(|| (us(Part::Implementation) - impl_alone * 1e6).max(0.0)),
    }
}

/// Runs every measurement.
pub fn run(cfg: &BenchConfig, mut progress: impl FnMut(&str)) -> BenchReport {
    let mut throughput = Vec::new();
    let mut parts = Vec::new();
    for t in Target::ALL.into_iter().filter(|_| !cfg.find_only) {
        let inputs = load_corpus(&cfg.corpus, t);
        progress(&format!(
            "throughput: {} ({} inputs)",
            t.name(),
            inputs.len()
        ));
        let mut diff = |i: &Input| {
            std::hint::black_box(exec::run_input(i, Bugs::NONE));
        };
        let (mut imp, mut rf) = (run_impl_only, run_ref_only);
        let m = per_input_each(cfg, &inputs, &mut [&mut diff, &mut imp, &mut rf]);
        let (diff, imp, rf) = (m.median(0), m.median(1), m.median(2));
        progress(&format!("breakdown: {}", t.name()));
        parts.push(breakdown(cfg, t, &inputs, imp));
        throughput.push(Throughput {
            target: t.name(),
            inputs: inputs.len(),
            execs_per_sec: 1.0 / diff,
            impl_per_sec: 1.0 / imp,
            ref_per_sec: 1.0 / rf,
            overhead_range: m.ratio_range(0, 1),
        });
    }
    let mut growth = Vec::new();
    for &size in [64u64 << 10, 1 << 20, 8 << 20]
        .iter()
        .filter(|_| !cfg.find_only)
    {
        for &ops in &[8usize, 32, 128] {
            progress(&format!("growth: {ops} ops, {} KiB", size >> 10));
            let input = [growth_input(ops, size)];
            let mut differential = |i: &Input| {
                std::hint::black_box(oracle::run_sequential(i, Bugs::NONE));
            };
            let mut alone = |i: &Input| {
                run_impl_only(i);
                run_ref_only(i);
            };
            let m = per_input_each(cfg, &input, &mut [&mut differential, &mut alone]);
            let (s, models) = (m.median(0), m.median(1));
            growth.push(Growth {
                ops,
                file_size: size,
                us_per_exec: s * 1e6,
                models_us_per_exec: models * 1e6,
            });
        }
    }
    let mut find = Vec::new();
    if cfg.find_runs > 0 {
        let bugs: Vec<Bug> = if cfg.bugs.is_empty() {
            Bug::ALL.to_vec()
        } else {
            cfg.bugs.clone()
        };
        for bug in bugs {
            let mut row = TimeToFind {
                bug,
                hunt: vec![],
                blind: vec![],
                baseline: vec![],
                baseline_searched: vec![],
                pct: vec![],
                libfuzzer: vec![],
            };
            for r in 0..cfg.find_runs {
                progress(&format!(
                    "time to find {bug}: run {}/{}",
                    r + 1,
                    cfg.find_runs
                ));
                let seed = 1000 + r as u64;
                row.hunt
                    .push(time_to_find(cfg, bug, true, hunt::Baseline::Bytes, true, seed).0);
                row.blind
                    .push(time_to_find(cfg, bug, true, hunt::Baseline::Bytes, false, seed).0);
                let (found, searched) =
                    time_to_find(cfg, bug, false, hunt::Baseline::ShuttleRandom, false, seed);
                row.baseline.push(found);
                row.baseline_searched.push(searched);
                if let Some(dir) = &cfg.libfuzzer {
                    row.libfuzzer
                        .push(libfuzzer_time_to_find(cfg, dir, bug, seed));
                }
                if bug.needs_concurrency() {
                    row.pct.push(
                        time_to_find(cfg, bug, false, hunt::Baseline::ShuttlePct, false, seed).0,
                    );
                }
            }
            find.push(row);
        }
    }
    BenchReport {
        machine: machine(),
        goals: goals(&throughput, &parts, &growth),
        throughput,
        breakdown: parts,
        growth,
        find,
    }
}

/// Issue 14's goals, each with its floor from the same run.
fn goals(tp: &[Throughput], parts: &[Breakdown], growth: &[Growth]) -> Vec<Goal> {
    let mut v = Vec::new();
    let both = |t: &Throughput| 1.0 / (1.0 / t.impl_per_sec + 1.0 / t.ref_per_sec);
    if let Some(t) = tp.iter().find(|t| t.target == "sequential") {
        v.push(Goal {
            what: "sequential differential execs/s/core",
            goal: 15_000.0,
            at_least: true,
            measured: t.execs_per_sec,
            floor: both(t),
            floor_is: "both models alone, same ops",
        });
        v.push(Goal {
            what: "sequential overhead vs implementation alone",
            goal: 2.5,
            at_least: false,
            measured: t.impl_per_sec / t.execs_per_sec,
            floor: t.impl_per_sec / both(t),
            floor_is: "running the reference too, nothing compared",
        });
    }
    if let (Some(t), Some(b)) = (
        tp.iter().find(|t| t.target == "concurrent"),
        parts.iter().find(|b| b.target == "concurrent"),
    ) {
        v.push(Goal {
            what: "concurrent differential execs/s/core",
            goal: 5_000.0,
            at_least: true,
            measured: t.execs_per_sec,
            floor: 1e6 / (b.implementation_us + b.reference_us),
            floor_is: "the execution under shuttle plus the replay, nothing compared",
        });
    }
    let cell = |size: u64| growth.iter().find(|g| g.ops == 128 && g.file_size == size);
    if let (Some(small), Some(large)) = (cell(64 << 10), cell(8 << 20)) {
        v.push(Goal {
            what: "growth, 128 ops: 8 MiB / 64 KiB",
            goal: 2.0,
            at_least: false,
            measured: large.us_per_exec / small.us_per_exec,
            floor: large.models_us_per_exec / small.models_us_per_exec,
            floor_is: "the same ratio for both models alone",
        });
    }
    v
}

fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    format!(
        "{cpu}, {cores} cores, {} {}",
        std::env::consts::OS,
        std::env::consts::ARCH
    )
}

fn fmt_secs(v: Option<Found>) -> String {
    v.map_or("not found".to_string(), |f| format!("{:.2} s", f.secs))
}

/// Median ops and threads of the minimized findings.
fn fmt_size(v: &[Option<Found>]) -> String {
    let found: Vec<&Found> = v.iter().flatten().collect();
    if found.is_empty() {
        return "-".to_string();
    }
    let ops = median(found.iter().map(|f| f.ops as f64).collect());
    let threads = median(found.iter().map(|f| f.threads as f64).collect());
    let leftovers: usize = found.iter().map(|f| f.leftovers).sum();
    if leftovers > 0 {
        format!("{ops} ops, {threads} threads ({leftovers} no-op ops or empty threads left)")
    } else {
        format!("{ops} ops, {threads} threads")
    }
}

fn fmt_median(v: &[Option<Found>]) -> String {
    match (median_opt(v), median_execs(v)) {
        (Some(f), Some(e)) => format!("{:.2} s ({e} inputs)", f.secs),
        _ => "not found".to_string(),
    }
}

impl BenchReport {
    /// The report as markdown tables.
    pub fn markdown(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(s, "Machine: {}\n", self.machine);
        // `--find-only` measures no throughput: no empty tables then.
        if !self.throughput.is_empty() {
            let _ = writeln!(s, "| target | inputs | differential execs/s/core | implementation alone | reference alone | overhead vs implementation | its range over the rounds |");
            let _ = writeln!(s, "|---|---|---|---|---|---|---|");
            for t in &self.throughput {
                let _ = writeln!(
                    s,
                    "| {} | {} | {:.0} | {:.0} | {:.0} | {:.2}x | {:.2}x-{:.2}x |",
                    t.target,
                    t.inputs,
                    t.execs_per_sec,
                    t.impl_per_sec,
                    t.ref_per_sec,
                    t.impl_per_sec / t.execs_per_sec,
                    t.overhead_range.0,
                    t.overhead_range.1
                );
            }
            let _ = writeln!(s, "\n| target (µs per exec) | implementation | reference | comparison | invariants | other | total | of which shuttle |");
            let _ = writeln!(s, "|---|---|---|---|---|---|---|---|");
            for b in &self.breakdown {
                let pct = |x: f64| format!("{x:.1} ({:.0}%)", 100.0 * x / b.total_us);
                let _ = writeln!(
                    s,
                    "| {} | {} | {} | {} | {} | {} | {:.1} | {} |",
                    b.target,
                    pct(b.implementation_us),
                    pct(b.reference_us),
                    pct(b.comparison_us),
                    pct(b.invariants_us),
                    pct(b.other_us),
                    b.total_us,
                    b.shuttle_us.map_or("-".to_string(), pct)
                );
            }
            let _ = writeln!(
                s,
                "\n| ops \\ file size (models alone) | 64 KiB | 1 MiB | 8 MiB | µs per op (8 MiB) | 8 MiB / 64 KiB |"
            );
            let _ = writeln!(s, "|---|---|---|---|---|---|");
            for &ops in &[8usize, 32, 128] {
                let row: Vec<&Growth> = self.growth.iter().filter(|g| g.ops == ops).collect();
                let cells: Vec<String> = row
                    .iter()
                    .map(|g| format!("{:.1} µs ({:.1})", g.us_per_exec, g.models_us_per_exec))
                    .collect();
                let per_op = row
                    .last()
                    .map_or(f64::NAN, |g| g.us_per_exec / (ops + 1) as f64);
                let ratio = match (row.first(), row.last()) {
                    (Some(a), Some(b)) => format!(
                        "{:.2}x ({:.2}x)",
                        b.us_per_exec / a.us_per_exec,
                        b.models_us_per_exec / a.models_us_per_exec
                    ),
                    _ => "-".to_string(),
                };
                let _ = writeln!(
                    s,
                    "| {ops} | {} | {per_op:.2} | {ratio} |",
                    cells.join(" | ")
                );
            }
            let _ = writeln!(
                s,
                "\n| goal | target | measured | met | floor (oracle free) |"
            );
            let _ = writeln!(s, "|---|---|---|---|---|");
            for g in &self.goals {
                let num = |x: f64| {
                    if g.at_least {
                        format!("{x:.0}")
                    } else {
                        format!("{x:.2}x")
                    }
                };
                let _ = writeln!(
                    s,
                    "| {} | {} {} | {} | {} | {} ({}) |",
                    g.what,
                    if g.at_least { "≥" } else { "≤" },
                    num(g.goal),
                    num(g.measured),
                    if g.met() { "yes" } else { "no" },
                    num(g.floor),
                    g.floor_is
                );
            }
        }
        if !self.find.is_empty() {
            let lf = self.find.iter().any(|f| !f.libfuzzer.is_empty());
            let _ = writeln!(
                s,
                "\n| bug | wbfuzz hunt (default), median | runs | minimized finding | wbfuzz hunt --feedback, median | minimized finding | uniform ops + shuttle random, median | uniform ops + shuttle PCT, median | inputs: random / hunt | random / --feedback |{}",
                if lf { " cargo fuzz (1 process), median |" } else { "" }
            );
            let _ = writeln!(
                s,
                "|---|---|---|---|---|---|---|---|---|---|{}",
                if lf { "---|" } else { "" }
            );
            for f in &self.find {
                let runs = |v: &[Option<Found>]| {
                    v.iter()
                        .map(|x| fmt_secs(*x))
                        .collect::<Vec<_>>()
                        .join(", ")
                };
                let pct = if f.pct.is_empty() {
                    "-".to_string()
                } else {
                    fmt_median(&f.pct)
                };
                let libfuzzer = if lf {
                    format!(" {} |", fmt_median(&f.libfuzzer))
                } else {
                    String::new()
                };
                let _ = writeln!(
                    s,
                    "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |{libfuzzer}",
                    f.bug,
                    fmt_median(&f.blind),
                    runs(&f.blind),
                    fmt_size(&f.blind),
                    fmt_median(&f.hunt),
                    fmt_size(&f.hunt),
                    fmt_median(&f.baseline),
                    pct,
                    f.ratio(&f.blind),
                    f.ratio(&f.hunt),
                );
            }
        }
        s
    }

    /// The report as JSON: the report structs, serialized (non-finite numbers as `null`).
    pub fn json(&self) -> String {
        let mut s = serde_json::to_string_pretty(self)
            .unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"));
        s.push('\n');
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn found(execs: u64) -> Option<Found> {
        Some(Found {
            secs: execs as f64 / 1000.0,
            execs,
            ops: 3,
            threads: 2,
            leftovers: 0,
        })
    }

    fn row(baseline: Vec<Option<Found>>, searched: Vec<u64>) -> TimeToFind {
        TimeToFind {
            bug: Bug::CompletionNoBump,
            hunt: vec![],
            blind: vec![],
            baseline,
            baseline_searched: searched,
            pct: vec![],
            libfuzzer: vec![],
        }
    }

    #[test]
    fn overhead_range_is_of_ratios_within_a_round() {
        // Rounds: differential 3, 4, 6 s; implementation 1, 2, 2 s: within-round ratios 3, 2, 3.
        let m = Sampled(vec![vec![3.0, 4.0, 6.0], vec![1.0, 2.0, 2.0]]);
        assert_eq!(m.ratio_range(0, 1), (2.0, 3.0));
        // The reported overhead, the ratio of the medians (4 and 2), is at its low end here.
        assert_eq!(m.median(0) / m.median(1), 2.0);
    }

    #[test]
    fn ratio_of_medians_and_lower_bound_where_random_found_nothing() {
        let hunt = [found(10), found(30), found(20), None, found(5)];
        // Medians: hunt 20 (a miss counts as the longest), baseline 300.
        let r = row(
            vec![found(100), found(300), found(900)],
            vec![100, 300, 900],
        );
        assert_eq!(r.ratio(&hunt), "15.0x");
        // The baseline's median run found nothing: at least the median of what it searched.
        let r = row(vec![None, found(400), None], vec![50_000, 400, 60_000]);
        assert_eq!(r.ratio(&hunt), "> 2500.0x");
        // The hunt's median run found nothing: no ratio.
        assert_eq!(r.ratio(&[None, None, found(1)]), "-");
    }

    #[test]
    fn find_only_report_has_no_throughput_tables() {
        let mut r = row(vec![found(100)], vec![100]);
        r.blind = vec![found(10)];
        let report = BenchReport {
            machine: "test".into(),
            throughput: vec![],
            breakdown: vec![],
            goals: vec![],
            growth: vec![],
            find: vec![r],
        };
        let md = report.markdown();
        assert!(!md.contains("differential execs/s/core"), "{md}");
        assert!(!md.contains("NaN"), "{md}");
        assert!(
            md.contains("| completion-no-bump | 0.01 s (10 inputs)"),
            "{md}"
        );
    }
}
