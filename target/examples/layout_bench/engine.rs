//! The measurements on the real engine: pools of zoned-ram members, one volume each, written
//! and read through [`VolumeBackend`] as a namespace would be.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use nix::sched::{sched_getaffinity, sched_setaffinity};
use nix::unistd::Pid;
use nvme::backend::{Backend, ZonedRamBackend, ZonedRamConfig};
use nvme::zns::ZoneLimits;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::SeedableRng;
use target::housekeeping::{keep_off_reactor_cores, Placement};
use target::layout::{GcPolicy, Pool, PoolOptions, PoolStats, VolumeBackend};

use crate::workload::{Fill, Pattern};

pub const BS: u32 = 4096;
const BSU: usize = BS as usize;

/// The members of a pool: `members` zoned-ram namespaces of `zones` zones of `zone_blocks`.
#[derive(Clone, Copy, Debug)]
pub struct Members {
    pub members: usize,
    pub zones: u64,
    pub zone_blocks: u64,
}

impl Members {
    pub fn make(&self) -> Vec<Arc<dyn Backend>> {
        (0..self.members)
            .map(|_| {
                let cfg = ZonedRamConfig {
                    block_size: BS,
                    zone_size: self.zone_blocks,
                    zone_cap: self.zone_blocks,
                    zone_count: self.zones,
                    limits: ZoneLimits::default(),
                    zasl: 0,
                };
                Arc::new(ZonedRamBackend::new(cfg).expect("zoned-ram member")) as Arc<dyn Backend>
            })
            .collect()
    }

    pub fn raw_bytes(&self) -> u64 {
        self.members as u64 * self.zones * self.zone_blocks * u64::from(BS)
    }

    pub fn describe(&self) -> String {
        format!(
            "{} zoned-ram members of {} zones x {} MiB ({} MiB raw), {} KiB blocks",
            self.members,
            self.zones,
            (self.zone_blocks * u64::from(BS)) >> 20,
            self.raw_bytes() >> 20,
            BS / 1024
        )
    }
}

pub fn open(members: Vec<Arc<dyn Backend>>, gc: GcPolicy) -> Pool {
    let opts = PoolOptions {
        gc,
        ..PoolOptions::default()
    };
    Pool::open("bench", members, opts).expect("open the pool")
}

/// A block of data that is not all zeroes, stamped with its LBA.
fn block(lba: u64) -> Vec<u8> {
    let mut b = vec![0xa5u8; BSU];
    b[..8].copy_from_slice(&lba.to_le_bytes());
    b
}

/// Write blocks `0..blocks` in order, 128 KiB at a time.
pub fn fill_sequential(v: &VolumeBackend, blocks: u64) {
    const RUN: u64 = 32;
    let buf = vec![0xa5u8; RUN as usize * BSU];
    let mut lba = 0;
    while lba < blocks {
        let n = RUN.min(blocks - lba);
        v.write(lba, &buf[..n as usize * BSU], false)
            .unwrap_or_else(|e| panic!("fill write at {lba}: {e}"));
        lba += n;
    }
}

/// Counters of a measured window.
#[derive(Clone, Copy, Debug, Default)]
pub struct Window {
    pub host: u64,
    pub gc: u64,
    pub meta: u64,
    pub victims: u64,
    pub secs: f64,
}

impl Window {
    fn between(a: &PoolStats, b: &PoolStats, secs: f64) -> Window {
        Window {
            host: b.host_write_blocks - a.host_write_blocks,
            gc: b.gc_write_blocks - a.gc_write_blocks,
            meta: b.meta_write_blocks - a.meta_write_blocks,
            victims: b.gc_victims - a.gc_victims,
            secs,
        }
    }

    /// (host + GC) / host.
    pub fn gc_waf(&self) -> f64 {
        (self.host + self.gc) as f64 / self.host as f64
    }

    /// (host + GC + metadata) / host.
    pub fn waf(&self) -> f64 {
        (self.host + self.gc + self.meta) as f64 / self.host as f64
    }
}

/// One WAF run and what the model needs to repeat it.
pub struct WafRun {
    pub policy: GcPolicy,
    pub pattern: Pattern,
    pub volume_blocks: u64,
    pub usable_blocks: u64,
    /// Every data zone's capacity, as [`Fill::Raw`] counts it.
    pub raw_blocks: u64,
    /// The pool's over-provisioning (percent).
    pub over_provisioning: u32,
    pub data_zones: u64,
    pub zone_cap: u64,
    pub overwrites: u64,
    pub measured: u64,
    pub window: Window,
    /// Free data zones over the measured window, on average (sampled every 256 writes).
    pub mean_free_zones: f64,
    /// Whether the pool kept young and old data apart at the end, and the dispersion of
    /// lifetimes it judged that by.
    pub hot_cold_apart: bool,
    pub lifetime_dispersion: Option<f64>,
    pub total_secs: f64,
}

