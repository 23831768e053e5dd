//! Scratch devices, the way xfstests makes them: a sparse image file in a fresh temporary
//! directory, a loop device attached to it with the script's block size as its logical sector
//! size (`losetup --show -f -b N`, so O_DIRECT alignment is the block size), mkfs, and a mount
//! on a fresh temporary directory.
//!
//! Safety rules this module owns: it only ever runs mkfs and mount on the loop device that its
//! own `losetup --show` printed for the image it created; it detaches exactly that device
//! (`losetup -d DEV`) and unmounts exactly its own mount point, in [`Scratch`]'s `Drop`, which
//! runs on normal return, on errors (early returns) and on panics (unwinding). SIGINT and
//! SIGTERM are caught by [`install_signal_handlers`], which only sets a flag; runs poll
//! [`interrupted`] between ops and return, so the guard's `Drop` does the cleanup. (A SIGKILL
//! cannot be caught: the image is then left in `losetup -a` under a `wbfuzz-scratch-` path.)

use super::FsKind;
use std::fmt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::sync::OnceLock;

/// Why a scratch device could not be made.
#[derive(Debug)]
pub enum ScratchError {
    /// Not root.
    NotRoot,
    /// A tool is missing.
    MissingTool {
        /// The program.
        tool: &'static str,
        /// How to get it.
        hint: &'static str,
    },
    /// The filesystem cannot use the block size.
    BlockSize {
        /// The filesystem.
        fs: FsKind,
        /// The block size asked for.
        block: u32,
        /// Why not.
        why: &'static str,
    },
    /// No loop device could be attached (no loop support, or none free).
    Loop(String),
    /// A command failed.
    Command {
        /// What was run.
        what: String,
        /// Its stderr.
        stderr: String,
    },
    /// A file operation failed.
    Io(&'static str, std::io::Error),
}

impl fmt::Display for ScratchError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ScratchError::NotRoot => write!(
                f,
                "--mkfs needs root (loop devices, mkfs and mount): run as root, or use `--dir DIR` on a filesystem you mounted yourself"
            ),
            ScratchError::MissingTool { tool, hint } => {
                write!(f, "`{tool}` not found: {hint}")
            }
            ScratchError::BlockSize { fs, block, why } => {
                write!(f, "{fs} cannot use block size {block}: {why}")
            }
            ScratchError::Loop(e) => write!(
                f,
                "could not attach a loop device ({e}): load the loop driver (`modprobe loop`) or free a device"
            ),
            ScratchError::Command { what, stderr } => {
                write!(f, "`{what}` failed: {}", stderr.trim())
            }
            ScratchError::Io(what, e) => write!(f, "{what}: {e}"),
        }
    }
}

impl std::error::Error for ScratchError {}

static INTERRUPTED: OnceLock<Arc<AtomicBool>> = OnceLock::new();

/// Installs SIGINT and SIGTERM handlers that only set the flag [`interrupted`] reads (once per
/// process; later calls do nothing). Kernel runs poll it between ops and stop, so every guard
/// on the stack is dropped and cleans up.
pub fn install_signal_handlers() -> std::io::Result<()> {
    let flag = INTERRUPTED.get_or_init(|| Arc::new(AtomicBool::new(false)));
    static DONE: OnceLock<()> = OnceLock::new();
    if DONE.get().is_none() {
        signal_hook::flag::register(signal_hook::consts::SIGINT, flag.clone())?;
        signal_hook::flag::register(signal_hook::consts::SIGTERM, flag.clone())?;
        let _ = DONE.set(());
    }
    Ok(())
}

/// Whether SIGINT or SIGTERM arrived since [`install_signal_handlers`].
pub fn interrupted() -> bool {
    INTERRUPTED.get().is_some_and(|f| f.load(Ordering::Relaxed))
}

fn find_tool(tool: &str) -> bool {
    let dirs = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&dirs)
        .chain(["/sbin", "/usr/sbin"].map(PathBuf::from))
        .any(|d| d.join(tool).is_file())
}

pub(super) fn run(cmd: &mut Command) -> Result<String, ScratchError> {
    let what = format!("{cmd:?}").replace('"', "");
    let out = cmd.output().map_err(|e| ScratchError::Command {
        what: what.clone(),
        stderr: e.to_string(),
    })?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(ScratchError::Command {
            what,
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        })
    }
}

