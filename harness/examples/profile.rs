//! A fixed workload for instruction-count profiles (`valgrind --tool=callgrind`), where the
//! timed loops of `wbfuzz bench` would run a machine-dependent number of times:
//!
//! ```text
//! cargo build --release --example profile
//! valgrind --tool=callgrind target/release/examples/profile sequential corpus/bench
//! ```
//!
//! `profile TARGET CORPUS [ROUNDS]` runs every input of `CORPUS/TARGET/` through the differential
//! oracle `ROUNDS` times (default 1); `profile growth OPS FILE_SIZE [ROUNDS]` runs `wbfuzz
//! bench`'s synthetic growth input instead.

use std::path::Path;
use std::process::ExitCode;
use wbfuzz::bench::{growth_input, load_corpus};
use wbfuzz::bugs::Bugs;
use wbfuzz::exec::{run_input, Target};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let num = |k: usize, default: u64| {
        args.get(k).map_or(Ok(default), |s| {
            s.parse::<u64>().map_err(|e| format!("{s}: {e}"))
        })
    };
    let inputs = match args.first().map(String::as_str) {
        Some("growth") => match (num(1, 128), num(2, 8 << 20)) {
            (Ok(ops), Ok(size)) => vec![growth_input(ops as usize, size)],
            (Err(e), _) | (_, Err(e)) => {
                eprintln!("profile: {e}");
                return ExitCode::from(2);
            }
        },
        Some(t) => match (Target::from_name(t), args.get(1)) {
            (Some(target), Some(dir)) => load_corpus(Path::new(dir), target),
            _ => {
                eprintln!("usage: profile sequential|concurrent CORPUS [ROUNDS] | profile growth OPS FILE_SIZE [ROUNDS]");
                return ExitCode::from(2);
            }
        },
        None => {
            eprintln!("usage: profile sequential|concurrent CORPUS [ROUNDS] | profile growth OPS FILE_SIZE [ROUNDS]");
            return ExitCode::from(2);
        }
    };
    let rounds_at = if args.first().map(String::as_str) == Some("growth") {
        3
    } else {
        2
    };
    let rounds = match num(rounds_at, 1) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("profile: {e}");
            return ExitCode::from(2);
        }
    };
    let mut diverged = 0;
    for _ in 0..rounds {
        for i in &inputs {
            diverged += usize::from(run_input(i, Bugs::NONE).diverged());
        }
    }
    println!(
        "{} inputs x {rounds} rounds, {diverged} diverged",
        inputs.len()
    );
    ExitCode::SUCCESS
}
