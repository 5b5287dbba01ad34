//! Drive backends: what a namespace stores its blocks in.
//!
//! Every backend implements [`Backend`]; the target maps [`BackendError`] to NVMe status in
//! one exhaustive match. Calls are synchronous; a backend whose calls may sleep on device I/O
//! says so through [`Backend::may_block`] so the caller can move them off its reactor.
//!
//! Implementations: [`RamBackend`] (sparse memory), [`FileBackend`] (regular file or block
//! device), [`NullBackend`] (discards writes, for transport benchmarks) and [`UringBackend`]
//! (an NVMe namespace through io_uring passthrough). [`ZonedRamBackend`] is a zoned namespace in
//! memory; zoned backends answer [`Backend::zoned`] with their zone commands.

use std::sync::Arc;

pub mod file;
pub mod lease;
pub mod null;
pub mod queued;
pub mod ram;
pub mod uring;
pub mod zoned;
pub mod zoned_ram;

pub use file::{FileBackend, FileOptions};
pub use lease::{DmaLease, LeaseHome};
pub use null::{check_geometry, NullBackend, SUPPORTED_BLOCK_SIZES};
pub use queued::{new_owner, token_owner, IoFuture, Polled, PolledBackend, QueuedBackend, Refused};
pub use ram::RamBackend;
pub use uring::{UringBackend, UringOptions};
pub use zoned::{
    QueuedZonedBackend, ZoneFault, ZoneFaultError, ZoneFaults, ZonedBackend, ZonedGeometry,
};
pub use zoned_ram::{ZonedRamBackend, ZonedRamConfig};

/// Static geometry and capabilities of a backend.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BackendInfo {
    /// Logical block data size in bytes (512 or 4096).
    pub block_size: u32,
    /// Capacity in logical blocks.
    pub num_blocks: u64,
    /// True when reads of never-written or deallocated blocks return zeroes.
    pub deallocated_reads_zero: bool,
    /// True when a volatile write cache exists, so Flush and FUA are meaningful.
    pub volatile_write_cache: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    #[error("LBA range {lba}+{blocks} is beyond capacity {capacity}")]
    OutOfRange {
        lba: u64,
        blocks: u64,
        capacity: u64,
    },
    #[error("buffer of {len} bytes is not a whole number of {block_size}-byte blocks")]
    Misaligned { len: usize, block_size: u32 },
    #[error("backend I/O error: {0}")]
    Io(#[from] std::io::Error),
    #[error("backend is out of space")]
    NoSpace,
    /// The drive completed the command with this NVMe status.
    #[error("drive returned status {0}")]
    Device(crate::Status),
    /// The drive did not complete the command in time; it was aborted (or the controller reset).
    #[error("drive command timed out")]
    Timeout,
    /// The drive is gone (surprise removal, failed controller) and will not come back by itself.
    #[error("drive unavailable: {0}")]
    Gone(String),
}

pub trait Backend: Send + Sync + 'static {
    fn info(&self) -> BackendInfo;
    /// Read `buf.len() / block_size` blocks starting at `lba` into `buf`.
    fn read(&self, lba: u64, buf: &mut [u8]) -> Result<(), BackendError>;
    /// Write whole blocks starting at `lba`; with `fua` the data is on stable storage on return.
    fn write(&self, lba: u64, data: &[u8], fua: bool) -> Result<(), BackendError>;
    /// Make every completed write durable.
    fn flush(&self) -> Result<(), BackendError>;
    /// Set `blocks` blocks starting at `lba` to zeroes.
    fn write_zeroes(&self, lba: u64, blocks: u64) -> Result<(), BackendError>;
    /// Deallocate (trim) a range; afterwards it reads as zeroes when `deallocated_reads_zero`.
    fn deallocate(&self, lba: u64, blocks: u64) -> Result<(), BackendError>;
    /// True when calls may sleep on device I/O and must not run on an async reactor thread.
    fn may_block(&self) -> bool;
    /// Read `len` bytes at `lba` without copying, when the backend can hand out shared
    /// memory that stays valid and unchanged (e.g. constant zeroes); `None` means "use
    /// [`Backend::read`]". Errors are reported by `read`, so `None` is also the answer for a
    /// bad range.
    fn read_shared(&self, _lba: u64, _len: usize) -> Option<bytes::Bytes> {
        None
    }
    /// The asynchronous interface, for backends whose commands complete on a polled device
    /// queue; I/O queues use it instead of the blocking calls above when present.
    fn queued(&self) -> Option<&dyn QueuedBackend> {
        None
    }
    /// The polled interface, for backends whose commands complete on a polled device queue
    /// and can be reaped by token; I/O queues prefer it to [`Backend::queued`] for reads and
    /// writes.
    fn polled(&self) -> Option<&dyn PolledBackend> {
        None
    }
    /// The zone commands, for a zoned namespace (NVMe ZNS Command Set); `None` for the NVM
    /// command set.
    fn zoned(&self) -> Option<&dyn ZonedBackend> {
        None
    }
    /// A backend over the same storage with the larger capacity `size_bytes` (a whole number
    /// of blocks), for growing a namespace at run time: blocks written through `self` read
    /// back through it, and `self` keeps its own size for I/O still in flight on it. Backends
    /// whose size is the device's refuse (this default).
    fn grown(&self, _size_bytes: u64) -> Result<SharedBackend, BackendError> {
        Err(null::invalid_input(
            "this backend's capacity is the device's; it cannot be resized".to_string(),
        ))
    }
}

/// The capacity check every [`Backend::grown`] makes: `size_bytes` is a valid geometry for
/// `block_size` and not below `num_blocks` blocks; returns the new block count.
pub(crate) fn grown_blocks(
    size_bytes: u64,
    block_size: u32,
    num_blocks: u64,
) -> Result<u64, BackendError> {
    let blocks = null::check_geometry(size_bytes, block_size)?;
    if blocks < num_blocks {
        return Err(null::invalid_input(format!(
            "{size_bytes} bytes is less than the current {} bytes: a backend only grows",
            num_blocks * u64::from(block_size)
        )));
    }
    Ok(blocks)
}

pub type SharedBackend = Arc<dyn Backend>;

/// Check that `lba .. lba + blocks` lies within `capacity` blocks, without overflow.
pub fn check_range(lba: u64, blocks: u64, capacity: u64) -> Result<(), BackendError> {
    match lba.checked_add(blocks) {
        Some(end) if end <= capacity => Ok(()),
        _ => Err(BackendError::OutOfRange {
            lba,
            blocks,
            capacity,
        }),
    }
}

/// Number of whole blocks in `len` bytes, or `Misaligned`.
pub fn blocks_in(len: usize, block_size: u32) -> Result<u64, BackendError> {
    let bs = block_size as usize;
    if bs == 0 || !len.is_multiple_of(bs) {
        return Err(BackendError::Misaligned { len, block_size });
    }
    Ok((len / bs) as u64)
}
