//! `ferrofab drive`: use a local NVMe drive through ferrofab's own drivers, without serving
//! it: identify, write/verify patterns, zone management and a polled load generator.

use std::path::PathBuf;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use bytes::Bytes;
use clap::{Args, Subcommand, ValueEnum};
use hdrhistogram::Histogram;
use nvme::backend::uring::{UringBackend, UringOptions};
use nvme::backend::{Backend, IoFuture, QueuedBackend};
use nvme::driver::nvme_driver::{block_on, DriverNamespace, NvmeDriver};
use nvme::sys::hugepage::HugeDma;
use nvme::zns::{ReportOption, ZoneAction, ZoneState};
use target::drives::{DriveSettings, Drives};
use target::perf::{parse_duration, parse_size};

use crate::host::pattern_block;

#[derive(Args)]
pub struct DriveArgs {
    /// PCI address of an NVMe controller to drive through VFIO (ferrofab's own driver).
    #[arg(long, required_unless_present = "uring", conflicts_with = "uring")]
    pci: Option<String>,
    /// Move the controller to vfio-pci first, and back to its driver afterwards.
    #[arg(long, requires = "pci")]
    bind: bool,
    /// An NVMe generic character device (/dev/ngXnY) to use through io_uring passthrough.
    #[arg(long)]
    uring: Option<PathBuf>,
    /// Namespace to work on (with --pci).
    #[arg(long, default_value_t = 1)]
    nsid: u32,
    /// Per-command timeout in milliseconds (abort, then controller reset).
    #[arg(long, default_value_t = 10_000)]
    timeout_ms: u64,
    #[command(subcommand)]
    action: DriveAction,
}

#[derive(Subcommand)]
enum DriveAction {
    /// Print the controller and its namespaces (geometry, zone limits).
    Identify,
    /// Write a reproducible pattern.
    Write {
        #[arg(long, default_value_t = 0)]
        lba: u64,
        #[arg(long, default_value_t = 8)]
        blocks: u64,
        #[arg(long, default_value_t = 1)]
        seed: u64,
        #[arg(long)]
        fua: bool,
    },
    /// Read back and compare with the pattern `write` produced.
    Verify {
        #[arg(long, default_value_t = 0)]
        lba: u64,
        #[arg(long, default_value_t = 8)]
        blocks: u64,
        #[arg(long, default_value_t = 1)]
        seed: u64,
    },
    /// Report zones (Zone Management Receive).
    Zones {
        #[arg(long, default_value_t = 0)]
        slba: u64,
        /// Most zones to list.
        #[arg(long, default_value_t = 64)]
        max: usize,
        /// Only zones in this state.
        #[arg(long, value_enum, default_value_t = StateFilter::All)]
        state: StateFilter,
        /// Count only the zones listed (Partial Report).
        #[arg(long)]
        partial: bool,
    },
    /// Zone Management Send on one zone (--zslba) or every zone (--all).
    Zone {
        #[arg(value_enum)]
        action: ZoneOp,
        #[arg(long, required_unless_present = "all")]
        zslba: Option<u64>,
        #[arg(long)]
        all: bool,
    },
    /// Zone Append a pattern; prints the LBA the drive assigned.
    Append {
        #[arg(long)]
        zslba: u64,
        #[arg(long, default_value_t = 1)]
        blocks: u64,
        #[arg(long, default_value_t = 1)]
        seed: u64,
    },
    /// Polled load on one thread: IOPS, bandwidth, latency.
    Bench(BenchArgs),
    /// Run actions read from standard input, one per line (e.g. `zone open --zslba 0`), on one
    /// controller bring-up, so zone states carry from one action to the next (a controller
    /// shutdown closes open zones). Each action's output follows a `>>> ACTION` line; a
    /// failed action prints `error: ...` and the batch goes on; the exit status says whether
    /// any failed.
    Batch,
}

/// One line of a batch.
#[derive(clap::Parser)]
#[command(no_binary_name = true)]
struct BatchLine {
    #[command(subcommand)]
    action: DriveAction,
}

#[derive(Clone, Copy, ValueEnum)]
enum StateFilter {
    All,
    Empty,
    ImplicitlyOpened,
    ExplicitlyOpened,
    Closed,
    Full,
    ReadOnly,
    Offline,
}

