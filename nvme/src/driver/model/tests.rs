//! The model driven by hand through `HeapDma`, `PagePool` and `QueuePair`, as a driver would.

use std::sync::Arc;

use super::admin::{MODEL_CNTLID, MODEL_MODEL, MODEL_SERIAL, MODEL_VID};
use super::*;
use crate::driver::dma::{DmaRegion, HeapDma};
use crate::driver::pool::{DmaBuf, PagePool};
use crate::driver::prp::{build_prps, PageSize};
use crate::driver::queue::QueuePair;
use crate::driver::regs::{aqa, DoorbellLayout, ACQ, AQA, ASQ};
use crate::identify::{IdentifyController, IdentifyNamespace};
use crate::properties::{Cap, Cc, Csts, ShutdownNotification, ShutdownStatus, CAP, CC, CSTS, VS};
use crate::zns::{IdentifyZnsNamespace, ZoneDescriptor, ZoneReportHeader};
use crate::{Cqe, Sqe};
use zerocopy::FromBytes;

type Mem = Arc<HeapDma>;
type Buf = DmaBuf<Mem>;

const HOST_IOVA: u64 = 0x1_0000_0000;
const PAGE: usize = 4096;

struct Host {
    dma: Mem,
    pool: PagePool<Mem>,
    ctrl: SoftController,
    db: DoorbellLayout,
    qps: Vec<Option<QueuePair<Buf, ()>>>,
}

fn sqe(opcode: u8, nsid: u32) -> Sqe {
    let mut s = Sqe {
        opcode,
        ..Sqe::default()
    };
    s.nsid.set(nsid);
    s
}

fn cc_enabled() -> Cc {
    Cc(0)
        .with_en(true)
        .with_css(Cc::CSS_ALL_IO)
        .with_iosqes(6)
        .with_iocqes(4)
}

fn zoned_cfg(max_open: u32, max_active: u32) -> ModelConfig {
    ModelConfig {
        zasl: 1,
        namespaces: vec![NsModel {
            block_size: 4096,
            blocks: 64,
            zoned: Some(ZonedModel {
                zone_size: 16,
                zone_cap: 12,
                max_open,
                max_active,
            }),
        }],
        ..ModelConfig::default()
    }
}

impl Host {
    /// Controller plus admin queue pair, not yet enabled.
    fn new(cfg: ModelConfig) -> Host {
        let dma: Mem = Arc::new(HeapDma::new(16 << 20, HOST_IOVA));
        let pool = PagePool::new(dma.clone(), PAGE).unwrap();
        let ctrl = SoftController::new(cfg, dma.clone());
        let db = DoorbellLayout::new(Cap(ctrl.read64(CAP as usize)), ctrl.bar_len());
        let admin =
            QueuePair::new(0, pool.alloc(PAGE).unwrap(), pool.alloc(PAGE).unwrap(), 16).unwrap();
        ctrl.write32(AQA as usize, aqa(16, 16).unwrap());
        ctrl.write64(ASQ as usize, admin.sq().iova());
        ctrl.write64(ACQ as usize, admin.cq().iova());
        Host {
            dma,
            pool,
            ctrl,
            db,
            qps: vec![Some(admin)],
        }
    }

    /// Enabled and ready, with I/O queue 1 of 64 entries.
    fn ready(cfg: ModelConfig) -> Host {
        let mut h = Host::new(cfg);
        h.ctrl.write32(CC as usize, cc_enabled().0);
        assert!(h.wait_ready(10));
        assert!(h.create_io(1, 64).status().is_success());
        h
    }

    fn csts(&self) -> Csts {
        Csts(self.ctrl.read32(CSTS as usize))
    }

    fn wait_ready(&self, reads: u32) -> bool {
        (0..=reads).any(|_| self.csts().rdy())
    }

    fn qp(&mut self, qid: u16) -> &mut QueuePair<Buf, ()> {
        self.qps[usize::from(qid)].as_mut().unwrap()
    }

    fn submit(&mut self, qid: u16, s: Sqe) -> u16 {
        self.qp(qid).submit(s, ()).unwrap()
    }

