//! The `wbfuzz` command: run, show, minimize and hunt for divergences between the reference model
//! and the implementation under test.

use clap::{Parser, Subcommand};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;
use wbfuzz::bench;
use wbfuzz::bugs::Bugs;
use wbfuzz::exec::{self, Form, Target};
use wbfuzz::fsx;
use wbfuzz::hunt::{self, HuntConfig};
use wbfuzz::input::script;
use wbfuzz::kernel;
use wbfuzz::minimize;
use wbfuzz::oracle::Verdict;
use wbfuzz::report;

/// Differential fuzzing of a filesystem's buffered write / writeback / delalloc path.
#[derive(Parser)]
#[command(name = "wbfuzz", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run scripts or binary inputs on both models; exit 1 on a divergence, 2 if an input could
    /// not be read.
    Run {
        /// Input files: scripts or binary fuzz inputs (told apart by content).
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// Turn on a catalogued bug in the implementation (repeatable, or comma-separated;
        /// default: `WBFUZZ_BUGS`).
        #[arg(long = "bug", value_name = "NAME")]
        bugs: Vec<String>,
        /// Decode binary inputs for this target (default: guessed from the path).
        #[arg(long, value_name = "sequential|concurrent")]
        target: Option<String>,
        #[command(flatten)]
        form: FormArgs,
        /// Print only divergences and the summary, not every op.
        #[arg(long, short)]
        quiet: bool,
        /// Print a digest of each run (trace, commit order, outcome): equal digests mean
        /// identical runs, across processes and machines.
        #[arg(long)]
        digest: bool,
    },
    /// Print an input (binary or script) as a script.
    Show {
        /// The input file.
        file: PathBuf,
        /// Decode a binary input for this target (default: guessed from the path).
        #[arg(long, value_name = "sequential|concurrent")]
        target: Option<String>,
        #[command(flatten)]
        form: FormArgs,
    },
    /// Shrink a failing input to a small script that fails the same way.
    Minimize {
        /// The failing input (script or binary, told apart by content).
        file: PathBuf,
        /// Bug switches the failure needs (default: `WBFUZZ_BUGS`).
        #[arg(long = "bug", value_name = "NAME")]
        bugs: Vec<String>,
        /// Decode a binary input for this target (default: guessed from the path).
        #[arg(long, value_name = "sequential|concurrent")]
        target: Option<String>,
        #[command(flatten)]
        form: FormArgs,
        /// Write the script here (default: standard output).
        #[arg(long, short)]
        output: Option<PathBuf>,
        /// Most candidate runs to try.
        #[arg(long, default_value_t = minimize::DEFAULT_BUDGET)]
        budget: usize,
    },
    /// Benchmarks: throughput, overhead, growth and time to find each bug; writes markdown + JSON.
    Bench {
        /// Benchmark corpus (with `sequential/` and `concurrent/` inside).
        #[arg(long, default_value = "corpus/bench")]
        corpus: PathBuf,
        /// Timed samples per measurement (medians are reported).
        #[arg(long, default_value_t = 5)]
        samples: usize,
        /// Milliseconds per sample.
        #[arg(long, default_value_t = 400)]
        sample_ms: u64,
        /// Runs per bug for time to find (0 skips it).
        #[arg(long, default_value_t = 5)]
        find_runs: usize,
        /// Seconds before a time-to-find run gives up.
        #[arg(long, default_value_t = 60)]
        find_limit: u64,
        /// Worker threads of the time-to-find hunts (default: all cores).
        #[arg(long)]
        jobs: Option<usize>,
        /// Only these bugs for time to find (default: all).
        #[arg(long = "bug", value_name = "NAME")]
        bugs: Vec<String>,
        /// Only time to find (no throughput or growth tables).
        #[arg(long)]
        find_only: bool,
        /// Also time the libFuzzer targets built in this directory (e.g.
        /// `fuzz/target/x86_64-unknown-linux-gnu/release` after `cargo +nightly fuzz build -s none`).
        #[arg(long, value_name = "DIR")]
        libfuzzer: Option<PathBuf>,
        /// Where to write the markdown table.
        #[arg(long, default_value = "bench.md")]
        markdown: PathBuf,
        /// Where to write the JSON.
        #[arg(long, default_value = "bench.json")]
        json: PathBuf,
        /// Regenerate the benchmark corpus with this many inputs per target, then exit.
        #[arg(long, hide = true)]
        write_corpus: Option<usize>,
    },
    /// Parallel random search for divergences (swarm testing, all cores); exit 1 on a finding.
    Hunt {
        /// How long to search, in seconds.
        #[arg(long, default_value_t = 60)]
        time: u64,
        /// Worker threads (default: all cores).
        #[arg(long)]
        jobs: Option<usize>,
        /// Turn on a catalogued bug in the implementation (repeatable, or comma-separated).
        #[arg(long = "bug", value_name = "NAME")]
        bugs: Vec<String>,
        /// Seed of the input generators.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Only this target (default: both).
        #[arg(long, value_name = "sequential|concurrent")]
        target: Option<String>,
        /// Directory for minimized findings and their reports.
        #[arg(long, default_value = "findings")]
        out: PathBuf,
        /// Keep searching after the first finding (each new kind of failure is saved).
        #[arg(long)]
        keep_going: bool,
        /// The feedback-guided hunt (a corpus of inputs that reached new signal, mutated
        /// structurally); the default is the blind hunt, as fast on the catalogued races and
        /// cheaper per input (README, Benchmarks).
        #[arg(long)]
        feedback: bool,
    },
    /// Corpus tools.
    Corpus {
        #[command(subcommand)]
        command: CorpusCommand,
    },
    /// Convert an xfstests `fsx --record-ops` log into a script.
    ImportFsx {
        /// The fsx op log (`.fsxops`).
        log: PathBuf,
        /// The fsx command line of the run, e.g. "-Z -r 4096 -w 4096 -l 1m" (the options that
        /// change the translation are listed in README).
        #[arg(long, value_name = "FSX ARGS", allow_hyphen_values = true)]
        args: Option<String>,
        /// Write the script here (default: standard output).
        #[arg(long, short)]
        output: Option<PathBuf>,
        /// Drop ops wbfuzz has no analogue for (collapse, insert, clone, dedupe, copy,
        /// exchange range) instead of failing; the script lists them.
        #[arg(long)]
        skip_unsupported: bool,
        /// Block size (default: 4096, or the largest dividing every O_DIRECT op).
        #[arg(long)]
        block_size: Option<u32>,
        /// Folio size in pages.
        #[arg(long, default_value_t = 1)]
        folio_pages: u32,
        /// Capacity in blocks (default: the whole max-size plus 64 blocks).
        #[arg(long)]
        capacity: Option<u64>,
    },
    /// Run single-thread inputs on a real kernel's XFS, ext4 or btrfs, the reference as oracle.
    Kernel {
        #[command(subcommand)]
        command: KernelCommand,
    },
}

