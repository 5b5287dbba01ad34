//! Zone commands of the host role (NVMe ZNS 1.1 §4.3, §4.4): report zones, Zone Management
//! Send and Zone Append on a controller's I/O queues. The target's own tests and
//! `ferrofab` use them as the in-tree peer of a zoned namespace.

use bytes::Bytes;
use nvme_spec::zns::{ReportOption, ZoneAction, ZoneDescriptor, ZoneReportHeader};
use zerocopy::FromBytes;

use super::{command, Controller, HostCommand, HostCompletion, HostError};

/// A Report Zones answer: the header's zone count and the descriptors that came back.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ZoneReport {
    /// Matching zones (all of them, or with a partial report those in this report).
    pub nr_zones: u64,
    pub zones: Vec<ZoneDescriptor>,
}

impl ZoneReport {
    /// Parse a Report Zones buffer (NVMe ZNS 1.1 Figures 51, 52): at most `nr_zones`
    /// descriptors, as many as the buffer holds.
    pub fn parse(data: &[u8]) -> Result<ZoneReport, HostError> {
        let header_len = core::mem::size_of::<ZoneReportHeader>();
        let header = data
            .get(..header_len)
            .and_then(|h| ZoneReportHeader::read_from_bytes(h).ok())
            .ok_or_else(|| HostError::Protocol("zone report shorter than its header".into()))?;
        let nr_zones = header.nr_zones.get();
        let zones = data[header_len..]
            .chunks_exact(core::mem::size_of::<ZoneDescriptor>())
            .take(usize::try_from(nr_zones).unwrap_or(usize::MAX))
            .filter_map(|d| ZoneDescriptor::read_from_bytes(d).ok())
            .collect();
        Ok(ZoneReport { nr_zones, zones })
    }
}

impl Controller {
    /// Report Zones from the zone holding `slba`, into a `len`-byte buffer.
    pub async fn report_zones(
        &self,
        qid: u16,
        nsid: u32,
        slba: u64,
        len: u32,
        option: ReportOption,
        partial: bool,
    ) -> Result<ZoneReport, HostError> {
        let sqe = command::report_zones(nsid, slba, len, option, partial);
        let c = self
            .submit_io(qid, HostCommand::with_data_in(sqe, len))
            .await?
            .ok()?;
        ZoneReport::parse(&c.data)
    }

    /// Zone Management Send: `action` on the zone starting at `slba`, or on all zones.
    pub async fn zone_mgmt_send(
        &self,
        qid: u16,
        nsid: u32,
        slba: u64,
        action: ZoneAction,
        select_all: bool,
    ) -> Result<HostCompletion, HostError> {
        let sqe = command::zone_mgmt_send(nsid, slba, action, select_all);
        self.submit_io(qid, HostCommand::new(sqe)).await
    }

    /// Zone Append of `data` (whole blocks) to the zone starting at `zslba`. The completion
    /// is returned as it is; [`appended_lba`] reads the LBA written from it.
    pub async fn zone_append(
        &self,
        qid: u16,
        nsid: u32,
        zslba: u64,
        data: Bytes,
        fua: bool,
    ) -> Result<HostCompletion, HostError> {
        let nlb = self.blocks_for(nsid, data.len()).await?;
        let sqe = command::zone_append(nsid, zslba, nlb, fua);
        self.submit_io(qid, HostCommand::with_data_out(sqe, data))
            .await
    }
}

/// The LBA a successful Zone Append wrote at: CQE DW1:DW0 (NVMe ZNS 1.1 §4.3, Figure 33).
pub fn appended_lba(c: &HostCompletion) -> u64 {
    u64::from(c.cqe.dw0.get()) | (u64::from(c.cqe.dw1.get()) << 32)
}

#[cfg(test)]
mod tests {
    use super::*;
    use nvme_spec::zns::ZoneState;
    use zerocopy::IntoBytes;

    #[test]
    fn parses_a_report() {
        let mut data = ZoneReportHeader::new(2).as_bytes().to_vec();
        let a = ZoneDescriptor::new(ZoneState::Empty, 16, 0, 0);
        let b = ZoneDescriptor::new(ZoneState::Full, 16, 16, 32);
        data.extend_from_slice(a.as_bytes());
        data.extend_from_slice(b.as_bytes());
        data.extend_from_slice(&[0; 64]);
        let r = ZoneReport::parse(&data).unwrap();
        assert_eq!(r.nr_zones, 2);
        assert_eq!(r.zones, vec![a, b]);
        // A header counting more zones than the buffer holds.
        let r = ZoneReport::parse(&data[..128]).unwrap();
        assert_eq!((r.nr_zones, r.zones.len()), (2, 1));
        assert!(ZoneReport::parse(&data[..63]).is_err());
    }
}
