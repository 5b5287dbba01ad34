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
    // Offline takes a Read Only zone the rest of the way (ZNS 1.1 §4.4.3.2.5).
    b.send(ZSIZE, ZoneAction::Offline, false).unwrap();
    assert_eq!(b.zone_set().zone(1).unwrap().state(), ZoneState::Offline);
}
