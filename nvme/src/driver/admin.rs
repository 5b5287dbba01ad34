//! Admin commands: SQE builders for what the driver sends (NVMe Base 2.0 §5) and the admin
//! queue, which runs one command at a time to completion by polling, or fires Aborts without
//! waiting.

use std::time::Duration;

use super::clock::Clock;
use super::dma::DmaRegion;
use super::error::DriverError;
use super::pool::{DmaBuf, PagePool};
use super::queue::{alloc_queue_pair, QueuePair};
use super::regs::{DoorbellLayout, Mmio};
use crate::opcode::AdminOpcode;
use crate::{Cqe, Sqe};

/// Put PRP1/PRP2 into an SQE's data pointer (NVMe Base 2.0 §4.2, DPTR bytes 24..40).
pub fn set_prps(sqe: &mut Sqe, prp1: u64, prp2: u64) {
    sqe.dptr[..8].copy_from_slice(&prp1.to_le_bytes());
    sqe.dptr[8..].copy_from_slice(&prp2.to_le_bytes());
}

fn admin(opcode: AdminOpcode) -> Sqe {
    Sqe {
        opcode: opcode.to_u8(),
        ..Default::default()
    }
}

/// Identify (NVMe Base 2.0 §5.17): CNS in CDW10 bits 7:0, CSI in CDW11 bits 31:24; the
/// 4096-byte result goes to `prp1` (a page-aligned page needs no PRP2).
pub fn identify(cns: u8, csi: u8, nsid: u32, prp1: u64) -> Sqe {
    let mut sqe = admin(AdminOpcode::Identify);
    sqe.nsid.set(nsid);
    sqe.cdw10.set(u32::from(cns));
    sqe.cdw11.set(u32::from(csi) << 24);
    set_prps(&mut sqe, prp1, 0);
    sqe
}

/// Set Features (NVMe Base 2.0 §5.27): FID in CDW10 bits 7:0, the value in CDW11.
pub fn set_features(fid: u8, cdw11: u32) -> Sqe {
    let mut sqe = admin(AdminOpcode::SetFeatures);
    sqe.cdw10.set(u32::from(fid));
    sqe.cdw11.set(cdw11);
    sqe
}

/// Create I/O Completion Queue (NVMe Base 2.0 §5.4): physically contiguous (PC = 1) and
/// polled (IEN = 0, IV = 0).
pub fn create_io_cq(qid: u16, entries: u32, iova: u64) -> Sqe {
    let mut sqe = admin(AdminOpcode::CreateIoCq);
    sqe.cdw10.set(u32::from(qid) | ((entries - 1) << 16));
    sqe.cdw11.set(1);
    set_prps(&mut sqe, iova, 0);
    sqe
}

/// Create I/O Submission Queue (NVMe Base 2.0 §5.5): physically contiguous, medium priority,
/// bound to completion queue `cqid`.
pub fn create_io_sq(qid: u16, entries: u32, iova: u64, cqid: u16) -> Sqe {
    let mut sqe = admin(AdminOpcode::CreateIoSq);
    sqe.cdw10.set(u32::from(qid) | ((entries - 1) << 16));
    sqe.cdw11.set(1 | (u32::from(cqid) << 16));
    set_prps(&mut sqe, iova, 0);
    sqe
}

/// Get Log Page (NVMe Base 2.0 §5.16) of `dwords` dwords (1 ..= 2^32) from byte offset 0:
/// LID in CDW10 bits 7:0, the 0's based dword count split as NUMDL (CDW10 bits 31:16) and NUMDU
/// (CDW11 bits 15:0); LSP, RAE, LSI, LPO, OT, CSI and the UUID index left 0. RAE = 0: reading
/// the log re-arms its asynchronous event, which the driver does not request anyway.
pub fn get_log_page(lid: u8, nsid: u32, dwords: u64) -> Sqe {
    let numd = dwords.clamp(1, 1 << 32) - 1;
    let mut sqe = admin(AdminOpcode::GetLogPage);
    sqe.nsid.set(nsid);
    sqe.cdw10
        .set(u32::from(lid) | (((numd & 0xffff) as u32) << 16));
    sqe.cdw11.set((numd >> 16) as u32);
    sqe
}

