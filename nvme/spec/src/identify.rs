//! Identify data structures (NVMe Base 2.0 §5.17.2; layouts checked against Linux
//! `struct nvme_id_ctrl` / `struct nvme_id_ns` in include/linux/nvme.h).
//!
//! [`IdentifyController`] and [`IdentifyNamespace`] are 4096-byte `zerocopy` structs; the
//! lists (active namespace IDs, namespace identification descriptors, I/O command set
//! vectors) have encoders producing 4096-byte pages and parsers for the host side.

use zerocopy::little_endian::{U128, U16, U32, U64};
use zerocopy::{FromBytes, FromZeros, Immutable, IntoBytes, KnownLayout};

use crate::command::{read_nqn, write_nqn, NqnError, NQN_FIELD_LEN};
use crate::opcode::wire_enum;

/// Size of every Identify data structure.
pub const IDENTIFY_DATA_SIZE: usize = 4096;

wire_enum! {
    /// Controller or Namespace Structure, Identify CDW10 bits 7:0 (NVMe Base 2.0 §5.17.1,
    /// Figure "CNS Values"; Linux `NVME_ID_CNS_*`).
    pub enum Cns {
        Namespace = 0x00,
        Controller = 0x01,
        ActiveNamespaceList = 0x02,
        NamespaceIdDescriptors = 0x03,
        NvmSetList = 0x04,
        IoCommandSetNamespace = 0x05,
        IoCommandSetController = 0x06,
        IoCommandSetActiveNamespaceList = 0x07,
        IoCommandSetIndependentNamespace = 0x08,
        AllocatedNamespaceList = 0x10,
        AllocatedNamespace = 0x11,
        NamespaceControllerList = 0x12,
        ControllerList = 0x13,
        PrimaryControllerCapabilities = 0x14,
        SecondaryControllerList = 0x15,
        NamespaceGranularityList = 0x16,
        UuidList = 0x17,
        DomainList = 0x18,
        EnduranceGroupList = 0x19,
        IoCommandSetAllocatedNamespaceList = 0x1a,
        IoCommandSetAllocatedNamespace = 0x1b,
        IoCommandSet = 0x1c,
    }
}

wire_enum! {
    /// Command Set Identifier (NVMe Base 2.0 §5.17.1, Figure "Command Set Identifiers").
    pub enum Csi {
        Nvm = 0x00,
        KeyValue = 0x01,
        Zoned = 0x02,
    }
}

/// Identify Controller CNTRLTYPE values (byte 111).
pub const CNTRLTYPE_IO: u8 = 1;
pub const CNTRLTYPE_DISCOVERY: u8 = 2;
pub const CNTRLTYPE_ADMIN: u8 = 3;

