//! NVMe-oF transports. The protocol cores are sans-IO state machines; the socket drivers
//! feed them bytes and carry out the actions they return.
#![forbid(unsafe_code)]

pub mod initiator;
pub mod queue;
pub mod tcp;
