use bytes::Bytes;

use super::*;
use crate::backend::{Backend, BackendError};
use crate::driver::model::{NsModel, ZonedModel};
use crate::driver::nvme_driver::{block_on, DriverNamespace};
use crate::zns::{ReportOption, ZoneAction, ZoneState};
use crate::Status;

const ZONE: u64 = 64;
const CAP: u64 = 48;
const BS: usize = 4096;

/// NSID 1: 8 zones of 64 blocks (48 writable), at most 2 open and 3 active; NSID 2: plain.
/// ZASL 1: appends of up to 8 KiB.
fn zoned_rig() -> Rig {
    rig(ModelConfig {
        zasl: 1,
        namespaces: vec![
            NsModel {
                block_size: BS as u32,
                blocks: 8 * ZONE,
                zoned: Some(ZonedModel {
                    zone_size: ZONE,
                    zone_cap: CAP,
                    max_open: 2,
                    max_active: 3,
                }),
            },
            NsModel {
                block_size: 512,
                blocks: 4096,
                zoned: None,
            },
        ],
        ..ModelConfig::default()
    })
}

fn device_status(r: Result<(), BackendError>) -> u8 {
    match r {
        Err(BackendError::Device(s)) => s.sc,
        other => panic!("expected a device status, got {other:?}"),
    }
}

fn write(
    ns: &DriverNamespace<Arc<HeapDma>>,
    lba: u64,
    blocks: u64,
    seed: u8,
) -> Result<(), BackendError> {
    Backend::write(ns, lba, &pattern(blocks as usize * BS, seed), false)
}

#[test]
fn zoned_namespaces_are_identified() {
    let r = zoned_rig();
    let info = r.driver.info();
    assert_eq!(info.zone_append_limit, Some(8192));
    assert_eq!(info.io_command_sets.map(|v| v & 0b101), Some(0b101));
    let z = info.namespaces[0].zoned.clone().unwrap();
    assert_eq!(
        (z.zone_size, z.max_open, z.max_active),
        (ZONE, Some(2), Some(3))
    );
    assert_eq!(info.namespaces[1].zoned, None);
    assert_eq!(info.namespaces[1].block_size, 512);
    let plain = r.driver.namespace(2).unwrap();
    assert!(plain.report_zones(0, ReportOption::All, false, 4).is_err());
    assert!(plain.zone_action(0, false, ZoneAction::Open).is_err());
    assert!(block_on(plain.append(0, Bytes::from(vec![0; 512]))).is_err());
}

#[test]
fn report_zones_lists_state_capacity_and_write_pointer() {
    let r = zoned_rig();
    let ns = r.driver.namespace(1).unwrap();
    let (n, zones) = ns.report_zones(0, ReportOption::All, false, 8).unwrap();
    assert_eq!((n, zones.len()), (8, 8));
    for (i, z) in zones.iter().enumerate() {
        let zslba = i as u64 * ZONE;
        assert_eq!(z.state(), Some(ZoneState::Empty));
        assert_eq!(
            (z.zslba.get(), z.wp.get(), z.zcap.get()),
            (zslba, zslba, CAP)
        );
    }
    write(&ns, ZONE, 5, 1).unwrap();
    // Partial: the count is what was returned; without, all matching zones from SLBA on.
    let (n, zones) = ns.report_zones(0, ReportOption::All, true, 3).unwrap();
    assert_eq!((n, zones.len()), (3, 3));
    assert_eq!(zones[1].state(), Some(ZoneState::ImplicitlyOpened));
    assert_eq!(zones[1].wp.get(), ZONE + 5);
    let (n, zones) = ns
        .report_zones(2 * ZONE, ReportOption::All, false, 2)
        .unwrap();
    assert_eq!((n, zones.len()), (6, 2));
    assert_eq!(zones[0].zslba.get(), 2 * ZONE);
    let (n, zones) = ns
        .report_zones(0, ReportOption::ImplicitlyOpened, false, 8)
        .unwrap();
    assert_eq!((n, zones[0].zslba.get()), (1, ZONE));
    let (n, _) = ns.report_zones(0, ReportOption::Empty, false, 8).unwrap();
    assert_eq!(n, 7);
}

