//! Replay of a concurrent run's commit log on the reference ([`Replayer`]).
//!
//! The implementation under test records a [`Step`] at every commit point (see
//! [`crate::step`]); the replayer applies those steps, in log order, with the reference's own
//! rules to the reference's own state, and refuses, with a typed [`ReplayError`], every step the
//! reference cannot take there. It derives every op's outcome itself; the caller compares those
//! with the implementation's.
//!
//! # What comes from the log, what is recomputed
//!
//! Taken from the log (what a concurrent run leaves open and only the implementation's
//! interleaving decides):
//! - the *order* of the commit points, `Begin` and `End` included;
//! - choices the interleaving makes among equally valid ones: which folio a flush writes back
//!   next, which in-flight IO a wait or `CompleteIo` completes (bounded, see below), when a
//!   folio is instantiated, how far a buffered write got before it stopped short.
//!
//! Recomputed by the reference, never believed: every argument check; every op's outcome and
//! every byte it returns; the range of folios each copy step must visit, one after another; the
//! state each step finds and leaves (what a writeback submits, what a completion writes, whether
//! an allocation fails); and every precondition a step's rule needs, checked against the
//! reference's state:
//! - a step lies between its op's `Begin` and `End`, before the op's `Op`, and belongs to that
//!   kind of op ([`ReplayError::Foreign`]);
//! - `WriteFolio` / `ReadFolio` name the next folio the reference computes for the op, and the
//!   op commits only after all of them ([`ReplayError::WrongFolio`], [`ReplayError::Missing`]);
//! - a copy into a folio (`WriteFolio`, a write fault) finds it idle: not under writeback;
//! - `Writeback` finds the folio cached, dirty and idle in the reference, inside the op's flush
//!   range; `Commit` is on a journaled-data file;
//! - `Complete` finds that IO in flight, of a folio the op waits for (its range; only ops that
//!   wait); a `CompleteIo` completes an IO with no more older IOs in flight than other ops could
//!   be holding, claimed (the FIFO order), and at most `n`;
//! - a direct write's cache drop finds the range clean and idle ([`ReplayError::DirtyAtDrop`]);
//! - a crash's landing steps (`Complete`, `Lost`, `Torn`) name the oldest IO in flight and the
//!   fate the crash's arguments choose for it, and its commit finds nothing left in flight
//!   ([`ReplayError::WrongLanding`], [`Missing::Landing`]);
//! - no step's rule completes an IO the log does not record ([`ReplayError::UnrecordedCompletion`],
//!   e.g. a punch that did not wait) or drops a folio with IO in flight
//!   ([`ReplayError::DroppedUnderWriteback`], e.g. an eviction that did not wait).
//!
//! Invariants: an op's state ([`OpState`]) is created from the run's op list and only changed
//! by the op's own steps; once a step is refused the replayer's state is unspecified (the caller
//! stops there).

use super::{CrashChoice, Landing, RefFs};
use crate::config::Config;
use crate::errno::Errno;
use crate::op::{FileId, Op, Outcome};
use crate::step::Step;
use std::collections::BTreeMap;
use std::fmt;

/// A required step an op committed without.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Missing {
    /// A buffered write's `WriteBegin`.
    WriteBegin,
    /// The copy step of this folio (`WriteFolio` or `ReadFolio`).
    Folio(u64),
    /// A short buffered write's `WritePunch`.
    WritePunch,
    /// The fault's folio is not cached: it was never instantiated (or was dropped since).
    Instantiate(u64),
    /// The op's `Op` step (it ended without committing).
    Commit,
    /// The op's `Begin` or `End` (the log ended with the op not run, or still running).
    BeginEnd,
    /// A crash's landing of the IO of this (file, folio), still in flight at its commit.
    Landing(FileId, u64),
}

