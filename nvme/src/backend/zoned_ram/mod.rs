//! A zoned namespace in software: the zones' states and write pointers in a
//! [`ZoneSet`](crate::zns::ZoneSet), the data in a sparse [`RamBackend`] or, with a backing
//! file ([`ZonedRamBackend::open_file`]), data and zone records in that file
//! ([`file_store`] describes its layout).
//!
//! Zone rule failures come back as [`BackendError::Device`] with the NVMe status of the rule
//! (NVMe ZNS 1.1 §2.1, §4.3, §4.4, §5). Every check and every change of a zone's state or
//! write pointer happens under the zone set's lock, so concurrent Zone Appends to one zone get
//! distinct, adjacent LBAs.
//!
//! # Data outside the lock (in memory)
//!
//! In memory the data is copied after the lock is released, so a 4 KiB read does not wait
//! for a 256 KiB copy to another zone. [`RamBackend`] copies each 64 KiB chunk under its
//! shard's lock, so copies of different ranges may run at once and a block is never seen
//! half-written. A read checks its range without the lock (NVMe ZNS 1.1 §5.1: the geometry is
//! fixed, and the one state that fails a read, Offline, is kept in a flag per zone, raised
//! under the lock), then copies; a Write or Zone Append moves the write pointer (and the
//! zone's state) under the lock, then copies (§5.2, §4.3). What a concurrent command can see
//! follows from that:
//!
//! - A read of blocks whose write or append has not completed returns, block by block, their
//!   old contents (zeroes: they were past the write pointer) or the new data. Commands in
//!   flight together are not ordered (NVMe Base 2.0, Command Ordering Requirements): a
//!   command's data is defined for other commands only once it has completed, and a read
//!   submitted after a write's completion sees all of it.
//! - A read racing a Reset Zone of its zone (§4.4.3.2.4) returns, chunk by chunk, the data
//!   from before the reset or zeroes (or, if the zone is written again meanwhile, that new
//!   data): the read and the reset were in flight together, so any of them is allowed.
//! - A Reset never races a write's copy into the zone it resets: each write or append holds
//!   its zone's gate (a read guard, taken before the zone lock is released) until its data
//!   is stored, and Reset takes the gate alone, under the zone lock, before it takes the
//!   zone's data out of the store (the memory itself is freed after the lock). A write
//!   therefore lands entirely before the reset empties the zone, never after: blocks at or
//!   past the write pointer read as zeroes, and no stale copy can land over data written
//!   after the reset.
//! - Memory that cannot be had (`NoSpace`) fails the command after its write pointer moved:
//!   the blocks not stored read as zeroes, as they did before.
//!
//! A backing file keeps the lock across each data access: its crash consistency (below) and
//! putting a zone back when its data could not be stored rely on it.
//!
//! # The backing file across a crash
//!
//! Under the lock, a command that writes changes the zone set, stores its data (`pwrite`),
//! then replaces the record of every zone whose state or write pointer changed (`pwrite` of
//! 16 bytes each) and, with FUA, `fdatasync`s; only then does it complete. A process killed at
//! any moment therefore leaves every completed command in the file (the page cache outlives
//! the process) and, of the command in flight, at most its data past the recorded write
//! pointer: a write whose record was not replaced was never acknowledged, and blocks at or
//! past a write pointer read as zeroes whatever the file holds there. Finish zeroes the
//! blocks it moves the write pointer over before writing the record, so such leftovers never
//! become readable; Reset writes the record first, then deallocates the zone. Across a power
//! loss the same holds for what Flush or FUA made durable (`fdatasync`): the backend reports
//! a volatile write cache, as a drive with one would.
//!
//! On opening, opened zones come back Closed, as after a power cycle (NVMe ZNS 1.1
//! §2.1.1.3), and their records are rewritten so. The Changed Zone List is not kept.

use ferrofab_sync::{CountedLock as _, CountedRwLock as _};
use std::collections::BTreeSet;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, MutexGuard, RwLock, RwLockReadGuard};

