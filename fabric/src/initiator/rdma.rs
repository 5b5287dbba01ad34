//! One NVMe/RDMA queue driven by busy polling, for load generators and tests: the host
//! side of NVMe/RDMA 1.0. Commands go out as 64-byte capsules by SEND (inline); their data
//! lives in host memory registered for remote access, one slot per command identifier,
//! described by a Keyed SGL Data Block that the controller RDMA READs (writes) or RDMA
//! WRITEs (reads); completions come back as 16-byte response capsules by RECV. Same calls
//! as the NVMe/TCP [`super::polled::PolledQueue`]: submit, flush (a no-op: posting sends),
//! receive (polls the completion queue), poll_event.

use std::collections::VecDeque;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use nvme_spec::command::{ConnectData, CATTR_DISABLE_SQ_FLOW_CONTROL, FLAGS_PSDT_SGL};
use nvme_spec::sqe::DataDirection;
use nvme_spec::{Cqe, Sgl, Sqe};
use zerocopy::{FromBytes, IntoBytes};

use super::command;
use super::polled::{ConnectIdentity, PolledQueueOptions};
use super::{HostCompletion, HostError};
use crate::rdma::cm::{self, RejectStatus};
use crate::sys::rdma::{
    CmEventKind, CmId, Completion, DeviceConfig, DeviceRes, EventChannel, SendWork,
};
use crate::tcp::host_conn::{CommandError, Completed, ConnError, HostEvent, SubmitError};

/// Largest transfer of one command (one registered slot per command identifier).
pub const MAX_TRANSFER: u32 = 1 << 20;
/// Sleep between polls while waiting for setup and teardown commands.
const SETUP_POLL: Duration = Duration::from_micros(50);
/// Keyed SGL sub type Address (NVMe Base 2.0 Figure 115): no invalidation asked.
const KEYED_ADDRESS: u8 = 0;

/// wr_id of receive completions is the buffer index; sends carry this bit.
const SEND_BIT: u64 = 1 << 63;

/// A polled NVMe/RDMA queue, host side.
pub struct RdmaPolledQueue {
    id: CmId,
    res: Arc<DeviceRes>,
    opts: PolledQueueOptions,
    /// Per CID (the slot index): the bytes of controller-to-host data expected, for
    /// commands outstanding.
    expect_in: Vec<Option<u32>>,
    free_cids: Vec<u16>,
    outstanding: usize,
    events: VecDeque<HostEvent>,
    failed: bool,
    /// The controller ID the Connect returned (DW0 15:0, NVMe-oF 1.1 Figure 21).
    cntlid: u16,
}

impl std::fmt::Debug for RdmaPolledQueue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RdmaPolledQueue")
            .field("qid", &self.opts.qid)
            .finish_non_exhaustive()
    }
}

impl RdmaPolledQueue {
    /// Resolve `addr`, create the queue pair, connect with the NVMe/RDMA private data
    /// (NVMe/RDMA 1.0 §3.2.1) and run the Fabrics Connect for `opts.qid`.
    pub fn connect(
        addr: SocketAddr,
        opts: PolledQueueOptions,
        who: ConnectIdentity<'_>,
    ) -> Result<RdmaPolledQueue, HostError> {
        let entries = opts.queue_size.max(2);
        let channel = EventChannel::new()?;
        let mut id = channel.resolve(addr, opts.timeout)?;
        let res = id.open_device(DeviceConfig {
            recv_buffers: u32::from(entries),
            recv_len: 64,
            data_slots: u32::from(entries),
            slot_len: MAX_TRANSFER,
            cq_entries: 4 * u32::from(entries),
            remote_access: true,
        })?;
        id.create_qp(&res, 2 * u32::from(entries))?;
        let cntlid = if opts.qid == 0 { 0xffff } else { who.cntlid };
        // The host never reads target memory; it serves the controller's RDMA READs.
        id.connect(&cm::request(opts.qid, entries, cntlid), 0, 16)?;
        let ev = channel.wait_event(opts.timeout)?;
        match ev.kind {
            CmEventKind::Established => {}
            CmEventKind::Rejected => {
                let why = cm::parse_reject(&ev.private).map_or_else(
                    || format!("status {}", ev.status),
                    |s: RejectStatus| format!("{s:?}"),
                );
                return Err(HostError::Protocol(format!("RDMA connect rejected: {why}")));
            }
            other => {
                return Err(HostError::Protocol(format!(
                    "RDMA connect: {other:?} (status {})",
                    ev.status
                )))
            }
        }
        let mut q = RdmaPolledQueue {
            id,
            res,
            expect_in: vec![None; usize::from(entries)],
            // Lowest CIDs first; the last entry stays unused (a full queue of N entries
            // holds N - 1 commands).
            free_cids: (0..entries - 1).rev().collect(),
            outstanding: 0,
            events: VecDeque::new(),
            failed: false,
            cntlid: 0,
            opts,
        };
        let cattr = if q.opts.disable_sqflow {
            CATTR_DISABLE_SQ_FLOW_CONTROL
        } else {
            0
        };
        let sqe = command::connect(q.opts.qid, entries - 1, cattr, 0);
        let data = ConnectData::new(who.hostid, who.cntlid, who.subnqn, who.hostnqn)
            .map_err(|e| HostError::Protocol(format!("Connect data: {e}")))?;
        let done = q.command(sqe, Some(Bytes::copy_from_slice(data.as_bytes())), 0)?;
        if !done.status().is_success() {
            return Err(HostError::Connect(done.status()));
        }
        q.cntlid = done.cqe.dw0.get() as u16;
        Ok(q)
    }

