//! Typed decoding of submission queue entries.
//!
//! [`Command::decode`] turns an [`Sqe`] into an [`AdminCommand`], [`IoCommand`] or
//! [`FabricsCommand`] with the command's fields pulled out of the command dwords. Decoding
//! never panics. Opcodes this crate does not decode become `Unknown(opcode)`; the caller
//! answers those with Invalid Command Opcode. A field whose value the specification makes
//! invalid whatever the controller's state (a reserved encoding) yields a [`DecodeError`],
//! which the target answers with Invalid Field in Command.
//!
//! The data that travels with some commands has its own types here: [`ConnectData`]
//! (NVMe-oF 1.1 §3.3) and [`DsmRange`] (NVM Command Set 1.0 §3.2.3).

mod connect;
mod dsm;
mod encode;
mod nqn;

pub use connect::{ConnectData, ConnectDataError, CNTLID_ANY_STATIC, CNTLID_DYNAMIC};
pub use dsm::{DsmError, DsmRange};
pub use encode::{fabrics_sqe, lba_sqe, FLAGS_PSDT_SGL};
pub use nqn::{read_nqn, write_nqn, NqnError, NQN_FIELD_LEN, NQN_MAX_LEN};

use crate::features::{FeatureId, Select};
use crate::identify::{Cns, Csi};
use crate::log_page::LogPageId;
use crate::opcode::{AdminOpcode, FabricsType, IoOpcode};
use crate::sqe::{Sqe, FABRICS_OPCODE};
use crate::status::Status;

/// A field holds a value the specification reserves or forbids in every context.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("invalid value {value:#x} in field {field}")]
    InvalidField { field: &'static str, value: u64 },
}

impl DecodeError {
    /// The completion status the specification asks for.
    pub fn status(&self) -> Status {
        match self {
            DecodeError::InvalidField { .. } => Status::INVALID_FIELD.with_dnr(),
        }
    }
}

fn bits(value: u32, low: u32, width: u32) -> u32 {
    (value >> low) & ((1u32 << width) - 1)
}

fn bit(value: u32, n: u32) -> bool {
    value & (1 << n) != 0
}

/// Any decoded command.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Command {
    Admin(AdminCommand),
    Io(IoCommand),
    Fabrics(FabricsCommand),
}

impl Command {
    /// Decode a command that arrived on the admin queue (`admin_queue`) or an I/O queue.
    /// Fabrics commands (opcode 7Fh) are recognised on either queue (NVMe-oF 1.1 §6.1).
    pub fn decode(sqe: &Sqe, admin_queue: bool) -> Result<Command, DecodeError> {
        if sqe.is_fabrics() {
            FabricsCommand::decode(sqe).map(Command::Fabrics)
        } else if admin_queue {
            AdminCommand::decode(sqe).map(Command::Admin)
        } else {
            IoCommand::decode(sqe).map(Command::Io)
        }
    }
}

// ---------------------------------------------------------------------------------------
// Admin commands
// ---------------------------------------------------------------------------------------

/// Identify (NVMe Base 2.0 §5.17).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Identify {
    pub nsid: u32,
    /// CDW10 bits 7:0.
    pub cns: Cns,
    /// Controller identifier, CDW10 bits 31:16.
    pub cntid: u16,
    /// CNS specific identifier, CDW11 bits 15:0.
    pub cns_specific_id: u16,
    /// Command set identifier, CDW11 bits 31:24.
    pub csi: Csi,
    /// UUID index, CDW14 bits 6:0.
    pub uuid_index: u8,
}

/// Get Log Page (NVMe Base 2.0 §5.16).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GetLogPage {
    pub nsid: u32,
    /// Log page identifier, CDW10 bits 7:0.
    pub lid: LogPageId,
    /// Log specific parameter, CDW10 bits 14:8.
    pub lsp: u8,
    /// Retain asynchronous event, CDW10 bit 15.
    pub rae: bool,
    /// Number of dwords to return: NUMDU:NUMDL (CDW11 15:0, CDW10 31:16) is 0's based; this
    /// is the count (1 ..= 2^32).
    pub numd: u64,
    /// Log specific identifier, CDW11 bits 31:16.
    pub lsi: u16,
    /// Log page offset, CDW13:CDW12: bytes when `ot` is clear, an index when set.
    pub lpo: u64,
    /// UUID index, CDW14 bits 6:0.
    pub uuid_index: u8,
    /// Offset type, CDW14 bit 23.
    pub ot: bool,
    /// Command set identifier, CDW14 bits 31:24.
    pub csi: Csi,
}

