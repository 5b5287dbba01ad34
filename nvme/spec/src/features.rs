//! Features (NVMe Base 2.0 §5.27.1) and the Asynchronous Event Request completion
//! (NVMe Base 2.0 §5.2.1).
//!
//! Feature values travel in Set Features CDW11 and come back in the Get Features completion
//! DW0; each feature type here converts both ways.

use crate::opcode::wire_enum;

wire_enum! {
    /// Feature identifiers (NVMe Base 2.0 Figure "Feature Identifiers"; Linux `NVME_FEAT_*`).
    pub enum FeatureId {
        Arbitration = 0x01,
        PowerManagement = 0x02,
        LbaRangeType = 0x03,
        TemperatureThreshold = 0x04,
        ErrorRecovery = 0x05,
        VolatileWriteCache = 0x06,
        NumberOfQueues = 0x07,
        InterruptCoalescing = 0x08,
        InterruptVectorConfiguration = 0x09,
        WriteAtomicityNormal = 0x0a,
        AsyncEventConfiguration = 0x0b,
        AutonomousPowerStateTransition = 0x0c,
        HostMemoryBuffer = 0x0d,
        Timestamp = 0x0e,
        KeepAliveTimer = 0x0f,
        HostControlledThermalManagement = 0x10,
        NonOperationalPowerStateConfig = 0x11,
        ReadRecoveryLevelConfig = 0x12,
        PredictableLatencyModeConfig = 0x13,
        PredictableLatencyModeWindow = 0x14,
        HostBehaviorSupport = 0x16,
        SanitizeConfig = 0x17,
        EnduranceGroupEventConfig = 0x18,
        IoCommandSetProfile = 0x19,
        SoftwareProgressMarker = 0x80,
        HostIdentifier = 0x81,
        ReservationNotificationMask = 0x82,
        ReservationPersistence = 0x83,
        NamespaceWriteProtectionConfig = 0x84,
    }
}

/// The Get Features SEL field, CDW10 bits 10:8 (NVMe Base 2.0 §5.14).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Select {
    Current,
    Default,
    Saved,
    /// Return the capabilities of the feature (DW0: bit 0 saveable, bit 1 namespace
    /// specific, bit 2 changeable); see [`SupportedCapabilities`].
    SupportedCapabilities,
}

impl Select {
    /// 000b..011b; the other values are reserved.
    pub const fn from_code(code: u8) -> Option<Select> {
        match code {
            0 => Some(Select::Current),
            1 => Some(Select::Default),
            2 => Some(Select::Saved),
            3 => Some(Select::SupportedCapabilities),
            _ => None,
        }
    }

    pub const fn code(self) -> u8 {
        match self {
            Select::Current => 0,
            Select::Default => 1,
            Select::Saved => 2,
            Select::SupportedCapabilities => 3,
        }
    }
}

/// Get Features completion DW0 when SEL is 011b (NVMe Base 2.0 §5.14.2).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SupportedCapabilities {
    pub saveable: bool,
    pub namespace_specific: bool,
    pub changeable: bool,
}

impl SupportedCapabilities {
    pub const fn to_dw0(self) -> u32 {
        (self.saveable as u32)
            | ((self.namespace_specific as u32) << 1)
            | ((self.changeable as u32) << 2)
    }

    pub const fn from_dw0(dw0: u32) -> Self {
        SupportedCapabilities {
            saveable: dw0 & 1 != 0,
            namespace_specific: dw0 & 2 != 0,
            changeable: dw0 & 4 != 0,
        }
    }
}

/// Number of Queues (FID 07h, NVMe Base 2.0 §5.27.1.5): requested in CDW11, allocated in
/// completion DW0, both with NSQ in bits 15:0 and NCQ in bits 31:16, 0's based.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NumberOfQueues {
    /// Number of I/O submission queues (a count, not 0's based).
    pub nsq: u32,
    /// Number of I/O completion queues (a count, not 0's based).
    pub ncq: u32,
}

impl NumberOfQueues {
    /// Decode a Set Features CDW11. A field of FFFFh (65536 queues) is invalid (NVMe Base 2.0
    /// §5.27.1.5): the controller answers Invalid Field in Command, so that gives `None`.
    pub const fn from_cdw11(cdw11: u32) -> Option<NumberOfQueues> {
        let nsqr = cdw11 & 0xffff;
        let ncqr = cdw11 >> 16;
        if nsqr == 0xffff || ncqr == 0xffff {
            return None;
        }
        Some(NumberOfQueues {
            nsq: nsqr + 1,
            ncq: ncqr + 1,
        })
    }

