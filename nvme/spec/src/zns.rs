//! Zoned Namespace Command Set wire types and the zone state machine (NVMe ZNS Command Set 1.1;
//! layouts checked against Linux `struct nvme_zone_descriptor`, `struct nvme_zone_report`,
//! `struct nvme_id_ns_zns` and `struct nvme_id_ctrl_zns` in include/linux/nvme.h).

use zerocopy::little_endian::{U16, U32, U64};
use zerocopy::{FromBytes, FromZeros, Immutable, IntoBytes, KnownLayout};

use crate::opcode::wire_enum;
use crate::Status;

mod zone_set;
pub use zone_set::{read_zone, RestoreError, Zone, ZoneLimits, ZoneRecord, ZoneSet, ZoneSetError};

/// Zone Management Send opcode (NVMe ZNS 1.1 §4.1, Figure 28).
pub const ZONE_MGMT_SEND: u8 = 0x79;
/// Zone Management Receive opcode.
pub const ZONE_MGMT_RECV: u8 = 0x7a;
/// Zone Append opcode.
pub const ZONE_APPEND: u8 = 0x7d;

/// Zone Type of a Sequential Write Required zone (NVMe ZNS 1.1 §3.4.2.2.3, Figure 37).
pub const ZONE_TYPE_SEQ_WRITE_REQUIRED: u8 = 0x2;

/// Zone Management Send CDW13 bit 8: Select All (NVMe ZNS 1.1 §4.4.3, Figure 46).
pub const ZMS_SELECT_ALL: u32 = 1 << 8;
/// Zone Management Receive CDW13 bit 16: Partial Report (NVMe ZNS 1.1 §4.4.4, Figure 49).
pub const ZMR_PARTIAL_REPORT: u32 = 1 << 16;
/// Zone Management Receive Action 00h: Report Zones.
pub const ZRA_REPORT_ZONES: u8 = 0x00;

/// Zone State (NVMe ZNS 1.1 §2.1.1, Figure 37 ZS field).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ZoneState {
    Empty,
    ImplicitlyOpened,
    ExplicitlyOpened,
    Closed,
    ReadOnly,
    Full,
    Offline,
}

impl ZoneState {
    /// Every state, in code order.
    pub const ALL: [ZoneState; 7] = [
        ZoneState::Empty,
        ZoneState::ImplicitlyOpened,
        ZoneState::ExplicitlyOpened,
        ZoneState::Closed,
        ZoneState::ReadOnly,
        ZoneState::Full,
        ZoneState::Offline,
    ];

    /// Decode the 4-bit ZS code (the descriptor holds it in bits 7:4 of byte 1).
    pub const fn from_code(code: u8) -> Option<ZoneState> {
        Some(match code {
            0x1 => ZoneState::Empty,
            0x2 => ZoneState::ImplicitlyOpened,
            0x3 => ZoneState::ExplicitlyOpened,
            0x4 => ZoneState::Closed,
            0xd => ZoneState::ReadOnly,
            0xe => ZoneState::Full,
            0xf => ZoneState::Offline,
            _ => return None,
        })
    }

    /// The 4-bit ZS code.
    pub const fn code(self) -> u8 {
        match self {
            ZoneState::Empty => 0x1,
            ZoneState::ImplicitlyOpened => 0x2,
            ZoneState::ExplicitlyOpened => 0x3,
            ZoneState::Closed => 0x4,
            ZoneState::ReadOnly => 0xd,
            ZoneState::Full => 0xe,
            ZoneState::Offline => 0xf,
        }
    }

    /// Opened (implicitly or explicitly): counts against the open resources (ZNS 1.1 §2.1.1.4).
    pub const fn is_open(self) -> bool {
        matches!(
            self,
            ZoneState::ImplicitlyOpened | ZoneState::ExplicitlyOpened
        )
    }

    /// Opened or Closed: counts against the active resources (ZNS 1.1 §2.1.1.4).
    pub const fn is_active(self) -> bool {
        self.is_open() || matches!(self, ZoneState::Closed)
    }

