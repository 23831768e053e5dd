//! `wbfuzz hunt`: the built-in parallel search, on stable Rust, without libFuzzer.
//!
//! Two modes. Blind is the default (`wbfuzz hunt`) because on the catalogued races guided is
//! no clear winner and costs a quarter of the throughput (README, Benchmarks: which one leads
//! changes from run to run; the guided corpus fills with inputs that each reach one new
//! interleaving feature, so a parent gets little attention); guided
//! (`--feedback`) is what `corpus distill` runs and what a search for new kinds of state uses.
//!
//! Guided (`feedback: true`, `wbfuzz hunt --feedback`): every run reports its feedback features ([`crate::signal`]); an input
//! that agrees and reaches a feature no earlier input reached (or has fewer ops than the
//! champion of one) joins a corpus shared by all rayon workers (a mutex'd list and
//! [`SignalMap`]). Three inputs in four come from the corpus: the
//! champion (fewest ops) of a feature drawn uniformly from those reached, re-run under a fresh
//! scheduler draw (concurrent parents, one time in four) or mutated structurally
//! ([`crate::mutate`]: ops inserted, deleted, swapped, duplicated across threads, moved onto
//! another op's folio; schedules nudged, re-drawn or spliced; policy and geometry flipped); the
//! fourth, and every input while the corpus is empty, is a fresh swarm input as the blind hunt
//! makes them. A corpus input found by a shuttle scheduler is kept with schedule bytes that
//! replay its interleaving, so every corpus input is an ordinary script.
//!
//! Blind (`feedback: false`, the default): each worker runs
//! epochs of 256 fresh inputs: an epoch draws a target and, for the sequential target, its own
//! set of enabled op kinds (swarm testing: each kind on with probability 3/4; writes always on),
//! then decodes random byte strings and drops the ops of disabled kinds. Swarm testing finds bugs
//! that need many ops of a few kinds, which uniform op mixes dilute.
//!
//! Concurrent inputs are scheduled by a strategy drawn per input (see [`run_hunt_input`]).
//! Every finding is minimized and saved as a script with its report.
//!
//! Determinism: a blind hunt's inputs are a pure function of `--seed` and the worker number, so
//! it explores the same inputs in the same order every time (how far it gets depends on time).
//! A guided hunt with one job is just as deterministic (its corpus is its own). With several jobs
//! each worker's random choices are still a pure function of (seed, worker), but which corpus
//! input a choice picks depends on what the other workers added by then, that is on timing: the
//! inputs explored are not reproducible run to run, only every finding and corpus input is (as a
//! script).
//!
//! Locks: the corpus mutex, taken once per input to draw a parent and once to offer the run,
//! never while an input runs; the findings mutex, taken to check and record a signature.

use crate::bugs::Bugs;
use crate::exec::{self, Target};
use crate::generators::{draw_schedule, generate, generate_uniform, SplitMix, Swarm};
use crate::input::script;
use crate::minimize::{self, Signature};
use crate::mutate::{self, Changed};
use crate::oracle::{self, Run};
use crate::report;
use crate::signal::{Features, SignalMap};
use rayon::prelude::*;
use reference::Input;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Settings of one hunt.
#[derive(Clone, Debug)]
pub struct HuntConfig {
    /// Wall-clock budget.
    pub time: Duration,
    /// Worker threads.
    pub jobs: usize,
    /// Bug switches in the implementation.
    pub bugs: Bugs,
    /// Seed of every worker's generator.
    pub seed: u64,
    /// Targets to draw from.
    pub targets: Vec<Target>,
    /// Where findings are written.
    pub out_dir: PathBuf,
    /// Stop at the first finding (otherwise keep going and save each new signature).
    pub stop_on_first: bool,
    /// Show a live progress line on stderr.
    pub progress: bool,
    /// The hunt's own inputs: swarm testing (each sequential epoch draws its op kinds) and long
    /// concurrent threads ([`generate`]); off: the uniform baseline inputs of `wbfuzz bench`
    /// ([`generate_uniform`]).
    pub swarm: bool,
    /// Concurrent runs: the input's schedule bytes (fuzzing), or one of shuttle's schedulers
    /// seeded per input (the benchmark baselines).
    pub scheduler: Baseline,
    /// Feedback-guided (a corpus of inputs that reached new signal, mutated); off: the blind
    /// random hunt.
    pub feedback: bool,
}

