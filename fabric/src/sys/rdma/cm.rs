//! The RDMA connection manager: event channels and ids, the target's listen/accept/reject
//! and the host's resolve/connect, and posting on an id's queue pair.
#![allow(unsafe_code)]

use std::io;
use std::net::{SocketAddr, SocketAddrV4, SocketAddrV6};
use std::os::fd::RawFd;
use std::ptr::NonNull;
use std::sync::Arc;

use rdma_mummy_sys as ffi;

use super::device::{DeviceConfig, DeviceRes};
use super::{check, rdma_error};

/// An RDMA CM event channel: connection events of the ids created on it.
pub struct EventChannel {
    ch: NonNull<ffi::rdma_event_channel>,
}

// SAFETY: the channel is a file descriptor wrapper; librdmacm allows its use from any thread.
unsafe impl Send for EventChannel {}
// SAFETY: as above; `next_event` and `fd` do not mutate shared Rust state.
unsafe impl Sync for EventChannel {}

/// The kind of a connection manager event (librdmacm `rdma_cm_event_type`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CmEventKind {
    /// Host side: the destination address, then the route, is resolved.
    AddrResolved,
    RouteResolved,
    /// Host side: the target rejected the connection (its private data says why).
    Rejected,
    ConnectRequest,
    Established,
    Disconnected,
    TimewaitExit,
    DeviceRemoval,
    /// Connect errors, address changes and the like.
    Other(u32),
}

/// One connection manager event, acknowledged already.
pub struct CmEvent {
    pub kind: CmEventKind,
    /// The id the event is about: for a connect request, the new id, owned by the caller.
    pub new_id: Option<CmId>,
    /// For other events: the key ([`CmId::key`]) of the id it is about.
    pub id_key: usize,
    /// The peer's private data (connect requests).
    pub private: Vec<u8>,
    /// RDMA READ depths of a connect request, from our side (the CM swaps the peer's): how
    /// many READs we may have outstanding (the peer's responder resources), and how many of
    /// the peer's we would serve (its initiator depth).
    pub initiator_depth: u8,
    pub responder_resources: u8,
    /// The event's status (errno or reject reason of the transport).
    pub status: i32,
}

