//! Admin commands (NVMe Base 2.0 §5): Identify, Set/Get Features Number of Queues, I/O queue
//! creation and deletion, Abort; Get Log Page is in `health.rs`.

use zerocopy::IntoBytes;

use super::queues::{Cq, Outcome, Sq};
use super::{Fault, State};
use crate::features::NumberOfQueues;
use crate::identify::{
    active_namespace_list, ctrl_bits, io_command_set_vectors, IdentifyController,
    IdentifyNamespace, LbaFormat, NsDescriptor, IDENTIFY_DATA_SIZE, IOCS_NVM, IOCS_ZONED,
};
use crate::opcode::AdminOpcode;
use crate::properties::Version;
use crate::zns::{IdentifyZnsController, IdentifyZnsNamespace};
use crate::{Sqe, Status};

/// Identify Controller values of the model.
pub const MODEL_VID: u16 = 0x1b36;
pub const MODEL_SERIAL: &str = "FERROFAB-MODEL-0001";
pub const MODEL_MODEL: &str = "ferrofab soft controller";
pub const MODEL_FIRMWARE: &str = "1.0";
pub const MODEL_CNTLID: u16 = 1;

const CSI_NVM: u8 = 0x00;
const CSI_ZONED: u8 = 0x02;
/// Feature Identifier: Number of Queues.
const FID_NUMBER_OF_QUEUES: u8 = 0x07;

impl State {
    /// Execute one admin command.
    pub(super) fn admin(&mut self, sqe: &Sqe) -> Outcome {
        match AdminOpcode::from_u8(sqe.opcode) {
            AdminOpcode::Identify => self.identify(sqe).into(),
            AdminOpcode::GetLogPage => self.get_log_page(sqe),
            AdminOpcode::SetFeatures | AdminOpcode::GetFeatures => self.number_of_queues(sqe),
            AdminOpcode::CreateIoCq => self.create_cq(sqe).into(),
            AdminOpcode::CreateIoSq => self.create_sq(sqe).into(),
            AdminOpcode::DeleteIoSq => self.delete_sq(sqe).into(),
            AdminOpcode::DeleteIoCq => self.delete_cq(sqe).into(),
            AdminOpcode::Abort => self.abort(sqe),
            _ => Outcome::status(Status::INVALID_OPCODE),
        }
    }

    /// The namespace index of `nsid`, if it names an existing namespace.
    fn ns_index(&self, nsid: u32) -> Option<usize> {
        (nsid as usize)
            .checked_sub(1)
            .filter(|&i| i < self.namespaces.len())
    }

    /// Identify (NVMe Base 2.0 §5.17; NVMe ZNS 1.1 §4.1.5 for CSI 02h).
    fn identify(&mut self, sqe: &Sqe) -> Result<(), Status> {
        let cns = sqe.cdw10.get() as u8;
        let csi = (sqe.cdw11.get() >> 24) as u8;
        let nsid = sqe.nsid();
        let page = match (cns, csi) {
            (0x00, _) => self.identify_namespace(nsid)?,
            (0x01, _) => self.identify_controller().as_bytes().to_vec(),
            (0x02, _) => {
                let active: Vec<u32> = (1..=self.namespaces.len() as u32).collect();
                active_namespace_list(&active, nsid)
            }
            (0x03, _) => {
                let i = self.ns_index(nsid).ok_or(Status::INVALID_NAMESPACE)?;
                let csi = self.ns_csi(i);
                NsDescriptor::encode_list(&[NsDescriptor::Csi(csi)])
                    .map_err(|_| Status::INTERNAL_ERROR)?
            }
            (0x05, CSI_NVM) => {
                self.ns_index(nsid).ok_or(Status::INVALID_NAMESPACE)?;
                vec![0; IDENTIFY_DATA_SIZE]
            }
            (0x05, CSI_ZONED) => self.identify_zns_namespace(nsid)?,
            (0x06, CSI_NVM) => vec![0; IDENTIFY_DATA_SIZE],
            (0x06, CSI_ZONED) => {
                let mut id = IdentifyZnsController::zeroed();
                id.zasl = self.cfg.zasl;
                id.as_bytes().to_vec()
            }
            (0x08, _) => {
                // I/O Command Set Independent Identify Namespace (NVMe Base 2.0 §5.17.2.7):
                // byte 14 NSTAT bit 0 = namespace ready.
                self.ns_index(nsid).ok_or(Status::INVALID_NAMESPACE)?;
                let mut page = vec![0; IDENTIFY_DATA_SIZE];
                page[14] = 1;
                page
            }
            (0x1c, _) => io_command_set_vectors(&[IOCS_NVM | IOCS_ZONED]),
            _ => return Err(Status::INVALID_FIELD),
        };
        self.deliver_data(sqe, &page, false)
    }

