//! One NVMe/TCP connection carrying one NVMe-oF queue, driven by tokio: a reader task feeds
//! the sans-IO [`HostConn`], a writer task sends what it produces, and any number of tasks
//! submit commands through `&Queue` concurrently.

use ferrofab_sync::CountedLock as _;
use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use nvme_spec::command::{ConnectData, CATTR_DISABLE_SQ_FLOW_CONTROL, CNTLID_DYNAMIC};
use nvme_spec::Status;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;
use tokio::sync::{oneshot, Notify, OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;
use zerocopy::IntoBytes;

use super::command;
use super::{HostCommand, HostCompletion, HostError};
use crate::tcp::host_conn::{
    HostConn, HostConnConfig, HostEvent, Negotiated, ADMIN_IN_CAPSULE_DATA,
};
use crate::tcp::out_queue::write_all;
use crate::tcp::pdu::Digests;

/// How to open a queue's connection.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QueueOptions {
    /// Queue ID (0 = admin).
    pub qid: u16,
    pub header_digest: bool,
    pub data_digest: bool,
    /// ICReq MAXR2T (0's based).
    pub maxr2t: u32,
    /// Writes up to this many bytes travel in-capsule.
    pub in_capsule_data: u32,
    /// Queue size in entries; at most `queue_size - 1` commands are outstanding.
    pub queue_size: u16,
    /// SQ flow control disabled in Connect (lets the controller use C2HData SUCCESS).
    pub disable_sqflow: bool,
    /// Default per-command timeout (also bounds connection setup).
    pub timeout: Duration,
}

impl Default for QueueOptions {
    fn default() -> Self {
        QueueOptions {
            qid: 0,
            header_digest: false,
            data_digest: false,
            maxr2t: 0,
            in_capsule_data: ADMIN_IN_CAPSULE_DATA,
            queue_size: 32,
            disable_sqflow: false,
            timeout: Duration::from_secs(30),
        }
    }
}

type Reply = oneshot::Sender<Result<HostCompletion, HostError>>;

struct Waiter {
    reply: Reply,
    // Held until the command completes, even if its submitter timed out: the CID and the
    // submission queue slot stay in use until then.
    _permit: OwnedSemaphorePermit,
}

struct Shared {
    conn: HostConn,
    waiters: HashMap<u16, Waiter>,
    error: Option<HostError>,
}

struct Inner {
    shared: Mutex<Shared>,
    wake_writer: Notify,
    permits: Arc<Semaphore>,
    cancel: CancellationToken,
    opts: QueueOptions,
    negotiated: Negotiated,
    local: SocketAddr,
    peer: SocketAddr,
}

/// Cancels the connection when the last [`Queue`] handle goes away.
struct CloseOnDrop(CancellationToken);

impl Drop for CloseOnDrop {
    fn drop(&mut self) {
        self.0.cancel();
    }
}

/// One NVMe/TCP connection (one NVMe-oF queue). Cheap to clone; the connection closes when
/// [`Queue::close`] is called or the last clone is dropped.
#[derive(Clone)]
pub struct Queue {
    inner: Arc<Inner>,
    _close: Arc<CloseOnDrop>,
}

impl std::fmt::Debug for Queue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Queue")
            .field("qid", &self.inner.opts.qid)
            .field("peer", &self.inner.peer)
            .finish_non_exhaustive()
    }
}

impl Queue {
    /// Open the TCP connection (TCP_NODELAY) and run ICReq/ICResp (NVMe/TCP 1.0 §3.3). No
    /// Fabrics Connect is sent: see [`Queue::fabrics_connect`].
    pub async fn connect(addr: SocketAddr, opts: QueueOptions) -> Result<Queue, HostError> {
        let setup = async {
            let stream = TcpStream::connect(addr).await?;
            stream.set_nodelay(true)?;
            Queue::from_stream(stream, opts.clone()).await
        };
        tokio::time::timeout(opts.timeout, setup)
            .await
            .map_err(|_| HostError::Timeout)?
    }