    /// Encode as CDW11 or DW0 (counts are clamped to 1..=65535).
    pub const fn to_dword(self) -> u32 {
        let nsq = clamp_queues(self.nsq);
        let ncq = clamp_queues(self.ncq);
        (nsq - 1) | ((ncq - 1) << 16)
    }

    /// Decode a Get/Set Features completion DW0 (host side).
    pub const fn from_dw0(dw0: u32) -> NumberOfQueues {
        NumberOfQueues {
            nsq: (dw0 & 0xffff) + 1,
            ncq: (dw0 >> 16) + 1,
        }
    }
}

const fn clamp_queues(n: u32) -> u32 {
    if n == 0 {
        1
    } else if n > 0xffff {
        0xffff
    } else {
        n
    }
}

/// Asynchronous Event Configuration (FID 0Bh, NVMe Base 2.0 §5.27.1.7), CDW11 / DW0.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct AsyncEventConfig(pub u32);

impl AsyncEventConfig {
    /// SMART / Health critical warnings, bits 7:0.
    pub const SMART_MASK: u32 = 0xff;
    /// Namespace Attribute Notices, bit 8.
    pub const NAMESPACE_ATTRIBUTE: u32 = 1 << 8;
    /// Firmware Activation Notices, bit 9.
    pub const FIRMWARE_ACTIVATION: u32 = 1 << 9;
    /// Telemetry Log Notices, bit 10.
    pub const TELEMETRY_LOG: u32 = 1 << 10;
    /// Asymmetric Namespace Access Change Notices, bit 11.
    pub const ANA_CHANGE: u32 = 1 << 11;
    /// Predictable Latency Event Aggregate Log Change Notices, bit 12.
    pub const PREDICTABLE_LATENCY: u32 = 1 << 12;
    /// LBA Status Information Notices, bit 13.
    pub const LBA_STATUS: u32 = 1 << 13;
    /// Endurance Group Event Aggregate Log Change Notices, bit 14.
    pub const ENDURANCE_GROUP: u32 = 1 << 14;
    /// Normal NVM Subsystem Shutdown Notices, bit 15.
    pub const NORMAL_SHUTDOWN: u32 = 1 << 15;
    /// Zone Descriptor Changed Notices, bit 27 (ZNS 1.1 §5.2.1).
    pub const ZONE_DESCRIPTOR_CHANGED: u32 = 1 << 27;
    /// Discovery Log Page Change Notification, bit 31 (NVMe-oF 1.1 §5.3).
    pub const DISCOVERY_LOG_CHANGE: u32 = 1 << 31;

    pub const fn smart_warnings(self) -> u8 {
        (self.0 & Self::SMART_MASK) as u8
    }

    pub const fn contains(self, flag: u32) -> bool {
        self.0 & flag == flag
    }

    pub const fn with(self, flag: u32) -> Self {
        AsyncEventConfig(self.0 | flag)
    }

    pub const fn namespace_attribute_notices(self) -> bool {
        self.contains(Self::NAMESPACE_ATTRIBUTE)
    }

    pub const fn firmware_activation_notices(self) -> bool {
        self.contains(Self::FIRMWARE_ACTIVATION)
    }

    pub const fn telemetry_notices(self) -> bool {
        self.contains(Self::TELEMETRY_LOG)
    }

    pub const fn ana_change_notices(self) -> bool {
        self.contains(Self::ANA_CHANGE)
    }

    pub const fn discovery_log_change_notices(self) -> bool {
        self.contains(Self::DISCOVERY_LOG_CHANGE)
    }
}

/// Volatile Write Cache (FID 06h, NVMe Base 2.0 §5.27.1.4): WCE is bit 0 of CDW11 / DW0.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct VolatileWriteCache {
    pub enabled: bool,
}

impl VolatileWriteCache {
    pub const fn from_dword(dw: u32) -> Self {
        VolatileWriteCache {
            enabled: dw & 1 != 0,
        }
    }

    pub const fn to_dword(self) -> u32 {
        self.enabled as u32
    }
}