impl GetLogPage {
    /// Number of bytes the host asked for.
    pub fn len_bytes(&self) -> u64 {
        self.numd * 4
    }
}

/// Abort (NVMe Base 2.0 §5.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Abort {
    /// Submission queue of the command to abort, CDW10 bits 15:0.
    pub sqid: u16,
    /// Command identifier to abort, CDW10 bits 31:16.
    pub cid: u16,
}

/// Get Features (NVMe Base 2.0 §5.14).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GetFeatures {
    pub nsid: u32,
    /// Feature identifier, CDW10 bits 7:0.
    pub fid: FeatureId,
    /// Select, CDW10 bits 10:8.
    pub sel: Select,
    /// Feature specific dwords.
    pub cdw11: u32,
    pub cdw12: u32,
    pub cdw13: u32,
    pub cdw15: u32,
    /// UUID index, CDW14 bits 6:0.
    pub uuid_index: u8,
}

/// Set Features (NVMe Base 2.0 §5.27).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SetFeatures {
    pub nsid: u32,
    /// Feature identifier, CDW10 bits 7:0.
    pub fid: FeatureId,
    /// Save, CDW10 bit 31.
    pub sv: bool,
    /// Feature specific dwords.
    pub cdw11: u32,
    pub cdw12: u32,
    pub cdw13: u32,
    pub cdw15: u32,
    /// UUID index, CDW14 bits 6:0.
    pub uuid_index: u8,
}

/// A decoded admin command.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AdminCommand {
    GetLogPage(GetLogPage),
    Identify(Identify),
    Abort(Abort),
    SetFeatures(SetFeatures),
    GetFeatures(GetFeatures),
    /// Asynchronous Event Request (NVMe Base 2.0 §5.2): no fields.
    AsyncEventRequest,
    /// Keep Alive (NVMe Base 2.0 §5.18): no fields.
    KeepAlive,
    /// An opcode this crate does not decode (Fabrics commands are decoded by
    /// [`FabricsCommand::decode`], never here).
    Unknown(u8),
}

impl AdminCommand {
    pub fn decode(sqe: &Sqe) -> Result<AdminCommand, DecodeError> {
        let cdw10 = sqe.cdw10.get();
        let cdw11 = sqe.cdw11.get();
        let cdw14 = sqe.cdw14.get();
        let nsid = sqe.nsid();
        let uuid_index = bits(cdw14, 0, 7) as u8;
        Ok(match AdminOpcode::from_u8(sqe.opcode) {
            AdminOpcode::Identify => AdminCommand::Identify(Identify {
                nsid,
                cns: Cns::from_u8(bits(cdw10, 0, 8) as u8),
                cntid: bits(cdw10, 16, 16) as u16,
                cns_specific_id: bits(cdw11, 0, 16) as u16,
                csi: Csi::from_u8(bits(cdw11, 24, 8) as u8),
                uuid_index,
            }),
            AdminOpcode::GetLogPage => {
                let numdl = bits(cdw10, 16, 16);
                let numdu = bits(cdw11, 0, 16);
                let numd = ((u64::from(numdu) << 16) | u64::from(numdl)) + 1;
                let lpo = u64::from(sqe.cdw12.get()) | (u64::from(sqe.cdw13.get()) << 32);
                let ot = bit(cdw14, 23);
                // NVMe Base 2.0 §5.16 (CDW12 LPOL): a byte offset (OT cleared) shall be dword
                // aligned, otherwise the command fails with Invalid Field in Command.
                if !ot && lpo % 4 != 0 {
                    return Err(DecodeError::InvalidField {
                        field: "LPO",
                        value: lpo,
                    });
                }
                AdminCommand::GetLogPage(GetLogPage {
                    nsid,
                    lid: LogPageId::from_u8(bits(cdw10, 0, 8) as u8),
                    lsp: bits(cdw10, 8, 7) as u8,
                    rae: bit(cdw10, 15),
                    numd,
                    lsi: bits(cdw11, 16, 16) as u16,
                    lpo,
                    uuid_index,
                    ot,
                    csi: Csi::from_u8(bits(cdw14, 24, 8) as u8),
                })
            }
            AdminOpcode::Abort => AdminCommand::Abort(Abort {
                sqid: bits(cdw10, 0, 16) as u16,
                cid: bits(cdw10, 16, 16) as u16,
            }),
            AdminOpcode::GetFeatures => {
                let raw_sel = bits(cdw10, 8, 3) as u8;
                // NVMe Base 2.0 §5.14 (CDW10 SEL): values 100b..111b are reserved.
                let sel = Select::from_code(raw_sel).ok_or(DecodeError::InvalidField {
                    field: "SEL",
                    value: u64::from(raw_sel),
                })?;
                AdminCommand::GetFeatures(GetFeatures {
                    nsid,
                    fid: FeatureId::from_u8(bits(cdw10, 0, 8) as u8),
                    sel,
                    cdw11,
                    cdw12: sqe.cdw12.get(),
                    cdw13: sqe.cdw13.get(),
                    cdw15: sqe.cdw15.get(),
                    uuid_index,
                })
            }
            AdminOpcode::SetFeatures => AdminCommand::SetFeatures(SetFeatures {
                nsid,
                fid: FeatureId::from_u8(bits(cdw10, 0, 8) as u8),
                sv: bit(cdw10, 31),
                cdw11,
                cdw12: sqe.cdw12.get(),
                cdw13: sqe.cdw13.get(),
                cdw15: sqe.cdw15.get(),
                uuid_index,
            }),
            AdminOpcode::AsyncEventRequest => AdminCommand::AsyncEventRequest,
            AdminOpcode::KeepAlive => AdminCommand::KeepAlive,
            _ => AdminCommand::Unknown(sqe.opcode),
        })
    }
}

