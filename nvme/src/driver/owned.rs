//! Polled commands on a queue pair the calling thread owns.
//!
//! A thread's first polled command on a driver takes one of the driver's pairs to be owned and
//! keeps it in the thread's local storage; from then on its polled commands start, complete
//! and time out on that pair without a lock (a `RefCell` borrow of the thread's own list), and
//! the SQ doorbell is rung once per reap for every command started since. A
//! thread that finds none left (more polling threads than pairs) uses its shared pair, under
//! that pair's mutex. SPDK's qpairs work the same way: allocated for a thread, used by it alone.
//!
//! Nobody else touches an owned pair, so the driver's other paths reach it through state the
//! owner reads on every use (two atomic loads):
//! - a controller reset bumps the driver's epoch: the owner fails the commands the reset lost
//!   with `Timeout` and creates its queues again on the controller;
//! - while a reset or shutdown runs (`RESETTING`) the owner neither starts nor reaps;
//! - once the driver is gone the owner fails its commands with `Gone` and refuses new ones.
//!   The owner frees its commands' DMA buffers only then, after the controller was disabled.
//!
//! The pair goes back to the driver when its thread ends, and is dropped with the driver by the
//! next polled command of the thread after the driver is gone.

use ferrofab_sync::CountedLock as _;
use std::any::Any;
use std::cell::RefCell;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};

use super::dma::DmaRegion;
use super::io::{self, IoQueue, Owner, Refusal, Source, SubmitError};
use super::nvme_driver::{NvmeDriver, GONE, RUNNING};
use super::pool::DmaBuf;
use crate::backend::{BackendError, Polled, Refused};

thread_local! {
    /// This thread's pairs, one per driver it polled (or a note that it found none to own).
    static OWNED: RefCell<Vec<Box<dyn Held>>> = const { RefCell::new(Vec::new()) };
}

/// A thread's entry for one driver, whatever the driver's DMA memory type.
trait Held {
    fn driver_id(&self) -> u64;
    fn alive(&self) -> bool;
    fn as_any(&mut self) -> &mut dyn Any;
}

/// The pair a thread owns on one driver.
struct OwnedPair<M: DmaRegion + Send + Sync + 'static> {
    driver: Weak<NvmeDriver<M>>,
    id: u64,
    /// The driver's DMA pool ([`super::pool::PagePool::id`]), for lent buffers coming back.
    pool_id: usize,
    /// `None`: the driver had no pair left for this thread.
    pair: Option<(IoQueue<M>, u64)>,
}

impl<M: DmaRegion + Send + Sync + 'static> Held for OwnedPair<M> {
    fn driver_id(&self) -> u64 {
        self.id
    }

    fn alive(&self) -> bool {
        self.driver.strong_count() > 0
    }

    fn as_any(&mut self) -> &mut dyn Any {
        self
    }
}

impl<M: DmaRegion + Send + Sync + 'static> Drop for OwnedPair<M> {
    fn drop(&mut self) {
        if let (Some(driver), Some((q, epoch))) = (self.driver.upgrade(), self.pair.take()) {
            driver.give_back(q, epoch);
        }
    }
}

/// Whether an owned pair may be used now.
enum Ready {
    Run,
    /// A reset or shutdown is under way.
    Wait,
    Gone(String),
}

/// Run `f` with the calling thread's owned pair on `driver` (`None`: it has none), taking one
/// on the thread's first call.
fn with_owned<M, R>(
    driver: &Arc<NvmeDriver<M>>,
    f: impl FnOnce(Option<&mut (IoQueue<M>, u64)>) -> R,
) -> R
where
    M: DmaRegion + Send + Sync + 'static,
{
    OWNED.with(|cell| {
        let Ok(mut held) = cell.try_borrow_mut() else {
            return f(None);
        };
        held.retain(|h| h.alive());
        let i = match held.iter().position(|h| h.driver_id() == driver.id) {
            Some(i) => i,
            None => {
                held.push(Box::new(OwnedPair {
                    driver: Arc::downgrade(driver),
                    id: driver.id,
                    pool_id: driver.pool.id(),
                    pair: driver.take_unowned(),
                }));
                held.len() - 1
            }
        };
        let pair = held[i]
            .as_any()
            .downcast_mut::<OwnedPair<M>>()
            .and_then(|p| p.pair.as_mut());
        f(pair)
    })
}