/// Host Identifier (FID 81h, NVMe Base 2.0 §5.27.1.25): CDW11 bit 0 EXHID selects the 128-bit
/// form. NVMe over Fabrics always uses the 128-bit host identifier from the Connect data, so a
/// Set or Get with EXHID cleared is answered with Invalid Field in Command (NVMe-oF 1.1 §4.2).
pub const HOST_ID_EXHID: u32 = 1 << 0;

/// Does this Host Identifier CDW11 ask for the 128-bit (extended) identifier?
pub const fn host_id_extended(cdw11: u32) -> bool {
    cdw11 & HOST_ID_EXHID != 0
}

/// Power Management (FID 02h, NVMe Base 2.0 §5.27.1.2): PS bits 4:0, WH bits 7:5.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PowerManagement {
    /// Power state.
    pub ps: u8,
    /// Workload hint.
    pub wh: u8,
}

impl PowerManagement {
    pub const fn from_dword(dw: u32) -> Self {
        PowerManagement {
            ps: (dw & 0x1f) as u8,
            wh: ((dw >> 5) & 0x7) as u8,
        }
    }

    pub const fn to_dword(self) -> u32 {
        (self.ps as u32 & 0x1f) | ((self.wh as u32 & 0x7) << 5)
    }
}

/// Temperature Threshold (FID 04h, NVMe Base 2.0 §5.27.1.3): TMPTH bits 15:0 (kelvin),
/// TMPSEL bits 19:16 (0 composite, 1..8 sensors, Fh all), THSEL bits 21:20 (0 over, 1 under).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TemperatureThreshold {
    pub tmpth: u16,
    pub tmpsel: u8,
    pub thsel: u8,
}

impl TemperatureThreshold {
    pub const THSEL_OVER: u8 = 0;
    pub const THSEL_UNDER: u8 = 1;

    pub const fn from_dword(dw: u32) -> Self {
        TemperatureThreshold {
            tmpth: (dw & 0xffff) as u16,
            tmpsel: ((dw >> 16) & 0xf) as u8,
            thsel: ((dw >> 20) & 0x3) as u8,
        }
    }

    pub const fn to_dword(self) -> u32 {
        self.tmpth as u32 | ((self.tmpsel as u32 & 0xf) << 16) | ((self.thsel as u32 & 0x3) << 20)
    }
}

/// Error Recovery (FID 05h, NVMe Base 2.0 §5.27.1.6; namespace specific): TLER bits 15:0
/// (time limited error recovery, 100 ms units, 0 = no limit) and DULBE bit 16 (fail reads of
/// deallocated or unwritten blocks; allowed only where Identify Namespace NSFEAT bit 2 says).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ErrorRecovery {
    pub tler: u16,
    pub dulbe: bool,
}

impl ErrorRecovery {
    pub const fn from_dword(dw: u32) -> Self {
        ErrorRecovery {
            tler: dw as u16,
            dulbe: dw & (1 << 16) != 0,
        }
    }

    pub const fn to_dword(self) -> u32 {
        self.tler as u32 | ((self.dulbe as u32) << 16)
    }
}

/// Write Atomicity Normal (FID 0Ah, NVMe Base 2.0 §5.27.1.10): DN bit 0 set means the host
/// needs only AWUPF atomicity, not AWUN/NAWUN.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WriteAtomicityNormal {
    pub disable_normal: bool,
}

impl WriteAtomicityNormal {
    pub const fn from_dword(dw: u32) -> Self {
        WriteAtomicityNormal {
            disable_normal: dw & 1 != 0,
        }
    }

    pub const fn to_dword(self) -> u32 {
        self.disable_normal as u32
    }
}

/// Keep Alive Timer (FID 0Fh, NVMe Base 2.0 §5.27.1.12): KATO in milliseconds, CDW11 / DW0.
pub const fn keep_alive_timeout_ms(dw: u32) -> u32 {
    dw
}

wire_enum! {
    /// Asynchronous event type, completion DW0 bits 2:0 (NVMe Base 2.0 §5.2.1).
    pub enum AsyncEventType {
        ErrorStatus = 0,
        SmartHealthStatus = 1,
        Notice = 2,
        ImmediateNotice = 3,
        IoCommandSpecific = 6,
        VendorSpecific = 7,
    }
}

