//! Folio block bitmasks: bit `i` stands for block slot `i` of one folio (a folio has at most 64
//! blocks). Owns every conversion between masks and block ranges, so the page cache, writeback,
//! the write paths and the journal agree on one bit order.

use super::Geo;

/// Slots `[from, to)` (empty if `to <= from`; slots past 63 do not exist).
#[inline]
pub(crate) fn range(from: u64, to: u64) -> u64 {
    if to <= from || from >= 64 {
        return 0;
    }
    let hi = if to >= 64 { u64::MAX } else { (1u64 << to) - 1 };
    hi & !((1u64 << from) - 1)
}

/// Slots of folio `fidx` whose blocks overlap bytes `[from, to)`.
#[inline]
pub(crate) fn overlapping(g: &Geo, fidx: u64, from: u64, to: u64) -> u64 {
    let fstart = fidx * g.fsz;
    let lo = from.max(fstart);
    let hi = to.min(fstart + g.fsz);
    if hi <= lo {
        return 0;
    }
    range((lo - fstart) / g.bs, (hi - fstart).div_ceil(g.bs))
}

/// The file blocks named by a mask of the folio whose first block is `fb0`, in order.
pub(crate) fn blocks(mask: u64, fb0: u64) -> impl Iterator<Item = u64> {
    (0..64u64)
        .filter(move |i| mask & (1 << i) != 0)
        .map(move |i| fb0 + i)
}

/// Runs of set bits as `(first file block, len)`, for the folio whose first block is `fb0`.
pub(crate) fn runs(mask: u64, fb0: u64) -> Vec<(u64, u64)> {
    let mut runs = Vec::new();
    let mut m = mask;
    while m != 0 {
        let s = m.trailing_zeros() as u64;
        let len = (m >> s).trailing_ones() as u64;
        runs.push((fb0 + s, len));
        m &= !range(s, s + len);
    }
    runs
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn range_and_runs_agree_by_hand() {
        assert_eq!(range(0, 0), 0);
        assert_eq!(range(1, 3), 0b110);
        assert_eq!(range(0, 64), u64::MAX);
        assert_eq!(range(63, 64), 1 << 63);
        assert_eq!(runs(0b1101_1000, 40), vec![(43, 2), (46, 2)]);
        assert_eq!(blocks(0b1001, 8).collect::<Vec<_>>(), vec![8, 11]);
    }

    #[test]
    fn overlapping_rounds_out_to_blocks() {
        // 1 KiB blocks, 4 KiB folios: bytes [1500, 5000) touch slots 1..=3 of folio 0 and slot
        // 0 of folio 1.
        let g = Geo {
            bs: 1024,
            fsz: 4096,
            bpf: 4,
            all: 0b1111,
            max: 1 << 20,
            zero_digest: 0,
        };
        assert_eq!(overlapping(&g, 0, 1500, 5000), 0b1110);
        assert_eq!(overlapping(&g, 1, 1500, 5000), 0b0001);
        assert_eq!(overlapping(&g, 2, 1500, 5000), 0);
    }
}
