//! The target's counters, read by the metrics endpoint (`mgmt`): per-namespace I/O counters
//! and latency histograms kept per core, and target-wide event counts.
//!
//! Per-namespace counters are sharded by reactor: a command completed on reactor `r`
//! updates shard `r` (modulo the shard count), one cache line set of its own, so reactors
//! never write a line another reactor writes. Completions off the reactors (the blocking
//! pool of may-block backends) share the last shard. Shards are atomics updated with
//! relaxed adds, so a shared shard still counts exactly; a scrape sums them.
//!
//! Target-wide events (connects, refusals, asynchronous events, keep-alive expiries) are
//! rare and counted in plain atomics.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use fabric::queue::Response;
use fabric::tcp::reactor_stats::{current_reactor, ReactorCounters};
use nvme::Status;

use crate::config::TransportKind;

/// Upper bounds of the latency histogram's buckets, in nanoseconds (10 µs .. 10 s); a last
/// bucket counts everything above.
pub const LATENCY_BOUNDS_NS: [u64; 19] = [
    10_000,
    25_000,
    50_000,
    100_000,
    250_000,
    500_000,
    1_000_000,
    2_500_000,
    5_000_000,
    10_000_000,
    25_000_000,
    50_000_000,
    100_000_000,
    250_000_000,
    500_000_000,
    1_000_000_000,
    2_500_000_000,
    5_000_000_000,
    10_000_000_000,
];
const BUCKETS: usize = LATENCY_BOUNDS_NS.len() + 1;

/// The kind of command a namespace counter is kept for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IoOp {
    Read,
    Write,
    /// Flush, Write Zeroes, Dataset Management, Compare and anything else with an NSID.
    Other,
}

impl IoOp {
    pub const ALL: [IoOp; 3] = [IoOp::Read, IoOp::Write, IoOp::Other];

    /// NVM Command Set 1.0 Figure 17: Write 01h, Read 02h.
    pub fn of_opcode(opcode: u8) -> IoOp {
        match opcode {
            // Write and Zone Append (ZNS 1.1 §4.3) move data to the namespace.
            0x01 | 0x7d => IoOp::Write,
            0x02 => IoOp::Read,
            _ => IoOp::Other,
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            IoOp::Read => "read",
            IoOp::Write => "write",
            IoOp::Other => "other",
        }
    }

    fn index(self) -> usize {
        match self {
            IoOp::Read => 0,
            IoOp::Write => 1,
            IoOp::Other => 2,
        }
    }
}

#[derive(Default)]
struct OpCells {
    commands: AtomicU64,
    errors: AtomicU64,
    bytes: AtomicU64,
    latency_ns: AtomicU64,
    buckets: [AtomicU64; BUCKETS],
}

/// One core's share of a namespace's counters.
#[derive(Default)]
#[repr(align(128))]
struct Shard {
    ops: [OpCells; 3],
}

/// A namespace's counters: commands, errors, bytes moved and completion latency, per
/// [`IoOp`].
pub struct NamespaceStats {
    shards: Box<[Shard]>,
}

/// One operation's totals over every shard.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct OpSample {
    /// Commands completed, whatever their status.
    pub commands: u64,
    /// Commands completed with a status other than Successful Completion.
    pub errors: u64,
    /// Bytes read or written by commands that succeeded.
    pub bytes: u64,
    /// Sum of the completion latencies.
    pub latency_ns: u64,
    /// Commands per latency bucket (not cumulative), bounds [`LATENCY_BOUNDS_NS`] then +Inf.
    pub buckets: [u64; BUCKETS],
}

/// A reading of a namespace's counters, per [`IoOp`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NamespaceSample {
    ops: [OpSample; 3],
}

impl NamespaceSample {
    pub fn op(&self, op: IoOp) -> &OpSample {
        &self.ops[op.index()]
    }
}

impl Default for NamespaceStats {
    fn default() -> NamespaceStats {
        NamespaceStats::new()
    }
}