impl EventChannel {
    pub fn new() -> io::Result<Arc<EventChannel>> {
        // SAFETY: no arguments; a null result sets errno.
        let ch = unsafe { ffi::rdma_create_event_channel() };
        let ch = NonNull::new(ch).ok_or_else(|| rdma_error("rdma_create_event_channel"))?;
        let channel = EventChannel { ch };
        let fd = channel.fd();
        let flags = nix::fcntl::fcntl(
            // SAFETY: the fd belongs to the channel and stays open while it lives.
            unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) },
            nix::fcntl::FcntlArg::F_GETFL,
        )?;
        let flags = nix::fcntl::OFlag::from_bits_truncate(flags) | nix::fcntl::OFlag::O_NONBLOCK;
        nix::fcntl::fcntl(
            // SAFETY: as above.
            unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) },
            nix::fcntl::FcntlArg::F_SETFL(flags),
        )?;
        Ok(Arc::new(channel))
    }

    /// The channel's file descriptor (readable when an event waits).
    pub fn fd(&self) -> RawFd {
        // SAFETY: the channel is valid while `self` lives.
        unsafe { self.ch.as_ref().fd }
    }

    /// Wait up to `timeout` for an event; true if one is there.
    pub fn wait(&self, timeout: std::time::Duration) -> io::Result<bool> {
        let mut pfd = libc::pollfd {
            fd: self.fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        let ms = libc::c_int::try_from(timeout.as_millis()).unwrap_or(libc::c_int::MAX);
        // SAFETY: one valid pollfd for the call's duration.
        let n = unsafe { libc::poll(&mut pfd, 1, ms) };
        if n < 0 {
            let e = io::Error::last_os_error();
            return if e.kind() == io::ErrorKind::Interrupted {
                Ok(false)
            } else {
                Err(e)
            };
        }
        Ok(n > 0)
    }

    /// A new id on this channel (reliable connected, the TCP port space).
    fn create_id(self: &Arc<Self>) -> io::Result<CmId> {
        let mut raw: *mut ffi::rdma_cm_id = std::ptr::null_mut();
        // SAFETY: `raw` receives the new id; the channel outlives the call.
        let rc = unsafe {
            ffi::rdma_create_id(
                self.ch.as_ptr(),
                &mut raw,
                std::ptr::null_mut(),
                ffi::rdma_port_space::RDMA_PS_TCP,
            )
        };
        check(rc, "rdma_create_id")?;
        Ok(CmId {
            id: NonNull::new(raw).ok_or_else(|| rdma_error("rdma_create_id"))?,
            res: None,
            _channel: self.clone(),
        })
    }

    /// A listening id bound to `address` (port 0: the CM picks one).
    pub fn listen(self: &Arc<Self>, address: SocketAddr, backlog: i32) -> io::Result<CmId> {
        let id = self.create_id()?;
        let mut storage = sockaddr_of(address);
        // SAFETY: `storage` holds a sockaddr_in or sockaddr_in6 for the call's duration.
        let rc = unsafe {
            ffi::rdma_bind_addr(
                id.id.as_ptr(),
                (&mut storage as *mut libc::sockaddr_storage).cast(),
            )
        };
        check(rc, &format!("binding RDMA CM to {address}"))?;
        // SAFETY: the id is bound.
        let rc = unsafe { ffi::rdma_listen(id.id.as_ptr(), backlog) };
        check(rc, &format!("listening for RDMA CM on {address}"))?;
        Ok(id)
    }

    /// The next event within `timeout`.
    pub fn wait_event(self: &Arc<Self>, timeout: std::time::Duration) -> io::Result<CmEvent> {
        let deadline = std::time::Instant::now() + timeout;
        loop {
            if let Some(ev) = self.next_event()? {
                return Ok(ev);
            }
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            if left.is_zero() {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "no RDMA CM event in time",
                ));
            }
            self.wait(left)?;
        }
    }

    /// Host side: an id whose address and route to `dst` are resolved, ready for its queue
    /// pair and [`CmId::connect`].
    pub fn resolve(
        self: &Arc<Self>,
        dst: SocketAddr,
        timeout: std::time::Duration,
    ) -> io::Result<CmId> {
        let id = self.create_id()?;
        let ms = libc::c_int::try_from(timeout.as_millis()).unwrap_or(libc::c_int::MAX);
        let mut storage = sockaddr_of(dst);
        // SAFETY: `storage` holds a sockaddr of `dst`'s family for the call.
        let rc = unsafe {
            ffi::rdma_resolve_addr(
                id.id.as_ptr(),
                std::ptr::null_mut(),
                (&mut storage as *mut libc::sockaddr_storage).cast(),
                ms,
            )
        };
        check(rc, &format!("resolving the RDMA address of {dst}"))?;
        self.expect(CmEventKind::AddrResolved, timeout, dst)?;
        // SAFETY: the id's address is resolved.
        let rc = unsafe { ffi::rdma_resolve_route(id.id.as_ptr(), ms) };
        check(rc, &format!("resolving the RDMA route to {dst}"))?;
        self.expect(CmEventKind::RouteResolved, timeout, dst)?;
        Ok(id)
    }

    fn expect(
        self: &Arc<Self>,
        kind: CmEventKind,
        timeout: std::time::Duration,
        dst: SocketAddr,
    ) -> io::Result<()> {
        let ev = self.wait_event(timeout)?;
        if ev.kind == kind {
            Ok(())
        } else {
            Err(io::Error::other(format!(
                "RDMA CM: {:?} instead of {kind:?} for {dst} (status {})",
                ev.kind, ev.status
            )))
        }
    }

    /// The next event, if one waits.
    pub fn next_event(self: &Arc<Self>) -> io::Result<Option<CmEvent>> {
        let mut ev: *mut ffi::rdma_cm_event = std::ptr::null_mut();
        // SAFETY: `ev` receives an event we acknowledge below.
        let rc = unsafe { ffi::rdma_get_cm_event(self.ch.as_ptr(), &mut ev) };
        if rc != 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::WouldBlock {
                return Ok(None);
            }
            return Err(rdma_error("rdma_get_cm_event"));
        }
        // SAFETY: a successful call gives a valid event until it is acknowledged; we copy
        // everything we need out of it first.
        let out = unsafe {
            let e = &*ev;
            let kind = match e.event {
                ffi::rdma_cm_event_type::RDMA_CM_EVENT_CONNECT_REQUEST => {
                    CmEventKind::ConnectRequest
                }
                ffi::rdma_cm_event_type::RDMA_CM_EVENT_ESTABLISHED => CmEventKind::Established,
                ffi::rdma_cm_event_type::RDMA_CM_EVENT_ADDR_RESOLVED => CmEventKind::AddrResolved,
                ffi::rdma_cm_event_type::RDMA_CM_EVENT_ROUTE_RESOLVED => CmEventKind::RouteResolved,
                ffi::rdma_cm_event_type::RDMA_CM_EVENT_REJECTED => CmEventKind::Rejected,
                ffi::rdma_cm_event_type::RDMA_CM_EVENT_DISCONNECTED => CmEventKind::Disconnected,
                ffi::rdma_cm_event_type::RDMA_CM_EVENT_TIMEWAIT_EXIT => CmEventKind::TimewaitExit,
                ffi::rdma_cm_event_type::RDMA_CM_EVENT_DEVICE_REMOVAL => CmEventKind::DeviceRemoval,
                other => CmEventKind::Other(other),
            };
            let conn = &e.param.conn;
            // Connect requests, rejections and (host side) the accept carried by Established
            // bring private data.
            let private = if matches!(
                kind,
                CmEventKind::ConnectRequest | CmEventKind::Rejected | CmEventKind::Established
            ) && !conn.private_data.is_null()
                && conn.private_data_len > 0
            {
                std::slice::from_raw_parts(
                    conn.private_data.cast::<u8>(),
                    usize::from(conn.private_data_len),
                )
                .to_vec()
            } else {
                Vec::new()
            };
            let new_id = (kind == CmEventKind::ConnectRequest)
                .then(|| NonNull::new(e.id))
                .flatten()
                .map(|id| CmId {
                    id,
                    res: None,
                    _channel: self.clone(),
                });
            CmEvent {
                kind,
                id_key: e.id as usize,
                new_id,
                private,
                initiator_depth: conn.initiator_depth,
                responder_resources: conn.responder_resources,
                status: e.status,
            }
        };
        // SAFETY: the event came from rdma_get_cm_event and is acknowledged once.
        unsafe { ffi::rdma_ack_cm_event(ev) };
        Ok(Some(out))
    }
}

