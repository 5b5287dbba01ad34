//! The reference the engine's GC is held against: a log-structured store reduced to zone
//! bookkeeping, with one write frontier (no hot/cold streams, host writes and GC copies go to
//! the same zone) and greedy victim selection (the full zone with the fewest valid blocks).
//! It moves no data, so millions of writes take a second or two.
//!
//! With an oracle it shows what greedy victims do even when hot and cold data never share a
//! zone: two frontiers, every block written (by the host or by GC) to the one of its class
//! as the workload defines it, which no real placement knows. Greedy then still spreads the
//! free space badly between the classes, so this is no bound on what separation can give.

use rand::rngs::StdRng;
use rand::SeedableRng;

use crate::workload::Pattern;

const NONE: u32 = u32::MAX;

/// The store's shape: what the engine's pool gives it.
#[derive(Clone, Copy, Debug)]
pub struct Shape {
    /// Data zones in all (every member's, the engine's reserve zones included).
    pub zones: usize,
    pub zone_cap: u64,
    /// Logical blocks written (the volume).
    pub logical: u64,
    /// GC runs while fewer zones than this are free (the engine's watermark, summed over
    /// its members).
    pub keep_free: usize,
}

struct Store {
    shape: Shape,
    /// Logical block -> physical block (zone * cap + offset), or NONE.
    l2p: Vec<u32>,
    /// Physical block -> logical block, or NONE.
    p2l: Vec<u32>,
    valid: Vec<u32>,
    full: Vec<bool>,
    free: Vec<usize>,
    /// Open zone and blocks written in it, per class (one class without an oracle).
    frontier: Vec<(usize, u64)>,
    /// The class of a logical block, when an oracle separates them.
    class: Option<Box<dyn Fn(u32) -> usize>>,
    host: u64,
    gc: u64,
}

impl Store {
    fn new(shape: Shape, class: Option<Box<dyn Fn(u32) -> usize>>) -> Store {
        let blocks = shape.zones as u64 * shape.zone_cap;
        assert!(blocks < u64::from(NONE) && shape.logical < blocks);
        let classes = if class.is_some() { 2 } else { 1 };
        let mut free: Vec<usize> = (classes..shape.zones).rev().collect();
        free.shrink_to_fit();
        Store {
            shape,
            l2p: vec![NONE; shape.logical as usize],
            p2l: vec![NONE; blocks as usize],
            valid: vec![0; shape.zones],
            full: vec![false; shape.zones],
            free,
            frontier: (0..classes).map(|z| (z, 0)).collect(),
            class,
            host: 0,
            gc: 0,
        }
    }

    /// Put logical block `lba` at its frontier; a full frontier takes the next free zone.
    fn place(&mut self, lba: u32) {
        let cap = self.shape.zone_cap;
        let c = self.class.as_ref().map_or(0, |f| f(lba));
        let (zone, fill) = self.frontier[c];
        let at = zone as u64 * cap + fill;
        if let Some(old) = Some(self.l2p[lba as usize]).filter(|&o| o != NONE) {
            self.p2l[old as usize] = NONE;
            self.valid[(u64::from(old) / cap) as usize] -= 1;
        }
        self.l2p[lba as usize] = at as u32;
        self.p2l[at as usize] = lba;
        self.valid[zone] += 1;
        self.frontier[c].1 += 1;
        if fill + 1 == cap {
            self.full[zone] = true;
            self.frontier[c] = (self.free.pop().expect("GC keeps free zones"), 0);
        }
    }

    fn collect(&mut self) {
        while self.free.len() < self.shape.keep_free {
            let victim = (0..self.shape.zones)
                .filter(|&z| self.full[z])
                .min_by_key(|&z| self.valid[z])
                .expect("a full zone");
            let cap = self.shape.zone_cap;
            if u64::from(self.valid[victim]) == cap {
                panic!("the model has no space to gain: logical blocks exceed what it can hold");
            }
            self.full[victim] = false;
            let first = victim as u64 * cap;
            for p in first..first + cap {
                let lba = self.p2l[p as usize];
                if lba != NONE {
                    self.place(lba);
                    self.gc += 1;
                }
            }
            debug_assert_eq!(self.valid[victim], 0);
            self.free.insert(0, victim);
        }
    }

