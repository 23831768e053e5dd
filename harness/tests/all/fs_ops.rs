//! Op-level tests of the implementation under test against SPEC.md, written by hand (no
//! reference model involved), plus the sequential bug switches.

use reference::{
    pattern, BlockObs, CacheState, Config, Errno, ExtentState, FileSpec, Geometry, Observe, Op,
    Outcome, Policy,
};
use wbfuzz::bugs::{Bug, Bugs};
use wbfuzz::fs::Fs;

fn config(bs: u32, folio_pages: u32, cap: u64, policy: Policy, jdata: &[bool]) -> Config {
    Config {
        geometry: Geometry {
            block_size: bs,
            folio_pages,
            capacity_blocks: cap,
            max_file_size: 1 << 20,
        },
        policy,
        files: jdata.iter().map(|&j| FileSpec { jdata: j }).collect(),
    }
}

fn fs1(bugs: Bugs) -> Fs {
    Fs::new(&config(1024, 1, 256, Policy::KeepDirty, &[false]), bugs)
}

fn clean(fs: &Fs) {
    let v = fs.check_invariants();
    assert!(v.is_empty(), "invariants: {v:?}");
}

fn names(fs: &Fs) -> Vec<&'static str> {
    fs.check_invariants().into_iter().map(|v| v.name).collect()
}

fn st(fs: &Fs, file: u8, b: u64) -> BlockObs {
    fs.blocks(file, b, 1)[0]
}

fn w(file: u8, off: u64, len: u64) -> Op {
    Op::Write {
        file,
        off,
        len,
        sync: false,
    }
}

#[test]
fn write_read_delalloc() {
    let fs = fs1(Bugs::NONE);
    assert_eq!(fs.apply(1, &w(0, 100, 3000)), Outcome::Done(3000));
    assert_eq!(fs.size(0), 3100);
    let mut want = vec![0u8; 100];
    want.extend(pattern(1, 100, 3000));
    assert_eq!(
        fs.apply(
            2,
            &Op::Read {
                file: 0,
                off: 0,
                len: 10_000
            }
        ),
        Outcome::Data(want.clone())
    );
    assert_eq!(fs.peek(0, 0, 10_000), want);
    for b in 0..4 {
        assert_eq!(
            st(&fs, 0, b),
            BlockObs {
                extent: ExtentState::Delalloc,
                cache: CacheState::Dirty,
                writeback: false
            }
        );
    }
    let c = fs.counters();
    assert_eq!((c.free, c.reserved, c.allocated), (252, 4, 0));
    assert_eq!(fs.block_span(0), 4);
    clean(&fs);
}

#[test]
fn flush_complete_and_direct_read() {
    let fs = fs1(Bugs::NONE);
    fs.apply(1, &w(0, 0, 2048));
    assert_eq!(
        fs.apply(
            2,
            &Op::Flush {
                file: 0,
                off: 0,
                len: 1
            }
        ),
        Outcome::Done(1)
    );
    assert_eq!(
        st(&fs, 0, 0),
        BlockObs {
            extent: ExtentState::Unwritten,
            cache: CacheState::Clean,
            writeback: true
        }
    );
    assert_eq!(st(&fs, 0, 2).extent, ExtentState::Hole);
    assert_eq!(fs.counters().inflight_ios, 1);
    clean(&fs);
    assert_eq!(fs.apply(3, &Op::CompleteIo { n: 5 }), Outcome::Done(1));
    assert_eq!(
        st(&fs, 0, 1),
        BlockObs {
            extent: ExtentState::Written,
            cache: CacheState::Clean,
            writeback: false
        }
    );
    assert_eq!(
        fs.apply(4, &Op::Reclaim { file: 0, folio: 0 }),
        Outcome::Done(1)
    );
    assert_eq!(
        fs.apply(
            5,
            &Op::DirectRead {
                file: 0,
                off: 0,
                len: 4096
            }
        ),
        Outcome::Data(pattern(1, 0, 2048))
    );
    assert_eq!(
        fs.apply(
            6,
            &Op::DirectRead {
                file: 0,
                off: 1,
                len: 1024
            }
        ),
        Outcome::Err(Errno::Einval)
    );
    clean(&fs);
}

