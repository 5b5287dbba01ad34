//! A backend over an NVMe namespace through io_uring passthrough on its generic character
//! device (`/dev/ngXnY`): NVM commands go to the drive as they are, with no block layer or
//! filesystem in between.
//!
//! Geometry comes from Identify Namespace (NSZE, FLBAS -> LBADS, DLFEAT) and the write cache
//! from Identify Controller (VWC), both through the device's admin ioctl. Every thread
//! submits on its own ring ([`rings`]); the blocking [`Backend`] calls wait in the kernel,
//! the [`QueuedBackend`] futures poll their ring's completions when polled. Transfers larger
//! than the kernel's limit for the device (`max_hw_sectors_kb`, `max_segments`) are split.
//!
//! With [`UringOptions::iopoll`] the rings poll for completions (`IORING_SETUP_IOPOLL`)
//! when the block device has poll queues (`io_poll` is 1, e.g. `nvme.poll_queues=1`); when
//! the kernel refuses (EINVAL/EOPNOTSUPP at ring setup or on the first read) the backend
//! uses interrupts and logs that once.
//!
//! A zoned namespace (Namespace Identification Descriptor CSI 02h) is exported with its
//! zone commands passed through (module `zoned`); the drive keeps the zone rules.
//!
//! Copies: blocking reads and writes copy between the caller's slice and a buffer the ring
//! owns (the kernel may touch it until the command completes); a queued read that is split
//! copies its parts into the caller's buffer. Writes through [`QueuedBackend`] never copy.

mod cmd;
mod job;
mod limits;
mod polled;
mod rings;
mod zoned;

use std::fs::OpenOptions;
use std::future::Future;

use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;

use super::null::invalid_input;
use super::SUPPORTED_BLOCK_SIZES;
use super::{
    blocks_in, check_range, Backend, BackendError, BackendInfo, IoFuture, PolledBackend,
    QueuedBackend, ZonedBackend, ZonedGeometry,
};
use crate::identify::{Csi, IdentifyController, IdentifyNamespace, IDENTIFY_DATA_SIZE};
use crate::opcode::IoOpcode;
use crate::sys::uring::{admin_command, namespace_id, IoBuf};
use cmd::Part;
use ferrofab_sync::CountedLock as _;
use job::{Done, Job};
use rings::{RingSet, SharedRing};

pub use limits::QueueLimits;

/// How to open a [`UringBackend`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UringOptions {
    /// Commands each thread's ring holds at once.
    pub queue_depth: u32,
    /// Poll for completions when the kernel has poll queues for the device.
    pub iopoll: bool,
}

impl Default for UringOptions {
    fn default() -> Self {
        UringOptions {
            queue_depth: 128,
            iopoll: false,
        }
    }
}

/// An NVMe namespace driven through io_uring passthrough.
pub struct UringBackend {
    path: PathBuf,
    nsid: u32,
    info: BackendInfo,
    /// Most blocks one Read or Write carries.
    max_blocks: u64,
    rings: RingSet,
    /// The zones of a zoned namespace, as exported.
    zoned: Option<ZonedGeometry>,
}

/// Errors of the admin ioctl: the NVMe status or the errno.
fn admin(
    dev: &OwnedFd,
    cmd: &crate::sys::uring::NvmeUringCmd,
    buf: &mut [u8],
) -> Result<(), BackendError> {
    let (status, _) = admin_command(dev, cmd, buf)?;
    cmd::check(status as i32)
}

