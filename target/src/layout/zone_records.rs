//! The records the layout engine keeps on data zones besides host data: map pages (one media
//! block holding a run of a volume's L2P entries) and zone footers (the key of every data
//! block of a zone, written once the zone's data is complete, so GC needs no P2L in DRAM).
//!
//! Both start with a [`MetaHeader`]: a map page's `seq` is its key (volume and page number),
//! so a copy of another page is never taken for this one; a footer block's `seq` is the
//! zone's start LBA and its body starts with a [`FooterBody`].

use zerocopy::little_endian::{U32, U64};
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

use super::format::{Kind, MetaHeader, RecordError, HEADER};

/// Map entries a page of `block_size` bytes holds (8 bytes each: a packed location).
pub const fn entries_per_page(block_size: usize) -> u64 {
    ((block_size - HEADER) / 8) as u64
}

/// Write map page `key` holding `entries` into `block` (one media block).
pub fn encode_page(
    block: &mut [u8],
    pool_id: [u8; 16],
    key: u64,
    entries: impl Iterator<Item = u64>,
) {
    block.fill(0);
    let mut n = 0u32;
    for (e, slot) in entries.zip(block[HEADER..].chunks_exact_mut(8)) {
        slot.copy_from_slice(&e.to_le_bytes());
        n += 1;
    }
    MetaHeader::new(Kind::MapPage, pool_id, key, n).seal(block);
}

/// The entries of map page `key`, read from `block`, into `out`.
pub fn decode_page(
    block: &[u8],
    pool: &[u8; 16],
    key: u64,
    out: &mut [u64],
) -> Result<(), RecordError> {
    let h = MetaHeader::check(block, Kind::MapPage, Some(pool))?;
    if h.seq.get() != key {
        return Err(RecordError::Body("map page of another volume or page"));
    }
    if h.count.get() as usize != out.len() || out.len() > (block.len() - HEADER) / 8 {
        return Err(RecordError::Body("map page entry count"));
    }
    for (o, c) in out.iter_mut().zip(block[HEADER..].chunks_exact(8)) {
        let mut v = U64::ZERO;
        v.as_mut_bytes().copy_from_slice(c);
        *o = v.get();
    }
    Ok(())
}

/// What a footer block says of its zone, after its header.
#[derive(Clone, Copy, Debug, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable)]
#[repr(C)]
pub struct FooterBody {
    /// Data blocks of the zone (the footer follows them).
    pub data_blocks: U32,
    /// This block's place in the footer.
    pub index: U32,
}
const _: () = assert!(size_of::<FooterBody>() == 8);
const KEYS_AT: usize = HEADER + size_of::<FooterBody>();

/// Keys a footer block of `block_size` bytes holds.
pub const fn keys_per_footer_block(block_size: usize) -> u64 {
    ((block_size - KEYS_AT) / 8) as u64
}

/// How a zone of `cap` blocks splits: (data blocks, footer blocks), the footer as small as
/// holds a key for every data block.
pub const fn zone_split(cap: u64, block_size: usize) -> (u64, u64) {
    let footer = cap.div_ceil(keys_per_footer_block(block_size) + 1);
    (cap - footer, footer)
}

/// The footer of the zone at `zslba` for the data blocks' `keys` (0: no key), over
/// `blocks` blocks (at least those the keys take; the rest hold none), so that the zone is
/// written to its capacity and ends full (NVMe ZNS 1.1 §2.1.1.3).
pub fn encode_footer(
    pool_id: [u8; 16],
    zslba: u64,
    keys: &[u64],
    block_size: usize,
    blocks: usize,
) -> Vec<u8> {
    let per = keys_per_footer_block(block_size) as usize;
    let blocks = keys.len().div_ceil(per).max(blocks).max(1);
    let mut out = vec![0u8; blocks * block_size];
    for (i, b) in out.chunks_exact_mut(block_size).enumerate() {
        let part = keys
            .get(i * per..keys.len().min((i + 1) * per))
            .unwrap_or(&[]);
        let body = FooterBody {
            data_blocks: (keys.len() as u32).into(),
            index: (i as u32).into(),
        };
        b[HEADER..KEYS_AT].copy_from_slice(body.as_bytes());
        for (k, slot) in part.iter().zip(b[KEYS_AT..].chunks_exact_mut(8)) {
            slot.copy_from_slice(&k.to_le_bytes());
        }
        MetaHeader::new(Kind::Footer, pool_id, zslba, part.len() as u32).seal(b);
    }
    out
}

