//! The replayer refuses every step the reference cannot take: for every kind of step, a log
//! tampered into an impossible one is reported as its typed error (and the untampered log is
//! accepted, with outcomes derived by hand from SPEC.md).
//!
//! Geometry of every test: 1 KiB blocks, one-page folios (4 blocks of 4 KiB), 64 blocks of
//! space, 64 KiB maximum file size, keep-dirty, one ordinary file `f0` unless said otherwise.

use reference::model::replay::{Missing, ReplayError, Replayer};
use reference::Observe;
use reference::{Config, Errno, FileSpec, Geometry, Op, Outcome, Policy, Step};

fn config(capacity: u64, jdata: bool) -> Config {
    let geometry = Geometry {
        block_size: 1024,
        folio_pages: 1,
        capacity_blocks: capacity,
        max_file_size: 64 << 10,
    };
    geometry.validate().expect("test geometry must be valid");
    Config {
        geometry,
        policy: Policy::KeepDirty,
        files: vec![FileSpec { jdata }],
    }
}

/// Replays `log` for `ops` (numbered 1, 2, ...): the replayer after the whole log, or the index
/// and error of the first step it refused.
fn replay_on(cfg: &Config, ops: &[Op], log: &[Step]) -> Result<Replayer, (usize, ReplayError)> {
    let numbered = ops
        .iter()
        .enumerate()
        .map(|(k, op)| (k as u32 + 1, op.clone()));
    let mut rp = Replayer::new(cfg, numbered);
    for (k, &s) in log.iter().enumerate() {
        rp.step(s).map_err(|e| (k, e))?;
    }
    if let Some(&last) = log.last() {
        rp.finish(last).map_err(|e| (log.len(), e))?;
    }
    Ok(rp)
}

fn replay(ops: &[Op], log: &[Step]) -> Result<Replayer, (usize, ReplayError)> {
    replay_on(&config(64, false), ops, log)
}

/// The error of a log that must be refused at step `at`.
fn refused(ops: &[Op], log: &[Step], at: usize) -> ReplayError {
    refused_on(&config(64, false), ops, log, at)
}

fn refused_on(cfg: &Config, ops: &[Op], log: &[Step], at: usize) -> ReplayError {
    match replay_on(cfg, ops, log) {
        Ok(_) => panic!("the tampered log was accepted: {log:?}"),
        Err((k, e)) => {
            assert_eq!(k, at, "refused at another step than expected: {e}");
            e
        }
    }
}

fn write(off: u64, len: u64) -> Op {
    Op::Write {
        file: 0,
        off,
        len,
        sync: false,
    }
}

const fn begin(seq: u32) -> Step {
    Step::Begin { seq }
}
const fn end(seq: u32) -> Step {
    Step::End { seq }
}
const fn commit(seq: u32) -> Step {
    Step::Op { seq }
}
const fn wbegin(seq: u32) -> Step {
    Step::WriteBegin { seq }
}
const fn wfolio(seq: u32, folio: u64) -> Step {
    Step::WriteFolio { seq, folio }
}
const fn writeback(seq: u32, folio: u64) -> Step {
    Step::Writeback {
        seq,
        file: 0,
        folio,
    }
}
const fn complete(seq: u32, folio: u64) -> Step {
    Step::Complete {
        seq,
        file: 0,
        folio,
    }
}

/// Op 1 writes folio 0 (`[0, 4096)`, size 4096, dirty delalloc), whole and alone.
const WRITE_FOLIO0: [Step; 5] = [begin(1), wbegin(1), wfolio(1, 0), commit(1), end(1)];

fn cat(parts: &[&[Step]]) -> Vec<Step> {
    parts.concat()
}

