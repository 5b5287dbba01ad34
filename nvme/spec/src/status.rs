//! The NVMe status field (NVMe Base 2.0 §4.6.1.2): SCT, SC, CRD, More, DNR.

/// Status Code Type (NVMe Base 2.0 Figure 96).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Sct {
    Generic,
    CommandSpecific,
    MediaDataIntegrity,
    Path,
    VendorSpecific,
    Unknown(u8),
}

impl Sct {
    pub const fn from_code(code: u8) -> Sct {
        match code & 0x7 {
            0 => Sct::Generic,
            1 => Sct::CommandSpecific,
            2 => Sct::MediaDataIntegrity,
            3 => Sct::Path,
            7 => Sct::VendorSpecific,
            other => Sct::Unknown(other),
        }
    }

    pub const fn code(self) -> u8 {
        match self {
            Sct::Generic => 0,
            Sct::CommandSpecific => 1,
            Sct::MediaDataIntegrity => 2,
            Sct::Path => 3,
            Sct::VendorSpecific => 7,
            Sct::Unknown(c) => c & 0x7,
        }
    }
}

/// A completion status. `Status::SUCCESS` is all zeroes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Status {
    pub sct: Sct,
    pub sc: u8,
    /// Command Retry Delay index (0..=3).
    pub crd: u8,
    pub more: bool,
    pub dnr: bool,
}