/// Checks everything `--mkfs` needs for `fs` at block size `block` before anything is made:
/// root, losetup, mount, the mkfs tool, and a block size the filesystem can do.
pub fn preflight(fs: FsKind, block: u32) -> Result<(), ScratchError> {
    if !rustix::process::geteuid().is_root() {
        return Err(ScratchError::NotRoot);
    }
    if let Some(why) = fs.refuses_block(block) {
        return Err(ScratchError::BlockSize { fs, block, why });
    }
    for (tool, hint) in [
        (
            "losetup",
            "install util-linux (`apt-get install -y util-linux`)",
        ),
        (
            "mount",
            "install util-linux (`apt-get install -y util-linux`)",
        ),
    ] {
        if !find_tool(tool) {
            return Err(ScratchError::MissingTool { tool, hint });
        }
    }
    let (tool, hint) = match fs {
        FsKind::Xfs => (
            "mkfs.xfs",
            "install xfsprogs (`apt-get install -y xfsprogs`)",
        ),
        FsKind::Ext4 => (
            "mkfs.ext4",
            "install e2fsprogs (`apt-get install -y e2fsprogs`)",
        ),
        FsKind::Btrfs => (
            "mkfs.btrfs",
            "install btrfs-progs (`apt-get install -y btrfs-progs`)",
        ),
    };
    if !find_tool(tool) {
        return Err(ScratchError::MissingTool { tool, hint });
    }
    Ok(())
}

/// The size of the image for a hunt or run whose inputs have at most `files` files of at most
/// `max_file_size` bytes: room for every file at its maximum size twice over (speculative
/// preallocation, metadata), on top of the smallest filesystem mkfs accepts (XFS: 300 MiB). The
/// image is sparse, so only what the filesystem writes takes disk space.
pub fn image_size(files: usize, max_file_size: u64) -> u64 {
    const FLOOR: u64 = 320 << 20;
    FLOOR + 2 * files as u64 * max_file_size
}

/// A mounted scratch filesystem on a loop device; dropping it unmounts, detaches and deletes.
pub struct Scratch {
    fs: FsKind,
    block: u32,
    device: Option<String>,
    mounted: bool,
    mount_dir: tempfile::TempDir,
    image_dir: tempfile::TempDir,
    /// ext4 mounted `data=journal`: every file's data goes through the journal.
    data_journal: bool,
}

impl Scratch {
    /// Makes and mounts a scratch filesystem of kind `fs` with block size `block` on an image of
    /// `size` bytes. On any failure, whatever was done is undone before the error returns.
    pub fn create(fs: FsKind, block: u32, size: u64) -> Result<Scratch, ScratchError> {
        Scratch::create_with(fs, block, size, false)
    }

    /// [`Scratch::create`], with ext4 mounted `data=journal` when `data_journal` is set (the
    /// journaled-data analogue: ext4's per-file `j` attribute needs CAP_SYS_RESOURCE, which a
    /// container's root often lacks; the mount option needs only the mount).
    pub fn create_with(
        fs: FsKind,
        block: u32,
        size: u64,
        data_journal: bool,
    ) -> Result<Scratch, ScratchError> {
        if data_journal && fs != FsKind::Ext4 {
            return Err(ScratchError::Command {
                what: "--jdata".into(),
                stderr: format!("data=journal is an ext4 mount option, not one of {fs}"),
            });
        }
        preflight(fs, block)?;
        let image_dir = tempfile::Builder::new()
            .prefix("wbfuzz-scratch-")
            .tempdir()
            .map_err(|e| ScratchError::Io("creating the image directory", e))?;
        let mount_dir = tempfile::Builder::new()
            .prefix("wbfuzz-mnt-")
            .tempdir()
            .map_err(|e| ScratchError::Io("creating the mount point", e))?;
        let mut s = Scratch {
            fs,
            block,
            device: None,
            mounted: false,
            mount_dir,
            image_dir,
            data_journal,
        };
        let image = s.image();
        let f =
            std::fs::File::create(&image).map_err(|e| ScratchError::Io("creating the image", e))?;
        f.set_len(size)
            .map_err(|e| ScratchError::Io("sizing the image", e))?;
        drop(f);
        let dev = run(Command::new("losetup")
            .args(["--show", "-f", "-b", &block.to_string()])
            .arg(&image))
        .map_err(|e| match e {
            ScratchError::Command { stderr, .. } => ScratchError::Loop(stderr.trim().to_string()),
            other => other,
        })?;
        let dev = dev.trim().to_string();
        if !dev.starts_with("/dev/loop") {
            return Err(ScratchError::Loop(format!("losetup printed `{dev}`")));
        }
        s.device = Some(dev.clone());
        let bs = block.to_string();
        let mut mkfs = match fs {
            FsKind::Xfs => {
                let mut c = Command::new("mkfs.xfs");
                c.args(["-f", "-q", "-b"]).arg(format!("size={bs}"));
                c
            }
            FsKind::Ext4 => {
                let mut c = Command::new("mkfs.ext4");
                c.args(["-F", "-q", "-b", &bs]);
                c
            }
            FsKind::Btrfs => {
                let mut c = Command::new("mkfs.btrfs");
                c.args(["-f", "-q", "-s", &bs]);
                c
            }
        };
        run(mkfs.arg(&dev))?;
        s.mounted = false;
        s.mount()?;
        Ok(s)
    }

