//! Divergence reports: the op trace with both outcomes, the first divergence, and `similar` diffs
//! of the contents (a hexdump around the first bad byte) and of the block-state maps, with the
//! op that wrote a wrong byte named from the data pattern.

use crate::bugs::Bugs;
use crate::oracle::{Mismatch, Run, TraceEntry};
use reference::pattern::writers_of;
use reference::{BlockObs, Input, Op};
use similar::TextDiff;
use std::fmt::Write as _;

/// Renders a one-line summary of the run's configuration.
pub fn config_line(input: &Input) -> String {
    let g = &input.config.geometry;
    let files: Vec<String> = input
        .config
        .files
        .iter()
        .enumerate()
        .map(|(i, f)| {
            if f.jdata {
                format!("f{i}(jdata)")
            } else {
                format!("f{i}")
            }
        })
        .collect();
    format!(
        "block={} folio-pages={} capacity={} max-size={:#x} policy={} files={} threads={} ops={}",
        g.block_size,
        g.folio_pages,
        g.capacity_blocks,
        g.max_file_size,
        input.config.policy.keyword(),
        files.join(","),
        input.threads.len(),
        input.op_count()
    )
}

fn trace_line(e: &TraceEntry, mark: bool) -> String {
    let who = if e.epilogue {
        "end".to_string()
    } else {
        format!("t{}", e.thread)
    };
    let outcome = if e.reference == e.implementation {
        e.reference.to_string()
    } else {
        format!(
            "reference {} | implementation {}",
            e.reference, e.implementation
        )
    };
    format!(
        "{} {:<3} #{:<4} {:<34} -> {}",
        if mark { ">>" } else { "  " },
        who,
        e.seq,
        e.op.to_string(),
        outcome
    )
}

/// Writes the trace of a run, one line per op; the op where the divergence was seen is marked.
pub fn render_trace(run: &Run) -> String {
    let at = run.divergence().map(|d| d.at);
    let mut s = String::new();
    for (k, e) in run.trace.iter().enumerate() {
        let _ = writeln!(s, "{}", trace_line(e, Some(k) == at));
    }
    s
}

/// A hexdump of `bytes` (16 per row), rows labelled with file offsets from `base`.
pub fn hexdump(base: u64, bytes: &[u8]) -> String {
    let mut s = String::new();
    for (row, chunk) in bytes.chunks(16).enumerate() {
        let _ = write!(s, "{:08x} ", base + row as u64 * 16);
        for b in chunk {
            let _ = write!(s, " {b:02x}");
        }
        s.push('\n');
    }
    s
}

/// Run-length description of block states, one line per run of equal states.
fn block_map(first: u64, blocks: &[BlockObs]) -> String {
    let mut s = String::new();
    let mut k = 0;
    while k < blocks.len() {
        let mut j = k;
        while j + 1 < blocks.len() && blocks[j + 1] == blocks[k] {
            j += 1;
        }
        let b = blocks[k];
        let _ = writeln!(
            s,
            "blocks {:>5}-{:<5} {:?} {:?}{}",
            first + k as u64,
            first + j as u64,
            b.extent,
            b.cache,
            if b.writeback { " writeback" } else { "" }
        );
        k = j + 1;
    }
    s
}

fn diff(old: &str, new: &str) -> String {
    diff_labeled(old, new, "reference", "implementation")
}

/// A unified line diff of `old` (labelled `a`) against `new` (labelled `b`).
pub fn diff_labeled(old: &str, new: &str, a: &str, b: &str) -> String {
    TextDiff::from_lines(old, new)
        .unified_diff()
        .context_radius(4)
        .header(a, b)
        .to_string()
}

fn op_seqs(run: &Run) -> Vec<u32> {
    run.trace
        .iter()
        .filter(|e| {
            matches!(
                e.op,
                Op::Write { .. } | Op::DirectWrite { .. } | Op::MmapWrite { .. }
            )
        })
        .map(|e| e.seq)
        .collect()
}

/// What byte `k` of `bytes` (file offset `off`) is, and which op of the run wrote it.
fn describe_byte(bytes: &[u8], k: usize, off: u64, run: &Run) -> String {
    match bytes.get(k) {
        None => "nothing (past the end)".to_string(),
        Some(0) => "00 (zeros: no data)".to_string(),
        Some(&b) if looks_stale(bytes, k) => {
            format!("{b:02x} (stale disk bytes: no write reached this block)")
        }
        Some(&b) => {
            let w = writers_of(b, off, op_seqs(run));
            if w.is_empty() {
                format!("{b:02x} (written by no op of this run)")
            } else {
                let names: Vec<String> = w.iter().map(|s| format!("#{s}")).collect();
                format!("{b:02x} (as written by op {})", names.join(" or "))
            }
        }
    }
}

/// Whether byte `k` starts a run of at least 8 equal stale bytes (`0xD0..=0xDF`, the contents of
/// a block no write reached: SPEC.md "Durability"). One op's pattern never repeats a byte at
/// consecutive offsets, so such a run is no write's.
fn looks_stale(bytes: &[u8], k: usize) -> bool {
    let Some(run) = bytes.get(k..k + 8) else {
        return false;
    };
    (0xD0..=0xDF).contains(&run[0]) && run.iter().all(|&x| x == run[0])
}

