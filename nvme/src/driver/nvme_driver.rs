//! [`NvmeDriver`]: a started controller with its admin queue and I/O queue pairs, shared by
//! threads, and [`DriverNamespace`], a namespace as a [`Backend`] and [`QueuedBackend`].
//!
//! Each thread submits on its own queue pair, assigned round robin on its first command; the
//! pairs are mutex protected, so threads that share one (more threads than queues) stay
//! correct. A request's future submits its commands, then on every poll reaps its queue and
//! checks deadlines. A command past its deadline is aborted (NVMe Base 2.0 §5.1); one still
//! outstanding a further timeout later triggers a controller reset (§3.7.2: disable,
//! re-initialise, recreate the queues) that fails every in-flight command with
//! [`BackendError::Timeout`]. A controller whose CSTS reads all ones (surprise removal) or has
//! CFS set makes the driver gone: everything in flight and everything later fails with
//! [`BackendError::Gone`].

use std::cell::RefCell;
use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU32, AtomicU64, AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use bytes::Bytes;

use super::admin::{self, AdminQueue};
use super::clock::{Clock, SystemClock};
use super::controller::{self, ControllerInfo, Ctx, NamespaceInfo};
use super::dma::DmaRegion;
use super::error::DriverError;
use super::io::{self, Data, IoCmd, IoQueue, Owner, Request, SubmitError};
use super::pool::PagePool;
use super::regs::{Mmio, CC};
use crate::backend::{
    blocks_in, check_range, Backend, BackendError, BackendInfo, IoFuture, Polled, PolledBackend,
    QueuedBackend, Refused, ZonedBackend, ZonedGeometry,
};
use crate::features::FeatureId;
use crate::opcode::{AdminOpcode, IoOpcode};
use crate::properties::{Cap, Cc};

/// How many queues of what depth, and how long a command may take.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DriverOptions {
    /// I/O queue pairs to ask for (the controller may grant fewer).
    pub io_queues: u16,
    /// Entries per I/O queue, capped by CAP.MQES.
    pub queue_depth: u32,
    /// Per-command deadline, and again for an aborted command before a reset.
    pub timeout: Duration,
}

impl Default for DriverOptions {
    fn default() -> Self {
        DriverOptions {
            io_queues: 1,
            queue_depth: 128,
            timeout: Duration::from_secs(5),
        }
    }
}

const RUNNING: u8 = 0;
const RESETTING: u8 = 1;
const GONE: u8 = 2;

/// FUA, NVM Read/Write CDW12 bit 30 (NVM Command Set 1.0 §3.2.4).
pub(super) const FUA: u32 = 1 << 30;
/// Most blocks one command names (16-bit 0's based NLB).
const MAX_NLB: u64 = 1 << 16;

static NEXT_DRIVER_ID: AtomicU64 = AtomicU64::new(0);

thread_local! {
    /// The queue index each driver gave this thread, keyed by driver id.
    static ASSIGNED: RefCell<HashMap<u64, usize>> = RefCell::new(HashMap::new());
}

/// A started NVMe controller.
pub struct NvmeDriver<M> {
    id: u64,
    mmio: Box<dyn Mmio + Send + Sync>,
    pool: PagePool<M>,
    clock: Box<dyn Clock>,
    opts: DriverOptions,
    info: ControllerInfo,
    cap: Cap,
    admin: Mutex<AdminQueue<M>>,
    queues: Vec<Mutex<IoQueue<M>>>,
    state: AtomicU8,
    gone_reason: Mutex<String>,
    next_queue: AtomicUsize,
    resets: AtomicU32,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl<M: DmaRegion + Send + Sync + 'static> NvmeDriver<M> {
    /// Bring the controller up with the system clock; see [`NvmeDriver::start_with_clock`].
    pub fn start(
        mmio: Box<dyn Mmio + Send + Sync>,
        pool: PagePool<M>,
        opts: DriverOptions,
    ) -> Result<Arc<Self>, DriverError> {
        Self::start_with_clock(mmio, pool, opts, Box::new(SystemClock::new()))
    }

