//! The zoned namespace in a backing file: what a reopen finds, and what it refuses.

use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use super::file_store::{HEADER_LEN, RECORD_LEN};
use super::*;

const BS: usize = 512;
const ZSIZE: u64 = 64;
const ZCAP: u64 = 48;
const ZONES: u64 = 8;

/// A directory of its own under the system temp dir, removed when dropped.
struct Scratch(PathBuf);

impl Scratch {
    fn new(name: &str) -> Scratch {
        let dir =
            std::env::temp_dir().join(format!("ferrofab-zoned-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Scratch(dir)
    }

    fn file(&self) -> PathBuf {
        self.0.join("zns0.img")
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn cfg(limits: ZoneLimits) -> ZonedRamConfig {
    ZonedRamConfig {
        block_size: BS as u32,
        zone_size: ZSIZE,
        zone_cap: ZCAP,
        zone_count: ZONES,
        limits,
        zasl: 1,
    }
}

fn limits(max_open: u32, max_active: u32) -> ZoneLimits {
    ZoneLimits {
        max_open,
        max_active,
    }
}

fn pattern(blocks: u64, seed: u8) -> Vec<u8> {
    (0..blocks as usize * BS)
        .map(|i| (i as u8).wrapping_mul(13) ^ seed)
        .collect()
}

fn read(b: &ZonedRamBackend, lba: u64, blocks: u64) -> Vec<u8> {
    let mut buf = vec![0xee; blocks as usize * BS];
    b.read(lba, &mut buf).unwrap();
    buf
}

fn zone(b: &ZonedRamBackend, i: usize) -> (ZoneState, u64) {
    let z = *b.zone_set().zone(i).unwrap();
    (z.state(), z.wp())
}

/// The state code zone `i`'s record holds in the file.
fn recorded_state(path: &Path, i: u64) -> u8 {
    let f = std::fs::File::open(path).unwrap();
    let mut b = [0u8; 1];
    f.read_exact_at(&mut b, HEADER_LEN + i * RECORD_LEN + 8)
        .unwrap();
    b[0]
}

fn open_err(c: ZonedRamConfig, path: &Path) -> String {
    match ZonedRamBackend::open_file(c, path) {
        Ok(_) => panic!("{} opened", path.display()),
        Err(e) => e.to_string(),
    }
}

#[test]
fn zones_and_data_survive_a_reopen() {
    let dir = Scratch::new("survive");
    let path = dir.file();
    let c = cfg(limits(2, 4));
    let (a, e, f, g) = (
        pattern(3, 1),
        pattern(2, 2),
        pattern(1, 3),
        pattern(ZCAP, 4),
    );
    {
        let b = ZonedRamBackend::open_file(c, &path).unwrap();
        assert!(b.may_block());
        assert!(b.info().volatile_write_cache);
        assert_eq!(b.info().num_blocks, ZSIZE * ZONES);
        assert_eq!(b.path(), Some(path.as_path()));
        // Zone 0 implicitly opened; zone 1 explicitly opened, then appended to.
        b.write(0, &a, false).unwrap();
        b.send(ZSIZE, ZoneAction::Open, false).unwrap();
        assert_eq!(b.append(ZSIZE, &e, true).unwrap(), ZSIZE);
        // Zone 2 written then finished: MOR 2 closes zone 0 implicitly for it.
        b.write(2 * ZSIZE, &f, false).unwrap();
        assert_eq!(zone(&b, 0).0, ZoneState::Closed);
        b.send(2 * ZSIZE, ZoneAction::Finish, false).unwrap();
        // Zone 3 filled by writes; zone 4 written then reset; zone 5 closed.
        b.write(3 * ZSIZE, &g, false).unwrap();
        b.write(4 * ZSIZE, &pattern(5, 5), false).unwrap();
        b.send(4 * ZSIZE, ZoneAction::Reset, false).unwrap();
        b.write_zeroes(5 * ZSIZE, 2).unwrap();
        b.send(5 * ZSIZE, ZoneAction::Close, false).unwrap();
        b.flush().unwrap();
    }
    let b = ZonedRamBackend::open_file(c, &path).unwrap();
    let s = ZoneState::Closed;
    assert_eq!(zone(&b, 0), (s, 3));
    assert_eq!(zone(&b, 1), (s, ZSIZE + 2));
    assert_eq!(zone(&b, 2), (ZoneState::Full, 2 * ZSIZE + ZCAP));
    assert_eq!(zone(&b, 3), (ZoneState::Full, 3 * ZSIZE + ZCAP));
    assert_eq!(zone(&b, 4), (ZoneState::Empty, 4 * ZSIZE));
    assert_eq!(zone(&b, 5), (s, 5 * ZSIZE + 2));
    assert_eq!(zone(&b, 6), (ZoneState::Empty, 6 * ZSIZE));
    assert_eq!(
        (b.zone_set().open_count(), b.zone_set().active_count()),
        (0, 3)
    );
    assert_eq!(read(&b, 0, 3), a);
    assert_eq!(read(&b, ZSIZE, 2), e);
    assert_eq!(read(&b, 2 * ZSIZE, 1), f);
    assert_eq!(
        read(&b, 2 * ZSIZE + 1, ZCAP - 1),
        vec![0; (ZCAP as usize - 1) * BS]
    );
    assert_eq!(read(&b, 3 * ZSIZE, ZCAP), g);
    assert_eq!(read(&b, 4 * ZSIZE, 5), vec![0; 5 * BS]);
    assert_eq!(read(&b, 5 * ZSIZE, 3), vec![0; 3 * BS]);
    // Writing goes on at the restored write pointers, under the same rules.
    let h = pattern(2, 6);
    b.write(3, &h, false).unwrap();
    assert_eq!(zone(&b, 0), (ZoneState::ImplicitlyOpened, 5));
    assert_eq!(b.append(ZSIZE, &h, false).unwrap(), ZSIZE + 2);
    assert_eq!(read(&b, 0, 5), [a.clone(), h.clone()].concat());
    let err = b.write(2 * ZSIZE, &h, false);
    assert!(
        matches!(err, Err(BackendError::Device(s)) if s.with_dnr() == Status::ZONE_IS_FULL.with_dnr())
    );
    // MAR 4: zones 0, 1, 5 active, zone 4 makes four; a fifth is refused.
    b.write(4 * ZSIZE, &h, false).unwrap();
    let err = b.write(6 * ZSIZE, &h, false);
    assert!(
        matches!(err, Err(BackendError::Device(s)) if s.with_dnr() == Status::TOO_MANY_ACTIVE_ZONES.with_dnr())
    );
}

#[test]
fn opened_zones_come_back_closed_and_the_file_says_so() {
    let dir = Scratch::new("closed");
    let path = dir.file();
    let c = cfg(ZoneLimits::default());
    {
        let b = ZonedRamBackend::open_file(c, &path).unwrap();
        b.write(0, &pattern(1, 1), false).unwrap();
        b.send(ZSIZE, ZoneAction::Open, false).unwrap();
        assert_eq!(recorded_state(&path, 0), ZoneState::ImplicitlyOpened.code());
        assert_eq!(recorded_state(&path, 1), ZoneState::ExplicitlyOpened.code());
    }
    for _ in 0..2 {
        let b = ZonedRamBackend::open_file(c, &path).unwrap();
        assert_eq!(zone(&b, 0), (ZoneState::Closed, 1));
        assert_eq!(zone(&b, 1), (ZoneState::Closed, ZSIZE));
        assert_eq!(b.zone_set().open_count(), 0);
        assert_eq!(recorded_state(&path, 0), ZoneState::Closed.code());
        assert_eq!(recorded_state(&path, 1), ZoneState::Closed.code());
    }
    // A controller reset closes them too, in the file as well.
    let b = ZonedRamBackend::open_file(c, &path).unwrap();
    b.write(1, &pattern(1, 1), false).unwrap();
    assert_eq!(recorded_state(&path, 0), ZoneState::ImplicitlyOpened.code());
    b.close_all_open();
    assert_eq!(recorded_state(&path, 0), ZoneState::Closed.code());
    // A zone failed to Read Only stays so, data kept.
    b.fail_zone(0, ZoneFault::ReadOnly).unwrap();
    drop(b);
    let b = ZonedRamBackend::open_file(c, &path).unwrap();
    assert_eq!(zone(&b, 0), (ZoneState::ReadOnly, 2));
    assert_eq!(read(&b, 1, 1), pattern(1, 1));
}

#[test]
fn reset_and_unwritten_blocks_read_zero_after_reopen() {
    let dir = Scratch::new("reset");
    let path = dir.file();
    let c = cfg(ZoneLimits::default());
    {
        let b = ZonedRamBackend::open_file(c, &path).unwrap();
        b.write(0, &pattern(ZCAP, 7), false).unwrap();
        b.write(ZSIZE, &pattern(10, 8), false).unwrap();
        b.write(2 * ZSIZE, &pattern(4, 9), false).unwrap();
        b.send(0, ZoneAction::Reset, true).unwrap();
        // Zone 2 is Empty now too; rewritten shorter, its old blocks read zero.
        b.write(2 * ZSIZE, &pattern(1, 10), false).unwrap();
    }
    let b = ZonedRamBackend::open_file(c, &path).unwrap();
    assert_eq!(read(&b, 0, ZCAP), vec![0; ZCAP as usize * BS]);
    assert_eq!(read(&b, ZSIZE, 10), vec![0; 10 * BS]);
    assert_eq!(read(&b, 2 * ZSIZE, 1), pattern(1, 10));
    assert_eq!(read(&b, 2 * ZSIZE + 1, 3), vec![0; 3 * BS]);
    assert_eq!(zone(&b, 0), (ZoneState::Empty, 0));
    assert_eq!(zone(&b, 2), (ZoneState::Closed, 2 * ZSIZE + 1));
}

/// What a crash between a write's data and its record leaves: data past the write pointer.
/// It reads as zeroes, and stays so when Finish moves the write pointer over it.
#[test]
fn data_past_the_write_pointer_never_reads_back() {
    let dir = Scratch::new("leftover");
    let path = dir.file();
    let c = cfg(ZoneLimits::default());
    let b = ZonedRamBackend::open_file(c, &path).unwrap();
    b.write(ZSIZE, &pattern(2, 1), false).unwrap();
    drop(b);
    let data_offset = HEADER_LEN + 4096;
    let f = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
    let stray = pattern(3, 0x55);
    f.write_all_at(&stray, data_offset + (ZSIZE + 2) * BS as u64)
        .unwrap();
    f.write_all_at(&stray, data_offset + 3 * ZSIZE * BS as u64)
        .unwrap();
    drop(f);
    let b = ZonedRamBackend::open_file(c, &path).unwrap();
    assert_eq!(
        read(&b, ZSIZE, 5),
        [pattern(2, 1), vec![0; 3 * BS]].concat()
    );
    assert_eq!(read(&b, 3 * ZSIZE, 3), vec![0; 3 * BS]);
    b.send(ZSIZE, ZoneAction::Finish, false).unwrap();
    b.send(3 * ZSIZE, ZoneAction::Finish, false).unwrap();
    drop(b);
    let b = ZonedRamBackend::open_file(c, &path).unwrap();
    assert_eq!(zone(&b, 1), (ZoneState::Full, ZSIZE + ZCAP));
    assert_eq!(
        read(&b, ZSIZE, 5),
        [pattern(2, 1), vec![0; 3 * BS]].concat()
    );
    assert_eq!(read(&b, 3 * ZSIZE, 3), vec![0; 3 * BS]);
}

#[test]
fn another_geometry_is_refused_and_the_file_left_alone() {
    let dir = Scratch::new("geometry");
    let path = dir.file();
    let c = cfg(limits(2, 4));
    let b = ZonedRamBackend::open_file(c, &path).unwrap();
    b.write(0, &pattern(4, 1), false).unwrap();
    drop(b);
    let before = std::fs::read(&path).unwrap();
    let others = [
        ZonedRamConfig {
            zone_cap: ZCAP - 8,
            ..c
        },
        ZonedRamConfig {
            zone_count: ZONES * 2,
            ..c
        },
        ZonedRamConfig {
            block_size: 4096,
            ..c
        },
        ZonedRamConfig {
            limits: limits(3, 4),
            ..c
        },
        ZonedRamConfig { zasl: 2, ..c },
    ];
    for other in others {
        let msg = open_err(other, &path);
        assert!(msg.contains(&file_store::describe(&c)), "{msg}");
        assert!(msg.contains(&file_store::describe(&other)), "{msg}");
        assert!(msg.contains("refusing"), "{msg}");
    }
    assert_eq!(std::fs::read(&path).unwrap(), before);
    let b = ZonedRamBackend::open_file(c, &path).unwrap();
    assert_eq!(read(&b, 0, 4), pattern(4, 1));
}

#[test]
fn damaged_files_are_refused_without_a_panic() {
    let dir = Scratch::new("damaged");
    let path = dir.file();
    let c = cfg(limits(0, 2));
    drop(ZonedRamBackend::open_file(c, &path).unwrap());
    let good = std::fs::read(&path).unwrap();
    let with = |f: &dyn Fn(&mut Vec<u8>)| {
        let mut bytes = good.clone();
        f(&mut bytes);
        std::fs::write(&path, &bytes).unwrap();
        open_err(c, &path)
    };
    let msg = with(&|b| b[20] ^= 1);
    assert!(msg.contains("checksum") && msg.contains("header"), "{msg}");
    let msg = with(&|b| b[..8].copy_from_slice(b"NOTMAGIC"));
    assert!(msg.contains("not a zoned-ram backing file"), "{msg}");
    let msg = with(&|b| b[8] = 2);
    assert!(msg.contains("version 2"), "{msg}");
    let msg = with(&|b| b.truncate(100));
    assert!(msg.contains("shorter than"), "{msg}");
    let msg = with(&|b| b.clear());
    assert!(msg.contains("0 bytes"), "{msg}");
    let msg = with(&|b| b.truncate(b.len() - BS));
    assert!(msg.contains("truncated"), "{msg}");
    let msg = with(&|b| b[HEADER_LEN as usize + 3 * 16 + 2] ^= 4);
    assert!(msg.contains("zone 3's record is corrupt"), "{msg}");
    // Records that check out but break the zone rules: a copy of zone 0's record in zone 1's
    // slot fails its checksum (the index is in it); so does a hole.
    let msg = with(&|b| {
        let r: Vec<u8> = b[HEADER_LEN as usize..][..16].to_vec();
        b[HEADER_LEN as usize + 16..][..16].copy_from_slice(&r);
    });
    assert!(msg.contains("zone 1's record is corrupt"), "{msg}");
    assert!(with(&|b| b[HEADER_LEN as usize..][..16].fill(0)).contains("zone 0's record"));
    std::fs::write(&path, &good).unwrap();
    // A directory where the file should be.
    let msg = open_err(c, &dir.0);
    assert!(
        msg.contains("not a regular file") || msg.contains("directory"),
        "{msg}"
    );
    // The good file still opens.
    assert!(ZonedRamBackend::open_file(c, &path).is_ok());
}

#[test]
fn records_beyond_the_rules_are_refused() {
    let dir = Scratch::new("rules");
    let path = dir.file();
    // Three zones active, written under no active limit; MAR 2 cannot take them back.
    let loose = cfg(ZoneLimits::default());
    let b = ZonedRamBackend::open_file(loose, &path).unwrap();
    for z in 0..3 {
        b.write(z * ZSIZE, &pattern(1, 1), false).unwrap();
    }
    drop(b);
    // Rewrite the header's limits so only the zone table is at fault.
    let strict = cfg(limits(0, 2));
    let other = dir.0.join("strict.img");
    drop(ZonedRamBackend::open_file(strict, &other).unwrap());
    let mut bytes = std::fs::read(&path).unwrap();
    let header = std::fs::read(&other).unwrap();
    bytes[..HEADER_LEN as usize].copy_from_slice(&header[..HEADER_LEN as usize]);
    std::fs::write(&path, &bytes).unwrap();
    let msg = open_err(strict, &path);
    assert!(
        msg.contains("zone table") && msg.contains("3 zones are active"),
        "{msg}"
    );
}

#[test]
fn creation_replaces_a_stale_temporary_and_needs_a_directory() {
    let dir = Scratch::new("create");
    let path = dir.file();
    let tmp = dir.0.join("zns0.img.new");
    std::fs::write(&tmp, b"left by a crash").unwrap();
    let c = ZonedRamConfig {
        block_size: 4096,
        ..cfg(ZoneLimits::default())
    };
    let b = ZonedRamBackend::open_file(c, &path).unwrap();
    assert!(!tmp.exists());
    assert_eq!(
        std::fs::metadata(&path).unwrap().len(),
        HEADER_LEN + 4096 + ZONES * ZSIZE * 4096
    );
    b.write(0, &vec![3u8; 4096], false).unwrap();
    drop(b);
    let missing = dir.0.join("no-such-dir").join("zns.img");
    assert!(ZonedRamBackend::open_file(c, &missing).is_err());
    // A bad geometry is refused before any file is made.
    let bad = ZonedRamConfig {
        zone_cap: ZSIZE + 1,
        ..c
    };
    assert!(ZonedRamBackend::open_file(bad, dir.0.join("bad.img")).is_err());
    assert!(!dir.0.join("bad.img").exists());
}
