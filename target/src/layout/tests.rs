//! The layout engine on zoned-ram members: data read back, GC, recovery, and power cuts that
//! drop every write not yet durable.

use std::sync::{Arc, Mutex};

use ferrofab_sync::CountedLock as _;
use nvme::backend::{
    Backend, BackendError, BackendInfo, ZonedBackend, ZonedGeometry, ZonedRamBackend,
    ZonedRamConfig,
};
use nvme::zns::{ReportOption, ZoneAction, ZoneLimits};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::{GcPolicy, LayoutError, Pool, PoolOptions};

const BS: u32 = 4096;

fn cfg(zones: u64, zone_blocks: u64) -> ZonedRamConfig {
    ZonedRamConfig {
        block_size: BS,
        zone_size: zone_blocks,
        zone_cap: zone_blocks,
        zone_count: zones,
        limits: ZoneLimits::default(),
        zasl: 0,
    }
}

pub(super) fn ram(zones: u64, zone_blocks: u64) -> Arc<dyn Backend> {
    Arc::new(ZonedRamBackend::new(cfg(zones, zone_blocks)).unwrap())
}

/// A block stamped with its LBA and a generation, so a read tells whose data it got.
fn stamp(lba: u64, generation: u64) -> Vec<u8> {
    let mut b = vec![0u8; BS as usize];
    for c in b.chunks_exact_mut(16) {
        c[..8].copy_from_slice(&lba.to_le_bytes());
        c[8..].copy_from_slice(&generation.to_le_bytes());
    }
    b
}

/// The generation a block holds (0: zeroes), checking it is the block's own data.
fn read_stamp(v: &dyn Backend, lba: u64) -> u64 {
    let mut b = vec![0u8; BS as usize];
    v.read(lba, &mut b).unwrap();
    if b.iter().all(|&x| x == 0) {
        return 0;
    }
    let got_lba = u64::from_le_bytes(b[..8].try_into().unwrap());
    assert_eq!(got_lba, lba, "block {lba} returned block {got_lba}'s data");
    let g = u64::from_le_bytes(b[8..16].try_into().unwrap());
    assert_eq!(b, stamp(lba, g), "block {lba} is torn");
    g
}

#[test]
fn volumes_read_back_what_was_written_and_trimmed() {
    let pool = Pool::open("t", vec![ram(32, 64), ram(32, 64)], PoolOptions::default()).unwrap();
    let a = pool.volume("a", BS, 1000).unwrap();
    let b = pool.volume("b", BS, 500).unwrap();
    let mut data = Vec::new();
    for lba in 0..40 {
        data.extend(stamp(lba, 1));
    }
    a.write(0, &data, false).unwrap();
    b.write(10, &stamp(10, 7), true).unwrap();
    for lba in 0..40 {
        assert_eq!(read_stamp(&*a, lba), 1);
    }
    assert_eq!(read_stamp(&*a, 40), 0);
    assert_eq!(read_stamp(&*b, 10), 7);
    assert_eq!(read_stamp(&*b, 0), 0);
    a.deallocate(5, 3).unwrap();
    assert_eq!(read_stamp(&*a, 5), 0);
    assert_eq!(read_stamp(&*a, 8), 1);
    a.write(6, &stamp(6, 2), false).unwrap();
    assert_eq!(read_stamp(&*a, 6), 2);
    assert_eq!(pool.stats().mapped_blocks, 40 - 3 + 1 + 1);
    // Out of range and misaligned commands are refused.
    assert!(matches!(
        a.write(999, &data[..8192], false),
        Err(BackendError::OutOfRange { .. })
    ));
    assert!(matches!(
        a.write(0, &data[..100], false),
        Err(BackendError::Misaligned { .. })
    ));
    // A volume name in use with another geometry, and a block size the drives lack.
    assert!(matches!(
        pool.volume("a", BS, 999),
        Err(LayoutError::Invalid(_))
    ));
    assert!(matches!(
        pool.volume("c", 512, 999),
        Err(LayoutError::Invalid(_))
    ));
}

#[test]
fn a_pool_comes_back_with_its_volumes_after_a_clean_stop() {
    let members = vec![ram(24, 32), ram(24, 32)];
    {
        let pool = Pool::open("t", members.clone(), PoolOptions::default()).unwrap();
        let v = pool.volume("v", BS, 300).unwrap();
        for lba in 0..300 {
            v.write(lba, &stamp(lba, lba + 1), false).unwrap();
        }
        v.deallocate(100, 10).unwrap();
        pool.volume("gone", BS, 10).unwrap();
        pool.delete_volume("gone").unwrap();
        v.flush().unwrap();
    }
    let pool = Pool::open("t", members, PoolOptions::default()).unwrap();
    assert_eq!(
        pool.volumes()
            .iter()
            .map(|v| v.name.as_str())
            .collect::<Vec<_>>(),
        ["v"]
    );
    let v = pool.volume("v", BS, 300).unwrap();
    for lba in 0..300 {
        let want = if (100..110).contains(&lba) {
            0
        } else {
            lba + 1
        };
        assert_eq!(read_stamp(&*v, lba), want);
    }
    // Options the pool was not made with are refused.
    drop(v);
    let members = pool_members(pool);
    let other = PoolOptions {
        op_percent: Some(20),
        ..PoolOptions::default()
    };
    assert!(Pool::open("t", members, other).is_err());
}

