//! The map cache: which map pages are in DRAM, reading them in, dropping clean ones past the
//! budget (a clock sweep), and writing dirty ones back to a map zone. Also the recount that
//! rebuilds valid counts and mapped totals after a recovery, a page at a time in the
//! background, so opening a pool never reads its whole map.
//!
//! A write-back takes the page's entries, its new location, and journals `Page` under the
//! state lock at once: so the copy holds exactly the changes journaled before that entry,
//! and replay applies to it only what follows. The copy is written before any journal block
//! naming it (the journal flushes data first), under the meta lock that also serialises the
//! map zone's plain writes.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use ferrofab_sync::{CountedLock as _, CountedRwLock as _};
use nvme::backend::BackendError;

use super::format::{Entry, Loc};
use super::map::{Evict, Page, VolumeMap};
use super::meta::Meta;
use super::pool::{map_key, Dirty, Inner, State, Stream, ZState};
use super::zone_records::{decode_page, encode_page};

/// Map pages in DRAM and their budget.
pub struct Cache {
    /// Most pages kept in DRAM (dirty ones may exceed it until they are written back).
    pub budget: u64,
    pub resident: AtomicU64,
    dirty_limit: usize,
    /// Every volume's map, for the clock sweep.
    pub maps: RwLock<Vec<Arc<VolumeMap>>>,
    /// Where the sweep goes on: index into `maps`, page.
    hand: Mutex<(usize, u64)>,
}

impl Cache {
    /// A cache of `budget` pages; `spare` blocks of GC's reserve may take map pages.
    pub fn new(budget: u64, spare: u64) -> Cache {
        Cache {
            budget: budget.max(4),
            dirty_limit: (budget / 2).min(spare / 2).max(1) as usize,
            resident: AtomicU64::new(0),
            maps: RwLock::new(Vec::new()),
            hand: Mutex::new((0, 0)),
        }
    }

    /// Dirty pages past which the pool writes back: half the budget, and no more than half
    /// of what GC's reserve spares for map pages, as the journal may need every dirty page
    /// written back before it moves on (and writers write back past twice this).
    pub fn dirty_limit(&self) -> usize {
        self.dirty_limit
    }
}

/// Pages pinned in DRAM, unpinned on drop.
#[derive(Default)]
pub struct Pins {
    pages: BTreeMap<(u16, u64), Arc<Page>>,
}

impl Pins {
    /// The pinned page holding `lba` of `map`.
    pub fn page(&self, map: &VolumeMap, lba: u64) -> &Page {
        self.pages
            .get(&(map.id, map.page_of(lba).0))
            .expect("the caller pinned every page it maps")
    }

    /// The entry of `lba` of `map`, on its pinned page.
    pub fn entry(&self, map: &VolumeMap, lba: u64) -> u64 {
        self.page(map, lba).get(map.page_of(lba).1)
    }
}

impl Drop for Pins {
    fn drop(&mut self) {
        for p in self.pages.values() {
            p.unpin();
        }
    }
}

/// Which dirty pages [`Inner::write_back`] writes.
pub enum Which {
    /// Up to this many from the front of the dirty list.
    Oldest(usize),
    /// Those dirty since before this journal position.
    Before(u64),
    /// Every dirty page (a checkpoint).
    All,
    /// These (volume id, page), dirty or not (GC).
    These(Vec<(u16, u64)>),
}

impl Inner {
    /// Read map page `page` of `map` from its media copy at `at`.
    fn load_page(&self, map: &VolumeMap, page: u64, at: u64) -> Result<Vec<u64>, BackendError> {
        let loc = Loc::unpack(at).expect("a media copy");
        let mut block = vec![0u8; self.geo.bs as usize];
        self.members
            .get(usize::from(loc.member))
            .ok_or_else(|| BackendError::Io(std::io::Error::other("map page on no member")))?
            .backend
            .read(loc.lba, &mut block)?;
        let mut out = vec![0u64; map.page_range(page).count()];
        decode_page(&block, &self.pool_id, map_key(map.id, page), &mut out).map_err(|e| {
            BackendError::Io(std::io::Error::other(format!(
                "map page {page} of volume {} at {loc:?}: {e}",
                map.id
            )))
        })?;
        Ok(out)
    }

    /// Map page `page` of `map` in DRAM (read in when it is not), pinned when `pin`.
    pub fn page(&self, map: &VolumeMap, page: u64, pin: bool) -> Result<Arc<Page>, BackendError> {
        let (p, loaded) = map.page(page, pin, |at| self.load_page(map, page, at))?;
        if loaded {
            let resident = self.cache.resident.fetch_add(1, Ordering::Relaxed) + 1;
            if resident > self.cache.budget {
                self.evict(resident - self.cache.budget + self.cache.budget / 16);
            }
        }
        Ok(p)
    }

