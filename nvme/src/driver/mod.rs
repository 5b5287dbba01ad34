//! Userspace NVMe PCIe driver logic: the pure layers above the MMIO/DMA seam, tested with safe
//! doubles (the VFIO-backed seam is separate).

pub mod dma;
pub mod queue;