    /// The state after `event`, or the status the command fails with (NVMe ZNS 1.1 §2.1.1
    /// Figure 4 state diagram, §4.4.3.2 per-action rules, §5.2 write rules). Resource limits
    /// (open/active zones) are checked by the caller, not here.
    pub fn apply(self, event: ZoneEvent) -> Result<ZoneState, Status> {
        use ZoneEvent as E;
        use ZoneState as S;
        let invalid = Err(Status::INVALID_ZONE_STATE_TRANSITION);
        match (event, self) {
            // ZNS 1.1 §5.2 (writes): implicit open; ZSF/ZSRO/ZSO fail with their own codes.
            (E::Write | E::WriteFills, S::Full) => Err(Status::ZONE_IS_FULL),
            (E::Write | E::WriteFills, S::ReadOnly) => Err(Status::ZONE_IS_READ_ONLY),
            (E::Write | E::WriteFills, S::Offline) => Err(Status::ZONE_IS_OFFLINE),
            (E::Write, S::ExplicitlyOpened) => Ok(S::ExplicitlyOpened),
            (E::Write, _) => Ok(S::ImplicitlyOpened),
            (E::WriteFills, _) => Ok(S::Full),
            // ZNS 1.1 §4.4.3.2.1 Close Zone: opened -> ZSC; ZSC unchanged.
            (E::Close, S::ImplicitlyOpened | S::ExplicitlyOpened | S::Closed) => Ok(S::Closed),
            (E::Close, _) => invalid,
            // §4.4.3.2.2 Finish Zone: ZSE/opened/ZSC -> ZSF; ZSF unchanged.
            (E::Finish, S::Empty | S::ImplicitlyOpened | S::ExplicitlyOpened | S::Closed) => {
                Ok(S::Full)
            }
            (E::Finish, S::Full) => Ok(S::Full),
            (E::Finish, _) => invalid,
            // §4.4.3.2.3 Open Zone: ZSE/ZSIO/ZSC -> ZSEO; ZSEO unchanged.
            (E::Open, S::Empty | S::ImplicitlyOpened | S::ExplicitlyOpened | S::Closed) => {
                Ok(S::ExplicitlyOpened)
            }
            (E::Open, _) => invalid,
            // §4.4.3.2.4 Reset Zone: opened/ZSC/ZSF -> ZSE; ZSE unchanged.
            (
                E::Reset,
                S::Empty | S::ImplicitlyOpened | S::ExplicitlyOpened | S::Closed | S::Full,
            ) => Ok(S::Empty),
            (E::Reset, _) => invalid,
            // §4.4.3.2.5 Offline Zone: ZSRO -> ZSO; ZSO unchanged.
            (E::Offline, S::ReadOnly | S::Offline) => Ok(S::Offline),
            (E::Offline, _) => invalid,
        }
    }
}

/// What happens to a zone: host writes (Write, Write Zeroes, Zone Append) or a Zone Management
/// Send action on that one zone.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ZoneEvent {
    /// A write that leaves the write pointer below the zone capacity.
    Write,
    /// A write that moves the write pointer to the zone capacity.
    WriteFills,
    Open,
    Close,
    Finish,
    Reset,
    Offline,
}

impl ZoneEvent {
    /// Every event.
    pub const ALL: [ZoneEvent; 7] = [
        ZoneEvent::Write,
        ZoneEvent::WriteFills,
        ZoneEvent::Open,
        ZoneEvent::Close,
        ZoneEvent::Finish,
        ZoneEvent::Reset,
        ZoneEvent::Offline,
    ];
}

wire_enum! {
    /// Zone Send Action, Zone Management Send CDW13 bits 7:0 (NVMe ZNS 1.1 §4.4.3, Figure 47).
    pub enum ZoneAction {
        Close = 0x01,
        Finish = 0x02,
        Open = 0x03,
        Reset = 0x04,
        Offline = 0x05,
    }
}

impl ZoneAction {
    /// The state machine event of this action, `None` for unknown actions.
    pub const fn event(self) -> Option<ZoneEvent> {
        match self {
            ZoneAction::Close => Some(ZoneEvent::Close),
            ZoneAction::Finish => Some(ZoneEvent::Finish),
            ZoneAction::Open => Some(ZoneEvent::Open),
            ZoneAction::Reset => Some(ZoneEvent::Reset),
            ZoneAction::Offline => Some(ZoneEvent::Offline),
            ZoneAction::Unknown(_) => None,
        }
    }

    /// With Select All set, the states the action applies to; zones in other states are left
    /// alone (NVMe ZNS 1.1 §4.4.3.2.1-5).
    pub const fn select_all_applies(self, state: ZoneState) -> bool {
        use ZoneState as S;
        match self {
            ZoneAction::Close => state.is_open(),
            ZoneAction::Finish => state.is_active(),
            ZoneAction::Open => matches!(state, S::Closed),
            ZoneAction::Reset => state.is_active() || matches!(state, S::Full),
            ZoneAction::Offline => matches!(state, S::ReadOnly),
            ZoneAction::Unknown(_) => false,
        }
    }
}

