//! The `ferrofab perf` engine: an NVMe/TCP load generator in the style of spdk_nvme_perf.
//!
//! Admin queues are set up with the tokio [`Controller`] (which also keeps them alive); the
//! I/O queues are [`PolledQueue`]s spread round-robin over one busy-polling thread per
//! requested core. Each thread loops: one recv per queue, process completions, refill every
//! queue to the queue depth, one vectored write per queue. Latencies go into one HDR
//! histogram per thread (nanoseconds), merged at the end.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use fabric::initiator::command;
use fabric::initiator::io_queue::IoQueue;
use fabric::initiator::polled::{ConnectIdentity, PolledQueue, PolledQueueOptions};
use fabric::initiator::rdma::RdmaPolledQueue;
use fabric::initiator::{Controller, HostCommand, HostError, HostOptions};
pub use fabric::queue::TransportKind;
use hdrhistogram::Histogram;
use nix::sys::resource::{getrusage, UsageWho};
use nvme::identify::IdentifyNamespace;
use nvme::properties::Cap;
use serde::Serialize;

/// Subsystem NQN `perf` connects to unless told otherwise (the embedded default config's).
pub const DEFAULT_NQN: &str = "nqn.2026-01.io.ferrofab:default";
/// Failed completions whose description the report keeps.
const ERROR_SAMPLES: usize = 5;
/// Highest latency the histograms track (larger values are clamped).
const MAX_LATENCY_NS: u64 = 100_000_000_000;
/// Setup, teardown and admin command timeout.
const SETUP_TIMEOUT: Duration = Duration::from_secs(10);

mod parse;
mod rdma;
mod worker;
pub use parse::{parse_cores, parse_duration, parse_size};
use worker::Worker;

/// Access pattern.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pattern {
    RandRead,
    RandWrite,
    Read,
    Write,
    RandRw,
    Rw,
}

impl Pattern {
    pub fn name(self) -> &'static str {
        match self {
            Pattern::RandRead => "randread",
            Pattern::RandWrite => "randwrite",
            Pattern::Read => "read",
            Pattern::Write => "write",
            Pattern::RandRw => "randrw",
            Pattern::Rw => "rw",
        }
    }

    fn random(self) -> bool {
        matches!(
            self,
            Pattern::RandRead | Pattern::RandWrite | Pattern::RandRw
        )
    }

    /// Percentage of reads: fixed for pure patterns, `mixed` for the *rw ones.
    pub fn read_pct(self, mixed: u8) -> u8 {
        match self {
            Pattern::RandRead | Pattern::Read => 100,
            Pattern::RandWrite | Pattern::Write => 0,
            Pattern::RandRw | Pattern::Rw => mixed,
        }
    }
}

/// What to run.
#[derive(Clone, Debug)]
pub struct PerfConfig {
    pub target: SocketAddr,
    /// NVMe/TCP or NVMe/RDMA (every queue, admin and I/O).
    pub transport: TransportKind,
    pub nqn: String,
    pub nsid: u32,
    /// Host NQN (default: a random UUID-based one).
    pub hostnqn: Option<String>,
    pub pattern: Pattern,
    /// Reads in percent for the *rw patterns (ignored otherwise).
    pub read_pct: u8,
    /// Bytes per I/O, a multiple of the namespace block size.
    pub io_size: u32,
    /// I/Os kept in flight on every I/O queue.
    pub qd: u16,
    /// Measured time.
    pub time: Duration,
    /// Time before the measurement whose I/Os are not counted.
    pub warmup: Duration,
    /// One polling thread per CPU, pinned to it.
    pub cores: Vec<usize>,
    /// Controllers (admin connections).
    pub connections: u16,
    /// I/O queues per controller.
    pub queues: u16,
    pub header_digest: bool,
    pub data_digest: bool,
    /// Keep SQ flow control on (by default Connect disables it).
    pub sqflow: bool,
    /// Limit offsets to the first this many bytes of the namespace.
    pub range: Option<u64>,
    /// Print a progress line to stderr every second.
    pub progress: bool,
}

/// Why a run could not happen or was cut short.
#[derive(Debug, thiserror::Error)]
pub enum PerfError {
    #[error("invalid settings: {0}")]
    Config(String),
    #[error("{context}: {source}")]
    Host {
        context: String,
        #[source]
        source: HostError,
    },
    #[error("namespace {nsid}: {reason}")]
    Namespace { nsid: u32, reason: String },
    #[error("I/O thread failed: {0}")]
    Run(String),
}

