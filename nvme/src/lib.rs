//! NVMe drives: the backends a namespace is served from (RAM, file, null, software zones,
//! io_uring passthrough, the userspace VFIO driver) and the driver itself.
//!
//! The specification types are the `nvme-spec` crate, re-exported here under the same paths
//! (`nvme::Sqe`, `nvme::command`, ...). `unsafe` is denied everywhere except the machine seam
//! in [`sys`].
#![deny(unsafe_code)]

pub mod backend;
pub mod driver;
pub mod sys;

pub use nvme_spec::{
    auth, command, cqe, features, identify, log_page, opcode, properties, sgl, sqe, status, zns,
};
pub use nvme_spec::{Cqe, Sct, Sgl, Sqe, Status};