/// Which scheduler concurrent hunt runs use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Baseline {
    /// The input's schedule bytes.
    Bytes,
    /// shuttle's random scheduler.
    ShuttleRandom,
    /// shuttle's PCT scheduler.
    ShuttlePct,
}

/// One minimized finding.
#[derive(Clone, Debug)]
pub struct Finding {
    /// How the models disagreed.
    pub signature: Signature,
    /// The minimized input.
    pub input: Input,
    /// Ops in the minimized input.
    pub ops: usize,
    /// Time from the start of the hunt to the (unminimized) finding.
    pub found_after: Duration,
    /// Inputs executed (all workers) when it was found.
    pub found_after_execs: u64,
    /// The script written, if it could be written.
    pub path: Option<PathBuf>,
    /// The report of the minimized input.
    pub report: String,
}

/// What a hunt did.
#[derive(Clone, Debug)]
pub struct HuntSummary {
    /// Inputs executed.
    pub execs: u64,
    /// Wall time.
    pub elapsed: Duration,
    /// Findings, first found first.
    pub findings: Vec<Finding>,
    /// Guided hunts: the corpus, in the order its inputs were added (each reached a feature no
    /// input before it reached); empty for blind hunts.
    pub corpus: Vec<Input>,
    /// Guided hunts: distinct features reached by the corpus.
    pub signal: usize,
}

