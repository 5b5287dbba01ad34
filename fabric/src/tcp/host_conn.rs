//! The host side of one NVMe/TCP connection, sans-IO: bytes from the controller go in through
//! [`HostConn::receive`], commands through [`HostConn::submit`]; bytes for the controller come
//! out of [`HostConn::poll_transmit`] and completions out of [`HostConn::poll_event`].
//!
//! It runs connection initialization (ICReq/ICResp, NVMe/TCP 1.0 §3.3), sends command capsules
//! with in-capsule data or a Transport SGL data block, answers R2Ts with H2CData PDUs,
//! reassembles C2HData, checks header and data digests, and turns any malformed controller PDU
//! into an H2CTermReq and a fatal [`ConnError`]. Nothing here panics on wire data.

use std::collections::VecDeque;

use bytes::{BufMut, Bytes, BytesMut};
use nvme_spec::command::FLAGS_PSDT_SGL;
use nvme_spec::sgl::SUBTYPE_TRANSPORT_A;
use nvme_spec::{Cqe, Sgl, Sqe, Status};
use zerocopy::IntoBytes;

use super::digest::{self, DIGEST_LEN};
use super::framer::{Framer, Role};
use super::pdu::{
    self, CommonHeader, Digests, EncodeOptions, FatalError, Fes, IcReq, IcResp, Pdu, PduHeader,
    PduType, TermReq, CAPSULE_CMD_HLEN, FLAG_DDGSTF, FLAG_HDGSTF, FLAG_LAST_PDU, FLAG_SUCCESS,
    MAX_PDA, MIN_MAXH2CDATA, PFV_1_0, TERM_MAX_DATA,
};

/// In-capsule data limit of the admin queue: its command capsule is 8 KiB (NVMe/TCP 1.0
/// §3.2, Linux NVME_TCP_ADMIN_CCSZ), and NVMe-oF 1.1 §2.2 keeps the 64-byte SQE out of it only
/// for I/O queues, so hosts use the whole 8192 bytes for data.
pub const ADMIN_IN_CAPSULE_DATA: u32 = 8192;

/// Byte offsets of ICResp fields the host checks, for FEI (NVMe/TCP 1.0 Figure 25); PFV and
/// DGST are [`pdu::OFFSET_IC_PFV`] and [`pdu::OFFSET_IC_DGST`], R2T and C2HData fields the
/// `pdu::OFFSET_DATA_*` ones.
const OFFSET_ICRESP_CPDA: u32 = 10;
const OFFSET_ICRESP_MAXH2CDATA: u32 = 12;
/// CID inside a CapsuleResp: 8-byte common header + CQE byte 12.
const OFFSET_RESP_CID: u32 = 20;
/// Capsule headers are encoded into a shared buffer of this size, refilled when used up.
const HEAD_ARENA: usize = 16 * 1024;

/// What the host asks for in ICReq and how it uses the queue.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HostConnConfig {
    /// Queue ID this connection will carry (0 = admin); goes into synthesized CQEs.
    pub qid: u16,
    /// Header / data digests to request (NVMe/TCP 1.0 §3.6.2.2 DGST).
    pub digests: Digests,
    /// Maximum outstanding R2Ts per command, 0's based (ICReq MAXR2T).
    pub maxr2t: u32,
    /// Largest write sent as in-capsule data; bigger writes use R2T.
    pub in_capsule_data: u32,
    /// The host disables SQ flow control in its Connect (CATTR bit 2): only then should the
    /// controller end a read with a C2HData SUCCESS flag (NVMe/TCP 1.0 §3.6.2.8). A SUCCESS
    /// on the LAST_PDU is accepted either way (an implicit successful completion, as the
    /// Linux host does): this host never reads SQHD. Its drivers keep at most queue size - 1
    /// commands outstanding, and a completed command was consumed along with every entry
    /// before it (the SQ head only moves forward over consumed entries, NVMe Base 2.0 §4.6
    /// SQHD), so the outstanding count bounds the occupied SQ entries: a completion without
    /// SQHD frees its slot at once and never leaves a submitter waiting for a head update.
    pub sq_flow_control_disabled: bool,
}