/// Over-provisioning is fixed at format: a pool formatted without one named keeps the
/// default, and an existing pool opened without one named keeps its own (a pool made before
/// the default changed opens as it was made); one it was not made with is refused.
#[test]
fn an_unnamed_over_provisioning_is_the_default_for_a_new_pool_and_the_pools_own_after() {
    let with = |op| PoolOptions {
        op_percent: op,
        ..PoolOptions::default()
    };
    let pool = Pool::open("t", vec![ram(24, 32), ram(24, 32)], with(None)).unwrap();
    assert_eq!(pool.stats().over_provisioning, super::DEFAULT_OP_PERCENT);
    let default_usable = pool.stats().usable_blocks;
    drop(pool);

    let members = vec![ram(24, 32), ram(24, 32)];
    let pool = Pool::open("t", members.clone(), with(Some(5))).unwrap();
    let (op, usable) = (pool.stats().over_provisioning, pool.stats().usable_blocks);
    assert_eq!(op, 5);
    assert!(usable > default_usable, "{usable} vs {default_usable}");
    let v = pool.volume("v", BS, usable).unwrap();
    v.write(usable - 1, &stamp(usable - 1, 7), false).unwrap();
    v.flush().unwrap();
    drop((v, pool));

    let pool = Pool::open("t", members.clone(), with(None)).unwrap();
    assert_eq!(
        (pool.stats().over_provisioning, pool.stats().usable_blocks),
        (5, usable)
    );
    let v = pool.volume("v", BS, usable).unwrap();
    assert_eq!(read_stamp(&*v, usable - 1), 7);
    drop((v, pool));
    let Err(e) = Pool::open("t", members, with(Some(super::DEFAULT_OP_PERCENT))) else {
        panic!("opened with an over-provisioning it was not made with");
    };
    assert!(
        e.to_string()
            .contains("made with 5% over-provisioning, not 15%"),
        "{e}"
    );
    let Err(e) = Pool::open("t", vec![ram(24, 32)], with(Some(90))) else {
        panic!("formatted with 90% over-provisioning");
    };
    assert!(e.to_string().contains("90%"), "{e}");
}

/// A superblock naming an over-provisioning no pool may have is corrupt, whatever the
/// options say: the usable capacity is never computed from it.
#[test]
fn a_superblock_with_an_impossible_over_provisioning_is_refused() {
    use super::format::{Kind, MetaHeader, Superblock};
    let members = vec![ram(24, 32)];
    drop(Pool::open("t", members.clone(), PoolOptions::default()).unwrap());
    // The newest record is the one read: append one of a later generation saying 95%.
    let bs = BS as usize;
    let mut first = vec![0u8; bs];
    members[0].read(0, &mut first).unwrap();
    let h = MetaHeader::peek(&first, Kind::Superblock, None).unwrap();
    let mut record = vec![0u8; h.count.get() as usize * bs];
    members[0].read(0, &mut record).unwrap();
    let mut sb = Superblock::decode(&record, None).unwrap();
    sb.generation += 1000;
    sb.body.op_percent = 95.into();
    let zoned = members[0].zoned().unwrap();
    zoned.append(0, &sb.encode(h.pool_id, bs), false).unwrap();
    for op in [None, Some(15)] {
        let opts = PoolOptions {
            op_percent: op,
            ..PoolOptions::default()
        };
        let Err(e) = Pool::open("t", members.clone(), opts) else {
            panic!("opened a pool whose superblock says 95% over-provisioning");
        };
        assert!(matches!(e, LayoutError::Corrupt(_)), "{e}");
        assert!(e.to_string().contains("95% is out of range"), "{e}");
    }
}

fn pool_members(pool: Pool) -> Vec<Arc<dyn Backend>> {
    let m = pool
        .inner
        .members
        .iter()
        .map(|m| m.backend.clone())
        .collect();
    drop(pool);
    m
}