impl Drop for EventChannel {
    fn drop(&mut self) {
        // SAFETY: every id created on the channel holds its Arc, so all are destroyed.
        unsafe { ffi::rdma_destroy_event_channel(self.ch.as_ptr()) };
    }
}

fn sockaddr_of(address: SocketAddr) -> libc::sockaddr_storage {
    // SAFETY: sockaddr_storage is plain data; zeroed is a valid value.
    let mut storage: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    match address {
        SocketAddr::V4(a) => {
            let sin = libc::sockaddr_in {
                sin_family: libc::AF_INET as libc::sa_family_t,
                sin_port: a.port().to_be(),
                sin_addr: libc::in_addr {
                    s_addr: u32::from(*a.ip()).to_be(),
                },
                sin_zero: [0; 8],
            };
            // SAFETY: sockaddr_storage is larger than and aligned for sockaddr_in.
            unsafe { std::ptr::write((&mut storage as *mut libc::sockaddr_storage).cast(), sin) };
        }
        SocketAddr::V6(a) => {
            let sin6 = libc::sockaddr_in6 {
                sin6_family: libc::AF_INET6 as libc::sa_family_t,
                sin6_port: a.port().to_be(),
                sin6_flowinfo: a.flowinfo(),
                sin6_addr: libc::in6_addr {
                    s6_addr: a.ip().octets(),
                },
                sin6_scope_id: a.scope_id(),
            };
            // SAFETY: sockaddr_storage is larger than and aligned for sockaddr_in6.
            unsafe { std::ptr::write((&mut storage as *mut libc::sockaddr_storage).cast(), sin6) };
        }
    }
    storage
}

