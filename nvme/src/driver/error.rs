//! Errors of controller bring-up, admin commands and driver start.

use std::time::Duration;

use super::dma::DmaError;
use super::prp::PrpError;
use super::queue::QueueError;
use super::regs::RegsError;
use crate::Status;

#[derive(Debug, thiserror::Error)]
pub enum DriverError {
    /// A register condition did not hold within its deadline (CAP.TO for CSTS.RDY and SHST).
    #[error("timed out after {after:?} waiting for {what}")]
    Timeout { what: &'static str, after: Duration },
    /// CSTS.CFS is set (NVMe Base 2.0 §3.1.4.6; recovery needs a reset by the caller).
    #[error("controller fatal status (CSTS.CFS)")]
    Fatal,
    /// Registers read all ones: the device is gone from the bus.
    #[error("controller gone: {0}")]
    Gone(String),
    #[error("admin command {opcode:#04x} failed with {status}")]
    Admin { opcode: u8, status: Status },
    #[error("admin command {opcode:#04x} timed out after {after:?}")]
    AdminTimeout { opcode: u8, after: Duration },
    #[error("controller unsupported: {0}")]
    Unsupported(String),
    #[error("no active namespace {0}")]
    NoNamespace(u32),
    #[error("invalid driver options: {0}")]
    Options(String),
    #[error(transparent)]
    Queue(#[from] QueueError),
    #[error(transparent)]
    Dma(#[from] DmaError),
    #[error(transparent)]
    Prp(#[from] PrpError),
    #[error(transparent)]
    Regs(#[from] RegsError),
}
