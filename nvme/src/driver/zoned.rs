//! Zoned namespace commands through the driver (NVMe ZNS 1.1 §4.4): Zone Management Receive
//! (Report Zones), Zone Management Send (zone actions) and Zone Append.

use std::collections::VecDeque;
use std::io;

use bytes::Bytes;
use zerocopy::FromBytes;

use super::dma::DmaRegion;
use super::error::DriverError;
use super::io::{rw_sqe, Data, IoCmd};
use super::nvme_driver::{block_on, DriverNamespace, FUA};
use crate::backend::zoned::{drive_append_blocks, drive_report_len, REPORT_ENTRY};
use crate::backend::{
    blocks_in, check_range, BackendError, IoFuture, QueuedZonedBackend, ZonedBackend, ZonedGeometry,
};
use crate::command::{ZoneReceive, ZoneSend};
use crate::zns::ZoneLimits;
use crate::zns::{ReportOption, ZoneAction, ZoneDescriptor, ZoneReportHeader, ZONE_APPEND};

fn invalid(msg: String) -> BackendError {
    BackendError::Io(io::Error::new(io::ErrorKind::InvalidInput, msg))
}

impl<M: DmaRegion + Send + Sync + 'static> DriverNamespace<M> {
    fn require_zoned(&self) -> Result<(), BackendError> {
        match self.info().zoned {
            Some(_) => Ok(()),
            None => Err(BackendError::Io(io::Error::new(
                io::ErrorKind::Unsupported,
                format!("namespace {} is not zoned", self.info().nsid),
            ))),
        }
    }

    /// Report Zones from the zone containing `slba`: the header's zone count (with `partial`,
    /// the number of descriptors returned; without, every matching zone from `slba` on) and
    /// at most `max_zones` descriptors (ZNS 1.1 §4.4.4: CDW12 NUMD, CDW13 ZRA, ZRAS, Partial).
    pub fn report_zones(
        &self,
        slba: u64,
        option: ReportOption,
        partial: bool,
        max_zones: usize,
    ) -> Result<(u64, Vec<ZoneDescriptor>), BackendError> {
        let len = REPORT_ENTRY * (max_zones + 1);
        let limit = self.driver().info().max_transfer;
        if len as u64 > limit {
            return Err(invalid(format!(
                "report of {max_zones} zones needs {len} bytes, over the {limit}-byte transfer limit"
            )));
        }
        let buf = block_on(self.report_op(slba, option, partial, vec![0; len]))?;
        let header = ZoneReportHeader::read_from_prefix(&buf)
            .map_err(|_| invalid("short zone report".into()))?
            .0;
        let nr_zones = header.nr_zones.get();
        let listed = (nr_zones as usize).min(max_zones);
        let zones = buf[REPORT_ENTRY..]
            .chunks_exact(REPORT_ENTRY)
            .take(listed)
            .filter_map(|d| ZoneDescriptor::read_from_bytes(d).ok())
            .collect();
        Ok((nr_zones, zones))
    }

    /// Zone Management Send with `action` on the zone starting at `slba`, or on every zone
    /// the action applies to with `select_all` (ZNS 1.1 §4.4.3: CDW13 ZSA, Select All).
    pub fn zone_action(
        &self,
        slba: u64,
        select_all: bool,
        action: ZoneAction,
    ) -> Result<(), BackendError> {
        block_on(self.zone_send_op(slba, action, select_all))
    }

    /// Zone Append `data` to the zone starting at `zslba`; resolves to the LBA the controller
    /// wrote it at (CQE DW0/DW1, ZNS 1.1 §4.3.1). An append larger than the zone append size
    /// limit is refused: split, its parts could land apart.
    pub fn append(&self, zslba: u64, data: Bytes) -> IoFuture<u64> {
        self.append_with(zslba, data, false)
    }

    /// [`DriverNamespace::append`] with Force Unit Access (CDW12 bit 30) when `fua`.
    pub fn append_with(&self, zslba: u64, data: Bytes, fua: bool) -> IoFuture<u64> {
        let prepared = self.require_zoned().and_then(|()| {
            let bs = self.info().block_size;
            check_range(zslba, blocks_in(data.len(), bs)?.max(1), self.info().blocks)?;
            let limit = self
                .driver()
                .info()
                .zone_append_limit
                .unwrap_or(self.driver().info().max_transfer)
                .min(u64::from(bs) << 16);
            let blocks = drive_append_blocks(data.len(), bs, limit)?;
            Ok(IoCmd {
                sqe: rw_sqe(
                    ZONE_APPEND,
                    self.info().nsid,
                    zslba,
                    blocks,
                    if fua { FUA } else { 0 },
                ),
                data: Data::Out(data),
            })
        });
        match prepared {
            Ok(cmd) => {
                let op = self.submit(VecDeque::from([cmd]), Vec::new());
                Box::pin(async move { op.await.map(|(_, lba)| lba) })
            }
            Err(e) => Box::pin(std::future::ready(Err(e))),
        }
    }
}

