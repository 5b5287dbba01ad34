//! What every NVMe-oF transport's queue does the same way, sans-IO: Connect first and only
//! first (NVMe-oF 1.1 §3.3), a CID unique among the outstanding commands (NVMe Base 2.0
//! §4.2), SQHD (§4.6), the data plan under the transport's SGL rules ([`DataRules`]),
//! submission to the queue's handler and delivery of its responses. A transport (NVMe/TCP,
//! NVMe/RDMA) turns its wire units into command capsules for [`QueueCore::admit`] and
//! [`QueueCore::dispatch`], keeps its own state of commands whose host data it is still
//! fetching (`X`), and sends the [`Reply`]s it gets back.

use std::collections::{HashMap, VecDeque};
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::Arc;

use bytes::Bytes;
use nvme_spec::opcode::AdminOpcode;
use nvme_spec::{Cqe, Sqe, Status};
use tokio_util::sync::CancellationToken;
use tracing::debug;

use crate::buf_pool::BufSource;
use crate::queue::{
    Completion, ConnectionInfo, DataBuf, Lent, Payload, QueueHandler, Request, Response,
    ResponseFuture, Target,
};

mod data_plan;
pub use data_plan::{DataPlan, DataRules, RemoteBuf};

/// Fabrics command type of Connect (NVMe-oF 1.1 Figure 19).
const FCTYPE_CONNECT: u8 = 0x01;
/// PSDT 01b: SGLs, the metadata pointer a single buffer.
const PSDT_SGL: u8 = 0b01;

/// Per-command tables are sized for at most this many entries up front.
pub const MAX_PRESIZED_DEPTH: usize = 1024;

/// What the driver of a connection must do.
pub enum Event {
    /// A command's response will come from this future; pass it to
    /// [`QueueCore::complete`] (through the transport) with `cid` and `tag` when it resolves.
    Pending {
        cid: u16,
        tag: u64,
        response: ResponseFuture,
    },
    /// Close the connection once queued output is flushed.
    Close,
}

impl core::fmt::Debug for Event {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Event::Pending { cid, tag, .. } => f
                .debug_struct("Pending")
                .field("cid", cid)
                .field("tag", tag)
                .finish(),
            Event::Close => f.write_str("Close"),
        }
    }
}

/// A command answered later, for a driver's poll set: yields its CID and tag with the
/// response, for [`QueueCore::complete`].
pub struct PendingCommand {
    pub cid: u16,
    pub tag: u64,
    pub response: ResponseFuture,
}

impl std::future::Future for PendingCommand {
    type Output = (u16, u64, Response);

    fn poll(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<(u16, u64, Response)> {
        let (cid, tag) = (self.cid, self.tag);
        self.response.as_mut().poll(cx).map(|r| (cid, tag, r))
    }
}

/// Hash for u16 keys (CIDs, TCP transfer tags): a multiply spreads the key over the high
/// bits the table uses, far cheaper than SipHash (the keys are host-chosen but the tables are
/// per connection and bounded by the queue size, so flooding only slows the host's own queue).
#[derive(Default)]
pub struct U16Hasher(u64);

impl Hasher for U16Hasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0.rotate_left(8) ^ u64::from(b)).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        }
    }

    fn write_u16(&mut self, v: u16) {
        self.0 = u64::from(v).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    }
}

pub type U16Map<V> = HashMap<u16, V, BuildHasherDefault<U16Hasher>>;

/// Where an outstanding command is.
pub enum Phase<X> {
    /// The transport is fetching its host data (`X`: the transport's state of that).
    Receiving(X),
    /// Submitted; `c2h_len` is the host buffer size for controller-to-host data.
    Executing { c2h_len: u32 },
}

pub struct Command<X> {
    pub sqe: Sqe,
    /// Per-connection sequence number of this command, never reused: a completion carrying
    /// another tag belongs to an earlier command with the same CID.
    pub tag: u64,
    pub phase: Phase<X>,
}

