//! One [`PassthruRing`] per thread and backend: a thread submits on its own ring, so threads
//! never contend on a submission queue. The backend owns the rings (a ring lives as long as
//! its backend or the last future using it); each thread finds its own through a
//! thread-local map keyed by backend id. A blocking call holds its ring while it waits in the
//! kernel, so a future made on that thread but polled elsewhere waits for it. A thread's ring
//! stays with the backend after the thread exits.

use std::cell::RefCell;
use std::io;
use std::os::fd::OwnedFd;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};

use super::polled::PolledRing;
use crate::sys::uring::PassthruRing;

pub type SharedRing = Arc<Mutex<PolledRing>>;

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

thread_local! {
    /// This thread's rings.
    static LOCAL: RefCell<Vec<LocalRing>> = const { RefCell::new(Vec::new()) };
}

/// (backend id, whether the ring polls, the ring).
type LocalRing = (u64, bool, Weak<Mutex<PolledRing>>);

pub struct RingSet {
    id: u64,
    dev: Arc<OwnedFd>,
    depth: u32,
    iopoll: AtomicBool,
    rings: Mutex<Vec<SharedRing>>,
}

pub fn lock(ring: &SharedRing) -> MutexGuard<'_, PolledRing> {
    ring.lock().unwrap_or_else(|p| p.into_inner())
}

/// Errors with which the kernel refuses polled completions for a ring or a command.
pub fn is_iopoll_refusal(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::EINVAL) | Some(libc::EOPNOTSUPP)
    )
}

impl RingSet {
    pub fn new(dev: Arc<OwnedFd>, depth: u32, iopoll: bool) -> RingSet {
        RingSet {
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            dev,
            depth,
            iopoll: AtomicBool::new(iopoll),
            rings: Mutex::new(Vec::new()),
        }
    }

    pub fn iopoll(&self) -> bool {
        self.iopoll.load(Ordering::Relaxed)
    }

    /// Switch to interrupt-driven completions for every ring made from now on; logs once.
    pub fn disable_iopoll(&self, why: &io::Error) {
        if self.iopoll.swap(false, Ordering::Relaxed) {
            tracing::info!(
                "io_uring passthrough: polled completions unavailable ({why}), using interrupts"
            );
        }
    }

    /// A ring that belongs to no thread (for probing).
    pub fn standalone(&self) -> io::Result<PassthruRing> {
        let want = self.iopoll();
        match PassthruRing::new(self.dev.clone(), self.depth, want) {
            Err(e) if want && is_iopoll_refusal(&e) => {
                self.disable_iopoll(&e);
                PassthruRing::new(self.dev.clone(), self.depth, false)
            }
            other => other,
        }
    }

    /// Every ring made so far (one per thread that used the backend).
    pub fn all(&self) -> Vec<SharedRing> {
        self.rings.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// The calling thread's ring, made on first use; found without taking its lock (every
    /// polled command asks for it).
    pub fn local(&self) -> io::Result<SharedRing> {
        let iopoll = self.iopoll();
        let found = LOCAL.with(|l| {
            let mut l = l.borrow_mut();
            l.retain(|(_, _, w)| w.strong_count() > 0);
            l.iter()
                .filter(|(id, polls, _)| *id == self.id && *polls == iopoll)
                .find_map(|(_, _, w)| w.upgrade())
        });
        if let Some(r) = found {
            return Ok(r);
        }
        let made = self.standalone()?;
        let polls = made.iopoll();
        let ring = Arc::new(Mutex::new(PolledRing::new(made)));
        self.rings
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(ring.clone());
        LOCAL.with(|l| {
            let mut l = l.borrow_mut();
            l.retain(|(id, _, _)| *id != self.id);
            l.push((self.id, polls, Arc::downgrade(&ring)));
        });
        Ok(ring)
    }
}
