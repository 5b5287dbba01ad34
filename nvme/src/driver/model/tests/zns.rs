//! Zoned namespaces: Identify, write pointer rules, Zone Append, open/active limits, management send and receive, read-only and offline zones.

use super::*;

#[test]
fn zns_identify_and_write_pointer_rules() {
    let mut h = Host::ready(zoned_cfg(0, 0));
    let (cqe, page) = h.identify(0x05, 0x02, 1);
    assert!(cqe.status().is_success());
    let id = IdentifyZnsNamespace::read_from_bytes(&page).unwrap();
    assert_eq!((id.mar.get(), id.mor.get()), (u32::MAX, u32::MAX));
    assert_eq!(id.lbafe[0].zsze.get(), 16);
    let (_, page) = h.identify(0x06, 0x02, 0);
    assert_eq!(page[0], 1);

    assert!(zone_write(&mut h, 0, 4).status().is_success());
    assert_eq!(h.ctrl.zone(1, 0), Some((ZoneState::ImplicitlyOpened, 4)));
    assert_eq!(
        zone_write(&mut h, 2, 1).status(),
        Status::ZONE_INVALID_WRITE
    );
    assert_eq!(
        zone_write(&mut h, 4, 9).status(),
        Status::ZONE_BOUNDARY_ERROR
    );
    assert!(zone_write(&mut h, 4, 8).status().is_success());
    assert_eq!(h.ctrl.zone(1, 0), Some((ZoneState::Full, 12)));
    assert_eq!(zone_write(&mut h, 12, 1).status(), Status::ZONE_IS_FULL);
    // Reads: written data back, zeroes past the capacity, no crossing of zone boundaries.
    let buf = h.pool.alloc(16 * PAGE).unwrap();
    assert!(h
        .rw(0x02, 1, 0, 16, &[&buf], 16 * PAGE)
        .status()
        .is_success());
    let got = h.gather(&[&buf], 16 * PAGE);
    assert_eq!(got[..12 * PAGE], h.ctrl.read_blocks(1, 0, 12));
    assert!(got[..PAGE].iter().any(|&b| b != 0));
    assert!(got[12 * PAGE..].iter().all(|&b| b == 0));
    assert_eq!(
        h.rw(0x02, 1, 8, 16, &[&buf], 16 * PAGE).status(),
        Status::ZONE_BOUNDARY_ERROR
    );
    // Reset zeroes the zone and rewinds the write pointer.
    assert_eq!(zone_send(&mut h, 0, 0x04, false), Status::SUCCESS);
    assert_eq!(h.ctrl.zone(1, 0), Some((ZoneState::Empty, 0)));
    assert_eq!(h.ctrl.read_blocks(1, 0, 1), vec![0; PAGE]);
    // Write Zeroes follows the same write pointer rules.
    let mut z = sqe(0x08, 1);
    z.cdw10.set(16);
    z.cdw12.set(2);
    assert!(h.cmd(1, z).status().is_success());
    assert_eq!(h.ctrl.zone(1, 16), Some((ZoneState::ImplicitlyOpened, 19)));
}

#[test]
fn zns_zone_append() {
    let mut h = Host::ready(zoned_cfg(0, 0));
    let buf = h.pool.alloc(3 * PAGE).unwrap();
    let data = h.fill(&[&buf], 9);
    let append = |h: &mut Host, zslba: u64, blocks: u32| {
        let mut s = sqe(0x7d, 1);
        s.cdw10.set(zslba as u32);
        s.cdw12.set(blocks - 1);
        let mut lists = Vec::new();
        h.prps(&mut s, &[&buf], blocks as usize * PAGE, &mut lists);
        h.cmd(1, s)
    };
    let c = append(&mut h, 32, 2);
    assert!(c.status().is_success());
    assert_eq!(c.result64(), 32);
    let c = append(&mut h, 32, 2);
    assert_eq!(c.result64(), 34);
    assert_eq!(h.ctrl.read_blocks(1, 34, 2), data[..2 * PAGE]);
    assert_eq!(h.ctrl.zone(1, 32), Some((ZoneState::ImplicitlyOpened, 36)));
    assert_eq!(append(&mut h, 33, 1).status(), Status::INVALID_FIELD);
    assert_eq!(append(&mut h, 64, 1).status(), Status::LBA_OUT_OF_RANGE);
    // ZASL 1 = 8 KiB.
    assert_eq!(append(&mut h, 32, 3).status(), Status::INVALID_FIELD);
}

