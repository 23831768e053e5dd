//! The `.wbf` script format: the stable, human-readable form of an [`Input`].
//!
//! This module owns the printer ([`print()`]) and the parser ([`parse`]). Regression cases and bug
//! reproducers are stored as scripts so that they survive changes to the binary encoding; the
//! format therefore changes only compatibly. Invariants: `parse(&print(x)) == Ok(x)` for every
//! input with at least one thread (every decoded input); the printer is deterministic and its
//! output starts with a `# wbfuzz` comment line; the parser never panics and reports the first
//! problem as a [`ScriptError`] with a 1-based line number.
//!
//! # Format
//!
//! ```text
//! # wbfuzz script (comments start with '#', blank lines ignored, anywhere)
//! geometry block=1024 folio-pages=1 capacity=256 max-size=0x40000
//! policy keep-dirty
//! file f0
//! file f1 jdata
//! thread 0
//!   write f0 0x0 0x1400 sync
//!   corrupt
//! thread 1
//!   mwrite f1 0x200 0x10
//! schedule 0a 1f 03 ff
//! ```
//!
//! - The text is UTF-8; a leading byte-order mark is skipped. Lines end in `\n`, `\r\n` or a lone
//!   `\r` (old Mac), in any mix.
//! - Numbers are decimal or `0x`-hex everywhere. Leading whitespace is ignored; `#` starts a
//!   comment anywhere on a line.
//! - A script holds at most [`MAX_SCRIPT_OPS`] ops (all threads together): memory and time per
//!   run stay bounded whatever file is passed in.
//! - The header lines (`geometry`, `policy`, `file`) come before the first `thread` line or op.
//!   `geometry` is required, once, with its four keys in any order (`block`, `folio-pages`,
//!   `capacity`, `max-size`), and must pass [`reference::Geometry::validate`]. `policy`
//!   (`keep-dirty` or `invalidate`) is optional, default `keep-dirty`. `file fN [jdata]` lines
//!   declare files f0, f1, ... in order, at most 4; with none, there is one plain file f0.
//! - `thread N` lines start threads 0, 1, 2, 3 in order. Ops before any `thread` line form an
//!   implicit thread 0 (an explicit `thread 0` after them is an error). No ops and no `thread`
//!   line is one empty thread 0.
//! - An op line is exactly the [`Display`](std::fmt::Display) form of [`Op`]: the keyword of its
//!   [`OpKind`], then `fN`, then its numbers, then its flags (`sync` for `write`, `keep-size` for
//!   `falloc` and `zero`).
//! - `schedule` lines hold bytes as two hex digits each; they may repeat anywhere and concatenate.

use reference::geometry::{GeometryError, MAX_FILES, MAX_THREADS};
use reference::{Config, FileId, FileSpec, Geometry, Input, Op, OpKind, Policy};
use std::fmt::{self, Write as _};

/// Schedule bytes per printed `schedule` line.
const SCHEDULE_PER_LINE: usize = 32;

/// Most ops a script may hold, all threads together. Every run keeps one trace entry (about 100
/// bytes) per op and compares after each, so this bounds a script's trace memory to about 1 MB
/// and its run time to seconds on small geometries. Binary inputs decode to at most 48 ops.
pub const MAX_SCRIPT_OPS: usize = 10_000;

/// The keywords a script line can start with: header lines, `thread`, `schedule` and every op.
pub fn is_keyword(word: &str) -> bool {
    matches!(word, "geometry" | "policy" | "file" | "thread" | "schedule")
        || OpKind::from_keyword(word).is_some()
}

/// The lines of a script: each ends at `\n`, `\r\n` or a lone `\r`, and the end is not part of it.
/// Like [`str::lines`], a final line break does not start an empty last line.
pub fn lines(text: &str) -> impl Iterator<Item = &str> {
    let mut rest = text;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let Some(i) = rest.find(['\n', '\r']) else {
            return Some(std::mem::take(&mut rest));
        };
        let line = &rest[..i];
        let end = if rest[i..].starts_with("\r\n") { 2 } else { 1 };
        rest = &rest[i + end..];
        Some(line)
    })
}

/// The UTF-8 byte-order mark some editors put at the start of a text file.
pub const BOM: char = '\u{feff}';

/// A token as error messages quote it: characters that would not show (controls, zero-width and
/// other format characters, unassigned ones) and backslashes are escaped, so an invisible or
/// look-alike keyword is visible in the message.
struct Esc<'a>(&'a str);

