//! Controller properties as NVMe over Fabrics exposes them through Property Get/Set
//! (NVMe Base 2.0 §3.1.4, NVMe-oF 1.1 §3.4-3.5): offsets, sizes, and bitfield newtypes over
//! the raw `u32`/`u64` values with getters and setters.

use std::time::Duration;

/// Controller Capabilities, 8 bytes.
pub const CAP: u32 = 0x00;
/// Version, 4 bytes.
pub const VS: u32 = 0x08;
/// Controller Configuration, 4 bytes.
pub const CC: u32 = 0x14;
/// Controller Status, 4 bytes.
pub const CSTS: u32 = 0x1c;
/// NVM Subsystem Reset, 4 bytes.
pub const NSSR: u32 = 0x20;

/// The value to write to NSSR to start an NVM subsystem reset: "NVMe" (NVMe Base 2.0 §3.1.4.6).
pub const NSSR_RESET_VALUE: u32 = 0x4e56_4d65;

/// A property defined for a Fabrics controller.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Property {
    Cap,
    Vs,
    Cc,
    Csts,
    Nssr,
}

impl Property {
    /// The property at `offset`, or `None` for offsets that name no Fabrics property (the
    /// target answers those with Invalid Field in Command, NVMe-oF 1.1 §3.4).
    pub const fn from_offset(offset: u32) -> Option<Property> {
        match offset {
            CAP => Some(Property::Cap),
            VS => Some(Property::Vs),
            CC => Some(Property::Cc),
            CSTS => Some(Property::Csts),
            NSSR => Some(Property::Nssr),
            _ => None,
        }
    }

    pub const fn offset(self) -> u32 {
        match self {
            Property::Cap => CAP,
            Property::Vs => VS,
            Property::Cc => CC,
            Property::Csts => CSTS,
            Property::Nssr => NSSR,
        }
    }

    /// Size in bytes: 8 for CAP, 4 for the others.
    pub const fn size(self) -> u32 {
        match self {
            Property::Cap => 8,
            _ => 4,
        }
    }

    /// Whether the host may write it (CC and NSSR; NVMe Base 2.0 Figure "Property Definition").
    pub const fn writable(self) -> bool {
        matches!(self, Property::Cc | Property::Nssr)
    }
}

const fn get64(v: u64, low: u32, width: u32) -> u64 {
    (v >> low) & ((1u64 << width) - 1)
}

const fn set64(v: u64, low: u32, width: u32, field: u64) -> u64 {
    let mask = ((1u64 << width) - 1) << low;
    (v & !mask) | ((field << low) & mask)
}

const fn get32(v: u32, low: u32, width: u32) -> u32 {
    (v >> low) & (((1u64 << width) - 1) as u32)
}

const fn set32(v: u32, low: u32, width: u32, field: u32) -> u32 {
    let mask = (((1u64 << width) - 1) as u32) << low;
    (v & !mask) | ((field << low) & mask)
}

macro_rules! field {
    ($ty:ident, $get:ident, $set:ident, $getf:ident, $setf:ident, $rt:ty, $raw:ty, $low:expr, $width:expr) => {
        pub const fn $get(self) -> $rt {
            $getf(self.0, $low, $width) as $rt
        }
        pub const fn $set(self, value: $rt) -> $ty {
            $ty($setf(self.0, $low, $width, value as $raw))
        }
    };
}

macro_rules! flag {
    ($ty:ident, $get:ident, $set:ident, $getf:ident, $setf:ident, $raw:ty, $bit:expr) => {
        pub const fn $get(self) -> bool {
            $getf(self.0, $bit, 1) != 0
        }
        pub const fn $set(self, value: bool) -> $ty {
            $ty($setf(self.0, $bit, 1, value as $raw))
        }
    };
}

/// Controller Capabilities (CAP, NVMe Base 2.0 §3.1.4.1).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Cap(pub u64);

impl Cap {
    /// CSS bit 37: NVM command set.
    pub const CSS_NVM: u8 = 1 << 0;
    /// CSS bit 43: one or more I/O command sets (CC.CSS 110b usable).
    pub const CSS_IO_COMMAND_SETS: u8 = 1 << 6;
    /// CSS bit 44: no I/O command set, admin only.
    pub const CSS_ADMIN_ONLY: u8 = 1 << 7;

