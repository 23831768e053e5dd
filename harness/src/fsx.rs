//! Import of xfstests `fsx --record-ops` logs: turns an fsx op log into a wbfuzz [`Input`].
//!
//! This module owns the log reader ([`parse_log`]), the reader of fsx's command line
//! ([`FsxArgs::parse`]), the translation of fsx ops into wbfuzz ops and the choice of geometry
//! ([`import`]). It holds no locks. Invariants: [`import`] never panics on any text; every error
//! names the 1-based log line it comes from (0: the command line, `--args` or the importer's
//! options); the result is a pure function of the log, the args and the options; its geometry
//! validates and every op lies below its maximum file size.
//!
//! # The log
//!
//! One fsx op per line: `[skip ]NAME ARG... [keep_size] [close_open] [unshare] [*]`, numbers in
//! C `strtoul` base-0 form (fsx writes `0x` hex). Lines that are empty or whose first word starts
//! with `#` are ignored, as fsx's `--replay-ops` ignores them. Most ops have three numbers:
//! offset, length and the file size fsx believed in before the op (truncate: 0, new size, old
//! size; fsync: 0, 0, size); the two-range ops (`clone_range`, `dedupe_range`, `copy_range`,
//! `exchange_range`) have four: offset, length, destination, size (or three when skipped: fsx
//! re-logs an op it skips while replaying without its destination). `skip` marks an op fsx drew
//! but did not run; `*` marks the op that overlapped the first bad byte and means nothing here.
//!
//! # Translation
//!
//! The logged size before every op is checked against the sizes the earlier ops make, starting
//! from an empty file: a log that is only fsx's last 10000 ops of a longer run, or that was edited
//! inconsistently, is refused at the first line where they disagree. See README ("Importing fsx
//! logs") for the op table, the flags of `--args` that matter and how the geometry is chosen.

use reference::geometry::{
    GeometryError, BLOCK_SIZES, FOLIO_PAGES, MAX_FILE_SIZE_LIMIT, PAGE_SIZE,
};
use reference::{Config, FileSpec, Geometry, Input, Op, Policy};
use std::fmt;

/// The only file of an imported run: fsx works on one file.
const FILE: u8 = 0;
/// fsx's default `-l` (maximum file length).
const FSX_DEFAULT_MAXFILELEN: u64 = 256 << 10;
/// Block sizes tried for a log with O_DIRECT ops, largest first.
const BLOCK_CHOICES: [u32; 3] = [4096, 1024, 512];
/// The block size of a log without O_DIRECT ops: mkfs.xfs's default.
const DEFAULT_BLOCK: u32 = 4096;
/// Spare blocks on top of what the file can ever hold.
const SPARE_BLOCKS: u64 = 64;

/// An import error: the 1-based log line (0: the command line) and what is wrong.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FsxError {
    /// The 1-based log line; 0 when the problem is in `--args` or the importer's options.
    pub line: usize,
    /// What is wrong.
    pub kind: FsxErrorKind,
}

/// What is wrong with a log line, the fsx arguments or the options.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FsxErrorKind {
    /// The op name is not one fsx writes.
    UnknownOp(String),
    /// The line ends before a required field.
    MissingArgument {
        /// The op name (or `skip`).
        op: String,
        /// The missing field.
        what: &'static str,
    },
    /// A token that should be a number is not one (C `strtoul` base 0: `0x` hex, `0` octal,
    /// decimal).
    BadNumber(String),
    /// A trailing token that is not one of fsx's flags.
    UnknownFlag {
        /// The op name.
        op: String,
        /// The token.
        flag: String,
    },
    /// A known flag on an op it means nothing for (fsx never writes that).
    FlagNotAllowed {
        /// The op name.
        op: String,
        /// The flag.
        flag: &'static str,
    },
    /// An op wbfuzz has no analogue for, without `--skip-unsupported`.
    Unsupported(String),
    /// The logged file size before the op is not what the earlier ops make.
    SizeMismatch {
        /// The size the log records.
        logged: u64,
        /// The size the earlier lines make (from an empty file).
        expected: u64,
    },
    /// An offset or length is not a multiple of the boundary an fsx flag asks for.
    Misaligned {
        /// The op name.
        op: String,
        /// Which number (`offset`, `length`, `size`).
        what: &'static str,
        /// Its value.
        value: u64,
        /// The fsx flag (`-r`, `-w`, `-t`).
        flag: &'static str,
        /// The boundary.
        boundary: u64,
    },
    /// An O_DIRECT op not aligned to the chosen block size (or to 512, the smallest).
    DirectUnaligned {
        /// The op name.
        op: String,
        /// The offset or length at fault.
        value: u64,
        /// The block size it must be a multiple of.
        block: u32,
    },
    /// `offset + length` does not fit in 64 bits.
    Overflow,
    /// The op reaches past the largest maximum file size a geometry may have.
    TooLarge {
        /// The end of the op's range.
        end: u64,
    },
    /// A problem in `--args` (line 0).
    Args(ArgsError),
    /// The importer's geometry options do not make a valid geometry (line 0).
    Geometry(GeometryError),
}

