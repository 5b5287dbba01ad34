//! NVMe specification types and drive backends.
//!
//! Wire formats are `zerocopy` structs with little-endian fields and compile-time size checks,
//! or checked views over byte slices. Nothing here does I/O except the backends and the driver.
//! `unsafe` is denied everywhere except the machine seam in [`sys`].
#![deny(unsafe_code)]

pub mod backend;
pub mod command;
pub mod cqe;
pub mod driver;
pub mod features;
pub mod identify;
pub mod log_page;
pub mod opcode;
pub mod properties;
pub mod sgl;
pub mod sqe;
pub mod status;
pub mod sys;
pub mod zns;

pub use cqe::Cqe;
pub use sgl::Sgl;
pub use sqe::Sqe;
pub use status::{Sct, Status};