    field!(Cap, mqes, with_mqes, get64, set64, u16, u64, 0, 16);
    flag!(Cap, cqr, with_cqr, get64, set64, u64, 16);
    field!(Cap, ams, with_ams, get64, set64, u8, u64, 17, 2);
    field!(Cap, to, with_to, get64, set64, u8, u64, 24, 8);
    field!(Cap, dstrd, with_dstrd, get64, set64, u8, u64, 32, 4);
    flag!(Cap, nssrs, with_nssrs, get64, set64, u64, 36);
    field!(Cap, css, with_css, get64, set64, u8, u64, 37, 8);
    flag!(Cap, bps, with_bps, get64, set64, u64, 45);
    field!(Cap, cps, with_cps, get64, set64, u8, u64, 46, 2);
    field!(Cap, mpsmin, with_mpsmin, get64, set64, u8, u64, 48, 4);
    field!(Cap, mpsmax, with_mpsmax, get64, set64, u8, u64, 52, 4);
    flag!(Cap, pmrs, with_pmrs, get64, set64, u64, 56);
    flag!(Cap, cmbs, with_cmbs, get64, set64, u64, 57);
    flag!(Cap, nsss, with_nsss, get64, set64, u64, 58);
    field!(Cap, crms, with_crms, get64, set64, u8, u64, 59, 2);

    /// Maximum queue entries supported as a count (MQES is 0's based).
    pub const fn max_queue_entries(self) -> u32 {
        self.mqes() as u32 + 1
    }

    /// Worst-case time to become ready, in milliseconds (TO is in 500 ms units).
    pub const fn timeout_ms(self) -> u32 {
        self.to() as u32 * 500
    }

    /// Worst-case time for CSTS.RDY to follow CC.EN (TO in 500 ms units, NVMe Base 2.0 §3.1.4.1).
    pub const fn timeout(self) -> Duration {
        Duration::from_millis(self.timeout_ms() as u64)
    }

    /// Doorbell stride in bytes: `4 << DSTRD` (NVMe Base 2.0 §3.1.4.1).
    pub const fn doorbell_stride(self) -> u32 {
        4 << self.dstrd()
    }

    /// Smallest memory page size the controller supports, in bytes: `2 ^ (12 + MPSMIN)`.
    pub const fn min_page_size(self) -> u64 {
        1 << (12 + self.mpsmin() as u32)
    }

    /// Largest memory page size the controller supports, in bytes: `2 ^ (12 + MPSMAX)`.
    pub const fn max_page_size(self) -> u64 {
        1 << (12 + self.mpsmax() as u32)
    }

    /// CSS bit 37: the NVM command set is supported.
    pub const fn supports_nvm(self) -> bool {
        self.css() & Cap::CSS_NVM != 0
    }

    /// CSS bit 43: one or more I/O command sets are supported (CC.CSS 110b may be used).
    pub const fn supports_io_command_sets(self) -> bool {
        self.css() & Cap::CSS_IO_COMMAND_SETS != 0
    }

    /// CSS bit 44: no I/O command set is supported, only the admin command set.
    pub const fn admin_only(self) -> bool {
        self.css() & Cap::CSS_ADMIN_ONLY != 0
    }
}

/// Controller Configuration (CC, NVMe Base 2.0 §3.1.4.5).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Cc(pub u32);

impl Cc {
    /// CSS 000b: NVM command set.
    pub const CSS_NVM: u8 = 0b000;
    /// CSS 110b: all supported I/O command sets.
    pub const CSS_ALL_IO: u8 = 0b110;
    /// CSS 111b: admin command set only.
    pub const CSS_ADMIN_ONLY: u8 = 0b111;

    flag!(Cc, en, with_en, get32, set32, u32, 0);
    field!(Cc, css, with_css, get32, set32, u8, u32, 4, 3);
    field!(Cc, mps, with_mps, get32, set32, u8, u32, 7, 4);
    field!(Cc, ams, with_ams, get32, set32, u8, u32, 11, 3);
    field!(Cc, shn_raw, with_shn_raw, get32, set32, u8, u32, 14, 2);
    field!(Cc, iosqes, with_iosqes, get32, set32, u8, u32, 16, 4);
    field!(Cc, iocqes, with_iocqes, get32, set32, u8, u32, 20, 4);
    flag!(Cc, crime, with_crime, get32, set32, u32, 24);

    /// Shutdown notification.
    pub const fn shn(self) -> ShutdownNotification {
        ShutdownNotification::from_bits(self.shn_raw())
    }

    pub const fn with_shn(self, shn: ShutdownNotification) -> Cc {
        self.with_shn_raw(shn.bits())
    }
}

/// CC.SHN (NVMe Base 2.0 §3.1.4.5).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ShutdownNotification {
    None,
    Normal,
    Abrupt,
    /// 11b is reserved.
    Reserved,
}

impl ShutdownNotification {
    pub const fn from_bits(bits: u8) -> Self {
        match bits & 0b11 {
            0b00 => ShutdownNotification::None,
            0b01 => ShutdownNotification::Normal,
            0b10 => ShutdownNotification::Abrupt,
            _ => ShutdownNotification::Reserved,
        }
    }