/// What is wrong with the fsx command line given as `--args`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ArgsError {
    /// An option fsx does not have.
    UnknownOption(String),
    /// An option that needs a value is last.
    MissingValue(char),
    /// A value that is not a number in fsx's `getnum` form (base 0, optional b/k/m/w suffix).
    BadValue {
        /// The option.
        option: char,
        /// The value.
        value: String,
    },
    /// A combination the log cannot be translated under.
    Unsupported(&'static str),
}

impl fmt::Display for ArgsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ArgsError::UnknownOption(o) => write!(f, "`{o}` is not an fsx option"),
            ArgsError::MissingValue(c) => write!(f, "`-{c}` needs a value"),
            ArgsError::BadValue { option, value } => {
                write!(f, "`-{option} {value}`: not a number fsx accepts")
            }
            ArgsError::Unsupported(why) => f.write_str(why),
        }
    }
}

impl fmt::Display for FsxErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use FsxErrorKind::*;
        match self {
            UnknownOp(op) => write!(f, "unknown fsx operation `{op}`"),
            MissingArgument { op, what } => write!(f, "`{op}` is missing its {what}"),
            BadNumber(t) => write!(f, "`{t}` is not a number"),
            UnknownFlag { op, flag } => write!(f, "unknown flag `{flag}` on `{op}`"),
            FlagNotAllowed { op, flag } => write!(f, "flag `{flag}` means nothing on `{op}`"),
            Unsupported(op) => write!(
                f,
                "`{op}` has no wbfuzz analogue (use --skip-unsupported to drop such ops)"
            ),
            SizeMismatch { logged, expected } => write!(
                f,
                "the log says the file was {logged:#x} bytes here, the lines before make \
                 {expected:#x}: not a whole fsx log from an empty file (fsx keeps only its last \
                 10000 ops), or the --args differ from the run's"
            ),
            Misaligned {
                op,
                what,
                value,
                flag,
                boundary,
            } => write!(
                f,
                "`{op}` {what} {value:#x} is not a multiple of {flag} {boundary}: the log does \
                 not come from these --args"
            ),
            DirectUnaligned { op, value, block } => write!(
                f,
                "O_DIRECT `{op}` has {value:#x}, not a multiple of the block size {block}"
            ),
            Overflow => f.write_str("offset + length overflows"),
            TooLarge { end } => write!(
                f,
                "the op reaches {end:#x}, past the largest max-size wbfuzz allows \
                 ({MAX_FILE_SIZE_LIMIT:#x})"
            ),
            Args(e) => write!(f, "{e}"),
            Geometry(e) => write!(f, "bad geometry: {e}"),
        }
    }
}

impl fmt::Display for FsxError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.line, &self.kind) {
            (0, FsxErrorKind::Args(_)) => write!(f, "--args: {}", self.kind),
            (0, _) => write!(f, "options: {}", self.kind),
            (n, k) => write!(f, "line {n}: {k}"),
        }
    }
}

impl std::error::Error for FsxError {}

fn err<T>(line: usize, kind: FsxErrorKind) -> Result<T, FsxError> {
    Err(FsxError { line, kind })
}

/// An fsx operation as its log names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FsxOp {
    /// `read`
    Read,
    /// `read_dontcache`
    ReadDontcache,
    /// `write`
    Write,
    /// `write_dontcache`
    WriteDontcache,
    /// `write_atomic`
    WriteAtomic,
    /// `mapread`
    MapRead,
    /// `mapwrite`
    MapWrite,
    /// `truncate`
    Truncate,
    /// `fallocate`
    Fallocate,
    /// `punch_hole`
    PunchHole,
    /// `zero_range`
    ZeroRange,
    /// `collapse_range`
    CollapseRange,
    /// `insert_range`
    InsertRange,
    /// `clone_range`
    CloneRange,
    /// `dedupe_range`
    DedupeRange,
    /// `copy_range`
    CopyRange,
    /// `exchange_range`
    ExchangeRange,
    /// `fsync`
    Fsync,
}

impl FsxOp {
    /// Every op, for the name table.
    pub const ALL: [FsxOp; 18] = [
        FsxOp::Read,
        FsxOp::ReadDontcache,
        FsxOp::Write,
        FsxOp::WriteDontcache,
        FsxOp::WriteAtomic,
        FsxOp::MapRead,
        FsxOp::MapWrite,
        FsxOp::Truncate,
        FsxOp::Fallocate,
        FsxOp::PunchHole,
        FsxOp::ZeroRange,
        FsxOp::CollapseRange,
        FsxOp::InsertRange,
        FsxOp::CloneRange,
        FsxOp::DedupeRange,
        FsxOp::CopyRange,
        FsxOp::ExchangeRange,
        FsxOp::Fsync,
    ];

