//! A polled I/O queue on either transport, for load generators that drive many queues from
//! one thread: the same calls reach an NVMe/TCP [`PolledQueue`] or an NVMe/RDMA
//! [`RdmaPolledQueue`].

use std::io;
use std::time::Duration;

use bytes::Bytes;
use nvme_spec::Sqe;

use super::polled::PolledQueue;
use super::rdma::RdmaPolledQueue;
use super::HostError;
use crate::tcp::host_conn::{HostEvent, SubmitError};

// A few long-lived queues per thread: unboxed, so no call chases a pointer.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub enum IoQueue {
    Tcp(PolledQueue),
    Rdma(RdmaPolledQueue),
}

impl IoQueue {
    pub fn qid(&self) -> u16 {
        match self {
            IoQueue::Tcp(q) => q.qid(),
            IoQueue::Rdma(q) => q.qid(),
        }
    }

    /// Commands submitted and not completed.
    pub fn outstanding(&self) -> usize {
        match self {
            IoQueue::Tcp(q) => q.outstanding(),
            IoQueue::Rdma(q) => q.outstanding(),
        }
    }

    pub fn submit(
        &mut self,
        sqe: Sqe,
        data_out: Option<Bytes>,
        data_in_len: u32,
    ) -> Result<u16, SubmitError> {
        match self {
            IoQueue::Tcp(q) => q.submit(sqe, data_out, data_in_len),
            IoQueue::Rdma(q) => q.submit(sqe, data_out, data_in_len),
        }
    }

    /// Send what was submitted (NVMe/RDMA posts at submission: nothing to do).
    pub fn flush(&mut self) -> io::Result<usize> {
        match self {
            IoQueue::Tcp(q) => q.flush(),
            IoQueue::Rdma(q) => q.flush(),
        }
    }

    /// Take what arrived; returns how much (bytes or completions; 0: nothing).
    pub fn receive(&mut self) -> io::Result<usize> {
        match self {
            IoQueue::Tcp(q) => q.receive(),
            IoQueue::Rdma(q) => q.receive(),
        }
    }

    pub fn poll_event(&mut self) -> Option<HostEvent> {
        match self {
            IoQueue::Tcp(q) => q.poll_event(),
            IoQueue::Rdma(q) => q.poll_event(),
        }
    }

    /// Fabrics Disconnect after the outstanding commands completed or `drain` passed.
    pub fn disconnect(self, drain: Duration) -> Result<(), HostError> {
        match self {
            IoQueue::Tcp(q) => q.disconnect(drain),
            IoQueue::Rdma(q) => q.disconnect(drain),
        }
    }
}