macro_rules! status_consts {
    ($sct:ident: $($(#[$m:meta])* $name:ident = $sc:expr;)*) => {
        $( $(#[$m])* pub const $name: Status = Status::new(Sct::$sct, $sc); )*
    };
}

impl Status {
    pub const fn new(sct: Sct, sc: u8) -> Status {
        Status {
            sct,
            sc,
            crd: 0,
            more: false,
            dnr: false,
        }
    }

    pub const fn with_dnr(mut self) -> Status {
        self.dnr = true;
        self
    }

    pub const fn with_more(mut self) -> Status {
        self.more = true;
        self
    }

    pub const fn is_success(&self) -> bool {
        matches!(self.sct, Sct::Generic) && self.sc == 0
    }

    /// The 15-bit status field (CQE DW3 bits 31:17), without the phase tag.
    pub const fn to_field(self) -> u16 {
        (self.sc as u16)
            | ((self.sct.code() as u16) << 8)
            | (((self.crd & 0x3) as u16) << 11)
            | ((self.more as u16) << 13)
            | ((self.dnr as u16) << 14)
    }

    pub const fn from_field(field: u16) -> Status {
        Status {
            sc: field as u8,
            sct: Sct::from_code((field >> 8) as u8),
            crd: ((field >> 11) & 0x3) as u8,
            more: field & (1 << 13) != 0,
            dnr: field & (1 << 14) != 0,
        }
    }

    // Generic command status (NVMe Base 2.0 Figure 97).
    status_consts! { Generic:
        SUCCESS = 0x00;
        INVALID_OPCODE = 0x01;
        INVALID_FIELD = 0x02;
        CID_CONFLICT = 0x03;
        DATA_TRANSFER_ERROR = 0x04;
        ABORTED_POWER_LOSS = 0x05;
        INTERNAL_ERROR = 0x06;
        ABORT_REQUESTED = 0x07;
        ABORTED_SQ_DELETION = 0x08;
        ABORTED_FAILED_FUSED = 0x09;
        ABORTED_MISSING_FUSED = 0x0a;
        INVALID_NAMESPACE = 0x0b;
        COMMAND_SEQUENCE_ERROR = 0x0c;
        INVALID_SGL_SEGMENT_DESCRIPTOR = 0x0d;
        INVALID_SGL_DESCRIPTOR_COUNT = 0x0e;
        DATA_SGL_LENGTH_INVALID = 0x0f;
        METADATA_SGL_LENGTH_INVALID = 0x10;
        SGL_DESCRIPTOR_TYPE_INVALID = 0x11;
        INVALID_CMB_USE = 0x12;
        PRP_OFFSET_INVALID = 0x13;
        ATOMIC_WRITE_UNIT_EXCEEDED = 0x14;
        OPERATION_DENIED = 0x15;
        SGL_OFFSET_INVALID = 0x16;
        HOST_ID_INCONSISTENT_FORMAT = 0x18;
        KEEP_ALIVE_EXPIRED = 0x19;
        KEEP_ALIVE_INVALID = 0x1a;
        ABORTED_PREEMPT = 0x1b;
        SANITIZE_FAILED = 0x1c;
        SANITIZE_IN_PROGRESS = 0x1d;
        SGL_DATA_BLOCK_GRANULARITY_INVALID = 0x1e;
        NAMESPACE_WRITE_PROTECTED = 0x20;
        COMMAND_INTERRUPTED = 0x21;
        TRANSIENT_TRANSPORT_ERROR = 0x22;
        LBA_OUT_OF_RANGE = 0x80;
        CAPACITY_EXCEEDED = 0x81;
        NAMESPACE_NOT_READY = 0x82;
        RESERVATION_CONFLICT = 0x83;
        FORMAT_IN_PROGRESS = 0x84;
    }

    // Command specific status (NVMe Base 2.0 Figure 98; NVMe-oF 1.1 Figure 30 for 80h-ish Connect codes).
    status_consts! { CommandSpecific:
        COMPLETION_QUEUE_INVALID = 0x00;
        INVALID_QUEUE_IDENTIFIER = 0x01;
        INVALID_QUEUE_SIZE = 0x02;
        ABORT_COMMAND_LIMIT_EXCEEDED = 0x03;
        ASYNC_EVENT_REQUEST_LIMIT_EXCEEDED = 0x05;
        INVALID_FIRMWARE_SLOT = 0x06;
        INVALID_FIRMWARE_IMAGE = 0x07;
        INVALID_INTERRUPT_VECTOR = 0x08;
        INVALID_LOG_PAGE = 0x09;
        INVALID_FORMAT = 0x0a;
        INVALID_QUEUE_DELETION = 0x0c;
        FEATURE_ID_NOT_SAVEABLE = 0x0d;
        FEATURE_NOT_CHANGEABLE = 0x0e;
        FEATURE_NOT_NAMESPACE_SPECIFIC = 0x0f;
        NAMESPACE_ALREADY_ATTACHED = 0x18;
        NAMESPACE_IS_PRIVATE = 0x19;
        NAMESPACE_NOT_ATTACHED = 0x1a;
        INVALID_CONTROLLER_LIST = 0x1c;
        /// NVM command set: Conflicting Attributes (Dataset Management etc.).
        CONFLICTING_ATTRIBUTES = 0x80;
        INVALID_PROTECTION_INFORMATION = 0x81;
        WRITE_TO_READ_ONLY_RANGE = 0x82;
        /// Fabrics Connect: Incompatible Format (NVMe-oF 1.1 §3.3).
        CONNECT_INCOMPATIBLE_FORMAT = 0x80;
        CONNECT_CONTROLLER_BUSY = 0x81;
        CONNECT_INVALID_PARAMETERS = 0x82;
        CONNECT_RESTART_DISCOVERY = 0x83;
        CONNECT_INVALID_HOST = 0x84;
        /// A command before in-band authentication succeeded on its queue (NVMe Base 2.0
        /// Figure 103; Linux NVME_SC_AUTH_REQUIRED = 0x191).
        AUTH_REQUIRED = 0x91;
        /// ZNS command set (NVMe ZNS 1.1 Figure 43).
        ZONE_BOUNDARY_ERROR = 0xb8;
        ZONE_IS_FULL = 0xb9;
        ZONE_IS_READ_ONLY = 0xba;
        ZONE_IS_OFFLINE = 0xbb;
        ZONE_INVALID_WRITE = 0xbc;
        TOO_MANY_ACTIVE_ZONES = 0xbd;
        TOO_MANY_OPEN_ZONES = 0xbe;
        INVALID_ZONE_STATE_TRANSITION = 0xbf;
    }

    // Media and data integrity errors (NVMe Base 2.0 Figure 100).
    status_consts! { MediaDataIntegrity:
        WRITE_FAULT = 0x80;
        UNRECOVERED_READ_ERROR = 0x81;
        GUARD_CHECK_ERROR = 0x82;
        APPLICATION_TAG_CHECK_ERROR = 0x83;
        REFERENCE_TAG_CHECK_ERROR = 0x84;
        COMPARE_FAILURE = 0x85;
        ACCESS_DENIED = 0x86;
        DEALLOCATED_OR_UNWRITTEN_BLOCK = 0x87;
    }

    // Path related status (NVMe Base 2.0 Figure 101).
    status_consts! { Path:
        INTERNAL_PATH_ERROR = 0x00;
        ASYMMETRIC_ACCESS_PERSISTENT_LOSS = 0x01;
        ASYMMETRIC_ACCESS_INACCESSIBLE = 0x02;
        ASYMMETRIC_ACCESS_TRANSITION = 0x03;
        CONTROLLER_PATHING_ERROR = 0x60;
        HOST_PATHING_ERROR = 0x70;
        COMMAND_ABORTED_BY_HOST = 0x71;
    }
}

impl core::fmt::Display for Status {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "SCT {:#x} SC {:#04x}", self.sct.code(), self.sc)?;
        if self.dnr {
            f.write_str(" DNR")?;
        }
        if self.more {
            f.write_str(" MORE")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn field_round_trip_and_golden_values() {
        // Linux nvme.h: NVME_SC_CONNECT_INVALID_HOST = 0x184, NVME_SC_DNR = 0x4000.
        assert_eq!(Status::CONNECT_INVALID_HOST.with_dnr().to_field(), 0x4184);
        assert_eq!(Status::AUTH_REQUIRED.with_dnr().to_field(), 0x4191);
        assert_eq!(Status::LBA_OUT_OF_RANGE.to_field(), 0x0080);
        assert_eq!(Status::COMPARE_FAILURE.to_field(), 0x0285);
        assert_eq!(Status::HOST_PATHING_ERROR.to_field(), 0x0370);
        for field in 0..0x8000u16 {
            assert_eq!(Status::from_field(field).to_field(), field);
        }
    }

    #[test]
    fn unknown_sct_is_kept() {
        let s = Status::from_field(0x0501);
        assert_eq!(s.sct, Sct::Unknown(5));
        assert!(!s.is_success());
    }
}
