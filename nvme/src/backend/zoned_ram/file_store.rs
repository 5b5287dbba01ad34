//! The backing file of a zoned-ram namespace: its geometry, one record per zone and the data,
//! in one regular file.
//!
//! Layout (integers little-endian):
//!
//! | bytes | what |
//! |---|---|
//! | 0..4096 | header; 0..88 used, the rest zero |
//! | 4096.. | zone table: `zone_count` records of 16 bytes, zone order |
//! | data offset.. | data: `zone_count * zone_size` blocks, LBA order |
//!
//! The header: magic `FFZNSRAM` (8 bytes), format version (u32, 1), block size (u32), zone
//! size, zone capacity, zone count (u64, blocks and zones), max open, max active (u32), ZASL
//! (u8, then 7 zero bytes), the zone table offset, the data offset and the data length (u64,
//! bytes), and an FNV-1a 64 checksum of bytes 0..80. The data offset is the end of the zone
//! table rounded up to 4 KiB, so data blocks stay page-aligned.
//!
//! A zone record: write pointer (u64, an LBA), Zone State code (u8, NVMe ZNS 1.1 Figure 37),
//! 3 zero bytes, and the low 32 bits of FNV-1a 64 over the zone's index (u64) and bytes 0..12.
//! A record is 16 bytes inside one 4 KiB page, so one `pwrite` replaces it whole as far as any
//! later reader of the file sees; the index in its checksum catches a record in the wrong slot.
//!
//! The file is made under a temporary name (`<name>.new`) with every record Empty, synced, and
//! only then linked to its name, so a crash while creating leaves no half-made file behind
//! the name. The data region is sparse (`set_len`); reset zones are deallocated with
//! `fallocate(PUNCH_HOLE)` where the filesystem has it, zero-filled where it does not.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use nix::fcntl::{fallocate, FallocateFlags};

use super::ZonedRamConfig;
use crate::backend::file::{fallocate_unsupported, map_io, off_t};
use crate::backend::null::invalid_input;
use crate::backend::BackendError;
use crate::zns::{ZoneLimits, ZoneRecord, ZoneState};

/// First bytes of every zoned-ram backing file.
pub const MAGIC: [u8; 8] = *b"FFZNSRAM";
/// The format this code writes and reads.
pub const VERSION: u32 = 1;
/// Bytes before the zone table.
pub const HEADER_LEN: u64 = 4096;
/// Bytes of one zone record.
pub const RECORD_LEN: u64 = 16;
/// Bytes of the header that carry something (the checksum is the last 8).
const HEADER_USED: usize = 88;
/// Alignment of the data region.
const DATA_ALIGN: u64 = 4096;
/// Largest piece of zeroes written at once where hole punching is missing.
const ZERO_CHUNK: u64 = 1 << 20;

