//! Reads and writes of drive namespaces through the backend's polled interface
//! ([`nvme::backend::PolledBackend`]): each command waits in a slot of this queue's table,
//! which is allocated once and reused, and its token names the slot. The transport's loop calls
//! [`PolledIo::poll`] while commands are in the table; only the commands that finished are
//! touched. Nothing here takes a lock or allocates once the table and the lists have grown to
//! the queue's depth.

use std::collections::VecDeque;
use std::sync::Arc;

use fabric::queue::{DataBuf, Detached, Response};
use nvme::backend::{new_owner, DmaLease, Polled, PolledBackend, Refused};
use nvme::{Sqe, Status};

use super::{HostData, Probe};
use crate::controller::{Controller, IoCounters};
use crate::namespace::Namespace;
use crate::status_map::{backend_status, Op};

/// What a slot's command moves.
enum Transfer {
    /// `len` bytes at `lba` into `buf` (held here until the command is started), or with
    /// `lent` into the drive's DMA memory, which the response lends the transport (`buf` then
    /// goes back to the transport's pool with the response).
    Read {
        lba: u64,
        len: usize,
        buf: Option<Vec<u8>>,
        /// The transport buffer's RDMA registration, back on `buf` with the response.
        reg: Detached,
        lent: bool,
    },
    /// The host's data to `lba`; the pooled part goes back to the transport with the response.
    Write {
        lba: u64,
        fua: bool,
        len: usize,
        data: HostData,
    },
    /// The host's data, received into the drive's DMA memory, to `lba` (held here until the
    /// command is started).
    WriteLent {
        lba: u64,
        fua: bool,
        len: usize,
        lease: Option<DmaLease>,
    },
}

struct Slot {
    cid: u16,
    sqe: Sqe,
    probe: Probe,
    transfer: Transfer,
    /// Index into [`PolledIo::drives`]: the namespace (held there, so that commands touch no
    /// reference count another reactor's commands touch too).
    drive: usize,
}

/// A namespace this queue has (or had) commands on, and how many.
struct Drive {
    ns: Arc<Namespace>,
    outstanding: usize,
}

/// One I/O queue's polled drive commands.
pub(super) struct PolledIo {
    owner: u32,
    slots: Vec<Option<Slot>>,
    free: Vec<u32>,
    /// Slots whose command the device queue had no room for, in arrival order.
    waiting: VecDeque<u32>,
    drives: Vec<Drive>,
    reaped: Vec<Polled>,
    outstanding: usize,
}

/// The response to a finished command.
type Answer = (u16, Response);

/// What answering a command needs from its queue.
pub(super) struct Ctx<'a> {
    pub ctrl: &'a Controller,
    pub qid: u16,
    pub counters: &'a IoCounters,
}

/// The polled interface of a drive in the table (every one has it: only such namespaces
/// get slots).
fn polled(ns: &Namespace) -> Option<&dyn PolledBackend> {
    ns.backend.polled()
}

impl PolledIo {
    pub(super) fn new() -> PolledIo {
        PolledIo {
            owner: new_owner(),
            slots: Vec::new(),
            free: Vec::new(),
            waiting: VecDeque::new(),
            drives: Vec::new(),
            reaped: Vec::new(),
            outstanding: 0,
        }
    }

    /// Commands in the table (started or waiting).
    pub(super) fn outstanding(&self) -> usize {
        self.outstanding
    }

    fn claim(&mut self, slot: Slot) -> u32 {
        self.outstanding += 1;
        self.drives[slot.drive].outstanding += 1;
        match self.free.pop() {
            Some(i) => {
                self.slots[i as usize] = Some(slot);
                i
            }
            None => {
                self.slots.push(Some(slot));
                (self.slots.len() - 1) as u32
            }
        }
    }

    fn release(&mut self, index: u32) -> Option<Slot> {
        let slot = self.slots.get_mut(index as usize)?.take()?;
        self.free.push(index);
        self.outstanding -= 1;
        self.drives[slot.drive].outstanding -= 1;
        Some(slot)
    }