impl NamespaceStats {
    /// One shard per CPU the process could run on when the first namespace was made, plus
    /// the shared one.
    pub fn new() -> NamespaceStats {
        // Read once: it reads /proc and cgroup files, and namespaces come and go at run time.
        static CPUS: OnceLock<usize> = OnceLock::new();
        let cpus =
            *CPUS.get_or_init(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
        NamespaceStats::with_shards(cpus + 1)
    }

    fn with_shards(n: usize) -> NamespaceStats {
        NamespaceStats {
            shards: (0..n.max(2)).map(|_| Shard::default()).collect(),
        }
    }

    fn shard(&self) -> &Shard {
        let last = self.shards.len() - 1;
        let i = current_reactor().map_or(last, |r| r % last);
        &self.shards[i]
    }

    /// Count one completed command.
    pub fn record(&self, op: IoOp, status: Status, bytes: u64, latency: Duration) {
        let cells = &self.shard().ops[op.index()];
        cells.commands.fetch_add(1, Ordering::Relaxed);
        if status.is_success() {
            if bytes != 0 {
                cells.bytes.fetch_add(bytes, Ordering::Relaxed);
            }
        } else {
            cells.errors.fetch_add(1, Ordering::Relaxed);
        }
        let ns = u64::try_from(latency.as_nanos()).unwrap_or(u64::MAX);
        cells.latency_ns.fetch_add(ns, Ordering::Relaxed);
        let bucket = LATENCY_BOUNDS_NS.partition_point(|&b| b < ns);
        cells.buckets[bucket].fetch_add(1, Ordering::Relaxed);
    }

    /// The totals over every shard.
    pub fn sample(&self) -> NamespaceSample {
        let mut s = NamespaceSample::default();
        for shard in self.shards.iter() {
            for (cells, out) in shard.ops.iter().zip(s.ops.iter_mut()) {
                let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
                out.commands += get(&cells.commands);
                out.errors += get(&cells.errors);
                out.bytes += get(&cells.bytes);
                out.latency_ns += get(&cells.latency_ns);
                for (o, b) in out.buckets.iter_mut().zip(cells.buckets.iter()) {
                    *o += get(b);
                }
            }
        }
        s
    }
}

/// Why a Connect was refused (a bounded label).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RefusedConnect {
    /// Connect Invalid Host: not on the subsystem's allow-list.
    HostNotAllowed,
    /// The subsystem NQN names no subsystem reachable on that listener.
    UnknownSubsystem,
    /// An I/O queue named a controller that does not exist (any more).
    UnknownController,
    /// Any other Connect Invalid Parameters (queue size, QID, host identity).
    InvalidParameters,
    /// No controller ID is free.
    ControllerBusy,
    /// Anything else (format, sequence, malformed command).
    Other,
}

impl RefusedConnect {
    pub const ALL: [RefusedConnect; 6] = [
        RefusedConnect::HostNotAllowed,
        RefusedConnect::UnknownSubsystem,
        RefusedConnect::UnknownController,
        RefusedConnect::InvalidParameters,
        RefusedConnect::ControllerBusy,
        RefusedConnect::Other,
    ];