#[test]
fn osync_write_under_corrupt_root() {
    let fs = fs1(Bugs::NONE);
    assert_eq!(fs.apply(1, &Op::CorruptAllocBtree), Outcome::Done(0));
    assert_eq!(
        fs.apply(
            2,
            &Op::Write {
                file: 0,
                off: 0,
                len: 0x1400,
                sync: true
            }
        ),
        Outcome::Err(Errno::Efscorrupted)
    );
    assert_eq!(fs.wb_error(0), None, "O_SYNC reports and clears the error");
    for b in 0..5 {
        assert_eq!(
            st(&fs, 0, b),
            BlockObs {
                extent: ExtentState::Delalloc,
                cache: CacheState::Dirty,
                writeback: false
            }
        );
    }
    assert_eq!(fs.counters().reserved, 5);
    assert!(fs.btree_corrupt());
    clean(&fs);
    assert_eq!(fs.apply(3, &Op::RepairAllocBtree), Outcome::Done(0));
    assert!(!fs.btree_corrupt());
    assert_eq!(fs.apply(4, &Op::Fsync { file: 0 }), Outcome::Done(0));
    for b in 0..5 {
        assert_eq!(
            st(&fs, 0, b),
            BlockObs {
                extent: ExtentState::Written,
                cache: CacheState::Clean,
                writeback: false
            }
        );
    }
    let c = fs.counters();
    assert_eq!(
        (c.free, c.reserved, c.allocated, c.inflight_ios),
        (251, 0, 5, 0)
    );
    clean(&fs);
}

#[test]
fn enospc_before_efscorrupted() {
    let fs = Fs::new(&config(1024, 1, 4, Policy::KeepDirty, &[true]), Bugs::NONE);
    fs.apply(1, &Op::CorruptAllocBtree);
    assert_eq!(fs.apply(2, &w(0, 0, 5 * 1024)), Outcome::Err(Errno::Enospc));
    assert_eq!(
        fs.apply(3, &w(0, 0, 1024)),
        Outcome::Err(Errno::Efscorrupted)
    );
    assert_eq!(fs.size(0), 0);
    clean(&fs);
}

#[test]
fn write_waits_for_writeback() {
    let fs = fs1(Bugs::NONE);
    fs.apply(1, &w(0, 0, 1024));
    fs.apply(
        2,
        &Op::Flush {
            file: 0,
            off: 0,
            len: 4096,
        },
    );
    assert_eq!(fs.counters().inflight_ios, 1);
    assert_eq!(fs.apply(3, &w(0, 0, 10)), Outcome::Done(10));
    assert_eq!(
        fs.counters().inflight_ios,
        0,
        "the write completed the IO it waited for"
    );
    assert_eq!(
        st(&fs, 0, 0),
        BlockObs {
            extent: ExtentState::Written,
            cache: CacheState::Dirty,
            writeback: false
        }
    );
    assert_eq!(fs.apply(4, &Op::CompleteIo { n: 1 }), Outcome::Done(0));
    clean(&fs);
    assert_eq!(fs.apply(5, &Op::Fsync { file: 0 }), Outcome::Done(0));
}

#[test]
fn unstable_pages_gives_eio() {
    let fs = fs1(Bugs::only(Bug::UnstablePages));
    fs.apply(1, &w(0, 0, 1024));
    fs.apply(
        2,
        &Op::Flush {
            file: 0,
            off: 0,
            len: 4096,
        },
    );
    fs.apply(3, &w(0, 0, 10));
    assert_eq!(fs.apply(4, &Op::CompleteIo { n: 1 }), Outcome::Done(1));
    assert!(names(&fs).contains(&"checksum-mismatch"));
    assert_eq!(
        fs.apply(5, &Op::Fsync { file: 0 }),
        Outcome::Err(Errno::Eio)
    );
}