fn host_err(context: impl Into<String>) -> impl FnOnce(HostError) -> PerfError {
    let context = context.into();
    move |source| PerfError::Host { context, source }
}

/// The settings as reported (the `config` object of the JSON report).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ReportConfig {
    pub target: String,
    /// "tcp" or "rdma".
    pub transport: &'static str,
    pub nqn: String,
    pub nsid: u32,
    pub pattern: String,
    pub read_pct: u8,
    pub io_size: u32,
    pub qd: u16,
    pub cores: Vec<usize>,
    pub connections: u16,
    pub queues: u16,
    pub seconds: f64,
    pub warmup: f64,
}

/// Latency summary in microseconds.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct LatencyUs {
    pub min: f64,
    pub avg: f64,
    pub p50: f64,
    pub p99: f64,
    pub p99_9: f64,
    pub max: f64,
}

/// One second of the measured window.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct SecondStats {
    pub t: u64,
    pub iops: f64,
    pub mib_per_s: f64,
}

/// CPU time this process used during the measured window.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct CpuTime {
    pub user_s: f64,
    pub system_s: f64,
}

/// The result of a run; serializes to the fixed JSON report schema.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct PerfReport {
    pub config: ReportConfig,
    /// I/Os completed in the measured window (failed ones included).
    pub ios: u64,
    pub reads: u64,
    pub writes: u64,
    /// Failed completions over the whole run, warm-up and drain included.
    pub errors: u64,
    pub elapsed_s: f64,
    pub iops: f64,
    pub mib_per_s: f64,
    pub latency_us: LatencyUs,
    pub per_second: Vec<SecondStats>,
    pub cpu: CpuTime,
    /// The first few failures, described.
    #[serde(skip)]
    pub error_samples: Vec<String>,
    /// Time the polling threads spent in loop iterations that had data to process (the
    /// rest is empty polling): what the generator itself costs, summed over the threads.
    pub busy_s: f64,
}

impl PerfReport {
    /// Busy polling time per I/O in microseconds ([`PerfReport::busy_s`] over the I/Os).
    pub fn busy_us_per_io(&self) -> f64 {
        if self.ios == 0 {
            return 0.0;
        }
        self.busy_s * 1e6 / self.ios as f64
    }

    /// CPU time per I/O in microseconds (user + system over the measured I/Os).
    pub fn cpu_us_per_io(&self) -> f64 {
        if self.ios == 0 {
            return 0.0;
        }
        (self.cpu.user_s + self.cpu.system_s) * 1e6 / self.ios as f64
    }
}

/// What the admin side learned, for the I/O threads.
struct Geometry {
    block_size: u32,
    /// Slots of `io_size` bytes the offsets are drawn from.
    slots: u64,
    in_capsule: u32,
}

/// Run the load: connect, warm up, measure, disconnect and shut the controllers down.
pub async fn run(cfg: &PerfConfig) -> Result<PerfReport, PerfError> {
    validate(cfg)?;
    if cfg.transport == TransportKind::Rdma {
        let cfg = cfg.clone();
        return match tokio::task::spawn_blocking(move || rdma::run(&cfg)).await {
            Ok(r) => r,
            Err(e) => Err(PerfError::Run(format!("engine thread: {e}"))),
        };
    }
    let mut ctrls = Vec::new();
    for c in 0..cfg.connections {
        let ctrl = connect_admin(cfg).await;
        match ctrl {
            Ok(ctrl) => ctrls.push(ctrl),
            Err(e) => {
                shutdown_all(ctrls).await;
                return Err(match e {
                    PerfError::Host { context, source } => PerfError::Host {
                        context: format!("connection {c}: {context}"),
                        source,
                    },
                    other => other,
                });
            }
        }
    }
    let geometry = match geometry(cfg, &ctrls[0]).await {
        Ok(g) => g,
        Err(e) => {
            shutdown_all(ctrls).await;
            return Err(e);
        }
    };
    let plan: Vec<QueuePlan> = ctrls
        .iter()
        .flat_map(|ctrl| {
            let o = ctrl.options();
            (1..=cfg.queues).map(move |qid| QueuePlan {
                qid,
                subnqn: ctrl.subnqn().to_string(),
                hostnqn: o.hostnqn.clone(),
                hostid: o.hostid,
                cntlid: ctrl.cntlid(),
            })
        })
        .collect();
    let job = {
        let cfg = cfg.clone();
        tokio::task::spawn_blocking(move || run_blocking(&cfg, &geometry, plan))
    };
    let result = match job.await {
        Ok(r) => r,
        Err(e) => Err(PerfError::Run(format!("engine thread: {e}"))),
    };
    shutdown_all(ctrls).await;
    result
}

