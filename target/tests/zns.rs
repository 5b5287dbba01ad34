//! Zoned namespaces over NVMe/TCP with the in-tree initiator: what a ZNS host reads in
//! Identify and the logs, the zone commands, and each zone rule's status over the fabric.

mod common;

use std::net::SocketAddr;

use bytes::Bytes;
use fabric::initiator::{appended_lba, command, Controller, HostCommand};
use nvme::log_page::CommandsSupportedAndEffects;
use nvme::zns::{IdentifyZnsNamespace, ReportOption, ZoneAction, ZoneState};
use nvme::Status;
use target::Daemon;
use zerocopy::FromBytes;

const NQN: &str = "nqn.2026-01.io.ferrofab:zns";
const HOST: &str = "nqn.2026-01.io.ferrofab:zns-host";
const BS: u64 = 4096;
/// 1 MiB zones of 4 KiB blocks, 192 blocks writable, 8 zones; namespace 2 is conventional.
const ZSIZE: u64 = 256;
const ZCAP: u64 = 192;

async fn start() -> (Daemon, SocketAddr) {
    let text = format!(
        "{}[[subsystem]]\nnqn = \"{NQN}\"\n\
         [[subsystem.namespace]]\nnsid = 1\nsize = \"8MiB\"\nblock_size = 4096\n\
         backend = {{ kind = \"zoned-ram\", zone_size = \"1MiB\", zone_capacity = \"768KiB\", \
         max_open = 2, max_active = 3, zone_append_limit = \"16KiB\" }}\n\
         [[subsystem.namespace]]\nnsid = 2\nsize = \"1MiB\"\nbackend = \"ram\"\n",
        common::LOOPBACK_LISTENER
    );
    common::serve(common::parse(&text)).await
}

fn pattern(blocks: u64, seed: u8) -> Bytes {
    Bytes::from(
        (0..blocks * BS)
            .map(|i| (i as u8).wrapping_mul(7) ^ seed)
            .collect::<Vec<u8>>(),
    )
}

/// The status a command completed with, DNR kept.
async fn status_of(ctrl: &Controller, cmd: HostCommand) -> Status {
    ctrl.submit_io(1, cmd).await.unwrap().status()
}

fn zone_error(sc: Status) -> Status {
    sc.with_dnr()
}