/// Abort (NVMe Base 2.0 §5.1): SQID in CDW10 bits 15:0, CID in bits 31:16.
pub fn abort(sqid: u16, cid: u16) -> Sqe {
    let mut sqe = admin(AdminOpcode::Abort);
    sqe.cdw10.set(u32::from(sqid) | (u32::from(cid) << 16));
    sqe
}

/// Largest data transfer of [`AdminQueue::run_read`]: two pages, which PRP1 and PRP2 describe
/// without a PRP list (NVMe Base 2.0 §4.3.1).
pub const MAX_READ: usize = 2 * PAGE;
const PAGE: usize = 4096;

/// The admin queue pair (queue ID 0) and its doorbells. Each command carries a token; a
/// blocking [`AdminQueue::run`] waits for its own token and drops other completions (Aborts
/// fired earlier), whose outcome the driver learns from the aborted command itself.
pub struct AdminQueue<M> {
    qp: QueuePair<DmaBuf<M>, u64>,
    sq_db: usize,
    cq_db: usize,
    next_token: u64,
    /// Data buffers of commands that timed out: the controller may still write them, so they
    /// go back to the pool only with the queue, which a controller reset replaces after
    /// disabling the controller. At most one per queue entry (a command that never completes
    /// keeps its entry).
    stale: Vec<DmaBuf<M>>,
}

impl<M: DmaRegion> AdminQueue<M> {
    /// Queues of `entries` slots from `pool` (zeroed, so the CQ starts without phase tags).
    pub fn new(
        pool: &PagePool<M>,
        entries: u32,
        layout: &DoorbellLayout,
    ) -> Result<AdminQueue<M>, DriverError> {
        Ok(AdminQueue {
            qp: alloc_queue_pair(pool, 0, entries)?,
            sq_db: layout.sq_tail(0)?,
            cq_db: layout.cq_head(0)?,
            next_token: 0,
            stale: Vec::new(),
        })
    }

    pub fn entries(&self) -> u32 {
        self.qp.sq().entries()
    }

    /// ASQ for the controller register.
    pub fn sq_iova(&self) -> u64 {
        self.qp.sq().iova()
    }

    /// ACQ for the controller register.
    pub fn cq_iova(&self) -> u64 {
        self.qp.cq().iova()
    }

    /// Submit `sqe` and ring the doorbell; returns its token.
    pub fn submit(&mut self, mmio: &dyn Mmio, sqe: Sqe) -> Result<u64, DriverError> {
        self.reap(mmio)?;
        let token = self.next_token;
        self.next_token += 1;
        self.qp.submit(sqe, token).map_err(|(e, _)| e)?;
        if let Some(tail) = self.qp.sq_doorbell() {
            mmio.write32(self.sq_db, u32::from(tail));
        }
        Ok(token)
    }

    /// Consume every posted completion, ring the CQ doorbell once, and return them.
    pub fn reap(&mut self, mmio: &dyn Mmio) -> Result<Vec<(u64, Cqe)>, DriverError> {
        let mut done = Vec::new();
        let result = loop {
            match self.qp.poll() {
                Ok(Some(c)) => done.push(c),
                Ok(None) => break Ok(()),
                Err(e) => break Err(e),
            }
        };
        if let Some(head) = self.qp.cq_doorbell() {
            mmio.write32(self.cq_db, u32::from(head));
        }
        result?;
        Ok(done)
    }

    /// Submit `sqe` and poll until it completes successfully (its CQE), fails
    /// ([`DriverError::Admin`]) or `timeout` passes ([`DriverError::AdminTimeout`]).
    pub fn run(
        &mut self,
        mmio: &dyn Mmio,
        clock: &dyn Clock,
        sqe: Sqe,
        timeout: Duration,
    ) -> Result<Cqe, DriverError> {
        let opcode = sqe.opcode;
        let token = self.submit(mmio, sqe)?;
        let deadline = clock.now() + timeout;
        loop {
            if let Some((_, cqe)) = self.reap(mmio)?.into_iter().find(|(t, _)| *t == token) {
                let status = cqe.status();
                if !status.is_success() {
                    return Err(DriverError::Admin { opcode, status });
                }
                return Ok(cqe);
            }
            if clock.now() >= deadline {
                return Err(DriverError::AdminTimeout {
                    opcode,
                    after: timeout,
                });
            }
            clock.pause();
        }
    }

