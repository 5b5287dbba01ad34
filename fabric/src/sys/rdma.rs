//! The rdma-core seam (libibverbs and librdmacm, loaded at run time by rdma-mummy-sys, the
//! loader under the `sideway` crate): the RDMA connection manager, and per device the
//! protection domain, completion queue, shared receive queue and registered memory of one
//! reactor. Everything the NIC reads or writes lives in memory registered here and owned by
//! [`DeviceRes`]; queue pairs hold it alive, so no work request ever outlives its memory.
//! Registered memory is only copied in and out through raw pointers, never made a slice
//! while the NIC may use it.
#![allow(unsafe_code)]

use std::io;
use std::net::{SocketAddr, SocketAddrV4, SocketAddrV6};
use std::os::fd::RawFd;
use std::ptr::NonNull;
use std::sync::Arc;

use rdma_mummy_sys as ffi;

/// What a missing rdma-core looks like: its loader answers every call with EOPNOTSUPP.
fn rdma_error(op: &str) -> io::Error {
    let e = io::Error::last_os_error();
    if e.raw_os_error() == Some(libc::EOPNOTSUPP) || e.raw_os_error() == Some(libc::ENOSYS) {
        return io::Error::new(
            io::ErrorKind::Unsupported,
            format!(
                "{op}: NVMe/RDMA needs rdma-core at run time (libibverbs.so.1, librdmacm.so.1 \
                 and a provider, e.g. Debian's libibverbs1 librdmacm1 ibverbs-providers) and \
                 the kernel's RDMA stack (/dev/infiniband)"
            ),
        );
    }
    io::Error::new(e.kind(), format!("{op}: {e}"))
}

fn check(rc: libc::c_int, op: &str) -> io::Result<()> {
    if rc == 0 {
        Ok(())
    } else {
        // rdma-core returns -1 with errno, or the error number itself.
        if rc > 0 {
            return Err(io::Error::new(
                io::Error::from_raw_os_error(rc).kind(),
                format!("{op}: {}", io::Error::from_raw_os_error(rc)),
            ));
        }
        Err(rdma_error(op))
    }
}

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

    /// A listening id bound to `address` (port 0: the CM picks one).
    pub fn listen(self: &Arc<Self>, address: SocketAddr, backlog: i32) -> io::Result<CmId> {
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
        let id = CmId {
            id: NonNull::new(raw).ok_or_else(|| rdma_error("rdma_create_id"))?,
            res: None,
            _channel: self.clone(),
        };
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
                ffi::rdma_cm_event_type::RDMA_CM_EVENT_DISCONNECTED => CmEventKind::Disconnected,
                ffi::rdma_cm_event_type::RDMA_CM_EVENT_TIMEWAIT_EXIT => CmEventKind::TimewaitExit,
                ffi::rdma_cm_event_type::RDMA_CM_EVENT_DEVICE_REMOVAL => CmEventKind::DeviceRemoval,
                other => CmEventKind::Other(other),
            };
            let conn = &e.param.conn;
            let private = if kind == CmEventKind::ConnectRequest
                && !conn.private_data.is_null()
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