#[tokio::test]
async fn a_zns_host_sees_zones_and_their_rules() {
    let (d, addr) = start().await;
    let ctrl = Controller::connect(addr, NQN, common::host(HOST, 1))
        .await
        .unwrap();

    // CAP.CSS bit 43: I/O command sets (CC.CSS 110b); one combination NVM + ZNS.
    assert_ne!(ctrl.cap() & (1 << 43), 0);
    let sets = ctrl
        .identify_raw(0x1c, 0, 0)
        .await
        .unwrap()
        .ok()
        .unwrap()
        .data;
    assert_eq!(u64::from_le_bytes(sets[..8].try_into().unwrap()), 0b101);
    // Namespace 1 is zoned, namespace 2 NVM (Namespace Identification Descriptor CSI).
    let csi = |descs: Vec<(u8, Vec<u8>)>| descs.into_iter().find(|(t, _)| *t == 4).unwrap().1;
    assert_eq!(csi(ctrl.ns_descriptors(1).await.unwrap()), vec![2]);
    assert_eq!(csi(ctrl.ns_descriptors(2).await.unwrap()), vec![0]);
    // CNS 07h: active namespaces per command set.
    let list = |page: Bytes| -> Vec<u32> {
        page.chunks_exact(4)
            .map(|c| u32::from_le_bytes(c.try_into().unwrap()))
            .take_while(|&n| n != 0)
            .collect()
    };
    let zoned = ctrl
        .identify_raw(0x07, 0, 2)
        .await
        .unwrap()
        .ok()
        .unwrap()
        .data;
    assert_eq!(list(zoned), vec![1]);
    let nvm = ctrl
        .identify_raw(0x07, 0, 0)
        .await
        .unwrap()
        .ok()
        .unwrap()
        .data;
    assert_eq!(list(nvm), vec![2]);
    // Identify Namespace ZNS (CNS 05h CSI 02h): MOR/MAR 0's based, ZSZE, ZOC 0.
    let page = ctrl
        .identify_raw(0x05, 1, 2)
        .await
        .unwrap()
        .ok()
        .unwrap()
        .data;
    let zns = IdentifyZnsNamespace::read_from_bytes(&page).unwrap();
    assert_eq!((zns.mor.get(), zns.mar.get(), zns.zoc.get()), (1, 2, 0));
    assert_eq!(zns.lbafe[0].zsze.get(), ZSIZE);
    let c = ctrl.identify_raw(0x05, 2, 2).await.unwrap();
    assert_eq!(c.status(), Status::INVALID_FIELD.with_dnr());
    // Identify Controller ZNS (CNS 06h CSI 02h): ZASL 2 = 16 KiB.
    let page = ctrl
        .identify_raw(0x06, 0, 2)
        .await
        .unwrap()
        .ok()
        .unwrap()
        .data;
    assert_eq!(page[0], 2);

    // Commands Supported and Effects, CSI 02h, lists the zone commands; CSI 00h does not.
    for (csi, listed) in [(2u32, true), (0, false)] {
        let mut sqe = command::get_log_page(0x05, 0, 0, 4096, false);
        sqe.cdw14.set(csi << 24);
        let c = ctrl
            .submit_admin(HostCommand::with_data_in(sqe, 4096))
            .await
            .unwrap()
            .ok()
            .unwrap();
        let log = CommandsSupportedAndEffects::from_bytes(&c.data).unwrap();
        for op in [0x79u8, 0x7a, 0x7d] {
            assert_eq!(
                log.io_effects(op).0 & 1 == 1,
                listed,
                "CSI {csi} opcode {op:#x}"
            );
        }
        assert_eq!(log.io_effects(0x01).0 & 1, 1);
    }
    // The Changed Zone List of a zoned namespace: no zone changed by itself.
    let log = ctrl.get_log_page(0xbf, 1, 0, 4096).await.unwrap();
    assert_eq!(log.len(), 4096);
    assert!(log.iter().all(|&b| b == 0));

    // Report Zones: 8 empty zones, partial report of 2 zones in a 192-byte buffer.
    let r = ctrl
        .report_zones(1, 1, 0, 4096, ReportOption::All, false)
        .await
        .unwrap();
    assert_eq!((r.nr_zones, r.zones.len()), (8, 8));
    for (i, z) in r.zones.iter().enumerate() {
        let start = i as u64 * ZSIZE;
        assert_eq!(z.state(), Some(ZoneState::Empty));
        assert_eq!(
            (z.zslba.get(), z.wp.get(), z.zcap.get()),
            (start, start, ZCAP)
        );
    }
    let r = ctrl
        .report_zones(1, 1, 3 * ZSIZE + 5, 192, ReportOption::All, true)
        .await
        .unwrap();
    assert_eq!(r.nr_zones, 2);
    assert_eq!(r.zones[0].zslba.get(), 3 * ZSIZE);

    // Writes at the write pointer read back; anywhere else is Zone Invalid Write.
    let a = pattern(4, 1);
    ctrl.write(1, 1, 0, a.clone(), false)
        .await
        .unwrap()
        .ok()
        .unwrap();
    let c = ctrl.write(1, 1, 8, pattern(1, 2), false).await.unwrap();
    assert_eq!(c.status(), zone_error(Status::ZONE_INVALID_WRITE));
    let back = ctrl.read(1, 1, 0, 4).await.unwrap().ok().unwrap().data;
    assert_eq!(back, a);
    // Zone Append returns the LBA written, in the CQE.
    let b = pattern(2, 3);
    let c = ctrl
        .zone_append(1, 1, 0, b.clone(), false)
        .await
        .unwrap()
        .ok()
        .unwrap();
    assert_eq!(appended_lba(&c), 4);
    let c = ctrl
        .zone_append(1, 1, 4 * ZSIZE, b.clone(), false)
        .await
        .unwrap()
        .ok()
        .unwrap();
    assert_eq!(appended_lba(&c), 4 * ZSIZE);
    assert_eq!(ctrl.read(1, 1, 4, 2).await.unwrap().ok().unwrap().data, b);
    // Append beyond ZASL (16 KiB) is Invalid Field; to a non-start LBA too.
    let c = ctrl
        .zone_append(1, 1, 0, pattern(5, 0), false)
        .await
        .unwrap();
    assert_eq!(c.status(), Status::INVALID_FIELD.with_dnr());
    let c = ctrl.zone_append(1, 1, 1, b.clone(), false).await.unwrap();
    assert_eq!(c.status(), Status::INVALID_FIELD.with_dnr());
    // Exactly ZASL is allowed.
    let c = ctrl
        .zone_append(1, 1, 4 * ZSIZE, pattern(4, 4), false)
        .await
        .unwrap()
        .ok()
        .unwrap();
    assert_eq!(appended_lba(&c), 4 * ZSIZE + 2);

    // Two zones are implicitly open (MOR 2); an explicit open of a third closes one of them
    // implicitly, a second explicit open leaves only explicitly opened zones.
    ctrl.zone_mgmt_send(1, 1, 2 * ZSIZE, ZoneAction::Open, false)
        .await
        .unwrap()
        .ok()
        .unwrap();
    // Active: zone 0 (closed now), 2, 4: MAR 3 reached.
    let c = ctrl
        .write(1, 1, 5 * ZSIZE, pattern(1, 0), false)
        .await
        .unwrap();
    assert_eq!(c.status(), zone_error(Status::TOO_MANY_ACTIVE_ZONES));
    ctrl.zone_mgmt_send(1, 1, 4 * ZSIZE, ZoneAction::Open, false)
        .await
        .unwrap()
        .ok()
        .unwrap();
    let c = ctrl
        .zone_mgmt_send(1, 1, 0, ZoneAction::Open, false)
        .await
        .unwrap();
    assert_eq!(c.status(), zone_error(Status::TOO_MANY_OPEN_ZONES));
    let r = ctrl
        .report_zones(1, 1, 0, 4096, ReportOption::ExplicitlyOpened, false)
        .await
        .unwrap();
    let opened: Vec<u64> = r.zones.iter().map(|z| z.zslba.get()).collect();
    assert_eq!(opened, vec![2 * ZSIZE, 4 * ZSIZE]);

    // Finish fills zone 0: writes to it are Zone Is Full; Reset empties it and reads zero.
    ctrl.zone_mgmt_send(1, 1, 0, ZoneAction::Finish, false)
        .await
        .unwrap()
        .ok()
        .unwrap();
    let c = ctrl.zone_append(1, 1, 0, b.clone(), false).await.unwrap();
    assert_eq!(c.status(), zone_error(Status::ZONE_IS_FULL));
    // A zone in an unknown action, and an action on a zone in a state it does not apply to.
    let c = ctrl
        .zone_mgmt_send(1, 1, 0, ZoneAction::Unknown(0x10), false)
        .await
        .unwrap();
    assert_eq!(c.status(), Status::INVALID_FIELD.with_dnr());
    let c = ctrl
        .zone_mgmt_send(1, 1, 6 * ZSIZE, ZoneAction::Close, false)
        .await
        .unwrap();
    assert_eq!(
        c.status(),
        zone_error(Status::INVALID_ZONE_STATE_TRANSITION)
    );
    ctrl.zone_mgmt_send(1, 1, 0, ZoneAction::Reset, true)
        .await
        .unwrap()
        .ok()
        .unwrap();
    let r = ctrl
        .report_zones(1, 1, 0, 4096, ReportOption::Empty, false)
        .await
        .unwrap();
    assert_eq!(r.nr_zones, 8);
    let back = ctrl.read(1, 1, 0, 4).await.unwrap().ok().unwrap().data;
    assert!(back.iter().all(|&x| x == 0));
    // Reads across a zone boundary are Zone Boundary Error (OZCS bit 0 clear).
    let c = ctrl.read(1, 1, ZSIZE - 1, 2).await.unwrap();
    assert_eq!(c.status(), zone_error(Status::ZONE_BOUNDARY_ERROR));

    // The conventional namespace beside it has no zone commands; random writes work.
    let c = status_of(
        &ctrl,
        HostCommand::new(command::zone_mgmt_send(2, 0, ZoneAction::Reset, true)),
    )
    .await;
    assert_eq!(c, Status::INVALID_OPCODE.with_dnr());
    ctrl.write(1, 2, 100, pattern(1, 9), false)
        .await
        .unwrap()
        .ok()
        .unwrap();
    // An extended report (no zone descriptor extensions here) is Invalid Field.
    let mut sqe = command::report_zones(1, 0, 4096, ReportOption::All, false);
    sqe.cdw13.set(sqe.cdw13.get() | 1);
    let c = status_of(&ctrl, HostCommand::with_data_in(sqe, 4096)).await;
    assert_eq!(c, Status::INVALID_FIELD.with_dnr());

    ctrl.shutdown().await.unwrap();
    d.shutdown().await;
}