fn validate(cfg: &PerfConfig) -> Result<(), PerfError> {
    let bad = |m: &str| Err(PerfError::Config(m.to_string()));
    if cfg.io_size == 0 {
        return bad("--size must be above 0");
    }
    if cfg.qd == 0 {
        return bad("--qd must be at least 1");
    }
    if cfg.cores.is_empty() {
        return bad("--cores needs at least one CPU");
    }
    if cfg.connections == 0 || cfg.queues == 0 {
        return bad("--connections and --queues must be at least 1");
    }
    if cfg.read_pct > 100 {
        return bad("--read-pct is a percentage (0..=100)");
    }
    if cfg.time.is_zero() {
        return bad("--time must be above 0");
    }
    Ok(())
}

async fn connect_admin(cfg: &PerfConfig) -> Result<Controller, PerfError> {
    let mut opts = HostOptions {
        header_digest: cfg.header_digest,
        data_digest: cfg.data_digest,
        io_queues: 0,
        queue_size: cfg.qd.saturating_add(1),
        disable_sqflow: !cfg.sqflow,
        timeout: SETUP_TIMEOUT,
        ..HostOptions::default()
    };
    if let Some(n) = &cfg.hostnqn {
        opts.hostnqn = n.clone();
    }
    let ctrl = Controller::connect_admin_only(cfg.target, &cfg.nqn, opts)
        .await
        .map_err(host_err(format!(
            "connecting to {} ({})",
            cfg.target, cfg.nqn
        )))?;
    let granted = ctrl
        .submit_admin(HostCommand::new(command::set_number_of_queues(cfg.queues)))
        .await
        .and_then(|c| c.ok());
    let granted = match granted {
        Ok(c) => c.cqe.dw0.get(),
        Err(e) => {
            let _ = ctrl.shutdown().await;
            return Err(host_err("Set Features Number of Queues")(e));
        }
    };
    if let Err(e) = enough_queues(cfg, granted) {
        let _ = ctrl.shutdown().await;
        return Err(e);
    }
    Ok(ctrl)
}

/// Whether Set Features Number of Queues granted the I/O queues the run needs.
fn enough_queues(cfg: &PerfConfig, granted: u32) -> Result<(), PerfError> {
    // NVMe Base 2.0 §5.27.1.5: DW0 holds NSQA 15:0 and NCQA 31:16, 0's based.
    let n = ((granted & 0xffff) + 1).min((granted >> 16) + 1);
    if n < u32::from(cfg.queues) {
        return Err(PerfError::Config(format!(
            "the controller grants {n} I/O queues, {} requested",
            cfg.queues
        )));
    }
    Ok(())
}

async fn geometry(cfg: &PerfConfig, ctrl: &Controller) -> Result<Geometry, PerfError> {
    let ns = match ctrl.identify_namespace_parsed(cfg.nsid).await {
        Ok(ns) => ns,
        Err(HostError::Status(s)) => {
            return Err(PerfError::Namespace {
                nsid: cfg.nsid,
                reason: format!("Identify Namespace failed: {s}"),
            });
        }
        Err(e) => return Err(host_err("Identify Namespace")(e)),
    };
    geometry_of(cfg, &ns, ctrl.cap(), ctrl.identify().io_in_capsule_data())
}

