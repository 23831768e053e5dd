//! Structural mutations of inputs for the guided hunt ([`crate::hunt`]): edits that keep an input
//! well-formed and change what it means in one piece (an op, a thread, the schedule, the
//! configuration), unlike byte flips of its binary encoding, which mostly re-decode to an
//! unrelated input.
//!
//! Invariants: every mutation is a pure function of the generator's state and its inputs; a
//! mutated input is valid (geometry validates, 1 to [`MAX_THREADS`] threads, no `crash` in a
//! multi-thread input, file indices in range, at most [`MAX_OPS_PER_THREAD`] ops per thread of a
//! concurrent input and [`MAX_SEQUENTIAL_OPS`] in a sequential one); a sequential input stays
//! sequential and a concurrent one concurrent (the targets differ in what they check). No locks.

use crate::generators::{draw_schedule, random_op, OpShape, SplitMix};
use crate::input::decode::{MAX_SCHEDULE, MAX_SEQUENTIAL_OPS};
use reference::geometry::{BLOCK_SIZES, FOLIO_PAGES, MAX_THREADS};
use reference::{Input, Op, Policy};

/// Most ops a thread of a mutated concurrent input holds (a little above what decoding makes,
/// so that duplicated racers fit; each op costs ~50 scheduling points).
pub const MAX_OPS_PER_THREAD: usize = 16;

/// Most schedule bytes a mutated input keeps (recorded schedules of long runs exceed what binary
/// decoding gives, [`MAX_SCHEDULE`], and must stay whole to replay).
pub const MAX_MUTATED_SCHEDULE: usize = 4096;

/// Which part of the input a mutation changed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Changed {
    /// Ops, threads or configuration: the old schedule no longer means the same interleaving.
    Structure,
    /// Only the schedule bytes: run them as they are.
    Schedule,
}

/// Applies one to four stacked mutations to `input`; `other` (another corpus input) is the
/// donor of splices. Returns what the last mutation changed (a schedule-only mutation must be
/// run under its bytes to mean anything).
pub fn mutate(rng: &mut SplitMix, input: &mut Input, other: Option<&Input>) -> Changed {
    let n = 1 + rng.below(4);
    let mut changed = Changed::Structure;
    for _ in 0..n {
        changed = mutate_once(rng, input, other);
    }
    repair(input);
    changed
}

fn shape(input: &Input) -> OpShape {
    OpShape::for_geometry(
        &input.config.geometry,
        input.config.files.len().max(1) as u8,
    )
}

/// Positions of every op, as (thread, index).
fn positions(input: &Input) -> Vec<(usize, usize)> {
    input
        .threads
        .iter()
        .enumerate()
        .flat_map(|(t, ops)| (0..ops.len()).map(move |k| (t, k)))
        .collect()
}

fn pick(rng: &mut SplitMix, input: &Input) -> Option<(usize, usize)> {
    let p = positions(input);
    p.get(rng.below(p.len() as u64) as usize).copied()
}

/// The byte offset an op is placed at, if it has one (reclaim: its folio's start).
fn place(op: &Op, folio: u64) -> Option<u64> {
    match *op {
        Op::Write { off, .. }
        | Op::Read { off, .. }
        | Op::DirectWrite { off, .. }
        | Op::DirectRead { off, .. }
        | Op::MmapWrite { off, .. }
        | Op::MmapRead { off, .. }
        | Op::Fallocate { off, .. }
        | Op::PunchHole { off, .. }
        | Op::ZeroRange { off, .. }
        | Op::Flush { off, .. } => Some(off),
        Op::Reclaim { folio: f, .. } => Some(f.saturating_mul(folio)),
        Op::Truncate { size, .. } => Some(size),
        _ => None,
    }
}