// ---------------------------------------------------------------------------------------
// NVM I/O commands
// ---------------------------------------------------------------------------------------

/// Read, Write and Compare (NVM Command Set 1.0 §3.2.4, §3.2.6, §3.2.1): they share the
/// layout of CDW10..CDW15.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReadWrite {
    pub nsid: u32,
    /// Starting LBA, CDW11:CDW10.
    pub slba: u64,
    /// Number of logical blocks (CDW12 bits 15:0 are 0's based; this is 1 ..= 65536).
    pub nlb: u32,
    /// Directive type, CDW12 bits 23:20 (Write only).
    pub dtype: u8,
    /// Storage tag check, CDW12 bit 24.
    pub stc: bool,
    /// Protection information field, CDW12 bits 29:26.
    pub prinfo: u8,
    /// Force unit access, CDW12 bit 30.
    pub fua: bool,
    /// Limited retry, CDW12 bit 31.
    pub lr: bool,
    /// Dataset management hints, CDW13 bits 7:0 (not Compare).
    pub dsm: u8,
    /// Directive specific, CDW13 bits 31:16 (Write only).
    pub dspec: u16,
    /// Expected initial logical block reference tag, CDW14.
    pub eilbrt: u32,
    /// Expected logical block application tag, CDW15 bits 15:0.
    pub elbat: u16,
    /// Expected logical block application tag mask, CDW15 bits 31:16.
    pub elbatm: u16,
}

impl ReadWrite {
    /// One past the last LBA, or `None` when it overflows 64 bits.
    pub fn end_lba(&self) -> Option<u64> {
        self.slba.checked_add(u64::from(self.nlb))
    }
}

/// Write Zeroes (NVM Command Set 1.0 §3.2.8).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WriteZeroes {
    pub nsid: u32,
    pub slba: u64,
    /// Number of logical blocks (1 ..= 65536).
    pub nlb: u32,
    /// Storage tag check, CDW12 bit 24.
    pub stc: bool,
    /// Deallocate, CDW12 bit 25.
    pub deac: bool,
    pub prinfo: u8,
    pub fua: bool,
    pub lr: bool,
}

impl WriteZeroes {
    /// One past the last LBA, or `None` when it overflows 64 bits.
    pub fn end_lba(&self) -> Option<u64> {
        self.slba.checked_add(u64::from(self.nlb))
    }
}

/// Dataset Management (NVM Command Set 1.0 §3.2.3).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DatasetManagement {
    pub nsid: u32,
    /// Number of ranges (CDW10 bits 7:0 are 0's based; this is 1 ..= 256).
    pub nr: u16,
    /// Integral dataset for read, CDW11 bit 0.
    pub idr: bool,
    /// Integral dataset for write, CDW11 bit 1.
    pub idw: bool,
    /// Deallocate, CDW11 bit 2.
    pub ad: bool,
}