impl UringBackend {
    /// Open generic NVMe device `path` (e.g. `/dev/ng0n1`), read its geometry and limits.
    pub fn open(
        path: impl AsRef<Path>,
        opts: UringOptions,
    ) -> Result<Arc<UringBackend>, BackendError> {
        let path = path.as_ref().to_path_buf();
        let dev: OwnedFd = OpenOptions::new()
            .read(true)
            .write(true)
            .open(&path)?
            .into();
        let nsid = namespace_id(&dev)?;

        let mut page = vec![0u8; IDENTIFY_DATA_SIZE];
        admin(&dev, &cmd::identify(nsid, 0x00, Csi::Nvm), &mut page)?;
        let ns = IdentifyNamespace::from_bytes(&page)
            .ok_or_else(|| invalid_input("short Identify Namespace data".into()))?;
        let format = ns.current_lba_format();
        let block_size = format.block_size().unwrap_or(0);
        if !SUPPORTED_BLOCK_SIZES.contains(&block_size) || format.ms.get() != 0 {
            return Err(invalid_input(format!(
                "{}: LBA format with {block_size}-byte blocks and {} metadata bytes is not supported",
                path.display(),
                format.ms.get()
            )));
        }
        let num_blocks = ns.nsze.get();
        if num_blocks == 0 {
            return Err(invalid_input(format!(
                "{}: namespace has no blocks",
                path.display()
            )));
        }
        let mut page = vec![0u8; IDENTIFY_DATA_SIZE];
        // Controller data only tells whether a write cache exists; without it assume one, so
        // Flush and FUA still reach the drive.
        let vwc = match admin(&dev, &cmd::identify(0, 0x01, Csi::Nvm), &mut page) {
            Ok(()) => IdentifyController::from_bytes(&page).is_none_or(|c| c.vwc & 1 != 0),
            Err(_) => true,
        };

        let limits = limits::read(&path);
        let max_blocks = (limits.max_transfer / u64::from(block_size)).clamp(1, cmd::MAX_NLB);
        let zoned = zoned::identify(&dev, nsid, &ns, max_blocks * u64::from(block_size))
            .map_err(|e| invalid_input(format!("{}: namespace {nsid}: {e}", path.display())))?;
        let iopoll = opts.iopoll && limits.io_poll != Some(false);
        if opts.iopoll && !iopoll {
            tracing::info!(
                "{}: no poll queues (io_poll 0), using interrupts",
                path.display()
            );
        }
        let backend = UringBackend {
            nsid,
            info: BackendInfo {
                block_size,
                num_blocks,
                // DLFEAT only says what deallocated blocks read as, and a Dataset Management
                // deallocate is advisory (NVM Command Set 1.0 §3.2.3: the controller may keep
                // the data; QEMU does). Write Zeroes is what guarantees zeroes, so the target
                // must not substitute a deallocate for it.
                deallocated_reads_zero: false,
                volatile_write_cache: vwc,
            },
            max_blocks,
            rings: RingSet::new(Arc::new(dev), opts.queue_depth, iopoll),
            path,
            zoned: None,
        };
        backend.probe()?;
        let backend = match zoned {
            Some(z) => UringBackend {
                zoned: Some(backend.zoned_geometry(z)?),
                ..backend
            },
            None => backend,
        };
        Ok(Arc::new(backend))
    }

    /// Read block 0 once; a kernel that refuses polled passthrough says so here.
    fn probe(&self) -> Result<(), BackendError> {
        let bs = self.info.block_size as usize;
        let run = |rings: &RingSet| -> Result<(), BackendError> {
            let mut ring = rings.standalone()?;
            Job::new(cmd::read(self.nsid, 0, bs, self.info.block_size, 1)).run(&mut ring)?;
            Ok(())
        };
        match run(&self.rings) {
            Err(BackendError::Io(e)) if self.rings.iopoll() && rings::is_iopoll_refusal(&e) => {
                self.rings.disable_iopoll(&e);
                run(&self.rings)
            }
            other => other,
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The namespace ID of the device.
    pub fn nsid(&self) -> u32 {
        self.nsid
    }

    /// Whether the rings poll for completions.
    pub fn iopoll(&self) -> bool {
        self.rings.iopoll()
    }

    /// Most bytes one device command transfers; larger calls are split.
    pub fn max_transfer(&self) -> usize {
        (self.max_blocks * u64::from(self.info.block_size)) as usize
    }

    fn check(&self, lba: u64, len: usize) -> Result<(), BackendError> {
        let blocks = blocks_in(len, self.info.block_size)?;
        check_range(lba, blocks, self.info.num_blocks)
    }

    /// A job of `parts`; the parts of a write to a zoned namespace go one after another,
    /// each at the write pointer the previous one left (ZNS 1.1 §2.1.1.2).
    fn job(&self, parts: Vec<Part>) -> Job {
        let writes = parts
            .first()
            .is_some_and(|p| p.cmd.opcode != IoOpcode::Read.to_u8());
        if self.zoned.is_some() && parts.len() > 1 && writes {
            Job::in_order(parts)
        } else {
            Job::new(parts)
        }
    }

    fn run(&self, parts: Vec<Part>) -> Result<Vec<Done>, BackendError> {
        let ring = self.rings.local()?;
        let mut ring = ring.lock_counted();
        self.job(parts).run(&mut ring)
    }

    fn submit(&self, parts: Vec<Part>) -> Result<JobFuture, BackendError> {
        let ring = self.rings.local()?;
        let mut job = self.job(parts);
        job.push(&mut ring.lock_counted());
        Ok(JobFuture { ring, job })
    }

    fn queued<T: Send + 'static>(
        &self,
        parts: Result<Vec<Part>, BackendError>,
        done: impl FnOnce(Vec<Done>) -> T + Send + 'static,
    ) -> IoFuture<T> {
        match parts.and_then(|p| self.submit(p)) {
            Ok(fut) => Box::pin(async move { fut.await.map(done) }),
            Err(e) => Box::pin(std::future::ready(Err(e))),
        }
    }

    fn read_parts(&self, lba: u64, len: usize) -> Result<Vec<Part>, BackendError> {
        self.check(lba, len)?;
        Ok(cmd::read(
            self.nsid,
            lba,
            len,
            self.info.block_size,
            self.max_blocks,
        ))
    }

    fn write_parts(&self, lba: u64, data: &Bytes, fua: bool) -> Result<Vec<Part>, BackendError> {
        self.check(lba, data.len())?;
        Ok(cmd::write(
            self.nsid,
            lba,
            data,
            fua,
            self.info.block_size,
            self.max_blocks,
        ))
    }

    fn range_parts(
        &self,
        lba: u64,
        blocks: u64,
        build: fn(u32, u64, u64) -> Vec<Part>,
    ) -> Result<Vec<Part>, BackendError> {
        check_range(lba, blocks, self.info.num_blocks)?;
        Ok(build(self.nsid, lba, blocks))
    }
}

/// The commands of one queued call: polling pushes what did not fit yet, submits, polls the
/// ring's completions and wakes itself while any are outstanding.
struct JobFuture {
    ring: SharedRing,
    job: Job,
}

impl Future for JobFuture {
    type Output = Result<Vec<Done>, BackendError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = &mut *self;
        this.job.poll(&mut this.ring.lock_counted());
        if this.job.is_done() {
            return Poll::Ready(this.job.finish());
        }
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}

impl Drop for JobFuture {
    fn drop(&mut self) {
        if self.job.has_in_flight() {
            self.job.abandon(&mut self.ring.lock_counted());
        }
    }
}

impl Backend for UringBackend {
    fn info(&self) -> BackendInfo {
        self.info.clone()
    }

