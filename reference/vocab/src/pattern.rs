//! The data pattern: every byte a write puts in a file is a function of the op's sequence number
//! and the file offset (the fsx trick), so a wrong byte in a diff names the op that wrote it.
//!
//! Pattern bytes are never zero, so a zero byte is always "no data" (a hole, an unwritten block,
//! a zeroed range), never a write.

/// The byte op `seq` writes at file offset `off`.
#[inline]
pub fn pattern_byte(seq: u32, off: u64) -> u8 {
    // 255 distinct non-zero values; seq and off mixed so that neighbouring ops differ everywhere.
    let mix = (seq as u64)
        .wrapping_mul(0x9E37)
        .wrapping_add(off)
        .wrapping_add(off / 251);
    (mix % 255) as u8 + 1
}

/// The byte every position of physical block `phys` holds while no write has reached it since
/// it was last free (SPEC.md "Durability": stale disk contents). `0xD0..=0xDF`, constant over
/// the block: one op's pattern never holds the same byte at two consecutive offsets, so a run of
/// one such value in a diff reads as stale data, and it is never zero, so never taken for a hole.
#[inline]
pub fn stale_byte(phys: u64) -> u8 {
    0xD0 | (phys % 16) as u8
}

/// Two periods of the byte sequence 1, 2, ..., 255: any run of up to 255 consecutive pattern
/// values (mod 255, plus one) is a slice of it.
const RAMP: [u8; 510] = {
    let mut t = [0u8; 510];
    let mut k = 0;
    while k < 510 {
        t[k] = (k % 255) as u8 + 1;
        k += 1;
    }
    t
};

/// Fills `buf` with the bytes op `seq` writes starting at file offset `off`.
///
/// Equal to calling [`pattern_byte`] for every offset (a test checks it), but at memcpy speed:
/// between two multiples of 251 the mix grows by exactly one per byte, so each such run is a
/// slice of `RAMP`. Filling pages is most of what a write costs in both models.
pub fn fill_pattern(seq: u32, off: u64, buf: &mut [u8]) {
    let mut o = off;
    let mut i = 0;
    while i < buf.len() {
        let run = ((251 - o % 251) as usize).min(buf.len() - i);
        let mix = (seq as u64)
            .checked_mul(0x9E37)
            .and_then(|m| m.checked_add(o))
            .and_then(|m| m.checked_add(o / 251));
        if mix.and_then(|m| m.checked_add(run as u64)).is_some() {
            let start = (pattern_byte(seq, o) - 1) as usize;
            buf[i..i + run].copy_from_slice(&RAMP[start..start + run]);
        } else {
            // The mix wraps around 2^64 inside this run (offsets no write reaches): byte by byte.
            for (k, b) in buf[i..i + run].iter_mut().enumerate() {
                *b = pattern_byte(seq, o.wrapping_add(k as u64));
            }
        }
        i += run;
        o = o.wrapping_add(run as u64);
    }
}

/// The bytes op `seq` writes at `[off, off+len)`.
pub fn pattern(seq: u32, off: u64, len: usize) -> Vec<u8> {
    let mut v = vec![0; len];
    fill_pattern(seq, off, &mut v);
    v
}

/// The sequence numbers among `candidates` whose pattern puts `byte` at `off`: used by reports to
/// say which op a wrong byte came from.
pub fn writers_of(byte: u8, off: u64, candidates: impl IntoIterator<Item = u32>) -> Vec<u32> {
    candidates
        .into_iter()
        .filter(|&s| pattern_byte(s, off) == byte)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn never_zero_and_seq_dependent() {
        for seq in 1..50 {
            for off in 0..3000 {
                assert_ne!(pattern_byte(seq, off), 0);
            }
        }
        let a = pattern(1, 0, 4096);
        let b = pattern(2, 0, 4096);
        assert!(
            a.iter().zip(&b).all(|(x, y)| x != y),
            "adjacent ops must differ at every offset"
        );
    }

    #[test]
    fn incremental_fill_equals_the_definition() {
        for (seq, off) in [
            (1u32, 0u64),
            (77, 250),
            (3, 251 * 255 - 3),
            (9999, 1 << 26),
            (u32::MAX, 12345),
        ] {
            let mut buf = vec![0; 70_000];
            fill_pattern(seq, off, &mut buf);
            for (i, &b) in buf.iter().enumerate() {
                assert_eq!(
                    b,
                    pattern_byte(seq, off + i as u64),
                    "seq {seq} off {}",
                    off + i as u64
                );
            }
        }
    }

    #[test]
    fn stale_bytes_are_never_zero_and_name_the_block() {
        assert_eq!(stale_byte(0), 0xD0);
        assert_eq!(stale_byte(0x1f), 0xDF);
        assert!((0..1000).all(|p| stale_byte(p) != 0));
    }

    #[test]
    fn fill_matches_bytewise() {
        let v = pattern(7, 1000, 600);
        for (i, &b) in v.iter().enumerate() {
            assert_eq!(b, pattern_byte(7, 1000 + i as u64));
        }
        assert_eq!(writers_of(v[5], 1005, 1..20), vec![7]);
    }
}
