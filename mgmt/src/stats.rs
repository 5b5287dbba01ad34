//! The console's live statistics: I/O rates, completion latency percentiles and reactor load
//! over the last interval, from two readings of the target's per-core counters (the ones
//! `/metrics` exposes; `target::metrics`), plus the hosts connected now.
//!
//! A reading sums each namespace's shards and each reactor's counters, as a scrape does;
//! nothing on the data path changes. Percentiles come from the latency histogram's bucket
//! deltas, interpolated linearly inside the bucket the rank falls in (as Prometheus'
//! `histogram_quantile` does), so they are as fine as the buckets: 10, 25, 50, 100 µs, ….

use std::collections::BTreeMap;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use target::config::TransportKind;
use target::engine::Engine;
use target::metrics::{IoOp, NamespaceSample, OpSample, LATENCY_BOUNDS_NS};
use utoipa::ToSchema;

use crate::controllers::{self, ControllerView};
use crate::system::Transport;

/// Buckets of the latency histogram: one per bound, then +Inf.
const BUCKETS: usize = LATENCY_BOUNDS_NS.len() + 1;

/// One reading of the counters.
pub(crate) struct Counters {
    at: Instant,
    /// By subsystem NQN and NSID.
    namespaces: BTreeMap<(String, u32), NamespaceSample>,
    /// In reactor id order: TCP's, then RDMA's.
    reactors: Vec<(TransportKind, ReactorReading)>,
}

#[derive(Clone, Copy, Default)]
struct ReactorReading {
    busy_ns: u64,
    idle_ns: u64,
    commands: u64,
}

impl Counters {
    pub fn read(engine: &Engine) -> Counters {
        let target = engine.target();
        let mut namespaces = BTreeMap::new();
        for sub in target.subsystems() {
            for ns in sub.namespaces() {
                namespaces.insert((sub.nqn.clone(), ns.nsid), ns.stats.sample());
            }
        }
        let reactors = target
            .metrics()
            .reactors_by_transport()
            .into_iter()
            .flat_map(|(t, rs)| {
                rs.iter().map(move |r| {
                    let s = r.sample();
                    let reading = ReactorReading {
                        busy_ns: s.busy_ns,
                        idle_ns: s.idle_ns,
                        commands: s.commands,
                    };
                    (t, reading)
                })
            })
            .collect();
        Counters {
            at: Instant::now(),
            namespaces,
            reactors,
        }
    }
}

/// What happened between two readings, and who is connected.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct LiveStats {
    /// When the later reading was taken, in milliseconds since the Unix epoch.
    pub unix_ms: u64,
    /// Seconds between the two readings (the rates are averages over it).
    pub interval_seconds: f64,
    /// Every namespace together.
    pub total: IoRates,
    /// Each namespace, by subsystem NQN and NSID.
    pub namespaces: Vec<NamespaceRates>,
    /// Each reactor thread: TCP's, then NVMe/RDMA's (ids as in `/metrics`).
    pub reactors: Vec<ReactorLoad>,
    /// The live controllers (I/O and discovery), by CNTLID.
    pub hosts: Vec<ControllerView>,
}

/// I/O over an interval: commands completed per second by kind, bytes moved by successful
/// reads and writes, commands that failed, and completion latency in the target.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct IoRates {
    pub read_iops: f64,
    pub write_iops: f64,
    /// Flush, Write Zeroes, Dataset Management and other commands with an NSID.
    pub other_iops: f64,
    pub read_bytes_per_second: f64,
    pub write_bytes_per_second: f64,
    /// Commands completed with an error status, per second.
    pub errors_per_second: f64,
    /// Median completion latency of the interval's commands in microseconds; null when none
    /// completed.
    pub latency_p50_us: Option<f64>,
    /// 99th percentile completion latency in microseconds; null when none completed.
    pub latency_p99_us: Option<f64>,
}

#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct NamespaceRates {
    pub subsystem: String,
    pub nsid: u32,
    pub rates: IoRates,
}

/// A reactor thread's share of the interval spent on work (the rest it polled idle or slept).
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct ReactorLoad {
    pub id: usize,
    pub transport: Transport,
    /// 0 to 100.
    pub busy_percent: f64,
    /// Command capsules its connections received, per second.
    pub commands_per_second: f64,
}