    /// The name fsx writes in its log.
    pub fn name(self) -> &'static str {
        match self {
            FsxOp::Read => "read",
            FsxOp::ReadDontcache => "read_dontcache",
            FsxOp::Write => "write",
            FsxOp::WriteDontcache => "write_dontcache",
            FsxOp::WriteAtomic => "write_atomic",
            FsxOp::MapRead => "mapread",
            FsxOp::MapWrite => "mapwrite",
            FsxOp::Truncate => "truncate",
            FsxOp::Fallocate => "fallocate",
            FsxOp::PunchHole => "punch_hole",
            FsxOp::ZeroRange => "zero_range",
            FsxOp::CollapseRange => "collapse_range",
            FsxOp::InsertRange => "insert_range",
            FsxOp::CloneRange => "clone_range",
            FsxOp::DedupeRange => "dedupe_range",
            FsxOp::CopyRange => "copy_range",
            FsxOp::ExchangeRange => "exchange_range",
            FsxOp::Fsync => "fsync",
        }
    }

    fn from_name(s: &str) -> Option<FsxOp> {
        FsxOp::ALL.into_iter().find(|o| o.name() == s)
    }

    /// Ops with a destination: offset, length, destination, size.
    fn has_dest(self) -> bool {
        matches!(
            self,
            FsxOp::CloneRange | FsxOp::DedupeRange | FsxOp::CopyRange | FsxOp::ExchangeRange
        )
    }

    /// Ops wbfuzz has no analogue for.
    fn unsupported(self) -> bool {
        matches!(
            self,
            FsxOp::CollapseRange
                | FsxOp::InsertRange
                | FsxOp::CloneRange
                | FsxOp::DedupeRange
                | FsxOp::CopyRange
                | FsxOp::ExchangeRange
        )
    }

    fn is_write(self) -> bool {
        matches!(
            self,
            FsxOp::Write | FsxOp::WriteDontcache | FsxOp::WriteAtomic
        )
    }

    fn is_read(self) -> bool {
        matches!(self, FsxOp::Read | FsxOp::ReadDontcache)
    }
}

/// One parsed log line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// The 1-based line number.
    pub line: usize,
    /// The op.
    pub op: FsxOp,
    /// `skip`: fsx drew the op but did not run it.
    pub skipped: bool,
    /// Offset (truncate: 0).
    pub off: u64,
    /// Length (truncate: the new size).
    pub len: u64,
    /// Destination of the two-range ops, else 0.
    pub dest: u64,
    /// The file size fsx recorded before the op.
    pub size: u64,
    /// `keep_size`.
    pub keep_size: bool,
    /// `close_open`: fsx closed the file and dropped the caches after the op.
    pub close_open: bool,
    /// `unshare` (fallocate only).
    pub unshare: bool,
}

/// Parses a number as C's `strtoul(s, &end, 0)` must consume whole: `0x` hex, `0` octal, decimal.
fn c_number(t: &str) -> Option<u64> {
    let (digits, radix) = if let Some(h) = t.strip_prefix("0x").or_else(|| t.strip_prefix("0X")) {
        (h, 16)
    } else if t.len() > 1 && t.starts_with('0') {
        (&t[1..], 8)
    } else {
        (t, 10)
    };
    if digits.is_empty() || !digits.chars().all(|c| c.is_digit(radix)) {
        return None;
    }
    u64::from_str_radix(digits, radix).ok()
}

/// The next token of log line `line` (op `op`) as a number, `what` naming it in errors.
fn next_number<'a>(
    toks: &mut std::iter::Peekable<impl Iterator<Item = &'a str>>,
    line: usize,
    op: &str,
    what: &'static str,
) -> Result<u64, FsxError> {
    let t = toks.next().ok_or_else(|| FsxError {
        line,
        kind: FsxErrorKind::MissingArgument {
            op: op.to_string(),
            what,
        },
    })?;
    c_number(t).ok_or_else(|| FsxError {
        line,
        kind: FsxErrorKind::BadNumber(t.to_string()),
    })
}

/// Reads an fsx op log (see the module docs). Never panics.
///
/// # Errors
///
/// The first malformed line.
pub fn parse_log(text: &str) -> Result<Vec<Entry>, FsxError> {
    let mut out = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = i + 1;
        let mut toks = raw
            .split([' ', '\t', '\r', '\n'])
            .filter(|t| !t.is_empty())
            .peekable();
        let Some(&first) = toks.peek() else { continue };
        if first.starts_with('#') {
            continue;
        }
        let mut skipped = false;
        if first == "skip" {
            skipped = true;
            toks.next();
        }
        let Some(name) = toks.next() else {
            return err(
                line,
                FsxErrorKind::MissingArgument {
                    op: "skip".into(),
                    what: "operation",
                },
            );
        };
        let op = FsxOp::from_name(name).ok_or_else(|| FsxError {
            line,
            kind: FsxErrorKind::UnknownOp(name.to_string()),
        })?;
        let off = next_number(&mut toks, line, name, "offset")?;
        let len = next_number(&mut toks, line, name, "length")?;
        let (dest, size) = if !op.has_dest() {
            (0, next_number(&mut toks, line, name, "file size")?)
        } else {
            let third = next_number(
                &mut toks,
                line,
                name,
                if skipped { "file size" } else { "destination" },
            )?;
            // fsx re-logs an op it skips while replaying with three numbers, dropping the
            // destination: a skipped two-range op may have three.
            let fourth_is_number = toks.peek().is_some_and(|t| c_number(t).is_some());
            if skipped && !fourth_is_number {
                (0, third)
            } else {
                (third, next_number(&mut toks, line, name, "file size")?)
            }
        };
        let mut e = Entry {
            line,
            op,
            skipped,
            off,
            len,
            dest,
            size,
            keep_size: false,
            close_open: false,
            unshare: false,
        };
        for t in toks {
            let not_here = |flag| FsxError {
                line,
                kind: FsxErrorKind::FlagNotAllowed {
                    op: name.to_string(),
                    flag,
                },
            };
            match t {
                "keep_size" if matches!(op, FsxOp::Fallocate | FsxOp::ZeroRange) => {
                    e.keep_size = true
                }
                "keep_size" => return Err(not_here("keep_size")),
                "unshare" if op == FsxOp::Fallocate => e.unshare = true,
                "unshare" => return Err(not_here("unshare")),
                "close_open" => e.close_open = true,
                "*" => {}
                _ => {
                    return err(
                        line,
                        FsxErrorKind::UnknownFlag {
                            op: name.to_string(),
                            flag: t.to_string(),
                        },
                    )
                }
            }
        }
        out.push(e);
    }
    Ok(out)
}