/// A step the reference cannot take. Every variant names the step and the op it belongs to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ReplayError {
    /// The step names a sequence number that is no op of this run.
    UnknownOp { step: Step },
    /// A second `Begin`, or a step before its op's `Begin` or after its `End`.
    OutsideOp { step: Step, op: Op },
    /// A step after the op's `Op` step (its outcome was already decided there).
    AfterCommit { step: Step, op: Op },
    /// A step this kind of op never takes (a read that writes back, a commit on an ordinary
    /// file, a writeback on a journaled-data file, a second `WriteBegin`, ...).
    Foreign { step: Step, op: Op },
    /// A step of an op that had already failed or finished its work (a write's folio after it
    /// failed its reservation or stopped short).
    AfterFailure {
        step: Step,
        op: Op,
        outcome: Outcome,
    },
    /// A copy step (or an instantiation) for another folio than the one the reference computes
    /// next for the op (`None`: the op has no folio left to visit).
    WrongFolio {
        step: Step,
        op: Op,
        expected: Option<u64>,
    },
    /// The op committed (or ended) without a step it must take first.
    Missing {
        step: Step,
        op: Op,
        missing: Missing,
    },
    /// `WritePunch` from a write that did not stop short.
    NotShort { step: Step, op: Op },
    /// A copy out of a folio the reference does not have cached.
    NotCached {
        step: Step,
        op: Op,
        file: FileId,
        folio: u64,
    },
    /// An instantiation of a folio the reference has cached already.
    AlreadyCached {
        step: Step,
        op: Op,
        file: FileId,
        folio: u64,
    },
    /// A store into a folio whose blocks are under writeback (stable pages: it must wait).
    StoreUnderWriteback {
        step: Step,
        op: Op,
        file: FileId,
        blocks: Vec<u64>,
    },
    /// `Writeback` of a folio the reference has not cached or has no dirty block in.
    WritebackClean {
        step: Step,
        op: Op,
        file: FileId,
        folio: u64,
    },
    /// `Writeback` of a folio still under writeback (its previous IO was not waited for).
    WritebackBusy {
        step: Step,
        op: Op,
        file: FileId,
        folio: u64,
    },
    /// A writeback, commit or completion of a file or folio outside what the op works on.
    OutOfRange {
        step: Step,
        op: Op,
        file: FileId,
        folio: Option<u64>,
    },
    /// `Complete` of a folio the reference has no IO in flight for.
    NoIoInFlight {
        step: Step,
        op: Op,
        file: FileId,
        folio: u64,
    },
    /// A `CompleteIo` completion skipped more older in-flight IOs than the other running ops
    /// can be holding (each claims at most one at a time): not the oldest.
    OutOfOrder {
        step: Step,
        op: Op,
        older: usize,
        others: usize,
    },
    /// A `CompleteIo { n }` completed more than `n` IOs.
    TooManyCompletions { step: Step, op: Op },
    /// A direct write's cache drop finds dirty blocks: their data would be lost.
    DirtyAtDrop {
        step: Step,
        op: Op,
        file: FileId,
        blocks: Vec<u64>,
    },
    /// The reference's rule for this step would complete an IO the log does not record (the
    /// implementation did not wait where the reference must): file, folio of that IO.
    UnrecordedCompletion {
        step: Step,
        op: Op,
        file: FileId,
        folio: u64,
    },
    /// The step drops (or punches) a folio whose IO is in flight: file, folio of that IO.
    DroppedUnderWriteback {
        step: Step,
        op: Op,
        file: FileId,
        folio: u64,
    },
    /// A crash's landing step is not the one the reference takes next: the crash decides the
    /// oldest in-flight IO, as the op's arguments choose (`None`: no IO is in flight).
    WrongLanding {
        step: Step,
        op: Op,
        expected: Option<Step>,
    },
}

impl fmt::Display for Missing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Missing::WriteBegin => f.write_str("its write-begin"),
            Missing::Folio(k) => write!(f, "the copy of folio {k}"),
            Missing::WritePunch => f.write_str("the punch of its unused reservation"),
            Missing::Instantiate(k) => write!(f, "folio {k} in the cache"),
            Missing::Commit => f.write_str("its commit point"),
            Missing::BeginEnd => f.write_str("its begin and end"),
            Missing::Landing(file, folio) => {
                write!(f, "the landing of the IO of f{file} folio {folio}")
            }
        }
    }
}

impl fmt::Display for ReplayError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use ReplayError as E;
        match self {
            E::UnknownOp { step } => write!(f, "`{step}` names no op of this run"),
            E::OutsideOp { step, op } => write!(f, "`{step}` lies outside op `{op}`"),
            E::AfterCommit { step, op } => write!(f, "`{step}` comes after op `{op}` committed"),
            E::Foreign { step, op } => write!(f, "`{step}` is no step op `{op}` takes there"),
            E::AfterFailure { step, op, outcome } => {
                write!(f, "`{step}`: op `{op}` had already ended its work ({outcome})")
            }
            E::WrongFolio { step, op, expected } => match expected {
                Some(k) => write!(f, "`{step}`: op `{op}` visits folio {k} next"),
                None => write!(f, "`{step}`: op `{op}` has no folio left to visit"),
            },
            E::Missing { step, op, missing } => {
                write!(f, "`{step}`: op `{op}` got here without {missing}")
            }
            E::NotShort { step, op } => write!(f, "`{step}`: write `{op}` did not stop short"),
            E::NotCached { step, op, file, folio } => write!(
                f,
                "`{step}` (op `{op}`): f{file} folio {folio} is not cached in the reference"
            ),
            E::AlreadyCached { step, op, file, folio } => write!(
                f,
                "`{step}` (op `{op}`): f{file} folio {folio} is already cached in the reference"
            ),
            E::StoreUnderWriteback { step, op, file, blocks } => write!(
                f,
                "`{step}` (op `{op}`) stores into f{file} blocks {blocks:?} under writeback"
            ),
            E::WritebackClean { step, op, file, folio } => write!(
                f,
                "`{step}` (op `{op}`): f{file} folio {folio} is not cached dirty in the reference"
            ),
            E::WritebackBusy { step, op, file, folio } => write!(
                f,
                "`{step}` (op `{op}`): f{file} folio {folio} is still under writeback"
            ),
            E::OutOfRange { step, op, file, folio } => match folio {
                Some(k) => write!(f, "`{step}`: f{file} folio {k} is outside op `{op}`"),
                None => write!(f, "`{step}`: f{file} is outside op `{op}`"),
            },
            E::NoIoInFlight { step, op, file, folio } => write!(
                f,
                "`{step}` (op `{op}`): the reference has no IO in flight for f{file} folio {folio}"
            ),
            E::OutOfOrder { step, op, older, others } => write!(
                f,
                "`{step}` (op `{op}`): {older} older IOs in flight, only {others} other ops running"
            ),
            E::TooManyCompletions { step, op } => {
                write!(f, "`{step}`: op `{op}` completes more IOs than it asks for")
            }
            E::DirtyAtDrop { step, op, file, blocks } => write!(
                f,
                "`{step}` (op `{op}`): the cache drop finds f{file} blocks {blocks:?} dirty (their data would be lost)"
            ),
            E::UnrecordedCompletion { step, op, file, folio } => write!(
                f,
                "`{step}` (op `{op}`) must first wait for the IO of f{file} folio {folio}, which the log does not complete"
            ),
            E::DroppedUnderWriteback { step, op, file, folio } => write!(
                f,
                "`{step}` (op `{op}`) drops f{file} folio {folio} with its IO in flight"
            ),
            E::WrongLanding { step, op, expected } => match expected {
                Some(e) => write!(f, "`{step}`: crash `{op}` takes `{e}` next"),
                None => write!(f, "`{step}`: crash `{op}` finds no IO in flight"),
            },
        }
    }
}

