//! The kernel executor: runs an input's ops as real syscalls on real files, one file per script
//! file (`f0`, `f1`, ... in the run's directory), and returns each op's result in the
//! vocabulary's [`Outcome`] so the oracle can compare it with the reference's.
//!
//! The mapping (SPEC.md, "Real kernels", says why each is the analogue):
//! `write` pwrite (`sync`: pwritev2 with RWF_SYNC); `read` pread looped to EOF; `dwrite` /
//! `dread` pwrite / pread on a second, O_DIRECT descriptor with page-aligned buffers;
//! `mwrite` / `mread` a MAP_SHARED mapping of the script folio, clipped to the folio and EOF
//! (EFAULT is decided from i_size before any page is touched); `fsync`; `falloc` (KEEP_SIZE);
//! `punch` (PUNCH_HOLE|KEEP_SIZE); `zero` (ZERO_RANGE, KEEP_SIZE); `truncate` ftruncate;
//! `flush` sync_file_range(WAIT_BEFORE|WRITE); `complete` sync_file_range(WAIT_BEFORE) over every file;
//! `reclaim` POSIX_FADV_DONTNEED over the folio; `evict` fsync then DONTNEED over the file;
//! `commit` fsync. `corrupt` and `repair` have no kernel analogue here: [`unsupported`] refuses
//! such inputs before they run.
//!
//! The script's maximum file size plays the kernel's `s_maxbytes`: the executor sets
//! RLIMIT_FSIZE to it while an input runs (Linux then applies `generic_write_check_limits` and
//! `inode_newsize_ok` exactly as the spec does), ignores SIGXFSZ, and checks
//! `off + len > max` itself before fallocate-family calls, where `vfs_fallocate` compares with
//! `s_maxbytes` and not with the rlimit.
//!
//! Invariants: one thread uses an executor; no mapping outlives the op that made it.

use super::FsKind;
use memmap2::{MmapMut, MmapOptions};
use reference::{fill_pattern, Errno, FileId, Geometry, Input, Op, Outcome};
use rustix::fs::{Advice, FallocateFlags};
use rustix::io::ReadWriteFlags;
use std::fmt;
use std::fs::{File, OpenOptions};
use std::io::{self, IoSlice};
use std::num::NonZeroU64;
use std::os::fd::AsRawFd;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// A syscall failed with an errno outside the vocabulary (or an op that cannot fail did).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SysError {
    /// The syscall.
    pub call: &'static str,
    /// The raw errno.
    pub errno: i32,
}

impl fmt::Display for SysError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} failed: {}",
            self.call,
            io::Error::from_raw_os_error(self.errno)
        )
    }
}

/// What a kernel op returned: a vocabulary outcome, or an errno the vocabulary has no name for.
pub type KOutcome = Result<Outcome, SysError>;

/// Maps a kernel errno to the vocabulary (EUCLEAN is XFS's EFSCORRUPTED).
fn outcome_of_errno(call: &'static str, errno: i32) -> KOutcome {
    let e = match errno {
        libc::ENOSPC => Errno::Enospc,
        libc::EUCLEAN => Errno::Efscorrupted,
        libc::EIO => Errno::Eio,
        libc::EINVAL => Errno::Einval,
        libc::EFBIG => Errno::Efbig,
        libc::EFAULT => Errno::Efault,
        _ => return Err(SysError { call, errno }),
    };
    Ok(Outcome::Err(e))
}

fn io_outcome(call: &'static str, e: &io::Error) -> KOutcome {
    outcome_of_errno(call, e.raw_os_error().unwrap_or(libc::EIO))
}

fn rx_outcome(call: &'static str, e: rustix::io::Errno) -> KOutcome {
    outcome_of_errno(call, e.raw_os_error())
}