/// The parts of an fsx command line that change how its log translates.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FsxArgs {
    /// `-Z`: reads and writes are O_DIRECT.
    pub o_direct: bool,
    /// `-r`: read offsets (and O_DIRECT lengths) are multiples of this.
    pub readbdy: u64,
    /// `-w`: write offsets (and O_DIRECT lengths) are multiples of this.
    pub writebdy: u64,
    /// `-t`: truncate sizes are multiples of this.
    pub truncbdy: u64,
    /// `-l`: the largest file fsx makes.
    pub maxfilelen: u64,
    /// `-b`: the first op fsx really runs (the ones before it are only simulated).
    pub begin: u64,
    /// `-y`: fsync after every write.
    pub fsync_writes: bool,
    /// `-x`: XFS space reservation of `maxfilelen` bytes before the first op.
    pub prealloc: bool,
    /// `-k`: the file existed (not truncated at open).
    pub keep_file: bool,
    /// `-L`: fsx lite (existing file, zeroed at start, no size changes).
    pub lite: bool,
    /// `-X`: read the whole file back after every op.
    pub check_file: bool,
    /// `-i`: integrity mode (fsync ops; dm-log-writes marks).
    pub integrity: bool,
    /// `-e 1`: pollute the EOF page before size changes.
    pub pollute_eof: bool,
    /// `-f`: msync(MS_INVALIDATE) after every write.
    pub flush: bool,
}

impl Default for FsxArgs {
    fn default() -> Self {
        FsxArgs {
            o_direct: false,
            readbdy: 1,
            writebdy: 1,
            truncbdy: 1,
            maxfilelen: FSX_DEFAULT_MAXFILELEN,
            begin: 1,
            fsync_writes: false,
            prealloc: false,
            keep_file: false,
            lite: false,
            check_file: false,
            integrity: false,
            pollute_eof: false,
            flush: false,
        }
    }
}

/// fsx's `getnum`: a base-0 number with an optional `b` (×512), `k`, `m` or `w` (×4) suffix.
fn getnum(option: char, value: &str) -> Result<u64, ArgsError> {
    let bad = || ArgsError::BadValue {
        option,
        value: value.to_string(),
    };
    let (num, mult) = match value.chars().last() {
        Some('b' | 'B') => (&value[..value.len() - 1], 512),
        Some('k' | 'K') => (&value[..value.len() - 1], 1024),
        Some('m' | 'M') => (&value[..value.len() - 1], 1 << 20),
        Some('w' | 'W') => (&value[..value.len() - 1], 4),
        _ => (value, 1),
    };
    c_number(num)
        .and_then(|n| n.checked_mul(mult))
        .ok_or_else(bad)
}

/// fsx's short options that take a value.
const WITH_VALUE: &str = "bcegijlmoprstwDNPS";
/// fsx's short options without one.
const FLAGS: &str = "0adfhknquxyABEFJKHzCILORUWXZ";

impl FsxArgs {
    /// Reads an fsx command line (split at white space; the file name and the long options are
    /// accepted and ignored).
    ///
    /// # Errors
    ///
    /// An option fsx does not have, a missing or malformed value, or a combination that cannot
    /// be translated (`-b` with `-i`: fsx does not log the fsyncs it simulates).
    pub fn parse(args: &str) -> Result<FsxArgs, ArgsError> {
        let mut a = FsxArgs::default();
        let mut toks = args.split_whitespace();
        while let Some(t) = toks.next() {
            if let Some(long) = t.strip_prefix("--") {
                let name = long.split('=').next().unwrap_or("");
                match name {
                    "record-ops" | "duration" => {}
                    "replay-ops" => {
                        if !long.contains('=') && toks.next().is_none() {
                            return Err(ArgsError::UnknownOption(t.to_string()));
                        }
                    }
                    _ => return Err(ArgsError::UnknownOption(t.to_string())),
                }
                continue;
            }
            let Some(opts) = t.strip_prefix('-').filter(|o| !o.is_empty()) else {
                continue; // the file name
            };
            for (i, c) in opts.char_indices() {
                if FLAGS.contains(c) {
                    a.flag(c);
                } else if WITH_VALUE.contains(c) {
                    let rest = &opts[i + c.len_utf8()..];
                    let value = if rest.is_empty() {
                        toks.next().ok_or(ArgsError::MissingValue(c))?
                    } else {
                        rest
                    };
                    a.value(c, value)?;
                    break;
                } else {
                    return Err(ArgsError::UnknownOption(format!("-{c}")));
                }
            }
        }
        if a.begin > 1 && a.integrity {
            return Err(ArgsError::Unsupported(
                "-b with -i: fsx does not log the fsyncs of the ops it simulates",
            ));
        }
        Ok(a)
    }

