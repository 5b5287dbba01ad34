//! The Keep Alive Timer of one controller (NVMe Base 2.0 §3.9), as a sans-IO core: the
//! controller's timer task feeds it the time and the I/O command count and gets back when to
//! look again, or that the timer expired.
//!
//! # Expiry rule
//!
//! The timer restarts on every Keep Alive command, on a KATO set by Connect or Set Features
//! (FID 0Fh), and (Traffic Based Keep Alive, advertised in Identify Controller CTRATT bit 6)
//! on every other admin command and every I/O command. It **expires when nothing has
//! restarted it for KATO + one granularity** ([`GRANULARITY`], 100 ms, reported as KAS = 1).
//! KATO 0 disables it.
//!
//! Admin commands restart it at the instant they are submitted. I/O commands are not timed
//! (the I/O path takes no lock and reads no clock): each queue counts its commands, and the
//! timer task, which looks at least once per granularity, restarts the timer when the sum
//! moved since its last look. So:
//! - a host whose commands (Keep Alive or any other) are less than KATO + 100 ms apart is
//!   never torn down: one sending Keep Alive every KATO + 1 ms, or only I/O, stays connected;
//! - a host that goes silent is torn down no earlier than KATO + 100 ms and no later than
//!   KATO + 200 ms ([`teardown_bound`]) after its last command, plus scheduling delay.
//!
//! Why the grace: §3.9 asks the host to send Keep Alive early enough to cover round trips,
//! command processing and the timer's granularity, and a host that polls at exactly KATO
//! cannot. A controller whose timer only resolves KAS units cannot tell a gap of KATO from
//! one of KATO + KAS either, so it allows one unit. With Traffic Based Keep Alive the
//! specification lets detection take up to two KATO intervals (a command just after one
//! check counts for the next); the rule here detects sooner for any KATO of 200 ms or more.

use std::time::Duration;

use tokio::time::Instant;

/// Identify Controller KAS: the Keep Alive Timer's granularity in 100 ms units.
pub const KAS: u16 = 1;

/// The timer's granularity: its grace past KATO and the longest gap between its looks.
pub const GRANULARITY: Duration = Duration::from_millis(100 * KAS as u64);

/// Latest teardown after the last command for a KATO in milliseconds (scheduling aside).
pub fn teardown_bound(kato_ms: u32) -> Duration {
    Duration::from_millis(u64::from(kato_ms)) + 2 * GRANULARITY
}

/// What the timer task does next.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// KATO is 0: wait for it to change.
    Disabled,
    /// Look again at `next_check` (at most one granularity away).
    Alive { next_check: Instant },
    /// Nothing restarted the timer for `idle` (at least KATO + one granularity).
    Expired { idle: Duration },
}

#[derive(Debug)]
pub struct KeepAliveTimer {
    last_restart: Instant,
    io_seen: u64,
}

impl KeepAliveTimer {
    /// A timer started at `now` (the admin Connect, NVMe-oF 1.1 §3.3 KATO).
    pub fn new(now: Instant) -> KeepAliveTimer {
        KeepAliveTimer {
            last_restart: now,
            io_seen: 0,
        }
    }

    /// A command restarted the timer at `at` (callers on other threads may race the timer
    /// task, so the latest restart wins).
    pub fn restart(&mut self, at: Instant) {
        self.last_restart = self.last_restart.max(at);
    }