/// Why an input cannot run on a kernel, if it cannot: the ops with no kernel analogue yet.
/// (Inputs of several threads run serialized, thread after thread, as `run_sequential` runs
/// them: one valid schedule; a kernel gives no reproducible control over interleavings.)
pub fn unsupported(input: &Input) -> Option<String> {
    input.threads.iter().flatten().find_map(|op| match op {
        Op::Crash { .. } => Some(format!(
            "`{op}` (a power cut) is not run on a kernel: cutting power to a real device safely needs a device-mapper target (dm-log-writes, dm-flakey); remove it to run on a kernel"
        )),
        Op::CorruptAllocBtree | Op::RepairAllocBtree => Some(format!(
            "`{op}` has no kernel analogue yet (metadata corruption on a real filesystem is a later issue); remove it to run on a kernel"
        )),
        _ => None,
    })
}

/// The input as a kernel runs it, for both sides: `commit fN` becomes `fsync fN` (no filesystem
/// has a separate per-file commit call; on journaled data fsync commits); every file is a
/// journaled-data file when the filesystem journals all data (`jdata`: ext4 mounted
/// `data=journal`), else none is (no filesystem here has per-file journaled data we can set:
/// ext4's `j` attribute needs CAP_SYS_RESOURCE); and folios are one page. The kernel chooses
/// its own folio sizes (XFS makes large folios); a page is the smallest it can have, so with
/// single-page folios the reference's folio-granular writeback never covers more than the
/// kernel's does. Returns whether jdata or commit had to change, so callers can say so once.
pub fn kernel_view(input: &Input, jdata: bool) -> (Input, bool) {
    let mut out = input.clone();
    out.config.geometry.folio_pages = 1;
    let mut changed = false;
    for f in &mut out.config.files {
        changed |= f.jdata != jdata;
        f.jdata = jdata;
    }
    for op in out.threads.iter_mut().flatten() {
        if let Op::JournalCommit { file } = *op {
            *op = Op::Fsync { file };
            changed = true;
        }
    }
    (out, changed)
}

/// Sets RLIMIT_FSIZE for the lifetime of the value (the script's maximum file size), restoring
/// the previous limit when dropped.
pub struct FsizeLimit {
    old: rustix::process::Rlimit,
}

impl FsizeLimit {
    /// Limits file sizes to `max` bytes; SIGXFSZ is ignored from then on (Linux sends it with
    /// every EFBIG from the limit, and its default action would end the process).
    pub fn set(max: u64) -> io::Result<FsizeLimit> {
        ignore_sigxfsz()?;
        use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};
        let old = getrlimit(Resource::Fsize);
        let cur = old.maximum.map_or(max, |m| m.min(max));
        setrlimit(
            Resource::Fsize,
            Rlimit {
                current: Some(cur),
                maximum: old.maximum,
            },
        )?;
        Ok(FsizeLimit { old })
    }
}

impl Drop for FsizeLimit {
    fn drop(&mut self) {
        let _ = rustix::process::setrlimit(rustix::process::Resource::Fsize, self.old);
    }
}

fn ignore_sigxfsz() -> io::Result<()> {
    use std::sync::OnceLock;
    static DONE: OnceLock<Result<(), i32>> = OnceLock::new();
    let r = DONE.get_or_init(|| {
        // A handler that does nothing: the write gets EFBIG, which is all the spec wants.
        let flag = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        signal_hook::flag::register(signal_hook::consts::SIGXFSZ, flag)
            .map(|_| ())
            .map_err(|e| e.raw_os_error().unwrap_or(libc::EINVAL))
    });
    r.map_err(io::Error::from_raw_os_error)
}

/// A page-aligned buffer for O_DIRECT (an anonymous mapping; at least one page).
fn aligned(len: usize) -> io::Result<MmapMut> {
    MmapMut::map_anon(len.max(1))
}

/// The length of a buffer for an op of `len` bytes of which the kernel can use at most `cap`
/// (the room below the size limit for a write, the bytes before EOF for a read): `len` itself
/// when small, else a length still past `cap` by more than a block and equal to `len` modulo
/// the block size. The kernel cuts the count at `cap` before it touches a byte past it (EFBIG
/// or a short count; EOF), and the alignment checks of direct IO see the same remainder, so the
/// result is the one of the full length, without allocating a generated 1 TiB buffer.
fn clip(len: u64, cap: u64, bs: u64) -> usize {
    if len <= cap.saturating_add(2 * bs) {
        len as usize
    } else {
        (cap + bs + bs + len % bs) as usize
    }
}