impl WafRun {
    /// Data zones holding data or open for it, on average: the physical space GC had to
    /// work in.
    pub fn used_zones(&self) -> f64 {
        self.data_zones as f64 - self.mean_free_zones
    }
}

/// Fill a volume of `volume_blocks` (all of the pool's usable capacity when `None`) in
/// order, then write `overwrite_x` times its size of 4 KiB blocks of `pattern` from one
/// thread; the counters of the last `measured_x` times its size. The pool and volume are
/// handed back for further use.
pub fn waf_run(
    m: &Members,
    policy: GcPolicy,
    pattern: Pattern,
    volume_blocks: impl FnOnce(&PoolStats) -> u64,
    overwrite_x: f64,
    measured_x: f64,
    seed: u64,
) -> (WafRun, Pool, Arc<VolumeBackend>) {
    let started = Instant::now();
    let pool = open(m.make(), policy);
    let s0 = pool.stats();
    let blocks = volume_blocks(&s0);
    let v = pool.volume("v", BS, blocks).expect("create the volume");
    fill_sequential(&v, blocks);
    let overwrites = (blocks as f64 * overwrite_x) as u64;
    let measured = (blocks as f64 * measured_x) as u64;
    let mut rng = StdRng::seed_from_u64(seed);
    let mut mark = None;
    let (mut free_sum, mut samples) = (0u64, 0u64);
    for i in 0..overwrites {
        if i == overwrites - measured {
            mark = Some((pool.stats(), Instant::now()));
        }
        if mark.is_some() && i % 256 == 0 {
            free_sum += pool.stats().free_zones;
            samples += 1;
        }
        let lba = pattern.next(&mut rng, blocks);
        v.write(lba, &block(lba), false)
            .unwrap_or_else(|e| panic!("{pattern:?} write {i} at {lba}: {e}"));
    }
    let (a, t) = mark.expect("a measured window");
    let end = pool.stats();
    let window = Window::between(&a, &end, t.elapsed().as_secs_f64());
    let run = WafRun {
        policy,
        pattern,
        volume_blocks: blocks,
        usable_blocks: s0.usable_blocks,
        raw_blocks: Fill::Raw(100).blocks(&s0),
        over_provisioning: s0.over_provisioning,
        data_zones: s0.data_zones,
        zone_cap: s0.zone_data_blocks,
        overwrites,
        measured,
        window,
        mean_free_zones: free_sum as f64 / samples.max(1) as f64,
        hot_cold_apart: end.hot_cold_apart,
        lifetime_dispersion: end.lifetime_dispersion,
        total_secs: started.elapsed().as_secs_f64(),
    };
    (run, pool, v)
}

/// Read latency percentiles, in µs.
#[derive(Clone, Copy, Debug, Default)]
pub struct Lat {
    pub reads: u64,
    pub p50: f64,
    pub p99: f64,
    pub p999: f64,
    pub max: f64,
}

impl Lat {
    fn of(h: &Histogram<u64>) -> Lat {
        let us = |q: f64| h.value_at_quantile(q) as f64 / 1000.0;
        Lat {
            reads: h.len(),
            p50: us(0.5),
            p99: us(0.99),
            p999: us(0.999),
            max: h.max() as f64 / 1000.0,
        }
    }
}

/// One phase of the latency run: reads while a writer does (or does not) write.
pub struct Phase {
    pub lat: Lat,
    /// Each round's p99.9 over the idle p99.9 of that round.
    pub round_ratios: Vec<f64>,
    /// What the writer and GC did while the reads ran.
    pub window: Window,
}

pub struct LatRun {
    /// Where the threads other than the reader ran.
    pub placement: Placement,
    pub idle: Lat,
    /// The writer paced at `pace` writes/s: GC collects all along, the CPUs have room.
    pub paced: Phase,
    pub pace: u64,
    /// The writer as fast as it goes.
    pub busy: Phase,
}

fn new_histogram() -> Histogram<u64> {
    Histogram::<u64>::new_with_bounds(1, 60_000_000_000, 3).expect("histogram")
}

/// The CPU the reads run on, as a reactor's core: `ferrofab serve` with `[reactor] cores`
/// pins each reactor to its core and moves every other thread, a pool's GC thread among them,
/// to the CPUs left (`target::housekeeping`).
pub const READ_CORE: usize = 0;

