//! Submission queue entries the host builds: Fabrics commands (NVMe-oF 1.1 §3), the admin
//! commands controller initialization needs (NVMe Base 2.0 §5) and NVM I/O commands
//! (NVM Command Set 1.0 §3). The Fabrics ones are encoded by [`nvme_spec::command`]. CID and data
//! pointer are left zero: the transport fills them in (and sets PSDT).

use nvme_spec::command::{
    fabrics_sqe, lba_sqe, Connect, DsmRange, PropertyGet, PropertySet, ZoneReceive, ZoneSend,
};
use nvme_spec::features::FeatureId;
use nvme_spec::opcode::{AdminOpcode, FabricsType, IoOpcode};
use nvme_spec::zns::{ReportOption, ZoneAction};
use nvme_spec::Sqe;

pub use nvme_spec::command::{PropertySize, CATTR_DISABLE_SQ_FLOW_CONTROL, CNTLID_DYNAMIC};

fn with_opcode(opcode: impl Into<u8>, nsid: u32) -> Sqe {
    let mut sqe = Sqe {
        opcode: opcode.into(),
        ..Default::default()
    };
    sqe.nsid.set(nsid);
    sqe
}

/// Fabrics Connect (NVMe-oF 1.1 §3.3): RECFMT 0, QID, SQSIZE (0's based), CATTR and KATO
/// (milliseconds), encoded by [`nvme_spec::command::Connect`].
pub fn connect(qid: u16, sqsize_zero_based: u16, cattr: u8, kato_ms: u32) -> Sqe {
    Connect {
        recfmt: 0,
        qid,
        sqsize: sqsize_zero_based,
        cattr,
        kato: kato_ms,
    }
    .to_sqe(0)
}

/// Fabrics Disconnect (NVMe-oF 1.1 §3.6): RECFMT 0; deletes the I/O queue it is sent on.
pub fn disconnect() -> Sqe {
    fabrics_sqe(FabricsType::Disconnect, 0)
}

/// Property Get (NVMe-oF 1.1 §3.4), encoded by [`nvme_spec::command::PropertyGet`].
pub fn property_get(offset: u32, size: PropertySize) -> Sqe {
    PropertyGet { size, offset }.to_sqe(0)
}

/// Property Set (NVMe-oF 1.1 §3.5), encoded by [`nvme_spec::command::PropertySet`].
pub fn property_set(offset: u32, size: PropertySize, value: u64) -> Sqe {
    PropertySet {
        size,
        offset,
        value,
    }
    .to_sqe(0)
}

/// Identify (NVMe Base 2.0 §5.17, Figure 273): CNS in CDW10 bits 7:0, CNTID in bits 31:16,
/// CSI in CDW11 bits 31:24. Returns 4096 bytes.
pub fn identify(cns: u8, nsid: u32, cntid: u16, csi: u8) -> Sqe {
    let mut sqe = with_opcode(AdminOpcode::Identify, nsid);
    sqe.cdw10.set(u32::from(cns) | (u32::from(cntid) << 16));
    sqe.cdw11.set(u32::from(csi) << 24);
    sqe
}

/// Get Log Page (NVMe Base 2.0 §5.16, Figure 197): LID CDW10 7:0, LSP 14:8, RAE bit 15,
/// NUMDL 31:16 and NUMDU in CDW11 15:0 (a 0's based dword count), LPO in CDW12..13.
/// `len` must be a non-zero multiple of 4.
pub fn get_log_page(lid: u8, nsid: u32, offset: u64, len: u32, rae: bool) -> Sqe {
    let mut sqe = with_opcode(AdminOpcode::GetLogPage, nsid);
    let numd = (len / 4).saturating_sub(1);
    sqe.cdw10
        .set(u32::from(lid) | (u32::from(rae) << 15) | ((numd & 0xffff) << 16));
    sqe.cdw11.set(numd >> 16);
    sqe.cdw12.set(offset as u32);
    sqe.cdw13.set((offset >> 32) as u32);
    sqe
}

