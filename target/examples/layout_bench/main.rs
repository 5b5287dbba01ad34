//! The zone layout engine's figures (issue 18), measured on the engine itself with zoned-ram
//! members in memory: write amplification under uniform random and 90:10 hot/cold
//! overwrites against a greedy model, read latency while GC runs against an idle pool, and
//! the time from a crash to the first read after reopening.
//!
//! `layout_bench [--quick] [--out docs/benchmarks.md]` prints a markdown section; with
//! `--out` it also replaces the section it wrote before in that file (or appends one).
//! `make bench` runs it after the loopback benchmark.

mod engine;
mod model;
mod report;
mod workload;

use std::time::Instant;

use target::layout::GcPolicy;

use engine::Members;
use workload::{Fill, Pattern};

/// Sizes of one invocation.
pub struct Plan {
    /// The pool of the WAF and latency runs.
    pub waf_members: Members,
    /// Overwrites, in volume sizes, after the fill; the last `measured_x` are measured.
    pub overwrite_x: f64,
    pub measured_x: f64,
    /// Volumes of the hot/cold runs.
    pub hot_cold_fills: [Fill; 2],
    /// Overwrites of the hot/cold runs and the part measured: longer, as the cold blocks
    /// (a tenth of the writes) take long to reach a steady state.
    pub hot_cold_overwrite_x: f64,
    pub hot_cold_measured_x: f64,
    /// Rounds of idle and busy reads, and seconds of each phase per round.
    pub latency_rounds: usize,
    pub latency_secs: f64,
    /// Writes/s of the paced writer.
    pub latency_pace: u64,
    /// The pool of the recovery runs and the mapped sizes recovered.
    pub recovery_members: Members,
    pub recovery_gib: Vec<u64>,
}

/// 80% of the pool's raw capacity, for reference (where the goal was first measured), and 80%
/// of what the pool offers volumes: "80% fill" as an operator reads it, the goal's.
const HOT_COLD_FILLS: [Fill; 2] = [Fill::Raw(80), Fill::Usable(80)];