#[test]
fn drives_with_other_data_or_geometry_are_refused() {
    let used = ram(24, 32);
    used.zoned()
        .unwrap()
        .append(32 * 5, &stamp(0, 1), false)
        .unwrap();
    let e = Pool::open("t", vec![used], PoolOptions::default()).unwrap_err();
    assert!(e.to_string().contains("refusing to format"), "{e}");
    let e = Pool::open("t", vec![ram(24, 32), ram(24, 64)], PoolOptions::default()).unwrap_err();
    assert!(e.to_string().contains("differs from member 0"), "{e}");
    // Member 0 keeps up to three data streams and three metadata zones active.
    let limited = ZonedRamConfig {
        limits: ZoneLimits {
            max_open: 3,
            max_active: 5,
        },
        ..cfg(24, 32)
    };
    let limited: Arc<dyn Backend> = Arc::new(ZonedRamBackend::new(limited).unwrap());
    let e = Pool::open("t", vec![limited], PoolOptions::default()).unwrap_err();
    assert!(e.to_string().contains("allows 5 active zones"), "{e}");
    let plain: Arc<dyn Backend> = Arc::new(nvme::backend::RamBackend::new(1 << 20, BS).unwrap());
    let e = Pool::open("t", vec![plain], PoolOptions::default()).unwrap_err();
    assert!(e.to_string().contains("not a zoned"), "{e}");
}

/// Random overwrites of most of a volume for several times its size: GC keeps up, every
/// block reads back its latest data, and space is reclaimed. Returns the pool's figures and
/// the streams of the data zones open at the end.
fn churn(policy: GcPolicy, hot_cold: bool) -> (super::PoolStats, Vec<super::pool::Stream>) {
    let pool = Pool::open(
        "t",
        vec![ram(40, 64), ram(40, 64)],
        PoolOptions {
            gc: policy,
            ..PoolOptions::default()
        },
    )
    .unwrap();
    let blocks = pool.capacity_bytes() / u64::from(BS) * 8 / 10;
    let v = pool.volume("v", BS, blocks).unwrap();
    let mut model = vec![0u64; blocks as usize];
    let mut rng = StdRng::seed_from_u64(1);
    for lba in 0..blocks {
        v.write(lba, &stamp(lba, 1), false).unwrap();
        model[lba as usize] = 1;
    }
    for g in 2..blocks * 4 {
        let lba = if hot_cold && rng.random_range(0..10) < 9 {
            rng.random_range(0..blocks / 10)
        } else {
            rng.random_range(0..blocks)
        };
        v.write(lba, &stamp(lba, g), false).unwrap();
        model[lba as usize] = g;
    }
    for lba in 0..blocks {
        assert_eq!(read_stamp(&*v, lba), model[lba as usize], "block {lba}");
    }
    let s = pool.stats();
    assert!(s.gc_victims > 0 && s.zone_resets > 0, "{s:?}");
    assert_eq!(s.mapped_blocks, blocks);
    let st = pool.inner.lock();
    let open = (st.zones.iter())
        .filter_map(|z| match z.state {
            super::pool::ZState::Open(s) if s != super::pool::Stream::Map => Some(s),
            _ => None,
        })
        .collect();
    (s, open)
}

/// Uniform random overwrites: ages at death spread no wider than an exponential's (GC's
/// moves cut them shorter still), so one stream takes host writes and GC's copies alike (the
/// zones the other streams had open before the verdict filled up, none opened since). 90:10
/// hot/cold: spread far wider, streams apart.
#[test]
fn gc_keeps_every_block_under_random_overwrites() {
    use super::pool::Stream;
    let (s, open) = churn(GcPolicy::CostBenefit, false);
    assert!(s.waf() > 1.0 && s.waf() < 6.0, "{s:?}");
    let d = s.lifetime_dispersion.unwrap();
    assert!(d < 1.25, "{s:?}");
    assert!(!s.hot_cold_apart, "{s:?}");
    assert!(open.iter().all(|&o| o == Stream::Host), "{open:?}");
    let (s, open) = churn(GcPolicy::Greedy, true);
    assert!(s.lifetime_dispersion.unwrap() > 1.5, "{s:?}");
    assert!(s.hot_cold_apart, "{s:?}");
    assert!(open.contains(&Stream::Gc), "{open:?}");
}

#[test]
fn a_full_pool_answers_no_space_and_trim_gives_it_back() {
    let pool = Pool::open("t", vec![ram(24, 32)], PoolOptions::default()).unwrap();
    let cap = pool.capacity_bytes() / u64::from(BS);
    let a = pool.volume("a", BS, cap).unwrap();
    let b = pool.volume("b", BS, cap).unwrap();
    for lba in 0..cap {
        a.write(lba, &stamp(lba, 1), false).unwrap();
    }
    assert!(matches!(
        b.write(0, &stamp(0, 1), false),
        Err(BackendError::NoSpace)
    ));
    a.deallocate(0, cap / 2).unwrap();
    for lba in 0..cap / 4 {
        b.write(lba, &stamp(lba, 2), false).unwrap();
    }
    assert_eq!(read_stamp(&*b, 3), 2);
    assert_eq!(read_stamp(&*a, cap - 1), 1);
    pool.delete_volume("a").unwrap();
    assert!(matches!(
        a.read(0, &mut vec![0; BS as usize]),
        Err(BackendError::Gone(_))
    ));
}

/// A zoned-ram drive that remembers, per zone, how far its writes are durable (a Flush makes
/// all of them durable, FUA its zone up to its end), and on a power cut keeps of each zone
/// the durable part and a random part of the rest (a zone is written in order, so what
/// survives is a prefix).
struct CutDrive {
    drive: ZonedRamBackend,
    zones: Mutex<Vec<Track>>,
}

