//! Time for a polled driver: a monotonic clock and a way to wait between polls, behind a trait
//! so tests run on a fake clock that only moves when the driver waits, and never sleep.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A monotonic clock the driver measures deadlines with.
pub trait Clock: Send + Sync {
    /// Time since an arbitrary fixed origin; never decreases.
    fn now(&self) -> Duration;
    /// Called between polls that found nothing to do.
    fn pause(&self);
}

/// Wall time from [`Instant`]; pausing is a CPU spin-loop hint (the driver polls, it never
/// sleeps).
#[derive(Debug)]
pub struct SystemClock {
    origin: Instant,
}

impl SystemClock {
    pub fn new() -> SystemClock {
        SystemClock {
            origin: Instant::now(),
        }
    }
}

impl Default for SystemClock {
    fn default() -> Self {
        SystemClock::new()
    }
}

impl Clock for SystemClock {
    fn now(&self) -> Duration {
        self.origin.elapsed()
    }

    fn pause(&self) {
        std::hint::spin_loop();
    }
}

/// A deterministic clock: it starts at zero and advances by a fixed step on every
/// [`Clock::pause`] (and by [`FakeClock::advance`]), so a timeout of `t` expires after
/// `t / step` idle polls.
#[derive(Debug)]
pub struct FakeClock {
    nanos: AtomicU64,
    step: u64,
}

impl FakeClock {
    pub fn new(step: Duration) -> FakeClock {
        FakeClock {
            nanos: AtomicU64::new(0),
            step: step.as_nanos() as u64,
        }
    }

    pub fn advance(&self, by: Duration) {
        self.nanos
            .fetch_add(by.as_nanos() as u64, Ordering::Relaxed);
    }

    /// Number of pauses so far if only pauses moved the clock.
    pub fn pauses(&self) -> u64 {
        self.nanos.load(Ordering::Relaxed) / self.step.max(1)
    }
}

impl Clock for FakeClock {
    fn now(&self) -> Duration {
        Duration::from_nanos(self.nanos.load(Ordering::Relaxed))
    }

    fn pause(&self) {
        self.nanos.fetch_add(self.step, Ordering::Relaxed);
    }
}

impl<C: Clock + ?Sized> Clock for Arc<C> {
    fn now(&self) -> Duration {
        (**self).now()
    }

    fn pause(&self) {
        (**self).pause()
    }
}

/// Poll `done` until it returns `Some`, pausing in between, or give up with `None` once
/// `timeout` has passed since the first call.
pub fn poll_until<T>(
    clock: &dyn Clock,
    timeout: Duration,
    mut done: impl FnMut() -> Option<T>,
) -> Option<T> {
    let deadline = clock.now() + timeout;
    loop {
        if let Some(v) = done() {
            return Some(v);
        }
        if clock.now() >= deadline {
            return None;
        }
        clock.pause();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fake_clock_moves_only_when_paused_or_advanced() {
        let c = FakeClock::new(Duration::from_millis(2));
        assert_eq!(c.now(), Duration::ZERO);
        c.pause();
        c.pause();
        assert_eq!(c.now(), Duration::from_millis(4));
        c.advance(Duration::from_secs(1));
        assert_eq!(c.now(), Duration::from_millis(1004));
        assert_eq!(c.pauses(), 502);
    }

    #[test]
    fn poll_until_times_out_after_the_timeout_of_pauses() {
        let c = FakeClock::new(Duration::from_millis(1));
        let mut calls = 0;
        let got: Option<()> = poll_until(&c, Duration::from_millis(10), || {
            calls += 1;
            None
        });
        assert_eq!(got, None);
        assert_eq!(calls, 11);
        assert_eq!(c.now(), Duration::from_millis(10));
        let mut n = 0;
        assert_eq!(
            poll_until(&c, Duration::from_secs(1), || {
                n += 1;
                (n == 3).then_some(n)
            }),
            Some(3)
        );
    }

    #[test]
    fn system_clock_is_monotonic() {
        let c = SystemClock::new();
        let a = c.now();
        c.pause();
        assert!(c.now() >= a);
    }
}