    fn flag(&mut self, c: char) {
        match c {
            'Z' => self.o_direct = true,
            'y' => self.fsync_writes = true,
            'x' => self.prealloc = true,
            'k' => self.keep_file = true,
            'L' => self.lite = true,
            'X' => self.check_file = true,
            'f' => self.flush = true,
            // The rest pick which ops fsx draws, how it issues IO or what it prints: the log
            // already shows what ran.
            _ => {}
        }
    }

    fn value(&mut self, c: char, v: &str) -> Result<(), ArgsError> {
        let positive = |n: u64| {
            if n == 0 {
                Err(ArgsError::BadValue {
                    option: c,
                    value: v.to_string(),
                })
            } else {
                Ok(n)
            }
        };
        match c {
            'r' => self.readbdy = positive(getnum(c, v)?)?,
            'w' => self.writebdy = positive(getnum(c, v)?)?,
            't' => self.truncbdy = positive(getnum(c, v)?)?,
            'l' => self.maxfilelen = positive(getnum(c, v)?)?,
            'b' => self.begin = positive(getnum(c, v)?)?,
            'e' => self.pollute_eof = getnum(c, v)? != 0,
            'i' => self.integrity = true,
            // -m's value is start:end, -P a directory, -j an id, -g a character: not numbers.
            'm' | 'P' | 'j' | 'g' => {}
            _ => {
                getnum(c, v)?;
            }
        }
        Ok(())
    }
}

/// Importer options beyond the fsx command line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImportOptions {
    /// The fsx command line of the run.
    pub args: FsxArgs,
    /// Drop ops without a wbfuzz analogue (noted in the script) instead of failing.
    pub skip_unsupported: bool,
    /// Block size; default: 4096, or with O_DIRECT ops the largest that divides them all.
    pub block_size: Option<u32>,
    /// Folio size in pages (default 1).
    pub folio_pages: u32,
    /// Capacity in blocks; default: what the file can hold at max-size, plus 64.
    pub capacity: Option<u64>,
}

impl Default for ImportOptions {
    fn default() -> Self {
        ImportOptions {
            args: FsxArgs::default(),
            skip_unsupported: false,
            block_size: None,
            folio_pages: 1,
            capacity: None,
        }
    }
}

/// An imported log: the input and what the translation wants its reader to know.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Imported {
    /// The wbfuzz input: one thread, one plain file.
    pub input: Input,
    /// One line each: how the geometry was chosen, approximations, dropped ops.
    pub notes: Vec<String>,
}

impl Imported {
    /// The script: the notes as `#` comments, then the input as [`crate::input::script::print`]
    /// prints it.
    pub fn script(&self, source: &str) -> String {
        let mut s = format!("# imported by wbfuzz import-fsx from {source}\n");
        for n in &self.notes {
            s.push_str("# ");
            s.push_str(n);
            s.push('\n');
        }
        s.push_str(&crate::input::script::print(&self.input));
        s
    }
}

/// A translated op and the log line it comes from (0: the command line).
struct Placed {
    line: usize,
    op: Op,
    /// Whether it is an O_DIRECT op (its range must be block aligned).
    direct: bool,
}

/// The translation state: the ops so far and the two file sizes.
struct Translator<'a> {
    args: &'a FsxArgs,
    folio: u64,
    ops: Vec<Placed>,
    /// The size fsx believed in (checked against the log).
    fsx_size: u64,
    /// The size of the wbfuzz file (differs from `fsx_size` only after a dropped op).
    wb_size: u64,
    notes: Vec<String>,
}