/// `token` as error messages quote it (see [`Esc`]): invisible characters escaped.
pub fn escaped(token: &str) -> String {
    Esc(token).to_string()
}

impl fmt::Display for Esc<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for c in self.0.chars() {
            // `escape_debug` leaves printable characters alone; quotes need no escaping here.
            if c == '\'' || c == '"' {
                f.write_char(c)?;
            } else {
                write!(f, "{}", c.escape_debug())?;
            }
        }
        Ok(())
    }
}

/// Prints an input as a script. Deterministic; the output starts with a `# wbfuzz` comment line
/// and parses back to an equal input (given at least one thread).
pub fn print(input: &Input) -> String {
    let mut s = String::new();
    let c = &input.config;
    let g = &c.geometry;
    // Writing to a String cannot fail.
    let _ = writeln!(
        s,
        "# wbfuzz script: {} thread{}, {} op{}",
        input.threads.len(),
        if input.threads.len() == 1 { "" } else { "s" },
        input.op_count(),
        if input.op_count() == 1 { "" } else { "s" },
    );
    let _ = writeln!(
        s,
        "geometry block={} folio-pages={} capacity={} max-size={:#x}",
        g.block_size, g.folio_pages, g.capacity_blocks, g.max_file_size
    );
    let _ = writeln!(s, "policy {}", c.policy.keyword());
    for (i, f) in c.files.iter().enumerate() {
        let _ = writeln!(s, "file f{i}{}", if f.jdata { " jdata" } else { "" });
    }
    for (t, ops) in input.threads.iter().enumerate() {
        let _ = writeln!(s, "thread {t}");
        for op in ops {
            let _ = writeln!(s, "  {op}");
        }
    }
    for chunk in input.schedule.chunks(SCHEDULE_PER_LINE) {
        s.push_str("schedule");
        for b in chunk {
            let _ = write!(s, " {b:02x}");
        }
        s.push('\n');
    }
    s
}

/// A script error: where (1-based line) and what.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScriptError {
    /// The 1-based line number of the offending line.
    pub line: usize,
    /// What is wrong.
    pub kind: ScriptErrorKind,
}

