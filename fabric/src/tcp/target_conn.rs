//! The controller side of one NVMe/TCP connection, sans-IO: received bytes and the current
//! time go in ([`TargetConnection::receive`], [`TargetConnection::handle_timeout`]), bytes to
//! send and [`Event`]s come out. No sockets, no runtime, no clock.
//!
//! The connection runs initialization (ICReq/ICResp, NVMe/TCP 1.0 §3.1), hands command
//! capsules to the transport-neutral [`QueueCore`] (Connect first, CIDs, SQHD, submission),
//! gathers host-to-controller data (in-capsule, or solicited with R2T and received in
//! H2CData PDUs), sends controller-to-host data as C2HData PDUs, and answers any malformed
//! host PDU with a C2HTermReq before closing (§3.5.1).

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use nvme_spec::{Sqe, Status};
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
use crate::queue::{ConnectionInfo, DataBuf, Lent, Payload, Response, Target, TransportKind};
pub use crate::queue_core::Event;
use crate::queue_core::{
    DataPlan, DataRules, HostData, QueueCore, Reply, U16Map, MAX_PRESIZED_DEPTH,
};

mod c2h;
mod h2c;
mod steer;
use h2c::{H2cData, H2cTransfer, R2tRing};
use steer::Steer;

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

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    AwaitIcReq,
    Established,
    /// A fatal error or a TermReq: input is ignored, the driver closes after flushing.
    Closing,
    Closed,
}

/// A fatal error found while handling a PDU, with the header to quote in the TermReq.
struct Fatal {
    error: FatalError,
    header: Bytes,
}