impl Translator<'_> {
    fn push(&mut self, line: usize, op: Op) {
        let direct = matches!(op, Op::DirectRead { .. } | Op::DirectWrite { .. });
        self.ops.push(Placed { line, op, direct });
    }

    /// One op per folio overlapping `[off, off+len)`, each clipped to its folio.
    fn per_folio(&mut self, line: usize, off: u64, len: u64, make: fn(u64, u64) -> Op) {
        let end = off + len;
        let mut at = off;
        while at < end {
            let folio_end = (at / self.folio + 1) * self.folio;
            let n = folio_end.min(end) - at;
            self.push(line, make(at, n));
            at += n;
        }
    }

    /// fsx `-X`: read the whole file back, then fault in its last page.
    fn check_contents(&mut self, line: usize) {
        let mut size = self.wb_size;
        if self.args.o_direct {
            size -= size % self.args.readbdy;
        }
        if size == 0 {
            return;
        }
        let read = if self.args.o_direct {
            Op::DirectRead {
                file: FILE,
                off: 0,
                len: size,
            }
        } else {
            Op::Read {
                file: FILE,
                off: 0,
                len: size,
            }
        };
        self.push(line, read);
        let mut map_off = size - size % PAGE_SIZE;
        if map_off == size {
            map_off -= PAGE_SIZE;
        }
        self.per_folio(line, map_off, size - map_off, |off, len| Op::MmapRead {
            file: FILE,
            off,
            len,
        });
    }

    fn check_aligned(
        &self,
        e: &Entry,
        what: &'static str,
        value: u64,
        flag: &'static str,
        boundary: u64,
    ) -> Result<(), FsxError> {
        if !value.is_multiple_of(boundary) {
            return err(
                e.line,
                FsxErrorKind::Misaligned {
                    op: e.op.name().to_string(),
                    what,
                    value,
                    flag,
                    boundary,
                },
            );
        }
        Ok(())
    }

    /// Checks the op against the boundaries of `-r`, `-w`, `-t` (fsx applies them before it logs).
    fn check_boundaries(&self, e: &Entry) -> Result<(), FsxError> {
        let a = self.args;
        if e.op.is_read() || e.op == FsxOp::MapRead {
            self.check_aligned(e, "offset", e.off, "-r", a.readbdy)?;
            if a.o_direct && e.op.is_read() {
                self.check_aligned(e, "length", e.len, "-r", a.readbdy)?;
            }
        }
        if e.op.is_write() || e.op == FsxOp::MapWrite {
            self.check_aligned(e, "offset", e.off, "-w", a.writebdy)?;
            if a.o_direct && e.op.is_write() {
                self.check_aligned(e, "length", e.len, "-w", a.writebdy)?;
            }
        }
        if e.op == FsxOp::Truncate {
            self.check_aligned(e, "size", e.len, "-t", a.truncbdy)?;
        }
        Ok(())
    }

    /// The size fsx computes after a run op (its own model, which is Linux's).
    fn fsx_size_after(&self, e: &Entry) -> u64 {
        let end = e.off + e.len;
        match e.op {
            FsxOp::Write | FsxOp::WriteDontcache | FsxOp::WriteAtomic | FsxOp::MapWrite => {
                self.fsx_size.max(end)
            }
            FsxOp::Truncate => e.len,
            FsxOp::Fallocate | FsxOp::ZeroRange if !e.keep_size => self.fsx_size.max(end),
            FsxOp::CollapseRange => self.fsx_size.saturating_sub(e.len),
            FsxOp::InsertRange => self.fsx_size.saturating_add(e.len),
            FsxOp::CloneRange | FsxOp::CopyRange => self.fsx_size.max(e.dest + e.len),
            _ => self.fsx_size,
        }
    }

    /// Translates one op fsx ran.
    fn run_op(&mut self, e: &Entry) {
        let (line, off, len) = (e.line, e.off, e.len);
        let direct = self.args.o_direct;
        match e.op {
            FsxOp::Read | FsxOp::ReadDontcache => {
                let op = if direct {
                    Op::DirectRead {
                        file: FILE,
                        off,
                        len,
                    }
                } else {
                    Op::Read {
                        file: FILE,
                        off,
                        len,
                    }
                };
                self.push(line, op);
            }
            FsxOp::Write | FsxOp::WriteDontcache | FsxOp::WriteAtomic => {
                let op = if direct {
                    Op::DirectWrite {
                        file: FILE,
                        off,
                        len,
                    }
                } else {
                    Op::Write {
                        file: FILE,
                        off,
                        len,
                        sync: false,
                    }
                };
                self.push(line, op);
                if self.args.fsync_writes {
                    self.push(line, Op::Fsync { file: FILE });
                }
            }
            FsxOp::MapRead => self.per_folio(line, off, len, |off, len| Op::MmapRead {
                file: FILE,
                off,
                len,
            }),
            FsxOp::MapWrite => {
                if len == 0 {
                    return;
                }
                // fsx extends the file with ftruncate before it maps past EOF.
                if off + len > self.wb_size {
                    self.push(
                        line,
                        Op::Truncate {
                            file: FILE,
                            size: off + len,
                        },
                    );
                }
                self.per_folio(line, off, len, |off, len| Op::MmapWrite {
                    file: FILE,
                    off,
                    len,
                });
                // msync(MS_SYNC) of the mapping, which starts at the page of `off`.
                let start = off - off % PAGE_SIZE;
                let folios = (off + len).div_ceil(self.folio) - start / self.folio;
                self.push(
                    line,
                    Op::Flush {
                        file: FILE,
                        off: start,
                        len: off + len - start,
                    },
                );
                self.push(
                    line,
                    Op::CompleteIo {
                        n: u32::try_from(folios).unwrap_or(u32::MAX),
                    },
                );
            }
            FsxOp::Truncate => self.push(
                line,
                Op::Truncate {
                    file: FILE,
                    size: len,
                },
            ),
            FsxOp::Fallocate => self.push(
                line,
                Op::Fallocate {
                    file: FILE,
                    off,
                    len,
                    keep_size: e.keep_size,
                },
            ),
            FsxOp::PunchHole => self.push(
                line,
                Op::PunchHole {
                    file: FILE,
                    off,
                    len,
                },
            ),
            FsxOp::ZeroRange => self.push(
                line,
                Op::ZeroRange {
                    file: FILE,
                    off,
                    len,
                    keep_size: e.keep_size,
                },
            ),
            FsxOp::Fsync => self.push(line, Op::Fsync { file: FILE }),
            FsxOp::CollapseRange
            | FsxOp::InsertRange
            | FsxOp::CloneRange
            | FsxOp::DedupeRange
            | FsxOp::CopyRange
            | FsxOp::ExchangeRange => {}
        }
        self.wb_size = self.wb_size_after(e);
    }

    /// The wbfuzz file's size after a translated op (the same rules as fsx's, on `wb_size`).
    fn wb_size_after(&self, e: &Entry) -> u64 {
        let end = e.off + e.len;
        match e.op {
            FsxOp::Write | FsxOp::WriteDontcache | FsxOp::WriteAtomic | FsxOp::MapWrite => {
                self.wb_size.max(end)
            }
            FsxOp::Truncate => e.len,
            FsxOp::Fallocate | FsxOp::ZeroRange if !e.keep_size => self.wb_size.max(end),
            _ => self.wb_size,
        }
    }

    /// Whether fsx ran its `-X` check after this skipped op: it does when the op gave up inside
    /// its own function (zero length, past EOF), not when the op kind was switched off.
    fn skip_was_checked(e: &Entry) -> bool {
        match e.op {
            FsxOp::Read
            | FsxOp::ReadDontcache
            | FsxOp::Write
            | FsxOp::WriteDontcache
            | FsxOp::MapRead
            | FsxOp::MapWrite => true,
            FsxOp::PunchHole => e.len == 0 || e.off >= e.size,
            FsxOp::ZeroRange | FsxOp::Fallocate => e.len == 0,
            _ => false,
        }
    }
}