/// Selected Identify Controller bit values (NVMe Base 2.0 §5.17.2.1).
pub mod ctrl_bits {
    /// CMIC bit 0: more than one port; bit 1: more than one controller; bit 3: ANA.
    pub const CMIC_MULTI_PORT: u8 = 1 << 0;
    pub const CMIC_MULTI_CTRL: u8 = 1 << 1;
    pub const CMIC_ANA: u8 = 1 << 3;
    /// OAES bit 8: Namespace Attribute Notices; bit 9: Firmware Activation; bit 11: ANA
    /// change; bit 31: Discovery Log Page Change (NVMe-oF).
    pub const OAES_NS_ATTRIBUTE: u32 = 1 << 8;
    pub const OAES_FW_ACTIVATION: u32 = 1 << 9;
    pub const OAES_ANA_CHANGE: u32 = 1 << 11;
    /// Zone Descriptor Changed Notices (NVMe ZNS 1.1 §4.1.5.1).
    pub const OAES_ZONE_DESCRIPTOR_CHANGED: u32 = 1 << 27;
    pub const OAES_DISCOVERY_LOG_CHANGE: u32 = 1 << 31;
    /// CTRATT bit 0: 128-bit host identifier.
    pub const CTRATT_HOST_ID_128: u32 = 1 << 0;
    /// CTRATT bit 6: Traffic Based Keep Alive (TBKAS): any admin or I/O command restarts the
    /// Keep Alive Timer (NVMe Base 2.0 §3.9).
    pub const CTRATT_TBKAS: u32 = 1 << 6;
    /// LPA bit 0: SMART per namespace; bit 1: Commands Supported and Effects; bit 2:
    /// extended Get Log Page (NUMDU, LPO); bit 3: telemetry.
    pub const LPA_SMART_PER_NS: u8 = 1 << 0;
    pub const LPA_CMD_EFFECTS: u8 = 1 << 1;
    pub const LPA_EXTENDED_DATA: u8 = 1 << 2;
    pub const LPA_TELEMETRY: u8 = 1 << 3;
    /// ONCS bits (optional NVM commands).
    pub const ONCS_COMPARE: u16 = 1 << 0;
    pub const ONCS_WRITE_UNCORRECTABLE: u16 = 1 << 1;
    pub const ONCS_DSM: u16 = 1 << 2;
    pub const ONCS_WRITE_ZEROES: u16 = 1 << 3;
    pub const ONCS_SAVE_SELECT: u16 = 1 << 4;
    pub const ONCS_RESERVATIONS: u16 = 1 << 5;
    pub const ONCS_TIMESTAMP: u16 = 1 << 6;
    pub const ONCS_VERIFY: u16 = 1 << 7;
    pub const ONCS_COPY: u16 = 1 << 8;
    /// FUSES bit 0: Compare and Write fused operation.
    pub const FUSES_COMPARE_AND_WRITE: u16 = 1 << 0;
    /// VWC bit 0: volatile write cache present; bits 2:1 = 11b: Flush with NSID FFFFFFFFh
    /// supported.
    pub const VWC_PRESENT: u8 = 1 << 0;
    pub const VWC_FLUSH_BROADCAST: u8 = 0b11 << 1;
    /// FRMW bit 0: slot 1 read only; bits 3:1 number of slots.
    pub const FRMW_SLOT1_RO: u8 = 1 << 0;
    /// SGLS bits 1:0 = 01b: SGLs supported, no alignment; bit 2: keyed SGL data block;
    /// bit 18: a data SGL may describe more than the command transfers (the excess is not
    /// used); bit 20: SGL address is an offset; bit 21: transport SGL data block.
    pub const SGLS_SUPPORTED: u32 = 0b01;
    pub const SGLS_KEYED: u32 = 1 << 2;
    pub const SGLS_EXCESS_LENGTH: u32 = 1 << 18;
    pub const SGLS_OFFSET: u32 = 1 << 20;
    pub const SGLS_TRANSPORT: u32 = 1 << 21;
    /// SQES/CQES: required (bits 3:0) and maximum (bits 7:4) entry sizes as powers of two;
    /// 64-byte SQEs and 16-byte CQEs.
    pub const SQES_64: u8 = 0x66;
    pub const CQES_16: u8 = 0x44;
    /// FCATT bit 0: dynamic controller model (0) or static (1) — NVMe-oF 1.1 §4.
    pub const FCATT_STATIC: u8 = 1 << 0;
}

/// Write `value` into an ASCII field (SN, MN, FR), left justified and padded with spaces
/// (NVMe Base 2.0 §1.5 "ASCII string"). Too long a value is truncated; a character outside
/// printable ASCII (20h..7Eh) is written as `?`.
pub fn write_ascii_padded(field: &mut [u8], value: &str) {
    field.fill(b' ');
    for (slot, ch) in field.iter_mut().zip(value.chars()) {
        *slot = if (' '..='~').contains(&ch) {
            ch as u8
        } else {
            b'?'
        };
    }
}

/// Read an ASCII field padded with spaces or NULs: stops at the first NUL, trims trailing
/// spaces, replaces anything that is not printable ASCII with `?`.
pub fn read_ascii_trimmed(field: &[u8]) -> String {
    let end = field.iter().position(|&b| b == 0).unwrap_or(field.len());
    let text: String = field[..end]
        .iter()
        .map(|&b| {
            if (0x20..0x7f).contains(&b) {
                b as char
            } else {
                '?'
            }
        })
        .collect();
    text.trim_end_matches(' ').to_owned()
}

// ---------------------------------------------------------------------------------------
// Identify Controller (CNS 01h)
// ---------------------------------------------------------------------------------------

