//! Log pages (NVMe Base 2.0 §5.16.1) and the Discovery log page (NVMe-oF 1.1 §5.3).
//!
//! Fixed-size pages are `zerocopy` structs with little-endian fields; variable ones (Changed
//! Namespace List, Discovery) have encoders and parsers. [`log_page_slice`] serves the part of
//! an encoded page that a Get Log Page asks for.

use zerocopy::little_endian::{U128, U16, U32, U64};
use zerocopy::{FromBytes, FromZeros, Immutable, IntoBytes, KnownLayout};

use crate::command::{read_nqn, write_nqn, NqnError, NQN_FIELD_LEN};
use crate::opcode::wire_enum;
use crate::status::Status;

wire_enum! {
    /// Log page identifiers (NVMe Base 2.0 Figure "Log Page Identifiers"; NVMe-oF 1.1 §5.3
    /// for 70h; Linux `NVME_LOG_*`).
    pub enum LogPageId {
        SupportedLogPages = 0x00,
        ErrorInformation = 0x01,
        SmartHealth = 0x02,
        FirmwareSlot = 0x03,
        ChangedNamespaceList = 0x04,
        CommandsSupportedAndEffects = 0x05,
        DeviceSelfTest = 0x06,
        TelemetryHostInitiated = 0x07,
        TelemetryControllerInitiated = 0x08,
        EnduranceGroupInformation = 0x09,
        PredictableLatencyPerNvmSet = 0x0a,
        PredictableLatencyEventAggregate = 0x0b,
        AsymmetricNamespaceAccess = 0x0c,
        PersistentEventLog = 0x0d,
        EnduranceGroupEventAggregate = 0x0f,
        MediaUnitStatus = 0x10,
        SupportedCapacityConfigurationList = 0x11,
        FeatureIdentifiersSupportedAndEffects = 0x12,
        NvmeMiCommandsSupportedAndEffects = 0x13,
        CommandAndFeatureLockdown = 0x14,
        BootPartition = 0x15,
        RotationalMediaInformation = 0x16,
        Discovery = 0x70,
        ReservationNotification = 0x80,
        SanitizeStatus = 0x81,
        /// ZNS 1.1 §4.4.1.
        ChangedZoneList = 0xbf,
    }
}

/// Why a log page request cannot be served.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum LogPageError {
    /// LPO beyond the end of the page (NVMe Base 2.0 §5.16: Invalid Field in Command).
    #[error("log page offset {lpo} is beyond the {size}-byte page")]
    OffsetBeyondPage { lpo: u64, size: usize },
}

impl LogPageError {
    pub fn status(&self) -> Status {
        match self {
            LogPageError::OffsetBeyondPage { .. } => Status::INVALID_FIELD.with_dnr(),
        }
    }
}

/// The `len` bytes of `page` starting at byte offset `lpo`; bytes past the end of the page
/// read as zero. An offset greater than the page size is an error (NVMe Base 2.0 §5.16,
/// CDW12 LPOL). `len` is allocated as is: clamp it to the host's data buffer length first.
pub fn log_page_slice(page: &[u8], lpo: u64, len: usize) -> Result<Vec<u8>, LogPageError> {
    let start = usize::try_from(lpo)
        .ok()
        .filter(|&s| s <= page.len())
        .ok_or(LogPageError::OffsetBeyondPage {
            lpo,
            size: page.len(),
        })?;
    let available = &page[start..];
    let take = available.len().min(len);
    let mut out = Vec::with_capacity(len);
    out.extend_from_slice(&available[..take]);
    out.resize(len, 0);
    Ok(out)
}

// ---------------------------------------------------------------------------------------
// Error Information (01h)
// ---------------------------------------------------------------------------------------

/// One 64-byte Error Information log entry (NVMe Base 2.0 §5.16.1.2; Linux
/// `struct nvme_error_slot`).
#[derive(
    Clone, Copy, Default, Debug, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable,
)]
#[repr(C)]
pub struct ErrorInformationEntry {
    /// Error count, bytes 07:00: unique, incrementing; 0 marks an invalid entry.
    pub error_count: U64,
    pub sqid: U16,
    pub cid: U16,
    /// Status field, bytes 13:12: bit 0 phase tag, bits 15:1 the status.
    pub status: U16,
    /// Parameter error location, bytes 15:14: byte (7:0) and bit (10:8) in the command.
    pub parameter_error_location: U16,
    pub lba: U64,
    pub nsid: U32,
    /// Vendor specific information available (a log page ID, 0 if none), byte 28.
    pub vendor_specific: u8,
    /// Transport type, byte 29.
    pub trtype: u8,
    pub rsvd30: [u8; 2],
    /// Command specific information, bytes 39:32.
    pub command_specific: U64,
    /// Transport type specific information, bytes 41:40.
    pub trtype_specific: U16,
    pub rsvd42: [u8; 22],
}
const _: () = assert!(core::mem::size_of::<ErrorInformationEntry>() == 64);

