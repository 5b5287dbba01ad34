//! The controller side of the queues: fetching SQEs at the SQ head, posting CQEs with the phase
//! tag (NVMe Base 2.0 §4.6), and holding completions while the CQ is full (§3.3.1.2).

use std::collections::{BTreeMap, VecDeque};

use super::{Fault, Held, State};
use crate::driver::dma::DmaRegion;
use crate::driver::queue::{CQE_SIZE, SQE_SIZE};
use crate::{Cqe, Sqe, Status};
use zerocopy::IntoBytes;

pub(super) struct Sq {
    pub(super) base: u64,
    pub(super) entries: u32,
    pub(super) head: u32,
    pub(super) tail: u32,
    pub(super) cqid: u16,
}

pub(super) struct Cq {
    pub(super) base: u64,
    pub(super) entries: u32,
    /// Host's consumer index (from the head doorbell).
    head: u32,
    /// Next slot the controller writes.
    tail: u32,
    phase: bool,
    /// Completions waiting for a free slot, in order.
    waiting: VecDeque<Cqe>,
}

impl Cq {
    pub(super) fn new(base: u64, entries: u32) -> Cq {
        Cq {
            base,
            entries,
            head: 0,
            tail: 0,
            phase: true,
            waiting: VecDeque::new(),
        }
    }

    fn full(&self) -> bool {
        (self.tail + 1) % self.entries == self.head
    }
}

#[derive(Default)]
pub(super) struct Queues {
    pub(super) sqs: BTreeMap<u16, Sq>,
    pub(super) cqs: BTreeMap<u16, Cq>,
}

impl Queues {
    pub(super) fn create_admin(&mut self, sq_entries: u32, cq_entries: u32, asq: u64, acq: u64) {
        self.cqs.insert(0, Cq::new(acq, cq_entries));
        self.sqs.insert(
            0,
            Sq {
                base: asq,
                entries: sq_entries,
                head: 0,
                tail: 0,
                cqid: 0,
            },
        );
    }

    /// Store a new SQ tail; false if the queue does not exist or the value is out of range.
    pub(super) fn set_sq_tail(&mut self, qid: u16, value: u32) -> bool {
        match self.sqs.get_mut(&qid) {
            Some(sq) if value < sq.entries => {
                sq.tail = value;
                true
            }
            _ => false,
        }
    }

    /// Store a new CQ head; false if the queue does not exist, the value is out of range, or
    /// it would consume entries the controller has not posted.
    pub(super) fn set_cq_head(&mut self, qid: u16, value: u32) -> bool {
        let Some(cq) = self.cqs.get_mut(&qid) else {
            return false;
        };
        if value >= cq.entries {
            return false;
        }
        // Entries the controller has posted and the host not yet consumed: head..tail.
        let posted = (cq.tail + cq.entries - cq.head) % cq.entries;
        let consumed = (value + cq.entries - cq.head) % cq.entries;
        if consumed > posted {
            return false;
        }
        cq.head = value;
        true
    }
}

/// What executing one command produced.
pub(super) enum Outcome {
    /// Post a completion with this status and Dword 0/1.
    Done(Status, u32, u32),
    /// Post nothing (the command is held).
    Held,
}

impl Outcome {
    pub(super) fn status(status: Status) -> Outcome {
        Outcome::Done(status, 0, 0)
    }

    pub(super) fn ok(dw0: u32, dw1: u32) -> Outcome {
        Outcome::Done(Status::SUCCESS, dw0, dw1)
    }
}

impl From<Result<(), Status>> for Outcome {
    fn from(r: Result<(), Status>) -> Outcome {
        match r {
            Ok(()) => Outcome::ok(0, 0),
            Err(s) => Outcome::status(s),
        }
    }
}