    /// Reset and enable the controller, identify it and its namespaces, and create the I/O
    /// queues. All queues and buffers come from `pool`, which must be page-sized 4 KiB.
    pub fn start_with_clock(
        mmio: Box<dyn Mmio + Send + Sync>,
        pool: PagePool<M>,
        opts: DriverOptions,
        clock: Box<dyn Clock>,
    ) -> Result<Arc<Self>, DriverError> {
        if opts.io_queues == 0 || opts.queue_depth < 2 || opts.timeout.is_zero() {
            return Err(DriverError::Options(format!(
                "need at least one queue of two entries and a timeout, got {opts:?}"
            )));
        }
        if pool.page_size() != 4096 {
            return Err(DriverError::Options(format!(
                "pool pages are {} bytes, the driver uses 4 KiB",
                pool.page_size()
            )));
        }
        let ctx = Ctx {
            mmio: &*mmio,
            clock: &*clock,
            pool: &pool,
            timeout: opts.timeout,
        };
        let mut en = controller::enable(&ctx, bar_len())?;
        let mut info = controller::identify(&ctx, &mut en)?;
        let (queues, entries) = create_queues(&ctx, &mut en.admin, &opts, en.cap)?;
        info.io_queues = queues.len() as u16;
        info.queue_entries = entries;
        let (cap, admin) = (en.cap, en.admin);
        Ok(Arc::new(NvmeDriver {
            id: NEXT_DRIVER_ID.fetch_add(1, Ordering::Relaxed),
            mmio,
            pool,
            clock,
            opts,
            info,
            cap,
            admin: Mutex::new(admin),
            queues: queues.into_iter().map(Mutex::new).collect(),
            state: AtomicU8::new(RUNNING),
            gone_reason: Mutex::new(String::new()),
            next_queue: AtomicUsize::new(0),
            resets: AtomicU32::new(0),
        }))
    }

    /// What the controller reported at start.
    pub fn info(&self) -> &ControllerInfo {
        &self.info
    }

    /// Controller resets done after timeouts.
    pub fn resets(&self) -> u32 {
        self.resets.load(Ordering::Relaxed)
    }

    /// `Some(reason)` once the controller is gone (removed, failed, or shut down).
    pub fn gone(&self) -> Option<String> {
        (self.state.load(Ordering::Acquire) == GONE).then(|| lock(&self.gone_reason).clone())
    }

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

    /// Delete the I/O queues and shut the controller down normally (NVMe Base 2.0 §3.6.1);
    /// afterwards every command fails with [`BackendError::Gone`].
    pub fn shutdown(&self) -> Result<(), DriverError> {
        let mut queues: Vec<_> = self.queues.iter().map(lock).collect();
        let mut admin = lock(&self.admin);
        self.state.store(GONE, Ordering::Release);
        *lock(&self.gone_reason) = "controller shut down".into();
        let gone = || BackendError::Gone("controller shut down".into());
        let mmio = &*self.mmio;
        let clock = &*self.clock;
        let mut result = Ok(());
        for q in queues.iter_mut() {
            q.fail_all(&gone);
            for op in [AdminOpcode::DeleteIoSq, AdminOpcode::DeleteIoCq] {
                let mut sqe = crate::Sqe {
                    opcode: op.to_u8(),
                    ..Default::default()
                };
                sqe.cdw10.set(u32::from(q.qid()));
                if let Err(e) = admin.run(mmio, clock, sqe, self.opts.timeout) {
                    result = Err(e);
                }
            }
        }
        result.and(controller::shutdown(mmio, clock, self.cap))
    }

    fn queue_index(&self) -> usize {
        let n = self.queues.len();
        ASSIGNED.with(|m| {
            *m.borrow_mut()
                .entry(self.id)
                .or_insert_with(|| self.next_queue.fetch_add(1, Ordering::Relaxed) % n)
        })
    }