/// Power State Descriptor, 32 bytes (NVMe Base 2.0 §5.17.2.1, Figure "Power State
/// Descriptor Data Structure"; Linux `struct nvme_id_power_state`).
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable,
)]
#[repr(C)]
pub struct PowerStateDescriptor {
    /// Maximum power, in centiwatts unless MXPS is set.
    pub mp: U16,
    pub rsvd2: u8,
    /// Bit 0 MXPS (max power scale), bit 1 NOPS (non-operational state).
    pub flags: u8,
    /// Entry latency, microseconds.
    pub enlat: U32,
    /// Exit latency, microseconds.
    pub exlat: U32,
    pub rrt: u8,
    pub rrl: u8,
    pub rwt: u8,
    pub rwl: u8,
    pub idlp: U16,
    /// Bits 7:6 idle power scale.
    pub ips: u8,
    pub rsvd19: u8,
    pub actp: U16,
    /// Bits 2:0 active power workload, bits 7:6 active power scale.
    pub apw_aps: u8,
    pub rsvd23: [u8; 9],
}
const _: () = assert!(core::mem::size_of::<PowerStateDescriptor>() == 32);

/// Identify Controller data structure, 4096 bytes (NVMe Base 2.0 §5.17.2.1; NVMe-oF 1.1
/// §4.1 for bytes 1792..2047).
#[derive(Clone, Copy, Debug, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable)]
#[repr(C)]
pub struct IdentifyController {
    /// PCI vendor ID.
    pub vid: U16,
    /// PCI subsystem vendor ID.
    pub ssvid: U16,
    /// Serial number, ASCII space padded.
    pub sn: [u8; 20],
    /// Model number, ASCII space padded.
    pub mn: [u8; 40],
    /// Firmware revision, ASCII space padded.
    pub fr: [u8; 8],
    /// Recommended arbitration burst.
    pub rab: u8,
    /// IEEE OUI, least significant byte first.
    pub ieee: [u8; 3],
    /// Controller multi-path I/O and namespace sharing capabilities.
    pub cmic: u8,
    /// Maximum data transfer size, a power of two in units of CAP.MPSMIN; 0 = no limit.
    pub mdts: u8,
    pub cntlid: U16,
    /// Version, same encoding as the VS property.
    pub ver: U32,
    pub rtd3r: U32,
    pub rtd3e: U32,
    /// Optional asynchronous events supported.
    pub oaes: U32,
    /// Controller attributes.
    pub ctratt: U32,
    pub rrls: U16,
    pub rsvd102: [u8; 9],
    /// Controller type: 1 I/O, 2 discovery, 3 administrative.
    pub cntrltype: u8,
    pub fguid: [u8; 16],
    pub crdt1: U16,
    pub crdt2: U16,
    pub crdt3: U16,
    pub rsvd134: [u8; 119],
    pub nvmsr: u8,
    pub vwci: u8,
    pub mec: u8,
    /// Optional admin command support.
    pub oacs: U16,
    /// Abort command limit, 0's based.
    pub acl: u8,
    /// Asynchronous event request limit, 0's based.
    pub aerl: u8,
    /// Firmware updates.
    pub frmw: u8,
    /// Log page attributes.
    pub lpa: u8,
    /// Error log page entries, 0's based.
    pub elpe: u8,
    /// Number of power states supported, 0's based.
    pub npss: u8,
    pub avscc: u8,
    pub apsta: u8,
    /// Warning composite temperature threshold, kelvin.
    pub wctemp: U16,
    /// Critical composite temperature threshold, kelvin.
    pub cctemp: U16,
    pub mtfa: U16,
    pub hmpre: U32,
    pub hmmin: U32,
    pub tnvmcap: U128,
    pub unvmcap: U128,
    pub rpmbs: U32,
    pub edstt: U16,
    pub dsto: u8,
    pub fwug: u8,
    /// Keep alive support: granularity in 100 ms units; 0 = not supported.
    pub kas: U16,
    pub hctma: U16,
    pub mntmt: U16,
    pub mxtmt: U16,
    pub sanicap: U32,
    pub hmminds: U32,
    pub hmmaxd: U16,
    pub nsetidmax: U16,
    pub endgidmax: U16,
    pub anatt: u8,
    pub anacap: u8,
    pub anagrpmax: U32,
    pub nanagrpid: U32,
    pub pels: U32,
    pub domainid: U16,
    pub rsvd358: [u8; 10],
    pub megcap: U128,
    pub rsvd384: [u8; 128],
    /// Submission queue entry size: bits 3:0 required, 7:4 maximum (powers of two).
    pub sqes: u8,
    /// Completion queue entry size: bits 3:0 required, 7:4 maximum (powers of two).
    pub cqes: u8,
    /// Maximum outstanding commands (NVMe-oF: per queue).
    pub maxcmd: U16,
    /// Number of namespaces (highest valid NSID).
    pub nn: U32,
    /// Optional NVM command support.
    pub oncs: U16,
    /// Fused operation support.
    pub fuses: U16,
    /// Format NVM attributes.
    pub fna: u8,
    /// Volatile write cache.
    pub vwc: u8,
    pub awun: U16,
    pub awupf: U16,
    pub icsvscc: u8,
    pub nwpc: u8,
    pub acwu: U16,
    pub ocfs: U16,
    /// SGL support.
    pub sgls: U32,
    /// Maximum number of allowed namespaces.
    pub mnan: U32,
    pub maxdna: U128,
    pub maxcna: U32,
    pub rsvd564: [u8; 204],
    /// NVM subsystem NQN, NUL terminated.
    pub subnqn: [u8; NQN_FIELD_LEN],
    pub rsvd1024: [u8; 768],
    /// I/O queue command capsule supported size, in 16-byte units (NVMe-oF 1.1 §4.1).
    pub ioccsz: U32,
    /// I/O queue response capsule supported size, in 16-byte units.
    pub iorcsz: U32,
    /// In-capsule data offset, in 16-byte units.
    pub icdoff: U16,
    /// Fabrics controller attributes.
    pub fcatt: u8,
    /// Maximum SGL data block descriptors.
    pub msdbd: u8,
    /// Optional fabric commands support.
    pub ofcs: U16,
    pub rsvd1806: [u8; 242],
    pub psd: [PowerStateDescriptor; 32],
    pub vs: [u8; 1024],
}
const _: () = assert!(core::mem::size_of::<IdentifyController>() == IDENTIFY_DATA_SIZE);