    pub fn label(self) -> &'static str {
        match self {
            RefusedConnect::HostNotAllowed => "host_not_allowed",
            RefusedConnect::UnknownSubsystem => "unknown_subsystem",
            RefusedConnect::UnknownController => "unknown_controller",
            RefusedConnect::InvalidParameters => "invalid_parameters",
            RefusedConnect::ControllerBusy => "controller_busy",
            RefusedConnect::Other => "other",
        }
    }

    fn index(self) -> usize {
        match self {
            RefusedConnect::HostNotAllowed => 0,
            RefusedConnect::UnknownSubsystem => 1,
            RefusedConnect::UnknownController => 2,
            RefusedConnect::InvalidParameters => 3,
            RefusedConnect::ControllerBusy => 4,
            RefusedConnect::Other => 5,
        }
    }

    /// Classify a refusal by its status and, for Invalid Parameters, the offset the
    /// response names (NVMe-oF 1.1 §3.3, Figure 22: IATTR bit 16, IPO bits 15:0).
    pub fn of(response: &Response) -> RefusedConnect {
        let (sct, sc) = (response.status.sct, response.status.sc);
        if (sct, sc)
            == (
                Status::CONNECT_INVALID_HOST.sct,
                Status::CONNECT_INVALID_HOST.sc,
            )
        {
            return RefusedConnect::HostNotAllowed;
        }
        if (sct, sc)
            == (
                Status::CONNECT_CONTROLLER_BUSY.sct,
                Status::CONNECT_CONTROLLER_BUSY.sc,
            )
        {
            return RefusedConnect::ControllerBusy;
        }
        let invalid = Status::CONNECT_INVALID_PARAMETERS;
        if (sct, sc) != (invalid.sct, invalid.sc) {
            return RefusedConnect::Other;
        }
        let in_data = response.dw0 & (1 << 16) != 0;
        match (in_data, response.dw0 as u16) {
            (true, crate::target::DATA_OFFSET_SUBNQN) => RefusedConnect::UnknownSubsystem,
            (true, crate::target::DATA_OFFSET_CNTLID) => RefusedConnect::UnknownController,
            _ => RefusedConnect::InvalidParameters,
        }
    }
}

/// Which queue a Connect created.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum QueueKind {
    Admin,
    Io,
}

impl QueueKind {
    pub const ALL: [QueueKind; 2] = [QueueKind::Admin, QueueKind::Io];

    pub fn label(self) -> &'static str {
        match self {
            QueueKind::Admin => "admin",
            QueueKind::Io => "io",
        }
    }
}

/// The asynchronous events the target raises (a bounded label).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventKind {
    /// Namespace Attribute Changed (log page 04h).
    NamespaceAttributeChanged,
    /// Discovery Log Page Change (log page 70h).
    DiscoveryLogChange,
    /// Zone Descriptor Changed (log page BFh, the Changed Zone List).
    ZoneDescriptorChanged,
    Other,
}

impl EventKind {
    pub const ALL: [EventKind; 4] = [
        EventKind::NamespaceAttributeChanged,
        EventKind::DiscoveryLogChange,
        EventKind::ZoneDescriptorChanged,
        EventKind::Other,
    ];

    /// By the log page the event asks the host to read (NVMe Base 2.0 Figure 150).
    pub fn of_log_page(page: u8) -> EventKind {
        match page {
            0x04 => EventKind::NamespaceAttributeChanged,
            0x70 => EventKind::DiscoveryLogChange,
            0xbf => EventKind::ZoneDescriptorChanged,
            _ => EventKind::Other,
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            EventKind::NamespaceAttributeChanged => "namespace_attribute_changed",
            EventKind::DiscoveryLogChange => "discovery_log_change",
            EventKind::ZoneDescriptorChanged => "zone_descriptor_changed",
            EventKind::Other => "other",
        }
    }

    fn index(self) -> usize {
        match self {
            EventKind::NamespaceAttributeChanged => 0,
            EventKind::DiscoveryLogChange => 1,
            EventKind::ZoneDescriptorChanged => 2,
            EventKind::Other => 3,
        }
    }
}

/// Target-wide event counts, and the reactors' counters once the daemon registered them.
#[derive(Default)]
pub struct TargetMetrics {
    connects: [AtomicU64; 2],
    refused: [AtomicU64; 6],
    events: [AtomicU64; EventKind::ALL.len()],
    keep_alive_expiries: AtomicU64,
    reactors: OnceLock<Vec<Arc<ReactorCounters>>>,
    /// The NVMe/RDMA reactors, once they serve a listener (they start on first use).
    rdma_reactors: OnceLock<Vec<Arc<ReactorCounters>>>,
}

