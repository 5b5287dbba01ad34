//! [`NvmeDriver`]: a started controller with its admin queue and I/O queue pairs, shared by
//! threads.
//!
//! I/O queue pairs are of two kinds. A thread's first polled command ([`PolledBackend`]) makes
//! one pair that thread's own ([`super::owned`]): it is kept in the thread's local storage and
//! its polled commands go through it without a lock. The other pairs are *shared*, mutex
//! protected, assigned round robin to threads on their first use: they carry request futures
//! (transfers split at the transfer limit, flush, write zeroes, deallocate, zone commands),
//! blocking callers, and the polled commands of threads that found no pair to own.
//!
//! A request's future submits its commands, then on every poll reaps its queue and checks
//! deadlines. A command past its deadline is aborted (NVMe Base 2.0 §5.1); one still
//! outstanding a further timeout later triggers a controller reset (§3.7.2: disable,
//! re-initialise, recreate the queues) that fails every in-flight command with
//! [`BackendError::Timeout`]. The reset recreates the shared pairs itself; an owned pair learns
//! of it from the driver's reset epoch when its thread next uses it, fails its commands and
//! recreates its queues. A controller whose CSTS reads all ones (surprise removal) or has CFS
//! set makes the driver gone: everything in flight and everything later fails with
//! [`BackendError::Gone`].
//!
//! [`PolledBackend`]: crate::backend::PolledBackend

use ferrofab_sync::CountedLock as _;
use std::cell::RefCell;
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU32, AtomicU64, AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use super::admin::{self, AdminQueue};
use super::clock::{Clock, SystemClock};
use super::controller::{self, ControllerInfo, Ctx};
use super::dma::DmaRegion;
use super::error::DriverError;
use super::io::{Expired, IoCmd, IoQueue, Request, SubmitError};
use super::namespace::IoOp;
use super::pool::PagePool;
use super::regs::{DoorbellLayout, Mmio, CC};
use crate::backend::BackendError;
use crate::features::FeatureId;
use crate::opcode::AdminOpcode;
use crate::properties::{Cap, Cc};

pub use super::namespace::{block_on, DriverNamespace};

/// How many queues of what depth, and how long a command may take.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DriverOptions {
    /// I/O queue pairs to ask for (the controller may grant fewer).
    pub io_queues: u16,
    /// How many of those threads may each make their own for polled commands (one per
    /// reactor); at least one pair always stays shared.
    pub owned_queues: u16,
    /// Entries per I/O queue, capped by CAP.MQES.
    pub queue_depth: u32,
    /// Per-command deadline, and again for an aborted command before a reset.
    pub timeout: Duration,
}

impl Default for DriverOptions {
    fn default() -> Self {
        DriverOptions {
            io_queues: 1,
            owned_queues: 0,
            queue_depth: 128,
            timeout: Duration::from_secs(5),
        }
    }
}

pub(super) const RUNNING: u8 = 0;
/// Resetting or shutting down: no command may start, no queue may be reaped.
pub(super) const RESETTING: u8 = 1;
pub(super) const GONE: u8 = 2;

/// FUA, NVM Read/Write CDW12 bit 30 (NVM Command Set 1.0 §3.2.4).
pub(super) const FUA: u32 = 1 << 30;
/// Most blocks one command names (16-bit 0's based NLB).
pub(super) const MAX_NLB: u64 = 1 << 16;
/// `created_in` of a queue the device does not have.
const NOT_CREATED: u64 = u64::MAX;

static NEXT_DRIVER_ID: AtomicU64 = AtomicU64::new(0);

thread_local! {
    /// The shared queue index each driver gave this thread, keyed by driver id.
    static ASSIGNED: RefCell<HashMap<u64, usize>> = RefCell::new(HashMap::new());
}