/// QD1 4 KiB random reads for `secs`, timed one by one (ns), on a thread named and pinned as
/// reactor 0 is.
fn read_for(v: &VolumeBackend, blocks: u64, secs: f64, rng: &mut StdRng) -> Histogram<u64> {
    std::thread::scope(|s| {
        std::thread::Builder::new()
            .name(format!("ff-reactor-{READ_CORE}"))
            .spawn_scoped(s, || {
                fabric::tcp::reactor::pin_to_core(READ_CORE).expect("pin the reader");
                time_reads(v, blocks, secs, rng)
            })
            .expect("spawn the reader")
            .join()
            .expect("reader thread")
    })
}

fn time_reads(v: &VolumeBackend, blocks: u64, secs: f64, rng: &mut StdRng) -> Histogram<u64> {
    let mut h = new_histogram();
    let mut buf = vec![0u8; BSU];
    let end = Instant::now() + Duration::from_secs_f64(secs);
    while Instant::now() < end {
        let lba = Pattern::Uniform.next(rng, blocks);
        let t = Instant::now();
        v.read(lba, &mut buf).expect("read");
        let ns = t.elapsed().as_nanos() as u64;
        h.record(ns.max(1)).expect("in range");
        assert!(
            buf[8..].iter().any(|&b| b != 0),
            "block {lba} reads back zeroes"
        );
    }
    h
}

/// Wait until GC has stopped collecting (no victim for half a second).
fn quiesce(pool: &Pool) {
    let mut last = pool.stats().gc_victims;
    loop {
        std::thread::sleep(Duration::from_millis(500));
        let now = pool.stats().gc_victims;
        if now == last {
            return;
        }
        last = now;
    }
}

/// Reads for `secs` while a writer thread overwrites random blocks, at `pace` writes/s
/// (in bursts each millisecond) or as fast as it goes; GC runs all along, the pool being
/// full.
fn read_while_writing(
    pool: &Pool,
    v: &Arc<VolumeBackend>,
    secs: f64,
    pace: Option<u64>,
    seed: u64,
    rng: &mut StdRng,
) -> (Histogram<u64>, Window) {
    let blocks = v.info().num_blocks;
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (v, stop) = (v.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut rng = StdRng::seed_from_u64(seed);
            let started = Instant::now();
            let mut written = 0u64;
            while !stop.load(Ordering::Relaxed) {
                if let Some(pace) = pace {
                    let due = (started.elapsed().as_secs_f64() * pace as f64) as u64;
                    if written >= due {
                        std::thread::sleep(Duration::from_millis(1));
                        continue;
                    }
                }
                let lba = Pattern::Uniform.next(&mut rng, blocks);
                v.write(lba, &block(lba), false).expect("background write");
                written += 1;
            }
        })
    };
    // Let GC get going before measuring.
    std::thread::sleep(Duration::from_millis(500));
    let a = pool.stats();
    let t = Instant::now();
    let h = read_for(v, blocks, secs, rng);
    let win = Window::between(&a, &pool.stats(), t.elapsed().as_secs_f64());
    stop.store(true, Ordering::Relaxed);
    writer.join().expect("writer thread");
    (h, win)
}

/// Rounds of reads on the idle pool, then while a writer paced at `pace` writes/s
/// overwrites random blocks, then while it writes as fast as it goes; `secs` of reads per
/// phase and round. The rounds alternate so that what else the machine does falls on every
/// phase alike. Threads are placed as the daemon places them: the reads on a reactor's core,
/// the rest (this thread, the writer it spawns, the pool's GC thread) off it; this thread's
/// CPUs are given back at the end.
pub fn read_latency(
    pool: &Pool,
    v: &Arc<VolumeBackend>,
    rounds: usize,
    secs: f64,
    pace: u64,
    seed: u64,
) -> LatRun {
    let blocks = v.info().num_blocks;
    let mine = sched_getaffinity(Pid::from_raw(0)).expect("this thread's CPUs");
    let placement =
        keep_off_reactor_cores(Some(&[READ_CORE])).expect("move the threads off the read core");
    let mut rng = StdRng::seed_from_u64(seed);
    let mut idle = new_histogram();
    let mut phases: Vec<(Histogram<u64>, Vec<f64>, Window)> = (0..2)
        .map(|_| (new_histogram(), Vec::new(), Window::default()))
        .collect();
    for round in 0..rounds {
        quiesce(pool);
        let i = read_for(v, blocks, secs, &mut rng);
        for (k, pace) in [Some(pace), None].into_iter().enumerate() {
            let seed = seed ^ (((round * 2 + k) as u64 + 1) << 32);
            let (h, win) = read_while_writing(pool, v, secs, pace, seed, &mut rng);
            let (all, ratios, window) = &mut phases[k];
            ratios.push(Lat::of(&h).p999 / Lat::of(&i).p999);
            *window = Window {
                host: window.host + win.host,
                gc: window.gc + win.gc,
                meta: window.meta + win.meta,
                victims: window.victims + win.victims,
                secs: window.secs + win.secs,
            };
            all.add(&h).expect("same bounds");
            quiesce(pool);
        }
        idle.add(&i).expect("same bounds");
    }
    let mut phases = phases.into_iter().map(|(h, round_ratios, window)| Phase {
        lat: Lat::of(&h),
        round_ratios,
        window,
    });
    sched_setaffinity(Pid::from_raw(0), &mine).expect("give this thread its CPUs back");
    LatRun {
        placement,
        idle: Lat::of(&idle),
        paced: phases.next().expect("paced"),
        pace,
        busy: phases.next().expect("busy"),
    }
}