/// Totals of one namespace (or of several) between two readings.
#[derive(Default)]
struct Delta {
    commands: [u64; 3],
    errors: u64,
    bytes: [u64; 2],
    buckets: [u64; BUCKETS],
}

impl Delta {
    fn between(before: Option<&NamespaceSample>, now: &NamespaceSample) -> Delta {
        let zero = NamespaceSample::default();
        // Counters only grow; a namespace re-created under the same NSID starts again.
        let before = before
            .filter(|b| {
                IoOp::ALL
                    .iter()
                    .all(|&op| b.op(op).commands <= now.op(op).commands)
            })
            .unwrap_or(&zero);
        let mut d = Delta::default();
        for (i, op) in IoOp::ALL.into_iter().enumerate() {
            let (b, n): (&OpSample, &OpSample) = (before.op(op), now.op(op));
            d.commands[i] = n.commands.saturating_sub(b.commands);
            d.errors += n.errors.saturating_sub(b.errors);
            if i < 2 {
                d.bytes[i] = n.bytes.saturating_sub(b.bytes);
            }
            for (out, (nb, bb)) in d.buckets.iter_mut().zip(n.buckets.iter().zip(&b.buckets)) {
                *out += nb.saturating_sub(*bb);
            }
        }
        d
    }

    fn add(&mut self, other: &Delta) {
        for (a, b) in self.commands.iter_mut().zip(other.commands) {
            *a += b;
        }
        self.errors += other.errors;
        for (a, b) in self.bytes.iter_mut().zip(other.bytes) {
            *a += b;
        }
        for (a, b) in self.buckets.iter_mut().zip(other.buckets) {
            *a += b;
        }
    }

    fn rates(&self, seconds: f64) -> IoRates {
        let per_second = |n: u64| {
            if seconds > 0.0 {
                n as f64 / seconds
            } else {
                0.0
            }
        };
        IoRates {
            read_iops: per_second(self.commands[0]),
            write_iops: per_second(self.commands[1]),
            other_iops: per_second(self.commands[2]),
            read_bytes_per_second: per_second(self.bytes[0]),
            write_bytes_per_second: per_second(self.bytes[1]),
            errors_per_second: per_second(self.errors),
            latency_p50_us: quantile_us(&self.buckets, 0.50),
            latency_p99_us: quantile_us(&self.buckets, 0.99),
        }
    }
}

/// The `q` quantile (0 < q <= 1) of a histogram with [`LATENCY_BOUNDS_NS`] buckets (not
/// cumulative, +Inf last), in microseconds; `None` for an empty one. Linear inside the
/// bucket; the +Inf bucket reports its lower bound.
fn quantile_us(buckets: &[u64; BUCKETS], q: f64) -> Option<f64> {
    let total: u64 = buckets.iter().sum();
    if total == 0 {
        return None;
    }
    let rank = q * total as f64;
    let mut below = 0u64;
    for (i, &n) in buckets.iter().enumerate() {
        if n > 0 && (below + n) as f64 >= rank {
            let lower = if i == 0 { 0 } else { LATENCY_BOUNDS_NS[i - 1] };
            let Some(&upper) = LATENCY_BOUNDS_NS.get(i) else {
                return Some(lower as f64 / 1000.0);
            };
            let share = ((rank - below as f64) / n as f64).clamp(0.0, 1.0);
            return Some((lower as f64 + (upper - lower) as f64 * share) / 1000.0);
        }
        below += n;
    }
    LATENCY_BOUNDS_NS.last().map(|&b| b as f64 / 1000.0)
}

