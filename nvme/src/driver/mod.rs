//! Building blocks of a polled userspace NVMe PCIe driver: the logic above the MMIO and DMA
//! seams (register map, doorbells, PRP lists, submission/completion rings), tested with safe
//! doubles. The VFIO-backed seam that maps BAR0 and hugepage memory is separate.

pub mod dma;
pub mod pool;
pub mod prp;
pub mod queue;
pub mod regs;
pub mod vfio_setup;
