//! NVMe/RDMA (NVMe/RDMA Transport 1.0; RoCEv2 and other RDMA fabrics through rdma-core):
//! the connection manager's private data, and the sans-IO queue pair the driver feeds with
//! received capsules and completions.

pub mod cm;
pub mod queue;
mod reactor;
mod reg_pool;
pub mod server;

pub use queue::{Answer, RdmaQueue, RdmaTargetConfig, Work, SQE_LEN};

#[cfg(test)]
mod tests;