    fn ring_sq(&mut self, qid: u16) {
        if let Some(tail) = self.qp(qid).sq_doorbell() {
            let off = self.db.sq_tail(qid).unwrap();
            self.ctrl.write32(off, u32::from(tail));
        }
    }

    fn ring_cq(&mut self, qid: u16) {
        if let Some(head) = self.qp(qid).cq_doorbell() {
            let off = self.db.cq_head(qid).unwrap();
            self.ctrl.write32(off, u32::from(head));
        }
    }

    fn poll(&mut self, qid: u16) -> Option<Cqe> {
        self.qp(qid).poll().unwrap().map(|((), c)| c)
    }

    /// Submit one command, ring, and return its completion.
    fn cmd(&mut self, qid: u16, s: Sqe) -> Cqe {
        let cid = self.submit(qid, s);
        self.ring_sq(qid);
        let cqe = self.poll(qid).expect("no completion");
        self.ring_cq(qid);
        assert_eq!(cqe.cid(), cid);
        assert_eq!(cqe.sqid.get(), qid);
        cqe
    }

    fn create_io(&mut self, qid: u16, entries: u32) -> Cqe {
        let qp = QueuePair::new(
            qid,
            self.pool.alloc(entries as usize * 64).unwrap(),
            self.pool.alloc(entries as usize * 16).unwrap(),
            entries,
        )
        .unwrap();
        let mut c = sqe(0x05, 0);
        c.cdw10.set(u32::from(qid) | ((entries - 1) << 16));
        c.cdw11.set(1);
        c.dptr[0..8].copy_from_slice(&qp.cq().iova().to_le_bytes());
        let cqe = self.cmd(0, c);
        if !cqe.status().is_success() {
            return cqe;
        }
        let mut s = sqe(0x01, 0);
        s.cdw10.set(u32::from(qid) | ((entries - 1) << 16));
        s.cdw11.set(1 | (u32::from(qid) << 16));
        s.dptr[0..8].copy_from_slice(&qp.sq().iova().to_le_bytes());
        let cqe = self.cmd(0, s);
        if cqe.status().is_success() {
            if self.qps.len() <= usize::from(qid) {
                self.qps.resize_with(usize::from(qid) + 1, || None);
            }
            self.qps[usize::from(qid)] = Some(qp);
        }
        cqe
    }

    fn off(&self, iova: u64) -> usize {
        (iova - self.dma.iova()) as usize
    }

    /// Data pointer over `bufs` (each whole pages) with PRP list pages from the pool.
    fn prps(&mut self, s: &mut Sqe, bufs: &[&Buf], len: usize, lists: &mut Vec<Buf>) {
        let mut segs = Vec::new();
        let mut left = len;
        for b in bufs {
            if left == 0 {
                break;
            }
            let n = left.min(b.len());
            segs.push((b.iova(), n));
            left -= n;
        }
        let pool = self.pool.clone();
        let mut alloc = || {
            let page = pool.alloc(PAGE).ok()?;
            let iova = page.iova();
            lists.push(page);
            Some(iova)
        };
        let prps = build_prps(PageSize::MIN, &segs, u64::MAX, &mut alloc).unwrap();
        for (iova, entries) in &prps.lists {
            let bytes: Vec<u8> = entries.iter().flat_map(|e| e.to_le_bytes()).collect();
            self.dma.write_bytes(self.off(*iova), &bytes).unwrap();
        }
        s.dptr[0..8].copy_from_slice(&prps.prp1.to_le_bytes());
        s.dptr[8..16].copy_from_slice(&prps.prp2.to_le_bytes());
    }

    /// Scattered one-page buffers: every other page, so none are contiguous.
    fn scattered(&self, pages: usize) -> Vec<Buf> {
        let mut keep = Vec::new();
        let mut gaps = Vec::new();
        for _ in 0..pages {
            keep.push(self.pool.alloc(PAGE).unwrap());
            gaps.push(self.pool.alloc(PAGE).unwrap());
        }
        keep
    }

    fn rw(
        &mut self,
        opcode: u8,
        nsid: u32,
        lba: u64,
        blocks: u32,
        bufs: &[&Buf],
        len: usize,
    ) -> Cqe {
        let mut s = sqe(opcode, nsid);
        s.cdw10.set(lba as u32);
        s.cdw11.set((lba >> 32) as u32);
        s.cdw12.set(blocks - 1);
        let mut lists = Vec::new();
        self.prps(&mut s, bufs, len, &mut lists);
        self.cmd(1, s)
    }