impl Default for HostConnConfig {
    fn default() -> Self {
        HostConnConfig {
            qid: 0,
            digests: Digests::NONE,
            maxr2t: 0,
            in_capsule_data: ADMIN_IN_CAPSULE_DATA,
            sq_flow_control_disabled: false,
        }
    }
}

/// Parameters fixed by the ICResp.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Negotiated {
    pub digests: Digests,
    /// Controller PDU data alignment (0's based dwords) for PDUs with data the host sends.
    pub cpda: u8,
    /// Largest H2CData data part the controller accepts.
    pub maxh2cdata: u32,
}

/// Why a connection is dead.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ConnError {
    /// The controller sent a C2HTermReq (NVMe/TCP 1.0 §3.6.2.4).
    #[error("controller terminated the connection: FES {fes:#x}, FEI {fei:#x}")]
    TermReq { fes: u16, fei: u32 },
    /// The controller sent something invalid; the host answered with an H2CTermReq.
    #[error(
        "protocol error from controller ({reason}): sent H2CTermReq FES {fes:#x} FEI {fei:#x}"
    )]
    Protocol { fes: u16, fei: u32, reason: String },
    /// The byte stream ended.
    #[error("connection closed")]
    Closed,
}

/// Why one command failed without a usable completion.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CommandError {
    /// C2HData for the command failed its data digest check.
    #[error("data digest mismatch in C2HData for command {cid}")]
    DataDigest { cid: u16 },
    /// The connection died with the command outstanding.
    #[error(transparent)]
    Connection(#[from] ConnError),
}

/// A command's completion with the controller-to-host data it received.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Completed {
    pub cqe: Cqe,
    pub data: Bytes,
}

/// Something the driver acts on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HostEvent {
    /// ICResp accepted: commands may be submitted.
    Established(Negotiated),
    /// A command finished (its CID is free again).
    Completed {
        cid: u16,
        result: Result<Completed, CommandError>,
    },
    /// The connection is dead; every outstanding command got a `Completed` with the error
    /// first. Flush the transmit queue (it may hold an H2CTermReq) and close.
    Failed(ConnError),
}

/// Why a submission was refused (nothing was sent).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SubmitError {
    #[error("connection not established yet")]
    NotEstablished,
    #[error(transparent)]
    Failed(ConnError),
    #[error("all 65536 command identifiers are in use")]
    NoFreeCid,
    #[error("a command cannot carry data in both directions")]
    Bidirectional,
    #[error("data length {0} does not fit the 32-bit SGL length")]
    TooLarge(usize),
}

#[derive(Debug)]
enum State {
    AwaitIcResp,
    Established(Negotiated),
    Failed(ConnError),
}

/// One outstanding command.
#[derive(Debug)]
struct Inflight {
    /// Write data still to be fetched by R2Ts (Transport SGL data block writes only).
    r2t_data: Option<Bytes>,
    /// Controller-to-host bytes the SGL allows.
    data_in_len: u32,
    /// C2H data received, in order: the first piece, then any others.
    data: Bytes,
    more: Vec<Bytes>,
    received: u32,
    last_seen: bool,
    digest_failed: bool,
}

impl Inflight {
    fn new(r2t_data: Option<Bytes>, data_in_len: u32) -> Inflight {
        Inflight {
            r2t_data,
            data_in_len,
            data: Bytes::new(),
            more: Vec::new(),
            received: 0,
            last_seen: false,
            digest_failed: false,
        }
    }
}

