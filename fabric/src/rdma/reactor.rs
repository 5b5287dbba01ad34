//! One NVMe/RDMA reactor thread: it owns its queue pairs end to end. Each turn it polls the
//! completion queue of every device it serves (no completion channel: the reactor polls),
//! turns received capsules into commands of the queues' [`RdmaQueue`]s, and posts the RDMA
//! READs, WRITEs and SENDs they produce. Host data moves through the device's registered
//! data slots; receive buffers come from the device's shared receive queue and go back to it
//! as soon as their capsule is copied out.

use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::task::{Context, Poll, Wake, Waker};
use std::time::{Duration, Instant};

use futures::stream::FuturesUnordered;
use futures::StreamExt;
use nix::sys::epoll::{Epoll, EpollCreateFlags, EpollEvent, EpollFlags, EpollTimeout};
use nix::sys::eventfd::{EfdFlags, EventFd};
use tokio_util::sync::WaitForCancellationFutureOwned;
use tracing::{debug, warn};

use super::queue::{RdmaQueue, Work};
use super::reg_pool::RegPool;
use crate::buf_pool::BufSource;
use crate::queue_core::{Event, PendingCommand};
use crate::sys::rdma::{CmId, Completion, DeviceRes};
use crate::tcp::reactor::PollMode;
use crate::tcp::reactor_stats::{set_current_reactor, LoopClock, ReactorCounters};

/// How long an adaptive reactor spins after its last piece of work before it sleeps.
const ADAPTIVE_SPIN: Duration = Duration::from_micros(200);
/// Longest sleep of an idle adaptive reactor: it wakes at once for a completion (its CQs are
/// armed) or a ring of its bell; this only bounds a sleep with neither.
const MAX_SLEEP: Duration = Duration::from_millis(100);
/// epoll data of the bell's eventfd; a device's completion channel is its index.
const BELL_EVENT: u64 = u64::MAX;
/// Completions taken per poll.
const POLL_BATCH: usize = 32;

mod post;
use post::{Ctx, Fetching, Posted, Sending};

/// Work request kinds in the top bits of a send-side `wr_id`.
const KIND_READ: u64 = 1;
const KIND_SEND: u64 = 2;

/// wr_id of a send-side work request: queue slot, its generation, kind, and the CID (reads)
/// or in-flight entry (sends).
fn wr_id(slot: usize, gen: u16, kind: u64, index: u32) -> u64 {
    ((slot as u64 & 0xffff) << 48)
        | (u64::from(gen) << 32)
        | (kind << 24)
        | u64::from(index & 0xff_ffff)
}

fn parse_wr_id(id: u64) -> (usize, u16, u64, u32) {
    (
        (id >> 48) as usize,
        (id >> 32) as u16,
        (id >> 24) & 0xff,
        (id & 0xff_ffff) as u32,
    )
}

/// Wakes the reactor thread (new queues, futures that became ready, stop).
pub(super) struct Bell {
    /// Set by every ring; the reactor swaps it back and takes messages and polls futures.
    rung: AtomicBool,
    /// The reactor is (about to be) blocked in epoll_wait: a ring kicks the eventfd.
    sleeping: AtomicBool,
    efd: EventFd,
}

impl Bell {
    pub(super) fn new() -> io::Result<Bell> {
        Ok(Bell {
            rung: AtomicBool::new(false),
            sleeping: AtomicBool::new(false),
            efd: EventFd::from_value_and_flags(0, EfdFlags::EFD_CLOEXEC | EfdFlags::EFD_NONBLOCK)
                .map_err(|e| io::Error::other(format!("eventfd: {e}")))?,
        })
    }

    pub(super) fn ring(&self) {
        self.rung.store(true, Ordering::SeqCst);
        if self.sleeping.load(Ordering::SeqCst) {
            if let Err(e) = self.efd.write(1) {
                warn!(error = %e, "RDMA reactor wake-up failed");
            }
        }
    }
}

impl Wake for Bell {
    fn wake(self: Arc<Self>) {
        self.ring();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.ring();
    }
}

/// A device as a reactor sees it: its resources, which data slots are free, and the
/// completion budget its queues use.
pub(super) struct Dev {
    pub(super) res: Arc<DeviceRes>,
    /// Submission queue entries of the queues on it (each may have one signaled work
    /// request in the completion queue), shared with the listener's admission.
    pub(super) budget_used: Arc<AtomicU32>,
}