    fn fill(&self, bufs: &[&Buf], seed: u8) -> Vec<u8> {
        let mut all = Vec::new();
        for (i, b) in bufs.iter().enumerate() {
            let data: Vec<u8> = (0..b.len())
                .map(|j| (j as u8).wrapping_mul(31) ^ seed ^ i as u8)
                .collect();
            b.write_bytes(0, &data).unwrap();
            all.extend(data);
        }
        all
    }

    fn gather(&self, bufs: &[&Buf], len: usize) -> Vec<u8> {
        let mut all = Vec::new();
        for b in bufs {
            let mut d = vec![0u8; b.len()];
            b.read_bytes(0, &mut d).unwrap();
            all.extend(d);
        }
        all.truncate(len);
        all
    }

    fn identify(&mut self, cns: u8, csi: u8, nsid: u32) -> (Cqe, Vec<u8>) {
        let buf = self.pool.alloc(PAGE).unwrap();
        let mut s = sqe(0x06, nsid);
        s.cdw10.set(u32::from(cns));
        s.cdw11.set(u32::from(csi) << 24);
        s.dptr[0..8].copy_from_slice(&buf.iova().to_le_bytes());
        let cqe = self.cmd(0, s);
        (cqe, self.gather(&[&buf], PAGE))
    }
}

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

#[test]
fn read_after_write_4k_and_128k_with_prp_lists() {
    let mut h = Host::ready(ModelConfig::default());
    let one = h.scattered(1);
    let one: Vec<&Buf> = one.iter().collect();
    let data = h.fill(&one, 7);
    assert!(h.rw(0x01, 1, 10, 1, &one, PAGE).status().is_success());
    assert_eq!(h.ctrl.read_blocks(1, 10, 1), data);
    let back = h.scattered(1);
    let back: Vec<&Buf> = back.iter().collect();
    assert!(h.rw(0x02, 1, 10, 1, &back, PAGE).status().is_success());
    assert_eq!(h.gather(&back, PAGE), data);

    // 128 KiB = 32 pages: PRP1 + a PRP list of 31 entries.
    let bufs = h.scattered(32);
    let bufs: Vec<&Buf> = bufs.iter().collect();
    let data = h.fill(&bufs, 0x5a);
    assert!(h
        .rw(0x01, 1, 100, 32, &bufs, 32 * PAGE)
        .status()
        .is_success());
    assert_eq!(h.ctrl.read_blocks(1, 100, 32), data);
    let back = h.scattered(32);
    let back: Vec<&Buf> = back.iter().collect();
    assert!(h
        .rw(0x02, 1, 100, 32, &back, 32 * PAGE)
        .status()
        .is_success());
    assert_eq!(h.gather(&back, 32 * PAGE), data);
    // Unwritten blocks read as zeroes.
    assert!(h
        .rw(0x02, 1, 500, 1, &back[..1], PAGE)
        .status()
        .is_success());
    assert_eq!(h.gather(&back[..1], PAGE), vec![0; PAGE]);
    // MDTS is 128 KiB: 33 blocks is too much; out of range and bad NSID.
    assert_eq!(
        h.rw(0x02, 1, 0, 33, &back, 32 * PAGE).status(),
        Status::INVALID_FIELD
    );
    assert_eq!(
        h.rw(0x02, 1, 1020, 8, &back, 8 * PAGE).status(),
        Status::LBA_OUT_OF_RANGE
    );
    assert_eq!(
        h.rw(0x02, 2, 0, 1, &back, PAGE).status(),
        Status::INVALID_NAMESPACE
    );
}

