//! `ferrofab perf`: command line and reports of the polled NVMe/TCP load generator
//! ([`target::perf`]).

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, ValueEnum};
use target::perf::{self, Pattern, PerfConfig, PerfReport, DEFAULT_NQN};

#[derive(Clone, Copy, ValueEnum)]
enum PatternArg {
    Randread,
    Randwrite,
    Read,
    Write,
    Randrw,
    Rw,
}

impl From<PatternArg> for Pattern {
    fn from(p: PatternArg) -> Pattern {
        match p {
            PatternArg::Randread => Pattern::RandRead,
            PatternArg::Randwrite => Pattern::RandWrite,
            PatternArg::Read => Pattern::Read,
            PatternArg::Write => Pattern::Write,
            PatternArg::Randrw => Pattern::RandRw,
            PatternArg::Rw => Pattern::Rw,
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum DigestArg {
    None,
    Header,
    Data,
    Both,
}

/// A CPU list (`1`, `1,3`, `0-3`).
#[derive(Clone, Debug)]
struct Cores(Vec<usize>);

fn cores_arg(s: &str) -> Result<Cores, String> {
    perf::parse_cores(s).map(Cores)
}

fn io_size_arg(s: &str) -> Result<u32, String> {
    let n = perf::parse_size(s)?;
    u32::try_from(n).map_err(|_| format!("I/O size {s:?} does not fit 32 bits"))
}

fn duration_arg(s: &str) -> Result<Duration, String> {
    perf::parse_duration(s)
}

#[derive(Args)]
pub struct PerfArgs {
    /// Target address, IP:PORT.
    addr: SocketAddr,
    /// Subsystem NQN.
    #[arg(long, default_value = DEFAULT_NQN)]
    nqn: String,
    #[arg(long, default_value_t = 1)]
    nsid: u32,
    /// Host NQN to connect as (default: a random UUID-based NQN).
    #[arg(long)]
    hostnqn: Option<String>,
    /// Access pattern.
    #[arg(long, value_enum)]
    pattern: PatternArg,
    /// Reads in percent for randrw and rw.
    #[arg(long, default_value_t = 70, value_parser = clap::value_parser!(u8).range(0..=100))]
    read_pct: u8,
    /// Bytes per I/O (4k, 128k, 1m).
    #[arg(long, default_value = "4k", value_parser = io_size_arg)]
    size: u32,
    /// I/Os in flight per I/O queue.
    #[arg(long, default_value_t = 32)]
    qd: u16,
    /// Measured time (10s, 500ms).
    #[arg(long, default_value = "10s", value_parser = duration_arg)]
    time: Duration,
    /// Warm-up before the measurement; its I/Os are not counted.
    #[arg(long, default_value = "1s", value_parser = duration_arg)]
    warmup: Duration,
    /// CPUs to run one pinned polling thread each on (1,3 or 0-1).
    #[arg(long, default_value = "1", value_parser = cores_arg)]
    cores: Cores,
    /// Controllers (admin connections), each with --queues I/O queues.
    #[arg(long, default_value_t = 1)]
    connections: u16,
    /// I/O queues (TCP connections) per controller.
    #[arg(long, default_value_t = 1)]
    queues: u16,
    /// NVMe/TCP digests to request.
    #[arg(long, value_enum, default_value_t = DigestArg::None)]
    digest: DigestArg,
    /// The fabric: NVMe/TCP, or NVMe/RDMA (RoCEv2; needs rdma-core and an RDMA device).
    #[arg(long, value_enum, default_value_t = TransportArg::Tcp)]
    transport: TransportArg,
    /// Keep SQ flow control on (by default Connect disables it so reads may end with a
    /// C2HData SUCCESS flag instead of a response capsule).
    #[arg(long)]
    sqflow: bool,
    /// Only use the first this many bytes of the namespace (default: all of it).
    #[arg(long, value_parser = perf::parse_size)]
    range: Option<u64>,
    /// Write the JSON report to PATH, or to stdout instead of the human report with `-`.
    #[arg(long, value_name = "PATH|-")]
    json: Option<PathBuf>,
    /// No per-second progress lines on stderr.
    #[arg(long)]
    quiet: bool,
}

impl PerfArgs {
    fn config(&self) -> PerfConfig {
        PerfConfig {
            target: self.addr,
            transport: self.transport.into(),
            nqn: self.nqn.clone(),
            nsid: self.nsid,
            hostnqn: self.hostnqn.clone(),
            pattern: self.pattern.into(),
            read_pct: self.read_pct,
            io_size: self.size,
            qd: self.qd,
            time: self.time,
            warmup: self.warmup,
            cores: self.cores.0.clone(),
            connections: self.connections,
            queues: self.queues,
            header_digest: matches!(self.digest, DigestArg::Header | DigestArg::Both),
            data_digest: matches!(self.digest, DigestArg::Data | DigestArg::Both),
            sqflow: self.sqflow,
            range: self.range,
            progress: !self.quiet,
        }
    }
}

/// Run, print the reports; an error (or any failed I/O) is the `Err`.
pub async fn run(args: PerfArgs) -> Result<(), String> {
    let report = perf::run(&args.config()).await.map_err(|e| e.to_string())?;
    let json = serde_json::to_string_pretty(&report).map_err(|e| format!("JSON report: {e}"))?;
    let text = match &args.json {
        Some(p) if p.as_os_str() == "-" => format!("{json}\n"),
        Some(p) => {
            std::fs::write(p, format!("{json}\n"))
                .map_err(|e| format!("writing {}: {e}", p.display()))?;
            human(&report)
        }
        None => human(&report),
    };
    // A reader that went away (`| head`) is an error to report, not a panic.
    std::io::Write::write_all(&mut std::io::stdout(), text.as_bytes())
        .map_err(|e| format!("writing the report to stdout: {e}"))?;
    if report.errors > 0 {
        let mut msg = format!("{} I/O errors", report.errors);
        for s in &report.error_samples {
            let _ = write!(msg, "\n  {s}");
        }
        return Err(msg);
    }
    Ok(())
}

fn human(r: &PerfReport) -> String {
    let c = &r.config;
    let l = &r.latency_us;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{} {} B over {}, qd {}, {} connection(s) x {} queue(s), cores {:?}, {:.1} s measured after {:.1} s warm-up",
        c.pattern, c.io_size, c.transport, c.qd, c.connections, c.queues, c.cores, c.seconds, c.warmup
    );
    let _ = writeln!(out, "IOPS          {:.1}", r.iops);
    let _ = writeln!(out, "MiB/s         {:.1}", r.mib_per_s);
    let _ = writeln!(
        out,
        "latency (us)  min {:.1}  avg {:.1}  p50 {:.1}  p99 {:.1}  p99.9 {:.1}  max {:.1}",
        l.min, l.avg, l.p50, l.p99, l.p99_9, l.max
    );
    let _ = writeln!(
        out,
        "I/Os          {} (reads {}, writes {})",
        r.ios, r.reads, r.writes
    );
    let _ = writeln!(
        out,
        "CPU           user {:.2} s, system {:.2} s, {:.2} us per I/O",
        r.cpu.user_s,
        r.cpu.system_s,
        r.cpu_us_per_io()
    );
    let threads = c.cores.len() as f64;
    let _ = writeln!(
        out,
        "poll loop     busy {:.1}% of {} thread(s), {:.2} us per I/O",
        100.0 * r.busy_s / (r.elapsed_s * threads).max(1e-9),
        c.cores.len(),
        r.busy_us_per_io()
    );
    let _ = writeln!(out, "I/O errors    {}", r.errors);
    for s in &r.error_samples {
        let _ = writeln!(out, "  {s}");
    }
    out
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum TransportArg {
    Tcp,
    Rdma,
}

impl From<TransportArg> for perf::TransportKind {
    fn from(t: TransportArg) -> Self {
        match t {
            TransportArg::Tcp => perf::TransportKind::Tcp,
            TransportArg::Rdma => perf::TransportKind::Rdma,
        }
    }
}
