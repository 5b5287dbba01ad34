//! Building blocks of a polled userspace NVMe PCIe driver: pure logic over the MMIO and DMA
//! seams, testable with safe doubles.

pub mod prp;
pub mod regs;