use super::null::invalid_input;
use super::ram::Freed;
use super::{
    blocks_in, Backend, BackendError, BackendInfo, RamBackend, ZoneFault, ZoneFaultError,
    ZoneFaults, ZonedBackend, ZonedGeometry,
};
use crate::zns::{read_zone, ReportOption, ZoneAction, ZoneLimits, ZoneRecord, ZoneSet, ZoneState};
use crate::Status;

pub mod file_store;

use file_store::FileStore;

/// Geometry and resources of a [`ZonedRamBackend`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ZonedRamConfig {
    /// Logical block size in bytes (512 or 4096).
    pub block_size: u32,
    /// Blocks per zone.
    pub zone_size: u64,
    /// Writable blocks per zone (1..=zone_size).
    pub zone_cap: u64,
    /// Number of zones.
    pub zone_count: u64,
    /// Open and active zone limits (0 = no limit).
    pub limits: ZoneLimits,
    /// Zone Append Size Limit: 2^n units of 4 KiB (CAP.MPSMIN of 4 KiB); 0 = MDTS applies,
    /// which the transport checks (NVMe ZNS 1.1 §4.1.5.2).
    pub zasl: u8,
}

impl ZonedRamConfig {
    /// The namespace's size in bytes, or why the geometry is refused.
    fn checked_size(&self) -> Result<u64, BackendError> {
        ZoneSet::new(self.zone_size, self.zone_cap, self.zone_count, self.limits)
            .map_err(|e| invalid_input(e.to_string()))?;
        let size = self
            .zone_size
            .checked_mul(self.zone_count)
            .and_then(|blocks| blocks.checked_mul(u64::from(self.block_size)))
            .ok_or_else(|| invalid_input(format!("{self:?} does not fit in 64-bit bytes")))?;
        if u32::from(self.zasl) > 63 - 12 {
            return Err(invalid_input(format!("ZASL {} is too large", self.zasl)));
        }
        Ok(size)
    }
}

/// A zoned namespace held in memory, or in a backing file.
pub struct ZonedRamBackend {
    cfg: ZonedRamConfig,
    store: Store,
    zones: Mutex<Zones>,
}

/// Where the data lives.
enum Store {
    Ram(RamStore),
    File(FileStore),
}

/// The data in memory, copied outside the zone lock.
struct RamStore {
    data: RamBackend,
    /// One per zone: shared by each write or append while it copies into the zone, held
    /// alone by a Reset while it takes the zone's data out. Locks are taken in the order zone
    /// lock, gate, the store's shard locks; a thread holding a gate never waits for the zone
    /// lock, so a Reset waiting for a gate under the zone lock waits only for copies.
    gates: Box<[RwLock<()>]>,
    /// One per zone: set, under the zone lock, once the zone is Offline, which is for good
    /// (NVMe ZNS 1.1 §2.1.1.7). The one zone state that fails a read, so reads check their
    /// range against it and the fixed geometry without taking the zone lock.
    offline: Box<[AtomicBool]>,
}

impl RamStore {
    /// Trade the zone lock for the gate of the zone holding `lba`, shared: a Reset of that
    /// zone (which takes the gate alone under the zone lock) waits until the guard is dropped.
    /// The gate is taken before the zone lock is released, so no Reset comes in between.
    fn unlock_to_copy<'a>(
        &'a self,
        zones: MutexGuard<'_, Zones>,
        lba: u64,
    ) -> Option<RwLockReadGuard<'a, ()>> {
        let gate = zones.set.index_of(lba).and_then(|i| self.gates.get(i));
        let guard = gate.map(|g| g.read_counted());
        drop(zones);
        guard
    }

    /// Take the data of the zone starting at `zslba` (index `i`) out of the store, once no
    /// write or append is copying into it; the memory is freed when the result is dropped,
    /// after the zone lock. Called under the zone lock: a copy in flight needs only its gate
    /// to finish, and no new one can start.
    fn free_zone(&self, i: usize, zslba: u64, zone_size: u64) -> Result<Freed, BackendError> {
        let _alone = self.gates.get(i).map(|g| g.write_counted());
        self.data.take(zslba, zone_size)
    }

    /// Raise the Offline flag of every zone the set holds Offline; called under the zone
    /// lock after a command or a fault that may have taken zones offline.
    fn note_offline(&self, set: &ZoneSet) {
        for (i, flag) in self.offline.iter().enumerate() {
            if set.zone(i).is_some_and(|z| z.state() == ZoneState::Offline) {
                flag.store(true, Ordering::Release);
            }
        }
    }

    /// A read of `blocks` blocks at `lba`, checked as [`ZoneSet::check_read`] does (NVMe ZNS
    /// 1.1 §5.1) without the zone lock.
    fn check_read(&self, cfg: &ZonedRamConfig, lba: u64, blocks: u64) -> Result<(), BackendError> {
        let i = read_zone(cfg.zone_size, self.offline.len(), lba, blocks).map_err(device)?;
        if self.offline[i].load(Ordering::Acquire) {
            return Err(device(Status::ZONE_IS_OFFLINE));
        }
        Ok(())
    }
}

