//! Garbage collection: pick a victim zone, move its valid blocks to a colder stream, make the
//! move durable, reset the zone. One background thread per pool, which also checkpoints
//! when the journal is half full.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use nvme::backend::BackendError;
use nvme::zns::ZoneAction;

use super::cache::{Pins, Which};
use super::format::{Entry, Loc};
use super::map::VolumeMap;
use super::pool::{unkey, Inner, Placed, State, Stream, ZState, MAP_KEY};
use super::zone_records::decode_footer;
use super::GcPolicy;

pub fn start(inner: Arc<Inner>) -> std::thread::JoinHandle<()> {
    std::thread::Builder::new()
        .name(format!("ff-gc-{}", inner.name))
        .spawn(move || run(&inner))
        .expect("spawn the GC thread")
}

/// Journal blocks after which a checkpoint is due even when the ring has room: bounds what a
/// recovery reads and replays.
const CHECKPOINT_JOURNAL_BLOCKS: u64 = 8192;

fn run(inner: &Inner) {
    let mut failures = 0u32;
    while !inner.stopping.load(Ordering::SeqCst) {
        if let Err(e) = housekeeping(inner) {
            failures += 1;
            if failures.is_power_of_two() {
                tracing::warn!(pool = %inner.name, error = %e, failures, "map upkeep failed");
            }
        }
        let short = {
            let st = inner.lock();
            st.counted && st.free.iter().any(|f| f.len() < inner.gc_start)
        };
        let worked = if short {
            match collect_one(inner, inner.gc_start, false) {
                Ok(w) => {
                    failures = 0;
                    w
                }
                Err(e) => {
                    failures += 1;
                    if failures.is_power_of_two() {
                        tracing::warn!(pool = %inner.name, error = %e, failures, "GC failed");
                    }
                    false
                }
            }
        } else {
            false
        };
        if !worked {
            let mut st = inner.lock();
            if short && st.free.iter().any(|f| f.len() <= inner.reserve) {
                st.stuck = true;
                inner.cond.notify_all();
            }
            let _ = inner.cond.wait_timeout(st, Duration::from_millis(100));
        }
    }
}

/// The map's upkeep between collections: the recount after a recovery, writing back dirty
/// pages past the cache's limit, dropping clean ones past its budget, and a checkpoint when
/// the journal has grown.
fn housekeeping(inner: &Inner) -> Result<(), BackendError> {
    if !inner.lock().counted {
        inner.recount()?;
    }
    let dirty = inner.lock().dirty.len();
    let limit = inner.cache.dirty_limit();
    if dirty > limit {
        let mut meta = inner.lock_meta();
        inner.write_back(&mut meta, Which::Oldest(dirty - limit / 2))?;
    }
    let resident = inner.cache.resident.load(Ordering::Relaxed);
    if resident > inner.cache.budget {
        inner.evict(resident - inner.cache.budget);
    }
    let due = (inner.geo.journal_zones * inner.geo.zone_cap / 2).min(CHECKPOINT_JOURNAL_BLOCKS);
    let mut meta = inner.lock_meta();
    if meta.journal_since_checkpoint() > due {
        inner.checkpoint_locked(&mut meta)?;
        if meta.journal_since_checkpoint() > due / 2 {
            // Pages dirty for long hold the replay's start back: write back those dirty
            // since before the last half of the window.
            let which = meta.position_of(meta.journal_seq - due / 2).map_or_else(
                || Which::Oldest(inner.lock().dirty.len() / 2 + 1),
                Which::Before,
            );
            inner.write_back(&mut meta, which)?;
            inner.checkpoint_locked(&mut meta)?;
        }
    }
    Ok(())
}

/// Collect until every member has `free_zones` free zones or nothing is left to collect.
pub fn collect_until(inner: &Inner, free_zones: usize) -> Result<u64, BackendError> {
    if !inner.lock().counted {
        inner.recount()?;
    }
    let mut n = 0;
    while inner.lock().free.iter().any(|f| f.len() < free_zones) {
        if !collect_one(inner, free_zones, true)? {
            break;
        }
        n += 1;
    }
    Ok(n)
}

