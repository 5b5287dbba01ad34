//! One I/O queue pair: commands go out with bounce buffers from the [`PagePool`] (data copied
//! in for writes, out for reads) described by PRPs, or by one SGL Data Block descriptor when
//! the controller supports SGLs; completions are reaped by phase tag; each command carries a
//! deadline.
//!
//! Ordering (see [`super::dma`]): an SQE and its data and PRP list pages are fully written to
//! DMA memory before the SQ tail doorbell store, which the [`Mmio`] seam orders after them
//! with a release fence; a CQE is read only after its status word showed the expected phase
//! tag through the acquire word read, and the bounce buffer of a read is copied out only after
//! that.

use ferrofab_sync::CountedLock as _;
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;

use super::admin::{self, set_prps, AdminQueue};
use super::clock::Clock;
use super::dma::{DmaError, DmaRegion};
use super::error::DriverError;
use super::pool::{DmaBuf, PagePool, Spares};
use super::prp::{Contiguous, PageSize};
use super::queue::{alloc_queue_pair, QueueError, QueuePair};
use super::regs::{DoorbellLayout, Mmio};
use crate::backend::{token_owner, BackendError, Polled};
use crate::{Cqe, Sqe, Status};

/// PSDT = 01b: the data pointer is an SGL, MPTR an address (NVMe Base 2.0 §4.2, CDW0).
const PSDT_SGL: u8 = 0b01 << 6;

/// The data a command moves.
#[derive(Clone, Debug)]
pub enum Data {
    None,
    /// Host to controller: these bytes.
    Out(Bytes),
    /// Controller to host: `len` bytes into the request buffer at `off`.
    In {
        off: usize,
        len: usize,
    },
}

/// A command ready to be submitted (its CID and data pointer are filled in at submission).
#[derive(Clone, Debug)]
pub struct IoCmd {
    pub sqe: Sqe,
    pub data: Data,
}

/// What one request (several commands when split) has come to.
#[derive(Debug, Default)]
pub struct RequestState {
    /// Commands submitted and not completed.
    pub outstanding: usize,
    /// The first failure; later commands of the request are not submitted.
    pub error: Option<BackendError>,
    /// CQE DW0/DW1 of the last successful command (Zone Append's LBA).
    pub result: u64,
    /// Read data lands here.
    pub buf: Vec<u8>,
}

/// Completion state shared by a request's commands and the future waiting for them.
#[derive(Debug, Default)]
pub struct Request {
    state: Mutex<RequestState>,
}

impl Request {
    pub fn new(buf: Vec<u8>) -> Arc<Request> {
        Arc::new(Request {
            state: Mutex::new(RequestState {
                buf,
                ..RequestState::default()
            }),
        })
    }

    pub fn lock(&self) -> std::sync::MutexGuard<'_, RequestState> {
        self.state.lock_counted()
    }

    /// Record `err` unless an earlier error is already recorded.
    pub fn fail(&self, err: BackendError) {
        let mut s = self.lock();
        if s.error.is_none() {
            s.error = Some(err);
        }
    }

    pub fn has_error(&self) -> bool {
        self.lock().error.is_some()
    }
}

/// Who waits for a command.
pub enum Owner {
    /// A request future of one or more commands, sharing their completion state.
    Request(Arc<Request>),
    /// A caller of the polled interface: the completion goes to the queue's finished list
    /// under this token, with the caller's read buffer.
    Token { token: u64, buf: Option<Vec<u8>> },
    /// A read of the polled interface whose data the completion lends rather than copies
    /// ([`Polled::lease`]).
    Lend { token: u64 },
    /// A polled command whose owner went away: its completion is dropped.
    Orphan,
}

/// A submitted command's context: who waits for it, the DMA memory the device may touch until
/// it completes, and its deadlines.
pub struct Inflight<M> {
    owner: Owner,
    buf: Option<DmaBuf<M>>,
    _lists: Option<DmaBuf<M>>,
    copy_out: Option<(usize, usize)>,
    deadline: Duration,
    /// Set once an Abort was sent: the time after which the controller is reset.
    abort_deadline: Option<Duration>,
}

