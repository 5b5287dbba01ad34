//! The controller side of one NVMe/RDMA queue pair, sans-IO: command capsules received by
//! RDMA SEND come in ([`RdmaQueue::capsule`]), work requests for the driver to post come
//! out ([`Work`]). NVMe/RDMA 1.0 §3.3: a command capsule is the 64-byte SQE followed by
//! in-capsule data; a response capsule is the 16-byte CQE; data not in the capsule moves by
//! RDMA READ (host to controller) and RDMA WRITE (controller to host) against the host's
//! Keyed SGL Data Block. The rules every transport shares live in [`QueueCore`].

use std::collections::VecDeque;
use std::sync::Arc;

use bytes::Bytes;
use nvme_spec::{Cqe, Sgl, Sqe, Status};
use tokio_util::sync::CancellationToken;
use tracing::debug;
use zerocopy::FromBytes;

use crate::buf_pool::BufSource;
use crate::queue::{ConnectionInfo, DataBuf, Payload, Response, Target, TransportKind};
use crate::queue_core::{DataPlan, DataRules, Event, HostData, QueueCore, RemoteBuf, Reply};

/// Bytes of the SQE at the start of a command capsule.
pub const SQE_LEN: usize = 64;

/// Tunables of the NVMe/RDMA target transport.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RdmaTargetConfig {
    /// In-capsule data limit on the admin queue (and for Connect on it).
    pub admin_in_capsule: u32,
    /// In-capsule data limit on I/O queues (IOCCSZ × 16 − 64).
    pub io_in_capsule: u32,
    /// Largest data transfer of one command (Keyed SGL lengths are 24 bits).
    pub max_transfer: u32,
}

impl Default for RdmaTargetConfig {
    fn default() -> Self {
        RdmaTargetConfig {
            admin_in_capsule: 8192,
            io_in_capsule: 8192,
            max_transfer: 1 << 20,
        }
    }
}

impl RdmaTargetConfig {
    /// Receive buffer size for one command capsule of a queue.
    pub fn capsule_len(&self) -> usize {
        SQE_LEN + self.admin_in_capsule.max(self.io_in_capsule) as usize
    }
}

/// A work request for the driver to post.
#[derive(Debug)]
pub enum Work {
    /// RDMA READ `len` bytes of the host's buffer `remote` into the command's fetch buffer
    /// ([`RdmaQueue::fetch_buf`]), then report with [`RdmaQueue::fetched`].
    Fetch {
        cid: u16,
        remote: RemoteBuf,
        len: u32,
    },
    /// Finish a command: RDMA WRITE `data` to the host's buffer (when there is any), then
    /// SEND the response capsule.
    Respond(Answer),
}

/// A response capsule and the data that goes before it.
#[derive(Debug)]
pub struct Answer {
    pub cqe: Cqe,
    /// Controller-to-host data (already cut to the host's buffer) and where it goes.
    pub write: Option<(RemoteBuf, Payload)>,
    /// The host asked for this key to be invalidated with the response (SEND with
    /// Invalidate).
    pub invalidate: Option<u32>,
    /// A pooled buffer the command no longer needs: back to the pool once sent.
    pub spare: Option<DataBuf>,
}

/// A command whose host data is being fetched with RDMA READ.
pub struct Fetch {
    buf: DataBuf,
}

/// A received capsule the queue cannot take: the connection must be dropped (NVMe/RDMA has no
/// termination message; §3.3: a capsule shorter than an SQE is a transport error).
#[derive(Debug, PartialEq, Eq)]
pub struct FatalCapsule {
    pub len: usize,
}

/// One NVMe/RDMA queue, controller side.
pub struct RdmaQueue {
    core: QueueCore<Fetch>,
    rules: DataRules,
    work: VecDeque<Work>,
    replies: Vec<Reply>,
}

impl RdmaQueue {
    pub fn new(target: Arc<dyn Target>, info: ConnectionInfo, config: &RdmaTargetConfig) -> Self {
        RdmaQueue {
            core: QueueCore::new(target, info),
            rules: DataRules {
                transport: TransportKind::Rdma,
                admin_in_capsule: config.admin_in_capsule,
                io_in_capsule: config.io_in_capsule,
                max_transfer: config.max_transfer,
            },
            work: VecDeque::new(),
            replies: Vec::new(),
        }
    }

    /// Size the work list for a queue of `entries` commands, so it never grows on the data
    /// path.
    pub fn reserve(&mut self, entries: usize) {
        self.work.reserve(2 * entries);
        self.replies.reserve(entries);
    }

    pub fn qid(&self) -> Option<u16> {
        self.core.qid()
    }

    pub fn commands_received(&self) -> u64 {
        self.core.commands_received()
    }

    pub fn teardown_token(&self) -> Option<CancellationToken> {
        self.core.teardown_token()
    }

    pub fn next_work(&mut self) -> Option<Work> {
        self.work.pop_front()
    }

    pub fn has_work(&self) -> bool {
        !self.work.is_empty()
    }

    pub fn poll_event(&mut self) -> Option<Event> {
        self.core.pop_event()
    }

