//! The zoned capability of a backend (NVMe ZNS Command Set 1.1): what a namespace of
//! sequential-write-required zones offers beyond reads and writes. A backend that is zoned
//! answers [`Backend::zoned`](super::Backend::zoned) with this interface; its plain
//! `write`/`write_zeroes` then follow the zone rules (write pointer, implicit open) too.

use bytes::Bytes;

use super::null::invalid_input;
use super::{BackendError, IoFuture};
use crate::zns::{ReportOption, ZoneAction, ZoneLimits};

/// Geometry and limits of a zoned namespace, as Identify reports them (NVMe ZNS 1.1
/// §4.1.5.1, §4.1.5.2).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ZonedGeometry {
    /// Blocks per zone (LBAFE ZSZE); the Linux host needs a power of two.
    pub zone_size: u64,
    /// Writable blocks per zone (the same for every zone: ZOC bit 0, variable capacity, is 0).
    pub zone_cap: u64,
    /// Number of zones.
    pub zone_count: u64,
    /// Open and active zone limits (0 = no limit).
    pub limits: ZoneLimits,
    /// Zone Append Size Limit: 2^n units of 4 KiB (CAP.MPSMIN); 0 = MDTS applies.
    pub zasl: u8,
}

impl ZonedGeometry {
    /// Identify Namespace MOR / MAR: 0's based, FFFFFFFFh for no limit (ZNS 1.1 Figure 38).
    pub fn mor(&self) -> u32 {
        self.limits.max_open.wrapping_sub(1)
    }

    /// See [`ZonedGeometry::mor`].
    pub fn mar(&self) -> u32 {
        self.limits.max_active.wrapping_sub(1)
    }

    /// Largest Zone Append data in bytes, `None` when MDTS alone limits it.
    pub fn append_limit(&self) -> Option<u64> {
        (self.zasl != 0).then(|| 4096u64 << self.zasl)
    }

    /// The geometry a drive's zoned namespace of `blocks` blocks is exported with: its zone
    /// size and limits, `zone_cap` (the first zone's capacity: variable capacity, ZOC bit 0,
    /// is not exported, every zone gets the first one's), and the ZASL that keeps one Zone
    /// Append within `append_limit` bytes (what the drive and one of its commands allow; an
    /// append cannot be split, its parts could land apart). Refused, with why, when the zone
    /// capacity is missing or larger than the zone, or the limit is below the 8 KiB the
    /// smallest non-zero ZASL means.
    pub fn of_drive(
        zone_size: u64,
        limits: ZoneLimits,
        blocks: u64,
        zone_cap: Option<u64>,
        append_limit: u64,
    ) -> Result<ZonedGeometry, String> {
        if zone_size == 0 {
            return Err("the zone size is 0".into());
        }
        let zone_cap = zone_cap
            .filter(|&cap| cap != 0 && cap <= zone_size)
            .ok_or_else(|| "the first zone reports no valid capacity".to_string())?;
        // 2^zasl units of 4 KiB (ZNS 1.1 §4.1.5.2, CAP.MPSMIN of the exported controller);
        // 0 would mean "the transfer limit", so 1 unit is not expressible.
        let units = append_limit / 4096;
        if units < 2 {
            return Err(format!(
                "zone append limit of {append_limit} bytes is below the 8 KiB ZASL can express"
            ));
        }
        Ok(ZonedGeometry {
            zone_size,
            zone_cap,
            zone_count: blocks.div_ceil(zone_size),
            limits,
            zasl: (63 - units.leading_zeros()) as u8,
        })
    }
}

/// Bytes of the report header and of each zone descriptor (ZNS 1.1 §4.4.4.1).
pub const REPORT_ENTRY: usize = 64;

/// How many bytes of a host's Report Zones of `len` bytes to ask a drive for that moves at
/// most `max` bytes per command. A larger partial report is cut to the whole descriptors
/// that fit: with Partial Report set, the header counts the descriptors returned (ZNS 1.1
/// §4.4.4.1), so the host learns how far the report got and asks again from there (the
/// caller zeroes the rest of the host's buffer). A full report counts every matching zone
/// whatever the buffer holds, so a cut one would be read as zeroed descriptors: refused.
pub fn drive_report_len(len: usize, max: u64, partial: bool) -> Result<usize, BackendError> {
    if len == 0 || !len.is_multiple_of(4) {
        return Err(invalid_input(format!(
            "a zone report of {len} bytes: it is a whole number of dwords"
        )));
    }
    let max = usize::try_from(max).unwrap_or(usize::MAX);
    if len <= max {
        return Ok(len);
    }
    let cut = max / REPORT_ENTRY * REPORT_ENTRY;
    if partial && cut >= 2 * REPORT_ENTRY {
        return Ok(cut);
    }
    Err(invalid_input(format!(
        "a full zone report of {len} bytes is over the drive's {max}-byte transfer limit"
    )))
}

/// The blocks of a Zone Append of `len` bytes to a drive (ZNS 1.1 §4.3): at least one
/// block, at most `limit` bytes (ZASL within what one command moves). A larger append is
/// refused, not split: its parts could land apart.
pub fn drive_append_blocks(len: usize, block_size: u32, limit: u64) -> Result<u64, BackendError> {
    let blocks = super::blocks_in(len, block_size)?;
    if blocks == 0 || len as u64 > limit {
        return Err(invalid_input(format!(
            "zone append of {len} bytes: must be 1 block up to the zone append size limit \
             (ZASL) of {limit} bytes"
        )));
    }
    Ok(blocks)
}