#[test]
fn a_valid_interleaving_is_accepted_with_outcomes_derived_by_the_reference() {
    // Op 1 writes folios 0 and 1; op 2 (a flush of folio 0) runs between its two folio copies
    // and submits one IO; op 3 completes it.
    let ops = [
        write(0, 0x2000),
        Op::Flush {
            file: 0,
            off: 0,
            len: 0x1000,
        },
        Op::CompleteIo { n: 5 },
    ];
    let log = [
        begin(1),
        wbegin(1),
        wfolio(1, 0),
        begin(2),
        writeback(2, 0),
        commit(2),
        end(2),
        wfolio(1, 1),
        commit(1),
        end(1),
        begin(3),
        complete(3, 0),
        commit(3),
        end(3),
    ];
    let rp = replay(&ops, &log).expect("a valid log");
    assert_eq!(rp.outcome(1), Some(&Outcome::Done(0x2000)));
    assert_eq!(rp.outcome(2), Some(&Outcome::Done(1)));
    assert_eq!(rp.outcome(3), Some(&Outcome::Done(1)));
}

#[test]
fn begin_twice_or_a_step_of_no_op_is_refused() {
    let ops = [write(0, 0x1000)];
    let e = refused(&ops, &[begin(1), begin(1)], 1);
    assert_eq!(
        e,
        ReplayError::OutsideOp {
            step: begin(1),
            op: ops[0].clone()
        }
    );
    let e = refused(&ops, &[begin(7)], 0);
    assert_eq!(e, ReplayError::UnknownOp { step: begin(7) });
}

#[test]
fn end_without_begin_or_commit_is_refused() {
    let ops = [write(0, 0x1000)];
    let e = refused(&ops, &[end(1)], 0);
    assert!(matches!(e, ReplayError::OutsideOp { step, .. } if step == end(1)));
    let e = refused(&ops, &[begin(1), wbegin(1), wfolio(1, 0), end(1)], 3);
    assert_eq!(
        e,
        ReplayError::Missing {
            step: end(1),
            op: ops[0].clone(),
            missing: Missing::Commit
        }
    );
}

#[test]
fn a_log_that_leaves_an_op_unrun_is_refused() {
    let ops = [write(0, 0x1000), Op::Fsync { file: 0 }];
    let e = refused(&ops, &WRITE_FOLIO0, 5);
    assert_eq!(
        e,
        ReplayError::Missing {
            step: end(1),
            op: ops[1].clone(),
            missing: Missing::BeginEnd
        }
    );
}

#[test]
fn write_begin_in_another_op_or_twice_is_refused() {
    let read = Op::Read {
        file: 0,
        off: 0,
        len: 10,
    };
    let e = refused(std::slice::from_ref(&read), &[begin(1), wbegin(1)], 1);
    assert_eq!(
        e,
        ReplayError::Foreign {
            step: wbegin(1),
            op: read
        }
    );
    let e = refused(&[write(0, 10)], &[begin(1), wbegin(1), wbegin(1)], 2);
    assert!(matches!(e, ReplayError::Foreign { .. }));
}

#[test]
fn write_folio_must_be_the_next_folio_after_write_begin() {
    let ops = [write(0, 0x2000)];
    // Folio 1 before folio 0.
    let e = refused(&ops, &[begin(1), wbegin(1), wfolio(1, 1)], 2);
    assert_eq!(
        e,
        ReplayError::WrongFolio {
            step: wfolio(1, 1),
            op: ops[0].clone(),
            expected: Some(0)
        }
    );
    // Past the write's range.
    let e = refused(
        &ops,
        &[
            begin(1),
            wbegin(1),
            wfolio(1, 0),
            wfolio(1, 1),
            wfolio(1, 2),
        ],
        4,
    );
    assert!(matches!(e, ReplayError::WrongFolio { expected: None, .. }));
    // Before the reservation.
    let e = refused(&ops, &[begin(1), wfolio(1, 0)], 1);
    assert!(matches!(
        e,
        ReplayError::Missing {
            missing: Missing::WriteBegin,
            ..
        }
    ));
    // Committed with folio 1 not copied: the reference derives `Done(0x2000)` only after both.
    let e = refused(&ops, &[begin(1), wbegin(1), wfolio(1, 0), commit(1)], 3);
    assert!(matches!(
        e,
        ReplayError::Missing {
            missing: Missing::Folio(1),
            ..
        }
    ));
}