impl HuntSummary {
    /// Executions per second over the whole hunt.
    pub fn execs_per_sec(&self) -> f64 {
        self.execs as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

/// Contended scheduling decisions per op that [`draw_strategy`]'s PCT expects: a decision
/// counts only where two tasks could run; over 400 generated concurrent inputs the median was 16
/// per op (10th percentile 0, 90th 50). A change point past the end of an execution changes
/// nothing, so a high estimate lowers the effective depth; a low one crowds the change points
/// into the first ops.
const PCT_STEPS_PER_OP: u64 = 20;

/// PCT depths [`draw_strategy`] draws from, uniformly: 3 to 19 change points.
const PCT_DEPTHS: [u32; 4] = [4, 6, 10, 20];

/// Draws the scheduling strategy of one concurrent hunt input from `seed`: wbfuzz's PCT
/// ([`crate::schedule::Pct`], a depth from [`PCT_DEPTHS`], change points among the first
/// [`PCT_STEPS_PER_OP`] contended decisions per op) for 6/8 of the inputs, shuttle's random
/// scheduler for 1/8, the schedule bytes for 1/8.
///
/// Why (inputs to the first finding, median of 8-9 seeds, each strategy alone on inputs of
/// [`generate`]'s form): the races of the catalogue lie between two kinds. A thread stopped
/// inside a window while another runs whole ops wants few change points (completion-no-bump:
/// depth 3 8.2k, 4 2.8k, 6 3.0k, 10 4.4k, 20 7.5k; shuttle's random scheduler on the uniform
/// inputs found it in none of `wbfuzz bench`'s 30-second runs); a tight alternation
/// of several steps wants many or random choices everywhere (retry-skips-wait: depth 3 5.0k, 4
/// 6.7k, 6 1.6k, 10 536, 20 546, random 249; reclaim-unlocked-check: 2.6k, 2.8k, 1.2k, 584,
/// 445, random 217). No single depth is good at both; the spread of depths expects within 2x
/// of the best depth on each (completion-no-bump 3.8k, retry-skips-wait 890, reclaim 776).
/// (Measured before a fix to [`crate::schedule::Pct`]: two change points drawn on one decision
/// used to block the later ones, about one depth-20 draw in four and one depth-10 draw in
/// fifteen on inputs of ~30 ops; `wbfuzz bench` measures the hunt as it is.) Random and bytes stay as hedges: random for the tightest alternations, bytes
/// for schedules neither draws. shuttle's PCT is not used: made for one execution, it draws
/// no change points.
pub fn draw_strategy(seed: u64, input: &Input) -> crate::concurrent::Sched {
    use crate::concurrent::Sched;
    let rest = seed >> 3;
    match seed % 8 {
        0 => Sched::Bytes,
        1 => Sched::Random(rest),
        _ => Sched::Priority {
            seed: rest >> 2,
            depth: PCT_DEPTHS[(rest & 3) as usize],
            steps: PCT_STEPS_PER_OP * input.op_count() as u64,
        },
    }
}

/// Runs one input as the hunt's scheduler choice says. With [`Baseline::Bytes`] (the hunt
/// proper) a concurrent input is scheduled by a strategy drawn per input ([`draw_strategy`]).
/// A divergence found by a scheduler other than the bytes is re-run with its decisions recorded
/// and the input's schedule replaced by bytes that replay them, so every finding is an ordinary
/// script.
pub fn run_hunt_input(
    bugs: Bugs,
    scheduler: Baseline,
    rng: &mut SplitMix,
    input: &mut Input,
) -> Run {
    use crate::concurrent::{run_concurrent_recorded, run_concurrent_with, Sched};
    if input.threads.len() < 2 {
        return exec::run_input(input, bugs);
    }
    let seed = rng.next_u64();
    let sched = match scheduler {
        Baseline::ShuttleRandom => return run_concurrent_with(input, bugs, Sched::Random(seed)),
        Baseline::ShuttlePct => return run_concurrent_with(input, bugs, Sched::Pct(seed)),
        Baseline::Bytes => draw_strategy(seed, input),
    };
    if sched == Sched::Bytes {
        if let Some(s) = draw_schedule(rng, input) {
            input.schedule = s;
        }
        return exec::run_input(input, bugs);
    }
    let run = run_concurrent_with(input, bugs, sched);
    if !run.diverged() {
        return run;
    }
    let (run, bytes) = run_concurrent_recorded(input, bugs, sched);
    input.schedule = bytes;
    run
}

/// Inputs per swarm epoch.
const EPOCH: u64 = 256;

struct Shared {
    execs: AtomicU64,
    stop: AtomicBool,
    findings: Mutex<Vec<Finding>>,
    corpus: Mutex<Corpus>,
}

/// The guided hunt's corpus and the signal it reached. Each feature has a champion: the input
/// with the fewest ops among those that reached it (AFL's "top rated" entries); parents are
/// drawn as the champion of a feature drawn uniformly from those reached, so an input that alone
/// reaches a rare feature is drawn as often as the best of a common one, however many inputs
/// reach that one.
#[derive(Default)]
struct Corpus {
    inputs: Vec<Input>,
    map: SignalMap,
    /// Features reached, in the order first reached.
    reached: Vec<u32>,
    /// Per feature: index of its champion in `inputs`, and the champion's op count.
    champion: HashMap<u32, (u32, u32)>,
}

impl Corpus {
    /// Adds `input` if it reached a new feature or has fewer ops than some feature's champion.
    fn offer(&mut self, input: Input, features: &mut Features) {
        let ops = input.op_count() as u32;
        let wins = features.indices().iter().any(|i| {
            self.champion
                .get(i)
                .is_none_or(|&(_, champion_ops)| ops < champion_ops)
        });
        if !wins || self.inputs.len() >= MAX_CORPUS {
            self.map.merge(features);
            return;
        }
        let k = self.inputs.len() as u32;
        for &i in features.indices() {
            match self.champion.get_mut(&i) {
                None => {
                    self.reached.push(i);
                    self.champion.insert(i, (k, ops));
                }
                Some(c) if ops < c.1 => *c = (k, ops),
                Some(_) => {}
            }
        }
        self.map.merge(features);
        self.inputs.push(input);
    }

    /// A parent: the champion of a feature drawn with `a` among those of `want_threads`'s
    /// target; and a donor drawn with `b`.
    fn pick(&self, a: u64, b: u64, want_threads: bool) -> Option<(Input, Input)> {
        if self.reached.is_empty() {
            return None;
        }
        // A few draws find a feature whose champion has the wanted target (both targets' features
        // share the list).
        for t in 0..8u64 {
            let f =
                self.reached[(a.rotate_left(8 * t as u32) % self.reached.len() as u64) as usize];
            let Some(&(k, _)) = self.champion.get(&f) else {
                continue;
            };
            let parent = &self.inputs[k as usize];
            if (parent.threads.len() > 1) == want_threads {
                let donor = &self.inputs[(b % self.inputs.len() as u64) as usize];
                return Some((parent.clone(), donor.clone()));
            }
        }
        None
    }
}

/// Most inputs a guided hunt's corpus keeps (past it, new signal is still counted).
const MAX_CORPUS: usize = 20_000;

/// Runs one guided-hunt input, adding its features to `sink`. Like [`run_hunt_input`], except
/// that `keep_bytes` (a mutated input that should be run under its schedule bytes) skips the
/// strategy draw, and that a run under a shuttle scheduler is always recorded: its schedule
/// becomes the bytes that replay it, for the corpus as for a finding.
pub fn run_guided_input(
    bugs: Bugs,
    rng: &mut SplitMix,
    input: &mut Input,
    keep_bytes: bool,
    sink: &mut Features,
) -> Run {
    use crate::concurrent::{run_concurrent_signal, Sched};
    if input.threads.len() < 2 {
        return oracle::run_sequential_signal(input, bugs, sink);
    }
    let seed = rng.next_u64();
    let sched = if keep_bytes {
        Sched::Bytes
    } else {
        draw_strategy(seed, input)
    };
    if sched == Sched::Bytes && !keep_bytes {
        if let Some(s) = draw_schedule(rng, input) {
            input.schedule = s;
        }
    }
    let record = sched != Sched::Bytes;
    let (run, bytes) = run_concurrent_signal(input, bugs, sched, record, sink);
    if let Some(b) = bytes {
        input.schedule = b;
    }
    run
}

fn save(
    cfg: &HuntConfig,
    name: &str,
    input: &Input,
    sig: &Signature,
    report: &str,
) -> Option<PathBuf> {
    std::fs::create_dir_all(&cfg.out_dir).ok()?;
    let path = cfg.out_dir.join(format!("{name}.wbf"));
    let mut text = format!(
        "# wbfuzz hunt finding (bug switches: {}): {sig}\n",
        cfg.bugs
    );
    text.push_str(&script::print(input));
    std::fs::write(&path, text).ok()?;
    std::fs::write(cfg.out_dir.join(format!("{name}.txt")), report).ok()?;
    Some(path)
}

fn worker(cfg: &HuntConfig, shared: &Shared, w: u64, start: Instant) {
    if cfg.feedback {
        guided_worker(cfg, shared, w, start)
    } else {
        blind_worker(cfg, shared, w, start)
    }
}

/// Records a finding of `input` (minimized, saved) unless its signature is known; the first
/// stops the hunt when it should.
fn on_divergence(
    cfg: &HuntConfig,
    shared: &Shared,
    w: u64,
    start: Instant,
    n_found: &mut u32,
    input: &Input,
    run: &Run,
) {
    let Some(sig) = minimize::signature(run) else {
        return;
    };
    let found_after = start.elapsed();
    let found_after_execs = shared.execs.load(Ordering::Relaxed);
    let known = shared
        .findings
        .lock()
        .map(|f| f.iter().any(|x| x.signature == sig))
        .unwrap_or(true);
    if known {
        return;
    }
    if cfg.stop_on_first {
        shared.stop.store(true, Ordering::Relaxed);
    }
    let small = minimize::minimize(input, cfg.bugs, minimize::DEFAULT_BUDGET);
    let small_run = exec::run_input(&small, cfg.bugs);
    let name = format!("finding-s{}-w{w}-{n_found}", cfg.seed);
    *n_found += 1;
    let text = report::render(&name, &small, cfg.bugs, &small_run);
    let path = save(cfg, &name, &small, &sig, &text);
    if let Ok(mut f) = shared.findings.lock() {
        if !f.iter().any(|x| x.signature == sig) {
            f.push(Finding {
                signature: sig,
                ops: small.op_count(),
                input: small,
                found_after,
                found_after_execs,
                path,
                report: text,
            });
        }
    }
}

/// One guided worker: mutate corpus inputs (3 in 4) or make fresh ones, keep what reaches new
/// signal.
fn guided_worker(cfg: &HuntConfig, shared: &Shared, w: u64, start: Instant) {
    let mut rng = SplitMix::new(cfg.seed, w);
    let mut buf = Vec::with_capacity(512);
    let deadline = start + cfg.time;
    let mut n_found = 0u32;
    let mut features = Features::new();
    let mut epoch = 0u64;
    let (mut target, mut swarm) = (cfg.targets[0], Swarm::ALL);
    while !shared.stop.load(Ordering::Relaxed) && Instant::now() < deadline {
        if epoch.is_multiple_of(EPOCH) {
            let drawn = Swarm::draw(&mut rng);
            target = cfg.targets[(rng.next_u64() % cfg.targets.len() as u64) as usize];
            swarm = if cfg.swarm && target == Target::Sequential {
                drawn
            } else {
                Swarm::ALL
            };
        }
        epoch += 1;
        // A parent and a donor of the worker's target, drawn from the corpus.
        let want_threads = target == Target::Concurrent;
        let picked = if rng.one_in(4) {
            None
        } else {
            let a = rng.next_u64();
            let b = rng.next_u64();
            shared
                .corpus
                .lock()
                .ok()
                .and_then(|c| c.pick(a, b, want_threads))
        };
        let (mut input, keep_bytes) = match picked {
            // A concurrent parent is also re-run as it is under a fresh scheduler draw: its ops
            // reached somewhere new, and the next interleaving of the same ops is often what a
            // race needs.
            Some((parent, _)) if parent.threads.len() > 1 && rng.one_in(4) => (parent, false),
            Some((mut parent, donor)) => {
                let changed = mutate::mutate(&mut rng, &mut parent, Some(&donor));
                let keep = changed == Changed::Schedule || rng.one_in(2);
                (parent, keep)
            }
            None => (generate(&mut rng, target, swarm, &mut buf), false),
        };
        features.clear();
        let run = run_guided_input(cfg.bugs, &mut rng, &mut input, keep_bytes, &mut features);
        shared.execs.fetch_add(1, Ordering::Relaxed);
        if run.diverged() {
            on_divergence(cfg, shared, w, start, &mut n_found, &input, &run);
            continue;
        }
        if run.rejected().is_some() {
            continue;
        }
        if let Ok(mut c) = shared.corpus.lock() {
            c.offer(input, &mut features);
        }
    }
}

fn blind_worker(cfg: &HuntConfig, shared: &Shared, w: u64, start: Instant) {
    let mut rng = SplitMix::new(cfg.seed, w);
    let mut buf = Vec::with_capacity(512);
    let deadline = start + cfg.time;
    let mut n_found = 0u32;
    while !shared.stop.load(Ordering::Relaxed) && Instant::now() < deadline {
        let drawn = Swarm::draw(&mut rng);
        let target = cfg.targets[(rng.next_u64() % cfg.targets.len() as u64) as usize];
        // Concurrent epochs run without swarm: with PCT scheduling it slowed the race switches
        // down (median inputs to find over 24 runs: fault-hole-race ~650 without, ~1,400 with;
        // stale-mapping and put-folio-after-unlock about even).
        let swarm = if cfg.swarm && target == Target::Sequential {
            drawn
        } else {
            Swarm::ALL
        };
        for _ in 0..EPOCH {
            if shared.stop.load(Ordering::Relaxed) {
                return;
            }
            let mut input = if cfg.swarm {
                generate(&mut rng, target, swarm, &mut buf)
            } else {
                generate_uniform(&mut rng, target, &mut buf)
            };
            let run = run_hunt_input(cfg.bugs, cfg.scheduler, &mut rng, &mut input);
            shared.execs.fetch_add(1, Ordering::Relaxed);
            if run.diverged() {
                on_divergence(cfg, shared, w, start, &mut n_found, &input, &run);
                if Instant::now() >= deadline {
                    return;
                }
            }
        }
    }
}

/// Runs a hunt.
pub fn hunt(cfg: &HuntConfig) -> HuntSummary {
    let shared = Shared {
        execs: AtomicU64::new(0),
        stop: AtomicBool::new(false),
        findings: Mutex::new(Vec::new()),
        corpus: Mutex::new(Corpus::default()),
    };
    let start = Instant::now();
    let jobs = cfg.jobs.max(1);
    let bar = if cfg.progress {
        let b = indicatif::ProgressBar::new_spinner();
        b.set_style(
            indicatif::ProgressStyle::with_template("{spinner} [{elapsed_precise}] {msg}")
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner()),
        );
        Some(b)
    } else {
        None
    };
    let done = AtomicBool::new(false);
    std::thread::scope(|ts| {
        // The progress display runs beside the workers until they all stop.
        ts.spawn(|| {
            while !done.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(200));
                if let Some(b) = &bar {
                    let e = shared.execs.load(Ordering::Relaxed);
                    let nf = shared.findings.lock().map(|f| f.len()).unwrap_or(0);
                    let secs = start.elapsed().as_secs_f64().max(1e-9);
                    let guided = if cfg.feedback {
                        let (n, sig) = shared
                            .corpus
                            .lock()
                            .map(|c| (c.inputs.len(), c.map.count()))
                            .unwrap_or_default();
                        format!("corpus {n}, signal {sig}, ")
                    } else {
                        "blind, ".to_string()
                    };
                    b.set_message(format!(
                        "{e} inputs, {:.0} execs/s, {guided}{nf} findings, {jobs} jobs, bugs: {}",
                        e as f64 / secs,
                        cfg.bugs
                    ));
                    b.tick();
                }
            }
        });
        // Stops the progress display however the workers end (a panicking worker would leave
        // it running and the scope waiting for it).
        struct Done<'a>(&'a AtomicBool);
        impl Drop for Done<'_> {
            fn drop(&mut self) {
                self.0.store(true, Ordering::Relaxed);
            }
        }
        let _done = Done(&done);
        let work = || {
            (0..jobs as u64)
                .into_par_iter()
                .for_each(|w| worker(cfg, &shared, w, start))
        };
        match rayon::ThreadPoolBuilder::new().num_threads(jobs).build() {
            Ok(pool) => pool.install(work),
            Err(_) => work(),
        }
        done.store(true, Ordering::Relaxed);
    });
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    let findings = shared.findings.into_inner().unwrap_or_default();
    let corpus = shared.corpus.into_inner().unwrap_or_default();
    HuntSummary {
        execs: shared.execs.load(Ordering::Relaxed),
        elapsed: start.elapsed(),
        findings,
        signal: corpus.map.count(),
        corpus: corpus.inputs,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::concurrent::Sched;

    #[test]
    fn strategy_draw_shares_and_depths() {
        let input = Input::default();
        let (mut bytes, mut random, mut pct) = (0, 0, 0);
        let mut depths = std::collections::BTreeSet::new();
        let mut rng = SplitMix::new(9, 0);
        for _ in 0..8000 {
            match draw_strategy(rng.next_u64(), &input) {
                Sched::Bytes => bytes += 1,
                Sched::Random(_) => random += 1,
                Sched::Priority { depth, .. } => {
                    pct += 1;
                    depths.insert(depth);
                }
                Sched::Pct(_) => panic!("shuttle's PCT draws no change points"),
            }
        }
        assert!(
            (800..1200).contains(&bytes) && (800..1200).contains(&random),
            "{bytes} {random}"
        );
        assert!((5600..6400).contains(&pct), "{pct}");
        assert_eq!(depths.into_iter().collect::<Vec<_>>(), PCT_DEPTHS.to_vec());
    }
}