    fn ns_csi(&self, i: usize) -> u8 {
        if self.namespaces[i].zones.is_some() {
            CSI_ZONED
        } else {
            CSI_NVM
        }
    }

    fn identify_namespace(&self, nsid: u32) -> Result<Vec<u8>, Status> {
        let i = self.ns_index(nsid).ok_or(Status::INVALID_NAMESPACE)?;
        let cfg = &self.namespaces[i].cfg;
        let mut id = IdentifyNamespace::from_bytes(&[0; IDENTIFY_DATA_SIZE])
            .ok_or(Status::INTERNAL_ERROR)?;
        id.nsze = cfg.blocks.into();
        id.ncap = cfg.blocks.into();
        id.nuse = cfg.blocks.into();
        id.nlbaf = 0;
        id.flbas = 0;
        id.lbaf[0] = LbaFormat::for_block_size(cfg.block_size);
        Ok(id.as_bytes().to_vec())
    }

    fn identify_zns_namespace(&self, nsid: u32) -> Result<Vec<u8>, Status> {
        let i = self.ns_index(nsid).ok_or(Status::INVALID_NAMESPACE)?;
        let zones = self.namespaces[i]
            .zones
            .as_ref()
            .ok_or(Status::INVALID_FIELD)?;
        let zeroes_based = |n: u32| n.checked_sub(1).unwrap_or(u32::MAX);
        let mut id = IdentifyZnsNamespace::zeroed();
        id.mar = zeroes_based(zones.cfg.max_active).into();
        id.mor = zeroes_based(zones.cfg.max_open).into();
        id.lbafe[0].zsze = zones.cfg.zone_size.into();
        Ok(id.as_bytes().to_vec())
    }

    fn identify_controller(&self) -> IdentifyController {
        let mut id = IdentifyController::zeroed();
        id.vid = MODEL_VID.into();
        id.ssvid = MODEL_VID.into();
        id.set_serial_number(MODEL_SERIAL);
        id.set_model_number(MODEL_MODEL);
        id.set_firmware_revision(MODEL_FIRMWARE);
        id.mdts = self.cfg.mdts;
        id.cntlid = MODEL_CNTLID.into();
        id.ver = Version::V2_0.0.into();
        id.cntrltype = crate::identify::CNTRLTYPE_IO;
        id.sqes = 0x66;
        id.cqes = 0x44;
        id.nn = (self.namespaces.len() as u32).into();
        id.oncs = (ctrl_bits::ONCS_DSM | ctrl_bits::ONCS_WRITE_ZEROES).into();
        id.vwc = 1;
        // SGLS bits 1:0 = 01b: SGLs supported, no alignment requirement.
        id.sgls = u32::from(self.cfg.sgls).into();
        id
    }

    /// Set/Get Features, Number of Queues only (NVMe Base 2.0 §5.27.1.5).
    fn number_of_queues(&mut self, sqe: &Sqe) -> Outcome {
        if sqe.cdw10.get() as u8 != FID_NUMBER_OF_QUEUES {
            return Outcome::status(Status::INVALID_FIELD);
        }
        if sqe.opcode == u8::from(AdminOpcode::SetFeatures)
            && NumberOfQueues::from_cdw11(sqe.cdw11.get()).is_none()
        {
            return Outcome::status(Status::INVALID_FIELD);
        }
        let n = u32::from(self.cfg.max_io_queues);
        Outcome::ok(NumberOfQueues { nsq: n, ncq: n }.to_dword(), 0)
    }