/// Sans-IO NVMe/TCP host connection.
#[derive(Debug)]
pub struct HostConn {
    config: HostConnConfig,
    state: State,
    /// The controller's PDUs, framed in host role (the same framer the target uses).
    framer: Framer,
    /// The header of the PDU being handled, for the H2CTermReq if it is refused.
    offending: Bytes,
    tx: VecDeque<Bytes>,
    events: VecDeque<HostEvent>,
    inflight: Slots,
    /// Capsule headers (and digests) are written here and split off, so sending a command
    /// allocates nothing until the buffer is used up.
    heads: BytesMut,
    corrupt_next_data_digest: bool,
}

impl HostConn {
    /// A new connection; the ICReq is already queued for transmission.
    pub fn new(config: HostConnConfig) -> HostConn {
        let icreq = Pdu::new(PduHeader::IcReq(IcReq {
            pfv: PFV_1_0,
            // HPDA 0: no padding before C2H data (NVMe/TCP 1.0 §3.6.2.2).
            hpda: 0,
            dgst: config.digests.bits(),
            maxr2t: config.maxr2t,
        }));
        let mut conn = HostConn {
            config,
            state: State::AwaitIcResp,
            // C2HData is bounded by each command's buffer (`check_c2h`), not by the framer.
            framer: Framer::new(Role::Host, u32::MAX),
            offending: Bytes::new(),
            tx: VecDeque::new(),
            events: VecDeque::new(),
            inflight: Slots::default(),
            heads: BytesMut::new(),
            corrupt_next_data_digest: false,
        };
        conn.queue_pdu(&icreq, EncodeOptions::default());
        conn
    }

    pub fn config(&self) -> &HostConnConfig {
        &self.config
    }

    /// The ICResp parameters, once established.
    pub fn negotiated(&self) -> Option<Negotiated> {
        match self.state {
            State::Established(n) => Some(n),
            _ => None,
        }
    }

    /// The fatal error, if the connection is dead.
    pub fn error(&self) -> Option<&ConnError> {
        match &self.state {
            State::Failed(e) => Some(e),
            _ => None,
        }
    }

    /// Number of commands submitted and not yet completed.
    pub fn outstanding(&self) -> usize {
        self.inflight.len()
    }

    /// Change the in-capsule data limit (I/O queues learn IOCCSZ from Identify Controller).
    pub fn set_in_capsule_data(&mut self, bytes: u32) {
        self.config.in_capsule_data = bytes;
    }

    /// Fault injection for tests: the next PDU the host sends with a data digest (a
    /// CapsuleCmd with in-capsule data or an H2CData) carries a wrong one. Has no effect
    /// unless data digests were negotiated.
    pub fn corrupt_next_data_digest(&mut self) {
        self.corrupt_next_data_digest = true;
    }

    /// Queue raw bytes for the controller, bypassing all checks (tests of malformed PDUs).
    pub fn send_raw(&mut self, bytes: Bytes) {
        if !bytes.is_empty() {
            self.tx.push_back(bytes);
        }
    }

    /// Next piece of bytes to send to the controller.
    pub fn poll_transmit(&mut self) -> Option<Bytes> {
        self.tx.pop_front()
    }

    /// Move every pending transmit piece into `out`.
    pub fn drain_transmit(&mut self, out: &mut VecDeque<Bytes>) {
        out.append(&mut self.tx);
    }

    pub fn has_transmit(&self) -> bool {
        !self.tx.is_empty()
    }

    pub fn poll_event(&mut self) -> Option<HostEvent> {
        self.events.pop_front()
    }

    /// The byte stream from the controller ended: fail everything outstanding.
    pub fn close(&mut self) {
        if !matches!(self.state, State::Failed(_)) {
            self.fail(ConnError::Closed);
        }
    }

