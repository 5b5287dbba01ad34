//! Garbage collection: pick a victim zone, move its valid blocks to a colder stream, make the
//! move durable, reset the zone. One background thread per pool, which also checkpoints
//! when the journal is half full.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use nvme::backend::BackendError;
use nvme::zns::ZoneAction;

use super::format::{Entry, Loc};
use super::pool::{unkey, Inner, State, Stream, ZState};
use super::GcPolicy;

pub fn start(inner: Arc<Inner>) -> std::thread::JoinHandle<()> {
    std::thread::Builder::new()
        .name(format!("ff-gc-{}", inner.name))
        .spawn(move || run(&inner))
        .expect("spawn the GC thread")
}

fn run(inner: &Inner) {
    let mut failures = 0u32;
    while !inner.stopping.load(Ordering::SeqCst) {
        let journal_half = inner.geo.journal_zones * inner.geo.zone_cap / 2;
        if inner.lock_meta().journal_since_checkpoint() > journal_half {
            if let Err(e) = inner.checkpoint() {
                tracing::warn!(pool = %inner.name, error = %e, "checkpoint failed");
            }
        }
        let short = {
            let st = inner.lock();
            st.free.iter().any(|f| f.len() < inner.gc_start)
        };
        let worked = if short {
            match collect_one(inner, inner.gc_start) {
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

/// Collect until every member has `free_zones` free zones or nothing is left to collect.
pub fn collect_until(inner: &Inner, free_zones: usize) -> Result<u64, BackendError> {
    let mut n = 0;
    while inner.lock().free.iter().any(|f| f.len() < free_zones) {
        if !collect_one(inner, free_zones)? {
            break;
        }
        n += 1;
    }
    Ok(n)
}

/// The victim: a full zone with something to gain, on a member short of free zones when
/// there is one.
fn select(inner: &Inner, st: &State, want_free: usize) -> Option<usize> {
    let short: Vec<bool> = st.free.iter().map(|f| f.len() < want_free).collect();
    let any_short = short.iter().any(|&s| s);
    best(inner, st, |m| !any_short || short[m]).or_else(|| best(inner, st, |_| true))
}

/// The best victim on the members `on` takes.
fn best(inner: &Inner, st: &State, on: impl Fn(usize) -> bool) -> Option<usize> {
    let cap = inner.geo.zone_cap;
    st.zones
        .iter()
        .enumerate()
        .filter(|(_, z)| matches!(z.state, ZState::Full(_)) && z.valid < cap)
        .filter(|(_, z)| on(usize::from(z.member)))
        .map(|(i, z)| {
            let u = z.valid as f64 / cap as f64;
            let score = match inner.policy {
                GcPolicy::Greedy => 1.0 - u,
                GcPolicy::CostBenefit => {
                    let age = (st.clock - z.stamp) as f64 + 1.0;
                    (1.0 - u) * age / (1.0 + u)
                }
            };
            (i, score)
        })
        .max_by(|a, b| a.1.total_cmp(&b.1))
        .map(|(i, _)| i)
}

/// Move the valid blocks of one victim and reset it; false when there is no victim.
fn collect_one(inner: &Inner, want_free: usize) -> Result<bool, BackendError> {
    let (v, from, member, zslba, live) = {
        let mut st = inner.lock();
        let Some(v) = select(inner, &st, want_free) else {
            return Ok(false);
        };
        let dz = &st.zones[v];
        let ZState::Full(from) = dz.state else {
            unreachable!("select takes full zones")
        };
        let (member, zslba) = (dz.member, dz.zslba);
        let live: Vec<(u64, u64)> = dz
            .p2l
            .iter()
            .enumerate()
            .filter(|&(off, &k)| {
                k != 0
                    && is_at(
                        &st,
                        k,
                        Loc {
                            member,
                            lba: zslba + off as u64,
                        },
                    )
            })
            .map(|(off, &k)| (off as u64, k))
            .collect();
        st.zones[v].state = ZState::Victim(from);
        (v, from, member, zslba, live)
    };
    let moved = relocate(inner, member, zslba, from.colder(), &live);
    let result = moved.and_then(|()| {
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

fn is_at(st: &State, k: u64, at: Loc) -> bool {
    let (vol, lba) = unkey(k);
    st.by_id.get(&vol).is_some_and(|m| m.get(lba) == at.pack())
}

/// Copy the blocks at `live` offsets of the victim into `stream`, remapping each one the
/// map still points at the victim.
fn relocate(
    inner: &Inner,
    member: u8,
    zslba: u64,
    stream: Stream,
    live: &[(u64, u64)],
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
            let (mut st, z, at, got) = inner.place(stream, &data[done * bs..])?;
            let run = &live[i + done..i + done + got as usize];
            remap(inner, &mut st, member, zslba, run, z, at);
            inner
                .counters
                .gc_write_blocks
                .fetch_add(got, Ordering::Relaxed);
            done += got as usize;
        }
        i += n;
    }
    Ok(())
}

/// Point every block of `run` (victim offsets and keys) that still maps into the victim at
/// its copy from `at` in zone `z`, and journal the moves.
fn remap(
    inner: &Inner,
    st: &mut State,
    member: u8,
    zslba: u64,
    run: &[(u64, u64)],
    z: usize,
    at: Loc,
) {
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
        if map.get(lba) != old.pack() {
            // Rewritten or trimmed since GC looked: the copy is garbage.
            continue;
        }
        map.swap(lba, new.pack());
        st.invalidate(&inner.geo, old.pack());
        st.zones[z].valid += 1;
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