impl std::error::Error for ReplayError {}

/// What the reference derived so far for one op.
#[derive(Clone, Debug)]
struct OpState {
    op: Op,
    begun: bool,
    ended: bool,
    /// Its `Op` step was replayed.
    committed: bool,
    /// The outcome, once decided (at the commit, or earlier by a failure).
    outcome: Option<Outcome>,
    /// Buffered write: `WriteBegin` replayed.
    write_begun: bool,
    /// Buffered read: its length is decided (at its first step).
    sized: bool,
    /// Bytes after argument checks (writes, reads); a short write's copied bytes.
    n: u64,
    /// Next folio a copy step must name.
    next_folio: u64,
    /// A buffered write that stopped short: the byte range it reserved and did not copy.
    unwritten: Option<(u64, u64)>,
    /// A buffered write stopped (short or failed at a folio): no folio is left.
    stopped: bool,
    /// First allocation failure of the op's flush.
    alloc_err: Option<Errno>,
    /// First EIO of a completion the op waited for.
    io_err: Option<Errno>,
    /// IOs submitted / completed, journal blocks committed by the op.
    submitted: u64,
    completed: u64,
    committed_blocks: u64,
    /// A buffered read's bytes, folio by folio.
    data: Vec<u8>,
    /// A crash: its choice of landings, as far as its steps got.
    crash: CrashChoice,
}

/// The scalar part of an [`OpState`], copied out for a commit.
struct Counts {
    outcome: Option<Outcome>,
    write_begun: bool,
    sized: bool,
    n: u64,
    next_folio: u64,
    unwritten: bool,
    stopped: bool,
    flush_err: Option<Errno>,
    submitted: u64,
    completed: u64,
    committed_blocks: u64,
}

impl OpState {
    fn clone_counts(&self) -> Counts {
        Counts {
            outcome: self.outcome.clone(),
            write_begun: self.write_begun,
            sized: self.sized,
            n: self.n,
            next_folio: self.next_folio,
            unwritten: self.unwritten.is_some(),
            stopped: self.stopped,
            flush_err: self.flush_err(),
            submitted: self.submitted,
            completed: self.completed,
            committed_blocks: self.committed_blocks,
        }
    }

    fn new(op: Op) -> OpState {
        OpState {
            begun: false,
            ended: false,
            committed: false,
            outcome: None,
            write_begun: false,
            sized: false,
            n: 0,
            next_folio: 0,
            unwritten: None,
            stopped: false,
            alloc_err: None,
            io_err: None,
            submitted: 0,
            completed: 0,
            committed_blocks: 0,
            data: Vec::new(),
            crash: match op {
                Op::Crash { land, torn, tear } => CrashChoice::new(land, torn, tear),
                _ => CrashChoice::default(),
            },
            op,
        }
    }

    fn flush_err(&self) -> Option<Errno> {
        self.alloc_err.or(self.io_err)
    }
}

/// Replays a concurrent run's commit log on a fresh reference (see the module docs).
#[derive(Clone, Debug)]
pub struct Replayer {
    r: RefFs,
    ops: BTreeMap<u32, OpState>,
    /// Ops begun and not ended.
    running: usize,
    /// In-flight IOs (file, folio) before the step being replayed: scratch, reused.
    before: Vec<(usize, u64)>,
}

/// How a step changes the in-flight IOs by its own rule (the rest must stay).
enum IoEffect {
    None,
    /// Completes the IO of this (file, folio).
    Completes(usize, u64),
    /// May submit one IO.
    Submits,
}

impl Replayer {
    /// A replayer for a run of `config` whose ops are `ops` by sequence number (the input's ops
    /// and whatever the runner adds, e.g. an end-of-run epilogue).
    pub fn new(config: &Config, ops: impl IntoIterator<Item = (u32, Op)>) -> Replayer {
        Replayer {
            r: RefFs::new(config),
            ops: ops
                .into_iter()
                .map(|(seq, op)| (seq, OpState::new(op)))
                .collect(),
            running: 0,
            before: Vec::new(),
        }
    }

    /// The reference's state after the steps replayed so far.
    pub fn model(&self) -> &RefFs {
        &self.r
    }

    /// The outcome the reference derived for op `seq`, once its commit point was replayed.
    pub fn outcome(&self, seq: u32) -> Option<&Outcome> {
        self.ops
            .get(&seq)
            .filter(|s| s.committed)
            .and_then(|s| s.outcome.as_ref())
    }

    /// Checks that the log is complete: every op began, committed and ended. `last` is the last
    /// step of the log (named in the error).
    pub fn finish(&self, last: Step) -> Result<(), ReplayError> {
        let mut open: Vec<(&u32, &OpState)> = self
            .ops
            .iter()
            .filter(|(_, s)| !(s.begun && s.ended))
            .collect();
        open.sort_by_key(|(seq, _)| **seq);
        match open.first() {
            None => Ok(()),
            Some((_, s)) => Err(ReplayError::Missing {
                step: last,
                op: s.op.clone(),
                missing: Missing::BeginEnd,
            }),
        }
    }