/// A connect request with its queue pair on a device, to accept once registered.
pub(super) struct NewQueue {
    pub(super) id: CmId,
    pub(super) dev_res: Arc<DeviceRes>,
    pub(super) budget_used: Arc<AtomicU32>,
    pub(super) qp_num: u32,
    pub(super) queue: RdmaQueue,
    pub(super) sq_entries: u32,
    pub(super) accept: [u8; super::cm::CM_ACCEPT_LEN],
    pub(super) responder_resources: u8,
    pub(super) initiator_depth: u8,
}

/// What the listener hands a reactor.
pub(super) enum Msg {
    NewQueue(Box<NewQueue>),
    /// The connection of id `key` is gone (disconnected by either side, or its device).
    Disconnected {
        key: usize,
    },
}

struct Queue {
    id: CmId,
    dev: usize,
    gen: u16,
    queue: RdmaQueue,
    sq_entries: u32,
    pending: FuturesUnordered<PendingCommand>,
    teardown: Option<Pin<Box<WaitForCancellationFutureOwned>>>,
    /// The local memory of RDMA READs in flight, by CID.
    fetches: HashMap<u16, Fetching>,
    /// What answers whose SEND is in flight hold, by entry.
    sends: Vec<Option<Sending>>,
    free_sends: Vec<u32>,
    /// Work that found no free data slots, retried first.
    stalled: Option<Work>,
    /// We asked the CM to disconnect: the queue goes at the end of this turn. Its queue pair
    /// is destroyed without waiting for the CM's disconnect event (as Linux nvmet does): a
    /// host that cannot be reached would otherwise hold it for the CM's DREQ retries.
    closing: bool,
    commands_counted: u64,
}

pub(super) struct Reactor {
    pub(super) id: usize,
    pub(super) poll: PollMode,
    pub(super) rx: mpsc::Receiver<Msg>,
    pub(super) bell: Arc<Bell>,
    pub(super) waker: Waker,
    pub(super) stop: Arc<AtomicBool>,
    pub(super) load: Arc<AtomicUsize>,
    pub(super) counters: Arc<ReactorCounters>,
    devs: Vec<Dev>,
    /// Free data slots of each device in `devs`.
    free_slots: Vec<Vec<u32>>,
    /// Registered data buffers of each device in `devs`.
    pools: Vec<RegPool>,
    queues: Vec<Option<Queue>>,
    free_queue_slots: Vec<usize>,
    /// Queue slot by queue pair number, and by CM id key.
    by_qp: HashMap<u32, usize>,
    by_key: HashMap<usize, usize>,
    next_gen: u16,
    /// The bell's eventfd and every device's completion channel, for an idle reactor's sleep.
    epoll: Epoll,
    /// A received capsule, copied out of its receive buffer.
    capsule: Vec<u8>,
    /// Controller-to-host data staged on its way into data slots (lent memory).
    staging: Vec<u8>,
}

impl Reactor {
    pub(super) fn new(
        id: usize,
        poll: PollMode,
        rx: mpsc::Receiver<Msg>,
        bell: Arc<Bell>,
        stop: Arc<AtomicBool>,
        load: Arc<AtomicUsize>,
        counters: Arc<ReactorCounters>,
    ) -> io::Result<Reactor> {
        let epoll = Epoll::new(EpollCreateFlags::EPOLL_CLOEXEC).map_err(io::Error::from)?;
        epoll
            .add(&bell.efd, EpollEvent::new(EpollFlags::EPOLLIN, BELL_EVENT))
            .map_err(io::Error::from)?;
        Ok(Reactor {
            id,
            poll,
            rx,
            waker: Waker::from(bell.clone()),
            bell,
            stop,
            load,
            counters,
            devs: Vec::new(),
            free_slots: Vec::new(),
            pools: Vec::new(),
            queues: Vec::new(),
            free_queue_slots: Vec::new(),
            by_qp: HashMap::new(),
            by_key: HashMap::new(),
            next_gen: 0,
            epoll,
            capsule: Vec::new(),
            staging: Vec::new(),
        })
    }