#[derive(Subcommand)]
enum CorpusCommand {
    /// Keep the fewest inputs covering the signal of a bug-free guided hunt (or of the given
    /// inputs), written as `.wbf` scripts; exit 1 if the hunt found a divergence.
    Distill {
        /// Distill these scripts and directories of scripts instead of running a hunt.
        #[arg(long, value_name = "PATH")]
        from: Vec<PathBuf>,
        /// Seconds of the bug-free guided hunt whose corpus is distilled.
        #[arg(long, default_value_t = 60)]
        time: u64,
        /// Worker threads of the hunt (default: all cores).
        #[arg(long)]
        jobs: Option<usize>,
        /// Seed of the hunt.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Only this target (default: both).
        #[arg(long, value_name = "sequential|concurrent")]
        target: Option<String>,
        /// Where the distilled scripts go (earlier `distilled-*.wbf` there are replaced).
        #[arg(long, default_value = "corpus/distilled")]
        out: PathBuf,
        /// Most inputs kept.
        #[arg(long, default_value_t = 4000)]
        max_count: usize,
        /// Most bytes of scripts kept.
        #[arg(long, default_value_t = 6 << 20)]
        max_bytes: usize,
    },
}

#[derive(Subcommand)]
enum KernelCommand {
    /// Run scripts on a scratch filesystem (`--mkfs`, root) or an existing mount (`--dir`).
    Run {
        /// Make a scratch filesystem of this kind on a loop device (root).
        #[arg(long, value_name = "xfs|ext4|btrfs", conflicts_with = "dir")]
        mkfs: Option<String>,
        /// Run in this directory of a filesystem you mounted yourself (no root needed).
        #[arg(long, value_name = "DIR", required_unless_present = "mkfs")]
        dir: Option<PathBuf>,
        /// Block size for every input (default: each input's own; with --dir: the filesystem's).
        #[arg(long, value_name = "N")]
        block: Option<u32>,
        /// Print only divergences and the summary.
        #[arg(long, short)]
        quiet: bool,
        /// Threaded inputs: each thread repeats its op list for this many milliseconds.
        #[arg(long, value_name = "MS")]
        repeat: Option<u64>,
        /// With --mkfs ext4: mount it data=journal and run every file as a journaled-data file.
        #[arg(long, requires = "mkfs")]
        jdata: bool,
        /// Input files: scripts or binary inputs (several threads: run at once, see README).
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Random search on one scratch filesystem; findings are minimized against the kernel.
    Hunt {
        /// The filesystem to make.
        #[arg(long, value_name = "xfs|ext4|btrfs")]
        mkfs: String,
        /// Block size.
        #[arg(long, default_value_t = 4096)]
        block: u32,
        /// How long to search, in seconds.
        #[arg(long, default_value_t = 60)]
        time: u64,
        /// Seed of the input generator.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Directory for minimized findings and their reports.
        #[arg(long, default_value = "findings")]
        out: PathBuf,
        /// Keep searching after the first finding.
        #[arg(long)]
        keep_going: bool,
        /// Most candidate runs per minimization.
        #[arg(long, default_value_t = 2000)]
        budget: usize,
        /// Threaded inputs (2-4 threads released together on one shared file, judged by the
        /// race rule: see README, "Testing a real kernel").
        #[arg(long)]
        threads: bool,
        /// With --threads: each thread repeats its op list for this many milliseconds.
        #[arg(long, value_name = "MS", requires = "threads")]
        repeat: Option<u64>,
        /// Corruption phases on XFS: `corrupt` (every bnobt root's CRC broken with xfs_db
        /// offline) and `repair` (xfs_repair) inside generated inputs, judged by the fault rule.
        #[arg(long, conflicts_with = "threads")]
        faults: bool,
        /// With --mkfs ext4: mount it data=journal and run every file as a journaled-data file.
        #[arg(long, conflicts_with = "faults")]
        jdata: bool,
    },
    /// ops/s with every op checked on XFS and ext4 scratch images, against bare syscalls.
    Bench {
        /// Benchmark corpus (its `sequential/` inputs are used).
        #[arg(long, default_value = "corpus/bench")]
        corpus: PathBuf,
        /// Seconds per measurement.
        #[arg(long, default_value_t = 5)]
        time: u64,
        /// Filesystems (comma-separated).
        #[arg(long, default_value = "xfs,ext4")]
        fs: String,
        /// Block sizes (comma-separated).
        #[arg(long, default_value = "4096,1024")]
        blocks: String,
    },
}

/// Forcing an input's form (by default it is decided by content).
#[derive(clap::Args)]
struct FormArgs {
    /// Decode every input as a binary fuzz input, whatever it looks like.
    #[arg(long, conflicts_with = "script")]
    binary: bool,
    /// Parse every input as a script, whatever it looks like.
    #[arg(long)]
    script: bool,
}

impl FormArgs {
    fn form(&self) -> Form {
        match (self.binary, self.script) {
            (true, _) => Form::Binary,
            (_, true) => Form::Script,
            _ => Form::Auto,
        }
    }
}

/// The bug switches of a `run` or `minimize`, and where they came from.
struct ActiveBugs {
    bugs: Bugs,
    source: BugSource,
}

/// Where a command's bug switches came from; its header says it.
enum BugSource {
    /// `--bug`, and the `WBFUZZ_BUGS` it overrode, if one was set.
    Flag { ignored_env: Option<String> },
    /// `WBFUZZ_BUGS`.
    Env,
    /// Neither was given.
    Neither,
}

impl ActiveBugs {
    /// `--bug` values win; without any, `WBFUZZ_BUGS` (as the fuzz targets read it), so a
    /// crash found under a switch replays under it.
    fn choose(flags: &[String]) -> Result<ActiveBugs, String> {
        let env = match std::env::var("WBFUZZ_BUGS") {
            Ok(v) => Some(v),
            Err(std::env::VarError::NotPresent) => None,
            Err(std::env::VarError::NotUnicode(_)) => {
                return Err("WBFUZZ_BUGS is not valid UTF-8".to_string())
            }
        };
        if !flags.is_empty() {
            return Ok(ActiveBugs {
                bugs: parse_bugs(flags)?,
                source: BugSource::Flag {
                    ignored_env: env.filter(|v| !v.trim().is_empty()),
                },
            });
        }
        Ok(match env {
            Some(v) => ActiveBugs {
                bugs: Bugs::parse_list(&v).map_err(|e| format!("WBFUZZ_BUGS: {e}"))?,
                source: BugSource::Env,
            },
            None => ActiveBugs {
                bugs: Bugs::NONE,
                source: BugSource::Neither,
            },
        })
    }
}

impl std::fmt::Display for ActiveBugs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "bug switches: {} (", self.bugs)?;
        match &self.source {
            BugSource::Flag { ignored_env: None } => write!(f, "--bug")?,
            BugSource::Flag {
                ignored_env: Some(v),
            } => write!(f, "--bug; WBFUZZ_BUGS={v} ignored")?,
            BugSource::Env => write!(f, "WBFUZZ_BUGS")?,
            BugSource::Neither => write!(f, "no --bug, no WBFUZZ_BUGS")?,
        }
        write!(f, ")")
    }
}

