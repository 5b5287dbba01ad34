//! The in-memory zoned namespace.

use zerocopy::FromBytes;

use super::*;
use crate::zns::ZoneDescriptor;

const BS: usize = 512;
const ZSIZE: u64 = 256;
const ZCAP: u64 = 200;

fn backend(limits: ZoneLimits, zasl: u8) -> ZonedRamBackend {
    ZonedRamBackend::new(ZonedRamConfig {
        block_size: BS as u32,
        zone_size: ZSIZE,
        zone_cap: ZCAP,
        zone_count: 8,
        limits,
        zasl,
    })
    .unwrap()
}

fn pattern(blocks: usize, seed: u8) -> Vec<u8> {
    (0..blocks * BS).map(|i| (i as u8) ^ seed).collect()
}

fn read(b: &ZonedRamBackend, lba: u64, blocks: usize) -> Vec<u8> {
    let mut buf = vec![0xee; blocks * BS];
    b.read(lba, &mut buf).unwrap();
    buf
}

fn status(r: Result<impl std::fmt::Debug, BackendError>) -> Status {
    match r {
        Err(BackendError::Device(s)) => {
            assert!(s.dnr, "zone rule statuses carry DNR: {s:?}");
            Status { dnr: false, ..s }
        }
        other => panic!("expected a device status, got {other:?}"),
    }
}

#[test]
fn writes_at_the_write_pointer_read_back() {
    let b = backend(ZoneLimits::default(), 0);
    let first = pattern(3, 1);
    b.write(ZSIZE, &first, false).unwrap();
    let second = pattern(2, 2);
    b.write(ZSIZE + 3, &second, false).unwrap();
    assert_eq!(read(&b, ZSIZE, 3), first);
    assert_eq!(read(&b, ZSIZE + 3, 2), second);
    assert_eq!(read(&b, ZSIZE + 5, 1), vec![0; BS]);
    assert_eq!(
        status(b.write(ZSIZE + 9, &first, false)),
        Status::ZONE_INVALID_WRITE
    );
    // The failed write stored nothing.
    assert_eq!(read(&b, ZSIZE + 9, 3), vec![0; 3 * BS]);
    let z = *b.zone_set().zone(1).unwrap();
    assert_eq!(
        (z.state(), z.wp()),
        (ZoneState::ImplicitlyOpened, ZSIZE + 5)
    );
    assert_eq!(
        status(b.read(ZSIZE - 1, &mut [0; 2 * BS])),
        Status::ZONE_BOUNDARY_ERROR
    );
    assert!(matches!(
        b.write(ZSIZE + 5, &[0; 100], false),
        Err(BackendError::Misaligned { .. })
    ));
}

#[test]
fn append_returns_the_lba_written() {
    let b = backend(ZoneLimits::default(), 1);
    let a = pattern(4, 3);
    let c = pattern(16, 4);
    assert_eq!(b.append(2 * ZSIZE, &a, false).unwrap(), 2 * ZSIZE);
    assert_eq!(b.append(2 * ZSIZE, &c, false).unwrap(), 2 * ZSIZE + 4);
    assert_eq!(read(&b, 2 * ZSIZE, 4), a);
    assert_eq!(read(&b, 2 * ZSIZE + 4, 16), c);
    // ZASL 1: at most 8 KiB per append.
    assert_eq!(
        status(b.append(2 * ZSIZE, &pattern(17, 0), false)),
        Status::INVALID_FIELD
    );
    assert_eq!(
        status(b.append(2 * ZSIZE + 1, &a, false)),
        Status::INVALID_FIELD
    );
    assert_eq!(
        status(b.append(8 * ZSIZE, &a, false)),
        Status::LBA_OUT_OF_RANGE
    );
    assert_eq!(b.zone_set().zone(2).unwrap().wp(), 2 * ZSIZE + 20);
}

#[test]
fn reset_reads_zero_and_rewinds() {
    let b = backend(ZoneLimits::default(), 0);
    b.write(0, &pattern(ZCAP as usize, 5), false).unwrap();
    assert_eq!(b.zone_set().zone(0).unwrap().state(), ZoneState::Full);
    assert_eq!(
        status(b.write(ZCAP, &pattern(1, 0), false)),
        Status::ZONE_IS_FULL
    );
    b.write(ZSIZE, &pattern(1, 6), false).unwrap();
    b.send(0, ZoneAction::Reset, true).unwrap();
    assert_eq!(read(&b, 0, ZCAP as usize), vec![0; ZCAP as usize * BS]);
    assert_eq!(read(&b, ZSIZE, 1), vec![0; BS]);
    let z = *b.zone_set().zone(0).unwrap();
    assert_eq!((z.state(), z.wp()), (ZoneState::Empty, 0));
    let again = pattern(2, 7);
    b.write(0, &again, false).unwrap();
    assert_eq!(read(&b, 0, 2), again);
}

