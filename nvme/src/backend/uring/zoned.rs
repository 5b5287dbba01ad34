//! The zoned namespace of a drive through passthrough (NVMe ZNS 1.1): zone geometry from
//! Identify, and Zone Management Send, Zone Management Receive and Zone Append passed to
//! the drive as they are. The drive keeps the zone rules and answers violations with its
//! own status; the LBA a Zone Append landed at comes back in the big CQE.

use std::os::fd::OwnedFd;

use bytes::Bytes;

use super::cmd::{self, Part};
use super::job::Done;
use super::{admin, UringBackend};
use crate::backend::null::invalid_input;
use crate::backend::zoned::{drive_append_blocks, drive_report_len, REPORT_ENTRY};
use crate::backend::{
    blocks_in, check_range, BackendError, IoFuture, QueuedZonedBackend, ZonedBackend, ZonedGeometry,
};
use crate::command::{ZoneReceive, ZoneSend};
use crate::driver::controller::parse_zoned;
use crate::identify::{Csi, IdentifyNamespace, NsDescriptor, IDENTIFY_DATA_SIZE};
use crate::sys::uring::{IoBuf, NvmeUringCmd};
use crate::zns::{IdentifyZnsController, ReportOption, ZoneAction, ZoneDescriptor, ZoneLimits};
use zerocopy::FromBytes;

/// What Identify says about a zoned namespace, before its first zone is read.
pub struct DriveZones {
    zone_size: u64,
    limits: ZoneLimits,
    /// Largest Zone Append, bytes: the drive's ZASL within what one command moves.
    append_limit: u64,
}

/// The zones of namespace `nsid`, `None` when it is not zoned (no CSI 02h Namespace
/// Identification Descriptor, NVMe Base 2.0 §5.17.2.3). `max_transfer` is the most one
/// command of this device moves.
pub fn identify(
    dev: &OwnedFd,
    nsid: u32,
    ns: &IdentifyNamespace,
    max_transfer: u64,
) -> Result<Option<DriveZones>, BackendError> {
    let mut page = vec![0u8; IDENTIFY_DATA_SIZE];
    // A controller without the descriptor list has only the NVM command set.
    if admin(dev, &cmd::identify(nsid, 0x03, Csi::Nvm), &mut page).is_err() {
        return Ok(None);
    }
    let zoned = NsDescriptor::parse_list(&page).is_ok_and(|list| {
        list.iter()
            .any(|d| matches!(d, NsDescriptor::Csi(c) if *c == Csi::Zoned.to_u8()))
    });
    if !zoned {
        return Ok(None);
    }
    // ZNS 1.1 §4.1.5.1: CNS 05h, CSI 02h.
    let mut page = vec![0u8; IDENTIFY_DATA_SIZE];
    admin(dev, &cmd::identify(nsid, 0x05, Csi::Zoned), &mut page)?;
    let z = parse_zoned(&page, ns.lba_format_index())
        .ok_or_else(|| invalid_input("the zoned namespace's LBA format has no zone size".into()))?;
    // ZNS 1.1 §4.1.5.2: CNS 06h, CSI 02h. ZASL counts units of CAP.MPSMIN, which the
    // generic device does not show; it is 4 KiB as the Linux host driver reads it
    // (drivers/nvme/host/zns.c), which owns this controller.
    let mut page = vec![0u8; IDENTIFY_DATA_SIZE];
    admin(dev, &cmd::identify(0, 0x06, Csi::Zoned), &mut page)?;
    let zasl = IdentifyZnsController::read_from_prefix(&page)
        .map(|(id, _)| id.zasl)
        .unwrap_or(0);
    let append_limit = match zasl {
        0 => max_transfer,
        n => 4096u64.checked_shl(u32::from(n)).unwrap_or(u64::MAX),
    }
    .min(max_transfer);
    Ok(Some(DriveZones {
        zone_size: z.zone_size,
        limits: ZoneLimits {
            max_open: z.max_open.unwrap_or(0),
            max_active: z.max_active.unwrap_or(0),
        },
        append_limit,
    }))
}

impl UringBackend {
    /// The exported geometry: Identify's, with the capacity of the first zone.
    pub(super) fn zoned_geometry(&self, z: DriveZones) -> Result<ZonedGeometry, BackendError> {
        let mut first = vec![0u8; 2 * REPORT_ENTRY];
        self.report_one(0, ReportOption::All, true, &mut first)?;
        let zone_cap = ZoneDescriptor::read_from_prefix(&first[REPORT_ENTRY..])
            .ok()
            .map(|(d, _)| d.zcap.get());
        ZonedGeometry::of_drive(
            z.zone_size,
            z.limits,
            self.info.num_blocks,
            zone_cap,
            z.append_limit,
        )
        .map_err(|e| invalid_input(format!("{}: {e}", self.path.display())))
    }