/// Get Features (NVMe Base 2.0 §5.15): FID CDW10 7:0, SEL 10:8.
pub fn get_features(fid: u8, sel: u8, nsid: u32, cdw11: u32) -> Sqe {
    let mut sqe = with_opcode(AdminOpcode::GetFeatures, nsid);
    sqe.cdw10.set(u32::from(fid) | (u32::from(sel & 0x7) << 8));
    sqe.cdw11.set(cdw11);
    sqe
}

/// Set Features (NVMe Base 2.0 §5.27): FID CDW10 7:0, SV bit 31, value in CDW11.
pub fn set_features(fid: u8, nsid: u32, cdw11: u32, save: bool) -> Sqe {
    let mut sqe = with_opcode(AdminOpcode::SetFeatures, nsid);
    sqe.cdw10.set(u32::from(fid) | (u32::from(save) << 31));
    sqe.cdw11.set(cdw11);
    sqe
}

/// Set Features Number of Queues (NVMe Base 2.0 §5.27.1.5): NSQR 15:0, NCQR 31:16, both
/// 0's based.
pub fn set_number_of_queues(io_queues: u16) -> Sqe {
    let n = u32::from(io_queues.max(1) - 1);
    set_features(FeatureId::NumberOfQueues.to_u8(), 0, n | (n << 16), false)
}

/// Keep Alive (NVMe Base 2.0 §5.25).
pub fn keep_alive() -> Sqe {
    with_opcode(AdminOpcode::KeepAlive, 0)
}

/// Asynchronous Event Request (NVMe Base 2.0 §5.2).
pub fn async_event_request() -> Sqe {
    with_opcode(AdminOpcode::AsyncEventRequest, 0)
}

fn lba_command(opcode: IoOpcode, nsid: u32, slba: u64, nlb: u32) -> Sqe {
    let mut sqe = lba_sqe(opcode.to_u8(), nsid, slba);
    // NVM Command Set 1.0 §3.2: NLB is 0's based in CDW12 bits 15:0.
    sqe.cdw12.set(nlb.saturating_sub(1) & 0xffff);
    sqe
}

/// Read (NVM Command Set 1.0 §3.2.4). `nlb` is 1-based (1..=65536).
pub fn read(nsid: u32, slba: u64, nlb: u32) -> Sqe {
    lba_command(IoOpcode::Read, nsid, slba, nlb)
}

/// Write (NVM Command Set 1.0 §3.2.6): FUA is CDW12 bit 30.
pub fn write(nsid: u32, slba: u64, nlb: u32, fua: bool) -> Sqe {
    with_fua(lba_command(IoOpcode::Write, nsid, slba, nlb), fua)
}

/// CDW12 bit 30, Force Unit Access, of Write and Zone Append.
fn with_fua(mut sqe: Sqe, fua: bool) -> Sqe {
    if fua {
        sqe.cdw12.set(sqe.cdw12.get() | (1 << 30));
    }
    sqe
}

/// Compare (NVM Command Set 1.0 §3.2.1).
pub fn compare(nsid: u32, slba: u64, nlb: u32) -> Sqe {
    lba_command(IoOpcode::Compare, nsid, slba, nlb)
}

/// Write Zeroes (NVM Command Set 1.0 §3.2.8); DEAC is CDW12 bit 25.
pub fn write_zeroes(nsid: u32, slba: u64, nlb: u32, deac: bool) -> Sqe {
    let mut sqe = lba_command(IoOpcode::WriteZeroes, nsid, slba, nlb);
    if deac {
        sqe.cdw12.set(sqe.cdw12.get() | (1 << 25));
    }
    sqe
}

/// Flush (NVM Command Set 1.0 §3.2.3).
pub fn flush(nsid: u32) -> Sqe {
    with_opcode(IoOpcode::Flush, nsid)
}