#[derive(Clone, Copy, ValueEnum)]
enum ZoneOp {
    Open,
    Close,
    Finish,
    Reset,
    Offline,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Pattern {
    Randread,
    Randwrite,
    Read,
    Write,
}

#[derive(Args)]
struct BenchArgs {
    #[arg(long, value_enum, default_value_t = Pattern::Randread)]
    pattern: Pattern,
    /// I/O size (e.g. 4k, 128k).
    #[arg(long, default_value = "4k", value_parser = parse_size)]
    size: u64,
    /// Commands in flight.
    #[arg(long, default_value_t = 32)]
    qd: usize,
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    time: Duration,
    /// Load before measuring.
    #[arg(long, default_value = "1s", value_parser = parse_duration)]
    warmup: Duration,
    /// Use only the first this-many bytes of the namespace (default: all of it).
    #[arg(long, value_parser = parse_size)]
    span: Option<u64>,
    /// Print one JSON object instead of text.
    #[arg(long)]
    json: bool,
}

/// The namespace being driven, through either driver.
enum Drive {
    Vfio(Arc<DriverNamespace<HugeDma>>),
    Uring(Arc<UringBackend>),
}

impl Drive {
    fn backend(&self) -> &dyn Backend {
        match self {
            Drive::Vfio(ns) => ns.as_ref(),
            Drive::Uring(b) => b.as_ref(),
        }
    }

    fn queued(&self) -> &dyn QueuedBackend {
        match self {
            Drive::Vfio(ns) => ns.as_ref(),
            Drive::Uring(b) => b.as_ref(),
        }
    }

    fn zoned(&self) -> Result<&DriverNamespace<HugeDma>, String> {
        match self {
            Drive::Vfio(ns) if ns.info().zoned.is_some() => Ok(ns),
            Drive::Vfio(ns) => Err(format!("namespace {} is not zoned", ns.info().nsid)),
            Drive::Uring(_) => Err("zone commands need --pci (ferrofab's own driver)".into()),
        }
    }
}

impl DriveArgs {
    pub fn run(self) -> Result<(), String> {
        let drives = Drives::new(DriveSettings {
            io_queues: 1,
            owned_queues: 0,
            timeout: Duration::from_millis(self.timeout_ms),
            ..DriveSettings::default()
        });
        let result = self.run_opened(&drives);
        drives.shutdown_all();
        result
    }