    /// Submit a command. The CID is chosen here (and returned); PSDT and the data pointer
    /// are set for the data: `data_out` up to the in-capsule limit travels in the capsule
    /// (SGL Data Block, Offset subtype, NVMe-oF 1.1 §2.3.1), larger writes and all reads use
    /// a Transport SGL Data Block (type 5h, subtype Ah, NVMe/TCP 1.0 §3.4).
    pub fn submit(
        &mut self,
        mut sqe: Sqe,
        data_out: Option<Bytes>,
        data_in_len: u32,
    ) -> Result<u16, SubmitError> {
        let negotiated = self.ready()?;
        let data_out = data_out.filter(|d| !d.is_empty());
        if data_out.is_some() && data_in_len > 0 {
            return Err(SubmitError::Bidirectional);
        }
        let out_len = match &data_out {
            Some(d) => u32::try_from(d.len()).map_err(|_| SubmitError::TooLarge(d.len()))?,
            None => 0,
        };
        let cid = self.alloc_cid()?;
        sqe.cid.set(cid);
        // NVMe-oF 1.1 §2.3: PSDT 01b, the data pointer is an SGL.
        sqe.flags = (sqe.flags & 0x3f) | FLAGS_PSDT_SGL;
        let (in_capsule, r2t_data) = match data_out {
            Some(d) if out_len <= self.config.in_capsule_data => {
                sqe.dptr = Sgl::InCapsule {
                    offset: 0,
                    length: out_len,
                }
                .encode();
                (d, None)
            }
            Some(d) => {
                sqe.dptr = transport_sgl(out_len);
                (Bytes::new(), Some(d))
            }
            // NVMe/TCP 1.0 §3.4: reads and data-less commands use the Transport SGL data
            // block (a zero length one when there is no data).
            None => {
                sqe.dptr = transport_sgl(data_in_len);
                (Bytes::new(), None)
            }
        };
        self.send_capsule(sqe, in_capsule, negotiated);
        self.inflight
            .insert(cid, Inflight::new(r2t_data, data_in_len));
        Ok(cid)
    }

    /// Submit a command exactly as given except for its CID: PSDT and the data pointer are
    /// kept, `in_capsule` (if any) is appended as in-capsule data whatever its size, and up
    /// to `data_in_len` C2H bytes are accepted. For tests that send malformed commands.
    pub fn submit_raw(
        &mut self,
        mut sqe: Sqe,
        in_capsule: Option<Bytes>,
        data_in_len: u32,
    ) -> Result<u16, SubmitError> {
        let negotiated = self.ready()?;
        let cid = self.alloc_cid()?;
        sqe.cid.set(cid);
        self.send_capsule(sqe, in_capsule.unwrap_or_default(), negotiated);
        self.inflight.insert(cid, Inflight::new(None, data_in_len));
        Ok(cid)
    }

    /// Feed bytes received from the controller.
    pub fn receive(&mut self, bytes: &[u8]) {
        self.framer.feed(bytes);
        self.process();
    }

    /// Feed an owned buffer of received bytes: no copy when nothing is pending or when
    /// `chunk` directly follows the pending bytes in the same buffer (consecutive
    /// `split_to`s of one `BytesMut`).
    pub fn receive_buf(&mut self, chunk: BytesMut) {
        let rx = self.framer.buffer_mut();
        if rx.is_empty() {
            *rx = chunk;
        } else {
            rx.unsplit(chunk);
        }
        self.process();
    }

    fn ready(&self) -> Result<Negotiated, SubmitError> {
        match &self.state {
            State::AwaitIcResp => Err(SubmitError::NotEstablished),
            State::Established(n) => Ok(*n),
            State::Failed(e) => Err(SubmitError::Failed(e.clone())),
        }
    }

    fn alloc_cid(&mut self) -> Result<u16, SubmitError> {
        self.inflight.alloc().ok_or(SubmitError::NoFreeCid)
    }