    /// Applies one step of the log, or says why the reference cannot take it.
    pub fn step(&mut self, step: Step) -> Result<(), ReplayError> {
        let seq = step.seq();
        let Some(st) = self.ops.get(&seq) else {
            return Err(ReplayError::UnknownOp { step });
        };
        let op = st.op.clone();
        match step {
            Step::Begin { .. } => {
                if st.begun {
                    return Err(ReplayError::OutsideOp { step, op });
                }
                self.state(seq).begun = true;
                self.running += 1;
                return Ok(());
            }
            Step::End { .. } => {
                if !st.begun || st.ended {
                    return Err(ReplayError::OutsideOp { step, op });
                }
                if !st.committed {
                    return Err(ReplayError::Missing {
                        step,
                        op,
                        missing: Missing::Commit,
                    });
                }
                self.state(seq).ended = true;
                self.running -= 1;
                return Ok(());
            }
            _ if !st.begun || st.ended => return Err(ReplayError::OutsideOp { step, op }),
            _ if st.committed => return Err(ReplayError::AfterCommit { step, op }),
            _ => {}
        }
        let effect = self.check(step, &op)?;
        // Only these steps' rules can wait (complete IO) or drop and punch folios; the others
        // (reserve, punch a write's tail, copy out, instantiate, one named completion, a
        // journal commit) leave every other in-flight IO and its folio alone.
        let guarded = matches!(
            step,
            Step::WriteFolio { .. } | Step::Writeback { .. } | Step::Op { .. }
        );
        if guarded {
            self.before.clear();
            self.before
                .extend(self.r.inflight.iter().map(|io| (io.file, io.folio)));
        }
        self.apply(step, &op)?;
        if guarded {
            self.check_io(step, &op, effect)?;
        }
        Ok(())
    }

    fn state(&mut self, seq: u32) -> &mut OpState {
        self.ops
            .get_mut(&seq)
            .expect("the op of a step was looked up before")
    }

    /// The first and last folio of bytes `[off, off+n)` (`n > 0`).
    fn span(&self, off: u64, n: u64) -> (u64, u64) {
        let fsz = self.r.fsz();
        (off / fsz, (off.saturating_add(n) - 1) / fsz)
    }

    /// The folios a flushing op may write back (or complete IO of): `(file, first, last)`.
    fn flush_span(&self, op: &Op, st: &OpState) -> Option<(FileId, u64, u64)> {
        match *op {
            Op::Write {
                file,
                off,
                sync: true,
                ..
            } if st.n > 0 => {
                let (a, b) = self.span(off, st.n);
                Some((file, a, b))
            }
            Op::DirectWrite { file, off, len } => match self.r.direct_write_args(off, len) {
                Ok(n) if n > 0 => {
                    let (a, b) = self.span(off, n);
                    Some((file, a, b))
                }
                _ => None,
            },
            Op::DirectRead { file, off, len } => match self.r.direct_read_args(file, off, len) {
                Ok(n) if n > 0 => {
                    let (a, b) = self.span(off, n);
                    Some((file, a, b))
                }
                _ => None,
            },
            Op::Flush { file, off, len } if len > 0 => {
                let (a, b) = self.span(off, len);
                Some((file, a, b))
            }
            Op::Fsync { file } | Op::EvictInode { file } => Some((file, 0, u64::MAX)),
            _ => None,
        }
    }

    /// The folios an op may wait for (complete the IO of): `(file, first, last)`; `None` for an
    /// op that never waits. `CompleteIo` completes any IO and is not asked.
    fn wait_span(&self, op: &Op, st: &OpState) -> Option<(FileId, u64, u64)> {
        match *op {
            // Each folio's copy waits for it; an O_SYNC flush waits inside the same range.
            Op::Write { file, off, len, .. } => match self.r.write_args(off, len) {
                Ok(n) if n > 0 => {
                    let (a, b) = self.span(off, n);
                    Some((file, a, b))
                }
                _ => None,
            },
            Op::MmapWrite { file, off, .. } => {
                let k = off / self.r.fsz();
                Some((file, k, k))
            }
            Op::PunchHole { file, off, len } | Op::ZeroRange { file, off, len, .. } if len > 0 => {
                let (a, b) = self.span(off, len);
                Some((file, a, b))
            }
            Op::Truncate { file, size } => Some((file, size / self.r.fsz(), u64::MAX)),
            _ => self.flush_span(op, st),
        }
    }

    /// Whether `file` is a journaled-data file of this run.
    fn jdata(&self, file: FileId) -> bool {
        self.r.fid(file).is_some_and(|fi| self.r.files[fi].jdata)
    }

    /// Blocks of folio `folio` of `file` satisfying `pred`.
    fn folio_blocks(
        &self,
        file: FileId,
        folio: u64,
        pred: impl Fn(&super::file::Block) -> bool,
    ) -> Vec<u64> {
        let Some(fi) = self.r.fid(file) else {
            return Vec::new();
        };
        let bpf = self.r.bpf();
        let b0 = folio.saturating_mul(bpf);
        (b0..b0.saturating_add(bpf))
            .filter(|&b| pred(&self.r.files[fi].block(b)))
            .collect()
    }

