//! The seam between a transport and the NVMe-oF target: a transport turns PDUs into
//! [`Request`]s, hands them to a [`QueueHandler`], and sends back the [`Response`]s.
//! Nothing here knows about TCP or RDMA framing; a pooled data buffer may carry its
//! memory's registration with an RDMA device.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;

use bytes::Bytes;
use nvme_spec::{Sqe, Status};
use tokio_util::sync::CancellationToken;

pub use crate::lent::{Lent, LentHome};
use crate::sys::rdma::{DeviceRes, MemReg};

/// A command capsule with its host-to-controller data, already gathered by the transport
/// (in-capsule or via R2T/H2CData).
#[derive(Debug)]
pub struct Request {
    pub sqe: Sqe,
    pub data: Option<Bytes>,
    /// For commands that return data on an I/O queue: a buffer from the transport's pool,
    /// exactly as long as the host's buffer. Handing it back in the [`Response`] returns it to
    /// the pool once sent, so reads allocate nothing.
    pub c2h_buf: Option<DataBuf>,
    /// On an I/O queue, host data that arrived in several pieces (a write larger than
    /// NVMe/TCP's MAXH2CDATA) gathered into a buffer from the transport's pool; `data` is
    /// then `None`. Handing it back in the [`Response`] returns it to the pool, so large
    /// writes allocate nothing either.
    pub h2c_buf: Option<DataBuf>,
    /// On an I/O queue, host data the transport received into device memory the handler lent
    /// for it ([`QueueHandler::lend_h2c`]); `data` and `h2c_buf` are then `None`.
    pub h2c_lent: Option<Lent>,
}

impl Request {
    pub fn new(sqe: Sqe, data: Option<Bytes>) -> Request {
        Request {
            sqe,
            data,
            c2h_buf: None,
            h2c_buf: None,
            h2c_lent: None,
        }
    }

    /// The host-to-controller data, wherever the transport put it (empty when none).
    pub fn host_data(&self) -> &[u8] {
        match (&self.h2c_buf, &self.data) {
            (Some(b), _) => b.as_slice(),
            (None, Some(d)) => d,
            (None, None) => &[],
        }
    }
}

/// A reusable data buffer: `len` valid bytes in a vector that may be longer, so a pooled
/// buffer is never zero-filled again when it is reused for the same or a smaller size.
///
/// NVMe/RDMA's pools register a buffer's allocation with the NIC ([`MemReg`]) once; the
/// registration travels with the buffer while it is reused, through the backend and back
/// ([`DataBuf::detach`] / [`Detached::attach`]), so the NIC moves data straight into and
/// out of it. It is deregistered when the buffer is dropped or its vector taken out.
#[derive(Default)]
pub struct DataBuf {
    /// Declared first: deregistered before the vector is freed. Boxed: most buffers have
    /// none, and a buffer stays small.
    reg: Option<Box<MemReg>>,
    vec: Vec<u8>,
    len: usize,
}

impl Clone for DataBuf {
    /// A copy of the bytes, unregistered.
    fn clone(&self) -> DataBuf {
        DataBuf {
            reg: None,
            vec: self.vec.clone(),
            len: self.len,
        }
    }
}

impl PartialEq for DataBuf {
    fn eq(&self, other: &DataBuf) -> bool {
        self.as_slice() == other.as_slice()
    }
}

impl Eq for DataBuf {}

impl core::fmt::Debug for DataBuf {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "DataBuf({} bytes)", self.len)
    }
}

impl DataBuf {
    /// A zero-filled buffer of `len` bytes.
    pub fn zeroed(len: usize) -> DataBuf {
        DataBuf {
            reg: None,
            vec: vec![0; len],
            len,
        }
    }

    /// Reuse `vec` for `len` bytes (grows it only if it is shorter).
    pub fn reuse(vec: Vec<u8>, len: usize) -> DataBuf {
        let mut b = DataBuf {
            reg: None,
            vec,
            len: 0,
        };
        b.resize(len);
        b
    }