impl ErrorInformationEntry {
    pub fn status(&self) -> Status {
        Status::from_field(self.status.get() >> 1)
    }

    pub fn set_status(&mut self, status: Status) {
        self.status.set(status.to_field() << 1);
    }

    /// Point the parameter error location at `byte` (0..=63) and `bit` (0..=7) of the SQE.
    pub fn set_parameter_error_location(&mut self, byte: u8, bit: u8) {
        self.parameter_error_location
            .set(u16::from(byte) | (u16::from(bit & 0x7) << 8));
    }

    pub fn from_bytes(bytes: &[u8]) -> Option<ErrorInformationEntry> {
        ErrorInformationEntry::read_from_prefix(bytes)
            .ok()
            .map(|(e, _)| e)
    }
}

// ---------------------------------------------------------------------------------------
// SMART / Health Information (02h)
// ---------------------------------------------------------------------------------------

/// SMART / Health Information, 512 bytes (NVMe Base 2.0 §5.16.1.3; Linux
/// `struct nvme_smart_log`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable)]
#[repr(C)]
pub struct SmartHealth {
    /// Critical warning bits, byte 0.
    pub critical_warning: u8,
    /// Composite temperature in kelvin, bytes 2:1.
    pub composite_temperature: U16,
    /// Available spare, percent, byte 3.
    pub available_spare: u8,
    pub available_spare_threshold: u8,
    pub percentage_used: u8,
    pub endurance_group_critical_warning: u8,
    pub rsvd7: [u8; 25],
    /// Data units read, bytes 47:32, in thousands of 512-byte units, rounded up.
    pub data_units_read: U128,
    pub data_units_written: U128,
    pub host_read_commands: U128,
    pub host_write_commands: U128,
    /// Controller busy time in minutes.
    pub controller_busy_time: U128,
    pub power_cycles: U128,
    pub power_on_hours: U128,
    pub unsafe_shutdowns: U128,
    pub media_errors: U128,
    pub error_log_entries: U128,
    /// Minutes above the warning composite temperature threshold, bytes 195:192.
    pub warning_temperature_time: U32,
    pub critical_temperature_time: U32,
    /// Temperature sensors 1..8 in kelvin, bytes 215:200.
    pub temperature_sensors: [U16; 8],
    pub thermal_mgmt_temp1_transitions: U32,
    pub thermal_mgmt_temp2_transitions: U32,
    pub thermal_mgmt_temp1_total_time: U32,
    pub thermal_mgmt_temp2_total_time: U32,
    pub rsvd232: [u8; 280],
}
const _: () = assert!(core::mem::size_of::<SmartHealth>() == 512);

impl SmartHealth {
    /// Critical warning bit 0: available spare below threshold.
    pub const WARN_SPARE: u8 = 1 << 0;
    /// Bit 1: temperature out of range.
    pub const WARN_TEMPERATURE: u8 = 1 << 1;
    /// Bit 2: reliability degraded.
    pub const WARN_RELIABILITY: u8 = 1 << 2;
    /// Bit 3: media placed in read-only mode.
    pub const WARN_READ_ONLY: u8 = 1 << 3;
    /// Bit 4: volatile memory backup failed.
    pub const WARN_VOLATILE_BACKUP: u8 = 1 << 4;

    pub fn zeroed() -> SmartHealth {
        SmartHealth::new_zeroed()
    }

    pub fn from_bytes(bytes: &[u8]) -> Option<SmartHealth> {
        SmartHealth::read_from_prefix(bytes).ok().map(|(s, _)| s)
    }

    /// Data units for `bytes` transferred: thousands of 512-byte units, rounded up
    /// (NVMe Base 2.0 §5.16.1.3: a value of 1 means 1 to 1000 units of 512 bytes).
    pub fn data_units(bytes: u128) -> u128 {
        bytes.div_ceil(512 * 1000)
    }
}