    /// The entry of `ns` in [`PolledIo::drives`]; a new one reuses an idle entry, so the list
    /// stays as long as the namespaces with commands in flight at once.
    fn drive_of(&mut self, ns: &Arc<Namespace>) -> usize {
        if let Some(i) = self.drives.iter().position(|d| Arc::ptr_eq(&d.ns, ns)) {
            return i;
        }
        let entry = Drive {
            ns: ns.clone(),
            outstanding: 0,
        };
        match self.drives.iter().position(|d| d.outstanding == 0) {
            Some(i) => {
                self.drives[i] = entry;
                i
            }
            None => {
                self.drives.push(entry);
                self.drives.len() - 1
            }
        }
    }

    fn token(&self, index: u32) -> u64 {
        (u64::from(self.owner) << 32) | u64::from(index)
    }

    /// Start a read of `len` bytes at `lba` into `buf`. `Ok(Some)` is an answer now (the
    /// backend refused it; the caller records it), `Ok(None)` a command in the table; a read
    /// the polled path does not take (larger than one drive command) gives its buffer back.
    pub(super) fn read(
        &mut self,
        ns: &Arc<Namespace>,
        sqe: Sqe,
        probe: Probe,
        lba: u64,
        len: usize,
        buf: DataBuf,
    ) -> Result<Option<Response>, DataBuf> {
        let (mut vec, reg) = buf.detach();
        vec.truncate(len);
        let transfer = Transfer::Read {
            lba,
            len,
            buf: Some(vec),
            reg,
            lent: ns.lent.is_some(),
        };
        self.enter(ns, sqe, probe, transfer)
            .map_err(|back| match back {
                Some(Transfer::Read {
                    buf: Some(b), reg, ..
                }) => reg.attach(b, len),
                _ => DataBuf::zeroed(len),
            })
    }

    /// Start a write of the host's `data` at `lba`; as [`PolledIo::read`].
    pub(super) fn write(
        &mut self,
        ns: &Arc<Namespace>,
        sqe: Sqe,
        probe: Probe,
        lba: u64,
        fua: bool,
        data: HostData,
    ) -> Result<Option<Response>, HostData> {
        let transfer = Transfer::Write {
            lba,
            fua,
            len: data.len(),
            data,
        };
        self.enter(ns, sqe, probe, transfer)
            .map_err(|back| match back {
                Some(Transfer::Write { data, .. }) => data,
                _ => HostData::Shared(Default::default()),
            })
    }

    /// Start a write of the lent DMA memory `lease` holds at `lba`; as [`PolledIo::read`].
    pub(super) fn write_lent(
        &mut self,
        ns: &Arc<Namespace>,
        sqe: Sqe,
        probe: Probe,
        lba: u64,
        fua: bool,
        lease: DmaLease,
    ) -> Result<Option<Response>, DmaLease> {
        let transfer = Transfer::WriteLent {
            lba,
            fua,
            len: lease.len(),
            lease: Some(lease),
        };
        self.enter(ns, sqe, probe, transfer)
            .map_err(|back| match back {
                Some(Transfer::WriteLent {
                    lease: Some(lease), ..
                }) => lease,
                _ => DmaLease::empty(),
            })
    }

    /// Put `transfer` on `ns` in the table and start its command: `Ok(Some)` is an answer now
    /// (the backend refused it), `Ok(None)` a command in the table, `Err` the transfer handed
    /// back because the polled path does not take it (larger than one drive command).
    fn enter(
        &mut self,
        ns: &Arc<Namespace>,
        sqe: Sqe,
        probe: Probe,
        transfer: Transfer,
    ) -> Result<Option<Response>, Option<Transfer>> {
        let slot = Slot {
            cid: sqe.cid(),
            sqe,
            probe,
            transfer,
            drive: self.drive_of(ns),
        };
        let index = self.claim(slot);
        match self.start(index) {
            Started::Yes | Started::Later => Ok(None),
            Started::Refused(Refused::Unsupported) => {
                Err(self.release(index).map(|slot| slot.transfer))
            }
            Started::Refused(why) => Ok(self.refused(None, index, why).map(|(_, r)| r)),
        }
    }

