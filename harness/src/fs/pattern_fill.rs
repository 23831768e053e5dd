//! A fast, incremental generator of the data pattern (`reference::pattern_byte`), byte for byte
//! identical to `reference::fill_pattern` but without two divisions per byte: writes are the
//! implementation's hottest loop.
//!
//! Owns: nothing. Invariant: `fill(seq, off, buf)` == `reference::fill_pattern(seq, off, buf)`
//! for every input (tested in `tests/fs_units.rs`); falls back to the reference function where
//! the incremental form could overflow. Locks: none.

/// Fills `buf` with the bytes op `seq` writes starting at file offset `off`.
pub fn fill(seq: u32, off: u64, buf: &mut [u8]) {
    let end = off.checked_add(buf.len() as u64);
    let base = (seq as u64).checked_mul(0x9E37);
    let (Some(end), Some(base)) = (end, base) else {
        return reference::fill_pattern(seq, off, buf);
    };
    if base
        .checked_add(end)
        .and_then(|x| x.checked_add(end / 251))
        .is_none()
    {
        return reference::fill_pattern(seq, off, buf);
    }
    // mix(off) = base + off + off/251; byte = mix % 255 + 1. Step by one byte: mix grows by 1,
    // and by 1 more whenever off crosses a multiple of 251.
    let mut r = (base + off + off / 251) % 255;
    let mut rem = off % 251;
    for b in buf.iter_mut() {
        *b = r as u8 + 1;
        r += 1;
        rem += 1;
        if rem == 251 {
            rem = 0;
            r += 1;
        }
        if r >= 255 {
            r -= 255;
        }
    }
}
