//! The pool's running state and its I/O paths: host writes (placed by `placement.rs`),
//! reads through the map, deallocating, flushing.

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};

use ferrofab_sync::CountedLock as _;
use nvme::backend::{Backend, BackendError};

use super::cache::{Cache, Pins, Which};
use super::format::{Entry, Loc, VolumeDef, MAX_RUN};
use super::lifetimes::Lifetimes;
use super::map::{Page, VolumeMap};
use super::meta::Meta;
pub use super::placement::{Placed, Stream, STREAMS};
use super::GcPolicy;

/// One pool member.
pub struct Member {
    pub backend: Arc<dyn Backend>,
    pub volatile: bool,
    pub append_limit: u64,
}

impl Member {
    pub fn zoned(&self) -> &dyn nvme::backend::ZonedBackend {
        self.backend.zoned().expect("members are zoned")
    }
}

/// Where things are on the members.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Geometry {
    pub bs: u32,
    pub zone_size: u64,
    pub zone_cap: u64,
    /// Blocks of a data zone that hold data; its footer takes the rest of its capacity.
    pub zone_data: u64,
    pub zones: u64,
    pub members: usize,
    /// Zones per checkpoint slot.
    pub ckpt_zones: u64,
    pub journal_zones: u64,
}

impl Geometry {
    pub fn zslba(&self, zone: u64) -> u64 {
        zone * self.zone_size
    }
    /// First zone of checkpoint slot `slot` on member 0.
    pub fn ckpt_zone(&self, slot: u64) -> u64 {
        2 + slot * self.ckpt_zones
    }
    pub fn journal_zone(&self, j: u64) -> u64 {
        2 + 2 * self.ckpt_zones + j
    }
    /// Zones member 0 keeps for metadata.
    pub fn meta_zones(&self) -> u64 {
        2 + 2 * self.ckpt_zones + self.journal_zones
    }
    /// First data zone of `member`.
    pub fn first_data_zone(&self, member: usize) -> u64 {
        if member == 0 {
            self.meta_zones()
        } else {
            0
        }
    }
    pub fn data_zones(&self, member: usize) -> u64 {
        self.zones - self.first_data_zone(member)
    }
    /// The data zone id of the zone holding `loc`, if it is a data zone.
    pub fn zone_id(&self, loc: Loc) -> Option<usize> {
        let m = usize::from(loc.member);
        if m >= self.members {
            return None;
        }
        let z = loc.lba / self.zone_size;
        let first = self.first_data_zone(m);
        if z < first || z >= self.zones || loc.lba % self.zone_size >= self.zone_data {
            return None;
        }
        // Every member has `zones` zones; member 0 starts after its metadata.
        let before = if m == 0 {
            0
        } else {
            self.data_zones(0) + (m as u64 - 1) * self.zones
        };
        Some((before + z - first) as usize)
    }
}

/// A data zone's state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ZState {
    Free,
    Open(Stream),
    /// Its data is complete and its footer is being written.
    Sealing(Stream),
    /// Written to its end (or finished); `Stream` is what it was written by.
    Full(Stream),
    /// Being collected.
    Victim(Stream),
}

pub struct DataZone {
    pub member: u8,
    pub zslba: u64,
    pub state: ZState,
    /// Blocks in this zone the map points at.
    pub valid: u64,
    /// Blocks not yet handed out (open zones).
    pub room: u64,
    /// Appends placed but not yet committed.
    pub inflight: u32,
    /// The pool's write clock when the zone was last written (for GC's age).
    pub stamp: u64,
    /// Blocks of data written (of a full zone: the data blocks before its footer).
    pub data_end: u64,
    /// For each data block, the key it was written for (0 = none), while in DRAM: for open
    /// zones, and for full ones whose footer is missing (left open by a crash) or failed.
    /// Empty for a full zone whose footer holds them.
    pub p2l: Vec<u64>,
    /// Opened by GC from its member's reserve (it had no more free zones than the reserve):
    /// host writes, which share the cold stream with GC (and every stream while the streams
    /// are merged), leave its room to GC until the member is above the reserve again.
    pub from_reserve: bool,
}

pub struct VolumeRef {
    pub def: VolumeDef,
    pub map: Arc<VolumeMap>,
}