    /// Queue a CapsuleCmd PDU laid out as [`Pdu::encode`] does, with the header (and any
    /// digest) written into the shared header buffer instead of a fresh allocation.
    fn send_capsule(&mut self, sqe: Sqe, data: Bytes, n: Negotiated) {
        if self.corrupt_next_data_digest {
            let pdu = Pdu::with_data(PduHeader::CapsuleCmd(sqe), 0, data);
            self.queue_pdu(&pdu, host_opts(n));
            return;
        }
        let hdgst = n.digests.header;
        let ddgst = n.digests.data && !data.is_empty();
        let header_end = CAPSULE_CMD_HLEN + if hdgst { DIGEST_LEN } else { 0 };
        let data_start = if data.is_empty() {
            header_end
        } else {
            header_end.next_multiple_of(pdu::pda_alignment(n.cpda))
        };
        let plen = data_start + data.len() + if ddgst { DIGEST_LEN } else { 0 };
        let ch = CommonHeader {
            pdu_type: PduType::CapsuleCmd.code(),
            flags: if hdgst { FLAG_HDGSTF } else { 0 } | if ddgst { FLAG_DDGSTF } else { 0 },
            hlen: CAPSULE_CMD_HLEN as u8,
            pdo: if data.is_empty() { 0 } else { data_start as u8 },
            plen: (plen as u32).into(),
        };
        if self.heads.capacity() < data_start + DIGEST_LEN {
            self.heads.reserve(HEAD_ARENA);
        }
        self.heads.put_slice(ch.as_bytes());
        self.heads.put_slice(sqe.as_bytes());
        if hdgst {
            let d = digest::digest_bytes(&self.heads);
            self.heads.put_slice(&d);
        }
        self.heads.resize(data_start, 0);
        self.tx.push_back(self.heads.split().freeze());
        if !data.is_empty() {
            if ddgst {
                self.heads.put_slice(&digest::digest_bytes(&data));
            }
            self.tx.push_back(data);
            if ddgst {
                self.tx.push_back(self.heads.split().freeze());
            }
        }
    }

    fn queue_pdu(&mut self, pdu: &Pdu, opts: EncodeOptions) {
        let mut encoded = pdu.encode(opts);
        if self.corrupt_next_data_digest {
            if let Some(d) = encoded.data_digest.as_mut() {
                for b in d.iter_mut() {
                    *b ^= 0xff;
                }
                self.corrupt_next_data_digest = false;
            }
        }
        for chunk in encoded.into_chunks() {
            self.tx.push_back(chunk);
        }
    }

    fn process(&mut self) {
        loop {
            if matches!(self.state, State::Failed(_)) {
                self.framer.buffer_mut().clear();
                return;
            }
            match self.step() {
                Ok(true) => continue,
                Ok(false) => return,
                Err((err, reason)) => {
                    self.protocol_error(err, reason);
                    return;
                }
            }
        }
    }

