//! Heap memory registered with an RDMA device: a pooled data buffer's vector, so the NIC
//! moves a command's data straight into or out of the buffer the backend reads into or
//! writes from, with no copy through the device's data slots.
//!
//! The NIC reaches a registered vector only through a work request the reactor posts while
//! it holds the buffer (no reference into it alive), and the reactor polls that request's
//! completion before the buffer is used again; between those, the vector is ordinary memory.
#![allow(unsafe_code)]

use std::io;
use std::ptr::NonNull;
use std::sync::Arc;

use rdma_mummy_sys as ffi;

use super::rdma_error;
use super::DeviceRes;

/// A memory registration of `len` bytes at `addr` in `dev`'s protection domain,
/// deregistered when dropped.
pub struct MemReg {
    mr: NonNull<ffi::ibv_mr>,
    addr: usize,
    len: usize,
    /// Keeps the protection domain alive until the registration is gone.
    dev: Arc<DeviceRes>,
}

// SAFETY: an MR handle may be used and deregistered from any thread (libibverbs is
// thread-safe); the memory it covers is owned by whoever holds the buffer, not by the MR.
unsafe impl Send for MemReg {}
// SAFETY: as above; `&MemReg` only reads the MR's keys.
unsafe impl Sync for MemReg {}

impl MemReg {
    /// Register the whole allocation of `vec` (its capacity, so the buffer stays
    /// registered when it is reused for another length) for local access by `dev`'s NIC:
    /// RDMA READ lands in it, RDMA WRITE sends from it.
    pub fn register(dev: &Arc<DeviceRes>, vec: &mut Vec<u8>) -> io::Result<MemReg> {
        let len = vec.capacity();
        if len == 0 {
            return Err(io::Error::other("nothing to register"));
        }
        let addr = vec.as_mut_ptr();
        let access = ffi::ibv_access_flags::IBV_ACCESS_LOCAL_WRITE;
        // SAFETY: `addr` is `len` bytes of one live allocation; registering pins its pages
        // and creates no reference; the NIC touches it only through work requests that
        // name this MR's key, which the reactor posts while it owns the buffer.
        let mr =
            unsafe { ffi::ibv_reg_mr(dev.pd.as_ptr(), addr.cast(), len, access.0 as libc::c_int) };
        let mr = NonNull::new(mr).ok_or_else(|| rdma_error("ibv_reg_mr"))?;
        Ok(MemReg {
            mr,
            addr: addr as usize,
            len,
            dev: dev.clone(),
        })
    }

    /// The local key work requests name this memory with.
    pub fn lkey(&self) -> u32 {
        // SAFETY: the MR is valid while `self` lives.
        unsafe { self.mr.as_ref().lkey }
    }

    /// Whether this registration belongs to `dev` and covers `len` bytes at `ptr`.
    pub fn covers(&self, dev: &DeviceRes, ptr: *const u8, len: usize) -> bool {
        let start = ptr as usize;
        std::ptr::eq(Arc::as_ptr(&self.dev), dev)
            && start >= self.addr
            && start
                .checked_add(len)
                .is_some_and(|end| end <= self.addr + self.len)
    }

    /// Whether this registration starts at `ptr` and spans `capacity` bytes: the same
    /// allocation it was made for.
    pub fn is_of(&self, ptr: *const u8, capacity: usize) -> bool {
        self.addr == ptr as usize && self.len == capacity
    }
}

impl Drop for MemReg {
    fn drop(&mut self) {
        // SAFETY: the MR is ours; no work request naming it is outstanding (the buffer it
        // covers is being dropped or returned, which the reactor does only after the
        // request completed or its queue pair was destroyed).
        unsafe { ffi::ibv_dereg_mr(self.mr.as_ptr()) };
    }
}

impl core::fmt::Debug for MemReg {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "MemReg({} bytes at {:#x})", self.len, self.addr)
    }
}