impl<X> Command<X> {
    /// An Asynchronous Event Request the target has not answered yet (admin queues only:
    /// opcode 0Ch is Verify on I/O queues).
    fn is_parked_aer(&self) -> bool {
        !self.sqe.is_fabrics()
            && self.sqe.opcode == AdminOpcode::AsyncEventRequest.to_u8()
            && matches!(self.phase, Phase::Executing { .. })
    }
}

/// The host data of a command ready for submission, wherever the transport put it.
pub enum HostData {
    None,
    /// In one piece (in-capsule, or one transfer).
    Bytes(Bytes),
    /// Gathered from several pieces into a pooled buffer.
    Gathered(DataBuf),
    /// Received into device memory the handler lent ([`QueueCore::lend_h2c`]).
    Lent(Lent),
}

/// A finished command for the transport to send: controller-to-host data (at most
/// `c2h_len` bytes of it), then the completion.
#[derive(Debug)]
pub struct Reply {
    pub sqe: Sqe,
    pub cqe: Cqe,
    /// The host buffer's size for controller-to-host data (0: none).
    pub c2h_len: u32,
    pub data: Option<Payload>,
    /// A pooled buffer the handler did not keep, for the transport's pool.
    pub unused_buf: Option<DataBuf>,
}

struct QueueState {
    handler: Box<dyn QueueHandler>,
    teardown: CancellationToken,
    qid: u16,
    sqsize: u32,
    flow_control_disabled: bool,
}

/// One NVMe-oF queue, controller side, without its transport.
pub struct QueueCore<X> {
    target: Arc<dyn Target>,
    info: ConnectionInfo,
    queue: Option<QueueState>,
    /// Submission queue entries consumed so far (SQHD source).
    sq_consumed: u64,
    commands_received: u64,
    commands: U16Map<Command<X>>,
    /// Tag of the next command entered in `commands`.
    next_tag: u64,
    events: VecDeque<Event>,
    /// Scratch list for [`QueueCore::poll_queued`], kept to reuse its room.
    finished: Vec<(u16, Response)>,
    closed: bool,
}

impl<X> QueueCore<X> {
    pub fn new(target: Arc<dyn Target>, info: ConnectionInfo) -> QueueCore<X> {
        QueueCore {
            target,
            info,
            queue: None,
            sq_consumed: 0,
            commands_received: 0,
            commands: U16Map::default(),
            next_tag: 0,
            events: VecDeque::new(),
            finished: Vec::new(),
            closed: false,
        }
    }

    pub fn info(&self) -> &ConnectionInfo {
        &self.info
    }

    /// The queue ID after a successful Connect.
    pub fn qid(&self) -> Option<u16> {
        self.queue.as_ref().map(|q| q.qid)
    }

    /// The queue's size in entries after a successful Connect.
    pub fn sqsize(&self) -> Option<u32> {
        self.queue.as_ref().map(|q| q.sqsize)
    }

    /// Whether this is an I/O queue (connected with a QID above 0).
    pub fn is_io(&self) -> bool {
        self.queue.as_ref().is_some_and(|q| q.qid != 0)
    }

    /// The host disabled SQ flow control at Connect (NVMe-oF 1.1 §3.3, CATTR bit 2).
    pub fn flow_control_disabled(&self) -> bool {
        self.queue.as_ref().is_some_and(|q| q.flow_control_disabled)
    }

    /// Command capsules received so far.
    pub fn commands_received(&self) -> u64 {
        self.commands_received
    }

    /// Cancelled when the controller behind this queue is torn down; `None` before Connect.
    pub fn teardown_token(&self) -> Option<CancellationToken> {
        self.queue.as_ref().map(|q| q.teardown.clone())
    }

    /// The queue's ID for a capsule's data limits: a Connect names the queue it creates in
    /// CDW10 bits 31:16 (NVMe-oF 1.1 Figure 20).
    pub fn qid_for(&self, sqe: &Sqe) -> u16 {
        match &self.queue {
            Some(q) => q.qid,
            None => (sqe.cdw10.get() >> 16) as u16,
        }
    }