    pub const fn bits(self) -> u8 {
        match self {
            ShutdownNotification::None => 0b00,
            ShutdownNotification::Normal => 0b01,
            ShutdownNotification::Abrupt => 0b10,
            ShutdownNotification::Reserved => 0b11,
        }
    }
}

/// Controller Status (CSTS, NVMe Base 2.0 §3.1.4.6).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Csts(pub u32);

impl Csts {
    flag!(Csts, rdy, with_rdy, get32, set32, u32, 0);
    flag!(Csts, cfs, with_cfs, get32, set32, u32, 1);
    field!(Csts, shst_raw, with_shst_raw, get32, set32, u8, u32, 2, 2);
    flag!(Csts, nssro, with_nssro, get32, set32, u32, 4);
    flag!(Csts, pp, with_pp, get32, set32, u32, 5);
    flag!(Csts, st, with_st, get32, set32, u32, 6);

    pub const fn shst(self) -> ShutdownStatus {
        ShutdownStatus::from_bits(self.shst_raw())
    }

    pub const fn with_shst(self, shst: ShutdownStatus) -> Csts {
        self.with_shst_raw(shst.bits())
    }
}

/// CSTS.SHST (NVMe Base 2.0 §3.1.4.6).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ShutdownStatus {
    Normal,
    Occurring,
    Complete,
    /// 11b is reserved.
    Reserved,
}

impl ShutdownStatus {
    pub const fn from_bits(bits: u8) -> Self {
        match bits & 0b11 {
            0b00 => ShutdownStatus::Normal,
            0b01 => ShutdownStatus::Occurring,
            0b10 => ShutdownStatus::Complete,
            _ => ShutdownStatus::Reserved,
        }
    }

    pub const fn bits(self) -> u8 {
        match self {
            ShutdownStatus::Normal => 0b00,
            ShutdownStatus::Occurring => 0b01,
            ShutdownStatus::Complete => 0b10,
            ShutdownStatus::Reserved => 0b11,
        }
    }
}

/// Version (VS, NVMe Base 2.0 §3.1.4.2): MJR bits 31:16, MNR 15:8, TER 7:0. Identify
/// Controller VER uses the same encoding.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Version(pub u32);

impl Version {
    pub const V1_3: Version = Version::new(1, 3, 0);
    pub const V1_4: Version = Version::new(1, 4, 0);
    pub const V2_0: Version = Version::new(2, 0, 0);

    pub const fn new(major: u16, minor: u8, tertiary: u8) -> Version {
        Version(((major as u32) << 16) | ((minor as u32) << 8) | tertiary as u32)
    }

    pub const fn major(self) -> u16 {
        (self.0 >> 16) as u16
    }

    pub const fn minor(self) -> u8 {
        (self.0 >> 8) as u8
    }