/// Dataset Management with the Deallocate attribute (NVM Command Set 1.0 §3.2.2): NR (0's
/// based) in CDW10 7:0, AD is CDW11 bit 2. `ranges` must hold 1..=256 entries.
pub fn dsm_deallocate(nsid: u32, ranges: usize) -> Sqe {
    let mut sqe = with_opcode(IoOpcode::DatasetManagement, nsid);
    sqe.cdw10
        .set((ranges.clamp(1, DsmRange::MAX_RANGES) - 1) as u32);
    sqe.cdw11.set(1 << 2);
    sqe
}

/// Zone Management Send (NVMe ZNS 1.1 §4.4.3): `action` on the zone starting at `slba`, or
/// with `select_all` on every zone it applies to; encoded by [`nvme_spec::command::ZoneSend`].
pub fn zone_mgmt_send(nsid: u32, slba: u64, action: ZoneAction, select_all: bool) -> Sqe {
    ZoneSend::new(nsid, slba, action, select_all).to_sqe()
}

/// Zone Management Receive, Report Zones (NVMe ZNS 1.1 §4.4.4) into `len` bytes (a multiple
/// of 4, at least 64): the zones from the one holding `slba` that `option` selects.
pub fn report_zones(nsid: u32, slba: u64, len: u32, option: ReportOption, partial: bool) -> Sqe {
    ZoneReceive::report_zones(nsid, slba, u64::from(len), option, partial).to_sqe()
}

/// Zone Append (NVMe ZNS 1.1 §4.3) of `nlb` blocks (1-based) to the zone starting at `zslba`;
/// the completion's DW1:DW0 is the LBA written.
pub fn zone_append(nsid: u32, zslba: u64, nlb: u32, fua: bool) -> Sqe {
    with_fua(lba_command(IoOpcode::ZoneAppend, nsid, zslba, nlb), fua)
}

/// The Dataset Management range list (NVM Command Set 1.0 §3.2.3) for `(slba, nlb)` ranges,
/// no context attributes, encoded by [`nvme_spec::command::DsmRange`].
pub fn dsm_ranges(ranges: &[(u64, u32)]) -> Vec<u8> {
    let ranges: Vec<DsmRange> = ranges
        .iter()
        .map(|&(slba, nlb)| DsmRange::new(slba, nlb, 0))
        .collect();
    DsmRange::encode_list(&ranges)
}

#[cfg(test)]
mod tests {
    use super::*;
    use nvme_spec::identify::Cns;
    use zerocopy::IntoBytes;

    #[test]
    fn golden_connect() {
        // Admin Connect: QID 0, SQSIZE 31, CATTR disable SQ flow, KATO 5000 ms.
        let sqe = connect(0, 31, CATTR_DISABLE_SQ_FLOW_CONTROL, 5000);
        let b = sqe.as_bytes();
        assert_eq!(b[0], 0x7f);
        assert_eq!(b[4], 0x01);
        assert_eq!(&b[40..42], &[0, 0]); // RECFMT
        assert_eq!(&b[42..44], &[0, 0]); // QID
        assert_eq!(&b[44..46], &[31, 0]); // SQSIZE
        assert_eq!(b[46], 0x04); // CATTR
        assert_eq!(&b[48..52], &[0x88, 0x13, 0, 0]); // KATO 5000
        let io = connect(3, 127, 0, 0);
        assert_eq!(&io.as_bytes()[42..46], &[3, 0, 127, 0]);
    }

    #[test]
    fn golden_property_commands() {
        let g = property_get(0x00, PropertySize::Eight);
        let b = g.as_bytes();
        assert_eq!((b[0], b[4], b[40]), (0x7f, 0x04, 0x01));
        assert_eq!(&b[44..48], &[0, 0, 0, 0]);
        let s = property_set(0x14, PropertySize::Four, 0x0046_0001);
        let b = s.as_bytes();
        assert_eq!((b[0], b[4], b[40]), (0x7f, 0x00, 0x00));
        assert_eq!(&b[44..48], &[0x14, 0, 0, 0]);
        assert_eq!(&b[48..56], &[0x01, 0x00, 0x46, 0x00, 0, 0, 0, 0]);
    }

