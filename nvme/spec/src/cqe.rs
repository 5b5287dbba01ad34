//! The 16-byte completion queue entry (NVMe Base 2.0 §4.6).

use zerocopy::little_endian::{U16, U32};
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

use crate::status::Status;

#[derive(
    Clone, Copy, Default, PartialEq, Eq, Debug, FromBytes, IntoBytes, KnownLayout, Immutable,
)]
#[repr(C)]
pub struct Cqe {
    /// Command specific DW0 (e.g. CNTLID for Connect, property value for Property Get).
    pub dw0: U32,
    pub dw1: U32,
    pub sqhd: U16,
    pub sqid: U16,
    pub cid: U16,
    /// Bit 0 phase tag (unused by fabrics), bits 15:1 the status field.
    pub status: U16,
}
const _: () = assert!(core::mem::size_of::<Cqe>() == 16);

impl Cqe {
    pub fn new(cid: u16, sqid: u16, sqhd: u16, status: Status, dw0: u32, dw1: u32) -> Cqe {
        Cqe {
            dw0: dw0.into(),
            dw1: dw1.into(),
            sqhd: sqhd.into(),
            sqid: sqid.into(),
            cid: cid.into(),
            status: (status.to_field() << 1).into(),
        }
    }

    pub fn from_slice(bytes: &[u8]) -> Option<Cqe> {
        Cqe::read_from_prefix(bytes).ok().map(|(c, _)| c)
    }

    pub fn cid(&self) -> u16 {
        self.cid.get()
    }

    pub fn status(&self) -> Status {
        Status::from_field(self.status.get() >> 1)
    }

    /// DW0 and DW1 as one 64-bit value (Property Get of an 8-byte property, NVMe-oF 1.1 §3.4).
    pub fn result64(&self) -> u64 {
        u64::from(self.dw0.get()) | (u64::from(self.dw1.get()) << 32)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use zerocopy::IntoBytes;

    #[test]
    fn golden_bytes() {
        let cqe = Cqe::new(
            0xabcd,
            3,
            7,
            Status::INVALID_FIELD.with_dnr(),
            0x11223344,
            0,
        );
        let want: [u8; 16] = [
            0x44, 0x33, 0x22, 0x11, 0, 0, 0, 0, 7, 0, 3, 0, 0xcd, 0xab,
            // status field 0x4002 (DNR | SC 02h) shifted past the phase bit
            0x04, 0x80,
        ];
        assert_eq!(cqe.as_bytes(), &want);
        let back = Cqe::from_slice(&want).unwrap();
        assert_eq!(back.status(), Status::INVALID_FIELD.with_dnr());
        assert_eq!(back.cid(), 0xabcd);
    }
}
