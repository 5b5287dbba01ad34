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
use nvme::opcode::AdminOpcode;
use nvme::sgl::SUBTYPE_TRANSPORT_A;
use nvme::sqe::DataDirection;
use nvme::{Cqe, Sgl, Sqe, Status};
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
    Completion, ConnectionInfo, Payload, QueueHandler, Request, Response, ResponseFuture, Target,
};

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

#[derive(Clone, Copy, Default)]
struct OutstandingR2t {
    ttag: u16,
    r2to: u32,
    r2tl: u32,
}

/// The R2Ts outstanding for one command, oldest first, kept inline (no allocation).
#[derive(Default)]
struct R2tRing {
    items: [OutstandingR2t; MAX_OUTSTANDING_R2T as usize],
    head: usize,
    len: usize,
}

impl R2tRing {
    fn len(&self) -> usize {
        self.len
    }

    fn push_back(&mut self, r: OutstandingR2t) {
        if self.len < self.items.len() {
            self.items[(self.head + self.len) % self.items.len()] = r;
            self.len += 1;
        }
    }

    fn get(&self, i: usize) -> Option<OutstandingR2t> {
        (i < self.len).then(|| self.items[(self.head + i) % self.items.len()])
    }

    fn position(&self, ttag: u16) -> Option<usize> {
        (0..self.len).find(|&i| self.get(i).is_some_and(|r| r.ttag == ttag))
    }

    fn pop_front(&mut self) {
        if self.len > 0 {
            self.head = (self.head + 1) % self.items.len();
            self.len -= 1;
        }
    }
}

/// Host-to-controller data being solicited with R2Ts (NVMe/TCP 1.0 §3.3.2.2).
struct H2cTransfer {
    total: u32,
    received: u32,
    next_r2to: u32,
    /// The data as received: one piece (the usual case, kept as a slice of the receive
    /// buffer) or several that are gathered when the last arrives.
    first: Option<Bytes>,
    more: Vec<Bytes>,
    r2ts: R2tRing,
    digest_failed: bool,
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
    sq_consumed: u32,
    commands: U16Map<Command>,
    /// TTAG -> CID of the command the R2T belongs to.
    ttags: U16Map<u16>,
    next_ttag: u16,
    /// Tag of the next command entered in `commands`.
    next_tag: u64,
    out: SendQueue,
    events: VecDeque<Event>,
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
            commands: U16Map::default(),
            ttags: U16Map::default(),
            next_ttag: 0,
            next_tag: 0,
            out: SendQueue::default(),
            events: VecDeque::new(),
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