    /// Queue ID and entry count (QSIZE is 0's based) of a create command, with the checks
    /// common to both queues (NVMe Base 2.0 §5.4, §5.5).
    fn create_checks(&self, sqe: &Sqe) -> Result<(u16, u32, u64), Status> {
        let cc = self.regs.cc();
        if cc.iosqes() != 6 || cc.iocqes() != 4 {
            return Err(Status::INVALID_FIELD);
        }
        let qid = sqe.cdw10.get() as u16;
        let entries = (sqe.cdw10.get() >> 16) + 1;
        if sqe.cdw11.get() & 1 == 0 {
            // PC = 0: CAP.CQR requires physically contiguous queues.
            return Err(Status::INVALID_FIELD);
        }
        if qid == 0 || qid > self.cfg.max_io_queues {
            return Err(Status::INVALID_QUEUE_IDENTIFIER);
        }
        if entries < 2 || entries > u32::from(self.cfg.mqes) + 1 {
            return Err(Status::INVALID_QUEUE_SIZE);
        }
        let base = u64::from_le_bytes(sqe.dptr[0..8].try_into().unwrap_or([0; 8]));
        if !base.is_multiple_of(super::dma_walk::PAGE) {
            return Err(Status::PRP_OFFSET_INVALID);
        }
        Ok((qid, entries, base))
    }

    fn create_cq(&mut self, sqe: &Sqe) -> Result<(), Status> {
        let (qid, entries, base) = self.create_checks(sqe)?;
        if self.queues.cqs.contains_key(&qid) {
            return Err(Status::INVALID_QUEUE_IDENTIFIER);
        }
        self.queues.cqs.insert(qid, Cq::new(base, entries));
        Ok(())
    }

    fn create_sq(&mut self, sqe: &Sqe) -> Result<(), Status> {
        let (qid, entries, base) = self.create_checks(sqe)?;
        if self.queues.sqs.contains_key(&qid) {
            return Err(Status::INVALID_QUEUE_IDENTIFIER);
        }
        let cqid = (sqe.cdw11.get() >> 16) as u16;
        if cqid == 0 || !self.queues.cqs.contains_key(&cqid) {
            return Err(Status::COMPLETION_QUEUE_INVALID);
        }
        self.queues.sqs.insert(
            qid,
            Sq {
                base,
                entries,
                head: 0,
                tail: 0,
                cqid,
            },
        );
        Ok(())
    }

    /// Delete I/O SQ: held commands of the queue complete with Command Aborted due to SQ
    /// Deletion first (NVMe Base 2.0 §5.7).
    fn delete_sq(&mut self, sqe: &Sqe) -> Result<(), Status> {
        let qid = sqe.cdw10.get() as u16;
        if qid == 0 || !self.queues.sqs.contains_key(&qid) {
            return Err(Status::INVALID_QUEUE_IDENTIFIER);
        }
        let held: Vec<_> = self
            .held
            .iter()
            .filter(|h| h.sqid == qid)
            .copied()
            .collect();
        self.held.retain(|h| h.sqid != qid);
        for h in held {
            self.complete(qid, h.cid, Status::ABORTED_SQ_DELETION, 0, 0);
        }
        self.queues.sqs.remove(&qid);
        Ok(())
    }

    /// Delete I/O CQ: refused while an SQ still uses it (NVMe Base 2.0 §5.6).
    fn delete_cq(&mut self, sqe: &Sqe) -> Result<(), Status> {
        let qid = sqe.cdw10.get() as u16;
        if qid == 0 || !self.queues.cqs.contains_key(&qid) {
            return Err(Status::INVALID_QUEUE_IDENTIFIER);
        }
        if self.queues.sqs.values().any(|sq| sq.cqid == qid) {
            return Err(Status::INVALID_QUEUE_DELETION);
        }
        self.queues.cqs.remove(&qid);
        Ok(())
    }

    /// Abort (NVMe Base 2.0 §5.1): a held command completes with Command Abort Requested and
    /// Dword 0 bit 0 is 0; otherwise bit 0 is 1 (not aborted).
    fn abort(&mut self, sqe: &Sqe) -> Outcome {
        let sqid = sqe.cdw10.get() as u16;
        let cid = (sqe.cdw10.get() >> 16) as u16;
        if self.has(Fault::AbortIgnored) {
            return Outcome::ok(1, 0);
        }
        let Some(i) = self
            .held
            .iter()
            .position(|h| h.sqid == sqid && h.cid == cid)
        else {
            return Outcome::ok(1, 0);
        };
        self.held.remove(i);
        self.complete(sqid, cid, Status::ABORT_REQUESTED, 0, 0);
        Outcome::ok(0, 0)
    }
}