#[test]
fn write_folio_into_a_folio_under_writeback_is_refused() {
    // Op 2 submits folio 0's IO; op 3 copies into folio 0 without waiting for it (no
    // `Complete` first): stable pages forbid it.
    let ops = [
        write(0, 0x1000),
        Op::Flush {
            file: 0,
            off: 0,
            len: 0x1000,
        },
        write(0, 0x10),
    ];
    let log = cat(&[
        &WRITE_FOLIO0,
        &[begin(2), writeback(2, 0), commit(2), end(2)],
        &[begin(3), wbegin(3), wfolio(3, 0)],
    ]);
    let e = refused(&ops, &log, 11);
    assert_eq!(
        e,
        ReplayError::StoreUnderWriteback {
            step: wfolio(3, 0),
            op: ops[2].clone(),
            file: 0,
            blocks: vec![0, 1, 2, 3]
        }
    );
    // With the wait recorded, it is accepted.
    let ok = cat(&[
        &WRITE_FOLIO0,
        &[begin(2), writeback(2, 0), commit(2), end(2)],
        &[
            begin(3),
            wbegin(3),
            complete(3, 0),
            wfolio(3, 0),
            commit(3),
            end(3),
        ],
    ]);
    let rp = replay(&ops, &ok).expect("the write waited");
    assert_eq!(rp.outcome(3), Some(&Outcome::Done(0x10)));
}

#[test]
fn a_step_after_a_failed_reservation_is_refused() {
    // 16 blocks of space; a write of 32 blocks fails its reservation with ENOSPC at
    // `WriteBegin`: it copies nothing.
    let cfg = config(16, false);
    let ops = [write(0, 0x8000)];
    let e = refused_on(&cfg, &ops, &[begin(1), wbegin(1), wfolio(1, 0)], 2);
    assert_eq!(
        e,
        ReplayError::AfterFailure {
            step: wfolio(1, 0),
            op: ops[0].clone(),
            outcome: Outcome::Err(Errno::Enospc)
        }
    );
}

#[test]
fn write_punch_of_a_write_that_did_not_stop_short_is_refused() {
    let ops = [write(0, 0x1000)];
    let e = refused(
        &ops,
        &[
            begin(1),
            wbegin(1),
            wfolio(1, 0),
            Step::WritePunch { seq: 1 },
        ],
        3,
    );
    assert_eq!(
        e,
        ReplayError::NotShort {
            step: Step::WritePunch { seq: 1 },
            op: ops[0].clone()
        }
    );
}

#[test]
fn read_folio_of_an_uncached_or_wrong_folio_is_refused() {
    // Op 1 writes folio 0, fsync makes it clean, reclaim drops it; the read's copy of folio 0
    // without an instantiation finds nothing cached.
    let read = Op::Read {
        file: 0,
        off: 0,
        len: 0x1000,
    };
    let ops = [
        write(0, 0x1000),
        Op::Fsync { file: 0 },
        Op::Reclaim { file: 0, folio: 0 },
        read.clone(),
    ];
    let head = cat(&[
        &WRITE_FOLIO0,
        &[begin(2), writeback(2, 0), complete(2, 0), commit(2), end(2)],
        &[begin(3), commit(3), end(3)],
    ]);
    let rf = Step::ReadFolio { seq: 4, folio: 0 };
    let e = refused(&ops, &cat(&[&head, &[begin(4), rf]]), 14);
    assert_eq!(
        e,
        ReplayError::NotCached {
            step: rf,
            op: read.clone(),
            file: 0,
            folio: 0
        }
    );
    let inst = Step::Instantiate {
        seq: 4,
        file: 0,
        folio: 0,
    };
    let rp = replay(
        &ops,
        &cat(&[&head, &[begin(4), inst, rf, commit(4), end(4)]]),
    )
    .expect("instantiated first");
    assert_eq!(rp.outcome(3), Some(&Outcome::Done(1)));
    assert_eq!(
        rp.outcome(4),
        Some(&Outcome::Data(reference::pattern::pattern(1, 0, 0x1000)))
    );
    // The read covers folio 0 only.
    let rf1 = Step::ReadFolio { seq: 2, folio: 1 };
    let e = refused(
        &[write(0, 0x1000), read.clone()],
        &cat(&[&WRITE_FOLIO0, &[begin(2), rf1]]),
        6,
    );
    assert!(matches!(
        e,
        ReplayError::WrongFolio {
            expected: Some(0),
            ..
        }
    ));
}