/// How a command's data is described and how long it may take.
pub struct Mapping {
    /// The controller takes SGLs for NVM I/O.
    pub sgl: bool,
    /// The controller's transfer limit in bytes.
    pub max_transfer: u64,
    pub deadline: Duration,
}

/// Where a command's data is.
pub enum Source<'a, M> {
    None,
    /// Host to controller: these bytes, copied into a bounce buffer.
    Out(&'a [u8]),
    /// Controller to host: `len` bytes, for the owner's buffer at `off`.
    In {
        off: usize,
        len: usize,
    },
    /// Host to controller: the first `len` bytes of this buffer, read where they are.
    Filled(DmaBuf<M>, usize),
}

/// A command not submitted: why, and what the caller handed over.
pub struct Refusal<M> {
    pub error: SubmitError,
    pub owner: Owner,
    /// The [`Source::Filled`] buffer.
    pub filled: Option<DmaBuf<M>>,
}

/// Why a command could not be submitted now.
pub enum SubmitError {
    /// No queue slot or DMA memory free; retry after completions.
    Busy,
    Failed(BackendError),
}

/// Commands whose deadline passed while polling a queue.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Expired {
    /// CIDs past their first deadline, to be aborted.
    pub abort: Vec<u16>,
    /// Some command outlived its abort deadline too: reset the controller.
    pub reset: bool,
}

/// An I/O submission/completion queue pair with ID `qid` (the CQ has the same ID).
pub struct IoQueue<M> {
    qp: QueuePair<DmaBuf<M>, Inflight<M>>,
    sq_db: usize,
    cq_db: usize,
    /// No deadline of an outstanding command is earlier, so polls before it skip the scan.
    next_check: Duration,
    /// Polled commands that finished, until their owners reap them; room for every queue slot
    /// is reserved up front.
    finished: Vec<Polled>,
    /// Bounce buffers and PRP list runs of finished commands, for the next ones.
    spares: Spares<M>,
}

fn dma_error(e: DmaError) -> BackendError {
    BackendError::Io(std::io::Error::other(e))
}