    /// A command capsule arrived in a receive buffer.
    pub fn capsule(&mut self, bytes: &[u8], pool: &mut dyn BufSource) -> Result<(), FatalCapsule> {
        let Ok((sqe, data)) = Sqe::read_from_prefix(bytes) else {
            return Err(FatalCapsule { len: bytes.len() });
        };
        if let Err(status) = self.core.admit(&sqe) {
            let reply = self.core.status_reply(&sqe, status);
            self.respond(reply, pool);
            return Ok(());
        }
        let qid = self.core.qid_for(&sqe);
        let in_capsule = u32::try_from(data.len()).unwrap_or(u32::MAX);
        match self.rules.plan(&sqe, qid, in_capsule, true) {
            Err(status) => {
                debug!(peer = %self.core.info().peer, cid = sqe.cid(), ?status, "command data refused");
                let reply = self.core.status_reply(&sqe, status);
                self.respond(reply, pool);
            }
            Ok(DataPlan::None) => self.dispatch(sqe, HostData::None, 0, pool),
            Ok(DataPlan::InCapsule) => {
                // The receive buffer goes back to the shared receive queue at once, so the
                // data is copied: into a pooled buffer on I/O queues.
                let data = if self.core.is_io() {
                    let mut buf = pool.take(data.len());
                    buf.as_mut_slice().copy_from_slice(data);
                    HostData::Gathered(buf)
                } else {
                    HostData::Bytes(Bytes::copy_from_slice(data))
                };
                self.dispatch(sqe, data, 0, pool);
            }
            Ok(DataPlan::ToHost { len, .. }) => self.dispatch(sqe, HostData::None, len, pool),
            Ok(DataPlan::FromHost { len, remote }) => {
                let Some(remote) = remote else {
                    let reply = self
                        .core
                        .status_reply(&sqe, Status::SGL_DESCRIPTOR_TYPE_INVALID.with_dnr());
                    self.respond(reply, pool);
                    return Ok(());
                };
                let cid = sqe.cid();
                let buf = pool.take(len as usize);
                self.core.start_receiving(sqe, Fetch { buf });
                self.work.push_back(Work::Fetch { cid, remote, len });
            }
        }
        Ok(())
    }

    /// The buffer an RDMA READ of command `cid` lands in.
    pub fn fetch_buf(&mut self, cid: u16) -> Option<&mut DataBuf> {
        self.core.receiving_mut(cid).map(|f| &mut f.buf)
    }

    /// The RDMA READ of command `cid` finished (`ok`: successfully).
    pub fn fetched(&mut self, cid: u16, ok: bool, pool: &mut dyn BufSource) {
        let Some((sqe, fetch)) = self.core.finish_receiving(cid) else {
            return;
        };
        if !ok {
            pool.give(fetch.buf);
            // NVMe-oF 1.1 §2.4: the data did not arrive; the host may retry.
            let reply = self
                .core
                .status_reply(&sqe, Status::TRANSIENT_TRANSPORT_ERROR);
            self.respond(reply, pool);
            return;
        }
        self.dispatch(sqe, HostData::Gathered(fetch.buf), 0, pool);
    }

    /// Deliver the response of a command announced by [`Event::Pending`].
    pub fn complete(&mut self, cid: u16, tag: u64, response: Response, pool: &mut dyn BufSource) {
        if let Some(reply) = self.core.complete(cid, tag, response) {
            self.respond(reply, pool);
        }
    }

    pub fn has_queued(&self) -> bool {
        self.core.has_queued()
    }

    /// Collect the responses of the handler's queued commands; returns how many finished.
    pub fn poll_queued(&mut self, pool: &mut dyn BufSource) -> usize {
        if !self.core.has_queued() {
            return 0;
        }
        let mut replies = std::mem::take(&mut self.replies);
        let n = self.core.poll_queued(&mut |r| replies.push(r));
        for reply in replies.drain(..) {
            self.respond(reply, pool);
        }
        self.replies = replies;
        n
    }

    /// The queue pair is gone: drop every command and tell the queue's handler, once.
    pub fn close(&mut self) {
        self.work.clear();
        self.core.close();
    }

    fn dispatch(&mut self, sqe: Sqe, data: HostData, c2h_len: u32, pool: &mut dyn BufSource) {
        if let Some(reply) = self.core.dispatch(sqe, data, c2h_len, pool) {
            self.respond(reply, pool);
        }
    }

    /// Turn a finished command into the work that answers it.
    fn respond(&mut self, reply: Reply, pool: &mut dyn BufSource) {
        let remote = match Sgl::parse(&reply.sqe.dptr) {
            Sgl::Keyed {
                address,
                key,
                subtype,
                ..
            } => Some(RemoteBuf {
                address,
                key,
                invalidate: subtype == nvme_spec::sgl::SUBTYPE_INVALIDATE_KEY,
            }),
            _ => None,
        };
        // The key is the host's to invalidate only if the command got as far as using it;
        // a command refused before that still carries a valid key the host asked us to
        // invalidate, and the host expects it gone either way (NVMe/RDMA 1.0 §3.3.1).
        let invalidate = remote.filter(|r| r.invalidate).map(|r| r.key);
        let total = reply
            .data
            .as_ref()
            .map_or(0, Payload::len)
            .min(reply.c2h_len as usize);
        let write = match (reply.data, remote) {
            (Some(data), Some(remote)) if total > 0 => Some((remote, cut(data, total))),
            (Some(Payload::Buf(buf)), _) => {
                pool.give(buf);
                None
            }
            _ => None,
        };
        self.work.push_back(Work::Respond(Answer {
            cqe: reply.cqe,
            write,
            invalidate,
            spare: reply.unused_buf,
        }));
    }
}

/// The first `len` bytes of a payload.
fn cut(data: Payload, len: usize) -> Payload {
    match data {
        Payload::Shared(b) => Payload::Shared(b.slice(..len.min(b.len()))),
        Payload::Buf(mut b) => {
            b.truncate(len);
            Payload::Buf(b)
        }
        Payload::Lent(mut l) => {
            l.truncate(len);
            Payload::Lent(l)
        }
    }
}

impl Drop for RdmaQueue {
    fn drop(&mut self) {
        self.close();
    }
}