/// What is wrong with a script line. Tokens are quoted as written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ScriptErrorKind {
    /// The first word of a line is not a header, `thread`, `schedule` or op keyword.
    UnknownKeyword(String),
    /// A line ends before a required argument (`what`) of `keyword`.
    MissingArgument {
        /// The line's keyword.
        keyword: String,
        /// The missing argument, e.g. `"length"`.
        what: &'static str,
    },
    /// A token that should be a number (decimal or 0x-hex) is not one.
    BadNumber(String),
    /// A number does not fit its field.
    NumberOutOfRange {
        /// The token.
        token: String,
        /// The largest allowed value.
        max: u64,
    },
    /// A trailing token is not a flag of the op.
    UnknownFlag {
        /// The op keyword.
        keyword: &'static str,
        /// The token.
        flag: String,
    },
    /// A flag given twice.
    DuplicateFlag(String),
    /// A token after everything a non-op line takes.
    UnexpectedToken(String),
    /// A token that should name a file (`f0`..`f3`) does not.
    BadFileRef(String),
    /// A file reference to a file that was not declared.
    FileOutOfRange {
        /// The token.
        token: String,
        /// How many files exist.
        files: usize,
    },
    /// A `file` line declares a file out of order.
    FileOutOfOrder {
        /// The token.
        token: String,
        /// The index the line should declare.
        expected: usize,
    },
    /// More than four `file` lines.
    TooManyFiles,
    /// A `thread` line out of order (the first is 0, or 1 after implicit-thread ops).
    ThreadOutOfOrder {
        /// The number given.
        got: u64,
        /// The number expected.
        expected: usize,
    },
    /// A fifth thread.
    TooManyThreads(u64),
    /// An explicit `thread 0` after ops that already formed an implicit thread 0.
    ImplicitThreadZero,
    /// A `geometry` field that is not `key=value` with a known key.
    BadGeometryField(String),
    /// A `geometry` key given twice.
    DuplicateGeometryKey(String),
    /// A `geometry` key missing.
    MissingGeometryKey(&'static str),
    /// The geometry does not validate.
    BadGeometry(GeometryError),
    /// No `geometry` line before the ops (or at all).
    MissingGeometry,
    /// A second `geometry` or `policy` line.
    DuplicateLine(&'static str),
    /// An unknown policy keyword.
    UnknownPolicy(String),
    /// A header line (`geometry`, `policy`, `file`) after the first thread or op.
    HeaderAfterOps(&'static str),
    /// A `schedule` token that is not two hex digits.
    BadScheduleByte(String),
    /// The op on this line is one past [`MAX_SCRIPT_OPS`].
    TooManyOps,
}

impl fmt::Display for ScriptErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use ScriptErrorKind::*;
        match self {
            UnknownKeyword(k) => write!(f, "unknown keyword `{}`", Esc(k)),
            MissingArgument { keyword, what } => write!(f, "`{keyword}` is missing its {what}"),
            BadNumber(t) => write!(f, "`{}` is not a number (decimal or 0x-hex)", Esc(t)),
            NumberOutOfRange { token, max } => {
                write!(f, "`{}` is out of range (at most {max})", Esc(token))
            }
            UnknownFlag { keyword, flag } => {
                write!(f, "unknown flag `{}` for `{keyword}`", Esc(flag))
            }
            DuplicateFlag(t) => write!(f, "flag `{}` given twice", Esc(t)),
            UnexpectedToken(t) => write!(f, "unexpected `{}` at the end of the line", Esc(t)),
            BadFileRef(t) => write!(f, "`{}` is not a file reference (f0, f1, ...)", Esc(t)),
            FileOutOfRange { token, files } => {
                write!(
                    f,
                    "file `{}` does not exist ({files} file{} declared)",
                    Esc(token),
                    plural(*files)
                )
            }
            FileOutOfOrder { token, expected } => {
                write!(
                    f,
                    "`file {}` is out of order, expected `file f{expected}`",
                    Esc(token)
                )
            }
            TooManyFiles => write!(f, "more than {MAX_FILES} files"),
            ThreadOutOfOrder { got, expected } => {
                write!(
                    f,
                    "`thread {got}` is out of order, expected `thread {expected}`"
                )
            }
            ImplicitThreadZero => {
                write!(
                    f,
                    "`thread 0` after ops that already form an implicit thread 0"
                )
            }
            TooManyThreads(t) => {
                write!(f, "`thread {t}` is past the limit of {MAX_THREADS} threads")
            }
            BadGeometryField(t) => write!(
                f,
                "bad geometry field `{}` (expected block=, folio-pages=, capacity= or max-size=)",
                Esc(t)
            ),
            DuplicateGeometryKey(k) => write!(f, "geometry key `{}` given twice", Esc(k)),
            MissingGeometryKey(k) => write!(f, "geometry is missing `{k}=`"),
            BadGeometry(e) => write!(f, "bad geometry: {e}"),
            MissingGeometry => write!(f, "missing `geometry` line before the ops"),
            DuplicateLine(k) => write!(f, "second `{k}` line"),
            UnknownPolicy(p) => {
                write!(
                    f,
                    "unknown policy `{}` (expected keep-dirty or invalidate)",
                    Esc(p)
                )
            }
            HeaderAfterOps(k) => write!(f, "`{k}` line after the first thread or op"),
            BadScheduleByte(t) => write!(f, "schedule byte `{}` is not two hex digits", Esc(t)),
            TooManyOps => write!(
                f,
                "more than {MAX_SCRIPT_OPS} ops, the limit per script (split it into several scripts)"
            ),
        }
    }
}

fn plural(n: usize) -> &'static str {
    if n == 1 {
        ""
    } else {
        "s"
    }
}

impl fmt::Display for ScriptError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}: {}", self.line, self.kind)
    }
}

impl std::error::Error for ScriptError {}

/// Parses a script (see the module docs for the format).
///
/// # Errors
///
/// The first problem found, in line order: a [`ScriptError`] with its 1-based line number.
pub fn parse(text: &str) -> Result<Input, ScriptError> {
    let text = text.strip_prefix(BOM).unwrap_or(text);
    let mut p = Parser::default();
    let mut last_line = 0;
    for (i, raw) in lines(text).enumerate() {
        last_line = i + 1;
        let content = raw.split('#').next().unwrap_or("");
        let toks: Vec<&str> = content.split_whitespace().collect();
        if toks.is_empty() {
            continue;
        }
        p.line(&toks)
            .map_err(|kind| ScriptError { line: i + 1, kind })?;
    }
    let geometry = p.geometry.ok_or(ScriptError {
        line: last_line.max(1),
        kind: ScriptErrorKind::MissingGeometry,
    })?;
    let files = if p.files.is_empty() {
        vec![FileSpec::default()]
    } else {
        p.files
    };
    let threads = if p.threads.is_empty() {
        vec![Vec::new()]
    } else {
        p.threads
    };
    Ok(Input {
        config: Config {
            geometry,
            policy: p.policy.unwrap_or_default(),
            files,
        },
        threads,
        schedule: p.schedule,
    })
}