/// Translates a log under `opts` (see README "Importing fsx logs").
///
/// # Errors
///
/// The first problem, with its log line ([`FsxError`]).
pub fn import(log: &str, opts: &ImportOptions) -> Result<Imported, FsxError> {
    let geometry_error = |e| FsxError {
        line: 0,
        kind: FsxErrorKind::Geometry(e),
    };
    if !FOLIO_PAGES.contains(&opts.folio_pages) {
        return Err(geometry_error(GeometryError::FolioPages(opts.folio_pages)));
    }
    if let Some(b) = opts.block_size.filter(|b| !BLOCK_SIZES.contains(b)) {
        return Err(geometry_error(GeometryError::BlockSize(b)));
    }
    let entries = parse_log(log)?;
    let args = &opts.args;
    let folio = u64::from(opts.folio_pages) * PAGE_SIZE;
    let mut t = Translator {
        args,
        folio,
        ops: Vec::new(),
        fsx_size: 0,
        wb_size: 0,
        notes: Vec::new(),
    };
    // A file fsx did not create: stand in a fully written, clean, uncached file of the size
    // the first line records (its layout and contents are not in the log).
    if args.keep_file || args.lite {
        let (line, size) = entries.first().map_or((0, 0), |e| (e.line, e.size));
        if size > MAX_FILE_SIZE_LIMIT {
            return err(line, FsxErrorKind::TooLarge { end: size });
        }
        if size > 0 {
            t.push(
                0,
                Op::Write {
                    file: FILE,
                    off: 0,
                    len: size,
                    sync: false,
                },
            );
            t.push(0, Op::Fsync { file: FILE });
            t.push(0, Op::EvictInode { file: FILE });
        }
        t.fsx_size = size;
        t.wb_size = size;
        t.notes.push(format!(
            "-k/-L: the existing file is stood in for by a written, clean file of {size:#x} bytes"
        ));
    }
    if args.prealloc {
        let len = if args.keep_file || args.lite {
            t.fsx_size
        } else {
            args.maxfilelen
        };
        if len > 0 {
            t.push(
                0,
                Op::Fallocate {
                    file: FILE,
                    off: 0,
                    len,
                    keep_size: true,
                },
            );
        }
    }
    // fsx lite zeroes the whole file with one write after the reservation, before its first op.
    if args.lite && t.fsx_size > 0 {
        let len = t.fsx_size;
        t.push(
            0,
            Op::Write {
                file: FILE,
                off: 0,
                len,
                sync: false,
            },
        );
    }
    if args.pollute_eof {
        t.notes.push(
            "-e 1: fsx's writes past EOF before size changes are not reproduced (wbfuzz faults \
             stop at EOF)"
                .into(),
        );
    }
    if args.flush {
        t.notes
            .push("-f: msync(MS_INVALIDATE) after writes is a no-op on Linux; left out".into());
    }
    let simulated = args.begin - 1;
    let mut dropped: Vec<String> = Vec::new();
    for (index, e) in entries.iter().enumerate() {
        let Some(end) = e.off.checked_add(e.len) else {
            return err(e.line, FsxErrorKind::Overflow);
        };
        if e.op.has_dest() && e.dest.checked_add(e.len).is_none() {
            return err(e.line, FsxErrorKind::Overflow);
        }
        if e.size != t.fsx_size {
            return err(
                e.line,
                FsxErrorKind::SizeMismatch {
                    logged: e.size,
                    expected: t.fsx_size,
                },
            );
        }
        let call = index as u64 + 1;
        let real = call > simulated;
        // fsx writes its simulated image to the file just before the first real op.
        if simulated > 0 && call == simulated + 1 && t.fsx_size > 0 {
            t.push(
                e.line,
                Op::Write {
                    file: FILE,
                    off: 0,
                    len: t.fsx_size,
                    sync: false,
                },
            );
            t.wb_size = t.fsx_size;
        }
        if e.skipped {
            if real && args.check_file && Translator::skip_was_checked(e) {
                t.check_contents(e.line);
            }
        } else {
            t.check_boundaries(e)?;
            if end > MAX_FILE_SIZE_LIMIT && !e.op.unsupported() {
                return err(e.line, FsxErrorKind::TooLarge { end });
            }
            if !real {
                // Simulated: only its effect on the size matters (the image write stands in).
            } else if e.op.unsupported() {
                if !opts.skip_unsupported {
                    return err(e.line, FsxErrorKind::Unsupported(e.op.name().to_string()));
                }
                dropped.push(format!("line {} {}", e.line, e.op.name()));
            } else {
                t.run_op(e);
                if args.check_file {
                    t.check_contents(e.line);
                }
            }
            t.fsx_size = t.fsx_size_after(e);
        }
        if real && e.close_open {
            t.push(e.line, Op::EvictInode { file: FILE });
        }
    }
    if !dropped.is_empty() {
        const SHOWN: usize = 20;
        let more = dropped.len().saturating_sub(SHOWN);
        dropped.truncate(SHOWN);
        t.notes.push(format!(
            "--skip-unsupported dropped {} op{} (later sizes may differ from fsx's): {}{}",
            dropped.len() + more,
            if dropped.len() + more == 1 { "" } else { "s" },
            dropped.join(", "),
            if more > 0 {
                format!(" and {more} more")
            } else {
                String::new()
            },
        ));
    }
    let geometry = choose_geometry(&mut t, opts)?;
    let ops = t.ops.into_iter().map(|p| p.op).collect();
    Ok(Imported {
        input: Input {
            config: Config {
                geometry,
                policy: Policy::KeepDirty,
                files: vec![FileSpec::default()],
            },
            threads: vec![ops],
            schedule: Vec::new(),
        },
        notes: t.notes,
    })
}

