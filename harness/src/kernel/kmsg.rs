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
//! A warning's first line also names the task that hit it (`WARNING: CPU: 0 PID: 29078 at
//! ...`): when that task is a thread of another user process (a second wbfuzz hunting another
//! filesystem on the same machine, say), the record is not ours. The task is ours when it is a
//! thread of this process (alive, or registered with [`note_our_thread`] before it ended);
//! kernel threads (writeback workers) stay ambiguous and count as ours.
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

/// Threads of this process that run ops on a scratch device and may end before their warnings
/// are read ([`note_our_thread`]).
static OUR_THREADS: std::sync::Mutex<Vec<i32>> = std::sync::Mutex::new(Vec::new());

/// Registers the calling thread as one of ours, for attributing warnings it hits after it has
/// ended. Threads that run kernel ops call this once.
pub fn note_our_thread() {
    let tid = rustix::thread::gettid().as_raw_nonzero().get();
    if let Ok(mut v) = OUR_THREADS.lock() {
        if !v.contains(&tid) {
            v.push(tid);
        }
    }
}

/// Whose task a warning names, as far as `/proc` can tell.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Task {
    /// A thread of this process.
    Ours,
    /// A thread of another user process.
    Elsewhere,
    /// A kernel thread, or a task that has ended and was not ours: it may have worked for us.
    Unknown,
}

/// The task id a warning's first line names (`... PID: 29078 at ...`).
fn warning_pid(message: &str) -> Option<i32> {
    let (_, rest) = message.split_once("PID: ")?;
    rest.split(|c: char| !c.is_ascii_digit())
        .next()?
        .parse()
        .ok()
}

/// Whose task `pid` is, read from `/proc` now.
fn classify_task(pid: i32) -> Task {
    let ours = std::process::id() as i32;
    if OUR_THREADS.lock().is_ok_and(|v| v.contains(&pid)) {
        return Task::Ours;
    }
    let Ok(status) = std::fs::read_to_string(format!("/proc/{pid}/status")) else {
        return Task::Unknown;
    };
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().parse::<i32>().ok())
    };
    match (field("Tgid:"), field("PPid:")) {
        (Some(t), _) if t == ours => Task::Ours,
        // kthreadd's children (and kthreadd itself) work for every filesystem.
        (_, Some(2)) | (_, Some(0)) => Task::Unknown,
        (Some(_), Some(_)) => Task::Elsewhere,
        _ => Task::Unknown,
    }
}

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

/// Whether a log message is a finding for device `dev`, with warnings attributed to their task
/// by [`classify_task`].
pub fn is_finding(message: &str, dev: &str) -> bool {
    is_finding_with(message, dev, classify_task)
}

/// [`is_finding`] with the task classifier given (tests pass their own).
pub fn is_finding_with(message: &str, dev: &str, task: impl Fn(i32) -> Task) -> bool {
    if !TROUBLE.iter().any(|t| message.contains(t)) {
        return false;
    }
    let generic = ["WARNING:", "BUG:", "Oops", "kernel BUG"]
        .iter()
        .any(|t| message.contains(t));
    names_device(message, dev) || (generic && may_be_ours(message, task))
}

/// Whether a record that names no device of ours may still be about it: it names no loop
/// device at all and no task of another process.
fn may_be_ours(message: &str, task: impl Fn(i32) -> Task) -> bool {
    !message.contains("loop") && warning_pid(message).is_none_or(|pid| task(pid) != Task::Elsewhere)
}

/// Whether a record may be about device `dev`: it names it, or it names no loop device and no
/// task of another process (the fault rule's filter, which has its own list of trouble).
pub fn about_device(message: &str, dev: &str) -> bool {
    names_device(message, dev) || may_be_ours(message, classify_task)
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

    #[test]
    fn warnings_of_other_processes_are_not_ours() {
        let w =
            "WARNING: CPU: 0 PID: 29078 at fs/iomap/buffered-io.c:1437 iomap_zero_iter+0x132/0x1d0";
        assert_eq!(warning_pid(w), Some(29078));
        assert!(is_finding_with(w, "loop3", |_| Task::Ours));
        assert!(is_finding_with(w, "loop3", |_| Task::Unknown));
        assert!(!is_finding_with(w, "loop3", |_| Task::Elsewhere));
        // A record that names our device is ours whoever hit it.
        assert!(is_finding_with(
            "XFS (loop3): Corruption detected. PID: 5",
            "loop3",
            |_| Task::Elsewhere
        ));
    }

    #[test]
    fn records_about_other_devices_are_not_about_ours() {
        // What the fault hunt tripped over: a test's fake warning about another loop device.
        assert!(!about_device(
            "wbfuzz test: XFS (loop9999): WARNING: fake warning for the checker",
            "loop2"
        ));
        assert!(about_device("XFS (loop2): Corruption detected", "loop2"));
        assert!(about_device(
            "kernel BUG at fs/xfs/xfs_aops.c:100!",
            "loop2"
        ));
    }

    #[test]
    fn tasks_are_classified_from_proc() {
        note_our_thread();
        let me = rustix::thread::gettid().as_raw_nonzero().get();
        assert_eq!(classify_task(me), Task::Ours);
        assert_eq!(classify_task(std::process::id() as i32), Task::Ours);
        // kthreadd is a kernel thread: it may work for anyone.
        assert_eq!(classify_task(2), Task::Unknown);
        // A process of our own making, not a thread of ours.
        let mut child = std::process::Command::new("sleep")
            .arg("5")
            .spawn()
            .unwrap();
        let verdict = classify_task(child.id() as i32);
        let _ = child.kill();
        let _ = child.wait();
        assert_eq!(verdict, Task::Elsewhere);
    }
}