// ---------------------------------------------------------------------------------------
// Firmware Slot Information (03h)
// ---------------------------------------------------------------------------------------

/// Firmware Slot Information, 512 bytes (NVMe Base 2.0 §5.16.1.4; Linux
/// `struct nvme_fw_slot_info_log`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable)]
#[repr(C)]
pub struct FirmwareSlot {
    /// Active firmware info: bits 2:0 active slot, bits 6:4 slot activated at next reset.
    pub afi: u8,
    pub rsvd1: [u8; 7],
    /// Firmware revisions of slots 1..7 (ASCII, space padded, all zero when empty).
    pub frs: [[u8; 8]; 7],
    pub rsvd64: [u8; 448],
}
const _: () = assert!(core::mem::size_of::<FirmwareSlot>() == 512);

impl FirmwareSlot {
    /// A page with one firmware revision in slot 1, active.
    pub fn single(revision: &str) -> FirmwareSlot {
        let mut page = FirmwareSlot::new_zeroed();
        page.afi = 1;
        crate::identify::write_ascii_padded(&mut page.frs[0], revision);
        page
    }

    pub fn active_slot(&self) -> u8 {
        self.afi & 0x7
    }

    pub fn next_reset_slot(&self) -> u8 {
        (self.afi >> 4) & 0x7
    }

    /// Firmware revision of slot `slot` (1..=7).
    pub fn revision(&self, slot: u8) -> Option<&[u8; 8]> {
        self.frs.get(usize::from(slot).checked_sub(1)?)
    }

    pub fn from_bytes(bytes: &[u8]) -> Option<FirmwareSlot> {
        FirmwareSlot::read_from_prefix(bytes).ok().map(|(s, _)| s)
    }
}

// ---------------------------------------------------------------------------------------
// Changed Namespace List (04h)
// ---------------------------------------------------------------------------------------

/// Changed Namespace List (NVMe Base 2.0 §5.16.1.5): up to 1024 NSIDs, ascending, zero
/// filled; if more changed, the first entry is FFFFFFFFh and the rest are zero.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ChangedNamespaces {
    List(Vec<u32>),
    /// More than 1024 namespaces changed.
    Overflow,
}

/// Size of the Changed Namespace List page.
pub const CHANGED_NS_LIST_SIZE: usize = 4096;
/// Entries in the Changed Namespace List.
pub const CHANGED_NS_LIST_MAX: usize = 1024;

impl ChangedNamespaces {
    /// From a set of changed NSIDs (sorted and deduplicated here; zeroes dropped).
    pub fn from_nsids(nsids: &[u32]) -> ChangedNamespaces {
        let mut list: Vec<u32> = nsids.iter().copied().filter(|&n| n != 0).collect();
        list.sort_unstable();
        list.dedup();
        if list.len() > CHANGED_NS_LIST_MAX {
            ChangedNamespaces::Overflow
        } else {
            ChangedNamespaces::List(list)
        }
    }

    /// The 4096-byte page.
    pub fn encode(&self) -> Vec<u8> {
        let mut page = vec![0u8; CHANGED_NS_LIST_SIZE];
        match self {
            ChangedNamespaces::Overflow => page[0..4].copy_from_slice(&u32::MAX.to_le_bytes()),
            ChangedNamespaces::List(list) => {
                for (slot, nsid) in page
                    .chunks_exact_mut(4)
                    .zip(list.iter().take(CHANGED_NS_LIST_MAX))
                {
                    slot.copy_from_slice(&nsid.to_le_bytes());
                }
            }
        }
        page
    }

    /// Parse a page (or the prefix of one the host read): entries up to the first zero.
    pub fn parse(bytes: &[u8]) -> ChangedNamespaces {
        let mut list = Vec::new();
        for chunk in bytes.chunks_exact(4).take(CHANGED_NS_LIST_MAX) {
            let nsid = u32::from_le_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]);
            if nsid == 0 {
                break;
            }
            if nsid == u32::MAX && list.is_empty() {
                return ChangedNamespaces::Overflow;
            }
            list.push(nsid);
        }
        ChangedNamespaces::List(list)
    }
}

// ---------------------------------------------------------------------------------------
// Commands Supported and Effects (05h)
// ---------------------------------------------------------------------------------------

/// One Commands Supported and Effects entry (NVMe Base 2.0 §5.16.1.6).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct CommandEffects(pub u32);