wire_enum! {
    /// Asynchronous event information for [`AsyncEventType::Notice`], DW0 bits 15:8
    /// (NVMe Base 2.0 §5.2.1; NVMe-oF 1.1 §5.3 for the discovery log change).
    pub enum NoticeInfo {
        NamespaceAttributeChanged = 0x00,
        FirmwareActivationStarting = 0x01,
        TelemetryLogChanged = 0x02,
        AnaChange = 0x03,
        PredictableLatencyEventAggregate = 0x04,
        LbaStatusInformationAlert = 0x05,
        EnduranceGroupEventAggregate = 0x06,
        ZoneDescriptorChanged = 0xef,
        DiscoveryLogPageChange = 0xf0,
    }
}

/// An Asynchronous Event Request completion DW0: type bits 2:0, information bits 15:8,
/// associated log page bits 23:16 (NVMe Base 2.0 §5.2.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AsyncEvent {
    pub event_type: AsyncEventType,
    pub info: u8,
    pub log_page: u8,
}

impl AsyncEvent {
    pub const fn to_dw0(self) -> u32 {
        (self.event_type.to_u8() as u32 & 0x7)
            | ((self.info as u32) << 8)
            | ((self.log_page as u32) << 16)
    }

    pub const fn from_dw0(dw0: u32) -> AsyncEvent {
        AsyncEvent {
            event_type: AsyncEventType::from_u8((dw0 & 0x7) as u8),
            info: (dw0 >> 8) as u8,
            log_page: (dw0 >> 16) as u8,
        }
    }

    /// A notice event; `log_page` is the page the host reads to clear it.
    pub const fn notice(info: NoticeInfo, log_page: u8) -> AsyncEvent {
        AsyncEvent {
            event_type: AsyncEventType::Notice,
            info: info.to_u8(),
            log_page,
        }
    }

    /// Namespace Attribute Changed: read the Changed Namespace List (LID 04h).
    pub const fn namespace_attribute_changed() -> AsyncEvent {
        Self::notice(NoticeInfo::NamespaceAttributeChanged, 0x04)
    }

    /// Zone Descriptor Changed: read the Changed Zone List (LID BFh) of the zoned namespaces
    /// (NVMe ZNS 1.1 §5.2.1).
    pub const fn zone_descriptor_changed() -> AsyncEvent {
        Self::notice(NoticeInfo::ZoneDescriptorChanged, 0xbf)
    }

    /// Discovery Log Page Change: read the Discovery log (LID 70h).
    pub const fn discovery_log_change() -> AsyncEvent {
        Self::notice(NoticeInfo::DiscoveryLogPageChange, 0x70)
    }