    pub fn command(&self, cid: u16) -> Option<&Command<X>> {
        self.commands.get(&cid)
    }

    /// The transport state of a command whose host data is being fetched.
    pub fn receiving(&self, cid: u16) -> Option<&X> {
        match self.commands.get(&cid) {
            Some(Command {
                phase: Phase::Receiving(x),
                ..
            }) => Some(x),
            _ => None,
        }
    }

    pub fn receiving_mut(&mut self, cid: u16) -> Option<&mut X> {
        match self.commands.get_mut(&cid) {
            Some(Command {
                phase: Phase::Receiving(x),
                ..
            }) => Some(x),
            _ => None,
        }
    }

    pub fn pop_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    pub fn push_event(&mut self, event: Event) {
        self.events.push_back(event);
    }

    /// SQHD to report (NVMe Base 2.0 §4.6: the head after the entries consumed so far);
    /// 0 once the host disabled SQ flow control (NVMe-oF 1.1 §3.3).
    fn sqhd(&self) -> u16 {
        match &self.queue {
            Some(q) if !q.flow_control_disabled => {
                (self.sq_consumed % u64::from(q.sqsize.max(1))) as u16
            }
            _ => 0,
        }
    }

    fn cqe(&self, cid: u16, status: Status, dw0: u32, dw1: u32) -> Cqe {
        let sqid = self.queue.as_ref().map_or(0, |q| q.qid);
        Cqe::new(cid, sqid, self.sqhd(), status, dw0, dw1)
    }

    /// A completion with `status` and nothing else, for a command refused before submission.
    pub fn status_reply(&self, sqe: &Sqe, status: Status) -> Reply {
        Reply {
            sqe: *sqe,
            cqe: self.cqe(sqe.cid(), status, 0, 0),
            c2h_len: 0,
            data: None,
            unused_buf: None,
        }
    }

    /// A new command capsule arrived: count its submission queue entry and check that it may
    /// start. `Err` is the status that refuses it ([`QueueCore::status_reply`]).
    pub fn admit(&mut self, sqe: &Sqe) -> Result<(), Status> {
        let cid = sqe.cid();
        self.sq_consumed += 1;
        self.commands_received += 1;
        if self.commands.contains_key(&cid) && !self.retire_abandoned_aer(cid) {
            // NVMe Base 2.0 §4.2 (SQE CID): unique among the outstanding commands of the SQ.
            debug!(peer = %self.info.peer, cid, "command identifier already in use");
            return Err(Status::CID_CONFLICT.with_dnr());
        }
        // NVMe-oF 1.1 §2.2: commands over a fabric describe their data with SGLs, PSDT 01b
        // (Linux nvmet refuses anything else the same way).
        if sqe.psdt() != PSDT_SGL {
            debug!(peer = %self.info.peer, cid, psdt = sqe.psdt(), "PSDT is not 01b");
            return Err(Status::INVALID_FIELD.with_dnr());
        }
        let is_connect = sqe.is_fabrics() && sqe.fctype() == FCTYPE_CONNECT;
        // NVMe-oF 1.1 §3.3: the first command on a queue is Connect, and only the first.
        if is_connect == self.queue.is_some() {
            debug!(peer = %self.info.peer, cid, is_connect, "command out of sequence");
            return Err(Status::COMMAND_SEQUENCE_ERROR.with_dnr());
        }
        Ok(())
    }

    /// A new command reuses `cid`. If that CID belongs to an outstanding Asynchronous Event
    /// Request on the admin queue, the host has abandoned the AER on its side (hosts cancel
    /// AERs locally on detach; an AER may stay outstanding indefinitely, NVMe Base 2.0 §5.2,
    /// and our Abort does not abort it), since a CID is unique only among outstanding
    /// commands (§4.2). Retire it silently — no completion is ever sent for it, its pending
    /// response is dropped by its tag — and let the queue free its AER slot. Linux nvmet
    /// accepts the reuse too. Returns whether the CID is free now; any other reuse is a
    /// Command ID Conflict.
    fn retire_abandoned_aer(&mut self, cid: u16) -> bool {
        let Some(queue) = self.queue.as_mut() else {
            return false;
        };
        if queue.qid != 0 || !self.commands.get(&cid).is_some_and(Command::is_parked_aer) {
            return false;
        }
        self.commands.remove(&cid);
        queue.handler.abandon_async_event(cid);
        debug!(peer = %self.info.peer, cid, "host reused the CID of an outstanding AER: retired");
        true
    }

