//! [`DriverNamespace`]: a namespace of a driven controller as a [`Backend`], [`QueuedBackend`]
//! and [`PolledBackend`], and the request future ([`IoOp`]) behind its queued calls.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

use bytes::Bytes;

use super::controller::NamespaceInfo;
use super::dma::DmaRegion;
use super::error::DriverError;
use super::io::{self, Data, IoCmd, Request};
use super::nvme_driver::{NvmeDriver, FUA, MAX_NLB};
use super::owned::PolledData;
use crate::backend::{
    blocks_in, check_range, Backend, BackendError, BackendInfo, DmaLease, IoFuture, LeaseHome,
    Polled, PolledBackend, QueuedBackend, Refused, ZonedBackend, ZonedGeometry,
};
use crate::opcode::IoOpcode;

/// A request in flight: its remaining commands and shared completion state.
pub(super) struct IoOp<M> {
    pub(super) driver: Arc<NvmeDriver<M>>,
    pub(super) queue: usize,
    pub(super) req: Arc<Request>,
    pub(super) pending: VecDeque<IoCmd>,
    /// One command on the queue at a time, in order (the parts of a write to a zone).
    pub(super) in_order: bool,
}

impl<M: DmaRegion + Send + Sync + 'static> Future for IoOp<M> {
    /// The request buffer and the last completion's DW0/DW1.
    type Output = Result<(Vec<u8>, u64), BackendError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        let moved = this
            .driver
            .step(this.queue, &this.req, &mut this.pending, this.in_order);
        let mut s = this.req.lock();
        if s.outstanding == 0 && this.pending.is_empty() {
            return Poll::Ready(match s.error.take() {
                Some(e) => Err(e),
                None => Ok((std::mem::take(&mut s.buf), s.result)),
            });
        }
        drop(s);
        if !moved {
            this.driver.clock.pause();
        }
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}

/// Run a future to completion on this thread by polling it; the driver's futures make
/// progress by being polled, so no waker is needed.
pub fn block_on<F: Future>(fut: F) -> F::Output {
    let mut fut = std::pin::pin!(fut);
    let mut cx = Context::from_waker(Waker::noop());
    loop {
        if let Poll::Ready(out) = fut.as_mut().poll(&mut cx) {
            return out;
        }
    }
}

impl<M: DmaRegion + Send + Sync + 'static> NvmeDriver<M> {
    /// The active namespace `nsid`.
    pub fn namespace(self: &Arc<Self>, nsid: u32) -> Result<Arc<DriverNamespace<M>>, DriverError> {
        let info = self
            .info
            .namespaces
            .iter()
            .find(|n| n.nsid == nsid)
            .cloned()
            .ok_or(DriverError::NoNamespace(nsid))?;
        let mut ns = DriverNamespace {
            driver: Arc::clone(self),
            info,
            zoned: None,
        };
        if ns.info.zoned.is_some() {
            ns.zoned = Some(ns.zoned_geometry()?);
        }
        Ok(Arc::new(ns))
    }
}

/// An active namespace of a driven controller.
pub struct DriverNamespace<M> {
    driver: Arc<NvmeDriver<M>>,
    info: NamespaceInfo,
    /// What a zoned namespace exports (the limits Identify gave, the capacity its first zone
    /// reports).
    pub(super) zoned: Option<ZonedGeometry>,
}