/// The rates between `before` and `now`, with the controllers live now.
pub(crate) fn live_stats(engine: &Engine, before: &Counters, now: &Counters) -> LiveStats {
    let seconds = now.at.saturating_duration_since(before.at).as_secs_f64();
    let mut total = Delta::default();
    let namespaces = now
        .namespaces
        .iter()
        .map(|((nqn, nsid), sample)| {
            let d = Delta::between(before.namespaces.get(&(nqn.clone(), *nsid)), sample);
            total.add(&d);
            NamespaceRates {
                subsystem: nqn.clone(),
                nsid: *nsid,
                rates: d.rates(seconds),
            }
        })
        .collect();
    let reactors = now
        .reactors
        .iter()
        .enumerate()
        .map(|(id, (transport, s))| {
            let b = before.reactors.get(id).map(|(_, b)| b);
            let since = |get: fn(&ReactorReading) -> u64| get(s).saturating_sub(b.map_or(0, get));
            let busy = since(|r| r.busy_ns);
            let idle = since(|r| r.idle_ns);
            let busy_percent = if busy + idle == 0 {
                0.0
            } else {
                100.0 * busy as f64 / (busy + idle) as f64
            };
            let commands = since(|r| r.commands);
            ReactorLoad {
                id,
                transport: (*transport).into(),
                busy_percent,
                commands_per_second: if seconds > 0.0 {
                    commands as f64 / seconds
                } else {
                    0.0
                },
            }
        })
        .collect();
    let mut hosts: Vec<ControllerView> = engine
        .target()
        .controllers()
        .iter()
        .filter(|c| !c.is_destroyed())
        .map(|c| controllers::view(c))
        .collect();
    hosts.sort_by_key(|c| c.cntlid);
    LiveStats {
        unix_ms: SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
        interval_seconds: seconds,
        total: total.rates(seconds),
        namespaces,
        reactors,
        hosts,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn histogram(pairs: &[(usize, u64)]) -> [u64; BUCKETS] {
        let mut b = [0; BUCKETS];
        for &(i, n) in pairs {
            b[i] = n;
        }
        b
    }

    #[test]
    fn quantiles_interpolate_inside_their_bucket() {
        assert_eq!(quantile_us(&[0; BUCKETS], 0.5), None);
        // 100 commands between 10 and 25 µs: the median is half-way, p99 near the top.
        let b = histogram(&[(1, 100)]);
        assert_eq!(quantile_us(&b, 0.5), Some(17.5));
        assert_eq!(quantile_us(&b, 0.99), Some(24.85));
        // 90 at most 10 µs, 10 between 100 and 250 µs.
        let b = histogram(&[(0, 90), (4, 10)]);
        assert_eq!(quantile_us(&b, 0.5), Some(10.0 * 50.0 / 90.0));
        assert_eq!(quantile_us(&b, 0.99), Some(100.0 + 150.0 * 0.9));
        // Above the largest bound: its lower bound, 10 s.
        let b = histogram(&[(BUCKETS - 1, 3)]);
        assert_eq!(quantile_us(&b, 0.99), Some(10_000_000.0));
    }

    #[test]
    fn deltas_become_rates_and_a_recreated_namespace_starts_again() {
        let stats = target::metrics::NamespaceStats::default();
        let status = nvme::Status::SUCCESS;
        let us = std::time::Duration::from_micros;
        let before = stats.sample();
        for _ in 0..4 {
            stats.record(IoOp::Read, status, 4096, us(20));
        }
        stats.record(IoOp::Write, status, 8192, us(30));
        stats.record(IoOp::Write, nvme::Status::LBA_OUT_OF_RANGE, 8192, us(30));
        let now = stats.sample();
        let d = Delta::between(Some(&before), &now);
        let r = d.rates(2.0);
        assert_eq!((r.read_iops, r.write_iops, r.other_iops), (2.0, 1.0, 0.0));
        assert_eq!(r.read_bytes_per_second, 8192.0);
        assert_eq!(
            r.write_bytes_per_second, 4096.0,
            "the failed write moved nothing"
        );
        assert_eq!(r.errors_per_second, 0.5);
        assert!(r.latency_p50_us.is_some_and(|p| (10.0..=25.0).contains(&p)));
        assert!(r.latency_p99_us.is_some_and(|p| (25.0..=50.0).contains(&p)));
        // A reading taken before a re-creation is ahead of the new counters: from zero.
        let d = Delta::between(Some(&now), &before);
        assert_eq!(d.commands, [0, 0, 0]);
        let fresh = Delta::between(Some(&now), &stats.sample());
        assert_eq!(fresh.rates(1.0), IoRates::default());
        assert_eq!(Delta::between(None, &now).commands, [4, 2, 0]);
        assert_eq!(Delta::default().rates(0.0), IoRates::default());
    }
}