#[test]
fn without_moving_data_reads_and_writes_complete_and_touch_nothing() {
    let mut h = Host::ready(ModelConfig::default());
    let bufs = h.scattered(1);
    let bufs: Vec<&Buf> = bufs.iter().collect();
    let data = h.fill(&bufs, 3);
    assert!(h.rw(0x01, 1, 5, 1, &bufs, PAGE).status().is_success());
    h.ctrl.set_moves_data(false);
    // A write stores nothing, a read leaves the host's buffer as it was.
    let other = h.scattered(1);
    let other: Vec<&Buf> = other.iter().collect();
    let ignored = h.fill(&other, 9);
    assert!(h.rw(0x01, 1, 5, 1, &other, PAGE).status().is_success());
    assert!(h.rw(0x02, 1, 5, 1, &other, PAGE).status().is_success());
    assert_eq!(h.gather(&other, PAGE), ignored);
    assert_eq!(h.ctrl.read_blocks(1, 5, 1), data);
    // The range rule still holds.
    assert_eq!(
        h.rw(0x02, 1, 1024, 1, &other, PAGE).status(),
        Status::LBA_OUT_OF_RANGE
    );
    h.ctrl.set_moves_data(true);
    assert!(h.rw(0x02, 1, 5, 1, &other, PAGE).status().is_success());
    assert_eq!(h.gather(&other, PAGE), data);
}

#[test]
fn prp_list_chains_across_list_pages() {
    let cfg = ModelConfig {
        mdts: 0,
        ..ModelConfig::default()
    };
    let mut h = Host::ready(cfg);
    // 600 pages need 599 list entries: two list pages chained by the last entry.
    let bufs = h.pool.alloc(600 * PAGE).unwrap();
    let data: Vec<u8> = (0..600 * PAGE)
        .map(|i| (i / PAGE) as u8 ^ i as u8)
        .collect();
    bufs.write_bytes(0, &data).unwrap();
    assert!(h
        .rw(0x01, 1, 0, 600, &[&bufs], 600 * PAGE)
        .status()
        .is_success());
    assert_eq!(h.ctrl.read_blocks(1, 0, 600), data);
}

#[test]
fn bad_prps_and_iommu_faults() {
    let mut h = Host::ready(ModelConfig::default());
    let buf = h.pool.alloc(2 * PAGE).unwrap();
    let mut s = sqe(0x02, 1);
    s.cdw12.set(1);
    s.dptr[0..8].copy_from_slice(&buf.iova().to_le_bytes());
    s.dptr[8..16].copy_from_slice(&(buf.iova() + PAGE as u64 + 8).to_le_bytes());
    assert_eq!(h.cmd(1, s).status(), Status::PRP_OFFSET_INVALID);
    s.dptr[0..8].copy_from_slice(&(buf.iova() + 2).to_le_bytes());
    assert_eq!(h.cmd(1, s).status(), Status::PRP_OFFSET_INVALID);
    s.dptr[0..8].copy_from_slice(&0x1000u64.to_le_bytes());
    s.dptr[8..16].copy_from_slice(&0x2000u64.to_le_bytes());
    assert_eq!(h.cmd(1, s).status(), Status::DATA_TRANSFER_ERROR);
    // SGL without `sgls` is an invalid field.
    s.flags = 1 << 6;
    assert_eq!(h.cmd(1, s).status(), Status::INVALID_FIELD);
}

#[test]
fn sgl_data_block_write_zeroes_and_deallocate() {
    let cfg = ModelConfig {
        sgls: true,
        ..ModelConfig::default()
    };
    let mut h = Host::ready(cfg);
    let buf = h.pool.alloc(4 * PAGE).unwrap();
    let data = h.fill(&[&buf], 3);
    let sgl = |s: &mut Sqe, len: u32| {
        s.flags = 1 << 6;
        s.dptr = [0; 16];
        s.dptr[0..8].copy_from_slice(&buf.iova().to_le_bytes());
        s.dptr[8..12].copy_from_slice(&len.to_le_bytes());
    };
    let mut w = sqe(0x01, 1);
    w.cdw10.set(20);
    w.cdw12.set(3);
    sgl(&mut w, 4 * PAGE as u32);
    assert!(h.cmd(1, w).status().is_success());
    assert_eq!(h.ctrl.read_blocks(1, 20, 4), data);
    sgl(&mut w, PAGE as u32);
    assert_eq!(h.cmd(1, w).status(), Status::DATA_SGL_LENGTH_INVALID);
    w.dptr[15] = 0x50;
    assert_eq!(h.cmd(1, w).status(), Status::SGL_DESCRIPTOR_TYPE_INVALID);

    let mut z = sqe(0x08, 1);
    z.cdw10.set(20);
    assert!(h.cmd(1, z).status().is_success());
    assert_eq!(h.ctrl.read_blocks(1, 20, 1), vec![0; PAGE]);
    assert_eq!(h.ctrl.read_blocks(1, 21, 3), data[PAGE..]);

    let range = crate::command::DsmRange::new(22, 1, 0);
    let rbuf = h.pool.alloc(PAGE).unwrap();
    rbuf.write_bytes(0, zerocopy::IntoBytes::as_bytes(&range))
        .unwrap();
    let mut d = sqe(0x09, 1);
    d.cdw11.set(1 << 2);
    d.dptr[0..8].copy_from_slice(&rbuf.iova().to_le_bytes());
    assert!(h.cmd(1, d).status().is_success());
    assert_eq!(h.ctrl.read_blocks(1, 22, 1), vec![0; PAGE]);
    assert_eq!(h.ctrl.read_blocks(1, 23, 1), data[3 * PAGE..]);
    assert!(h.cmd(1, sqe(0x00, 1)).status().is_success());
}

