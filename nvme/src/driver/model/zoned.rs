//! Zones of a zoned namespace and the ZNS commands: write-pointer rules for writes and Zone
//! Append, Zone Management Send and Receive (NVMe ZNS 1.1 §2.1, §4.4, §5).

use super::queues::Outcome;
use super::{State, ZonedModel};
use crate::zns::{ReportOption, Zone, ZoneAction, ZoneLimits, ZoneSet};
use crate::zns::{ZoneState, ZMR_PARTIAL_REPORT, ZMS_SELECT_ALL, ZRA_REPORT_ZONES};
use crate::{Sqe, Status};

/// The zones of a zoned namespace: its configuration and the shared zone state machine.
pub(super) struct Zones {
    pub(super) cfg: ZonedModel,
    set: ZoneSet,
}

impl Zones {
    pub(super) fn new(cfg: ZonedModel, blocks: u64) -> Zones {
        assert!(
            cfg.zone_size > 0 && blocks.is_multiple_of(cfg.zone_size),
            "namespace of {blocks} blocks is not a multiple of the zone size {}",
            cfg.zone_size
        );
        let limits = ZoneLimits {
            max_open: cfg.max_open,
            max_active: cfg.max_active,
        };
        let set = ZoneSet::new(cfg.zone_size, cfg.zone_cap, blocks / cfg.zone_size, limits);
        match set {
            Ok(set) => Zones { cfg, set },
            Err(e) => panic!("zoned namespace: {e}"),
        }
    }

    pub(super) fn zone_at_start(&self, zslba: u64) -> Option<&Zone> {
        let i = self.set.index_at_start(zslba).ok()?;
        self.set.zone(i)
    }

    /// Set the state of the zone starting at `zslba` without checks.
    pub(super) fn force_state(&mut self, zslba: u64, state: ZoneState) -> bool {
        self.set.force_state(zslba, state).is_ok()
    }

    /// Controller reset: opened zones become Closed (NVMe ZNS 1.1 §2.1.1.3).
    pub(super) fn close_all_open(&mut self) {
        self.set.close_all_open();
    }
}

impl State {
    /// Zone checks of a write (Write, Write Zeroes) to a zoned namespace.
    pub(super) fn zoned_write(&mut self, ns: usize, lba: u64, blocks: u64) -> Result<(), Status> {
        match self.namespaces[ns].zones.as_mut() {
            Some(zones) => zones.set.write(lba, blocks).map(drop),
            None => Ok(()),
        }
    }

    /// Zone checks of a read (NVMe ZNS 1.1 §5.1).
    pub(super) fn zoned_read(&self, ns: usize, lba: u64, blocks: u64) -> Result<(), Status> {
        match self.namespaces[ns].zones.as_ref() {
            Some(zones) => zones.set.check_read(lba, blocks),
            None => Ok(()),
        }
    }

    /// Zone Append (NVMe ZNS 1.1 §4.3): data at the write pointer of the zone starting at
    /// ZSLBA; the LBA written returns in Dword 0/1.
    pub(super) fn zone_append(&mut self, ns: usize, sqe: &Sqe) -> Outcome {
        let bs = self.namespaces[ns].block_size();
        let Some(zones) = self.namespaces[ns].zones.as_ref() else {
            return Outcome::status(Status::INVALID_OPCODE);
        };
        let zslba = sqe.slba();
        let blocks = u64::from(sqe.nlb());
        if let Err(s) = zones.set.index_at_start(zslba) {
            return Outcome::status(s);
        }
        // ZNS 1.1 §4.1.5.2: ZASL limits the data of one Zone Append; 0 means MDTS applies.
        let limit = match self.cfg.zasl {
            0 => self.mdts_bytes(),
            n => Some(4096u64 << n),
        };
        let bytes = blocks * bs;
        if limit.is_some_and(|l| bytes > l) {
            return Outcome::status(Status::INVALID_FIELD);
        }
        let data = match self.fetch_data(sqe, bytes as usize, self.cfg.sgls) {
            Ok(d) => d,
            Err(s) => return Outcome::status(s),
        };
        let Some(zones) = self.namespaces[ns].zones.as_mut() else {
            return Outcome::status(Status::INVALID_OPCODE);
        };
        match zones.set.append(zslba, blocks) {
            Ok(lba) => {
                self.namespaces[ns].write(lba, &data);
                Outcome::ok(lba as u32, (lba >> 32) as u32)
            }
            Err(s) => Outcome::status(s),
        }
    }

    /// Zone Management Send (NVMe ZNS 1.1 §4.4.3); a reset zone reads as zeroes.
    pub(super) fn zone_mgmt_send(&mut self, ns: usize, sqe: &Sqe) -> Outcome {
        let cdw13 = sqe.cdw13.get();
        let action = ZoneAction::from_u8(cdw13 as u8);
        let select_all = cdw13 & ZMS_SELECT_ALL != 0;
        let Some(zones) = self.namespaces[ns].zones.as_mut() else {
            return Outcome::status(Status::INVALID_OPCODE);
        };
        let zone_size = zones.cfg.zone_size;
        let mut reset = Vec::new();
        let result = zones
            .set
            .send(sqe.slba(), action, select_all, |zslba| reset.push(zslba));
        for zslba in reset {
            self.namespaces[ns].zero(zslba, zone_size);
        }
        match result {
            Ok(()) => Outcome::ok(0, 0),
            Err(s) => Outcome::status(s),
        }
    }

    /// Zone Management Receive, Report Zones (NVMe ZNS 1.1 §4.4.4).
    pub(super) fn zone_mgmt_recv(&mut self, ns: usize, sqe: &Sqe) -> Outcome {
        let cdw13 = sqe.cdw13.get();
        let len = (sqe.cdw12.get() as usize + 1) * 4;
        let Some(zones) = self.namespaces[ns].zones.as_ref() else {
            return Outcome::status(Status::INVALID_OPCODE);
        };
        if cdw13 as u8 != ZRA_REPORT_ZONES {
            return Outcome::status(Status::INVALID_FIELD);
        }
        let option = ReportOption::from_u8((cdw13 >> 8) as u8);
        let partial = cdw13 & ZMR_PARTIAL_REPORT != 0;
        let mut buf = vec![0; len];
        if let Err(s) = zones.set.report(sqe.slba(), option, partial, &mut buf) {
            return Outcome::status(s);
        }
        self.deliver_data(sqe, &buf, self.cfg.sgls).into()
    }
}