    /// Look at the timer at `now`, given KATO and the controller's I/O command count (the sum
    /// over its queues; any change counts as traffic seen now).
    pub fn check(&mut self, now: Instant, kato_ms: u32, io_commands: u64) -> Verdict {
        // NVMe Base 2.0 §3.9 (Traffic Based Keep Alive): any I/O command restarts it.
        if io_commands != self.io_seen {
            self.io_seen = io_commands;
            self.restart(now);
        }
        if kato_ms == 0 {
            return Verdict::Disabled;
        }
        let deadline = self.last_restart + Duration::from_millis(u64::from(kato_ms)) + GRANULARITY;
        if now >= deadline {
            Verdict::Expired {
                idle: now - self.last_restart,
            }
        } else {
            Verdict::Alive {
                next_check: deadline.min(now + GRANULARITY),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KATO: u32 = 1000;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    /// A simulated host and the timer task's loop on a fake clock starting at `t0`.
    struct Sim {
        t0: Instant,
        timer: KeepAliveTimer,
        kato_ms: u32,
        io_commands: u64,
        now: Instant,
    }

    impl Sim {
        fn new() -> Sim {
            let t0 = Instant::now();
            Sim {
                t0,
                timer: KeepAliveTimer::new(t0),
                kato_ms: KATO,
                io_commands: 0,
                now: t0,
            }
        }

        fn at(&self, offset_ms: u64) -> Instant {
            self.t0 + ms(offset_ms)
        }

        /// Run the timer task's checks up to `until` (ms from t0), applying each host event
        /// (offset in ms from t0, what it does) at its time; a KATO change wakes the task as
        /// `kato_changed` does. Returns when the timer expired (ms from t0), if it did.
        fn run(
            &mut self,
            until: u64,
            events: &mut dyn Iterator<Item = (u64, Host)>,
        ) -> Option<u64> {
            let mut events = events.peekable();
            let end = self.at(until);
            let mut next_check = Some(self.now);
            loop {
                let wake = next_check.unwrap_or(end);
                if let Some(&(t, ev)) = events.peek() {
                    if self.at(t) <= wake {
                        events.next();
                        let at = self.at(t);
                        match ev {
                            Host::Admin => self.timer.restart(at),
                            Host::Io => self.io_commands += 1,
                            Host::SetKato(k) => {
                                // What Controller::set_kato_ms does, then the task wakes.
                                self.kato_ms = k;
                                self.timer.restart(at);
                                next_check = Some(at);
                            }
                        }
                        continue;
                    }
                }
                let now = next_check?;
                if now > end {
                    return None;
                }
                self.now = now;
                match self.timer.check(now, self.kato_ms, self.io_commands) {
                    Verdict::Expired { idle } => {
                        assert!(idle >= ms(u64::from(self.kato_ms)) + GRANULARITY);
                        return Some((now - self.t0).as_millis() as u64);
                    }
                    Verdict::Alive { next_check: next } => {
                        assert!(next > now && next <= now + GRANULARITY);
                        next_check = Some(next);
                    }
                    Verdict::Disabled => next_check = None,
                }
            }
        }
    }

    #[derive(Clone, Copy, Debug)]
    enum Host {
        Admin,
        Io,
        SetKato(u32),
    }

    fn every(period_ms: u64, from: u64, until: u64, ev: Host) -> impl Iterator<Item = (u64, Host)> {
        (0..)
            .map(move |i| from + i * period_ms)
            .take_while(move |&t| t <= until)
            .map(move |t| (t, ev))
    }

    #[test]
    fn keep_alive_every_kato_plus_1ms_survives() {
        let mut sim = Sim::new();
        let mut ka = every(u64::from(KATO) + 1, 1001, 60_000, Host::Admin);
        assert_eq!(sim.run(60_000, &mut ka), None);
        // Up to just under one granularity late still survives.
        let mut sim = Sim::new();
        let mut ka = every(u64::from(KATO) + 99, 1099, 60_000, Host::Admin);
        assert_eq!(sim.run(60_000, &mut ka), None);
    }

    #[test]
    fn keep_alive_more_than_one_granularity_late_expires() {
        let mut sim = Sim::new();
        let mut ka = every(u64::from(KATO) + 101, 1101, 60_000, Host::Admin);
        // The first gap past KATO + 100 ms expires the timer just before the Keep Alive.
        assert_eq!(sim.run(60_000, &mut ka), Some(1100));
    }

    #[test]
    fn continuous_io_without_keep_alive_survives() {
        let mut sim = Sim::new();
        let mut io = every(1, 0, 60_000, Host::Io);
        assert_eq!(sim.run(60_000, &mut io), None);
        // One I/O command per KATO is enough too (observed at most one granularity late).
        for phase in [0, 1, 37, 99] {
            let mut sim = Sim::new();
            let mut io = every(u64::from(KATO), phase, 60_000, Host::Io);
            assert_eq!(sim.run(60_000, &mut io), None, "phase {phase}");
        }
    }

    #[test]
    fn silence_after_keep_alive_expires_within_the_bound() {
        for last in [0, 1, 450, 999, 1050, 5_001] {
            let mut sim = Sim::new();
            let mut ka = every(400, 0, last, Host::Admin).chain([(last, Host::Admin)]);
            let expired = sim.run(20_000, &mut ka).expect("silence expires") - last;
            assert!(
                expired >= u64::from(KATO),
                "{expired} ms after the last command"
            );
            assert!(ms(expired) <= teardown_bound(KATO), "{expired} ms");
            // Admin commands are timed exactly: KATO + one granularity.
            assert_eq!(expired, 1100, "last Keep Alive at {last}");
        }
    }

    #[test]
    fn silence_after_io_expires_within_the_bound() {
        // Every phase of the last I/O command against the timer's 100 ms looks.
        for last in 3_000..3_200 {
            let mut sim = Sim::new();
            let mut io = every(7, 0, last, Host::Io).chain([(last, Host::Io)]);
            let expired = sim.run(20_000, &mut io).expect("silence expires") - last;
            assert!(
                ms(expired) >= ms(u64::from(KATO)) + GRANULARITY,
                "{expired} ms after an I/O at {last}"
            );
            assert!(
                ms(expired) <= teardown_bound(KATO),
                "{expired} ms after {last}"
            );
        }
    }

    #[test]
    fn kato_change_restarts_the_timer() {
        // 5 s -> 1 s at t = 3 s: the new KATO runs from the Set Features.
        let mut sim = Sim::new();
        sim.kato_ms = 5_000;
        let mut ev = [(3_000, Host::SetKato(1000))].into_iter();
        assert_eq!(sim.run(20_000, &mut ev), Some(4_100));
        // 1 s -> 5 s at t = 0.9 s, just before the old KATO: lives until 5.9 s + grace.
        let mut sim = Sim::new();
        let mut ev = [(900, Host::SetKato(5_000))].into_iter();
        assert_eq!(sim.run(20_000, &mut ev), Some(6_000));
        // Set Features restarts the timer even to the same value.
        let mut sim = Sim::new();
        let mut ev = [(1_000, Host::SetKato(1000))].into_iter();
        assert_eq!(sim.run(20_000, &mut ev), Some(2_100));
    }

    #[test]
    fn kato_zero_disables_and_a_new_kato_starts_fresh() {
        let mut sim = Sim::new();
        let mut ev = [(500, Host::SetKato(0)), (30_000, Host::SetKato(1000))].into_iter();
        // Nothing for 29.5 s while disabled; then KATO 1 s from the Set Features at 30 s.
        assert_eq!(sim.run(60_000, &mut ev), Some(31_100));
        // KATO 0 from Connect: never expires.
        let mut timer = KeepAliveTimer::new(sim.t0);
        assert_eq!(timer.check(sim.at(3_600_000), 0, 0), Verdict::Disabled);
    }

    #[test]
    fn io_seen_while_disabled_is_not_counted_later() {
        let t0 = Instant::now();
        let mut timer = KeepAliveTimer::new(t0);
        assert_eq!(timer.check(t0 + ms(10), 0, 5), Verdict::Disabled);
        timer.restart(t0 + ms(20));
        // No new traffic since: expires KATO + grace after the restart.
        assert_eq!(
            timer.check(t0 + ms(1119), KATO, 5),
            Verdict::Alive {
                next_check: t0 + ms(1120)
            }
        );
        assert!(matches!(
            timer.check(t0 + ms(1120), KATO, 5),
            Verdict::Expired { .. }
        ));
    }
}