impl<M: DmaRegion + Send + Sync + 'static> IoQueue<M> {
    /// A queue pair of `entries` entries that keeps up to `spare_pages` pages of finished
    /// commands' DMA buffers for its next commands ([`Spares`]).
    pub fn new(
        pool: &PagePool<M>,
        qid: u16,
        entries: u32,
        layout: &DoorbellLayout,
        spare_pages: usize,
    ) -> Result<IoQueue<M>, DriverError> {
        Ok(IoQueue {
            qp: alloc_queue_pair(pool, qid, entries)?,
            sq_db: layout.sq_tail(qid)?,
            cq_db: layout.cq_head(qid)?,
            next_check: Duration::MAX,
            finished: Vec::with_capacity(entries as usize),
            spares: Spares::new(spare_pages),
        })
    }

    /// Create the CQ, then the SQ on the controller (NVMe Base 2.0 §3.5.1 step 13).
    pub fn create(
        &self,
        mmio: &dyn Mmio,
        clock: &dyn Clock,
        admin: &mut AdminQueue<M>,
        timeout: Duration,
    ) -> Result<(), DriverError> {
        let qid = self.qid();
        let entries = self.qp.sq().entries();
        let cq = admin::create_io_cq(qid, entries, self.qp.cq().iova());
        admin.run(mmio, clock, cq, timeout)?;
        let sq = admin::create_io_sq(qid, entries, self.qp.sq().iova(), qid);
        admin.run(mmio, clock, sq, timeout)?;
        Ok(())
    }

    pub fn qid(&self) -> u16 {
        self.qp.sqid()
    }

    pub fn outstanding(&self) -> usize {
        self.qp.outstanding()
    }

    /// Write `cmd` to the SQ for `req` with a bounce buffer and data pointer; the doorbell is
    /// rung by [`IoQueue::ring`]. On `Busy` nothing was submitted.
    pub fn submit(
        &mut self,
        pool: &PagePool<M>,
        cmd: &IoCmd,
        req: &Arc<Request>,
        deadline: Duration,
        sgl: bool,
        max_transfer: u64,
    ) -> Result<(), SubmitError> {
        let data = match &cmd.data {
            Data::None => Source::None,
            Data::Out(b) => Source::Out(&b[..]),
            Data::In { off, len } => Source::In {
                off: *off,
                len: *len,
            },
        };
        let map = Mapping {
            sgl,
            max_transfer,
            deadline,
        };
        let owner = Owner::Request(Arc::clone(req));
        self.submit_owned(pool, cmd.sqe, data, owner, &map)
            .map_err(|r| r.error)?;
        req.lock().outstanding += 1;
        Ok(())
    }

    /// Write `sqe` to the SQ for `owner`: with `out` copied into a bounce buffer, or a bounce
    /// buffer of `copy_out`'s length the completion copies into the owner's buffer (or lends,
    /// for [`Owner::Lend`]), or with `filled`'s bytes where they are. On an error nothing was
    /// submitted and the owner and `filled` come back.
    pub fn submit_owned(
        &mut self,
        pool: &PagePool<M>,
        mut sqe: Sqe,
        data: Source<'_, M>,
        owner: Owner,
        map: &Mapping,
    ) -> Result<(), Refusal<M>> {
        let refuse = |e, owner, data: Source<'_, M>| Refusal {
            error: e,
            owner,
            filled: match data {
                Source::Filled(b, _) => Some(b),
                _ => None,
            },
        };
        if self.qp.sq().is_full() {
            return Err(refuse(SubmitError::Busy, owner, data));
        }
        let was_filled = matches!(data, Source::Filled(..));
        // The buffer the device uses, the bytes of it the command moves, and what to copy out.
        let prepared = match data {
            Source::None => None,
            Source::Filled(b, len) => Some((b, len, None)),
            Source::Out(bytes) => match self.bounce(pool, bytes.len(), Some(bytes)) {
                Ok(b) => Some((b, bytes.len(), None)),
                Err(e) => return Err(refuse(e.into(), owner, Source::None)),
            },
            Source::In { off, len } => match self.bounce(pool, len, None) {
                Ok(b) => Some((b, len, Some((off, len)))),
                Err(e) => return Err(refuse(e.into(), owner, Source::None)),
            },
        };
        let (buf, copy_out, lists) = match prepared {
            None => (None, None, None),
            Some((buf, len, copy_out)) => {
                let spares = &mut self.spares;
                match describe(pool, spares, &mut sqe, &buf, len, map.sgl, map.max_transfer) {
                    Ok(lists) => (Some(buf), copy_out, lists),
                    Err(e) => {
                        let back = if was_filled {
                            Source::Filled(buf, len)
                        } else {
                            self.spares.give(buf);
                            Source::None
                        };
                        return Err(refuse(e.into(), owner, back));
                    }
                }
            }
        };
        let ctx = Inflight {
            owner,
            buf,
            _lists: lists,
            copy_out,
            deadline: map.deadline,
            abort_deadline: None,
        };
        match self.qp.submit(sqe, ctx) {
            Ok(_) => {
                self.next_check = self.next_check.min(map.deadline);
                Ok(())
            }
            Err((e, ctx)) => {
                let error = match e {
                    QueueError::Full => SubmitError::Busy,
                    e => SubmitError::Failed(BackendError::Io(std::io::Error::other(e))),
                };
                let filled = match ctx.buf {
                    Some(b) if was_filled => Some(b),
                    b => {
                        b.into_iter().for_each(|b| self.spares.give(b));
                        None
                    }
                };
                Err(Refusal {
                    error,
                    owner: ctx.owner,
                    filled,
                })
            }
        }
    }

    /// A bounce buffer of `len` bytes from the spares or `pool`, holding `out` when given.
    fn bounce(
        &mut self,
        pool: &PagePool<M>,
        len: usize,
        out: Option<&[u8]>,
    ) -> Result<DmaBuf<M>, MapError> {
        // A write fills all `len` bytes the device reads; a read copies out only what a
        // successful completion says the device wrote: no need to zero the buffer first.
        let buf = self.spares.take(pool, len)?;
        if let Some(bytes) = out {
            if let Err(e) = buf.write_bytes(0, bytes) {
                self.spares.give(buf);
                return Err(e.into());
            }
        }
        Ok(buf)
    }

    /// A buffer of `len` bytes for the caller to fill and submit with [`Source::Filled`].
    pub fn lend_buffer(&mut self, pool: &PagePool<M>, len: usize) -> Option<DmaBuf<M>> {
        self.spares.take(pool, len).ok()
    }

    /// Keep `buf` for the queue's next commands (a lent buffer given back).
    pub fn keep(&mut self, buf: DmaBuf<M>) {
        self.spares.give(buf);
    }

    /// Hand `owner`'s finished polled commands to `done`; returns how many.
    pub fn take_finished(&mut self, owner: u32, done: &mut dyn FnMut(Polled)) -> usize {
        let mut n = 0;
        let mut i = 0;
        while i < self.finished.len() {
            if token_owner(self.finished[i].token) == owner {
                done(self.finished.swap_remove(i));
                n += 1;
            } else {
                i += 1;
            }
        }
        n
    }

    /// Drop `owner`'s finished commands and orphan its outstanding ones.
    pub fn forget(&mut self, owner: u32) {
        self.finished.retain(|p| token_owner(p.token) != owner);
        for (_, ctx) in self.qp.outstanding_mut() {
            let token = match ctx.owner {
                Owner::Token { token, .. } | Owner::Lend { token } => Some(token),
                Owner::Request(_) | Owner::Orphan => None,
            };
            if token.is_some_and(|t| token_owner(t) == owner) {
                ctx.owner = Owner::Orphan;
            }
        }
    }

    /// Let go of every owner: finished commands are dropped, outstanding ones orphaned (the
    /// thread that owned this queue ended).
    pub fn orphan_all(&mut self) {
        self.finished.clear();
        for (_, ctx) in self.qp.outstanding_mut() {
            if let Owner::Token { .. } | Owner::Lend { .. } = ctx.owner {
                ctx.owner = Owner::Orphan;
            }
        }
    }

    /// Carry finished polled commands over to `fresh`, the queue that replaces this one after
    /// a controller reset.
    pub fn hand_over_finished(&mut self, fresh: &mut IoQueue<M>) {
        fresh.finished.append(&mut self.finished);
    }

    /// Ring the SQ tail doorbell once for everything submitted since the last ring.
    pub fn ring(&mut self, mmio: &dyn Mmio) -> bool {
        match self.qp.sq_doorbell() {
            Some(tail) => {
                mmio.write32(self.sq_db, u32::from(tail));
                true
            }
            None => false,
        }
    }

    /// Consume every posted completion, finish its command, ring the CQ head doorbell once;
    /// returns how many completed.
    pub fn reap(&mut self, mmio: &dyn Mmio) -> usize {
        let mut done = 0;
        loop {
            match self.qp.poll() {
                Ok(Some((ctx, cqe))) => {
                    finish(ctx, &cqe, &mut self.finished, &mut self.spares);
                    done += 1;
                }
                Ok(None) => break,
                Err(QueueError::Dma(e)) => {
                    tracing::error!(qid = self.qid(), "completion queue unreadable: {e}");
                    break;
                }
                Err(e) => tracing::warn!(qid = self.qid(), "bad completion dropped: {e}"),
            }
        }
        if let Some(head) = self.qp.cq_doorbell() {
            mmio.write32(self.cq_db, u32::from(head));
        }
        done
    }

    /// Commands past their deadline at `now`: those not yet aborted are marked aborted with a
    /// second deadline `now + timeout`.
    pub fn expired(&mut self, now: Duration, timeout: Duration) -> Expired {
        let mut out = Expired::default();
        if now < self.next_check {
            return out;
        }
        let mut next = Duration::MAX;
        for (cid, ctx) in self.qp.outstanding_mut() {
            match ctx.abort_deadline {
                None if now >= ctx.deadline => {
                    ctx.abort_deadline = Some(now + timeout);
                    out.abort.push(cid);
                }
                Some(d) if now >= d => out.reset = true,
                _ => {}
            }
            next = next.min(ctx.abort_deadline.unwrap_or(ctx.deadline));
        }
        self.next_check = next;
        out
    }

    /// Fail every outstanding command with `err()` (the controller was reset or is gone).
    pub fn fail_all(&mut self, err: &dyn Fn() -> BackendError) -> usize {
        let drained = self.qp.drain();
        let n = drained.len();
        for ctx in drained {
            match ctx.owner {
                Owner::Request(req) => {
                    req.fail(err());
                    req.lock().outstanding -= 1;
                }
                Owner::Token { token, buf } => {
                    self.finished.push(Polled::new(token, Err(err()), buf));
                }
                Owner::Lend { token } => self.finished.push(Polled::new(token, Err(err()), None)),
                Owner::Orphan => {}
            }
        }
        n
    }
}

