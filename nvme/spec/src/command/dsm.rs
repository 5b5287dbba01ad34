//! Dataset Management range descriptors (NVM Command Set 1.0 §3.2.3, Figure "Dataset
//! Management - Range Definition"; Linux `struct nvme_dsm_range`).

use zerocopy::little_endian::{U32, U64};
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

/// One 16-byte range of a Dataset Management command's data.
#[derive(
    Clone, Copy, Default, Debug, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable,
)]
#[repr(C)]
pub struct DsmRange {
    /// Context attributes, bytes 03:00.
    pub cattr: U32,
    /// Length in logical blocks, bytes 07:04 (a count, not 0's based).
    pub nlb: U32,
    /// Starting LBA, bytes 15:08.
    pub slba: U64,
}
const _: () = assert!(core::mem::size_of::<DsmRange>() == DsmRange::SIZE);

#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DsmError {
    #[error("{ranges} ranges need {needed} bytes, data has {len}")]
    Short {
        ranges: usize,
        needed: usize,
        len: usize,
    },
}

impl DsmRange {
    pub const SIZE: usize = 16;
    /// At most 256 ranges per command (NR is 8 bits, 0's based).
    pub const MAX_RANGES: usize = 256;

    pub fn new(slba: u64, nlb: u32, cattr: u32) -> DsmRange {
        DsmRange {
            cattr: cattr.into(),
            nlb: nlb.into(),
            slba: slba.into(),
        }
    }

    pub fn context_attributes(&self) -> u32 {
        self.cattr.get()
    }

    pub fn nlb(&self) -> u32 {
        self.nlb.get()
    }

    pub fn slba(&self) -> u64 {
        self.slba.get()
    }

    /// Parse the first `ranges` descriptors of `data` (extra bytes are ignored).
    pub fn parse_list(data: &[u8], ranges: usize) -> Result<Vec<DsmRange>, DsmError> {
        let needed = ranges.saturating_mul(Self::SIZE);
        let short = DsmError::Short {
            ranges,
            needed,
            len: data.len(),
        };
        let bytes = data.get(..needed).ok_or(short)?;
        Ok(bytes
            .chunks_exact(Self::SIZE)
            .filter_map(|chunk| DsmRange::read_from_bytes(chunk).ok())
            .collect())
    }

    /// Encode `ranges` back to back (host side).
    pub fn encode_list(ranges: &[DsmRange]) -> Vec<u8> {
        ranges
            .iter()
            .flat_map(|r| r.as_bytes().iter().copied())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn golden_ranges() {
        let raw: [u8; 32] = [
            0x01, 0x00, 0x00, 0x00, // context attributes 1
            0x08, 0x00, 0x00, 0x00, // 8 blocks
            0x00, 0x10, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, // SLBA 0x1000
            0x00, 0x00, 0x00, 0x00, // no attributes
            0x00, 0x00, 0x01, 0x00, // 65536 blocks
            0x02, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, // SLBA 0x1_0000_0002
        ];
        let ranges = DsmRange::parse_list(&raw, 2).unwrap();
        assert_eq!(ranges.len(), 2);
        assert_eq!(ranges[0].context_attributes(), 1);
        assert_eq!(ranges[0].nlb(), 8);
        assert_eq!(ranges[0].slba(), 0x1000);
        assert_eq!(ranges[1], DsmRange::new(0x1_0000_0002, 0x10000, 0));
        assert_eq!(DsmRange::encode_list(&ranges), raw);
        assert_eq!(DsmRange::parse_list(&raw, 1).unwrap().len(), 1);
    }

    #[test]
    fn short_data_rejected() {
        assert_eq!(
            DsmRange::parse_list(&[0u8; 31], 2),
            Err(DsmError::Short {
                ranges: 2,
                needed: 32,
                len: 31
            })
        );
        assert_eq!(
            DsmRange::parse_list(&[], usize::MAX).unwrap_err(),
            DsmError::Short {
                ranges: usize::MAX,
                needed: usize::MAX,
                len: 0
            }
        );
    }
}