pub struct RecoveryRun {
    pub mapped_gib: f64,
    pub mapped_after: u64,
    /// `Pool::open` alone, after the crash that followed the fill.
    pub open_secs: f64,
    /// `Pool::open`, opening the volume and one 4 KiB read, after that crash.
    pub first_io_secs: f64,
    /// The same after each of the further crashes (a few thousand random overwrites each).
    pub again_secs: Vec<f64>,
    /// From the start of the open until the background recount had visited every map page
    /// (valid counts complete, GC free to run).
    pub recount_secs: f64,
}

/// Crashes timed per mapped size after the first.
const RECOVERY_AGAIN: usize = 2;

/// Drop the pool without a flush (what the journal buffer holds is lost, as at a power cut)
/// and time opening it again until a read completes: (open, first read) seconds.
fn crash_and_reopen(
    pool: Pool,
    members: &[Arc<dyn Backend>],
    blocks: u64,
) -> (Pool, Arc<VolumeBackend>, f64, f64, f64) {
    drop(pool);
    let t = Instant::now();
    let p = open(members.to_vec(), GcPolicy::default());
    let open_secs = t.elapsed().as_secs_f64();
    let v = p.volume("v", BS, blocks).expect("open the volume");
    let mut buf = vec![0u8; BSU];
    v.read(0, &mut buf).expect("first read");
    let first = t.elapsed().as_secs_f64();
    p.collect(0).expect("recount");
    let counted = t.elapsed().as_secs_f64();
    (p, v, open_secs, first, counted)
}

/// Fill the volume to each of `gib` GiB in turn with 4 KiB writes in random order (every
/// map entry a single block: the largest checkpoint a mapped size can have), crash, and time
/// the way back to a first read; then crash a few more times after a few thousand random
/// overwrites each.
pub fn recovery(m: &Members, gib: &[u64], seed: u64) -> Vec<RecoveryRun> {
    let members = m.make();
    let mut pool = open(members.clone(), GcPolicy::default());
    let blocks = pool.stats().usable_blocks;
    let mut v = pool.volume("v", BS, blocks).expect("create the volume");
    let mut rng = StdRng::seed_from_u64(seed);
    let mut done = 0u64;
    let mut out = Vec::new();
    for &g in gib {
        let upto = (g << 30) / u64::from(BS);
        assert!(upto <= blocks, "{g} GiB is more than the pool holds");
        let mut order: Vec<u64> = (done..upto).collect();
        order.shuffle(&mut rng);
        for lba in order {
            v.write(lba, &block(lba), false).expect("fill write");
        }
        done = upto;
        drop(v);
        let (p, v2, open_secs, first_io_secs, recount_secs) =
            crash_and_reopen(pool, &members, blocks);
        let mapped_after = p.stats().mapped_blocks;
        (pool, v) = (p, v2);
        let mut again_secs = Vec::new();
        for _ in 0..RECOVERY_AGAIN {
            for _ in 0..4096 {
                let lba = Pattern::Uniform.next(&mut rng, done.max(1));
                v.write(lba, &block(lba), false).expect("overwrite");
            }
            drop(v);
            let (p, v2, _, first, _) = crash_and_reopen(pool, &members, blocks);
            again_secs.push(first);
            (pool, v) = (p, v2);
        }
        out.push(RecoveryRun {
            mapped_gib: g as f64,
            mapped_after,
            open_secs,
            first_io_secs,
            again_secs,
            recount_secs,
        });
    }
    out
}