#[test]
fn writes_follow_the_write_pointer_until_full() {
    let r = zoned_rig();
    let ns = r.driver.namespace(1).unwrap();
    write(&ns, 0, 10, 1).unwrap();
    assert_eq!(r.ctrl.zone(1, 0), Some((ZoneState::ImplicitlyOpened, 10)));
    // Not at the write pointer.
    assert_eq!(
        device_status(write(&ns, 5, 1, 2)),
        Status::ZONE_INVALID_WRITE.sc
    );
    assert_eq!(
        device_status(write(&ns, 11, 1, 2)),
        Status::ZONE_INVALID_WRITE.sc
    );
    // A write larger than MDTS is split into commands that each land at the write pointer:
    // one on the queue at a time, as the drive may run queued commands in any order.
    r.ctrl.take_largest_io_fetch();
    write(&ns, 10, 38, 3).unwrap();
    assert_eq!(r.ctrl.take_largest_io_fetch(), 1);
    // The write pointer of a full zone has no meaning (ZNS 1.1 §2.1.1.6); only the state.
    assert_eq!(r.ctrl.zone(1, 0).unwrap().0, ZoneState::Full);
    assert_eq!(device_status(write(&ns, 48, 1, 4)), Status::ZONE_IS_FULL.sc);
    let mut want = pattern(10 * BS, 1);
    want.extend(pattern(38 * BS, 3));
    let mut back = vec![0; CAP as usize * BS];
    Backend::read(&*ns, 0, &mut back).unwrap();
    assert!(back == want);
    // Reads, and writes to a namespace without zones, are queued together.
    assert!(r.ctrl.take_largest_io_fetch() > 1);
    let plain = r.driver.namespace(2).unwrap();
    Backend::write(&*plain, 0, &vec![7u8; 512 * 512], false).unwrap();
    assert!(r.ctrl.take_largest_io_fetch() > 1);
}

#[test]
fn open_and_active_limits() {
    let r = zoned_rig();
    let ns = r.driver.namespace(1).unwrap();
    ns.zone_action(0, false, ZoneAction::Open).unwrap();
    ns.zone_action(ZONE, false, ZoneAction::Open).unwrap();
    assert_eq!(r.ctrl.zone(1, 0).unwrap().0, ZoneState::ExplicitlyOpened);
    // Two explicitly open zones use up the open resources.
    assert_eq!(
        device_status(ns.zone_action(2 * ZONE, false, ZoneAction::Open)),
        Status::TOO_MANY_OPEN_ZONES.sc
    );
    assert_eq!(
        device_status(write(&ns, 2 * ZONE, 1, 1)),
        Status::TOO_MANY_OPEN_ZONES.sc
    );
    // Closed zones stay active: three active zones use up the active resources.
    ns.zone_action(0, false, ZoneAction::Close).unwrap();
    assert_eq!(r.ctrl.zone(1, 0).unwrap().0, ZoneState::Closed);
    write(&ns, 2 * ZONE, 1, 1).unwrap();
    assert_eq!(
        device_status(write(&ns, 3 * ZONE, 1, 1)),
        Status::TOO_MANY_ACTIVE_ZONES.sc
    );
    // Finishing one frees an active resource.
    ns.zone_action(ZONE, false, ZoneAction::Finish).unwrap();
    assert_eq!(r.ctrl.zone(1, ZONE).unwrap().0, ZoneState::Full);
    write(&ns, 3 * ZONE, 1, 1).unwrap();
}

#[test]
fn append_returns_the_lba_and_respects_zasl() {
    let r = zoned_rig();
    let ns = r.driver.namespace(1).unwrap();
    let z = 4 * ZONE;
    let a = pattern(2 * BS, 1);
    let b = pattern(BS, 2);
    assert_eq!(block_on(ns.append(z, Bytes::from(a.clone()))).unwrap(), z);
    assert_eq!(
        block_on(ns.append(z, Bytes::from(b.clone()))).unwrap(),
        z + 2
    );
    assert_eq!(
        r.ctrl.zone(1, z),
        Some((ZoneState::ImplicitlyOpened, z + 3))
    );
    assert!(r.ctrl.read_blocks(1, z, 2) == a);
    assert!(r.ctrl.read_blocks(1, z + 2, 1) == b);
    // Over ZASL (8 KiB): refused before anything is sent.
    let sent = r.ctrl.executed().len();
    match block_on(ns.append(z, Bytes::from(vec![0; 3 * BS]))) {
        Err(BackendError::Io(e)) => assert!(e.to_string().contains("ZASL"), "{e}"),
        other => panic!("expected a ZASL refusal, got {other:?}"),
    }
    assert!(block_on(ns.append(z, Bytes::new())).is_err());
    assert_eq!(r.ctrl.executed().len(), sent);
    // Appending to a zone start that is not one is the controller's call.
    match block_on(ns.append(z + 1, Bytes::from(b.clone()))) {
        Err(BackendError::Device(s)) => assert_eq!(s.sc, Status::INVALID_FIELD.sc),
        other => panic!("expected Invalid Field, got {other:?}"),
    }
}

