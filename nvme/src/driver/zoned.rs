//! Zoned namespace commands through the driver (NVMe ZNS 1.1 §4.4): Zone Management Receive
//! (Report Zones), Zone Management Send (zone actions) and Zone Append.

use std::collections::VecDeque;
use std::io;

use bytes::Bytes;
use zerocopy::FromBytes;

use super::dma::DmaRegion;
use super::io::{rw_sqe, slba_sqe, Data, IoCmd};
use super::nvme_driver::{block_on, DriverNamespace};
use crate::backend::{blocks_in, check_range, BackendError, IoFuture};
use crate::zns::{
    ReportOption, ZoneAction, ZoneDescriptor, ZoneReportHeader, ZMR_PARTIAL_REPORT, ZMS_SELECT_ALL,
    ZONE_APPEND, ZONE_MGMT_RECV, ZONE_MGMT_SEND, ZRA_REPORT_ZONES,
};

/// Bytes of the report header and of each zone descriptor (ZNS 1.1 §4.4.4.1).
const REPORT_ENTRY: usize = 64;

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
        self.require_zoned()?;
        let len = REPORT_ENTRY * (max_zones + 1);
        let limit = self.driver().info().max_transfer;
        if len as u64 > limit {
            return Err(invalid(format!(
                "report of {max_zones} zones needs {len} bytes, over the {limit}-byte transfer limit"
            )));
        }
        let mut sqe = slba_sqe(ZONE_MGMT_RECV, self.info().nsid, slba);
        sqe.cdw12.set((len / 4 - 1) as u32);
        let mut cdw13 = u32::from(ZRA_REPORT_ZONES) | (u32::from(option.to_u8()) << 8);
        if partial {
            cdw13 |= ZMR_PARTIAL_REPORT;
        }
        sqe.cdw13.set(cdw13);
        let cmd = IoCmd {
            sqe,
            data: Data::In { off: 0, len },
        };
        let (buf, _) = block_on(self.submit(VecDeque::from([cmd]), vec![0; len]))?;
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
        self.require_zoned()?;
        let mut sqe = slba_sqe(ZONE_MGMT_SEND, self.info().nsid, slba);
        let mut cdw13 = u32::from(action.to_u8());
        if select_all {
            cdw13 |= ZMS_SELECT_ALL;
        }
        sqe.cdw13.set(cdw13);
        let cmd = IoCmd {
            sqe,
            data: Data::None,
        };
        block_on(self.submit(VecDeque::from([cmd]), Vec::new())).map(|_| ())
    }

    /// Zone Append `data` to the zone starting at `zslba`; resolves to the LBA the controller
    /// wrote it at (CQE DW0/DW1, ZNS 1.1 §4.3.1). An append larger than the zone append size
    /// limit is refused: split, its parts could land apart.
    pub fn append(&self, zslba: u64, data: Bytes) -> IoFuture<u64> {
        let prepared = self.require_zoned().and_then(|()| {
            let blocks = blocks_in(data.len(), self.info().block_size)?;
            check_range(zslba, blocks.max(1), self.info().blocks)?;
            let limit = self
                .driver()
                .info()
                .zone_append_limit
                .unwrap_or(self.driver().info().max_transfer)
                .min(self.info().block_size as u64 * (1 << 16));
            if blocks == 0 || data.len() as u64 > limit {
                return Err(invalid(format!(
                    "zone append of {} bytes: must be 1 block up to the zone append size limit \
                     (ZASL) of {limit} bytes",
                    data.len()
                )));
            }
            Ok(IoCmd {
                sqe: rw_sqe(ZONE_APPEND, self.info().nsid, zslba, blocks, 0),
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
