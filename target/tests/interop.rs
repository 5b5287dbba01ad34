//! What other hosts do and expect (issue 10): the Linux host's 4096-byte discard buffer,
//! every capability Identify advertises actually served per controller type, the features
//! mandatory for an NVMe-oF I/O controller, and an empty Host NQN.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use fabric::initiator::command::{self, PropertySize};
use fabric::initiator::controller::Controller;
use fabric::initiator::queue::{Queue, QueueOptions};
use fabric::initiator::{HostCommand, HostError, HostOptions, DISCOVERY_NQN};
use nvme::command::ConnectData;
use nvme::identify::{ctrl_bits, IdentifyController, CNTRLTYPE_DISCOVERY, CNTRLTYPE_IO};
use nvme::log_page::{CommandEffects, CommandsSupportedAndEffects};
use nvme::Status;
use target::Daemon;
use zerocopy::IntoBytes;

mod common;
use common::{random, LOOPBACK_LISTENER};

const OPEN: &str = "nqn.2026-01.io.ferrofab:open";
const LISTED: &str = "nqn.2026-01.io.ferrofab:listed";
const HOST: &str = "nqn.2014-08.org.nvmexpress:uuid:11111111-2222-3333-4444-555555555555";
const BLOCK: usize = 512;

async fn start() -> (Daemon, SocketAddr) {
    let text = format!(
        r#"{LOOPBACK_LISTENER}
[[subsystem]]
nqn = "{OPEN}"

[[subsystem.namespace]]
backend = "ram"
size = "16MiB"

[[subsystem.namespace]]
backend = "ram"
size = "4MiB"

[[subsystem]]
nqn = "{LISTED}"
allowed_hosts = ["{HOST}"]

[[subsystem.namespace]]
backend = "null"
size = "16MiB"
"#
    );
    common::serve(common::parse(&text)).await
}

fn host(io_queues: u16) -> HostOptions {
    common::host(HOST, io_queues)
}

async fn identify(ctrl: &Controller) -> IdentifyController {
    let c = ctrl.identify_raw(0x01, 0, 0).await.unwrap();
    assert!(c.status().is_success());
    IdentifyController::from_bytes(&c.data).unwrap()
}

/// Linux `nvme_setup_discard` sends room for 256 ranges (4096 bytes) whatever NR says.
#[tokio::test]
async fn discard_with_the_linux_hosts_4096_byte_range_buffer() {
    let (d, addr) = start().await;
    let ctrl = Controller::connect(addr, OPEN, host(1)).await.unwrap();
    let sgls = identify(&ctrl).await.sgls.get();
    assert_ne!(sgls & ctrl_bits::SGLS_EXCESS_LENGTH, 0, "SGLS bit 18");
    let data = random(64 * BLOCK);
    assert!(ctrl
        .write(1, 1, 0, data.clone(), false)
        .await
        .unwrap()
        .status()
        .is_success());
    // Two ranges (NR = 1) in a 4096-byte buffer whose unused entries hold garbage that
    // would be out of range if parsed.
    let mut buf = command::dsm_ranges(&[(8, 8), (40, 4)]);
    buf.resize(4096, 0xff);
    let c = ctrl
        .submit_io(
            1,
            HostCommand::with_data_out(command::dsm_deallocate(1, 2), Bytes::from(buf)),
        )
        .await
        .unwrap();
    assert!(c.status().is_success(), "DSM: {}", c.status());
    let r = ctrl.read(1, 1, 0, 64).await.unwrap().data;
    let zero = |from: usize, to: usize| r[from * BLOCK..to * BLOCK].iter().all(|&b| b == 0);
    assert_eq!(&r[..8 * BLOCK], &data[..8 * BLOCK]);
    assert!(zero(8, 16));
    assert_eq!(&r[16 * BLOCK..40 * BLOCK], &data[16 * BLOCK..40 * BLOCK]);
    assert!(zero(40, 44));
    assert_eq!(&r[44 * BLOCK..], &data[44 * BLOCK..]);
    // A buffer shorter than NR+1 ranges is still Data SGL Length Invalid.
    let short = Bytes::from(command::dsm_ranges(&[(0, 1)]));
    let c = ctrl
        .submit_io(
            1,
            HostCommand::with_data_out(command::dsm_deallocate(1, 2), short),
        )
        .await
        .unwrap();
    assert_eq!(c.status(), Status::DATA_SGL_LENGTH_INVALID.with_dnr());
    ctrl.shutdown().await.unwrap();
    d.shutdown().await;
}

