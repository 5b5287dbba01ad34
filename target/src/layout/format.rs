//! What the layout engine keeps on the zoned media besides host data: the superblock ring,
//! the journal and checkpoints. Every such record starts with a [`MetaHeader`] that names the
//! pool (a random 128-bit identity hosts never see, so a host block that imitates a record
//! is never taken for one) and carries a CRC-32C over the whole record.
//!
//! A journal or checkpoint [`Entry`] is 16 bytes: the key (volume id and volume LBA) and a
//! value that either maps a run of up to 64 blocks to consecutive media blocks, or trims a
//! range.

use zerocopy::little_endian::{U16, U32, U64};
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

/// "FFLY", little endian.
pub const MAGIC: u32 = 0x594c_4646;
/// Format version of every record.
pub const VERSION: u8 = 2;

/// The record kinds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Superblock,
    Journal,
    CheckpointHead,
    CheckpointData,
    /// A page of a volume's map, on a data zone.
    MapPage,
    /// The keys of a data zone's blocks, at the zone's end.
    Footer,
    Unknown(u8),
}

impl Kind {
    pub const fn code(self) -> u8 {
        match self {
            Kind::Superblock => 1,
            Kind::Journal => 2,
            Kind::CheckpointHead => 3,
            Kind::CheckpointData => 4,
            Kind::MapPage => 5,
            Kind::Footer => 6,
            Kind::Unknown(c) => c,
        }
    }

    pub const fn from_code(c: u8) -> Kind {
        match c {
            1 => Kind::Superblock,
            2 => Kind::Journal,
            3 => Kind::CheckpointHead,
            4 => Kind::CheckpointData,
            5 => Kind::MapPage,
            6 => Kind::Footer,
            c => Kind::Unknown(c),
        }
    }
}

/// The first 40 bytes of every metadata record.
#[derive(Clone, Copy, Debug, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable)]
#[repr(C)]
pub struct MetaHeader {
    pub magic: U32,
    pub kind: u8,
    pub version: u8,
    pub rsvd: [u8; 2],
    pub pool_id: [u8; 16],
    /// Superblock generation, journal block sequence or checkpoint sequence.
    pub seq: U64,
    /// Blocks of a superblock record; entries of a journal or checkpoint-data block; entry
    /// blocks of a checkpoint head.
    pub count: U32,
    /// CRC-32C of the record with this field zero.
    pub crc: U32,
}
const _: () = assert!(size_of::<MetaHeader>() == 40);
const CRC_AT: usize = std::mem::offset_of!(MetaHeader, crc);
pub const HEADER: usize = size_of::<MetaHeader>();

/// Why a record was not taken.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RecordError {
    #[error("record is shorter than its header")]
    Short,
    #[error("no record magic")]
    Magic,
    #[error("record of another pool")]
    OtherPool,
    #[error("record format version {0} is not known")]
    Version(u8),
    #[error("record kind {0:?} where {1:?} was expected")]
    Kind(Kind, Kind),
    #[error("record checksum mismatch")]
    Crc,
    #[error("record body is malformed: {0}")]
    Body(&'static str),
}

fn crc_of(record: &[u8]) -> u32 {
    let c = crc32c::crc32c(&record[..CRC_AT]);
    let c = crc32c::crc32c_append(c, &[0; 4]);
    crc32c::crc32c_append(c, &record[CRC_AT + 4..])
}

impl MetaHeader {
    pub fn new(kind: Kind, pool_id: [u8; 16], seq: u64, count: u32) -> MetaHeader {
        MetaHeader {
            magic: MAGIC.into(),
            kind: kind.code(),
            version: VERSION,
            rsvd: [0; 2],
            pool_id,
            seq: seq.into(),
            count: count.into(),
            crc: 0.into(),
        }
    }

    /// Write this header at the start of `record` and seal the record's CRC.
    pub fn seal(&self, record: &mut [u8]) {
        record[..HEADER].copy_from_slice(self.as_bytes());
        let crc = crc_of(record);
        record[CRC_AT..CRC_AT + 4].copy_from_slice(&crc.to_le_bytes());
    }