    /// The blocking Report Zones into `out`, before `zoned` is known.
    fn report_one(
        &self,
        slba: u64,
        option: ReportOption,
        partial: bool,
        out: &mut [u8],
    ) -> Result<(), BackendError> {
        let done = self.run(self.report_parts(slba, option, partial, vec![0; out.len()])?)?;
        out.copy_from_slice(&report_buf(done, out.len()));
        Ok(())
    }

    fn append_parts(&self, zslba: u64, data: Bytes, fua: bool) -> Result<Vec<Part>, BackendError> {
        let bs = self.info.block_size;
        check_range(
            zslba,
            blocks_in(data.len(), bs)?.max(1),
            self.info.num_blocks,
        )?;
        let limit = self
            .zoned
            .and_then(|g| g.append_limit())
            .unwrap_or(self.max_transfer() as u64);
        drive_append_blocks(data.len(), bs, limit)?;
        Ok(vec![cmd::zone_append(self.nsid, zslba, data, fua, bs)])
    }

    fn send_parts(&self, slba: u64, action: ZoneAction, select_all: bool) -> Vec<Part> {
        let sqe = ZoneSend::new(self.nsid, slba, action, select_all).to_sqe();
        vec![Part {
            cmd: NvmeUringCmd::from_sqe(&sqe),
            buf: IoBuf::None,
        }]
    }

    /// A Report Zones into `buf` (the host's buffer, its length the report's size), cut to
    /// what the device moves ([`drive_report_len`]); [`report_buf`] gives it back whole.
    fn report_parts(
        &self,
        slba: u64,
        option: ReportOption,
        partial: bool,
        mut buf: Vec<u8>,
    ) -> Result<Vec<Part>, BackendError> {
        let len = drive_report_len(buf.len(), self.max_transfer() as u64, partial)?;
        buf.truncate(len);
        let sqe = ZoneReceive::report_zones(self.nsid, slba, len as u64, option, partial).to_sqe();
        Ok(vec![Part {
            cmd: NvmeUringCmd::from_sqe(&sqe),
            buf: IoBuf::In(buf),
        }])
    }
}

/// The report the device wrote, in the buffer it was given, grown back to `host_len` with
/// zeroes past what the device moved.
fn report_buf(done: Vec<Done>, host_len: usize) -> Vec<u8> {
    let mut buf = match done.into_iter().next().map(|d| d.buf) {
        Some(IoBuf::In(v)) => v,
        _ => Vec::new(),
    };
    buf.resize(host_len, 0);
    buf
}

/// The LBA the drive wrote a Zone Append at: CQE DW1:DW0 (ZNS 1.1 §4.3.1, Figure 33).
fn appended_lba(done: Vec<Done>) -> u64 {
    done.first().map_or(0, |d| d.result)
}

impl ZonedBackend for UringBackend {
    fn geometry(&self) -> ZonedGeometry {
        // `Backend::zoned` offers this interface only for zoned namespaces.
        self.zoned.unwrap_or_default()
    }

    fn append(&self, zslba: u64, data: &[u8], fua: bool) -> Result<u64, BackendError> {
        let parts = self.append_parts(zslba, Bytes::copy_from_slice(data), fua)?;
        self.run(parts).map(appended_lba)
    }

    fn send(&self, slba: u64, action: ZoneAction, select_all: bool) -> Result<(), BackendError> {
        self.run(self.send_parts(slba, action, select_all))
            .map(drop)
    }

    fn report(
        &self,
        slba: u64,
        option: ReportOption,
        partial: bool,
        out: &mut [u8],
    ) -> Result<(), BackendError> {
        self.report_one(slba, option, partial, out)
    }

    /// The drive's own Changed Zone List is not read through: ferrofab keeps no list for it.
    fn changed_zones(&self, _clear: bool) -> Vec<u64> {
        Vec::new()
    }

    fn queued(&self) -> Option<&dyn QueuedZonedBackend> {
        Some(self)
    }
}

impl QueuedZonedBackend for UringBackend {
    fn append(&self, zslba: u64, data: Bytes, fua: bool) -> IoFuture<u64> {
        self.queued(self.append_parts(zslba, data, fua), appended_lba)
    }

    fn send(&self, slba: u64, action: ZoneAction, select_all: bool) -> IoFuture<()> {
        self.queued(Ok(self.send_parts(slba, action, select_all)), drop)
    }

    fn report(
        &self,
        slba: u64,
        option: ReportOption,
        partial: bool,
        buf: Vec<u8>,
    ) -> IoFuture<Vec<u8>> {
        let host_len = buf.len();
        let parts = self.report_parts(slba, option, partial, buf);
        self.queued(parts, move |done| report_buf(done, host_len))
    }
}