/// Parses `--bug` values (each may be a comma-separated list).
fn parse_bugs(names: &[String]) -> Result<Bugs, String> {
    names.iter().try_fold(Bugs::NONE, |acc, n| {
        let b = Bugs::parse_list(n).map_err(|e| e.to_string())?;
        Ok(b.iter().fold(acc, Bugs::with))
    })
}

fn parse_target(t: &Option<String>) -> Result<Option<Target>, String> {
    match t {
        None => Ok(None),
        Some(name) => Target::from_name(name)
            .map(Some)
            .ok_or_else(|| format!("unknown target `{name}` (known: sequential, concurrent)")),
    }
}

fn usage_error(msg: impl std::fmt::Display) -> ExitCode {
    eprintln!("wbfuzz: {msg}");
    ExitCode::from(2)
}

fn cmd_run(
    files: &[PathBuf],
    bugs: &ActiveBugs,
    target: Option<Target>,
    form: Form,
    quiet: bool,
    digest: bool,
) -> ExitCode {
    println!(
        "wbfuzz run: {} input{}, {bugs}",
        files.len(),
        if files.len() == 1 { "" } else { "s" }
    );
    let bugs_on = bugs.bugs;
    let (mut diverged, mut rejected, mut bad) = (0usize, 0usize, 0usize);
    for path in files {
        let name = path.display().to_string();
        // A bad input is reported and counted; the others still run.
        let loaded = match exec::load_as(path, target, form) {
            Ok(l) => l,
            Err(e) => {
                bad += 1;
                println!("{name}: not run (error on stderr)");
                eprintln!("wbfuzz: {e}");
                continue;
            }
        };
        println!("{name}: read as {}", loaded.read_as);
        let input = loaded.input;
        let run = exec::run_input(&input, bugs_on);
        if digest {
            println!(
                "{name}: digest {:08x}",
                reference::crc32c(format!("{run:?}").as_bytes())
            );
        }
        match &run.verdict {
            Verdict::Rejected(why) => {
                rejected += 1;
                println!("{name}: rejected: {why} (nothing checked, not a finding)");
            }
            Verdict::Agree => {
                if !quiet {
                    println!("{name}: {}", report::config_line(&input));
                    print!("{}", report::render_trace(&run));
                }
                println!("{name}: ok ({} ops, models agree)", run.trace.len());
            }
            Verdict::Diverged(_) => {
                diverged += 1;
                print!("{}", report::render(&name, &input, bugs_on, &run));
            }
        }
    }
    let bad_note = if bad > 0 {
        format!(", {bad} could not be read")
    } else {
        String::new()
    };
    println!(
        "{} inputs, {} passed, {} rejected, {} diverged{bad_note}",
        files.len(),
        files.len() - diverged - rejected - bad,
        rejected,
        diverged
    );
    if bad > 0 {
        ExitCode::from(2)
    } else if diverged > 0 {
        ExitCode::from(1)
    } else if rejected > 0 {
        // Not a pass: the rejected inputs were not checked at all.
        ExitCode::from(EXIT_NOTHING_CHECKED)
    } else {
        ExitCode::SUCCESS
    }
}