/// The victim: a full zone with something to gain, on a member short of free zones when
/// there is one. Unless `any_gain`, or host writes wait at the reserve, it must give back at
/// least [`MIN_GAIN`] of a zone: where the pool is too full for GC's watermark, collecting
/// nearly full zones over and over would only wear the drives.
fn select(inner: &Inner, st: &State, want_free: usize, any_gain: bool) -> Option<usize> {
    let short: Vec<bool> = st.free.iter().map(|f| f.len() < want_free).collect();
    let any_short = short.iter().any(|&s| s);
    let waiting = st.free.iter().any(|f| f.len() <= inner.reserve);
    let cap = inner.geo.zone_data;
    let most = if any_gain || waiting {
        cap - 1
    } else {
        cap - (cap / MIN_GAIN).max(1)
    };
    best(inner, st, most, |m| !any_short || short[m]).or_else(|| best(inner, st, most, |_| true))
}

/// The least a background collection gains while no host write waits: 1/MIN_GAIN of a zone.
const MIN_GAIN: u64 = 16;

/// The power of a zone's age in cost-benefit's score. Linear age kept the hot data's zones
/// too clean: under 90:10 hot/cold writes at 71% of raw, host zones were collected with 12%
/// of their blocks valid and cold ones with 76%, a zone of cold data costing six times the
/// copies of a hot one. Age to the power 0.6 lends the cold data more of the spare. WAF (GC)
/// of `layout_bench`'s hot/cold cost-benefit run with its fill set by hand (10%
/// over-provisioning, the default then), three seeds each: 1.34 rather than 1.41 at 71% of
/// raw, 1.74 rather than 1.77 at 80%, 1.18 rather than 1.27 at 60%; 0.5 did worse at 71% and
/// 80%, 0.75 better at 80% (1.73) but worse at 71% (1.36).
const AGE_WEIGHT: f64 = 0.6;

/// The best victim with at most `most` valid blocks on the members `on` takes.
fn best(inner: &Inner, st: &State, most: u64, on: impl Fn(usize) -> bool) -> Option<usize> {
    let cap = inner.geo.zone_data;
    st.zones
        .iter()
        .enumerate()
        .filter(|(_, z)| matches!(z.state, ZState::Full(_)) && z.valid <= most)
        .filter(|(_, z)| on(usize::from(z.member)))
        .map(|(i, z)| {
            let u = z.valid as f64 / cap as f64;
            // Where age says nothing of how long data lives (the streams are merged),
            // cost-benefit's age term is noise: the least valid zone gains the most.
            let score = match inner.policy {
                GcPolicy::CostBenefit if st.lifetimes.separate() => {
                    let age = (st.clock - z.stamp) as f64 + 1.0;
                    (1.0 - u) * age.powf(AGE_WEIGHT) / (1.0 + u)
                }
                GcPolicy::CostBenefit | GcPolicy::Greedy => 1.0 - u,
            };
            (i, score)
        })
        .max_by(|a, b| a.1.total_cmp(&b.1))
        .map(|(i, _)| i)
}

/// The keys of a full zone's data blocks, from its footer.
fn read_footer(inner: &Inner, member: u8, zslba: u64) -> Result<Vec<u64>, BackendError> {
    let d = inner.geo.zone_data;
    let blocks = inner.read_blocks(usize::from(member), zslba + d, zslba + inner.geo.zone_cap)?;
    decode_footer(&blocks, &inner.pool_id, zslba, d, inner.geo.bs as usize).map_err(|e| {
        BackendError::Io(std::io::Error::other(format!(
            "footer of the zone at LBA {zslba} of member {member}: {e}"
        )))
    })
}