#[test]
fn full_cq_holds_completions_until_head_doorbell() {
    let mut h = Host::ready(ModelConfig::default());
    assert!(h.create_io(2, 4).status().is_success());
    for _ in 0..3 {
        h.submit(2, sqe(0x00, 1));
    }
    h.ring_sq(2);
    let mut first = Vec::new();
    while let Some(c) = h.poll(2) {
        first.push(c);
    }
    assert_eq!(first.len(), 3);
    // CQ head doorbell not rung: the controller sees a full CQ and holds the next ones.
    for _ in 0..3 {
        h.submit(2, sqe(0x00, 1));
    }
    h.ring_sq(2);
    assert!(h.poll(2).is_none());
    h.ring_cq(2);
    let mut second = Vec::new();
    while let Some(c) = h.poll(2) {
        second.push(c);
    }
    assert_eq!(second.len(), 3);
    assert!(second.iter().all(|c| c.status().is_success()));
    // SQHD reports the head after each fetch: 1, 2, 3 then 0 (wrapped), 1, 2.
    let heads: Vec<u16> = first.iter().chain(&second).map(|c| c.sqhd.get()).collect();
    assert_eq!(heads, [1, 2, 3, 0, 1, 2]);
}

#[test]
fn invalid_doorbell_writes_are_ignored_and_recorded() {
    let mut h = Host::ready(ModelConfig::default());
    let off = h.db.sq_tail(1).unwrap();
    h.ctrl.write32(off, 64);
    let off = h.db.cq_head(1).unwrap();
    h.ctrl.write32(off, 5);
    let off = h.db.sq_tail(7).unwrap();
    h.ctrl.write32(off, 1);
    assert_eq!(
        h.ctrl.doorbell_errors(),
        [
            DoorbellError::SqTail { qid: 1, value: 64 },
            DoorbellError::CqHead { qid: 1, value: 5 },
            DoorbellError::SqTail { qid: 7, value: 1 },
        ]
    );
    // The queue still works.
    assert!(h.cmd(1, sqe(0x00, 1)).status().is_success());
}

fn zone_write(h: &mut Host, lba: u64, blocks: u32) -> Cqe {
    let buf = h.pool.alloc(blocks as usize * PAGE).unwrap();
    h.fill(&[&buf], lba as u8);
    h.rw(0x01, 1, lba, blocks, &[&buf], blocks as usize * PAGE)
}

fn zone_send(h: &mut Host, zslba: u64, action: u8, all: bool) -> Status {
    let mut s = sqe(0x79, 1);
    s.cdw10.set(zslba as u32);
    s.cdw13.set(u32::from(action) | (u32::from(all) << 8));
    h.cmd(1, s).status()
}

fn report(h: &mut Host, slba: u64, option: u8, partial: bool, len: usize) -> (Status, Vec<u8>) {
    let buf = h.pool.alloc(len).unwrap();
    let mut s = sqe(0x7a, 1);
    s.cdw10.set(slba as u32);
    s.cdw12.set((len / 4 - 1) as u32);
    s.cdw13
        .set((u32::from(option) << 8) | (u32::from(partial) << 16));
    s.dptr[0..8].copy_from_slice(&buf.iova().to_le_bytes());
    let st = h.cmd(1, s).status();
    (st, h.gather(&[&buf], len))
}

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

