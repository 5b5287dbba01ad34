//! NVMe-oF transports. The protocol cores are sans-IO state machines; the socket drivers
//! feed them bytes and carry out the actions they return.
// `unsafe` lives only in the syscall seam (`sys`), each block with its SAFETY argument.
#![deny(unsafe_code)]

pub mod buf_pool;
pub mod initiator;
pub mod lent;
pub mod queue;
pub mod queue_core;
pub mod rdma;
mod sys;
pub mod tcp;