#[test]
fn discard_keeps_dirty_leaves_dirty_over_hole() {
    for bugs in [Bugs::NONE, Bugs::only(Bug::DiscardKeepsDirty)] {
        let fs = fs1(bugs);
        fs.apply(1, &w(0, 0, 1024));
        fs.apply(2, &Op::CorruptAllocBtree);
        assert_eq!(
            fs.apply(
                3,
                &Op::Flush {
                    file: 0,
                    off: 0,
                    len: 1
                }
            ),
            Outcome::Done(0)
        );
        assert_eq!(fs.wb_error(0), Some(Errno::Efscorrupted));
        if bugs.is_empty() {
            assert_eq!(st(&fs, 0, 0).extent, ExtentState::Delalloc);
            clean(&fs);
        } else {
            assert_eq!(
                st(&fs, 0, 0),
                BlockObs {
                    extent: ExtentState::Hole,
                    cache: CacheState::Dirty,
                    writeback: false
                }
            );
            assert!(names(&fs).contains(&"dirty-over-hole"));
            // The oracle's scoped check sees it inside the block's folio and not elsewhere.
            let scoped = |first, end| -> Vec<&'static str> {
                let v = fs.check_invariants_in(0, first, end);
                v.into_iter().map(|v| v.name).collect()
            };
            assert!(scoped(0, 1).contains(&"dirty-over-hole"));
            assert!(!scoped(8, 16).contains(&"dirty-over-hole"));
            fs.apply(4, &Op::RepairAllocBtree);
            // Later writeback trips over the unbacked dirty data.
            assert_eq!(
                fs.apply(5, &Op::Fsync { file: 0 }),
                Outcome::Err(Errno::Efscorrupted)
            );
        }
    }
}

#[test]
fn invalidate_policy_and_wide_punch() {
    for bugs in [Bugs::NONE, Bugs::only(Bug::DiscardWidePunch)] {
        let fs = Fs::new(&config(1024, 1, 256, Policy::Invalidate, &[false]), bugs);
        fs.apply(1, &w(0, 0, 8192));
        fs.apply(2, &Op::CorruptAllocBtree);
        assert_eq!(
            fs.apply(
                3,
                &Op::Flush {
                    file: 0,
                    off: 0,
                    len: 4096
                }
            ),
            Outcome::Done(0)
        );
        assert_eq!(
            st(&fs, 0, 0),
            BlockObs::UNTOUCHED,
            "failing folio punched and dropped"
        );
        assert_eq!(fs.peek(0, 0, 4096), vec![0u8; 4096]);
        if bugs.is_empty() {
            assert_eq!(
                st(&fs, 0, 4),
                BlockObs {
                    extent: ExtentState::Delalloc,
                    cache: CacheState::Dirty,
                    writeback: false
                }
            );
            assert_eq!(fs.counters().reserved, 4);
            clean(&fs);
        } else {
            assert_eq!(
                st(&fs, 0, 4),
                BlockObs {
                    extent: ExtentState::Hole,
                    cache: CacheState::Dirty,
                    writeback: false
                }
            );
            assert_eq!(fs.counters().reserved, 0);
            assert!(names(&fs).contains(&"dirty-over-hole"));
        }
    }
}

#[test]
fn punch_zero_truncate() {
    let fs = fs1(Bugs::NONE);
    fs.apply(1, &w(0, 0, 8192));
    assert_eq!(fs.apply(2, &Op::Fsync { file: 0 }), Outcome::Done(0));
    // Punch [1500, 5000): block 1 partial, 2..4 whole (folio 0 partly, folio 1 partly), block 4 partial.
    assert_eq!(
        fs.apply(
            3,
            &Op::PunchHole {
                file: 0,
                off: 1500,
                len: 3500
            }
        ),
        Outcome::Done(0)
    );
    let mut want = pattern(1, 0, 8192);
    want[1500..5000].fill(0);
    assert_eq!(fs.peek(0, 0, 8192), want);
    assert_eq!(
        st(&fs, 0, 1),
        BlockObs {
            extent: ExtentState::Written,
            cache: CacheState::Dirty,
            writeback: false
        }
    );
    assert_eq!(
        st(&fs, 0, 2),
        BlockObs {
            extent: ExtentState::Hole,
            cache: CacheState::Clean,
            writeback: false
        }
    );
    assert_eq!(st(&fs, 0, 4).cache, CacheState::Dirty);
    clean(&fs);
    // Zero range, whole blocks become unwritten.
    assert_eq!(
        fs.apply(
            4,
            &Op::ZeroRange {
                file: 0,
                off: 5120,
                len: 2048,
                keep_size: false
            }
        ),
        Outcome::Done(0)
    );
    want[5120..7168].fill(0);
    assert_eq!(fs.peek(0, 0, 8192), want);
    assert_eq!(st(&fs, 0, 5).extent, ExtentState::Unwritten);
    clean(&fs);
    // Truncate down into the middle of a written block.
    assert_eq!(
        fs.apply(5, &Op::Truncate { file: 0, size: 700 }),
        Outcome::Done(0)
    );
    assert_eq!(fs.size(0), 700);
    assert_eq!(fs.peek(0, 0, 8192), want[..700].to_vec());
    assert_eq!(st(&fs, 0, 1).extent, ExtentState::Hole);
    assert_eq!(
        st(&fs, 0, 0),
        BlockObs {
            extent: ExtentState::Written,
            cache: CacheState::Dirty,
            writeback: false
        }
    );
    clean(&fs);
    fs.apply(
        6,
        &Op::Truncate {
            file: 0,
            size: 3000,
        },
    );
    let mut w2 = want[..700].to_vec();
    w2.resize(3000, 0);
    assert_eq!(fs.peek(0, 0, 8192), w2);
    assert_eq!(fs.apply(7, &Op::EvictInode { file: 0 }), Outcome::Done(1));
    assert_eq!(fs.peek(0, 0, 8192), w2);
    clean(&fs);
    assert_eq!(
        fs.apply(
            8,
            &Op::PunchHole {
                file: 0,
                off: 0,
                len: 0
            }
        ),
        Outcome::Err(Errno::Einval)
    );
    assert_eq!(
        fs.apply(
            8,
            &Op::Truncate {
                file: 0,
                size: (1 << 20) + 1
            }
        ),
        Outcome::Err(Errno::Efbig)
    );
}

