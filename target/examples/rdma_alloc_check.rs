//! The NVMe/RDMA reactor's data path allocates nothing in steady state: a target with one
//! RDMA reactor (its allocations counted) on the RDMA device with address ADDR serves a RAM
//! namespace to the in-tree NVMe/RDMA initiator (`ferrofab perf --transport rdma`, whose own
//! threads are not counted). Warm-up writes the whole range and runs every workload deeper
//! than measured; then each measured workload runs on a fresh association, and the
//! reactor's allocations are read in a window inside its run, after the connection's set-up.
//! Needs an RDMA device (the hw-tests guest's soft-RoCE, hw-test 33).
//!
//! Usage: `rdma_alloc_check ADDR:PORT`; prints `rdma_alloc_check: OK` and exits 0 when no
//! workload's window saw an allocation.

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use fabric::tcp::reactor::ThreadHook;
use target::perf::{self, Pattern, PerfConfig, TransportKind};
use target::{Config, Daemon, TargetParams};

#[path = "../tests/support/counting_alloc.rs"]
mod counting_alloc;
use counting_alloc::{CountingAlloc, ALLOCATIONS, TRACKED};

#[global_allocator]
static GLOBAL: CountingAlloc = CountingAlloc;

const SUB: &str = "nqn.2026-01.io.ferrofab:rdma-alloc";
/// The namespace range the workloads touch (written in full first: a RAM namespace
/// allocates a chunk when it is first written).
const RANGE: u64 = 16 << 20;

fn config(addr: SocketAddr) -> Config {
    let text = format!(
        r#"
[[listener]]
transport = "rdma"
address = "{addr}"

[reactor]
count = 1

[[subsystem]]
nqn = "{SUB}"

[[subsystem.namespace]]
nsid = 1
backend = "ram"
size = "64MiB"
block_size = 4096
"#
    );
    Config::parse(&text, "rdma_alloc_check").expect("the check's config is valid")
}

fn perf_config(addr: SocketAddr, pattern: Pattern, io_size: u32, qd: u16, secs: u64) -> PerfConfig {
    PerfConfig {
        target: addr,
        transport: TransportKind::Rdma,
        nqn: SUB.to_string(),
        nsid: 1,
        hostnqn: None,
        pattern,
        read_pct: 50,
        io_size,
        qd,
        time: Duration::from_secs(secs),
        warmup: Duration::ZERO,
        // One polling thread, on the last CPU (the reactor is not pinned).
        cores: vec![std::thread::available_parallelism().map_or(0, |n| n.get() - 1)],
        connections: 1,
        queues: 2,
        header_digest: false,
        data_digest: false,
        sqflow: false,
        range: Some(RANGE),
        progress: false,
    }
}

/// Run `cfg`; with `window`, return the reactor's allocations between those offsets into
/// the run.
async fn run(cfg: PerfConfig, window: Option<(Duration, Duration)>) -> Result<u64, String> {
    let what = format!("{} {} B QD{}", cfg.pattern.name(), cfg.io_size, cfg.qd);
    let load = tokio::spawn(async move { perf::run(&cfg).await });
    let mut counted = 0;
    if let Some((from, to)) = window {
        tokio::time::sleep(from).await;
        let before = ALLOCATIONS.load(Ordering::Relaxed);
        tokio::time::sleep(to - from).await;
        counted = ALLOCATIONS.load(Ordering::Relaxed) - before;
    }
    let report = load
        .await
        .map_err(|e| format!("{what}: {e}"))?
        .map_err(|e| format!("{what}: {e}"))?;
    println!(
        "{what}: {} I/Os, {:.0} IOPS, {} errors{}",
        report.ios,
        report.iops,
        report.errors,
        window.map_or(String::new(), |_| format!(
            ", {counted} reactor allocations"
        ))
    );
    if report.errors > 0 || report.ios == 0 {
        return Err(format!(
            "{what}: {} errors, {} I/Os: {:?}",
            report.errors, report.ios, report.error_samples
        ));
    }
    Ok(counted)
}

fn track() -> ThreadHook {
    Arc::new(|_| TRACKED.with(|t| t.set(true)))
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let Some(addr) = std::env::args()
        .nth(1)
        .and_then(|a| a.parse::<SocketAddr>().ok())
    else {
        eprintln!("usage: rdma_alloc_check ADDR:PORT (an RDMA device's address)");
        std::process::exit(2);
    };
    let daemon =
        match Daemon::start_with(config(addr), TargetParams::default(), Some(track())).await {
            Ok(d) => d,
            Err(e) => {
                eprintln!("rdma_alloc_check: the target did not start: {e}");
                std::process::exit(1);
            }
        };
    let workloads = [
        (Pattern::RandRw, 4096, 32),
        (Pattern::RandRw, 128 << 10, 32),
        (Pattern::Rw, 1 << 20, 8),
    ];
    let mut failed = Vec::new();
    // Write the range, then every workload three times deeper than measured (pooled and
    // registered buffers, in-flight tables and work lists grow to their peak).
    let mut warm = vec![perf_config(addr, Pattern::Write, 1 << 20, 8, 4)];
    warm.extend(
        workloads
            .iter()
            .map(|&(p, size, qd)| perf_config(addr, p, size, qd * 3, 3)),
    );
    for cfg in warm {
        if let Err(e) = run(cfg, None).await {
            failed.push(format!("warm-up {e}"));
        }
    }
    if ALLOCATIONS.load(Ordering::Relaxed) == 0 {
        failed.push("the counter saw none of the reactor's set-up allocations".into());
    }
    for (p, size, qd) in workloads {
        let window = (Duration::from_secs(2), Duration::from_secs(5));
        match run(perf_config(addr, p, size, qd, 6), Some(window)).await {
            Ok(0) => {}
            Ok(n) => failed.push(format!(
                "{} {size} B QD{qd}: the reactor allocated {n} times in steady state",
                p.name()
            )),
            Err(e) => failed.push(e),
        }
    }
    daemon.shutdown().await;
    if failed.is_empty() {
        println!("rdma_alloc_check: OK");
    } else {
        for f in &failed {
            eprintln!("rdma_alloc_check: FAILED: {f}");
        }
        std::process::exit(1);
    }
}