impl DatasetManagement {
    /// Bytes of range descriptors the command carries.
    pub fn data_len(&self) -> usize {
        usize::from(self.nr) * DsmRange::SIZE
    }
}

/// Zone Management Send (NVMe ZNS 1.1 §4.4.3, Figures 45-47).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ZoneSend {
    pub nsid: u32,
    /// Starting LBA of the zone, CDW11:CDW10 (ignored with Select All).
    pub slba: u64,
    /// Zone Send Action, CDW13 bits 7:0.
    pub action: crate::zns::ZoneAction,
    /// Select All, CDW13 bit 8.
    pub select_all: bool,
    /// Zone Send Action Specific Option, CDW13 bit 9 (ZRWA only).
    pub zsaso: bool,
}

/// Zone Management Receive (NVMe ZNS 1.1 §4.4.4, Figures 48-49).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ZoneReceive {
    pub nsid: u32,
    /// Starting LBA, CDW11:CDW10.
    pub slba: u64,
    /// Number of dwords of data, CDW12 (0's based on the wire; this is the count).
    pub numd: u64,
    /// Zone Receive Action, CDW13 bits 7:0 (00h Report Zones, 01h Extended Report Zones).
    pub action: u8,
    /// Zone Receive Action Specific Field, CDW13 bits 15:8 (which zones are reported).
    pub option: crate::zns::ReportOption,
    /// Partial Report, CDW13 bit 16.
    pub partial: bool,
}

impl ZoneReceive {
    /// Bytes of data the host's buffer holds.
    pub fn len_bytes(&self) -> u64 {
        self.numd * 4
    }
}

/// A decoded NVM or Zoned Namespace command set I/O command.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IoCommand {
    /// Flush (NVMe Base 2.0 §7.1): NSID FFFFFFFFh means every namespace.
    Flush {
        nsid: u32,
    },
    Write(ReadWrite),
    Read(ReadWrite),
    Compare(ReadWrite),
    WriteZeroes(WriteZeroes),
    DatasetManagement(DatasetManagement),
    ZoneManagementSend(ZoneSend),
    ZoneManagementReceive(ZoneReceive),
    /// Zone Append (NVMe ZNS 1.1 §4.3): the fields of a Write, `slba` being the ZSLBA; the
    /// LBA written comes back in CQE DW1:DW0.
    ZoneAppend(ReadWrite),
    /// An opcode this crate does not decode.
    Unknown(u8),
}

fn decode_rw(sqe: &Sqe) -> ReadWrite {
    let cdw12 = sqe.cdw12.get();
    let cdw13 = sqe.cdw13.get();
    let cdw15 = sqe.cdw15.get();
    ReadWrite {
        nsid: sqe.nsid(),
        slba: sqe.slba(),
        nlb: bits(cdw12, 0, 16) + 1,
        dtype: bits(cdw12, 20, 4) as u8,
        stc: bit(cdw12, 24),
        prinfo: bits(cdw12, 26, 4) as u8,
        fua: bit(cdw12, 30),
        lr: bit(cdw12, 31),
        dsm: bits(cdw13, 0, 8) as u8,
        dspec: bits(cdw13, 16, 16) as u16,
        eilbrt: sqe.cdw14.get(),
        elbat: bits(cdw15, 0, 16) as u16,
        elbatm: bits(cdw15, 16, 16) as u16,
    }
}

