//! A backend call in flight: the device commands it was split into, pushed onto a
//! [`PassthruRing`] as slots free up, and their completions collected in order.

use std::io;

use super::cmd::{self, Part};
use crate::backend::BackendError;
use crate::sys::uring::{IoBuf, PassthruRing, Rejected, NVME_URING_CMD_IO};

/// One command's outcome: its buffer back from the kernel and its result (CQE DW1:DW0).
#[derive(Debug)]
pub struct Done {
    pub buf: IoBuf,
    pub result: u64,
}

pub struct Job {
    parts: Vec<Option<Part>>,
    next: usize,
    /// (part index, ring tag) of the commands on the ring.
    in_flight: Vec<(usize, u32)>,
    done: Vec<Option<Done>>,
    failed: Option<BackendError>,
    /// One command on the ring at a time, in order: the parts of a write to a zone, which
    /// the drive must see at its write pointer one after another (ZNS 1.1 §2.1.1.2).
    in_order: bool,
}

impl Job {
    pub fn new(parts: Vec<Part>) -> Job {
        let n = parts.len();
        Job {
            parts: parts.into_iter().map(Some).collect(),
            next: 0,
            in_flight: Vec::new(),
            done: (0..n).map(|_| None).collect(),
            failed: None,
            in_order: false,
        }
    }

    /// A job whose commands run one after another (see `in_order`).
    pub fn in_order(parts: Vec<Part>) -> Job {
        Job {
            in_order: true,
            ..Job::new(parts)
        }
    }

    /// Queue the commands that fit on the ring.
    pub fn push(&mut self, ring: &mut PassthruRing) {
        while self.failed.is_none() && self.next < self.parts.len() {
            if self.in_order && !self.in_flight.is_empty() {
                break;
            }
            let Some(part) = self.parts[self.next].take() else {
                break;
            };
            match ring.push(NVME_URING_CMD_IO, &part.cmd, part.buf) {
                Ok(tag) => {
                    self.in_flight.push((self.next, tag));
                    self.next += 1;
                }
                Err(Rejected::Full(buf)) => {
                    self.parts[self.next] = Some(Part { cmd: part.cmd, buf });
                    break;
                }
                Err(Rejected::Direction(_)) => {
                    let e = io::Error::new(
                        io::ErrorKind::InvalidInput,
                        "shared data buffer for a command that does not write",
                    );
                    self.fail(ring, BackendError::Io(e));
                }
            }
        }
    }

    /// Take this job's reaped completions off the ring.
    pub fn collect(&mut self, ring: &mut PassthruRing) {
        let mut i = 0;
        while i < self.in_flight.len() {
            let (idx, tag) = self.in_flight[i];
            let Some(c) = ring.take(tag) else {
                i += 1;
                continue;
            };
            self.in_flight.swap_remove(i);
            match cmd::check(c.res) {
                Ok(()) => {
                    self.done[idx] = Some(Done {
                        buf: c.buf,
                        result: c.result,
                    })
                }
                Err(e) => self.fail(ring, e),
            }
        }
    }

    /// Record the first error and give up on the commands still outstanding (the ring frees
    /// their buffers when they complete).
    pub fn fail(&mut self, ring: &mut PassthruRing, e: BackendError) {
        self.failed.get_or_insert(e);
        self.abandon(ring);
    }

    /// Leave every outstanding command to the ring.
    pub fn abandon(&mut self, ring: &mut PassthruRing) {
        for (_, tag) in self.in_flight.drain(..) {
            ring.forget(tag);
        }
    }

    pub fn has_in_flight(&self) -> bool {
        !self.in_flight.is_empty()
    }

    pub fn is_done(&self) -> bool {
        self.in_flight.is_empty() && (self.failed.is_some() || self.next == self.parts.len())
    }

    /// The outcome of every command, in command order, or the first error.
    pub fn finish(&mut self) -> Result<Vec<Done>, BackendError> {
        if let Some(e) = self.failed.take() {
            return Err(e);
        }
        self.done
            .iter_mut()
            .map(|b| {
                b.take()
                    .ok_or_else(|| BackendError::Io(io::Error::other("passthrough command lost")))
            })
            .collect()
    }

    /// Push, submit (polling once with IOPOLL) and collect, without blocking.
    pub fn poll(&mut self, ring: &mut PassthruRing) {
        self.push(ring);
        if let Err(e) = ring.submit() {
            self.fail(ring, BackendError::Io(e));
        }
        self.collect(ring);
    }

    /// Run to completion on `ring`, blocking in the kernel for completions.
    pub fn run(&mut self, ring: &mut PassthruRing) -> Result<Vec<Done>, BackendError> {
        loop {
            self.push(ring);
            if let Err(e) = ring.wait() {
                self.fail(ring, BackendError::Io(e));
            }
            self.collect(ring);
            if self.is_done() {
                return self.finish();
            }
        }
    }
}

/// Copy the data of a read split over `done` into `into`, in command order.
pub fn concat_reads(done: Vec<Done>, into: &mut [u8]) {
    let mut off = 0;
    for d in done {
        if let IoBuf::In(v) = d.buf {
            let n = v.len().min(into.len() - off);
            into[off..off + n].copy_from_slice(&v[..n]);
            off += n;
        }
    }
}