    /// Device memory for a write's host data, when an I/O queue's handler lends it
    /// ([`QueueHandler::lend_h2c`]), exactly `len` bytes long.
    pub fn lend_h2c(&mut self, sqe: &Sqe, len: u32) -> Option<Lent> {
        match self.queue.as_mut() {
            Some(q) if q.qid != 0 => q
                .handler
                .lend_h2c(sqe, len)
                .filter(|l| l.len() == len as usize),
            _ => None,
        }
    }

    fn next_tag(&mut self) -> u64 {
        let t = self.next_tag;
        self.next_tag = self.next_tag.wrapping_add(1);
        t
    }

    /// Enter an admitted command whose host data the transport now fetches.
    pub fn start_receiving(&mut self, sqe: Sqe, x: X) {
        let tag = self.next_tag();
        self.commands.insert(
            sqe.cid(),
            Command {
                sqe,
                tag,
                phase: Phase::Receiving(x),
            },
        );
    }

    /// Take a command out of the receiving phase (its data is in, or failed).
    pub fn finish_receiving(&mut self, cid: u16) -> Option<(Sqe, X)> {
        if !matches!(
            self.commands.get(&cid),
            Some(Command {
                phase: Phase::Receiving(_),
                ..
            })
        ) {
            return None;
        }
        let cmd = self.commands.remove(&cid)?;
        match cmd.phase {
            Phase::Receiving(x) => Some((cmd.sqe, x)),
            Phase::Executing { .. } => None,
        }
    }

    /// Hand a command with all its host data to the target: a Connect creates the queue,
    /// anything else goes to the queue's handler. Returns the reply when it finished at once;
    /// otherwise it comes from [`QueueCore::complete`] or [`QueueCore::poll_queued`].
    pub fn dispatch(
        &mut self,
        sqe: Sqe,
        data: HostData,
        c2h_len: u32,
        pool: &mut dyn BufSource,
    ) -> Option<Reply> {
        let cid = sqe.cid();
        let (mut bytes, mut gathered, lent) = match data {
            HostData::None => (None, None, None),
            HostData::Bytes(b) => (Some(b), None, None),
            HostData::Gathered(g) => (None, Some(g), None),
            HostData::Lent(l) => (None, None, Some(l)),
        };
        if !self.is_io() {
            // Admin commands and Connect take their data as bytes (not the data path).
            if let Some(buf) = gathered.take() {
                bytes = Some(Bytes::copy_from_slice(buf.as_slice()));
                pool.give(buf);
            }
        }
        let tag = self.next_tag();
        let Some(queue) = self.queue.as_mut() else {
            return Some(self.connect(sqe, bytes));
        };
        self.commands.insert(
            cid,
            Command {
                sqe,
                tag,
                phase: Phase::Executing { c2h_len },
            },
        );
        // I/O reads get a pooled buffer to fill (admin data is built by the handler).
        let c2h_buf = (queue.qid != 0 && c2h_len > 0).then(|| pool.take(c2h_len as usize));
        let request = Request {
            sqe,
            data: bytes,
            c2h_buf,
            h2c_buf: gathered,
            h2c_lent: lent,
        };
        match queue.handler.submit(request) {
            Completion::Ready(resp) => self.complete(cid, tag, resp),
            Completion::Pending(fut) => {
                self.events.push_back(Event::Pending {
                    cid,
                    tag,
                    response: fut,
                });
                None
            }
            // Delivered by `poll_queued`.
            Completion::Queued => None,
        }
    }