pub struct State {
    pub zones: Vec<DataZone>,
    pub free: Vec<Vec<usize>>,
    pub open: [Vec<Option<usize>>; STREAMS],
    pub rr: [usize; STREAMS],
    /// Map changes not yet written to the journal, in the order they were made.
    pub journal: Vec<Entry>,
    /// Map pages that turned dirty, oldest first (a page written back since, or dirty
    /// again later, may still be listed: [`State::oldest_dirty`] skips those).
    pub dirty: VecDeque<Dirty>,
    /// Journal entries taken out of `journal` so far (so `drained + journal.len()` is the
    /// position the next entry takes).
    pub drained: u64,
    /// The zone map pages are written back to.
    pub map_zone: Option<usize>,
    /// Valid counts and mapped totals are complete (false after a recovery until the
    /// recount has visited every map page; GC waits for it).
    pub counted: bool,
    /// Full zones without a footer (finished by a recovery): their keys come from the
    /// recount and stay in DRAM until GC empties them. Every checkpoint lists them.
    pub footerless: std::collections::BTreeSet<usize>,
    pub volumes: BTreeMap<String, VolumeRef>,
    pub by_id: BTreeMap<u16, Arc<VolumeMap>>,
    pub next_volume_id: u16,
    pub mapped: u64,
    pub clock: u64,
    /// Set when GC found nothing to collect while host writes waited for space.
    pub stuck: bool,
    /// The ages at which host writes replace blocks: whether streams are kept apart.
    pub lifetimes: Lifetimes,
}

impl State {
    /// Account for media location `old` no longer being mapped.
    pub fn invalidate(&mut self, geo: &Geometry, old: u64) {
        if let Some(z) = Loc::unpack(old).and_then(|l| geo.zone_id(l)) {
            let dz = &mut self.zones[z];
            dz.valid = dz.valid.saturating_sub(1);
            self.stuck = false;
        }
    }

    /// Account for media location `new` being mapped now.
    pub fn validate(&mut self, geo: &Geometry, new: u64) {
        if let Some(z) = Loc::unpack(new).and_then(|l| geo.zone_id(l)) {
            self.zones[z].valid += 1;
        }
    }

    /// Journal position of the next entry.
    pub fn position(&self) -> u64 {
        self.drained + self.journal.len() as u64
    }

    /// `page` (page `p` of volume `vol`) turned dirty now.
    pub fn note_dirty(&mut self, vol: u16, p: u64, page: &Page) {
        let since = self.position();
        page.since.store(since, Ordering::Release);
        self.dirty.push_back(Dirty {
            vol,
            page: p,
            since,
        });
    }

    /// The journal position since which the oldest dirty page holds changes its media copy
    /// lacks; listings that are stale are dropped on the way.
    pub fn oldest_dirty(&mut self) -> Option<u64> {
        while let Some(d) = self.dirty.front() {
            if self.is_dirty(d) {
                return Some(d.since);
            }
            self.dirty.pop_front();
        }
        None
    }

    /// The listing is current: its page is dirty since then.
    pub fn is_dirty(&self, d: &Dirty) -> bool {
        self.by_id
            .get(&d.vol)
            .and_then(|m| m.resident(d.page))
            .is_some_and(|p| {
                p.dirty.load(Ordering::Acquire) && p.since.load(Ordering::Acquire) == d.since
            })
    }

    /// Point `lba` of `map` at `packed` (0 unmaps) on its page `page` (in DRAM, pinned),
    /// keeping the valid counts, mapped totals and dirty list; returns the old value.
    pub fn set_block(
        &mut self,
        geo: &Geometry,
        map: &VolumeMap,
        page: &Page,
        lba: u64,
        packed: u64,
    ) -> u64 {
        let (old, dirtied) = map.swap(page, lba, packed);
        let pno = map.page_of(lba).0;
        if dirtied {
            self.note_dirty(map.id, pno, page);
        }
        if old != packed && map.counted(pno) {
            match (old, packed) {
                (0, _) => {
                    self.mapped += 1;
                    map.add_mapped(1);
                }
                (_, 0) => {
                    self.mapped -= 1;
                    map.add_mapped(-1);
                }
                _ => {}
            }
            self.invalidate(geo, old);
            self.validate(geo, packed);
        }
        old
    }

    pub fn free_zones(&self) -> usize {
        self.free.iter().map(Vec::len).sum()
    }