/// What the namespace and the controller allow the run to do.
fn geometry_of(
    cfg: &PerfConfig,
    ns: &IdentifyNamespace,
    cap: u64,
    in_capsule: u32,
) -> Result<Geometry, PerfError> {
    let nsid = cfg.nsid;
    let ns_err = |reason: String| PerfError::Namespace { nsid, reason };
    let blocks = ns.nsze.get();
    if blocks == 0 {
        return Err(ns_err("not an active namespace of this subsystem".into()));
    }
    let block_size = ns
        .block_size()
        .filter(|bs| (512..=1 << 31).contains(bs))
        .ok_or_else(|| ns_err("no usable LBA format".into()))?;
    if !cfg.io_size.is_multiple_of(block_size) || cfg.io_size / block_size > 65536 {
        return Err(PerfError::Config(format!(
            "I/O size {} is not 1..=65536 blocks of {block_size} bytes",
            cfg.io_size
        )));
    }
    let capacity = blocks.saturating_mul(u64::from(block_size));
    let range = cfg.range.unwrap_or(capacity).min(capacity);
    let slots = range / u64::from(cfg.io_size);
    if slots == 0 {
        return Err(PerfError::Config(format!(
            "the range of {range} bytes holds no {}-byte I/O",
            cfg.io_size
        )));
    }
    let mqes = Cap(cap).max_queue_entries();
    if u32::from(cfg.qd) + 1 > mqes {
        return Err(PerfError::Config(format!(
            "--qd {} needs {} queue entries, the controller allows {mqes}",
            cfg.qd,
            u32::from(cfg.qd) + 1
        )));
    }
    Ok(Geometry {
        block_size,
        slots,
        in_capsule,
    })
}

async fn shutdown_all(ctrls: Vec<Controller>) {
    for ctrl in ctrls {
        if let Err(e) = ctrl.shutdown().await {
            tracing::warn!(error = %e, "controller shutdown");
        }
    }
}

/// One I/O queue to connect.
struct QueuePlan {
    qid: u16,
    subnqn: String,
    hostnqn: String,
    hostid: [u8; 16],
    cntlid: u16,
}

/// Counters a polling thread publishes for the progress lines (measured window only).
#[derive(Default)]
struct Live {
    ios: AtomicU64,
    lat_ns: AtomicU64,
}

/// What the I/O threads share: the timeline and the abort flag.
struct Shared {
    start: Instant,
    measure_from: Instant,
    end: Instant,
    abort: AtomicBool,
}

/// What one thread measured.
struct ThreadResult {
    hist: Histogram<u64>,
    reads: u64,
    writes: u64,
    errors: u64,
    samples: Vec<String>,
    /// Measured-window time spent in loop iterations that received something.
    busy_ns: u64,
}

fn run_blocking(
    cfg: &PerfConfig,
    geo: &Geometry,
    plan: Vec<QueuePlan>,
) -> Result<PerfReport, PerfError> {
    let total = plan.len();
    let mut per_thread: Vec<Vec<(usize, IoQueue)>> = cfg.cores.iter().map(|_| Vec::new()).collect();
    for (i, p) in plan.iter().enumerate() {
        let opts = PolledQueueOptions {
            qid: p.qid,
            header_digest: cfg.header_digest,
            data_digest: cfg.data_digest,
            in_capsule_data: geo.in_capsule,
            queue_size: cfg.qd.saturating_add(1),
            disable_sqflow: !cfg.sqflow,
            timeout: SETUP_TIMEOUT,
        };
        let who = ConnectIdentity {
            subnqn: &p.subnqn,
            hostnqn: &p.hostnqn,
            hostid: p.hostid,
            cntlid: p.cntlid,
        };
        let q = match cfg.transport {
            TransportKind::Tcp => PolledQueue::connect(cfg.target, opts, who).map(IoQueue::Tcp),
            TransportKind::Rdma => {
                RdmaPolledQueue::connect(cfg.target, opts, who).map(IoQueue::Rdma)
            }
        }
        .map_err(host_err(format!(
            "I/O queue {} of controller {}",
            p.qid, p.cntlid
        )))?;
        per_thread[i % cfg.cores.len()].push((i, q));
    }
    let data = Bytes::from(fill_pattern(cfg.io_size as usize));
    let start = Instant::now();
    let shared = Arc::new(Shared {
        start,
        measure_from: start + cfg.warmup,
        end: start + cfg.warmup + cfg.time,
        abort: AtomicBool::new(false),
    });
    let lives: Vec<Arc<Live>> = cfg.cores.iter().map(|_| Arc::default()).collect();
    let mut handles = Vec::new();
    for (t, queues) in per_thread.into_iter().enumerate() {
        let worker = Worker {
            core: cfg.cores[t],
            pattern: cfg.pattern,
            read_pct: cfg.pattern.read_pct(cfg.read_pct),
            nsid: cfg.nsid,
            io_size: cfg.io_size,
            nlb: cfg.io_size / geo.block_size,
            slots: geo.slots,
            qd: usize::from(cfg.qd),
            total_queues: total,
            data: data.clone(),
            shared: shared.clone(),
            live: lives[t].clone(),
        };
        let spawned = std::thread::Builder::new()
            .name(format!("perf-{}", cfg.cores[t]))
            .spawn(move || worker.run(queues));
        match spawned {
            Ok(h) => handles.push(h),
            Err(e) => {
                shared.abort.store(true, Ordering::Relaxed);
                for h in handles {
                    let _ = h.join();
                }
                return Err(PerfError::Run(format!("spawning an I/O thread: {e}")));
            }
        }
    }
    let (per_second, cpu) = watch(cfg, &shared, &lives);
    let mut results = Vec::new();
    let mut failure = None;
    for h in handles {
        match h.join() {
            Ok(Ok(r)) => results.push(r),
            Ok(Err(e)) => failure = failure.or(Some(e)),
            Err(_) => failure = failure.or(Some("an I/O thread panicked".to_string())),
        }
    }
    if let Some(e) = failure {
        return Err(PerfError::Run(e));
    }
    Ok(report(cfg, results, per_second, cpu))
}