#[test]
fn limits_write_zeroes_and_report() {
    let b = backend(
        ZoneLimits {
            max_open: 1,
            max_active: 2,
        },
        0,
    );
    b.write(0, &pattern(1, 1), false).unwrap();
    b.write_zeroes(ZSIZE, 2).unwrap();
    assert_eq!(read(&b, ZSIZE, 2), vec![0; 2 * BS]);
    assert_eq!(
        status(b.write_zeroes(2 * ZSIZE, 1)),
        Status::TOO_MANY_ACTIVE_ZONES
    );
    b.send(ZSIZE, ZoneAction::Open, false).unwrap();
    assert_eq!(
        status(b.send(0, ZoneAction::Open, false)),
        Status::TOO_MANY_OPEN_ZONES
    );
    let mut out = [0u8; 64 * 3];
    b.report(0, ReportOption::Closed, false, &mut out).unwrap();
    assert_eq!(u64::from_le_bytes(out[..8].try_into().unwrap()), 1);
    let d = ZoneDescriptor::read_from_bytes(&out[64..128]).unwrap();
    assert_eq!(d, ZoneDescriptor::new(ZoneState::Closed, ZCAP, 0, 1));
    b.close_all_open();
    assert_eq!(b.zone_set().open_count(), 0);
    assert_eq!(b.zone_set().active_count(), 2);
}

#[test]
fn bad_geometry_is_refused() {
    let cfg = |zone_cap, zone_count, zasl| ZonedRamConfig {
        block_size: 4096,
        zone_size: 16,
        zone_cap,
        zone_count,
        limits: ZoneLimits::default(),
        zasl,
    };
    assert!(ZonedRamBackend::new(cfg(17, 4, 0)).is_err());
    assert!(ZonedRamBackend::new(cfg(16, 0, 0)).is_err());
    assert!(ZonedRamBackend::new(cfg(16, 1 << 60, 0)).is_err());
    assert!(ZonedRamBackend::new(cfg(16, 4, 60)).is_err());
    let ok = ZonedRamBackend::new(cfg(16, 4, 5)).unwrap();
    assert_eq!(Backend::info(&ok).num_blocks, 64);
    assert_eq!(ok.config().zasl, 5);
}

#[test]
fn failed_zones_refuse_io_and_are_listed_until_read() {
    let b = backend(ZoneLimits::default(), 0);
    b.write(ZSIZE, &pattern(2, 1), false).unwrap();
    b.fail_zone(ZSIZE, ZoneFault::ReadOnly).unwrap();
    b.fail_zone(3 * ZSIZE, ZoneFault::Offline).unwrap();
    // A zone start is needed; an Offline zone stays Offline.
    assert!(matches!(
        b.fail_zone(3 * ZSIZE, ZoneFault::ReadOnly),
        Err(ZoneFaultError::Offline(_))
    ));
    assert!(matches!(
        b.fail_zone(1, ZoneFault::Offline),
        Err(ZoneFaultError::NoSuchZone(1))
    ));
    // ZNS 1.1 §2.1.1.6-7: a Read Only zone reads but takes no writes; an Offline one neither.
    assert_eq!(read(&b, ZSIZE, 2), pattern(2, 1));
    assert_eq!(
        status(b.write(ZSIZE + 2, &pattern(1, 0), false)),
        Status::ZONE_IS_READ_ONLY
    );
    assert_eq!(
        status(b.append(ZSIZE, &pattern(1, 0), false)),
        Status::ZONE_IS_READ_ONLY
    );
    assert_eq!(
        status(b.read(3 * ZSIZE, &mut [0; BS])),
        Status::ZONE_IS_OFFLINE
    );
    // The Changed Zone List holds both, in zone order, until read with the list cleared.
    assert_eq!(b.changed_zones(false), vec![ZSIZE, 3 * ZSIZE]);
    assert_eq!(b.changed_zones(true), vec![ZSIZE, 3 * ZSIZE]);
    assert!(b.changed_zones(false).is_empty());
    // Offline takes a Read Only zone the rest of the way (ZNS 1.1 §4.4.3.2.5), and its
    // blocks no longer read; with Select All, every Read Only zone.
    b.send(ZSIZE, ZoneAction::Offline, false).unwrap();
    assert_eq!(b.zone_set().zone(1).unwrap().state(), ZoneState::Offline);
    assert_eq!(status(b.read(ZSIZE, &mut [0; BS])), Status::ZONE_IS_OFFLINE);
    b.fail_zone(2 * ZSIZE, ZoneFault::ReadOnly).unwrap();
    assert_eq!(read(&b, 2 * ZSIZE, 1), vec![0; BS]);
    b.send(0, ZoneAction::Offline, true).unwrap();
    assert_eq!(
        status(b.read(2 * ZSIZE + 1, &mut [0; BS])),
        Status::ZONE_IS_OFFLINE
    );
    // A zone that never failed still reads, within its bounds only.
    assert_eq!(read(&b, 0, 1), vec![0; BS]);
    assert_eq!(
        status(b.read(ZSIZE - 1, &mut [0; 2 * BS])),
        Status::ZONE_BOUNDARY_ERROR
    );
}