    pub(super) fn run(&mut self) {
        debug!(reactor = self.id, "RDMA reactor running");
        set_current_reactor(self.id);
        let mut clock = LoopClock::start();
        let mut last_work = Instant::now();
        let mut wcs = [Completion::default(); POLL_BATCH];
        self.bell.rung.store(true, Ordering::SeqCst);
        while !self.stop.load(Ordering::Relaxed) {
            let mut worked = false;
            if self.bell.rung.swap(false, Ordering::SeqCst) {
                self.take_messages();
                self.poll_futures();
                worked = true;
            }
            for d in 0..self.devs.len() {
                loop {
                    let n = self.devs[d].res.poll(&mut wcs);
                    for wc in &wcs[..n] {
                        self.on_completion(d, wc);
                    }
                    worked |= n > 0;
                    if n < POLL_BATCH {
                        break;
                    }
                }
            }
            worked |= self.service_queues();
            let now = clock.end_iteration(&self.counters, worked);
            if worked {
                last_work = now;
            } else if self.poll == PollMode::Adaptive
                && now.saturating_duration_since(last_work) > ADAPTIVE_SPIN
                && self.sleep(&mut wcs)
            {
                last_work = Instant::now();
            }
        }
        for slot in 0..self.queues.len() {
            self.drop_queue(slot, "reactor stopping");
        }
        debug!(reactor = self.id, "RDMA reactor stopped");
    }

    /// Sleep until a completion or a ring of the bell (at most [`MAX_SLEEP`]): arm every
    /// device's CQ, poll once more for completions that came before arming, then wait on
    /// the completion channels and the bell's eventfd. True if it found work instead.
    fn sleep(&mut self, wcs: &mut [Completion]) -> bool {
        self.bell.sleeping.store(true, Ordering::SeqCst);
        let mut found = self.bell.rung.load(Ordering::SeqCst);
        for d in 0..self.devs.len() {
            if found {
                break;
            }
            if let Err(e) = self.devs[d].res.arm() {
                debug!(error = %e, "arming the completion queue failed: polling on");
                found = true;
                break;
            }
            let n = self.devs[d].res.poll(wcs);
            for wc in &wcs[..n] {
                self.on_completion(d, wc);
            }
            found |= n > 0;
        }
        if !found {
            let mut events = [EpollEvent::empty(); 4];
            let timeout = EpollTimeout::try_from(MAX_SLEEP).unwrap_or(EpollTimeout::NONE);
            if let Err(e) = self.epoll.wait(&mut events, timeout) {
                if e != nix::errno::Errno::EINTR {
                    warn!(reactor = self.id, error = %e, "epoll_wait failed");
                }
            }
        }
        self.bell.sleeping.store(false, Ordering::SeqCst);
        // Both are non-blocking: take whatever woke us (or nothing).
        let _ = self.bell.efd.read();
        for d in &self.devs {
            d.res.take_notifications();
        }
        found
    }

    fn take_messages(&mut self) {
        while let Ok(msg) = self.rx.try_recv() {
            match msg {
                Msg::NewQueue(nq) => {
                    let NewQueue {
                        id,
                        dev_res,
                        budget_used,
                        qp_num,
                        queue,
                        sq_entries,
                        accept,
                        responder_resources,
                        initiator_depth,
                    } = *nq;
                    let d = self.dev_index(dev_res, budget_used);
                    let slot = self.free_queue_slots.pop().unwrap_or_else(|| {
                        self.queues.push(None);
                        self.queues.len() - 1
                    });
                    self.next_gen = self.next_gen.wrapping_add(1);
                    let key = id.key();
                    let entries = sq_entries as usize;
                    let sends = super::server::send_depth(sq_entries) as usize;
                    let mut q = Queue {
                        id,
                        dev: d,
                        gen: self.next_gen,
                        queue,
                        sq_entries,
                        pending: FuturesUnordered::new(),
                        teardown: None,
                        fetches: HashMap::with_capacity(entries),
                        // SENDs in flight are bounded by the send queue, not the commands.
                        sends: Vec::with_capacity(sends),
                        free_sends: Vec::with_capacity(sends),
                        stalled: None,
                        closing: false,
                        commands_counted: 0,
                    };
                    q.queue.reserve(entries);
                    if let Err(e) = q.id.accept(&accept, responder_resources, initiator_depth) {
                        debug!(error = %e, "accepting the RDMA connection failed");
                        self.devs[d]
                            .budget_used
                            .fetch_sub(sq_entries, Ordering::Relaxed);
                        self.load.fetch_sub(1, Ordering::Relaxed);
                        self.free_queue_slots.push(slot);
                        continue;
                    }
                    self.by_qp.insert(qp_num, slot);
                    self.by_key.insert(key, slot);
                    self.queues[slot] = Some(q);
                }
                Msg::Disconnected { key } => {
                    if let Some(slot) = self.by_key.get(&key).copied() {
                        self.drop_queue(slot, "disconnected");
                    }
                }
            }
        }
    }

