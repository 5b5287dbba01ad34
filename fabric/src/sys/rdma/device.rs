//! One reactor's (or host queue's) resources on an RDMA device: protection domain, polled
//! completion queue, shared receive queue with registered receive buffers, and registered
//! data slots.
#![allow(unsafe_code)]

use std::io;
use std::os::fd::BorrowedFd;
use std::ptr::NonNull;
use std::sync::Arc;

use rdma_mummy_sys as ffi;

use super::cm::MAX_SLOTS_PER_WR;
use super::{check, rdma_error};

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
    /// The peer may RDMA READ and WRITE the data slots (a host's buffers); a target's
    /// slots are only reached by its own work requests.
    pub remote_access: bool,
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
    fn new(pd: NonNull<ffi::ibv_pd>, len: usize, remote: bool) -> io::Result<Region> {
        let layout = std::alloc::Layout::from_size_align(len.max(4096), 4096)
            .map_err(|e| io::Error::other(format!("registered memory: {e}")))?;
        // SAFETY: the layout has a non-zero size.
        let ptr = unsafe { std::alloc::alloc_zeroed(layout) };
        let ptr = NonNull::new(ptr).ok_or_else(|| io::Error::other("out of memory"))?;
        let mut access = ffi::ibv_access_flags::IBV_ACCESS_LOCAL_WRITE;
        if remote {
            access = access
                | ffi::ibv_access_flags::IBV_ACCESS_REMOTE_READ
                | ffi::ibv_access_flags::IBV_ACCESS_REMOTE_WRITE;
        }
        // SAFETY: `ptr` is `len` bytes we own until the region is dropped (after the MR).
        let mr = unsafe {
            ffi::ibv_reg_mr(
                pd.as_ptr(),
                ptr.as_ptr().cast(),
                len,
                access.0 as libc::c_int,
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
    pub(super) cq: NonNull<ffi::ibv_cq>,
    /// Where the CQ's notifications arrive once armed ([`DeviceRes::arm`]): an idle
    /// reactor sleeps on it; a busy one polls and never arms.
    channel: NonNull<ffi::ibv_comp_channel>,
    pub(super) srq: NonNull<ffi::ibv_srq>,
    recv: Region,
    data: Region,
    pub config: DeviceConfig,
    pub limits: DeviceLimits,
    /// Last: fields drop in order, and the regions must be deregistered before the
    /// protection domain goes.
    pub(super) pd: Pd,
}

/// A protection domain, deallocated when dropped.
pub(super) struct Pd(NonNull<ffi::ibv_pd>);

impl Pd {
    pub(super) fn as_ptr(&self) -> *mut ffi::ibv_pd {
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
    pub(super) fn open(
        ctx: *mut ffi::ibv_context,
        config: DeviceConfig,
    ) -> io::Result<Arc<DeviceRes>> {
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
        // SAFETY: as above.
        let channel = NonNull::new(unsafe { ffi::ibv_create_comp_channel(ctx) })
            .ok_or_else(|| rdma_error("ibv_create_comp_channel"))?;
        // SAFETY: the channel was just created; its fd is open while it lives.
        let fd = unsafe { channel.as_ref().fd };
        let nonblocking = nix::fcntl::fcntl(
            // SAFETY: `fd` is the channel's, open for this call.
            unsafe { BorrowedFd::borrow_raw(fd) },
            nix::fcntl::FcntlArg::F_SETFL(nix::fcntl::OFlag::O_NONBLOCK),
        );
        if let Err(e) = nonblocking {
            // SAFETY: nothing uses the channel yet.
            unsafe { ffi::ibv_destroy_comp_channel(channel.as_ptr()) };
            return Err(io::Error::other(format!("completion channel: {e}")));
        }
        let cq_entries = config.cq_entries.min(attr.max_cqe.max(1) as u32) as libc::c_int;
        // SAFETY: as above; the channel outlives the CQ (destroyed after it in Drop).
        let cq = unsafe {
            ffi::ibv_create_cq(ctx, cq_entries, std::ptr::null_mut(), channel.as_ptr(), 0)
        };
        let Some(cq) = NonNull::new(cq) else {
            let e = rdma_error("ibv_create_cq");
            // SAFETY: nothing uses the channel yet.
            unsafe { ffi::ibv_destroy_comp_channel(channel.as_ptr()) };
            return Err(e);
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
            // SAFETY: nothing uses the CQ or the channel yet.
            unsafe {
                ffi::ibv_destroy_cq(cq.as_ptr());
                ffi::ibv_destroy_comp_channel(channel.as_ptr());
            }
            return Err(e);
        };
        let config = DeviceConfig {
            recv_buffers,
            ..config
        };
        let regions = Region::new(
            pd.0,
            config.recv_buffers as usize * config.recv_len as usize,
            false,
        )
        .and_then(|recv| {
            Region::new(
                pd.0,
                config.data_slots as usize * config.slot_len as usize,
                config.remote_access,
            )
            .map(|data| (recv, data))
        });
        let (recv, data) = match regions {
            Ok(r) => r,
            Err(e) => {
                // SAFETY: nothing uses them yet.
                unsafe {
                    ffi::ibv_destroy_srq(srq.as_ptr());
                    ffi::ibv_destroy_cq(cq.as_ptr());
                    ffi::ibv_destroy_comp_channel(channel.as_ptr());
                }
                return Err(e);
            }
        };
        let res = DeviceRes {
            cq,
            channel,
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

    /// Where data slot `slot` is for the peer: its address and the region's remote key
    /// (slots registered with `remote_access` only).
    pub fn remote_slot(&self, slot: u32) -> Option<(u64, u32)> {
        if !self.config.remote_access || slot >= self.config.data_slots {
            return None;
        }
        let addr =
            self.data.ptr.as_ptr() as u64 + u64::from(slot) * u64::from(self.config.slot_len);
        // SAFETY: the MR is valid while the region lives.
        Some((addr, unsafe { self.data.mr.as_ref().rkey }))
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

    pub(super) fn slot_sges(
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

    /// The completion channel's descriptor: readable once an armed CQ got a completion.
    pub fn notify_fd(&self) -> BorrowedFd<'_> {
        // SAFETY: the channel and its fd live as long as `self`.
        unsafe { BorrowedFd::borrow_raw(self.channel.as_ref().fd) }
    }

    /// Ask for one notification on the channel at the CQ's next completion. A completion
    /// that arrived before this raises none: poll once more after arming.
    pub fn arm(&self) -> io::Result<()> {
        // SAFETY: the CQ is ours, created with the channel.
        check(
            unsafe { ffi::ibv_req_notify_cq(self.cq.as_ptr(), 0) },
            "ibv_req_notify_cq",
        )
    }

    /// Take and acknowledge the notifications that arrived (the channel is non-blocking).
    pub fn take_notifications(&self) {
        loop {
            let mut cq: *mut ffi::ibv_cq = std::ptr::null_mut();
            let mut ctx: *mut libc::c_void = std::ptr::null_mut();
            // SAFETY: the channel is ours; both out pointers live for the call.
            let rc = unsafe { ffi::ibv_get_cq_event(self.channel.as_ptr(), &mut cq, &mut ctx) };
            if rc != 0 || cq.is_null() {
                return;
            }
            // SAFETY: `cq` is the CQ the event came for (ours); every event is acknowledged
            // at once, as destroying the CQ requires.
            unsafe { ffi::ibv_ack_cq_events(cq, 1) };
        }
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
        // destroyed; every notification was acknowledged when taken; the channel goes after
        // its CQ; the regions deregister in their own Drop after this, and the PD goes last
        // (field order).
        unsafe {
            ffi::ibv_destroy_srq(self.srq.as_ptr());
            ffi::ibv_destroy_cq(self.cq.as_ptr());
            ffi::ibv_destroy_comp_channel(self.channel.as_ptr());
        }
    }
}