impl<M: DmaRegion + Send + Sync + 'static> DriverNamespace<M> {
    /// The geometry a zoned namespace exports ([`ZonedGeometry::of_drive`]): zone size and
    /// limits from Identify, the capacity of its first zone, and the controller's append
    /// limit, never above what one command of this namespace moves.
    pub(super) fn zoned_geometry(&self) -> Result<ZonedGeometry, DriverError> {
        let Some(z) = self.info().zoned.clone() else {
            return Err(DriverError::Unsupported(format!(
                "namespace {} is not zoned",
                self.info().nsid
            )));
        };
        let (_, first) = self
            .report_zones(0, ReportOption::All, true, 1)
            .map_err(|e| {
                DriverError::Unsupported(format!("report of the first zone failed: {e}"))
            })?;
        let per_command = u64::from(self.info().block_size) << 16;
        let limit = self
            .driver()
            .info()
            .zone_append_limit
            .unwrap_or(self.driver().info().max_transfer)
            .min(self.driver().info().max_transfer)
            .min(per_command);
        let limits = ZoneLimits {
            max_open: z.max_open.unwrap_or(0),
            max_active: z.max_active.unwrap_or(0),
        };
        let zone_cap = first.first().map(|d| d.zcap.get());
        ZonedGeometry::of_drive(z.zone_size, limits, self.info().blocks, zone_cap, limit)
            .map_err(DriverError::Unsupported)
    }

    /// Zone Management Send (ZNS 1.1 §4.4.3), encoded by [`ZoneSend`].
    fn zone_send_op(&self, slba: u64, action: ZoneAction, select_all: bool) -> IoFuture<()> {
        if let Err(e) = self.require_zoned() {
            return Box::pin(std::future::ready(Err(e)));
        }
        let sqe = ZoneSend::new(self.info().nsid, slba, action, select_all).to_sqe();
        let op = self.submit(
            VecDeque::from([IoCmd {
                sqe,
                data: Data::None,
            }]),
            Vec::new(),
        );
        Box::pin(async move { op.await.map(|_| ()) })
    }

    /// Report Zones (ZNS 1.1 §4.4.4) into `buf`, whose length is the report's size, encoded
    /// by [`ZoneReceive`]: the drive fills the buffer, or as much of it as one command
    /// moves ([`drive_report_len`]) and the rest is zeroed.
    fn report_op(
        &self,
        slba: u64,
        option: ReportOption,
        partial: bool,
        mut buf: Vec<u8>,
    ) -> IoFuture<Vec<u8>> {
        let host_len = buf.len();
        let checked = self
            .require_zoned()
            .and_then(|()| drive_report_len(host_len, self.driver().info().max_transfer, partial));
        let len = match checked {
            Ok(len) => len,
            Err(e) => return Box::pin(std::future::ready(Err(e))),
        };
        buf.truncate(len);
        let sqe =
            ZoneReceive::report_zones(self.info().nsid, slba, len as u64, option, partial).to_sqe();
        let op = self.submit(
            VecDeque::from([IoCmd {
                sqe,
                data: Data::In { off: 0, len },
            }]),
            buf,
        );
        Box::pin(async move {
            op.await.map(|(mut buf, _)| {
                buf.resize(host_len, 0);
                buf
            })
        })
    }
}

/// The zone commands of an exported zoned drive namespace, passed through to the drive.
impl<M: DmaRegion + Send + Sync + 'static> ZonedBackend for DriverNamespace<M> {
    fn geometry(&self) -> ZonedGeometry {
        // No zones (all zero) for a namespace that is not zoned; `Backend::zoned` offers
        // this interface only for zoned ones.
        self.zoned.unwrap_or_default()
    }

    fn append(&self, zslba: u64, data: &[u8], fua: bool) -> Result<u64, BackendError> {
        block_on(self.append_with(zslba, Bytes::copy_from_slice(data), fua))
    }

    fn send(&self, slba: u64, action: ZoneAction, select_all: bool) -> Result<(), BackendError> {
        block_on(self.zone_send_op(slba, action, select_all))
    }

    fn report(
        &self,
        slba: u64,
        option: ReportOption,
        partial: bool,
        out: &mut [u8],
    ) -> Result<(), BackendError> {
        let buf = block_on(self.report_op(slba, option, partial, vec![0; out.len()]))?;
        out.copy_from_slice(&buf);
        Ok(())
    }

    /// The drive's own Changed Zone List is not read through: ferrofab keeps no list for it.
    fn changed_zones(&self, _clear: bool) -> Vec<u64> {
        Vec::new()
    }

    fn queued(&self) -> Option<&dyn QueuedZonedBackend> {
        Some(self)
    }
}

impl<M: DmaRegion + Send + Sync + 'static> QueuedZonedBackend for DriverNamespace<M> {
    fn append(&self, zslba: u64, data: Bytes, fua: bool) -> IoFuture<u64> {
        self.append_with(zslba, data, fua)
    }

    fn send(&self, slba: u64, action: ZoneAction, select_all: bool) -> IoFuture<()> {
        self.zone_send_op(slba, action, select_all)
    }

    fn report(
        &self,
        slba: u64,
        option: ReportOption,
        partial: bool,
        buf: Vec<u8>,
    ) -> IoFuture<Vec<u8>> {
        self.report_op(slba, option, partial, buf)
    }
}