    fn dev_index(&mut self, res: Arc<DeviceRes>, budget_used: Arc<AtomicU32>) -> usize {
        if let Some(i) = self.devs.iter().position(|d| Arc::ptr_eq(&d.res, &res)) {
            return i;
        }
        let slots = res.config.data_slots;
        self.capsule.resize(res.config.recv_len as usize, 0);
        self.staging.resize(res.config.slot_len as usize, 0);
        self.pools.push(RegPool::new(res.clone()));
        let event = EpollEvent::new(EpollFlags::EPOLLIN, self.devs.len() as u64);
        if let Err(e) = self.epoll.add(res.notify_fd(), event) {
            // Without it the reactor still wakes at least every MAX_SLEEP.
            warn!(reactor = self.id, error = %e, "cannot watch the completion channel");
        }
        self.devs.push(Dev { res, budget_used });
        self.free_slots.push((0..slots).rev().collect());
        self.devs.len() - 1
    }

    /// Poll every pending command and teardown watch (after a wake-up).
    fn poll_futures(&mut self) {
        let waker = self.waker.clone();
        let mut cx = Context::from_waker(&waker);
        for slot in 0..self.queues.len() {
            let Some(q) = self.queues[slot].as_mut() else {
                continue;
            };
            if q.teardown.is_none() {
                if let Some(token) = q.queue.teardown_token() {
                    q.teardown = Some(Box::pin(token.cancelled_owned()));
                }
            }
            let torn_down = q
                .teardown
                .as_mut()
                .is_some_and(|t| t.as_mut().poll(&mut cx).is_ready());
            if torn_down && !q.closing {
                debug!("controller torn down: disconnecting its RDMA queue");
                q.closing = true;
                q.id.disconnect();
            }
            while let Poll::Ready(Some((cid, tag, r))) = q.pending.poll_next_unpin(&mut cx) {
                q.queue.complete(cid, tag, r, &mut self.pools[q.dev]);
            }
        }
    }

    fn on_completion(&mut self, d: usize, wc: &Completion) {
        if wc.is_recv {
            self.on_capsule(d, wc);
            return;
        }
        let (slot, gen, kind, index) = parse_wr_id(wc.wr_id);
        let Some(Some(q)) = self.queues.get_mut(slot) else {
            return;
        };
        if q.gen != gen {
            return;
        }
        let res = &self.devs[q.dev].res;
        let pool = &mut self.pools[q.dev];
        match kind {
            KIND_READ => {
                let cid = index as u16;
                let Some(fetching) = q.fetches.remove(&cid) else {
                    return;
                };
                let ok = match fetching {
                    Fetching::Slots(slots) => {
                        let copied = wc.ok
                            && q.queue.fetch_buf(cid).is_some_and(|buf| {
                                res.copy_from_slots(slots.as_slice(), buf.as_mut_slice())
                            });
                        self.free_slots[q.dev].extend_from_slice(slots.as_slice());
                        copied
                    }
                    Fetching::Direct { len, .. } => {
                        if wc.ok {
                            self.counters.add_zero_copy_received(u64::from(len));
                        }
                        wc.ok
                    }
                };
                if !wc.ok {
                    debug!(status = wc.status, "RDMA READ failed");
                }
                q.queue.fetched(cid, ok, pool);
            }
            KIND_SEND => {
                if let Some(Some(held)) = q.sends.get_mut(index as usize).map(Option::take) {
                    self.free_slots[q.dev].extend_from_slice(held.slots.as_slice());
                    if let Some(b) = held.buf {
                        pool.give(b);
                    }
                    q.free_sends.push(index);
                }
                if !wc.ok {
                    debug!(status = wc.status, "RDMA SEND failed");
                }
            }
            _ => {}
        }
    }

    fn on_capsule(&mut self, d: usize, wc: &Completion) {
        let index = wc.wr_id as u32;
        let res = &self.devs[d].res;
        let n = if wc.ok {
            res.copy_received(index, wc.byte_len, &mut self.capsule)
        } else {
            0
        };
        if let Err(e) = res.post_recv(index) {
            debug!(error = %e, "reposting a receive buffer failed");
        }
        if !wc.ok {
            return;
        }
        let Some(slot) = self.by_qp.get(&wc.qp_num).copied() else {
            return;
        };
        let Some(q) = self.queues[slot].as_mut() else {
            return;
        };
        if q.closing {
            return;
        }
        if q.queue
            .capsule(&self.capsule[..n], &mut self.pools[d])
            .is_err()
        {
            // NVMe/RDMA 1.0 §3.3: not a command capsule; the transport connection goes.
            debug!(len = n, "malformed capsule: disconnecting");
            q.closing = true;
            q.id.disconnect();
        }
        let received = q.queue.commands_received();
        self.counters
            .add_commands(received.wrapping_sub(q.commands_counted));
        q.commands_counted = received;
    }

