//! Errors an op can return. Results are compared exactly between the models, so this is the
//! complete list of what either may say.

use std::fmt;

/// A Linux errno as an op result.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Errno {
    /// No space: not enough free blocks for a reservation or an allocation.
    Enospc,
    /// Metadata corruption (Linux: EUCLEAN): the free-space btree root has a bad CRC.
    Efscorrupted,
    /// An IO failed, e.g. the device rejected a write whose checksum did not match.
    Eio,
    /// Bad argument: unaligned direct IO, zero-length fallocate.
    Einval,
    /// Past the maximum file size.
    Efbig,
    /// A fault past EOF (SIGBUS in Linux; reported as an error here).
    Efault,
}

impl Errno {
    /// All errnos, for parsers and tables.
    pub const ALL: [Errno; 6] = [
        Errno::Enospc,
        Errno::Efscorrupted,
        Errno::Eio,
        Errno::Einval,
        Errno::Efbig,
        Errno::Efault,
    ];

    /// The conventional upper-case name (`ENOSPC`, ...).
    pub fn name(self) -> &'static str {
        match self {
            Errno::Enospc => "ENOSPC",
            Errno::Efscorrupted => "EFSCORRUPTED",
            Errno::Eio => "EIO",
            Errno::Einval => "EINVAL",
            Errno::Efbig => "EFBIG",
            Errno::Efault => "EFAULT",
        }
    }

    /// Parses a name as printed by [`Errno::name`].
    pub fn from_name(s: &str) -> Option<Errno> {
        Errno::ALL.into_iter().find(|e| e.name() == s)
    }
}

impl fmt::Display for Errno {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl std::error::Error for Errno {}
