//! Filesystem geometry: block, page and folio sizes, device capacity and the maximum file size.
//!
//! Invariants (checked by [`Geometry::validate`]): the block size is 512, 1024 or 4096; folios are
//! 1, 2 or 4 pages of [`PAGE_SIZE`]; the maximum file size is a non-zero multiple of the folio size
//! no larger than [`MAX_FILE_SIZE_LIMIT`]; the capacity is between 1 and [`MAX_CAPACITY_BLOCKS`].

use std::fmt;

/// The page size, fixed as on x86-64 Linux.
pub const PAGE_SIZE: u64 = 4096;
/// The DMA alignment of the device (a loop device's `queue/dma_alignment` + 1): where direct IO
/// meets a mapped extent, iomap requires the caller's buffer position there to be a multiple of
/// it (the spec's callers use buffers aligned to it).
pub const DMA_ALIGNMENT: u64 = 512;
/// Block sizes a geometry may use.
pub const BLOCK_SIZES: [u32; 3] = [512, 1024, 4096];
/// Folio sizes, in pages, a geometry may use (large folios).
pub const FOLIO_PAGES: [u32; 3] = [1, 2, 4];
/// The largest device a geometry may describe, in blocks.
pub const MAX_CAPACITY_BLOCKS: u64 = 1 << 22;
/// The largest maximum file size a geometry may set, in bytes (64 MiB).
pub const MAX_FILE_SIZE_LIMIT: u64 = 64 << 20;
/// Most files a run may have.
pub const MAX_FILES: usize = 4;
/// Most threads a run may have.
pub const MAX_THREADS: usize = 4;

/// The shape of the filesystem a run works on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Geometry {
    /// Filesystem block size in bytes: 512, 1024 or 4096.
    pub block_size: u32,
    /// Folio size in pages: 1, 2 or 4.
    pub folio_pages: u32,
    /// Device capacity in blocks.
    pub capacity_blocks: u64,
    /// Writes, truncates and fallocates past this size fail with EFBIG (or are cut short).
    pub max_file_size: u64,
}

/// Why a geometry is not valid.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum GeometryError {
    /// The block size is not 512, 1024 or 4096.
    BlockSize(u32),
    /// The folio size is not 1, 2 or 4 pages.
    FolioPages(u32),
    /// The capacity is zero or above [`MAX_CAPACITY_BLOCKS`].
    Capacity(u64),
    /// The maximum file size is zero, not a multiple of the folio size, or too large.
    MaxFileSize(u64),
}

impl fmt::Display for GeometryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GeometryError::BlockSize(b) => write!(f, "block size {b} is not one of 512, 1024, 4096"),
            GeometryError::FolioPages(p) => write!(f, "folio of {p} pages is not one of 1, 2, 4"),
            GeometryError::Capacity(c) => {
                write!(f, "capacity {c} blocks is not in 1..={MAX_CAPACITY_BLOCKS}")
            }
            GeometryError::MaxFileSize(m) => write!(
                f,
                "max file size {m} is not a non-zero multiple of the folio size up to {MAX_FILE_SIZE_LIMIT}"
            ),
        }
    }
}

impl std::error::Error for GeometryError {}

impl Default for Geometry {
    fn default() -> Self {
        Geometry {
            block_size: 1024,
            folio_pages: 1,
            capacity_blocks: 256,
            max_file_size: 256 << 10,
        }
    }
}

impl Geometry {
    /// Checks every bound documented on the fields.
    pub fn validate(&self) -> Result<(), GeometryError> {
        if !BLOCK_SIZES.contains(&self.block_size) {
            return Err(GeometryError::BlockSize(self.block_size));
        }
        if !FOLIO_PAGES.contains(&self.folio_pages) {
            return Err(GeometryError::FolioPages(self.folio_pages));
        }
        if self.capacity_blocks == 0 || self.capacity_blocks > MAX_CAPACITY_BLOCKS {
            return Err(GeometryError::Capacity(self.capacity_blocks));
        }
        if self.max_file_size == 0
            || !self.max_file_size.is_multiple_of(self.folio_size())
            || self.max_file_size > MAX_FILE_SIZE_LIMIT
        {
            return Err(GeometryError::MaxFileSize(self.max_file_size));
        }
        Ok(())
    }

    /// Block size in bytes, as u64.
    #[inline]
    pub fn bs(&self) -> u64 {
        self.block_size as u64
    }

    /// Folio size in bytes.
    #[inline]
    pub fn folio_size(&self) -> u64 {
        self.folio_pages as u64 * PAGE_SIZE
    }

    /// Blocks in one folio.
    #[inline]
    pub fn blocks_per_folio(&self) -> u64 {
        self.folio_size() / self.bs()
    }

    /// The folio that holds byte `off`.
    #[inline]
    pub fn folio_of(&self, off: u64) -> u64 {
        off / self.folio_size()
    }

    /// The block that holds byte `off`.
    #[inline]
    pub fn block_of(&self, off: u64) -> u64 {
        off / self.bs()
    }

    /// Number of blocks needed to hold `bytes` bytes (rounded up).
    #[inline]
    pub fn blocks_for(&self, bytes: u64) -> u64 {
        bytes.div_ceil(self.bs())
    }

    /// The first block of folio `folio`.
    #[inline]
    pub fn first_block_of_folio(&self, folio: u64) -> u64 {
        folio * self.blocks_per_folio()
    }
}