impl IoCommand {
    pub fn decode(sqe: &Sqe) -> Result<IoCommand, DecodeError> {
        let nsid = sqe.nsid();
        Ok(match IoOpcode::from_u8(sqe.opcode) {
            IoOpcode::Flush => IoCommand::Flush { nsid },
            IoOpcode::Write => IoCommand::Write(decode_rw(sqe)),
            IoOpcode::Read => IoCommand::Read(decode_rw(sqe)),
            IoOpcode::Compare => IoCommand::Compare(decode_rw(sqe)),
            IoOpcode::WriteZeroes => {
                let cdw12 = sqe.cdw12.get();
                IoCommand::WriteZeroes(WriteZeroes {
                    nsid,
                    slba: sqe.slba(),
                    nlb: bits(cdw12, 0, 16) + 1,
                    stc: bit(cdw12, 24),
                    deac: bit(cdw12, 25),
                    prinfo: bits(cdw12, 26, 4) as u8,
                    fua: bit(cdw12, 30),
                    lr: bit(cdw12, 31),
                })
            }
            IoOpcode::DatasetManagement => {
                let cdw11 = sqe.cdw11.get();
                IoCommand::DatasetManagement(DatasetManagement {
                    nsid,
                    nr: bits(sqe.cdw10.get(), 0, 8) as u16 + 1,
                    idr: bit(cdw11, 0),
                    idw: bit(cdw11, 1),
                    ad: bit(cdw11, 2),
                })
            }
            IoOpcode::ZoneManagementSend => {
                let cdw13 = sqe.cdw13.get();
                IoCommand::ZoneManagementSend(ZoneSend {
                    nsid,
                    slba: sqe.slba(),
                    action: crate::zns::ZoneAction::from_u8(bits(cdw13, 0, 8) as u8),
                    select_all: bit(cdw13, 8),
                    zsaso: bit(cdw13, 9),
                })
            }
            IoOpcode::ZoneManagementReceive => {
                let cdw13 = sqe.cdw13.get();
                IoCommand::ZoneManagementReceive(ZoneReceive {
                    nsid,
                    slba: sqe.slba(),
                    numd: u64::from(sqe.cdw12.get()) + 1,
                    action: bits(cdw13, 0, 8) as u8,
                    option: crate::zns::ReportOption::from_u8(bits(cdw13, 8, 8) as u8),
                    partial: bit(cdw13, 16),
                })
            }
            IoOpcode::ZoneAppend => IoCommand::ZoneAppend(decode_rw(sqe)),
            _ => IoCommand::Unknown(sqe.opcode),
        })
    }
}

// ---------------------------------------------------------------------------------------
// Fabrics commands
// ---------------------------------------------------------------------------------------

/// CATTR bit 2: the host disables SQ flow control (NVMe-oF 1.1 §3.3).
pub const CATTR_DISABLE_SQ_FLOW_CONTROL: u8 = 1 << 2;

/// Connect (NVMe-oF 1.1 §3.3). Its data is a [`ConnectData`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Connect {
    /// Record format, bytes 41:40; only 0 is defined (otherwise Connect Incompatible Format).
    pub recfmt: u16,
    /// Queue ID, bytes 43:42: 0 is the admin queue.
    pub qid: u16,
    /// Submission queue size, bytes 45:44, 0's based as on the wire; see [`Connect::sq_entries`].
    pub sqsize: u16,
    /// Connect attributes, byte 46.
    pub cattr: u8,
    /// Keep alive timeout in milliseconds, bytes 51:48 (admin queue only; 0 disables).
    pub kato: u32,
}

impl Connect {
    /// Submission queue size in entries (SQSIZE + 1).
    pub fn sq_entries(&self) -> u32 {
        u32::from(self.sqsize) + 1
    }

    /// CATTR bit 2: SQ flow control disabled (NVMe-oF 1.1 §3.3).
    pub fn sq_flow_control_disabled(&self) -> bool {
        self.cattr & CATTR_DISABLE_SQ_FLOW_CONTROL != 0
    }

    /// CATTR bits 1:0: priority class of an I/O queue (weighted round robin arbitration).
    pub fn priority_class(&self) -> u8 {
        self.cattr & 0b11
    }
}

/// Size of a property access, the ATTRIB field bits 2:0 (NVMe-oF 1.1 §3.4, §3.5).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PropertySize {
    Four,
    Eight,
}

impl PropertySize {
    /// ATTRIB bits 2:0: 000b is 4 bytes, 001b is 8 bytes, the rest are reserved.
    pub fn from_attrib(attrib: u8) -> Option<PropertySize> {
        match attrib & 0b111 {
            0 => Some(PropertySize::Four),
            1 => Some(PropertySize::Eight),
            _ => None,
        }
    }

    pub fn to_attrib(self) -> u8 {
        match self {
            PropertySize::Four => 0,
            PropertySize::Eight => 1,
        }
    }

    pub fn bytes(self) -> u32 {
        match self {
            PropertySize::Four => 4,
            PropertySize::Eight => 8,
        }
    }
}

/// Property Get (NVMe-oF 1.1 §3.4).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PropertyGet {
    /// ATTRIB, byte 40.
    pub size: PropertySize,
    /// Property offset, bytes 47:44.
    pub offset: u32,
}