#[test]
fn instantiate_of_a_cached_folio_or_by_a_foreign_op_is_refused() {
    let inst = Step::Instantiate {
        seq: 2,
        file: 0,
        folio: 0,
    };
    let mread = Op::MmapRead {
        file: 0,
        off: 0,
        len: 1,
    };
    let e = refused(
        &[write(0, 0x1000), mread.clone()],
        &cat(&[&WRITE_FOLIO0, &[begin(2), inst]]),
        6,
    );
    assert_eq!(
        e,
        ReplayError::AlreadyCached {
            step: inst,
            op: mread,
            file: 0,
            folio: 0
        }
    );
    let fsync = Op::Fsync { file: 0 };
    let e = refused(
        &[write(0, 0x1000), fsync],
        &cat(&[&WRITE_FOLIO0, &[begin(2), inst]]),
        6,
    );
    assert!(matches!(e, ReplayError::Foreign { .. }));
}

#[test]
fn writeback_of_a_clean_busy_foreign_or_out_of_range_folio_is_refused() {
    let flush = |off, len| Op::Flush { file: 0, off, len };
    // Clean: nothing was written.
    let e = refused(&[flush(0, 0x1000)], &[begin(1), writeback(1, 0)], 1);
    assert_eq!(
        e,
        ReplayError::WritebackClean {
            step: writeback(1, 0),
            op: flush(0, 0x1000),
            file: 0,
            folio: 0
        }
    );
    // Outside the flush's range.
    let ops = [write(0, 0x1000), flush(0x1000, 0x1000)];
    let e = refused(
        &ops,
        &cat(&[&WRITE_FOLIO0, &[begin(2), writeback(2, 0)]]),
        6,
    );
    assert!(matches!(e, ReplayError::OutOfRange { folio: Some(0), .. }));
    // A reclaim never writes back.
    let ops = [write(0, 0x1000), Op::Reclaim { file: 0, folio: 0 }];
    let e = refused(
        &ops,
        &cat(&[&WRITE_FOLIO0, &[begin(2), writeback(2, 0)]]),
        6,
    );
    assert!(matches!(e, ReplayError::Foreign { .. }));
    // Written back again while its IO is in flight (re-dirtied by a write that waited for
    // nothing is refused earlier; here a fault's store is skipped by tampering the flush).
    let ops = [
        write(0, 0x1000),
        flush(0, 0x1000),
        write(0, 0x10),
        flush(0, 0x1000),
    ];
    let mut w3 = vec![
        begin(3),
        wbegin(3),
        complete(3, 0),
        wfolio(3, 0),
        commit(3),
        end(3),
    ];
    // Tamper: op 3 copies without its wait, so folio 0 is dirty and under writeback for op 4.
    w3.remove(2);
    let log = cat(&[
        &WRITE_FOLIO0,
        &[begin(2), writeback(2, 0), commit(2), end(2)],
        &w3,
        &[begin(4), writeback(4, 0)],
    ]);
    // Refused already at op 3's copy, before op 4 could find the folio busy.
    let e = refused(&ops, &log, 11);
    assert!(matches!(e, ReplayError::StoreUnderWriteback { .. }));
}

