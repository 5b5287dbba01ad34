//! The reactor data path against the in-tree initiator: no allocation in steady state,
//! least-loaded placement, pinning, and an idle adaptive reactor that sleeps.

use std::cell::Cell;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicI32, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use fabric::initiator::controller::Controller;
use fabric::initiator::HostOptions;
use fabric::tcp::reactor::ThreadHook;
use futures::future::join_all;
use nvme::driver::dma::HeapDma;
use nvme::driver::model::{ModelConfig, NsModel, SoftController};
use nvme::driver::nvme_driver::{DriverOptions, NvmeDriver};
use nvme::driver::pool::PagePool;
use nvme::driver::regs::Mmio;
use nvme::Status;
use target::drives::{DriveSettings, Drives};
use target::{Config, Daemon, TargetParams};

#[path = "support/counting_alloc.rs"]
mod counting_alloc;
use counting_alloc::{CountingAlloc, ALLOCATIONS, PAUSED as IN_DEVICE, TRACKED};

/// Locks the tracked threads took (`ferrofab_sync` counts every acquisition in the workspace).
static LOCKS: AtomicU64 = AtomicU64::new(0);
/// Of those, the ones the model drive took standing in for the device.
static DEVICE_LOCKS: AtomicU64 = AtomicU64::new(0);
/// One counting test at a time: the counter is the process's.
static COUNTING: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

#[global_allocator]
static GLOBAL: CountingAlloc = CountingAlloc;

const SUB: &str = "nqn.2026-01.io.ferrofab:reactor";

fn config(reactor: &str) -> Config {
    config_with(reactor, "")
}

/// [`config`] with more of the file after it (namespaces of the subsystem).
fn config_with(reactor: &str, more: &str) -> Config {
    let text = format!(
        r#"
[[listener]]
transport = "tcp"
address = "127.0.0.1:0"

[reactor]
{reactor}

[[subsystem]]
nqn = "{SUB}"

[[subsystem.namespace]]
nsid = 1
backend = "ram"
size = "64MiB"

[[subsystem.namespace]]
nsid = 2
backend = "null"
size = "64MiB"
{more}"#
    );
    Config::parse(&text, "test").expect("test config is valid")
}

async fn connect(addr: SocketAddr, io_queues: u16, digests: bool, sqflow_off: bool) -> Controller {
    let opts = HostOptions {
        io_queues,
        // No keep-alive traffic: the measured window must be I/O only.
        kato_ms: 0,
        header_digest: digests,
        data_digest: digests,
        disable_sqflow: sqflow_off,
        ..HostOptions::default()
    };
    Controller::connect(addr, SUB, opts).await.expect("connect")
}

fn pattern(len: usize, seed: u8) -> Bytes {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect::<Vec<u8>>()
        .into()
}

/// `depth` concurrent commands per batch on queue 1: writes, then reads checked against them,
/// on namespace `nsid` (512-byte blocks), plus null-namespace reads.
async fn io_round(ctrl: &Controller, nsid: u32, len: usize, seed: u8, depth: u64) {
    let blocks = (len / 512) as u32;
    let data: Vec<Bytes> = (0..depth).map(|i| pattern(len, seed ^ i as u8)).collect();
    let writes = (0..depth).map(|i| {
        ctrl.write(
            1,
            nsid,
            i * u64::from(blocks),
            data[i as usize].clone(),
            false,
        )
    });
    for r in join_all(writes).await {
        assert_eq!(r.expect("write").status(), Status::SUCCESS);
    }
    let reads =
        (0..depth).map(|i| ctrl.read_with_block_size(1, nsid, i * u64::from(blocks), blocks, 512));
    for (i, r) in join_all(reads).await.into_iter().enumerate() {
        let r = r.expect("read");
        assert_eq!(r.status(), Status::SUCCESS);
        assert!(r.data == data[i], "read back {len} bytes at slot {i}");
    }
    let zeroes = (0..depth).map(|i| ctrl.read_with_block_size(1, 2, i * 8, blocks, 512));
    for r in join_all(zeroes).await {
        let r = r.expect("null read");
        assert_eq!(r.status(), Status::SUCCESS);
        assert!(r.data.len() == len && r.data.iter().all(|&b| b == 0));
    }
}

