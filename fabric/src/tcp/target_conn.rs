//! The controller side of one NVMe/TCP connection, sans-IO: received bytes and the current
//! time go in ([`TargetConnection::receive`], [`TargetConnection::handle_timeout`]), bytes to
//! send and [`Event`]s come out. No sockets, no runtime, no clock.
//!
//! The connection runs initialization (ICReq/ICResp, NVMe/TCP 1.0 §3.1), routes the first
//! command capsule (a Fabrics Connect) to [`Target::connect`] and later ones to the
//! [`QueueHandler`], gathers host-to-controller data (in-capsule, or solicited with R2T and
//! received in H2CData PDUs), sends controller-to-host data as C2HData PDUs, and answers any
//! malformed host PDU with a C2HTermReq before closing (§3.5.1).

use std::collections::{HashMap, VecDeque};
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use nvme_spec::opcode::AdminOpcode;
use nvme_spec::sgl::SUBTYPE_TRANSPORT_A;
use nvme_spec::sqe::DataDirection;
use nvme_spec::{Cqe, Sgl, Sqe, Status};
use tokio_util::sync::CancellationToken;
use tracing::debug;

use super::framer::{Framer, ReceivedPdu, Role};
use super::pdu::{
    C2HData, Digests, EncodeOptions, FatalError, Fes, H2CData, IcReq, IcResp, InlineBytes, Pdu,
    PduHeader, PduType, R2t, TermReq, DGST_DDGST_ENABLE, DGST_HDGST_ENABLE, FLAG_LAST_PDU,
    FLAG_SUCCESS, MAX_PDA, OFFSET_DATA_CCCID, OFFSET_DATA_DATAL, OFFSET_DATA_TTAG, OFFSET_IC_HPDA,
    OFFSET_IC_PFV, OFFSET_PDU_TYPE, PFV_1_0,
};
use super::send_queue::SendQueue;
use crate::queue::{
    Completion, ConnectionInfo, DataBuf, Lent, Payload, QueueHandler, Request, Response,
    ResponseFuture, Target,
};

mod c2h;
mod h2c;
mod steer;
use h2c::{H2cData, H2cTransfer, R2tRing};
use steer::Steer;

/// Fabrics command type of Connect (NVMe-oF 1.1 §3.3, Figure 19).
const FCTYPE_CONNECT: u8 = 0x01;
/// Queue depth up to which per-command tables are sized at Connect.
const MAX_PRESIZED_DEPTH: usize = 1024;
/// Cap on the R2Ts we keep outstanding per command, whatever MAXR2T the host allows.
const MAX_OUTSTANDING_R2T: u32 = 16;

/// Tunables of the NVMe/TCP target transport.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TcpTargetConfig {
    /// MAXH2CDATA announced in ICResp: largest H2CData data part (NVMe/TCP 1.0 §3.6.2.3).
    pub max_h2c_data: u32,
    /// In-capsule data limit on the admin queue (and for Connect on it): 8 KiB (§3.2).
    pub admin_in_capsule: u32,
    /// In-capsule data limit on I/O queues (IOCCSZ × 16 − 64).
    pub io_in_capsule: u32,
    /// Largest data transfer of one command; larger SGLs are refused.
    pub max_transfer: u32,
    /// Largest C2HData data part we send.
    pub max_c2h_pdu: u32,
    /// Time allowed between accepting the TCP connection and receiving ICReq.
    pub ic_timeout: Duration,
    /// CPDA announced in ICResp (0's based dwords).
    pub cpda: u8,
}

impl Default for TcpTargetConfig {
    fn default() -> Self {
        TcpTargetConfig {
            max_h2c_data: 128 * 1024,
            admin_in_capsule: 8192,
            io_in_capsule: 8192,
            max_transfer: 1024 * 1024,
            max_c2h_pdu: 128 * 1024,
            ic_timeout: Duration::from_secs(10),
            cpda: 0,
        }
    }
}

/// Something the driver must do besides sending the output bytes.
pub enum Event {
    /// A command completes later: await the future, then call
    /// [`TargetConnection::complete`] with `cid`, `tag` and its response. The tag tells this
    /// command apart from a later one the host sends with the same CID, should this one be
    /// retired without a completion (an abandoned Asynchronous Event Request).
    Pending {
        cid: u16,
        tag: u64,
        response: ResponseFuture,
    },
    /// Send whatever output is queued, then close the connection.
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

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    AwaitIcReq,
    Established,
    /// A fatal error or a TermReq: input is ignored, the driver closes after flushing.
    Closing,
    Closed,
}