/// The largest end of any translated op's range (truncate: its size).
fn op_end(op: &Op) -> u64 {
    let mut op = op.clone();
    if let Op::Truncate { size, .. } = op {
        return size;
    }
    op.range_mut().map_or(0, |(off, len)| *off + *len)
}

/// Block size, max-size and capacity for the translated ops.
fn choose_geometry(t: &mut Translator<'_>, opts: &ImportOptions) -> Result<Geometry, FsxError> {
    let direct: Vec<(usize, u64, u64, &Op)> = t
        .ops
        .iter()
        .filter(|p| p.direct)
        .filter_map(|p| {
            let mut op = p.op.clone();
            let (off, len) = op.range_mut().map(|(o, l)| (*o, *l))?;
            Some((p.line, off, len, &p.op))
        })
        .collect();
    let divides = |b: u32| {
        direct
            .iter()
            .all(|&(_, off, len, _)| off % u64::from(b) == 0 && len % u64::from(b) == 0)
    };
    let block = match opts.block_size {
        Some(b) => b,
        None if direct.is_empty() => DEFAULT_BLOCK,
        None => BLOCK_CHOICES
            .into_iter()
            .find(|&b| divides(b))
            .unwrap_or(512),
    };
    if let Some(&(line, off, len, op)) = direct
        .iter()
        .find(|&&(_, off, len, _)| off % u64::from(block) != 0 || len % u64::from(block) != 0)
    {
        let value = if off % u64::from(block) != 0 {
            off
        } else {
            len
        };
        return err(
            line,
            FsxErrorKind::DirectUnaligned {
                op: op.kind().keyword().to_string(),
                value,
                block,
            },
        );
    }
    let largest = t.ops.iter().map(|p| op_end(&p.op)).max().unwrap_or(0);
    if largest > MAX_FILE_SIZE_LIMIT {
        // Only ops from the command line get here (log lines were checked one by one).
        return err(0, FsxErrorKind::TooLarge { end: largest });
    }
    let folio = u64::from(opts.folio_pages) * PAGE_SIZE;
    let want = largest.max(opts.args.maxfilelen.min(MAX_FILE_SIZE_LIMIT));
    let max_file_size = want.div_ceil(folio.max(1)).max(1) * folio;
    let capacity_blocks = opts
        .capacity
        .unwrap_or_else(|| max_file_size.div_ceil(u64::from(block).max(1)) + SPARE_BLOCKS);
    let geometry = Geometry {
        block_size: block,
        folio_pages: opts.folio_pages,
        capacity_blocks,
        max_file_size,
    };
    geometry.validate().map_err(|e| FsxError {
        line: 0,
        kind: FsxErrorKind::Geometry(e),
    })?;
    t.notes.insert(
        0,
        format!(
            "geometry: block {block} ({}), max-size {max_file_size:#x} (fsx -l {:#x}, largest \
             offset reached {largest:#x}, rounded up to a folio), capacity {capacity_blocks} \
             blocks ({})",
            match (opts.block_size, direct.is_empty()) {
                (Some(_), _) => "--block-size",
                (None, true) => "no O_DIRECT ops: mkfs.xfs's default",
                (None, false) => "the largest dividing every O_DIRECT op",
            },
            opts.args.maxfilelen,
            if opts.capacity.is_some() {
                "--capacity"
            } else {
                "the whole max-size plus 64: never ENOSPC"
            },
        ),
    );
    Ok(geometry)
}