fn finish<M: DmaRegion + Send + Sync + 'static>(
    ctx: Inflight<M>,
    cqe: &Cqe,
    finished: &mut Vec<Polled>,
    spares: &mut Spares<M>,
) {
    let Inflight {
        owner,
        buf: mut dma,
        _lists: lists,
        copy_out,
        abort_deadline,
        ..
    } = ctx;
    let status = cqe.status();
    let result = if status.is_success() {
        Ok(cqe.result64())
    } else if abort_deadline.is_some() && status.sc == Status::ABORT_REQUESTED.sc {
        // A command the driver aborted completes with Command Abort Requested (NVMe Base
        // 2.0 §5.1): to the caller it timed out.
        Err(BackendError::Timeout)
    } else {
        Err(BackendError::Device(status))
    };
    // A read's data is copied out of the bounce buffer only once the CQE said success.
    let copy = |dst: &mut [u8]| -> Result<(), BackendError> {
        match (copy_out, &dma) {
            (Some((off, len)), Some(dma)) => dma
                .read_bytes(0, &mut dst[off..off + len])
                .map_err(dma_error),
            _ => Ok(()),
        }
    };
    match owner {
        Owner::Request(req) => {
            let mut s = req.lock();
            s.outstanding -= 1;
            match result {
                Ok(r) => {
                    if let Err(e) = copy(&mut s.buf) {
                        s.error.get_or_insert(e);
                    }
                    s.result = r;
                }
                Err(e) => {
                    s.error.get_or_insert(e);
                }
            }
        }
        Owner::Token { token, mut buf } => {
            let result = match (result, buf.as_mut()) {
                (Ok(r), Some(dst)) => copy(dst).map(|()| r),
                (r, _) => r,
            };
            finished.push(Polled::new(token, result, buf));
        }
        Owner::Lend { token } => {
            // The data stays in the DMA buffer: lent to the caller, which gives it back.
            let lease = match (&result, copy_out) {
                (Ok(_), Some((_, len))) => dma.take().map(|b| b.lend(len)),
                _ => None,
            };
            finished.push(Polled {
                token,
                result,
                buf: None,
                lease,
            });
        }
        Owner::Orphan => {}
    }
    // The device is done with the command's DMA memory: the queue keeps it for its next ones.
    for b in [dma, lists].into_iter().flatten() {
        spares.give(b);
    }
}