/// Keep `buf` (a lent buffer given back) for this thread's owned pair on its pool; without
/// one (another thread, the pair gone) it goes back to the pool.
pub(super) fn keep_spare<M: DmaRegion + Send + Sync + 'static>(buf: DmaBuf<M>) {
    let mut buf = Some(buf);
    let _ = OWNED.try_with(|cell| {
        let Ok(mut held) = cell.try_borrow_mut() else {
            return;
        };
        for h in held.iter_mut() {
            let Some(owned) = h.as_any().downcast_mut::<OwnedPair<M>>() else {
                continue;
            };
            match (owned.pair.as_mut(), buf.take()) {
                (Some(pair), Some(b)) if owned.pool_id == b.pool_id() => {
                    pair.0.keep(b);
                    return;
                }
                (_, b) => buf = b,
            }
        }
    });
}

/// What a polled command moves.
pub(super) enum PolledData<'a, M> {
    /// A write's bytes, copied into a bounce buffer.
    Copy(&'a [u8]),
    /// A read into the caller's buffer.
    Into(Vec<u8>),
    /// A read of this many bytes whose data the completion lends.
    Lend(usize),
    /// A write of the first bytes of a buffer the caller filled.
    Filled(DmaBuf<M>, usize),
}

/// A polled command not started: why, and the caller's buffer back.
pub(super) type NotStarted<M> = (Refused, Option<Vec<u8>>, Option<DmaBuf<M>>);