    /// The notice information, when this is a notice.
    pub const fn notice_info(self) -> Option<NoticeInfo> {
        match self.event_type {
            AsyncEventType::Notice => Some(NoticeInfo::from_u8(self.info)),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn feature_ids_match_linux() {
        assert_eq!(FeatureId::PowerManagement.to_u8(), 0x02);
        assert_eq!(FeatureId::TemperatureThreshold.to_u8(), 0x04);
        assert_eq!(FeatureId::VolatileWriteCache.to_u8(), 0x06);
        assert_eq!(FeatureId::NumberOfQueues.to_u8(), 0x07);
        assert_eq!(FeatureId::AsyncEventConfiguration.to_u8(), 0x0b);
        assert_eq!(FeatureId::KeepAliveTimer.to_u8(), 0x0f);
        assert_eq!(FeatureId::HostIdentifier.to_u8(), 0x81);
        assert_eq!(FeatureId::from_u8(0x7e), FeatureId::Unknown(0x7e));
        for code in 0..=255u8 {
            assert_eq!(FeatureId::from_u8(code).to_u8(), code);
        }
    }

    #[test]
    fn select_codes() {
        for code in 0..4 {
            assert_eq!(Select::from_code(code).unwrap().code(), code);
        }
        assert_eq!(Select::from_code(3), Some(Select::SupportedCapabilities));
        assert_eq!(Select::from_code(4), None);
        assert_eq!(Select::from_code(7), None);
        let caps = SupportedCapabilities {
            saveable: false,
            namespace_specific: true,
            changeable: true,
        };
        assert_eq!(caps.to_dw0(), 0b110);
        assert_eq!(SupportedCapabilities::from_dw0(0b110), caps);
    }

    #[test]
    fn number_of_queues() {
        // Linux asks for N queues as (N-1) | (N-1) << 16.
        let q = NumberOfQueues::from_cdw11(0x0003_0007).unwrap();
        assert_eq!(q, NumberOfQueues { nsq: 8, ncq: 4 });
        assert_eq!(q.to_dword(), 0x0003_0007);
        assert_eq!(NumberOfQueues::from_cdw11(0x0000_ffff), None);
        assert_eq!(NumberOfQueues::from_cdw11(0xffff_0000), None);
        assert_eq!(
            NumberOfQueues::from_dw0(0x0000_0000),
            NumberOfQueues { nsq: 1, ncq: 1 }
        );
        let big = NumberOfQueues {
            nsq: 100_000,
            ncq: 0,
        };
        assert_eq!(big.to_dword(), 0x0000_fffe);
    }

    #[test]
    fn async_event_config_bits() {
        let aec = AsyncEventConfig(0x8000_09ff);
        assert_eq!(aec.smart_warnings(), 0xff);
        assert!(aec.namespace_attribute_notices());
        assert!(aec.ana_change_notices());
        assert!(!aec.firmware_activation_notices());
        assert!(!aec.telemetry_notices());
        assert!(aec.discovery_log_change_notices());
        assert_eq!(
            AsyncEventConfig::default()
                .with(AsyncEventConfig::FIRMWARE_ACTIVATION)
                .with(AsyncEventConfig::TELEMETRY_LOG)
                .0,
            0x600
        );
    }

    #[test]
    fn small_features() {
        assert!(VolatileWriteCache::from_dword(1).enabled);
        assert!(!VolatileWriteCache::from_dword(0xfffe).enabled);
        assert_eq!(VolatileWriteCache { enabled: true }.to_dword(), 1);
        assert!(host_id_extended(1));
        assert!(!host_id_extended(0));
        let pm = PowerManagement::from_dword(0x43);
        assert_eq!(pm, PowerManagement { ps: 3, wh: 2 });
        assert_eq!(pm.to_dword(), 0x43);
        let tt = TemperatureThreshold::from_dword(0x001f_0157);
        assert_eq!(tt.tmpth, 343);
        assert_eq!(tt.tmpsel, 0xf);
        assert_eq!(tt.thsel, TemperatureThreshold::THSEL_UNDER);
        assert_eq!(tt.to_dword(), 0x001f_0157);
        assert_eq!(keep_alive_timeout_ms(5000), 5000);
        let er = ErrorRecovery::from_dword(0x0001_0032);
        assert_eq!(
            er,
            ErrorRecovery {
                tler: 50,
                dulbe: true
            }
        );
        assert_eq!(er.to_dword(), 0x0001_0032);
        assert_eq!(ErrorRecovery::from_dword(0xfffe_0007).to_dword(), 7);
        assert!(WriteAtomicityNormal::from_dword(0xffff_ffff).disable_normal);
        assert_eq!(WriteAtomicityNormal::from_dword(0xfffe).to_dword(), 0);
    }

    #[test]
    fn async_event_dw0_golden() {
        // Linux: NVME_AER_NOTICE_NS_CHANGED = 0x0002 with log page 04h -> 0x00040002.
        let ev = AsyncEvent::namespace_attribute_changed();
        assert_eq!(ev.to_dw0(), 0x0004_0002);
        // Discovery change: type 2, info F0h, LID 70h -> 0x0070f002.
        assert_eq!(AsyncEvent::discovery_log_change().to_dw0(), 0x0070_f002);
        // Zone Descriptor Changed: type 2, info EFh, LID BFh -> 0x00bfef02.
        assert_eq!(AsyncEvent::zone_descriptor_changed().to_dw0(), 0x00bf_ef02);
        let smart = AsyncEvent {
            event_type: AsyncEventType::SmartHealthStatus,
            info: 0x01,
            log_page: 0x02,
        };
        assert_eq!(smart.to_dw0(), 0x0002_0101);
        assert_eq!(AsyncEvent::from_dw0(0x0002_0101), smart);
        assert_eq!(
            AsyncEvent::from_dw0(0x0070_f002).notice_info(),
            Some(NoticeInfo::DiscoveryLogPageChange)
        );
        assert_eq!(AsyncEvent::from_dw0(0x0002_0101).notice_info(), None);
        assert_eq!(
            AsyncEvent::from_dw0(0x5).event_type,
            AsyncEventType::Unknown(5)
        );
        assert_eq!(NoticeInfo::AnaChange.to_u8(), 0x03);
        assert_eq!(NoticeInfo::TelemetryLogChanged.to_u8(), 0x02);
        assert_eq!(NoticeInfo::FirmwareActivationStarting.to_u8(), 0x01);
    }
}