impl CommandEffects {
    /// Command supported, bit 0.
    pub const CSUPP: u32 = 1 << 0;
    /// Logical block content change, bit 1.
    pub const LBCC: u32 = 1 << 1;
    /// Namespace capability change, bit 2.
    pub const NCC: u32 = 1 << 2;
    /// Namespace inventory change, bit 3.
    pub const NIC: u32 = 1 << 3;
    /// Controller capability change, bit 4.
    pub const CCC: u32 = 1 << 4;
    /// UUID selection supported, bit 19.
    pub const USS: u32 = 1 << 19;

    pub const SUPPORTED: CommandEffects = CommandEffects(Self::CSUPP);

    /// Command submission and execution, bits 18:16 (0: no restriction, 1: no other command
    /// to the same namespace, 2: no other command to any namespace).
    pub const fn cse(self) -> u8 {
        ((self.0 >> 16) & 0x7) as u8
    }

    pub const fn with_cse(self, cse: u8) -> CommandEffects {
        CommandEffects((self.0 & !(0x7 << 16)) | ((cse as u32 & 0x7) << 16))
    }

    pub const fn with(self, flag: u32) -> CommandEffects {
        CommandEffects(self.0 | flag)
    }

    pub const fn contains(self, flag: u32) -> bool {
        self.0 & flag == flag
    }
}

/// Commands Supported and Effects log, 4096 bytes: 256 admin then 256 I/O entries, indexed
/// by opcode (Linux `struct nvme_effects_log`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable)]
#[repr(C)]
pub struct CommandsSupportedAndEffects {
    pub admin: [U32; 256],
    pub io: [U32; 256],
    pub rsvd2048: [u8; 2048],
}
const _: () = assert!(core::mem::size_of::<CommandsSupportedAndEffects>() == 4096);

impl CommandsSupportedAndEffects {
    pub fn zeroed() -> CommandsSupportedAndEffects {
        CommandsSupportedAndEffects::new_zeroed()
    }

    pub fn set_admin(&mut self, opcode: u8, effects: CommandEffects) {
        self.admin[usize::from(opcode)].set(effects.0);
    }

    pub fn set_io(&mut self, opcode: u8, effects: CommandEffects) {
        self.io[usize::from(opcode)].set(effects.0);
    }

    pub fn admin_effects(&self, opcode: u8) -> CommandEffects {
        CommandEffects(self.admin[usize::from(opcode)].get())
    }

    pub fn io_effects(&self, opcode: u8) -> CommandEffects {
        CommandEffects(self.io[usize::from(opcode)].get())
    }

    pub fn from_bytes(bytes: &[u8]) -> Option<CommandsSupportedAndEffects> {
        CommandsSupportedAndEffects::read_from_prefix(bytes)
            .ok()
            .map(|(s, _)| s)
    }
}

// ---------------------------------------------------------------------------------------
// Discovery (70h)
// ---------------------------------------------------------------------------------------

wire_enum! {
    /// TRTYPE (NVMe-oF 1.1 Figure "Discovery Log Page Entry"; Linux `NVMF_TRTYPE_*`).
    pub enum TransportType {
        Rdma = 1,
        FibreChannel = 2,
        Tcp = 3,
        /// Intra-host (Linux loop).
        IntraHost = 0xfe,
    }
}

wire_enum! {
    /// ADRFAM (Linux `NVMF_ADDR_FAMILY_*`).
    pub enum AddressFamily {
        Ipv4 = 1,
        Ipv6 = 2,
        InfiniBand = 3,
        FibreChannel = 4,
        IntraHost = 0xfe,
    }
}

wire_enum! {
    /// SUBTYPE (Linux `NVME_NQN_*`).
    pub enum SubsystemType {
        /// A referral to another discovery service.
        Referral = 1,
        /// An NVM subsystem.
        Nvme = 2,
        /// The discovery subsystem that returned this log (NVMe-oF 1.1a / TP 8013).
        CurrentDiscovery = 3,
    }
}

wire_enum! {
    /// TSAS byte 0 for NVMe/TCP: SECTYPE (NVMe-oF 1.1 §5.3, NVMe-TCP 1.0 §3.6.1.1; Linux
    /// `NVMF_TCP_SECTYPE_*`).
    pub enum TcpSecurityType {
        None = 0,
        Tls12 = 1,
        Tls13 = 2,
    }
}

