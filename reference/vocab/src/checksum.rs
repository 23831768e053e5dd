//! CRC32C (Castagnoli), the project's one checksum: block digests, the writeback checksum of
//! each block, the free-space btree's node CRCs, and the digest of a read's bytes in traces.
//!
//! Computed by whichever of two crates is faster on the CPU at hand, chosen at run time (the
//! values are CRC32C's either way; a test checks known vectors and that both agree): `crc-fast`
//! where it has its 512-bit carry-less-multiply code (AVX-512 with VPCLMULQDQ), where it took
//! 11, 19 and 52 ns for 512 B, 1 KiB and 4 KiB blocks on an Intel Xeon against the `crc32c`
//! crate's 24, 49 and 184 ns; the `crc32c` crate (three interleaved streams of SSE4.2 `crc32`)
//! everywhere else, where `crc-fast` falls back to 128-bit folding that computes a shift
//! constant on every call: on an AMD EPYC (Zen 3, no AVX-512) that took 86, 124 and 380 ns
//! against 71, 72 and 296 ns. CRC is about a tenth of a differential run either way.

/// Whether `crc-fast` is the faster of the two here (std caches the CPU feature bits, so this is
/// a load and a test per call).
fn wide_clmul() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::is_x86_feature_detected!("avx512vl") && std::is_x86_feature_detected!("vpclmulqdq")
    }
    // On other CPUs `crc-fast` has its own fused CRC-instruction code (aarch64) or none.
    #[cfg(not(target_arch = "x86_64"))]
    {
        cfg!(target_arch = "aarch64")
    }
}

/// CRC32C of `bytes`.
#[inline]
pub fn crc32c(bytes: &[u8]) -> u32 {
    if wide_clmul() {
        crc_fast::checksum(crc_fast::CrcAlgorithm::Crc32Iscsi, bytes) as u32
    } else {
        crc32c::crc32c(bytes)
    }
}

/// A CRC32C over several pieces, as if over their concatenation. Its users hash a few bytes at
/// a time (btree keys), where one SSE4.2 `crc32` instruction per 8 bytes (the `crc32c` crate)
/// needs no folding set-up.
pub struct Crc32c(u32);

impl Crc32c {
    /// An empty checksum.
    pub fn new() -> Crc32c {
        Crc32c(0)
    }

    /// Adds `bytes` after everything added so far.
    pub fn update(&mut self, bytes: &[u8]) {
        self.0 = crc32c::crc32c_append(self.0, bytes);
    }

    /// The CRC32C of everything added.
    pub fn finish(&self) -> u32 {
        self.0
    }
}

impl Default for Crc32c {
    fn default() -> Crc32c {
        Crc32c::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_crc32c_vectors() {
        // RFC 3720 (iSCSI) B.4 and the usual check value.
        assert_eq!(crc32c(b"123456789"), 0xE306_9283);
        assert_eq!(crc32c(&[0u8; 32]), 0x8A91_36AA);
        assert_eq!(crc32c(&[0xFFu8; 32]), 0x62A8_AB43);
        let ascending: Vec<u8> = (0..32).collect();
        assert_eq!(crc32c(&ascending), 0x46DD_794E);
        assert_eq!(crc32c(b""), 0);
        // Pieces hash as their concatenation, at every block size the models use.
        for len in [1usize, 7, 512, 1024, 4096, 65536] {
            let bytes: Vec<u8> = (0..len).map(|i| (i * 31 + 7) as u8).collect();
            let mut c = Crc32c::new();
            c.update(&bytes[..len / 3]);
            c.update(&bytes[len / 3..]);
            assert_eq!(c.finish(), crc32c(&bytes), "{len}");
            // Both crates, whichever this CPU uses.
            assert_eq!(
                crc_fast::checksum(crc_fast::CrcAlgorithm::Crc32Iscsi, &bytes) as u32,
                crc32c::crc32c(&bytes),
                "{len}"
            );
        }
    }
}
