//! One polling thread of `ferrofab perf`: pinned to its CPU, it keeps its queues full,
//! records each completion's latency and counts reads, writes and errors.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use fabric::initiator::command;
use fabric::initiator::io_queue::IoQueue;
use fabric::tcp::host_conn::HostEvent;
use fabric::tcp::reactor::pin_to_core;

use super::{new_histogram, Live, Pattern, Shared, ThreadResult, ERROR_SAMPLES, SETUP_TIMEOUT};

/// wyrand: a tiny, fast 64-bit PRNG (good enough to spread offsets).
pub(super) struct WyRand(pub(super) u64);

impl WyRand {
    pub(super) fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0xa076_1d64_78bd_642f);
        let t = u128::from(self.0) * u128::from(self.0 ^ 0xe703_7ed1_a0b4_28db);
        ((t >> 64) as u64) ^ (t as u64)
    }

    /// Uniform in `0..n` (multiply-shift; n > 0).
    pub(super) fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.next()) * u128::from(n)) >> 64) as u64
    }
}

/// Per-queue state of a polling thread.
struct QueueState {
    q: IoQueue,
    /// Next slot for sequential patterns.
    next_slot: u64,
    /// Submission time (ns since the thread's clock base) and direction, by CID.
    sent_at: Vec<u64>,
    is_read: Vec<bool>,
}

pub(super) struct Worker {
    pub(super) core: usize,
    pub(super) pattern: Pattern,
    pub(super) read_pct: u8,
    pub(super) nsid: u32,
    pub(super) io_size: u32,
    pub(super) nlb: u32,
    pub(super) slots: u64,
    pub(super) qd: usize,
    pub(super) total_queues: usize,
    pub(super) data: Bytes,
    pub(super) shared: Arc<Shared>,
    pub(super) live: Arc<Live>,
}

impl Worker {
    pub(super) fn run(self, queues: Vec<(usize, IoQueue)>) -> Result<ThreadResult, String> {
        let result = self.pin().and_then(|()| self.poll(queues));
        if result.is_err() {
            self.shared.abort.store(true, Ordering::Relaxed);
        }
        result
    }

    fn pin(&self) -> Result<(), String> {
        pin_to_core(self.core).map_err(|e| e.to_string())
    }

    fn poll(&self, queues: Vec<(usize, IoQueue)>) -> Result<ThreadResult, String> {
        let base = self.shared.start;
        let ns = |t: Instant| t.duration_since(base).as_nanos() as u64;
        let measure_from = ns(self.shared.measure_from);
        let end = ns(self.shared.end);
        let mut rng = WyRand(0x9e37_79b9_7f4a_7c15 ^ (self.core as u64).wrapping_mul(0x1234_5677));
        let mut states: Vec<QueueState> = queues
            .into_iter()
            .map(|(index, q)| QueueState {
                q,
                next_slot: (u128::from(self.slots) * index as u128 / self.total_queues as u128)
                    as u64,
                sent_at: Vec::new(),
                is_read: Vec::new(),
            })
            .collect();
        let mut res = ThreadResult {
            hist: new_histogram(),
            reads: 0,
            writes: 0,
            errors: 0,
            samples: Vec::new(),
            busy_ns: 0,
        };
        let (mut live_ios, mut live_lat) = (0u64, 0u64);
        let mut failure = None;
        // Start of the previous iteration, and whether it found anything to do.
        let (mut prev, mut prev_busy) = (ns(Instant::now()), false);
        'run: loop {
            let mut got = 0;
            for s in states.iter_mut() {
                match s.q.receive() {
                    Ok(n) => got += n,
                    Err(e) => {
                        failure = Some(format!("queue {}: receive: {e}", s.q.qid()));
                        break 'run;
                    }
                }
            }
            // One clock read per iteration: completion time of what was just received,
            // submission time of what is sent below, and the busy-time bookkeeping.
            let now = ns(Instant::now());
            let counted = now >= measure_from && now < end;
            if prev_busy && prev >= measure_from && counted {
                res.busy_ns += now - prev;
            }
            (prev, prev_busy) = (now, got > 0);
            if now >= end || self.shared.abort.load(Ordering::Relaxed) {
                break;
            }
            for s in states.iter_mut() {
                while let Some(ev) = s.q.poll_event() {
                    let (cid, failed) = match ev {
                        HostEvent::Completed { cid, result } => {
                            let failed = match result {
                                Ok(c) if c.cqe.status().is_success() => None,
                                Ok(c) => Some(format!("status {}", c.cqe.status())),
                                Err(e) => Some(e.to_string()),
                            };
                            (cid, failed)
                        }
                        HostEvent::Failed(e) => {
                            failure = Some(format!("queue {}: {e}", s.q.qid()));
                            break 'run;
                        }
                        HostEvent::Established(_) => continue,
                    };
                    let i = usize::from(cid);
                    if let Some(err) = failed {
                        res.errors += 1;
                        if res.samples.len() < ERROR_SAMPLES {
                            res.samples
                                .push(format!("queue {} CID {cid}: {err}", s.q.qid()));
                        }
                    }
                    if counted {
                        let lat = now.saturating_sub(s.sent_at[i]);
                        res.hist.saturating_record(lat.max(1));
                        live_lat += lat;
                        live_ios += 1;
                        if s.is_read[i] {
                            res.reads += 1;
                        } else {
                            res.writes += 1;
                        }
                    }
                }
            }
            for s in states.iter_mut() {
                while s.q.outstanding() < self.qd {
                    if let Err(e) = self.submit(s, &mut rng, now) {
                        failure = Some(format!("queue {}: submit: {e}", s.q.qid()));
                        break 'run;
                    }
                }
                if let Err(e) = s.q.flush() {
                    failure = Some(format!("queue {}: send: {e}", s.q.qid()));
                    break 'run;
                }
            }
            if counted {
                self.live.ios.store(live_ios, Ordering::Relaxed);
                self.live.lat_ns.store(live_lat, Ordering::Relaxed);
            }
        }
        if let Some(f) = failure {
            return Err(f);
        }
        for s in states {
            let qid = s.q.qid();
            if let Err(e) = s.q.disconnect(SETUP_TIMEOUT) {
                tracing::debug!(qid, error = %e, "I/O queue disconnect");
            }
        }
        Ok(res)
    }

    fn submit(&self, s: &mut QueueState, rng: &mut WyRand, now: u64) -> Result<(), String> {
        let read = match self.read_pct {
            100 => true,
            0 => false,
            p => rng.below(100) < u64::from(p),
        };
        let slot = if self.pattern.random() {
            rng.below(self.slots)
        } else {
            let slot = s.next_slot;
            s.next_slot = if slot + 1 >= self.slots { 0 } else { slot + 1 };
            slot
        };
        let slba = slot * u64::from(self.nlb);
        let cid = if read {
            s.q.submit(command::read(self.nsid, slba, self.nlb), None, self.io_size)
        } else {
            s.q.submit(
                command::write(self.nsid, slba, self.nlb, false),
                Some(self.data.clone()),
                0,
            )
        }
        .map_err(|e| e.to_string())?;
        let i = usize::from(cid);
        if i >= s.sent_at.len() {
            s.sent_at.resize(i + 1, 0);
            s.is_read.resize(i + 1, false);
        }
        s.sent_at[i] = now;
        s.is_read[i] = read;
        Ok(())
    }
}