wire_enum! {
    /// TSAS byte 0 for NVMe/RDMA: RDMA_QPTYPE, the RDMA QP service type (NVMe/RDMA 1.0
    /// Figure 3; Linux `NVMF_RDMA_QPTYPE_*`).
    pub enum RdmaQpType {
        ReliableConnected = 1,
        ReliableDatagram = 2,
    }
}

wire_enum! {
    /// TSAS byte 1 for NVMe/RDMA: RDMA_PRTYPE, the RDMA provider type (NVMe/RDMA 1.0 Figure 3;
    /// Linux `NVMF_RDMA_PRTYPE_*`).
    pub enum RdmaProviderType {
        /// No provider specified: what Linux nvmet reports (the host's RDMA CM finds out).
        NotSpecified = 1,
        InfiniBand = 2,
        RoCe = 3,
        RoCeV2 = 4,
        Iwarp = 5,
    }
}

wire_enum! {
    /// TSAS byte 2 for NVMe/RDMA: RDMA_CMS, the connection management service (NVMe/RDMA
    /// 1.0 Figure 3; Linux `NVMF_RDMA_CMS_*`).
    pub enum RdmaCms {
        /// RDMA_IP_CM: sockets based endpoint addressing (RDMA CM over IP).
        RdmaCm = 1,
    }
}

/// The NVMe/RDMA transport specific address subtype (NVMe/RDMA 1.0 Figure 3): RDMA_QPTYPE
/// in byte 0, RDMA_PRTYPE in byte 1, RDMA_CMS in byte 2, bytes 7:3 reserved, RDMA_PKEY in
/// bytes 9:8 (little endian), the rest reserved.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RdmaTsas {
    pub qptype: RdmaQpType,
    pub prtype: RdmaProviderType,
    pub cms: RdmaCms,
    /// Partition key (InfiniBand); 0 when not used.
    pub pkey: u16,
}

impl RdmaTsas {
    /// What a target serving over RDMA CM reports, as Linux nvmet does: reliable connected
    /// QPs, no provider specified, RDMA_IP_CM, no partition key.
    pub const RDMA_CM: RdmaTsas = RdmaTsas {
        qptype: RdmaQpType::ReliableConnected,
        prtype: RdmaProviderType::NotSpecified,
        cms: RdmaCms::RdmaCm,
        pkey: 0,
    };
}

/// TREQ bits 1:0, secure channel: not specified.
pub const TREQ_SECURE_CHANNEL_NOT_SPECIFIED: u8 = 0b00;
/// TREQ bits 1:0, secure channel: required.
pub const TREQ_SECURE_CHANNEL_REQUIRED: u8 = 0b01;
/// TREQ bits 1:0, secure channel: not required.
pub const TREQ_SECURE_CHANNEL_NOT_REQUIRED: u8 = 0b10;
/// TREQ bit 2: the controller supports disabling SQ flow control.
pub const TREQ_DISABLE_SQ_FLOW_CONTROL: u8 = 1 << 2;

/// EFLAGS bit 0: duplicate returned information.
pub const EFLAGS_DUPRETINFO: u16 = 1 << 0;
/// EFLAGS bit 1: explicit persistent connection support for discovery.
pub const EFLAGS_EPCSD: u16 = 1 << 1;
/// EFLAGS bit 2: no CDC connectivity.
pub const EFLAGS_NCC: u16 = 1 << 2;

/// Width of TRSVCID.
pub const TRSVCID_LEN: usize = 32;
/// Width of TRADDR.
pub const TRADDR_LEN: usize = 256;
/// Width of TSAS.
pub const TSAS_LEN: usize = 256;

/// Discovery log page header, 1024 bytes (Linux `struct nvmf_disc_rsp_page_hdr`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable)]
#[repr(C)]
pub struct DiscoveryLogHeader {
    /// Generation counter, bytes 07:00: changes whenever the log changes.
    pub genctr: U64,
    /// Number of records, bytes 15:08.
    pub numrec: U64,
    /// Record format, bytes 17:16 (0).
    pub recfmt: U16,
    pub rsvd18: [u8; 1006],
}
const _: () = assert!(core::mem::size_of::<DiscoveryLogHeader>() == 1024);

