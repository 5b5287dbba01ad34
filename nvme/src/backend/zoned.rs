//! The zoned capability of a backend (NVMe ZNS Command Set 1.1): what a namespace of
//! sequential-write-required zones offers beyond reads and writes. A backend that is zoned
//! answers [`Backend::zoned`](super::Backend::zoned) with this interface; its plain
//! `write`/`write_zeroes` then follow the zone rules (write pointer, implicit open) too.

use bytes::Bytes;

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