    fn read(&self, lba: u64, buf: &mut [u8]) -> Result<(), BackendError> {
        let bufs = self.run(self.read_parts(lba, buf.len())?)?;
        job::concat_reads(bufs, buf);
        Ok(())
    }

    fn write(&self, lba: u64, data: &[u8], fua: bool) -> Result<(), BackendError> {
        let data = Bytes::copy_from_slice(data);
        self.run(self.write_parts(lba, &data, fua)?).map(drop)
    }

    fn flush(&self) -> Result<(), BackendError> {
        self.run(cmd::flush(self.nsid)).map(drop)
    }

    fn write_zeroes(&self, lba: u64, blocks: u64) -> Result<(), BackendError> {
        self.run(self.range_parts(lba, blocks, cmd::write_zeroes)?)
            .map(drop)
    }

    fn deallocate(&self, lba: u64, blocks: u64) -> Result<(), BackendError> {
        self.run(self.range_parts(lba, blocks, cmd::deallocate)?)
            .map(drop)
    }

    fn may_block(&self) -> bool {
        true
    }

    fn queued(&self) -> Option<&dyn QueuedBackend> {
        Some(self)
    }

    fn polled(&self) -> Option<&dyn PolledBackend> {
        // The parts of a write to a zone must go in order, one at a time: those stay futures.
        self.zoned.is_none().then_some(self as &dyn PolledBackend)
    }

    fn zoned(&self) -> Option<&dyn ZonedBackend> {
        self.zoned.as_ref().map(|_| self as &dyn ZonedBackend)
    }
}

impl QueuedBackend for UringBackend {
    fn read(&self, lba: u64, mut buf: Vec<u8>) -> IoFuture<Vec<u8>> {
        let parts = self.read_parts(lba, buf.len()).map(|mut parts| {
            // One command reads straight into the caller's buffer.
            if let [only] = parts.as_mut_slice() {
                only.buf = IoBuf::In(std::mem::take(&mut buf));
            }
            parts
        });
        self.queued(parts, move |done| match <[Done; 1]>::try_from(done) {
            Ok(
                [Done {
                    buf: IoBuf::In(v), ..
                }],
            ) if buf.is_empty() => v,
            Ok(one) => {
                job::concat_reads(Vec::from(one), &mut buf);
                buf
            }
            Err(many) => {
                job::concat_reads(many, &mut buf);
                buf
            }
        })
    }

    fn write(&self, lba: u64, data: Bytes, fua: bool) -> IoFuture<()> {
        self.queued(self.write_parts(lba, &data, fua), drop)
    }

    fn flush(&self) -> IoFuture<()> {
        self.queued(Ok(cmd::flush(self.nsid)), drop)
    }

    fn write_zeroes(&self, lba: u64, blocks: u64) -> IoFuture<()> {
        self.queued(self.range_parts(lba, blocks, cmd::write_zeroes), drop)
    }

    fn deallocate(&self, lba: u64, blocks: u64) -> IoFuture<()> {
        self.queued(self.range_parts(lba, blocks, cmd::deallocate), drop)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io;

    #[test]
    fn opening_a_missing_device_is_an_io_error() {
        match UringBackend::open("/nonexistent/ng9n9", UringOptions::default()) {
            Err(BackendError::Io(e)) => assert_eq!(e.kind(), io::ErrorKind::NotFound),
            Err(e) => panic!("{e}"),
            Ok(_) => panic!("opened a missing device"),
        }
    }

    #[test]
    fn opening_a_non_nvme_file_fails_at_the_namespace_ioctl() {
        match UringBackend::open("/dev/null", UringOptions::default()) {
            Err(BackendError::Io(e)) => assert_eq!(e.raw_os_error(), Some(libc::ENOTTY)),
            Err(e) => panic!("{e}"),
            Ok(_) => panic!("/dev/null is not an NVMe device"),
        }
    }
}