    /// [`AdminQueue::run`] with a one-page data buffer whose contents are returned (Identify).
    pub fn run_read_page(
        &mut self,
        mmio: &dyn Mmio,
        clock: &dyn Clock,
        pool: &PagePool<M>,
        sqe: Sqe,
        timeout: Duration,
    ) -> Result<(Cqe, Vec<u8>), DriverError> {
        self.run_read(mmio, clock, pool, sqe, PAGE, timeout)
    }

    /// [`AdminQueue::run`] with a data buffer of `len` bytes (1 ..= [`MAX_READ`]) from `pool`,
    /// described by PRP1 (and PRP2 when it spans two pages), whose contents are returned. The
    /// buffer of a command that timed out is kept (see `stale`), not freed under the device.
    pub fn run_read(
        &mut self,
        mmio: &dyn Mmio,
        clock: &dyn Clock,
        pool: &PagePool<M>,
        mut sqe: Sqe,
        len: usize,
        timeout: Duration,
    ) -> Result<(Cqe, Vec<u8>), DriverError> {
        if len == 0 || len > MAX_READ {
            return Err(DriverError::Options(format!(
                "admin data transfer of {len} bytes (1 to {MAX_READ})"
            )));
        }
        let buf = pool.alloc(len)?;
        let prp2 = if len > PAGE {
            buf.iova() + PAGE as u64
        } else {
            0
        };
        set_prps(&mut sqe, buf.iova(), prp2);
        match self.run(mmio, clock, sqe, timeout) {
            Ok(cqe) => {
                let mut data = vec![0u8; len];
                buf.read_bytes(0, &mut data)?;
                Ok((cqe, data))
            }
            Err(e) => {
                if matches!(e, DriverError::AdminTimeout { .. }) {
                    self.stale.push(buf);
                }
                Err(e)
            }
        }
    }

    /// Data buffers kept from commands that timed out.
    pub fn stale_buffers(&self) -> usize {
        self.stale.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::command::AdminCommand;
    use crate::log_page::LogPageId;

    #[test]
    fn builders_encode_fields() {
        let s = identify(0x05, 0x02, 7, 0x1000);
        assert_eq!((s.opcode, s.nsid(), s.cdw10.get()), (0x06, 7, 0x05));
        assert_eq!(s.cdw11.get(), 0x0200_0000);
        assert_eq!(&s.dptr[..8], &0x1000u64.to_le_bytes());
        assert_eq!(&s.dptr[8..], &[0u8; 8]);
        let s = create_io_cq(3, 256, 0x2000);
        assert_eq!(
            (s.opcode, s.cdw10.get(), s.cdw11.get()),
            (0x05, 0x00ff_0003, 1)
        );
        let s = create_io_sq(3, 256, 0x3000, 3);
        assert_eq!(
            (s.opcode, s.cdw10.get(), s.cdw11.get()),
            (0x01, 0x00ff_0003, 0x0003_0001)
        );
        // SMART / Health, 512 bytes = 128 dwords: NUMDL 127, NUMDU 0.
        let s = get_log_page(0x02, 0xffff_ffff, 128);
        assert_eq!(
            (s.opcode, s.nsid(), s.cdw10.get(), s.cdw11.get()),
            (0x02, 0xffff_ffff, 0x007f_0002, 0)
        );
        // 2^16 + 1 dwords: 0's based 0x1_0000, NUMDL 0 and NUMDU 1.
        let s = get_log_page(0x01, 0, (1 << 16) + 1);
        assert_eq!((s.cdw10.get(), s.cdw11.get()), (0x0000_0001, 1));
        // What a controller decodes from it.
        let Ok(AdminCommand::GetLogPage(g)) = AdminCommand::decode(&s) else {
            panic!("not a Get Log Page")
        };
        assert_eq!(
            (g.lid, g.nsid, g.numd, g.lpo, g.rae),
            (LogPageId::ErrorInformation, 0, (1 << 16) + 1, 0, false)
        );
        let s = abort(2, 0x11);
        assert_eq!((s.opcode, s.cdw10.get()), (0x08, 0x0011_0002));
        let s = set_features(0x07, 0x0003_0003);
        assert_eq!(
            (s.opcode, s.cdw10.get(), s.cdw11.get()),
            (0x09, 7, 0x0003_0003)
        );
    }
}