    /// Make the buffer `len` bytes long, growing its vector only if it is shorter; a
    /// registration is kept only while it still covers the vector's allocation.
    pub fn resize(&mut self, len: usize) {
        if self.vec.len() < len {
            self.vec.resize(len, 0);
            if self
                .reg
                .as_ref()
                .is_some_and(|r| !r.is_of(self.vec.as_ptr(), self.vec.capacity()))
            {
                self.reg = None;
            }
        }
        self.len = len;
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Bytes the buffer's allocation holds.
    pub fn capacity(&self) -> usize {
        self.vec.capacity()
    }

    pub fn as_slice(&self) -> &[u8] {
        &self.vec[..self.len]
    }

    pub fn as_mut_slice(&mut self) -> &mut [u8] {
        &mut self.vec[..self.len]
    }

    /// Shorten the valid part (never grows).
    pub fn truncate(&mut self, len: usize) {
        self.len = self.len.min(len);
    }

    /// The backing vector, unregistered.
    pub fn into_vec(self) -> Vec<u8> {
        let DataBuf { reg, vec, .. } = self;
        drop(reg);
        vec
    }

    /// The backing vector for a backend that works on vectors, and the buffer's
    /// registration kept aside for [`Detached::attach`].
    pub fn detach(self) -> (Vec<u8>, Detached) {
        let DataBuf { reg, vec, .. } = self;
        (vec, Detached(reg))
    }

    /// Register the buffer's allocation with `dev` unless it is already.
    pub fn register(&mut self, dev: &Arc<DeviceRes>) -> std::io::Result<()> {
        if self.registered_on(dev).is_some() {
            return Ok(());
        }
        self.reg = None;
        self.reg = Some(Box::new(MemReg::register(dev, &mut self.vec)?));
        Ok(())
    }

    /// Where the NIC of `dev` reaches the valid bytes, if the buffer is registered with
    /// it: their address and the local key.
    pub fn registered_on(&mut self, dev: &DeviceRes) -> Option<(u64, u32)> {
        let reg = self.reg.as_ref()?;
        let ptr = self.vec.as_mut_ptr();
        reg.covers(dev, ptr, self.len)
            .then(|| (ptr as u64, reg.lkey()))
    }
}

/// A [`DataBuf`]'s registration while its vector is out with a backend.
#[must_use]
pub struct Detached(Option<Box<MemReg>>);

impl Detached {
    /// The buffer again: `vec` for `len` bytes, registered as before if `vec` is the same
    /// allocation the registration was made for (a different one is left unregistered).
    /// Backends hand back the vector they were given, so this is the same allocation.
    pub fn attach(self, vec: Vec<u8>, len: usize) -> DataBuf {
        let reg = self.0.filter(|r| r.is_of(vec.as_ptr(), vec.capacity()));
        let mut b = DataBuf { reg, vec, len: 0 };
        b.resize(len);
        b
    }
}

/// Controller-to-host data in a [`Response`].
#[derive(Debug)]
pub enum Payload {
    /// Shared bytes (admin data, static zeroes, backend memory).
    Shared(Bytes),
    /// A pooled buffer the transport recycles after sending it.
    Buf(DataBuf),
    /// A drive's DMA memory the data was read into: sent from there, then given back.
    Lent(Lent),
}

impl Payload {
    pub fn len(&self) -> usize {
        match self {
            Payload::Shared(b) => b.len(),
            Payload::Buf(b) => b.len(),
            Payload::Lent(l) => l.len(),
        }
    }