wire_enum! {
    /// Zone Receive Action Specific Field for Report Zones: which zones are listed, Zone
    /// Management Receive CDW13 bits 15:8 (NVMe ZNS 1.1 §4.4.4, Figure 49).
    pub enum ReportOption {
        All = 0x00,
        Empty = 0x01,
        ImplicitlyOpened = 0x02,
        ExplicitlyOpened = 0x03,
        Closed = 0x04,
        Full = 0x05,
        ReadOnly = 0x06,
        Offline = 0x07,
    }
}

impl ReportOption {
    /// Whether a zone in `state` is listed; `None` for an unknown option (Invalid Field).
    pub const fn matches(self, state: ZoneState) -> Option<bool> {
        let want = match self {
            ReportOption::All => return Some(true),
            ReportOption::Empty => ZoneState::Empty,
            ReportOption::ImplicitlyOpened => ZoneState::ImplicitlyOpened,
            ReportOption::ExplicitlyOpened => ZoneState::ExplicitlyOpened,
            ReportOption::Closed => ZoneState::Closed,
            ReportOption::Full => ZoneState::Full,
            ReportOption::ReadOnly => ZoneState::ReadOnly,
            ReportOption::Offline => ZoneState::Offline,
            ReportOption::Unknown(_) => return None,
        };
        Some(want.code() == state.code())
    }
}

/// Zone Descriptor, 64 bytes (NVMe ZNS 1.1 §4.4.4.1, Figure 52).
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable,
)]
#[repr(C)]
pub struct ZoneDescriptor {
    /// Bits 3:0 Zone Type (2h = sequential write required).
    pub zt: u8,
    /// Bits 7:4 Zone State.
    pub zs: u8,
    /// Zone Attributes (bit 0 ZFC, bit 1 FZR, bit 2 RZR, bit 7 ZDEV).
    pub za: u8,
    /// Zone Attributes Information.
    pub zai: u8,
    pub rsvd4: [u8; 4],
    /// Zone Capacity, in logical blocks.
    pub zcap: U64,
    /// Zone Start LBA.
    pub zslba: U64,
    /// Write Pointer.
    pub wp: U64,
    pub rsvd32: [u8; 32],
}
const _: () = assert!(core::mem::size_of::<ZoneDescriptor>() == 64);

impl ZoneDescriptor {
    /// A sequential-write-required zone descriptor.
    pub fn new(state: ZoneState, zcap: u64, zslba: u64, wp: u64) -> ZoneDescriptor {
        ZoneDescriptor {
            zt: ZONE_TYPE_SEQ_WRITE_REQUIRED,
            zs: state.code() << 4,
            zcap: zcap.into(),
            zslba: zslba.into(),
            wp: wp.into(),
            ..ZoneDescriptor::default()
        }
    }

    /// The decoded Zone State, `None` for a reserved code.
    pub fn state(&self) -> Option<ZoneState> {
        ZoneState::from_code(self.zs >> 4)
    }
}

/// Report Zones data header, 64 bytes (NVMe ZNS 1.1 §4.4.4.1, Figure 51).
#[derive(Clone, Copy, Debug, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable)]
#[repr(C)]
pub struct ZoneReportHeader {
    /// Number of zones matching the report (or, with Partial Report, in this report).
    pub nr_zones: U64,
    pub rsvd8: [u8; 56],
}
const _: () = assert!(core::mem::size_of::<ZoneReportHeader>() == 64);

impl ZoneReportHeader {
    /// A header reporting `nr_zones` zones.
    pub fn new(nr_zones: u64) -> ZoneReportHeader {
        ZoneReportHeader {
            nr_zones: nr_zones.into(),
            rsvd8: [0; 56],
        }
    }
}

/// LBA Format Extension entry, 16 bytes (NVMe ZNS 1.1 §4.1.5.1, Figure 39).
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable,
)]
#[repr(C)]
pub struct LbaFormatExtension {
    /// Zone Size, in logical blocks.
    pub zsze: U64,
    /// Zone Descriptor Extension Size, in 64-byte units.
    pub zdes: u8,
    pub rsvd9: [u8; 7],
}
const _: () = assert!(core::mem::size_of::<LbaFormatExtension>() == 16);

