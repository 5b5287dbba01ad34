//! Reading a zoned namespace's zones (the console's zone map): Report Zones (NVMe ZNS 1.1
//! §4.4.4) on the running namespace's backend, as a host would send it, decoded. Changes
//! nothing, so it takes no engine lock.

use nvme::backend::BackendError;
use nvme::zns::{ReportOption, ZoneDescriptor, ZoneReportHeader, ZoneState};
use zerocopy::FromBytes;

use super::Engine;

/// Most zones one report returns.
pub const MAX_ZONES_PER_REPORT: u64 = 4096;

/// A run of zones of one namespace, with its geometry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ZoneReport {
    /// Blocks per zone.
    pub zone_size: u64,
    /// Writable blocks per zone.
    pub zone_capacity: u64,
    pub zone_count: u64,
    pub block_size: u32,
    /// Open and active zone limits (0: none).
    pub max_open: u32,
    pub max_active: u32,
    /// Index of the first zone listed.
    pub first: u64,
    /// In zone order; fewer than asked when a drive's transfer limit cut the report short.
    pub zones: Vec<ZoneEntry>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ZoneEntry {
    pub zslba: u64,
    /// `None` for a state code the specification reserves.
    pub state: Option<ZoneState>,
    pub write_pointer: u64,
    pub capacity: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum ZoneReportError {
    #[error("subsystem {0} does not exist")]
    NoSuchSubsystem(String),
    #[error("namespace {nsid} of subsystem {nqn} does not exist")]
    NoSuchNamespace { nqn: String, nsid: u32 },
    #[error("namespace {nsid} of subsystem {nqn} is not zoned")]
    NotZoned { nqn: String, nsid: u32 },
    #[error("zone {first} is past the last zone ({zone_count} zones)")]
    PastTheEnd { first: u64, zone_count: u64 },
    #[error("the zones could not be read: {0}")]
    Backend(#[from] BackendError),
}

impl Engine {
    /// Up to `count` (at most [`MAX_ZONES_PER_REPORT`]) zones of namespace `nsid` of `nqn`,
    /// from zone index `first`.
    pub fn zone_report(
        &self,
        nqn: &str,
        nsid: u32,
        first: u64,
        count: u64,
    ) -> Result<ZoneReport, ZoneReportError> {
        let sub = self
            .target
            .subsystem(nqn)
            .ok_or_else(|| ZoneReportError::NoSuchSubsystem(nqn.to_string()))?;
        let ns = sub
            .namespace(nsid)
            .ok_or_else(|| ZoneReportError::NoSuchNamespace {
                nqn: nqn.to_string(),
                nsid,
            })?;
        let not_zoned = || ZoneReportError::NotZoned {
            nqn: nqn.to_string(),
            nsid,
        };
        let (Some(geometry), Some(zoned)) = (ns.zoned, ns.backend.zoned()) else {
            return Err(not_zoned());
        };
        if first >= geometry.zone_count {
            return Err(ZoneReportError::PastTheEnd {
                first,
                zone_count: geometry.zone_count,
            });
        }
        let count = count
            .min(MAX_ZONES_PER_REPORT)
            .min(geometry.zone_count - first);
        let header = size_of::<ZoneReportHeader>();
        let entry = size_of::<ZoneDescriptor>();
        let len = header + entry * usize::try_from(count).unwrap_or(0);
        let mut out = vec![0u8; len];
        let slba = first.saturating_mul(geometry.zone_size);
        // Partial: the header counts the zones in this report (ZNS 1.1 §4.4.4).
        zoned.report(slba, ReportOption::All, true, &mut out)?;
        let listed = ZoneReportHeader::read_from_prefix(&out)
            .map_or(0, |(h, _)| h.nr_zones.get())
            .min(count);
        let zones = out[header..]
            .chunks_exact(entry)
            .take(usize::try_from(listed).unwrap_or(0))
            .filter_map(|bytes| ZoneDescriptor::read_from_bytes(bytes).ok())
            .map(|d| ZoneEntry {
                zslba: d.zslba.get(),
                state: d.state(),
                write_pointer: d.wp.get(),
                capacity: d.zcap.get(),
            })
            .collect();
        Ok(ZoneReport {
            zone_size: geometry.zone_size,
            zone_capacity: geometry.zone_cap,
            zone_count: geometry.zone_count,
            block_size: ns.block_size(),
            max_open: geometry.limits.max_open,
            max_active: geometry.limits.max_active,
            first,
            zones,
        })
    }
}