#[test]
fn zns_open_and_active_limits() {
    let mut h = Host::ready(zoned_cfg(2, 3));
    let (_, page) = h.identify(0x05, 0x02, 1);
    let id = IdentifyZnsNamespace::read_from_bytes(&page).unwrap();
    assert_eq!((id.mar.get(), id.mor.get()), (2, 1));
    assert!(zone_write(&mut h, 0, 1).status().is_success());
    assert!(zone_write(&mut h, 16, 1).status().is_success());
    // A third implicit open closes the first implicitly opened zone.
    assert!(zone_write(&mut h, 32, 1).status().is_success());
    assert_eq!(h.ctrl.zone(1, 0), Some((ZoneState::Closed, 1)));
    assert_eq!(h.ctrl.zone(1, 32), Some((ZoneState::ImplicitlyOpened, 33)));
    // Three active zones: a fourth zone cannot become active.
    assert_eq!(
        zone_write(&mut h, 48, 1).status(),
        Status::TOO_MANY_ACTIVE_ZONES
    );
    // Explicitly open two; a third open finds no implicitly opened zone to close.
    assert_eq!(zone_send(&mut h, 16, 0x03, false), Status::SUCCESS);
    assert_eq!(zone_send(&mut h, 32, 0x03, false), Status::SUCCESS);
    assert_eq!(
        zone_send(&mut h, 0, 0x03, false),
        Status::TOO_MANY_OPEN_ZONES
    );
    assert_eq!(
        zone_write(&mut h, 1, 1).status(),
        Status::TOO_MANY_OPEN_ZONES
    );
}

#[test]
fn zns_management_send_actions() {
    let mut h = Host::ready(zoned_cfg(0, 0));
    assert_eq!(
        zone_send(&mut h, 0, 0x01, false),
        Status::INVALID_ZONE_STATE_TRANSITION
    );
    assert_eq!(zone_send(&mut h, 0, 0x03, false), Status::SUCCESS);
    assert_eq!(h.ctrl.zone(1, 0), Some((ZoneState::ExplicitlyOpened, 0)));
    assert_eq!(zone_send(&mut h, 0, 0x01, false), Status::SUCCESS);
    assert_eq!(h.ctrl.zone(1, 0), Some((ZoneState::Closed, 0)));
    assert_eq!(zone_send(&mut h, 16, 0x02, false), Status::SUCCESS);
    assert_eq!(h.ctrl.zone(1, 16), Some((ZoneState::Full, 28)));
    assert_eq!(
        zone_send(&mut h, 16, 0x05, false),
        Status::INVALID_ZONE_STATE_TRANSITION
    );
    assert_eq!(zone_send(&mut h, 3, 0x04, false), Status::INVALID_FIELD);
    assert_eq!(zone_send(&mut h, 64, 0x04, false), Status::LBA_OUT_OF_RANGE);
    assert_eq!(zone_send(&mut h, 0, 0x10, false), Status::INVALID_FIELD);
    // Select All: Finish applies to the Closed zone, not to the Empty ones.
    assert!(zone_write(&mut h, 32, 1).status().is_success());
    assert_eq!(zone_send(&mut h, 0, 0x02, true), Status::SUCCESS);
    assert_eq!(h.ctrl.zone(1, 0), Some((ZoneState::Full, 12)));
    assert_eq!(h.ctrl.zone(1, 32), Some((ZoneState::Full, 44)));
    assert_eq!(h.ctrl.zone(1, 48), Some((ZoneState::Empty, 48)));
    assert_eq!(zone_send(&mut h, 0, 0x04, true), Status::SUCCESS);
    for z in [0, 16, 32, 48] {
        assert_eq!(h.ctrl.zone(1, z), Some((ZoneState::Empty, z)));
    }
    // Zone commands on a conventional namespace are not supported.
    let mut c = Host::ready(ModelConfig::default());
    assert_eq!(zone_send(&mut c, 0, 0x04, false), Status::INVALID_OPCODE);
}

