//! A zoned namespace in memory: the zones' states and write pointers in a
//! [`ZoneSet`](crate::zns::ZoneSet), the data in a sparse [`RamBackend`].
//!
//! Zone rule failures come back as [`BackendError::Device`] with the NVMe status of the rule
//! (NVMe ZNS 1.1 §2.1, §4.3, §4.4, §5). The zone set's lock is held across each data access,
//! so a write lands entirely before or after a Reset of its zone, and concurrent Zone Appends
//! to one zone get distinct, adjacent LBAs.

use std::sync::{Mutex, MutexGuard, PoisonError};

use super::null::invalid_input;
use super::{
    blocks_in, Backend, BackendError, BackendInfo, RamBackend, ZonedBackend, ZonedGeometry,
};
use crate::zns::{ReportOption, ZoneAction, ZoneLimits, ZoneSet, ZoneState};
use crate::Status;

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

/// A zoned namespace held in memory.
pub struct ZonedRamBackend {
    cfg: ZonedRamConfig,
    data: RamBackend,
    zones: Mutex<Zones>,
}

/// The zone set and the zones the device itself changed since the host last read the
/// Changed Zone List, under one lock.
struct Zones {
    set: ZoneSet,
    changed: Vec<u64>,
}

/// A zone rule's status: retrying the same command cannot succeed, so DNR is set.
fn device(status: Status) -> BackendError {
    BackendError::Device(status.with_dnr())
}

impl ZonedRamBackend {
    /// A namespace of `zone_count` Empty zones; nothing is allocated until data is written.
    pub fn new(cfg: ZonedRamConfig) -> Result<ZonedRamBackend, BackendError> {
        let zones = ZoneSet::new(cfg.zone_size, cfg.zone_cap, cfg.zone_count, cfg.limits)
            .map_err(|e| invalid_input(e.to_string()))?;
        let size = cfg
            .zone_size
            .checked_mul(cfg.zone_count)
            .and_then(|blocks| blocks.checked_mul(u64::from(cfg.block_size)))
            .ok_or_else(|| invalid_input(format!("{cfg:?} does not fit in 64-bit bytes")))?;
        if u32::from(cfg.zasl) > 63 - 12 {
            return Err(invalid_input(format!("ZASL {} is too large", cfg.zasl)));
        }
        Ok(ZonedRamBackend {
            cfg,
            data: RamBackend::new(size, cfg.block_size)?,
            zones: Mutex::new(Zones {
                set: zones,
                changed: Vec::new(),
            }),
        })
    }

    /// The configuration it was built with.
    pub fn config(&self) -> ZonedRamConfig {
        self.cfg
    }

    /// The zones, locked. A lock poisoned by a panic is taken over: the zone set is consistent
    /// between its calls, and none of them panics.
    fn locked(&self) -> MutexGuard<'_, Zones> {
        self.zones.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A copy of the zones as they are now.
    pub fn zone_set(&self) -> ZoneSet {
        self.locked().set.clone()
    }

    /// A media event: the device moves the zone starting at `zslba` to Read Only or Offline
    /// (ZNS 1.1 §2.1.1.6, §2.1.1.7), and lists it in the Changed Zone List.
    pub fn fail_zone(&self, zslba: u64, state: ZoneState) -> Result<(), BackendError> {
        if !matches!(state, ZoneState::ReadOnly | ZoneState::Offline) {
            return Err(invalid_input(format!(
                "a zone can only be failed to read-only or offline, not {state:?}"
            )));
        }
        let mut z = self.locked();
        z.set.force_state(zslba, state).map_err(device)?;
        if !z.changed.contains(&zslba) {
            z.changed.push(zslba);
            z.changed.sort_unstable();
        }
        Ok(())
    }

    /// Controller reset: opened zones become Closed (NVMe ZNS 1.1 §2.1.1.3).
    pub fn close_all_open(&self) {
        self.locked().set.close_all_open();
    }
}

impl Backend for ZonedRamBackend {
    /// Block size and capacity. Unwritten blocks read as zeroes, but deallocation does not
    /// zero anything here (zones are reset, not trimmed), so `deallocated_reads_zero` is false.
    fn info(&self) -> BackendInfo {
        BackendInfo {
            deallocated_reads_zero: false,
            ..self.data.info()
        }
    }

    /// Read whole blocks at `lba`: within one zone, not of an Offline zone (NVMe ZNS 1.1
    /// §5.1). Blocks at or past the write pointer read as zeroes.
    fn read(&self, lba: u64, buf: &mut [u8]) -> Result<(), BackendError> {
        let blocks = blocks_in(buf.len(), self.cfg.block_size)?;
        let zones = self.locked();
        zones.set.check_read(lba, blocks).map_err(device)?;
        self.data.read(lba, buf)
    }