#[derive(Clone, Copy, Default)]
struct Track {
    written: u64,
    durable: u64,
    finished: bool,
}

impl CutDrive {
    fn new(c: ZonedRamConfig) -> CutDrive {
        CutDrive {
            drive: ZonedRamBackend::new(c).unwrap(),
            zones: Mutex::new(vec![Track::default(); c.zone_count as usize]),
        }
    }

    fn wrote(&self, lba: u64, blocks: u64, fua: bool) {
        let zs = self.drive.config().zone_size;
        let mut z = self.zones.lock_counted();
        let t = &mut z[(lba / zs) as usize];
        t.written = t.written.max(lba % zs + blocks);
        if fua {
            t.durable = t.written;
        }
    }

    /// The drive after a power cut.
    fn cut(&self, rng: &mut StdRng) -> CutDrive {
        let c = self.drive.config();
        let after = CutDrive::new(c);
        let tracks = self.zones.lock_counted().clone();
        for (i, t) in tracks.iter().enumerate() {
            let zslba = i as u64 * c.zone_size;
            let keep = if t.durable >= t.written {
                t.written
            } else {
                rng.random_range(t.durable..=t.written)
            };
            if keep > 0 {
                let mut buf = vec![0u8; (keep * u64::from(c.block_size)) as usize];
                self.drive.read(zslba, &mut buf).unwrap();
                after.drive.write(zslba, &buf, false).unwrap();
            }
            let z = after.drive.zoned().unwrap();
            if t.finished && keep == t.written {
                if keep < c.zone_cap {
                    z.send(zslba, ZoneAction::Finish, false).unwrap();
                }
            } else if keep > 0 && keep < c.zone_cap {
                z.send(zslba, ZoneAction::Close, false).unwrap();
            }
            after.zones.lock_counted()[i] = Track {
                written: keep,
                durable: keep,
                finished: t.finished && keep == t.written,
            };
        }
        after
    }
}

impl Backend for CutDrive {
    fn info(&self) -> BackendInfo {
        BackendInfo {
            volatile_write_cache: true,
            ..self.drive.info()
        }
    }
    fn read(&self, lba: u64, buf: &mut [u8]) -> Result<(), BackendError> {
        self.drive.read(lba, buf)
    }
    fn write(&self, lba: u64, data: &[u8], fua: bool) -> Result<(), BackendError> {
        self.drive.write(lba, data, fua)?;
        self.wrote(lba, data.len() as u64 / u64::from(BS), fua);
        Ok(())
    }
    fn flush(&self) -> Result<(), BackendError> {
        for t in self.zones.lock_counted().iter_mut() {
            t.durable = t.written;
        }
        Ok(())
    }
    fn write_zeroes(&self, _lba: u64, _blocks: u64) -> Result<(), BackendError> {
        unreachable!("the pool does not write zeroes")
    }
    fn deallocate(&self, _lba: u64, _blocks: u64) -> Result<(), BackendError> {
        unreachable!("the pool resets zones")
    }
    fn may_block(&self) -> bool {
        false
    }
    fn zoned(&self) -> Option<&dyn ZonedBackend> {
        Some(self)
    }
}

impl ZonedBackend for CutDrive {
    fn geometry(&self) -> ZonedGeometry {
        self.drive.zoned().unwrap().geometry()
    }
    fn append(&self, zslba: u64, data: &[u8], fua: bool) -> Result<u64, BackendError> {
        let at = self.drive.zoned().unwrap().append(zslba, data, fua)?;
        self.wrote(at, data.len() as u64 / u64::from(BS), fua);
        Ok(at)
    }
    fn send(&self, slba: u64, action: ZoneAction, all: bool) -> Result<(), BackendError> {
        assert!(!all);
        self.drive.zoned().unwrap().send(slba, action, false)?;
        let zs = self.drive.config().zone_size;
        let t = &mut self.zones.lock_counted()[(slba / zs) as usize];
        match action {
            // Zone management is durable when it completes.
            ZoneAction::Reset => *t = Track::default(),
            ZoneAction::Finish => {
                t.finished = true;
                t.durable = t.written;
            }
            _ => {}
        }
        Ok(())
    }
    fn report(
        &self,
        slba: u64,
        option: ReportOption,
        partial: bool,
        out: &mut [u8],
    ) -> Result<(), BackendError> {
        self.drive
            .zoned()
            .unwrap()
            .report(slba, option, partial, out)
    }
    fn changed_zones(&self, clear: bool) -> Vec<u64> {
        self.drive.zoned().unwrap().changed_zones(clear)
    }
}

/// What a block may read after a power cut: what it held at the last Flush (or FUA write
/// of it), or anything written to it since.
#[derive(Clone, Default)]
struct Allowed {
    durable: u64,
    since: Vec<u64>,
}