    /// Process every complete PDU in the receive buffer.
    pub fn process(&mut self, _now: Instant) {
        while self.accepting_input() {
            match self.framer.next_pdu() {
                Ok(None) => break,
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
            Some(q) if !q.flow_control_disabled => (self.sq_consumed % q.sqsize.max(1)) as u16,
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
        self.sq_consumed = self.sq_consumed.wrapping_add(1);
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
            Ok(DataPlan::None) => self.dispatch(sqe, None, 0),
            Ok(DataPlan::InCapsule) => self.dispatch(sqe, Some(data), 0),
            Ok(DataPlan::ToHost(len)) => self.dispatch(sqe, None, len),
            Ok(DataPlan::Solicit(total)) => {
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
                            first: None,
                            more: Vec::new(),
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

    fn alloc_ttag(&mut self) -> Option<u16> {
        for _ in 0..=u16::MAX {
            let t = self.next_ttag;
            self.next_ttag = self.next_ttag.wrapping_add(1);
            if !self.ttags.contains_key(&t) {
                return Some(t);
            }
        }
        None
    }

    /// Send R2Ts until MAXR2T are outstanding or the whole buffer is solicited
    /// (§3.3.2.2: sequential offsets, each at most MAXH2CDATA).
    fn issue_r2ts(&mut self, cid: u16) {
        let max_piece = self.config.max_h2c_data.max(4);
        loop {
            let Some(Command {
                phase: Phase::Receiving(x),
                ..
            }) = self.commands.get(&cid)
            else {
                return;
            };
            if x.r2ts.len() as u32 >= self.max_r2t || x.next_r2to >= x.total {
                return;
            }
            let r2to = x.next_r2to;
            let r2tl = (x.total - r2to).min(max_piece);
            let Some(ttag) = self.alloc_ttag() else {
                return;
            };
            self.ttags.insert(ttag, cid);
            if let Some(Command {
                phase: Phase::Receiving(x),
                ..
            }) = self.commands.get_mut(&cid)
            {
                x.next_r2to = r2to + r2tl;
                x.r2ts.push_back(OutstandingR2t { ttag, r2to, r2tl });
            }
            self.push_pdu(&Pdu::new(PduHeader::R2t(R2t {
                cccid: cid,
                ttag,
                r2to,
                r2tl,
            })));
        }
    }

    fn handle_h2c_data(
        &mut self,
        d: H2CData,
        flags: u8,
        data: Bytes,
        digest_ok: bool,
    ) -> Result<(), FatalError> {
        // §3.3.2.2: an unknown TTAG is an invalid header field at the TTAG offset.
        let Some(&cid) = self.ttags.get(&d.ttag) else {
            return Err(FatalError::field(OFFSET_DATA_TTAG));
        };
        if cid != d.cccid {
            return Err(FatalError::field(OFFSET_DATA_CCCID));
        }
        if d.datal as usize != data.len() {
            return Err(FatalError::field(OFFSET_DATA_DATAL));
        }
        // §3.3.2.2: DATAL above MAXH2CDATA is Data Transfer Limit Exceeded.
        if d.datal > self.config.max_h2c_data {
            return Err(FatalError::new(Fes::DataLimitExceeded, 0));
        }
        let Some(Command {
            phase: Phase::Receiving(x),
            ..
        }) = self.commands.get_mut(&cid)
        else {
            return Err(FatalError::new(Fes::PduSequenceError, 0));
        };
        let Some(pos) = x.r2ts.position(d.ttag) else {
            return Err(FatalError::field(OFFSET_DATA_TTAG));
        };
        let Some(OutstandingR2t { r2to, r2tl, .. }) = x.r2ts.get(pos) else {
            return Err(FatalError::field(OFFSET_DATA_TTAG));
        };
        let r2t_end = u64::from(r2to) + u64::from(r2tl);
        let end = u64::from(d.datao) + u64::from(d.datal);
        // §3.3.2.2: data outside R2TO..R2TO+R2TL is Data Transfer Out of Range.
        if d.datao < r2to || end > r2t_end {
            return Err(FatalError::new(Fes::DataOutOfRange, 0));
        }
        // §3.3.2.2: R2Ts of one command are serviced in order and H2CData PDUs are
        // contiguous; anything else is a PDU Sequence Error.
        if pos != 0 || d.datao != x.received {
            return Err(FatalError::new(Fes::PduSequenceError, 0));
        }
        let done = end == r2t_end;
        // LAST_PDU marks exactly the PDU that completes the R2T.
        if (flags & FLAG_LAST_PDU != 0) != done {
            return Err(FatalError::new(Fes::PduSequenceError, 0));
        }
        // §3.5.2: a data digest error is not fatal; we keep receiving and fail the command
        // with a Transient Transport Error once its data is in.
        if !digest_ok {
            debug!(peer = %self.info.peer, cid, "data digest error in H2CData");
            x.digest_failed = true;
        }
        x.received += d.datal;
        match x.first {
            None => x.first = Some(data),
            Some(_) => x.more.push(data),
        }
        if !done {
            return Ok(());
        }
        x.r2ts.pop_front();
        let all_in = x.received >= x.total;
        self.ttags.remove(&d.ttag);
        if !all_in {
            self.issue_r2ts(cid);
            return Ok(());
        }
        let Some(cmd) = self.commands.remove(&cid) else {
            return Ok(());
        };
        let Phase::Receiving(x) = cmd.phase else {
            return Ok(());
        };
        if x.digest_failed {
            self.respond_status(cid, Status::TRANSIENT_TRANSPORT_ERROR);
            return Ok(());
        }
        let first = x.first.unwrap_or_default();
        let data = if x.more.is_empty() {
            first
        } else {
            // Only writes larger than MAXH2CDATA arrive in pieces; they are gathered here.
            let mut buf = BytesMut::with_capacity(x.total as usize);
            buf.extend_from_slice(&first);
            for p in &x.more {
                buf.extend_from_slice(p);
            }
            buf.freeze()
        };
        self.dispatch(cmd.sqe, Some(data), 0);
        Ok(())
    }

    /// Hand a command with all its host data to the target.
    fn dispatch(&mut self, sqe: Sqe, data: Option<Bytes>, c2h_len: u32) {
        let cid = sqe.cid();
        let tag = self.next_tag();
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
        match queue.handler.submit(Request { sqe, data, c2h_buf }) {
            Completion::Ready(resp) => self.complete(cid, tag, resp),
            Completion::Pending(fut) => self.events.push_back(Event::Pending {
                cid,
                tag,
                response: fut,
            }),
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

    /// Send C2HData for the response data (if the command has a host buffer), then the
    /// CapsuleResp unless the SUCCESS flag stands in for it.
    fn send_response(&mut self, cid: u16, c2h_len: u32, mut resp: Response) {
        if let Some(buf) = resp.unused_buf.take() {
            self.out.pool().give(buf);
        }
        let (qid, fc_disabled) = self
            .queue
            .as_ref()
            .map_or((0, false), |q| (q.qid, q.flow_control_disabled));
        let data_len = resp.data.as_ref().map_or(0, Payload::len);
        // Never more than the host's buffer; less if that is all the target produced.
        let total = data_len.min(c2h_len as usize);
        if total > 0 {
            // NVMe/TCP 1.0 §3.3.2.1: SUCCESS may replace the CapsuleResp only if SQHD
            // updates are disabled (the host disabled SQ flow control) and the synthesized
            // CQE (status and command specific fields all zero) is the true one.
            let success = fc_disabled && resp.status.is_success() && resp.dw0 == 0 && resp.dw1 == 0;
            let piece = (self.config.max_c2h_pdu.max(4) & !3) as usize;
            match resp.data {
                Some(Payload::Buf(mut buf)) if total <= piece => {
                    // One C2HData PDU straight from the pooled buffer.
                    buf.truncate(total);
                    let pdu = c2h_pdu(cid, 0, total, true, success);
                    let (head, _, ddgst) = pdu.encode_head(self.encode_options(), buf.as_slice());
                    self.out.push_inline(head);
                    self.out.push_payload(Payload::Buf(buf));
                    if let Some(d) = ddgst {
                        self.out.push_inline(InlineBytes::from_slice(&d));
                    }
                }
                Some(payload) => {
                    let data = match payload {
                        Payload::Shared(b) => b,
                        Payload::Buf(buf) => Bytes::from(buf.into_vec()),
                    };
                    let mut off = 0;
                    while off < total {
                        let n = piece.min(total - off);
                        let last = off + n == total;
                        let mut pdu = c2h_pdu(cid, off, n, last, success);
                        pdu.data = data.slice(off..off + n);
                        self.push_pdu(&pdu);
                        off += n;
                    }
                }
                None => {}
            }
            if success {
                return;
            }
        }
        let cqe = Cqe::new(cid, qid, self.sqhd(), resp.status, resp.dw0, resp.dw1);
        self.push_pdu(&Pdu::new(PduHeader::CapsuleResp(cqe)));
    }
}

/// A C2HData PDU header for `len` bytes at `off` (data attached by the caller).
fn c2h_pdu(cid: u16, off: usize, len: usize, last: bool, success: bool) -> Pdu {
    let mut flags = 0;
    if last {
        flags |= FLAG_LAST_PDU;
        if success {
            flags |= FLAG_SUCCESS;
        }
    }
    Pdu::with_data(
        PduHeader::C2HData(C2HData {
            cccid: cid,
            datao: off as u32,
            datal: len as u32,
        }),
        flags,
        Bytes::new(),
    )
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
mod tests {
    use super::*;
    use crate::queue::{Connected, TransportKind};
    use crate::tcp::digest;
    use crate::tcp::pdu::{CommonHeader, Digests, FLAG_DDGSTF, FLAG_HDGSTF};
    use std::sync::atomic::{AtomicU32, Ordering};
    use std::sync::Mutex;

    const BLOCK: usize = 512;

    mod cid_reuse;

    /// A RAM "namespace": Write (01h) and Read (02h) by LBA, Flush (00h) completes later with
    /// DW0 = CDW10, anything else is an invalid opcode.
    struct RamTarget {
        store: Arc<Mutex<Vec<u8>>>,
        refuse_connects: AtomicU32,
        disconnects: Arc<AtomicU32>,
        teardown: CancellationToken,
    }

    impl RamTarget {
        fn new() -> Arc<RamTarget> {
            Arc::new(RamTarget {
                store: Arc::new(Mutex::new(vec![0; 4 << 20])),
                refuse_connects: AtomicU32::new(0),
                disconnects: Arc::new(AtomicU32::new(0)),
                teardown: CancellationToken::new(),
            })
        }
    }

    impl Target for RamTarget {
        fn connect(
            &self,
            conn: &ConnectionInfo,
            sqe: &Sqe,
            data: &[u8],
        ) -> Result<Connected, Response> {
            assert_eq!(conn.transport, TransportKind::Tcp);
            assert_eq!(data.len(), 1024, "Connect data must arrive whole");
            assert_eq!(&data[256..260], b"nqn.");
            if self
                .refuse_connects
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                .is_ok()
            {
                return Err(Response::status(Status::INVALID_FIELD.with_dnr()));
            }
            let cdw11 = sqe.cdw11.get();
            Ok(Connected {
                handler: Box::new(RamQueue {
                    store: self.store.clone(),
                    disconnects: self.disconnects.clone(),
                    teardown: self.teardown.clone(),
                }),
                response: Response::success().with_dw0(0x42),
                qid: (sqe.cdw10.get() >> 16) as u16,
                sqsize: (cdw11 & 0xffff) + 1,
                sq_flow_control_disabled: (cdw11 >> 16) & 0x4 != 0,
            })
        }
    }

    struct RamQueue {
        store: Arc<Mutex<Vec<u8>>>,
        disconnects: Arc<AtomicU32>,
        teardown: CancellationToken,
    }

    impl QueueHandler for RamQueue {
        fn submit(&mut self, req: Request) -> Completion {
            let sqe = req.sqe;
            let off = sqe.slba() as usize * BLOCK;
            let len = sqe.nlb() as usize * BLOCK;
            let mut store = self.store.lock().unwrap();
            match sqe.opcode {
                0x01 => {
                    let data = req.data.unwrap_or_default();
                    if data.len() != len {
                        return Completion::Ready(Response::status(
                            Status::DATA_SGL_LENGTH_INVALID,
                        ));
                    }
                    store[off..off + len].copy_from_slice(&data);
                    Completion::Ready(Response::success())
                }
                0x02 => Completion::Ready(
                    Response::success().with_data(Bytes::copy_from_slice(&store[off..off + len])),
                ),
                0x00 => {
                    let dw0 = sqe.cdw10.get();
                    Completion::Pending(Box::pin(async move { Response::success().with_dw0(dw0) }))
                }
                _ => Completion::Ready(Response::status(Status::INVALID_OPCODE.with_dnr())),
            }
        }

        fn teardown(&self) -> CancellationToken {
            self.teardown.clone()
        }

        fn disconnected(&mut self) {
            self.disconnects.fetch_add(1, Ordering::SeqCst);
        }
    }

    /// A scripted host: encodes PDUs into the connection and frames what comes back.
    struct Host {
        conn: TargetConnection,
        rx: Framer,
        opts: EncodeOptions,
        now: Instant,
    }

    fn info() -> ConnectionInfo {
        ConnectionInfo {
            transport: TransportKind::Tcp,
            local: "127.0.0.1:4420".parse().unwrap(),
            peer: "127.0.0.1:50000".parse().unwrap(),
        }
    }

    impl Host {
        fn new(target: Arc<dyn Target>, config: TcpTargetConfig) -> Host {
            let now = Instant::now();
            Host {
                conn: TargetConnection::new(target, info(), config, now),
                rx: Framer::new(Role::Host, 1 << 24),
                opts: EncodeOptions::default(),
                now,
            }
        }

        fn send_raw(&mut self, bytes: &[u8]) {
            self.conn.receive(bytes, self.now);
        }

        fn send(&mut self, pdu: &Pdu) {
            let bytes = pdu.encode(self.opts).to_vec();
            self.send_raw(&bytes);
        }

        fn recv(&mut self) -> Vec<ReceivedPdu> {
            while let Some(b) = self.conn.poll_transmit() {
                self.rx.feed(&b);
            }
            let mut v = Vec::new();
            while let Some(p) = self.rx.next_pdu().expect("controller sent a bad PDU") {
                v.push(p);
            }
            v
        }

        fn handshake(&mut self, hpda: u8, dgst: u8, maxr2t: u32) -> IcResp {
            self.send(&Pdu::new(PduHeader::IcReq(IcReq {
                pfv: 0,
                hpda,
                dgst,
                maxr2t,
            })));
            let got = self.recv();
            assert_eq!(got.len(), 1);
            let PduHeader::IcResp(r) = got[0].header else {
                panic!("expected ICResp, got {:?}", got[0].header)
            };
            let d = r.digests();
            self.rx.set_digests(d);
            self.rx.set_rx_pda(hpda);
            self.opts = EncodeOptions {
                digests: d,
                pda: r.cpda,
            };
            r
        }

        fn connect(&mut self, qid: u16, sqsize: u32, cattr: u8) -> Cqe {
            self.send(&connect_pdu(qid, sqsize, cattr));
            let got = self.recv();
            assert_eq!(got.len(), 1);
            cqe_of(&got[0])
        }

        fn ready(target: Arc<RamTarget>, config: TcpTargetConfig, cattr: u8) -> Host {
            let mut h = Host::new(target, config);
            h.handshake(0, 0, 3);
            let cqe = h.connect(1, 32, cattr);
            assert_eq!(cqe.status(), Status::SUCCESS);
            h
        }
    }

    fn cqe_of(p: &ReceivedPdu) -> Cqe {
        match p.header {
            PduHeader::CapsuleResp(c) => c,
            other => panic!("expected CapsuleResp, got {other:?}"),
        }
    }

    fn connect_pdu(qid: u16, sqsize: u32, cattr: u8) -> Pdu {
        let mut sqe = Sqe {
            opcode: nvme::sqe::FABRICS_OPCODE,
            flags: 0x40,
            ..Default::default()
        };
        sqe.cid.set(0x100 + qid);
        sqe.nsid.set(u32::from(FCTYPE_CONNECT));
        sqe.cdw10.set(u32::from(qid) << 16);
        sqe.cdw11.set((sqsize - 1) | (u32::from(cattr) << 16));
        sqe.dptr = Sgl::InCapsule {
            offset: 0,
            length: 1024,
        }
        .encode();
        let mut data = vec![0u8; 1024];
        data[256..260].copy_from_slice(b"nqn.");
        Pdu::with_data(PduHeader::CapsuleCmd(sqe), 0, Bytes::from(data))
    }

    fn io_sqe(opcode: u8, cid: u16, slba: u64, blocks: u32, sgl: Sgl) -> Sqe {
        let mut sqe = Sqe {
            opcode,
            flags: 0x40,
            ..Default::default()
        };
        sqe.cid.set(cid);
        sqe.nsid.set(1);
        sqe.cdw10.set(slba as u32);
        sqe.cdw11.set((slba >> 32) as u32);
        sqe.cdw12.set(blocks - 1);
        sqe.dptr = sgl.encode();
        sqe
    }

    fn transport(len: usize) -> Sgl {
        Sgl::Transport {
            length: len as u32,
            subtype: SUBTYPE_TRANSPORT_A,
        }
    }

    fn in_capsule_write(cid: u16, slba: u64, data: Vec<u8>) -> Pdu {
        let sgl = Sgl::InCapsule {
            offset: 0,
            length: data.len() as u32,
        };
        let sqe = io_sqe(0x01, cid, slba, (data.len() / BLOCK) as u32, sgl);
        Pdu::with_data(PduHeader::CapsuleCmd(sqe), 0, Bytes::from(data))
    }

    fn read_cmd(cid: u16, slba: u64, len: usize) -> Pdu {
        Pdu::new(PduHeader::CapsuleCmd(io_sqe(
            0x02,
            cid,
            slba,
            (len / BLOCK) as u32,
            transport(len),
        )))
    }

    fn pattern(len: usize, seed: u8) -> Vec<u8> {
        (0..len)
            .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
            .collect()
    }

    /// Read `len` bytes at `slba` and return (data, flags of the last C2HData, trailing CQE).
    fn read_back(h: &mut Host, cid: u16, slba: u64, len: usize) -> (Vec<u8>, u8, Option<Cqe>) {
        h.send(&read_cmd(cid, slba, len));
        let mut data = Vec::new();
        let mut last_flags = 0;
        let mut cqe = None;
        for p in h.recv() {
            match p.header {
                PduHeader::C2HData(d) => {
                    assert_eq!(d.cccid, cid);
                    assert_eq!(
                        d.datao as usize,
                        data.len(),
                        "DATAO must increase contiguously"
                    );
                    data.extend_from_slice(&p.data);
                    last_flags = p.flags;
                }
                PduHeader::CapsuleResp(c) => cqe = Some(c),
                other => panic!("unexpected {other:?}"),
            }
        }
        (data, last_flags, cqe)
    }

    fn term_of(h: &mut Host) -> (TermReq, Bytes) {
        let got = h.recv();
        assert_eq!(got.len(), 1, "expected exactly one C2HTermReq, got {got:?}");
        let PduHeader::C2HTermReq(t) = got[0].header else {
            panic!("expected C2HTermReq, got {:?}", got[0].header)
        };
        assert!(matches!(h.conn.poll_event(), Some(Event::Close)));
        assert!(h.conn.is_closing());
        (t, got[0].data.clone())
    }

    #[test]
    fn icreq_negotiates_digests_and_maxh2cdata() {
        let target = RamTarget::new();
        let config = TcpTargetConfig {
            cpda: 3,
            ..Default::default()
        };
        let mut h = Host::new(target, config);
        h.send(&Pdu::new(PduHeader::IcReq(IcReq {
            pfv: 0,
            hpda: 0,
            dgst: DGST_HDGST_ENABLE | DGST_DDGST_ENABLE,
            maxr2t: 0,
        })));
        let raw: Vec<u8> = std::iter::from_fn(|| h.conn.poll_transmit())
            .flat_map(|b| b.to_vec())
            .collect();
        let mut want = vec![0u8; 128];
        want[..16].copy_from_slice(&[
            0x01, 0x00, 0x80, 0x00, 0x80, 0x00, 0x00, 0x00, // ICResp, HLEN 128, PLEN 128
            0x00, 0x00, 0x03, 0x03, 0x00, 0x00, 0x02, 0x00, // PFV 0, CPDA 3, DGST 3, 128 KiB
        ]);
        assert_eq!(raw, want);
        assert_eq!(
            h.conn.digests(),
            Digests {
                header: true,
                data: true
            }
        );
        // Now every PDU carries both digests, and the command's data respects CPDA (16 bytes).
        h.rx.set_digests(h.conn.digests());
        h.opts = EncodeOptions {
            digests: h.conn.digests(),
            pda: 3,
        };
        let bytes = connect_pdu(0, 32, 0).encode(h.opts).to_vec();
        assert_eq!(bytes[3], 80, "PDO 72 + 4 rounded up to 16");
        h.send_raw(&bytes);
        let raw: Vec<u8> = std::iter::from_fn(|| h.conn.poll_transmit())
            .flat_map(|b| b.to_vec())
            .collect();
        assert_eq!(raw.len(), 28);
        assert_eq!(&raw[..8], &[0x05, FLAG_HDGSTF, 24, 0, 28, 0, 0, 0]);
        assert_eq!(&raw[24..], &digest::crc32c(&raw[..24]).to_le_bytes());
        let cqe = Cqe::from_slice(&raw[8..]).unwrap();
        assert_eq!(cqe.status(), Status::SUCCESS);
        assert_eq!(cqe.dw0.get(), 0x42);
        assert_eq!(cqe.sqid.get(), 0);
        assert_eq!(cqe.sqhd.get(), 1, "the Connect consumed one entry");
    }

    #[test]
    fn digests_not_requested_are_not_granted() {
        let mut h = Host::new(RamTarget::new(), TcpTargetConfig::default());
        let r = h.handshake(0, DGST_DDGST_ENABLE, 0);
        assert_eq!(r.dgst, DGST_DDGST_ENABLE);
        assert_eq!(r.maxh2cdata, 128 * 1024);
        assert_eq!(
            h.conn.digests(),
            Digests {
                header: false,
                data: true
            }
        );
    }

    #[test]
    fn hpda_pads_c2h_data() {
        let target = RamTarget::new();
        target.store.lock().unwrap()[..512].copy_from_slice(&pattern(512, 7));
        let mut h = Host::new(target, TcpTargetConfig::default());
        h.handshake(3, 0, 0);
        h.connect(1, 16, 0);
        h.send(&read_cmd(5, 0, 512));
        let raw: Vec<u8> = std::iter::from_fn(|| h.conn.poll_transmit())
            .flat_map(|b| b.to_vec())
            .collect();
        // C2HData: HLEN 24, PDO 32 (16-byte alignment), PLEN 32 + 512, then the CapsuleResp.
        let ch = CommonHeader::parse(&raw).unwrap();
        assert_eq!(ch.pdu_type, 0x07);
        assert_eq!((ch.hlen, ch.pdo, ch.plen()), (24, 32, 544));
        assert!(raw[24..32].iter().all(|&b| b == 0));
        assert_eq!(&raw[32..544], &pattern(512, 7)[..]);
        assert_eq!(raw[544], 0x05);
    }

    #[test]
    fn in_capsule_write_then_read() {
        let target = RamTarget::new();
        let mut h = Host::ready(target.clone(), TcpTargetConfig::default(), 0);
        let data = pattern(4096, 1);
        h.send(&in_capsule_write(7, 8, data.clone()));
        let got = h.recv();
        assert_eq!(got.len(), 1);
        let cqe = cqe_of(&got[0]);
        assert_eq!(cqe.cid(), 7);
        assert_eq!(cqe.status(), Status::SUCCESS);
        assert_eq!(cqe.sqid.get(), 1);
        assert_eq!(cqe.sqhd.get(), 2, "Connect + write");
        assert_eq!(
            &target.store.lock().unwrap()[8 * 512..8 * 512 + 4096],
            &data[..]
        );
        let (back, flags, cqe) = read_back(&mut h, 8, 8, 4096);
        assert_eq!(back, data);
        assert_eq!(flags, FLAG_LAST_PDU, "no SUCCESS with SQ flow control on");
        let cqe = cqe.expect("CapsuleResp after the data");
        assert_eq!((cqe.cid(), cqe.sqhd.get()), (8, 3));
    }

    #[test]
    fn in_capsule_sgl_errors() {
        let config = TcpTargetConfig {
            io_in_capsule: 4096,
            ..Default::default()
        };
        let mut h = Host::ready(RamTarget::new(), config, 0);
        // Above the I/O queue's in-capsule limit.
        h.send(&in_capsule_write(1, 0, pattern(8192, 0)));
        assert_eq!(
            cqe_of(&h.recv()[0]).status(),
            Status::DATA_SGL_LENGTH_INVALID.with_dnr()
        );
        // SGL length disagrees with the data present.
        let sqe = io_sqe(
            0x01,
            2,
            0,
            1,
            Sgl::InCapsule {
                offset: 0,
                length: 1024,
            },
        );
        h.send(&Pdu::with_data(
            PduHeader::CapsuleCmd(sqe),
            0,
            Bytes::from(pattern(512, 0)),
        ));
        assert_eq!(
            cqe_of(&h.recv()[0]).status(),
            Status::DATA_SGL_LENGTH_INVALID.with_dnr()
        );
        // Non-zero offset.
        let sqe = io_sqe(
            0x01,
            3,
            0,
            1,
            Sgl::InCapsule {
                offset: 16,
                length: 512,
            },
        );
        h.send(&Pdu::with_data(
            PduHeader::CapsuleCmd(sqe),
            0,
            Bytes::from(pattern(512, 0)),
        ));
        assert_eq!(
            cqe_of(&h.recv()[0]).status(),
            Status::SGL_OFFSET_INVALID.with_dnr()
        );
        // Keyed (RDMA) descriptor.
        let keyed = Sgl::Keyed {
            address: 0x1000,
            length: 512,
            key: 9,
        };
        h.send(&Pdu::new(PduHeader::CapsuleCmd(io_sqe(
            0x02, 4, 0, 1, keyed,
        ))));
        assert_eq!(
            cqe_of(&h.recv()[0]).status(),
            Status::SGL_DESCRIPTOR_TYPE_INVALID.with_dnr()
        );
        // Transport SGL above max_transfer: refused at once, no R2T.
        h.send(&Pdu::new(PduHeader::CapsuleCmd(io_sqe(
            0x01,
            5,
            0,
            1,
            transport(2 << 20),
        ))));
        let got = h.recv();
        assert_eq!(got.len(), 1);
        assert_eq!(
            cqe_of(&got[0]).status(),
            Status::DATA_SGL_LENGTH_INVALID.with_dnr()
        );
        // A read larger than max_transfer too.
        h.send(&read_cmd(6, 0, 2 << 20));
        assert_eq!(
            cqe_of(&h.recv()[0]).status(),
            Status::DATA_SGL_LENGTH_INVALID.with_dnr()
        );
    }

    /// Answer every R2T in `pdus` with H2CData PDUs of at most `piece` bytes from `data`.
    fn answer_r2ts(h: &mut Host, r2ts: &[R2t], data: &[u8], piece: usize) {
        for r in r2ts {
            let end = (r.r2to + r.r2tl) as usize;
            let mut off = r.r2to as usize;
            while off < end {
                let n = piece.min(end - off);
                let flags = if off + n == end { FLAG_LAST_PDU } else { 0 };
                h.send(&Pdu::with_data(
                    PduHeader::H2CData(H2CData {
                        cccid: r.cccid,
                        ttag: r.ttag,
                        datao: off as u32,
                        datal: n as u32,
                    }),
                    flags,
                    Bytes::copy_from_slice(&data[off..off + n]),
                ));
                off += n;
            }
        }
    }

    fn split(got: Vec<ReceivedPdu>) -> (Vec<R2t>, Vec<Cqe>) {
        let mut r2ts = Vec::new();
        let mut cqes = Vec::new();
        for p in got {
            match p.header {
                PduHeader::R2t(r) => r2ts.push(r),
                PduHeader::CapsuleResp(c) => cqes.push(c),
                other => panic!("unexpected {other:?}"),
            }
        }
        (r2ts, cqes)
    }

    #[test]
    fn r2t_write_of_one_mib() {
        let target = RamTarget::new();
        let mut h = Host::new(target.clone(), TcpTargetConfig::default());
        // MAXR2T 0's based: 3 means four outstanding R2Ts per command.
        h.handshake(0, DGST_DDGST_ENABLE | DGST_HDGST_ENABLE, 3);
        h.connect(2, 64, 0);
        let len = 1 << 20;
        let data = pattern(len, 9);
        h.send(&Pdu::new(PduHeader::CapsuleCmd(io_sqe(
            0x01,
            0x77,
            16,
            (len / BLOCK) as u32,
            transport(len),
        ))));
        let (mut r2ts, cqes) = split(h.recv());
        assert!(cqes.is_empty());
        assert_eq!(r2ts.len(), 4);
        let mut seen: Vec<u32> = r2ts.iter().map(|r| r.r2to).collect();
        while !r2ts.is_empty() {
            for r in &r2ts {
                assert_eq!(r.cccid, 0x77);
                assert_eq!(r.r2tl, 128 * 1024);
            }
            // Answer the oldest R2T only (two 64 KiB PDUs); the controller then sends one more.
            answer_r2ts(&mut h, &r2ts[..1], &data, 64 * 1024);
            let (more, cqes) = split(h.recv());
            r2ts.remove(0);
            if r2ts.is_empty() && more.is_empty() {
                assert_eq!(cqes.len(), 1);
                assert_eq!(cqes[0].cid(), 0x77);
                assert_eq!(cqes[0].status(), Status::SUCCESS);
                break;
            }
            assert!(cqes.is_empty());
            assert!(more.len() <= 1);
            seen.extend(more.iter().map(|r| r.r2to));
            r2ts.extend(more);
            assert!(r2ts.len() <= 4);
        }
        let want: Vec<u32> = (0..8).map(|i| i * 128 * 1024).collect();
        assert_eq!(seen, want);
        assert_eq!(
            &target.store.lock().unwrap()[16 * 512..16 * 512 + len],
            &data[..]
        );
    }

    #[test]
    fn c2h_data_without_success_sends_capsule_resp() {
        let config = TcpTargetConfig {
            max_c2h_pdu: 4096,
            ..Default::default()
        };
        let target = RamTarget::new();
        target.store.lock().unwrap()[..10240].copy_from_slice(&pattern(10240, 3));
        let mut h = Host::ready(target, config, 0);
        h.send(&read_cmd(3, 0, 10240));
        let got = h.recv();
        assert_eq!(got.len(), 4);
        let expect = [
            (0u32, 4096u32, 0u8),
            (4096, 4096, 0),
            (8192, 2048, FLAG_LAST_PDU),
        ];
        for (p, (o, l, f)) in got.iter().zip(expect) {
            let PduHeader::C2HData(d) = p.header else {
                panic!("{:?}", p.header)
            };
            assert_eq!((d.datao, d.datal, p.flags), (o, l, f));
        }
        assert_eq!(cqe_of(&got[3]).status(), Status::SUCCESS);
    }

    #[test]
    fn c2h_data_with_success_when_flow_control_disabled() {
        let target = RamTarget::new();
        target.store.lock().unwrap()[..1024].copy_from_slice(&pattern(1024, 4));
        // CATTR bit 2: SQ flow control disabled.
        let mut h = Host::ready(target, TcpTargetConfig::default(), 0x04);
        let (data, flags, cqe) = read_back(&mut h, 9, 0, 1024);
        assert_eq!(data, pattern(1024, 4));
        assert_eq!(flags, FLAG_LAST_PDU | FLAG_SUCCESS);
        assert!(cqe.is_none(), "SUCCESS replaces the CapsuleResp");
        // A failed read still gets a CapsuleResp (no data, status carried).
        h.send(&Pdu::new(PduHeader::CapsuleCmd(io_sqe(
            0x7e,
            10,
            0,
            1,
            transport(512),
        ))));
        let got = h.recv();
        assert_eq!(got.len(), 1);
        let cqe = cqe_of(&got[0]);
        assert_eq!(cqe.status(), Status::INVALID_OPCODE.with_dnr());
        assert_eq!(
            cqe.sqhd.get(),
            0,
            "SQHD is not reported without flow control"
        );
    }

    #[test]
    fn c2h_never_exceeds_the_host_buffer() {
        let mut h = Host::ready(RamTarget::new(), TcpTargetConfig::default(), 0);
        // The read claims 2 blocks but the host buffer (SGL) is only 600 bytes.
        h.send(&Pdu::new(PduHeader::CapsuleCmd(io_sqe(
            0x02,
            11,
            0,
            2,
            transport(600),
        ))));
        let got = h.recv();
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].data.len(), 600);
        assert_eq!(cqe_of(&got[1]).cid(), 11);
    }

    #[test]
    fn pending_completions_may_arrive_out_of_order() {
        let mut h = Host::ready(RamTarget::new(), TcpTargetConfig::default(), 0);
        for cid in [20u16, 21] {
            let mut sqe = io_sqe(0x00, cid, 0, 1, transport(0));
            sqe.cdw10.set(u32::from(cid) * 10);
            h.send(&Pdu::new(PduHeader::CapsuleCmd(sqe)));
        }
        assert!(h.recv().is_empty());
        let mut pending = Vec::new();
        while let Some(Event::Pending { cid, tag, response }) = h.conn.poll_event() {
            pending.push((cid, tag, response));
        }
        assert_eq!(pending.len(), 2);
        let (cid, tag, fut) = pending.pop().unwrap();
        h.conn.complete(cid, tag, futures::executor::block_on(fut));
        let (cid, tag, fut) = pending.pop().unwrap();
        h.conn.complete(cid, tag, futures::executor::block_on(fut));
        let got: Vec<Cqe> = h.recv().iter().map(cqe_of).collect();
        assert_eq!(
            got.iter().map(|c| c.cid()).collect::<Vec<_>>(),
            vec![21, 20]
        );
        assert_eq!(got[0].dw0.get(), 210);
        assert_eq!(got[1].dw0.get(), 200);
        // A completion for an unknown CID is ignored.
        h.conn.complete(99, 0, Response::success());
        assert!(h.recv().is_empty());
    }

    #[test]
    fn connect_failure_keeps_the_connection() {
        let target = RamTarget::new();
        target.refuse_connects.store(1, Ordering::SeqCst);
        let mut h = Host::new(target.clone(), TcpTargetConfig::default());
        h.handshake(0, 0, 0);
        // A command before Connect is out of sequence.
        h.send(&read_cmd(1, 0, 512));
        assert_eq!(
            cqe_of(&h.recv()[0]).status(),
            Status::COMMAND_SEQUENCE_ERROR.with_dnr()
        );
        let cqe = h.connect(3, 8, 0);
        assert_eq!(cqe.status(), Status::INVALID_FIELD.with_dnr());
        assert_eq!(cqe.sqid.get(), 3);
        assert!(!h.conn.is_closing());
        assert!(h.conn.teardown_token().is_none());
        let cqe = h.connect(3, 8, 0);
        assert_eq!(cqe.status(), Status::SUCCESS);
        assert_eq!(
            cqe.sqhd.get(),
            1,
            "SQ head counts from the successful Connect"
        );
        assert_eq!(h.conn.qid(), Some(3));
        // A second Connect on the same queue is out of sequence.
        let cqe = h.connect(3, 8, 0);
        assert_eq!(cqe.status(), Status::COMMAND_SEQUENCE_ERROR.with_dnr());
    }

    #[test]
    fn term_req_for_pdu_before_icreq() {
        let mut h = Host::new(RamTarget::new(), TcpTargetConfig::default());
        let cmd = connect_pdu(0, 8, 0)
            .encode(EncodeOptions::default())
            .to_vec();
        h.send_raw(&cmd);
        let (t, quoted) = term_of(&mut h);
        assert_eq!(t.fes, Fes::PduSequenceError);
        assert_eq!(&quoted[..], &cmd[..72], "the offending header is quoted");
        // Input after the fatal error is ignored.
        h.send_raw(&cmd);
        assert!(!h.conn.has_transmit());
    }

    #[test]
    fn term_req_for_second_icreq_and_bad_pfv_and_hpda() {
        let mut h = Host::new(RamTarget::new(), TcpTargetConfig::default());
        h.handshake(0, 0, 0);
        h.send(&Pdu::new(PduHeader::IcReq(IcReq {
            pfv: 0,
            hpda: 0,
            dgst: 0,
            maxr2t: 0,
        })));
        assert_eq!(term_of(&mut h).0.fes, Fes::PduSequenceError);

        let mut h = Host::new(RamTarget::new(), TcpTargetConfig::default());
        h.send(&Pdu::new(PduHeader::IcReq(IcReq {
            pfv: 1,
            hpda: 0,
            dgst: 0,
            maxr2t: 0,
        })));
        let (t, _) = term_of(&mut h);
        assert_eq!((t.fes, t.fei), (Fes::UnsupportedParameter, 8));

        let mut h = Host::new(RamTarget::new(), TcpTargetConfig::default());
        h.send(&Pdu::new(PduHeader::IcReq(IcReq {
            pfv: 0,
            hpda: 32,
            dgst: 0,
            maxr2t: 0,
        })));
        let (t, _) = term_of(&mut h);
        assert_eq!((t.fes, t.fei), (Fes::InvalidHeaderField, 10));
    }

    #[test]
    fn term_req_for_unknown_type_and_bad_hlen() {
        let mut h = Host::new(RamTarget::new(), TcpTargetConfig::default());
        h.handshake(0, 0, 0);
        h.send_raw(&[0x0a, 0, 24, 0, 24, 0, 0, 0]);
        let (t, quoted) = term_of(&mut h);
        assert_eq!((t.fes, t.fei), (Fes::InvalidHeaderField, 0));
        assert_eq!(&quoted[..], &[0x0a, 0, 24, 0, 24, 0, 0, 0]);

        let mut h = Host::new(RamTarget::new(), TcpTargetConfig::default());
        h.handshake(0, 0, 0);
        let mut bad = connect_pdu(0, 8, 0).encode(h.opts).to_vec();
        bad[2] = 64;
        h.send_raw(&bad);
        let (t, _) = term_of(&mut h);
        assert_eq!((t.fes, t.fei), (Fes::InvalidHeaderField, 2));
    }

    #[test]
    fn term_req_for_header_digest_error() {
        let mut h = Host::new(RamTarget::new(), TcpTargetConfig::default());
        h.handshake(0, DGST_HDGST_ENABLE, 0);
        let mut bytes = connect_pdu(0, 8, 0).encode(h.opts).to_vec();
        bytes[20] ^= 1; // corrupt the SQE: the header digest no longer matches
        let received = u32::from_le_bytes([bytes[72], bytes[73], bytes[74], bytes[75]]);
        h.send_raw(&bytes);
        let (t, _) = term_of(&mut h);
        assert_eq!((t.fes, t.fei), (Fes::HeaderDigestError, received));
    }

    fn start_r2t_write(h: &mut Host, cid: u16, len: usize) -> Vec<R2t> {
        h.send(&Pdu::new(PduHeader::CapsuleCmd(io_sqe(
            0x01,
            cid,
            0,
            (len / BLOCK) as u32,
            transport(len),
        ))));
        split(h.recv()).0
    }

    #[test]
    fn term_req_for_h2c_data_out_of_range() {
        let mut h = Host::ready(RamTarget::new(), TcpTargetConfig::default(), 0);
        let r2ts = start_r2t_write(&mut h, 4, 4096);
        assert_eq!(r2ts.len(), 1);
        let r = r2ts[0];
        h.send(&Pdu::with_data(
            PduHeader::H2CData(H2CData {
                cccid: 4,
                ttag: r.ttag,
                datao: 2048,
                datal: 4096,
            }),
            FLAG_LAST_PDU,
            Bytes::from(pattern(4096, 0)),
        ));
        let (t, quoted) = term_of(&mut h);
        assert_eq!(t.fes, Fes::DataOutOfRange);
        assert_eq!(quoted.len(), 24);
        assert_eq!(quoted[0], 0x06);
    }

    #[test]
    fn term_req_for_unknown_ttag_and_out_of_order_data() {
        let mut h = Host::ready(RamTarget::new(), TcpTargetConfig::default(), 0);
        let r = start_r2t_write(&mut h, 4, 4096)[0];
        h.send(&Pdu::with_data(
            PduHeader::H2CData(H2CData {
                cccid: 4,
                ttag: r.ttag.wrapping_add(1),
                datao: 0,
                datal: 512,
            }),
            0,
            Bytes::from(pattern(512, 0)),
        ));
        assert_eq!(
            term_of(&mut h).0,
            TermReq {
                fes: Fes::InvalidHeaderField,
                fei: 10
            }
        );

        let mut h = Host::ready(RamTarget::new(), TcpTargetConfig::default(), 0);
        let r = start_r2t_write(&mut h, 4, 4096)[0];
        h.send(&Pdu::with_data(
            PduHeader::H2CData(H2CData {
                cccid: 4,
                ttag: r.ttag,
                datao: 512,
                datal: 512,
            }),
            0,
            Bytes::from(pattern(512, 0)),
        ));
        assert_eq!(term_of(&mut h).0.fes, Fes::PduSequenceError);
    }

    #[test]
    fn h2c_data_above_maxh2cdata_is_limit_exceeded() {
        let config = TcpTargetConfig {
            max_h2c_data: 4096,
            ..Default::default()
        };
        let mut h = Host::ready(RamTarget::new(), config, 0);
        let r = start_r2t_write(&mut h, 4, 8192)[0];
        assert_eq!(r.r2tl, 4096);
        h.send(&Pdu::with_data(
            PduHeader::H2CData(H2CData {
                cccid: 4,
                ttag: r.ttag,
                datao: 0,
                datal: 6144,
            }),
            0,
            Bytes::from(pattern(6144, 0)),
        ));
        assert_eq!(term_of(&mut h).0.fes, Fes::DataLimitExceeded);
    }

    #[test]
    fn data_digest_error_in_capsule_fails_the_command_only() {
        let target = RamTarget::new();
        let mut h = Host::new(target.clone(), TcpTargetConfig::default());
        h.handshake(0, DGST_DDGST_ENABLE, 0);
        h.connect(1, 32, 0);
        let mut bytes = in_capsule_write(5, 0, pattern(512, 5))
            .encode(h.opts)
            .to_vec();
        assert_eq!(bytes[1], FLAG_DDGSTF);
        bytes[100] ^= 0x80; // corrupt the data
        h.send_raw(&bytes);
        let got = h.recv();
        assert_eq!(got.len(), 1);
        // NVMe/TCP 1.0 §3.5.2: non-fatal, the command fails with Transient Transport Error.
        assert_eq!(cqe_of(&got[0]).status(), Status::TRANSIENT_TRANSPORT_ERROR);
        assert!(!h.conn.is_closing());
        assert!(target.store.lock().unwrap()[..512].iter().all(|&b| b == 0));
        // The connection carries on.
        h.send(&in_capsule_write(6, 0, pattern(512, 6)));
        assert_eq!(cqe_of(&h.recv()[0]).status(), Status::SUCCESS);
        assert_eq!(&target.store.lock().unwrap()[..512], &pattern(512, 6)[..]);
    }

    #[test]
    fn data_digest_error_in_h2c_data_fails_after_all_data() {
        let target = RamTarget::new();
        let mut h = Host::new(target.clone(), TcpTargetConfig::default());
        h.handshake(0, DGST_DDGST_ENABLE, 1);
        h.connect(1, 32, 0);
        let r = start_r2t_write(&mut h, 8, 4096)[0];
        let data = pattern(4096, 8);
        for (i, off) in [0usize, 2048].into_iter().enumerate() {
            let mut bytes = Pdu::with_data(
                PduHeader::H2CData(H2CData {
                    cccid: 8,
                    ttag: r.ttag,
                    datao: off as u32,
                    datal: 2048,
                }),
                if i == 1 { FLAG_LAST_PDU } else { 0 },
                Bytes::copy_from_slice(&data[off..off + 2048]),
            )
            .encode(h.opts)
            .to_vec();
            if i == 0 {
                let n = bytes.len();
                bytes[n - 1] ^= 1; // bad DDGST on the first PDU
            }
            h.send_raw(&bytes);
            let got = h.recv();
            if i == 0 {
                assert!(got.is_empty(), "keeps receiving the command's data");
            } else {
                assert_eq!(got.len(), 1);
                assert_eq!(cqe_of(&got[0]).status(), Status::TRANSIENT_TRANSPORT_ERROR);
            }
        }
        assert!(!h.conn.is_closing());
        assert!(target.store.lock().unwrap()[..4096].iter().all(|&b| b == 0));
    }

    #[test]
    fn h2c_term_req_closes_without_reply() {
        let mut h = Host::ready(RamTarget::new(), TcpTargetConfig::default(), 0);
        h.send(&Pdu::with_data(
            PduHeader::H2CTermReq(TermReq {
                fes: Fes::PduSequenceError,
                fei: 0,
            }),
            0,
            Bytes::from_static(&[0; 24]),
        ));
        assert!(h.recv().is_empty());
        assert!(matches!(h.conn.poll_event(), Some(Event::Close)));
    }

    #[test]
    fn ic_timeout_closes() {
        let mut h = Host::new(RamTarget::new(), TcpTargetConfig::default());
        let deadline = h.conn.next_timeout().unwrap();
        h.conn.handle_timeout(deadline - Duration::from_millis(1));
        assert!(h.conn.poll_event().is_none());
        h.conn.handle_timeout(deadline);
        assert!(matches!(h.conn.poll_event(), Some(Event::Close)));
        assert!(!h.conn.has_transmit());
    }

    #[test]
    fn disconnected_is_called_once() {
        let target = RamTarget::new();
        let mut h = Host::ready(target.clone(), TcpTargetConfig::default(), 0);
        assert!(h.conn.teardown_token().is_some());
        h.conn.close();
        h.conn.close();
        drop(h);
        assert_eq!(target.disconnects.load(Ordering::SeqCst), 1);
        // Dropping an open connection also reports it.
        let h = Host::ready(target.clone(), TcpTargetConfig::default(), 0);
        drop(h);
        assert_eq!(target.disconnects.load(Ordering::SeqCst), 2);
    }

    #[test]
    fn cid_conflict_with_outstanding_command() {
        let mut h = Host::ready(RamTarget::new(), TcpTargetConfig::default(), 0);
        let r2ts = start_r2t_write(&mut h, 4, 4096);
        assert_eq!(r2ts.len(), 1);
        h.send(&read_cmd(4, 0, 512));
        assert_eq!(
            cqe_of(&h.recv()[0]).status(),
            Status::CID_CONFLICT.with_dnr()
        );
    }
}
