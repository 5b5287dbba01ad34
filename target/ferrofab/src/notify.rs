//! systemd service notifications (sd_notify(3)) for `ferrofab serve` run as a `Type=notify`
//! unit (the appliance image's ferrofab.service): `READY=1` once the listeners and the
//! management API serve, `WATCHDOG=1` only while every reactor keeps polling, `STOPPING=1`
//! at shutdown. Outside systemd (no `NOTIFY_SOCKET`) each is a no-op.

use std::time::Duration;

use sd_notify::NotifyState;

/// The daemon serves: tell the service manager (readiness of `Type=notify`).
pub fn ready(status: &str) {
    send(&[NotifyState::Ready, NotifyState::Status(status)]);
}

/// The daemon is shutting down.
pub fn stopping() {
    send(&[NotifyState::Stopping]);
}

fn send(states: &[NotifyState]) {
    if let Err(e) = sd_notify::notify(false, states) {
        tracing::warn!(error = %e, "cannot notify the service manager");
    }
}

/// The service manager's watchdog (`WatchdogSec=`), fed from the serve loop: each check
/// pings it only when every reactor's poll count moved since the last check, so a wedged
/// reactor (stuck inside one poll) lets the watchdog fire and systemd restart the daemon.
pub struct Watchdog {
    interval: Duration,
    last: Vec<u64>,
}

/// Reactors whose poll count did not move between two checks.
#[derive(Debug, PartialEq, Eq)]
pub struct Stalled(pub Vec<usize>);

impl Watchdog {
    /// The watchdog systemd set up for this process (`WATCHDOG_USEC`, `WATCHDOG_PID`), if any;
    /// checks run at half its timeout.
    pub fn from_env() -> Option<Watchdog> {
        let mut usec = 0;
        if !sd_notify::watchdog_enabled(false, &mut usec) || usec == 0 {
            return None;
        }
        Some(Watchdog::new(Duration::from_micros(usec) / 2))
    }

    fn new(interval: Duration) -> Watchdog {
        Watchdog {
            interval,
            last: Vec::new(),
        }
    }

    /// How often to call [`Watchdog::check`].
    pub fn interval(&self) -> Duration {
        self.interval
    }

    /// Compare each reactor's poll count with the last check's; ping the service manager
    /// when all moved (or on the first check), else name the stalled ones.
    pub fn check(&mut self, polls: Vec<u64>) -> Result<(), Stalled> {
        let verdict = self.judge(polls);
        if verdict.is_ok() {
            send(&[NotifyState::Watchdog]);
        }
        verdict
    }

    fn judge(&mut self, polls: Vec<u64>) -> Result<(), Stalled> {
        let stalled: Vec<usize> = if self.last.len() == polls.len() {
            polls
                .iter()
                .zip(&self.last)
                .enumerate()
                .filter(|(_, (now, before))| now == before)
                .map(|(i, _)| i)
                .collect()
        } else {
            Vec::new()
        };
        self.last = polls;
        if stalled.is_empty() {
            Ok(())
        } else {
            Err(Stalled(stalled))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_watchdog_is_fed_only_while_every_reactor_polls() {
        let mut w = Watchdog::new(Duration::from_secs(15));
        assert_eq!(w.interval(), Duration::from_secs(15));
        // The first check has nothing to compare with.
        assert_eq!(w.judge(vec![10, 20]), Ok(()));
        assert_eq!(w.judge(vec![11, 25]), Ok(()));
        // Reactor 1 did not poll since the last check.
        assert_eq!(w.judge(vec![12, 25]), Err(Stalled(vec![1])));
        assert_eq!(w.judge(vec![12, 25]), Err(Stalled(vec![0, 1])));
        // Moving again feeds it again.
        assert_eq!(w.judge(vec![13, 26]), Ok(()));
        // A different reactor set (none yet, or RDMA reactors started) starts over.
        assert_eq!(w.judge(vec![13, 26, 0]), Ok(()));
        assert_eq!(w.judge(vec![]), Ok(()));
        assert_eq!(w.judge(vec![]), Ok(()));
    }
}