#[test]
fn finish_and_reset_transitions() {
    let r = zoned_rig();
    let ns = r.driver.namespace(1).unwrap();
    write(&ns, 0, 4, 1).unwrap();
    write(&ns, ZONE, 4, 1).unwrap();
    ns.zone_action(0, false, ZoneAction::Finish).unwrap();
    assert_eq!(r.ctrl.zone(1, 0).unwrap().0, ZoneState::Full);
    // Finishing an empty zone makes it full too (ZNS 1.1 §4.4.3.2.2).
    ns.zone_action(5 * ZONE, false, ZoneAction::Finish).unwrap();
    assert_eq!(r.ctrl.zone(1, 5 * ZONE).unwrap().0, ZoneState::Full);
    ns.zone_action(0, false, ZoneAction::Reset).unwrap();
    assert_eq!(r.ctrl.zone(1, 0), Some((ZoneState::Empty, 0)));
    // Reset all: every active or full zone goes back to empty.
    ns.zone_action(0, true, ZoneAction::Reset).unwrap();
    let (n, _) = ns.report_zones(0, ReportOption::Empty, false, 8).unwrap();
    assert_eq!(n, 8);
    // Closing an empty zone is an invalid transition.
    assert_eq!(
        device_status(ns.zone_action(0, false, ZoneAction::Close)),
        Status::INVALID_ZONE_STATE_TRANSITION.sc
    );
}

#[test]
fn a_zoned_drive_namespace_exports_its_zones() {
    use crate::backend::ZonedGeometry;
    use crate::zns::{ZoneDescriptor, ZoneLimits, ZoneReportHeader};
    use zerocopy::FromBytes;

    let r = zoned_rig();
    let ns = r.driver.namespace(1).unwrap();
    let plain = r.driver.namespace(2).unwrap();
    assert!(Backend::zoned(&*plain).is_none());
    let z = Backend::zoned(&*ns).expect("namespace 1 is zoned");
    // The capacity comes from the first zone's report, ZASL 1 (8 KiB) from the controller.
    assert_eq!(
        z.geometry(),
        ZonedGeometry {
            zone_size: ZONE,
            zone_cap: CAP,
            zone_count: 8,
            limits: ZoneLimits {
                max_open: 2,
                max_active: 3
            },
            zasl: 1,
        }
    );
    let q = z.queued().expect("drive zone commands are queued");
    // Appends land at the write pointer; the drive's status passes through.
    assert_eq!(
        block_on(q.append(ZONE, Bytes::from(pattern(2 * BS, 4)), true)).unwrap(),
        ZONE
    );
    assert_eq!(
        block_on(q.append(ZONE, Bytes::from(pattern(BS, 5)), false)).unwrap(),
        ZONE + 2
    );
    match block_on(q.send(ZONE, ZoneAction::Offline, false)) {
        Err(BackendError::Device(s)) => assert_eq!(s.sc, Status::INVALID_ZONE_STATE_TRANSITION.sc),
        other => panic!("offline of an opened zone: {other:?}"),
    }
    block_on(q.send(2 * ZONE, ZoneAction::Open, false)).unwrap();
    // The report is the drive's, byte for byte in the host's buffer.
    let buf = block_on(q.report(0, ReportOption::All, false, vec![0xaa; 64 * 4])).unwrap();
    let header = ZoneReportHeader::read_from_bytes(&buf[..64]).unwrap();
    assert_eq!(header.nr_zones.get(), 8);
    let d = |i: usize| ZoneDescriptor::read_from_bytes(&buf[64 * (i + 1)..64 * (i + 2)]).unwrap();
    assert_eq!(d(1).state(), Some(ZoneState::ImplicitlyOpened));
    assert_eq!(d(1).wp.get(), ZONE + 3);
    assert_eq!(d(2).state(), Some(ZoneState::ExplicitlyOpened));
    // The blocking calls give the same answers.
    let mut out = vec![0u8; 128];
    z.report(ZONE, ReportOption::All, true, &mut out).unwrap();
    assert_eq!(
        ZoneReportHeader::read_from_bytes(&out[..64])
            .unwrap()
            .nr_zones
            .get(),
        1
    );
    z.send(0, ZoneAction::Reset, true).unwrap();
    assert_eq!(z.append(ZONE, &pattern(BS, 6), false).unwrap(), ZONE);
    assert!(z.changed_zones(true).is_empty());
}

#[test]
fn a_partial_report_larger_than_mdts_is_cut_and_a_full_one_refused() {
    use crate::backend::ZonedBackend;
    let r = zoned_rig();
    let ns = r.driver.namespace(1).unwrap();
    // MDTS is 128 KiB: a host buffer of 256 KiB is cut to whole descriptors within it.
    let mut out = vec![0xa5u8; 256 << 10];
    ZonedBackend::report(&*ns, 0, ReportOption::All, true, &mut out).unwrap();
    assert_eq!(u64::from_le_bytes(out[..8].try_into().unwrap()), 8);
    let third = &out[64 * 3..64 * 4];
    assert_eq!(
        u64::from_le_bytes(third[16..24].try_into().unwrap()),
        2 * ZONE
    );
    assert!(
        out[128 << 10..].iter().all(|&b| b == 0),
        "the part past what the drive moved is zeroed"
    );
    // Without Partial the header would count zones the cut buffer lacks: refused.
    assert!(ZonedBackend::report(&*ns, 0, ReportOption::All, false, &mut out).is_err());
}