/// Transfers larger than MAXH2CDATA and one C2HData PDU (128 KiB), `depth` at once at
/// `base` (in 512-byte blocks) on namespace `nsid`: writes (when `write`), solicited with
/// several R2Ts, then reads of that data.
async fn big_round(ctrl: &Controller, nsid: u32, len: usize, base: u64, depth: u64, write: bool) {
    let blocks = (len / 512) as u32;
    let data: Vec<Bytes> = (0..depth).map(|i| pattern(len, 0x80 ^ i as u8)).collect();
    let lba = |i: u64| base + i * u64::from(blocks);
    if write {
        let writes =
            (0..depth).map(|i| ctrl.write(1, nsid, lba(i), data[i as usize].clone(), false));
        for r in join_all(writes).await {
            assert_eq!(r.expect("write").status(), Status::SUCCESS);
        }
    }
    let reads = (0..depth).map(|i| ctrl.read_with_block_size(1, nsid, lba(i), blocks, 512));
    for (i, r) in join_all(reads).await.into_iter().enumerate() {
        let r = r.expect("read");
        assert_eq!(r.status(), Status::SUCCESS);
        assert!(r.data == data[i], "read back {len} bytes at slot {i}");
    }
}

/// 256 KiB and 1 MiB writes and reads, in 2 and 8 H2CData/C2HData PDUs, past the small
/// rounds' blocks.
const BIG_IOS: [(usize, u64); 2] = [(256 << 10, 32 << 11), (1 << 20, 40 << 11)];

