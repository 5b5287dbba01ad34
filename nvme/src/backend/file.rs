//! A backend over a regular file or a block device.
//!
//! All I/O is positioned (`pread`/`pwrite` through [`FileExt`]), so concurrent calls never share
//! a file cursor. With [`FileOptions::direct`] the file is opened with `O_DIRECT`; caller buffers
//! that are not 4096-aligned are staged through an aligned bounce buffer. When the filesystem
//! refuses `O_DIRECT` (EINVAL on open or on a probe read) the backend falls back to buffered I/O.
//!
//! Durability: Flush is `fdatasync`. FUA writes go through a second descriptor for the same file
//! opened with `O_DSYNC`, used for nothing else. The kernel then makes only that write's range
//! durable before `pwrite` returns (and on a block device with `O_DIRECT` it becomes a real FUA
//! write when the device supports one), instead of an `fdatasync` that would also flush every
//! other in-flight write of the namespace.
//!
//! Write Zeroes uses `fallocate(FALLOC_FL_ZERO_RANGE)` and Deallocate uses
//! `fallocate(FALLOC_FL_PUNCH_HOLE)`; where the filesystem or device lacks them, both fall back
//! to writing zeroes, so deallocated blocks always read as zeroes.

use std::fs::{File, OpenOptions};
use std::io::{self, Seek, SeekFrom};
use std::os::unix::fs::{FileExt, FileTypeExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use nix::errno::Errno;
use nix::fcntl::{fallocate, FallocateFlags, OFlag};

use super::null::{buf_span, byte_span, check_geometry, invalid_input, SUPPORTED_BLOCK_SIZES};
use super::{Backend, BackendError, BackendInfo};

/// Memory alignment used for `O_DIRECT` buffers; covers every logical block size we accept.
pub const DIRECT_ALIGN: usize = 4096;
/// Largest piece staged through a bounce buffer at once.
const BOUNCE_MAX: usize = 1 << 20;
/// Size of the shared zero buffer used when zeroing by writes.
const ZERO_BUF: usize = 128 << 10;

/// How to open a [`FileBackend`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileOptions {
    /// Logical block size: 512 or 4096.
    pub block_size: u32,
    /// Namespace size in bytes. For a regular file that is smaller, `create` extends it with
    /// `set_len` (sparse); otherwise opening fails. A larger file or device is used only up to
    /// this size. `None`: the whole file or device, rounded down to whole blocks.
    pub size: Option<u64>,
    /// Try `O_DIRECT`, falling back to buffered I/O when the filesystem refuses it.
    pub direct: bool,
    /// Create the file if it does not exist.
    pub create: bool,
}

impl Default for FileOptions {
    fn default() -> Self {
        FileOptions {
            block_size: 512,
            size: None,
            direct: false,
            create: false,
        }
    }
}

/// A heap buffer whose usable part starts at a `DIRECT_ALIGN` boundary, obtained without
/// `unsafe` by over-allocating and slicing at the aligned offset.
struct AlignedBuf {
    storage: Vec<u8>,
    start: usize,
    len: usize,
}

impl AlignedBuf {
    /// A zeroed aligned buffer of `len` bytes; `NoSpace` if memory is exhausted.
    fn new(len: usize) -> Result<Self, BackendError> {
        let total = len.checked_add(DIRECT_ALIGN).ok_or(BackendError::NoSpace)?;
        let mut storage = Vec::new();
        storage
            .try_reserve_exact(total)
            .map_err(|_| BackendError::NoSpace)?;
        storage.resize(total, 0);
        // The Vec is never resized again, so its address (and this offset) stays valid.
        let addr = storage.as_ptr() as usize;
        let start = (DIRECT_ALIGN - addr % DIRECT_ALIGN) % DIRECT_ALIGN;
        Ok(AlignedBuf {
            storage,
            start,
            len,
        })
    }

    fn as_slice(&self) -> &[u8] {
        &self.storage[self.start..self.start + self.len]
    }

    fn as_mut_slice(&mut self) -> &mut [u8] {
        &mut self.storage[self.start..self.start + self.len]
    }
}