/// I/O Command Set specific Identify Namespace for the Zoned Namespace Command Set (CSI 02h,
/// CNS 05h), 4096 bytes (NVMe ZNS 1.1 §4.1.5.1, Figure 38).
#[derive(Clone, Copy, Debug, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable)]
#[repr(C)]
pub struct IdentifyZnsNamespace {
    /// Zone Operation Characteristics (bit 0 variable zone capacity, bit 1 zone active
    /// excursions).
    pub zoc: U16,
    /// Optional Zoned Command Support (bit 0 read across zone boundaries).
    pub ozcs: U16,
    /// Maximum Active Resources, 0's based; FFFFFFFFh = no limit.
    pub mar: U32,
    /// Maximum Open Resources, 0's based; FFFFFFFFh = no limit.
    pub mor: U32,
    /// Reset Recommended Limit, seconds.
    pub rrl: U32,
    /// Finish Recommended Limit, seconds.
    pub frl: U32,
    pub rrl1: U32,
    pub rrl2: U32,
    pub rrl3: U32,
    pub frl1: U32,
    pub frl2: U32,
    pub frl3: U32,
    /// Number of ZRWA resources.
    pub numzrwa: U32,
    pub zrwafg: U16,
    pub zrwasz: U16,
    pub zrwacap: u8,
    pub rsvd53: [u8; 2763],
    /// LBA Format Extensions, indexed like Identify Namespace LBAF.
    pub lbafe: [LbaFormatExtension; 64],
    pub vs: [u8; 256],
}
const _: () = assert!(core::mem::size_of::<IdentifyZnsNamespace>() == 4096);

impl IdentifyZnsNamespace {
    /// An all-zero structure.
    pub fn zeroed() -> IdentifyZnsNamespace {
        FromZeros::new_zeroed()
    }
}

/// I/O Command Set specific Identify Controller for the Zoned Namespace Command Set (CSI 02h,
/// CNS 06h), 4096 bytes (NVMe ZNS 1.1 §4.1.5.2, Figure 40).
#[derive(Clone, Copy, Debug, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable)]
#[repr(C)]
pub struct IdentifyZnsController {
    /// Zone Append Size Limit: 2^n units of CAP.MPSMIN; 0 = MDTS applies.
    pub zasl: u8,
    pub rsvd1: [u8; 4095],
}
const _: () = assert!(core::mem::size_of::<IdentifyZnsController>() == 4096);