    fn max_blocks(&self, block_size: u32, limit: u64) -> u64 {
        (limit / u64::from(block_size)).clamp(1, MAX_NLB)
    }

    /// A request over `cmds` on the calling thread's queue; its output is the request buffer
    /// and the last completion's DW0/DW1.
    fn request(self: &Arc<Self>, cmds: VecDeque<IoCmd>, buf: Vec<u8>, in_order: bool) -> IoOp<M> {
        IoOp {
            driver: Arc::clone(self),
            queue: self.queue_index(),
            req: Request::new(buf),
            pending: cmds,
            in_order,
        }
    }

    /// One poll of a request: reap its queue, submit what fits, handle deadlines. Returns
    /// whether anything moved.
    fn step(
        &self,
        queue: usize,
        req: &Arc<Request>,
        pending: &mut VecDeque<IoCmd>,
        in_order: bool,
    ) -> bool {
        if self.state.load(Ordering::Acquire) == GONE {
            pending.clear();
            req.fail(BackendError::Gone(lock(&self.gone_reason).clone()));
            return true;
        }
        let mmio = &*self.mmio;
        let now = self.clock.now();
        let mut q = lock(&self.queues[queue]);
        if self.state.load(Ordering::Acquire) != RUNNING {
            // A reset replaced the queues while this thread waited for the lock; try again.
            return false;
        }
        let mut moved = q.reap(mmio) > 0;
        if req.has_error() {
            pending.clear();
        }
        while let Some(cmd) = pending.pop_front() {
            if in_order && req.lock().outstanding > 0 {
                pending.push_front(cmd);
                break;
            }
            let deadline = now + self.opts.timeout;
            let sgl = self.info.sgl;
            match q.submit(&self.pool, &cmd, req, deadline, sgl, self.info.max_transfer) {
                Ok(()) => moved = true,
                Err(SubmitError::Busy) if q.outstanding() > 0 => {
                    pending.push_front(cmd);
                    break;
                }
                Err(SubmitError::Busy) => {
                    req.fail(BackendError::Io(std::io::Error::other(
                        "DMA pool has no room for the transfer",
                    )));
                    pending.clear();
                }
                Err(SubmitError::Failed(e)) => {
                    req.fail(e);
                    pending.clear();
                }
            }
        }
        q.ring(mmio);
        self.check_deadlines(q, now) || moved
    }

    /// Abort the commands of `q` past their deadline and reset the controller for those past
    /// the abort's; takes the queue's lock to release it first. Returns whether it acted.
    fn check_deadlines(&self, mut q: MutexGuard<'_, IoQueue<M>>, now: Duration) -> bool {
        let mmio = &*self.mmio;
        let expired = q.expired(now, self.opts.timeout);
        let qid = q.qid();
        drop(q);
        if expired.abort.is_empty() && !expired.reset {
            return false;
        }
        if let Err(e) = controller::health(mmio) {
            self.go_gone(e.to_string());
            return true;
        }
        if !expired.abort.is_empty() {
            let mut admin = lock(&self.admin);
            for cid in expired.abort {
                tracing::warn!(qid, cid, "command timed out; aborting");
                if let Err(e) = admin.submit(mmio, admin::abort(qid, cid)) {
                    tracing::warn!(qid, cid, "abort not submitted: {e}");
                }
            }
        }
        if expired.reset {
            self.reset();
        }
        true
    }