fn mutate_once(rng: &mut SplitMix, input: &mut Input, other: Option<&Input>) -> Changed {
    if input.threads.is_empty() {
        input.threads.push(Vec::new());
    }
    let concurrent = input.threads.len() > 1;
    let g = input.config.geometry;
    let folio = g.folio_size();
    match rng.below(14) {
        // Insert a fresh op.
        0 | 1 => {
            let t = rng.below(input.threads.len() as u64) as usize;
            if let (Some(op), Some(ops)) = (random_op(rng, &shape(input)), input.threads.get_mut(t))
            {
                let at = rng.below(ops.len() as u64 + 1) as usize;
                ops.insert(at, op);
            }
        }
        // Delete an op.
        2 => {
            if let Some((t, k)) = pick(rng, input) {
                input.threads[t].remove(k);
            }
        }
        // Swap two ops (across threads too).
        3 => {
            if let (Some(a), Some(b)) = (pick(rng, input), pick(rng, input)) {
                let x = input.threads[a.0][a.1].clone();
                let y = std::mem::replace(&mut input.threads[b.0][b.1], x);
                input.threads[a.0][a.1] = y;
            }
        }
        // Duplicate an op into a (possibly other) thread: the same range raced by itself.
        4 | 5 => {
            if let Some((t, k)) = pick(rng, input) {
                let op = input.threads[t][k].clone();
                let to = rng.below(input.threads.len() as u64) as usize;
                let at = rng.below(input.threads[to].len() as u64 + 1) as usize;
                input.threads[to].insert(at, op);
            }
        }
        // Move an op's range onto the folio of another op (same file too).
        6 | 7 => {
            if let (Some(a), Some(b)) = (pick(rng, input), pick(rng, input)) {
                let target = input.threads[b.0][b.1].clone();
                if let Some(at) = place(&target, folio) {
                    let base = at / folio * folio;
                    let op = &mut input.threads[a.0][a.1];
                    if let (Some(f), Some(tf)) = (op.file_mut(), target.file()) {
                        *f = tf;
                    }
                    let within = if rng.one_in(2) {
                        0
                    } else {
                        rng.below(folio) / g.bs() * g.bs()
                    };
                    match op {
                        Op::Reclaim { folio: f, .. } => *f = base / folio,
                        Op::Truncate { size, .. } => *size = base + within,
                        _ => {
                            if let Some((off, _)) = op.range_mut() {
                                *off = base + within;
                            }
                        }
                    }
                }
            }
        }
        // Re-draw the schedule, or splice a segment of the donor's (or random bytes) into it.
        8 | 9 if concurrent => {
            if !input.schedule.is_empty() && rng.one_in(2) {
                // Local edits keep most of the interleaving (a recorded schedule replays its
                // parent's exactly) and move, add or drop one switch.
                for _ in 0..1 + rng.below(3) {
                    nudge_schedule(rng, &mut input.schedule);
                }
            } else if rng.one_in(2) {
                input.schedule = draw_schedule(rng, input).unwrap_or_else(|| rng.bytes(64));
                input.schedule.truncate(MAX_SCHEDULE);
            } else {
                let cut = rng.below(input.schedule.len() as u64 + 1) as usize;
                input.schedule.truncate(cut);
                let donor = other
                    .filter(|o| !o.schedule.is_empty() && !rng.one_in(3))
                    .map(|o| {
                        let from = rng.below(o.schedule.len() as u64) as usize;
                        let len = 1 + rng.below(32) as usize;
                        o.schedule[from..(from + len).min(o.schedule.len())].to_vec()
                    })
                    .unwrap_or_else(|| rng.bytes(16));
                input.schedule.extend(donor);
            }
            return Changed::Schedule;
        }
        // Flip the writeback error policy.
        10 => {
            input.config.policy = match input.config.policy {
                Policy::KeepDirty => Policy::Invalidate,
                Policy::Invalidate => Policy::KeepDirty,
            };
        }
        // Change the geometry: block size, folio size or capacity.
        11 => {
            let mut ng = g;
            match rng.below(3) {
                0 => ng.block_size = BLOCK_SIZES[rng.below(3) as usize],
                1 => ng.folio_pages = FOLIO_PAGES[rng.below(3) as usize],
                _ => {
                    ng.capacity_blocks =
                        (ng.capacity_blocks / 2).max(8) + rng.below(ng.capacity_blocks.max(8))
                }
            }
            // A smaller folio size keeps `max_file_size` a multiple of it; a larger may not.
            if ng.validate().is_ok() {
                input.config.geometry = ng;
            }
        }
        // Splice a thread of the donor in place of one of ours (or, sequentially, its ops).
        12 => {
            if let Some(o) = other.filter(|o| !o.threads.is_empty()) {
                let src = &o.threads[rng.below(o.threads.len() as u64) as usize];
                let t = rng.below(input.threads.len() as u64) as usize;
                if rng.one_in(2) {
                    input.threads[t] = src.clone();
                } else {
                    let cut = rng.below(input.threads[t].len() as u64 + 1) as usize;
                    input.threads[t].truncate(cut);
                    let from = rng.below(src.len() as u64 + 1) as usize;
                    input.threads[t].extend_from_slice(&src[from..]);
                }
            }
        }
        // Move an op to another thread, or into a new thread.
        _ if concurrent => {
            if let Some((t, k)) = pick(rng, input) {
                let op = input.threads[t].remove(k);
                let to = if input.threads.len() < MAX_THREADS && rng.one_in(3) {
                    input.threads.push(Vec::new());
                    input.threads.len() - 1
                } else {
                    rng.below(input.threads.len() as u64) as usize
                };
                let at = rng.below(input.threads[to].len() as u64 + 1) as usize;
                input.threads[to].insert(at, op);
            }
        }
        // Sequential inputs: nudge an op's offset or length by a block or to a folio edge.
        _ => {
            if let Some((t, k)) = pick(rng, input) {
                if let Some((off, len)) = input.threads[t][k].range_mut() {
                    let v = if rng.one_in(2) { off } else { len };
                    *v = match rng.below(3) {
                        0 => v.saturating_add(g.bs()),
                        1 => v.saturating_sub(g.bs()),
                        _ => *v / folio * folio,
                    };
                }
            }
        }
    }
    Changed::Structure
}