    /// The bytes, copied (for tests and rare paths).
    pub fn to_vec(&self) -> Vec<u8> {
        match self {
            Payload::Shared(b) => b.to_vec(),
            Payload::Buf(b) => b.as_slice().to_vec(),
            Payload::Lent(l) => l.to_vec(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// What the target answers. `data` is controller-to-host data; the transport sends at most
/// the length the host's SGL describes, and the target never produces more.
#[derive(Debug)]
pub struct Response {
    pub status: Status,
    pub dw0: u32,
    pub dw1: u32,
    pub data: Option<Payload>,
    /// The request's `c2h_buf` when the handler did not need it (e.g. it returned shared
    /// bytes), or its `h2c_buf` once the data is written, so the transport can put it back
    /// in its pool.
    pub unused_buf: Option<DataBuf>,
}

impl Response {
    pub fn status(status: Status) -> Response {
        Response {
            status,
            dw0: 0,
            dw1: 0,
            data: None,
            unused_buf: None,
        }
    }

    pub fn success() -> Response {
        Response::status(Status::SUCCESS)
    }

    pub fn with_dw0(mut self, dw0: u32) -> Response {
        self.dw0 = dw0;
        self
    }

    pub fn with_data(mut self, data: Bytes) -> Response {
        self.data = Some(Payload::Shared(data));
        self
    }

    /// Hand an unneeded request buffer back to the transport.
    pub fn returning(mut self, buf: Option<DataBuf>) -> Response {
        self.unused_buf = buf;
        self
    }

    pub fn with_buf(mut self, buf: DataBuf) -> Response {
        self.data = Some(Payload::Buf(buf));
        self
    }

    /// Answer with data in lent device memory, sent without a copy.
    pub fn with_lent(mut self, lent: Lent) -> Response {
        self.data = Some(Payload::Lent(lent));
        self
    }
}

pub type ResponseFuture = Pin<Box<dyn Future<Output = Response> + Send + 'static>>;

/// How a submitted command completes: at once, later through a future (AERs, backends
/// without a polled interface), or later through [`QueueHandler::poll_queued`] (drive I/O the
/// handler keeps in its own table).
pub enum Completion {
    Ready(Response),
    Pending(ResponseFuture),
    Queued,
}

/// Facts about the transport connection, given to the target at Connect.
#[derive(Clone, Debug)]
pub struct ConnectionInfo {
    pub transport: TransportKind,
    pub local: SocketAddr,
    pub peer: SocketAddr,
    /// The TLS channel the connection came through (NVMe/TCP with TLS): the PSK identity
    /// names the host and subsystem it may connect as.
    pub secure: Option<std::sync::Arc<crate::tcp::tls::SecureChannel>>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TransportKind {
    Tcp,
    Rdma,
}

/// The queue a Connect command created. The transport owns it for the connection's life.
pub trait QueueHandler: Send + 'static {
    /// Submit one command (never a Connect: the transport routes those to [`Target::connect`]).
    fn submit(&mut self, request: Request) -> Completion;
    /// Commands answered [`Completion::Queued`] that have not been delivered by
    /// [`QueueHandler::poll_queued`] yet: while there are any, the transport keeps calling it.
    fn has_queued(&self) -> bool {
        false
    }
    /// Deliver the responses of queued commands that finished, by CID; returns how many.
    /// Called from the transport's polling loop, so it must not block.
    fn poll_queued(&mut self, _done: &mut dyn FnMut(u16, Response)) -> usize {
        0
    }
    /// Cancelled when the controller is torn down (keep-alive expiry, shutdown, deletion):
    /// the transport then closes the connection.
    fn teardown(&self) -> CancellationToken;
    /// Called once when the transport connection is gone, for whatever reason.
    fn disconnected(&mut self);
    /// Device memory for the `len` bytes of host data `sqe` brings, when the handler's backend
    /// takes them from there without a copy (a drive's DMA memory): the transport receives
    /// the data straight into it and hands it over in [`Request::h2c_lent`]. Default: none.
    fn lend_h2c(&mut self, _sqe: &Sqe, _len: u32) -> Option<Lent> {
        None
    }
    /// Admin queues only: the host reused the CID of the outstanding Asynchronous Event
    /// Request `cid`, so it abandoned that AER on its side. The transport sends no completion
    /// for it and drops its response whenever it arrives; release what holds the request
    /// (its slot under the AER Limit) so its future resolves. Default: nothing to release.
    fn abandon_async_event(&mut self, _cid: u16) {}
}

/// A queue that a successful Connect created, with the parameters the transport needs.
pub struct Connected {
    pub handler: Box<dyn QueueHandler>,
    /// The Connect response (CNTLID in DW0).
    pub response: Response,
    /// Queue ID: 0 for the admin queue.
    pub qid: u16,
    /// Submission queue size in entries (Connect SQSIZE is 0's based; this is not).
    pub sqsize: u32,
    /// The host disabled SQ flow control (Connect CATTR bit 2, NVMe-oF 1.1 §3.3): the
    /// controller need not report SQHD, and NVMe/TCP may use the C2HData SUCCESS flag.
    pub sq_flow_control_disabled: bool,
}

/// The NVMe-oF target as a transport sees it.
pub trait Target: Send + Sync + 'static {
    /// Handle a Fabrics Connect command (NVMe-oF 1.1 §3.3) that arrived on a new queue.
    /// On failure the response carries the status and the transport sends it as the
    /// Connect's CapsuleResp, then keeps waiting for another Connect or closes.
    fn connect(&self, conn: &ConnectionInfo, sqe: &Sqe, data: &[u8])
        -> Result<Connected, Response>;
}