/// FNV-1a, 64-bit, over `parts` in order.
fn fnv1a(parts: &[&[u8]]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in parts.iter().flat_map(|p| p.iter()) {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// Where things are in the file of a geometry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Layout {
    data_offset: u64,
    data_len: u64,
    file_len: u64,
}

fn layout(cfg: &ZonedRamConfig) -> Result<Layout, BackendError> {
    let too_large = || invalid_input(format!("{} does not fit in a file", describe(cfg)));
    let table = cfg
        .zone_count
        .checked_mul(RECORD_LEN)
        .ok_or_else(too_large)?;
    let data_offset = HEADER_LEN
        .checked_add(table)
        .and_then(|end| end.checked_next_multiple_of(DATA_ALIGN))
        .ok_or_else(too_large)?;
    let data_len = cfg
        .zone_count
        .checked_mul(cfg.zone_size)
        .and_then(|b| b.checked_mul(u64::from(cfg.block_size)))
        .ok_or_else(too_large)?;
    let file_len = data_offset.checked_add(data_len).ok_or_else(too_large)?;
    off_t(file_len)?;
    Ok(Layout {
        data_offset,
        data_len,
        file_len,
    })
}

/// A geometry in words, for messages.
pub fn describe(cfg: &ZonedRamConfig) -> String {
    format!(
        "{} zones of {} {}-byte blocks (capacity {}), max_open {}, max_active {}, zasl {}",
        cfg.zone_count,
        cfg.zone_size,
        cfg.block_size,
        cfg.zone_cap,
        cfg.limits.max_open,
        cfg.limits.max_active,
        cfg.zasl
    )
}

fn encode_header(cfg: &ZonedRamConfig, l: &Layout) -> [u8; HEADER_USED] {
    let mut h = [0u8; HEADER_USED];
    h[0..8].copy_from_slice(&MAGIC);
    h[8..12].copy_from_slice(&VERSION.to_le_bytes());
    h[12..16].copy_from_slice(&cfg.block_size.to_le_bytes());
    h[16..24].copy_from_slice(&cfg.zone_size.to_le_bytes());
    h[24..32].copy_from_slice(&cfg.zone_cap.to_le_bytes());
    h[32..40].copy_from_slice(&cfg.zone_count.to_le_bytes());
    h[40..44].copy_from_slice(&cfg.limits.max_open.to_le_bytes());
    h[44..48].copy_from_slice(&cfg.limits.max_active.to_le_bytes());
    h[48] = cfg.zasl;
    h[56..64].copy_from_slice(&HEADER_LEN.to_le_bytes());
    h[64..72].copy_from_slice(&l.data_offset.to_le_bytes());
    h[72..80].copy_from_slice(&l.data_len.to_le_bytes());
    let sum = fnv1a(&[&h[..80]]);
    h[80..88].copy_from_slice(&sum.to_le_bytes());
    h
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    let mut v = [0u8; 4];
    v.copy_from_slice(&b[at..at + 4]);
    u32::from_le_bytes(v)
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    let mut v = [0u8; 8];
    v.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(v)
}

/// The geometry and layout a header records, or what is wrong with it.
fn decode_header(h: &[u8; HEADER_USED]) -> Result<(ZonedRamConfig, Layout), String> {
    if h[0..8] != MAGIC {
        return Err(format!(
            "not a zoned-ram backing file (magic {:02x?}, expected {:02x?} \"FFZNSRAM\")",
            &h[0..8],
            MAGIC
        ));
    }
    let version = u32_at(h, 8);
    if version != VERSION {
        return Err(format!(
            "zoned-ram file format version {version}; this ferrofab reads version {VERSION}"
        ));
    }
    let (stored, computed) = (u64_at(h, 80), fnv1a(&[&h[..80]]));
    if stored != computed {
        return Err(format!(
            "header checksum {stored:#018x} does not match its contents ({computed:#018x}): the header is corrupt"
        ));
    }
    let cfg = ZonedRamConfig {
        block_size: u32_at(h, 12),
        zone_size: u64_at(h, 16),
        zone_cap: u64_at(h, 24),
        zone_count: u64_at(h, 32),
        limits: ZoneLimits {
            max_open: u32_at(h, 40),
            max_active: u32_at(h, 44),
        },
        zasl: h[48],
    };
    if u64_at(h, 56) != HEADER_LEN {
        return Err(format!(
            "zone table at byte {}, not {HEADER_LEN}",
            u64_at(h, 56)
        ));
    }
    let l = Layout {
        data_offset: u64_at(h, 64),
        data_len: u64_at(h, 72),
        file_len: u64_at(h, 64).saturating_add(u64_at(h, 72)),
    };
    Ok((cfg, l))
}

/// The bytes of zone `index`'s record.
fn encode_record(index: u64, r: ZoneRecord) -> [u8; RECORD_LEN as usize] {
    let mut b = [0u8; RECORD_LEN as usize];
    b[0..8].copy_from_slice(&r.wp.to_le_bytes());
    b[8] = r.state;
    let sum = fnv1a(&[&index.to_le_bytes(), &b[..12]]) as u32;
    b[12..16].copy_from_slice(&sum.to_le_bytes());
    b
}

/// Zone `index`'s record from its bytes, or what is wrong with them. The state and write
/// pointer are checked by [`crate::zns::ZoneSet::restore`].
fn decode_record(index: u64, b: &[u8]) -> Result<ZoneRecord, String> {
    let sum = fnv1a(&[&index.to_le_bytes(), &b[..12]]) as u32;
    if u32_at(b, 12) != sum || b[9..12] != [0, 0, 0] {
        return Err(format!(
            "zone {index}'s record is corrupt (checksum mismatch)"
        ));
    }
    Ok(ZoneRecord {
        wp: u64_at(b, 0),
        state: b[8],
    })
}

/// A damaged or foreign file: `InvalidData`, naming the file.
fn corrupt(path: &Path, what: impl std::fmt::Display) -> BackendError {
    BackendError::Io(io::Error::new(
        io::ErrorKind::InvalidData,
        format!("{}: {what}", path.display()),
    ))
}

/// `path` with `suffix` added to its file name.
fn sibling(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(suffix);
    path.with_file_name(name)
}

/// The data and zone records of a file-backed zoned namespace. Callers serialize access (the
/// backend's zone lock); every call is positioned I/O.
#[derive(Debug)]
pub struct FileStore {
    path: PathBuf,
    file: File,
    block_size: u64,
    data_offset: u64,
    /// Cleared once fallocate(PUNCH_HOLE) reports it is unsupported.
    punch_ok: AtomicBool,
}

impl FileStore {
    /// Open the backing file at `path` for `cfg`, creating it (every zone Empty) when it does
    /// not exist; returns it with the zone records it holds. A file made for another
    /// geometry, or one whose header or zone table is damaged, is refused and left as it is.
    pub fn open(
        path: &Path,
        cfg: &ZonedRamConfig,
    ) -> Result<(FileStore, Vec<ZoneRecord>), BackendError> {
        let want = layout(cfg)?;
        let file = match OpenOptions::new().read(true).write(true).open(path) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                create(path, cfg, &want)?;
                OpenOptions::new().read(true).write(true).open(path)?
            }
            Err(e) => return Err(map_io(e)),
        };
        let meta = file.metadata()?;
        if !meta.file_type().is_file() {
            return Err(invalid_input(format!(
                "{} is not a regular file (a zoned-ram backing file is one)",
                path.display()
            )));
        }
        let len = meta.len();
        let mut h = [0u8; HEADER_USED];
        if len < HEADER_LEN {
            return Err(corrupt(
                path,
                format!("{len} bytes, shorter than the {HEADER_LEN}-byte header of a zoned-ram backing file"),
            ));
        }
        file.read_exact_at(&mut h, 0).map_err(map_io)?;
        let (stored, have) = decode_header(&h).map_err(|e| corrupt(path, e))?;
        if stored != *cfg {
            return Err(invalid_input(format!(
                "{} holds a zoned namespace of {}, but the configuration gives {}; refusing to \
                 open it rather than lose its zones and data (restore the configuration, or move \
                 the file away to start empty)",
                path.display(),
                describe(&stored),
                describe(cfg)
            )));
        }
        if have.data_offset != want.data_offset || have.data_len != want.data_len {
            return Err(corrupt(
                path,
                format!(
                    "header places the data at {}+{}, its geometry at {}+{}",
                    have.data_offset, have.data_len, want.data_offset, want.data_len
                ),
            ));
        }
        if len < want.file_len {
            return Err(corrupt(
                path,
                format!(
                    "{len} bytes; its header needs {} (the file was truncated)",
                    want.file_len
                ),
            ));
        }
        let table_len = usize::try_from(cfg.zone_count * RECORD_LEN)
            .map_err(|_| corrupt(path, "zone table too large for memory"))?;
        let mut table = Vec::new();
        table
            .try_reserve_exact(table_len)
            .map_err(|_| BackendError::NoSpace)?;
        table.resize(table_len, 0);
        file.read_exact_at(&mut table, HEADER_LEN).map_err(map_io)?;
        let records = table
            .chunks_exact(RECORD_LEN as usize)
            .enumerate()
            .map(|(i, b)| decode_record(i as u64, b))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| corrupt(path, e))?;
        Ok((
            FileStore {
                path: path.to_path_buf(),
                file,
                block_size: u64::from(cfg.block_size),
                data_offset: want.data_offset,
                punch_ok: AtomicBool::new(true),
            },
            records,
        ))
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Byte offset of `lba` in the file. The caller has checked `lba` against the zones, so
    /// this cannot overflow (the layout fits in `off_t`).
    fn offset(&self, lba: u64) -> u64 {
        self.data_offset + lba * self.block_size
    }

    /// Read whole blocks at `lba`.
    pub fn read(&self, lba: u64, buf: &mut [u8]) -> Result<(), BackendError> {
        self.file
            .read_exact_at(buf, self.offset(lba))
            .map_err(map_io)
    }

    /// Write whole blocks at `lba` (to the page cache; [`FileStore::sync`] makes it durable).
    pub fn write(&self, lba: u64, data: &[u8]) -> Result<(), BackendError> {
        self.file
            .write_all_at(data, self.offset(lba))
            .map_err(map_io)
    }

    /// Make `blocks` blocks at `lba` read as zeroes: punch a hole, or write zeroes where the
    /// filesystem cannot.
    pub fn zero(&self, lba: u64, blocks: u64) -> Result<(), BackendError> {
        let (offset, len) = (self.offset(lba), blocks * self.block_size);
        if len == 0 {
            return Ok(());
        }
        if self.punch_ok.load(Ordering::Relaxed) {
            let mode = FallocateFlags::FALLOC_FL_PUNCH_HOLE | FallocateFlags::FALLOC_FL_KEEP_SIZE;
            match fallocate(&self.file, mode, off_t(offset)?, off_t(len)?) {
                Ok(()) => return Ok(()),
                Err(e) if fallocate_unsupported(e) => {
                    self.punch_ok.store(false, Ordering::Relaxed);
                    tracing::info!(path = %self.path.display(), error = %e,
                        "fallocate(PUNCH_HOLE) unsupported, zeroing by writes");
                }
                Err(e) => return Err(map_io(e.into())),
            }
        }
        let zeroes = vec![0u8; ZERO_CHUNK.min(len) as usize];
        let mut pos = offset;
        while pos < offset + len {
            let n = ZERO_CHUNK.min(offset + len - pos) as usize;
            self.file.write_all_at(&zeroes[..n], pos).map_err(map_io)?;
            pos += n as u64;
        }
        Ok(())
    }

    /// Replace zone `index`'s record.
    pub fn write_record(&self, index: u64, r: ZoneRecord) -> Result<(), BackendError> {
        self.file
            .write_all_at(&encode_record(index, r), HEADER_LEN + index * RECORD_LEN)
            .map_err(map_io)
    }

    /// Everything written so far onto stable storage (`fdatasync`).
    pub fn sync(&self) -> Result<(), BackendError> {
        self.file.sync_data().map_err(map_io)
    }
}