    /// Preconditions of a sub-step (not `Begin`, `End`) that need no change of state: whether
    /// the op takes this step here, and on what. Returns what the step does to the in-flight IOs.
    fn check(&self, step: Step, op: &Op) -> Result<IoEffect, ReplayError> {
        let st = &self.ops[&step.seq()];
        let foreign = || ReplayError::Foreign {
            step,
            op: op.clone(),
        };
        match step {
            Step::Begin { .. } | Step::End { .. } | Step::Op { .. } => Ok(IoEffect::None),
            Step::Complete { .. } | Step::Lost { .. } | Step::Torn { .. }
                if matches!(op, Op::Crash { .. }) =>
            {
                match self.landing_step(step.seq(), st) {
                    Some(e) if e == step => Ok(IoEffect::None),
                    expected => Err(ReplayError::WrongLanding {
                        step,
                        op: op.clone(),
                        expected,
                    }),
                }
            }
            Step::Lost { .. } | Step::Torn { .. } => Err(foreign()),
            Step::WriteBegin { .. } => match op {
                Op::Write { .. } if !st.write_begun => Ok(IoEffect::None),
                _ => Err(foreign()),
            },
            Step::WriteFolio { folio, .. } => {
                let Op::Write { file, .. } = *op else {
                    return Err(foreign());
                };
                self.check_write_progress(step, op, st)?;
                self.check_next_folio(step, op, st, folio)?;
                self.check_idle(step, op, file, folio)?;
                Ok(IoEffect::None)
            }
            Step::WritePunch { .. } => {
                let Op::Write { file, .. } = *op else {
                    return Err(foreign());
                };
                if self.jdata(file) {
                    return Err(foreign());
                }
                if !st.write_begun {
                    return Err(ReplayError::Missing {
                        step,
                        op: op.clone(),
                        missing: Missing::WriteBegin,
                    });
                }
                if st.unwritten.is_none() {
                    return Err(ReplayError::NotShort {
                        step,
                        op: op.clone(),
                    });
                }
                Ok(IoEffect::None)
            }
            Step::ReadFolio { folio, .. } => {
                let Op::Read { file, .. } = *op else {
                    return Err(foreign());
                };
                self.check_next_folio(step, op, st, folio)?;
                if !self
                    .r
                    .fid(file)
                    .is_some_and(|fi| self.r.files[fi].is_cached(folio))
                {
                    return Err(ReplayError::NotCached {
                        step,
                        op: op.clone(),
                        file,
                        folio,
                    });
                }
                Ok(IoEffect::None)
            }
            Step::Instantiate { file, folio, .. } => {
                match *op {
                    Op::Read { file: f, .. } if f == file => {
                        self.check_next_folio(step, op, st, folio)?
                    }
                    Op::Write { file: f, .. } if f == file => {
                        self.check_write_progress(step, op, st)?;
                        self.check_next_folio(step, op, st, folio)?;
                    }
                    Op::MmapRead { file: f, off, .. } | Op::MmapWrite { file: f, off, .. }
                        if f == file =>
                    {
                        let k = off / self.r.fsz();
                        if folio != k {
                            return Err(ReplayError::WrongFolio {
                                step,
                                op: op.clone(),
                                expected: Some(k),
                            });
                        }
                    }
                    _ => return Err(foreign()),
                }
                if self
                    .r
                    .fid(file)
                    .is_some_and(|fi| self.r.files[fi].is_cached(folio))
                {
                    return Err(ReplayError::AlreadyCached {
                        step,
                        op: op.clone(),
                        file,
                        folio,
                    });
                }
                Ok(IoEffect::None)
            }
            Step::Writeback { file, folio, .. } => {
                if self.jdata(file) {
                    return Err(foreign());
                }
                self.check_write_flush(step, op, st)?;
                match self.flush_span(op, st) {
                    Some((f, a, b)) if f == file && (a..=b).contains(&folio) => {}
                    Some(_) => {
                        return Err(ReplayError::OutOfRange {
                            step,
                            op: op.clone(),
                            file,
                            folio: Some(folio),
                        })
                    }
                    None => return Err(foreign()),
                }
                let cached = self
                    .r
                    .fid(file)
                    .is_some_and(|fi| self.r.files[fi].is_cached(folio));
                if !cached || self.folio_blocks(file, folio, |b| b.dirty).is_empty() {
                    return Err(ReplayError::WritebackClean {
                        step,
                        op: op.clone(),
                        file,
                        folio,
                    });
                }
                if !self.folio_blocks(file, folio, |b| b.writeback).is_empty() {
                    return Err(ReplayError::WritebackBusy {
                        step,
                        op: op.clone(),
                        file,
                        folio,
                    });
                }
                Ok(IoEffect::Submits)
            }
            Step::Commit { file, .. } => {
                if !self.jdata(file) {
                    return Err(foreign());
                }
                if !matches!(op, Op::JournalCommit { .. }) {
                    self.check_write_flush(step, op, st)?;
                    if self.flush_span(op, st).is_none() {
                        return Err(foreign());
                    }
                }
                if op.file() != Some(file) {
                    return Err(ReplayError::OutOfRange {
                        step,
                        op: op.clone(),
                        file,
                        folio: None,
                    });
                }
                Ok(IoEffect::None)
            }
            Step::Complete { file, folio, .. } => {
                if !matches!(op, Op::CompleteIo { .. }) {
                    match self.wait_span(op, st) {
                        Some((f, a, b)) if f == file && (a..=b).contains(&folio) => {}
                        Some(_) => {
                            return Err(ReplayError::OutOfRange {
                                step,
                                op: op.clone(),
                                file,
                                folio: Some(folio),
                            })
                        }
                        None => return Err(foreign()),
                    }
                }
                let fi = file as usize;
                let Some(pos) = self
                    .r
                    .inflight
                    .iter()
                    .position(|io| io.file == fi && io.folio == folio)
                else {
                    return Err(ReplayError::NoIoInFlight {
                        step,
                        op: op.clone(),
                        file,
                        folio,
                    });
                };
                if let Op::CompleteIo { n } = *op {
                    if st.completed >= u64::from(n) {
                        return Err(ReplayError::TooManyCompletions {
                            step,
                            op: op.clone(),
                        });
                    }
                    let others = self.running.saturating_sub(1);
                    if pos > others {
                        return Err(ReplayError::OutOfOrder {
                            step,
                            op: op.clone(),
                            older: pos,
                            others,
                        });
                    }
                }
                Ok(IoEffect::Completes(fi, folio))
            }
        }
    }