    fn connect(&mut self, sqe: Sqe, data: Option<Bytes>) -> Reply {
        let cid = sqe.cid();
        let data = data.unwrap_or_default();
        match self.target.connect(&self.info, &sqe, &data) {
            Ok(c) => {
                self.queue = Some(QueueState {
                    teardown: c.handler.teardown(),
                    handler: c.handler,
                    qid: c.qid,
                    sqsize: c.sqsize.max(1),
                    flow_control_disabled: c.sq_flow_control_disabled,
                });
                // The queue starts here: its first entry was this Connect.
                self.sq_consumed = 1;
                // Size the command table for a full queue up front, so it never grows
                // (allocates) on the data path.
                self.commands
                    .reserve((c.sqsize as usize).clamp(1, MAX_PRESIZED_DEPTH));
                let r = c.response;
                Reply {
                    sqe,
                    cqe: self.cqe(cid, r.status, r.dw0, r.dw1),
                    c2h_len: 0,
                    data: None,
                    unused_buf: r.unused_buf,
                }
            }
            Err(r) => {
                debug!(peer = %self.info.peer, status = ?r.status, "Connect refused");
                // NVMe-oF 1.1 Figure 20: QID is CDW10 bits 31:16.
                let sqid = (sqe.cdw10.get() >> 16) as u16;
                Reply {
                    sqe,
                    cqe: Cqe::new(cid, sqid, 0, r.status, r.dw0, r.dw1),
                    c2h_len: 0,
                    data: None,
                    unused_buf: r.unused_buf,
                }
            }
        }
    }

    /// The response of an executing command: its reply, unless the command is gone
    /// (retired, or the connection closed), even if a newer command uses the same CID: its
    /// tag differs.
    pub fn complete(&mut self, cid: u16, tag: u64, response: Response) -> Option<Reply> {
        if self.closed {
            return None;
        }
        let c2h_len = match self.commands.get(&cid) {
            Some(Command {
                tag: t,
                phase: Phase::Executing { c2h_len },
                ..
            }) if *t == tag => *c2h_len,
            _ => return None,
        };
        let cmd = self.commands.remove(&cid)?;
        Some(Reply {
            sqe: cmd.sqe,
            cqe: self.cqe(cid, response.status, response.dw0, response.dw1),
            c2h_len,
            data: response.data,
            unused_buf: response.unused_buf,
        })
    }

    /// Whether the queue's handler holds commands ([`Completion::Queued`]): the driver then
    /// calls [`QueueCore::poll_queued`] on every turn of its loop.
    pub fn has_queued(&self) -> bool {
        !self.closed && self.queue.as_ref().is_some_and(|q| q.handler.has_queued())
    }

    /// Collect the replies of queued commands that finished; returns how many finished.
    pub fn poll_queued(&mut self, out: &mut impl FnMut(Reply)) -> usize {
        if !self.has_queued() {
            return 0;
        }
        let Some(queue) = self.queue.as_mut() else {
            return 0;
        };
        let mut finished = std::mem::take(&mut self.finished);
        queue
            .handler
            .poll_queued(&mut |cid, response| finished.push((cid, response)));
        let n = finished.len();
        for (cid, response) in finished.drain(..) {
            if let Some(tag) = self.commands.get(&cid).map(|c| c.tag) {
                if let Some(reply) = self.complete(cid, tag, response) {
                    out(reply);
                }
            }
        }
        self.finished = finished;
        n
    }

    /// Pretend the queue consumed `n` entries so far (tests of SQHD over long runs).
    #[cfg(test)]
    pub(crate) fn set_sq_consumed(&mut self, n: u64) {
        self.sq_consumed = n;
    }

    /// The transport connection is gone: drop all commands and tell the queue, once.
    pub fn close(&mut self) {
        if self.closed {
            return;
        }
        self.closed = true;
        self.commands.clear();
        if let Some(mut q) = self.queue.take() {
            q.handler.disconnected();
        }
    }
}

impl<X> Drop for QueueCore<X> {
    fn drop(&mut self) {
        self.close();
    }
}

#[cfg(test)]
mod tests;
