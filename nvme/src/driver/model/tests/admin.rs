//! Bring-up (CAP, VS, CC, CSTS), Identify, features and I/O queue creation.

use super::*;

#[test]
fn enable_sequence_cap_vs_and_ready_delay() {
    let cfg = ModelConfig {
        ready_delay_reads: 3,
        ..ModelConfig::default()
    };
    let h = Host::new(cfg);
    let cap = Cap(h.ctrl.read64(CAP as usize));
    assert_eq!(cap.mqes(), 1023);
    assert!(cap.cqr());
    assert_eq!(cap.to(), 2);
    assert_eq!(cap.css(), Cap::CSS_NVM | Cap::CSS_IO_COMMAND_SETS);
    assert_eq!(cap.mpsmin(), 0);
    assert_eq!(h.ctrl.read32(VS as usize), 0x0002_0000);
    assert!(!h.csts().rdy());
    h.ctrl.write32(CC as usize, cc_enabled().0);
    let seen: Vec<bool> = (0..5).map(|_| h.csts().rdy()).collect();
    assert_eq!(seen, [false, false, false, true, true]);
    // Disable: RDY follows after the same delay, and the reset is counted.
    h.ctrl.write32(CC as usize, 0);
    let seen: Vec<bool> = (0..5).map(|_| h.csts().rdy()).collect();
    assert_eq!(seen, [true, true, true, false, false]);
    assert_eq!(h.ctrl.resets(), 1);
}

#[test]
fn bad_css_never_becomes_ready_and_shutdown_completes() {
    let h = Host::new(ModelConfig::default());
    h.ctrl.write32(CC as usize, cc_enabled().with_css(0b001).0);
    assert!(!h.wait_ready(10));
    h.ctrl.write32(CC as usize, 0);
    h.ctrl.write32(CC as usize, cc_enabled().0);
    assert!(h.wait_ready(0));
    assert_eq!(h.csts().shst(), ShutdownStatus::Normal);
    h.ctrl.write32(
        CC as usize,
        cc_enabled().with_shn(ShutdownNotification::Normal).0,
    );
    assert_eq!(h.csts().shst(), ShutdownStatus::Complete);
}

#[test]
fn identify_controller_and_namespace_fields() {
    let cfg = ModelConfig {
        sgls: true,
        namespaces: vec![
            NsModel {
                block_size: 4096,
                blocks: 1 << 20,
                zoned: None,
            },
            NsModel {
                block_size: 512,
                blocks: 2048,
                zoned: None,
            },
        ],
        ..ModelConfig::default()
    };
    let mut h = Host::ready(cfg);
    let (cqe, page) = h.identify(0x01, 0, 0);
    assert!(cqe.status().is_success());
    let id = IdentifyController::from_bytes(&page).unwrap();
    assert_eq!(id.vid.get(), MODEL_VID);
    assert_eq!(id.serial_number(), MODEL_SERIAL);
    assert_eq!(id.model_number(), MODEL_MODEL);
    assert_eq!(id.mdts, 5);
    assert_eq!(id.nn.get(), 2);
    assert_eq!(id.vwc, 1);
    assert_eq!(id.sgls.get() & 3, 1);
    assert_eq!(id.cntlid.get(), MODEL_CNTLID);
    assert_eq!((id.sqes, id.cqes), (0x66, 0x44));

    let (_, page) = h.identify(0x00, 0, 2);
    let ns = IdentifyNamespace::from_bytes(&page).unwrap();
    assert_eq!(ns.nsze.get(), 2048);
    assert_eq!(ns.ncap.get(), 2048);
    assert_eq!(ns.flbas, 0);
    assert_eq!(ns.lbaf[0].lbads, 9);
    assert_eq!(ns.block_size(), Some(512));
    let (cqe, _) = h.identify(0x00, 0, 3);
    assert_eq!(cqe.status(), Status::INVALID_NAMESPACE);

    let (_, page) = h.identify(0x02, 0, 0);
    assert_eq!(crate::identify::parse_namespace_list(&page), [1, 2]);
    let (_, page) = h.identify(0x02, 0, 1);
    assert_eq!(crate::identify::parse_namespace_list(&page), [2]);
    let (cqe, _) = h.identify(0x05, 0x02, 1);
    assert_eq!(cqe.status(), Status::INVALID_FIELD);
    let (_, page) = h.identify(0x1c, 0, 0);
    assert_eq!(
        crate::identify::parse_io_command_set_vectors(&page)[0],
        0b101
    );
    let (cqe, page) = h.identify(0x08, 0, 1);
    assert!(cqe.status().is_success());
    assert_eq!(page[14], 1);
    let (cqe, _) = h.identify(0x42, 0, 0);
    assert_eq!(cqe.status(), Status::INVALID_FIELD);
}

#[test]
fn features_and_queue_creation_errors() {
    let mut h = Host::ready(ModelConfig::default());
    let mut s = sqe(0x09, 0);
    s.cdw10.set(0x07);
    s.cdw11.set(0x0003_0003);
    let cqe = h.cmd(0, s);
    assert!(cqe.status().is_success());
    assert_eq!(cqe.dw0.get(), 0x0007_0007);
    s.cdw11.set(0xffff);
    assert_eq!(h.cmd(0, s).status(), Status::INVALID_FIELD);
    assert_eq!(h.cmd(0, sqe(0xee, 0)).status(), Status::INVALID_OPCODE);

    let mk = |op: u8, qid: u32, size: u32, cdw11: u32| {
        let mut s = sqe(op, 0);
        s.cdw10.set(qid | (size << 16));
        s.cdw11.set(cdw11);
        s.dptr[0..8].copy_from_slice(&HOST_IOVA.to_le_bytes());
        s
    };
    let cases = [
        (mk(0x05, 0, 15, 1), Status::INVALID_QUEUE_IDENTIFIER),
        (mk(0x05, 9, 15, 1), Status::INVALID_QUEUE_IDENTIFIER),
        (mk(0x05, 1, 15, 1), Status::INVALID_QUEUE_IDENTIFIER),
        (mk(0x05, 2, 0, 1), Status::INVALID_QUEUE_SIZE),
        (mk(0x05, 2, 1024, 1), Status::INVALID_QUEUE_SIZE),
        (mk(0x05, 2, 15, 0), Status::INVALID_FIELD),
        (
            mk(0x01, 2, 15, 1 | (5 << 16)),
            Status::COMPLETION_QUEUE_INVALID,
        ),
        (mk(0x01, 2, 15, 1), Status::COMPLETION_QUEUE_INVALID),
        (mk(0x04, 1, 0, 0), Status::INVALID_QUEUE_DELETION),
        (mk(0x04, 3, 0, 0), Status::INVALID_QUEUE_IDENTIFIER),
        (mk(0x00, 0, 0, 0), Status::INVALID_QUEUE_IDENTIFIER),
    ];
    for (i, (s, want)) in cases.into_iter().enumerate() {
        assert_eq!(h.cmd(0, s).status(), want, "case {i}");
    }
    // Delete SQ 1, then CQ 1 succeeds.
    assert!(h.cmd(0, mk(0x00, 1, 0, 0)).status().is_success());
    assert!(h.cmd(0, mk(0x04, 1, 0, 0)).status().is_success());
}

#[test]
fn io_queue_needs_iosqes_and_iocqes() {
    let mut h = Host::new(ModelConfig::default());
    h.ctrl
        .write32(CC as usize, cc_enabled().with_iosqes(0).with_iocqes(0).0);
    assert!(h.wait_ready(0));
    assert_eq!(h.create_io(1, 16).status(), Status::INVALID_FIELD);
}