/// Random writes (some FUA), deallocations and flushes, keeping `model`.
fn power_cut_load(v: &dyn Backend, model: &mut [Allowed], rng: &mut StdRng, g: &mut u64) {
    let blocks = model.len() as u64;
    for _ in 0..rng.random_range(50..1500) {
        *g += 1;
        match rng.random_range(0..100) {
            0..=4 => {
                v.flush().unwrap();
                for a in model.iter_mut() {
                    if let Some(&last) = a.since.last() {
                        a.durable = last;
                    }
                    a.since.clear();
                }
            }
            5..=9 => {
                let lba = rng.random_range(0..blocks);
                let n = rng.random_range(1..=16).min(blocks - lba);
                v.deallocate(lba, n).unwrap();
                for b in lba..lba + n {
                    model[b as usize].since.push(0);
                }
            }
            r => {
                let lba = rng.random_range(0..blocks);
                let n = rng.random_range(1..=8).min(blocks - lba);
                let fua = r < 15;
                let data: Vec<u8> = (lba..lba + n).flat_map(|b| stamp(b, *g)).collect();
                v.write(lba, &data, fua).unwrap();
                for b in lba..lba + n {
                    let a = &mut model[b as usize];
                    if fua {
                        a.durable = *g;
                        a.since.clear();
                    } else {
                        a.since.push(*g);
                    }
                }
            }
        }
    }
}

/// Map pages of 507 entries take this many bytes of a map cache.
const PAGE_BYTES: u64 = 507 * 8 + 64;

/// Three rounds of load, power cut and recovery on the same drives: each recovery starts
/// from what the ones before left (a journal continued in place, or cut off by a checkpoint).
/// `paged`: a volume of ~20 map pages with a cache of 4, so pages are written back,
/// dropped and read again all along.
fn power_cut_trial(seed: u64, paged: bool) {
    let mut rng = StdRng::seed_from_u64(seed);
    let c = if paged { cfg(40, 256) } else { cfg(28, 32) };
    let mut drives: Vec<Arc<CutDrive>> = (0..2).map(|_| Arc::new(CutDrive::new(c))).collect();
    let as_members = |d: &[Arc<CutDrive>]| {
        d.iter()
            .map(|d| d.clone() as Arc<dyn Backend>)
            .collect::<Vec<_>>()
    };
    let opts = PoolOptions {
        journal_zones: 2,
        map_cache_bytes: if paged { 4 * PAGE_BYTES } else { 0 },
        ..PoolOptions::default()
    };
    let mut pool = Pool::open("t", as_members(&drives), opts).unwrap();
    let blocks = pool.capacity_bytes() / u64::from(BS) * 7 / 10;
    let mut model = vec![Allowed::default(); blocks as usize];
    let mut g = 0;
    for round in 0..3 {
        let v = pool.volume("v", BS, blocks).unwrap();
        power_cut_load(&*v, &mut model, &mut rng, &mut g);
        // The power goes: no flush, the pool simply stops.
        drop(v);
        drop(pool);
        drives = drives.iter().map(|d| Arc::new(d.cut(&mut rng))).collect();
        pool = Pool::open("t", as_members(&drives), opts)
            .unwrap_or_else(|e| panic!("seed {seed} round {round}: recovery failed: {e}"));
        let v = pool.volume("v", BS, blocks).unwrap();
        for lba in 0..blocks {
            let got = read_stamp(&*v, lba);
            let a = &mut model[lba as usize];
            assert!(
                got == a.durable || a.since.contains(&got),
                "seed {seed} round {round}: block {lba} reads generation {got}; durable {}, \
                 since {:?}",
                a.durable,
                a.since
            );
            *a = Allowed {
                durable: got,
                since: Vec::new(),
            };
        }
    }
}

/// Trials of each power-cut test: `FF_POWER_CUT_TRIALS`, 100 by default.
fn power_cut_trials() -> u64 {
    std::env::var("FF_POWER_CUT_TRIALS")
        .ok()
        .and_then(|t| t.parse().ok())
        .unwrap_or(100)
}

#[test]
fn power_cuts_lose_no_flushed_data() {
    let trials = power_cut_trials();
    for seed in 0..trials {
        power_cut_trial(seed, false);
    }
}

#[test]
fn power_cuts_lose_no_flushed_data_with_a_small_map_cache() {
    let trials = power_cut_trials();
    for seed in 0..trials {
        power_cut_trial(1000 + seed, true);
    }
}