/// Sleep through the run: note CPU time at the start and end of the measured window and
/// sample the threads' counters every second.
fn watch(cfg: &PerfConfig, shared: &Shared, lives: &[Arc<Live>]) -> (Vec<SecondStats>, CpuTime) {
    sleep_until(shared.measure_from, &shared.abort);
    let cpu_start = cpu_now();
    let sample = || {
        lives.iter().fold((0u64, 0u64), |(ios, lat), l| {
            (
                ios + l.ios.load(Ordering::Relaxed),
                lat + l.lat_ns.load(Ordering::Relaxed),
            )
        })
    };
    let mut per_second = Vec::new();
    let (mut last_ios, mut last_lat) = (0u64, 0u64);
    let mut last_t = shared.measure_from;
    // Whole seconds of the measured window; a trailing partial second is not reported.
    for second in 1u64.. {
        let tick = shared.measure_from + Duration::from_secs(second);
        if tick > shared.end {
            break;
        }
        sleep_until(tick, &shared.abort);
        if shared.abort.load(Ordering::Relaxed) {
            break;
        }
        let (ios, lat) = sample();
        let now = Instant::now();
        let dt = now.duration_since(last_t).as_secs_f64().max(1e-9);
        let d_ios = ios.saturating_sub(last_ios);
        let iops = d_ios as f64 / dt;
        let mib = iops * f64::from(cfg.io_size) / (1024.0 * 1024.0);
        let lat_avg = if d_ios > 0 {
            lat.saturating_sub(last_lat) as f64 / d_ios as f64 / 1000.0
        } else {
            0.0
        };
        if cfg.progress {
            eprintln!("t={second}s iops={iops:.0} MiB/s={mib:.1} lat_avg={lat_avg:.1}us");
        }
        per_second.push(SecondStats {
            t: second,
            iops,
            mib_per_s: mib,
        });
        (last_ios, last_lat, last_t) = (ios, lat, now);
    }
    sleep_until(shared.end, &shared.abort);
    let cpu_end = cpu_now();
    let cpu = CpuTime {
        user_s: (cpu_end.user_s - cpu_start.user_s).max(0.0),
        system_s: (cpu_end.system_s - cpu_start.system_s).max(0.0),
    };
    (per_second, cpu)
}

fn sleep_until(when: Instant, abort: &AtomicBool) {
    loop {
        let now = Instant::now();
        if now >= when || abort.load(Ordering::Relaxed) {
            return;
        }
        std::thread::sleep((when - now).min(Duration::from_millis(50)));
    }
}

fn cpu_now() -> CpuTime {
    match getrusage(UsageWho::RUSAGE_SELF) {
        Ok(u) => {
            let secs = |t: nix::sys::time::TimeVal| t.tv_sec() as f64 + t.tv_usec() as f64 / 1e6;
            CpuTime {
                user_s: secs(u.user_time()),
                system_s: secs(u.system_time()),
            }
        }
        Err(_) => CpuTime::default(),
    }
}