/// SAFETY: `sa` must point to a valid sockaddr of its family.
unsafe fn socket_addr(sa: *const libc::sockaddr) -> Option<SocketAddr> {
    if sa.is_null() {
        return None;
    }
    // SAFETY: the caller guarantees a valid sockaddr; the family says which one.
    unsafe {
        match i32::from((*sa).sa_family) {
            libc::AF_INET => {
                let v4 = &*sa.cast::<libc::sockaddr_in>();
                Some(SocketAddr::V4(SocketAddrV4::new(
                    u32::from_be(v4.sin_addr.s_addr).into(),
                    u16::from_be(v4.sin_port),
                )))
            }
            libc::AF_INET6 => {
                let v6 = &*sa.cast::<libc::sockaddr_in6>();
                Some(SocketAddr::V6(SocketAddrV6::new(
                    v6.sin6_addr.s6_addr.into(),
                    u16::from_be(v6.sin6_port),
                    v6.sin6_flowinfo,
                    v6.sin6_scope_id,
                )))
            }
            _ => None,
        }
    }
}

/// Connection parameters for accept and connect: `private` data (the caller keeps it alive
/// for the call), READ depths, the hardware's retries, and a shared receive queue.
fn conn_param(
    private: &[u8],
    responder_resources: u8,
    initiator_depth: u8,
) -> ffi::rdma_conn_param {
    ffi::rdma_conn_param {
        private_data: private.as_ptr().cast(),
        private_data_len: u8::try_from(private.len()).unwrap_or(u8::MAX),
        responder_resources,
        initiator_depth,
        flow_control: 1,
        retry_count: 7,
        rnr_retry_count: 7,
        srq: 1,
        qp_num: 0,
    }
}

/// An RDMA CM id: a listener, or one connection with its queue pair.
pub struct CmId {
    id: NonNull<ffi::rdma_cm_id>,
    /// The registered memory and queues the id's queue pair uses: kept alive until the
    /// queue pair is destroyed.
    res: Option<Arc<DeviceRes>>,
    /// The channel its events come on: destroyed only after every id on it.
    _channel: Arc<EventChannel>,
}

// SAFETY: librdmacm ids may be used from any thread; the owner serializes access (`&mut`
// for state changes, posting from the one reactor that owns the connection).
unsafe impl Send for CmId {}

/// Local memory a work request reads or fills: data slots of the device (in order), or a
/// registered buffer ([`super::MemReg`]) the caller holds until the request completes.
#[derive(Clone, Copy)]
pub enum Local<'a> {
    Slots(&'a [u32]),
    /// `addr` within memory registered with the queue pair's device under `lkey`.
    Registered {
        addr: u64,
        lkey: u32,
    },
}

/// One work request the target posts on a queue pair's send queue.
pub enum SendWork<'a> {
    /// RDMA READ of `len` bytes of the host's `remote_addr`/`rkey` into `local`.
    Read {
        wr_id: u64,
        local: Local<'a>,
        len: u32,
        remote_addr: u64,
        rkey: u32,
    },
    /// RDMA WRITE of `len` bytes of `local` to the host's buffer, unsignaled (the SEND
    /// after it completes it).
    Write {
        local: Local<'a>,
        len: u32,
        remote_addr: u64,
        rkey: u32,
    },
    /// SEND of a response capsule (copied inline), with invalidation of a host key.
    Send {
        wr_id: u64,
        capsule: &'a [u8],
        invalidate: Option<u32>,
    },
}

/// Most work requests one [`CmId::post`] posts.
pub const MAX_POST: usize = 4;
/// Most data slots one RDMA READ or WRITE gathers.
pub const MAX_SLOTS_PER_WR: usize = 32;

impl CmId {
    /// Identifies the id in events ([`CmEvent::id_key`]).
    pub fn key(&self) -> usize {
        self.id.as_ptr() as usize
    }

    /// The device the id is bound to (its verbs context), if any.
    pub fn device_key(&self) -> usize {
        // SAFETY: the id is valid while `self` lives.
        unsafe { self.id.as_ref().verbs as usize }
    }

    pub fn local_addr(&self) -> Option<SocketAddr> {
        // SAFETY: the id is valid; the route's source address is a sockaddr of its family.
        unsafe { socket_addr(ffi::rdma_get_local_addr(self.id.as_ref())) }
    }

    pub fn peer_addr(&self) -> Option<SocketAddr> {
        // SAFETY: as above, for the destination address.
        unsafe { socket_addr(ffi::rdma_get_peer_addr(self.id.as_ref())) }
    }

