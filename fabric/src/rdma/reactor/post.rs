//! Posting a queue's work on its queue pair: an RDMA READ for a command's host data, an RDMA
//! WRITE and the response's SEND for a finished command. Data moves straight between the
//! NIC and the command's buffer when the buffer is registered with the queue's device
//! ([`super::super::reg_pool`]), else through the device's data slots with a copy.

use tracing::debug;
use zerocopy::IntoBytes;

use super::{wr_id, Queue, KIND_READ, KIND_SEND};
use crate::buf_pool::BufSource;
use crate::queue::{DataBuf, Payload};
use crate::rdma::queue::{Answer, Work};
use crate::rdma::reg_pool::RegPool;
use crate::sys::rdma::{DeviceRes, Local, SendWork, MAX_SLOTS_PER_WR};
use crate::tcp::reactor_stats::ReactorCounters;

/// Up to [`MAX_SLOTS_PER_WR`] data slots, inline.
#[derive(Clone, Copy, Default)]
pub(super) struct Slots {
    ids: [u32; MAX_SLOTS_PER_WR],
    len: usize,
}

impl Slots {
    pub(super) fn as_slice(&self) -> &[u32] {
        &self.ids[..self.len]
    }
}

/// The local memory of an RDMA READ in flight.
#[derive(Clone, Copy)]
pub(super) enum Fetching {
    /// Data slots, copied into the command's buffer when the READ completes.
    Slots(Slots),
    /// Straight into the command's registered buffer: `len` bytes at `addr`.
    Direct { addr: u64, lkey: u32, len: u32 },
}

impl Fetching {
    fn local(&self) -> Local<'_> {
        match self {
            Fetching::Slots(s) => Local::Slots(s.as_slice()),
            Fetching::Direct { addr, lkey, .. } => Local::Registered {
                addr: *addr,
                lkey: *lkey,
            },
        }
    }
}

/// What a response's SEND (and the WRITE before it) holds until it completes.
#[derive(Default)]
pub(super) struct Sending {
    pub(super) slots: Slots,
    /// The registered buffer the WRITE sends from.
    pub(super) buf: Option<DataBuf>,
}

pub(super) enum Posted {
    Done,
    NoSlots(Work),
    Failed,
}

/// What posting needs of the reactor besides the queue.
pub(super) struct Ctx<'a> {
    pub(super) res: &'a DeviceRes,
    pub(super) free: &'a mut Vec<u32>,
    pub(super) pool: &'a mut RegPool,
    pub(super) staging: &'a mut [u8],
    pub(super) counters: &'a ReactorCounters,
}

/// Take `n` free data slots.
fn take_slots(free: &mut Vec<u32>, n: usize) -> Option<Slots> {
    if n > MAX_SLOTS_PER_WR || free.len() < n {
        return None;
    }
    let mut s = Slots {
        ids: [0; MAX_SLOTS_PER_WR],
        len: n,
    };
    for i in 0..n {
        s.ids[i] = free.pop()?;
    }
    Some(s)
}

fn slots_for(res: &DeviceRes, len: usize) -> usize {
    len.div_ceil(res.config.slot_len as usize).max(1)
}

/// Post one piece of work on the queue's queue pair (queue slot `slot`).
pub(super) fn post(q: &mut Queue, slot: usize, cx: &mut Ctx<'_>, work: Work) -> Posted {
    match work {
        Work::Fetch { cid, remote, len } => {
            let direct = q.queue.fetch_buf(cid).and_then(|b| b.registered_on(cx.res));
            let fetching = match direct {
                Some((addr, lkey)) => Fetching::Direct { addr, lkey, len },
                None => match take_slots(cx.free, slots_for(cx.res, len as usize)) {
                    Some(s) => Fetching::Slots(s),
                    None => return Posted::NoSlots(work),
                },
            };
            let w = SendWork::Read {
                wr_id: wr_id(slot, q.gen, KIND_READ, u32::from(cid)),
                local: fetching.local(),
                len,
                remote_addr: remote.address,
                rkey: remote.key,
            };
            if let Err(e) = q.id.post(&[w]) {
                debug!(error = %e, "posting an RDMA READ failed");
                if let Fetching::Slots(s) = fetching {
                    cx.free.extend_from_slice(s.as_slice());
                }
                return Posted::Failed;
            }
            q.fetches.insert(cid, fetching);
            Posted::Done
        }
        Work::Respond(a) => respond(q, slot, cx, a),
    }
}