    /// Start one command of the polled interface on this thread's queue.
    fn start_polled(
        &self,
        sqe: crate::Sqe,
        out: Option<&[u8]>,
        buf: Option<Vec<u8>>,
        token: u64,
    ) -> Result<(), (Refused, Option<Vec<u8>>)> {
        if self.state.load(Ordering::Acquire) == GONE {
            let reason = lock(&self.gone_reason).clone();
            return Err((Refused::Failed(BackendError::Gone(reason)), buf));
        }
        let queue = self.queue_index();
        let mut q = lock(&self.queues[queue]);
        if self.state.load(Ordering::Acquire) != RUNNING {
            return Err((Refused::Busy, buf));
        }
        let map = io::Mapping {
            sgl: self.info.sgl,
            max_transfer: self.info.max_transfer,
            deadline: self.clock.now() + self.opts.timeout,
        };
        let copy_out = buf.as_ref().map(|b| (0, b.len()));
        let owner = Owner::Token { token, buf };
        let busy = q.outstanding() > 0;
        match q.submit_owned(&self.pool, sqe, out, copy_out, owner, &map) {
            Ok(()) => {
                q.ring(&*self.mmio);
                Ok(())
            }
            Err((e, owner)) => {
                let buf = match owner {
                    Owner::Token { buf, .. } => buf,
                    _ => None,
                };
                let why = match e {
                    SubmitError::Busy if busy => Refused::Busy,
                    SubmitError::Busy => Refused::Failed(BackendError::Io(std::io::Error::other(
                        "DMA pool has no room for the transfer",
                    ))),
                    SubmitError::Failed(e) => Refused::Failed(e),
                };
                Err((why, buf))
            }
        }
    }

    /// Reap this thread's queue and hand `owner`'s finished polled commands to `done`.
    fn reap_owner(&self, owner: u32, done: &mut dyn FnMut(Polled)) -> usize {
        let queue = self.queue_index();
        let now = self.clock.now();
        let mut q = lock(&self.queues[queue]);
        if self.state.load(Ordering::Acquire) == RUNNING {
            q.reap(&*self.mmio);
        }
        let n = q.take_finished(owner, done);
        self.check_deadlines(q, now);
        n
    }

    /// Forget `owner` on every queue (it may have moved threads).
    fn forget_owner(&self, owner: u32) {
        for q in &self.queues {
            lock(q).forget(owner);
        }
    }

    /// Mark the driver gone and fail everything in flight.
    fn go_gone(&self, reason: String) {
        if self.state.swap(GONE, Ordering::AcqRel) == GONE {
            return;
        }
        tracing::error!("NVMe controller gone: {reason}");
        *lock(&self.gone_reason) = reason.clone();
        for q in &self.queues {
            lock(q).fail_all(&|| BackendError::Gone(reason.clone()));
        }
        // Stop a failed (not removed) controller from touching memory that is now reused.
        let cc = self.mmio.read32(CC as usize);
        if cc != u32::MAX {
            self.mmio.write32(CC as usize, Cc(cc).with_en(false).0);
        }
    }

    /// Controller reset after an abort did not help (NVMe Base 2.0 §3.7.2): fail everything
    /// in flight with `Timeout`, disable, re-enable, recreate the queues.
    fn reset(&self) {
        if self
            .state
            .compare_exchange(RUNNING, RESETTING, Ordering::AcqRel, Ordering::Acquire)
            .is_err()
        {
            return;
        }
        tracing::warn!("resetting NVMe controller after a command timeout");
        let mut queues: Vec<_> = self.queues.iter().map(lock).collect();
        let mut admin = lock(&self.admin);
        for q in queues.iter_mut() {
            q.fail_all(&|| BackendError::Timeout);
        }
        self.resets.fetch_add(1, Ordering::Relaxed);
        let ctx = Ctx {
            mmio: &*self.mmio,
            clock: &*self.clock,
            pool: &self.pool,
            timeout: self.opts.timeout,
        };
        let result = (|| -> Result<(), DriverError> {
            let mut en = controller::enable(&ctx, bar_len())?;
            self.restore_command_sets(&ctx, &mut en.admin)?;
            let opts = DriverOptions {
                io_queues: queues.len() as u16,
                queue_depth: self.info.queue_entries,
                timeout: self.opts.timeout,
            };
            let (fresh, _) = create_queues(&ctx, &mut en.admin, &opts, en.cap)?;
            if fresh.len() != queues.len() {
                return Err(DriverError::Unsupported(format!(
                    "{} I/O queues granted after reset, {} before",
                    fresh.len(),
                    queues.len()
                )));
            }
            for (slot, mut q) in queues.iter_mut().zip(fresh) {
                slot.hand_over_finished(&mut q);
                **slot = q;
            }
            *admin = en.admin;
            Ok(())
        })();
        match result {
            Ok(()) => self.state.store(RUNNING, Ordering::Release),
            Err(e) => {
                let reason = format!("controller reset failed: {e}");
                tracing::error!("{reason}");
                *lock(&self.gone_reason) = reason;
                self.state.store(GONE, Ordering::Release);
            }
        }
    }

