//! A polled userspace NVMe PCIe driver: the logic above the MMIO and DMA seams (register map,
//! doorbells, PRP lists, submission/completion rings, controller bring-up, I/O queues,
//! timeouts and resets), tested with safe doubles. The VFIO-backed seam that maps BAR0 and
//! hugepage memory is separate.

pub mod admin;
pub mod clock;
pub mod controller;
pub mod dma;
pub mod error;
pub mod io;
pub mod log_page;
#[cfg(any(test, feature = "model"))]
pub mod model;
mod namespace;
pub mod nvme_driver;
mod owned;
pub mod pool;
pub mod prp;
pub mod queue;
pub mod regs;
#[cfg(test)]
mod tests;
pub mod vfio_setup;
pub mod zoned;