    #[test]
    fn golden_admin_commands() {
        let id = identify(Cns::Controller.to_u8(), 0, 0, 0);
        assert_eq!(id.as_bytes()[0], 0x06);
        assert_eq!(&id.as_bytes()[40..44], &[1, 0, 0, 0]);
        // Discovery log header: 1024 bytes -> NUMD 255 (0's based), LID 70h, RAE off.
        let lp = get_log_page(0x70, 0, 0, 1024, false);
        assert_eq!(&lp.as_bytes()[40..44], &[0x70, 0x00, 0xff, 0x00]);
        // 1 MiB at offset 2^32 + 8 with RAE: NUMD = 0x3ffff -> NUMDL 0xffff, NUMDU 3.
        let lp = get_log_page(0x02, 0xffff_ffff, (1 << 32) + 8, 1 << 20, true);
        let b = lp.as_bytes();
        assert_eq!(&b[40..44], &[0x02, 0x80, 0xff, 0xff]);
        assert_eq!(&b[44..48], &[3, 0, 0, 0]);
        assert_eq!(&b[48..56], &[8, 0, 0, 0, 1, 0, 0, 0]);
        let nq = set_number_of_queues(4);
        assert_eq!(nq.as_bytes()[0], 0x09);
        assert_eq!(&nq.as_bytes()[40..48], &[0x07, 0, 0, 0, 3, 0, 3, 0]);
        assert_eq!(keep_alive().as_bytes()[0], 0x18);
        assert_eq!(async_event_request().as_bytes()[0], 0x0c);
        let gf = get_features(FeatureId::KeepAliveTimer.to_u8(), 3, 0, 0);
        assert_eq!(&gf.as_bytes()[40..42], &[0x0f, 0x03]);
    }

    #[test]
    fn golden_io_commands() {
        let w = write(1, 0x1_0000_0002, 8, true);
        let b = w.as_bytes();
        assert_eq!(b[0], 0x01);
        assert_eq!(&b[4..8], &[1, 0, 0, 0]);
        assert_eq!(&b[40..52], &[2, 0, 0, 0, 1, 0, 0, 0, 7, 0, 0, 0x40]);
        let r = read(1, 5, 1);
        assert_eq!(r.opcode, 0x02);
        assert_eq!(r.nlb(), 1);
        assert_eq!(r.slba(), 5);
        let wz = write_zeroes(2, 0, 16, true);
        assert_eq!(&wz.as_bytes()[48..52], &[15, 0, 0, 0x02]);
        let dsm = dsm_deallocate(1, 2);
        assert_eq!(&dsm.as_bytes()[40..48], &[1, 0, 0, 0, 4, 0, 0, 0]);
        assert_eq!(
            dsm_ranges(&[(0x10, 8)]),
            vec![0, 0, 0, 0, 8, 0, 0, 0, 0x10, 0, 0, 0, 0, 0, 0, 0]
        );
        assert_eq!(flush(1).opcode, 0x00);
        assert_eq!(compare(1, 0, 1).opcode, 0x05);
    }

    #[test]
    fn golden_zone_commands() {
        let reset_all = zone_mgmt_send(1, 0, ZoneAction::Reset, true);
        let b = reset_all.as_bytes();
        assert_eq!((b[0], b[4]), (0x79, 1));
        assert_eq!(&b[52..56], &[0x04, 0x01, 0, 0]);
        let report = report_zones(2, 0x100, 4096, ReportOption::All, true);
        let b = report.as_bytes();
        assert_eq!(b[0], 0x7a);
        assert_eq!(
            &b[40..56],
            &[0, 1, 0, 0, 0, 0, 0, 0, 0xff, 3, 0, 0, 0, 0, 1, 0]
        );
        let append = zone_append(1, 0x8000, 8, true);
        let b = append.as_bytes();
        assert_eq!(b[0], 0x7d);
        assert_eq!(&b[40..52], &[0, 0x80, 0, 0, 0, 0, 0, 0, 7, 0, 0, 0x40]);
    }
}