    /// Select the same I/O command set combination again after a reset.
    fn restore_command_sets(
        &self,
        ctx: &Ctx<'_, M>,
        admin: &mut AdminQueue<M>,
    ) -> Result<(), DriverError> {
        let Some(index) = self.info.command_set_index.filter(|i| *i != 0) else {
            return Ok(());
        };
        let sqe = admin::set_features(FeatureId::IoCommandSetProfile.to_u8(), index as u32);
        admin.run(ctx.mmio, ctx.clock, sqe, ctx.timeout)?;
        Ok(())
    }
}

/// The BAR length the doorbell layout is checked against: the driver does not know the
/// mapping's size, and the [`Mmio`] seam bounds every access itself.
fn bar_len() -> usize {
    usize::MAX
}

fn create_queues<M: DmaRegion>(
    ctx: &Ctx<'_, M>,
    admin: &mut AdminQueue<M>,
    opts: &DriverOptions,
    cap: Cap,
) -> Result<(Vec<IoQueue<M>>, u32), DriverError> {
    let granted = controller::negotiate_queues(ctx, admin, opts.io_queues)?;
    if granted == 0 {
        return Err(DriverError::Unsupported("no I/O queues granted".into()));
    }
    let entries = opts
        .queue_depth
        .clamp(2, cap.max_queue_entries().min(super::queue::MAX_ENTRIES));
    let layout = super::regs::DoorbellLayout::new(cap, bar_len());
    // Each queue keeps at most half its share of the DMA memory for its next commands.
    let spare_pages = ctx.pool.pages() / (2 * usize::from(granted));
    let mut queues = Vec::with_capacity(usize::from(granted));
    for qid in 1..=granted {
        let q = IoQueue::new(ctx.pool, qid, entries, &layout, spare_pages)?;
        q.create(ctx.mmio, ctx.clock, admin, ctx.timeout)?;
        queues.push(q);
    }
    Ok((queues, entries))
}

/// A request in flight: its remaining commands and shared completion state.
struct IoOp<M> {
    driver: Arc<NvmeDriver<M>>,
    queue: usize,
    req: Arc<Request>,
    pending: VecDeque<IoCmd>,
    /// One command on the queue at a time, in order (the parts of a write to a zone).
    in_order: bool,
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
            .start_polled(sqe, None, Some(buf), token)
            .map_err(|(why, buf)| (why, buf.unwrap_or_default()))
    }

    fn start_write(&self, lba: u64, data: &[u8], fua: bool, token: u64) -> Result<(), Refused> {
        let blocks = self.check(lba, data.len()).map_err(Refused::Failed)?;
        if blocks > self.transfer_blocks() {
            return Err(Refused::Unsupported);
        }
        let flags = if fua { FUA } else { 0 };
        let sqe = io::rw_sqe(IoOpcode::Write.to_u8(), self.nsid(), lba, blocks, flags);
        self.driver
            .start_polled(sqe, Some(data), None, token)
            .map_err(|(why, _)| why)
    }

    fn reap(&self, owner: u32, done: &mut dyn FnMut(Polled)) -> usize {
        self.driver.reap_owner(owner, done)
    }

    fn forget(&self, owner: u32) {
        self.driver.forget_owner(owner);
    }
}