type Res<T> = Result<T, ScriptErrorKind>;

#[derive(Default)]
struct Parser {
    geometry: Option<Geometry>,
    policy: Option<Policy>,
    files: Vec<FileSpec>,
    /// Threads so far; the last one receives ops.
    threads: Vec<Vec<Op>>,
    /// Whether thread 0 was started by an op rather than a `thread` line.
    implicit: bool,
    schedule: Vec<u8>,
    /// Ops so far, all threads.
    ops: usize,
}

impl Parser {
    fn in_body(&self) -> bool {
        !self.threads.is_empty()
    }

    fn header(&self, keyword: &'static str) -> Res<()> {
        if self.in_body() {
            Err(ScriptErrorKind::HeaderAfterOps(keyword))
        } else {
            Ok(())
        }
    }

    fn line(&mut self, toks: &[&str]) -> Res<()> {
        let (kw, args) = (toks[0], &toks[1..]);
        match kw {
            "geometry" => {
                self.header("geometry")?;
                if self.geometry.is_some() {
                    return Err(ScriptErrorKind::DuplicateLine("geometry"));
                }
                self.geometry = Some(parse_geometry(args)?);
            }
            "policy" => {
                self.header("policy")?;
                if self.policy.is_some() {
                    return Err(ScriptErrorKind::DuplicateLine("policy"));
                }
                let mut a = Args::new("policy", args);
                let t = a.next("policy name")?;
                let policy =
                    Policy::from_keyword(t).ok_or(ScriptErrorKind::UnknownPolicy(t.to_string()))?;
                a.end()?;
                self.policy = Some(policy);
            }
            "file" => {
                self.header("file")?;
                let mut a = Args::new("file", args);
                let t = a.next("file name")?;
                if self.files.len() >= MAX_FILES {
                    return Err(ScriptErrorKind::TooManyFiles);
                }
                let expected = self.files.len();
                if file_index(t)? != expected as u64 {
                    return Err(ScriptErrorKind::FileOutOfOrder {
                        token: t.to_string(),
                        expected,
                    });
                }
                let [jdata] = a.flags("file", &["jdata"])?;
                self.files.push(FileSpec { jdata });
            }
            "thread" => {
                self.start_body()?;
                let mut a = Args::new("thread", args);
                let t = a.next("thread number")?;
                let n = number(t)?;
                a.end()?;
                let expected = self.threads.len();
                if self.implicit && n == 0 {
                    return Err(ScriptErrorKind::ImplicitThreadZero);
                }
                if n != expected as u64 {
                    return Err(ScriptErrorKind::ThreadOutOfOrder { got: n, expected });
                }
                if expected >= MAX_THREADS {
                    return Err(ScriptErrorKind::TooManyThreads(n));
                }
                self.threads.push(Vec::new());
            }
            "schedule" => {
                for t in args {
                    let ok = t.len() == 2 && t.bytes().all(|b| b.is_ascii_hexdigit());
                    let b = u8::from_str_radix(t, 16)
                        .ok()
                        .filter(|_| ok)
                        .ok_or_else(|| ScriptErrorKind::BadScheduleByte(t.to_string()))?;
                    self.schedule.push(b);
                }
            }
            _ => {
                let kind = OpKind::from_keyword(kw)
                    .ok_or(ScriptErrorKind::UnknownKeyword(kw.to_string()))?;
                self.start_body()?;
                if self.ops >= MAX_SCRIPT_OPS {
                    return Err(ScriptErrorKind::TooManyOps);
                }
                self.ops += 1;
                let nfiles = self.files.len().max(1);
                let op = parse_op(kind, args, nfiles)?;
                if self.threads.is_empty() {
                    self.threads.push(Vec::new());
                    self.implicit = true;
                }
                if let Some(ops) = self.threads.last_mut() {
                    ops.push(op);
                }
            }
        }
        Ok(())
    }

    /// Called on the first body line: the geometry must be known by then.
    fn start_body(&self) -> Res<()> {
        if self.geometry.is_none() {
            return Err(ScriptErrorKind::MissingGeometry);
        }
        Ok(())
    }
}

