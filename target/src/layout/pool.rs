//! The pool's running state and its I/O paths: placing host writes, reading through the map,
//! deallocating, flushing.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Duration;

use ferrofab_sync::CountedLock as _;
use nvme::backend::{Backend, BackendError};

use super::format::{Entry, Loc, VolumeDef, MAX_RUN};
use super::map::VolumeMap;
use super::meta::Meta;
use super::volume::VolumeBackend;
use super::{GcPolicy, LayoutError, VolumeInfo};

/// Largest piece of a host write placed at once (one Zone Append).
const MAX_CHUNK_BYTES: u64 = 128 << 10;

/// The write streams, hottest first.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stream {
    Host = 0,
    Gc = 1,
    Cold = 2,
}
pub const STREAMS: usize = 3;

impl Stream {
    /// Where GC puts data it moves out of a zone of this stream.
    pub fn colder(self) -> Stream {
        match self {
            Stream::Host => Stream::Gc,
            Stream::Gc | Stream::Cold => Stream::Cold,
        }
    }
}

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
        if z < first || z >= self.zones || loc.lba % self.zone_size >= self.zone_cap {
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
    /// For each written block, the (volume id, LBA) key it was written for (0 = none).
    pub p2l: Vec<u64>,
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
    pub volumes: BTreeMap<String, VolumeRef>,
    pub by_id: BTreeMap<u16, Arc<VolumeMap>>,
    pub next_volume_id: u16,
    pub mapped: u64,
    pub clock: u64,
    /// Set when GC found nothing to collect while host writes waited for space.
    pub stuck: bool,
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

    pub fn free_zones(&self) -> usize {
        self.free.iter().map(Vec::len).sum()
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

/// A pool's figures.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct PoolStats {
    pub block_size: u32,
    pub zone_cap_blocks: u64,
    pub data_zones: u64,
    pub free_zones: u64,
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
    pub map_resident_bytes: u64,
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

    fn chunk_blocks(&self) -> u64 {
        let limit = self
            .members
            .iter()
            .map(|m| m.append_limit)
            .min()
            .unwrap_or(MAX_CHUNK_BYTES)
            .min(MAX_CHUNK_BYTES);
        (limit / u64::from(self.geo.bs)).clamp(1, MAX_RUN)
    }

    /// Hand out up to `want` blocks of an open zone of `stream`: the zone, how many, and the
    /// zone's member and start LBA.
    /// Host writes wait for GC when only the reserve is left; GC may use the reserve.
    pub fn reserve(
        &self,
        stream: Stream,
        want: u64,
    ) -> Result<(usize, u64, u8, u64), BackendError> {
        let mut st = self.lock();
        let s = stream as usize;
        let floor = if stream == Stream::Host {
            self.reserve
        } else {
            0
        };
        let mut waited = Duration::ZERO;
        loop {
            // The next member in turn that has room in its open zone or a zone to open; a
            // member short of free zones is passed over while another has room.
            let members = self.geo.members;
            let first = st.rr[s];
            let pick = (0..members).map(|k| (first + k) % members).find(|&m| {
                st.open[s][m].is_some_and(|z| st.zones[z].room > 0) || st.free[m].len() > floor
            });
            if let Some(m) = pick {
                st.rr[s] = m + 1;
                let z = match st.open[s][m].filter(|&z| st.zones[z].room > 0) {
                    Some(z) => z,
                    None => {
                        let z = st.free[m].pop().expect("checked above");
                        let cap = self.geo.zone_cap;
                        let dz = &mut st.zones[z];
                        dz.state = ZState::Open(stream);
                        dz.room = cap;
                        dz.valid = 0;
                        dz.p2l = vec![0; cap as usize];
                        st.open[s][m] = Some(z);
                        z
                    }
                };
                let clock = st.clock;
                let dz = &mut st.zones[z];
                let n = want.min(dz.room);
                dz.room -= n;
                dz.inflight += 1;
                dz.stamp = clock;
                let (member, zslba) = (dz.member, dz.zslba);
                st.clock += n;
                return Ok((z, n, member, zslba));
            }
            // Host writes wait for GC; after a second with GC finding nothing to collect,
            // the pool is full.
            let give_up = st.stuck && waited >= Duration::from_secs(1);
            if stream != Stream::Host || give_up || self.stopping.load(Ordering::SeqCst) {
                return Err(BackendError::NoSpace);
            }
            self.cond.notify_all();
            st = self
                .cond
                .wait_timeout(st, Duration::from_millis(50))
                .expect("state lock")
                .0;
            waited += Duration::from_millis(50);
        }
    }

    /// An append placed in zone `z` is over (done or failed): the zone is full once nothing
    /// is left to hand out or in flight.
    fn complete(&self, st: &mut State, z: usize) {
        let dz = &mut st.zones[z];
        dz.inflight -= 1;
        if dz.room == 0 && dz.inflight == 0 {
            if let ZState::Open(s) = dz.state {
                dz.state = ZState::Full(s);
                // A new full zone may be worth collecting.
                st.stuck = false;
            }
        }
    }

    /// Append the first blocks of `data` (as many as an open zone of `stream` gives) and
    /// return, with the state lock held, the zone, where they landed and how many: for host
    /// writes and GC copies alike.
    pub fn place(
        &self,
        stream: Stream,
        data: &[u8],
    ) -> Result<(MutexGuard<'_, State>, usize, Loc, u64), BackendError> {
        let bs = self.geo.bs as usize;
        let (z, n, member, zslba) = self.reserve(stream, (data.len() / bs) as u64)?;
        let placed = self.members[usize::from(member)].zoned().append(
            zslba,
            &data[..n as usize * bs],
            false,
        );
        let mut st = self.lock();
        self.complete(&mut st, z);
        let first = placed?;
        Ok((st, z, Loc { member, lba: first }, n))
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
        {
            let st = self.lock();
            if vol.map.deleted.load(Ordering::Acquire) {
                return Err(gone(&vol.def.name));
            }
            let new = (lba..lba + blocks).filter(|&b| vol.map.get(b) == 0).count() as u64;
            // Writes in flight are not counted yet: they may overshoot by what they place,
            // which GC's reserve zones absorb.
            if st.mapped + new > self.usable_blocks {
                return Err(BackendError::NoSpace);
            }
        }
        let chunk = (self.chunk_blocks() * bs) as usize;
        let mut done = 0u64;
        while done < blocks {
            let from = (done * bs) as usize;
            let part = &data[from..data.len().min(from + chunk)];
            let (mut st, z, at, n) = self.place(Stream::Host, part)?;
            self.commit(&mut st, vol, lba + done, z, at, n);
            done += n;
        }
        self.counters
            .host_write_blocks
            .fetch_add(blocks, Ordering::Relaxed);
        if fua {
            self.flush()
        } else {
            self.journal_if_full()
        }
    }

    /// Map `n` blocks of `vol` from `lba` to `at.. ` in zone `z` (a host write).
    fn commit(&self, st: &mut State, vol: &VolumeRef, lba: u64, z: usize, at: Loc, n: u64) {
        let id = vol.def.id;
        let dz = &mut st.zones[z];
        let off = (at.lba - dz.zslba) as usize;
        for (i, slot) in dz.p2l[off..off + n as usize].iter_mut().enumerate() {
            *slot = key(id, lba + i as u64);
        }
        for i in 0..n {
            let old = vol.map.swap(lba + i, at.offset(i).pack());
            if old == 0 {
                st.mapped += 1;
            } else {
                st.invalidate(&self.geo, old);
            }
        }
        st.zones[z].valid += n;
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
        let mut i = 0u64;
        while i < blocks {
            let first = vol.map.get(lba + i);
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
                && vol.map.get(lba + i + n) == at.offset(n).pack()
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
            let still = (0..n).all(|k| vol.map.get(lba + i + k) == at.offset(k).pack());
            let r = if still {
                let out = &mut buf[i as usize * bs..(i + n) as usize * bs];
                self.members[usize::from(at.member)]
                    .backend
                    .read(at.lba, out)
                    .map(|()| true)
            } else {
                Ok(false)
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

    /// Deallocate blocks `lba..lba + blocks` of `vol`.
    pub fn trim(&self, vol: &VolumeRef, lba: u64, blocks: u64) -> Result<(), BackendError> {
        let mut st = self.lock();
        if vol.map.deleted.load(Ordering::Acquire) {
            return Err(gone(&vol.def.name));
        }
        let mut freed = 0;
        for b in lba..lba + blocks {
            let old = vol.map.swap(b, 0);
            if old != 0 {
                st.invalidate(&self.geo, old);
                freed += 1;
            }
        }
        st.mapped -= freed;
        st.journal.push(Entry::Trim {
            vol: vol.def.id,
            lba,
            len: blocks,
        });
        drop(st);
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

    /// Write the journal's full blocks when enough changes are waiting.
    pub fn journal_if_full(&self) -> Result<(), BackendError> {
        let per = super::format::entries_per_block(self.geo.bs as usize);
        if self.lock().journal.len() < per {
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

    pub fn volume(
        self: &Arc<Self>,
        name: &str,
        block_size: u32,
        blocks: u64,
    ) -> Result<Arc<VolumeBackend>, LayoutError> {
        if name.is_empty() || name.len() > super::format::MAX_NAME {
            return Err(LayoutError::Invalid(format!(
                "volume name {name:?}: 1 to {} bytes",
                super::format::MAX_NAME
            )));
        }
        if block_size != self.geo.bs {
            return Err(LayoutError::Invalid(format!(
                "volume {name}: block size {block_size} differs from the pool's {} \
                 (its drives' logical block size)",
                self.geo.bs
            )));
        }
        if blocks == 0 || blocks > self.usable_blocks || blocks >= 1 << super::format::LBA_BITS {
            return Err(LayoutError::Invalid(format!(
                "volume {name}: {blocks} blocks; a volume has 1 to {} blocks (the pool's \
                 capacity after over-provisioning)",
                self.usable_blocks
            )));
        }
        let mut meta = self.lock_meta();
        let mut st = self.lock();
        if let Some(v) = st.volumes.get(name) {
            if v.def.blocks != blocks || v.def.block_size != block_size {
                return Err(LayoutError::Invalid(format!(
                    "volume {name} exists with {} blocks of {} bytes, not {blocks} of \
                     {block_size}",
                    v.def.blocks, v.def.block_size
                )));
            }
            return Ok(Arc::new(VolumeBackend::new(
                self.clone(),
                VolumeRef {
                    def: v.def.clone(),
                    map: v.map.clone(),
                },
            )));
        }
        if st.next_volume_id == u16::MAX {
            return Err(LayoutError::Invalid(
                "the pool has used every volume id".into(),
            ));
        }
        let def = VolumeDef {
            id: st.next_volume_id,
            name: name.to_string(),
            block_size,
            blocks,
        };
        st.next_volume_id += 1;
        let map = Arc::new(VolumeMap::new(blocks));
        st.by_id.insert(def.id, map.clone());
        st.volumes.insert(
            name.to_string(),
            VolumeRef {
                def: def.clone(),
                map: map.clone(),
            },
        );
        drop(st);
        if let Err(e) = self.write_superblock(&mut meta) {
            let mut st = self.lock();
            st.volumes.remove(name);
            st.by_id.remove(&def.id);
            return Err(e.into());
        }
        tracing::info!(pool = %self.name, volume = name, blocks, "volume created");
        Ok(Arc::new(VolumeBackend::new(
            self.clone(),
            VolumeRef { def, map },
        )))
    }

    pub fn delete_volume(&self, name: &str) -> Result<(), LayoutError> {
        let mut meta = self.lock_meta();
        let mut st = self.lock();
        let v = st
            .volumes
            .remove(name)
            .ok_or_else(|| LayoutError::NoVolume(name.to_string()))?;
        st.by_id.remove(&v.def.id);
        v.map.deleted.store(true, Ordering::Release);
        let mut freed = 0;
        let mapped: Vec<(u64, u64)> = v.map.mapped().collect();
        for (lba, old) in mapped {
            v.map.swap(lba, 0);
            st.invalidate(&self.geo, old);
            freed += 1;
        }
        st.mapped -= freed;
        drop(st);
        self.cond.notify_all();
        // Its entries left in the journal or the checkpoint name an id no volume has now.
        self.write_superblock(&mut meta)?;
        tracing::info!(pool = %self.name, volume = name, "volume deleted");
        Ok(())
    }

    pub fn volumes(&self) -> Vec<VolumeInfo> {
        let st = self.lock();
        st.volumes
            .values()
            .map(|v| VolumeInfo {
                name: v.def.name.clone(),
                block_size: v.def.block_size,
                blocks: v.def.blocks,
                mapped_blocks: v.map.mapped_blocks(),
            })
            .collect()
    }

    pub fn stats(&self) -> PoolStats {
        let st = self.lock();
        let mut hist = [0u64; 10];
        for z in st
            .zones
            .iter()
            .filter(|z| matches!(z.state, ZState::Full(_)))
        {
            let tenth = (z.valid * 10 / self.geo.zone_cap).min(9);
            hist[tenth as usize] += 1;
        }
        let c = &self.counters;
        PoolStats {
            block_size: self.geo.bs,
            zone_cap_blocks: self.geo.zone_cap,
            data_zones: st.zones.len() as u64,
            free_zones: st.free_zones() as u64,
            usable_blocks: self.usable_blocks,
            mapped_blocks: st.mapped,
            host_write_blocks: c.host_write_blocks.load(Ordering::Relaxed),
            host_read_blocks: c.host_read_blocks.load(Ordering::Relaxed),
            gc_write_blocks: c.gc_write_blocks.load(Ordering::Relaxed),
            meta_write_blocks: c.meta_write_blocks.load(Ordering::Relaxed),
            zone_resets: c.zone_resets.load(Ordering::Relaxed),
            gc_victims: c.gc_victims.load(Ordering::Relaxed),
            trimmed_blocks: c.trimmed_blocks.load(Ordering::Relaxed),
            checkpoints: c.checkpoints.load(Ordering::Relaxed),
            valid_histogram: hist,
            map_resident_bytes: st.by_id.values().map(|m| m.resident_bytes()).sum(),
        }
    }
}

/// The P2L key of block `lba` of volume `vol` (never 0: volume ids start at 1).
pub fn key(vol: u16, lba: u64) -> u64 {
    (u64::from(vol) << super::format::LBA_BITS) | lba
}

pub fn unkey(k: u64) -> (u16, u64) {
    (
        (k >> super::format::LBA_BITS) as u16,
        k & ((1 << super::format::LBA_BITS) - 1),
    )
}
