//! The kernel log checker: `/dev/kmsg` is opened before an input runs (positioned at its end)
//! and read after it; a new record that looks like trouble and is about the test device is a
//! finding, reported with its lines.
//!
//! Trouble: `WARNING`, `BUG`, `Oops`, `Corruption`, `metadata I/O error`, `shut down`,
//! `kernel BUG`. "About the device": the record names it (`XFS (loop3): ...`, with no digit
//! after the name, so `loop3` is not `loop31`), or it is a `WARNING:` / `BUG:` / `Oops` /
//! `kernel BUG` record that names no loop device at all (a warning's first line names the
//! source file, not the device; on a machine where other loop devices are busy, such a line may
//! belong to them, which the report says). A record naming another loop device is never ours.
//!
//! Reading needs permission to read `/dev/kmsg` (root, or `kernel.dmesg_restrict=0`); without
//! it the checker is off and [`KmsgWatch::open`] says why.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};

/// Substrings that make a kernel log record a finding.
pub const TROUBLE: [&str; 7] = [
    "WARNING",
    "BUG",
    "Oops",
    "Corruption",
    "metadata I/O error",
    "shut down",
    "kernel BUG",
];

/// A position in the kernel log, from which new records are read.
pub struct KmsgWatch {
    file: File,
}

/// Whether `text` names the device `dev` (e.g. `loop3`) as a whole word.
fn names_device(text: &str, dev: &str) -> bool {
    text.match_indices(dev).any(|(i, _)| {
        let before = text[..i].chars().next_back();
        let after = text[i + dev.len()..].chars().next();
        !before.is_some_and(|c| c.is_ascii_alphanumeric())
            && !after.is_some_and(|c| c.is_ascii_digit())
    })
}

/// Whether a log message is a finding for device `dev`.
pub fn is_finding(message: &str, dev: &str) -> bool {
    if !TROUBLE.iter().any(|t| message.contains(t)) {
        return false;
    }
    if names_device(message, dev) {
        return true;
    }
    let generic = ["WARNING:", "BUG:", "Oops", "kernel BUG"]
        .iter()
        .any(|t| message.contains(t));
    generic && !message.contains("loop")
}

impl KmsgWatch {
    /// Opens the log at its current end.
    pub fn open() -> io::Result<KmsgWatch> {
        use std::os::unix::fs::OpenOptionsExt;
        let mut file = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK)
            .open("/dev/kmsg")?;
        file.seek(SeekFrom::End(0))?;
        Ok(KmsgWatch { file })
    }

    /// Every record logged since the last call (or since opening), message text only.
    pub fn new_messages(&mut self) -> io::Result<Vec<String>> {
        let mut out = Vec::new();
        // One read returns one record; records are at most a few KiB.
        let mut buf = vec![0u8; 16 * 1024];
        loop {
            match self.file.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => {
                    let rec = String::from_utf8_lossy(&buf[..n]);
                    // "prio,seq,usec,flags;message\n continuation lines"
                    let msg = rec.split_once(';').map_or(&*rec, |(_, m)| m);
                    out.push(msg.trim_end().to_string());
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                // The ring overwrote records we had not read: carry on from the next one.
                Err(e) if e.raw_os_error() == Some(libc::EPIPE) => continue,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        }
        Ok(out)
    }

    /// The new records that are findings for device `dev` (e.g. `loop3`).
    pub fn findings(&mut self, dev: &str) -> io::Result<Vec<String>> {
        Ok(self
            .new_messages()?
            .into_iter()
            .filter(|m| is_finding(m, dev))
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_names_are_whole_words() {
        assert!(names_device("XFS (loop3): metadata I/O error", "loop3"));
        assert!(!names_device("XFS (loop31): metadata I/O error", "loop3"));
        assert!(!names_device("XFS (xloop3): x", "loop3"));
        assert!(is_finding("XFS (loop3): Corruption detected", "loop3"));
        assert!(!is_finding("XFS (loop4): Corruption detected", "loop3"));
        assert!(!is_finding("XFS (loop3): Mounting V5 Filesystem", "loop3"));
        assert!(is_finding(
            "WARNING: CPU: 1 PID: 7 at fs/iomap/buffered-io.c:100 x",
            "loop3"
        ));
        assert!(!is_finding("EXT4-fs (loop3): mounted filesystem", "loop3"));
    }
}