/// The keys of `data_blocks` data blocks from the footer of the zone at `zslba`.
pub fn decode_footer(
    blocks: &[u8],
    pool: &[u8; 16],
    zslba: u64,
    data_blocks: u64,
    block_size: usize,
) -> Result<Vec<u64>, RecordError> {
    let per = keys_per_footer_block(block_size) as usize;
    let mut keys = Vec::with_capacity(data_blocks as usize);
    for (i, b) in blocks.chunks_exact(block_size).enumerate() {
        if keys.len() as u64 == data_blocks {
            break;
        }
        let h = MetaHeader::check(b, Kind::Footer, Some(pool))?;
        let body = FooterBody::read_from_bytes(&b[HEADER..KEYS_AT]).expect("sized");
        let n = h.count.get() as usize;
        if h.seq.get() != zslba
            || u64::from(body.data_blocks.get()) != data_blocks
            || body.index.get() as usize != i
            || n > per
            || keys.len() + n > data_blocks as usize
        {
            return Err(RecordError::Body("footer of another zone or layout"));
        }
        keys.extend(
            b[KEYS_AT..KEYS_AT + n * 8]
                .chunks_exact(8)
                .map(|c| u64::from_le_bytes(c.try_into().expect("8 bytes"))),
        );
    }
    if keys.len() as u64 != data_blocks {
        return Err(RecordError::Body("footer shorter than its zone's data"));
    }
    Ok(keys)
}

#[cfg(test)]
mod tests {
    use super::*;

    const POOL: [u8; 16] = [9; 16];

    #[test]
    fn page_golden_bytes_and_checks() {
        let mut b = vec![0u8; 512];
        encode_page(
            &mut b,
            POOL,
            0x0001_0000_0000_0003,
            [5u64, 0, 7].into_iter(),
        );
        assert_eq!(b[4], 5, "kind MapPage");
        assert_eq!(&b[24..32], &[3, 0, 0, 0, 0, 0, 1, 0], "seq is the page key");
        assert_eq!(&b[32..36], &[3, 0, 0, 0]);
        assert_eq!(&b[40..48], &[5, 0, 0, 0, 0, 0, 0, 0]);
        assert_eq!(&b[56..64], &[7, 0, 0, 0, 0, 0, 0, 0]);
        let mut out = [0u64; 3];
        decode_page(&b, &POOL, 0x0001_0000_0000_0003, &mut out).unwrap();
        assert_eq!(out, [5, 0, 7]);
        assert!(decode_page(&b, &POOL, 4, &mut out).is_err(), "another page");
        assert!(decode_page(&b, &[1; 16], 0x0001_0000_0000_0003, &mut out).is_err());
        let mut short = [0u64; 2];
        assert!(decode_page(&b, &POOL, 0x0001_0000_0000_0003, &mut short).is_err());
        b[60] ^= 1;
        assert_eq!(
            decode_page(&b, &POOL, 0x0001_0000_0000_0003, &mut out),
            Err(RecordError::Crc)
        );
        assert_eq!(entries_per_page(4096), 507);
        assert_eq!(entries_per_page(512), 59);
    }

    #[test]
    fn footer_round_trip_golden_and_refusals() {
        assert_eq!(keys_per_footer_block(512), 58);
        assert_eq!(zone_split(64, 512), (62, 2));
        assert_eq!(zone_split(262_144, 4096), (261_626, 518));
        let keys: Vec<u64> = (0..62).map(|i| i * 3).collect();
        let f = encode_footer(POOL, 0x40, &keys, 512, 2);
        assert_eq!(f.len(), 1024);
        // A zone of 60 blocks keeps 2 for the keys of its 58 data blocks, which 1 holds:
        // the footer still fills both, so the zone ends full.
        assert_eq!(zone_split(60, 512), (58, 2));
        let padded = encode_footer(POOL, 0x40, &keys[..58], 512, 2);
        assert_eq!(padded.len(), 1024);
        assert_eq!(
            &padded[512 + 32..512 + 36],
            &[0, 0, 0, 0],
            "no keys in the second"
        );
        assert_eq!(
            decode_footer(&padded, &POOL, 0x40, 58, 512).unwrap(),
            keys[..58]
        );
        assert_eq!(b"FFLY", &f[..4]);
        assert_eq!(f[4], 6, "kind Footer");
        assert_eq!(&f[24..32], &[0x40, 0, 0, 0, 0, 0, 0, 0]);
        assert_eq!(&f[32..36], &[58, 0, 0, 0]);
        assert_eq!(
            &f[40..48],
            &[62, 0, 0, 0, 0, 0, 0, 0],
            "62 data blocks, index 0"
        );
        assert_eq!(&f[512 + 44..512 + 48], &[1, 0, 0, 0], "index 1");
        assert_eq!(decode_footer(&f, &POOL, 0x40, 62, 512).unwrap(), keys);
        assert!(
            decode_footer(&f, &POOL, 0x80, 62, 512).is_err(),
            "another zone"
        );
        assert!(
            decode_footer(&f, &POOL, 0x40, 61, 512).is_err(),
            "another split"
        );
        assert!(
            decode_footer(&f[..512], &POOL, 0x40, 62, 512).is_err(),
            "cut short"
        );
        let mut torn = f.clone();
        torn[600] ^= 1;
        assert_eq!(
            decode_footer(&torn, &POOL, 0x40, 62, 512),
            Err(RecordError::Crc)
        );
    }
}