    /// Run connection initialization on an already connected stream and start the driver.
    pub async fn from_stream(
        mut stream: TcpStream,
        opts: QueueOptions,
    ) -> Result<Queue, HostError> {
        let local = stream.local_addr()?;
        let peer = stream.peer_addr()?;
        let mut conn = HostConn::new(HostConnConfig {
            qid: opts.qid,
            digests: Digests {
                header: opts.header_digest,
                data: opts.data_digest,
            },
            maxr2t: opts.maxr2t,
            in_capsule_data: opts.in_capsule_data,
            sq_flow_control_disabled: opts.disable_sqflow,
        });
        let mut out = VecDeque::new();
        conn.drain_transmit(&mut out);
        write_all(&mut stream, &mut out).await?;
        let mut buf = BytesMut::with_capacity(4096);
        let negotiated = loop {
            match conn.poll_event() {
                Some(HostEvent::Established(n)) => break n,
                Some(HostEvent::Failed(e)) => {
                    conn.drain_transmit(&mut out);
                    let _ = write_all(&mut stream, &mut out).await;
                    return Err(e.into());
                }
                Some(HostEvent::Completed { .. }) => continue,
                None => {}
            }
            buf.reserve(4096);
            if stream.read_buf(&mut buf).await? == 0 {
                return Err(HostError::Closed);
            }
            conn.receive_buf(buf.split());
        };
        let (rd, wr) = stream.into_split();
        let permits = Arc::new(Semaphore::new(usize::from(opts.queue_size.max(2) - 1)));
        let cancel = CancellationToken::new();
        let inner = Arc::new(Inner {
            shared: Mutex::new(Shared {
                conn,
                waiters: HashMap::new(),
                error: None,
            }),
            wake_writer: Notify::new(),
            permits,
            cancel: cancel.clone(),
            opts,
            negotiated,
            local,
            peer,
        });
        tokio::spawn(reader(inner.clone(), rd));
        tokio::spawn(writer(inner.clone(), wr));
        // Bytes that followed the ICResp in the same read are already in the connection.
        inner.wake_writer.notify_one();
        Ok(Queue {
            inner,
            _close: Arc::new(CloseOnDrop(cancel)),
        })
    }

    pub fn qid(&self) -> u16 {
        self.inner.opts.qid
    }

    pub fn options(&self) -> &QueueOptions {
        &self.inner.opts
    }

    /// What ICResp granted (digests, CPDA, MAXH2CDATA).
    pub fn negotiated(&self) -> Negotiated {
        self.inner.negotiated
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.inner.local
    }

    pub fn peer_addr(&self) -> SocketAddr {
        self.inner.peer
    }

    /// The error that killed the connection, if it is dead.
    pub fn error(&self) -> Option<HostError> {
        self.inner.lock().error.clone()
    }

    /// Submit a command and wait for its completion, with the queue's default timeout.
    pub async fn submit(&self, cmd: HostCommand) -> Result<HostCompletion, HostError> {
        self.submit_timeout(cmd, Some(self.inner.opts.timeout))
            .await
    }

    /// Submit with an explicit timeout (`None`: wait as long as the connection lives, as
    /// Asynchronous Event Requests do). On timeout the command's CID stays reserved until the
    /// controller completes it.
    pub async fn submit_timeout(
        &self,
        cmd: HostCommand,
        timeout: Option<Duration>,
    ) -> Result<HostCompletion, HostError> {
        self.submit_inner(cmd, false, timeout).await
    }

    /// Submit a command with its PSDT and data pointer exactly as given (only the CID is
    /// replaced); `data_out` is sent as in-capsule data whatever its size. For tests that send
    /// malformed commands.
    pub async fn submit_raw(&self, cmd: HostCommand) -> Result<HostCompletion, HostError> {
        self.submit_inner(cmd, true, Some(self.inner.opts.timeout))
            .await
    }

