//! The crate's only `unsafe` code: the seam between the driver logic and the machine (VFIO
//! ioctls, BAR0 MMIO, hugepage DMA memory, io_uring NVMe passthrough submissions, the RAM
//! backend's huge-page chunks).
//!
//! Everything above this module talks to the traits in [`crate::driver`] ([`crate::driver::regs::Mmio`],
//! [`crate::driver::dma::DmaRegion`]) and is tested with safe doubles. Every `unsafe` block here
//! states the invariant that makes it sound in a `// SAFETY:` comment.
#![allow(unsafe_code)]

pub mod bar;
pub mod huge_chunks;
pub mod hugepage;
pub mod uring;
pub mod vfio;