#[test]
fn completion_of_no_io_too_many_or_out_of_order_is_refused() {
    let c = |n| Op::CompleteIo { n };
    let e = refused(&[c(1)], &[begin(1), complete(1, 0)], 1);
    assert_eq!(
        e,
        ReplayError::NoIoInFlight {
            step: complete(1, 0),
            op: c(1),
            file: 0,
            folio: 0
        }
    );
    // Two IOs in flight (folio 0, then folio 1).
    let ops = [
        write(0, 0x2000),
        Op::Flush {
            file: 0,
            off: 0,
            len: 0x2000,
        },
        c(1),
    ];
    let head = [
        begin(1),
        wbegin(1),
        wfolio(1, 0),
        wfolio(1, 1),
        commit(1),
        end(1),
        begin(2),
        writeback(2, 0),
        writeback(2, 1),
        commit(2),
        end(2),
    ];
    // `complete 1` completes one IO, not two.
    let e = refused(
        &ops,
        &cat(&[&head, &[begin(3), complete(3, 0), complete(3, 1)]]),
        13,
    );
    assert_eq!(
        e,
        ReplayError::TooManyCompletions {
            step: complete(3, 1),
            op: c(1)
        }
    );
    // Alone, `complete` takes the oldest IO: folio 1's is not.
    let e = refused(&ops, &cat(&[&head, &[begin(3), complete(3, 1)]]), 12);
    assert_eq!(
        e,
        ReplayError::OutOfOrder {
            step: complete(3, 1),
            op: c(1),
            older: 1,
            others: 0
        }
    );
}

#[test]
fn journal_commit_of_an_ordinary_file_is_refused() {
    let step = Step::Commit { seq: 1, file: 0 };
    let op = Op::JournalCommit { file: 0 };
    let e = refused(std::slice::from_ref(&op), &[begin(1), step], 1);
    assert_eq!(e, ReplayError::Foreign { step, op });
    // On a journaled-data file it commits the logged blocks: 4 of them.
    let ops = [write(0, 0x1000), Op::JournalCommit { file: 0 }];
    let log = cat(&[
        &WRITE_FOLIO0,
        &[
            begin(2),
            Step::Commit { seq: 2, file: 0 },
            commit(2),
            end(2),
        ],
    ]);
    let rp = replay_on(&config(64, true), &ops, &log).expect("a valid log");
    assert_eq!(rp.outcome(2), Some(&Outcome::Done(4)));
}

#[test]
fn direct_write_cache_drop_over_dirty_blocks_is_refused() {
    // The direct write of block 0 commits without flushing folio 0 (dirty from op 1): its
    // cache drop would lose blocks 0-3.
    let dw = Op::DirectWrite {
        file: 0,
        off: 0,
        len: 0x400,
    };
    let ops = [write(0, 0x1000), dw.clone()];
    let e = refused(&ops, &cat(&[&WRITE_FOLIO0, &[begin(2), commit(2)]]), 6);
    assert_eq!(
        e,
        ReplayError::DirtyAtDrop {
            step: commit(2),
            op: dw,
            file: 0,
            blocks: vec![0, 1, 2, 3]
        }
    );
    // Flushed and waited for: accepted, `Done(1024)`.
    let log = cat(&[
        &WRITE_FOLIO0,
        &[begin(2), writeback(2, 0), complete(2, 0), commit(2), end(2)],
    ]);
    let rp = replay(&ops, &log).expect("flushed");
    assert_eq!(rp.outcome(2), Some(&Outcome::Done(0x400)));
}

#[test]
fn an_op_whose_rule_needs_an_unrecorded_wait_is_refused() {
    // Folio 0 under writeback (op 2); the punch commits without waiting for it.
    let punch = Op::PunchHole {
        file: 0,
        off: 0,
        len: 0x1000,
    };
    let ops = [
        write(0, 0x1000),
        Op::Flush {
            file: 0,
            off: 0,
            len: 0x1000,
        },
        punch.clone(),
    ];
    let head = cat(&[
        &WRITE_FOLIO0,
        &[begin(2), writeback(2, 0), commit(2), end(2)],
    ]);
    let e = refused(&ops, &cat(&[&head, &[begin(3), commit(3)]]), 10);
    assert_eq!(
        e,
        ReplayError::UnrecordedCompletion {
            step: commit(3),
            op: punch,
            file: 0,
            folio: 0
        }
    );
    let rp = replay(
        &ops,
        &cat(&[&head, &[begin(3), complete(3, 0), commit(3), end(3)]]),
    )
    .expect("waited");
    assert_eq!(rp.outcome(3), Some(&Outcome::Done(0)));
}