/// SGLS bit 18 holds for reads and writes too: the excess of a longer SGL is not used.
#[tokio::test]
async fn data_sgl_longer_than_the_transfer() {
    let (d, addr) = start().await;
    let ctrl = Controller::connect(addr, OPEN, host(1)).await.unwrap();
    let data = random(8 * BLOCK);
    let mut longer = data.to_vec();
    longer.extend_from_slice(&[0xa5; 4 * BLOCK]);
    let c = ctrl
        .submit_io(
            1,
            HostCommand::with_data_out(command::write(1, 100, 8, false), Bytes::from(longer)),
        )
        .await
        .unwrap();
    assert!(c.status().is_success(), "write: {}", c.status());
    // Only the 8 blocks the command names were written.
    let after = ctrl.read(1, 1, 108, 4).await.unwrap().data;
    assert!(after.iter().all(|&b| b == 0));
    let c = ctrl
        .submit_io(
            1,
            HostCommand::with_data_in(command::read(1, 100, 8), 16 * BLOCK as u32),
        )
        .await
        .unwrap();
    assert!(c.status().is_success(), "read: {}", c.status());
    assert_eq!(&c.data[..], &data[..]);
    // Shorter than the transfer stays an error.
    let c = ctrl
        .submit_io(
            1,
            HostCommand::with_data_in(command::read(1, 100, 8), 4 * BLOCK as u32),
        )
        .await
        .unwrap();
    assert_eq!(c.status(), Status::DATA_SGL_LENGTH_INVALID.with_dnr());
    ctrl.shutdown().await.unwrap();
    d.shutdown().await;
}

/// A bare command: opcode and NSID, everything else zero.
fn sqe(opcode: u8, nsid: u32) -> nvme::Sqe {
    let mut sqe = nvme::Sqe {
        opcode,
        ..Default::default()
    };
    sqe.nsid.set(nsid);
    sqe
}

/// A status that says the opcode exists (anything but Invalid Opcode).
fn served(c: &fabric::initiator::HostCompletion, what: &str) {
    assert_ne!(
        c.status(),
        Status::INVALID_OPCODE.with_dnr(),
        "{what} is advertised but not served"
    );
}

async fn log_ok(ctrl: &Controller, lid: u8, nsid: u32, len: u32, what: &str) -> Bytes {
    let c = ctrl
        .get_log_page_raw(lid, nsid, 0, len, true)
        .await
        .unwrap();
    assert!(
        c.status().is_success(),
        "{what}: log page {lid:#04x} advertised but answers {}",
        c.status()
    );
    assert_eq!(
        c.data.len(),
        len as usize,
        "{what}: log page {lid:#04x} length"
    );
    c.data
}

async fn feature_ok(ctrl: &Controller, fid: u8, nsid: u32, cdw11: u32, len: u32, what: &str) {
    let c = ctrl.get_features(fid, 0, nsid, cdw11, len).await.unwrap();
    assert!(
        c.status().is_success(),
        "{what}: feature {fid:#04x} answers {}",
        c.status()
    );
}