/// The zone set and the zones the device itself changed since the host last read the
/// Changed Zone List, under one lock; with a backing file, what its zone table holds.
struct Zones {
    set: ZoneSet,
    changed: Vec<u64>,
    file: Option<Recorded>,
}

/// The zone records as the backing file holds them.
struct Recorded {
    records: Vec<ZoneRecord>,
    /// Zones whose record is in an opened state: the only ones an implicit close (NVMe ZNS
    /// 1.1 §2.1.1.4) can change beside the zone a command names.
    opened: BTreeSet<usize>,
}

/// A zone rule's status: retrying the same command cannot succeed, so DNR is set.
fn device(status: Status) -> BackendError {
    BackendError::Device(status.with_dnr())
}

fn is_open_code(code: u8) -> bool {
    ZoneState::from_code(code).is_some_and(ZoneState::is_open)
}

/// A record as a restart reads it: opened states come back Closed.
fn after_restart(r: ZoneRecord) -> ZoneRecord {
    if is_open_code(r.state) {
        ZoneRecord {
            state: ZoneState::Closed.code(),
            ..r
        }
    } else {
        r
    }
}

impl Zones {
    /// The zones a command on zone `i` may have changed: `i`, and with an open limit the
    /// zones an implicit close may have taken.
    fn touched(&self, i: usize) -> Vec<usize> {
        let mut v = vec![i];
        if let (Some(f), true) = (&self.file, self.set.limits().max_open != 0) {
            v.extend(f.opened.iter().copied());
        }
        v
    }

    /// Write to `file` the record of every zone in `zones` that differs from the file's.
    /// With `zero_gaps`, a write pointer that moved forward without data (Finish) first
    /// zeroes the blocks it passed. A zone whose record cannot be written is put back as
    /// the file has it, unless the two differ only in opened against Closed, which a restart
    /// does not tell apart; the first error is returned after every zone was tried.
    fn persist(
        &mut self,
        file: &FileStore,
        zones: impl IntoIterator<Item = usize>,
        zero_gaps: bool,
    ) -> Result<(), BackendError> {
        let Some(rec) = self.file.as_mut() else {
            return Ok(());
        };
        let mut first_err = None;
        for i in zones {
            let (Some(zone), Some(&was)) = (self.set.zone(i), rec.records.get(i)) else {
                continue;
            };
            let (now, zslba) = (zone.record(), zone.zslba());
            if now == was {
                continue;
            }
            let mut stored = Ok(());
            if zero_gaps && now.wp > was.wp {
                stored = file.zero(was.wp, now.wp - was.wp);
            }
            let stored = stored.and_then(|()| file.write_record(i as u64, now));
            match stored {
                Ok(()) => {
                    rec.records[i] = now;
                    if is_open_code(now.state) {
                        rec.opened.insert(i);
                    } else {
                        rec.opened.remove(&i);
                    }
                }
                Err(e) => {
                    tracing::warn!(path = %file.path().display(), zone = i, error = %e,
                        "zone record not written; the zone stays as the file has it");
                    if after_restart(now) != after_restart(was) {
                        // Cannot fail: `zslba` and `was` come from this zone set.
                        let _ = self.set.put_back(zslba, was);
                    }
                    first_err.get_or_insert(e);
                }
            }
        }
        first_err.map_or(Ok(()), Err)
    }