/// Parses a number: decimal or `0x`/`0X` hex.
fn number(t: &str) -> Res<u64> {
    let bad = || ScriptErrorKind::BadNumber(t.to_string());
    let (digits, radix) = match t.strip_prefix("0x").or_else(|| t.strip_prefix("0X")) {
        Some(h) => (h, 16),
        None => (t, 10),
    };
    if digits.is_empty() || !digits.chars().all(|c| c.is_digit(radix)) {
        return Err(bad());
    }
    u64::from_str_radix(digits, radix).map_err(|_| ScriptErrorKind::NumberOutOfRange {
        token: t.to_string(),
        max: u64::MAX,
    })
}

/// Parses a number that must be at most `max`.
fn number_upto(t: &str, max: u64) -> Res<u64> {
    let n = number(t)?;
    if n > max {
        return Err(ScriptErrorKind::NumberOutOfRange {
            token: t.to_string(),
            max,
        });
    }
    Ok(n)
}

/// The index of a file reference `fN` (N decimal), not yet checked against the file count.
fn file_index(t: &str) -> Res<u64> {
    match t.strip_prefix('f') {
        Some(d) if !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit()) => d
            .parse()
            .map_err(|_| ScriptErrorKind::BadFileRef(t.to_string())),
        _ => Err(ScriptErrorKind::BadFileRef(t.to_string())),
    }
}

/// The tokens of a line after its keyword.
struct Args<'a, 'b> {
    keyword: &'static str,
    toks: std::slice::Iter<'b, &'a str>,
}