    /// Device resources for this id's device (a new protection domain, completion queue,
    /// shared receive queue and registered memory).
    pub fn open_device(&self, config: DeviceConfig) -> io::Result<Arc<DeviceRes>> {
        // SAFETY: the id is valid; its verbs context belongs to librdmacm and lives as long
        // as the device is present.
        let ctx = unsafe { self.id.as_ref().verbs };
        if ctx.is_null() {
            return Err(io::Error::other("RDMA CM id has no device"));
        }
        DeviceRes::open(ctx, config)
    }

    /// Create the id's reliable-connected queue pair on `res`'s queues, room for `send_wr`
    /// send work requests; returns its number.
    pub fn create_qp(&mut self, res: &Arc<DeviceRes>, send_wr: u32) -> io::Result<u32> {
        let mut attr = ffi::ibv_qp_init_attr {
            qp_context: std::ptr::null_mut(),
            send_cq: res.cq.as_ptr(),
            recv_cq: res.cq.as_ptr(),
            srq: res.srq.as_ptr(),
            cap: ffi::ibv_qp_cap {
                max_send_wr: send_wr.min(res.limits.max_qp_wr),
                max_recv_wr: 0,
                max_send_sge: (MAX_SLOTS_PER_WR as u32).min(res.limits.max_sge),
                max_recv_sge: 1,
                max_inline_data: 64,
            },
            qp_type: ffi::ibv_qp_type::IBV_QPT_RC,
            sq_sig_all: 0,
        };
        // SAFETY: the id, PD, CQ and SRQ are valid; `attr` lives for the call.
        let rc = unsafe { ffi::rdma_create_qp(self.id.as_ptr(), res.pd.as_ptr(), &mut attr) };
        check(rc, "rdma_create_qp")?;
        self.res = Some(res.clone());
        // SAFETY: rdma_create_qp succeeded, so the id's qp is set.
        Ok(unsafe { (*self.id.as_ref().qp).qp_num })
    }

    /// Accept a connect request with `private` data; we issue at most `initiator_depth`
    /// RDMA READs at once and serve `responder_resources` of the peer's.
    pub fn accept(
        &self,
        private: &[u8],
        responder_resources: u8,
        initiator_depth: u8,
    ) -> io::Result<()> {
        let mut param = conn_param(private, responder_resources, initiator_depth);
        // SAFETY: the id has a queue pair; `param` and `private` live for the call.
        let rc = unsafe { ffi::rdma_accept(self.id.as_ptr(), &mut param) };
        check(rc, "rdma_accept")
    }

    /// Reject a connect request with `private` data.
    pub fn reject(&self, private: &[u8]) -> io::Result<()> {
        // SAFETY: the id is a connect request's; `private` lives for the call.
        let rc = unsafe {
            ffi::rdma_reject(
                self.id.as_ptr(),
                private.as_ptr().cast(),
                u8::try_from(private.len()).unwrap_or(u8::MAX),
            )
        };
        check(rc, "rdma_reject")
    }

    /// Host side: connect a resolved id whose queue pair exists, with `private` data; the
    /// outcome comes as an Established or Rejected event.
    pub fn connect(
        &self,
        private: &[u8],
        initiator_depth: u8,
        responder_resources: u8,
    ) -> io::Result<()> {
        let mut param = conn_param(private, responder_resources, initiator_depth);
        // SAFETY: the id is resolved and has a queue pair; `param` and `private` live for the
        // call.
        let rc = unsafe { ffi::rdma_connect(self.id.as_ptr(), &mut param) };
        check(rc, "rdma_connect")
    }

    /// Start tearing the connection down (the peer sees a disconnect; our queue pair's
    /// outstanding work completes with flush errors).
    pub fn disconnect(&self) {
        // SAFETY: the id is valid; disconnecting twice only returns an error.
        unsafe { ffi::rdma_disconnect(self.id.as_ptr()) };
    }

