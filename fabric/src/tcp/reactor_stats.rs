//! What each reactor did with its time: loop iterations that did work (busy) and those that
//! found none (idle), the time each took, and the commands its connections received. Each
//! reactor writes only its own counters (a load and a store, no read-modify-write); a
//! scrape reads them all.
//!
//! One clock read per loop iteration: an iteration runs from the end of the previous one to
//! its own end, so every nanosecond of the thread's life is busy or idle. Time asleep in
//! `epoll_wait` is idle.

use std::cell::Cell;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

thread_local! {
    /// The id of the reactor running on this thread.
    static CURRENT: Cell<Option<usize>> = const { Cell::new(None) };
}

/// The reactor the calling thread runs, if it is a reactor thread: lets per-core counters
/// elsewhere (namespaces) pick their shard without a lookup.
pub fn current_reactor() -> Option<usize> {
    CURRENT.with(|c| c.get())
}

pub(crate) fn set_current_reactor(id: usize) {
    CURRENT.with(|c| c.set(Some(id)));
}

/// One reactor's counters, on a cache line of their own.
#[derive(Debug, Default)]
#[repr(align(128))]
pub struct ReactorCounters {
    busy_ns: AtomicU64,
    idle_ns: AtomicU64,
    busy_polls: AtomicU64,
    idle_polls: AtomicU64,
    commands: AtomicU64,
    zero_copy_sent: AtomicU64,
    zero_copy_received: AtomicU64,
}

/// A reading of one reactor's counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ReactorSample {
    pub busy_ns: u64,
    pub idle_ns: u64,
    pub busy_polls: u64,
    pub idle_polls: u64,
    /// Commands (admin and I/O) its connections received.
    pub commands: u64,
    /// Data bytes its connections sent straight from a drive's DMA memory (C2H).
    pub zero_copy_sent: u64,
    /// Data bytes its connections received straight into a drive's DMA memory (H2C).
    pub zero_copy_received: u64,
}

fn bump(c: &AtomicU64, n: u64) {
    c.store(c.load(Ordering::Relaxed).wrapping_add(n), Ordering::Relaxed);
}

impl ReactorCounters {
    pub fn sample(&self) -> ReactorSample {
        ReactorSample {
            busy_ns: self.busy_ns.load(Ordering::Relaxed),
            idle_ns: self.idle_ns.load(Ordering::Relaxed),
            busy_polls: self.busy_polls.load(Ordering::Relaxed),
            idle_polls: self.idle_polls.load(Ordering::Relaxed),
            commands: self.commands.load(Ordering::Relaxed),
            zero_copy_sent: self.zero_copy_sent.load(Ordering::Relaxed),
            zero_copy_received: self.zero_copy_received.load(Ordering::Relaxed),
        }
    }

    /// Count `n` data bytes sent from DMA memory (the owning reactor only).
    pub(crate) fn add_zero_copy_sent(&self, n: u64) {
        if n != 0 {
            bump(&self.zero_copy_sent, n);
        }
    }

    /// Count `n` data bytes received into DMA memory (the owning reactor only).
    pub(crate) fn add_zero_copy_received(&self, n: u64) {
        if n != 0 {
            bump(&self.zero_copy_received, n);
        }
    }

    /// Count `n` commands received (the owning reactor only).
    pub(crate) fn add_commands(&self, n: u64) {
        if n != 0 {
            bump(&self.commands, n);
        }
    }
}

/// The owning reactor's clock: call [`LoopClock::end_iteration`] once per loop iteration.
pub(crate) struct LoopClock {
    last: Instant,
}

impl LoopClock {
    pub(crate) fn start() -> LoopClock {
        LoopClock {
            last: Instant::now(),
        }
    }

    /// Account the iteration that ends now as busy or idle; returns the time read.
    pub(crate) fn end_iteration(&mut self, counters: &ReactorCounters, busy: bool) -> Instant {
        let now = Instant::now();
        let ns = now.saturating_duration_since(self.last).as_nanos() as u64;
        self.last = now;
        if busy {
            bump(&counters.busy_ns, ns);
            bump(&counters.busy_polls, 1);
        } else {
            bump(&counters.idle_ns, ns);
            bump(&counters.idle_polls, 1);
        }
        now
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iterations_are_accounted_busy_or_idle_and_time_adds_up() {
        let c = ReactorCounters::default();
        let t0 = Instant::now();
        let mut clock = LoopClock { last: t0 };
        clock.end_iteration(&c, true);
        std::thread::sleep(std::time::Duration::from_millis(5));
        let end = clock.end_iteration(&c, false);
        let s = c.sample();
        assert_eq!((s.busy_polls, s.idle_polls), (1, 1));
        assert!(s.idle_ns >= 5_000_000, "{s:?}");
        assert_eq!(
            s.busy_ns + s.idle_ns,
            end.duration_since(t0).as_nanos() as u64
        );
        c.add_commands(3);
        c.add_commands(0);
        assert_eq!(c.sample().commands, 3);
    }

    #[test]
    fn the_current_reactor_is_per_thread() {
        assert_eq!(current_reactor(), None);
        std::thread::spawn(|| {
            set_current_reactor(4);
            assert_eq!(current_reactor(), Some(4));
        })
        .join()
        .unwrap();
        assert_eq!(current_reactor(), None);
    }
}