    /// Poll the handlers' queued commands and post every queue's work; true if anything
    /// moved.
    fn service_queues(&mut self) -> bool {
        let mut worked = false;
        for slot in 0..self.queues.len() {
            let closing = match self.queues[slot].as_mut() {
                Some(q) => {
                    let pool = &mut self.pools[q.dev];
                    if q.queue.poll_queued(pool) > 0 {
                        worked = true;
                    }
                    // Whatever produced them (a capsule, a finished RDMA READ, a response):
                    // commands that complete later join the poll set in this turn.
                    take_events(q, &self.waker, pool);
                    q.closing
                }
                None => continue,
            };
            if closing {
                self.drop_queue(slot, "disconnected by the target");
                worked = true;
                continue;
            }
            let Some(q) = self.queues[slot].as_mut() else {
                continue;
            };
            loop {
                let Some(work) = q.stalled.take().or_else(|| q.queue.next_work()) else {
                    break;
                };
                worked = true;
                let mut cx = Ctx {
                    res: &self.devs[q.dev].res,
                    free: &mut self.free_slots[q.dev],
                    pool: &mut self.pools[q.dev],
                    staging: &mut self.staging,
                    counters: &self.counters,
                };
                match post::post(q, slot, &mut cx, work) {
                    Posted::Done => {}
                    Posted::NoSlots(work) => {
                        q.stalled = Some(work);
                        break;
                    }
                    Posted::Failed => {
                        q.closing = true;
                        q.id.disconnect();
                        break;
                    }
                }
            }
        }
        worked
    }

    fn drop_queue(&mut self, slot: usize, why: &str) {
        let Some(q) = self.queues.get_mut(slot).and_then(Option::take) else {
            return;
        };
        debug!(reactor = self.id, why, "closing RDMA queue");
        self.by_key.retain(|_, s| *s != slot);
        self.by_qp.retain(|_, s| *s != slot);
        let dev = q.dev;
        let entries = q.sq_entries;
        // Destroying the queue pair first ends the NIC's use of the queue's slots and
        // buffers; then its commands go, and their buffers with them.
        let Queue {
            id,
            mut queue,
            fetches,
            sends,
            ..
        } = q;
        drop(id);
        queue.close();
        drop(queue);
        for f in fetches.into_values() {
            if let Fetching::Slots(s) = f {
                self.free_slots[dev].extend_from_slice(s.as_slice());
            }
        }
        for held in sends.into_iter().flatten() {
            self.free_slots[dev].extend_from_slice(held.slots.as_slice());
            if let Some(b) = held.buf {
                self.pools[dev].give(b);
            }
        }
        self.devs[dev]
            .budget_used
            .fetch_sub(entries, Ordering::Relaxed);
        self.free_queue_slots.push(slot);
        self.load.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Take a queue's events: commands that complete later join its poll set (and are polled
/// once, which registers the waker), Close starts the disconnect; and watch its controller's
/// teardown once the queue is connected.
fn take_events(q: &mut Queue, waker: &Waker, pool: &mut RegPool) {
    let mut cx = Context::from_waker(waker);
    while let Some(ev) = q.queue.poll_event() {
        match ev {
            Event::Pending { cid, tag, response } => {
                q.pending.push(PendingCommand { cid, tag, response });
                while let Poll::Ready(Some((cid, tag, r))) = q.pending.poll_next_unpin(&mut cx) {
                    q.queue.complete(cid, tag, r, pool);
                }
            }
            Event::Close => {
                q.closing = true;
                q.id.disconnect();
            }
        }
    }
    if q.teardown.is_none() {
        if let Some(token) = q.queue.teardown_token() {
            let mut fut = Box::pin(token.cancelled_owned());
            if fut.as_mut().poll(&mut cx).is_ready() && !q.closing {
                q.closing = true;
                q.id.disconnect();
            }
            q.teardown = Some(fut);
        }
    }
}
