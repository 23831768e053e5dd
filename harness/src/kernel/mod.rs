//! Running inputs on a real Linux kernel: every op of a single-thread input becomes real
//! syscalls on real files of a mounted XFS, ext4 or btrfs, and the reference model is the
//! oracle after every op (`SPEC.md`, section "Real kernels").
//!
//! - [`exec`]: the syscall executor (one real file per script file).
//! - [`scratch`]: scratch devices like xfstests' (image file, loop device, mkfs, mount) in a
//!   guard that undoes exactly what it did, also on errors, panics and SIGINT/SIGTERM.
//! - [`fiemap`]: the FIEMAP ioctl, read as per-block extent states.
//! - [`kmsg`]: the kernel log checker (`/dev/kmsg` before and after each input).
//! - [`oracle`]: runs an input on the kernel and the reference side by side and compares.
//! - [`faults`]: corrupted free-space btrees on XFS (`corrupt` / `repair` as offline surgery)
//!   and the rule that judges a run across them.
//! - [`threads`]: threaded runs, judged by the race rule without knowing the interleaving.
//! - [`hunt`]: the kernel hunt, minimization against the kernel, and the kernel benchmark.
//!
//! Kernel runs are the one exception to wbfuzz's determinism: writeback timing, folio sizes and
//! allocation decisions belong to the kernel, so the same input may take different (tolerated)
//! paths in two runs. What is compared, and what is tolerated, is written down in `SPEC.md`.

pub mod exec;
pub mod faults;
pub mod fiemap;
pub mod hunt;
pub mod kmsg;
pub mod oracle;
pub mod scratch;
pub mod threads;

use std::fmt;

/// A filesystem a kernel run can work on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FsKind {
    /// XFS (the spec's model).
    Xfs,
    /// ext4.
    Ext4,
    /// btrfs.
    Btrfs,
}

impl FsKind {
    /// Every kind, for parsers.
    pub const ALL: [FsKind; 3] = [FsKind::Xfs, FsKind::Ext4, FsKind::Btrfs];

    /// The name as `mkfs.NAME` and `mount -t` spell it.
    pub fn name(self) -> &'static str {
        match self {
            FsKind::Xfs => "xfs",
            FsKind::Ext4 => "ext4",
            FsKind::Btrfs => "btrfs",
        }
    }

    /// Parses a name.
    pub fn from_name(s: &str) -> Option<FsKind> {
        FsKind::ALL.into_iter().find(|k| k.name() == s)
    }

    /// The `statfs` magic number of the filesystem (for `--dir`, to know what a directory is on).
    pub fn magic(self) -> u64 {
        match self {
            FsKind::Xfs => 0x5846_5342,
            FsKind::Ext4 => 0xEF53,
            FsKind::Btrfs => 0x9123_683E,
        }
    }

    /// Why this filesystem cannot use block size `bs`, if it cannot.
    pub fn refuses_block(self, bs: u32) -> Option<&'static str> {
        match (self, bs) {
            (FsKind::Xfs, 512) => Some("XFS with metadata CRCs (the only format mkfs.xfs still makes) needs a block size of at least 1024"),
            (FsKind::Ext4, 512) => Some("ext4 block sizes are 1024 to 65536; it has no 512-byte blocks"),
            (FsKind::Btrfs, b) if b as u64 != reference::PAGE_SIZE => Some("btrfs on this kernel needs its block (sector) size equal to the page size, 4096"),
            _ => None,
        }
    }
}

impl fmt::Display for FsKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// What kind of filesystem a directory lives on, from its `statfs` magic (`None`: another one;
/// runs there use the strictest relation, the ext4 one, and say so).
pub fn fs_kind_of(dir: &std::path::Path) -> std::io::Result<(Option<FsKind>, u64)> {
    let st = rustix::fs::statfs(dir)?;
    let magic = st.f_type as u64;
    Ok((
        FsKind::ALL.into_iter().find(|k| k.magic() == magic),
        st.f_bsize as u64,
    ))
}
