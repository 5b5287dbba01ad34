//! Host-side encoding of commands (the inverse of their decoding in the parent module): what
//! the in-tree initiator sends, and what the drivers pass to a drive.

use super::{Connect, PropertyGet, PropertySet, PropertySize, ZoneReceive, ZoneSend};
use crate::opcode::{FabricsType, IoOpcode};
use crate::sqe::{Sqe, FABRICS_OPCODE};

impl ZoneReceive {
    /// Report Zones (ZNS 1.1 §4.4.4) into `len` bytes (whole dwords) from the zone holding
    /// `slba`, of the zones `option` selects.
    pub fn report_zones(
        nsid: u32,
        slba: u64,
        len: u64,
        option: crate::zns::ReportOption,
        partial: bool,
    ) -> ZoneReceive {
        ZoneReceive {
            nsid,
            slba,
            numd: len / 4,
            action: crate::zns::ZRA_REPORT_ZONES,
            option,
            partial,
        }
    }
}

impl ZoneSend {
    /// `action` on the zone starting at `slba`, or with `select_all` on every zone it applies
    /// to; no ZRWA option.
    pub fn new(nsid: u32, slba: u64, action: crate::zns::ZoneAction, select_all: bool) -> ZoneSend {
        ZoneSend {
            nsid,
            slba,
            action,
            select_all,
            zsaso: false,
        }
    }
}

impl Connect {
    /// Build the SQE of this Connect (host side). The data pointer is left zero.
    pub fn to_sqe(&self, cid: u16) -> Sqe {
        let mut sqe = fabrics_sqe(FabricsType::Connect, cid);
        sqe.cdw10
            .set(u32::from(self.recfmt) | (u32::from(self.qid) << 16));
        sqe.cdw11
            .set(u32::from(self.sqsize) | (u32::from(self.cattr) << 16));
        sqe.cdw12.set(self.kato);
        sqe
    }
}

impl PropertyGet {
    /// Build the SQE of this Property Get (host side).
    pub fn to_sqe(&self, cid: u16) -> Sqe {
        let mut sqe = fabrics_sqe(FabricsType::PropertyGet, cid);
        sqe.cdw10.set(u32::from(self.size.to_attrib()));
        sqe.cdw11.set(self.offset);
        sqe
    }
}

impl PropertySet {
    /// Build the SQE of this Property Set (host side).
    pub fn to_sqe(&self, cid: u16) -> Sqe {
        let mut sqe = fabrics_sqe(FabricsType::PropertySet, cid);
        sqe.cdw10.set(u32::from(self.size.to_attrib()));
        sqe.cdw11.set(self.offset);
        sqe.cdw12.set(self.value as u32);
        if self.size == PropertySize::Eight {
            sqe.cdw13.set((self.value >> 32) as u32);
        }
        sqe
    }
}

/// An I/O SQE with `opcode`, NSID and the starting LBA in CDW11:CDW10, as NVM I/O and the
/// zone commands carry it (host side; everything else zero).
pub fn lba_sqe(opcode: u8, nsid: u32, slba: u64) -> Sqe {
    let mut sqe = Sqe {
        opcode,
        ..Default::default()
    };
    sqe.nsid.set(nsid);
    sqe.cdw10.set(slba as u32);
    sqe.cdw11.set((slba >> 32) as u32);
    sqe
}

impl ZoneSend {
    /// Build the SQE of this Zone Management Send (host side); the inverse of its decoding.
    pub fn to_sqe(&self) -> Sqe {
        let mut sqe = lba_sqe(IoOpcode::ZoneManagementSend.to_u8(), self.nsid, self.slba);
        sqe.cdw13.set(
            u32::from(self.action.to_u8())
                | (u32::from(self.select_all) << 8)
                | (u32::from(self.zsaso) << 9),
        );
        sqe
    }
}

impl ZoneReceive {
    /// Build the SQE of this Zone Management Receive (host side); `numd` is 1..=2^32.
    pub fn to_sqe(&self) -> Sqe {
        let mut sqe = lba_sqe(
            IoOpcode::ZoneManagementReceive.to_u8(),
            self.nsid,
            self.slba,
        );
        sqe.cdw12
            .set(self.numd.clamp(1, 1 << 32).wrapping_sub(1) as u32);
        sqe.cdw13.set(
            u32::from(self.action)
                | (u32::from(self.option.to_u8()) << 8)
                | (u32::from(self.partial) << 16),
        );
        sqe
    }
}

/// PSDT 01b in CDW0 byte 1: NVMe over Fabrics transfers data with SGLs only (NVMe-oF 1.1
/// §2.1), as Linux sets with `NVME_CMD_SGL_METABUF`.
pub const FLAGS_PSDT_SGL: u8 = 0b01 << 6;

/// A Fabrics SQE (opcode 7Fh, PSDT SGL) of type `fctype` with CID `cid`, every other field
/// zero (host side; NVMe-oF 1.1 §2.1: FCTYPE is byte 04). Disconnect needs nothing more.
pub fn fabrics_sqe(fctype: FabricsType, cid: u16) -> Sqe {
    let mut sqe = Sqe {
        opcode: FABRICS_OPCODE,
        flags: FLAGS_PSDT_SGL,
        ..Default::default()
    };
    sqe.cid.set(cid);
    sqe.nsid.set(u32::from(fctype.to_u8()));
    sqe
}