/// One discovery log page entry, 1024 bytes (NVMe-oF 1.1 §5.3, in NVMe Base 2.0 the
/// Discovery log page of §5.16.1; Linux `struct nvmf_disc_rsp_page_entry`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable)]
#[repr(C)]
pub struct DiscoveryLogEntry {
    pub trtype: u8,
    pub adrfam: u8,
    pub subtype: u8,
    pub treq: u8,
    pub portid: U16,
    pub cntlid: U16,
    /// Admin max SQ size, bytes 09:08.
    pub asqsz: U16,
    pub eflags: U16,
    pub rsvd12: [u8; 20],
    /// Transport service identifier (for TCP the port number), ASCII, bytes 63:32.
    pub trsvcid: [u8; TRSVCID_LEN],
    pub rsvd64: [u8; 192],
    pub subnqn: [u8; NQN_FIELD_LEN],
    /// Transport address (for TCP the IP address), ASCII, bytes 767:512.
    pub traddr: [u8; TRADDR_LEN],
    /// Transport specific address subtype, bytes 1023:768.
    pub tsas: [u8; TSAS_LEN],
}
const _: () = assert!(core::mem::size_of::<DiscoveryLogEntry>() == 1024);

#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DiscoveryError {
    #[error("discovery log is {len} bytes, shorter than {needed}")]
    Truncated { len: usize, needed: u64 },
    #[error("record {index}: SUBNQN: {error}")]
    SubNqn { index: usize, error: NqnError },
    #[error("record {index}: {field} is not ASCII or does not fit")]
    BadString { index: usize, field: &'static str },
}

/// One discovery record in owned, friendly form.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DiscoveryRecord {
    pub trtype: TransportType,
    pub adrfam: AddressFamily,
    pub subtype: SubsystemType,
    pub treq: u8,
    pub portid: u16,
    /// FFFFh for a dynamic controller subsystem.
    pub cntlid: u16,
    pub asqsz: u16,
    pub eflags: u16,
    pub trsvcid: String,
    pub traddr: String,
    pub subnqn: String,
    pub tsas: [u8; TSAS_LEN],
}

impl DiscoveryRecord {
    /// TSAS for NVMe/TCP: SECTYPE in byte 0, the rest zero.
    pub fn tcp_tsas(sectype: TcpSecurityType) -> [u8; TSAS_LEN] {
        let mut tsas = [0u8; TSAS_LEN];
        tsas[0] = sectype.to_u8();
        tsas
    }

    /// SECTYPE of an NVMe/TCP record.
    pub fn tcp_sectype(&self) -> TcpSecurityType {
        TcpSecurityType::from_u8(self.tsas[0])
    }

    /// TSAS for NVMe/RDMA (layout: [`RdmaTsas`]).
    pub fn rdma_tsas(rdma: RdmaTsas) -> [u8; TSAS_LEN] {
        let mut tsas = [0u8; TSAS_LEN];
        tsas[0] = rdma.qptype.to_u8();
        tsas[1] = rdma.prtype.to_u8();
        tsas[2] = rdma.cms.to_u8();
        tsas[8..10].copy_from_slice(&rdma.pkey.to_le_bytes());
        tsas
    }

    /// The RDMA transport specific address subtype of an NVMe/RDMA record.
    pub fn rdma(&self) -> RdmaTsas {
        RdmaTsas {
            qptype: RdmaQpType::from_u8(self.tsas[0]),
            prtype: RdmaProviderType::from_u8(self.tsas[1]),
            cms: RdmaCms::from_u8(self.tsas[2]),
            pkey: u16::from_le_bytes([self.tsas[8], self.tsas[9]]),
        }
    }

    fn to_entry(&self, index: usize) -> Result<DiscoveryLogEntry, DiscoveryError> {
        let mut e = DiscoveryLogEntry::new_zeroed();
        e.trtype = self.trtype.to_u8();
        e.adrfam = self.adrfam.to_u8();
        e.subtype = self.subtype.to_u8();
        e.treq = self.treq;
        e.portid.set(self.portid);
        e.cntlid.set(self.cntlid);
        e.asqsz.set(self.asqsz);
        e.eflags.set(self.eflags);
        write_ascii_field(&mut e.trsvcid, &self.trsvcid).ok_or(DiscoveryError::BadString {
            index,
            field: "TRSVCID",
        })?;
        write_ascii_field(&mut e.traddr, &self.traddr).ok_or(DiscoveryError::BadString {
            index,
            field: "TRADDR",
        })?;
        write_nqn(&mut e.subnqn, &self.subnqn)
            .map_err(|error| DiscoveryError::SubNqn { index, error })?;
        e.tsas = self.tsas;
        Ok(e)
    }