/// The real files of one run, in one directory.
pub struct Executor {
    files: Vec<File>,
    direct: Vec<Option<File>>,
    paths: Vec<PathBuf>,
    geometry: Geometry,
    fs: Option<FsKind>,
    scratch: Vec<u8>,
}

impl Executor {
    /// Creates the input's files (`f0`, ...) in `dir`, empty; existing files of those names are
    /// replaced (a run always starts on fresh files).
    /// `fs` selects the ext4 / btrfs direct-write check (see [`Executor::apply`]).
    pub fn create(dir: &Path, input: &Input, fs: Option<FsKind>) -> io::Result<Executor> {
        let mut files = Vec::new();
        let mut paths = Vec::new();
        for i in 0..input.config.files.len() {
            let p = dir.join(format!("f{i}"));
            match std::fs::remove_file(&p) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
            let f = OpenOptions::new()
                .read(true)
                .write(true)
                .create_new(true)
                .open(&p)?;
            files.push(f);
            paths.push(p);
        }
        Ok(Executor {
            direct: files.iter().map(|_| None).collect(),
            files,
            paths,
            geometry: input.config.geometry,
            fs,
            scratch: Vec::new(),
        })
    }

    /// Opens the input's existing files in `dir` (after a remount), keeping their contents.
    pub fn open_existing(dir: &Path, input: &Input, fs: Option<FsKind>) -> io::Result<Executor> {
        let paths: Vec<PathBuf> = (0..input.config.files.len())
            .map(|i| dir.join(format!("f{i}")))
            .collect();
        let files = paths
            .iter()
            .map(|p| OpenOptions::new().read(true).write(true).open(p))
            .collect::<io::Result<Vec<_>>>()?;
        Ok(Executor {
            direct: files.iter().map(|_| None).collect(),
            files,
            paths,
            geometry: input.config.geometry,
            fs,
            scratch: Vec::new(),
        })
    }

    /// Another executor on the same files (its own descriptors and buffers), for one thread of
    /// a threaded run.
    pub fn share(&self) -> io::Result<Executor> {
        Ok(Executor {
            files: self
                .files
                .iter()
                .map(File::try_clone)
                .collect::<io::Result<_>>()?,
            direct: self.files.iter().map(|_| None).collect(),
            paths: self.paths.clone(),
            geometry: self.geometry,
            fs: self.fs,
            scratch: Vec::new(),
        })
    }

    /// Number of files.
    pub fn file_count(&self) -> usize {
        self.files.len()
    }

    /// The buffered descriptor of a file.
    pub fn file(&self, f: FileId) -> &File {
        &self.files[f as usize]
    }

    /// The path of a file.
    pub fn path(&self, f: FileId) -> &Path {
        &self.paths[f as usize]
    }

    /// Current size (fstat).
    pub fn size(&self, f: FileId) -> io::Result<u64> {
        Ok(self.files[f as usize].metadata()?.len())
    }

    /// Reads the whole file through the page cache into `buf` (pread to EOF).
    pub fn read_all(&self, f: FileId, buf: &mut Vec<u8>) -> io::Result<()> {
        let size = self.size(f)?;
        buf.resize(size as usize, 0);
        let n = pread_full(&self.files[f as usize], buf, 0)?;
        buf.truncate(n);
        Ok(())
    }

    /// fsync then POSIX_FADV_DONTNEED over every file: the next read comes from the disk.
    pub fn sync_and_drop_cache(&self) -> io::Result<()> {
        for f in &self.files {
            f.sync_all()?;
            rustix::fs::fadvise(f, 0, None, Advice::DontNeed)?;
        }
        Ok(())
    }

    /// Closes and unlinks every file (between the inputs of a hunt).
    pub fn remove(self) -> io::Result<()> {
        let paths = self.paths.clone();
        drop(self);
        for p in paths {
            std::fs::remove_file(p)?;
        }
        Ok(())
    }