    /// The zone a stream's slot names (`slot`), if it is still open for `stream` with room.
    /// A slot keeps naming its zone after the zone fills; GC may then collect it and open it
    /// again for another stream or the map, whose room is not this stream's to write.
    pub fn open_with_room(&self, slot: Option<usize>, stream: Stream) -> Option<usize> {
        slot.filter(|&z| self.zones[z].state == ZState::Open(stream) && self.zones[z].room > 0)
    }
}

/// Counters of a pool, summed over its volumes.
#[derive(Default)]
pub struct Counters {
    pub host_write_blocks: AtomicU64,
    pub host_read_blocks: AtomicU64,
    pub gc_write_blocks: AtomicU64,
    pub meta_write_blocks: AtomicU64,
    pub zone_resets: AtomicU64,
    pub gc_victims: AtomicU64,
    pub trimmed_blocks: AtomicU64,
    pub checkpoints: AtomicU64,
}

pub struct Inner {
    pub name: String,
    pub geo: Geometry,
    pub members: Vec<Member>,
    pub pool_id: [u8; 16],
    pub op_percent: u32,
    pub policy: GcPolicy,
    pub usable_blocks: u64,
    /// Map pages in DRAM, and their budget.
    pub cache: Cache,
    /// Free zones per member host writes leave to GC.
    pub reserve: usize,
    /// Free zones per member under which GC runs.
    pub gc_start: usize,
    pub state: Mutex<State>,
    /// Wakes host writes waiting for a free zone, and GC.
    pub cond: Condvar,
    pub meta: Mutex<Meta>,
    /// Reads in flight per data zone: a victim is reset only when none are left.
    pub readers: Box<[AtomicU32]>,
    pub counters: Counters,
    pub stopping: AtomicBool,
}

/// A map page listed dirty: volume, page, and the journal position it turned dirty at.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Dirty {
    pub vol: u16,
    pub page: u64,
    pub since: u64,
}

/// A pool's figures.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct PoolStats {
    pub block_size: u32,
    pub zone_cap_blocks: u64,
    /// Blocks of a zone that hold data (the rest is its footer).
    pub zone_data_blocks: u64,
    pub data_zones: u64,
    pub free_zones: u64,
    /// Percent of the data zones kept back from volumes (as the pool was formatted).
    pub over_provisioning: u32,
    pub usable_blocks: u64,
    pub mapped_blocks: u64,
    pub host_write_blocks: u64,
    pub host_read_blocks: u64,
    pub gc_write_blocks: u64,
    pub meta_write_blocks: u64,
    pub zone_resets: u64,
    pub gc_victims: u64,
    pub trimmed_blocks: u64,
    pub checkpoints: u64,
    /// Full zones by valid fraction, in tenths: `[0] = 0..10%` ... `[9] = 90..100%`.
    pub valid_histogram: [u64; 10],
    /// DRAM the map takes: pages in the cache and the page directory.
    pub map_resident_bytes: u64,
    pub map_pages_resident: u64,
    /// Pages listed dirty (waiting for write-back).
    pub map_pages_dirty: u64,
    /// The cache's budget, in pages.
    pub map_cache_pages: u64,
    /// Valid counts are complete (false while a recovered pool's recount runs).
    pub counted: bool,
    /// Young and old data are written to streams of their own (age has been found to tell
    /// how long data lives); false: everything shares one stream.
    pub hot_cold_apart: bool,
    /// The squared coefficient of variation of the ages at which host writes replaced
    /// blocks lately (1 for uniform random writes); none before any.
    pub lifetime_dispersion: Option<f64>,
}

impl PoolStats {
    /// Media blocks written per host block written (data moved by GC and metadata included).
    pub fn waf(&self) -> f64 {
        if self.host_write_blocks == 0 {
            return 1.0;
        }
        (self.host_write_blocks + self.gc_write_blocks + self.meta_write_blocks) as f64
            / self.host_write_blocks as f64
    }
}

/// A volume's figures.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct VolumeStats {
    pub mapped_blocks: u64,
}

fn gone(what: &str) -> BackendError {
    BackendError::Gone(format!("volume {what} was deleted"))
}