    /// The end of a command that wrote `stored` (its data, or the failure to store it) at
    /// `lba` of the file: records of the zones it changed, then with `fua` `fdatasync`. Data
    /// that could not be stored leaves its zone as the file has it.
    fn commit(
        &mut self,
        file: &FileStore,
        lba: u64,
        stored: Result<(), BackendError>,
        fua: bool,
    ) -> Result<(), BackendError> {
        let i = self.set.index_of(lba).unwrap_or(usize::MAX);
        if let Err(e) = stored {
            let zone = self.set.zone(i).map(|z| z.zslba());
            let was = self.file.as_ref().and_then(|f| f.records.get(i).copied());
            if let (Some(zslba), Some(was)) = (zone, was) {
                // Cannot fail: both come from this zone set.
                let _ = self.set.put_back(zslba, was);
            }
            return Err(e);
        }
        let touched = self.touched(i);
        self.persist(file, touched, false)?;
        if fua {
            file.sync()?;
        }
        Ok(())
    }
}

impl ZonedRamBackend {
    /// A namespace of `zone_count` Empty zones in memory; nothing is allocated until data is
    /// written.
    pub fn new(cfg: ZonedRamConfig) -> Result<ZonedRamBackend, BackendError> {
        let size = cfg.checked_size()?;
        let zones = ZoneSet::new(cfg.zone_size, cfg.zone_cap, cfg.zone_count, cfg.limits)
            .map_err(|e| invalid_input(e.to_string()))?;
        Ok(ZonedRamBackend {
            cfg,
            store: Store::Ram(RamStore {
                data: RamBackend::new(size, cfg.block_size)?,
                gates: (0..cfg.zone_count).map(|_| RwLock::new(())).collect(),
                offline: (0..cfg.zone_count)
                    .map(|_| AtomicBool::new(false))
                    .collect(),
            }),
            zones: Mutex::new(Zones {
                set: zones,
                changed: Vec::new(),
                file: None,
            }),
        })
    }