    /// The header of `record` when it is a whole, intact record of `kind`. With `pool` the
    /// record must belong to that pool; without, any pool's record is read (a new pool's
    /// first look at its media).
    pub fn check(
        record: &[u8],
        kind: Kind,
        pool: Option<&[u8; 16]>,
    ) -> Result<MetaHeader, RecordError> {
        let h = Self::peek(record, kind, pool)?;
        if crc_of(record) != h.crc.get() {
            return Err(RecordError::Crc);
        }
        Ok(h)
    }

    /// The header of `record`, checked except for the CRC (which needs the whole record).
    pub fn peek(
        record: &[u8],
        kind: Kind,
        pool: Option<&[u8; 16]>,
    ) -> Result<MetaHeader, RecordError> {
        let (h, _) = MetaHeader::read_from_prefix(record).map_err(|_| RecordError::Short)?;
        if h.magic.get() != MAGIC {
            return Err(RecordError::Magic);
        }
        if pool.is_some_and(|p| *p != h.pool_id) {
            return Err(RecordError::OtherPool);
        }
        if h.version != VERSION {
            return Err(RecordError::Version(h.version));
        }
        let got = Kind::from_code(h.kind);
        if got != kind {
            return Err(RecordError::Kind(got, kind));
        }
        Ok(h)
    }
}

/// A journal or checkpoint entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable)]
#[repr(C)]
pub struct RawEntry {
    pub key: U64,
    pub val: U64,
}
const _: () = assert!(size_of::<RawEntry>() == 16);
pub const ENTRY: usize = size_of::<RawEntry>();

/// Bits of a volume LBA in a key (the volume id takes the top 16).
pub const LBA_BITS: u32 = 48;
const LBA_MASK: u64 = (1 << LBA_BITS) - 1;
/// Most blocks one map entry covers.
pub const MAX_RUN: u64 = 64;

/// A media location: member drive and LBA on it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Loc {
    pub member: u8,
    pub lba: u64,
}

impl Loc {
    /// The map's encoding: 0 is "unmapped", so the member is stored plus one.
    pub const fn pack(self) -> u64 {
        ((self.member as u64 + 1) << 56) | (self.lba & ((1 << 56) - 1))
    }

    pub const fn unpack(v: u64) -> Option<Loc> {
        if v == 0 {
            return None;
        }
        Some(Loc {
            member: ((v >> 56) - 1) as u8,
            lba: v & ((1 << 56) - 1),
        })
    }

    pub const fn offset(self, n: u64) -> Loc {
        Loc {
            member: self.member,
            lba: self.lba + n,
        }
    }
}

/// A decoded entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Entry {
    /// Blocks `lba .. lba + len` of volume `vol` are at media `at .. at + len`.
    Map {
        vol: u16,
        lba: u64,
        len: u8,
        at: Loc,
    },
    /// Blocks `lba .. lba + len` of volume `vol` are deallocated.
    Trim { vol: u16, lba: u64, len: u64 },
    /// Map page `page` of volume `vol` is at media block `at` (as of this entry: the entries
    /// before it are in that copy).
    Page { vol: u16, page: u64, at: Loc },
}

const KIND_MAP: u64 = 1;
const KIND_TRIM: u64 = 2;
const KIND_PAGE: u64 = 3;

impl Entry {
    pub fn encode(self) -> RawEntry {
        let (vol, lba, val) = match self {
            Entry::Map { vol, lba, len, at } => {
                debug_assert!((1..=MAX_RUN).contains(&u64::from(len)));
                let val = (KIND_MAP << 62)
                    | ((u64::from(len) - 1) << 56)
                    | (u64::from(at.member) << 48)
                    | (at.lba & LBA_MASK);
                (vol, lba, val)
            }
            Entry::Trim { vol, lba, len } => (vol, lba, (KIND_TRIM << 62) | (len & LBA_MASK)),
            Entry::Page { vol, page, at } => (
                vol,
                page,
                (KIND_PAGE << 62) | (u64::from(at.member) << 48) | (at.lba & LBA_MASK),
            ),
        };
        RawEntry {
            key: ((u64::from(vol) << LBA_BITS) | (lba & LBA_MASK)).into(),
            val: val.into(),
        }
    }