impl State {
    /// Fetch and execute commands of SQ `qid` until its head reaches its tail.
    pub(super) fn process_sq(&mut self, qid: u16) {
        let mut fetched = 0usize;
        loop {
            if !self.running() {
                return;
            }
            let Some(sq) = self.queues.sqs.get_mut(&qid) else {
                return;
            };
            if sq.head == sq.tail {
                return;
            }
            let addr = sq.base + u64::from(sq.head) * SQE_SIZE as u64;
            sq.head = (sq.head + 1) % sq.entries;
            let mut raw = [0u8; SQE_SIZE];
            if self.host_read(addr, &mut raw).is_err() {
                // The SQ itself is unreadable (an IOMMU fault on fetch): the controller fails.
                self.regs.set_fatal();
                self.faults.push(Fault::Fatal);
                return;
            }
            let Some(sqe) = Sqe::from_slice(&raw) else {
                return;
            };
            if self.executed.len() == super::EXECUTED_KEPT {
                self.executed.pop_front();
            }
            self.executed.push_back((qid, sqe.opcode));
            if qid != 0 {
                fetched += 1;
                self.largest_io_fetch = self.largest_io_fetch.max(fetched);
            }
            let outcome = match self.take_fault(qid, sqe.opcode) {
                Some(Fault::Drop { .. }) => {
                    self.held.push(Held {
                        sqid: qid,
                        cid: sqe.cid(),
                    });
                    Outcome::Held
                }
                Some(Fault::Fail { status, .. }) => Outcome::status(status),
                _ if qid == 0 => self.admin(&sqe),
                _ => self.io(&sqe),
            };
            if let Outcome::Done(status, dw0, dw1) = outcome {
                self.complete(qid, sqe.cid(), status, dw0, dw1);
            }
        }
    }

    /// Remove and return the first Drop/Fail fault matching `qid` and `opcode`.
    fn take_fault(&mut self, qid: u16, opcode: u8) -> Option<Fault> {
        let i = self.faults.iter().position(|f| match *f {
            Fault::Drop { qid: q, opcode: o }
            | Fault::Fail {
                qid: q, opcode: o, ..
            } => q == qid && o == opcode,
            _ => false,
        })?;
        Some(self.faults.remove(i))
    }

    /// Post the completion of command `cid` from SQ `sqid` to that SQ's CQ.
    pub(super) fn complete(&mut self, sqid: u16, cid: u16, status: Status, dw0: u32, dw1: u32) {
        let Some(sq) = self.queues.sqs.get(&sqid) else {
            return;
        };
        let cqe = Cqe::new(cid, sqid, sq.head as u16, status, dw0, dw1);
        let cqid = sq.cqid;
        if let Some(cq) = self.queues.cqs.get_mut(&cqid) {
            cq.waiting.push_back(cqe);
        }
        self.flush_cq(cqid);
    }

    /// Write waiting completions of CQ `cqid` while it has free slots.
    pub(super) fn flush_cq(&mut self, cqid: u16) {
        let host = self.host.clone();
        let Some(cq) = self.queues.cqs.get_mut(&cqid) else {
            return;
        };
        while !cq.full() {
            let Some(mut cqe) = cq.waiting.pop_front() else {
                return;
            };
            cqe.status.set(cqe.status.get() | u16::from(cq.phase));
            let addr = cq.base + u64::from(cq.tail) * CQE_SIZE as u64;
            let Some(off) = addr.checked_sub(host.iova()) else {
                return;
            };
            if host.write_bytes(off as usize, cqe.as_bytes()).is_err() {
                return;
            }
            cq.tail += 1;
            if cq.tail == cq.entries {
                cq.tail = 0;
                cq.phase = !cq.phase;
            }
        }
    }

    /// Copy host memory at IOVA `addr` into `dst`; an address outside the host region is a
    /// Data Transfer Error (as an IOMMU fault would be).
    pub(super) fn host_read(&self, addr: u64, dst: &mut [u8]) -> Result<(), Status> {
        let off = self.host_offset(addr, dst.len())?;
        self.host
            .read_bytes(off, dst)
            .map_err(|_| Status::DATA_TRANSFER_ERROR)
    }

    /// Copy `src` to host memory at IOVA `addr` (see [`State::host_read`]).
    pub(super) fn host_write(&self, addr: u64, src: &[u8]) -> Result<(), Status> {
        let off = self.host_offset(addr, src.len())?;
        self.host
            .write_bytes(off, src)
            .map_err(|_| Status::DATA_TRANSFER_ERROR)
    }

    fn host_offset(&self, addr: u64, len: usize) -> Result<usize, Status> {
        let off = addr
            .checked_sub(self.host.iova())
            .ok_or(Status::DATA_TRANSFER_ERROR)?;
        let end = off
            .checked_add(len as u64)
            .ok_or(Status::DATA_TRANSFER_ERROR)?;
        if end > self.host.len() as u64 {
            return Err(Status::DATA_TRANSFER_ERROR);
        }
        Ok(off as usize)
    }
}