    /// Post work requests on the queue pair's send queue, in order, in one call.
    pub fn post(&self, works: &[SendWork<'_>]) -> io::Result<()> {
        let Some(res) = self.res.as_ref() else {
            return Err(io::Error::other("no queue pair"));
        };
        if works.is_empty() || works.len() > MAX_POST {
            return Err(io::Error::other("bad number of work requests"));
        }
        let empty_sge = ffi::ibv_sge {
            addr: 0,
            length: 0,
            lkey: 0,
        };
        let mut sges = [[empty_sge; MAX_SLOTS_PER_WR]; MAX_POST];
        // SAFETY: ibv_send_wr is plain data; zeroed is a valid, empty request.
        let mut wrs: [ffi::ibv_send_wr; MAX_POST] = unsafe { std::mem::zeroed() };
        let mut inline = [[0u8; 64]; MAX_POST];
        for (i, w) in works.iter().enumerate() {
            let wr = &mut wrs[i];
            match *w {
                SendWork::Read {
                    wr_id,
                    local,
                    len,
                    remote_addr,
                    rkey,
                } => {
                    let n = local_sges(res, local, len, &mut sges[i])?;
                    wr.wr_id = wr_id;
                    wr.opcode = ffi::ibv_wr_opcode::IBV_WR_RDMA_READ;
                    wr.send_flags = ffi::ibv_send_flags::IBV_SEND_SIGNALED.0;
                    wr.num_sge = n as libc::c_int;
                    wr.wr.rdma = ffi::rdma_t { remote_addr, rkey };
                }
                SendWork::Write {
                    local,
                    len,
                    remote_addr,
                    rkey,
                } => {
                    let n = local_sges(res, local, len, &mut sges[i])?;
                    wr.opcode = ffi::ibv_wr_opcode::IBV_WR_RDMA_WRITE;
                    wr.num_sge = n as libc::c_int;
                    wr.wr.rdma = ffi::rdma_t { remote_addr, rkey };
                }
                SendWork::Send {
                    wr_id,
                    capsule,
                    invalidate,
                } => {
                    let n = capsule.len().min(64);
                    inline[i][..n].copy_from_slice(&capsule[..n]);
                    sges[i][0] = ffi::ibv_sge {
                        addr: inline[i].as_ptr() as u64,
                        length: n as u32,
                        lkey: 0,
                    };
                    wr.wr_id = wr_id;
                    wr.num_sge = 1;
                    wr.send_flags = (ffi::ibv_send_flags::IBV_SEND_SIGNALED
                        | ffi::ibv_send_flags::IBV_SEND_INLINE)
                        .0;
                    match invalidate {
                        Some(rkey) => {
                            wr.opcode = ffi::ibv_wr_opcode::IBV_WR_SEND_WITH_INV;
                            wr.imm_data_invalidated_rkey_union.invalidated_rkey = rkey;
                        }
                        None => wr.opcode = ffi::ibv_wr_opcode::IBV_WR_SEND,
                    }
                }
            }
        }
        for i in 0..works.len() {
            wrs[i].sg_list = sges[i].as_mut_ptr();
            if i + 1 < works.len() {
                let next: *mut ffi::ibv_send_wr = &mut wrs[i + 1];
                wrs[i].next = next;
            }
        }
        let mut bad: *mut ffi::ibv_send_wr = std::ptr::null_mut();
        // SAFETY: the id's queue pair exists (res is set only after rdma_create_qp); the
        // request chain and its SGE lists live on this stack frame for the call (inline data
        // is copied by the provider); the data slots are registered memory of `res`, which
        // this id keeps alive until its queue pair is destroyed, and a registered buffer is
        // held by the caller until the request completes or the queue pair is destroyed.
        let rc = unsafe { ffi::ibv_post_send(self.id.as_ref().qp, wrs.as_mut_ptr(), &mut bad) };
        check(rc, "ibv_post_send")
    }
}

impl Drop for CmId {
    fn drop(&mut self) {
        // SAFETY: the id is ours; its queue pair (if any) is destroyed first, which flushes
        // its work before `res` (the memory it used) can go.
        unsafe {
            if !self.id.as_ref().qp.is_null() {
                ffi::rdma_destroy_qp(self.id.as_ptr());
            }
            ffi::rdma_destroy_id(self.id.as_ptr());
        }
    }
}

/// The scatter-gather list of `len` bytes of `local`.
fn local_sges(
    res: &DeviceRes,
    local: Local<'_>,
    len: u32,
    out: &mut [ffi::ibv_sge; MAX_SLOTS_PER_WR],
) -> io::Result<usize> {
    match local {
        Local::Slots(slots) => res.slot_sges(slots, len, out),
        Local::Registered { addr, lkey } => {
            out[0] = ffi::ibv_sge {
                addr,
                length: len,
                lkey,
            };
            Ok(1)
        }
    }
}