/// Make the file of `cfg` at `path`: under a temporary name, every record Empty, synced, then
/// linked to `path` (which fails rather than replace a file made meanwhile) and the directory
/// synced.
fn create(path: &Path, cfg: &ZonedRamConfig, l: &Layout) -> Result<(), BackendError> {
    let tmp = sibling(path, ".new");
    // A leftover of a creation that crashed: it never had the name, so it holds nothing.
    match std::fs::remove_file(&tmp) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(map_io(e)),
    }
    let made = (|| {
        let f = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&tmp)
            .map_err(map_io)?;
        f.set_len(l.file_len).map_err(map_io)?;
        let empty = ZoneState::Empty.code();
        let mut table = Vec::with_capacity((1024 * RECORD_LEN) as usize);
        let mut zone = 0;
        while zone < cfg.zone_count {
            table.clear();
            let end = (zone + 1024).min(cfg.zone_count);
            for i in zone..end {
                let r = ZoneRecord {
                    state: empty,
                    wp: i * cfg.zone_size,
                };
                table.extend_from_slice(&encode_record(i, r));
            }
            f.write_all_at(&table, HEADER_LEN + zone * RECORD_LEN)
                .map_err(map_io)?;
            zone = end;
        }
        f.write_all_at(&encode_header(cfg, l), 0).map_err(map_io)?;
        f.sync_all().map_err(map_io)?;
        std::fs::hard_link(&tmp, path).map_err(map_io)
    })();
    let removed = std::fs::remove_file(&tmp);
    made?;
    removed.map_err(map_io)?;
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    File::open(dir).and_then(|d| d.sync_all()).map_err(map_io)?;
    tracing::info!(path = %path.display(), bytes = l.file_len, geometry = %describe(cfg),
        "zoned-ram backing file created");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_and_headers_round_trip_and_catch_damage() {
        let r = ZoneRecord {
            state: ZoneState::Closed.code(),
            wp: 12345,
        };
        let b = encode_record(7, r);
        assert_eq!(decode_record(7, &b), Ok(r));
        // The same bytes in another zone's slot, a flipped bit, all zeroes (a hole).
        assert!(decode_record(8, &b).is_err());
        let mut flipped = b;
        flipped[3] ^= 0x10;
        assert!(decode_record(7, &flipped).is_err());
        assert!(decode_record(0, &[0; 16]).is_err());

        let cfg = ZonedRamConfig {
            block_size: 4096,
            zone_size: 256,
            zone_cap: 192,
            zone_count: 300,
            limits: ZoneLimits {
                max_open: 2,
                max_active: 3,
            },
            zasl: 2,
        };
        let l = layout(&cfg).unwrap();
        // 300 records end at 4096 + 4800; data starts at the next 4 KiB.
        assert_eq!(l.data_offset, 12288);
        assert_eq!(l.data_len, 300 * 256 * 4096);
        let h = encode_header(&cfg, &l);
        assert_eq!(decode_header(&h), Ok((cfg, l)));
        for at in [0, 9, 20, 48, 85] {
            let mut bad = h;
            bad[at] ^= 1;
            assert!(decode_header(&bad).is_err(), "byte {at}");
        }
        let huge = ZonedRamConfig {
            zone_count: u64::MAX / 8,
            ..cfg
        };
        assert!(layout(&huge).is_err());
    }
}