    pub fn decode(raw: RawEntry) -> Result<Entry, RecordError> {
        let key = raw.key.get();
        let val = raw.val.get();
        let vol = (key >> LBA_BITS) as u16;
        let lba = key & LBA_MASK;
        match val >> 62 {
            KIND_MAP => Ok(Entry::Map {
                vol,
                lba,
                len: (((val >> 56) & 0x3f) + 1) as u8,
                at: Loc {
                    member: (val >> 48) as u8,
                    lba: val & LBA_MASK,
                },
            }),
            KIND_TRIM if val & !(LBA_MASK | (3 << 62)) == 0 => Ok(Entry::Trim {
                vol,
                lba,
                len: val & LBA_MASK,
            }),
            KIND_PAGE if val & (0x3f << 56) == 0 => Ok(Entry::Page {
                vol,
                page: lba,
                at: Loc {
                    member: (val >> 48) as u8,
                    lba: val & LBA_MASK,
                },
            }),
            _ => Err(RecordError::Body("unknown entry kind")),
        }
    }
}

/// Entries a block of `block_size` bytes holds after its header.
pub const fn entries_per_block(block_size: usize) -> usize {
    (block_size - HEADER) / ENTRY
}

/// A journal or checkpoint-data block holding `entries`.
pub fn entry_block(
    kind: Kind,
    pool_id: [u8; 16],
    seq: u64,
    entries: &[Entry],
    block_size: usize,
) -> Vec<u8> {
    debug_assert!(entries.len() <= entries_per_block(block_size));
    let mut b = vec![0u8; block_size];
    for (e, slot) in entries.iter().zip(b[HEADER..].chunks_exact_mut(ENTRY)) {
        slot.copy_from_slice(e.encode().as_bytes());
    }
    MetaHeader::new(kind, pool_id, seq, entries.len() as u32).seal(&mut b);
    b
}

/// The header and entries of an intact entry block of `kind`.
pub fn parse_entry_block(
    block: &[u8],
    kind: Kind,
    pool: &[u8; 16],
) -> Result<(MetaHeader, Vec<Entry>), RecordError> {
    let h = MetaHeader::check(block, kind, Some(pool))?;
    let n = h.count.get() as usize;
    if n > entries_per_block(block.len()) {
        return Err(RecordError::Body("more entries than a block holds"));
    }
    let entries = block[HEADER..HEADER + n * ENTRY]
        .chunks_exact(ENTRY)
        .map(|c| Entry::decode(RawEntry::read_from_bytes(c).expect("16 bytes")))
        .collect::<Result<Vec<_>, _>>()?;
    Ok((h, entries))
}

/// The fixed part of a superblock record, after its header.
#[derive(Clone, Copy, Debug, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable)]
#[repr(C)]
pub struct SuperBody {
    pub block_size: U32,
    pub members: U32,
    pub zone_size: U64,
    pub zone_cap: U64,
    pub zones_per_member: U64,
    pub checkpoint_zones: U32,
    pub journal_zones: U32,
    pub op_percent: U32,
    /// The checkpoint slot (0 or 1) the latest checkpoint is in.
    pub checkpoint_slot: U32,
    pub checkpoint_seq: U64,
    pub next_volume_id: U16,
    pub volumes: U16,
    pub rsvd: [u8; 4],
}
const _: () = assert!(size_of::<SuperBody>() == 64);