/// Blocks of `blocks` x `bs` bytes, each stamped with `stamp` and its index in the data,
/// so a block holding anything else (zeroes, another write's data, a torn copy) shows.
fn stamped(stamp: u64, blocks: usize, bs: usize) -> Vec<u8> {
    let mut v = vec![0u8; blocks * bs];
    for (b, block) in v.chunks_mut(bs).enumerate() {
        for (w, word) in block.chunks_mut(8).enumerate() {
            let x = stamp.rotate_left(17) ^ ((b as u64) << 32) ^ w as u64;
            word.copy_from_slice(&x.to_le_bytes());
        }
    }
    v
}

/// A namespace of 4 KiB blocks and 4 MiB zones (64 chunks of the RAM store each), appends
/// of any size: large copies, which run outside the zone lock.
fn big_zones() -> ZonedRamBackend {
    ZonedRamBackend::new(ZonedRamConfig {
        block_size: 4096,
        zone_size: 1024,
        zone_cap: 1024,
        zone_count: 4,
        limits: ZoneLimits::default(),
        zasl: 0,
    })
    .unwrap()
}

#[test]
fn reads_of_one_zone_see_written_data_while_another_is_appended_and_reset() {
    let b = big_zones();
    let written = stamped(7, 1, 4096);
    // Zone 1's block 5, in the zone's first chunk; zone 0 takes the appends.
    b.write(1024, &stamped(1, 5, 4096), false).unwrap();
    b.write(1024 + 5, &written, false).unwrap();
    let stop = std::sync::atomic::AtomicBool::new(false);
    std::thread::scope(|s| {
        s.spawn(|| {
            let mut seq = 0u64;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                seq += 1;
                // 256 KiB, as GC's largest copies; Reset once the zone is full.
                match b.append(0, &stamped(seq, 64, 4096), false) {
                    Ok(_) => {}
                    Err(_) => b.send(0, ZoneAction::Reset, false).unwrap(),
                }
            }
        });
        let mut buf = vec![0u8; 4096];
        for i in 0..20_000 {
            b.read(1024 + 5, &mut buf).unwrap();
            assert!(
                buf == written,
                "read {i} of a written block returned other data"
            );
        }
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
    });
}

#[test]
fn each_append_reads_back_its_own_data_while_others_append_to_the_zone() {
    const THREADS: u64 = 4;
    let b = big_zones();
    let landed = std::sync::Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for t in 0..THREADS {
            let (b, landed) = (&b, &landed);
            s.spawn(move || {
                let mut mine = Vec::new();
                for seq in 0u64.. {
                    let stamp = t << 32 | seq;
                    // 1 to 8 blocks: some cross a 64 KiB chunk of the RAM store.
                    let blocks = 1 + ((seq * 7 + t * 5) % 8) as usize;
                    let data = stamped(stamp, blocks, 4096);
                    let Ok(lba) = b.append(2048, &data, false) else {
                        break;
                    };
                    let mut back = vec![0u8; data.len()];
                    b.read(lba, &mut back).unwrap();
                    assert!(
                        back == data,
                        "thread {t} append {seq} at {lba} reads other data"
                    );
                    mine.push((lba, blocks as u64, stamp));
                }
                landed.lock_counted().extend(mine);
            });
        }
    });
    // The appends tile the zone from its start to the write pointer, each holding its data.
    let mut landed = landed.into_inner().unwrap();
    landed.sort_unstable();
    let mut next = 2048;
    for &(lba, blocks, stamp) in &landed {
        assert_eq!(lba, next, "appends are adjacent and distinct");
        let mut back = vec![0u8; blocks as usize * 4096];
        b.read(lba, &mut back).unwrap();
        assert!(
            back == stamped(stamp, blocks as usize, 4096),
            "append at {lba} was overwritten"
        );
        next += blocks;
    }
    assert_eq!(b.zone_set().zone(2).unwrap().wp(), next);
    assert!(landed.len() > 100, "{} appends", landed.len());
}

#[test]
fn a_reset_while_an_append_copies_leaves_the_zone_zero() {
    let b = big_zones();
    // 2 MiB: 32 chunks of the RAM store to allocate and fill after the lock is released.
    let data = stamped(3, 512, 4096);
    let moved = || b.zone_set().zone(3).unwrap().wp() != 3072;
    for trial in 0..300 {
        std::thread::scope(|s| {
            s.spawn(|| b.append(3072, &data, false).unwrap());
            // The Reset comes as soon as the append has moved the write pointer, most
            // likely while its data is still being copied.
            while !moved() {
                std::thread::yield_now();
            }
            b.send(3072, ZoneAction::Reset, false).unwrap();
        });
        // The Reset waited for the copy, then freed the zone: no block of the append lands
        // after it, past the write pointer, to read back or to be overwritten later.
        assert_eq!(b.zone_set().zone(3).unwrap().wp(), 3072);
        let mut back = vec![0xeeu8; 1024 * 4096];
        b.read(3072, &mut back).unwrap();
        let stale = back
            .chunks(4096)
            .filter(|x| x.iter().any(|&y| y != 0))
            .count();
        assert_eq!(
            stale, 0,
            "trial {trial}: blocks of the append after the Reset"
        );
    }
}
