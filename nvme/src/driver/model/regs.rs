//! The model's BAR0: CAP, VS, CC, CSTS, AQA, ASQ, ACQ and the doorbells (NVMe Base 2.0 §3.1.4),
//! with the enable/ready and shutdown behaviour of CC/CSTS (NVMe Base 2.0 §3.5).

use super::{DoorbellError, ModelConfig, State};
use crate::driver::regs::{ACQ, AQA, ASQ, DOORBELL_BASE, INTMC, INTMS};
use crate::properties::{Cap, Cc, Csts, ShutdownNotification, ShutdownStatus, Version};
use crate::properties::{CAP, CC, CSTS, VS};

/// Size of BAR0 for `max_io_queues` I/O queue pairs plus the admin pair, at least 0x2000.
pub(super) fn bar_len(dstrd: u8, max_io_queues: u16) -> usize {
    let stride = 4usize << dstrd;
    let doorbells = DOORBELL_BASE as usize + 2 * (usize::from(max_io_queues) + 1) * stride;
    doorbells.max(0x2000).next_power_of_two()
}

/// Register values.
pub(super) struct Registers {
    cap: Cap,
    cc: Cc,
    rdy: bool,
    cfs: bool,
    shst: ShutdownStatus,
    /// The RDY value CC.EN asks for, and how many CSTS reads remain before RDY follows it.
    rdy_target: bool,
    rdy_delay: u32,
    delay_reads: u32,
    aqa: u32,
    asq: u64,
    acq: u64,
    intms: u32,
    dstrd: u8,
}

impl Registers {
    pub(super) fn new(cfg: &ModelConfig) -> Registers {
        // NVMe Base 2.0 §3.1.4.1: CQR = 1 (contiguous queues required), CSS bit 0 (NVM) and
        // bit 6 (I/O command sets), MPSMIN = MPSMAX = 0 (4 KiB).
        let cap = Cap(0)
            .with_mqes(cfg.mqes)
            .with_cqr(true)
            .with_to(cfg.timeout_500ms)
            .with_dstrd(cfg.dstrd)
            .with_css(Cap::CSS_NVM | Cap::CSS_IO_COMMAND_SETS)
            .with_mpsmin(0)
            .with_mpsmax(0);
        Registers {
            cap,
            cc: Cc(0),
            rdy: false,
            cfs: false,
            shst: ShutdownStatus::Normal,
            rdy_target: false,
            rdy_delay: 0,
            delay_reads: cfg.ready_delay_reads,
            aqa: 0,
            asq: 0,
            acq: 0,
            intms: 0,
            dstrd: cfg.dstrd,
        }
    }

    /// CSTS.RDY as last observed.
    pub(super) fn ready(&self) -> bool {
        self.rdy
    }

    pub(super) fn cc(&self) -> Cc {
        self.cc
    }

    pub(super) fn set_fatal(&mut self) {
        self.cfs = true;
    }

    pub(super) fn clear_fatal(&mut self) {
        self.cfs = false;
    }

    pub(super) fn admin_queues(&self) -> (u32, u32, u64, u64) {
        let sq_entries = (self.aqa & 0xfff) + 1;
        let cq_entries = ((self.aqa >> 16) & 0xfff) + 1;
        (sq_entries, cq_entries, self.asq, self.acq)
    }

    fn csts(&mut self, never_ready: bool) -> u32 {
        if self.rdy != self.rdy_target {
            if self.rdy_delay > 0 {
                self.rdy_delay -= 1;
            } else if !(self.rdy_target && never_ready) {
                self.rdy = self.rdy_target;
            }
        }
        Csts(0)
            .with_rdy(self.rdy)
            .with_cfs(self.cfs)
            .with_shst(self.shst)
            .0
    }

    pub(super) fn read32(&mut self, offset: usize, never_ready: bool) -> u32 {
        let cap = self.cap.0;
        match offset as u32 {
            o if o == CAP => cap as u32,
            o if o == CAP + 4 => (cap >> 32) as u32,
            o if o == VS => Version::V2_0.0,
            INTMS | INTMC => self.intms,
            o if o == CC => self.cc.0,
            o if o == CSTS => self.csts(never_ready),
            AQA => self.aqa,
            ASQ => self.asq as u32,
            o if o == ASQ + 4 => (self.asq >> 32) as u32,
            ACQ => self.acq as u32,
            o if o == ACQ + 4 => (self.acq >> 32) as u32,
            _ => 0,
        }
    }