struct QueueState {
    handler: Box<dyn QueueHandler>,
    teardown: CancellationToken,
    qid: u16,
    sqsize: u32,
    flow_control_disabled: bool,
}

/// Hash for the u16 CID/TTAG maps: a multiply spreads the key over the high bits the table
/// uses, far cheaper than SipHash (the keys are host-chosen but the tables are per connection
/// and bounded by the queue size, so flooding only slows the host's own queue).
#[derive(Default)]
struct U16Hasher(u64);

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

type U16Map<V> = HashMap<u16, V, BuildHasherDefault<U16Hasher>>;

// Kept unboxed on purpose: a Box per solicited write would be an allocation per command.
#[allow(clippy::large_enum_variant)]
enum Phase {
    Receiving(H2cTransfer),
    /// Submitted; `c2h_len` is the host buffer size for controller-to-host data.
    Executing {
        c2h_len: u32,
    },
}

struct Command {
    sqe: Sqe,
    /// Per-connection sequence number of this command, never reused: a completion carrying
    /// another tag belongs to an earlier command with the same CID.
    tag: u64,
    phase: Phase,
}

impl Command {
    /// An Asynchronous Event Request the target has not answered yet (admin queues only:
    /// opcode 0Ch is Verify on I/O queues).
    fn is_parked_aer(&self) -> bool {
        !self.sqe.is_fabrics()
            && self.sqe.opcode == AdminOpcode::AsyncEventRequest.to_u8()
            && matches!(self.phase, Phase::Executing { .. })
    }
}

/// A fatal error found while handling a PDU, with the header to quote in the TermReq.
struct Fatal {
    error: FatalError,
    header: Bytes,
}

/// One NVMe/TCP connection, controller side.
pub struct TargetConnection {
    target: Arc<dyn Target>,
    info: ConnectionInfo,
    config: TcpTargetConfig,
    framer: Framer,
    state: State,
    ic_deadline: Instant,
    digests: Digests,
    hpda: u8,
    /// Outstanding R2Ts allowed per command (MAXR2T + 1, capped).
    max_r2t: u32,
    queue: Option<QueueState>,
    /// Submission queue entries consumed so far (SQHD source).
    sq_consumed: u64,
    commands_received: u64,
    commands: U16Map<Command>,
    /// TTAG -> CID of the command the R2T belongs to.
    ttags: U16Map<u16>,
    next_ttag: u16,
    /// Tag of the next command entered in `commands`.
    next_tag: u64,
    out: SendQueue,
    events: VecDeque<Event>,
    /// Scratch list for [`TargetConnection::poll_queued`], kept to reuse its room.
    finished: Vec<(u16, Response)>,
    /// The H2CData PDU whose data is being received into lent memory.
    steer: Option<Steer>,
}

impl TargetConnection {
    pub fn new(
        target: Arc<dyn Target>,
        info: ConnectionInfo,
        config: TcpTargetConfig,
        now: Instant,
    ) -> TargetConnection {
        let max_data = config
            .max_h2c_data
            .max(config.admin_in_capsule)
            .max(config.io_in_capsule);
        let mut framer = Framer::new(Role::Controller, max_data);
        framer.set_rx_pda(config.cpda.min(MAX_PDA));
        TargetConnection {
            target,
            info,
            ic_deadline: now + config.ic_timeout,
            config,
            framer,
            state: State::AwaitIcReq,
            digests: Digests::NONE,
            hpda: 0,
            max_r2t: 1,
            queue: None,
            sq_consumed: 0,
            commands_received: 0,
            commands: U16Map::default(),
            ttags: U16Map::default(),
            next_ttag: 0,
            next_tag: 0,
            out: SendQueue::default(),
            events: VecDeque::new(),
            finished: Vec::new(),
            steer: None,
        }
    }

    /// Feed received bytes (copied) and process every complete PDU.
    pub fn receive(&mut self, bytes: &[u8], now: Instant) {
        if self.accepting_input() {
            self.framer.feed(bytes);
            self.process(now);
        }
    }

    /// The receive buffer, for drivers that read the socket straight into it; call
    /// [`TargetConnection::process`] afterwards.
    pub fn recv_buffer(&mut self) -> &mut BytesMut {
        self.framer.buffer_mut()
    }

    /// Command capsules received on this connection so far.
    pub fn commands_received(&self) -> u64 {
        self.commands_received
    }