#[test]
fn eviction_that_drops_a_folio_under_writeback_is_refused() {
    let evict = Op::EvictInode { file: 0 };
    let ops = [
        write(0, 0x1000),
        Op::Flush {
            file: 0,
            off: 0,
            len: 0x1000,
        },
        evict.clone(),
    ];
    let head = cat(&[
        &WRITE_FOLIO0,
        &[begin(2), writeback(2, 0), commit(2), end(2)],
    ]);
    let e = refused(&ops, &cat(&[&head, &[begin(3), commit(3)]]), 10);
    assert_eq!(
        e,
        ReplayError::DroppedUnderWriteback {
            step: commit(3),
            op: evict,
            file: 0,
            folio: 0
        }
    );
}

#[test]
fn a_fault_that_did_not_fault_its_folio_in_is_refused() {
    // Folio 0 written, written back and reclaimed; the write fault commits without an
    // instantiation.
    let mw = Op::MmapWrite {
        file: 0,
        off: 0,
        len: 1,
    };
    let ops = [
        write(0, 0x1000),
        Op::Fsync { file: 0 },
        Op::Reclaim { file: 0, folio: 0 },
        mw.clone(),
    ];
    let log = cat(&[
        &WRITE_FOLIO0,
        &[begin(2), writeback(2, 0), complete(2, 0), commit(2), end(2)],
        &[begin(3), commit(3), end(3)],
        &[begin(4), commit(4)],
    ]);
    let e = refused(&ops, &log, 14);
    assert_eq!(
        e,
        ReplayError::Missing {
            step: commit(4),
            op: mw,
            missing: Missing::Instantiate(0)
        }
    );
}

#[test]
fn a_step_after_the_commit_is_refused() {
    let ops = [write(0, 0x1000)];
    let e = refused(
        &ops,
        &[begin(1), wbegin(1), wfolio(1, 0), commit(1), wfolio(1, 0)],
        4,
    );
    assert_eq!(
        e,
        ReplayError::AfterCommit {
            step: wfolio(1, 0),
            op: ops[0].clone()
        }
    );
}

#[test]
fn a_wait_by_an_op_that_never_waits_or_outside_its_range_is_refused() {
    // Folio 0's IO is in flight (op 2). A read never waits for writeback; a punch of folio 1
    // waits only for folio 1.
    let flush = Op::Flush {
        file: 0,
        off: 0,
        len: 0x1000,
    };
    let read = Op::Read {
        file: 0,
        off: 0,
        len: 0x1000,
    };
    let punch = Op::PunchHole {
        file: 0,
        off: 0x1000,
        len: 0x1000,
    };
    let head = cat(&[
        &WRITE_FOLIO0,
        &[begin(2), writeback(2, 0), commit(2), end(2)],
    ]);
    let e = refused(
        &[write(0, 0x1000), flush.clone(), read.clone()],
        &cat(&[&head, &[begin(3), complete(3, 0)]]),
        10,
    );
    assert_eq!(
        e,
        ReplayError::Foreign {
            step: complete(3, 0),
            op: read
        }
    );
    let e = refused(
        &[write(0, 0x1000), flush, punch.clone()],
        &cat(&[&head, &[begin(3), complete(3, 0)]]),
        10,
    );
    assert_eq!(
        e,
        ReplayError::OutOfRange {
            step: complete(3, 0),
            op: punch,
            file: 0,
            folio: Some(0)
        }
    );
}