impl IdentifyController {
    /// An all-zero structure.
    pub fn zeroed() -> IdentifyController {
        IdentifyController::new_zeroed()
    }

    /// Parse the first 4096 bytes (host side).
    pub fn from_bytes(bytes: &[u8]) -> Option<IdentifyController> {
        IdentifyController::read_from_prefix(bytes)
            .ok()
            .map(|(c, _)| c)
    }

    pub fn set_serial_number(&mut self, sn: &str) {
        write_ascii_padded(&mut self.sn, sn);
    }

    pub fn set_model_number(&mut self, mn: &str) {
        write_ascii_padded(&mut self.mn, mn);
    }

    pub fn set_firmware_revision(&mut self, fr: &str) {
        write_ascii_padded(&mut self.fr, fr);
    }

    pub fn serial_number(&self) -> String {
        read_ascii_trimmed(&self.sn)
    }

    pub fn model_number(&self) -> String {
        read_ascii_trimmed(&self.mn)
    }

    pub fn firmware_revision(&self) -> String {
        read_ascii_trimmed(&self.fr)
    }

    pub fn set_subnqn(&mut self, nqn: &str) -> Result<(), NqnError> {
        write_nqn(&mut self.subnqn, nqn)
    }

    pub fn subnqn(&self) -> Result<&str, NqnError> {
        read_nqn(&self.subnqn)
    }
}

// ---------------------------------------------------------------------------------------
// Identify Namespace (CNS 00h)
// ---------------------------------------------------------------------------------------

/// LBA Format Data Structure, 4 bytes (NVM Command Set 1.0 §4.1.5.1).
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable,
)]
#[repr(C)]
pub struct LbaFormat {
    /// Metadata size in bytes.
    pub ms: U16,
    /// LBA data size as a power of two (9 = 512 bytes, 12 = 4096).
    pub lbads: u8,
    /// Relative performance, bits 1:0.
    pub rp: u8,
}
const _: () = assert!(core::mem::size_of::<LbaFormat>() == 4);