/// Move the valid blocks of one victim and reset it; false when there is no victim (one
/// that gains something, or with `any_gain` anything).
fn collect_one(inner: &Inner, want_free: usize, any_gain: bool) -> Result<bool, BackendError> {
    let (v, from, member, zslba, in_dram, to) = {
        let mut st = inner.lock();
        let Some(v) = select(inner, &st, want_free, any_gain) else {
            return Ok(false);
        };
        let dz = &st.zones[v];
        let ZState::Full(from) = dz.state else {
            unreachable!("select takes full zones")
        };
        let (member, zslba) = (dz.member, dz.zslba);
        let keys = (!dz.p2l.is_empty()).then(|| dz.p2l.clone());
        // What a warm zone still holds when collected young is still being rewritten: it
        // stays warm; what survived long goes colder. (Host zones' data always goes warm:
        // hot data that outlived its zone, in a stream host writes do not take while the
        // streams are apart.) Where age says nothing of how long data lives, everything
        // shares the host stream.
        let young = st.clock.saturating_sub(dz.stamp) < inner.cold_age();
        let to = match from {
            _ if !st.lifetimes.separate() => Stream::Host,
            Stream::Gc if young => from,
            _ => from.colder(),
        };
        st.zones[v].state = ZState::Victim(from);
        (v, from, member, zslba, keys, to)
    };
    let keys = match in_dram.map_or_else(|| read_footer(inner, member, zslba), Ok) {
        Ok(k) => k,
        Err(e) => {
            // Its keys come from the map: count everything again.
            let mut st = inner.lock();
            let dz = &mut st.zones[v];
            dz.state = ZState::Full(from);
            dz.p2l = vec![0; dz.data_end as usize];
            st.footerless.insert(v);
            inner.restart_count(&mut st);
            return Err(e);
        }
    };
    let result = evacuate(inner, member, zslba, to, &keys).and_then(|()| {
        // The moves must be on the media before the only other copy goes.
        inner.flush()?;
        while inner.readers[v].load(Ordering::SeqCst) != 0 {
            std::thread::sleep(Duration::from_micros(50));
        }
        inner.zone_action(
            usize::from(member),
            zslba / inner.geo.zone_size,
            ZoneAction::Reset,
        )
    });
    let mut st = inner.lock();
    match result {
        Ok(()) => {
            let dz = &mut st.zones[v];
            dz.state = ZState::Free;
            dz.valid = 0;
            dz.p2l = Vec::new();
            st.footerless.remove(&v);
            st.free[usize::from(member)].push(v);
            st.stuck = false;
            inner.counters.gc_victims.fetch_add(1, Ordering::Relaxed);
            inner.cond.notify_all();
            Ok(true)
        }
        Err(e) => {
            st.zones[v].state = ZState::Full(from);
            Err(e)
        }
    }
}

/// Keys GC looks at together (their pages pinned at once).
const BATCH: usize = 512;

/// Move what is still valid among the victim's `keys` (by offset): volume blocks are copied
/// into `stream`, map pages written back from the cache.
fn evacuate(
    inner: &Inner,
    member: u8,
    zslba: u64,
    stream: Stream,
    keys: &[u64],
) -> Result<(), BackendError> {
    let maps: BTreeMap<u16, Arc<VolumeMap>> = inner.lock().by_id.clone();
    let here = |off: usize| Loc {
        member,
        lba: zslba + off as u64,
    };
    let mut pages = Vec::new();
    for (b, batch) in keys.chunks(BATCH).enumerate() {
        let base = b * BATCH;
        let mut pins = Pins::default();
        for (i, &k) in batch.iter().enumerate() {
            let (vol, lba) = unkey(k);
            let Some(map) = maps.get(&vol) else { continue };
            if k == 0 {
                continue;
            }
            if lba & MAP_KEY != 0 {
                let p = lba & !MAP_KEY;
                if p < map.pages() && map.media(p) == here(base + i).pack() {
                    inner.pin_page(&mut pins, map, p)?;
                    pages.push((vol, p));
                }
            } else if lba < map.blocks() {
                inner.pin_page(&mut pins, map, map.page_of(lba).0)?;
            }
        }
        let live: Vec<(u64, u64)> = {
            let mut st = inner.lock();
            // Map pages still copied here are rewritten from DRAM.
            for &(vol, p) in pages.iter().filter(|(vol, _)| maps.contains_key(vol)) {
                let map = &maps[&vol];
                if let Some(page) = map.resident(p) {
                    if !page.dirty.swap(true, Ordering::AcqRel) {
                        st.note_dirty(vol, p, &page);
                    }
                }
            }
            batch
                .iter()
                .enumerate()
                .filter(|&(i, &k)| {
                    let (vol, lba) = unkey(k);
                    k != 0
                        && lba & MAP_KEY == 0
                        && st.by_id.get(&vol).is_some_and(|m| {
                            lba < m.blocks() && pins.entry(m, lba) == here(base + i).pack()
                        })
                })
                .map(|(i, &k)| ((base + i) as u64, k))
                .collect()
        };
        relocate(inner, member, zslba, stream, &live, &pins)?;
        if !pages.is_empty() {
            let mut meta = inner.lock_meta();
            inner.write_back(&mut meta, Which::These(std::mem::take(&mut pages)))?;
        }
    }
    Ok(())
}