/// Property Set (NVMe-oF 1.1 §3.5).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PropertySet {
    pub size: PropertySize,
    pub offset: u32,
    /// Value, bytes 55:48; for a 4-byte property only the low 32 bits (the rest are reserved
    /// and cleared here).
    pub value: u64,
}

/// Authentication Send (NVMe-oF 1.1 §3.2; NVMe Base 2.0 §6.2).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AuthenticationSend {
    /// SP specific 0, byte 41.
    pub spsp0: u8,
    /// SP specific 1, byte 42.
    pub spsp1: u8,
    /// Security protocol, byte 43.
    pub secp: u8,
    /// Transfer length in bytes, bytes 47:44.
    pub tl: u32,
}

/// Authentication Receive (NVMe-oF 1.1 §3.1; NVMe Base 2.0 §6.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AuthenticationReceive {
    pub spsp0: u8,
    pub spsp1: u8,
    pub secp: u8,
    /// Allocation length in bytes, bytes 47:44.
    pub al: u32,
}

/// A decoded Fabrics command (opcode 7Fh).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FabricsCommand {
    PropertySet(PropertySet),
    Connect(Connect),
    PropertyGet(PropertyGet),
    AuthenticationSend(AuthenticationSend),
    AuthenticationReceive(AuthenticationReceive),
    /// Disconnect (NVMe-oF 1.1 §3.6; NVMe Base 2.0 §6.4): record format, bytes 41:40.
    Disconnect {
        recfmt: u16,
    },
    /// A FCTYPE this crate does not decode, or an SQE whose opcode is not 7Fh (then the
    /// value is the opcode).
    Unknown(u8),
}

impl FabricsCommand {
    pub fn decode(sqe: &Sqe) -> Result<FabricsCommand, DecodeError> {
        if sqe.opcode != FABRICS_OPCODE {
            return Ok(FabricsCommand::Unknown(sqe.opcode));
        }
        let cdw10 = sqe.cdw10.get();
        let cdw11 = sqe.cdw11.get();
        let cdw12 = sqe.cdw12.get();
        let property_size = || {
            let attrib = bits(cdw10, 0, 8) as u8;
            PropertySize::from_attrib(attrib).ok_or(DecodeError::InvalidField {
                field: "ATTRIB",
                value: u64::from(attrib),
            })
        };
        Ok(match FabricsType::from_u8(sqe.fctype()) {
            FabricsType::Connect => FabricsCommand::Connect(Connect {
                recfmt: bits(cdw10, 0, 16) as u16,
                qid: bits(cdw10, 16, 16) as u16,
                sqsize: bits(cdw11, 0, 16) as u16,
                cattr: bits(cdw11, 16, 8) as u8,
                kato: cdw12,
            }),
            // NVMe-oF 1.1 §3.4, §3.5: ATTRIB values other than 0 and 1 are reserved.
            FabricsType::PropertyGet => FabricsCommand::PropertyGet(PropertyGet {
                size: property_size()?,
                offset: cdw11,
            }),
            FabricsType::PropertySet => {
                let size = property_size()?;
                let value = match size {
                    PropertySize::Four => u64::from(cdw12),
                    PropertySize::Eight => u64::from(cdw12) | (u64::from(sqe.cdw13.get()) << 32),
                };
                FabricsCommand::PropertySet(PropertySet {
                    size,
                    offset: cdw11,
                    value,
                })
            }
            FabricsType::AuthenticationSend => {
                FabricsCommand::AuthenticationSend(AuthenticationSend {
                    spsp0: bits(cdw10, 8, 8) as u8,
                    spsp1: bits(cdw10, 16, 8) as u8,
                    secp: bits(cdw10, 24, 8) as u8,
                    tl: cdw11,
                })
            }
            FabricsType::AuthenticationReceive => {
                FabricsCommand::AuthenticationReceive(AuthenticationReceive {
                    spsp0: bits(cdw10, 8, 8) as u8,
                    spsp1: bits(cdw10, 16, 8) as u8,
                    secp: bits(cdw10, 24, 8) as u8,
                    al: cdw11,
                })
            }
            FabricsType::Disconnect => FabricsCommand::Disconnect {
                recfmt: bits(cdw10, 0, 16) as u16,
            },
            FabricsType::Unknown(t) => FabricsCommand::Unknown(t),
        })
    }
}

#[cfg(test)]
mod tests;
