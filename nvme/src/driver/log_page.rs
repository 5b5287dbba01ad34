//! Log pages read from a running controller (Get Log Page, NVMe Base 2.0 §5.16) on the admin
//! queue: for the management plane, never on the I/O path.

use ferrofab_sync::CountedLock as _;

use super::admin::{self, MAX_READ};
use super::controller;
use super::dma::DmaRegion;
use super::error::DriverError;
use super::nvme_driver::NvmeDriver;
use crate::log_page::{LogPageId, SmartHealth};

/// NSID FFFFFFFFh: the controller-wide log (NVMe Base 2.0 §5.16, "Namespace Identifier").
pub const NSID_ALL: u32 = 0xffff_ffff;

impl<M: DmaRegion + Send + Sync + 'static> NvmeDriver<M> {
    /// The first `len` bytes (1 ..= 8192) of log page `lid` for namespace `nsid`
    /// ([`NSID_ALL`] for the controller-wide one), read from byte offset 0 with Get Log Page
    /// (NVMe Base 2.0 §5.16: opcode 02h, CDW10 LID bits 7:0 and NUMDL bits 31:16, CDW11 NUMDU
    /// bits 15:0, the dword count 0's based; a length that is not a multiple of four is read
    /// as whole dwords and cut).
    ///
    /// It holds the admin queue, as Aborts do, for at most the driver's command timeout. A
    /// failed status is [`DriverError::Admin`] with the controller's status; a driver that is
    /// gone is [`DriverError::Gone`]; a controller found removed or failed (all-ones CSTS,
    /// CSTS.CFS) makes the driver gone, as an I/O timeout does.
    pub fn log_page(&self, lid: u8, nsid: u32, len: usize) -> Result<Vec<u8>, DriverError> {
        if len == 0 || len > MAX_READ {
            return Err(DriverError::Options(format!(
                "log page read of {len} bytes (1 to {MAX_READ})"
            )));
        }
        self.usable()?;
        let dwords = len.div_ceil(4);
        let result = {
            let mut admin = self.admin.lock_counted();
            // A shutdown holds the admin queue until the driver is gone.
            if let Some(reason) = self.gone() {
                return Err(DriverError::Gone(reason));
            }
            let sqe = admin::get_log_page(lid, nsid, dwords as u64);
            admin.run_read(
                &*self.mmio,
                &*self.clock,
                &self.pool,
                sqe,
                dwords * 4,
                self.opts.timeout,
            )
        };
        match result {
            Ok((_, mut data)) => {
                data.truncate(len);
                Ok(data)
            }
            // A controller that stopped answering may have gone away: say so rather than time
            // out again on the next read (checked without the admin lock: making the driver
            // gone takes the I/O queues' locks, which a reset takes before the admin lock).
            Err(e @ DriverError::AdminTimeout { .. }) => self.usable().and(Err(e)),
            Err(e) => Err(e),
        }
    }

    /// The controller's SMART / Health Information log (LID 02h, NVMe Base 2.0 §5.16.1.3),
    /// controller-wide.
    pub fn smart_health(&self) -> Result<SmartHealth, DriverError> {
        let len = core::mem::size_of::<SmartHealth>();
        let page = self.log_page(LogPageId::SmartHealth.to_u8(), NSID_ALL, len)?;
        SmartHealth::from_bytes(&page)
            .ok_or_else(|| DriverError::Unsupported("short SMART / Health log".into()))
    }

    /// `Ok` while the driver runs and the controller's CSTS reads as neither removed nor
    /// failed; a controller found removed or failed makes the driver gone.
    fn usable(&self) -> Result<(), DriverError> {
        if let Some(reason) = self.gone() {
            return Err(DriverError::Gone(reason));
        }
        controller::health(&*self.mmio).inspect_err(|e| self.go_gone(e.to_string()))
    }
}