/// One work request the target posts on a queue pair's send queue.
pub enum SendWork<'a> {
    /// RDMA READ of the host's `remote_addr`/`rkey` into data slots `slots` (in order,
    /// `len` bytes in all).
    Read {
        wr_id: u64,
        slots: &'a [u32],
        len: u32,
        remote_addr: u64,
        rkey: u32,
    },
    /// RDMA WRITE of `len` bytes of data slots `slots` to the host's buffer, unsignaled
    /// (the SEND after it completes it).
    Write {
        slots: &'a [u32],
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
        let mut param = ffi::rdma_conn_param {
            private_data: private.as_ptr().cast(),
            private_data_len: u8::try_from(private.len()).unwrap_or(u8::MAX),
            responder_resources,
            initiator_depth,
            flow_control: 1,
            retry_count: 7,
            rnr_retry_count: 7,
            srq: 1,
            qp_num: 0,
        };
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
                    slots,
                    len,
                    remote_addr,
                    rkey,
                } => {
                    let n = res.slot_sges(slots, len, &mut sges[i])?;
                    wr.wr_id = wr_id;
                    wr.opcode = ffi::ibv_wr_opcode::IBV_WR_RDMA_READ;
                    wr.send_flags = ffi::ibv_send_flags::IBV_SEND_SIGNALED.0;
                    wr.num_sge = n as libc::c_int;
                    wr.wr.rdma = ffi::rdma_t { remote_addr, rkey };
                }
                SendWork::Write {
                    slots,
                    len,
                    remote_addr,
                    rkey,
                } => {
                    let n = res.slot_sges(slots, len, &mut sges[i])?;
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
        // this id keeps alive until its queue pair is destroyed.
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

/// Sizes of one reactor's resources on a device.
#[derive(Clone, Copy, Debug)]
pub struct DeviceConfig {
    /// Receive buffers in the shared receive queue.
    pub recv_buffers: u32,
    /// Bytes of each receive buffer (the largest command capsule).
    pub recv_len: u32,
    /// Data slots for RDMA READ/WRITE, and the bytes of each.
    pub data_slots: u32,
    pub slot_len: u32,
    /// Completion queue entries.
    pub cq_entries: u32,
}

/// Device limits that size queue pairs.
#[derive(Clone, Copy, Debug)]
pub struct DeviceLimits {
    pub max_qp_wr: u32,
    pub max_sge: u32,
    /// Most RDMA READs a queue pair may have outstanding as initiator, and serve as
    /// responder.
    pub max_qp_init_rd_atom: u8,
    pub max_qp_rd_atom: u8,
}

/// Registered memory: `len` bytes, page aligned, owned here.
struct Region {
    ptr: NonNull<u8>,
    len: usize,
    mr: NonNull<ffi::ibv_mr>,
}

impl Region {
    fn new(pd: NonNull<ffi::ibv_pd>, len: usize) -> io::Result<Region> {
        let layout = std::alloc::Layout::from_size_align(len.max(4096), 4096)
            .map_err(|e| io::Error::other(format!("registered memory: {e}")))?;
        // SAFETY: the layout has a non-zero size.
        let ptr = unsafe { std::alloc::alloc_zeroed(layout) };
        let ptr = NonNull::new(ptr).ok_or_else(|| io::Error::other("out of memory"))?;
        // SAFETY: `ptr` is `len` bytes we own until the region is dropped (after the MR).
        let mr = unsafe {
            ffi::ibv_reg_mr(
                pd.as_ptr(),
                ptr.as_ptr().cast(),
                len,
                ffi::ibv_access_flags::IBV_ACCESS_LOCAL_WRITE.0 as libc::c_int,
            )
        };
        match NonNull::new(mr) {
            Some(mr) => Ok(Region { ptr, len, mr }),
            None => {
                let e = rdma_error("ibv_reg_mr");
                // SAFETY: allocated above with this layout, not registered.
                unsafe { std::alloc::dealloc(ptr.as_ptr(), layout) };
                Err(e)
            }
        }
    }

    fn lkey(&self) -> u32 {
        // SAFETY: the MR is valid while the region lives.
        unsafe { self.mr.as_ref().lkey }
    }
}

impl Drop for Region {
    fn drop(&mut self) {
        // SAFETY: deregistered before the memory is freed; the layout is the one allocated.
        unsafe {
            ffi::ibv_dereg_mr(self.mr.as_ptr());
            if let Ok(layout) = std::alloc::Layout::from_size_align(self.len.max(4096), 4096) {
                std::alloc::dealloc(self.ptr.as_ptr(), layout);
            }
        }
    }
}

/// One work completion.
#[derive(Clone, Copy, Debug, Default)]
pub struct Completion {
    pub wr_id: u64,
    pub ok: bool,
    /// `ibv_wc_status` when not ok.
    pub status: u32,
    pub is_recv: bool,
    pub byte_len: u32,
    pub qp_num: u32,
}

/// A reactor's resources on one RDMA device: protection domain, completion queue (shared
/// by its queue pairs' send and receive sides), shared receive queue with its receive
/// buffers, and the data slots RDMA READ and WRITE move data through.
pub struct DeviceRes {
    cq: NonNull<ffi::ibv_cq>,
    srq: NonNull<ffi::ibv_srq>,
    recv: Region,
    data: Region,
    pub config: DeviceConfig,
    pub limits: DeviceLimits,
    /// Last: fields drop in order, and the regions must be deregistered before the
    /// protection domain goes.
    pd: Pd,
}

/// A protection domain, deallocated when dropped.
struct Pd(NonNull<ffi::ibv_pd>);

impl Pd {
    fn as_ptr(&self) -> *mut ffi::ibv_pd {
        self.0.as_ptr()
    }
}

impl Drop for Pd {
    fn drop(&mut self) {
        // SAFETY: everything registered in or created on the PD is gone by now (DeviceRes
        // drops it last).
        unsafe { ffi::ibv_dealloc_pd(self.0.as_ptr()) };
    }
}

// SAFETY: verbs objects may be used from any thread; the reactor that owns the resources is
// the only one polling the CQ, posting receives and touching the slots; other threads only
// create queue pairs on them.
unsafe impl Send for DeviceRes {}
// SAFETY: as above.
unsafe impl Sync for DeviceRes {}

impl DeviceRes {
    fn open(ctx: *mut ffi::ibv_context, config: DeviceConfig) -> io::Result<Arc<DeviceRes>> {
        // SAFETY: ibv_device_attr is plain data.
        let mut attr: ffi::ibv_device_attr = unsafe { std::mem::zeroed() };
        // SAFETY: `ctx` is a live verbs context; `attr` is written by the call.
        check(
            unsafe { ffi::ibv_query_device(ctx, &mut attr) },
            "ibv_query_device",
        )?;
        let limits = DeviceLimits {
            max_qp_wr: attr.max_qp_wr.max(1) as u32,
            max_sge: attr.max_sge.max(1) as u32,
            max_qp_init_rd_atom: attr.max_qp_init_rd_atom.clamp(0, 255) as u8,
            max_qp_rd_atom: attr.max_qp_rd_atom.clamp(0, 255) as u8,
        };
        // SAFETY: as above.
        let pd = Pd(NonNull::new(unsafe { ffi::ibv_alloc_pd(ctx) })
            .ok_or_else(|| rdma_error("ibv_alloc_pd"))?);
        let cq_entries = config.cq_entries.min(attr.max_cqe.max(1) as u32) as libc::c_int;
        // SAFETY: as above; no completion channel (the reactor polls).
        let cq = unsafe {
            ffi::ibv_create_cq(
                ctx,
                cq_entries,
                std::ptr::null_mut(),
                std::ptr::null_mut(),
                0,
            )
        };
        let Some(cq) = NonNull::new(cq) else {
            return Err(rdma_error("ibv_create_cq"));
        };
        let recv_buffers = config.recv_buffers.min(attr.max_srq_wr.max(1) as u32);
        let mut srq_attr = ffi::ibv_srq_init_attr {
            srq_context: std::ptr::null_mut(),
            attr: ffi::ibv_srq_attr {
                max_wr: recv_buffers,
                max_sge: 1,
                srq_limit: 0,
            },
        };
        // SAFETY: the PD is valid; `srq_attr` lives for the call.
        let srq = unsafe { ffi::ibv_create_srq(pd.as_ptr(), &mut srq_attr) };
        let Some(srq) = NonNull::new(srq) else {
            let e = rdma_error("ibv_create_srq");
            // SAFETY: nothing uses the CQ yet.
            unsafe { ffi::ibv_destroy_cq(cq.as_ptr()) };
            return Err(e);
        };
        let config = DeviceConfig {
            recv_buffers,
            ..config
        };
        let regions = Region::new(
            pd.0,
            config.recv_buffers as usize * config.recv_len as usize,
        )
        .and_then(|recv| {
            Region::new(pd.0, config.data_slots as usize * config.slot_len as usize)
                .map(|data| (recv, data))
        });
        let (recv, data) = match regions {
            Ok(r) => r,
            Err(e) => {
                // SAFETY: nothing uses them yet.
                unsafe {
                    ffi::ibv_destroy_srq(srq.as_ptr());
                    ffi::ibv_destroy_cq(cq.as_ptr());
                }
                return Err(e);
            }
        };
        let res = DeviceRes {
            cq,
            srq,
            recv,
            data,
            config,
            limits,
            pd,
        };
        for i in 0..config.recv_buffers {
            res.post_recv(i)?;
        }
        Ok(Arc::new(res))
    }

    /// Give receive buffer `index` (back) to the shared receive queue.
    pub fn post_recv(&self, index: u32) -> io::Result<()> {
        if index >= self.config.recv_buffers {
            return Err(io::Error::other("no such receive buffer"));
        }
        let len = self.config.recv_len;
        let mut sge = ffi::ibv_sge {
            addr: self.recv.ptr.as_ptr() as u64 + u64::from(index) * u64::from(len),
            length: len,
            lkey: self.recv.lkey(),
        };
        let mut wr = ffi::ibv_recv_wr {
            wr_id: u64::from(index),
            next: std::ptr::null_mut(),
            sg_list: &mut sge,
            num_sge: 1,
        };
        let mut bad: *mut ffi::ibv_recv_wr = std::ptr::null_mut();
        // SAFETY: the buffer is inside the registered receive region, which lives as long
        // as the SRQ (both are ours); `wr` and `sge` live for the call.
        let rc = unsafe { ffi::ibv_post_srq_recv(self.srq.as_ptr(), &mut wr, &mut bad) };
        check(rc, "ibv_post_srq_recv")
    }

    /// Copy the first `len` bytes of receive buffer `index` (completed, not yet posted
    /// again) into `dst`; returns the bytes copied.
    pub fn copy_received(&self, index: u32, len: u32, dst: &mut [u8]) -> usize {
        if index >= self.config.recv_buffers {
            return 0;
        }
        let n = (len.min(self.config.recv_len) as usize).min(dst.len());
        // SAFETY: the range is inside the receive region; the NIC is done with a completed
        // buffer until it is posted again; no reference to the region is made.
        unsafe {
            std::ptr::copy_nonoverlapping(
                self.recv
                    .ptr
                    .as_ptr()
                    .add(index as usize * self.config.recv_len as usize),
                dst.as_mut_ptr(),
                n,
            );
        }
        n
    }

    /// Copy `src` into data slots `slots` (consecutive bytes across them), for an RDMA
    /// WRITE; false if it does not fit.
    pub fn copy_to_slots(&self, slots: &[u32], src: &[u8]) -> bool {
        self.walk_slots(slots, src.len(), |slot_ptr, off, n| {
            // SAFETY: `slot_ptr` has `n` bytes inside the data region (checked by
            // walk_slots); no work request uses a slot the caller holds for this copy.
            unsafe { std::ptr::copy_nonoverlapping(src.as_ptr().add(off), slot_ptr, n) };
        })
    }

    /// Copy data slots `slots` (after an RDMA READ into them completed) into `dst`.
    pub fn copy_from_slots(&self, slots: &[u32], dst: &mut [u8]) -> bool {
        let len = dst.len();
        let dst_ptr = dst.as_mut_ptr();
        self.walk_slots(slots, len, |slot_ptr, off, n| {
            // SAFETY: as in copy_to_slots; the READ into these slots has completed.
            unsafe { std::ptr::copy_nonoverlapping(slot_ptr, dst_ptr.add(off), n) };
        })
    }

    fn walk_slots(
        &self,
        slots: &[u32],
        len: usize,
        mut f: impl FnMut(*mut u8, usize, usize),
    ) -> bool {
        let slot_len = self.config.slot_len as usize;
        if slots.len() * slot_len < len {
            return false;
        }
        let mut off = 0;
        for &s in slots {
            if off >= len {
                break;
            }
            if s >= self.config.data_slots {
                return false;
            }
            let n = slot_len.min(len - off);
            // SAFETY: slot `s` is inside the data region.
            let p = unsafe { self.data.ptr.as_ptr().add(s as usize * slot_len) };
            f(p, off, n);
            off += n;
        }
        true
    }

    fn slot_sges(
        &self,
        slots: &[u32],
        len: u32,
        out: &mut [ffi::ibv_sge; MAX_SLOTS_PER_WR],
    ) -> io::Result<usize> {
        let slot_len = self.config.slot_len;
        if slots.len() > MAX_SLOTS_PER_WR
            || (slots.len() as u64) * u64::from(slot_len) < u64::from(len)
        {
            return Err(io::Error::other("data slots do not hold the transfer"));
        }
        let mut left = len;
        let mut n = 0;
        for &s in slots {
            if left == 0 {
                break;
            }
            if s >= self.config.data_slots {
                return Err(io::Error::other("no such data slot"));
            }
            let take = left.min(slot_len);
            out[n] = ffi::ibv_sge {
                addr: self.data.ptr.as_ptr() as u64 + u64::from(s) * u64::from(slot_len),
                length: take,
                lkey: self.data.lkey(),
            };
            left -= take;
            n += 1;
        }
        Ok(n)
    }

    /// Take up to `out.len()` completions without blocking; returns how many.
    pub fn poll(&self, out: &mut [Completion]) -> usize {
        const BATCH: usize = 32;
        // SAFETY: ibv_wc is plain data.
        let mut wcs: [ffi::ibv_wc; BATCH] = unsafe { std::mem::zeroed() };
        let want = out.len().min(BATCH) as i32;
        // SAFETY: the CQ is ours and polled by this reactor only; `wcs` has room for `want`.
        let n = unsafe { ffi::ibv_poll_cq(self.cq.as_ptr(), want, wcs.as_mut_ptr()) };
        let n = n.max(0) as usize;
        for (o, wc) in out.iter_mut().zip(&wcs[..n]) {
            *o = Completion {
                wr_id: wc.wr_id,
                ok: wc.status == ffi::ibv_wc_status::IBV_WC_SUCCESS,
                status: wc.status,
                is_recv: wc.opcode & ffi::ibv_wc_opcode::IBV_WC_RECV != 0,
                byte_len: wc.byte_len,
                qp_num: wc.qp_num,
            };
        }
        n
    }
}

impl Drop for DeviceRes {
    fn drop(&mut self) {
        // SAFETY: the last Arc is gone, so every queue pair that used these queues is
        // destroyed; the regions deregister in their own Drop after this, and the PD goes
        // last (field order).
        unsafe {
            ffi::ibv_destroy_srq(self.srq.as_ptr());
            ffi::ibv_destroy_cq(self.cq.as_ptr());
        }
    }
}