impl Plan {
    fn new(quick: bool) -> Plan {
        let zone_blocks = 512; // 2 MiB zones
        if quick {
            return Plan {
                waf_members: Members {
                    members: 2,
                    zones: 64,
                    zone_blocks,
                },
                overwrite_x: 3.0,
                measured_x: 1.0,
                hot_cold_fills: HOT_COLD_FILLS,
                hot_cold_overwrite_x: 6.0,
                hot_cold_measured_x: 2.0,
                latency_rounds: 2,
                latency_secs: 1.0,
                latency_pace: 20_000,
                recovery_members: Members {
                    members: 2,
                    zones: 160,
                    zone_blocks,
                },
                recovery_gib: vec![0, 0],
            };
        }
        Plan {
            waf_members: Members {
                members: 2,
                zones: 256,
                zone_blocks,
            },
            overwrite_x: 3.0,
            measured_x: 1.0,
            hot_cold_fills: HOT_COLD_FILLS,
            hot_cold_overwrite_x: 12.0,
            hot_cold_measured_x: 3.0,
            latency_rounds: 3,
            latency_secs: 4.0,
            latency_pace: 20_000,
            recovery_members: Members {
                members: 2,
                zones: 1280,
                zone_blocks,
            },
            recovery_gib: vec![1, 2, 4],
        }
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (mut quick, mut out) = (false, None);
    let mut it = args.iter().skip(1);
    while let Some(a) = it.next() {
        match (a.as_str(), out.is_none()) {
            ("--quick", _) => quick = true,
            ("--out", true) if it.len() > 0 => out = it.next().cloned(),
            _ => {
                eprintln!("usage: layout_bench [--quick] [--out FILE]");
                std::process::exit(2);
            }
        }
    }
    let plan = Plan::new(quick);
    let loadavg = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let started = Instant::now();
    let m = plan.waf_members;

    let mut wafs = Vec::new();
    let mut latency = None;
    // What a pool of these members offers volumes (zoned-ram allocates only what is written).
    let empty = engine::open(m.make(), GcPolicy::default()).stats();
    let [raw, usable] = plan.hot_cold_fills;
    for (pattern, policy, fill) in [
        (Pattern::Uniform, GcPolicy::Greedy, Fill::Usable(100)),
        (Pattern::Uniform, GcPolicy::CostBenefit, Fill::Usable(100)),
        (Pattern::HotCold, GcPolicy::Greedy, raw),
        (Pattern::HotCold, GcPolicy::CostBenefit, raw),
        (Pattern::HotCold, GcPolicy::Greedy, usable),
        (Pattern::HotCold, GcPolicy::CostBenefit, usable),
    ] {
        if fill.blocks(&empty) > empty.usable_blocks {
            // 80% of raw is more than a small pool offers once its reserve and
            // over-provisioning are kept back (`--quick`).
            eprintln!(
                "layout_bench: {} at {fill:?}: skipped, more than the pool offers",
                pattern.label()
            );
            continue;
        }
        let (overwrite_x, measured_x) = match pattern {
            Pattern::Uniform => (plan.overwrite_x, plan.measured_x),
            Pattern::HotCold => (plan.hot_cold_overwrite_x, plan.hot_cold_measured_x),
        };
        let size = move |s: &target::layout::PoolStats| fill.blocks(s);
        let (run, pool, v) = engine::waf_run(&m, policy, pattern, size, overwrite_x, measured_x, 1);
        let shape_at = |keep_free: usize| model::Shape {
            zones: run.data_zones as usize,
            zone_cap: run.zone_cap,
            logical: run.volume_blocks,
            keep_free: keep_free.max(1),
        };
        // The space the engine's GC actually had: its free zones, on average, are kept free
        // in the model too; a fraction of a zone by interpolating between the whole numbers
        // around it.
        let free = run.mean_free_zones.max(1.0);
        let (below, part) = (free.floor() as usize, free.fract());
        let model_waf = |oracle: bool| {
            let at = |k: usize| {
                model::waf(
                    shape_at(k),
                    pattern,
                    oracle,
                    run.overwrites,
                    run.measured,
                    1,
                )
            };
            let low = at(below);
            if part > 0.0 {
                low + (at(below + 1) - low) * part
            } else {
                low
            }
        };
        let t = Instant::now();
        let model = model_waf(false);
        let oracle = (pattern == Pattern::HotCold).then(|| model_waf(true));
        // The best-split search takes whole zones.
        let shape = shape_at(run.mean_free_zones.round() as usize);
        let best =
            (pattern == Pattern::HotCold).then(|| model::best_separation(shape, 4.0, 1.0, 1));
        eprintln!(
            "layout_bench: {} at {fill:?} {:?}: WAF {:.3} (GC) {:.3} (all), model {:.3}{}; {:.1} zones \
             free, streams {} ({:.0} s, model {:.1} s)",
            pattern.label(),
            policy,
            run.window.gc_waf(),
            run.window.waf(),
            model,
            best.map_or(String::new(), |(b, _)| format!(", apart at best {b:.3}")),
            run.mean_free_zones,
            report::streams(&run),
            run.total_secs,
            t.elapsed().as_secs_f64()
        );
        if pattern == Pattern::Uniform && policy == GcPolicy::CostBenefit {
            let l = engine::read_latency(
                &pool,
                &v,
                plan.latency_rounds,
                plan.latency_secs,
                plan.latency_pace,
                2,
            );
            eprintln!(
                "layout_bench: read p99.9 idle {:.1} µs, during GC with the writer paced {:.1} \
                 µs, at full speed {:.1} µs",
                l.idle.p999, l.paced.lat.p999, l.busy.lat.p999
            );
            latency = Some(l);
        }
        wafs.push(report::WafFigures {
            fill,
            run,
            model,
            oracle,
            best,
        });
    }

    let recovery = if plan.recovery_gib.iter().any(|&g| g > 0) {
        let r = engine::recovery(&plan.recovery_members, &plan.recovery_gib, 3);
        for x in &r {
            eprintln!(
                "layout_bench: recovery of {} GiB mapped: first read after {:.3} s",
                x.mapped_gib, x.first_io_secs
            );
        }
        r
    } else {
        Vec::new()
    };

    let ctx = report::Context {
        command: args.join(" "),
        loadavg: loadavg
            .split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" "),
        plan: &plan,
        total_secs: started.elapsed().as_secs_f64(),
    };
    let text = report::section(
        &ctx,
        &wafs,
        latency.as_ref().expect("latency run"),
        &recovery,
    );
    print!("{text}");
    if let Some(path) = out {
        report::replace_section(&path, &text).unwrap_or_else(|e| {
            eprintln!("layout_bench: {path}: {e}");
            std::process::exit(1);
        });
        eprintln!("layout_bench: wrote the layout section of {path}");
    }
}