    fn direct_fd(&mut self, f: FileId) -> io::Result<&File> {
        let k = f as usize;
        if self.direct[k].is_none() {
            let d = OpenOptions::new()
                .read(true)
                .write(true)
                .custom_flags(libc::O_DIRECT)
                .open(&self.paths[k])?;
            self.direct[k] = Some(d);
        }
        Ok(self.direct[k].as_ref().expect("opened above"))
    }

    /// Runs op number `seq`. A bad file index is EINVAL, as in both models.
    pub fn apply(&mut self, seq: u32, op: &Op) -> KOutcome {
        if let Some(f) = op.file() {
            if f as usize >= self.files.len() {
                return Ok(Outcome::Err(Errno::Einval));
            }
        }
        let g = self.geometry;
        match *op {
            // Refused before a run starts ([`unsupported`]).
            Op::Crash { .. } => Err(SysError {
                call: "crash (not run on kernels)",
                errno: libc::ENOTSUP,
            }),
            Op::Write {
                file,
                off,
                len,
                sync,
            } => {
                let cap = g.max_file_size.saturating_sub(off);
                let mut buf = std::mem::take(&mut self.scratch);
                buf.resize(clip(len, cap, g.bs()), 0);
                fill_pattern(seq, off, &mut buf);
                let fd = &self.files[file as usize];
                let r = if sync {
                    rustix::io::pwritev2(fd, &[IoSlice::new(&buf)], off, ReadWriteFlags::SYNC)
                        .map_err(io::Error::from)
                } else {
                    fd.write_at(&buf, off)
                };
                self.scratch = buf;
                match r {
                    Ok(n) => Ok(Outcome::Done(n as u64)),
                    Err(e) => io_outcome(if sync { "pwritev2" } else { "pwrite" }, &e),
                }
            }
            Op::Read { file, off, len } => {
                let size = self.size(file).map_err(|e| sys("fstat", &e))?;
                let mut buf = vec![0u8; clip(len, size.saturating_sub(off), g.bs())];
                match pread_full(&self.files[file as usize], &mut buf, off) {
                    Ok(n) => {
                        buf.truncate(n);
                        Ok(Outcome::Data(buf))
                    }
                    Err(e) => io_outcome("pread", &e),
                }
            }
            Op::DirectWrite { file, off, len } => {
                // ext4 checks direct-write alignment per mapped extent, after the size limit and
                // after writing the aligned prefix of a partly unaligned write (which then still
                // fails with EINVAL); btrfs falls back to a buffered write; XFS checks it up
                // front (xfs_file_dio_write), after the empty-write check. On ext4 and btrfs
                // the executor makes XFS's up-front check itself: SPEC.md, "Real kernels",
                // lists these as known differences.
                if matches!(self.fs, Some(FsKind::Ext4 | FsKind::Btrfs))
                    && len != 0
                    && (off | len) % g.bs() != 0
                {
                    return Ok(Outcome::Err(Errno::Einval));
                }
                let n = clip(len, g.max_file_size.saturating_sub(off), g.bs());
                let mut buf = aligned(n).map_err(|e| sys("mmap", &e))?;
                fill_pattern(seq, off, &mut buf[..n]);
                let fd = self.direct_fd(file).map_err(|e| sys("open O_DIRECT", &e))?;
                match fd.write_at(&buf[..n], off) {
                    Ok(n) => Ok(Outcome::Done(n as u64)),
                    Err(e) => io_outcome("pwrite O_DIRECT", &e),
                }
            }
            Op::DirectRead { file, off, len } => {
                let size = self.size(file).map_err(|e| sys("fstat", &e))?;
                let n = clip(len, size.saturating_sub(off), g.bs());
                let mut buf = aligned(n).map_err(|e| sys("mmap", &e))?;
                let fd = self.direct_fd(file).map_err(|e| sys("open O_DIRECT", &e))?;
                match fd.read_at(&mut buf[..n], off) {
                    Ok(n) => Ok(Outcome::Data(buf[..n].to_vec())),
                    Err(e) => io_outcome("pread O_DIRECT", &e),
                }
            }
            Op::MmapWrite { file, off, len } => self.fault(seq, file, off, len, true),
            Op::MmapRead { file, off, len } => self.fault(seq, file, off, len, false),
            Op::Fsync { file } | Op::JournalCommit { file } => {
                match self.files[file as usize].sync_all() {
                    Ok(()) => Ok(Outcome::Done(0)),
                    Err(e) => io_outcome("fsync", &e),
                }
            }
            Op::Fallocate {
                file,
                off,
                len,
                keep_size,
            } => {
                let flags = if keep_size {
                    FallocateFlags::KEEP_SIZE
                } else {
                    FallocateFlags::empty()
                };
                self.fallocate(file, flags, off, len)
            }
            Op::PunchHole { file, off, len } => self.fallocate(
                file,
                FallocateFlags::PUNCH_HOLE | FallocateFlags::KEEP_SIZE,
                off,
                len,
            ),
            Op::ZeroRange {
                file,
                off,
                len,
                keep_size,
            } => {
                let mut flags = FallocateFlags::ZERO_RANGE;
                if keep_size {
                    flags |= FallocateFlags::KEEP_SIZE;
                }
                self.fallocate(file, flags, off, len)
            }
            Op::Truncate { file, size } => match self.files[file as usize].set_len(size) {
                Ok(()) => Ok(Outcome::Done(0)),
                Err(e) => io_outcome("ftruncate", &e),
            },
            Op::Flush { file, off, len } => {
                // sync_file_range treats len 0 as "to EOF"; the spec's flush of nothing is a no-op.
                if len == 0 || off > i64::MAX as u64 {
                    return Ok(Outcome::Done(0));
                }
                let n = len.min(i64::MAX as u64 - off);
                // The spec's writeback first waits for a folio already under writeback
                // (WAIT_BEFORE), then submits the dirty ones without waiting (WRITE).
                sync_file_range(
                    &self.files[file as usize],
                    off,
                    n,
                    libc::SYNC_FILE_RANGE_WAIT_BEFORE | libc::SYNC_FILE_RANGE_WRITE,
                )
            }
            Op::CompleteIo { .. } => {
                // Waits for the writeback already submitted, starts none (the spec's completion of
                // in-flight IO); every file's, not only `n` IOs: the kernel is then ahead.
                for f in &self.files {
                    let r = sync_file_range(f, 0, 0, libc::SYNC_FILE_RANGE_WAIT_BEFORE)?;
                    if r != Outcome::Done(0) {
                        return Ok(r);
                    }
                }
                Ok(Outcome::Done(0))
            }
            Op::Reclaim { file, folio } => {
                let fs = g.folio_size();
                let Some(start) = folio.checked_mul(fs).filter(|s| *s <= i64::MAX as u64) else {
                    return Ok(Outcome::Done(0));
                };
                rustix::fs::fadvise(
                    &self.files[file as usize],
                    start,
                    NonZeroU64::new(fs),
                    Advice::DontNeed,
                )
                .map_err(|e| sys_rx("fadvise DONTNEED", e))?;
                Ok(Outcome::Done(0))
            }
            Op::EvictInode { file } => {
                let fd = &self.files[file as usize];
                if let Err(e) = fd.sync_all() {
                    return io_outcome("fsync", &e);
                }
                rustix::fs::fadvise(fd, 0, None, Advice::DontNeed)
                    .map_err(|e| sys_rx("fadvise DONTNEED", e))?;
                Ok(Outcome::Done(0))
            }
            Op::CorruptAllocBtree | Op::RepairAllocBtree => Err(SysError {
                call: "corrupt/repair (no kernel analogue)",
                errno: libc::EOPNOTSUPP,
            }),
        }
    }