async fn workload(ctrls: &[Controller], nsid: u32, depth: u64) {
    for (n, c) in ctrls.iter().enumerate() {
        for len in [4096, 16384, 128 * 1024] {
            io_round(c, nsid, len, n as u8, depth).await;
        }
        for (len, base) in BIG_IOS {
            big_round(c, nsid, len, base, 4, true).await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn steady_state_io_allocates_nothing_on_the_reactor() {
    let _one = COUNTING.lock().await;
    let d = Daemon::start_with(config("count = 1"), TargetParams::default(), Some(track()))
        .await
        .expect("daemon starts");
    let addr = d.addresses()[0];
    // Plain, digests on both, and SQ flow control off (C2HData SUCCESS, no CapsuleResp).
    let ctrls = vec![
        connect(addr, 1, false, false).await,
        connect(addr, 1, true, false).await,
        connect(addr, 1, false, true).await,
    ];
    // A RAM namespace's chunks are shared by every reactor: each command takes its chunk
    // shard's RwLock, so only allocations are asserted here.
    measure(&ctrls, 1, "2,736", Locks::Counted).await;
    for c in ctrls {
        c.shutdown().await.expect("shutdown");
    }
    d.shutdown().await;
}

/// What [`measure`] asserts of the reactor's locks.
#[derive(PartialEq)]
enum Locks {
    /// None taken.
    None,
    /// Counted and printed only.
    Counted,
}

/// Warm up, then count the reactor's allocations (and locks) over three workloads on
/// namespace `nsid`.
async fn measure(ctrls: &[Controller], nsid: u32, commands: &str, locks: Locks) {
    // Warm-up grows the pools, maps and queues to the working set. Buffer pools grow to the
    // most reads ever outstanding at once, which depends on how the commands' arrival
    // interleaves with their completion; warming up three times deeper than the measured
    // load makes sure that peak covers it.
    // The large transfers run three times deeper than measured (pooled buffers, held
    // buffers and queued PDU pieces grow to their peak).
    for c in ctrls {
        for (len, base) in BIG_IOS {
            big_round(c, nsid, len, base, 12, true).await;
        }
    }
    for _ in 0..2 {
        workload(ctrls, nsid, 96).await;
    }
    let before = ALLOCATIONS.load(Ordering::Relaxed);
    let locks_before = reactor_locks();
    for _ in 0..3 {
        workload(ctrls, nsid, 32).await;
    }
    let during = ALLOCATIONS.load(Ordering::Relaxed) - before;
    let locked = reactor_locks() - locks_before;
    println!("reactor over {commands} commands: {during} allocations, {locked} locks");
    if locks == Locks::None {
        assert_eq!(
            locked, 0,
            "the reactor took {locked} locks over {commands} commands in steady state"
        );
    }
    assert_eq!(
        during, 0,
        "the reactor allocated {during} times over {commands} commands in steady state"
    );
    assert!(
        before > 0,
        "the counter sees the reactor's set-up allocations"
    );
    assert!(
        locks_before > 0,
        "the counter sees the reactor's set-up locks"
    );
}

/// The model drive's registers, marking the model's own work as the device's.
struct ModelRegisters(SoftController);

fn in_device<T>(f: impl FnOnce() -> T) -> T {
    IN_DEVICE.with(|d| d.set(true));
    let locks = ferrofab_sync::taken();
    let r = f();
    if TRACKED.with(Cell::get) {
        DEVICE_LOCKS.fetch_add(ferrofab_sync::taken() - locks, Ordering::Relaxed);
    }
    IN_DEVICE.with(|d| d.set(false));
    r
}

/// The reactor's thread hook: count its allocations and its locks.
fn track() -> ThreadHook {
    Arc::new(|_| {
        TRACKED.with(|t| t.set(true));
        ferrofab_sync::report_to(&LOCKS);
    })
}

/// Locks the reactor took, not counting the model drive's own.
fn reactor_locks() -> u64 {
    LOCKS.load(Ordering::Relaxed) - DEVICE_LOCKS.load(Ordering::Relaxed)
}

impl Mmio for ModelRegisters {
    fn read32(&self, offset: usize) -> u32 {
        in_device(|| self.0.read32(offset))
    }
    fn write32(&self, offset: usize, value: u32) {
        in_device(|| self.0.write32(offset, value))
    }
    fn read64(&self, offset: usize) -> u64 {
        in_device(|| self.0.read64(offset))
    }
    fn write64(&self, offset: usize, value: u64) {
        in_device(|| self.0.write64(offset, value))
    }
}

const MODEL_PCI: &str = "0000:7f:00.0";

/// A started driver on the software controller: one 64 MiB namespace of 512-byte blocks that
/// takes 4 KiB << `mdts` in one command (MDTS 8, 1 MiB, as QEMU's emulated drive), described
/// by an SGL when `sgls` (as QEMU's) or else by PRPs.
fn model_drive(mdts: u8, sgls: bool) -> Arc<NvmeDriver<Arc<HeapDma>>> {
    let cfg = ModelConfig {
        mdts,
        sgls,
        namespaces: vec![NsModel {
            block_size: 512,
            blocks: 64 << 11,
            zoned: None,
        }],
        ..ModelConfig::default()
    };
    let host = Arc::new(HeapDma::new(96 << 20, 1 << 32));
    let ctrl = SoftController::new(cfg, Arc::clone(&host));
    let pool = PagePool::new(host, 4096).expect("page-aligned host memory");
    let opts = DriverOptions {
        io_queues: 3,
        owned_queues: 1,
        queue_depth: 256,
        timeout: Duration::from_secs(30),
    };
    NvmeDriver::start(Box::new(ModelRegisters(ctrl)), pool, opts).expect("model drive starts")
}

/// A daemon serving the model drive (see [`model_drive`]) as namespace 3.
async fn model_daemon(
    mdts: u8,
    sgls: bool,
    hook: Option<ThreadHook>,
) -> (Daemon, Arc<NvmeDriver<Arc<HeapDma>>>) {
    let drive = format!(
        "\n[[subsystem.namespace]]\nnsid = 3\nbackend = {{ kind = \"nvme-vfio\", pci = \"{MODEL_PCI}\", nsid = 1 }}\n"
    );
    let config = config_with("count = 1", &drive);
    let drives = Arc::new(Drives::new(DriveSettings::new(&config.drives, 1)));
    let driver = model_drive(mdts, sgls);
    drives.adopt(MODEL_PCI, Box::new(Arc::clone(&driver)));
    let d = Daemon::start_with_drives(config, TargetParams::default(), hook, drives)
        .await
        .expect("daemon starts");
    (d, driver)
}

/// Transfers larger than the drive takes in one command leave the polled path for the split
/// one; the data still reads back (128 KiB drive limit: 256 KiB and 1 MiB split, 4 KiB to
/// 128 KiB polled).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drive_io_over_one_drive_command_is_split_and_reads_back() {
    let (d, _) = model_daemon(5, true, None).await;
    let c = connect(d.addresses()[0], 1, false, false).await;
    workload(std::slice::from_ref(&c), 3, 8).await;
    c.shutdown().await.expect("shutdown");
    d.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn steady_state_drive_io_allocates_nothing_on_the_reactor() {
    drive_io_allocates_nothing(true).await;
}

/// The same on a drive without SGLs: PRP lists (up to 1 MiB = 256 pages: one list page).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn steady_state_prp_drive_io_allocates_nothing_on_the_reactor() {
    drive_io_allocates_nothing(false).await;
}

async fn drive_io_allocates_nothing(sgls: bool) {
    let _one = COUNTING.lock().await;
    let (d, driver) = model_daemon(8, sgls, Some(track())).await;
    let addr = d.addresses()[0];
    // Plain, digests on both (data digests over the drive's DMA memory), and SQ flow
    // control off (C2HData SUCCESS, no CapsuleResp).
    let ctrls = vec![
        connect(addr, 1, false, false).await,
        connect(addr, 1, true, false).await,
        connect(addr, 1, false, true).await,
    ];
    measure(&ctrls, 3, "2,736", Locks::None).await;
    // Every read of the drive (all take one drive command here: MDTS 1 MiB) was sent from
    // the DMA memory the drive wrote it to, without a copy: its bytes, and no others.
    let small: u64 = [4096u64, 16384, 128 * 1024].iter().sum();
    let big: u64 = BIG_IOS.iter().map(|&(len, _)| len as u64).sum();
    let workload = |depth: u64| depth * small + 4 * big;
    let per_ctrl = 12 * big + 2 * workload(96) + 3 * workload(32);
    let want = per_ctrl * ctrls.len() as u64;
    let mut sent = 0;
    for _ in 0..100 {
        sent = d.reactor_samples()[0].zero_copy_sent;
        if sent >= want {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(sent, want, "bytes sent from the drive's DMA memory");
    // Solicited writes (16 KiB and up) were received into the drive's DMA memory; what had
    // not arrived with an H2CData header went there straight from the socket. (How much did
    // depends on how the stream was cut, so only its bounds are asserted.)
    let solicited: u64 = [16384u64, 128 * 1024].iter().sum();
    let written = |depth: u64| depth * solicited + 4 * big;
    let max_steered = (12 * big + 2 * written(96) + 3 * written(32)) * ctrls.len() as u64;
    let received = d.reactor_samples()[0].zero_copy_received;
    assert!(
        received > 0 && received <= max_steered,
        "{received} bytes received into DMA memory (at most {max_steered})"
    );
    // The reactor's polled commands went through the pair it owns, without its mutex.
    assert_eq!(
        driver.unowned_queues(),
        0,
        "the reactor owns the one pair to own"
    );
    for c in ctrls {
        c.shutdown().await.expect("shutdown");
    }
    d.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queues_go_to_the_least_loaded_reactor_and_stay() {
    let d = Daemon::start(config("count = 2"), TargetParams::default())
        .await
        .expect("daemon starts");
    let addr = d.addresses()[0];
    let a = connect(addr, 3, false, false).await;
    // Admin + 3 I/O queues over 2 reactors.
    assert_eq!(d.reactor_loads(), vec![2, 2]);
    let b = connect(addr, 1, false, false).await;
    assert_eq!(d.reactor_loads(), vec![3, 3]);
    io_round(&a, 1, 4096, 1, 32).await;
    io_round(&b, 1, 4096, 2, 32).await;
    a.shutdown().await.expect("shutdown");
    b.shutdown().await.expect("shutdown");
    for _ in 0..200 {
        if d.reactor_loads() == vec![0, 0] {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(
        d.reactor_loads(),
        vec![0, 0],
        "closed connections leave their reactor"
    );
    d.shutdown().await;
}

/// CPU time (user + system, in clock ticks) of one thread of this process.
fn thread_ticks(tid: i32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/self/task/{tid}/stat")).expect("stat");
    // Fields after the parenthesized name: state is field 3; utime 14 and stime 15.
    let rest = &stat[stat.rfind(')').expect("comm") + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    f[11].parse::<u64>().unwrap() + f[12].parse::<u64>().unwrap()
}

/// /proc reports CPU times in USER_HZ, which Linux fixes at 100 for user space.
fn ticks_per_second() -> u64 {
    100
}

/// CPU share of the reactor over `secs` seconds of an idle connection.
async fn idle_share(poll: &str) -> f64 {
    static TID: AtomicI32 = AtomicI32::new(0);
    let hook: ThreadHook =
        Arc::new(|_| TID.store(nix::unistd::gettid().as_raw(), Ordering::SeqCst));
    let d = Daemon::start_with(
        config(&format!("count = 1\npoll = \"{poll}\"")),
        TargetParams::default(),
        Some(hook),
    )
    .await
    .expect("daemon starts");
    let c = connect(d.addresses()[0], 1, false, false).await;
    io_round(&c, 1, 4096, 3, 32).await;
    let tid = TID.load(Ordering::SeqCst);
    let t0 = thread_ticks(tid);
    let started = std::time::Instant::now();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let secs = started.elapsed().as_secs_f64();
    let used = (thread_ticks(tid) - t0) as f64 / ticks_per_second() as f64;
    c.shutdown().await.expect("shutdown");
    d.shutdown().await;
    used / secs
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_adaptive_reactor_sleeps_and_a_busy_one_spins() {
    let adaptive = idle_share("adaptive").await;
    assert!(
        adaptive < 0.05,
        "idle adaptive reactor used {:.1}% of a core",
        adaptive * 100.0
    );
    // The measurement can tell: a busy-polling reactor burns its core even when idle.
    let busy = idle_share("busy").await;
    assert!(
        busy > 0.10,
        "busy reactor used only {:.1}% of a core",
        busy * 100.0
    );
}

/// The reactor's busy/idle accounting: an idle reactor accrues idle time, a loaded one busy
/// time and busy polls, and every moment of its life is one or the other (the two add up to
/// the wall time, less the iteration still running when sampled).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reactor_time_is_busy_or_idle_and_adds_up_to_the_wall_time() {
    let d = Daemon::start(
        config("count = 1\npoll = \"adaptive\""),
        TargetParams::default(),
    )
    .await
    .expect("daemon starts");
    let c = connect(d.addresses()[0], 1, false, false).await;
    let sample = || d.reactor_samples()[0];
    let (s0, t0) = (sample(), std::time::Instant::now());
    tokio::time::sleep(Duration::from_secs(1)).await;
    let (s1, t1) = (sample(), std::time::Instant::now());
    let (idle_busy, idle_idle) = (s1.busy_ns - s0.busy_ns, s1.idle_ns - s0.idle_ns);
    assert!(
        idle_idle > 9 * idle_busy,
        "idle for a second: {idle_busy} ns busy, {idle_idle} ns idle"
    );
    while t1.elapsed() < Duration::from_secs(1) {
        io_round(&c, 1, 4096, 5, 32).await;
    }
    let (s2, t2) = (sample(), std::time::Instant::now());
    let load_busy = s2.busy_ns - s1.busy_ns;
    assert!(
        load_busy > 5 * idle_busy.max(1_000_000),
        "a second of I/O: {load_busy} ns busy, against {idle_busy} ns idle"
    );
    assert!(
        s2.busy_polls - s1.busy_polls >= 32,
        "every round's commands took busy polls"
    );
    assert!(
        s2.commands - s1.commands >= 96,
        "three commands a slot a round"
    );
    // Up to the last iteration's end (an idle one sleeps at most 50 ms) and a scheduling delay.
    let wall = (t2 - t0).as_nanos() as u64;
    let counted = (s2.busy_ns + s2.idle_ns) - (s0.busy_ns + s0.idle_ns);
    assert!(
        counted.abs_diff(wall) < 250_000_000,
        "{counted} ns counted over {wall} ns of wall time"
    );
    c.shutdown().await.expect("shutdown");
    d.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reactors_pin_to_their_cores_and_bad_cores_are_refused() {
    static TID: AtomicI32 = AtomicI32::new(0);
    let hook: ThreadHook =
        Arc::new(|_| TID.store(nix::unistd::gettid().as_raw(), Ordering::SeqCst));
    let d = Daemon::start_with(config("cores = [0]"), TargetParams::default(), Some(hook))
        .await
        .expect("daemon starts");
    let tid = TID.load(Ordering::SeqCst);
    let status = std::fs::read_to_string(format!("/proc/self/task/{tid}/status")).unwrap();
    let allowed = status
        .lines()
        .find_map(|l| l.strip_prefix("Cpus_allowed_list:"))
        .map(str::trim);
    assert_eq!(allowed, Some("0"));
    d.shutdown().await;

    let err = match Daemon::start(config("cores = [4000]"), TargetParams::default()).await {
        Ok(_) => panic!("core 4000 accepted"),
        Err(e) => e.to_string(),
    };
    assert!(err.contains("core 4000"), "unclear error: {err}");
}