fn is_aligned(buf: &[u8]) -> bool {
    // DIRECT_ALIGN is a power of two.
    buf.as_ptr() as usize & (DIRECT_ALIGN - 1) == 0
}

/// Storage errors: ENOSPC and EDQUOT become `NoSpace`, everything else `Io`.
pub(crate) fn map_io(e: io::Error) -> BackendError {
    match e.raw_os_error() {
        Some(code) if code == Errno::ENOSPC as i32 || code == Errno::EDQUOT as i32 => {
            BackendError::NoSpace
        }
        _ => BackendError::Io(e),
    }
}

fn is_einval(e: &io::Error) -> bool {
    e.raw_os_error() == Some(Errno::EINVAL as i32)
}

/// Errors meaning "this fallocate mode is not available here", as opposed to an I/O failure.
pub(crate) fn fallocate_unsupported(e: Errno) -> bool {
    matches!(
        e,
        Errno::EOPNOTSUPP | Errno::ENOSYS | Errno::EINVAL | Errno::ENODEV
    )
}

fn open_fd(path: &Path, create: bool, direct: bool, dsync: bool) -> io::Result<File> {
    let mut flags = OFlag::empty();
    if direct {
        flags |= OFlag::O_DIRECT;
    }
    if dsync {
        flags |= OFlag::O_DSYNC;
    }
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(create)
        .custom_flags(flags.bits())
        .open(path)
}

/// Open with `O_DIRECT` when wanted, falling back to buffered when the filesystem answers
/// EINVAL (its way of refusing `O_DIRECT`). Returns the file and whether it is direct.
fn open_preferring_direct(
    path: &Path,
    want_direct: bool,
    open: impl Fn(bool) -> io::Result<File>,
) -> io::Result<(File, bool)> {
    if want_direct {
        match open(true) {
            Ok(f) => return Ok((f, true)),
            Err(e) if is_einval(&e) => {
                tracing::info!(path = %path.display(), "O_DIRECT refused on open, using buffered I/O");
            }
            Err(e) => return Err(e),
        }
    }
    Ok((open(false)?, false))
}

/// Read the first block with an aligned buffer: `Ok(false)` when direct I/O is refused (EINVAL,
/// e.g. a block size below the device's logical block size).
fn probe_direct(file: &File, block_size: u32) -> Result<bool, BackendError> {
    let mut buf = AlignedBuf::new(block_size as usize)?;
    match file.read_exact_at(buf.as_mut_slice(), 0) {
        Ok(()) => Ok(true),
        Err(e) if is_einval(&e) => Ok(false),
        Err(e) => Err(map_io(e)),
    }
}

pub(crate) fn off_t(v: u64) -> Result<nix::libc::off_t, BackendError> {
    nix::libc::off_t::try_from(v)
        .map_err(|_| invalid_input(format!("offset {v} does not fit off_t")))
}

/// Namespace backed by a regular file or a block device.
#[derive(Debug)]
pub struct FileBackend {
    path: PathBuf,
    /// Reads, non-FUA writes, fallocate, flush.
    file: File,
    /// The same file opened with `O_DSYNC`: FUA writes only.
    fua_file: File,
    block_size: u32,
    num_blocks: u64,
    direct: bool,
    block_device: bool,
    /// Cleared once fallocate(ZERO_RANGE) reports it is unsupported.
    zero_range_ok: AtomicBool,
    /// Cleared once fallocate(PUNCH_HOLE) reports it is unsupported.
    punch_hole_ok: AtomicBool,
}