    async fn submit_inner(
        &self,
        cmd: HostCommand,
        raw: bool,
        timeout: Option<Duration>,
    ) -> Result<HostCompletion, HostError> {
        let run = async {
            let permit = self
                .inner
                .permits
                .clone()
                .acquire_owned()
                .await
                .map_err(|_| HostError::Closed)?;
            let rx = {
                let mut shared = self.inner.lock();
                if let Some(e) = &shared.error {
                    return Err(e.clone());
                }
                let cid = if raw {
                    shared
                        .conn
                        .submit_raw(cmd.sqe, cmd.data_out, cmd.data_in_len)?
                } else {
                    shared.conn.submit(cmd.sqe, cmd.data_out, cmd.data_in_len)?
                };
                let (tx, rx) = oneshot::channel();
                shared.waiters.insert(
                    cid,
                    Waiter {
                        reply: tx,
                        _permit: permit,
                    },
                );
                rx
            };
            self.inner.wake_writer.notify_one();
            rx.await.map_err(|_| HostError::Closed)?
        };
        match timeout {
            Some(t) => tokio::time::timeout(t, run)
                .await
                .map_err(|_| HostError::Timeout)?,
            None => run.await,
        }
    }

    /// Fabrics Connect on this queue (NVMe-oF 1.1 §3.3): QID and SQSIZE from the queue
    /// options, `cntlid` 0xFFFF on the admin queue (dynamic model), CATTR bit 2 if SQ flow
    /// control is disabled. Returns the CNTLID; a failure status is [`HostError::Connect`].
    pub async fn fabrics_connect(
        &self,
        subnqn: &str,
        hostnqn: &str,
        hostid: &[u8; 16],
        cntlid: u16,
        kato_ms: u32,
    ) -> Result<u16, HostError> {
        let opts = &self.inner.opts;
        let cattr = if opts.disable_sqflow {
            CATTR_DISABLE_SQ_FLOW_CONTROL
        } else {
            0
        };
        let sqe = command::connect(opts.qid, opts.queue_size.max(2) - 1, cattr, kato_ms);
        let data = ConnectData::new(*hostid, cntlid, subnqn, hostnqn)
            .map_err(|e| HostError::Protocol(format!("Connect data: {e}")))?;
        let done = self
            .submit(HostCommand::with_data_out(
                sqe,
                Bytes::copy_from_slice(data.as_bytes()),
            ))
            .await?;
        let status: Status = done.cqe.status();
        if !status.is_success() {
            return Err(HostError::Connect(status));
        }
        // NVMe-oF 1.1 Figure 24: CNTLID in DW0 bits 15:0 of a successful Connect response.
        Ok(done.cqe.dw0.get() as u16)
    }

    /// Convenience for the admin queue: Connect with CNTLID 0xFFFF.
    pub async fn fabrics_connect_admin(
        &self,
        subnqn: &str,
        hostnqn: &str,
        hostid: &[u8; 16],
        kato_ms: u32,
    ) -> Result<u16, HostError> {
        self.fabrics_connect(subnqn, hostnqn, hostid, CNTLID_DYNAMIC, kato_ms)
            .await
    }

    /// Change the in-capsule data limit (after Identify Controller told IOCCSZ).
    pub fn set_in_capsule_data(&self, bytes: u32) {
        self.inner.lock().conn.set_in_capsule_data(bytes);
    }

    /// Fault injection for tests: the next PDU this queue sends with a data digest (in-capsule
    /// write capsule or H2CData) carries a corrupted one, so the controller's data digest
    /// check can be exercised. No effect unless data digests were negotiated.
    pub fn corrupt_next_data_digest(&self) {
        self.inner.lock().conn.corrupt_next_data_digest();
    }

    /// Send raw bytes on the connection as they are (tests of malformed PDUs).
    pub fn send_raw(&self, bytes: Bytes) {
        self.inner.lock().conn.send_raw(bytes);
        self.inner.wake_writer.notify_one();
    }