/// Zone commands of a zoned backend. Calls are synchronous; [`Backend::may_block`]
/// (super::Backend::may_block) tells whether they may sleep.
pub trait ZonedBackend: Send + Sync {
    fn geometry(&self) -> ZonedGeometry;
    /// Zone Append (ZNS 1.1 §4.3): `data` at the write pointer of the zone starting at
    /// `zslba`; returns the first LBA written.
    fn append(&self, zslba: u64, data: &[u8], fua: bool) -> Result<u64, BackendError>;
    /// Zone Management Send (ZNS 1.1 §4.4.3) on the zone starting at `slba`, or with
    /// `select_all` on every zone the action applies to.
    fn send(&self, slba: u64, action: ZoneAction, select_all: bool) -> Result<(), BackendError>;
    /// Report Zones (ZNS 1.1 §4.4.4) into the host's buffer `out`.
    fn report(
        &self,
        slba: u64,
        option: ReportOption,
        partial: bool,
        out: &mut [u8],
    ) -> Result<(), BackendError>;
    /// Zones the device itself moved (to Read Only or Offline) since the last call with
    /// `clear`, as start LBAs in zone order: the Changed Zone List log (ZNS 1.1 §5.3.1).
    fn changed_zones(&self, clear: bool) -> Vec<u64>;
    /// Fault injection, where the backend offers it (software backends: a drive's zones fail
    /// only by themselves).
    fn faults(&self) -> Option<&dyn ZoneFaults> {
        None
    }
    /// The asynchronous zone commands of a drive whose commands complete on a polled queue;
    /// I/O queues use them instead of the blocking calls when present.
    fn queued(&self) -> Option<&dyn QueuedZonedBackend> {
        None
    }
}

/// A device-initiated zone condition (ZNS 1.1 §2.1.1.6, §2.1.1.7): what media failure does
/// to a zone.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ZoneFault {
    /// Reads still succeed; writes, appends and every zone action but Offline are refused.
    ReadOnly,
    /// Neither reads nor writes; the zone stays Offline.
    Offline,
}

impl ZoneFault {
    /// The zone state the fault leaves.
    pub const fn state(self) -> crate::zns::ZoneState {
        match self {
            ZoneFault::ReadOnly => crate::zns::ZoneState::ReadOnly,
            ZoneFault::Offline => crate::zns::ZoneState::Offline,
        }
    }
}

/// Why a zone could not be failed; the zone is as it was.
#[derive(Debug, thiserror::Error)]
pub enum ZoneFaultError {
    #[error("no zone starts at LBA {0}")]
    NoSuchZone(u64),
    #[error("the zone at LBA {0} is offline, which no zone leaves")]
    Offline(u64),
    /// The fault could not be recorded (a backing file).
    #[error(transparent)]
    Backend(#[from] BackendError),
}

/// Failing zones on purpose, so hosts' and file systems' error paths can be exercised.
pub trait ZoneFaults: Send + Sync {
    /// Move the zone starting at `zslba` to the fault's state, as the device itself would,
    /// and list it in the Changed Zone List. An Offline zone stays Offline.
    fn fail_zone(&self, zslba: u64, fault: ZoneFault) -> Result<(), ZoneFaultError>;
}

/// Zone commands submitted on the calling thread's device queue (see
/// [`QueuedBackend`](super::QueuedBackend)).
pub trait QueuedZonedBackend: Send + Sync {
    fn append(&self, zslba: u64, data: Bytes, fua: bool) -> IoFuture<u64>;
    fn send(&self, slba: u64, action: ZoneAction, select_all: bool) -> IoFuture<()>;
    /// Report Zones into `buf` (its length is the report's size) and hand it back.
    fn report(
        &self,
        slba: u64,
        option: ReportOption,
        partial: bool,
        buf: Vec<u8>,
    ) -> IoFuture<Vec<u8>>;
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: ZoneLimits = ZoneLimits {
        max_open: 4,
        max_active: 6,
    };

    #[test]
    fn drive_geometry_rounds_the_append_limit_down_to_a_power_of_two() {
        let g =
            ZonedGeometry::of_drive(4096, LIMITS, 4096 * 64 + 1, Some(3072), 192 << 10).unwrap();
        assert_eq!((g.zone_size, g.zone_cap, g.zone_count), (4096, 3072, 65));
        // 192 KiB = 48 units of 4 KiB: ZASL 5 (128 KiB).
        assert_eq!(g.zasl, 5);
        assert_eq!(g.append_limit(), Some(128 << 10));
        assert_eq!((g.mor(), g.mar()), (3, 5));
    }

    #[test]
    fn report_lengths_a_drive_can_move() {
        assert_eq!(drive_report_len(4096, 1 << 20, false).unwrap(), 4096);
        assert_eq!(drive_report_len(1 << 20, 1 << 20, false).unwrap(), 1 << 20);
        // Partial reports are cut to whole descriptors within the limit.
        assert_eq!(drive_report_len(1 << 20, 500_000, true).unwrap(), 499_968);
        assert!(drive_report_len(1 << 20, 500_000, false).is_err());
        assert!(drive_report_len(0, 4096, true).is_err());
        assert!(drive_report_len(6, 4096, true).is_err());
        assert!(drive_report_len(4096, 100, true).is_err());
    }

    #[test]
    fn drive_geometry_refusals() {
        let of = |cap, limit| ZonedGeometry::of_drive(4096, LIMITS, 8192, cap, limit);
        assert!(of(None, 1 << 20).unwrap_err().contains("capacity"));
        assert!(of(Some(0), 1 << 20).is_err());
        assert!(of(Some(4097), 1 << 20).is_err());
        assert!(of(Some(4096), 4096).unwrap_err().contains("8 KiB"));
        assert_eq!(of(Some(4096), 8192).unwrap().zasl, 1);
        assert!(ZonedGeometry::of_drive(0, LIMITS, 8192, Some(1), 1 << 20).is_err());
    }
}
