//! NVMe specification types: what the NVMe Base, NVM Command Set, ZNS and NVMe over Fabrics
//! specifications define on the wire, and the rules that need no I/O (status codes, the zone
//! state machine).
//!
//! Wire formats are `zerocopy` structs with little-endian fields and compile-time size checks,
//! or checked views over byte slices. Nothing here does I/O, and nothing is `unsafe`: the
//! transports (`fabric`) depend on this crate alone; drives and their backends live in `nvme`.
#![forbid(unsafe_code)]

pub mod auth;
pub mod command;
pub mod cqe;
pub mod features;
pub mod identify;
pub mod log_page;
pub mod opcode;
pub mod properties;
pub mod sgl;
pub mod sqe;
pub mod status;
pub mod zns;

pub use cqe::Cqe;
pub use sgl::Sgl;
pub use sqe::Sqe;
pub use status::{Sct, Status};
