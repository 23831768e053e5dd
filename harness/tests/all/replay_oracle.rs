//! The concurrent oracle reports a wrong step of the implementation as the reference's typed
//! replay error: the `dirty-after-dio-flush` reproducer (a write fault dirties folio 0 between
//! a direct write's flush and its cache drop) is refused at the direct write's commit, naming
//! the dirty blocks, where taking the implementation's word for the drop lost the fault's data
//! in both models.

use reference::model::replay::ReplayError;
use reference::{Op, Step};
use std::path::Path;
use wbfuzz::bugs::{Bug, Bugs};
use wbfuzz::exec;
use wbfuzz::oracle::{Mismatch, Verdict};

#[test]
fn dirty_after_dio_flush_is_refused_at_the_cache_drop() {
    let path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../corpus/bugs/dirty-after-dio-flush.wbf");
    let input = exec::load(&path, None).expect("the reproducer loads");
    let off = exec::run_input(&input, Bugs::NONE);
    assert_eq!(off.verdict, Verdict::Agree);
    let on = exec::run_input(&input, Bugs::only(Bug::DirtyAfterDioFlush));
    let d = on.divergence().expect("diverges with the switch on");
    let dwrite = Op::DirectWrite {
        file: 0,
        off: 0,
        len: 0x400,
    };
    // Blocks 0-3: the fault dirtied folio 0 up to EOF (4096).
    match &d.mismatches[..] {
        [Mismatch::Replay { error, .. }] => assert_eq!(
            error,
            &ReplayError::DirtyAtDrop {
                step: Step::Op { seq: 2 },
                op: dwrite,
                file: 0,
                blocks: vec![0, 1, 2, 3],
            }
        ),
        other => panic!("expected the replay to refuse the drop, got {other:?}"),
    }
}

/// A `crash` on one thread of a concurrent run is replayed: the write on the other thread lies
/// wholly before or after the cut (the crash quiesces through IOLOCK), and both agree.
#[test]
fn a_crash_in_a_concurrent_input_is_replayed() {
    use reference::{Config, FileSpec, Geometry, Input, Policy};
    let input = Input {
        config: Config {
            geometry: Geometry {
                block_size: 1024,
                folio_pages: 1,
                capacity_blocks: 64,
                max_file_size: 0x10000,
            },
            policy: Policy::KeepDirty,
            files: vec![FileSpec { jdata: false }],
        },
        threads: vec![
            vec![Op::Write {
                file: 0,
                off: 0,
                len: 0x400,
                sync: false,
            }],
            vec![Op::Crash {
                land: 1,
                torn: 0,
                tear: 0,
            }],
        ],
        schedule: vec![],
    };
    let run = exec::run_input(&input, Bugs::NONE);
    assert_eq!(run.verdict, Verdict::Agree);
    assert!(run.commit_log.contains(&reference::Step::Op { seq: 2 }));
}