fn respond(q: &mut Queue, slot: usize, cx: &mut Ctx<'_>, a: Answer) -> Posted {
    let Answer {
        cqe,
        mut write,
        invalidate,
        spare,
    } = a;
    // Where the data goes from: its registered buffer, or data slots it is copied into.
    let mut held = Sending::default();
    let mut direct = None;
    if let Some((_, data)) = write.as_mut() {
        let len = data.len();
        if let Payload::Buf(b) = data {
            direct = b.registered_on(cx.res);
        }
        if direct.is_none() {
            match take_slots(cx.free, slots_for(cx.res, len)) {
                Some(s) => held.slots = s,
                None => {
                    return Posted::NoSlots(Work::Respond(Answer {
                        cqe,
                        write,
                        invalidate,
                        spare,
                    }))
                }
            }
        }
    }
    if let Some(b) = spare {
        cx.pool.give(b);
    }
    let entry = q.free_sends.pop().unwrap_or_else(|| {
        q.sends.push(None);
        (q.sends.len() - 1) as u32
    });
    let send = SendWork::Send {
        wr_id: wr_id(slot, q.gen, KIND_SEND, entry),
        capsule: cqe.as_bytes(),
        invalidate,
    };
    let posted = match write {
        Some((remote, data)) => {
            let len = data.len();
            let local = match direct {
                Some((addr, lkey)) => Local::Registered { addr, lkey },
                None => {
                    if !stage(cx.res, held.slots.as_slice(), &data, cx.staging) {
                        cx.free.extend_from_slice(held.slots.as_slice());
                        q.free_sends.push(entry);
                        return Posted::Failed;
                    }
                    Local::Slots(held.slots.as_slice())
                }
            };
            let w = SendWork::Write {
                local,
                len: len as u32,
                remote_addr: remote.address,
                rkey: remote.key,
            };
            let r = q.id.post(&[w, send]);
            match data {
                Payload::Buf(b) if direct.is_some() => {
                    cx.counters.add_zero_copy_sent(len as u64);
                    held.buf = Some(b);
                }
                Payload::Buf(b) => cx.pool.give(b),
                Payload::Shared(_) | Payload::Lent(_) => {}
            }
            r
        }
        None => q.id.post(&[send]),
    };
    match posted {
        Ok(()) => {
            q.sends[entry as usize] = Some(held);
            Posted::Done
        }
        Err(e) => {
            debug!(error = %e, "posting a response failed");
            cx.free.extend_from_slice(held.slots.as_slice());
            if let Some(b) = held.buf.take() {
                cx.pool.give(b);
            }
            q.free_sends.push(entry);
            Posted::Failed
        }
    }
}

/// Copy controller-to-host data into data slots.
fn stage(res: &DeviceRes, slots: &[u32], data: &Payload, staging: &mut [u8]) -> bool {
    match data {
        Payload::Shared(b) => res.copy_to_slots(slots, b),
        Payload::Buf(b) => res.copy_to_slots(slots, b.as_slice()),
        Payload::Lent(l) => {
            // Drive memory is not registered with the NIC: through a staging buffer, one
            // slot at a time.
            let slot_len = staging.len();
            let mut off = 0;
            for &s in slots {
                let n = slot_len.min(l.len().saturating_sub(off));
                if n == 0 {
                    break;
                }
                if !crate::sys::copy_from_lent(l, off, &mut staging[..n])
                    || !res.copy_to_slots(&[s], &staging[..n])
                {
                    return false;
                }
                off += n;
            }
            true
        }
    }
}