enum MapError {
    Exhausted,
    Failed(BackendError),
}

impl From<MapError> for SubmitError {
    fn from(e: MapError) -> SubmitError {
        match e {
            MapError::Exhausted => SubmitError::Busy,
            MapError::Failed(e) => SubmitError::Failed(e),
        }
    }
}

impl From<DmaError> for MapError {
    fn from(e: DmaError) -> MapError {
        match e {
            DmaError::Exhausted { .. } => MapError::Exhausted,
            e => MapError::Failed(dma_error(e)),
        }
    }
}

/// Describe `buf`'s first `len` bytes in `sqe`'s data pointer; PRP list pages, when the
/// transfer needs them, come back as one run. Nothing here touches the heap.
fn describe<M: DmaRegion>(
    pool: &PagePool<M>,
    spares: &mut Spares<M>,
    sqe: &mut Sqe,
    buf: &DmaBuf<M>,
    len: usize,
    sgl: bool,
    max_transfer: u64,
) -> Result<Option<DmaBuf<M>>, MapError> {
    if sgl {
        // One SGL Data Block descriptor, type 0 subtype 0: address, length, byte 15 = 00h
        // (NVMe Base 2.0 §4.3.2, Figure 118); the bounce buffer is contiguous in IOVA space.
        sqe.flags |= PSDT_SGL;
        sqe.dptr = [0; 16];
        sqe.dptr[..8].copy_from_slice(&buf.iova().to_le_bytes());
        sqe.dptr[8..12].copy_from_slice(&(len as u32).to_le_bytes());
        return Ok(None);
    }
    let page = PageSize::MIN;
    let prps = Contiguous::new(page, buf.iova(), len, max_transfer)
        .map_err(|e| MapError::Failed(BackendError::Io(std::io::Error::other(e))))?;
    let lists = match prps.list_pages() {
        0 => None,
        n => Some(spares.take(pool, n * page.bytes() as usize)?),
    };
    let run = lists.as_ref().map_or(0, DmaRegion::iova);
    if let Some(lists) = &lists {
        // Each list page written whole from the stack: its entries, little endian.
        let mut entries = [0u64; PageSize::MIN.entries_per_list()];
        let mut bytes = [0u8; PageSize::MIN.bytes() as usize];
        for k in 0..prps.list_pages() {
            let n = prps.fill_list(run, k, &mut entries);
            for (chunk, e) in bytes.chunks_exact_mut(8).zip(&entries[..n]) {
                chunk.copy_from_slice(&e.to_le_bytes());
            }
            lists.write_bytes(k * page.bytes() as usize, &bytes[..n * 8])?;
        }
    }
    let (prp1, prp2) = prps.prp1_prp2(run);
    set_prps(sqe, prp1, prp2);
    Ok(lists)
}