#[test]
fn zns_report_zones_filters_and_truncation() {
    let mut h = Host::ready(zoned_cfg(0, 0));
    assert!(zone_write(&mut h, 16, 2).status().is_success());
    assert_eq!(zone_send(&mut h, 48, 0x02, false), Status::SUCCESS);
    let desc = |page: &[u8], i: usize| {
        ZoneDescriptor::read_from_bytes(&page[64 + 64 * i..128 + 64 * i]).unwrap()
    };
    let nr = |page: &[u8]| {
        ZoneReportHeader::read_from_bytes(&page[..64])
            .unwrap()
            .nr_zones
            .get()
    };

    let (st, page) = report(&mut h, 0, 0, false, PAGE);
    assert!(st.is_success());
    assert_eq!(nr(&page), 4);
    let states: Vec<_> = (0..4).map(|i| desc(&page, i).state().unwrap()).collect();
    assert_eq!(
        states,
        [
            ZoneState::Empty,
            ZoneState::ImplicitlyOpened,
            ZoneState::Empty,
            ZoneState::Full
        ]
    );
    let d = desc(&page, 1);
    assert_eq!(
        (d.zslba.get(), d.wp.get(), d.zcap.get(), d.zt),
        (16, 18, 12, 2)
    );

    // Filter Empty, starting in zone 1 (SLBA inside it).
    let (_, page) = report(&mut h, 20, 1, false, PAGE);
    assert_eq!(nr(&page), 1);
    assert_eq!(desc(&page, 0).zslba.get(), 32);
    // 128-byte buffer: one descriptor fits; without Partial Report the header counts all.
    let (_, page) = report(&mut h, 0, 0, false, 128);
    assert_eq!(page.len(), 128);
    assert_eq!(nr(&page), 4);
    let (_, page) = report(&mut h, 0, 0, true, 128);
    assert_eq!(nr(&page), 1);
    assert_eq!(desc(&page, 0).zslba.get(), 0);
    assert_eq!(
        report(&mut h, 0, 0x3f, false, PAGE).0,
        Status::INVALID_FIELD
    );
    assert_eq!(
        report(&mut h, 64, 0, false, PAGE).0,
        Status::LBA_OUT_OF_RANGE
    );
}

#[test]
fn zns_read_only_and_offline_zones() {
    let mut h = Host::ready(zoned_cfg(0, 0));
    assert!(h.ctrl.set_zone_state(1, 16, ZoneState::ReadOnly));
    assert!(!h.ctrl.set_zone_state(1, 17, ZoneState::ReadOnly));
    assert_eq!(
        zone_write(&mut h, 16, 1).status(),
        Status::ZONE_IS_READ_ONLY
    );
    assert_eq!(
        zone_send(&mut h, 16, 0x04, false),
        Status::INVALID_ZONE_STATE_TRANSITION
    );
    assert_eq!(zone_send(&mut h, 0, 0x05, true), Status::SUCCESS);
    assert_eq!(h.ctrl.zone(1, 16).map(|z| z.0), Some(ZoneState::Offline));
    assert_eq!(h.ctrl.zone(1, 0), Some((ZoneState::Empty, 0)));
    assert_eq!(zone_write(&mut h, 16, 1).status(), Status::ZONE_IS_OFFLINE);
    let buf = h.pool.alloc(PAGE).unwrap();
    assert_eq!(
        h.rw(0x02, 1, 16, 1, &[&buf], PAGE).status(),
        Status::ZONE_IS_OFFLINE
    );
}