/// The Changed Zone List (LID BFh) of namespace 1 read with RAE cleared: its zone IDs.
async fn changed_zones(ctrl: &Controller) -> Vec<u64> {
    let page = ctrl
        .get_log_page_raw(0xbf, 1, 0, 4096, false)
        .await
        .unwrap()
        .ok()
        .unwrap()
        .data;
    let n = u16::from_le_bytes([page[0], page[1]]) as usize;
    page[8..]
        .chunks_exact(8)
        .take(n)
        .map(|c| u64::from_le_bytes(c.try_into().unwrap()))
        .collect()
}

#[tokio::test]
async fn a_failed_zone_is_listed_refuses_io_and_raises_its_event() {
    use nvme::features::AsyncEventConfig;
    use target::engine::{Action, ActionError, Outcome, ZoneFault};

    let (d, addr) = start().await;
    let ctrl = Controller::connect(addr, NQN, common::host(HOST, 1))
        .await
        .unwrap();
    // Identify Controller OAES bit 27 claims the notice; the host enables it (ZNS 1.1 §5.2.1).
    let id = ctrl.identify_raw(1, 0, 0).await.unwrap().ok().unwrap().data;
    let oaes = u32::from_le_bytes(id[92..96].try_into().unwrap());
    assert_ne!(oaes & (1 << 27), 0, "OAES {oaes:#x}");
    ctrl.set_async_event_config(
        AsyncEventConfig::NAMESPACE_ATTRIBUTE | AsyncEventConfig::ZONE_DESCRIPTOR_CHANGED,
    )
    .await
    .unwrap()
    .ok()
    .unwrap();
    let data = pattern(4, 3);
    ctrl.write(1, 1, ZSIZE, data.clone(), false)
        .await
        .unwrap()
        .ok()
        .unwrap();
    let engine = d.engine().clone();
    let fail = move |zslba: u64, nsid: u32, fault: ZoneFault| {
        let engine = engine.clone();
        async move {
            tokio::task::spawn_blocking(move || {
                engine.apply(Action::FailZone {
                    nqn: NQN.into(),
                    nsid,
                    zslba,
                    fault,
                })
            })
            .await
            .unwrap()
        }
    };

    // Zone 1 fails to Read Only while an AER is outstanding: it completes with Zone
    // Descriptor Changed (parked or queued, whichever reaches the target first).
    let (ev, outcome) = tokio::join!(
        tokio::time::timeout(
            std::time::Duration::from_secs(10),
            ctrl.async_event_request()
        ),
        fail(ZSIZE, 1, ZoneFault::ReadOnly)
    );
    assert_eq!(
        outcome.unwrap(),
        Outcome::ZoneFailed {
            nqn: NQN.into(),
            nsid: 1,
            zslba: ZSIZE,
            fault: ZoneFault::ReadOnly,
            controllers_notified: 1,
        }
    );
    let ev = ev.expect("no Zone Descriptor Changed event").unwrap();
    // Notice (2h), Zone Descriptor Changed (EFh), Changed Zone List (BFh).
    assert_eq!(ev.cqe.dw0.get(), 0x00bf_ef02);
    let r = ctrl
        .report_zones(1, 1, ZSIZE, 4096, ReportOption::All, true)
        .await
        .unwrap();
    assert_eq!(r.zones[0].state(), Some(ZoneState::ReadOnly));
    // ZNS 1.1 §2.1.1.6: a Read Only zone reads; writes and appends are refused.
    let back = ctrl.read(1, 1, ZSIZE, 4).await.unwrap().ok().unwrap().data;
    assert_eq!(back, data);
    let c = ctrl
        .write(1, 1, ZSIZE + 4, pattern(1, 0), false)
        .await
        .unwrap();
    assert_eq!(c.status(), zone_error(Status::ZONE_IS_READ_ONLY));
    let c = ctrl
        .zone_append(1, 1, ZSIZE, pattern(1, 0), false)
        .await
        .unwrap();
    assert_eq!(c.status(), zone_error(Status::ZONE_IS_READ_ONLY));
    // The list names it once, and is empty after a read with RAE cleared.
    assert_eq!(changed_zones(&ctrl).await, vec![ZSIZE]);
    assert_eq!(changed_zones(&ctrl).await, Vec::<u64>::new());

    // The host takes the Read Only zone offline (Offline Zone, ZNS 1.1 §4.4.3.2.5): no reads.
    ctrl.zone_mgmt_send(1, 1, ZSIZE, ZoneAction::Offline, false)
        .await
        .unwrap()
        .ok()
        .unwrap();
    let c = ctrl.read(1, 1, ZSIZE, 1).await.unwrap();
    assert_eq!(c.status(), zone_error(Status::ZONE_IS_OFFLINE));

    // The log was read, so the next fault raises the event again (queued for the next AER).
    fail(3 * ZSIZE, 1, ZoneFault::Offline).await.unwrap();
    let ev = tokio::time::timeout(
        std::time::Duration::from_secs(10),
        ctrl.async_event_request(),
    )
    .await
    .expect("no second event")
    .unwrap();
    assert_eq!(ev.cqe.dw0.get(), 0x00bf_ef02);
    assert_eq!(changed_zones(&ctrl).await, vec![3 * ZSIZE]);
    let c = ctrl.read(1, 1, 3 * ZSIZE, 1).await.unwrap();
    assert_eq!(c.status(), zone_error(Status::ZONE_IS_OFFLINE));

    // Refusals: an offline zone stays offline, a non-zone start, a conventional namespace,
    // a batch.
    assert!(matches!(
        fail(3 * ZSIZE, 1, ZoneFault::ReadOnly).await,
        Err(ActionError::ZoneFaultRefused { .. })
    ));
    assert!(matches!(
        fail(ZSIZE + 1, 1, ZoneFault::ReadOnly).await,
        Err(ActionError::NoSuchZone { .. })
    ));
    assert!(matches!(
        fail(8 * ZSIZE, 1, ZoneFault::ReadOnly).await,
        Err(ActionError::NoSuchZone { .. })
    ));
    assert!(matches!(
        fail(0, 2, ZoneFault::ReadOnly).await,
        Err(ActionError::ZoneFaultRefused { .. })
    ));
    assert!(matches!(
        fail(0, 9, ZoneFault::ReadOnly).await,
        Err(ActionError::NoSuchNamespace { .. })
    ));
    let batch = vec![
        Action::FailZone {
            nqn: NQN.into(),
            nsid: 1,
            zslba: 0,
            fault: ZoneFault::ReadOnly,
        },
        Action::DisconnectController { cntlid: 1 },
    ];
    assert!(matches!(
        d.engine().apply_all(batch),
        Err(ActionError::NotApplicable(_))
    ));
    let r = ctrl
        .report_zones(1, 1, 0, 4096, ReportOption::All, false)
        .await
        .unwrap();
    assert_eq!(
        r.zones[0].state(),
        Some(ZoneState::Empty),
        "zone 0 untouched"
    );

    ctrl.shutdown().await.unwrap();
    d.shutdown().await;
}