    fn fallocate(&self, file: FileId, flags: FallocateFlags, off: u64, len: u64) -> KOutcome {
        // vfs_fallocate checks s_maxbytes, which the script's max-size stands for (len 0 is the
        // kernel's EINVAL, checked first there).
        if len != 0
            && off
                .checked_add(len)
                .is_none_or(|end| end > self.geometry.max_file_size)
        {
            return Ok(Outcome::Err(Errno::Efbig));
        }
        match rustix::fs::fallocate(&self.files[file as usize], flags, off, len) {
            Ok(()) => Ok(Outcome::Done(0)),
            Err(e) => rx_outcome("fallocate", e),
        }
    }

    /// A read or write fault on the script folio holding `off`, through a MAP_SHARED mapping of
    /// that folio. The clipping and EFAULT come from i_size before anything is touched: a fault
    /// past EOF is SIGBUS in Linux, the spec's EFAULT, and must not happen in this process.
    fn fault(&mut self, seq: u32, file: FileId, off: u64, len: u64, write: bool) -> KOutcome {
        let fd = &self.files[file as usize];
        let size = fd.metadata().map_err(|e| sys("fstat", &e))?.len();
        if off >= size {
            return Ok(Outcome::Err(Errno::Efault));
        }
        let fs = self.geometry.folio_size();
        let start = off / fs * fs;
        let n = len.min(start + fs - off).min(size - off);
        if n == 0 {
            return Ok(if write {
                Outcome::Done(0)
            } else {
                Outcome::Data(vec![])
            });
        }
        let at = (off - start) as usize;
        // SAFETY: the mapping covers the script folio; this thread alone uses the file while the
        // mapping lives (it is dropped at the end of this op), and only bytes below i_size, as
        // read just above, are touched, so no access can fault past EOF.
        let opts = {
            let mut o = MmapOptions::new();
            o.offset(start).len(fs as usize);
            o
        };
        if write {
            let mut map = unsafe { opts.map_mut(fd) }.map_err(|e| sys("mmap", &e))?;
            fill_pattern(seq, off, &mut map[at..at + n as usize]);
            // The spec's write fault dirties the whole folio up to EOF (page_mkwrite); the
            // kernel's folio may be smaller than the script's, so every page of the script folio
            // that starts below EOF takes a write fault of its own (its first byte rewritten
            // with itself).
            let page = reference::PAGE_SIZE as usize;
            for p in (0..fs as usize).step_by(page) {
                if start + (p as u64) < size {
                    let ptr = map.as_mut_ptr().wrapping_add(p);
                    // SAFETY: `p` is inside the mapping and below EOF (checked above).
                    unsafe { ptr.write_volatile(ptr.read_volatile()) };
                }
            }
            Ok(Outcome::Done(n))
        } else {
            let map = unsafe { opts.map(fd) }.map_err(|e| sys("mmap", &e))?;
            Ok(Outcome::Data(map[at..at + n as usize].to_vec()))
        }
    }
}