    /// The landing step crash `seq` takes next: the fate its arguments choose for the oldest
    /// in-flight IO (`None`: nothing is in flight).
    fn landing_step(&self, seq: u32, st: &OpState) -> Option<Step> {
        let slots = self.r.oldest_slots()?;
        let io = self.r.inflight.front()?;
        let (file, folio) = (io.file as FileId, io.folio);
        Some(match st.crash.peek(slots) {
            Landing::Whole => Step::Complete { seq, file, folio },
            Landing::Lost => Step::Lost { seq, file, folio },
            Landing::Torn(landed) => Step::Torn {
                seq,
                file,
                folio,
                landed,
            },
        })
    }

    /// A buffered write's folio steps need its `WriteBegin` and no failure or stop before.
    fn check_write_progress(&self, step: Step, op: &Op, st: &OpState) -> Result<(), ReplayError> {
        if !st.write_begun {
            return Err(ReplayError::Missing {
                step,
                op: op.clone(),
                missing: Missing::WriteBegin,
            });
        }
        if let Some(o) = &st.outcome {
            return Err(ReplayError::AfterFailure {
                step,
                op: op.clone(),
                outcome: o.clone(),
            });
        }
        Ok(())
    }

    /// An O_SYNC write flushes only after its copy, and only if it did not fail.
    fn check_write_flush(&self, step: Step, op: &Op, st: &OpState) -> Result<(), ReplayError> {
        if !matches!(op, Op::Write { .. }) {
            return Ok(());
        }
        if let Some(o) = &st.outcome {
            return Err(ReplayError::AfterFailure {
                step,
                op: op.clone(),
                outcome: o.clone(),
            });
        }
        let last = match *op {
            Op::Write { off, .. } if st.n > 0 => self.span(off, st.n).1,
            _ => return Ok(()),
        };
        if !st.stopped && st.next_folio <= last {
            return Err(ReplayError::Missing {
                step,
                op: op.clone(),
                missing: Missing::Folio(st.next_folio),
            });
        }
        Ok(())
    }

    /// The folio a copy step names must be the next one the reference computes. A read that
    /// has not decided its length yet is decided as of now (in `apply`), so it is computed here
    /// the same way.
    fn check_next_folio(
        &self,
        step: Step,
        op: &Op,
        st: &OpState,
        folio: u64,
    ) -> Result<(), ReplayError> {
        let (off, n, next) = match *op {
            Op::Write { off, .. } => (off, st.n, st.next_folio),
            Op::Read { file, off, len } if !st.sized => {
                let n = self.read_len(file, off, len);
                (off, n, off / self.r.fsz())
            }
            Op::Read { off, .. } => (off, st.n, st.next_folio),
            _ => return Ok(()),
        };
        let expected = if n == 0 || st.stopped {
            None
        } else {
            let (_, last) = self.span(off, n);
            (next <= last).then_some(next)
        };
        if expected != Some(folio) {
            return Err(ReplayError::WrongFolio {
                step,
                op: op.clone(),
                expected,
            });
        }
        Ok(())
    }

    /// A store into folio `folio` of `file` needs it idle: stable pages.
    fn check_idle(&self, step: Step, op: &Op, file: FileId, folio: u64) -> Result<(), ReplayError> {
        let busy = self.folio_blocks(file, folio, |b| b.writeback);
        if busy.is_empty() {
            Ok(())
        } else {
            Err(ReplayError::StoreUnderWriteback {
                step,
                op: op.clone(),
                file,
                blocks: busy,
            })
        }
    }

    /// A buffered read's length: clipped to EOF now.
    fn read_len(&self, file: FileId, off: u64, len: u64) -> u64 {
        let size = self.r.fid(file).map_or(0, |fi| self.r.files[fi].size);
        if len == 0 || off >= size {
            0
        } else {
            len.min(size - off)
        }
    }

    /// After a step: the in-flight IOs are those before it, less the one the step completes,
    /// plus at most one it submits; and none of them lost its folio.
    fn check_io(&self, step: Step, op: &Op, effect: IoEffect) -> Result<(), ReplayError> {
        let now = &self.r.inflight;
        let mut it = now.iter().map(|io| (io.file, io.folio)).peekable();
        for &(fi, folio) in &self.before {
            if matches!(effect, IoEffect::Completes(f, k) if (f, k) == (fi, folio)) {
                continue;
            }
            if it.next_if_eq(&(fi, folio)).is_none() {
                return Err(ReplayError::UnrecordedCompletion {
                    step,
                    op: op.clone(),
                    file: fi as FileId,
                    folio,
                });
            }
        }
        let added = it.count();
        if added > usize::from(matches!(effect, IoEffect::Submits)) {
            // No rule submits IO except a writeback step; the reference never does this.
            return Err(ReplayError::Foreign {
                step,
                op: op.clone(),
            });
        }
        for io in now {
            let f = &self.r.files[io.file];
            let intact =
                f.is_cached(io.folio) && io.blocks.iter().all(|&(b, _)| f.block(b).writeback);
            if !intact {
                return Err(ReplayError::DroppedUnderWriteback {
                    step,
                    op: op.clone(),
                    file: io.file as FileId,
                    folio: io.folio,
                });
            }
        }
        Ok(())
    }