    /// The entry of `lba` of `map`.
    pub fn lookup(&self, map: &VolumeMap, lba: u64) -> Result<u64, BackendError> {
        let (p, i) = map.page_of(lba);
        Ok(self.page(map, p, false)?.get(i))
    }

    /// Pin the pages holding blocks `lba..lba + blocks` of `map`.
    pub fn pin_range(
        &self,
        pins: &mut Pins,
        map: &VolumeMap,
        lba: u64,
        blocks: u64,
    ) -> Result<(), BackendError> {
        if blocks == 0 {
            return Ok(());
        }
        let (first, _) = map.page_of(lba);
        let (last, _) = map.page_of(lba + blocks - 1);
        for p in first..=last {
            self.pin_page(pins, map, p)?;
        }
        Ok(())
    }

    pub fn pin_page(
        &self,
        pins: &mut Pins,
        map: &VolumeMap,
        page: u64,
    ) -> Result<(), BackendError> {
        if let std::collections::btree_map::Entry::Vacant(e) = pins.pages.entry((map.id, page)) {
            e.insert(self.page(map, page, true)?);
        }
        Ok(())
    }

    /// Drop up to `want` clean, unpinned pages not used lately.
    pub fn evict(&self, want: u64) {
        let Some(mut hand) = self.cache.hand.try_lock_counted() else {
            return; // another thread sweeps
        };
        let maps = self.cache.maps.read_counted();
        let total: u64 = maps.iter().map(|m| m.pages()).sum();
        let mut dropped = 0;
        // Two turns of the clock: the first clears the marks of pages used since.
        for _ in 0..total.saturating_mul(2) {
            if dropped >= want {
                break;
            }
            let (mut vi, mut p) = *hand;
            if vi >= maps.len() {
                vi = 0;
                p = 0;
            }
            let Some(map) = maps.get(vi) else { break };
            if p >= map.pages() {
                *hand = (vi + 1, 0);
                continue;
            }
            if map.try_evict(p) == Evict::Dropped {
                dropped += 1;
                self.cache.resident.fetch_sub(1, Ordering::Relaxed);
            }
            *hand = (vi, p + 1);
        }
    }

    /// The next block of the map zone, opening one when there is none, on a member with
    /// more than `floor` free zones: (zone, location).
    pub(super) fn map_block(&self, st: &mut State, floor: usize) -> Option<(usize, Loc)> {
        let z = match st.open_with_room(st.map_zone, Stream::Map) {
            Some(z) => z,
            None => {
                let m = (0..self.geo.members).max_by_key(|&m| st.free[m].len())?;
                if st.free[m].len() <= floor {
                    return None;
                }
                let z = st.free[m].pop()?;
                self.open_zone(st, z, Stream::Map);
                st.map_zone = Some(z);
                z
            }
        };
        let clock = st.clock;
        let dz = &mut st.zones[z];
        let off = self.geo.zone_data - dz.room;
        dz.room -= 1;
        dz.stamp = clock;
        Some((
            z,
            Loc {
                member: dz.member,
                lba: dz.zslba + off,
            },
        ))
    }