    fn start_rdy_change(&mut self, target: bool) {
        self.rdy_target = target;
        self.rdy_delay = self.delay_reads;
        if self.delay_reads == 0 && !target {
            self.rdy = false;
        }
    }

    /// Whether the configuration in CC/AQA/ASQ/ACQ lets the controller become ready.
    fn enable_valid(&self, cc: Cc) -> bool {
        let (sq, cq, asq, acq) = self.admin_queues();
        // NVMe Base 2.0 §3.1.4.5: CSS 000b (NVM) or 110b (all I/O command sets); MPS within
        // CAP.MPSMIN..=MPSMAX; §3.1.4.8-10: admin queues of >= 2 entries, page aligned.
        matches!(cc.css(), Cc::CSS_NVM | Cc::CSS_ALL_IO)
            && cc.mps() == 0
            && sq >= 2
            && cq >= 2
            && asq & 0xfff == 0
            && acq & 0xfff == 0
    }
}

impl State {
    pub(super) fn write32(&mut self, offset: usize, value: u32) {
        let o = offset as u32;
        if o >= DOORBELL_BASE {
            self.doorbell(o - DOORBELL_BASE, value);
            return;
        }
        let r = &mut self.regs;
        match o {
            INTMS => r.intms |= value,
            INTMC => r.intms &= !value,
            AQA => r.aqa = value & 0x0fff_0fff,
            ASQ => r.asq = (r.asq & !0xffff_ffff) | u64::from(value),
            ACQ => r.acq = (r.acq & !0xffff_ffff) | u64::from(value),
            _ if o == ASQ + 4 => r.asq = (r.asq & 0xffff_ffff) | (u64::from(value) << 32),
            _ if o == ACQ + 4 => r.acq = (r.acq & 0xffff_ffff) | (u64::from(value) << 32),
            _ if o == CC => self.write_cc(Cc(value)),
            _ => {}
        }
    }

    fn write_cc(&mut self, cc: Cc) {
        let old = self.regs.cc;
        self.regs.cc = cc;
        if old.en() && !cc.en() {
            self.resets += 1;
            self.controller_reset();
            self.regs.shst = ShutdownStatus::Normal;
            self.regs.start_rdy_change(false);
        } else if !old.en() && cc.en() {
            self.regs.shst = ShutdownStatus::Normal;
            if self.regs.enable_valid(cc) {
                let (sq, cq, asq, acq) = self.regs.admin_queues();
                self.queues.create_admin(sq, cq, asq, acq);
                self.regs.start_rdy_change(true);
            }
        }
        // NVMe Base 2.0 §3.6.1: a shutdown notification completes at once in the model.
        if matches!(
            cc.shn(),
            ShutdownNotification::Normal | ShutdownNotification::Abrupt
        ) && old.shn() != cc.shn()
        {
            self.regs.shst = ShutdownStatus::Complete;
        }
    }

    /// Controller Level Reset (NVMe Base 2.0 §3.7.2): queues deleted, held commands dropped,
    /// opened zones closed (NVMe ZNS 1.1 §2.1.1.3).
    fn controller_reset(&mut self) {
        self.queues = Default::default();
        self.held.clear();
        for ns in &mut self.namespaces {
            if let Some(zones) = ns.zones.as_mut() {
                zones.close_all_open();
            }
        }
    }

    fn doorbell(&mut self, rel: u32, value: u32) {
        let stride = 4u32 << self.regs.dstrd;
        if !rel.is_multiple_of(stride) {
            return;
        }
        let index = rel / stride;
        let qid = (index / 2) as u16;
        if self.removed() || self.has(super::Fault::Fatal) {
            return;
        }
        if index.is_multiple_of(2) {
            if !self.queues.set_sq_tail(qid, value) {
                self.doorbell_errors
                    .push(DoorbellError::SqTail { qid, value });
                return;
            }
            if self.running() {
                self.process_sq(qid);
            }
        } else {
            if !self.queues.set_cq_head(qid, value) {
                self.doorbell_errors
                    .push(DoorbellError::CqHead { qid, value });
                return;
            }
            self.flush_cq(qid);
        }
    }
}
