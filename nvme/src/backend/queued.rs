//! Asynchronous submission for backends that complete on a device queue polled by the
//! caller (the userspace NVMe driver, io_uring passthrough).
//!
//! A call submits the command on the calling thread's queue and returns a future. Polling the
//! future polls that queue's completions; while the command is outstanding the future wakes its
//! own task again, so a polled-mode reactor keeps polling the device exactly as long as it has
//! I/O in flight there.

use std::future::Future;
use std::pin::Pin;

use bytes::Bytes;

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