    /// Handle the next PDU if it is complete. `Ok(false)`: need more bytes. The framer checks
    /// what a PDU's own bytes can tell (type and direction, HLEN, PLEN, PDO, digest flags and
    /// digests, NVMe/TCP 1.0 §3.3, §3.6.2); here what the connection's state tells.
    fn step(&mut self) -> Result<bool, (FatalError, String)> {
        let established = match &self.state {
            State::Established(n) => Some(*n),
            _ => None,
        };
        let pdu = match self.framer.next_pdu() {
            Ok(Some(p)) => p,
            Ok(None) => {
                self.check_partial(established.is_some())?;
                return Ok(false);
            }
            Err(e) => {
                self.offending = e.header;
                return Err((e.error, format!("malformed {:?} PDU", e.pdu_type)));
            }
        };
        self.offending = pdu.header_bytes;
        let ty = pdu.header.pdu_type();
        // Which PDUs a controller may send when (§3.3): ICResp first and only then, a
        // C2HTermReq at any time, the rest once established.
        let in_order = match ty {
            PduType::ICResp => established.is_none(),
            PduType::C2HTermReq => true,
            _ => established.is_some(),
        };
        if !in_order {
            return Err((
                FatalError::new(Fes::PduSequenceError, 0),
                format!("unexpected {ty:?} PDU"),
            ));
        }
        match pdu.header {
            PduHeader::IcResp(resp) => {
                self.on_icresp(resp)?;
                if let Some(n) = self.negotiated() {
                    self.framer.set_digests(n.digests);
                    // HPDA 0 in our ICReq: C2H data is dword aligned.
                    self.framer.set_rx_pda(0);
                }
            }
            PduHeader::C2HTermReq(t) => self.on_termreq(t),
            PduHeader::CapsuleResp(cqe) => self.on_capsule_resp(cqe)?,
            PduHeader::R2t(r2t) => self.on_r2t(r2t)?,
            PduHeader::C2HData(d) => {
                self.check_c2h(&d, pdu.flags, pdu.data.len())?;
                self.on_c2h_data(pdu.flags, d, pdu.data, pdu.data_digest_ok);
            }
            PduHeader::IcReq(_)
            | PduHeader::H2CTermReq(_)
            | PduHeader::CapsuleCmd(_)
            | PduHeader::H2CData(_) => {
                // The framer refuses these in host role; treat defensively as a bad type.
                return Err((
                    FatalError::field(pdu::OFFSET_PDU_TYPE),
                    format!("unexpected {ty:?}"),
                ));
            }
        }
        Ok(true)
    }

    /// A C2HData PDU whose header is in while its data is still arriving: its checks now,
    /// before the data is buffered, and room for the whole PDU.
    fn check_partial(&mut self, established: bool) -> Result<(), (FatalError, String)> {
        if self.framer.front_type() != Some(PduType::C2HData) {
            return Ok(());
        }
        let Some(p) = self.framer.partial() else {
            return Ok(());
        };
        let PduHeader::C2HData(d) = p.header else {
            return Ok(());
        };
        let checked = if established {
            self.check_c2h(&d, p.flags, p.data_len)
        } else {
            Err((
                FatalError::new(Fes::PduSequenceError, 0),
                "C2HData before ICResp".into(),
            ))
        };
        if let Err(e) = checked {
            let front = self.framer.front();
            let n = front.len().min(pdu::DATA_HLEN);
            self.offending = Bytes::copy_from_slice(&front[..n]);
            return Err(e);
        }
        let whole = p.data_start + p.data_len + if p.ddgst { DIGEST_LEN } else { 0 };
        let rx = self.framer.buffer_mut();
        rx.reserve(whole.saturating_sub(rx.len()));
        Ok(())
    }

    fn on_icresp(&mut self, r: IcResp) -> Result<(), (FatalError, String)> {
        // NVMe/TCP 1.0 §3.6.2.3: PFV 0 is the only version.
        if r.pfv != PFV_1_0 {
            return Err((
                FatalError::new(Fes::UnsupportedParameter, pdu::OFFSET_IC_PFV),
                format!("ICResp PFV {}", r.pfv),
            ));
        }
        if r.cpda > MAX_PDA {
            return Err((
                FatalError::field(OFFSET_ICRESP_CPDA),
                format!("ICResp CPDA {}", r.cpda),
            ));
        }
        // The controller enables exactly the digests the host asked for (NVMe/TCP 1.0
        // §3.6.2.3; Linux refuses any difference too).
        if r.dgst & !(pdu::DGST_HDGST_ENABLE | pdu::DGST_DDGST_ENABLE) != 0
            || r.digests() != self.config.digests
        {
            return Err((
                FatalError::field(pdu::OFFSET_IC_DGST),
                format!("ICResp DGST {:#04x}", r.dgst),
            ));
        }
        // MAXH2CDATA is at least 4096 and a multiple of 4 (NVMe/TCP 1.0 §3.6.2.3).
        if r.maxh2cdata < MIN_MAXH2CDATA || r.maxh2cdata & 3 != 0 {
            return Err((
                FatalError::field(OFFSET_ICRESP_MAXH2CDATA),
                format!("ICResp MAXH2CDATA {}", r.maxh2cdata),
            ));
        }
        let n = Negotiated {
            digests: r.digests(),
            cpda: r.cpda,
            maxh2cdata: r.maxh2cdata,
        };
        self.state = State::Established(n);
        self.events.push_back(HostEvent::Established(n));
        Ok(())
    }

