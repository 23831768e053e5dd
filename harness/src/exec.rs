//! The shared bodies behind every entry point: libFuzzer and AFL targets, corpus replay tests and
//! `wbfuzz run` all load or decode an input here and run it through the oracle, so a finding in
//! one is a finding in all.

use crate::bugs::Bugs;
use crate::concurrent;
use crate::input::decode::{decode, Mode};
use crate::input::script::{self, ScriptError, MAX_SCRIPT_OPS};
use crate::input::{sniff, NotText, Sniffed, TextNotScript};
use crate::oracle::{self, Run};
use crate::report;
use reference::Input;
use std::fmt;
use std::io::Read as _;
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

/// Largest input file `load` reads. Binary inputs use at most about 1 KiB (the rest is ignored);
/// a script at its [`MAX_SCRIPT_OPS`] limit needs well under 1 MiB. The bound keeps a stray huge
/// file from being read into memory whole.
pub const MAX_INPUT_BYTES: u64 = 16 << 20;

/// Which form to read an input file in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Form {
    /// Decide by content ([`sniff`]).
    #[default]
    Auto,
    /// Parse it as a script whatever it looks like (`--script`).
    Script,
    /// Decode it as a binary fuzz input whatever it looks like (`--binary`).
    Binary,
}

/// How an input file was read; every run's header says it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ReadAs {
    /// Parsed as a script.
    Script {
        /// By `--script` rather than by content.
        forced: bool,
    },
    /// Decoded as a binary fuzz input.
    Binary {
        /// The target whose decoding it got.
        target: Target,
        /// Whether `--target` named it (else it was guessed from the path).
        target_given: bool,
        /// Why it is not a script (`None`: `--binary`).
        not_text: Option<NotText>,
    },
}

impl fmt::Display for ReadAs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReadAs::Script { forced: false } => write!(f, "script (by content)"),
            ReadAs::Script { forced: true } => write!(f, "script (--script)"),
            ReadAs::Binary {
                target,
                target_given,
                not_text,
            } => {
                write!(
                    f,
                    "binary input for the {} target ({}), ",
                    target.name(),
                    if *target_given {
                        "--target"
                    } else {
                        "guessed from the path"
                    }
                )?;
                match not_text {
                    None => write!(f, "--binary"),
                    Some(why) => write!(f, "not a script: {why}"),
                }
            }
        }
    }
}

/// An input file, loaded, and how it was read.
#[derive(Clone, Debug)]
pub struct Loaded {
    /// The input.
    pub input: Input,
    /// How it was read.
    pub read_as: ReadAs,
}

/// Why an input file could not be loaded.
#[derive(Debug)]
pub enum LoadError {
    /// The file could not be read.
    Io(PathBuf, std::io::Error),
    /// The file is larger than [`MAX_INPUT_BYTES`].
    TooLarge(PathBuf),
    /// The file is a script with an error.
    Script(PathBuf, ScriptError),
    /// `--script` was given but the file is not UTF-8 text.
    NotUtf8(PathBuf, NotText),
    /// The file is text but not a script: neither form is assumed.
    Text(PathBuf, TextNotScript),
}

impl fmt::Display for LoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LoadError::Io(p, e) => write!(f, "{}: {e}", p.display()),
            LoadError::TooLarge(p) => write!(
                f,
                "{}: larger than {} MiB, the most an input may be (a binary input uses about \
                 1 KiB, a script at most {MAX_SCRIPT_OPS} ops)",
                p.display(),
                MAX_INPUT_BYTES >> 20
            ),
            LoadError::Script(p, e) => write!(f, "{}: {e}", p.display()),
            LoadError::NotUtf8(p, why) => {
                write!(f, "{}: --script, but it is not text ({why})", p.display())
            }
            LoadError::Text(p, why) => write!(
                f,
                "{}: text but not a script ({why}); --script parses it as a script, --binary \
                 decodes it as a binary fuzz input",
                p.display()
            ),
        }
    }
}

impl std::error::Error for LoadError {}

/// Reads at most [`MAX_INPUT_BYTES`] of a file.
fn read_bounded(path: &Path) -> Result<Vec<u8>, LoadError> {
    let io = |e| LoadError::Io(path.to_path_buf(), e);
    let mut bytes = Vec::new();
    std::fs::File::open(path)
        .and_then(|f| f.take(MAX_INPUT_BYTES + 1).read_to_end(&mut bytes))
        .map_err(io)?;
    if bytes.len() as u64 > MAX_INPUT_BYTES {
        return Err(LoadError::TooLarge(path.to_path_buf()));
    }
    Ok(bytes)
}

/// Loads an input file in `form` (by default decided by its content, see [`sniff`]); binary
/// inputs are decoded for `target`, or for the target guessed from the path.
pub fn load_as(path: &Path, target: Option<Target>, form: Form) -> Result<Loaded, LoadError> {
    let bytes = read_bounded(path)?;
    // `None`: a script; `Some(why)`: binary, `why` being `None` when forced.
    let binary = match form {
        Form::Binary => Some(None),
        Form::Script => None,
        Form::Auto => match sniff(&bytes) {
            Sniffed::Script => None,
            Sniffed::Binary(why) => Some(Some(why)),
            Sniffed::Text(why) => return Err(LoadError::Text(path.to_path_buf(), why)),
        },
    };
    let Some(not_text) = binary else {
        let text = std::str::from_utf8(&bytes).map_err(|e| {
            let why = NotText::NotUtf8 {
                offset: e.valid_up_to(),
            };
            LoadError::NotUtf8(path.to_path_buf(), why)
        })?;
        let input = script::parse(text).map_err(|e| LoadError::Script(path.to_path_buf(), e))?;
        return Ok(Loaded {
            input,
            read_as: ReadAs::Script {
                forced: form == Form::Script,
            },
        });
    };
    let t = target.unwrap_or_else(|| Target::guess_from_path(path));
    Ok(Loaded {
        input: decode(&bytes, t.mode()),
        read_as: ReadAs::Binary {
            target: t,
            target_given: target.is_some(),
            not_text,
        },
    })
}

/// Loads an input file, its form decided by content ([`load_as`] with [`Form::Auto`]).
pub fn load(path: &Path, target: Option<Target>) -> Result<Input, LoadError> {
    load_as(path, target, Form::Auto).map(|l| l.input)
}