    /// Applies a sub-step whose preconditions [`Replayer::check`] accepted.
    fn apply(&mut self, step: Step, op: &Op) -> Result<(), ReplayError> {
        let seq = step.seq();
        let fsz = self.r.fsz();
        match (step, op) {
            (Step::WriteBegin { .. }, &Op::Write { file, off, len, .. }) => {
                let res = match self.r.write_args(off, len) {
                    Err(e) => Err(Outcome::Err(e)),
                    Ok(0) => Err(Outcome::Done(0)),
                    Ok(n) => match self.r.reserve_write(file, off, n) {
                        Err(e) => Err(Outcome::Err(e)),
                        Ok(()) => Ok(n),
                    },
                };
                let st = self.state(seq);
                st.write_begun = true;
                match res {
                    Ok(n) => {
                        st.n = n;
                        st.next_folio = off / fsz;
                    }
                    Err(o) => st.outcome = Some(o),
                }
            }
            (Step::WriteFolio { folio, .. }, &Op::Write { file, off, .. }) => {
                let end = off + self.ops[&seq].n;
                let a = off.max(folio.saturating_mul(fsz));
                let b = end.min(folio.saturating_add(1).saturating_mul(fsz));
                // A racing failed writeback may have punched this folio's reservation; the
                // write then re-reserves, and on ENOSPC it ends here: short if it copied
                // anything, failed if not (as xfs_buffered_write_iomap_begin).
                let res = self.r.write_folio_checked(seq, file, a, b - a);
                if res.is_ok() {
                    self.r.extend_size(file, b);
                }
                let st = self.state(seq);
                st.next_folio = folio + 1;
                if let Err(e) = res {
                    st.stopped = true;
                    st.unwritten = Some((a, end));
                    if a == off {
                        st.outcome = Some(Outcome::Err(e));
                    } else {
                        // Short: the outcome is decided at the commit, after an O_SYNC write's
                        // flush (whose error it reports, as generic_write_sync does).
                        st.n = a - off;
                    }
                }
            }
            (Step::WritePunch { .. }, &Op::Write { file, .. }) => {
                if let Some((from, end)) = self.state(seq).unwritten.take() {
                    self.r.punch_write_tail(file, from, end);
                }
            }
            (Step::ReadFolio { folio, .. }, &Op::Read { file, off, len }) => {
                self.size_read(seq, file, off, len);
                let end = off + self.ops[&seq].n;
                let a = off.max(folio.saturating_mul(fsz));
                let b = end.min(folio.saturating_add(1).saturating_mul(fsz));
                let bytes = self.r.read_cached(file, a, b - a);
                let st = self.state(seq);
                st.data.extend(bytes);
                st.next_folio = folio + 1;
            }
            (Step::Instantiate { file, folio, .. }, _) => {
                if let Op::Read { off, len, .. } = *op {
                    self.size_read(seq, file, off, len);
                }
                self.r.instantiate_folio(file, folio);
            }
            (Step::Writeback { file, folio, .. }, _) => match self.r.writeback_folio(file, folio) {
                Ok(true) => self.state(seq).submitted += 1,
                Ok(false) => {}
                Err(e) => {
                    self.state(seq).alloc_err.get_or_insert(e);
                }
            },
            (Step::Complete { .. } | Step::Lost { .. } | Step::Torn { .. }, Op::Crash { .. }) => {
                // `check` matched the step with the landing the choice makes for the oldest IO.
                if let Some(slots) = self.r.oldest_slots() {
                    let how = self.state(seq).crash.next(slots);
                    self.r.land_oldest(how);
                }
            }
            (Step::Complete { file, folio, .. }, _) => {
                let c = self.r.complete_io_of(file, folio);
                let st = self.state(seq);
                st.completed += 1;
                if c == Some(super::Completion::Rejected) {
                    st.io_err.get_or_insert(Errno::Eio);
                }
            }
            (Step::Commit { file, .. }, _) => {
                let k = self.r.journal_commit(file);
                self.state(seq).committed_blocks += k;
            }
            (Step::Op { .. }, _) => {
                let out = self.commit(step, op)?;
                let st = self.state(seq);
                st.outcome = Some(out);
                st.committed = true;
            }
            // `check` accepted only steps of the op's kind.
            _ => {
                return Err(ReplayError::Foreign {
                    step,
                    op: op.clone(),
                })
            }
        }
        Ok(())
    }

    /// A buffered read decides its length at its first step (IOLOCK shared keeps the size
    /// still until it returns).
    fn size_read(&mut self, seq: u32, file: FileId, off: u64, len: u64) {
        if self.ops[&seq].sized {
            return;
        }
        let n = self.read_len(file, off, len);
        let fsz = self.r.fsz();
        let st = self.state(seq);
        st.sized = true;
        st.n = n;
        st.next_folio = off / fsz;
    }