    fn on_termreq(&mut self, t: TermReq) {
        // NVMe/TCP 1.0 §3.6.2.4: the receiver of a TermReq closes without answering.
        self.fail(ConnError::TermReq {
            fes: t.fes.code(),
            fei: t.fei,
        });
    }

    fn on_capsule_resp(&mut self, cqe: Cqe) -> Result<(), (FatalError, String)> {
        let cid = cqe.cid();
        let Some(cmd) = self.inflight.remove(cid) else {
            return Err((
                FatalError::field(OFFSET_RESP_CID),
                format!("CapsuleResp for unknown CID {cid}"),
            ));
        };
        self.complete(cid, cmd, cqe);
        Ok(())
    }

    fn complete(&mut self, cid: u16, cmd: Inflight, cqe: Cqe) {
        let result = if cmd.digest_failed {
            Err(CommandError::DataDigest { cid })
        } else {
            Ok(Completed {
                cqe,
                data: concat(cmd.data, cmd.more),
            })
        };
        self.events.push_back(HostEvent::Completed { cid, result });
    }

    /// Fatal error found in controller data: send H2CTermReq carrying the offending header.
    fn protocol_error(&mut self, err: FatalError, reason: String) {
        tracing::debug!(fes = ?err.fes, fei = err.fei, %reason, "NVMe/TCP host: fatal PDU error");
        let mut offending = std::mem::take(&mut self.offending);
        offending.truncate(TERM_MAX_DATA);
        let term = Pdu::with_data(
            PduHeader::H2CTermReq(TermReq {
                fes: err.fes,
                fei: err.fei,
            }),
            0,
            offending,
        );
        // TermReqs never carry digests (NVMe/TCP 1.0 §3.6.2.4).
        self.queue_pdu(&term, EncodeOptions::default());
        self.fail(ConnError::Protocol {
            fes: err.fes.code(),
            fei: err.fei,
            reason,
        });
    }

    fn fail(&mut self, err: ConnError) {
        self.framer.buffer_mut().clear();
        for cid in self.inflight.cids() {
            self.inflight.remove(cid);
            self.events.push_back(HostEvent::Completed {
                cid,
                result: Err(CommandError::Connection(err.clone())),
            });
        }
        self.events.push_back(HostEvent::Failed(err.clone()));
        self.state = State::Failed(err);
    }
}

fn host_opts(n: Negotiated) -> EncodeOptions {
    // NVMe/TCP 1.0 §3.6.2.3: PDUs with data from the host honor the controller's CPDA.
    EncodeOptions {
        digests: n.digests,
        pda: n.cpda,
    }
}

fn transport_sgl(length: u32) -> [u8; 16] {
    Sgl::Transport {
        length,
        // NVMe/TCP 1.0 §3.4: Transport specific A for data moved by R2T/H2CData or C2HData.
        subtype: SUBTYPE_TRANSPORT_A,
    }
    .encode()
}

/// The received pieces as one buffer (no copy for a single piece).
fn concat(first: Bytes, more: Vec<Bytes>) -> Bytes {
    if more.is_empty() {
        return first;
    }
    let total = first.len() + more.iter().map(Bytes::len).sum::<usize>();
    let mut out = BytesMut::with_capacity(total);
    out.extend_from_slice(&first);
    for c in more {
        out.extend_from_slice(&c);
    }
    out.freeze()
}

mod data;
mod slots;
use slots::Slots;

#[cfg(test)]
mod tests;