    pub fn qid(&self) -> u16 {
        self.opts.qid
    }

    /// The controller the queue belongs to.
    pub fn cntlid(&self) -> u16 {
        self.cntlid
    }

    /// Commands submitted and not completed.
    pub fn outstanding(&self) -> usize {
        self.outstanding
    }

    /// Post a command: its host data (if any) is copied into its registered slot, which
    /// also receives controller-to-host data (`data_in_len` bytes).
    pub fn submit(
        &mut self,
        mut sqe: Sqe,
        data_out: Option<Bytes>,
        data_in_len: u32,
    ) -> Result<u16, SubmitError> {
        if self.failed {
            return Err(SubmitError::Failed(ConnError::Closed));
        }
        if data_out.is_some() && data_in_len > 0 {
            return Err(SubmitError::Bidirectional);
        }
        let out_len = data_out.as_ref().map_or(0, Bytes::len);
        let len = out_len.max(data_in_len as usize);
        if len > MAX_TRANSFER as usize {
            return Err(SubmitError::Failed(ConnError::Protocol {
                fes: 0,
                fei: 0,
                reason: format!("{len} bytes exceed the {MAX_TRANSFER}-byte slot"),
            }));
        }
        let Some(cid) = self.free_cids.pop() else {
            return Err(SubmitError::NoFreeCid);
        };
        sqe.cid.set(cid);
        // NVMe-oF 1.1 §2.3: PSDT 01b, the data pointer is an SGL.
        sqe.flags = (sqe.flags & 0x3f) | FLAGS_PSDT_SGL;
        let slot = u32::from(cid);
        sqe.dptr = match self.res.remote_slot(slot) {
            Some((address, key)) if len > 0 => Sgl::Keyed {
                address,
                length: len as u32,
                key,
                subtype: KEYED_ADDRESS,
            },
            // NVMe/RDMA 1.0 §3.3: a command without data carries a zero-length keyed SGL.
            _ => Sgl::Keyed {
                address: 0,
                length: 0,
                key: 0,
                subtype: KEYED_ADDRESS,
            },
        }
        .encode();
        if let Some(d) = &data_out {
            if !self.res.copy_to_slots(&[slot], d) {
                self.free_cids.push(cid);
                return Err(SubmitError::Failed(ConnError::Closed));
            }
        }
        let send = SendWork::Send {
            wr_id: SEND_BIT | u64::from(cid),
            capsule: sqe.as_bytes(),
            invalidate: None,
        };
        if let Err(e) = self.id.post(&[send]) {
            self.free_cids.push(cid);
            self.fail(format!("posting a command: {e}"));
            return Err(SubmitError::Failed(ConnError::Closed));
        }
        let expect = match sqe.data_direction() {
            DataDirection::ControllerToHost => data_in_len,
            _ => 0,
        };
        self.expect_in[usize::from(cid)] = Some(expect);
        self.outstanding += 1;
        Ok(cid)
    }

    /// Commands are posted as they are submitted: nothing waits to be sent.
    pub fn flush(&mut self) -> io::Result<usize> {
        Ok(0)
    }