/// One volume in a superblock record.
#[derive(Clone, Copy, Debug, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable)]
#[repr(C)]
pub struct VolumeRecord {
    pub id: U16,
    pub name_len: u8,
    pub rsvd: u8,
    pub block_size: U32,
    pub blocks: U64,
    pub name: [u8; 64],
}
const _: () = assert!(size_of::<VolumeRecord>() == 80);

/// Longest volume name.
pub const MAX_NAME: usize = 64;

/// A decoded superblock.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Superblock {
    pub generation: u64,
    pub body: SuperBody,
    pub volumes: Vec<VolumeDef>,
}

/// A volume as the superblock records it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VolumeDef {
    pub id: u16,
    pub name: String,
    pub block_size: u32,
    pub blocks: u64,
}

impl Superblock {
    /// Blocks of `block_size` bytes the record takes.
    pub fn blocks(&self, block_size: usize) -> usize {
        (HEADER + size_of::<SuperBody>() + self.volumes.len() * size_of::<VolumeRecord>())
            .div_ceil(block_size)
    }

    pub fn encode(&self, pool_id: [u8; 16], block_size: usize) -> Vec<u8> {
        let n = self.blocks(block_size);
        let mut b = vec![0u8; n * block_size];
        let mut body = self.body;
        body.volumes = (self.volumes.len() as u16).into();
        let at = HEADER + size_of::<SuperBody>();
        b[HEADER..at].copy_from_slice(body.as_bytes());
        for (v, slot) in self
            .volumes
            .iter()
            .zip(b[at..].chunks_exact_mut(size_of::<VolumeRecord>()))
        {
            let mut name = [0u8; MAX_NAME];
            name[..v.name.len()].copy_from_slice(v.name.as_bytes());
            let r = VolumeRecord {
                id: v.id.into(),
                name_len: v.name.len() as u8,
                rsvd: 0,
                block_size: v.block_size.into(),
                blocks: v.blocks.into(),
                name,
            };
            slot.copy_from_slice(r.as_bytes());
        }
        MetaHeader::new(Kind::Superblock, pool_id, self.generation, n as u32).seal(&mut b);
        b
    }

    /// A whole superblock record (its header's `count` blocks).
    pub fn decode(record: &[u8], pool: Option<&[u8; 16]>) -> Result<Superblock, RecordError> {
        let h = MetaHeader::check(record, Kind::Superblock, pool)?;
        let at = HEADER + size_of::<SuperBody>();
        let body = SuperBody::read_from_bytes(record.get(HEADER..at).ok_or(RecordError::Short)?)
            .expect("sized");
        let n = usize::from(body.volumes.get());
        let vols = record
            .get(at..at + n * size_of::<VolumeRecord>())
            .ok_or(RecordError::Body("volume table past the record"))?;
        let volumes = vols
            .chunks_exact(size_of::<VolumeRecord>())
            .map(|c| {
                let r = VolumeRecord::read_from_bytes(c).expect("sized");
                let len = usize::from(r.name_len);
                let name = r
                    .name
                    .get(..len)
                    .and_then(|n| std::str::from_utf8(n).ok())
                    .ok_or(RecordError::Body("volume name"))?;
                Ok(VolumeDef {
                    id: r.id.get(),
                    name: name.to_string(),
                    block_size: r.block_size.get(),
                    blocks: r.blocks.get(),
                })
            })
            .collect::<Result<Vec<_>, RecordError>>()?;
        Ok(Superblock {
            generation: h.seq.get(),
            body,
            volumes,
        })
    }
}

/// The body of a checkpoint head block.
#[derive(Clone, Copy, Debug, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable)]
#[repr(C)]
pub struct CheckpointBody {
    /// First journal block sequence the checkpoint does not cover.
    pub journal_seq: U64,
    /// Entries in the checkpoint's data blocks.
    pub entries: U64,
}
const _: () = assert!(size_of::<CheckpointBody>() == 16);
const ZONES_AT: usize = HEADER + size_of::<CheckpointBody>();

/// Zone ids a checkpoint head of `block_size` bytes lists (after a count).
pub const fn head_zones(block_size: usize) -> usize {
    (block_size - ZONES_AT - 4) / 4
}

