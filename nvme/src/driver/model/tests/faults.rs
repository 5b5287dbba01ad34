//! Injected faults (dropped, failed and ignored commands, fatal status, removal) and controller reset.

use super::*;

#[test]
fn fault_drop_then_abort() {
    let mut h = Host::ready(ModelConfig::default());
    h.ctrl.inject(Fault::Drop {
        qid: 1,
        opcode: 0x00,
    });
    let cid = h.submit(1, sqe(0x00, 1));
    h.ring_sq(1);
    assert!(h.poll(1).is_none());
    let mut a = sqe(0x08, 0);
    a.cdw10.set(1 | (u32::from(cid) << 16));
    let c = h.cmd(0, a);
    assert!(c.status().is_success());
    assert_eq!(c.dw0.get() & 1, 0);
    let aborted = h.poll(1).unwrap();
    assert_eq!(aborted.cid(), cid);
    assert_eq!(aborted.status(), Status::ABORT_REQUESTED);
    h.ring_cq(1);
    // Nothing left to abort: bit 0 = 1.
    assert_eq!(h.cmd(0, a).dw0.get() & 1, 1);
    // The fault was one-shot.
    assert!(h.cmd(1, sqe(0x00, 1)).status().is_success());
    assert_eq!(
        h.ctrl.executed()[h.ctrl.executed().len() - 4..],
        [(1, 0x00), (0, 0x08), (0, 0x08), (1, 0x00)]
    );
}

#[test]
fn fault_abort_ignored_and_sq_deletion_releases_held() {
    let mut h = Host::ready(ModelConfig::default());
    h.ctrl.inject(Fault::AbortIgnored);
    h.ctrl.inject(Fault::Drop {
        qid: 1,
        opcode: 0x02,
    });
    let cid = h.submit(1, sqe(0x02, 1));
    h.ring_sq(1);
    let mut a = sqe(0x08, 0);
    a.cdw10.set(1 | (u32::from(cid) << 16));
    assert_eq!(h.cmd(0, a).dw0.get() & 1, 1);
    assert!(h.poll(1).is_none());
    let mut d = sqe(0x00, 0);
    d.cdw10.set(1);
    assert!(h.cmd(0, d).status().is_success());
    let c = h.poll(1).unwrap();
    assert_eq!((c.cid(), c.status()), (cid, Status::ABORTED_SQ_DELETION));
}

#[test]
fn fault_fail_fatal_removed_never_ready() {
    let mut h = Host::ready(ModelConfig::default());
    h.ctrl.inject(Fault::Fail {
        qid: 1,
        opcode: 0x00,
        status: Status::INTERNAL_ERROR,
    });
    assert_eq!(h.cmd(1, sqe(0x00, 1)).status(), Status::INTERNAL_ERROR);
    assert!(h.cmd(1, sqe(0x00, 1)).status().is_success());

    h.ctrl.inject(Fault::Fatal);
    assert!(h.csts().cfs());
    let before = h.ctrl.executed().len();
    h.submit(1, sqe(0x00, 1));
    h.ring_sq(1);
    assert!(h.poll(1).is_none());
    assert_eq!(h.ctrl.executed().len(), before);

    h.ctrl.inject(Fault::Removed);
    assert_eq!(h.ctrl.read32(CSTS as usize), u32::MAX);
    assert_eq!(h.ctrl.read64(CAP as usize), u64::MAX);
    h.ctrl.clear_faults();
    assert!(!h.csts().cfs());
    assert_eq!(h.ctrl.read32(VS as usize), 0x0002_0000);

    let h = Host::new(ModelConfig::default());
    h.ctrl.inject(Fault::NeverReady);
    h.ctrl.write32(CC as usize, cc_enabled().0);
    assert!(!h.wait_ready(100));
    h.ctrl.clear_faults();
    assert!(h.wait_ready(0));
}

#[test]
fn reset_deletes_queues_and_closes_open_zones() {
    let mut h = Host::ready(zoned_cfg(0, 0));
    assert!(zone_write(&mut h, 0, 1).status().is_success());
    h.ctrl.write32(CC as usize, 0);
    assert!(!h.csts().rdy());
    assert_eq!(h.ctrl.zone(1, 0), Some((ZoneState::Closed, 1)));
    assert_eq!(h.ctrl.resets(), 1);
    // I/O queue 1 is gone: its doorbell is now invalid.
    let off = h.db.sq_tail(1).unwrap();
    h.ctrl.write32(off, 1);
    assert_eq!(
        h.ctrl.doorbell_errors(),
        [DoorbellError::SqTail { qid: 1, value: 1 }]
    );
}

#[test]
fn controller_handle_is_send_and_sync() {
    fn check<T: Send + Sync + Clone>(_: &T) {}
    let ctrl = SoftController::new(
        ModelConfig::default(),
        Arc::new(HeapDma::new(PAGE, HOST_IOVA)),
    );
    check(&ctrl);
    let other = ctrl.clone();
    other.inject(Fault::Removed);
    assert_eq!(ctrl.read32(CSTS as usize), u32::MAX);
}