    /// Try to start slot `index`'s command on its backend.
    fn try_start(&mut self, index: u32) -> Result<(), Refused> {
        let token = self.token(index);
        let Some(slot) = self.slots[index as usize].as_mut() else {
            return Ok(());
        };
        let Some(backend) = polled(&self.drives[slot.drive].ns) else {
            return Err(Refused::Unsupported);
        };
        match &mut slot.transfer {
            Transfer::Read {
                lba,
                len,
                lent: true,
                ..
            } => backend.start_read_lent(*lba, *len, token),
            Transfer::Read { lba, buf, .. } => {
                let Some(b) = buf.take() else {
                    return Ok(());
                };
                backend.start_read(*lba, b, token).map_err(|(why, b)| {
                    *buf = Some(b);
                    why
                })
            }
            Transfer::WriteLent {
                lba, fua, lease, ..
            } => {
                let Some(l) = lease.take() else {
                    return Ok(());
                };
                backend
                    .start_write_lent(*lba, l, *fua, token)
                    .map_err(|(why, l)| {
                        *lease = Some(l);
                        why
                    })
            }
            Transfer::Write { lba, fua, data, .. } => {
                backend.start_write(*lba, data.as_slice(), *fua, token)?;
                // The data is in the drive's buffer now: let go of the receive buffer's bytes.
                if let HostData::Shared(b) = data {
                    *b = Default::default();
                }
                Ok(())
            }
        }
    }

    fn start(&mut self, index: u32) -> Started {
        // Commands behind others that wait go after them, in order.
        if !self.waiting.is_empty() {
            self.waiting.push_back(index);
            return Started::Later;
        }
        match self.try_start(index) {
            Ok(()) => Started::Yes,
            Err(Refused::Busy) => {
                self.waiting.push_back(index);
                Started::Later
            }
            Err(why) => Started::Refused(why),
        }
    }

    /// Answer slot `index` with the refusal `why` and free it; recorded with `cx`, else by
    /// the caller.
    fn refused(&mut self, cx: Option<&Ctx<'_>>, index: u32, why: Refused) -> Option<Answer> {
        let slot = self.release(index)?;
        let status = match (why, &slot.transfer) {
            (Refused::Failed(e), Transfer::Read { .. }) => backend_status(&e, Op::Read),
            (Refused::Failed(e), Transfer::Write { .. } | Transfer::WriteLent { .. }) => {
                backend_status(&e, Op::Write)
            }
            // `start` keeps busy commands and hands unsupported ones back; neither gets here.
            (Refused::Busy | Refused::Unsupported, _) => Status::INTERNAL_ERROR,
        };
        let ns = self.drives[slot.drive].ns.clone();
        Some(finish(cx, &ns, slot, Err(status), None))
    }

    /// Reap every backend this queue has commands on, answer what finished, then start what
    /// waited for room. Returns how many commands were answered.
    pub(super) fn poll(&mut self, cx: &Ctx<'_>, done: &mut dyn FnMut(u16, Response)) -> usize {
        let owner = self.owner;
        for d in &self.drives {
            if d.outstanding > 0 {
                let reaped = &mut self.reaped;
                if let Some(backend) = polled(&d.ns) {
                    backend.reap(owner, &mut |p| reaped.push(p));
                }
            }
        }
        let mut answered = 0;
        let mut reaped = std::mem::take(&mut self.reaped);
        for p in reaped.drain(..) {
            let Some(slot) = self.release(p.token as u32) else {
                continue;
            };
            let (cid, r) = complete(cx, &self.drives[slot.drive].ns, slot, p);
            done(cid, r);
            answered += 1;
        }
        self.reaped = reaped;
        while let Some(&index) = self.waiting.front() {
            match self.try_start(index) {
                Ok(()) => {
                    self.waiting.pop_front();
                }
                Err(Refused::Busy) => break,
                Err(why) => {
                    self.waiting.pop_front();
                    if let Some((cid, r)) = self.refused(Some(cx), index, why) {
                        done(cid, r);
                        answered += 1;
                    }
                }
            }
        }
        answered
    }