    /// Process every complete PDU in the receive buffer.
    pub fn process(&mut self, _now: Instant) {
        while self.accepting_input() {
            if self.steer.is_some() {
                if self.steer_buffered() {
                    continue;
                }
                break;
            }
            match self.framer.next_pdu() {
                Ok(None) => {
                    if self.try_steer() {
                        continue;
                    }
                    break;
                }
                Ok(Some(pdu)) => {
                    if let Err(f) = self.handle_pdu(pdu) {
                        self.fatal(f.error, f.header);
                    }
                }
                Err(e) => {
                    if e.pdu_type == PduType::H2CTermReq {
                        // NVMe/TCP 1.0 §3.5.1: a malformed H2CTermReq is ignored and the
                        // connection terminated at once, without a C2HTermReq.
                        debug!(peer = %self.info.peer, error = ?e.error, "malformed H2CTermReq");
                        self.begin_close();
                    } else {
                        self.fatal(e.error, e.header);
                    }
                }
            }
        }
    }

    /// The moment [`TargetConnection::handle_timeout`] wants to be called, if any.
    pub fn next_timeout(&self) -> Option<Instant> {
        (self.state == State::AwaitIcReq).then_some(self.ic_deadline)
    }

    /// Close a connection whose host never sent ICReq in time.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.state == State::AwaitIcReq && now >= self.ic_deadline {
            debug!(peer = %self.info.peer, "no ICReq before the timeout");
            self.begin_close();
        }
    }

    /// Deliver the response of a command announced by [`Event::Pending`]. A response whose
    /// command is gone (retired, or the connection closed) is dropped, even if a newer
    /// command uses the same CID: its tag differs.
    pub fn complete(&mut self, cid: u16, tag: u64, response: Response) {
        if self.state != State::Established {
            return;
        }
        let c2h_len = match self.commands.get(&cid) {
            Some(Command {
                tag: t,
                phase: Phase::Executing { c2h_len },
                ..
            }) if *t == tag => *c2h_len,
            _ => return,
        };
        self.commands.remove(&cid);
        self.send_response(cid, c2h_len, response);
    }

    /// Whether the queue has commands in its handler's table ([`Completion::Queued`]): the
    /// driver then calls [`TargetConnection::poll_queued`] on every turn of its loop.
    pub fn has_queued(&self) -> bool {
        self.state == State::Established
            && self.queue.as_ref().is_some_and(|q| q.handler.has_queued())
    }

    /// Collect the responses of queued commands that finished and queue them for sending;
    /// returns how many.
    pub fn poll_queued(&mut self) -> usize {
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
                self.complete(cid, tag, response);
            }
        }
        self.finished = finished;
        n
    }

    /// Everything queued for sending, as one buffer (copies; for tests and simple drivers).
    pub fn poll_transmit(&mut self) -> Option<Bytes> {
        self.out.take_all()
    }

    /// The output queue: socket drivers write its slices and consume what was sent.
    pub fn send_queue(&mut self) -> &mut SendQueue {
        &mut self.out
    }

    pub fn has_transmit(&self) -> bool {
        !self.out.is_empty()
    }

    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// Cancelled when the controller behind this queue is torn down; `None` before Connect.
    pub fn teardown_token(&self) -> Option<CancellationToken> {
        self.queue.as_ref().map(|q| q.teardown.clone())
    }

    /// The queue ID after a successful Connect.
    pub fn qid(&self) -> Option<u16> {
        self.queue.as_ref().map(|q| q.qid)
    }

    /// Digests negotiated by ICReq/ICResp.
    pub fn digests(&self) -> Digests {
        self.digests
    }

    pub fn is_closing(&self) -> bool {
        matches!(self.state, State::Closing | State::Closed)
    }

    /// The transport connection is gone: drop all commands and tell the queue, once.
    pub fn close(&mut self) {
        if self.state == State::Closed {
            return;
        }
        self.state = State::Closed;
        self.out.clear();
        self.commands.clear();
        self.ttags.clear();
        if let Some(mut q) = self.queue.take() {
            q.handler.disconnected();
        }
    }

    fn accepting_input(&self) -> bool {
        matches!(self.state, State::AwaitIcReq | State::Established)
    }

    fn begin_close(&mut self) {
        if self.accepting_input() {
            self.state = State::Closing;
            self.events.push_back(Event::Close);
        }
    }

    /// NVMe/TCP 1.0 §3.5.1: stop processing, send C2HTermReq quoting the header, close.
    fn fatal(&mut self, error: FatalError, header: Bytes) {
        if !self.accepting_input() {
            return;
        }
        debug!(peer = %self.info.peer, ?error, "fatal NVMe/TCP error, sending C2HTermReq");
        let term = Pdu::with_data(
            PduHeader::C2HTermReq(TermReq {
                fes: error.fes,
                fei: error.fei,
            }),
            0,
            header,
        );
        self.push_pdu(&term);
        self.begin_close();
    }

    fn encode_options(&self) -> EncodeOptions {
        EncodeOptions {
            digests: self.digests,
            pda: self.hpda,
        }
    }

    fn push_pdu(&mut self, pdu: &Pdu) {
        let (head, n, ddgst) = pdu.encode_head(self.encode_options(), &pdu.data);
        self.out.push_inline(head);
        self.out.push_shared(pdu.data.slice(..n));
        if let Some(d) = ddgst {
            self.out.push_inline(InlineBytes::from_slice(&d));
        }
    }

    fn handle_pdu(&mut self, pdu: ReceivedPdu) -> Result<(), Fatal> {
        let fatal = |error: FatalError| Fatal {
            error,
            header: pdu.header_bytes.clone(),
        };
        match (self.state, pdu.header) {
            (State::AwaitIcReq, PduHeader::IcReq(req)) => self.handle_icreq(req).map_err(fatal),
            (_, PduHeader::H2CTermReq(t)) => {
                // §3.5.1: the controller terminates the connection.
                debug!(peer = %self.info.peer, fes = ?t.fes, fei = t.fei, "H2CTermReq received");
                self.begin_close();
                Ok(())
            }
            // §3.1: ICReq comes first and only once.
            (State::AwaitIcReq, _) | (State::Established, PduHeader::IcReq(_)) => {
                Err(fatal(FatalError::new(Fes::PduSequenceError, 0)))
            }
            (State::Established, PduHeader::CapsuleCmd(sqe)) => {
                self.handle_command(sqe, pdu.data, pdu.data_digest_ok);
                Ok(())
            }
            (State::Established, PduHeader::H2CData(d)) => self
                .handle_h2c_data(d, pdu.flags, pdu.data, pdu.data_digest_ok)
                .map_err(fatal),
            // The framer only yields host-to-controller PDUs; anything else is a bad type.
            (State::Established, _) => Err(fatal(FatalError::field(OFFSET_PDU_TYPE))),
            (State::Closing | State::Closed, _) => Ok(()),
        }
    }

    fn handle_icreq(&mut self, req: IcReq) -> Result<(), FatalError> {
        // §3.6.2.2: PFV 0 is the only format; another version is a parameter we don't support
        // (§3.1: "Unsupported Parameter" with the field offset).
        if req.pfv != PFV_1_0 {
            return Err(FatalError::new(Fes::UnsupportedParameter, OFFSET_IC_PFV));
        }
        // §3.6.2.2: HPDA is in the range 0 to 31; anything else is an invalid field.
        if req.hpda > MAX_PDA {
            return Err(FatalError::field(OFFSET_IC_HPDA));
        }
        // §3.3.1.1: a digest is enabled when both sides set its bit; we grant what the
        // host asks for. Reserved DGST bits are ignored.
        let digests = req.digests();
        self.digests = digests;
        self.hpda = req.hpda;
        self.max_r2t = req.maxr2t.saturating_add(1).min(MAX_OUTSTANDING_R2T);
        let resp = Pdu::new(PduHeader::IcResp(IcResp {
            pfv: PFV_1_0,
            cpda: self.config.cpda.min(MAX_PDA),
            dgst: req.dgst & (DGST_HDGST_ENABLE | DGST_DDGST_ENABLE),
            maxh2cdata: self.config.max_h2c_data,
        }));
        // ICResp itself never carries digests; they apply to the PDUs after it.
        self.push_pdu(&resp);
        self.framer.set_digests(digests);
        self.state = State::Established;
        Ok(())
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

    fn respond_status(&mut self, cid: u16, status: Status) {
        let sqid = self.queue.as_ref().map_or(0, |q| q.qid);
        let cqe = Cqe::new(cid, sqid, self.sqhd(), status, 0, 0);
        self.push_pdu(&Pdu::new(PduHeader::CapsuleResp(cqe)));
    }

    fn in_capsule_limit(&self, sqe: &Sqe) -> u32 {
        let qid = match &self.queue {
            Some(q) => q.qid,
            // A Connect names its queue in CDW10 bits 31:16 (NVMe-oF 1.1 Figure 20).
            None => (sqe.cdw10.get() >> 16) as u16,
        };
        if qid == 0 {
            self.config.admin_in_capsule
        } else {
            self.config.io_in_capsule
        }
    }

    fn handle_command(&mut self, sqe: Sqe, data: Bytes, data_digest_ok: bool) {
        let cid = sqe.cid();
        self.sq_consumed += 1;
        self.commands_received += 1;
        if self.commands.contains_key(&cid) && !self.retire_abandoned_aer(cid) {
            // NVMe Base 2.0 §4.2 (SQE CID): unique among the outstanding commands of the SQ.
            debug!(peer = %self.info.peer, cid, "command identifier already in use");
            self.respond_status(cid, Status::CID_CONFLICT.with_dnr());
            return;
        }
        let is_connect = sqe.is_fabrics() && sqe.fctype() == FCTYPE_CONNECT;
        // NVMe-oF 1.1 §3.3: the first command on a queue is Connect, and only the first.
        if is_connect == self.queue.is_some() {
            debug!(peer = %self.info.peer, cid, is_connect, "command out of sequence");
            self.respond_status(cid, Status::COMMAND_SEQUENCE_ERROR.with_dnr());
            return;
        }
        match self.check_data(&sqe, &data, data_digest_ok) {
            Err(status) => {
                debug!(peer = %self.info.peer, cid, ?status, "command data refused");
                self.respond_status(cid, status);
            }
            Ok(DataPlan::None) => self.dispatch(sqe, None, None, None, 0),
            Ok(DataPlan::InCapsule) => self.dispatch(sqe, Some(data), None, None, 0),
            Ok(DataPlan::ToHost(len)) => self.dispatch(sqe, None, None, None, len),
            Ok(DataPlan::Solicit(total)) => {
                // An I/O queue's handler may lend device memory (a drive's DMA buffer) for
                // the data: it is received into it and the drive writes it from there.
                let lent = match self.queue.as_mut() {
                    Some(q) if q.qid != 0 => q.handler.lend_h2c(&sqe, total),
                    _ => None,
                };
                let data = match lent {
                    Some(l) if l.len() == total as usize => H2cData::Lent(l),
                    _ => H2cData::Nothing,
                };
                let tag = self.next_tag();
                self.commands.insert(
                    cid,
                    Command {
                        sqe,
                        tag,
                        phase: Phase::Receiving(H2cTransfer {
                            total,
                            received: 0,
                            next_r2to: 0,
                            data,
                            r2ts: R2tRing::default(),
                            digest_failed: false,
                        }),
                    },
                );
                self.issue_r2ts(cid);
            }
        }
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

    fn next_tag(&mut self) -> u64 {
        let t = self.next_tag;
        self.next_tag = self.next_tag.wrapping_add(1);
        t
    }

    /// Decide how the command's data moves, or the status that refuses it.
    fn check_data(&self, sqe: &Sqe, data: &Bytes, digest_ok: bool) -> Result<DataPlan, Status> {
        let sgl = Sgl::parse(&sqe.dptr);
        let in_capsule = data.len() as u64;
        match sqe.data_direction() {
            DataDirection::None => {
                if in_capsule != 0 {
                    return Err(Status::DATA_SGL_LENGTH_INVALID.with_dnr());
                }
                Ok(DataPlan::None)
            }
            DataDirection::Bidirectional => Err(Status::INVALID_FIELD.with_dnr()),
            DataDirection::HostToController => match sgl {
                // NVMe/TCP 1.0 §3.2: in-capsule data starts right at the capsule data
                // (ICDOFF is 0), is at most the queue's limit, and is exactly what the SGL
                // describes (nothing undefined follows it).
                Sgl::InCapsule { offset, length } => {
                    if offset != 0 {
                        return Err(Status::SGL_OFFSET_INVALID.with_dnr());
                    }
                    if length > self.in_capsule_limit(sqe) || u64::from(length) != in_capsule {
                        return Err(Status::DATA_SGL_LENGTH_INVALID.with_dnr());
                    }
                    // §3.5.2: a data digest error in a CapsuleCmd fails the command with a
                    // non-fatal transport error.
                    if !digest_ok {
                        return Err(Status::TRANSIENT_TRANSPORT_ERROR);
                    }
                    if length == 0 {
                        Ok(DataPlan::None)
                    } else {
                        Ok(DataPlan::InCapsule)
                    }
                }
                Sgl::Transport { length, subtype } => {
                    // §3.4: NVMe/TCP knows Data Block/Offset and Transport/Ah only.
                    if subtype != SUBTYPE_TRANSPORT_A {
                        return Err(Status::SGL_DESCRIPTOR_TYPE_INVALID.with_dnr());
                    }
                    if in_capsule != 0 || length > self.config.max_transfer {
                        return Err(Status::DATA_SGL_LENGTH_INVALID.with_dnr());
                    }
                    if length == 0 {
                        Ok(DataPlan::None)
                    } else {
                        Ok(DataPlan::Solicit(length))
                    }
                }
                Sgl::Keyed { .. } | Sgl::Other { .. } => {
                    Err(Status::SGL_DESCRIPTOR_TYPE_INVALID.with_dnr())
                }
            },
            DataDirection::ControllerToHost => match sgl {
                Sgl::Transport { length, subtype } => {
                    if subtype != SUBTYPE_TRANSPORT_A {
                        return Err(Status::SGL_DESCRIPTOR_TYPE_INVALID.with_dnr());
                    }
                    if in_capsule != 0 || length > self.config.max_transfer {
                        return Err(Status::DATA_SGL_LENGTH_INVALID.with_dnr());
                    }
                    Ok(DataPlan::ToHost(length))
                }
                // Response data is never in-capsule (§3.2, Figure 11).
                Sgl::InCapsule { .. } | Sgl::Keyed { .. } | Sgl::Other { .. } => {
                    Err(Status::SGL_DESCRIPTOR_TYPE_INVALID.with_dnr())
                }
            },
        }
    }

    /// Hand a command with all its host data to the target: `data` when it arrived in one
    /// piece, `gathered` (a pooled buffer) when it came in several, `lent` when it was
    /// received into memory the handler lent.
    fn dispatch(
        &mut self,
        sqe: Sqe,
        mut data: Option<Bytes>,
        mut gathered: Option<DataBuf>,
        lent: Option<Lent>,
        c2h_len: u32,
    ) {
        let cid = sqe.cid();
        let tag = self.next_tag();
        if self.queue.as_ref().is_none_or(|q| q.qid == 0) {
            // Admin commands and Connect take their data as bytes (not the data path).
            if let Some(buf) = gathered.take() {
                data = Some(Bytes::copy_from_slice(buf.as_slice()));
                self.out.pool().give(buf);
            }
        }
        let Some(queue) = self.queue.as_mut() else {
            self.connect(sqe, data);
            return;
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
        let c2h_buf =
            (queue.qid != 0 && c2h_len > 0).then(|| self.out.pool().take(c2h_len as usize));
        let request = Request {
            sqe,
            data,
            c2h_buf,
            h2c_buf: gathered,
            h2c_lent: lent,
        };
        match queue.handler.submit(request) {
            Completion::Ready(resp) => self.complete(cid, tag, resp),
            Completion::Pending(fut) => self.events.push_back(Event::Pending {
                cid,
                tag,
                response: fut,
            }),
            // Delivered by `poll_queued`.
            Completion::Queued => {}
        }
    }

    fn connect(&mut self, sqe: Sqe, data: Option<Bytes>) {
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
                // Size the per-command tables for a full queue up front, so they never grow
                // (allocate) on the data path.
                let depth = (c.sqsize as usize).clamp(1, MAX_PRESIZED_DEPTH);
                self.commands.reserve(depth);
                self.ttags.reserve(depth);
                self.out.reserve(4 * depth);
                let r = c.response;
                let cqe = Cqe::new(cid, c.qid, self.sqhd(), r.status, r.dw0, r.dw1);
                self.push_pdu(&Pdu::new(PduHeader::CapsuleResp(cqe)));
            }
            Err(r) => {
                debug!(peer = %self.info.peer, status = ?r.status, "Connect refused");
                // NVMe-oF 1.1 Figure 20: QID is CDW10 bits 31:16.
                let sqid = (sqe.cdw10.get() >> 16) as u16;
                let cqe = Cqe::new(cid, sqid, 0, r.status, r.dw0, r.dw1);
                self.push_pdu(&Pdu::new(PduHeader::CapsuleResp(cqe)));
            }
        }
    }
}

impl Drop for TargetConnection {
    fn drop(&mut self) {
        self.close();
    }
}

enum DataPlan {
    None,
    InCapsule,
    ToHost(u32),
    Solicit(u32),
}

#[cfg(test)]
mod tests;