/// A volume whose map is five times the cache: random overwrites (GC moving blocks and map
/// pages), reads, a volume deleted and a restart, with every block checked, the cache held
/// to its budget and the map written back as it goes.
#[test]
fn a_small_map_cache_pages_the_map() {
    let members = vec![ram(40, 256), ram(40, 256)];
    let opts = PoolOptions {
        map_cache_bytes: 4 * PAGE_BYTES,
        ..PoolOptions::default()
    };
    let pool = Pool::open("t", members.clone(), opts).unwrap();
    let blocks = pool.capacity_bytes() / u64::from(BS) * 8 / 10;
    assert!(blocks > 20 * 507, "{blocks} blocks: more than 20 map pages");
    let other = pool.volume("other", BS, 600).unwrap();
    other.write(0, &stamp(0, 9), false).unwrap();
    let v = pool.volume("v", BS, blocks).unwrap();
    let mut model = vec![0u64; blocks as usize];
    let mut rng = StdRng::seed_from_u64(11);
    for g in 1..=blocks * 3 {
        let lba = rng.random_range(0..blocks);
        v.write(lba, &stamp(lba, g), false).unwrap();
        model[lba as usize] = g;
        if g % 5000 == 0 {
            for _ in 0..200 {
                let lba = rng.random_range(0..blocks);
                assert_eq!(read_stamp(&*v, lba), model[lba as usize]);
            }
        }
    }
    assert_eq!(pool.stats().map_cache_pages, 4);
    // Clean pages within the budget once GC's batch lets go of the pages it pinned; dirty
    // ones until the GC thread or the writers write them back.
    let s = settled(&pool, |s| {
        s.map_pages_resident <= s.map_cache_pages + s.map_pages_dirty + 8
    });
    assert!(
        s.gc_victims > 0 && s.meta_write_blocks > s.host_write_blocks / 2,
        "{s:?}"
    );
    assert_eq!(
        s.mapped_blocks,
        model.iter().filter(|&&g| g != 0).count() as u64 + 1
    );
    drop((v, other));
    pool.delete_volume("other").unwrap();
    v_check(&pool, blocks, &model);
    pool.checkpoint().unwrap();
    drop(pool);
    let pool = Pool::open("t", members, opts).unwrap();
    // Clean pages stay within the budget (dirty ones, from the replay, until written back).
    settled(&pool, |s| {
        s.map_pages_resident <= s.map_cache_pages + s.map_pages_dirty + 2
    });
    v_check(&pool, blocks, &model);
    pool.collect(0).unwrap();
    let s = pool.stats();
    assert!(s.counted);
    assert_eq!(
        s.mapped_blocks,
        model.iter().filter(|&&g| g != 0).count() as u64
    );
}

