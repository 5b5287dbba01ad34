//! Asynchronous submission for backends that complete on a device queue polled by the
//! caller (the userspace NVMe driver, io_uring passthrough).
//!
//! A call submits the command on the calling thread's queue and returns a future. Polling the
//! future polls that queue's completions; while the command is outstanding the future wakes its
//! own task again, so a polled-mode reactor keeps polling the device exactly as long as it has
//! I/O in flight there.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use bytes::Bytes;

use super::lease::{DmaLease, LeaseHome};
use super::BackendError;

/// A backend command in flight.
pub type IoFuture<T> = Pin<Box<dyn Future<Output = Result<T, BackendError>> + Send + 'static>>;

pub trait QueuedBackend: Send + Sync + 'static {
    /// Read `buf.len()` bytes (whole blocks) at `lba` into `buf` and hand it back.
    fn read(&self, lba: u64, buf: Vec<u8>) -> IoFuture<Vec<u8>>;
    /// Write whole blocks at `lba`; with `fua` they are on stable media at completion.
    fn write(&self, lba: u64, data: Bytes, fua: bool) -> IoFuture<()>;
    fn flush(&self) -> IoFuture<()>;
    fn write_zeroes(&self, lba: u64, blocks: u64) -> IoFuture<()>;
    fn deallocate(&self, lba: u64, blocks: u64) -> IoFuture<()>;
}

/// A command of the polled interface that finished: the caller's token, the completion's
/// DW0/DW1 or the failure, and the caller's buffer (a read's data) handed back, or the
/// device memory a successful [`PolledBackend::start_read_lent`] left the data in.
#[derive(Debug)]
pub struct Polled {
    pub token: u64,
    pub result: Result<u64, BackendError>,
    pub buf: Option<Vec<u8>>,
    pub lease: Option<DmaLease>,
}

impl Polled {
    /// A finished command that hands back `buf` and lends nothing.
    pub fn new(token: u64, result: Result<u64, BackendError>, buf: Option<Vec<u8>>) -> Polled {
        Polled {
            token,
            result,
            buf,
            lease: None,
        }
    }
}

/// The owner part of a polled command's token: its upper 32 bits.
pub fn token_owner(token: u64) -> u32 {
    (token >> 32) as u32
}

/// Why the polled interface did not start a command.
#[derive(Debug)]
pub enum Refused {
    /// The device queue or its DMA memory is full: start it again after completions.
    Busy,
    /// The command needs more than one device command (larger than the drive's transfer
    /// limit): use [`QueuedBackend`] for it.
    Unsupported,
    /// It cannot run: answer the host with this failure.
    Failed(BackendError),
}

/// Commands started with a caller's token and reaped by polling, for a reactor that owns the
/// commands' state in its own preallocated table: no future, no shared completion state, no
/// allocation per command. A token's upper 32 bits name its owner ([`new_owner`]); an owner
/// reaps only its own completions, on the thread it started them from (the thread's device
/// queue). A started command may reach the device only at the next [`PolledBackend::reap`]
/// on that thread (one doorbell or system call for every command started since), so a caller
/// reaps after starting.
pub trait PolledBackend: Send + Sync {
    /// Read `buf.len()` bytes (whole blocks) at `lba` into `buf`; it comes back in [`Polled`].
    /// On refusal the buffer comes back with the reason.
    fn start_read(&self, lba: u64, buf: Vec<u8>, token: u64) -> Result<(), (Refused, Vec<u8>)>;
    /// Write whole blocks at `lba`; the data is copied out before this returns.
    fn start_write(&self, lba: u64, data: &[u8], fua: bool, token: u64) -> Result<(), Refused>;
    /// Poll this thread's device queue and hand `owner`'s finished commands to `done`; returns
    /// how many. Also runs the queue's deadline checks (abort, reset).
    fn reap(&self, owner: u32, done: &mut dyn FnMut(Polled)) -> usize;
    /// The owner is gone: drop its finished commands and discard its outstanding ones when
    /// they complete.
    fn forget(&self, owner: u32);

    /// Where the device memory this backend lends comes from, `None` when it lends none (its
    /// reads fill the caller's buffer; the lent calls below answer `Unsupported`). Leases
    /// made into tags ([`DmaLease::into_tag`]) go back through it.
    fn lease_home(&self) -> Option<Arc<dyn LeaseHome>> {
        None
    }

    /// Read `len` bytes (whole blocks) at `lba` into device memory that the successful
    /// completion lends ([`Polled::lease`]): the data stays where the device wrote it.
    fn start_read_lent(&self, lba: u64, len: usize, token: u64) -> Result<(), Refused> {
        let _ = (lba, len, token);
        Err(Refused::Unsupported)
    }

    /// Device memory of `len` bytes for a write's data ([`PolledBackend::start_write_lent`]),
    /// `None` when the backend lends none or has none free now.
    fn lend(&self, len: usize) -> Option<DmaLease> {
        let _ = len;
        None
    }

    /// Write the lease's bytes (whole blocks, filled by the caller) at `lba`, with the device
    /// reading them where they are. On refusal the lease comes back.
    fn start_write_lent(
        &self,
        lba: u64,
        data: DmaLease,
        fua: bool,
        token: u64,
    ) -> Result<(), (Refused, DmaLease)> {
        let _ = (lba, fua, token);
        Err((Refused::Unsupported, data))
    }
}

/// A fresh owner id for [`PolledBackend`] tokens.
pub fn new_owner() -> u32 {
    static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(1);
    NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
}
