//! NVM I/O commands (NVM Command Set 1.0 §3): Flush, Write, Read, Write Zeroes, Dataset
//! Management, and the dispatch of the ZNS I/O commands.

use super::queues::Outcome;
use super::State;
use crate::command::DsmRange;
use crate::zns::{ZONE_APPEND, ZONE_MGMT_RECV, ZONE_MGMT_SEND};
use crate::{Sqe, Status};

const FLUSH: u8 = 0x00;
const WRITE: u8 = 0x01;
const READ: u8 = 0x02;
const WRITE_ZEROES: u8 = 0x08;
const DSM: u8 = 0x09;

/// Dataset Management CDW11 bit 2: Attribute - Deallocate (NVM Command Set 1.0 §3.2.3).
const DSM_AD: u32 = 1 << 2;

impl State {
    /// Largest transfer in bytes allowed by MDTS, `None` without a limit.
    pub(super) fn mdts_bytes(&self) -> Option<u64> {
        match self.cfg.mdts {
            0 => None,
            n => Some(4096u64 << n),
        }
    }

    /// Execute one I/O command.
    pub(super) fn io(&mut self, sqe: &Sqe) -> Outcome {
        let nsid = sqe.nsid();
        if sqe.opcode == FLUSH && nsid == u32::MAX {
            return Outcome::ok(0, 0);
        }
        let Some(ns) = (nsid as usize)
            .checked_sub(1)
            .filter(|&i| i < self.namespaces.len())
        else {
            return Outcome::status(Status::INVALID_NAMESPACE);
        };
        let outcome = match sqe.opcode {
            FLUSH => Outcome::ok(0, 0),
            WRITE => self.write(ns, sqe).into(),
            READ => self.read(ns, sqe).into(),
            WRITE_ZEROES => self.write_zeroes(ns, sqe).into(),
            DSM => self.dsm(ns, sqe).into(),
            ZONE_APPEND => self.zone_append(ns, sqe),
            ZONE_MGMT_SEND => self.zone_mgmt_send(ns, sqe),
            ZONE_MGMT_RECV => self.zone_mgmt_recv(ns, sqe),
            _ => Outcome::status(Status::INVALID_OPCODE),
        };
        // SMART / Health: Reads are host read commands and data units read, Writes and Zone
        // Appends host write commands and data units written (NVMe Base 2.0 §5.16.1.3).
        if matches!(outcome, Outcome::Done(s, ..) if s.is_success()) {
            let bytes = u64::from(sqe.nlb()) * self.namespaces[ns].block_size();
            match sqe.opcode {
                READ => self.count_io(false, bytes),
                WRITE | ZONE_APPEND => self.count_io(true, bytes),
                _ => {}
            }
        }
        outcome
    }

    /// Range and MDTS checks shared by Read and Write; returns (LBA, blocks, bytes).
    fn rw_checks(&self, ns: usize, sqe: &Sqe) -> Result<(u64, u64, usize), Status> {
        let lba = sqe.slba();
        let blocks = u64::from(sqe.nlb());
        let n = &self.namespaces[ns];
        if !n.in_range(lba, blocks) {
            return Err(Status::LBA_OUT_OF_RANGE);
        }
        let bytes = blocks * n.block_size();
        if self.mdts_bytes().is_some_and(|l| bytes > l) {
            return Err(Status::INVALID_FIELD);
        }
        Ok((lba, blocks, bytes as usize))
    }

    fn write(&mut self, ns: usize, sqe: &Sqe) -> Result<(), Status> {
        let (lba, blocks, bytes) = self.rw_checks(ns, sqe)?;
        if !self.moves_data {
            return self.zoned_write(ns, lba, blocks);
        }
        let data = self.fetch_data(sqe, bytes, self.cfg.sgls)?;
        self.zoned_write(ns, lba, blocks)?;
        self.namespaces[ns].write(lba, &data);
        Ok(())
    }

    fn read(&mut self, ns: usize, sqe: &Sqe) -> Result<(), Status> {
        let (lba, blocks, _) = self.rw_checks(ns, sqe)?;
        self.zoned_read(ns, lba, blocks)?;
        if !self.moves_data {
            return Ok(());
        }
        let data = self.namespaces[ns].read(lba, blocks);
        self.deliver_data(sqe, &data, self.cfg.sgls)
    }

    fn write_zeroes(&mut self, ns: usize, sqe: &Sqe) -> Result<(), Status> {
        let lba = sqe.slba();
        let blocks = u64::from(sqe.nlb());
        if !self.namespaces[ns].in_range(lba, blocks) {
            return Err(Status::LBA_OUT_OF_RANGE);
        }
        self.zoned_write(ns, lba, blocks)?;
        self.namespaces[ns].zero(lba, blocks);
        Ok(())
    }

    /// Dataset Management: deallocated ranges of a conventional namespace read as zeroes
    /// afterwards; on a zoned namespace deallocation changes nothing (the write pointer rules
    /// keep the data).
    fn dsm(&mut self, ns: usize, sqe: &Sqe) -> Result<(), Status> {
        let count = (sqe.cdw10.get() & 0xff) as usize + 1;
        let raw = self.fetch_data(sqe, count * DsmRange::SIZE, self.cfg.sgls)?;
        let ranges = DsmRange::parse_list(&raw, count).map_err(|_| Status::INVALID_FIELD)?;
        let n = &self.namespaces[ns];
        if ranges
            .iter()
            .any(|r| !n.in_range(r.slba(), u64::from(r.nlb())))
        {
            return Err(Status::LBA_OUT_OF_RANGE);
        }
        if sqe.cdw11.get() & DSM_AD != 0 && n.zones.is_none() {
            for r in ranges {
                self.namespaces[ns].zero(r.slba(), u64::from(r.nlb()));
            }
        }
        Ok(())
    }
}