/// The pool's figures once `ok` holds of them (the GC thread works on meanwhile: it pins
/// the pages of a victim's blocks and drops clean pages past the budget every 100 ms);
/// panics with them when it does not within 10 s.
fn settled(pool: &Pool, ok: impl Fn(&super::PoolStats) -> bool) -> super::PoolStats {
    let end = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let s = pool.stats();
        if ok(&s) {
            return s;
        }
        assert!(std::time::Instant::now() < end, "{s:?}");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

fn v_check(pool: &Pool, blocks: u64, model: &[u64]) {
    let v = pool.volume("v", BS, blocks).unwrap();
    for lba in 0..blocks {
        assert_eq!(read_stamp(&*v, lba), model[lba as usize], "block {lba}");
    }
}

#[test]
fn small_blocks_and_checkpoints_over_several_zones() {
    // 512-byte blocks hold 29 directory entries each and 59 map entries a page: this
    // pool's ~520 map pages take a checkpoint over 2 zones of 16 blocks.
    let c = ZonedRamConfig {
        block_size: 512,
        ..cfg(2048, 16)
    };
    let members: Vec<Arc<dyn Backend>> = vec![Arc::new(ZonedRamBackend::new(c).unwrap())];
    let blocks = {
        let pool = Pool::open("t", members.clone(), PoolOptions::default()).unwrap();
        assert_eq!(pool.inner.geo.ckpt_zones, 2);
        let blocks = pool.capacity_bytes() / 512;
        let v = pool.volume("v", 512, blocks).unwrap();
        let mut rng = StdRng::seed_from_u64(3);
        // Scattered single blocks, so the checkpoint has one entry per block.
        for _ in 0..blocks * 2 {
            let lba = rng.random_range(0..blocks);
            v.write(lba, &[(lba % 251) as u8 + 1; 512], false).unwrap();
        }
        pool.checkpoint().unwrap();
        blocks
    };
    let pool = Pool::open("t", members, PoolOptions::default()).unwrap();
    let v = pool.volume("v", 512, blocks).unwrap();
    let mut mapped = 0;
    for lba in 0..blocks {
        let mut b = [0u8; 512];
        v.read(lba, &mut b).unwrap();
        if b[0] != 0 {
            mapped += 1;
            assert_eq!(b, [(lba % 251) as u8 + 1; 512], "block {lba}");
        }
    }
    pool.collect(0).unwrap(); // waits for the recount
    assert_eq!(mapped, pool.stats().mapped_blocks);
    assert!(mapped > blocks / 2);
}

/// Writers, readers and deallocations on disjoint ranges from several threads while GC moves
/// blocks under them: every read sees its own range's latest data, before and after a clean
/// restart.
#[test]
fn concurrent_writers_readers_and_gc() {
    let members = vec![ram(40, 32), ram(40, 32)];
    let pool = Arc::new(Pool::open("t", members.clone(), PoolOptions::default()).unwrap());
    let blocks = pool.capacity_bytes() / u64::from(BS) * 9 / 10;
    let v = pool.volume("v", BS, blocks).unwrap();
    const THREADS: u64 = 4;
    let span = blocks / THREADS;
    let models: Vec<Vec<u64>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..THREADS)
            .map(|t| {
                let v = v.clone();
                s.spawn(move || {
                    let mut rng = StdRng::seed_from_u64(t);
                    let base = t * span;
                    let mut model = vec![0u64; span as usize];
                    for g in 1..span * 6 {
                        let off = rng.random_range(0..span);
                        let lba = base + off;
                        match rng.random_range(0..20) {
                            0 => {
                                v.deallocate(lba, 1).unwrap();
                                model[off as usize] = 0;
                            }
                            1..=6 => {
                                assert_eq!(read_stamp(&*v, lba), model[off as usize], "block {lba}")
                            }
                            _ => {
                                v.write(lba, &stamp(lba, g), false).unwrap();
                                model[off as usize] = g;
                            }
                        }
                    }
                    model
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let check = |v: &dyn Backend| {
        for (t, model) in models.iter().enumerate() {
            for (off, &g) in model.iter().enumerate() {
                let lba = t as u64 * span + off as u64;
                assert_eq!(read_stamp(v, lba), g, "block {lba}");
            }
        }
    };
    check(&*v);
    let s = pool.stats();
    assert!(s.gc_victims > 0, "{s:?}");
    v.flush().unwrap();
    drop(v);
    drop(Arc::into_inner(pool).unwrap());
    let pool = Pool::open("t", members, PoolOptions::default()).unwrap();
    check(&*pool.volume("v", BS, blocks).unwrap());
}

/// A pool of 1 TiB raw, 0.85 TiB usable (zoned-ram allocates only what is written): by
/// default the map's DRAM, page directory and cached pages, stays within 128 MiB per TiB
/// while random writes touch more pages than the cache holds.
#[test]
fn a_terabyte_pool_keeps_its_map_within_128_mib_per_tib() {
    let pool = Pool::open("t", vec![ram(4096, 65536)], PoolOptions::default()).unwrap();
    let s = pool.stats();
    let usable = s.usable_blocks * u64::from(BS);
    assert!(usable > 850 << 30, "{usable} bytes");
    let bound = usable / 8192;
    let v = pool.volume("v", BS, s.usable_blocks).unwrap();
    let pages = s.map_cache_pages;
    let mut rng = StdRng::seed_from_u64(5);
    let mut written = Vec::new();
    for g in 1..=pages * 3 / 2 {
        let lba = rng.random_range(0..s.usable_blocks);
        v.write(lba, &stamp(lba, g), false).unwrap();
        written.push((lba, g));
    }
    pool.inner.checkpoint().unwrap();
    let s = pool.stats();
    assert!(
        s.map_resident_bytes <= bound,
        "{} > {bound}",
        s.map_resident_bytes
    );
    assert!(
        s.meta_write_blocks > pages / 2,
        "pages were written back: {s:?}"
    );
    for &(lba, g) in written.iter().rev().take(2000) {
        let got = read_stamp(&*v, lba);
        assert!(got >= g, "block {lba}: {got} < {g}");
    }
}

#[test]
fn a_failed_journal_write_fails_every_flush_until_the_pool_is_reopened() {
    use nvme::backend::ZoneFault;
    let first = Arc::new(ZonedRamBackend::new(cfg(24, 32)).unwrap());
    let members: Vec<Arc<dyn Backend>> = vec![first.clone(), ram(24, 32)];
    let pool = Pool::open("t", members.clone(), PoolOptions::default()).unwrap();
    let v = pool.volume("v", BS, 200).unwrap();
    for lba in 0..100 {
        v.write(lba, &stamp(lba, 1), false).unwrap();
    }
    v.flush().unwrap();
    // The journal's zone turns read-only under it: the next journal write fails.
    let zone = {
        let meta = pool.inner.lock_meta();
        pool.inner
            .geo
            .zslba(pool.inner.geo.journal_zone(meta.journal_zone))
    };
    first.fail_zone(zone, ZoneFault::ReadOnly).unwrap();
    for lba in 0..100 {
        v.write(lba, &stamp(lba, 2), false).unwrap();
    }
    v.flush().unwrap_err();
    let e = v.flush().unwrap_err().to_string();
    assert!(e.contains("the pool's journal failed"), "{e}");
    assert!(
        pool.inner.checkpoint().is_err(),
        "no checkpoint over a journal whose end is unknown"
    );
    drop(v);
    drop(pool);
    // Reopened, the pool holds what the last good Flush made durable, or newer.
    let pool = Pool::open("t", members, PoolOptions::default()).unwrap();
    let v = pool.volume("v", BS, 200).unwrap();
    for lba in 0..100 {
        assert!(matches!(read_stamp(&*v, lba), 1 | 2), "block {lba}");
    }
}

/// Options with the smallest journal ring, so tests reach its wrap in a few blocks.
fn two_journal_zones() -> PoolOptions {
    PoolOptions {
        journal_zones: 2,
        ..PoolOptions::default()
    }
}

/// A writer of one stamped block followed by a Flush (one journal block each), returning the
/// block's generation.
fn stamped_flushes() -> impl FnMut(&dyn Backend, u64) -> u64 {
    let mut g = 0;
    move |v, lba| {
        g += 1;
        v.write(lba, &stamp(lba, g), false).unwrap();
        v.flush().unwrap();
        g
    }
}

/// A recovery goes on writing the journal in the zone it ended in. A checkpoint taken while
/// no change waited moves the replay's start past the other zone, which the journal then
/// resets and reuses; a page dirtied in between must still name a block the ring holds as
/// the replay's start, not the replay start of the recovery before (whose blocks are gone).
/// Driven by hand, without the GC thread: its checkpoints would move the steps.
#[test]
fn a_checkpoint_after_the_ring_wraps_past_a_recovery_replays_from_a_block_it_holds() {
    use super::cache::Which;
    use super::recover::open;
    let members = vec![ram(32, 16)];
    let opts = two_journal_zones();
    let blocks = 200;
    let mut write_flush = stamped_flushes();
    // Journal zone 0 full (blocks 0..16), zone 1 begun (16..20); the checkpoint replays
    // from block 0.
    let first = Arc::new(open("t", members.clone(), opts).unwrap());
    let v = first.volume("v", BS, blocks).unwrap();
    for _ in 0..20 {
        write_flush(&*v, 0);
    }
    assert_eq!(first.lock_meta().journal_seq, 20);
    drop(v);
    drop(first);

    // Recovered, it goes on in zone 1. With the replayed page written back, a checkpoint
    // replays from block 20 on: zone 0 is free to go.
    let second = Arc::new(open("t", members.clone(), opts).unwrap());
    let v = second.volume("v", BS, blocks).unwrap();
    {
        let mut meta = second.lock_meta();
        second.write_back(&mut meta, Which::All).unwrap();
        second.checkpoint_locked(&mut meta).unwrap();
        assert_eq!(meta.ckpt_journal_seq, 20);
    }
    // Page 0 turns dirty again, its change written in block 20; then zone 1 fills and the
    // journal wraps into zone 0, resetting it.
    let last0 = write_flush(&*v, 0);
    let mut last1 = 0;
    while second.lock_meta().journal_zone == 1 {
        last1 = write_flush(&*v, 1);
    }
    assert_eq!(second.lock_meta().journal_oldest, vec![Some(32), Some(16)]);
    // Page 0 is still dirty since block 20: the replay starts there.
    second.checkpoint().unwrap();
    assert_eq!(second.lock_meta().ckpt_journal_seq, 20);
    drop(v);
    drop(second);

    let third = Arc::new(open("t", members, opts).unwrap());
    let v = third.volume("v", BS, blocks).unwrap();
    assert_eq!(read_stamp(&*v, 0), last0);
    assert_eq!(read_stamp(&*v, 1), last1);
}

/// A checkpoint's replay start follows the oldest dirty page within a journal zone (marks
/// every 64 blocks), not only from zone to zone: on drives with zones of a GiB the journal
/// would otherwise run far past the checkpoint interval with no checkpoint able to move on.
#[test]
fn a_checkpoint_replays_from_the_mark_before_the_oldest_dirty_page() {
    use super::cache::Which;
    use super::recover::open;
    let members = vec![ram(20, 256)];
    let opts = two_journal_zones();
    let blocks = 600; // two map pages
    let mut write_flush = stamped_flushes();
    let pool = Arc::new(open("t", members.clone(), opts).unwrap());
    let v = pool.volume("v", BS, blocks).unwrap();
    for _ in 0..150 {
        write_flush(&*v, 0);
    }
    {
        let mut meta = pool.lock_meta();
        pool.write_back(&mut meta, Which::All).unwrap();
    }
    // Page 1 turns dirty in journal block 150, page 0 (written back) stays clean.
    let mut last = 0;
    for _ in 0..20 {
        last = write_flush(&*v, 550);
    }
    assert_eq!(
        pool.lock_meta().journal_zone,
        0,
        "all in the first journal zone"
    );
    pool.checkpoint().unwrap();
    let from = pool.lock_meta().ckpt_journal_seq;
    assert_eq!(
        from, 128,
        "the mark before block 150 (zone granularity would say 0)"
    );
    drop(v);
    drop(pool);

    let pool = Arc::new(open("t", members, opts).unwrap());
    let v = pool.volume("v", BS, blocks).unwrap();
    assert_eq!(read_stamp(&*v, 0), 150);
    assert_eq!(read_stamp(&*v, 550), last);
}