/// A reading of the target-wide counters.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TargetSample {
    /// Queues created, admin then I/O ([`QueueKind::ALL`] order).
    pub connects: [u64; 2],
    /// Refused Connects in [`RefusedConnect::ALL`] order.
    pub refused: [u64; 6],
    /// Asynchronous events raised (enabled by the host) in [`EventKind::ALL`] order.
    pub events: [u64; EventKind::ALL.len()],
    pub keep_alive_expiries: u64,
}

impl TargetMetrics {
    pub fn connected(&self, kind: QueueKind) {
        let i = match kind {
            QueueKind::Admin => 0,
            QueueKind::Io => 1,
        };
        self.connects[i].fetch_add(1, Ordering::Relaxed);
    }

    pub fn refused(&self, why: RefusedConnect) {
        self.refused[why.index()].fetch_add(1, Ordering::Relaxed);
    }

    pub fn event_raised(&self, kind: EventKind) {
        self.events[kind.index()].fetch_add(1, Ordering::Relaxed);
    }

    pub fn keep_alive_expired(&self) {
        self.keep_alive_expiries.fetch_add(1, Ordering::Relaxed);
    }

    /// Register the reactors (once; a second call is ignored and returns false).
    pub fn set_reactors(&self, reactors: Vec<Arc<ReactorCounters>>) -> bool {
        self.reactors.set(reactors).is_ok()
    }

    /// The reactors' counters by reactor id (empty until registered).
    pub fn reactors(&self) -> &[Arc<ReactorCounters>] {
        self.reactors.get().map_or(&[], |r| r.as_slice())
    }

    /// Register the NVMe/RDMA reactors (once; a second call is ignored and returns false).
    pub fn set_rdma_reactors(&self, reactors: Vec<Arc<ReactorCounters>>) -> bool {
        self.rdma_reactors.set(reactors).is_ok()
    }

    /// Each transport's reactor counters by reactor id: TCP's, then RDMA's (empty until the
    /// RDMA reactors serve a listener).
    pub fn reactors_by_transport(&self) -> [(TransportKind, &[Arc<ReactorCounters>]); 2] {
        [
            (TransportKind::Tcp, self.reactors()),
            (
                TransportKind::Rdma,
                self.rdma_reactors.get().map_or(&[], |r| r.as_slice()),
            ),
        ]
    }