impl<M: DmaRegion + Send + Sync + 'static> DriverNamespace<M> {
    pub fn info(&self) -> &NamespaceInfo {
        &self.info
    }

    pub fn driver(&self) -> &Arc<NvmeDriver<M>> {
        &self.driver
    }

    fn nsid(&self) -> u32 {
        self.info.nsid
    }

    fn check(&self, lba: u64, len: usize) -> Result<u64, BackendError> {
        let blocks = blocks_in(len, self.info.block_size)?;
        check_range(lba, blocks, self.info.blocks)?;
        Ok(blocks)
    }

    fn transfer_blocks(&self) -> u64 {
        self.driver
            .max_blocks(self.info.block_size, self.driver.info.max_transfer)
    }

    /// Run `cmds` as one request.
    pub(crate) fn submit(
        &self,
        cmds: VecDeque<IoCmd>,
        buf: Vec<u8>,
    ) -> impl Future<Output = Result<(Vec<u8>, u64), BackendError>> + Send + 'static {
        // The parts of a write to a zone go one after another, each at the write pointer
        // the previous one left (ZNS 1.1 §2.1.1.2); reads and single commands need no order.
        let in_order = self.zoned.is_some()
            && cmds.len() > 1
            && cmds
                .front()
                .is_some_and(|c| c.sqe.opcode != IoOpcode::Read.to_u8());
        self.driver.request(cmds, buf, in_order)
    }

    fn read_op(&self, lba: u64, buf: Vec<u8>) -> IoFuture<Vec<u8>> {
        let blocks = match self.check(lba, buf.len()) {
            Ok(b) => b,
            Err(e) => return Box::pin(std::future::ready(Err(e))),
        };
        let bs = self.info.block_size;
        let nsid = self.nsid();
        let cmds = io::split(lba, blocks, self.transfer_blocks(), bs, |lba, n, off| {
            IoCmd {
                sqe: io::rw_sqe(IoOpcode::Read.to_u8(), nsid, lba, n, 0),
                data: Data::In {
                    off,
                    len: (n * u64::from(bs)) as usize,
                },
            }
        });
        let op = self.submit(cmds, buf);
        Box::pin(async move { op.await.map(|(buf, _)| buf) })
    }

    fn write_op(&self, lba: u64, data: Bytes, fua: bool) -> IoFuture<()> {
        let blocks = match self.check(lba, data.len()) {
            Ok(b) => b,
            Err(e) => return Box::pin(std::future::ready(Err(e))),
        };
        let bs = self.info.block_size;
        let nsid = self.nsid();
        let flags = if fua { FUA } else { 0 };
        let cmds = io::split(lba, blocks, self.transfer_blocks(), bs, |lba, n, off| {
            let len = (n * u64::from(bs)) as usize;
            IoCmd {
                sqe: io::rw_sqe(IoOpcode::Write.to_u8(), nsid, lba, n, flags),
                data: Data::Out(data.slice(off..off + len)),
            }
        });
        self.unit(cmds)
    }

    fn unit(&self, cmds: VecDeque<IoCmd>) -> IoFuture<()> {
        let op = self.submit(cmds, Vec::new());
        Box::pin(async move { op.await.map(|_| ()) })
    }

    pub(super) fn flush_op(&self) -> IoFuture<()> {
        let mut sqe = crate::Sqe {
            opcode: IoOpcode::Flush.to_u8(),
            ..Default::default()
        };
        sqe.nsid.set(self.nsid());
        self.unit(VecDeque::from([IoCmd {
            sqe,
            data: Data::None,
        }]))
    }

    fn write_zeroes_op(&self, lba: u64, blocks: u64) -> IoFuture<()> {
        if let Err(e) = check_range(lba, blocks, self.info.blocks) {
            return Box::pin(std::future::ready(Err(e)));
        }
        let nsid = self.nsid();
        let cmds = io::split(lba, blocks, MAX_NLB, self.info.block_size, |lba, n, _| {
            IoCmd {
                sqe: io::rw_sqe(IoOpcode::WriteZeroes.to_u8(), nsid, lba, n, 0),
                data: Data::None,
            }
        });
        self.unit(cmds)
    }

    /// Dataset Management with AD (deallocate), one range per command (NVM Command Set 1.0
    /// §3.2.3: range = context attributes, length in blocks, starting LBA; CDW11 bit 2 AD).
    fn deallocate_op(&self, lba: u64, blocks: u64) -> IoFuture<()> {
        if let Err(e) = check_range(lba, blocks, self.info.blocks) {
            return Box::pin(std::future::ready(Err(e)));
        }
        let nsid = self.nsid();
        let cmds = io::split(lba, blocks, u64::from(u32::MAX), 1, |lba, n, _| {
            let mut range = [0u8; 16];
            range[4..8].copy_from_slice(&(n as u32).to_le_bytes());
            range[8..16].copy_from_slice(&lba.to_le_bytes());
            let mut sqe = crate::Sqe {
                opcode: IoOpcode::DatasetManagement.to_u8(),
                ..Default::default()
            };
            sqe.nsid.set(nsid);
            sqe.cdw11.set(1 << 2);
            IoCmd {
                sqe,
                data: Data::Out(Bytes::copy_from_slice(&range)),
            }
        });
        self.unit(cmds)
    }
}

impl<M: DmaRegion + Send + Sync + 'static> Backend for DriverNamespace<M> {
    fn info(&self) -> BackendInfo {
        BackendInfo {
            block_size: self.info.block_size,
            num_blocks: self.info.blocks,
            deallocated_reads_zero: false,
            volatile_write_cache: self.driver.info.volatile_write_cache,
        }
    }

    fn read(&self, lba: u64, buf: &mut [u8]) -> Result<(), BackendError> {
        let data = block_on(self.read_op(lba, vec![0; buf.len()]))?;
        buf.copy_from_slice(&data);
        Ok(())
    }

    fn write(&self, lba: u64, data: &[u8], fua: bool) -> Result<(), BackendError> {
        block_on(self.write_op(lba, Bytes::copy_from_slice(data), fua))
    }

    fn flush(&self) -> Result<(), BackendError> {
        block_on(self.flush_op())
    }

    fn write_zeroes(&self, lba: u64, blocks: u64) -> Result<(), BackendError> {
        block_on(self.write_zeroes_op(lba, blocks))
    }

    fn deallocate(&self, lba: u64, blocks: u64) -> Result<(), BackendError> {
        block_on(self.deallocate_op(lba, blocks))
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

impl<M: DmaRegion + Send + Sync + 'static> QueuedBackend for DriverNamespace<M> {
    fn read(&self, lba: u64, buf: Vec<u8>) -> IoFuture<Vec<u8>> {
        self.read_op(lba, buf)
    }

    fn write(&self, lba: u64, data: Bytes, fua: bool) -> IoFuture<()> {
        self.write_op(lba, data, fua)
    }

    fn flush(&self) -> IoFuture<()> {
        self.flush_op()
    }

    fn write_zeroes(&self, lba: u64, blocks: u64) -> IoFuture<()> {
        self.write_zeroes_op(lba, blocks)
    }

    fn deallocate(&self, lba: u64, blocks: u64) -> IoFuture<()> {
        self.deallocate_op(lba, blocks)
    }
}