    /// Write whole blocks at `lba`, which must be the write pointer of its zone (NVMe ZNS 1.1
    /// §5.2). If the memory for the data cannot be had (`NoSpace`), the write pointer has
    /// still moved past the blocks, which read as zeroes.
    fn write(&self, lba: u64, data: &[u8], fua: bool) -> Result<(), BackendError> {
        let blocks = blocks_in(data.len(), self.cfg.block_size)?;
        let mut zones = self.locked();
        zones.set.write(lba, blocks).map_err(device)?;
        self.data.write(lba, data, fua)
    }

    fn flush(&self) -> Result<(), BackendError> {
        self.data.flush()
    }

    /// Write Zeroes: a write of `blocks` zero blocks at `lba` under the same rules.
    fn write_zeroes(&self, lba: u64, blocks: u64) -> Result<(), BackendError> {
        let mut zones = self.locked();
        zones.set.write(lba, blocks).map_err(device)?;
        self.data.write_zeroes(lba, blocks)
    }

    /// Deallocation is advisory on a zoned namespace (DLFEAT reports nothing): the range is
    /// checked and left as it is; Reset Zone is what frees a zone.
    fn deallocate(&self, lba: u64, blocks: u64) -> Result<(), BackendError> {
        super::check_range(lba, blocks, self.data.info().num_blocks)
    }

    fn may_block(&self) -> bool {
        false
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
    /// Invalid Field.
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
        self.data.write(lba, data, fua)?;
        Ok(lba)
    }

    /// Zone Management Send (NVMe ZNS 1.1 §4.4.3): `action` on the zone starting at `slba`
    /// or, with `select_all`, on every zone it applies to. A reset zone reads as zeroes.
    fn send(&self, slba: u64, action: ZoneAction, select_all: bool) -> Result<(), BackendError> {
        let mut zones = self.locked();
        let zone_size = self.cfg.zone_size;
        let mut freed = Ok(());
        let result = zones.set.send(slba, action, select_all, |zslba| {
            if let Err(e) = self.data.deallocate(zslba, zone_size) {
                freed = Err(e);
            }
        });
        result.map_err(device)?;
        freed
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
}

#[cfg(test)]
mod tests {
    use zerocopy::FromBytes;

    use super::*;
    use crate::zns::ZoneDescriptor;

    const BS: usize = 512;
    const ZSIZE: u64 = 256;
    const ZCAP: u64 = 200;

    fn backend(limits: ZoneLimits, zasl: u8) -> ZonedRamBackend {
        ZonedRamBackend::new(ZonedRamConfig {
            block_size: BS as u32,
            zone_size: ZSIZE,
            zone_cap: ZCAP,
            zone_count: 8,
            limits,
            zasl,
        })
        .unwrap()
    }

    fn pattern(blocks: usize, seed: u8) -> Vec<u8> {
        (0..blocks * BS).map(|i| (i as u8) ^ seed).collect()
    }

    fn read(b: &ZonedRamBackend, lba: u64, blocks: usize) -> Vec<u8> {
        let mut buf = vec![0xee; blocks * BS];
        b.read(lba, &mut buf).unwrap();
        buf
    }

    fn status(r: Result<impl std::fmt::Debug, BackendError>) -> Status {
        match r {
            Err(BackendError::Device(s)) => {
                assert!(s.dnr, "zone rule statuses carry DNR: {s:?}");
                Status { dnr: false, ..s }
            }
            other => panic!("expected a device status, got {other:?}"),
        }
    }

    #[test]
    fn writes_at_the_write_pointer_read_back() {
        let b = backend(ZoneLimits::default(), 0);
        let first = pattern(3, 1);
        b.write(ZSIZE, &first, false).unwrap();
        let second = pattern(2, 2);
        b.write(ZSIZE + 3, &second, false).unwrap();
        assert_eq!(read(&b, ZSIZE, 3), first);
        assert_eq!(read(&b, ZSIZE + 3, 2), second);
        assert_eq!(read(&b, ZSIZE + 5, 1), vec![0; BS]);
        assert_eq!(
            status(b.write(ZSIZE + 9, &first, false)),
            Status::ZONE_INVALID_WRITE
        );
        // The failed write stored nothing.
        assert_eq!(read(&b, ZSIZE + 9, 3), vec![0; 3 * BS]);
        let z = *b.zone_set().zone(1).unwrap();
        assert_eq!(
            (z.state(), z.wp()),
            (ZoneState::ImplicitlyOpened, ZSIZE + 5)
        );
        assert_eq!(
            status(b.read(ZSIZE - 1, &mut [0; 2 * BS])),
            Status::ZONE_BOUNDARY_ERROR
        );
        assert!(matches!(
            b.write(ZSIZE + 5, &[0; 100], false),
            Err(BackendError::Misaligned { .. })
        ));
    }