/// One local edit of schedule bytes (each byte: the next thread in its high nibble, how long it
/// runs in its low nibble; see [`crate::schedule`]): a switch a little earlier or later, another
/// thread at one switch, a short preemption added, or a switch dropped.
fn nudge_schedule(rng: &mut SplitMix, bytes: &mut Vec<u8>) {
    if bytes.is_empty() {
        bytes.push((rng.below(16) as u8) << 4 | rng.below(4) as u8);
        return;
    }
    let at = rng.below(bytes.len() as u64) as usize;
    let b = bytes[at];
    match rng.below(4) {
        0 => {
            let k = (b & 0x0f) as i32 + if rng.one_in(2) { 1 } else { -1 };
            bytes[at] = (b & 0xf0) | k.clamp(0, 15) as u8;
        }
        1 => bytes[at] = (rng.below(16) as u8) << 4 | (b & 0x0f),
        2 => bytes.insert(at, (rng.below(16) as u8) << 4 | rng.below(4) as u8),
        _ => {
            bytes.remove(at);
        }
    }
}

/// Puts a mutated input back inside the bounds the module promises.
fn repair(input: &mut Input) {
    let files = input.config.files.len().max(1) as u8;
    let concurrent = input.threads.len() > 1;
    for ops in &mut input.threads {
        for op in ops.iter_mut() {
            if let Some(f) = op.file_mut() {
                *f %= files;
            }
        }
        if concurrent {
            ops.retain(|op| !matches!(op, Op::Crash { .. }));
            ops.truncate(MAX_OPS_PER_THREAD);
        } else {
            ops.truncate(MAX_SEQUENTIAL_OPS);
        }
    }
    if concurrent {
        // Drop emptied threads but keep the input concurrent (an empty thread is still a thread).
        let mut k = 0;
        input.threads.retain(|t| {
            k += 1;
            !t.is_empty() || k <= 2
        });
    }
    input.schedule.truncate(MAX_MUTATED_SCHEDULE);
}