impl Inner {
    pub fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock_counted()
    }

    pub fn lock_meta(&self) -> MutexGuard<'_, Meta> {
        self.meta.lock_counted()
    }

    pub fn stop(&self) {
        self.stopping.store(true, Ordering::SeqCst);
        let _g = self.lock();
        self.cond.notify_all();
    }

    /// Place and write `data` for blocks `lba..` of volume `vol`.
    pub fn write(
        &self,
        vol: &VolumeRef,
        lba: u64,
        data: &[u8],
        fua: bool,
    ) -> Result<(), BackendError> {
        let bs = u64::from(self.geo.bs);
        let blocks = data.len() as u64 / bs;
        if vol.map.deleted.load(Ordering::Acquire) {
            return Err(gone(&vol.def.name));
        }
        let mut pins = Pins::default();
        self.pin_range(&mut pins, &vol.map, lba, blocks)?;
        let stream = {
            let mut st = self.lock();
            if vol.map.deleted.load(Ordering::Acquire) {
                return Err(gone(&vol.def.name));
            }
            let new = (lba..lba + blocks)
                .filter(|&b| pins.entry(&vol.map, b) == 0)
                .count() as u64;
            // Writes in flight are not counted yet: they may overshoot by what they place,
            // which GC's reserve zones absorb.
            if st.mapped + new > self.usable_blocks {
                return Err(BackendError::NoSpace);
            }
            self.temperature(&mut st, &vol.map, &pins, lba, blocks)
        };
        let chunk = (self.chunk_blocks() * bs) as usize;
        let mut done = 0u64;
        while done < blocks {
            let from = (done * bs) as usize;
            let part = &data[from..data.len().min(from + chunk)];
            let mut p = self.place(stream, true, part)?;
            self.commit(&mut p, &pins, vol, lba + done);
            done += p.blocks;
            let (seal, z) = (p.seal, p.zone);
            drop(p);
            if seal {
                self.seal(z);
            }
        }
        drop(pins);
        self.counters
            .host_write_blocks
            .fetch_add(blocks, Ordering::Relaxed);
        if fua {
            self.flush()
        } else {
            self.journal_if_full()
        }
    }

    /// Map the blocks `p` placed to blocks `lba..` of `vol` (a host write).
    fn commit(&self, p: &mut Placed<'_>, pins: &Pins, vol: &VolumeRef, lba: u64) {
        let id = vol.def.id;
        let (z, at, n) = (p.zone, p.at, p.blocks);
        let st = &mut *p.st;
        let dz = &mut st.zones[z];
        let off = (at.lba - dz.zslba) as usize;
        for (i, slot) in dz.p2l[off..off + n as usize].iter_mut().enumerate() {
            *slot = key(id, lba + i as u64);
        }
        for i in 0..n {
            let page = pins.page(&vol.map, lba + i);
            st.set_block(&self.geo, &vol.map, page, lba + i, at.offset(i).pack());
        }
        st.journal.push(Entry::Map {
            vol: id,
            lba,
            len: n as u8,
            at,
        });
    }

    /// Read blocks `lba..` of `vol` into `buf`.
    pub fn read(&self, vol: &VolumeRef, lba: u64, buf: &mut [u8]) -> Result<(), BackendError> {
        if vol.map.deleted.load(Ordering::Acquire) {
            return Err(gone(&vol.def.name));
        }
        let bs = self.geo.bs as usize;
        let blocks = (buf.len() / bs) as u64;
        let map = &vol.map;
        let mut i = 0u64;
        while i < blocks {
            let first = self.lookup(map, lba + i)?;
            let Some(at) = Loc::unpack(first) else {
                buf[i as usize * bs..(i as usize + 1) * bs].fill(0);
                i += 1;
                continue;
            };
            // A run of blocks at consecutive media blocks in one zone.
            let z = self.geo.zone_id(at);
            let mut n = 1u64;
            while i + n < blocks
                && n < MAX_RUN
                && self.lookup(map, lba + i + n)? == at.offset(n).pack()
                && self.geo.zone_id(at.offset(n)) == z
            {
                n += 1;
            }
            let Some(z) = z else {
                return Err(BackendError::Io(std::io::Error::other(format!(
                    "volume {} block {} maps outside the pool's data zones",
                    vol.def.name,
                    lba + i
                ))));
            };
            self.readers[z].fetch_add(1, Ordering::SeqCst);
            // Pinned: GC resets a zone only once its readers are gone, and only after it has
            // moved every block; so if the map still points here, the data is here.
            let still = (0..n).try_fold(true, |ok, k| {
                Ok::<_, BackendError>(ok && self.lookup(map, lba + i + k)? == at.offset(k).pack())
            });
            let r = match still {
                Ok(true) => {
                    let out = &mut buf[i as usize * bs..(i + n) as usize * bs];
                    self.members[usize::from(at.member)]
                        .backend
                        .read(at.lba, out)
                        .map(|()| true)
                }
                other => other,
            };
            self.readers[z].fetch_sub(1, Ordering::SeqCst);
            if r? {
                i += n;
            }
        }
        self.counters
            .host_read_blocks
            .fetch_add(blocks, Ordering::Relaxed);
        Ok(())
    }

    /// Deallocate blocks `lba..lba + blocks` of `vol`, a map page at a time.
    pub fn trim(&self, vol: &VolumeRef, lba: u64, blocks: u64) -> Result<(), BackendError> {
        let map = &vol.map;
        let end = lba + blocks;
        let mut freed = 0;
        let mut b = lba;
        while b < end {
            let (pno, _) = map.page_of(b);
            let upto = map.page_range(pno).end.min(end);
            if map.media(pno) == 0 && map.resident(pno).is_none() {
                // Nothing on this page was ever mapped.
                b = upto;
                continue;
            }
            let mut pins = Pins::default();
            self.pin_range(&mut pins, map, b, upto - b)?;
            let mut st = self.lock();
            if map.deleted.load(Ordering::Acquire) {
                return Err(gone(&vol.def.name));
            }
            let page = pins.page(map, b);
            for x in b..upto {
                if st.set_block(&self.geo, map, page, x, 0) != 0 {
                    freed += 1;
                }
            }
            st.journal.push(Entry::Trim {
                vol: vol.def.id,
                lba: b,
                len: upto - b,
            });
            drop(st);
            b = upto;
        }
        self.counters
            .trimmed_blocks
            .fetch_add(freed, Ordering::Relaxed);
        self.cond.notify_all();
        self.journal_if_full()
    }

    /// NVMe Flush: every write completed before the call, and the map entries that find it,
    /// are durable when this returns.
    pub fn flush(&self) -> Result<(), BackendError> {
        let mut meta = self.lock_meta();
        self.write_journal(&mut meta, true)
    }

    /// Write the journal's full blocks when enough changes are waiting, and write back map
    /// pages when writers dirty them faster than GC's thread does (twice its limit).
    pub fn journal_if_full(&self) -> Result<(), BackendError> {
        let per = super::format::entries_per_block(self.geo.bs as usize);
        let (entries, dirty) = {
            let st = self.lock();
            (st.journal.len(), st.dirty.len())
        };
        let limit = self.cache.dirty_limit();
        if dirty > 2 * limit {
            let mut meta = self.lock_meta();
            if let Err(e) = self.write_back(&mut meta, Which::Oldest(dirty - limit)) {
                // GC frees the zones this needs; the pages stay dirty meanwhile.
                tracing::debug!(pool = %self.name, error = %e, "map write-back deferred");
            }
        }
        if entries < per {
            return Ok(());
        }
        let mut meta = self.lock_meta();
        self.write_journal(&mut meta, false)
    }

    /// Flush the data members that have a volatile write cache.
    pub fn flush_data(&self) -> Result<(), BackendError> {
        for m in self.members.iter().filter(|m| m.volatile) {
            m.backend.flush()?;
        }
        Ok(())
    }
}

/// The P2L key of block `lba` of volume `vol` (never 0: volume ids start at 1).
pub fn key(vol: u16, lba: u64) -> u64 {
    (u64::from(vol) << super::format::LBA_BITS) | lba
}

/// Set in the LBA part of a key that names a map page rather than a volume block.
pub const MAP_KEY: u64 = 1 << (super::format::LBA_BITS - 1);

/// The P2L key of map page `page` of volume `vol`.
pub fn map_key(vol: u16, page: u64) -> u64 {
    key(vol, MAP_KEY | page)
}

pub fn unkey(k: u64) -> (u16, u64) {
    (
        (k >> super::format::LBA_BITS) as u16,
        k & ((1 << super::format::LBA_BITS) - 1),
    )
}
