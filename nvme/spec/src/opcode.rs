//! Command opcodes: admin (NVMe Base 2.0 §5, Figure 28), NVM I/O (NVM Command Set 1.0 §3,
//! Figure 21), and Fabrics command types (NVMe-oF 1.1 §6, Figure 32).
//!
//! Every enum keeps codes it does not know as `Unknown(u8)`; build values with `from_u8` (or
//! `From<u8>`) so that a known code never ends up inside `Unknown`.

/// Declare a `u8` wire code enum with an `Unknown(u8)` catch-all, `from_u8`/`to_u8` and the
/// `From` conversions both ways.
macro_rules! wire_enum {
    (
        $(#[$m:meta])*
        $vis:vis enum $name:ident {
            $( $(#[$vm:meta])* $var:ident = $val:expr, )*
        }
    ) => {
        $(#[$m])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        $vis enum $name {
            $( $(#[$vm])* $var, )*
            /// A code this crate has no name for, kept as it was on the wire.
            Unknown(u8),
        }

        impl $name {
            /// Decode a wire code; codes without a name become `Unknown`.
            pub const fn from_u8(code: u8) -> Self {
                match code {
                    $( $val => Self::$var, )*
                    other => Self::Unknown(other),
                }
            }

            /// The wire code.
            pub const fn to_u8(self) -> u8 {
                match self {
                    $( Self::$var => $val, )*
                    Self::Unknown(code) => code,
                }
            }
        }

        impl From<u8> for $name {
            fn from(code: u8) -> Self {
                Self::from_u8(code)
            }
        }

        impl From<$name> for u8 {
            fn from(value: $name) -> u8 {
                value.to_u8()
            }
        }
    };
}
pub(crate) use wire_enum;

wire_enum! {
    /// Admin command opcodes (NVMe Base 2.0 Figure 28; Linux `enum nvme_admin_opcode`).
    pub enum AdminOpcode {
        DeleteIoSq = 0x00,
        CreateIoSq = 0x01,
        GetLogPage = 0x02,
        DeleteIoCq = 0x04,
        CreateIoCq = 0x05,
        Identify = 0x06,
        Abort = 0x08,
        SetFeatures = 0x09,
        GetFeatures = 0x0a,
        AsyncEventRequest = 0x0c,
        NamespaceManagement = 0x0d,
        FirmwareCommit = 0x10,
        FirmwareImageDownload = 0x11,
        DeviceSelfTest = 0x14,
        NamespaceAttachment = 0x15,
        KeepAlive = 0x18,
        DirectiveSend = 0x19,
        DirectiveReceive = 0x1a,
        VirtualizationManagement = 0x1c,
        NvmeMiSend = 0x1d,
        NvmeMiReceive = 0x1e,
        CapacityManagement = 0x20,
        Lockdown = 0x24,
        DoorbellBufferConfig = 0x7c,
        /// Fabrics commands share this opcode on every queue (NVMe-oF 1.1 §6.1).
        Fabrics = 0x7f,
        FormatNvm = 0x80,
        SecuritySend = 0x81,
        SecurityReceive = 0x82,
        Sanitize = 0x84,
        GetLbaStatus = 0x86,
    }
}

wire_enum! {
    /// NVM command set I/O opcodes (NVM Command Set 1.0 Figure 21; ZNS 1.1 Figure 32 for
    /// the zoned ones; Linux `enum nvme_opcode`).
    pub enum IoOpcode {
        Flush = 0x00,
        Write = 0x01,
        Read = 0x02,
        WriteUncorrectable = 0x04,
        Compare = 0x05,
        WriteZeroes = 0x08,
        DatasetManagement = 0x09,
        Verify = 0x0c,
        ReservationRegister = 0x0d,
        ReservationReport = 0x0e,
        ReservationAcquire = 0x11,
        ReservationRelease = 0x15,
        Copy = 0x19,
        /// Fabrics commands share this opcode on every queue (NVMe-oF 1.1 §6.1).
        Fabrics = 0x7f,
        ZoneManagementSend = 0x79,
        ZoneManagementReceive = 0x7a,
        ZoneAppend = 0x7d,
    }
}

wire_enum! {
    /// Fabrics command types, the FCTYPE byte of a Fabrics command (NVMe-oF 1.1 Figure 32;
    /// Linux `enum nvmf_fabrics_opcode`).
    pub enum FabricsType {
        PropertySet = 0x00,
        Connect = 0x01,
        PropertyGet = 0x04,
        AuthenticationSend = 0x05,
        AuthenticationReceive = 0x06,
        Disconnect = 0x08,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn admin_codes_match_linux() {
        let cases = [
            (AdminOpcode::GetLogPage, 0x02),
            (AdminOpcode::Identify, 0x06),
            (AdminOpcode::Abort, 0x08),
            (AdminOpcode::SetFeatures, 0x09),
            (AdminOpcode::GetFeatures, 0x0a),
            (AdminOpcode::AsyncEventRequest, 0x0c),
            (AdminOpcode::KeepAlive, 0x18),
            (AdminOpcode::Fabrics, 0x7f),
            (AdminOpcode::FormatNvm, 0x80),
        ];
        for (op, code) in cases {
            assert_eq!(op.to_u8(), code);
            assert_eq!(AdminOpcode::from_u8(code), op);
        }
        assert_eq!(AdminOpcode::from_u8(0x03), AdminOpcode::Unknown(0x03));
        assert_eq!(u8::from(AdminOpcode::Unknown(0xc0)), 0xc0);
    }

    #[test]
    fn io_codes_match_linux() {
        let cases = [
            (IoOpcode::Flush, 0x00),
            (IoOpcode::Write, 0x01),
            (IoOpcode::Read, 0x02),
            (IoOpcode::Compare, 0x05),
            (IoOpcode::WriteZeroes, 0x08),
            (IoOpcode::DatasetManagement, 0x09),
            (IoOpcode::ZoneAppend, 0x7d),
        ];
        for (op, code) in cases {
            assert_eq!(op.to_u8(), code);
            assert_eq!(IoOpcode::from(code), op);
        }
        assert_eq!(IoOpcode::from_u8(0x03), IoOpcode::Unknown(0x03));
    }

    #[test]
    fn fabrics_types_match_linux() {
        let cases = [
            (FabricsType::PropertySet, 0x00),
            (FabricsType::Connect, 0x01),
            (FabricsType::PropertyGet, 0x04),
            (FabricsType::AuthenticationSend, 0x05),
            (FabricsType::AuthenticationReceive, 0x06),
            (FabricsType::Disconnect, 0x08),
        ];
        for (t, code) in cases {
            assert_eq!(t.to_u8(), code);
            assert_eq!(FabricsType::from_u8(code), t);
        }
        assert_eq!(FabricsType::from_u8(0x02), FabricsType::Unknown(0x02));
    }

    #[test]
    fn every_code_round_trips() {
        for code in 0..=255u8 {
            assert_eq!(AdminOpcode::from_u8(code).to_u8(), code);
            assert_eq!(IoOpcode::from_u8(code).to_u8(), code);
            assert_eq!(FabricsType::from_u8(code).to_u8(), code);
        }
    }
}