    /// The queue is gone: its backends drop what they hold for it.
    pub(super) fn forget(&mut self) {
        for d in &self.drives {
            if let Some(backend) = polled(&d.ns) {
                backend.forget(self.owner);
            }
        }
    }
}

enum Started {
    Yes,
    /// On the waiting list until the device queue has room.
    Later,
    Refused(Refused),
}

/// The response to a command the drive finished.
fn complete(cx: &Ctx<'_>, ns: &Namespace, slot: Slot, p: Polled) -> Answer {
    let result = match (&slot.transfer, &p.result) {
        (Transfer::Read { len, .. }, Ok(_)) => {
            cx.counters.add_read(*len as u64);
            Ok(())
        }
        (Transfer::Write { len, .. } | Transfer::WriteLent { len, .. }, Ok(_)) => {
            cx.counters.add_write(*len as u64);
            Ok(())
        }
        (Transfer::Read { .. }, Err(e)) => Err(backend_status(e, Op::Read)),
        (Transfer::Write { .. } | Transfer::WriteLent { .. }, Err(e)) => {
            Err(backend_status(e, Op::Write))
        }
    };
    finish(Some(cx), ns, slot, result, Some(p))
}

/// Build `slot`'s response (success carries a read's data in `buf`; pooled buffers go back
/// to the transport either way); with `cx`, record its probe and log a failure in the
/// controller's Error Information log.
fn finish(
    cx: Option<&Ctx<'_>>,
    ns: &Namespace,
    slot: Slot,
    result: Result<(), Status>,
    p: Option<Polled>,
) -> Answer {
    let (buf, lease) = p.map_or((None, None), |p| (p.buf, p.lease));
    let Slot {
        cid,
        sqe,
        probe,
        transfer,
        ..
    } = slot;
    let r = match (transfer, result) {
        (
            Transfer::Read {
                len,
                buf: held,
                reg,
                lent: true,
                ..
            },
            Ok(()),
        ) => {
            // The data stays in the drive's DMA memory: the transport sends it from there.
            let spare = held.map(|b| reg.attach(b, len));
            match (lease, ns.lent.as_ref()) {
                (Some(lease), Some(bridge)) => match bridge.lend(lease) {
                    Ok(lent) => Response::success().with_lent(lent).returning(spare),
                    Err(lease) => copied(lease, spare, len),
                },
                (Some(lease), None) => copied(lease, spare, len),
                (None, _) => Response::status(Status::INTERNAL_ERROR).returning(spare),
            }
        }
        (Transfer::Read { len, reg, .. }, Ok(())) => {
            Response::success().with_buf(reg.attach(buf.unwrap_or_default(), len))
        }
        (
            Transfer::Read {
                len,
                buf: held,
                reg,
                ..
            },
            Err(s),
        ) => {
            let spare = buf.or(held).map(|b| reg.attach(b, len));
            Response::status(s).returning(spare)
        }
        (Transfer::Write { data, .. }, result) => {
            let status = result.err().unwrap_or(Status::SUCCESS);
            Response::status(status).returning(data.into_pooled())
        }
        // The drive gave the DMA memory back to its queue when the write completed.
        (Transfer::WriteLent { .. }, result) => {
            Response::status(result.err().unwrap_or(Status::SUCCESS))
        }
    };
    if let Some(cx) = cx {
        if !r.status.is_success() {
            cx.ctrl.record_error(cx.qid, &sqe, r.status);
        }
        probe.record(ns, &r);
    }
    (cid, r)
}

/// A read's data that the drive lent but that cannot be sent from where it is, copied into
/// the transport's buffer.
fn copied(lease: nvme::backend::DmaLease, spare: Option<DataBuf>, len: usize) -> Response {
    let mut buf = spare.unwrap_or_else(|| DataBuf::zeroed(len));
    if lease.read(0, buf.as_mut_slice()) {
        Response::success().with_buf(buf)
    } else {
        Response::status(Status::INTERNAL_ERROR).returning(Some(buf))
    }
}
