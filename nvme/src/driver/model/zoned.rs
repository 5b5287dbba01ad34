//! Zones of a zoned namespace and the ZNS commands: write-pointer rules for writes and Zone
//! Append, Zone Management Send and Receive (NVMe ZNS 1.1 §2.1, §4.4, §5).

use zerocopy::IntoBytes;

use super::queues::Outcome;
use super::{State, ZonedModel};
use crate::zns::{ReportOption, ZoneAction, ZoneDescriptor, ZoneEvent, ZoneReportHeader};
use crate::zns::{ZoneState, ZMR_PARTIAL_REPORT, ZMS_SELECT_ALL, ZRA_REPORT_ZONES};
use crate::{Sqe, Status};

#[derive(Clone, Copy, Debug)]
pub(super) struct Zone {
    pub(super) state: ZoneState,
    pub(super) wp: u64,
    zslba: u64,
}

pub(super) struct Zones {
    pub(super) cfg: ZonedModel,
    list: Vec<Zone>,
}

impl Zones {
    pub(super) fn new(cfg: ZonedModel, blocks: u64) -> Zones {
        assert!(
            cfg.zone_size > 0 && blocks.is_multiple_of(cfg.zone_size),
            "namespace of {blocks} blocks is not a multiple of the zone size {}",
            cfg.zone_size
        );
        assert!(
            cfg.zone_cap > 0 && cfg.zone_cap <= cfg.zone_size,
            "zone capacity {} not in 1..=zone size {}",
            cfg.zone_cap,
            cfg.zone_size
        );
        let list = (0..blocks / cfg.zone_size)
            .map(|i| Zone {
                state: ZoneState::Empty,
                wp: i * cfg.zone_size,
                zslba: i * cfg.zone_size,
            })
            .collect();
        Zones { cfg, list }
    }

    pub(super) fn zone_at_start(&self, zslba: u64) -> Option<&Zone> {
        if !zslba.is_multiple_of(self.cfg.zone_size) {
            return None;
        }
        self.list.get((zslba / self.cfg.zone_size) as usize)
    }

    /// Set the state of the zone starting at `zslba` without checks.
    pub(super) fn force_state(&mut self, zslba: u64, state: ZoneState) -> bool {
        if !zslba.is_multiple_of(self.cfg.zone_size) {
            return false;
        }
        let i = self.index(zslba);
        match self.list.get_mut(i) {
            Some(z) => {
                z.state = state;
                true
            }
            None => false,
        }
    }

    fn index(&self, lba: u64) -> usize {
        (lba / self.cfg.zone_size) as usize
    }

    fn count(&self, f: impl Fn(ZoneState) -> bool) -> u32 {
        self.list.iter().filter(|z| f(z.state)).count() as u32
    }

    /// Controller reset: opened zones become Closed (NVMe ZNS 1.1 §2.1.1.3).
    pub(super) fn close_all_open(&mut self) {
        for z in &mut self.list {
            if z.state.is_open() {
                z.state = ZoneState::Closed;
            }
        }
    }

    /// Resource checks before zone `i` goes to an opened state (NVMe ZNS 1.1 §2.1.1.4): an
    /// Empty zone needs an active resource; a zone not yet open needs an open resource, made
    /// by closing an implicitly opened zone if none is free.
    fn make_room_to_open(&mut self, i: usize) -> Result<(), Status> {
        let state = self.list[i].state;
        if state.is_open() {
            return Ok(());
        }
        let max_active = self.cfg.max_active;
        if state == ZoneState::Empty
            && max_active != 0
            && self.count(ZoneState::is_active) >= max_active
        {
            return Err(Status::TOO_MANY_ACTIVE_ZONES);
        }
        let max_open = self.cfg.max_open;
        if max_open != 0 && self.count(ZoneState::is_open) >= max_open {
            let victim = self
                .list
                .iter()
                .position(|z| z.state == ZoneState::ImplicitlyOpened)
                .ok_or(Status::TOO_MANY_OPEN_ZONES)?;
            self.list[victim].state = ZoneState::Closed;
        }
        Ok(())
    }

    /// Check a write of `blocks` at `lba` (NVMe ZNS 1.1 §5.2) and advance the write pointer.
    fn write(&mut self, lba: u64, blocks: u64) -> Result<(), Status> {
        let i = self.index(lba);
        let zone = self.list[i];
        match zone.state {
            ZoneState::Full => return Err(Status::ZONE_IS_FULL),
            ZoneState::ReadOnly => return Err(Status::ZONE_IS_READ_ONLY),
            ZoneState::Offline => return Err(Status::ZONE_IS_OFFLINE),
            _ => {}
        }
        if lba != zone.wp {
            return Err(Status::ZONE_INVALID_WRITE);
        }
        let cap_end = zone.zslba + self.cfg.zone_cap;
        if lba + blocks > cap_end {
            return Err(Status::ZONE_BOUNDARY_ERROR);
        }
        self.make_room_to_open(i)?;
        let new_wp = lba + blocks;
        let event = if new_wp == cap_end {
            ZoneEvent::WriteFills
        } else {
            ZoneEvent::Write
        };
        let z = &mut self.list[i];
        z.state = z.state.apply(event)?;
        z.wp = new_wp;
        Ok(())
    }