    /// Write dirty map pages to the map zone; returns how many were written.
    /// The caller holds the meta lock (`_meta`): it serialises the map zone's writes, and
    /// no journal block naming a copy is written before the copy.
    pub fn write_back(&self, _meta: &mut Meta, which: Which) -> Result<usize, BackendError> {
        let bs = self.geo.bs as usize;
        struct Job {
            zone: usize,
            at: Loc,
            old: u64,
            dirty: Dirty,
            page: Arc<Page>,
        }
        let mut jobs: Vec<Job> = Vec::new();
        let mut buf: Vec<u8> = Vec::new();
        let mut short = false;
        {
            let mut st = self.lock();
            // GC's moves and checkpoints may take the last free zone; other write-backs
            // leave it to them.
            let floor = match which {
                Which::Oldest(_) => 1,
                Which::Before(_) | Which::All | Which::These(_) => 0,
            };
            let picks: Vec<Dirty> = match which {
                Which::Oldest(n) => {
                    let mut out = Vec::new();
                    while out.len() < n {
                        let Some(d) = st.dirty.pop_front() else { break };
                        if st.is_dirty(&d) {
                            out.push(d);
                        }
                    }
                    out
                }
                Which::Before(bound) => {
                    let mut out = Vec::new();
                    while st.dirty.front().is_some_and(|d| d.since < bound) {
                        let d = st.dirty.pop_front().expect("checked");
                        if st.is_dirty(&d) {
                            out.push(d);
                        }
                    }
                    out
                }
                Which::All => {
                    let all: Vec<Dirty> = st.dirty.drain(..).collect();
                    all.into_iter().filter(|d| st.is_dirty(d)).collect()
                }
                Which::These(v) => v
                    .into_iter()
                    .map(|(vol, page)| Dirty {
                        vol,
                        page,
                        since: 0,
                    })
                    .collect(),
            };
            let mut picks = picks.into_iter();
            while let Some(mut d) = picks.next() {
                let (vol, p) = (d.vol, d.page);
                let Some(map) = st.by_id.get(&vol).cloned() else {
                    continue; // deleted
                };
                let Some(page) = map.resident(p) else {
                    continue; // clean: dropped from DRAM
                };
                if !page.dirty.load(Ordering::Acquire) {
                    continue;
                }
                d.since = page.since.load(Ordering::Acquire);
                let Some((z, at)) = self.map_block(&mut st, floor) else {
                    // No free zone: they stay dirty until GC frees one.
                    let rest: Vec<Dirty> = std::iter::once(d).chain(picks).collect();
                    for d in rest.into_iter().rev() {
                        st.dirty.push_front(d);
                    }
                    short = true;
                    break;
                };
                let at_end = buf.len();
                buf.resize(at_end + bs, 0);
                encode_page(
                    &mut buf[at_end..],
                    self.pool_id,
                    map_key(vol, p),
                    page.values(),
                );
                // Pinned before it turns clean, so it stays until its copy is written.
                page.pin();
                page.dirty.store(false, Ordering::Release);
                let old = map.set_media(p, at.pack());
                if map.counted(p) {
                    st.invalidate(&self.geo, old);
                    st.validate(&self.geo, at.pack());
                }
                let dz = &mut st.zones[z];
                let off = (at.lba - dz.zslba) as usize;
                dz.p2l[off] = map_key(vol, p);
                st.journal.push(Entry::Page { vol, page: p, at });
                jobs.push(Job {
                    zone: z,
                    at,
                    old,
                    dirty: d,
                    page,
                });
            }
        }
        // Runs of consecutive blocks of one zone, one write each.
        let mut i = 0;
        let mut result = Ok(());
        while i < jobs.len() && result.is_ok() {
            let mut n = 1;
            while i + n < jobs.len()
                && jobs[i + n].zone == jobs[i].zone
                && jobs[i + n].at == jobs[i].at.offset(n as u64)
            {
                n += 1;
            }
            result = self.members[usize::from(jobs[i].at.member)].backend.write(
                jobs[i].at.lba,
                &buf[i * bs..(i + n) * bs],
                false,
            );
            i += n;
        }
        self.counters
            .meta_write_blocks
            .fetch_add(jobs.len() as u64, Ordering::Relaxed);
        let mut st = self.lock();
        if let Err(e) = result {
            // Undone: the copies stay where they were (no journal block named the new ones
            // yet: that takes the meta lock, held here), the pages dirty as before. This
            // map zone's write pointer is not where it is counted any more: it takes no more.
            let undone: Vec<Entry> = jobs
                .iter()
                .map(|j| Entry::Page {
                    vol: j.dirty.vol,
                    page: j.dirty.page,
                    at: j.at,
                })
                .collect();
            st.journal.retain(|e| !undone.contains(e));
            for j in jobs.iter().rev() {
                if let Some(map) = st.by_id.get(&j.dirty.vol).cloned() {
                    if map.media(j.dirty.page) == j.at.pack() {
                        map.set_media(j.dirty.page, j.old);
                        if map.counted(j.dirty.page) {
                            st.invalidate(&self.geo, j.at.pack());
                            st.validate(&self.geo, j.old);
                        }
                    }
                }
                j.page.since.store(j.dirty.since, Ordering::Release);
                j.page.dirty.store(true, Ordering::Release);
                st.dirty.push_front(j.dirty);
            }
            st.map_zone = None;
            drop(st);
            for j in &jobs {
                j.page.unpin();
            }
            return Err(e);
        }
        let mut full: Vec<usize> = jobs.iter().map(|j| j.zone).collect();
        full.dedup();
        full.retain(|&z| st.zones[z].room == 0 && st.zones[z].state == ZState::Open(Stream::Map));
        for &z in &full {
            st.zones[z].state = ZState::Sealing(Stream::Map);
            st.zones[z].data_end = self.geo.zone_data;
            if st.map_zone == Some(z) {
                st.map_zone = None;
            }
        }
        drop(st);
        for j in &jobs {
            j.page.unpin();
        }
        for z in full {
            self.seal(z);
        }
        if short {
            return Err(BackendError::NoSpace);
        }
        Ok(jobs.len())
    }
}
