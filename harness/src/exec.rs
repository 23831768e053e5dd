//! The shared bodies behind every entry point: libFuzzer and AFL targets, corpus replay tests and
//! `wbfuzz run` all load or decode an input here and run it through the oracle, so a finding in
//! one is a finding in all.

use crate::bugs::Bugs;
use crate::concurrent;
use crate::input::decode::{decode, Mode};
use crate::input::script::{self, ScriptError};
use crate::oracle::{self, Run};
use crate::report;
use reference::Input;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// A fuzz target: which decoding its binary inputs get.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Target {
    /// One thread, op-by-op comparison.
    Sequential,
    /// Two to four threads under a fuzz-chosen schedule.
    Concurrent,
}

impl Target {
    /// The decoding mode of the target's binary inputs.
    pub fn mode(self) -> Mode {
        match self {
            Target::Sequential => Mode::Sequential,
            Target::Concurrent => Mode::Concurrent,
        }
    }

    /// The target's name, as cargo-fuzz and the corpus directories spell it.
    pub fn name(self) -> &'static str {
        match self {
            Target::Sequential => "sequential",
            Target::Concurrent => "concurrent",
        }
    }

    /// Every target.
    pub const ALL: [Target; 2] = [Target::Sequential, Target::Concurrent];

    /// Parses a target name.
    pub fn from_name(s: &str) -> Option<Target> {
        Target::ALL.into_iter().find(|t| t.name() == s)
    }

    /// Guesses the target of a binary input from its path (a `concurrent` directory component,
    /// as in `corpus/concurrent/` or `fuzz/artifacts/concurrent/`); sequential otherwise.
    pub fn guess_from_path(path: &Path) -> Target {
        if path.components().any(|c| c.as_os_str() == "concurrent") {
            Target::Concurrent
        } else {
            Target::Sequential
        }
    }
}

/// Runs an input on both models with the oracle appropriate for its thread count: one thread
/// is a sequential run compared after every op; more is a concurrent run under the schedule.
pub fn run_input(input: &Input, bugs: Bugs) -> Run {
    if input.threads.len() > 1 {
        concurrent::run_concurrent(input, bugs)
    } else {
        oracle::run_sequential(input, bugs)
    }
}

/// Bug switches for fuzz targets, read once from `WBFUZZ_BUGS`.
pub fn env_bugs() -> Bugs {
    static BUGS: OnceLock<Bugs> = OnceLock::new();
    *BUGS.get_or_init(|| match Bugs::from_env() {
        Ok(b) => b,
        Err(e) => {
            eprintln!("wbfuzz: WBFUZZ_BUGS: {e}");
            std::process::exit(2)
        }
    })
}

/// The body of a fuzz target: decode any bytes, run, and panic with the full report on a
/// divergence (that is how libFuzzer and AFL learn of a finding).
pub fn fuzz_one(target: Target, data: &[u8]) {
    let input = decode(data, target.mode());
    let bugs = env_bugs();
    let run = run_input(&input, bugs);
    if run.diverged() {
        let text = report::render(target.name(), &input, bugs, &run);
        panic!("{text}\nscript:\n{}", script::print(&input));
    }
}

/// Why an input file could not be loaded.
#[derive(Debug)]
pub enum LoadError {
    /// The file could not be read.
    Io(PathBuf, std::io::Error),
    /// The file is a script with an error.
    Script(PathBuf, ScriptError),
}

impl fmt::Display for LoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LoadError::Io(p, e) => write!(f, "{}: {e}", p.display()),
            LoadError::Script(p, e) => write!(f, "{}: {e}", p.display()),
        }
    }
}

impl std::error::Error for LoadError {}

/// Whether a file is a `.wbf` script rather than a binary fuzz input: by its extension, or by the
/// header line the printer writes.
pub fn is_script(path: &Path, bytes: &[u8]) -> bool {
    path.extension().is_some_and(|e| e == "wbf") || bytes.starts_with(b"# wbfuzz")
}

/// Loads a script (`.wbf`) or decodes a binary input (for `target`, or guessed from the path).
pub fn load(path: &Path, target: Option<Target>) -> Result<Input, LoadError> {
    let bytes = std::fs::read(path).map_err(|e| LoadError::Io(path.to_path_buf(), e))?;
    if is_script(path, &bytes) {
        let text = String::from_utf8_lossy(&bytes);
        script::parse(&text).map_err(|e| LoadError::Script(path.to_path_buf(), e))
    } else {
        let t = target.unwrap_or_else(|| Target::guess_from_path(path));
        Ok(decode(&bytes, t.mode()))
    }
}