/// `wbfuzz run`'s exit status when no input diverged but at least one was rejected (nothing
/// was checked for it).
const EXIT_NOTHING_CHECKED: u8 = 3;

fn cmd_minimize(
    file: &Path,
    bugs: &ActiveBugs,
    target: Option<Target>,
    form: Form,
    output: Option<PathBuf>,
    budget: usize,
) -> ExitCode {
    let loaded = match exec::load_as(file, target, form) {
        Ok(l) => l,
        Err(e) => return usage_error(e),
    };
    eprintln!(
        "wbfuzz minimize: {}: read as {}; {bugs}",
        file.display(),
        loaded.read_as
    );
    let (input, bugs) = (loaded.input, bugs.bugs);
    let run = exec::run_input(&input, bugs);
    let Some(sig) = minimize::signature(&run) else {
        return usage_error(format!(
            "{}: the models agree on this input (bugs: {bugs}); nothing to minimize",
            file.display()
        ));
    };
    let small = minimize::minimize(&input, bugs, budget);
    let text = format!(
        "# wbfuzz minimize (bug switches: {bugs}): {sig}\n{}",
        script::print(&small)
    );
    eprintln!(
        "minimized {} ops to {} ops ({sig})",
        input.op_count(),
        small.op_count()
    );
    match output {
        Some(p) => {
            if let Err(e) = std::fs::write(&p, text) {
                return usage_error(format!("{}: {e}", p.display()));
            }
        }
        None => print!("{text}"),
    }
    ExitCode::SUCCESS
}

fn cmd_hunt(cfg: HuntConfig) -> ExitCode {
    let targets: Vec<&str> = cfg.targets.iter().map(|t| t.name()).collect();
    println!(
        "wbfuzz hunt: {}s, {} jobs, seed {}, targets {}, bug switches: {}",
        cfg.time.as_secs(),
        cfg.jobs,
        cfg.seed,
        targets.join("+"),
        cfg.bugs
    );
    let summary = hunt::hunt(&cfg);
    for f in &summary.findings {
        print_found(
            f.found_after,
            f.found_after_execs,
            &f.signature,
            f.ops,
            f.path.as_deref(),
        );
    }
    if let Some(first) = summary.findings.first() {
        print!("{}", first.report);
    }
    let guided = if cfg.feedback {
        format!(
            ", corpus {} inputs, signal {} features",
            summary.corpus.len(),
            summary.signal
        )
    } else {
        String::new()
    };
    println!(
        "summary: {} inputs in {:.1}s ({:.0} execs/s), {} findings{guided}",
        summary.execs,
        summary.elapsed.as_secs_f64(),
        summary.execs_per_sec(),
        summary.findings.len()
    );
    if summary.findings.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

/// Every script under `paths` (files as given, directories by their `.wbf` files, sorted).
fn load_scripts(paths: &[PathBuf]) -> Result<Vec<reference::Input>, String> {
    let mut files = Vec::new();
    for p in paths {
        if p.is_dir() {
            let rd = std::fs::read_dir(p).map_err(|e| format!("{}: {e}", p.display()))?;
            let mut in_dir: Vec<PathBuf> = rd
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|f| f.extension().is_some_and(|x| x == "wbf"))
                .collect();
            in_dir.sort();
            files.extend(in_dir);
        } else {
            files.push(p.clone());
        }
    }
    files
        .iter()
        .map(|f| exec::load(f, None).map_err(|e| e.to_string()))
        .collect()
}