impl FileBackend {
    /// Open `path` (a regular file or block device) as a namespace; see [`FileOptions`].
    pub fn open(path: impl AsRef<Path>, opts: FileOptions) -> Result<Self, BackendError> {
        let path = path.as_ref();
        let bs = opts.block_size;
        if !SUPPORTED_BLOCK_SIZES.contains(&bs) {
            return Err(invalid_input(format!(
                "block size {bs} is not one of {SUPPORTED_BLOCK_SIZES:?}"
            )));
        }
        if let Some(size) = opts.size {
            check_geometry(size, bs)?;
        }

        let (mut file, mut direct) =
            open_preferring_direct(path, opts.direct, |d| open_fd(path, opts.create, d, false))?;
        let meta = file.metadata()?;
        let block_device = meta.file_type().is_block_device();
        if !block_device && !meta.file_type().is_file() {
            return Err(invalid_input(format!(
                "{} is neither a regular file nor a block device",
                path.display()
            )));
        }
        // A block device reports length 0 in its metadata; seeking to the end gives its size.
        // The shared cursor this moves is never used for I/O.
        let available = if block_device {
            (&file).seek(SeekFrom::End(0))?
        } else {
            meta.len()
        };
        let capacity = match opts.size {
            Some(size) if size <= available => size,
            Some(size) if opts.create && !block_device => {
                file.set_len(size).map_err(map_io)?;
                size
            }
            Some(size) => {
                return Err(invalid_input(format!(
                    "{} holds {available} bytes, {size} requested",
                    path.display()
                )))
            }
            None => available - available % u64::from(bs),
        };
        let num_blocks = check_geometry(capacity, bs)?;

        if direct && !probe_direct(&file, bs)? {
            tracing::info!(path = %path.display(), block_size = bs,
                "O_DIRECT read refused, using buffered I/O");
            file = open_fd(path, false, false, false)?;
            direct = false;
        }
        let fua_file = open_fd(path, false, direct, true)?;
        let (a, b) = (file.metadata()?, fua_file.metadata()?);
        if (a.dev(), a.ino()) != (b.dev(), b.ino()) {
            return Err(BackendError::Io(io::Error::other(format!(
                "{} was replaced while opening",
                path.display()
            ))));
        }
        tracing::debug!(path = %path.display(), num_blocks, block_size = bs, direct,
            block_device, "file backend open");
        Ok(FileBackend {
            path: path.to_path_buf(),
            file,
            fua_file,
            block_size: bs,
            num_blocks,
            direct,
            block_device,
            zero_range_ok: AtomicBool::new(true),
            punch_hole_ok: AtomicBool::new(true),
        })
    }

    /// True when I/O bypasses the page cache (`O_DIRECT` was requested and accepted).
    pub fn is_direct(&self) -> bool {
        self.direct
    }

    /// True when the backend is a block device rather than a regular file.
    pub fn is_block_device(&self) -> bool {
        self.block_device
    }

    /// The path the backend was opened from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Write `data` at byte `offset` through `fd`, staging through an aligned buffer when
    /// direct I/O needs it.
    fn write_at(&self, fd: &File, data: &[u8], offset: u64) -> Result<(), BackendError> {
        if !self.direct || is_aligned(data) {
            return fd.write_all_at(data, offset).map_err(map_io);
        }
        let mut bounce = AlignedBuf::new(data.len().min(BOUNCE_MAX))?;
        let mut pos = offset;
        for src in data.chunks(BOUNCE_MAX) {
            let staged = &mut bounce.as_mut_slice()[..src.len()];
            staged.copy_from_slice(src);
            fd.write_all_at(staged, pos).map_err(map_io)?;
            pos += src.len() as u64;
        }
        Ok(())
    }

    /// Zero `len` bytes at `offset` by writing zeroes.
    fn write_zero_bytes(&self, offset: u64, len: u64) -> Result<(), BackendError> {
        let zeroes = AlignedBuf::new(ZERO_BUF.min(usize::try_from(len).unwrap_or(ZERO_BUF)))?;
        let step = zeroes.len as u64;
        let mut pos = offset;
        let end = offset + len;
        while pos < end {
            let n = step.min(end - pos) as usize;
            self.file
                .write_all_at(&zeroes.as_slice()[..n], pos)
                .map_err(map_io)?;
            pos += n as u64;
        }
        Ok(())
    }

    /// Try one fallocate mode; `Ok(false)` when the mode is unsupported (and remembered so).
    fn try_fallocate(
        &self,
        supported: &AtomicBool,
        mode: FallocateFlags,
        offset: u64,
        len: u64,
    ) -> Result<bool, BackendError> {
        if !supported.load(Ordering::Relaxed) {
            return Ok(false);
        }
        match fallocate(&self.file, mode, off_t(offset)?, off_t(len)?) {
            Ok(()) => Ok(true),
            Err(e) if fallocate_unsupported(e) => {
                if supported.swap(false, Ordering::Relaxed) {
                    tracing::info!(path = %self.path.display(), ?mode, error = %e,
                        "fallocate mode unsupported, zeroing by writes");
                }
                Ok(false)
            }
            Err(e) => Err(map_io(e.into())),
        }
    }
}