/// Walk every capability field of Identify Controller and check that what it claims is
/// served; a set bit the walk does not know fails the test (so a new claim needs a check).
async fn walk_capabilities(ctrl: &Controller, is_discovery: bool) {
    let id = identify(ctrl).await;
    let kind = if is_discovery { "discovery" } else { "I/O" };
    assert_eq!(
        id.cntrltype,
        if is_discovery {
            CNTRLTYPE_DISCOVERY
        } else {
            CNTRLTYPE_IO
        }
    );
    assert!(
        !String::from_utf8_lossy(&id.sn).trim().is_empty(),
        "{kind}: serial number is blank"
    );
    // VID, SSVID, IEEE: 0 on purpose (no PCI-SIG vendor ID, no OUI; README).
    assert_eq!((id.vid.get(), id.ssvid.get(), id.ieee), (0, 0, [0; 3]));

    // LPA (log page attributes).
    let lpa = id.lpa;
    assert_eq!(
        lpa & !(ctrl_bits::LPA_CMD_EFFECTS | ctrl_bits::LPA_EXTENDED_DATA),
        0,
        "{kind}: LPA {lpa:#x} has a bit this walk does not check"
    );
    // ELPE: the Error Information log with ELPE+1 entries, on every controller.
    let entries = u32::from(id.elpe) + 1;
    let errors = log_ok(ctrl, 0x01, 0xffff_ffff, entries * 64, kind).await;
    if lpa & ctrl_bits::LPA_EXTENDED_DATA != 0 {
        // NUMDU/LPO: a slice at an offset is that part of the whole page.
        let c = ctrl
            .get_log_page_raw(0x01, 0xffff_ffff, 64, 64, true)
            .await
            .unwrap();
        assert!(c.status().is_success(), "{kind}: log page offset");
        assert_eq!(&c.data[..], &errors[64..128]);
    }
    if lpa & ctrl_bits::LPA_CMD_EFFECTS != 0 {
        let cse = log_ok(ctrl, 0x05, 0, 4096, kind).await;
        let cse = CommandsSupportedAndEffects::from_bytes(&cse).unwrap();
        for op in 0..=255u8 {
            // An AER parks until an event; AERL below checks it.
            if cse.admin_effects(op).contains(CommandEffects::CSUPP) && op != 0x0c {
                let c = ctrl
                    .submit_admin(HostCommand::new(sqe(op, 0)))
                    .await
                    .unwrap();
                served(&c, &format!("{kind}: admin opcode {op:#04x} (CSE log)"));
            }
        }
        for op in 0..=255u8 {
            if cse.io_effects(op).contains(CommandEffects::CSUPP) {
                assert!(!is_discovery, "a discovery controller has no I/O commands");
                let c = ctrl
                    .submit_io(1, HostCommand::new(sqe(op, 1)))
                    .await
                    .unwrap();
                served(&c, &format!("{kind}: I/O opcode {op:#04x} (CSE log)"));
            }
        }
    }
    // FRMW: firmware slots mean a Firmware Slot log.
    if id.frmw & 0x0e != 0 {
        log_ok(ctrl, 0x03, 0, 512, kind).await;
    }
    // Temperature thresholds mean SMART / Health and the Temperature Threshold feature.
    if id.wctemp.get() != 0 || id.cctemp.get() != 0 {
        log_ok(ctrl, 0x02, 0xffff_ffff, 512, kind).await;
        feature_ok(ctrl, 0x04, 0, 0, 0, kind).await;
    }
    // OAES: each notice's log page.
    let oaes = id.oaes.get();
    assert_eq!(
        oaes & !(ctrl_bits::OAES_NS_ATTRIBUTE
            | ctrl_bits::OAES_DISCOVERY_LOG_CHANGE
            | ctrl_bits::OAES_ZONE_DESCRIPTOR_CHANGED),
        0,
        "{kind}: OAES {oaes:#x} has a bit this walk does not check"
    );
    if oaes & ctrl_bits::OAES_NS_ATTRIBUTE != 0 {
        log_ok(ctrl, 0x04, 0xffff_ffff, 4096, kind).await;
    }
    if oaes & ctrl_bits::OAES_DISCOVERY_LOG_CHANGE != 0 {
        log_ok(ctrl, 0x70, 0, 1024, kind).await;
    }
    // Zone Descriptor Changed: the notice can be enabled (its Changed Zone List is a zoned
    // namespace's log; target/tests/zns.rs raises the event and reads the log).
    if oaes & ctrl_bits::OAES_ZONE_DESCRIPTOR_CHANGED != 0 {
        let aec = nvme::features::AsyncEventConfig::NAMESPACE_ATTRIBUTE
            | nvme::features::AsyncEventConfig::ZONE_DESCRIPTOR_CHANGED;
        let c = ctrl.set_async_event_config(aec).await.unwrap();
        assert!(
            c.status().is_success(),
            "{kind}: AEC bit 27: {}",
            c.status()
        );
        let c = ctrl.get_features(0x0b, 0, 0, 0, 0).await.unwrap();
        assert_eq!(c.cqe.dw0.get() & aec, aec, "{kind}: AEC read back");
    }
    // OACS: no optional admin commands are claimed.
    assert_eq!(id.oacs.get(), 0, "{kind}: OACS");
    // CTRATT bit 0: the 128-bit Host Identifier feature.
    let ctratt = id.ctratt.get();
    // CTRATT bit 6 (TBKAS) is timing: target/tests/e2e.rs keeps a controller alive on I/O
    // alone and target/src/keep_alive.rs tests the rule.
    assert_eq!(
        ctratt & !(ctrl_bits::CTRATT_HOST_ID_128 | ctrl_bits::CTRATT_TBKAS),
        0,
        "{kind}: CTRATT {ctratt:#x} has a bit this walk does not check"
    );
    if ctratt & ctrl_bits::CTRATT_HOST_ID_128 != 0 {
        let c = ctrl.get_features(0x81, 0, 0, 1, 16).await.unwrap();
        assert!(c.status().is_success(), "{kind}: Host Identifier");
        assert_eq!(&c.data[..], &ctrl.options().hostid[..]);
    }
    // KAS: Keep Alive is served.
    if id.kas.get() != 0 {
        let c = ctrl.keep_alive().await.unwrap();
        assert!(c.status().is_success(), "{kind}: Keep Alive");
    }
    // AERL: AERL+1 requests park; one more is refused.
    let admin = ctrl.admin_queue().clone();
    for _ in 0..=id.aerl {
        let r = admin
            .submit_timeout(
                HostCommand::new(command::async_event_request()),
                Some(Duration::from_millis(100)),
            )
            .await;
        assert!(matches!(r, Err(HostError::Timeout)), "{kind}: AER parks");
    }
    let c = ctrl.async_event_request().await.unwrap();
    assert_eq!(
        c.status(),
        Status::ASYNC_EVENT_REQUEST_LIMIT_EXCEEDED.with_dnr()
    );
    // ONCS (optional NVM commands) and Save/Select.
    let oncs = id.oncs.get();
    let known = ctrl_bits::ONCS_COMPARE
        | ctrl_bits::ONCS_DSM
        | ctrl_bits::ONCS_WRITE_ZEROES
        | ctrl_bits::ONCS_SAVE_SELECT;
    assert_eq!(oncs & !known, 0, "{kind}: ONCS {oncs:#x}");
    for (bit, op) in [
        (ctrl_bits::ONCS_COMPARE, 0x05),
        (ctrl_bits::ONCS_DSM, 0x09),
        (ctrl_bits::ONCS_WRITE_ZEROES, 0x08),
    ] {
        if oncs & bit != 0 {
            let c = ctrl
                .submit_io(1, HostCommand::new(sqe(op, 1)))
                .await
                .unwrap();
            served(&c, &format!("{kind}: ONCS bit {bit:#x}"));
        }
    }
    let fids: Vec<u8> = (0..=255u8)
        .filter(|&f| {
            target::features::rules(nvme::features::FeatureId::from_u8(f))
                .is_some_and(|r| r.discovery || !is_discovery)
        })
        .collect();
    for &fid in &fids {
        let nsid = if fid == 0x05 { 1 } else { 0 };
        let (cdw11, len) = if fid == 0x81 { (1, 16) } else { (0, 0) };
        feature_ok(ctrl, fid, nsid, cdw11, len, kind).await;
        if oncs & ctrl_bits::ONCS_SAVE_SELECT != 0 {
            // Select 011b: capabilities; nothing is saveable, so Saved reads the default
            // and a Save is refused.
            let caps = ctrl.get_features(fid, 3, nsid, cdw11, len).await.unwrap();
            assert!(caps.status().is_success(), "{kind}: FID {fid:#04x} SEL 3");
            assert_eq!(caps.cqe.dw0.get() & 1, 0, "FID {fid:#04x} saveable?");
            let saved = ctrl.get_features(fid, 2, nsid, cdw11, len).await.unwrap();
            let default = ctrl.get_features(fid, 1, nsid, cdw11, len).await.unwrap();
            assert!(saved.status().is_success(), "{kind}: FID {fid:#04x} SEL 2");
            assert_eq!(saved.cqe.dw0.get(), default.cqe.dw0.get());
            let c = ctrl
                .submit_admin(HostCommand::new(command::set_features(fid, nsid, 0, true)))
                .await
                .unwrap();
            assert_eq!(c.status(), Status::FEATURE_ID_NOT_SAVEABLE.with_dnr());
        }
    }
    // VWC: the Volatile Write Cache feature; bits 2:1 = 11b: Flush of every namespace.
    if id.vwc & ctrl_bits::VWC_PRESENT != 0 {
        assert!(fids.contains(&0x06));
    }
    if id.vwc & ctrl_bits::VWC_FLUSH_BROADCAST == ctrl_bits::VWC_FLUSH_BROADCAST {
        let c = ctrl.flush(1, 0xffff_ffff).await.unwrap();
        assert!(c.status().is_success(), "{kind}: broadcast flush");
    }
    assert_eq!(id.fuses.get(), 0, "{kind}: FUSES");
}