    /// Whether the filesystem is mounted `data=journal` (ext4): every file is journaled data.
    pub fn data_journal(&self) -> bool {
        self.data_journal
    }

    /// The mount point.
    pub fn dir(&self) -> &Path {
        self.mount_dir.path()
    }

    /// The loop device (`/dev/loopN`).
    pub fn device(&self) -> &str {
        self.device.as_deref().unwrap_or("")
    }

    /// The device's kernel name (`loopN`), as kernel log lines name it.
    pub fn device_name(&self) -> &str {
        self.device().trim_start_matches("/dev/")
    }

    /// The filesystem.
    pub fn fs(&self) -> FsKind {
        self.fs
    }

    /// The block size.
    pub fn block(&self) -> u32 {
        self.block
    }

    /// The image file.
    pub fn image(&self) -> PathBuf {
        self.image_dir.path().join("image")
    }

    /// Unmounts the filesystem, keeping the device (for offline tools: `xfs_db`, `xfs_repair`).
    /// No descriptor into it may be open.
    pub fn unmount(&mut self) -> Result<(), ScratchError> {
        if self.mounted {
            run(Command::new("umount").arg(self.mount_dir.path()))?;
            self.mounted = false;
        }
        Ok(())
    }

    /// Mounts the filesystem again after [`Scratch::unmount`].
    pub fn mount(&mut self) -> Result<(), ScratchError> {
        if !self.mounted {
            let mut c = Command::new("mount");
            c.args(["-t", self.fs.name()]);
            if self.data_journal {
                c.args(["-o", "data=journal"]);
            }
            run(c.arg(self.device()).arg(self.mount_dir.path()))?;
            self.mounted = true;
        }
        Ok(())
    }

    /// Unmounts, detaches and deletes now, reporting the first failure (Drop does the same
    /// silently, except for a line on stderr).
    pub fn destroy(mut self) -> Result<(), ScratchError> {
        self.cleanup()
    }

    fn cleanup(&mut self) -> Result<(), ScratchError> {
        let mut first = None;
        if self.mounted {
            // A busy mount (a descriptor still open somewhere) gets a few tries.
            let mut res = Ok(String::new());
            for _ in 0..20 {
                res = run(Command::new("umount").arg(self.mount_dir.path()));
                if res.is_ok() {
                    break;
                }
                std::thread::sleep(std::time::Duration::from_millis(100));
            }
            match res {
                Ok(_) => self.mounted = false,
                Err(e) => first = Some(e),
            }
        }
        if let Some(dev) = self.device.take() {
            if self.mounted {
                // Never detach a device under a mount we could not remove.
                self.device = Some(dev);
            } else if let Err(e) = run(Command::new("losetup").args(["-d", &dev])) {
                first.get_or_insert(e);
            }
        }
        first.map_or(Ok(()), Err)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if let Err(e) = self.cleanup() {
            eprintln!(
                "wbfuzz: cleaning up the scratch device {}: {e}",
                self.device()
            );
        }
    }
}