    /// A namespace kept in the backing file at `path`: created with every zone Empty when
    /// absent, otherwise opened with the zones and data it holds, its opened zones Closed
    /// (NVMe ZNS 1.1 §2.1.1.3: a power cycle closes them). A file of another geometry, or a
    /// damaged one, is refused and left untouched.
    pub fn open_file(
        cfg: ZonedRamConfig,
        path: impl AsRef<Path>,
    ) -> Result<ZonedRamBackend, BackendError> {
        let path = path.as_ref();
        cfg.checked_size()?;
        let (file, records) = FileStore::open(path, &cfg)?;
        let set =
            ZoneSet::restore(cfg.zone_size, cfg.zone_cap, cfg.limits, &records).map_err(|e| {
                BackendError::Io(std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    format!("{}: zone table: {e}", path.display()),
                ))
            })?;
        let opened = records
            .iter()
            .enumerate()
            .filter(|(_, r)| is_open_code(r.state))
            .map(|(i, _)| i)
            .collect::<BTreeSet<_>>();
        let closed = opened.len();
        let mut zones = Zones {
            set,
            changed: Vec::new(),
            file: Some(Recorded { records, opened }),
        };
        let reopened: Vec<usize> = zones.file.iter().flat_map(|f| f.opened.clone()).collect();
        zones.persist(&file, reopened, false)?;
        file.sync()?;
        tracing::info!(path = %path.display(), zones = cfg.zone_count,
            active = zones.set.active_count(), closed, "zoned-ram backing file open");
        Ok(ZonedRamBackend {
            cfg,
            store: Store::File(file),
            zones: Mutex::new(zones),
        })
    }

    /// The configuration it was built with.
    pub fn config(&self) -> ZonedRamConfig {
        self.cfg
    }

    /// The backing file, if there is one.
    pub fn path(&self) -> Option<&Path> {
        match &self.store {
            Store::Ram(_) => None,
            Store::File(f) => Some(f.path()),
        }
    }

    /// The zones, locked. A lock poisoned by a panic is taken over: the zone set is consistent
    /// between its calls, and none of them panics.
    fn locked(&self) -> MutexGuard<'_, Zones> {
        self.zones.lock_counted()
    }

    /// A copy of the zones as they are now.
    pub fn zone_set(&self) -> ZoneSet {
        self.locked().set.clone()
    }

    /// A media event: the device moves the zone starting at `zslba` to Read Only or Offline
    /// (ZNS 1.1 §2.1.1.6, §2.1.1.7), and lists it in the Changed Zone List. An Offline zone
    /// is Offline for good: failing it again to Read Only is refused.
    pub fn fail_zone(&self, zslba: u64, fault: ZoneFault) -> Result<(), ZoneFaultError> {
        let mut z = self.locked();
        let i = z
            .set
            .index_at_start(zslba)
            .map_err(|_| ZoneFaultError::NoSuchZone(zslba))?;
        if z.set.zone(i).map(|zone| zone.state()) == Some(ZoneState::Offline)
            && fault != ZoneFault::Offline
        {
            return Err(ZoneFaultError::Offline(zslba));
        }
        z.set
            .force_state(zslba, fault.state())
            .map_err(|_| ZoneFaultError::NoSuchZone(zslba))?;
        match &self.store {
            Store::Ram(ram) => ram.note_offline(&z.set),
            Store::File(file) => z.persist(file, [i], false)?,
        }
        if !z.changed.contains(&zslba) {
            z.changed.push(zslba);
            z.changed.sort_unstable();
        }
        Ok(())
    }

    /// Controller reset: opened zones become Closed (NVMe ZNS 1.1 §2.1.1.3). With a backing
    /// file their records follow; one that cannot be written is retried by the next command
    /// (a restart closes the zone all the same).
    pub fn close_all_open(&self) {
        let mut z = self.locked();
        z.set.close_all_open();
        if let Store::File(file) = &self.store {
            let opened: Vec<usize> = z.file.iter().flat_map(|f| f.opened.clone()).collect();
            let _ = z.persist(file, opened, false);
        }
    }
}

impl Backend for ZonedRamBackend {
    /// Block size and capacity. Unwritten blocks read as zeroes, but deallocation does not
    /// zero anything here (zones are reset, not trimmed), so `deallocated_reads_zero` is false.
    /// A backing file sits behind the page cache: a volatile write cache, so hosts Flush.
    fn info(&self) -> BackendInfo {
        match &self.store {
            Store::Ram(ram) => BackendInfo {
                deallocated_reads_zero: false,
                ..ram.data.info()
            },
            Store::File(_) => BackendInfo {
                block_size: self.cfg.block_size,
                num_blocks: self.cfg.zone_size * self.cfg.zone_count,
                deallocated_reads_zero: false,
                volatile_write_cache: true,
            },
        }
    }

    /// Read whole blocks at `lba`: within one zone, not of an Offline zone (NVMe ZNS 1.1
    /// §5.1). Blocks at or past the write pointer read as zeroes. In memory a read takes no
    /// zone lock: it checks its range against the geometry and the zone's Offline flag, then
    /// copies (the module's documentation says what a read racing a write or a Reset
    /// returns).
    fn read(&self, lba: u64, buf: &mut [u8]) -> Result<(), BackendError> {
        let blocks = blocks_in(buf.len(), self.cfg.block_size)?;
        match &self.store {
            Store::Ram(ram) => {
                ram.check_read(&self.cfg, lba, blocks)?;
                ram.data.read(lba, buf)
            }
            Store::File(file) => {
                let zones = self.locked();
                zones.set.check_read(lba, blocks).map_err(device)?;
                // The file may hold an unacknowledged write past the write pointer (a crash
                // between its data and its record): those blocks read as zeroes regardless.
                let zone = zones.set.index_of(lba).and_then(|i| zones.set.zone(i));
                let wp = zone.map_or(lba, |z| z.wp());
                let written = wp.saturating_sub(lba).min(blocks) as usize;
                let (head, tail) = buf.split_at_mut(written * self.cfg.block_size as usize);
                tail.fill(0);
                if head.is_empty() {
                    return Ok(());
                }
                file.read(lba, head)
            }
        }
    }