impl<M: DmaRegion + Send + Sync + 'static> NvmeDriver<M> {
    /// A buffer of `len` bytes for a write's data ([`PolledData::Filled`]): from this thread's
    /// owned pair's spares, else from the pool.
    pub(super) fn lend_buffer(self: &Arc<Self>, len: usize) -> Option<DmaBuf<M>> {
        with_owned(self, |pair| match pair {
            Some(pair) => pair.0.lend_buffer(&self.pool, len),
            None => self.pool.alloc_unzeroed(len).ok(),
        })
    }

    /// Bring an owned pair up to date with the driver's state.
    fn ready(&self, pair: &mut (IoQueue<M>, u64)) -> Ready {
        match self.state.load(Ordering::Acquire) {
            RUNNING => {}
            GONE => {
                let reason = self.gone_reason();
                if pair.0.outstanding() > 0 {
                    pair.0.fail_all(&|| BackendError::Gone(reason.clone()));
                }
                return Ready::Gone(reason);
            }
            _ => return Ready::Wait,
        }
        let epoch = self.epoch.load(Ordering::Acquire);
        if pair.1 == epoch {
            return Ready::Run;
        }
        self.recreate(pair, epoch)
    }

    /// The controller was reset since `pair`'s queues were created (NVMe Base 2.0 §3.7.2: a
    /// reset deletes every I/O queue): its commands are lost; create its queues again.
    fn recreate(&self, pair: &mut (IoQueue<M>, u64), epoch: u64) -> Ready {
        if pair.0.outstanding() > 0 {
            pair.0.fail_all(&|| BackendError::Timeout);
        }
        let qid = pair.0.qid();
        let mut admin = self.admin.lock_counted();
        if self.state.load(Ordering::Acquire) != RUNNING
            || self.epoch.load(Ordering::Acquire) != epoch
        {
            return Ready::Wait;
        }
        let fresh = self.new_queue(qid).and_then(|q| {
            q.create(&*self.mmio, &*self.clock, &mut admin, self.opts.timeout)?;
            Ok(q)
        });
        drop(admin);
        match fresh {
            Ok(mut q) => {
                pair.0.hand_over_finished(&mut q);
                *pair = (q, epoch);
                self.created(qid, epoch);
                Ready::Run
            }
            Err(e) => {
                self.go_gone(format!("I/O queue {qid} not recreated after a reset: {e}"));
                Ready::Gone(self.gone_reason())
            }
        }
    }

    /// Start one command of the polled interface on this thread's owned pair, or else on its
    /// shared one.
    pub(super) fn start_polled(
        self: &Arc<Self>,
        sqe: crate::Sqe,
        data: PolledData<'_, M>,
        token: u64,
    ) -> Result<(), NotStarted<M>> {
        let back = |why, data: PolledData<'_, M>| match data {
            PolledData::Into(b) => (why, Some(b), None),
            PolledData::Filled(b, _) => (why, None, Some(b)),
            _ => (why, None, None),
        };
        with_owned(self, move |pair| match pair {
            Some(pair) => match self.ready(pair) {
                // The doorbell waits for the owner's next reap: one MMIO write for every
                // command a reactor turn starts (SPDK's delayed submission does the same).
                Ready::Run => self.start_on(&mut pair.0, sqe, data, token, false),
                Ready::Wait => Err(back(Refused::Busy, data)),
                Ready::Gone(why) => Err(back(Refused::Failed(BackendError::Gone(why)), data)),
            },
            None => {
                if self.state.load(Ordering::Acquire) == GONE {
                    let why = BackendError::Gone(self.gone_reason());
                    return Err(back(Refused::Failed(why), data));
                }
                let mut q = self.lane(self.queue_index());
                if self.state.load(Ordering::Acquire) != RUNNING {
                    return Err(back(Refused::Busy, data));
                }
                self.start_on(&mut q, sqe, data, token, true)
            }
        })
    }

    /// Write the command to `q`'s SQ; with `ring`, ring its doorbell now.
    fn start_on(
        &self,
        q: &mut IoQueue<M>,
        sqe: crate::Sqe,
        data: PolledData<'_, M>,
        token: u64,
        ring: bool,
    ) -> Result<(), NotStarted<M>> {
        let map = io::Mapping {
            sgl: self.info.sgl,
            max_transfer: self.info.max_transfer,
            deadline: self.clock.now() + self.opts.timeout,
        };
        let (source, owner) = match data {
            PolledData::Copy(bytes) => (Source::Out(bytes), Owner::Token { token, buf: None }),
            PolledData::Into(buf) => {
                let len = buf.len();
                let owner = Owner::Token {
                    token,
                    buf: Some(buf),
                };
                (Source::In { off: 0, len }, owner)
            }
            PolledData::Lend(len) => (Source::In { off: 0, len }, Owner::Lend { token }),
            PolledData::Filled(buf, len) => {
                (Source::Filled(buf, len), Owner::Token { token, buf: None })
            }
        };
        let busy = q.outstanding() > 0;
        match q.submit_owned(&self.pool, sqe, source, owner, &map) {
            Ok(()) => {
                if ring {
                    q.ring(&*self.mmio);
                }
                Ok(())
            }
            Err(Refusal {
                error,
                owner,
                filled,
            }) => {
                let buf = match owner {
                    Owner::Token { buf, .. } => buf,
                    _ => None,
                };
                let why = match error {
                    SubmitError::Busy if busy => Refused::Busy,
                    SubmitError::Busy => Refused::Failed(BackendError::Io(std::io::Error::other(
                        "DMA pool has no room for the transfer",
                    ))),
                    SubmitError::Failed(e) => Refused::Failed(e),
                };
                Err((why, buf, filled))
            }
        }
    }

    /// Reap this thread's pair and hand `owner`'s finished polled commands to `done`.
    pub(super) fn reap_owner(self: &Arc<Self>, owner: u32, done: &mut dyn FnMut(Polled)) -> usize {
        let now = self.clock.now();
        with_owned(self, |pair| match pair {
            Some(pair) => {
                if let Ready::Run = self.ready(pair) {
                    pair.0.ring(&*self.mmio);
                    pair.0.reap(&*self.mmio);
                }
                let n = pair.0.take_finished(owner, done);
                let expired = pair.0.expired(now, self.opts.timeout);
                self.act_on_expired(pair.0.qid(), expired);
                n
            }
            None => {
                let mut q = self.lane(self.queue_index());
                if self.state.load(Ordering::Acquire) == RUNNING {
                    q.reap(&*self.mmio);
                }
                let n = q.take_finished(owner, done);
                let expired = q.expired(now, self.opts.timeout);
                let qid = q.qid();
                drop(q);
                self.act_on_expired(qid, expired);
                n
            }
        })
    }

    /// Forget `owner` on this thread's owned pair and on every shared pair. Its commands on
    /// another thread's owned pair are not reached: a polled owner lives on one thread.
    pub(super) fn forget_owner(self: &Arc<Self>, owner: u32) {
        with_owned(self, |pair| {
            if let Some(pair) = pair {
                pair.0.forget(owner);
            }
        });
        for mut q in self.lanes() {
            q.forget(owner);
        }
    }
}