fn cmd_distill(
    from: &[PathBuf],
    hunt_cfg: HuntConfig,
    out: &Path,
    bounds: wbfuzz::distill::Bounds,
) -> Result<ExitCode, String> {
    let mut code = ExitCode::SUCCESS;
    let candidates = if from.is_empty() {
        eprintln!(
            "corpus distill: bug-free guided hunt, {}s, {} jobs, seed {}",
            hunt_cfg.time.as_secs(),
            hunt_cfg.jobs,
            hunt_cfg.seed
        );
        let summary = hunt::hunt(&hunt_cfg);
        for f in &summary.findings {
            code = ExitCode::from(1);
            println!(
                "FOUND with no bug switch on: {} -> {}",
                f.signature,
                f.path
                    .as_ref()
                    .map_or("(could not write)".to_string(), |p| p.display().to_string())
            );
        }
        eprintln!(
            "corpus distill: hunt ran {} inputs, corpus {} inputs, signal {} features",
            summary.execs,
            summary.corpus.len(),
            summary.signal
        );
        summary.corpus
    } else {
        load_scripts(from)?
    };
    let d = wbfuzz::distill::distill(&candidates, bounds);
    wbfuzz::distill::write(out, &d).map_err(|e| format!("{}: {e}", out.display()))?;
    let concurrent = d.kept.iter().filter(|k| k.input.threads.len() > 1).count();
    println!(
        "corpus distill: {} candidates ({} failing, left out), signal {} features; kept {} inputs ({} concurrent, {} sequential), {} bytes, covering {} features, in {}",
        d.candidates,
        d.failing,
        d.signal,
        d.kept.len(),
        concurrent,
        d.kept.len() - concurrent,
        d.bytes(),
        d.covered,
        out.display()
    );
    Ok(code)
}

fn cmd_import_fsx(
    log: &Path,
    args: Option<String>,
    output: Option<PathBuf>,
    mut opts: fsx::ImportOptions,
) -> Result<ExitCode, String> {
    if let Some(a) = args {
        opts.args = fsx::FsxArgs::parse(&a).map_err(|e| format!("--args: {e}"))?;
    }
    let text = std::fs::read(log).map_err(|e| format!("{}: {e}", log.display()))?;
    let text = String::from_utf8_lossy(&text);
    let imported = fsx::import(&text, &opts).map_err(|e| format!("{}: {e}", log.display()))?;
    let script = imported.script(&log.display().to_string());
    match output {
        Some(p) => std::fs::write(&p, script).map_err(|e| format!("{}: {e}", p.display()))?,
        None => print!("{script}"),
    }
    eprintln!(
        "import-fsx: {} ops from {}",
        imported.input.op_count(),
        log.display()
    );
    Ok(ExitCode::SUCCESS)
}

fn parse_fs(name: &str) -> Result<kernel::FsKind, String> {
    kernel::FsKind::from_name(name)
        .ok_or_else(|| format!("unknown filesystem `{name}` (known: xfs, ext4, btrfs)"))
}

/// Exit status of a run stopped by SIGINT / SIGTERM (after its cleanup), as shells report it.
const EXIT_INTERRUPTED: u8 = 130;

fn kernel_error(e: kernel::oracle::KernelError) -> ExitCode {
    if matches!(e, kernel::oracle::KernelError::Interrupted) {
        eprintln!("wbfuzz: interrupted; scratch devices cleaned up");
        ExitCode::from(EXIT_INTERRUPTED)
    } else {
        usage_error(e)
    }
}

/// The line a hunt prints for each finding (the same for `hunt` and `kernel hunt`).
fn print_found(
    after: Duration,
    execs: u64,
    sig: &wbfuzz::minimize::Signature,
    ops: usize,
    path: Option<&std::path::Path>,
) {
    println!(
        "FOUND after {:.2}s ({execs} inputs): {sig} -> minimized to {ops} ops: {}",
        after.as_secs_f64(),
        path.map_or("(could not write)".to_string(), |p| p.display().to_string())
    );
}