fn report(
    cfg: &PerfConfig,
    results: Vec<ThreadResult>,
    per_second: Vec<SecondStats>,
    cpu: CpuTime,
) -> PerfReport {
    let mut hist = new_histogram();
    let (mut reads, mut writes, mut errors, mut busy_ns) = (0, 0, 0, 0);
    let mut error_samples = Vec::new();
    for r in results {
        let _ = hist.add(&r.hist);
        reads += r.reads;
        writes += r.writes;
        errors += r.errors;
        busy_ns += r.busy_ns;
        error_samples.extend(r.samples);
    }
    error_samples.truncate(ERROR_SAMPLES);
    let ios = reads + writes;
    let elapsed_s = cfg.time.as_secs_f64();
    let iops = ios as f64 / elapsed_s;
    let us = |ns: u64| ns as f64 / 1000.0;
    let latency_us = if hist.is_empty() {
        LatencyUs::default()
    } else {
        LatencyUs {
            min: us(hist.min()),
            avg: hist.mean() / 1000.0,
            p50: us(hist.value_at_quantile(0.5)),
            p99: us(hist.value_at_quantile(0.99)),
            p99_9: us(hist.value_at_quantile(0.999)),
            max: us(hist.max()),
        }
    };
    PerfReport {
        config: ReportConfig {
            target: cfg.target.to_string(),
            transport: match cfg.transport {
                TransportKind::Tcp => "tcp",
                TransportKind::Rdma => "rdma",
            },
            nqn: cfg.nqn.clone(),
            nsid: cfg.nsid,
            pattern: cfg.pattern.name().to_string(),
            read_pct: cfg.pattern.read_pct(cfg.read_pct),
            io_size: cfg.io_size,
            qd: cfg.qd,
            cores: cfg.cores.clone(),
            connections: cfg.connections,
            queues: cfg.queues,
            seconds: cfg.time.as_secs_f64(),
            warmup: cfg.warmup.as_secs_f64(),
        },
        ios,
        reads,
        writes,
        errors,
        elapsed_s,
        iops,
        mib_per_s: iops * f64::from(cfg.io_size) / (1024.0 * 1024.0),
        latency_us,
        per_second,
        cpu,
        error_samples,
        busy_s: busy_ns as f64 / 1e9,
    }
}

fn new_histogram() -> Histogram<u64> {
    // Bounds and precision are constants known to be valid.
    Histogram::new_with_bounds(1, MAX_LATENCY_NS, 3).expect("valid histogram bounds")
}

/// Write data: a recognizable, non-constant byte pattern.
fn fill_pattern(len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8) ^ ((i >> 8) as u8).wrapping_mul(31))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::worker::WyRand;
    use super::*;

    #[test]
    fn sizes_durations_and_cores() {
        assert_eq!(parse_size("4k"), Ok(4096));
        assert_eq!(parse_size("128K"), Ok(128 << 10));
        assert_eq!(parse_size("1m"), Ok(1 << 20));
        assert_eq!(parse_size("512"), Ok(512));
        assert_eq!(parse_size("4KiB"), Ok(4096));
        assert!(parse_size("4x").is_err());
        assert!(parse_size("k").is_err());
        assert_eq!(parse_duration("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("1.5"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert!(parse_duration("10q").is_err());
        assert_eq!(parse_cores("1,3"), Ok(vec![1, 3]));
        assert_eq!(parse_cores("0-2,5"), Ok(vec![0, 1, 2, 5]));
        assert!(parse_cores("3-1").is_err());
        assert!(parse_cores("").is_err());
    }

    #[test]
    fn rng_stays_in_range_and_spreads() {
        let mut r = WyRand(1);
        let mut seen = [0u32; 10];
        for _ in 0..10_000 {
            let v = r.below(10);
            assert!(v < 10);
            seen[v as usize] += 1;
        }
        assert!(seen.iter().all(|&n| n > 800), "{seen:?}");
    }

    #[test]
    fn pattern_read_share() {
        assert_eq!(Pattern::RandRead.read_pct(70), 100);
        assert_eq!(Pattern::Write.read_pct(70), 0);
        assert_eq!(Pattern::Rw.read_pct(70), 70);
        assert!(Pattern::RandRw.random() && !Pattern::Rw.random());
    }
}