    /// Write whole blocks at `lba`, which must be the write pointer of its zone (NVMe ZNS 1.1
    /// §5.2). In memory the write pointer moves under the lock and the data is copied after
    /// it is released, holding the zone's gate against a Reset; if the memory for the data
    /// cannot be had (`NoSpace`), the write pointer has still moved past the blocks, which
    /// read as zeroes. With a backing file, data that cannot be stored leaves the zone as it
    /// was.
    fn write(&self, lba: u64, data: &[u8], fua: bool) -> Result<(), BackendError> {
        let blocks = blocks_in(data.len(), self.cfg.block_size)?;
        let mut zones = self.locked();
        zones.set.write(lba, blocks).map_err(device)?;
        match &self.store {
            Store::Ram(ram) => {
                let _copying = ram.unlock_to_copy(zones, lba);
                ram.data.write(lba, data, fua)
            }
            Store::File(file) => zones.commit(file, lba, file.write(lba, data), fua),
        }
    }

    fn flush(&self) -> Result<(), BackendError> {
        match &self.store {
            Store::Ram(ram) => ram.data.flush(),
            // NVMe Base 2.0 Flush: every completed write, data and zone records, made durable.
            Store::File(file) => file.sync(),
        }
    }

    /// Write Zeroes: a write of `blocks` zero blocks at `lba` under the same rules, its
    /// zeroing in memory also done after the lock is released.
    fn write_zeroes(&self, lba: u64, blocks: u64) -> Result<(), BackendError> {
        let mut zones = self.locked();
        zones.set.write(lba, blocks).map_err(device)?;
        match &self.store {
            Store::Ram(ram) => {
                let _copying = ram.unlock_to_copy(zones, lba);
                ram.data.write_zeroes(lba, blocks)
            }
            Store::File(file) => zones.commit(file, lba, file.zero(lba, blocks), false),
        }
    }

    /// Deallocation is advisory on a zoned namespace (DLFEAT reports nothing): the range is
    /// checked and left as it is; Reset Zone is what frees a zone.
    fn deallocate(&self, lba: u64, blocks: u64) -> Result<(), BackendError> {
        super::check_range(lba, blocks, self.info().num_blocks)
    }

    /// In memory, never; a backing file's calls wait on the file.
    fn may_block(&self) -> bool {
        matches!(self.store, Store::File(_))
    }

    fn zoned(&self) -> Option<&dyn ZonedBackend> {
        Some(self)
    }
}

impl ZonedBackend for ZonedRamBackend {
    fn geometry(&self) -> ZonedGeometry {
        ZonedGeometry {
            zone_size: self.cfg.zone_size,
            zone_cap: self.cfg.zone_cap,
            zone_count: self.cfg.zone_count,
            limits: self.cfg.limits,
            zasl: self.cfg.zasl,
        }
    }

    /// Zone Append (NVMe ZNS 1.1 §4.3): `data` goes at the write pointer of the zone
    /// starting at `zslba`; returns the first LBA written. Data larger than ZASL allows is an
    /// Invalid Field. In memory, as a write: the LBA is taken and the write pointer moved
    /// under the lock, so concurrent appends get disjoint ranges, and each copies its data
    /// after the lock is released; the data reads back once the append has returned.
    fn append(&self, zslba: u64, data: &[u8], fua: bool) -> Result<u64, BackendError> {
        let blocks = blocks_in(data.len(), self.cfg.block_size)?;
        let mut zones = self.locked();
        zones.set.index_at_start(zslba).map_err(device)?;
        // ZNS 1.1 §4.1.5.2: ZASL bounds the data of one Zone Append.
        if let Some(limit) = self.geometry().append_limit() {
            if data.len() as u64 > limit {
                return Err(device(Status::INVALID_FIELD));
            }
        }
        let lba = zones.set.append(zslba, blocks).map_err(device)?;
        match &self.store {
            Store::Ram(ram) => {
                let _copying = ram.unlock_to_copy(zones, lba);
                ram.data.write(lba, data, fua)?;
            }
            Store::File(file) => zones.commit(file, lba, file.write(lba, data), fua)?,
        }
        Ok(lba)
    }