impl IdentifyZnsController {
    /// An all-zero structure.
    pub fn zeroed() -> IdentifyZnsController {
        FromZeros::new_zeroed()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ZoneState as S;

    const BAD: Result<ZoneState, Status> = Err(Status::INVALID_ZONE_STATE_TRANSITION);

    /// Hand-written from ZNS 1.1 §2.1.1 and §4.4.3.2; rows are states, columns the events in
    /// `ZoneEvent::ALL` order (Write, WriteFills, Open, Close, Finish, Reset, Offline).
    fn expected(state: ZoneState) -> [Result<ZoneState, Status>; 7] {
        let full = Err(Status::ZONE_IS_FULL);
        let ro = Err(Status::ZONE_IS_READ_ONLY);
        let off = Err(Status::ZONE_IS_OFFLINE);
        match state {
            S::Empty => [
                Ok(S::ImplicitlyOpened),
                Ok(S::Full),
                Ok(S::ExplicitlyOpened),
                BAD,
                Ok(S::Full),
                Ok(S::Empty),
                BAD,
            ],
            S::ImplicitlyOpened => [
                Ok(S::ImplicitlyOpened),
                Ok(S::Full),
                Ok(S::ExplicitlyOpened),
                Ok(S::Closed),
                Ok(S::Full),
                Ok(S::Empty),
                BAD,
            ],
            S::ExplicitlyOpened => [
                Ok(S::ExplicitlyOpened),
                Ok(S::Full),
                Ok(S::ExplicitlyOpened),
                Ok(S::Closed),
                Ok(S::Full),
                Ok(S::Empty),
                BAD,
            ],
            S::Closed => [
                Ok(S::ImplicitlyOpened),
                Ok(S::Full),
                Ok(S::ExplicitlyOpened),
                Ok(S::Closed),
                Ok(S::Full),
                Ok(S::Empty),
                BAD,
            ],
            S::ReadOnly => [ro, ro, BAD, BAD, BAD, BAD, Ok(S::Offline)],
            S::Full => [full, full, BAD, BAD, Ok(S::Full), Ok(S::Empty), BAD],
            S::Offline => [off, off, BAD, BAD, BAD, BAD, Ok(S::Offline)],
        }
    }

    #[test]
    fn every_state_and_event_matches_the_table() {
        let mut checked = 0;
        for s in ZoneState::ALL {
            for (e, want) in ZoneEvent::ALL.into_iter().zip(expected(s)) {
                assert_eq!(s.apply(e), want, "{s:?} x {e:?}");
                checked += 1;
            }
        }
        assert_eq!(checked, 49);
    }

    #[test]
    fn state_codes_round_trip() {
        let codes: Vec<u8> = ZoneState::ALL.iter().map(|s| s.code()).collect();
        assert_eq!(codes, [1, 2, 3, 4, 0xd, 0xe, 0xf]);
        for code in 0..=0xffu8 {
            match ZoneState::from_code(code) {
                Some(s) => assert_eq!(s.code(), code),
                None => assert!(!codes.contains(&code)),
            }
        }
    }

    #[test]
    fn action_and_option_codes() {
        assert_eq!(ZoneAction::from_u8(0x04), ZoneAction::Reset);
        assert_eq!(ZoneAction::from_u8(0x10), ZoneAction::Unknown(0x10));
        assert_eq!(ZoneAction::Offline.event(), Some(ZoneEvent::Offline));
        assert!(ZoneAction::Reset.select_all_applies(S::Full));
        assert!(!ZoneAction::Reset.select_all_applies(S::Empty));
        assert!(!ZoneAction::Finish.select_all_applies(S::Empty));
        assert!(ZoneAction::Open.select_all_applies(S::Closed));
        assert!(!ZoneAction::Open.select_all_applies(S::Empty));
        assert_eq!(ReportOption::from_u8(5).matches(S::Full), Some(true));
        assert_eq!(ReportOption::Full.matches(S::Empty), Some(false));
        assert_eq!(ReportOption::All.matches(S::Offline), Some(true));
        assert_eq!(ReportOption::from_u8(0x3f).matches(S::Empty), None);
    }

    #[test]
    fn zone_descriptor_golden_bytes() {
        let d = ZoneDescriptor::new(S::Closed, 0x1000, 0x20000, 0x20010);
        let mut want = [0u8; 64];
        want[0] = 0x02;
        want[1] = 0x40;
        want[8..16].copy_from_slice(&0x1000u64.to_le_bytes());
        want[16..24].copy_from_slice(&0x20000u64.to_le_bytes());
        want[24..32].copy_from_slice(&0x20010u64.to_le_bytes());
        assert_eq!(d.as_bytes(), &want);
        let back = ZoneDescriptor::read_from_bytes(&want).unwrap();
        assert_eq!(back.state(), Some(S::Closed));
        assert_eq!(back.wp.get(), 0x20010);
    }

    #[test]
    fn report_header_golden_bytes() {
        let h = ZoneReportHeader::new(0x0102_0304_0506_0708);
        let b = h.as_bytes();
        assert_eq!(&b[..8], &[8, 7, 6, 5, 4, 3, 2, 1]);
        assert!(b[8..].iter().all(|&x| x == 0));
    }

    #[test]
    fn identify_zns_namespace_offsets() {
        let mut id = IdentifyZnsNamespace::zeroed();
        id.zoc = 0x0102.into();
        id.ozcs = 0x0001.into();
        id.mar = 0x0000_0007.into();
        id.mor = 0xffff_ffff.into();
        id.rrl = 0x11.into();
        id.frl = 0x22.into();
        id.numzrwa = 0x33.into();
        id.zrwacap = 0x44;
        id.lbafe[0].zsze = 0x8000.into();
        id.lbafe[0].zdes = 2;
        id.lbafe[1].zsze = 0x1_0000.into();
        let b = id.as_bytes();
        assert_eq!(&b[0..4], &[0x02, 0x01, 0x01, 0x00]);
        assert_eq!(&b[4..8], &[7, 0, 0, 0]);
        assert_eq!(&b[8..12], &[0xff; 4]);
        assert_eq!(b[12], 0x11);
        assert_eq!(b[16], 0x22);
        assert_eq!(b[44], 0x33);
        assert_eq!(b[52], 0x44);
        assert_eq!(&b[2816..2824], &0x8000u64.to_le_bytes());
        assert_eq!(b[2824], 2);
        assert_eq!(&b[2832..2840], &0x1_0000u64.to_le_bytes());
        let nonzero: Vec<usize> = (0..4096).filter(|&i| b[i] != 0).collect();
        assert_eq!(
            nonzero,
            [0, 1, 2, 4, 8, 9, 10, 11, 12, 16, 44, 52, 2817, 2824, 2834]
        );
    }

    #[test]
    fn identify_zns_controller_zasl_is_byte_0() {
        let mut id = IdentifyZnsController::zeroed();
        id.zasl = 5;
        assert_eq!(id.as_bytes()[0], 5);
        assert!(id.as_bytes()[1..].iter().all(|&x| x == 0));
    }
}
