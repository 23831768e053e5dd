//! The end-of-run epilogue and the numbering of every op a run executes.
//!
//! Owns the one definition of what ends every run (sequential, concurrent, and the benchmark's
//! model-alone runs): repair the free-space btree, fsync every file, complete all IO, evict
//! every file; and of the sequence numbers its ops get: the input's ops are `1..=n` thread by
//! thread ([`Input::numbered_ops`]), the epilogue's follow as `n+1, n+2, ...`. The sequence
//! number selects an op's data pattern, so every runner must number the same way.

use reference::{FileId, Input, Op};

/// One op of a run, numbered.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RunOp {
    /// The input thread that runs it (epilogue ops: 0; they run after every thread joined).
    pub thread: usize,
    /// Sequence number (data pattern selector).
    pub seq: u32,
    /// The op.
    pub op: Op,
    /// Whether it belongs to the epilogue.
    pub epilogue: bool,
}

/// The epilogue's ops with their sequence numbers.
pub fn epilogue(input: &Input) -> Vec<(u32, Op)> {
    let files = input.config.files.len() as FileId;
    let mut ops = vec![Op::RepairAllocBtree];
    ops.extend((0..files).map(|file| Op::Fsync { file }));
    ops.push(Op::CompleteIo { n: u32::MAX });
    ops.extend((0..files).map(|file| Op::EvictInode { file }));
    let base = input.op_count() as u32;
    ops.into_iter()
        .enumerate()
        .map(|(k, op)| (base + 1 + k as u32, op))
        .collect()
}

/// Every op a run executes, in sequence-number order: the input's, then the epilogue's.
pub fn run_ops(input: &Input) -> Vec<RunOp> {
    let mut v: Vec<RunOp> = input
        .numbered_ops()
        .map(|(thread, seq, op)| RunOp {
            thread,
            seq,
            op: op.clone(),
            epilogue: false,
        })
        .collect();
    v.extend(epilogue(input).into_iter().map(|(seq, op)| RunOp {
        thread: 0,
        seq,
        op,
        epilogue: true,
    }));
    v
}