/// Copy the blocks at `live` offsets of the victim into `stream`, remapping each one the
/// map still points at the victim.
fn relocate(
    inner: &Inner,
    member: u8,
    zslba: u64,
    stream: Stream,
    live: &[(u64, u64)],
    pins: &Pins,
) -> Result<(), BackendError> {
    let bs = inner.geo.bs as usize;
    let mut i = 0;
    while i < live.len() {
        // A run of consecutive offsets in the victim.
        let mut n = 1;
        while i + n < live.len() && live[i + n].0 == live[i].0 + n as u64 && n < 64 {
            n += 1;
        }
        let mut data = vec![0u8; n * bs];
        inner.members[usize::from(member)]
            .backend
            .read(zslba + live[i].0, &mut data)?;
        let mut done = 0;
        while done < n {
            let mut p = inner.place(stream, false, &data[done * bs..])?;
            let got = p.blocks;
            let run = &live[i + done..i + done + got as usize];
            remap(inner, &mut p, member, zslba, run, pins);
            inner
                .counters
                .gc_write_blocks
                .fetch_add(got, Ordering::Relaxed);
            done += got as usize;
            let (seal, z) = (p.seal, p.zone);
            drop(p);
            if seal {
                inner.seal(z);
            }
        }
        i += n;
    }
    Ok(())
}

/// Point every block of `run` (victim offsets and keys) that still maps into the victim at
/// its copy where `p` placed it, and journal the moves.
fn remap(
    inner: &Inner,
    p: &mut Placed<'_>,
    member: u8,
    zslba: u64,
    run: &[(u64, u64)],
    pins: &Pins,
) {
    let (z, at) = (p.zone, p.at);
    let st = &mut *p.st;
    let mut pending: Option<(u16, u64, u8, Loc)> = None;
    let copy_off = (at.lba - st.zones[z].zslba) as usize;
    for (j, &(off, k)) in run.iter().enumerate() {
        st.zones[z].p2l[copy_off + j] = k;
        let (vol, lba) = unkey(k);
        let old = Loc {
            member,
            lba: zslba + off,
        };
        let new = at.offset(j as u64);
        let Some(map) = st.by_id.get(&vol).cloned() else {
            continue;
        };
        let page = pins.page(&map, lba);
        if page.get(map.page_of(lba).1) != old.pack() {
            // Rewritten or trimmed since GC looked: the copy is garbage.
            continue;
        }
        st.set_block(&inner.geo, &map, page, lba, new.pack());
        match &mut pending {
            Some((pv, plba, plen, pat))
                if *pv == vol
                    && *plba + u64::from(*plen) == lba
                    && pat.offset(u64::from(*plen)) == new
                    && *plen < 64 =>
            {
                *plen += 1;
            }
            _ => {
                if let Some((vol, lba, len, at)) = pending.take() {
                    st.journal.push(Entry::Map { vol, lba, len, at });
                }
                pending = Some((vol, lba, 1, new));
            }
        }
    }
    if let Some((vol, lba, len, at)) = pending {
        st.journal.push(Entry::Map { vol, lba, len, at });
    }
}