    /// Take what completed: returns the completions taken (0 when none).
    pub fn receive(&mut self) -> io::Result<usize> {
        let mut wcs = [Completion::default(); 32];
        let n = self.res.poll(&mut wcs);
        for wc in &wcs[..n] {
            self.on_completion(wc);
        }
        Ok(n)
    }

    pub fn poll_event(&mut self) -> Option<HostEvent> {
        self.events.pop_front()
    }

    fn on_completion(&mut self, wc: &Completion) {
        if !wc.is_recv {
            if !wc.ok {
                self.fail(format!("send work request failed (status {})", wc.status));
            }
            return;
        }
        let index = wc.wr_id as u32;
        let mut raw = [0u8; 16];
        let n = if wc.ok {
            self.res.copy_received(index, wc.byte_len, &mut raw)
        } else {
            0
        };
        if self.res.post_recv(index).is_err() {
            self.fail("reposting a receive buffer failed".into());
        }
        if !wc.ok {
            // Flushed receives after a disconnect.
            self.fail(format!("receive failed (status {})", wc.status));
            return;
        }
        let Ok(cqe) = Cqe::read_from_bytes(&raw[..n.min(16)]) else {
            self.fail(format!("a {n}-byte response capsule"));
            return;
        };
        let cid = cqe.cid();
        let Some(expect) = self
            .expect_in
            .get_mut(usize::from(cid))
            .and_then(Option::take)
        else {
            self.fail(format!(
                "a completion for CID {cid}, which is not outstanding"
            ));
            return;
        };
        let mut data = vec![0u8; expect as usize];
        if expect > 0 && !self.res.copy_from_slots(&[u32::from(cid)], &mut data) {
            data.clear();
        }
        self.free_cids.push(cid);
        self.outstanding -= 1;
        self.events.push_back(HostEvent::Completed {
            cid,
            result: Ok(Completed {
                cqe,
                data: Bytes::from(data),
            }),
        });
    }

    /// The queue is dead: every outstanding command fails, then a Failed event.
    fn fail(&mut self, reason: String) {
        if self.failed {
            return;
        }
        self.failed = true;
        tracing::debug!(qid = self.opts.qid, reason, "NVMe/RDMA host queue failed");
        for (cid, slot) in self.expect_in.iter_mut().enumerate() {
            if slot.take().is_some() {
                self.events.push_back(HostEvent::Completed {
                    cid: cid as u16,
                    result: Err(CommandError::Connection(ConnError::Closed)),
                });
            }
        }
        self.outstanding = 0;
        self.events.push_back(HostEvent::Failed(ConnError::Closed));
    }

    /// Submit one command and poll until it completes (setup and teardown, not the hot
    /// path: events of other commands that arrive meanwhile are dropped).
    pub fn command(
        &mut self,
        sqe: Sqe,
        data_out: Option<Bytes>,
        data_in_len: u32,
    ) -> Result<HostCompletion, HostError> {
        let deadline = Instant::now() + self.opts.timeout;
        let cid = self
            .submit(sqe, data_out, data_in_len)
            .map_err(|e| HostError::Protocol(e.to_string()))?;
        loop {
            while let Some(ev) = self.events.pop_front() {
                match ev {
                    HostEvent::Completed { cid: c, result } if c == cid => {
                        let done = result.map_err(|e| HostError::Protocol(e.to_string()))?;
                        return Ok(HostCompletion {
                            cqe: done.cqe,
                            data: done.data,
                        });
                    }
                    HostEvent::Failed(_) => return Err(HostError::Closed),
                    _ => {}
                }
            }
            if Instant::now() >= deadline {
                return Err(HostError::Timeout);
            }
            if self.receive()? == 0 {
                std::thread::sleep(SETUP_POLL);
            }
        }
    }

    /// Fabrics Disconnect (NVMe-oF 1.1 §3.6) after the outstanding commands completed or
    /// `drain` passed, then tear the RDMA connection down.
    pub fn disconnect(mut self, drain: Duration) -> Result<(), HostError> {
        let deadline = Instant::now() + drain;
        while self.outstanding > 0 && !self.failed && Instant::now() < deadline {
            if self.receive()? == 0 {
                std::thread::sleep(SETUP_POLL);
            }
            self.events.clear();
        }
        let result = match self.command(command::disconnect(), None, 0) {
            Ok(_) | Err(HostError::Closed) => Ok(()),
            Err(e) => Err(e),
        };
        self.id.disconnect();
        result
    }
}