#[test]
fn fallocate_and_direct_write() {
    let fs = fs1(Bugs::NONE);
    fs.apply(1, &w(0, 0, 1024));
    assert_eq!(
        fs.apply(
            2,
            &Op::Fallocate {
                file: 0,
                off: 0,
                len: 4096,
                keep_size: true
            }
        ),
        Outcome::Done(0)
    );
    assert_eq!(
        st(&fs, 0, 0),
        BlockObs {
            extent: ExtentState::Unwritten,
            cache: CacheState::Dirty,
            writeback: false
        }
    );
    assert_eq!(fs.size(0), 1024);
    let c = fs.counters();
    assert_eq!((c.reserved, c.allocated), (0, 4));
    assert_eq!(
        fs.apply(
            3,
            &Op::DirectWrite {
                file: 0,
                off: 1024,
                len: 2048
            }
        ),
        Outcome::Done(2048)
    );
    assert_eq!(fs.size(0), 3072);
    let mut want = pattern(1, 0, 1024);
    want.extend(pattern(3, 1024, 2048));
    assert_eq!(
        fs.apply(
            4,
            &Op::Read {
                file: 0,
                off: 0,
                len: 5000
            }
        ),
        Outcome::Data(want)
    );
    assert_eq!(
        st(&fs, 0, 0).extent,
        ExtentState::Written,
        "the direct write flushed the folio"
    );
    clean(&fs);
    fs.apply(5, &Op::CorruptAllocBtree);
    assert_eq!(
        fs.apply(
            6,
            &Op::DirectWrite {
                file: 0,
                off: 8192,
                len: 1024
            }
        ),
        Outcome::Err(Errno::Efscorrupted)
    );
    assert_eq!(
        fs.apply(
            7,
            &Op::DirectWrite {
                file: 0,
                off: 0,
                len: 1024
            }
        ),
        Outcome::Done(1024)
    );
    assert_eq!(
        fs.apply(
            8,
            &Op::PunchHole {
                file: 0,
                off: 0,
                len: 1024
            }
        ),
        Outcome::Err(Errno::Efscorrupted)
    );
    assert_eq!(
        fs.apply(
            9,
            &Op::Fallocate {
                file: 0,
                off: 0,
                len: 1024,
                keep_size: false
            }
        ),
        Outcome::Done(0)
    );
    clean(&fs);
}