impl<'a, 'b> Args<'a, 'b> {
    fn new(keyword: &'static str, toks: &'b [&'a str]) -> Self {
        Args {
            keyword,
            toks: toks.iter(),
        }
    }

    fn next(&mut self, what: &'static str) -> Res<&'a str> {
        self.toks
            .next()
            .copied()
            .ok_or(ScriptErrorKind::MissingArgument {
                keyword: self.keyword.to_string(),
                what,
            })
    }

    fn num(&mut self, what: &'static str) -> Res<u64> {
        number(self.next(what)?)
    }

    fn file(&mut self, nfiles: usize) -> Res<FileId> {
        let t = self.next("file")?;
        let i = file_index(t)?;
        if i >= nfiles as u64 {
            return Err(ScriptErrorKind::FileOutOfRange {
                token: t.to_string(),
                files: nfiles,
            });
        }
        Ok(i as FileId)
    }

    /// The remaining tokens, each one of `allowed` at most once.
    fn flags<const N: usize>(
        &mut self,
        keyword: &'static str,
        allowed: &[&str; N],
    ) -> Res<[bool; N]> {
        let mut set = [false; N];
        for t in self.toks.by_ref() {
            if N == 0 {
                return Err(ScriptErrorKind::UnexpectedToken(t.to_string()));
            }
            let i = allowed.iter().position(|a| a == t).ok_or_else(|| {
                ScriptErrorKind::UnknownFlag {
                    keyword,
                    flag: t.to_string(),
                }
            })?;
            if set[i] {
                return Err(ScriptErrorKind::DuplicateFlag(t.to_string()));
            }
            set[i] = true;
        }
        Ok(set)
    }

    /// No more tokens.
    fn end(&mut self) -> Res<()> {
        match self.toks.next() {
            Some(t) => Err(ScriptErrorKind::UnexpectedToken(t.to_string())),
            None => Ok(()),
        }
    }
}

fn parse_geometry(args: &[&str]) -> Res<Geometry> {
    const KEYS: [&str; 4] = ["block", "folio-pages", "capacity", "max-size"];
    let mut vals: [Option<(u64, &str)>; 4] = [None; 4];
    for t in args {
        let (k, v) = t
            .split_once('=')
            .ok_or_else(|| ScriptErrorKind::BadGeometryField(t.to_string()))?;
        let i = KEYS
            .iter()
            .position(|key| *key == k)
            .ok_or_else(|| ScriptErrorKind::BadGeometryField(t.to_string()))?;
        if vals[i].is_some() {
            return Err(ScriptErrorKind::DuplicateGeometryKey(k.to_string()));
        }
        vals[i] = Some((number(v)?, *t));
    }
    let mut get = |i: usize| {
        vals[i]
            .take()
            .ok_or(ScriptErrorKind::MissingGeometryKey(KEYS[i]))
    };
    let (block, folio_pages, capacity, max_size) = (get(0)?, get(1)?, get(2)?, get(3)?);
    let to_u32 = |(n, t): (u64, &str)| {
        u32::try_from(n).map_err(|_| ScriptErrorKind::NumberOutOfRange {
            token: t.to_string(),
            max: u32::MAX as u64,
        })
    };
    let g = Geometry {
        block_size: to_u32(block)?,
        folio_pages: to_u32(folio_pages)?,
        capacity_blocks: capacity.0,
        max_file_size: max_size.0,
    };
    g.validate().map_err(ScriptErrorKind::BadGeometry)?;
    Ok(g)
}

/// Parses the arguments of an op of kind `kind`, the inverse of `Op`'s `Display`.
fn parse_op(kind: OpKind, toks: &[&str], nfiles: usize) -> Res<Op> {
    let kw = kind.keyword();
    let mut a = Args::new(kw, toks);
    let op = match kind {
        OpKind::Write => {
            let (file, off, len) = (a.file(nfiles)?, a.num("offset")?, a.num("length")?);
            let [sync] = a.flags(kw, &["sync"])?;
            Op::Write {
                file,
                off,
                len,
                sync,
            }
        }
        OpKind::Fallocate | OpKind::ZeroRange => {
            let (file, off, len) = (a.file(nfiles)?, a.num("offset")?, a.num("length")?);
            let [keep_size] = a.flags(kw, &["keep-size"])?;
            if kind == OpKind::Fallocate {
                Op::Fallocate {
                    file,
                    off,
                    len,
                    keep_size,
                }
            } else {
                Op::ZeroRange {
                    file,
                    off,
                    len,
                    keep_size,
                }
            }
        }
        OpKind::Read
        | OpKind::DirectWrite
        | OpKind::DirectRead
        | OpKind::MmapWrite
        | OpKind::MmapRead
        | OpKind::PunchHole
        | OpKind::Flush => {
            let (file, off, len) = (a.file(nfiles)?, a.num("offset")?, a.num("length")?);
            a.flags(kw, &[])?;
            match kind {
                OpKind::Read => Op::Read { file, off, len },
                OpKind::DirectWrite => Op::DirectWrite { file, off, len },
                OpKind::DirectRead => Op::DirectRead { file, off, len },
                OpKind::MmapWrite => Op::MmapWrite { file, off, len },
                OpKind::MmapRead => Op::MmapRead { file, off, len },
                OpKind::PunchHole => Op::PunchHole { file, off, len },
                _ => Op::Flush { file, off, len },
            }
        }
        OpKind::Truncate => {
            let (file, size) = (a.file(nfiles)?, a.num("size")?);
            a.flags(kw, &[])?;
            Op::Truncate { file, size }
        }
        OpKind::CompleteIo => {
            let n = number_upto(a.next("count")?, u32::MAX as u64)? as u32;
            a.flags(kw, &[])?;
            Op::CompleteIo { n }
        }
        OpKind::Reclaim => {
            let (file, folio) = (a.file(nfiles)?, a.num("folio index")?);
            a.flags(kw, &[])?;
            Op::Reclaim { file, folio }
        }
        OpKind::Fsync | OpKind::EvictInode | OpKind::JournalCommit => {
            let file = a.file(nfiles)?;
            a.flags(kw, &[])?;
            match kind {
                OpKind::Fsync => Op::Fsync { file },
                OpKind::EvictInode => Op::EvictInode { file },
                _ => Op::JournalCommit { file },
            }
        }
        OpKind::Crash => {
            // `crash [LAND [torn TORN TEAR]]`: the mask of in-flight IOs that land whole (none if
            // omitted), then the mask of torn IOs and the bits of their blocks.
            let land = match a.toks.as_slice().first() {
                Some(_) => number_upto(a.next("land mask")?, u32::MAX as u64)? as u32,
                None => 0,
            };
            let (torn, tear) = match a.toks.as_slice().first() {
                Some(&"torn") => {
                    a.next("torn")?;
                    let torn = number_upto(a.next("torn mask")?, u32::MAX as u64)? as u32;
                    (torn, number(a.next("tear bits")?)?)
                }
                _ => (0, 0),
            };
            a.flags(kw, &[])?;
            Op::Crash { land, torn, tear }
        }
        OpKind::CorruptAllocBtree | OpKind::RepairAllocBtree => {
            a.flags(kw, &[])?;
            if kind == OpKind::CorruptAllocBtree {
                Op::CorruptAllocBtree
            } else {
                Op::RepairAllocBtree
            }
        }
    };
    Ok(op)
}
