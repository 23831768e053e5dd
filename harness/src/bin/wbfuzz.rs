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
                crc32c::crc32c(format!("{run:?}").as_bytes())
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
        println!(
            "FOUND after {:.2}s ({} inputs): {} -> minimized to {} ops: {}",
            f.found_after.as_secs_f64(),
            f.found_after_execs,
            f.signature,
            f.ops,
            f.path
                .as_ref()
                .map_or("(could not write)".to_string(), |p| p.display().to_string())
        );
    }
    if let Some(first) = summary.findings.first() {
        print!("{}", first.report);
    }
    println!(
        "summary: {} inputs in {:.1}s ({:.0} execs/s), {} findings",
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
        }),
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