impl LbaFormat {
    /// A format for `block_size` bytes (a power of two) without metadata.
    pub fn for_block_size(block_size: u32) -> LbaFormat {
        LbaFormat {
            ms: 0.into(),
            lbads: block_size.checked_ilog2().unwrap_or(0) as u8,
            rp: 0,
        }
    }

    /// Data size in bytes, or `None` when LBADS is not a usable shift.
    pub fn block_size(&self) -> Option<u32> {
        1u32.checked_shl(u32::from(self.lbads))
    }
}

/// Identify Namespace data structure, 4096 bytes (NVM Command Set 1.0 §4.1.5.1, the NVM
/// command set form of NVMe Base 2.0 §5.17.2.1's CNS 00h).
#[derive(Clone, Copy, Debug, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable)]
#[repr(C)]
pub struct IdentifyNamespace {
    /// Namespace size in logical blocks.
    pub nsze: U64,
    /// Namespace capacity in logical blocks.
    pub ncap: U64,
    /// Namespace utilization in logical blocks.
    pub nuse: U64,
    /// Namespace features (bit 0 thin provisioning, bit 2 DEALLOC/UNWRITTEN errors,
    /// bit 3 NGUID/EUI64 never reused, bit 4 NPWG.. fields valid).
    pub nsfeat: u8,
    /// Number of LBA formats, 0's based.
    pub nlbaf: u8,
    /// Formatted LBA size: bits 3:0 low format index, bit 4 metadata at end of LBA,
    /// bits 6:5 high format index.
    pub flbas: u8,
    pub mc: u8,
    pub dpc: u8,
    pub dps: u8,
    /// Namespace multi-path I/O and sharing: bit 0 shared.
    pub nmic: u8,
    pub rescap: u8,
    pub fpi: u8,
    /// Deallocate logical block features: bits 2:0 read behaviour (001b reads zeroes),
    /// bit 3 Write Zeroes may deallocate.
    pub dlfeat: u8,
    pub nawun: U16,
    pub nawupf: U16,
    pub nacwu: U16,
    pub nabsn: U16,
    pub nabo: U16,
    pub nabspf: U16,
    pub noiob: U16,
    pub nvmcap: U128,
    pub npwg: U16,
    pub npwa: U16,
    pub npdg: U16,
    pub npda: U16,
    pub nows: U16,
    pub mssrl: U16,
    pub mcl: U32,
    pub msrc: u8,
    pub kpios: u8,
    pub nulbaf: u8,
    pub rsvd83: [u8; 9],
    pub anagrpid: U32,
    pub rsvd96: [u8; 3],
    pub nsattr: u8,
    pub nvmsetid: U16,
    pub endgid: U16,
    pub nguid: [u8; 16],
    pub eui64: [u8; 8],
    pub lbaf: [LbaFormat; 64],
    pub rsvd384: [u8; 3456],
    pub vs: [u8; 256],
}
const _: () = assert!(core::mem::size_of::<IdentifyNamespace>() == IDENTIFY_DATA_SIZE);

/// NSFEAT bit 0: thin provisioning.
pub const NSFEAT_THIN_PROVISIONING: u8 = 1 << 0;
/// NSFEAT bit 3: NGUID and EUI64 are never reused.
pub const NSFEAT_IDS_NOT_REUSED: u8 = 1 << 3;
/// NSFEAT bit 4: NPWG, NPWA, NPDG, NPDA and NOWS are valid.
pub const NSFEAT_OPTIMAL_IO: u8 = 1 << 4;
/// DLFEAT bits 2:0 = 001b: deallocated blocks read as zeroes.
pub const DLFEAT_READ_ZEROES: u8 = 0b001;
/// DLFEAT bit 3: Write Zeroes with DEAC deallocates.
pub const DLFEAT_WRITE_ZEROES_DEALLOCATES: u8 = 1 << 3;
/// NMIC bit 0: the namespace may be attached to more than one controller.
pub const NMIC_SHARED: u8 = 1 << 0;

impl IdentifyNamespace {
    pub fn zeroed() -> IdentifyNamespace {
        IdentifyNamespace::new_zeroed()
    }