/// A crash's landings are recomputed, never believed: op 1 writes folios 0 and 1, op 2 flushes
/// both (two IOs, folio 0's the oldest), op 3 is `crash 0x2 torn 0x1 0x5` (SPEC.md "Crash"): IO 0
/// is torn, its blocks 0-3 taking tear bits 0-3 (0b0101: slots 0 and 2 land); IO 1 lands whole.
/// The log must name exactly that, oldest first.
#[test]
fn a_crash_landing_other_than_the_inputs_choice_is_refused() {
    let crash = Op::Crash {
        land: 0b10,
        torn: 0b01,
        tear: 0b0101,
    };
    let flush = Op::Flush {
        file: 0,
        off: 0,
        len: 8192,
    };
    let ops = [write(0, 8192), flush.clone(), crash.clone()];
    let head = cat(&[
        &[
            begin(1),
            wbegin(1),
            wfolio(1, 0),
            wfolio(1, 1),
            commit(1),
            end(1),
        ],
        &[
            begin(2),
            writeback(2, 0),
            writeback(2, 1),
            commit(2),
            end(2),
        ],
        &[begin(3)],
    ]);
    let torn0 = |landed| Step::Torn {
        seq: 3,
        file: 0,
        folio: 0,
        landed,
    };
    let good = cat(&[&head, &[torn0(0b0101), complete(3, 1), commit(3), end(3)]]);
    let rp = replay(&ops, &good).expect("the untampered log replays");
    // IO 1 landed whole: blocks 4-7 Written, di_size raised to its end (8192); IO 0 never
    // completed, so blocks 0-3 stay Unwritten (their torn bytes are on disk, unread).
    assert_eq!(rp.outcome(3), Some(&Outcome::Done(1)));
    assert_eq!(rp.model().size(0), 8192);

    let landing = |s: Step, expected: Step| {
        let log = cat(&[&head, &[s, complete(3, 1), commit(3), end(3)]]);
        let e = refused(&ops, &log, head.len());
        assert_eq!(
            e,
            ReplayError::WrongLanding {
                step: s,
                op: crash.clone(),
                expected: Some(expected),
            }
        );
    };
    // The torn IO claimed to land whole, to be lost, or torn with other blocks.
    landing(complete(3, 0), torn0(0b0101));
    landing(
        Step::Lost {
            seq: 3,
            file: 0,
            folio: 0,
        },
        torn0(0b0101),
    );
    landing(torn0(0b1111), torn0(0b0101));
    // Not the oldest IO first.
    landing(complete(3, 1), torn0(0b0101));
    // The second IO lost although bit 1 of `land` is set.
    let lost1 = Step::Lost {
        seq: 3,
        file: 0,
        folio: 1,
    };
    let log = cat(&[&head, &[torn0(0b0101), lost1, commit(3), end(3)]]);
    assert_eq!(
        refused(&ops, &log, head.len() + 1),
        ReplayError::WrongLanding {
            step: lost1,
            op: crash.clone(),
            expected: Some(complete(3, 1)),
        }
    );
    // A commit with an IO still in flight: the crash decided only one.
    let log = cat(&[&head, &[torn0(0b0101), commit(3), end(3)]]);
    assert_eq!(
        refused(&ops, &log, head.len() + 1),
        ReplayError::Missing {
            step: commit(3),
            op: crash.clone(),
            missing: Missing::Landing(0, 1),
        }
    );
    // A landing step of another op, and a landing with nothing in flight.
    let log = cat(&[&head, &[torn0(0b0101), complete(3, 1), lost1]]);
    assert_eq!(
        refused(&ops, &log, head.len() + 2),
        ReplayError::WrongLanding {
            step: lost1,
            op: crash.clone(),
            expected: None,
        }
    );
    let log = cat(&[
        &WRITE_FOLIO0,
        &[
            begin(2),
            Step::Lost {
                seq: 2,
                file: 0,
                folio: 0,
            },
        ],
    ]);
    assert!(matches!(
        refused(&[write(0, 4096), flush], &log, 6),
        ReplayError::Foreign { .. }
    ));
}