    #[test]
    fn append_returns_the_lba_written() {
        let b = backend(ZoneLimits::default(), 1);
        let a = pattern(4, 3);
        let c = pattern(16, 4);
        assert_eq!(b.append(2 * ZSIZE, &a, false).unwrap(), 2 * ZSIZE);
        assert_eq!(b.append(2 * ZSIZE, &c, false).unwrap(), 2 * ZSIZE + 4);
        assert_eq!(read(&b, 2 * ZSIZE, 4), a);
        assert_eq!(read(&b, 2 * ZSIZE + 4, 16), c);
        // ZASL 1: at most 8 KiB per append.
        assert_eq!(
            status(b.append(2 * ZSIZE, &pattern(17, 0), false)),
            Status::INVALID_FIELD
        );
        assert_eq!(
            status(b.append(2 * ZSIZE + 1, &a, false)),
            Status::INVALID_FIELD
        );
        assert_eq!(
            status(b.append(8 * ZSIZE, &a, false)),
            Status::LBA_OUT_OF_RANGE
        );
        assert_eq!(b.zone_set().zone(2).unwrap().wp(), 2 * ZSIZE + 20);
    }

    #[test]
    fn reset_reads_zero_and_rewinds() {
        let b = backend(ZoneLimits::default(), 0);
        b.write(0, &pattern(ZCAP as usize, 5), false).unwrap();
        assert_eq!(b.zone_set().zone(0).unwrap().state(), ZoneState::Full);
        assert_eq!(
            status(b.write(ZCAP, &pattern(1, 0), false)),
            Status::ZONE_IS_FULL
        );
        b.write(ZSIZE, &pattern(1, 6), false).unwrap();
        b.send(0, ZoneAction::Reset, true).unwrap();
        assert_eq!(read(&b, 0, ZCAP as usize), vec![0; ZCAP as usize * BS]);
        assert_eq!(read(&b, ZSIZE, 1), vec![0; BS]);
        let z = *b.zone_set().zone(0).unwrap();
        assert_eq!((z.state(), z.wp()), (ZoneState::Empty, 0));
        let again = pattern(2, 7);
        b.write(0, &again, false).unwrap();
        assert_eq!(read(&b, 0, 2), again);
    }

    #[test]
    fn limits_write_zeroes_and_report() {
        let b = backend(
            ZoneLimits {
                max_open: 1,
                max_active: 2,
            },
            0,
        );
        b.write(0, &pattern(1, 1), false).unwrap();
        b.write_zeroes(ZSIZE, 2).unwrap();
        assert_eq!(read(&b, ZSIZE, 2), vec![0; 2 * BS]);
        assert_eq!(
            status(b.write_zeroes(2 * ZSIZE, 1)),
            Status::TOO_MANY_ACTIVE_ZONES
        );
        b.send(ZSIZE, ZoneAction::Open, false).unwrap();
        assert_eq!(
            status(b.send(0, ZoneAction::Open, false)),
            Status::TOO_MANY_OPEN_ZONES
        );
        let mut out = [0u8; 64 * 3];
        b.report(0, ReportOption::Closed, false, &mut out).unwrap();
        assert_eq!(u64::from_le_bytes(out[..8].try_into().unwrap()), 1);
        let d = ZoneDescriptor::read_from_bytes(&out[64..128]).unwrap();
        assert_eq!(d, ZoneDescriptor::new(ZoneState::Closed, ZCAP, 0, 1));
        b.close_all_open();
        assert_eq!(b.zone_set().open_count(), 0);
        assert_eq!(b.zone_set().active_count(), 2);
    }

    #[test]
    fn bad_geometry_is_refused() {
        let cfg = |zone_cap, zone_count, zasl| ZonedRamConfig {
            block_size: 4096,
            zone_size: 16,
            zone_cap,
            zone_count,
            limits: ZoneLimits::default(),
            zasl,
        };
        assert!(ZonedRamBackend::new(cfg(17, 4, 0)).is_err());
        assert!(ZonedRamBackend::new(cfg(16, 0, 0)).is_err());
        assert!(ZonedRamBackend::new(cfg(16, 1 << 60, 0)).is_err());
        assert!(ZonedRamBackend::new(cfg(16, 4, 60)).is_err());
        let ok = ZonedRamBackend::new(cfg(16, 4, 5)).unwrap();
        assert_eq!(Backend::info(&ok).num_blocks, 64);
        assert_eq!(ok.config().zasl, 5);
    }
}
