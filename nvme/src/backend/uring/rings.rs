//! Rings per thread and backend, so threads never contend on a submission queue.
//!
//! - A thread's *shared* ring ([`RingSet::local`]) carries its blocking calls and its futures'
//!   jobs. The backend owns these rings (a ring lives as long as its backend or the last future
//!   using it) behind a mutex each; a thread finds its own through a thread-local list keyed
//!   by backend id. A blocking call holds its ring while it waits in the kernel, so a future
//!   made on that thread but polled elsewhere waits for it. A thread's ring stays with the
//!   backend after the thread exits.
//! - A thread's *polled* ring ([`RingSet::with_polled`]) carries the polled interface's
//!   commands. Only that thread ever uses it, so it lives in the thread's local storage with no
//!   lock; it is dropped when the thread ends, or by the thread's next polled command after the
//!   backend is gone (waiting for what the kernel still holds).

use ferrofab_sync::CountedLock as _;
use std::cell::RefCell;
use std::io;
use std::os::fd::OwnedFd;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};

use super::polled::PolledRing;
use crate::sys::uring::PassthruRing;

pub type SharedRing = Arc<Mutex<PassthruRing>>;

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

thread_local! {
    /// This thread's shared rings.
    static LOCAL: RefCell<Vec<LocalRing>> = const { RefCell::new(Vec::new()) };
    /// This thread's polled rings.
    static POLLED: RefCell<Vec<OwnedRing>> = const { RefCell::new(Vec::new()) };
}

/// (backend id, whether the ring polls, the ring).
type LocalRing = (u64, bool, Weak<Mutex<PassthruRing>>);

/// A polled ring and whose it is.
struct OwnedRing {
    id: u64,
    /// Dead once the backend is.
    backend: Weak<()>,
    ring: PolledRing,
}

pub struct RingSet {
    id: u64,
    dev: Arc<OwnedFd>,
    depth: u32,
    iopoll: AtomicBool,
    rings: Mutex<Vec<SharedRing>>,
    /// Held for the polled rings to see whether the backend still lives.
    alive: Arc<()>,
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
            alive: Arc::new(()),
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

    /// The calling thread's shared ring, made on first use; found without taking the ring
    /// set's lock (every blocking call and job asks for it).
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
        let ring = Arc::new(Mutex::new(made));
        self.rings.lock_counted().push(ring.clone());
        LOCAL.with(|l| {
            let mut l = l.borrow_mut();
            l.retain(|(id, _, _)| *id != self.id);
            l.push((self.id, polls, Arc::downgrade(&ring)));
        });
        Ok(ring)
    }

    /// Run `f` with the calling thread's polled ring, made on its first use; no lock, as no
    /// other thread uses it. A ring made before the backend fell back to interrupts is kept
    /// while it has commands in flight.
    pub fn with_polled<R>(&self, f: impl FnOnce(&mut PolledRing) -> R) -> io::Result<R> {
        let iopoll = self.iopoll();
        POLLED.with(|cell| {
            let mut owned = cell
                .try_borrow_mut()
                .map_err(|_| io::Error::other("polled ring re-entered"))?;
            owned.retain(|o| o.backend.strong_count() > 0);
            let found = owned.iter().position(|o| o.id == self.id);
            let stale = found.is_some_and(|i| {
                let r = &owned[i].ring;
                r.iopoll() != iopoll && r.is_idle()
            });
            let i = match found {
                Some(i) if !stale => i,
                _ => {
                    let made = PolledRing::new(self.standalone()?);
                    owned.retain(|o| o.id != self.id);
                    owned.push(OwnedRing {
                        id: self.id,
                        backend: Arc::downgrade(&self.alive),
                        ring: made,
                    });
                    owned.len() - 1
                }
            };
            Ok(f(&mut owned[i].ring))
        })
    }

    /// Run `f` with the calling thread's polled ring if it made one.
    pub fn if_polled(&self, f: impl FnOnce(&mut PolledRing)) {
        POLLED.with(|cell| {
            if let Ok(mut owned) = cell.try_borrow_mut() {
                if let Some(o) = owned.iter_mut().find(|o| o.id == self.id) {
                    f(&mut o.ring);
                }
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set() -> RingSet {
        // Ring bookkeeping needs no NVMe device: any file will do until a command is sent.
        let dev: OwnedFd = std::fs::File::open("/dev/zero").unwrap().into();
        RingSet::new(Arc::new(dev), 4, false)
    }

    /// Backend ids with a polled ring on this thread.
    fn polled_here() -> Vec<u64> {
        POLLED.with(|p| p.borrow().iter().map(|o| o.id).collect())
    }

    #[test]
    fn a_thread_makes_one_polled_ring_per_backend_and_others_do_not_see_it() {
        let (a, b) = (set(), set());
        let first = a.with_polled(|r| r as *const PolledRing as usize).unwrap();
        let again = a.with_polled(|r| r as *const PolledRing as usize).unwrap();
        assert_eq!(first, again, "the same ring on the second use");
        b.with_polled(|_| ()).unwrap();
        assert_eq!(polled_here(), vec![a.id, b.id]);
        std::thread::scope(|s| {
            s.spawn(|| {
                let mut seen = false;
                a.if_polled(|_| seen = true);
                assert!(!seen, "another thread has no ring until it polls");
                a.with_polled(|_| ()).unwrap();
                assert_eq!(polled_here(), vec![a.id]);
            });
        });
        assert_eq!(polled_here(), vec![a.id, b.id]);
    }

    #[test]
    fn a_gone_backends_polled_ring_goes_at_the_threads_next_polled_use() {
        let a = set();
        a.with_polled(|_| ()).unwrap();
        let gone = a.id;
        drop(a);
        assert_eq!(
            polled_here(),
            vec![gone],
            "kept until the thread polls again"
        );
        let b = set();
        b.if_polled(|_| panic!("b has no ring here yet"));
        b.with_polled(|_| ()).unwrap();
        assert_eq!(polled_here(), vec![b.id]);
    }
}