    /// The op's `Op` step: the part of it that is atomic, and its outcome.
    fn commit(&mut self, step: Step, op: &Op) -> Result<Outcome, ReplayError> {
        let seq = step.seq();
        let missing = |m| ReplayError::Missing {
            step,
            op: op.clone(),
            missing: m,
        };
        let st = self.ops[&seq].clone_counts();
        let punch_missing = st.unwritten && op.file().is_some_and(|f| !self.jdata(f));
        if let Op::Write { .. } = op {
            if !st.write_begun {
                return Err(missing(Missing::WriteBegin));
            }
        }
        if let Some(o) = st.outcome {
            // Decided earlier (a write that failed its checks, its reservation, its first folio).
            if punch_missing {
                return Err(missing(Missing::WritePunch));
            }
            return Ok(o);
        }
        let fsz = self.r.fsz();
        let out = match *op {
            Op::Write {
                file, off, sync, ..
            } => {
                let (_, last) = self.span(off, st.n);
                if !st.stopped && st.next_folio <= last {
                    return Err(missing(Missing::Folio(st.next_folio)));
                }
                if punch_missing {
                    return Err(missing(Missing::WritePunch));
                }
                match sync.then(|| self.r.sync_finish(file)).flatten() {
                    Some(e) => Outcome::Err(e),
                    None => Outcome::Done(st.n),
                }
            }
            Op::Read { file, off, len } => {
                let n = if st.sized {
                    st.n
                } else {
                    self.read_len(file, off, len)
                };
                if n > 0 {
                    let (first, last) = self.span(off, n);
                    let next = if st.sized { st.next_folio } else { first };
                    if next <= last {
                        return Err(missing(Missing::Folio(next)));
                    }
                }
                Outcome::Data(std::mem::take(&mut self.state(seq).data))
            }
            Op::DirectWrite { file, off, len } => match self.r.direct_write_args(off, len) {
                Err(e) => Outcome::Err(e),
                Ok(0) => Outcome::Done(0),
                Ok(n) => {
                    if let Some(e) = st.flush_err {
                        return Ok(Outcome::Err(e));
                    }
                    self.check_drop(step, op, file, off, n)?;
                    self.r.drop_folios(file, off, n);
                    self.r.direct_write_locked(seq, file, off, n)
                }
            },
            Op::DirectRead { file, off, len } => match self.r.direct_read_args(file, off, len) {
                Err(e) => Outcome::Err(e),
                Ok(0) => Outcome::Data(Vec::new()),
                Ok(_) => match st.flush_err {
                    Some(e) => Outcome::Err(e),
                    // The alignment check comes after the flush, per mapping (SPEC, DirectRead).
                    None => self.r.direct_read_locked(file, off, len),
                },
            },
            Op::MmapWrite { file, off, len } => match self.r.fault_args(file, off, len) {
                Err(e) => Outcome::Err(e),
                Ok(0) => Outcome::Done(0),
                Ok(n) => {
                    let folio = off / fsz;
                    self.check_faulted(step, op, file, folio)?;
                    self.check_idle(step, op, file, folio)?;
                    self.r.mmap_write_locked(seq, file, off, n)
                }
            },
            Op::MmapRead { file, off, len } => match self.r.fault_args(file, off, len) {
                Err(e) => Outcome::Err(e),
                Ok(0) => Outcome::Data(Vec::new()),
                Ok(n) => {
                    self.check_faulted(step, op, file, off / fsz)?;
                    Outcome::Data(self.r.read_cached(file, off, n))
                }
            },
            Op::Fsync { file } => self.r.fsync_finish(file),
            Op::Flush { file, len, .. } => {
                if len == 0 {
                    Outcome::Done(0)
                } else if self.jdata(file) {
                    Outcome::Done(st.committed_blocks)
                } else {
                    Outcome::Done(st.submitted)
                }
            }
            Op::CompleteIo { .. } => Outcome::Done(st.completed),
            Op::EvictInode { file } => Outcome::Done(self.r.evict_finish(file)),
            Op::JournalCommit { .. } => Outcome::Done(st.committed_blocks),
            Op::Crash { .. } => {
                if let Some(io) = self.r.inflight.front() {
                    return Err(missing(Missing::Landing(io.file as FileId, io.folio)));
                }
                self.r.power_cut();
                Outcome::Done(self.ops[&seq].crash.whole)
            }
            // Fallocate, punch, zero-range, truncate, reclaim, corrupt, repair: atomic at their
            // commit, after any waits already replayed as `Complete` steps (a wait their rule
            // still needs here is refused by `check_io`).
            _ => self.r.apply(seq, op),
        };
        Ok(out)
    }

    /// A fault's commit needs its folio in the cache (it faulted it in, or found it there).
    fn check_faulted(
        &self,
        step: Step,
        op: &Op,
        file: FileId,
        folio: u64,
    ) -> Result<(), ReplayError> {
        if self
            .r
            .fid(file)
            .is_some_and(|fi| self.r.files[fi].is_cached(folio))
        {
            Ok(())
        } else {
            Err(ReplayError::Missing {
                step,
                op: op.clone(),
                missing: Missing::Instantiate(folio),
            })
        }
    }

    /// A direct write's cache drop needs every cached folio of its range clean and idle: the
    /// flush wrote them back and waited, and nothing may dirty them before the drop.
    fn check_drop(
        &self,
        step: Step,
        op: &Op,
        file: FileId,
        off: u64,
        n: u64,
    ) -> Result<(), ReplayError> {
        let Some(fi) = self.r.fid(file) else {
            return Ok(());
        };
        let (first, last) = self.span(off, n);
        let mut dirty = Vec::new();
        for folio in self.r.files[fi].cached_in(first, last) {
            dirty.extend(self.folio_blocks(file, folio, |b| b.dirty));
            if !self.folio_blocks(file, folio, |b| b.writeback).is_empty() {
                return Err(ReplayError::DroppedUnderWriteback {
                    step,
                    op: op.clone(),
                    file,
                    folio,
                });
            }
        }
        if dirty.is_empty() {
            Ok(())
        } else {
            Err(ReplayError::DirtyAtDrop {
                step,
                op: op.clone(),
                file,
                blocks: dirty,
            })
        }
    }
}