#[tokio::test]
async fn every_advertised_capability_is_served_on_an_io_controller() {
    let (d, addr) = start().await;
    let ctrl = Controller::connect(addr, OPEN, host(1)).await.unwrap();
    walk_capabilities(&ctrl, false).await;
    ctrl.shutdown().await.unwrap();
    d.shutdown().await;
}

#[tokio::test]
async fn every_advertised_capability_is_served_on_the_discovery_controller() {
    let (d, addr) = start().await;
    let ctrl = Controller::connect_admin_only(addr, DISCOVERY_NQN, host(0))
        .await
        .unwrap();
    walk_capabilities(&ctrl, true).await;
    // The discovery controller's serial is the same on every connection.
    let again = Controller::connect_admin_only(addr, DISCOVERY_NQN, host(0))
        .await
        .unwrap();
    assert_eq!(identify(&ctrl).await.sn, identify(&again).await.sn);
    again.shutdown().await.unwrap();
    ctrl.shutdown().await.unwrap();
    d.shutdown().await;
}

/// Error Recovery (05h) and Write Atomicity Normal (0Ah), mandatory for I/O controllers.
#[tokio::test]
async fn error_recovery_and_write_atomicity_features() {
    let (d, addr) = start().await;
    let ctrl = Controller::connect(addr, OPEN, host(1)).await.unwrap();
    // What hosts read at attach: FID 05h with NSID 1.
    let c = ctrl.get_features(0x05, 0, 1, 0, 0).await.unwrap();
    assert!(
        c.status().is_success(),
        "Get Error Recovery: {}",
        c.status()
    );
    assert_eq!(c.cqe.dw0.get(), 0);
    // Namespace specific and changeable.
    let caps = ctrl.get_features(0x05, 3, 1, 0, 0).await.unwrap();
    assert_eq!(caps.cqe.dw0.get(), 0b110);
    // TLER per namespace; FFFFFFFFh sets every namespace.
    assert!(ctrl
        .set_features(0x05, 1, 50, None)
        .await
        .unwrap()
        .status()
        .is_success());
    let get = |nsid: u32, sel: u8| {
        let ctrl = &ctrl;
        async move { ctrl.get_features(0x05, sel, nsid, 0, 0).await.unwrap() }
    };
    assert_eq!(get(1, 0).await.cqe.dw0.get(), 50);
    assert_eq!(get(2, 0).await.cqe.dw0.get(), 0);
    assert_eq!(get(1, 1).await.cqe.dw0.get(), 0, "default");
    assert!(ctrl
        .set_features(0x05, 0xffff_ffff, 7, None)
        .await
        .unwrap()
        .status()
        .is_success());
    assert_eq!(get(1, 0).await.cqe.dw0.get(), 7);
    assert_eq!(get(2, 0).await.cqe.dw0.get(), 7);
    // DULBE needs NSFEAT bit 2, which no namespace sets.
    let c = ctrl.set_features(0x05, 1, 1 << 16, None).await.unwrap();
    assert_eq!(c.status(), Status::INVALID_FIELD.with_dnr());
    // NSID rules for a namespace-specific feature (NVMe Base 2.0 §3.2.1.2).
    assert_eq!(
        get(0, 0).await.status(),
        Status::INVALID_NAMESPACE.with_dnr()
    );
    assert_eq!(
        get(0xffff_ffff, 0).await.status(),
        Status::INVALID_NAMESPACE.with_dnr()
    );
    assert_eq!(get(9, 0).await.status(), Status::INVALID_FIELD.with_dnr());
    // Write Atomicity Normal: DN round trip; it is not namespace specific.
    assert!(ctrl
        .set_features(0x0a, 0, 1, None)
        .await
        .unwrap()
        .status()
        .is_success());
    let c = ctrl.get_features(0x0a, 0, 0, 0, 0).await.unwrap();
    assert_eq!(c.cqe.dw0.get(), 1);
    let c = ctrl.set_features(0x0a, 1, 0, None).await.unwrap();
    assert_eq!(
        c.status(),
        Status::FEATURE_NOT_NAMESPACE_SPECIFIC.with_dnr()
    );
    ctrl.shutdown().await.unwrap();
    d.shutdown().await;
}