impl<M: DmaRegion + Send + Sync + 'static> PolledBackend for DriverNamespace<M> {
    fn start_read(&self, lba: u64, buf: Vec<u8>, token: u64) -> Result<(), (Refused, Vec<u8>)> {
        let blocks = match self.check(lba, buf.len()) {
            Ok(b) => b,
            Err(e) => return Err((Refused::Failed(e), buf)),
        };
        if blocks > self.transfer_blocks() {
            return Err((Refused::Unsupported, buf));
        }
        let sqe = io::rw_sqe(IoOpcode::Read.to_u8(), self.nsid(), lba, blocks, 0);
        self.driver
            .start_polled(sqe, PolledData::Into(buf), token)
            .map_err(|(why, buf, _)| (why, buf.unwrap_or_default()))
    }

    fn start_write(&self, lba: u64, data: &[u8], fua: bool, token: u64) -> Result<(), Refused> {
        let blocks = self.check(lba, data.len()).map_err(Refused::Failed)?;
        if blocks > self.transfer_blocks() {
            return Err(Refused::Unsupported);
        }
        let flags = if fua { FUA } else { 0 };
        let sqe = io::rw_sqe(IoOpcode::Write.to_u8(), self.nsid(), lba, blocks, flags);
        self.driver
            .start_polled(sqe, PolledData::Copy(data), token)
            .map_err(|(why, ..)| why)
    }

    fn reap(&self, owner: u32, done: &mut dyn FnMut(Polled)) -> usize {
        self.driver.reap_owner(owner, done)
    }

    fn forget(&self, owner: u32) {
        self.driver.forget_owner(owner);
    }

    fn lease_home(&self) -> Option<Arc<dyn LeaseHome>> {
        // Only memory with an address can be sent or received without a copy.
        self.driver.pool.addr()?;
        Some(self.driver.pool.home())
    }

    fn start_read_lent(&self, lba: u64, len: usize, token: u64) -> Result<(), Refused> {
        let blocks = self.check(lba, len).map_err(Refused::Failed)?;
        if blocks > self.transfer_blocks() {
            return Err(Refused::Unsupported);
        }
        let sqe = io::rw_sqe(IoOpcode::Read.to_u8(), self.nsid(), lba, blocks, 0);
        self.driver
            .start_polled(sqe, PolledData::Lend(len), token)
            .map_err(|(why, ..)| why)
    }

    fn lend(&self, len: usize) -> Option<DmaLease> {
        self.driver.lend_buffer(len).map(|b| b.lend(len))
    }

    fn start_write_lent(
        &self,
        lba: u64,
        data: DmaLease,
        fua: bool,
        token: u64,
    ) -> Result<(), (Refused, DmaLease)> {
        let len = data.len();
        let blocks = match self.check(lba, len) {
            Ok(b) => b,
            Err(e) => return Err((Refused::Failed(e), data)),
        };
        if blocks > self.transfer_blocks() {
            return Err((Refused::Unsupported, data));
        }
        let buf = match self.driver.pool.reclaim(data) {
            Ok(b) => b,
            Err(data) => {
                let e = std::io::Error::other("a write's buffer lent by another drive");
                return Err((Refused::Failed(BackendError::Io(e)), data));
            }
        };
        let flags = if fua { FUA } else { 0 };
        let sqe = io::rw_sqe(IoOpcode::Write.to_u8(), self.nsid(), lba, blocks, flags);
        self.driver
            .start_polled(sqe, PolledData::Filled(buf, len), token)
            .map_err(|(why, _, filled)| match filled {
                Some(b) => (why, b.lend(len)),
                // A refused filled write always hands its buffer back; were it lost, the
                // host must hear of it rather than have nothing written.
                None => {
                    let e = std::io::Error::other("a write's buffer was lost");
                    (Refused::Failed(BackendError::Io(e)), DmaLease::empty())
                }
            })
    }
}