    /// Number of commands outstanding on the connection (including timed-out ones the
    /// controller has not completed).
    pub fn outstanding(&self) -> usize {
        self.inner.lock().conn.outstanding()
    }

    /// Close the connection after sending what is queued. Outstanding commands fail with
    /// [`HostError::Closed`].
    pub fn close(&self) {
        self.inner.cancel.cancel();
    }

    /// Resolves when the connection is closed (by either side).
    pub async fn closed(&self) {
        self.inner.cancel.cancelled().await
    }
}

impl Inner {
    fn lock(&self) -> MutexGuard<'_, Shared> {
        // A panic while holding the lock cannot leave the state half-updated in a way that
        // matters more than losing the queue, so keep going with the inner value.
        self.shared.lock_counted()
    }
}

/// Deliver the sans-IO connection's events to the waiting submitters.
fn dispatch(shared: &mut Shared) -> bool {
    let mut failed = false;
    while let Some(ev) = shared.conn.poll_event() {
        match ev {
            HostEvent::Established(_) => {}
            HostEvent::Completed { cid, result } => {
                if let Some(w) = shared.waiters.remove(&cid) {
                    let _ = w.reply.send(
                        result
                            .map(|c| HostCompletion {
                                cqe: c.cqe,
                                data: c.data,
                            })
                            .map_err(HostError::from),
                    );
                }
            }
            HostEvent::Failed(e) => {
                tracing::debug!(error = %e, "NVMe/TCP host connection failed");
                shared.error.get_or_insert(e.into());
                failed = true;
            }
        }
    }
    failed
}

fn fail_all(inner: &Inner, err: HostError) {
    let mut shared = inner.lock();
    shared.conn.close();
    dispatch(&mut shared);
    shared.error.get_or_insert(err.clone());
    for (_, w) in shared.waiters.drain() {
        let _ = w.reply.send(Err(err.clone()));
    }
}

async fn reader(inner: Arc<Inner>, mut rd: OwnedReadHalf) {
    let mut buf = BytesMut::with_capacity(64 * 1024);
    loop {
        if buf.capacity() - buf.len() < 16 * 1024 {
            buf.reserve(64 * 1024);
        }
        let n = tokio::select! {
            _ = inner.cancel.cancelled() => break,
            r = rd.read_buf(&mut buf) => r,
        };
        match n {
            Ok(0) => {
                fail_all(&inner, HostError::Closed);
                break;
            }
            Ok(_) => {
                let failed = {
                    let mut shared = inner.lock();
                    shared.conn.receive_buf(buf.split());
                    dispatch(&mut shared)
                };
                inner.wake_writer.notify_one();
                if failed {
                    // The writer flushes the H2CTermReq, then closes.
                    inner.cancel.cancel();
                    break;
                }
            }
            Err(e) => {
                fail_all(&inner, e.into());
                break;
            }
        }
    }
    fail_all(&inner, HostError::Closed);
    // The connection is gone (EOF, error or protocol failure): wake `closed()` and the writer.
    inner.cancel.cancel();
}

async fn writer(inner: Arc<Inner>, mut wr: OwnedWriteHalf) {
    let mut out = VecDeque::new();
    loop {
        inner.lock().conn.drain_transmit(&mut out);
        if out.is_empty() {
            tokio::select! {
                _ = inner.cancel.cancelled() => break,
                _ = inner.wake_writer.notified() => continue,
            }
        }
        if let Err(e) = write_all(&mut wr, &mut out).await {
            fail_all(&inner, e.into());
            inner.cancel.cancel();
            return;
        }
    }
    // Send whatever is still queued (an H2CTermReq after a protocol error), then close.
    inner.lock().conn.drain_transmit(&mut out);
    let _ = tokio::time::timeout(Duration::from_secs(1), write_all(&mut wr, &mut out)).await;
    let _ = wr.shutdown().await;
    fail_all(&inner, HostError::Closed);
}