/// One NVMe/TCP connection, controller side.
pub struct TargetConnection {
    core: QueueCore<H2cTransfer>,
    config: TcpTargetConfig,
    framer: Framer,
    state: State,
    ic_deadline: Instant,
    digests: Digests,
    hpda: u8,
    /// Outstanding R2Ts allowed per command (MAXR2T + 1, capped).
    max_r2t: u32,
    /// TTAG -> CID of the command the R2T belongs to.
    ttags: U16Map<u16>,
    next_ttag: u16,
    out: SendQueue,
    /// Scratch list for [`TargetConnection::poll_queued`], kept to reuse its room.
    replies: Vec<Reply>,
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
            core: QueueCore::new(target, info),
            ic_deadline: now + config.ic_timeout,
            config,
            framer,
            state: State::AwaitIcReq,
            digests: Digests::NONE,
            hpda: 0,
            max_r2t: 1,
            ttags: U16Map::default(),
            next_ttag: 0,
            out: SendQueue::default(),
            replies: Vec::new(),
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
        self.core.commands_received()
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
                        debug!(peer = %self.core.info().peer, error = ?e.error, "malformed H2CTermReq");
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
            debug!(peer = %self.core.info().peer, "no ICReq before the timeout");
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
        if let Some(reply) = self.core.complete(cid, tag, response) {
            self.send_reply(reply);
        }
    }

    /// Whether the queue has commands in its handler's table ([`Completion::Queued`]): the
    /// driver then calls [`TargetConnection::poll_queued`] on every turn of its loop.
    pub fn has_queued(&self) -> bool {
        self.state == State::Established && self.core.has_queued()
    }

    /// Collect the responses of queued commands that finished and queue them for sending;
    /// returns how many.
    pub fn poll_queued(&mut self) -> usize {
        if !self.has_queued() {
            return 0;
        }
        let mut replies = std::mem::take(&mut self.replies);
        let n = self.core.poll_queued(&mut |reply| replies.push(reply));
        for reply in replies.drain(..) {
            self.send_reply(reply);
        }
        self.replies = replies;
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
        self.core.pop_event()
    }

    /// Cancelled when the controller behind this queue is torn down; `None` before Connect.
    pub fn teardown_token(&self) -> Option<CancellationToken> {
        self.core.teardown_token()
    }

    /// The queue ID after a successful Connect.
    pub fn qid(&self) -> Option<u16> {
        self.core.qid()
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
        self.ttags.clear();
        self.core.close();
    }

    fn accepting_input(&self) -> bool {
        matches!(self.state, State::AwaitIcReq | State::Established)
    }

    fn begin_close(&mut self) {
        if self.accepting_input() {
            self.state = State::Closing;
            self.core.push_event(Event::Close);
        }
    }

    /// NVMe/TCP 1.0 §3.5.1: stop processing, send C2HTermReq quoting the header, close.
    fn fatal(&mut self, error: FatalError, header: Bytes) {
        if !self.accepting_input() {
            return;
        }
        debug!(peer = %self.core.info().peer, ?error, "fatal NVMe/TCP error, sending C2HTermReq");
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
                debug!(peer = %self.core.info().peer, fes = ?t.fes, fei = t.fei, "H2CTermReq received");
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

    /// Complete a command before submission with `status` alone.
    fn respond_status(&mut self, sqe: &Sqe, status: Status) {
        let reply = self.core.status_reply(sqe, status);
        self.send_reply(reply);
    }

    fn rules(&self) -> DataRules {
        DataRules {
            transport: TransportKind::Tcp,
            admin_in_capsule: self.config.admin_in_capsule,
            io_in_capsule: self.config.io_in_capsule,
            max_transfer: self.config.max_transfer,
        }
    }

    fn handle_command(&mut self, sqe: Sqe, data: Bytes, data_digest_ok: bool) {
        if let Err(status) = self.core.admit(&sqe) {
            self.respond_status(&sqe, status);
            return;
        }
        let qid = self.core.qid_for(&sqe);
        let in_capsule = u32::try_from(data.len()).unwrap_or(u32::MAX);
        match self.rules().plan(&sqe, qid, in_capsule, data_digest_ok) {
            Err(status) => {
                debug!(peer = %self.core.info().peer, cid = sqe.cid(), ?status, "command data refused");
                self.respond_status(&sqe, status);
            }
            Ok(DataPlan::None) => self.dispatch(sqe, HostData::None, 0),
            Ok(DataPlan::InCapsule) => self.dispatch(sqe, HostData::Bytes(data), 0),
            Ok(DataPlan::ToHost { len, .. }) => self.dispatch(sqe, HostData::None, len),
            Ok(DataPlan::FromHost { len, .. }) => {
                // An I/O queue's handler may lend device memory (a drive's DMA buffer) for
                // the data: it is received into it and the drive writes it from there.
                let data = match self.core.lend_h2c(&sqe, len) {
                    Some(l) => H2cData::Lent(l),
                    None => H2cData::Nothing,
                };
                let cid = sqe.cid();
                self.core.start_receiving(
                    sqe,
                    H2cTransfer {
                        total: len,
                        received: 0,
                        next_r2to: 0,
                        data,
                        r2ts: R2tRing::default(),
                        digest_failed: false,
                    },
                );
                self.issue_r2ts(cid);
            }
        }
    }

    /// Hand a command with all its host data to the queue core, and send its reply if it
    /// finished at once.
    fn dispatch(&mut self, sqe: Sqe, data: HostData, c2h_len: u32) {
        let was_connected = self.core.qid().is_some();
        let reply = self.core.dispatch(sqe, data, c2h_len, self.out.pool());
        if !was_connected {
            if let Some(sqsize) = self.core.sqsize() {
                // Size the per-command tables for a full queue up front, so they never grow
                // (allocate) on the data path.
                let depth = (sqsize as usize).clamp(1, MAX_PRESIZED_DEPTH);
                self.ttags.reserve(depth);
                self.out.reserve(4 * depth);
            }
        }
        if let Some(reply) = reply {
            self.send_reply(reply);
        }
    }
}

impl Drop for TargetConnection {
    fn drop(&mut self) {
        self.close();
    }
}

#[cfg(test)]
mod tests;