    fn run_opened(&self, drives: &Drives) -> Result<(), String> {
        let drive = match (&self.pci, &self.uring) {
            (Some(pci), _) => {
                let driver = drives
                    .vfio_driver(pci, self.bind)
                    .map_err(|e| e.to_string())?;
                if let DriveAction::Identify = self.action {
                    print_controller(&driver);
                    return Ok(());
                }
                let ns = driver.namespace(self.nsid).map_err(|e| e.to_string())?;
                Drive::Vfio(ns)
            }
            (None, Some(path)) => Drive::Uring(
                UringBackend::open(
                    path,
                    UringOptions {
                        queue_depth: 256,
                        iopoll: true,
                    },
                )
                .map_err(|e| format!("{}: {e}", path.display()))?,
            ),
            (None, None) => return Err("give --pci or --uring".into()),
        };
        if let DriveAction::Batch = self.action {
            return batch(&drive);
        }
        run_action(&drive, &self.action)
    }
}

/// Run each line of standard input as an action on `drive`.
fn batch(drive: &Drive) -> Result<(), String> {
    use std::io::BufRead;
    let mut failed = 0;
    for line in std::io::stdin().lock().lines() {
        let line = line.map_err(|e| format!("reading standard input: {e}"))?;
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        println!(">>> {line}");
        let result = <BatchLine as clap::Parser>::try_parse_from(line.split_whitespace())
            .map_err(|e| e.to_string().lines().next().unwrap_or_default().to_string())
            .and_then(|b| match b.action {
                DriveAction::Batch | DriveAction::Identify => {
                    Err("identify and batch do not run inside a batch".to_string())
                }
                action => run_action(drive, &action),
            });
        if let Err(e) = result {
            failed += 1;
            println!("error: {e}");
        }
    }
    match failed {
        0 => Ok(()),
        n => Err(format!("{n} batch actions failed")),
    }
}

fn run_action(drive: &Drive, action: &DriveAction) -> Result<(), String> {
    let info = drive.backend().info();
    let bs = info.block_size as usize;
    let e = |e: nvme::backend::BackendError| e.to_string();
    match action {
        DriveAction::Identify => {
            println!("block_size={} blocks={}", info.block_size, info.num_blocks);
        }
        DriveAction::Write {
            lba,
            blocks,
            seed,
            fua,
        } => {
            let data = pattern(*seed, *lba, *blocks, bs);
            drive.backend().write(*lba, &data, *fua).map_err(e)?;
            println!("wrote {blocks} blocks at LBA {lba} (seed {seed})");
        }
        DriveAction::Verify { lba, blocks, seed } => {
            let mut buf = vec![0u8; *blocks as usize * bs];
            drive.backend().read(*lba, &mut buf).map_err(e)?;
            let want = pattern(*seed, *lba, *blocks, bs);
            if let Some(i) = (0..*blocks as usize)
                .find(|&i| buf[i * bs..(i + 1) * bs] != want[i * bs..(i + 1) * bs])
            {
                return Err(format!("mismatch at LBA {}", lba + i as u64));
            }
            println!("verified {blocks} blocks at LBA {lba} (seed {seed})");
        }
        DriveAction::Zones {
            slba,
            max,
            state,
            partial,
        } => {
            let ns = drive.zoned()?;
            let (total, zones) = ns
                .report_zones(*slba, report_option(*state), *partial, *max)
                .map_err(e)?;
            println!("zones={total}");
            for z in zones {
                let state = z.state().map_or("unknown".to_string(), state_name);
                println!(
                    "zslba={} wp={} zcap={} state={state}",
                    z.zslba.get(),
                    z.wp.get(),
                    z.zcap.get()
                );
            }
        }
        DriveAction::Zone { action, zslba, all } => {
            let ns = drive.zoned()?;
            ns.zone_action(zslba.unwrap_or(0), *all, zone_action(*action))
                .map_err(e)?;
            println!("ok");
        }
        DriveAction::Append {
            zslba,
            blocks,
            seed,
        } => {
            let ns = drive.zoned()?;
            let data = pattern(*seed, *zslba, *blocks, bs);
            let lba = block_on(ns.append(*zslba, Bytes::from(data))).map_err(e)?;
            println!("lba={lba}");
        }
        DriveAction::Bench(args) => bench(drive, args, info.num_blocks, bs)?,
        DriveAction::Batch => return Err("batch does not nest".into()),
    }
    Ok(())
}

fn pattern(seed: u64, lba: u64, blocks: u64, bs: usize) -> Vec<u8> {
    (0..blocks)
        .flat_map(|i| pattern_block(seed, lba + i, bs))
        .collect()
}

fn print_controller(driver: &NvmeDriver<HugeDma>) {
    let i = driver.info();
    println!(
        "model={:?} serial={:?} firmware={:?} max_transfer={} sgl={} io_queues={} queue_entries={} zasl={:?}",
        i.model, i.serial, i.firmware, i.max_transfer, i.sgl, i.io_queues, i.queue_entries,
        i.zone_append_limit
    );
    for ns in &i.namespaces {
        match &ns.zoned {
            Some(z) => println!(
                "nsid={} block_size={} blocks={} zoned zone_size={} max_open={:?} max_active={:?}",
                ns.nsid, ns.block_size, ns.blocks, z.zone_size, z.max_open, z.max_active
            ),
            None => println!(
                "nsid={} block_size={} blocks={}",
                ns.nsid, ns.block_size, ns.blocks
            ),
        }
    }
}

fn report_option(s: StateFilter) -> ReportOption {
    match s {
        StateFilter::All => ReportOption::All,
        StateFilter::Empty => ReportOption::Empty,
        StateFilter::ImplicitlyOpened => ReportOption::ImplicitlyOpened,
        StateFilter::ExplicitlyOpened => ReportOption::ExplicitlyOpened,
        StateFilter::Closed => ReportOption::Closed,
        StateFilter::Full => ReportOption::Full,
        StateFilter::ReadOnly => ReportOption::ReadOnly,
        StateFilter::Offline => ReportOption::Offline,
    }
}

fn zone_action(op: ZoneOp) -> ZoneAction {
    match op {
        ZoneOp::Open => ZoneAction::Open,
        ZoneOp::Close => ZoneAction::Close,
        ZoneOp::Finish => ZoneAction::Finish,
        ZoneOp::Reset => ZoneAction::Reset,
        ZoneOp::Offline => ZoneAction::Offline,
    }
}

fn state_name(s: ZoneState) -> String {
    match s {
        ZoneState::Empty => "empty",
        ZoneState::ImplicitlyOpened => "implicitly-opened",
        ZoneState::ExplicitlyOpened => "explicitly-opened",
        ZoneState::Closed => "closed",
        ZoneState::ReadOnly => "read-only",
        ZoneState::Full => "full",
        ZoneState::Offline => "offline",
    }
    .to_string()
}

/// xorshift64* for offsets.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}

/// What a finished command gives back: its result, and a read's buffer for reuse.
type Finished = (Result<(), String>, Option<Vec<u8>>);

/// A command in flight; a read's buffer comes back with it and is reused.
enum InFlight {
    Read(IoFuture<Vec<u8>>),
    Write(IoFuture<()>),
}

impl InFlight {
    fn poll(&mut self, cx: &mut Context<'_>) -> Poll<Finished> {
        match self {
            InFlight::Read(io) => io.as_mut().poll(cx).map(|r| match r {
                Ok(buf) => (Ok(()), Some(buf)),
                Err(e) => (Err(e.to_string()), None),
            }),
            InFlight::Write(io) => io
                .as_mut()
                .poll(cx)
                .map(|r| (r.map_err(|e| e.to_string()), None)),
        }
    }
}

/// Keep `qd` commands in flight from this thread, polling their futures (which poll the
/// device queue) in a loop: the same run-to-completion model as a reactor.
fn bench(drive: &Drive, a: &BenchArgs, num_blocks: u64, bs: usize) -> Result<(), String> {
    let size = a.size as usize;
    if size == 0 || !size.is_multiple_of(bs) {
        return Err(format!(
            "--size {size} must be a multiple of the {bs}-byte block"
        ));
    }
    let span_blocks = a
        .span
        .map_or(num_blocks, |s| (s / bs as u64).min(num_blocks));
    let per_io = (size / bs) as u64;
    let slots_in_span = span_blocks / per_io;
    if slots_in_span == 0 || a.qd == 0 {
        return Err("the span holds no I/O of this size (or --qd is 0)".into());
    }
    let q = drive.queued();
    let write_data = Bytes::from(vec![0xa5u8; size]);
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut seq = 0u64;
    let mut next_lba = |rng: &mut Rng| -> u64 {
        let slot = match a.pattern {
            Pattern::Randread | Pattern::Randwrite => rng.next() % slots_in_span,
            Pattern::Read | Pattern::Write => {
                seq = (seq + 1) % slots_in_span;
                seq
            }
        };
        slot * per_io
    };
    let reads = matches!(a.pattern, Pattern::Randread | Pattern::Read);
    let submit = |lba: u64, buf: Option<Vec<u8>>| -> InFlight {
        if reads {
            InFlight::Read(q.read(lba, buf.unwrap_or_else(|| vec![0u8; size])))
        } else {
            InFlight::Write(q.write(lba, write_data.clone(), false))
        }
    };
    let mut hist = Histogram::<u64>::new_with_bounds(1, 60_000_000_000, 3)
        .map_err(|e| format!("histogram: {e}"))?;
    let mut cx = Context::from_waker(Waker::noop());
    let mut slots: Vec<(InFlight, Instant)> = (0..a.qd)
        .map(|_| (submit(next_lba(&mut rng), None), Instant::now()))
        .collect();
    let start = Instant::now();
    let measure_from = start + a.warmup;
    let end = measure_from + a.time;
    let mut done = 0u64;
    let mut errors = 0u64;
    let mut first_error = None;
    while Instant::now() < end {
        for (io, started) in slots.iter_mut() {
            if let Poll::Ready((r, buf)) = io.poll(&mut cx) {
                let t = Instant::now();
                if t >= measure_from {
                    done += 1;
                    let _ = hist.record(t.duration_since(*started).as_nanos() as u64);
                }
                if let Err(e) = r {
                    errors += 1;
                    first_error.get_or_insert(e);
                }
                *io = submit(next_lba(&mut rng), buf);
                *started = t;
            }
        }
    }
    // Let what is in flight finish so the drive is quiet when it is shut down.
    for (mut io, _) in slots {
        let _ = block_on(std::future::poll_fn(|cx| io.poll(cx)));
    }
    if let Some(e) = first_error {
        return Err(format!("{errors} commands failed; first: {e}"));
    }
    let secs = a.time.as_secs_f64();
    let iops = done as f64 / secs;
    let mib_s = iops * size as f64 / (1 << 20) as f64;
    let us = |q: f64| hist.value_at_quantile(q) as f64 / 1000.0;
    let name = match a.pattern {
        Pattern::Randread => "randread",
        Pattern::Randwrite => "randwrite",
        Pattern::Read => "read",
        Pattern::Write => "write",
    };
    if a.json {
        println!(
            "{{\"pattern\":\"{name}\",\"size\":{size},\"qd\":{},\"ios\":{done},\"iops\":{iops:.0},\"mib_s\":{mib_s:.1},\"p50_us\":{:.1},\"p99_us\":{:.1},\"max_us\":{:.1}}}",
            a.qd,
            us(0.5),
            us(0.99),
            hist.max() as f64 / 1000.0
        );
    } else {
        println!(
            "{name} {size} B QD{}: {iops:.0} IOPS, {mib_s:.1} MiB/s, latency p50 {:.1} us, p99 {:.1} us, max {:.1} us",
            a.qd,
            us(0.5),
            us(0.99),
            hist.max() as f64 / 1000.0
        );
    }
    Ok(())
}