/// A checkpoint head: its body, then the ids of the data zones without footer (their keys
/// come from the map after a recovery).
pub fn checkpoint_head(
    pool_id: [u8; 16],
    seq: u64,
    data_blocks: u32,
    body: CheckpointBody,
    footerless: &[u32],
    block_size: usize,
) -> Result<Vec<u8>, RecordError> {
    if footerless.len() > head_zones(block_size) {
        return Err(RecordError::Body(
            "more zones without footer than a checkpoint head lists",
        ));
    }
    let mut b = vec![0u8; block_size];
    b[HEADER..ZONES_AT].copy_from_slice(body.as_bytes());
    b[ZONES_AT..ZONES_AT + 4].copy_from_slice(&(footerless.len() as u32).to_le_bytes());
    for (z, slot) in footerless.iter().zip(b[ZONES_AT + 4..].chunks_exact_mut(4)) {
        slot.copy_from_slice(&z.to_le_bytes());
    }
    MetaHeader::new(Kind::CheckpointHead, pool_id, seq, data_blocks).seal(&mut b);
    Ok(b)
}

/// A checkpoint head's header, body and zones without footer.
pub fn parse_checkpoint_head(
    block: &[u8],
    pool: &[u8; 16],
) -> Result<(MetaHeader, CheckpointBody, Vec<u32>), RecordError> {
    let h = MetaHeader::check(block, Kind::CheckpointHead, Some(pool))?;
    let body =
        CheckpointBody::read_from_bytes(block.get(HEADER..ZONES_AT).ok_or(RecordError::Short)?)
            .expect("sized");
    let n = block
        .get(ZONES_AT..ZONES_AT + 4)
        .map(|c| u32::from_le_bytes(c.try_into().expect("4 bytes")) as usize)
        .ok_or(RecordError::Short)?;
    if n > head_zones(block.len()) {
        return Err(RecordError::Body("zone list past the checkpoint head"));
    }
    let zones = block[ZONES_AT + 4..ZONES_AT + 4 + 4 * n]
        .chunks_exact(4)
        .map(|c| u32::from_le_bytes(c.try_into().expect("4 bytes")))
        .collect();
    Ok((h, body, zones))
}

#[cfg(test)]
mod tests {
    use super::*;

    const POOL: [u8; 16] = [7; 16];

    #[test]
    fn header_golden_bytes() {
        let mut b = vec![0u8; 64];
        MetaHeader::new(Kind::Journal, POOL, 0x0102, 3).seal(&mut b);
        assert_eq!(&b[..8], &[0x46, 0x46, 0x4c, 0x59, 2, 2, 0, 0]);
        assert_eq!(&b[8..24], &[7; 16]);
        assert_eq!(&b[24..32], &[2, 1, 0, 0, 0, 0, 0, 0]);
        assert_eq!(&b[32..36], &[3, 0, 0, 0]);
        assert_eq!(
            u32::from_le_bytes(b[36..40].try_into().unwrap()),
            crc_of(&b)
        );
        assert!(MetaHeader::check(&b, Kind::Journal, Some(&POOL)).is_ok());
    }

    #[test]
    fn entry_golden_bytes() {
        let e = Entry::Map {
            vol: 2,
            lba: 0x10,
            len: 64,
            at: Loc {
                member: 1,
                lba: 0x20,
            },
        };
        let raw = e.encode();
        assert_eq!(
            raw.as_bytes(),
            &[
                0x10, 0, 0, 0, 0, 0, 2, 0, // key: vol 2, lba 0x10
                0x20, 0, 0, 0, 0, 0, 1, 0x7f, // map, len 64, member 1, lba 0x20
            ]
        );
        assert_eq!(Entry::decode(raw).unwrap(), e);
        let t = Entry::Trim {
            vol: 1,
            lba: 5,
            len: 1 << 40,
        };
        assert_eq!(Entry::decode(t.encode()).unwrap(), t);
        let bad = RawEntry {
            key: 0.into(),
            val: 0x20.into(),
        };
        assert!(Entry::decode(bad).is_err(), "kind 0 is no kind");
    }

