//! The `wbfuzz` command: run, show, minimize and hunt for divergences between the reference model
//! and the implementation under test.

use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;
use wbfuzz::bugs::Bugs;
use wbfuzz::exec::{self, Target};
use wbfuzz::input::script;
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
    /// Run scripts (.wbf) or binary inputs on both models; exit 1 on a divergence.
    Run {
        /// Input files: scripts or binary fuzz inputs.
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// Turn on a catalogued bug in the implementation (repeatable, or comma-separated).
        #[arg(long = "bug", value_name = "NAME")]
        bugs: Vec<String>,
        /// Decode binary inputs for this target (default: guessed from the path).
        #[arg(long, value_name = "sequential|concurrent")]
        target: Option<String>,
        /// Print only divergences and the summary, not every op.
        #[arg(long, short)]
        quiet: bool,
    },
    /// Print an input (binary or script) as a script.
    Show {
        /// The input file.
        file: PathBuf,
        /// Decode a binary input for this target (default: guessed from the path).
        #[arg(long, value_name = "sequential|concurrent")]
        target: Option<String>,
    },
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

fn cmd_run(files: &[PathBuf], bugs: Bugs, target: Option<Target>, quiet: bool) -> ExitCode {
    let mut diverged = 0usize;
    for path in files {
        let input = match exec::load(path, target) {
            Ok(i) => i,
            Err(e) => return usage_error(e),
        };
        let run = exec::run_input(&input, bugs);
        let name = path.display().to_string();
        if run.ok() {
            if !quiet {
                println!("{name}: {}", report::config_line(&input));
                print!("{}", report::render_trace(&run));
            }
            println!("{name}: ok ({} ops, models agree)", run.trace.len());
        } else {
            diverged += 1;
            print!("{}", report::render(&name, &input, bugs, &run));
        }
    }
    println!("{} inputs, {} passed, {} diverged", files.len(), files.len() - diverged, diverged);
    if diverged > 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() { ExitCode::from(2) } else { ExitCode::SUCCESS };
        }
    };
    match cli.command {
        Command::Run { files, bugs, target, quiet } => {
            let bugs = match parse_bugs(&bugs) {
                Ok(b) => b,
                Err(e) => return usage_error(e),
            };
            let target = match parse_target(&target) {
                Ok(t) => t,
                Err(e) => return usage_error(e),
            };
            cmd_run(&files, bugs, target, quiet)
        }
        Command::Show { file, target } => {
            let target = match parse_target(&target) {
                Ok(t) => t,
                Err(e) => return usage_error(e),
            };
            match exec::load(&file, target) {
                Ok(input) => {
                    print!("{}", script::print(&input));
                    ExitCode::SUCCESS
                }
                Err(e) => usage_error(e),
            }
        }
    }
}