fn sys(call: &'static str, e: &io::Error) -> SysError {
    SysError {
        call,
        errno: e.raw_os_error().unwrap_or(libc::EIO),
    }
}

fn sys_rx(call: &'static str, e: rustix::io::Errno) -> SysError {
    SysError {
        call,
        errno: e.raw_os_error(),
    }
}

/// pread until `buf` is full or EOF; returns the bytes read.
fn pread_full(f: &File, buf: &mut [u8], off: u64) -> io::Result<usize> {
    let mut done = 0;
    while done < buf.len() {
        match f.read_at(&mut buf[done..], off + done as u64) {
            Ok(0) => break,
            Ok(n) => done += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(done)
}

/// sync_file_range(2) (not wrapped by rustix). An error is returned as an outcome if the
/// vocabulary has it (EIO from writeback), else as a [`SysError`].
fn sync_file_range(f: &File, off: u64, len: u64, flags: libc::c_uint) -> KOutcome {
    // SAFETY: a plain syscall on a descriptor this executor owns; no memory is passed.
    let r = unsafe { libc::sync_file_range(f.as_raw_fd(), off as i64, len as i64, flags) };
    if r == 0 {
        Ok(Outcome::Done(0))
    } else {
        let e = io::Error::last_os_error();
        match io_outcome("sync_file_range", &e)? {
            Outcome::Err(Errno::Eio) => Ok(Outcome::Err(Errno::Eio)),
            _ => Err(sys("sync_file_range", &e)),
        }
    }
}