    fn write(&mut self, lba: u64) {
        self.collect();
        self.place(lba as u32);
        self.host += 1;
    }
}

/// Fill every logical block in order, then `overwrites` writes of `pattern`; the WAF (host +
/// GC copies over host) of the last `measured` of them. With `oracle`, blocks are placed by
/// the class `pattern` gives them (hot or cold).
pub fn waf(
    shape: Shape,
    pattern: Pattern,
    oracle: bool,
    overwrites: u64,
    measured: u64,
    seed: u64,
) -> f64 {
    let logical = shape.logical;
    let class: Option<Box<dyn Fn(u32) -> usize>> = oracle
        .then(|| Box::new(move |lba| usize::from(pattern.is_hot(u64::from(lba), logical))) as _);
    let mut s = Store::new(shape, class);
    for lba in 0..logical {
        s.write(lba);
    }
    let mut rng = StdRng::seed_from_u64(seed);
    let mut mark = (0, 0);
    for i in 0..overwrites {
        if i == overwrites - measured {
            mark = (s.host, s.gc);
        }
        s.write(pattern.next(&mut rng, logical));
    }
    let host = s.host - mark.0;
    let gc = s.gc - mark.1;
    (host + gc) as f64 / host as f64
}

/// What the best separation of a 90:10 hot/cold workload could give on `shape`: hot and
/// cold blocks in stores of their own (zones never shared, free zones split in proportion),
/// each collected greedily under its own uniform random writes, with the zones split
/// between the two at best (searched). Returns the WAF, (host + GC copies) over host
/// writes with 90% of them hot, and the hot store's zones. A reference for how far
/// placement alone can go at this spare, not a model of the engine.
pub fn best_separation(shape: Shape, overwrite_x: f64, measured_x: f64, seed: u64) -> (f64, usize) {
    let hot_logical = (shape.logical / 10).max(1);
    let cold_logical = shape.logical - hot_logical;
    let cap = shape.zone_cap;
    let z = shape.zones;
    let keep = |zones: usize| (shape.keep_free * zones / z).max(1);
    // Zones a store needs to hold its blocks and still gain from a collection.
    let least =
        |logical: u64, zones_hint: usize| logical.div_ceil(cap) + keep(zones_hint) as u64 + 3;
    let lo = least(hot_logical, z / 10) as usize;
    let hi = z.saturating_sub(least(cold_logical, z) as usize);
    assert!(lo <= hi, "no split leaves both stores room");
    let store = |zones: usize, logical: u64| {
        let s = Shape {
            zones,
            zone_cap: cap,
            logical,
            keep_free: keep(zones),
        };
        let over = (logical as f64 * overwrite_x) as u64;
        let measured = (logical as f64 * measured_x) as u64;
        waf(s, Pattern::Uniform, false, over, measured, seed)
    };
    let total = |hot_zones: usize| {
        0.9 * store(hot_zones, hot_logical) + 0.1 * store(z - hot_zones, cold_logical)
    };
    // Coarse, then around the best coarse split one zone at a time.
    let step = ((hi - lo) / 24).max(1);
    let mut best = (f64::MAX, lo);
    for h in (lo..=hi).step_by(step) {
        let w = total(h);
        if w < best.0 {
            best = (w, h);
        }
    }
    let (from, to) = (best.1.saturating_sub(step).max(lo), (best.1 + step).min(hi));
    let fine = (step / 6).max(1);
    for h in (from..=to).step_by(fine) {
        let w = total(h);
        if w < best.0 {
            best = (w, h);
        }
    }
    best
}
