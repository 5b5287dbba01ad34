//! The model driven by hand through `HeapDma`, `PagePool` and `QueuePair`, as a driver would:
//! the host harness and the zone command helpers here, the tests by area in the submodules.

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

mod admin;
mod faults;
mod health;
mod nvm;
mod zns;

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

    /// Get Log Page of `dwords` dwords (at most a page) from byte offset `lpo`.
    fn log_page(&mut self, lid: u8, nsid: u32, lpo: u64, dwords: u32) -> (Cqe, Vec<u8>) {
        let buf = self.pool.alloc(PAGE).unwrap();
        let mut s = crate::driver::admin::get_log_page(lid, nsid, u64::from(dwords));
        s.cdw12.set(lpo as u32);
        s.cdw13.set((lpo >> 32) as u32);
        s.dptr[0..8].copy_from_slice(&buf.iova().to_le_bytes());
        let cqe = self.cmd(0, s);
        (cqe, self.gather(&[&buf], dwords as usize * 4))
    }

    /// The SMART / Health log, whole.
    fn smart(&mut self) -> crate::log_page::SmartHealth {
        let (cqe, page) = self.log_page(0x02, u32::MAX, 0, 128);
        assert!(cqe.status().is_success(), "{:?}", cqe.status());
        crate::log_page::SmartHealth::from_bytes(&page).unwrap()
    }
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
