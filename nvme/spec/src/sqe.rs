//! The 64-byte submission queue entry (NVMe Base 2.0 §4.2) and its NVMe-oF view
//! (NVMe-oF 1.1 §2.1: Fabrics commands reuse the layout with FCTYPE in byte 4).

use zerocopy::little_endian::{U16, U32, U64};
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

/// Opcode of every Fabrics command (NVMe-oF 1.1 §6.1).
pub const FABRICS_OPCODE: u8 = 0x7f;

/// A submission queue entry, exactly as it travels on the wire.
#[derive(Clone, Copy, Default, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable)]
#[repr(C)]
pub struct Sqe {
    pub opcode: u8,
    /// Bits 1:0 FUSE, bits 7:6 PSDT (NVMe-oF hosts use SGLs; Linux sends 01b).
    pub flags: u8,
    pub cid: U16,
    /// NSID for admin/I/O commands; byte 0 is FCTYPE for Fabrics commands.
    pub nsid: U32,
    pub cdw2: U32,
    pub cdw3: U32,
    pub mptr: U64,
    /// Data pointer: in NVMe-oF always one SGL descriptor (NVMe-oF 1.1 §2.3).
    pub dptr: [u8; 16],
    pub cdw10: U32,
    pub cdw11: U32,
    pub cdw12: U32,
    pub cdw13: U32,
    pub cdw14: U32,
    pub cdw15: U32,
}
const _: () = assert!(core::mem::size_of::<Sqe>() == 64);

/// Data transfer direction encoded in opcode bits 1:0 (NVMe Base 2.0 §5, Figure 28;
/// for Fabrics commands the same bits of FCTYPE, NVMe-oF 1.1 §6.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DataDirection {
    None,
    HostToController,
    ControllerToHost,
    Bidirectional,
}

impl DataDirection {
    pub fn from_code(code: u8) -> Self {
        match code & 0b11 {
            0b00 => DataDirection::None,
            0b01 => DataDirection::HostToController,
            0b10 => DataDirection::ControllerToHost,
            _ => DataDirection::Bidirectional,
        }
    }
}

impl Sqe {
    /// Parse a submission queue entry from the first 64 bytes of `bytes`.
    pub fn from_slice(bytes: &[u8]) -> Option<Sqe> {
        Sqe::read_from_prefix(bytes).ok().map(|(s, _)| s)
    }

    pub fn cid(&self) -> u16 {
        self.cid.get()
    }

    pub fn nsid(&self) -> u32 {
        self.nsid.get()
    }

    pub fn is_fabrics(&self) -> bool {
        self.opcode == FABRICS_OPCODE
    }

    /// FCTYPE of a Fabrics command (NVMe-oF 1.1 §6.1, byte 04).
    pub fn fctype(&self) -> u8 {
        self.nsid.get() as u8
    }

    /// PSDT field (bits 7:6 of CDW0 byte 1).
    pub fn psdt(&self) -> u8 {
        self.flags >> 6
    }

    /// FUSE field (bits 1:0 of CDW0 byte 1).
    pub fn fuse(&self) -> u8 {
        self.flags & 0b11
    }

    /// Direction of the data transfer this command implies.
    pub fn data_direction(&self) -> DataDirection {
        if self.is_fabrics() {
            DataDirection::from_code(self.fctype())
        } else {
            DataDirection::from_code(self.opcode)
        }
    }

    pub fn cdw(&self, n: usize) -> u32 {
        match n {
            2 => self.cdw2.get(),
            3 => self.cdw3.get(),
            10 => self.cdw10.get(),
            11 => self.cdw11.get(),
            12 => self.cdw12.get(),
            13 => self.cdw13.get(),
            14 => self.cdw14.get(),
            15 => self.cdw15.get(),
            _ => 0,
        }
    }

    /// Starting LBA of an NVM I/O command (CDW10 low, CDW11 high).
    pub fn slba(&self) -> u64 {
        u64::from(self.cdw10.get()) | (u64::from(self.cdw11.get()) << 32)
    }

    /// Number of logical blocks of an NVM I/O command (CDW12 bits 15:0 are 0's based).
    pub fn nlb(&self) -> u32 {
        (self.cdw12.get() & 0xffff) + 1
    }
}

impl core::fmt::Debug for Sqe {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Sqe")
            .field("opcode", &format_args!("{:#04x}", self.opcode))
            .field("flags", &format_args!("{:#04x}", self.flags))
            .field("cid", &self.cid.get())
            .field("nsid", &self.nsid.get())
            .field("dptr", &crate::sgl::Sgl::parse(&self.dptr))
            .field("cdw10", &format_args!("{:#x}", self.cdw10.get()))
            .field("cdw11", &format_args!("{:#x}", self.cdw11.get()))
            .field("cdw12", &format_args!("{:#x}", self.cdw12.get()))
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn golden_read_command() {
        // A Read of 8 blocks at LBA 0x1_0000_0002, nsid 1, cid 0x1234, with an SGL
        // transport data block descriptor of 4096 bytes (type 5, subtype 0xA).
        let mut raw = [0u8; 64];
        raw[0] = 0x02;
        raw[1] = 0x40;
        raw[2..4].copy_from_slice(&0x1234u16.to_le_bytes());
        raw[4..8].copy_from_slice(&1u32.to_le_bytes());
        raw[32..36].copy_from_slice(&4096u32.to_le_bytes());
        raw[39] = 0x5a;
        raw[40..44].copy_from_slice(&2u32.to_le_bytes()); // cdw10
        raw[44..48].copy_from_slice(&1u32.to_le_bytes()); // cdw11
        raw[48..52].copy_from_slice(&7u32.to_le_bytes()); // cdw12

        let sqe = Sqe::from_slice(&raw).unwrap();
        assert_eq!(sqe.opcode, 0x02);
        assert_eq!(sqe.psdt(), 1);
        assert_eq!(sqe.cid(), 0x1234);
        assert_eq!(sqe.nsid(), 1);
        assert_eq!(sqe.slba(), 0x1_0000_0002);
        assert_eq!(sqe.nlb(), 8);
        assert_eq!(sqe.data_direction(), DataDirection::ControllerToHost);
        assert_eq!(crate::sgl::Sgl::parse(&sqe.dptr).length(), 4096);
        assert_eq!(sqe.as_bytes(), &raw[..]);
    }

    #[test]
    fn fabrics_direction_comes_from_fctype() {
        let mut sqe = Sqe {
            opcode: FABRICS_OPCODE,
            ..Default::default()
        };
        sqe.nsid.set(0x01); // Connect: host to controller
        assert_eq!(sqe.data_direction(), DataDirection::HostToController);
        sqe.nsid.set(0x04); // Property Get: no data
        assert_eq!(sqe.data_direction(), DataDirection::None);
    }

    #[test]
    fn short_buffer_is_rejected() {
        assert!(Sqe::from_slice(&[0u8; 63]).is_none());
    }
}