fn cmd_kernel_run(
    mkfs: Option<String>,
    dir: Option<PathBuf>,
    block: Option<u32>,
    quiet: bool,
    (repeat, jdata): (Option<Duration>, bool),
    files: &[PathBuf],
) -> Result<ExitCode, String> {
    use kernel::oracle::KernelTarget;
    use kernel::scratch::{self, Scratch};
    scratch::install_signal_handlers().map_err(|e| format!("installing signal handlers: {e}"))?;
    let fs = mkfs.as_deref().map(parse_fs).transpose()?;
    if jdata && fs != Some(kernel::FsKind::Ext4) {
        return Err("--jdata mounts ext4 data=journal: it needs --mkfs ext4".into());
    }
    // Inputs the kernel cannot run are refused one by one (exit 2 unless something diverged);
    // the others still run.
    let mut inputs = Vec::new();
    let mut refused = 0usize;
    for path in files {
        let input = exec::load(path, Some(Target::Sequential)).map_err(|e| e.to_string())?;
        if let Some(why) = kernel::exec::unsupported(&input) {
            println!("{}: refused: {why}", path.display());
            refused += 1;
            continue;
        }
        if input.threads.len() > 1 {
            if let Err(e) = wbfuzz::race_rule::plan(&kernel::exec::kernel_view(&input, false).0) {
                let (t, i) = e.position();
                let line = std::fs::read_to_string(path)
                    .ok()
                    .and_then(|text| wbfuzz::race_rule::script_line(&text, t, i))
                    .map_or(String::new(), |l| format!("line {l}: "));
                println!(
                    "{}: refused: {line}thread {t} op {} breaks the race rule of threaded kernel runs: {e}",
                    path.display(),
                    i + 1
                );
                refused += 1;
                continue;
            }
        }
        inputs.push((path, input));
    }
    // --dir: the filesystem's block size unless --block says otherwise.
    let dir_fs = match &dir {
        Some(d) => {
            let (kind, bsize) =
                kernel::fs_kind_of(d).map_err(|e| format!("{}: {e}", d.display()))?;
            if kind.is_none() {
                eprintln!(
                    "wbfuzz: {} is not on XFS, ext4 or btrfs: extent states are judged by the strictest relation",
                    d.display()
                );
            }
            Some((kind, block.unwrap_or(bsize as u32)))
        }
        None => None,
    };
    if let Some(b) = block {
        if !reference::geometry::BLOCK_SIZES.contains(&b) {
            return Err(format!("--block {b}: not one of 512, 1024, 4096"));
        }
    }
    let mut scratches: Vec<Scratch> = Vec::new();
    let mut diverged = 0usize;
    let mut said_view = false;
    let ran = inputs.len();
    for (path, input) in inputs {
        let name = path.display().to_string();
        let bs = dir_fs.map_or(block.unwrap_or(input.config.geometry.block_size), |d| d.1);
        let input = kernel::hunt::adapt(input, bs);
        let run = match (&dir, fs) {
            (Some(d), _) => {
                let target = KernelTarget {
                    dir: d,
                    fs: dir_fs.and_then(|x| x.0),
                    device: None,
                    repeat,
                    jdata: false,
                };
                kernel::hunt::run_checked(&target, &input)
            }
            (None, Some(fs)) => {
                if !scratches.iter().any(|s| s.block() == bs) {
                    let size = scratch::image_size(
                        reference::geometry::MAX_FILES,
                        reference::geometry::MAX_FILE_SIZE_LIMIT,
                    );
                    match Scratch::create_with(fs, bs, size, jdata) {
                        Ok(s) => {
                            eprintln!(
                                "wbfuzz kernel: {fs} block {bs} on {} mounted at {}",
                                s.device(),
                                s.dir().display()
                            );
                            scratches.push(s);
                        }
                        Err(e) => return Err(e.to_string()),
                    }
                }
                let s = scratches
                    .iter()
                    .find(|s| s.block() == bs)
                    .ok_or("scratch device vanished")?;
                let target = KernelTarget {
                    dir: s.dir(),
                    fs: Some(fs),
                    device: Some(s.device_name().to_string()),
                    repeat,
                    jdata,
                };
                kernel::hunt::run_checked(&target, &input)
            }
            (None, None) => return Err("give --mkfs FS or --dir DIR".into()),
        };
        let run = match run {
            Ok(r) => r,
            Err(e) => {
                drop(scratches);
                return Ok(kernel_error(e));
            }
        };
        if run.kernel_view && !said_view {
            if jdata {
                eprintln!("wbfuzz kernel: every file runs as a journaled-data file (ext4 data=journal) and `commit` as `fsync`");
            } else {
                eprintln!("wbfuzz kernel: journaled-data files run as ordinary files and `commit` as `fsync`: no per-file journaled data here (ext4's `j` attribute needs CAP_SYS_RESOURCE; --jdata mounts ext4 data=journal)");
            }
            said_view = true;
        }
        if run.ok() {
            if !quiet {
                println!("{name}: {}", report::config_line(&input));
                print!("{}", kernel::oracle::render_trace(&run));
            }
            println!(
                "{name}: ok ({} ops, kernel and reference agree)",
                run.trace.len()
            );
        } else {
            diverged += 1;
            print!("{}", kernel::oracle::render(&name, &input, &run));
        }
    }
    for s in scratches {
        s.destroy().map_err(|e| e.to_string())?;
    }
    println!(
        "{} inputs, {} passed, {} diverged, {} refused",
        files.len(),
        ran - diverged,
        diverged,
        refused
    );
    Ok(if diverged > 0 {
        ExitCode::from(1)
    } else if refused > 0 {
        ExitCode::from(2)
    } else {
        ExitCode::SUCCESS
    })
}