/// A started NVMe controller.
pub struct NvmeDriver<M> {
    pub(super) id: u64,
    pub(super) mmio: Box<dyn Mmio + Send + Sync>,
    pub(super) pool: PagePool<M>,
    pub(super) clock: Box<dyn Clock>,
    pub(super) opts: DriverOptions,
    pub(super) info: ControllerInfo,
    cap: Cap,
    layout: DoorbellLayout,
    /// Pages of finished commands' DMA buffers each queue may keep ([`super::pool::Spares`]).
    spare_pages: usize,
    pub(super) admin: Mutex<AdminQueue<M>>,
    /// The shared pairs, QIDs 1 to n.
    lanes: Vec<Mutex<IoQueue<M>>>,
    /// Pairs to be owned that no thread holds, with the reset epoch their device queues were
    /// created in.
    unowned: Mutex<Vec<(IoQueue<M>, u64)>>,
    /// Per QID (index QID - 1): the reset epoch its device queue was created in, or
    /// `NOT_CREATED`.
    created_in: Box<[AtomicU64]>,
    /// Controller resets completed; owned pairs compare it with their own.
    pub(super) epoch: AtomicU64,
    pub(super) state: AtomicU8,
    gone_reason: Mutex<String>,
    next_queue: AtomicUsize,
    resets: AtomicU32,
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
        let granted = controller::negotiate_queues(&ctx, &mut en.admin, opts.io_queues)?;
        if granted == 0 {
            return Err(DriverError::Unsupported("no I/O queues granted".into()));
        }
        let cap = en.cap;
        let entries = opts
            .queue_depth
            .clamp(2, cap.max_queue_entries().min(super::queue::MAX_ENTRIES));
        let layout = DoorbellLayout::new(cap, bar_len());
        // Each queue keeps at most half its share of the DMA memory for its next commands.
        let spare_pages = pool.pages() / (2 * usize::from(granted));
        let shared = granted - opts.owned_queues.min(granted - 1);
        let mut lanes = Vec::with_capacity(usize::from(shared));
        let mut unowned = Vec::new();
        for qid in 1..=granted {
            let q = IoQueue::new(&pool, qid, entries, &layout, spare_pages)?;
            q.create(&*mmio, &*clock, &mut en.admin, opts.timeout)?;
            if qid <= shared {
                lanes.push(Mutex::new(q));
            } else {
                unowned.push((q, 0));
            }
        }
        // Handed out lowest QID first.
        unowned.reverse();
        info.io_queues = granted;
        info.queue_entries = entries;
        Ok(Arc::new(NvmeDriver {
            id: NEXT_DRIVER_ID.fetch_add(1, Ordering::Relaxed),
            mmio,
            pool,
            clock,
            opts,
            info,
            cap,
            layout,
            spare_pages,
            admin: Mutex::new(en.admin),
            lanes,
            unowned: Mutex::new(unowned),
            created_in: (0..granted).map(|_| AtomicU64::new(0)).collect(),
            epoch: AtomicU64::new(0),
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

    /// Queue pairs to be owned that no thread has taken yet.
    pub fn unowned_queues(&self) -> usize {
        self.unowned.lock_counted().len()
    }

    /// `Some(reason)` once the controller is gone (removed, failed, or shut down).
    pub fn gone(&self) -> Option<String> {
        (self.state.load(Ordering::Acquire) == GONE).then(|| self.gone_reason())
    }

    pub(super) fn gone_reason(&self) -> String {
        self.gone_reason.lock_counted().clone()
    }

    /// Delete the I/O queues and shut the controller down normally (NVMe Base 2.0 §3.6.1);
    /// afterwards every command fails with [`BackendError::Gone`].
    pub fn shutdown(&self) -> Result<(), DriverError> {
        let mut lanes: Vec<_> = self.lanes.iter().map(|l| l.lock_counted()).collect();
        let mut admin = self.admin.lock_counted();
        // Owned pairs stop starting and reaping commands, and keep their DMA memory until the
        // device let go of it: they fail their commands once the state is GONE.
        self.state.store(RESETTING, Ordering::Release);
        let gone = || BackendError::Gone("controller shut down".into());
        for q in lanes.iter_mut() {
            q.fail_all(&gone);
        }
        let mmio = &*self.mmio;
        let clock = &*self.clock;
        let epoch = self.epoch.load(Ordering::Acquire);
        let mut result = Ok(());
        for (qid, created) in (1u16..).zip(self.created_in.iter()) {
            if created.swap(NOT_CREATED, Ordering::AcqRel) != epoch {
                continue;
            }
            for op in [AdminOpcode::DeleteIoSq, AdminOpcode::DeleteIoCq] {
                let mut sqe = crate::Sqe {
                    opcode: op.to_u8(),
                    ..Default::default()
                };
                sqe.cdw10.set(u32::from(qid));
                if let Err(e) = admin.run(mmio, clock, sqe, self.opts.timeout) {
                    result = Err(e);
                }
            }
        }
        let result = result.and(controller::shutdown(mmio, clock, self.cap));
        *self.gone_reason.lock_counted() = "controller shut down".into();
        self.state.store(GONE, Ordering::Release);
        result
    }

    /// This thread's shared queue.
    pub(super) fn queue_index(&self) -> usize {
        let n = self.lanes.len();
        ASSIGNED.with(|m| {
            *m.borrow_mut()
                .entry(self.id)
                .or_insert_with(|| self.next_queue.fetch_add(1, Ordering::Relaxed) % n)
        })
    }

    pub(super) fn lane(&self, index: usize) -> MutexGuard<'_, IoQueue<M>> {
        self.lanes[index].lock_counted()
    }

    /// Every shared pair, one after another.
    pub(super) fn lanes(&self) -> impl Iterator<Item = MutexGuard<'_, IoQueue<M>>> {
        self.lanes.iter().map(|l| l.lock_counted())
    }

    pub(super) fn max_blocks(&self, block_size: u32, limit: u64) -> u64 {
        (limit / u64::from(block_size)).clamp(1, MAX_NLB)
    }

    /// A request over `cmds` on the calling thread's shared queue; its output is the request
    /// buffer and the last completion's DW0/DW1.
    pub(super) fn request(
        self: &Arc<Self>,
        cmds: VecDeque<IoCmd>,
        buf: Vec<u8>,
        in_order: bool,
    ) -> IoOp<M> {
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
    pub(super) fn step(
        &self,
        queue: usize,
        req: &Arc<Request>,
        pending: &mut VecDeque<IoCmd>,
        in_order: bool,
    ) -> bool {
        if self.state.load(Ordering::Acquire) == GONE {
            pending.clear();
            req.fail(BackendError::Gone(self.gone_reason()));
            return true;
        }
        let mmio = &*self.mmio;
        let now = self.clock.now();
        let mut q = self.lane(queue);
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
        let expired = q.expired(now, self.opts.timeout);
        let qid = q.qid();
        drop(q);
        self.act_on_expired(qid, expired) || moved
    }

    /// Abort the commands of queue `qid` past their deadline and reset the controller for
    /// those past the abort's (call without holding a queue's lock). Returns whether it acted.
    pub(super) fn act_on_expired(&self, qid: u16, expired: Expired) -> bool {
        if expired.abort.is_empty() && !expired.reset {
            return false;
        }
        let mmio = &*self.mmio;
        if let Err(e) = controller::health(mmio) {
            self.go_gone(e.to_string());
            return true;
        }
        if !expired.abort.is_empty() {
            let mut admin = self.admin.lock_counted();
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

    /// Mark the driver gone and fail everything in flight.
    pub(super) fn go_gone(&self, reason: String) {
        if self.state.load(Ordering::Acquire) == GONE {
            return;
        }
        *self.gone_reason.lock_counted() = reason.clone();
        // Stop a failed (not removed) controller before owners free memory it may still use:
        // they drop their commands' buffers once they see GONE.
        let cc = self.mmio.read32(CC as usize);
        if cc != u32::MAX {
            self.mmio.write32(CC as usize, Cc(cc).with_en(false).0);
        }
        if self.state.swap(GONE, Ordering::AcqRel) == GONE {
            return;
        }
        tracing::error!("NVMe controller gone: {reason}");
        for mut q in self.lanes() {
            q.fail_all(&|| BackendError::Gone(reason.clone()));
        }
    }

    /// Controller reset after an abort did not help (NVMe Base 2.0 §3.7.2): fail everything
    /// in flight with `Timeout`, disable, re-enable, recreate the shared queues; owned pairs
    /// recreate theirs when they see the new epoch.
    fn reset(&self) {
        if self
            .state
            .compare_exchange(RUNNING, RESETTING, Ordering::AcqRel, Ordering::Acquire)
            .is_err()
        {
            return;
        }
        tracing::warn!("resetting NVMe controller after a command timeout");
        let mut lanes: Vec<_> = self.lanes().collect();
        let mut admin = self.admin.lock_counted();
        for q in lanes.iter_mut() {
            q.fail_all(&|| BackendError::Timeout);
        }
        for created in self.created_in.iter() {
            created.store(NOT_CREATED, Ordering::Release);
        }
        self.resets.fetch_add(1, Ordering::Relaxed);
        let ctx = Ctx {
            mmio: &*self.mmio,
            clock: &*self.clock,
            pool: &self.pool,
            timeout: self.opts.timeout,
        };
        let epoch = self.epoch.load(Ordering::Acquire) + 1;
        let result = (|| -> Result<(), DriverError> {
            let mut en = controller::enable(&ctx, bar_len())?;
            self.restore_command_sets(&ctx, &mut en.admin)?;
            let granted = controller::negotiate_queues(&ctx, &mut en.admin, self.info.io_queues)?;
            if granted != self.info.io_queues {
                return Err(DriverError::Unsupported(format!(
                    "{granted} I/O queues granted after reset, {} before",
                    self.info.io_queues
                )));
            }
            for slot in lanes.iter_mut() {
                let mut q = self.new_queue(slot.qid())?;
                q.create(ctx.mmio, ctx.clock, &mut en.admin, ctx.timeout)?;
                self.created_in[usize::from(q.qid()) - 1].store(epoch, Ordering::Release);
                slot.hand_over_finished(&mut q);
                **slot = q;
            }
            *admin = en.admin;
            Ok(())
        })();
        match result {
            Ok(()) => {
                self.epoch.store(epoch, Ordering::Release);
                // Unless the controller went away meanwhile.
                let _ = self.state.compare_exchange(
                    RESETTING,
                    RUNNING,
                    Ordering::AcqRel,
                    Ordering::Acquire,
                );
            }
            Err(e) => {
                let reason = format!("controller reset failed: {e}");
                tracing::error!("{reason}");
                *self.gone_reason.lock_counted() = reason;
                self.state.store(GONE, Ordering::Release);
            }
        }
    }

    /// A fresh queue pair `qid` (not yet created on the controller).
    pub(super) fn new_queue(&self, qid: u16) -> Result<IoQueue<M>, DriverError> {
        let entries = self.info.queue_entries;
        IoQueue::new(&self.pool, qid, entries, &self.layout, self.spare_pages)
    }

    /// Note that queue `qid` was created on the controller in reset epoch `epoch`.
    pub(super) fn created(&self, qid: u16, epoch: u64) {
        self.created_in[usize::from(qid) - 1].store(epoch, Ordering::Release);
    }

    /// A pair for a thread to own, if one is left.
    pub(super) fn take_unowned(&self) -> Option<(IoQueue<M>, u64)> {
        self.unowned.lock_counted().pop()
    }

    /// A pair its thread let go of (the thread ended): nothing it had waits for it any more.
    pub(super) fn give_back(&self, mut q: IoQueue<M>, epoch: u64) {
        q.orphan_all();
        self.unowned.lock_counted().push((q, epoch));
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