    #[test]
    fn records_refuse_damage_and_other_pools() {
        let e = [Entry::Trim {
            vol: 1,
            lba: 0,
            len: 8,
        }];
        let mut b = entry_block(Kind::Journal, POOL, 9, &e, 4096);
        let (h, got) = parse_entry_block(&b, Kind::Journal, &POOL).unwrap();
        assert_eq!((h.seq.get(), got.as_slice()), (9, &e[..]));
        assert_eq!(
            parse_entry_block(&b, Kind::Journal, &[8; 16]).unwrap_err(),
            RecordError::OtherPool
        );
        assert!(matches!(
            parse_entry_block(&b, Kind::CheckpointData, &POOL),
            Err(RecordError::Kind(..))
        ));
        b[4000] ^= 1;
        assert_eq!(
            parse_entry_block(&b, Kind::Journal, &POOL).unwrap_err(),
            RecordError::Crc
        );
        assert_eq!(
            parse_entry_block(&[0; 8], Kind::Journal, &POOL).unwrap_err(),
            RecordError::Short
        );
    }

    #[test]
    fn superblock_round_trip_over_blocks() {
        let sb = Superblock {
            generation: 4,
            body: SuperBody {
                block_size: 512.into(),
                members: 2.into(),
                zone_size: 2048.into(),
                zone_cap: 2000.into(),
                zones_per_member: 64.into(),
                checkpoint_zones: 1.into(),
                journal_zones: 4.into(),
                op_percent: 10.into(),
                checkpoint_slot: 1.into(),
                checkpoint_seq: 3.into(),
                next_volume_id: 9.into(),
                volumes: 0.into(),
                rsvd: [0; 4],
            },
            volumes: (1..=8)
                .map(|i| VolumeDef {
                    id: i,
                    name: format!("vol-{i}"),
                    block_size: 512,
                    blocks: 1 << i,
                })
                .collect(),
        };
        let b = sb.encode(POOL, 512);
        assert_eq!(b.len(), 512 * sb.blocks(512));
        assert!(sb.blocks(512) > 1);
        let mut back = Superblock::decode(&b, Some(&POOL)).unwrap();
        back.body.volumes = 0.into();
        assert_eq!(back, sb);
    }

    #[test]
    fn checkpoint_head_round_trip() {
        let body = CheckpointBody {
            journal_seq: 77.into(),
            entries: 12.into(),
        };
        let b = checkpoint_head(POOL, 5, 2, body, &[3, 0x0102_0304], 512).unwrap();
        assert_eq!(&b[56..60], &[2, 0, 0, 0], "two zones without footer");
        assert_eq!(&b[64..68], &[4, 3, 2, 1]);
        let (h, got, zones) = parse_checkpoint_head(&b, &POOL).unwrap();
        assert_eq!((h.seq.get(), h.count.get(), got), (5, 2, body));
        assert_eq!(zones, vec![3, 0x0102_0304]);
        assert_eq!(head_zones(512), 113);
        let many = vec![1u32; 114];
        assert!(checkpoint_head(POOL, 5, 2, body, &many, 512).is_err());
    }

    #[test]
    fn page_entry_golden_bytes() {
        let e = Entry::Page {
            vol: 3,
            page: 0x10,
            at: Loc {
                member: 2,
                lba: 0x20,
            },
        };
        let raw = e.encode();
        assert_eq!(raw.key.get(), 0x0003_0000_0000_0010);
        assert_eq!(raw.val.get(), 0xc002_0000_0000_0020);
        assert_eq!(Entry::decode(raw), Ok(e));
        let bad = RawEntry {
            key: raw.key,
            val: (raw.val.get() | 1 << 56).into(),
        };
        assert!(Entry::decode(bad).is_err());
    }
}