// One parameter per command-line flag of `kernel hunt`, as the other commands take theirs.
#[allow(clippy::too_many_arguments)]
fn cmd_kernel_hunt(
    mkfs: &str,
    block: u32,
    time: u64,
    seed: u64,
    out: PathBuf,
    keep_going: bool,
    budget: usize,
    (threads, repeat, faults, jdata): (bool, Option<Duration>, bool, bool),
) -> Result<ExitCode, String> {
    use kernel::scratch::{self, Scratch};
    scratch::install_signal_handlers().map_err(|e| format!("installing signal handlers: {e}"))?;
    let fs = parse_fs(mkfs)?;
    let size = scratch::image_size(
        reference::geometry::MAX_FILES,
        reference::geometry::MAX_FILE_SIZE_LIMIT,
    );
    if faults && fs != kernel::FsKind::Xfs {
        return Err(format!(
            "--faults corrupts XFS free-space btrees with xfs_db: it needs --mkfs xfs, not {fs}"
        ));
    }
    if jdata && fs != kernel::FsKind::Ext4 {
        return Err(format!(
            "--jdata mounts ext4 data=journal: it needs --mkfs ext4, not {fs}"
        ));
    }
    let mut s = Scratch::create_with(fs, block, size, jdata).map_err(|e| e.to_string())?;
    println!(
        "wbfuzz kernel hunt: {time}s, {fs} block {block} on {} at {}, seed {seed}{}",
        s.device(),
        s.dir().display(),
        match (faults, threads, jdata) {
            (true, _, _) => ", corruption phases",
            (_, true, true) => ", threaded, data=journal",
            (_, true, false) => ", threaded",
            (_, false, true) => ", data=journal",
            _ => "",
        }
    );
    let cfg = kernel::hunt::KernelHuntConfig {
        time: Duration::from_secs(time),
        seed,
        out_dir: out,
        progress: std::io::IsTerminal::is_terminal(&std::io::stderr()),
        keep_going,
        minimize_budget: budget,
        threads,
    };
    let fault_summary = if faults {
        match kernel::hunt::fault_hunt(&mut s, block, &cfg) {
            Ok(x) => Some(x),
            Err(e) => {
                drop(s);
                return Ok(kernel_error(e));
            }
        }
    } else {
        None
    };
    let target = kernel::oracle::KernelTarget {
        dir: s.dir(),
        fs: Some(fs),
        device: Some(s.device_name().to_string()),
        repeat,
        jdata,
    };
    let summary =
        match fault_summary.map_or_else(|| kernel::hunt::kernel_hunt(&target, block, &cfg), Ok) {
            Ok(x) => x,
            Err(e) => {
                drop(s);
                return Ok(kernel_error(e));
            }
        };
    s.destroy().map_err(|e| e.to_string())?;
    for f in &summary.findings {
        print_found(
            f.found_after,
            f.found_after_execs,
            &f.signature,
            f.ops,
            f.path.as_deref(),
        );
    }
    if let Some(first) = summary.findings.first() {
        print!("{}", first.report);
    }
    if !summary.log_kinds.is_empty() {
        println!("kernel log during the hunt, by kind (most frequent first):");
        for (kind, n) in summary.log_kinds.iter().take(40) {
            println!("  {n:>7}  {kind}");
        }
    }
    let secs = summary.elapsed.as_secs_f64().max(1e-9);
    println!(
        "summary: {} inputs, {} ops in {:.1}s ({:.0} inputs/s, {:.0} ops/s), {} findings",
        summary.execs,
        summary.ops,
        secs,
        summary.execs as f64 / secs,
        summary.ops as f64 / secs,
        summary.findings.len()
    );
    Ok(if summary.interrupted {
        eprintln!("wbfuzz: interrupted; scratch device cleaned up");
        ExitCode::from(EXIT_INTERRUPTED)
    } else if summary.findings.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

fn cmd_kernel_bench(corpus: &Path, time: u64, fs: &str, blocks: &str) -> Result<ExitCode, String> {
    use kernel::scratch::{self, Scratch};
    scratch::install_signal_handlers().map_err(|e| format!("installing signal handlers: {e}"))?;
    let dir = corpus.join("sequential");
    let mut paths: Vec<PathBuf> = std::fs::read_dir(&dir)
        .map_err(|e| format!("{}: {e}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    paths.sort();
    let mut inputs = Vec::new();
    for p in &paths {
        inputs.push(exec::load(p, Some(Target::Sequential)).map_err(|e| e.to_string())?);
    }
    let kinds = fs.split(',').map(parse_fs).collect::<Result<Vec<_>, _>>()?;
    let blocks = blocks
        .split(',')
        .map(|b| {
            b.trim()
                .parse::<u32>()
                .map_err(|e| format!("--blocks `{b}`: {e}"))
        })
        .collect::<Result<Vec<_>, _>>()?;
    println!("| filesystem | block | inputs timed | ops/s, every op checked | ops/s, bare syscalls | cost of the checks | inputs left out (diverge) |");
    println!("|---|---|---|---|---|---|---|");
    for kind in kinds {
        for &b in &blocks {
            if let Some(why) = kind.refuses_block(b) {
                eprintln!("bench: skipping {kind} block {b}: {why}");
                continue;
            }
            let size = scratch::image_size(
                reference::geometry::MAX_FILES,
                reference::geometry::MAX_FILE_SIZE_LIMIT,
            );
            let s = Scratch::create(kind, b, size).map_err(|e| e.to_string())?;
            let target = kernel::oracle::KernelTarget {
                dir: s.dir(),
                fs: Some(kind),
                device: Some(s.device_name().to_string()),
                repeat: None,
                jdata: false,
            };
            let row = match kernel::hunt::bench(&target, b, &inputs, Duration::from_secs(time)) {
                Ok(r) => r,
                Err(e) => {
                    drop(s);
                    return Ok(kernel_error(e));
                }
            };
            s.destroy().map_err(|e| e.to_string())?;
            println!(
                "| {} | {} | {} | {:.0} | {:.0} | {:.2}x | {} |",
                row.fs,
                row.block,
                row.inputs,
                row.checked_ops_per_sec,
                row.syscall_ops_per_sec,
                row.syscall_ops_per_sec / row.checked_ops_per_sec.max(1e-9),
                row.divergences
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn all_cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// Dispatches a parsed command line; `Err` is a usage error (exit 2).
fn dispatch(command: Command) -> Result<ExitCode, String> {
    Ok(match command {
        Command::Run {
            files,
            bugs,
            target,
            form,
            quiet,
            digest,
        } => cmd_run(
            &files,
            &ActiveBugs::choose(&bugs)?,
            parse_target(&target)?,
            form.form(),
            quiet,
            digest,
        ),
        Command::Show { file, target, form } => {
            let loaded = exec::load_as(&file, parse_target(&target)?, form.form())
                .map_err(|e| e.to_string())?;
            eprintln!(
                "wbfuzz show: {}: read as {}",
                file.display(),
                loaded.read_as
            );
            print!("{}", script::print(&loaded.input));
            ExitCode::SUCCESS
        }
        Command::Minimize {
            file,
            bugs,
            target,
            form,
            output,
            budget,
        } => cmd_minimize(
            &file,
            &ActiveBugs::choose(&bugs)?,
            parse_target(&target)?,
            form.form(),
            output,
            budget,
        ),
        Command::Bench {
            corpus,
            samples,
            sample_ms,
            find_runs,
            find_limit,
            jobs,
            bugs,
            find_only,
            libfuzzer,
            markdown,
            json,
            write_corpus,
        } => {
            if let Some(n) = write_corpus {
                bench::write_corpus(&corpus, n)
                    .map_err(|e| format!("{}: {e}", corpus.display()))?;
                return Ok(ExitCode::SUCCESS);
            }
            if let Some(dir) = &libfuzzer {
                for t in Target::ALL {
                    let bin = dir.join(t.name());
                    if !bin.is_file() {
                        return Err(format!(
                            "--libfuzzer: no libFuzzer target at {} (build it with `cd fuzz && cargo +nightly fuzz build -s none`)",
                            bin.display()
                        ));
                    }
                }
            }
            let cfg = bench::BenchConfig {
                corpus,
                samples,
                sample_time: Duration::from_millis(sample_ms),
                find_runs,
                find_limit: Duration::from_secs(find_limit),
                jobs: jobs.unwrap_or_else(all_cores),
                bugs: parse_bugs(&bugs)?.iter().collect(),
                find_only,
                libfuzzer,
            };
            let report = bench::run(&cfg, |m| eprintln!("bench: {m}"));
            let md = report.markdown();
            print!("{md}");
            std::fs::write(&markdown, &md)
                .and_then(|()| std::fs::write(&json, report.json()))
                .map_err(|e| e.to_string())?;
            eprintln!("bench: wrote {} and {}", markdown.display(), json.display());
            ExitCode::SUCCESS
        }
        Command::Hunt {
            time,
            jobs,
            bugs,
            seed,
            target,
            out,
            keep_going,
            feedback,
        } => cmd_hunt(HuntConfig {
            time: Duration::from_secs(time),
            jobs: jobs.unwrap_or_else(all_cores),
            bugs: parse_bugs(&bugs)?,
            seed,
            targets: parse_target(&target)?.map_or(Target::ALL.to_vec(), |t| vec![t]),
            out_dir: out,
            stop_on_first: !keep_going,
            progress: std::io::IsTerminal::is_terminal(&std::io::stderr()),
            swarm: true,
            scheduler: hunt::Baseline::Bytes,
            feedback,
        }),
        Command::Corpus {
            command:
                CorpusCommand::Distill {
                    from,
                    time,
                    jobs,
                    seed,
                    target,
                    out,
                    max_count,
                    max_bytes,
                },
        } => {
            let jobs = jobs.unwrap_or_else(all_cores);
            let hunt_cfg = HuntConfig {
                time: Duration::from_secs(time),
                jobs,
                bugs: Bugs::NONE,
                seed,
                targets: parse_target(&target)?.map_or(Target::ALL.to_vec(), |t| vec![t]),
                out_dir: PathBuf::from("findings"),
                stop_on_first: false,
                progress: std::io::IsTerminal::is_terminal(&std::io::stderr()),
                swarm: true,
                scheduler: hunt::Baseline::Bytes,
                feedback: true,
            };
            let bounds = wbfuzz::distill::Bounds {
                max_count,
                max_bytes,
            };
            cmd_distill(&from, hunt_cfg, &out, bounds)?
        }
        Command::ImportFsx {
            log,
            args,
            output,
            skip_unsupported,
            block_size,
            folio_pages,
            capacity,
        } => cmd_import_fsx(
            &log,
            args,
            output,
            fsx::ImportOptions {
                skip_unsupported,
                block_size,
                folio_pages,
                capacity,
                ..fsx::ImportOptions::default()
            },
        )?,
        Command::Kernel { command } => match command {
            KernelCommand::Run {
                mkfs,
                dir,
                block,
                quiet,
                repeat,
                jdata,
                files,
            } => cmd_kernel_run(
                mkfs,
                dir,
                block,
                quiet,
                (repeat.map(Duration::from_millis), jdata),
                &files,
            )?,
            KernelCommand::Hunt {
                mkfs,
                block,
                time,
                seed,
                out,
                keep_going,
                budget,
                threads,
                repeat,
                faults,
                jdata,
            } => cmd_kernel_hunt(
                &mkfs,
                block,
                time,
                seed,
                out,
                keep_going,
                budget,
                (threads, repeat.map(Duration::from_millis), faults, jdata),
            )?,
            KernelCommand::Bench {
                corpus,
                time,
                fs,
                blocks,
            } => cmd_kernel_bench(&corpus, time, &fs, &blocks)?,
        },
    })
}

fn main() -> ExitCode {
    match Cli::try_parse() {
        Ok(cli) => dispatch(cli.command).unwrap_or_else(usage_error),
        Err(e) => {
            let _ = e.print();
            if e.use_stderr() {
                ExitCode::from(2)
            } else {
                ExitCode::SUCCESS
            }
        }
    }
}