#[test]
fn mmap_faults() {
    let fs = fs1(Bugs::NONE);
    assert_eq!(
        fs.apply(
            1,
            &Op::MmapWrite {
                file: 0,
                off: 0,
                len: 10
            }
        ),
        Outcome::Err(Errno::Efault)
    );
    fs.apply(
        2,
        &Op::Truncate {
            file: 0,
            size: 2500,
        },
    );
    assert_eq!(
        fs.apply(
            3,
            &Op::MmapRead {
                file: 0,
                off: 100,
                len: 100_000
            }
        ),
        Outcome::Data(vec![0; 2400])
    );
    assert_eq!(
        st(&fs, 0, 3),
        BlockObs {
            extent: ExtentState::Hole,
            cache: CacheState::Clean,
            writeback: false
        }
    );
    assert_eq!(
        fs.apply(
            4,
            &Op::MmapWrite {
                file: 0,
                off: 1000,
                len: 100_000
            }
        ),
        Outcome::Done(1500)
    );
    for b in 0..3 {
        assert_eq!(
            st(&fs, 0, b),
            BlockObs {
                extent: ExtentState::Delalloc,
                cache: CacheState::Dirty,
                writeback: false
            }
        );
    }
    assert_eq!(
        st(&fs, 0, 3),
        BlockObs {
            extent: ExtentState::Hole,
            cache: CacheState::Clean,
            writeback: false
        }
    );
    assert_eq!(fs.counters().reserved, 3);
    clean(&fs);
}

#[test]
fn journaled_data() {
    let fs = Fs::new(
        &config(1024, 1, 256, Policy::KeepDirty, &[true, false]),
        Bugs::NONE,
    );
    assert_eq!(fs.apply(1, &w(0, 512, 2048)), Outcome::Done(2048));
    assert_eq!(
        st(&fs, 0, 0),
        BlockObs {
            extent: ExtentState::Unwritten,
            cache: CacheState::Dirty,
            writeback: false
        }
    );
    assert_eq!(fs.counters().allocated, 3);
    assert_eq!(
        fs.apply(2, &Op::Reclaim { file: 0, folio: 0 }),
        Outcome::Done(0),
        "logged blocks pin the folio"
    );
    assert_eq!(
        fs.apply(3, &Op::JournalCommit { file: 1 }),
        Outcome::Done(0)
    );
    assert_eq!(
        fs.apply(4, &Op::JournalCommit { file: 0 }),
        Outcome::Done(3)
    );
    assert_eq!(
        st(&fs, 0, 2),
        BlockObs {
            extent: ExtentState::Written,
            cache: CacheState::Clean,
            writeback: false
        }
    );
    assert_eq!(
        fs.apply(
            5,
            &Op::Flush {
                file: 0,
                off: 0,
                len: 1
            }
        ),
        Outcome::Done(0)
    );
    assert_eq!(
        fs.apply(6, &Op::Reclaim { file: 0, folio: 0 }),
        Outcome::Done(1)
    );
    let mut want = vec![0u8; 512];
    want.extend(pattern(1, 512, 2048));
    assert_eq!(fs.peek(0, 0, 4096), want);
    clean(&fs);
}

#[test]
fn put_folio_after_unlock_sequentially_harmless() {
    let fs = Fs::new(
        &config(1024, 1, 256, Policy::KeepDirty, &[true]),
        Bugs::only(Bug::PutFolioAfterUnlock),
    );
    fs.apply(1, &w(0, 0, 3000));
    assert_eq!(st(&fs, 0, 0).cache, CacheState::Dirty);
    assert_eq!(fs.apply(2, &Op::Fsync { file: 0 }), Outcome::Done(0));
    clean(&fs);
}

#[test]
fn hostile_arguments_never_panic() {
    let big = [0, 1, 511, 4096, u64::MAX / 2, u64::MAX - 1, u64::MAX];
    for jdata in [false, true] {
        let fs = Fs::new(
            &config(512, 4, 64, Policy::Invalidate, &[jdata]),
            Bugs::NONE,
        );
        let mut seq = 0;
        for &a in &big {
            for &b in &big {
                for op in [
                    Op::Write {
                        file: 0,
                        off: a,
                        len: b,
                        sync: true,
                    },
                    Op::Read {
                        file: 0,
                        off: a,
                        len: b,
                    },
                    Op::DirectWrite {
                        file: 0,
                        off: a,
                        len: b,
                    },
                    Op::DirectRead {
                        file: 0,
                        off: a,
                        len: b,
                    },
                    Op::MmapWrite {
                        file: 0,
                        off: a,
                        len: b,
                    },
                    Op::MmapRead {
                        file: 0,
                        off: a,
                        len: b,
                    },
                    Op::Fallocate {
                        file: 0,
                        off: a,
                        len: b,
                        keep_size: false,
                    },
                    Op::PunchHole {
                        file: 0,
                        off: a,
                        len: b,
                    },
                    Op::ZeroRange {
                        file: 0,
                        off: a,
                        len: b,
                        keep_size: true,
                    },
                    Op::Truncate { file: 0, size: a },
                    Op::Flush {
                        file: 0,
                        off: a,
                        len: b,
                    },
                    Op::Reclaim { file: 0, folio: a },
                    Op::CompleteIo { n: u32::MAX },
                ] {
                    seq += 1;
                    fs.apply(seq, &op);
                }
                clean(&fs);
                let _ = fs.blocks(0, 0, fs.block_span(0));
                let _ = fs.peek(0, a, b);
            }
        }
        assert_eq!(
            fs.apply(1, &Op::Fsync { file: 9 }),
            Outcome::Err(Errno::Einval)
        );
    }
}