    pub fn sample(&self) -> TargetSample {
        fn get<const N: usize>(a: &[AtomicU64; N]) -> [u64; N] {
            std::array::from_fn(|i| a[i].load(Ordering::Relaxed))
        }
        TargetSample {
            connects: get(&self.connects),
            refused: get(&self.refused),
            events: get(&self.events),
            keep_alive_expiries: self.keep_alive_expiries.load(Ordering::Relaxed),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn us(n: u64) -> Duration {
        Duration::from_micros(n)
    }

    #[test]
    fn records_land_in_their_op_and_bucket_and_errors_move_no_bytes() {
        let s = NamespaceStats::with_shards(3);
        s.record(IoOp::Read, Status::SUCCESS, 4096, us(7));
        s.record(IoOp::Read, Status::SUCCESS, 8192, us(10));
        s.record(IoOp::Read, Status::LBA_OUT_OF_RANGE, 4096, us(11));
        s.record(IoOp::Write, Status::SUCCESS, 512, Duration::from_secs(60));
        s.record(IoOp::Other, Status::SUCCESS, 0, us(300));
        let got = s.sample();
        assert_eq!(got.op(IoOp::Read).commands, 3);
        assert_eq!(got.op(IoOp::Read).errors, 1);
        assert_eq!(got.op(IoOp::Read).bytes, 12288);
        assert_eq!(got.op(IoOp::Read).latency_ns, 28_000);
        // 7 and 10 µs are at most 10 µs (bucket 0, bounds are inclusive); 11 µs is in 25 µs.
        assert_eq!(got.op(IoOp::Read).buckets[0], 2);
        assert_eq!(got.op(IoOp::Read).buckets[1], 1);
        assert_eq!(
            got.op(IoOp::Write).buckets[BUCKETS - 1],
            1,
            "above 10 s: +Inf only"
        );
        assert_eq!(got.op(IoOp::Write).bytes, 512);
        assert_eq!(
            got.op(IoOp::Other).buckets[5],
            1,
            "300 µs is in the 500 µs bucket"
        );
        assert_eq!(got.op(IoOp::Other).bytes, 0);
    }

    #[test]
    fn shards_written_from_many_threads_sum_exactly() {
        let s = Arc::new(NamespaceStats::with_shards(2));
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let s = s.clone();
                std::thread::spawn(move || {
                    for _ in 0..10_000 {
                        s.record(IoOp::Write, Status::SUCCESS, 4096, us(20));
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        let got = s.sample();
        assert_eq!(got.op(IoOp::Write).commands, 40_000);
        assert_eq!(got.op(IoOp::Write).bytes, 40_000 * 4096);
        assert_eq!(got.op(IoOp::Write).buckets[1], 40_000);
    }

    #[test]
    fn connect_refusals_are_classified_by_status_and_offset() {
        let invalid = |dw0: u32| {
            Response::status(Status::CONNECT_INVALID_PARAMETERS.with_dnr()).with_dw0(dw0)
        };
        let cases = [
            (
                Response::status(Status::CONNECT_INVALID_HOST.with_dnr()),
                RefusedConnect::HostNotAllowed,
            ),
            (
                Response::status(Status::CONNECT_CONTROLLER_BUSY),
                RefusedConnect::ControllerBusy,
            ),
            (invalid((1 << 16) | 256), RefusedConnect::UnknownSubsystem),
            (invalid((1 << 16) | 16), RefusedConnect::UnknownController),
            // SQSIZE in the SQE (IATTR 0), and HOSTNQN in the data.
            (invalid(44), RefusedConnect::InvalidParameters),
            (invalid((1 << 16) | 512), RefusedConnect::InvalidParameters),
            (
                Response::status(Status::COMMAND_SEQUENCE_ERROR.with_dnr()),
                RefusedConnect::Other,
            ),
        ];
        for (response, want) in cases {
            assert_eq!(RefusedConnect::of(&response), want, "{:?}", response.status);
        }
    }

    #[test]
    fn target_events_are_counted_by_kind() {
        let m = TargetMetrics::default();
        m.connected(QueueKind::Admin);
        m.connected(QueueKind::Io);
        m.connected(QueueKind::Io);
        m.refused(RefusedConnect::HostNotAllowed);
        m.event_raised(EventKind::of_log_page(0x04));
        m.event_raised(EventKind::of_log_page(0x70));
        m.event_raised(EventKind::of_log_page(0xbf));
        m.event_raised(EventKind::of_log_page(0xbf));
        m.event_raised(EventKind::of_log_page(0x02));
        m.keep_alive_expired();
        let s = m.sample();
        assert_eq!(s.connects, [1, 2]);
        assert_eq!(s.refused, [1, 0, 0, 0, 0, 0]);
        assert_eq!(s.events, [1, 1, 2, 1]);
        assert_eq!(s.keep_alive_expiries, 1);
        assert!(m.reactors().is_empty());
        assert!(m.set_reactors(vec![Arc::new(ReactorCounters::default())]));
        assert!(!m.set_reactors(Vec::new()));
        assert_eq!(m.reactors().len(), 1);
        let lens = |m: &TargetMetrics| m.reactors_by_transport().map(|(t, r)| (t, r.len()));
        assert_eq!(
            lens(&m),
            [(TransportKind::Tcp, 1), (TransportKind::Rdma, 0)]
        );
        let two: Vec<_> = (0..2)
            .map(|_| Arc::new(ReactorCounters::default()))
            .collect();
        assert!(m.set_rdma_reactors(two.clone()));
        assert!(!m.set_rdma_reactors(two));
        assert_eq!(
            lens(&m),
            [(TransportKind::Tcp, 1), (TransportKind::Rdma, 2)]
        );
    }
}