/// Connect with an all-zero HOSTNQN field; returns the Connect completion's status and DW0.
async fn connect_with_empty_hostnqn(addr: SocketAddr, subnqn: &str) -> (Queue, Status, u32) {
    let q = Queue::connect(
        addr,
        QueueOptions {
            qid: 0,
            queue_size: 32,
            in_capsule_data: 8192,
            ..QueueOptions::default()
        },
    )
    .await
    .unwrap();
    let mut data = ConnectData::new([7; 16], 0xffff, subnqn, "nqn.x")
        .unwrap()
        .as_bytes()
        .to_vec();
    // HOSTNQN is bytes 512..768 of the Connect data (NVMe-oF 1.1 Figure 21).
    data[512..768].fill(0);
    let c = q
        .submit(HostCommand::with_data_out(
            command::connect(0, 31, 0, 0),
            Bytes::from(data),
        ))
        .await
        .unwrap();
    (q, c.status(), c.cqe.dw0.get())
}

#[tokio::test]
async fn an_empty_host_nqn_is_accepted_only_without_an_allow_list() {
    let (d, addr) = start().await;
    for subnqn in [OPEN, DISCOVERY_NQN] {
        let (q, status, _) = connect_with_empty_hostnqn(addr, subnqn).await;
        assert!(status.is_success(), "{subnqn}: {status}");
        // The controller works: enable it and read CSTS.
        let cc = u64::from(nvme::properties::Cc::default().with_en(true).0);
        let c = q
            .submit(HostCommand::new(command::property_set(
                0x14,
                PropertySize::Four,
                cc | (6 << 16) | (4 << 20),
            )))
            .await
            .unwrap();
        assert!(c.status().is_success());
        let c = q
            .submit(HostCommand::new(command::property_get(
                0x1c,
                PropertySize::Four,
            )))
            .await
            .unwrap();
        assert_eq!(c.cqe.dw0.get() & 1, 1, "{subnqn}: CSTS.RDY");
        q.close();
    }
    // With an allow-list: Connect Invalid Parameters, IATTR = 1 (data), IPO = 512.
    let (_q, status, dw0) = connect_with_empty_hostnqn(addr, LISTED).await;
    assert_eq!(status, Status::CONNECT_INVALID_PARAMETERS.with_dnr());
    assert_eq!(dw0 & 0xffff, 512, "IPO");
    assert_eq!((dw0 >> 16) & 0xff, 1, "IATTR");
    d.shutdown().await;
}