    /// Zone Management Send (NVMe ZNS 1.1 §4.4.3): `action` on the zone starting at `slba`
    /// or, with `select_all`, on every zone it applies to. A reset zone reads as zeroes.
    /// With a backing file the records of the zones it changed are written (also when it
    /// failed part way: the zones before the failure keep their new state); a Finish zeroes
    /// the blocks it moved the write pointer over first (§4.4.3.2.2), a Reset frees the zone
    /// after its record says Empty (§4.4.3.2.4). In memory a Reset takes the zone's data out
    /// of the store under the lock, once the writes and appends still copying into it have
    /// stored their data (the zone's gate), and frees the memory after the lock; reads in
    /// flight are not waited for.
    fn send(&self, slba: u64, action: ZoneAction, select_all: bool) -> Result<(), BackendError> {
        let mut zones = self.locked();
        let zone_size = self.cfg.zone_size;
        let mut reset = Vec::new();
        let result = zones
            .set
            .send(slba, action, select_all, |zslba| reset.push(zslba));
        match &self.store {
            Store::Ram(ram) => {
                if action == ZoneAction::Offline {
                    ram.note_offline(&zones.set);
                }
                let (mut taken, mut freed) = (Freed::default(), Ok(()));
                for zslba in reset {
                    // Cannot fail: `zslba` comes from this zone set.
                    let i = zones.set.index_at_start(zslba).unwrap_or(usize::MAX);
                    match ram.free_zone(i, zslba, zone_size) {
                        Ok(chunks) => taken.append(chunks),
                        Err(e) => freed = Err(e),
                    }
                }
                // The memory goes back to the allocator without the lock.
                drop(zones);
                drop(taken);
                result.map_err(device)?;
                freed
            }
            Store::File(file) => {
                let touched = if select_all {
                    (0..zones.set.len()).collect()
                } else {
                    match zones.set.index_at_start(slba) {
                        Ok(i) => zones.touched(i),
                        Err(_) => Vec::new(),
                    }
                };
                zones.persist(file, touched, true)?;
                let empty = ZoneState::Empty.code();
                for zslba in reset {
                    let i = zones.set.index_at_start(zslba).map_err(device)?;
                    let recorded = zones.file.as_ref().and_then(|f| f.records.get(i));
                    if recorded.is_some_and(|r| r.state == empty) {
                        file.zero(zslba, zone_size)?;
                    }
                }
                result.map_err(device)
            }
        }
    }

    /// Report Zones (NVMe ZNS 1.1 §4.4.4) into the host's buffer `out`.
    fn report(
        &self,
        slba: u64,
        option: ReportOption,
        partial: bool,
        out: &mut [u8],
    ) -> Result<(), BackendError> {
        self.locked()
            .set
            .report(slba, option, partial, out)
            .map_err(device)
    }

    fn changed_zones(&self, clear: bool) -> Vec<u64> {
        let mut z = self.locked();
        if clear {
            std::mem::take(&mut z.changed)
        } else {
            z.changed.clone()
        }
    }

    fn faults(&self) -> Option<&dyn ZoneFaults> {
        Some(self)
    }
}

impl ZoneFaults for ZonedRamBackend {
    fn fail_zone(&self, zslba: u64, fault: ZoneFault) -> Result<(), ZoneFaultError> {
        ZonedRamBackend::fail_zone(self, zslba, fault)
    }
}

#[cfg(test)]
mod file_tests;
#[cfg(test)]
mod tests;