impl Backend for FileBackend {
    fn info(&self) -> BackendInfo {
        BackendInfo {
            block_size: self.block_size,
            num_blocks: self.num_blocks,
            // Deallocate punches a hole or writes zeroes; either way the range reads zero.
            deallocated_reads_zero: true,
            // The page cache (or the device's own cache) is volatile: Flush and FUA matter.
            volatile_write_cache: true,
        }
    }

    fn read(&self, lba: u64, buf: &mut [u8]) -> Result<(), BackendError> {
        let (offset, _) = buf_span(lba, buf.len(), self.block_size, self.num_blocks)?;
        if buf.is_empty() {
            return Ok(());
        }
        if !self.direct || is_aligned(buf) {
            return self.file.read_exact_at(buf, offset).map_err(map_io);
        }
        let mut bounce = AlignedBuf::new(buf.len().min(BOUNCE_MAX))?;
        let mut pos = offset;
        for dst in buf.chunks_mut(BOUNCE_MAX) {
            let staged = &mut bounce.as_mut_slice()[..dst.len()];
            self.file.read_exact_at(staged, pos).map_err(map_io)?;
            dst.copy_from_slice(staged);
            pos += dst.len() as u64;
        }
        Ok(())
    }

    fn write(&self, lba: u64, data: &[u8], fua: bool) -> Result<(), BackendError> {
        let (offset, _) = buf_span(lba, data.len(), self.block_size, self.num_blocks)?;
        if data.is_empty() {
            return Ok(());
        }
        // FUA: the O_DSYNC descriptor returns only once this write is on stable storage
        // (NVM Command Set 1.0, Write command, CDW12 Force Unit Access).
        let fd = if fua { &self.fua_file } else { &self.file };
        self.write_at(fd, data, offset)
    }

    fn flush(&self) -> Result<(), BackendError> {
        // Flush commits every completed write to non-volatile media (NVMe Base 2.0, Flush
        // command). fdatasync covers writes made through either descriptor: they share an inode.
        self.file.sync_data().map_err(map_io)
    }

    fn write_zeroes(&self, lba: u64, blocks: u64) -> Result<(), BackendError> {
        let (offset, len) = byte_span(lba, blocks, self.block_size, self.num_blocks)?;
        if len == 0 {
            return Ok(());
        }
        // KEEP_SIZE: never grow the file; block devices require it.
        let mode = FallocateFlags::FALLOC_FL_ZERO_RANGE | FallocateFlags::FALLOC_FL_KEEP_SIZE;
        if self.try_fallocate(&self.zero_range_ok, mode, offset, len)? {
            return Ok(());
        }
        self.write_zero_bytes(offset, len)
    }

    fn deallocate(&self, lba: u64, blocks: u64) -> Result<(), BackendError> {
        let (offset, len) = byte_span(lba, blocks, self.block_size, self.num_blocks)?;
        if len == 0 {
            return Ok(());
        }
        let mode = FallocateFlags::FALLOC_FL_PUNCH_HOLE | FallocateFlags::FALLOC_FL_KEEP_SIZE;
        if self.try_fallocate(&self.punch_hole_ok, mode, offset, len)? {
            return Ok(());
        }
        // No hole punching: zero instead so deallocated blocks still read as zeroes
        // (DLFEAT read behavior 001b, NVM Command Set 1.0, Identify Namespace data structure).
        self.write_zeroes(lba, blocks)
    }

    fn may_block(&self) -> bool {
        true
    }

    fn grown(&self, size_bytes: u64) -> Result<super::SharedBackend, BackendError> {
        Ok(std::sync::Arc::new(self.grown_file(size_bytes)?))
    }
}

mod resize;

#[cfg(test)]
mod tests;