    /// Parse the first 4096 bytes (host side).
    pub fn from_bytes(bytes: &[u8]) -> Option<IdentifyNamespace> {
        IdentifyNamespace::read_from_prefix(bytes)
            .ok()
            .map(|(n, _)| n)
    }

    /// Index of the LBA format in use (FLBAS bits 3:0, plus bits 6:5 as bits 5:4).
    pub fn lba_format_index(&self) -> usize {
        usize::from(self.flbas & 0xf) | (usize::from((self.flbas >> 5) & 0x3) << 4)
    }

    /// The LBA format in use.
    pub fn current_lba_format(&self) -> LbaFormat {
        // The index is at most 63, always inside the 64-entry array.
        self.lbaf
            .get(self.lba_format_index())
            .copied()
            .unwrap_or_default()
    }

    /// Block size in bytes of the LBA format in use.
    pub fn block_size(&self) -> Option<u32> {
        self.current_lba_format().block_size()
    }
}

// ---------------------------------------------------------------------------------------
// Active Namespace ID list (CNS 02h)
// ---------------------------------------------------------------------------------------

/// Entries in a namespace ID list.
pub const NSID_LIST_MAX: usize = 1024;

/// The Active Namespace ID list for Identify CNS 02h with `nsid` in the command: the active
/// NSIDs greater than `nsid`, ascending, at most 1024, zero filled to 4096 bytes (NVMe Base
/// 2.0 §5.17.2.2). NSIDs FFFFFFFEh and FFFFFFFFh in the command are invalid; the caller
/// rejects them before this.
pub fn active_namespace_list(active: &[u32], nsid: u32) -> Vec<u8> {
    let mut ids: Vec<u32> = active.iter().copied().filter(|&n| n > nsid).collect();
    ids.sort_unstable();
    ids.dedup();
    let mut page = vec![0u8; IDENTIFY_DATA_SIZE];
    for (slot, id) in page.chunks_exact_mut(4).zip(ids.iter().take(NSID_LIST_MAX)) {
        slot.copy_from_slice(&id.to_le_bytes());
    }
    page
}

/// Parse a namespace ID list (host side): the entries before the first zero.
pub fn parse_namespace_list(bytes: &[u8]) -> Vec<u32> {
    bytes
        .chunks_exact(4)
        .take(NSID_LIST_MAX)
        .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .take_while(|&n| n != 0)
        .collect()
}

// ---------------------------------------------------------------------------------------
// Namespace Identification Descriptor list (CNS 03h)
// ---------------------------------------------------------------------------------------

/// NIDT values (NVMe Base 2.0 §5.17.2.3, Figure "Namespace Identifier Type").
pub const NIDT_EUI64: u8 = 1;
pub const NIDT_NGUID: u8 = 2;
pub const NIDT_UUID: u8 = 3;
pub const NIDT_CSI: u8 = 4;