// ----- Regressions found by differential hunts (expected values derived by hand from SPEC.md) -----

fn cfg_inval(bs: u32, folio_pages: u32, cap: u64) -> Fs {
    Fs::new(
        &Config {
            geometry: Geometry {
                block_size: bs,
                folio_pages,
                capacity_blocks: cap,
                max_file_size: 0x10000,
            },
            policy: Policy::Invalidate,
            files: vec![FileSpec { jdata: false }],
        },
        Bugs::NONE,
    )
}

/// corpus/regressions/truncate-disk-tail.wbf: truncate-down zeroes the on-disk tail of a
/// `Written` new-EOF block at once, so an `invalidate` discard of that folio later cannot expose
/// the stale bytes past the old EOF.
#[test]
fn regression_truncate_zeroes_disk_tail() {
    let fs = cfg_inval(1024, 1, 64);
    let dw = Op::DirectWrite {
        file: 0,
        off: 0,
        len: 0x400,
    };
    assert_eq!(fs.apply(1, &dw), Outcome::Done(0x400));
    assert_eq!(
        fs.apply(2, &Op::Truncate { file: 0, size: 1 }),
        Outcome::Done(0)
    );
    assert_eq!(fs.apply(3, &Op::CorruptAllocBtree), Outcome::Done(0));
    assert_eq!(fs.apply(4, &w(0, 0, 0x4b2)), Outcome::Done(0x4b2));
    // Writeback of folio 0 fails (block 1 is delalloc, the root is corrupt): invalidate drops
    // the folio with the write's data; nothing stays dirty, so eviction succeeds.
    assert_eq!(fs.apply(5, &Op::EvictInode { file: 0 }), Outcome::Done(1));
    assert_eq!(fs.size(0), 0x4b2);
    let mut want = vec![0u8; 0x4b2];
    want[0] = pattern(1, 0, 1)[0];
    assert_eq!(fs.peek(0, 0, 0x4b2), want);
    assert_eq!(st(&fs, 0, 0).extent, ExtentState::Written);
    assert_eq!(st(&fs, 0, 1).extent, ExtentState::Hole);
    clean(&fs);
    assert_eq!(
        fs.apply(6, &Op::Fsync { file: 0 }),
        Outcome::Err(Errno::Efscorrupted)
    );
}

/// corpus/regressions/zero-range-eof-clip.wbf: the edge zeroing of a zero-range that extends
/// the file is clipped to the old EOF, so a partial block past it is not dirtied.
#[test]
fn regression_zero_range_edge_clipped_to_old_eof() {
    let fs = Fs::new(
        &Config {
            geometry: Geometry {
                block_size: 4096,
                folio_pages: 1,
                capacity_blocks: 157,
                max_file_size: 0xe000,
            },
            policy: Policy::KeepDirty,
            files: vec![FileSpec { jdata: true }],
        },
        Bugs::NONE,
    );
    assert_eq!(fs.apply(1, &w(0, 0x7f91, 0x2070)), Outcome::Done(0x2070));
    assert_eq!(
        fs.apply(
            2,
            &Op::Flush {
                file: 0,
                off: 0,
                len: 1
            }
        ),
        Outcome::Done(4)
    );
    let z = Op::ZeroRange {
        file: 0,
        off: 0xace4,
        len: 1,
        keep_size: false,
    };
    assert_eq!(fs.apply(3, &z), Outcome::Done(0));
    assert_eq!(fs.size(0), 0xace5);
    assert_eq!(
        st(&fs, 0, 10),
        BlockObs {
            extent: ExtentState::Written,
            cache: CacheState::Clean,
            writeback: false
        }
    );
    clean(&fs);
}