/// Bytes of context either side of the first differing byte of two reads.
const READ_CONTEXT: usize = 64;

/// Two reads of file offset `off` that returned different bytes: where they first differ, what
/// each side holds there and who wrote it, and a hexdump diff of the window around it.
fn render_read_diff(off: u64, reference: &[u8], implementation: &[u8], run: &Run) -> String {
    let k = reference
        .iter()
        .zip(implementation)
        .position(|(a, b)| a != b)
        .unwrap_or(reference.len().min(implementation.len()));
    let lo = k.saturating_sub(READ_CONTEXT) / 16 * 16;
    let window = |b: &[u8]| b[lo.min(b.len())..(k + READ_CONTEXT).min(b.len())].to_vec();
    let (r, i) = (window(reference), window(implementation));
    format!(
        "read of {off:#x} returned {:#x} bytes (reference) and {:#x} (implementation); first \
         difference at {:#x}: reference {}, implementation {}\n{}",
        reference.len(),
        implementation.len(),
        off + k as u64,
        describe_byte(reference, k, off + k as u64, run),
        describe_byte(implementation, k, off + k as u64, run),
        diff(&hexdump(off + lo as u64, &r), &hexdump(off + lo as u64, &i))
    )
}

/// Describes one mismatch, with diffs where they help; `op` is the op it was seen after.
fn render_mismatch(m: &Mismatch, run: &Run, op: Option<&Op>) -> String {
    match m {
        Mismatch::Outcome { reference, implementation, bytes } => {
            let read_off = match op {
                Some(Op::Read { off, .. } | Op::DirectRead { off, .. } | Op::MmapRead { off, .. }) => {
                    Some(*off)
                }
                _ => None,
            };
            match (bytes, read_off) {
                (Some((r, i)), Some(off)) => render_read_diff(off, r, i, run),
                _ => format!("outcome: reference {reference}, implementation {implementation}\n"),
            }
        }
        Mismatch::Size { file, reference, implementation } => {
            format!("f{file} size: reference {reference:#x}, implementation {implementation:#x}\n")
        }
        Mismatch::Counters { reference, implementation } => format!(
            "counters: reference {reference:?}\n          implementation {implementation:?}\n"
        ),
        Mismatch::WbError { file, reference, implementation } => format!(
            "f{file} recorded writeback error: reference {reference:?}, implementation {implementation:?}\n"
        ),
        Mismatch::Corruption { reference, implementation } => {
            format!("btree corrupt flag: reference {reference}, implementation {implementation}\n")
        }
        Mismatch::Invariant { side, violation } => {
            format!("invariant broken in the {}: {violation}\n", side.name())
        }
        Mismatch::Contents { file, first_bad, base, reference, implementation } => {
            let k = (first_bad - base) as usize;
            let describe = |bytes: &[u8]| describe_byte(bytes, k, *first_bad, run);
            format!(
                "f{file} contents differ first at {first_bad:#x}: reference {}, implementation {}\n{}",
                describe(reference),
                describe(implementation),
                diff(&hexdump(*base, reference), &hexdump(*base, implementation))
            )
        }
        Mismatch::Replay { index, error } => {
            format!("commit log entry {index} cannot be replayed: {error}\n")
        }
        Mismatch::Deadlock { detail } => format!("deadlock: every thread blocked ({detail})\n"),
        Mismatch::Panic { detail } => format!("the implementation panicked: {detail}\n"),
        Mismatch::Blocks { file, first, reference, implementation } => format!(
            "f{file} block states differ (blocks from {first}):\n{}",
            diff(&block_map(*first, reference), &block_map(*first, implementation))
        ),
    }
}

/// The full divergence report for a run of `input` named `name` (empty string if the run agreed).
pub fn render(name: &str, input: &Input, bugs: Bugs, run: &Run) -> String {
    let Some(d) = run.divergence() else {
        return String::new();
    };
    let mut s = String::new();
    let _ = writeln!(s, "wbfuzz: DIVERGENCE in {name} (bug switches: {bugs})");
    let _ = writeln!(s, "config: {}", config_line(input));
    let _ = writeln!(s, "\nop trace (thread, seq, op -> outcome):");
    s.push_str(&render_trace(run));
    if !run.commit_log.is_empty() {
        let _ = writeln!(
            s,
            "\ncommit order (schedule {} bytes):",
            input.schedule.len()
        );
        for (k, step) in run.commit_log.iter().enumerate() {
            let _ = writeln!(s, "  {k:>4} {step}");
        }
    }
    match run.trace.get(d.at) {
        Some(e) if run.commit_log.is_empty() => {
            let _ = writeln!(
                s,
                "\nfirst divergence after {} #{} `{}`:",
                if e.epilogue { "end-of-run" } else { "op" },
                e.seq,
                e.op
            );
        }
        _ => {
            let _ = writeln!(s, "\ndivergence in the concurrent run:");
        }
    }
    let op = run.trace.get(d.at).map(|e| &e.op);
    for m in &d.mismatches {
        for line in render_mismatch(m, run, op).lines() {
            let _ = writeln!(s, "  {line}");
        }
    }
    s
}