#[test]
fn namespaces_of_gibs_are_sparse() {
    let cfg = ModelConfig {
        namespaces: vec![
            NsModel {
                block_size: 4096,
                blocks: 1 << 20,
                zoned: None,
            },
            NsModel {
                block_size: 4096,
                blocks: 1 << 21,
                zoned: Some(ZonedModel {
                    zone_size: 1 << 16,
                    zone_cap: 60_000,
                    max_open: 0,
                    max_active: 0,
                }),
            },
        ],
        ..ModelConfig::default()
    };
    let mut h = Host::ready(cfg);
    let last = (1u64 << 20) - 1;
    let one = h.scattered(1);
    let one: Vec<&Buf> = one.iter().collect();
    let data = h.fill(&one, 1);
    assert!(h.rw(0x01, 1, last, 1, &one, PAGE).status().is_success());
    assert_eq!(h.ctrl.read_blocks(1, last, 1), data);
    // Deallocating 4 GiB frees the one stored chunk.
    let range = crate::command::DsmRange::new(0, u32::MAX, 0);
    let rbuf = h.pool.alloc(PAGE).unwrap();
    rbuf.write_bytes(0, zerocopy::IntoBytes::as_bytes(&range))
        .unwrap();
    let mut d = sqe(0x09, 1);
    d.cdw11.set(1 << 2);
    d.dptr[0..8].copy_from_slice(&rbuf.iova().to_le_bytes());
    assert_eq!(h.cmd(1, d).status(), Status::LBA_OUT_OF_RANGE);
    let range = crate::command::DsmRange::new(0, 1 << 20, 0);
    rbuf.write_bytes(0, zerocopy::IntoBytes::as_bytes(&range))
        .unwrap();
    assert!(h.cmd(1, d).status().is_success());
    assert_eq!(h.ctrl.read_blocks(1, last, 1), vec![0; PAGE]);

    let zslba = 31u64 << 16;
    let mut s = sqe(0x7d, 2);
    s.cdw10.set(zslba as u32);
    let mut lists = Vec::new();
    h.prps(&mut s, &one, PAGE, &mut lists);
    let c = h.cmd(1, s);
    assert_eq!(c.result64(), zslba);
    assert_eq!(h.ctrl.read_blocks(2, zslba, 1), data);
    let mut r = sqe(0x79, 2);
    r.cdw13.set(0x04 | (1 << 8));
    assert!(h.cmd(1, r).status().is_success());
    assert_eq!(h.ctrl.zone(2, zslba), Some((ZoneState::Empty, zslba)));
    assert_eq!(h.ctrl.read_blocks(2, zslba, 1), vec![0; PAGE]);
}

#[test]
fn block_size_512_partial_chunks() {
    let cfg = ModelConfig {
        namespaces: vec![NsModel {
            block_size: 512,
            blocks: 4096,
            zoned: None,
        }],
        ..ModelConfig::default()
    };
    let mut h = Host::ready(cfg);
    let bufs = h.scattered(2);
    let bufs: Vec<&Buf> = bufs.iter().collect();
    let data = h.fill(&bufs, 0x33);
    // 16 blocks at LBA 5 straddle three 4 KiB chunks.
    assert!(h.rw(0x01, 1, 5, 16, &bufs, 2 * PAGE).status().is_success());
    assert_eq!(h.ctrl.read_blocks(1, 5, 16), data);
    let mut z = sqe(0x08, 1);
    z.cdw10.set(7);
    z.cdw12.set(9);
    assert!(h.cmd(1, z).status().is_success());
    let mut want = data.clone();
    want[2 * 512..12 * 512].fill(0);
    assert_eq!(h.ctrl.read_blocks(1, 5, 16), want);
    let back = h.scattered(2);
    let back: Vec<&Buf> = back.iter().collect();
    assert!(h.rw(0x02, 1, 5, 16, &back, 2 * PAGE).status().is_success());
    assert_eq!(h.gather(&back, 2 * PAGE), want);
}