/// One Namespace Identification Descriptor (header NIDT, NIDL, 2 reserved bytes, then NID).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum NsDescriptor {
    Eui64([u8; 8]),
    Nguid([u8; 16]),
    Uuid([u8; 16]),
    Csi(u8),
    /// A type this crate does not know, kept as its type and length (the NID is dropped).
    Unknown {
        nidt: u8,
        nidl: u8,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DescriptorError {
    #[error("descriptor at byte {offset} runs past the end of the list")]
    Truncated { offset: usize },
    #[error("descriptor type {nidt} has length {nidl}, expected {expected}")]
    BadLength { nidt: u8, nidl: u8, expected: u8 },
    #[error("descriptors need {needed} bytes, more than 4096")]
    TooLarge { needed: usize },
}

impl NsDescriptor {
    pub fn nidt(&self) -> u8 {
        match self {
            NsDescriptor::Eui64(_) => NIDT_EUI64,
            NsDescriptor::Nguid(_) => NIDT_NGUID,
            NsDescriptor::Uuid(_) => NIDT_UUID,
            NsDescriptor::Csi(_) => NIDT_CSI,
            NsDescriptor::Unknown { nidt, .. } => *nidt,
        }
    }

    fn nid(&self) -> Vec<u8> {
        match self {
            NsDescriptor::Eui64(id) => id.to_vec(),
            NsDescriptor::Nguid(id) | NsDescriptor::Uuid(id) => id.to_vec(),
            NsDescriptor::Csi(csi) => vec![*csi],
            NsDescriptor::Unknown { nidl, .. } => vec![0; usize::from(*nidl)],
        }
    }

    /// Encode descriptors into the 4096-byte list, zero filled after the last one.
    pub fn encode_list(descriptors: &[NsDescriptor]) -> Result<Vec<u8>, DescriptorError> {
        let mut page = Vec::with_capacity(IDENTIFY_DATA_SIZE);
        for d in descriptors {
            let nid = d.nid();
            page.extend_from_slice(&[d.nidt(), nid.len() as u8, 0, 0]);
            page.extend_from_slice(&nid);
        }
        if page.len() > IDENTIFY_DATA_SIZE {
            return Err(DescriptorError::TooLarge { needed: page.len() });
        }
        page.resize(IDENTIFY_DATA_SIZE, 0);
        Ok(page)
    }

    /// Parse a descriptor list (host side); a descriptor with NIDT 0 or the end of `bytes`
    /// ends the list.
    pub fn parse_list(bytes: &[u8]) -> Result<Vec<NsDescriptor>, DescriptorError> {
        let mut out = Vec::new();
        let mut offset = 0usize;
        while let Some(&nidt) = bytes.get(offset) {
            if nidt == 0 {
                break;
            }
            let nidl = *bytes
                .get(offset + 1)
                .ok_or(DescriptorError::Truncated { offset })?;
            let start = offset + 4;
            let end = start + usize::from(nidl);
            let nid = bytes
                .get(start..end)
                .ok_or(DescriptorError::Truncated { offset })?;
            let expected = match nidt {
                NIDT_EUI64 => Some(8),
                NIDT_NGUID | NIDT_UUID => Some(16),
                NIDT_CSI => Some(1),
                _ => None,
            };
            if let Some(expected) = expected {
                if nidl != expected {
                    return Err(DescriptorError::BadLength {
                        nidt,
                        nidl,
                        expected,
                    });
                }
            }
            out.push(match nidt {
                NIDT_EUI64 => NsDescriptor::Eui64(nid.try_into().unwrap_or_default()),
                NIDT_NGUID => NsDescriptor::Nguid(nid.try_into().unwrap_or_default()),
                NIDT_UUID => NsDescriptor::Uuid(nid.try_into().unwrap_or_default()),
                NIDT_CSI => NsDescriptor::Csi(nid.first().copied().unwrap_or_default()),
                _ => NsDescriptor::Unknown { nidt, nidl },
            });
            offset = end;
        }
        Ok(out)
    }
}

// ---------------------------------------------------------------------------------------
// I/O Command Set data structure (CNS 1Ch)
// ---------------------------------------------------------------------------------------

/// I/O command set vector bit 0: NVM command set.
pub const IOCS_NVM: u64 = 1 << 0;
/// Bit 1: Key Value command set.
pub const IOCS_KEY_VALUE: u64 = 1 << 1;
/// Bit 2: Zoned Namespace command set.
pub const IOCS_ZONED: u64 = 1 << 2;
/// Number of vectors in the structure.
pub const IOCS_VECTORS: usize = 512;

/// The Identify I/O Command Set data structure (NVMe Base 2.0 §5.17.2.20): 512 64-bit
/// vectors, each a combination of command sets the controller can enable together. Extra
/// vectors beyond 512 are dropped.
pub fn io_command_set_vectors(vectors: &[u64]) -> Vec<u8> {
    let mut page = vec![0u8; IDENTIFY_DATA_SIZE];
    for (slot, v) in page
        .chunks_exact_mut(8)
        .zip(vectors.iter().take(IOCS_VECTORS))
    {
        slot.copy_from_slice(&v.to_le_bytes());
    }
    page
}

/// Parse the I/O Command Set data structure (host side): all 512 vectors (fewer if `bytes`
/// is short), zero vectors included since their index is what CC/Set Features select.
pub fn parse_io_command_set_vectors(bytes: &[u8]) -> Vec<u64> {
    bytes
        .chunks_exact(8)
        .take(IOCS_VECTORS)
        .map(|c| u64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]))
        .collect()
}

#[cfg(test)]
mod tests;