/// Split `blocks` blocks at `lba` into commands of at most `max_blocks` each, built by
/// `make(lba, blocks, byte offset)`.
pub fn split(
    lba: u64,
    blocks: u64,
    max_blocks: u64,
    block_size: u32,
    mut make: impl FnMut(u64, u64, usize) -> IoCmd,
) -> VecDeque<IoCmd> {
    let mut out = VecDeque::new();
    let mut done = 0u64;
    while done < blocks {
        let n = (blocks - done).min(max_blocks.max(1));
        out.push_back(make(lba + done, n, (done * u64::from(block_size)) as usize));
        done += n;
    }
    out
}

/// An NVM I/O command: opcode, NSID, SLBA in CDW10/11 and the 0's based NLB in CDW12 bits
/// 15:0 with `cdw12_flags` above (NVM Command Set 1.0 §3.2).
pub fn rw_sqe(opcode: u8, nsid: u32, lba: u64, blocks: u64, cdw12_flags: u32) -> Sqe {
    let mut sqe = crate::command::lba_sqe(opcode, nsid, lba);
    sqe.cdw12.set(((blocks - 1) as u32 & 0xffff) | cdw12_flags);
    sqe
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_covers_the_range_in_order() {
        let cmds = split(10, 70, 32, 512, |lba, n, off| IoCmd {
            sqe: rw_sqe(0x02, 1, lba, n, 0),
            data: Data::In {
                off,
                len: n as usize * 512,
            },
        });
        let got: Vec<(u64, u32, usize)> = cmds
            .iter()
            .map(|c| match c.data {
                Data::In { off, .. } => (c.sqe.slba(), c.sqe.nlb(), off),
                _ => unreachable!(),
            })
            .collect();
        assert_eq!(got, [(10, 32, 0), (42, 32, 16384), (74, 6, 32768)]);
    }

    #[test]
    fn rw_sqe_fields() {
        let s = rw_sqe(0x01, 3, 0x1_2345_6789, 8, 1 << 30);
        assert_eq!(
            (s.opcode, s.nsid(), s.slba(), s.nlb()),
            (1, 3, 0x1_2345_6789, 8)
        );
        assert_eq!(s.cdw12.get() >> 30, 1);
        assert_eq!(rw_sqe(0x02, 1, 0, 65536, 0).nlb(), 65536);
    }
}