    pub const fn tertiary(self) -> u8 {
        self.0 as u8
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_match_linux() {
        // Linux enum nvme_regs: NVME_REG_CAP 0x0000, VS 0x0008, CC 0x0014, CSTS 0x001c,
        // NSSR 0x0020.
        assert_eq!(Property::from_offset(0x00), Some(Property::Cap));
        assert_eq!(Property::from_offset(0x08), Some(Property::Vs));
        assert_eq!(Property::from_offset(0x14), Some(Property::Cc));
        assert_eq!(Property::from_offset(0x1c), Some(Property::Csts));
        assert_eq!(Property::from_offset(0x20), Some(Property::Nssr));
        assert_eq!(Property::from_offset(0x04), None);
        assert_eq!(Property::from_offset(0x24), None);
        assert_eq!(Property::Cap.size(), 8);
        assert_eq!(Property::Csts.size(), 4);
        assert!(Property::Cc.writable());
        assert!(!Property::Csts.writable());
        for p in [
            Property::Cap,
            Property::Vs,
            Property::Cc,
            Property::Csts,
            Property::Nssr,
        ] {
            assert_eq!(Property::from_offset(p.offset()), Some(p));
        }
    }

    #[test]
    fn cap_golden() {
        // MQES 127 (128 entries), CQR, TO 15 (7.5 s), CSS NVM (bit 37), MPSMIN 0, MPSMAX 0.
        let cap = Cap::default()
            .with_mqes(127)
            .with_cqr(true)
            .with_to(15)
            .with_css(Cap::CSS_NVM);
        assert_eq!(cap.0, 0x0000_0020_0f01_007f);
        assert_eq!(cap.max_queue_entries(), 128);
        assert_eq!(cap.timeout_ms(), 7500);
        let cap = Cap(0x00f0_1f60_0f01_007f);
        assert_eq!(cap.mqes(), 127);
        assert!(cap.cqr());
        assert_eq!(cap.ams(), 0);
        assert_eq!(cap.to(), 15);
        assert_eq!(cap.dstrd(), 0);
        assert!(!cap.nssrs());
        // bits 44:37 of 0x1f60_0000_0000: 0xfb -> NVM, I/O command sets, admin only set
        assert_eq!(cap.css() & Cap::CSS_NVM, Cap::CSS_NVM);
        assert_eq!(
            cap.css() & Cap::CSS_IO_COMMAND_SETS,
            Cap::CSS_IO_COMMAND_SETS
        );
        assert_eq!(cap.mpsmin(), 0);
        assert_eq!(cap.mpsmax(), 0xf);
        let cap = Cap(0)
            .with_dstrd(3)
            .with_nssrs(true)
            .with_mpsmin(2)
            .with_mpsmax(5);
        assert_eq!(cap.0, 0x0052_0013_0000_0000);
        // setters mask oversized values
        assert_eq!(Cap(0).with_ams(0xff).0, 0b11 << 17);
    }

    #[test]
    fn cap_derived_getters() {
        let cap = Cap(0)
            .with_to(15)
            .with_dstrd(3)
            .with_mpsmin(0)
            .with_mpsmax(4);
        assert_eq!(cap.timeout(), Duration::from_millis(7500));
        assert_eq!(Cap(0).timeout(), Duration::ZERO);
        assert_eq!(
            Cap(0).with_to(0xff).timeout(),
            Duration::from_millis(127_500)
        );
        assert_eq!(cap.doorbell_stride(), 32);
        assert_eq!(Cap(0).doorbell_stride(), 4);
        assert_eq!(Cap(0).with_dstrd(0xf).doorbell_stride(), 4 << 15);
        assert_eq!(cap.min_page_size(), 4096);
        assert_eq!(cap.max_page_size(), 64 * 1024);
        assert_eq!(Cap(0).with_mpsmax(0xf).max_page_size(), 128 << 20);
        let nvm = Cap(0).with_css(Cap::CSS_NVM);
        assert!(nvm.supports_nvm() && !nvm.supports_io_command_sets() && !nvm.admin_only());
        // raw bit 43 and bit 44 of the 64-bit register
        let io = Cap(1 << 43);
        assert!(io.supports_io_command_sets() && !io.supports_nvm() && !io.admin_only());
        let admin = Cap(1 << 44);
        assert!(admin.admin_only() && !admin.supports_nvm());
    }

    #[test]
    fn cc_golden() {
        // Linux enables with EN | CSS NVM | MPS 0 | AMS 0 | IOSQES 6 | IOCQES 4 = 0x00460001.
        let cc = Cc(0x0046_0001);
        assert!(cc.en());
        assert_eq!(cc.css(), Cc::CSS_NVM);
        assert_eq!(cc.mps(), 0);
        assert_eq!(cc.ams(), 0);
        assert_eq!(cc.shn(), ShutdownNotification::None);
        assert_eq!(cc.iosqes(), 6);
        assert_eq!(cc.iocqes(), 4);
        assert!(!cc.crime());
        let built = Cc::default()
            .with_en(true)
            .with_iosqes(6)
            .with_iocqes(4)
            .with_css(Cc::CSS_ALL_IO);
        assert_eq!(built.0, 0x0046_0061);
        // shutdown: SHN normal is 0x4000
        assert_eq!(cc.with_shn(ShutdownNotification::Normal).0, 0x0046_4001);
        assert_eq!(Cc(0x8000).shn(), ShutdownNotification::Abrupt);
        assert!(Cc(1 << 24).crime());
        assert_eq!(Cc(0x0000_3800).ams(), 7);
        assert_eq!(Cc(0x0000_0780).mps(), 0xf);
    }

    #[test]
    fn csts_golden() {
        let csts = Csts::default()
            .with_rdy(true)
            .with_shst(ShutdownStatus::Complete);
        assert_eq!(csts.0, 0x9);
        assert_eq!(Csts(0x5).shst(), ShutdownStatus::Occurring);
        assert!(Csts(0x2).cfs());
        assert!(Csts(0x10).nssro());
        assert!(Csts(0x20).pp());
        assert!(Csts(0x40).st());
        assert_eq!(Csts(0xc).shst(), ShutdownStatus::Reserved);
        assert!(!Csts(0x9).with_rdy(false).rdy());
    }

    #[test]
    fn version_golden() {
        // Linux NVME_VS(1, 3, 0) = 0x00010300.
        assert_eq!(Version::V1_3.0, 0x0001_0300);
        assert_eq!(Version::V2_0.0, 0x0002_0000);
        let v = Version(0x0001_0401);
        assert_eq!((v.major(), v.minor(), v.tertiary()), (1, 4, 1));
        assert!(Version::V1_4 > Version::V1_3);
    }
}