    fn from_entry(e: &DiscoveryLogEntry, index: usize) -> Result<DiscoveryRecord, DiscoveryError> {
        Ok(DiscoveryRecord {
            trtype: TransportType::from_u8(e.trtype),
            adrfam: AddressFamily::from_u8(e.adrfam),
            subtype: SubsystemType::from_u8(e.subtype),
            treq: e.treq,
            portid: e.portid.get(),
            cntlid: e.cntlid.get(),
            asqsz: e.asqsz.get(),
            eflags: e.eflags.get(),
            trsvcid: read_ascii_field(&e.trsvcid).ok_or(DiscoveryError::BadString {
                index,
                field: "TRSVCID",
            })?,
            traddr: read_ascii_field(&e.traddr).ok_or(DiscoveryError::BadString {
                index,
                field: "TRADDR",
            })?,
            subnqn: read_nqn(&e.subnqn)
                .map_err(|error| DiscoveryError::SubNqn { index, error })?
                .to_owned(),
            tsas: e.tsas,
        })
    }
}

/// Write an ASCII string left justified and padded with spaces (TRSVCID, TRADDR; NVMe-oF
/// 1.1 §5.3). `None` if it is not printable ASCII or does not fit.
fn write_ascii_field(field: &mut [u8], value: &str) -> Option<()> {
    let bytes = value.as_bytes();
    if bytes.len() > field.len() || !bytes.iter().all(|b| (0x20..0x7f).contains(b)) {
        return None;
    }
    field.fill(b' ');
    field[..bytes.len()].copy_from_slice(bytes);
    Some(())
}

/// Read an ASCII field that targets pad with spaces or NULs (Linux nvmet pads with NULs):
/// up to the first NUL, trailing spaces trimmed.
fn read_ascii_field(field: &[u8]) -> Option<String> {
    let end = field.iter().position(|&b| b == 0).unwrap_or(field.len());
    let text = core::str::from_utf8(&field[..end]).ok()?;
    if !text.is_ascii() {
        return None;
    }
    Some(text.trim_end_matches(' ').to_owned())
}

/// A whole Discovery log page.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DiscoveryLog {
    pub genctr: u64,
    pub recfmt: u16,
    pub records: Vec<DiscoveryRecord>,
}

impl DiscoveryLog {
    /// Header plus one 1024-byte entry per record.
    pub fn encode(&self) -> Result<Vec<u8>, DiscoveryError> {
        let mut header = DiscoveryLogHeader::new_zeroed();
        header.genctr.set(self.genctr);
        header.numrec.set(self.records.len() as u64);
        header.recfmt.set(self.recfmt);
        let mut out = Vec::with_capacity(1024 * (1 + self.records.len()));
        out.extend_from_slice(header.as_bytes());
        for (index, record) in self.records.iter().enumerate() {
            out.extend_from_slice(record.to_entry(index)?.as_bytes());
        }
        Ok(out)
    }

    /// The header alone (the host reads it first to learn NUMREC).
    pub fn parse_header(bytes: &[u8]) -> Result<DiscoveryLogHeader, DiscoveryError> {
        DiscoveryLogHeader::read_from_prefix(bytes)
            .map(|(h, _)| h)
            .map_err(|_| DiscoveryError::Truncated {
                len: bytes.len(),
                needed: 1024,
            })
    }

    /// Parse a header and all NUMREC entries; `bytes` must hold them all.
    pub fn parse(bytes: &[u8]) -> Result<DiscoveryLog, DiscoveryError> {
        let header = Self::parse_header(bytes)?;
        let numrec = header.numrec.get();
        let needed = numrec.saturating_add(1).saturating_mul(1024);
        if (bytes.len() as u64) < needed {
            return Err(DiscoveryError::Truncated {
                len: bytes.len(),
                needed,
            });
        }
        let records = bytes[1024..]
            .chunks_exact(1024)
            .take(numrec as usize)
            .enumerate()
            .filter_map(|(i, chunk)| {
                DiscoveryLogEntry::read_from_bytes(chunk)
                    .ok()
                    .map(|e| DiscoveryRecord::from_entry(&e, i))
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(DiscoveryLog {
            genctr: header.genctr.get(),
            recfmt: header.recfmt.get(),
            records,
        })
    }
}

#[cfg(test)]
mod tests;