    /// Apply a Zone Send Action to zone `i`; returns true if the zone's data must be zeroed.
    fn action(&mut self, i: usize, action: ZoneAction) -> Result<bool, Status> {
        let event = action.event().ok_or(Status::INVALID_FIELD)?;
        let state = self.list[i].state;
        let next = state.apply(event)?;
        if next == ZoneState::ExplicitlyOpened {
            self.make_room_to_open(i)?;
        }
        let zcap = self.cfg.zone_cap;
        let z = &mut self.list[i];
        z.state = next;
        match event {
            ZoneEvent::Reset => z.wp = z.zslba,
            ZoneEvent::Finish => z.wp = z.zslba + zcap,
            _ => {}
        }
        Ok(event == ZoneEvent::Reset)
    }
}

impl State {
    /// Zone checks of a write (Write, Write Zeroes) to a zoned namespace.
    pub(super) fn zoned_write(&mut self, ns: usize, lba: u64, blocks: u64) -> Result<(), Status> {
        match self.namespaces[ns].zones.as_mut() {
            Some(zones) => zones.write(lba, blocks),
            None => Ok(()),
        }
    }

    /// Zone checks of a read: no crossing of zone boundaries (OZCS bit 0 is 0), none of an
    /// offline zone (NVMe ZNS 1.1 §5.1).
    pub(super) fn zoned_read(&self, ns: usize, lba: u64, blocks: u64) -> Result<(), Status> {
        let Some(zones) = self.namespaces[ns].zones.as_ref() else {
            return Ok(());
        };
        let i = zones.index(lba);
        if blocks > 0 && zones.index(lba + blocks - 1) != i {
            return Err(Status::ZONE_BOUNDARY_ERROR);
        }
        if zones.list[i].state == ZoneState::Offline {
            return Err(Status::ZONE_IS_OFFLINE);
        }
        Ok(())
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
        let Some(zone) = zones.zone_at_start(zslba) else {
            let in_ns = zones.index(zslba) < zones.list.len();
            return Outcome::status(if in_ns {
                Status::INVALID_FIELD
            } else {
                Status::LBA_OUT_OF_RANGE
            });
        };
        let wp = zone.wp;
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
        if let Err(s) = self.zoned_write(ns, wp, blocks) {
            return Outcome::status(s);
        }
        self.namespaces[ns].write(wp, &data);
        Outcome::ok(wp as u32, (wp >> 32) as u32)
    }

    /// Zone Management Send (NVMe ZNS 1.1 §4.4.3).
    pub(super) fn zone_mgmt_send(&mut self, ns: usize, sqe: &Sqe) -> Outcome {
        let cdw13 = sqe.cdw13.get();
        let action = ZoneAction::from_u8(cdw13 as u8);
        let select_all = cdw13 & ZMS_SELECT_ALL != 0;
        let Some(zones) = self.namespaces[ns].zones.as_mut() else {
            return Outcome::status(Status::INVALID_OPCODE);
        };
        if action.event().is_none() {
            return Outcome::status(Status::INVALID_FIELD);
        }
        let targets: Vec<usize> = if select_all {
            (0..zones.list.len())
                .filter(|&i| action.select_all_applies(zones.list[i].state))
                .collect()
        } else {
            let slba = sqe.slba();
            if zones.zone_at_start(slba).is_none() {
                let in_ns = zones.index(slba) < zones.list.len();
                return Outcome::status(if in_ns {
                    Status::INVALID_FIELD
                } else {
                    Status::LBA_OUT_OF_RANGE
                });
            }
            vec![zones.index(slba)]
        };
        let zone_size = zones.cfg.zone_size;
        for i in targets {
            let zones = self.namespaces[ns].zones.as_mut().expect("zoned");
            match zones.action(i, action) {
                Ok(true) => self.namespaces[ns].zero(i as u64 * zone_size, zone_size),
                Ok(false) => {}
                Err(s) => return Outcome::status(s),
            }
        }
        Outcome::ok(0, 0)
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
        if option.matches(ZoneState::Empty).is_none() {
            return Outcome::status(Status::INVALID_FIELD);
        }
        let start = zones.index(sqe.slba());
        if start >= zones.list.len() {
            return Outcome::status(Status::LBA_OUT_OF_RANGE);
        }
        let matching: Vec<ZoneDescriptor> = zones.list[start..]
            .iter()
            .filter(|z| option.matches(z.state) == Some(true))
            .map(|z| ZoneDescriptor::new(z.state, zones.cfg.zone_cap, z.zslba, z.wp))
            .collect();
        let fit = len.saturating_sub(64) / 64;
        let nr = if cdw13 & ZMR_PARTIAL_REPORT != 0 {
            matching.len().min(fit)
        } else {
            matching.len()
        };
        let mut buf = ZoneReportHeader::new(nr as u64).as_bytes().to_vec();
        for d in matching.iter().take(fit) {
            buf.extend_from_slice(d.as_bytes());
        }
        buf.resize(len, 0);
        self.deliver_data(sqe, &buf, self.cfg.sgls).into()
    }
}
