//! The rdma-core seam (libibverbs and librdmacm, loaded at run time by rdma-mummy-sys, the
//! loader under the `sideway` crate): the RDMA connection manager, and per device the
//! protection domain, completion queue, shared receive queue and registered memory of one
//! reactor. Everything the NIC reads or writes lives in memory registered here and owned by
//! [`DeviceRes`], or in pooled data buffers registered by [`MemReg`]; queue pairs hold the
//! device alive, and a buffer is held by the reactor while a work request uses it, so no
//! work request ever outlives its memory. Registered memory is never made a slice while
//! the NIC may use it.
#![allow(unsafe_code)]

use std::io;

mod cm;
mod device;
mod mem;
pub use cm::{CmEventKind, CmId, EventChannel, Local, SendWork, MAX_SLOTS_PER_WR};
pub use device::{Completion, DeviceConfig, DeviceRes};
pub use mem::MemReg;

/// What a missing rdma-core looks like: its loader answers every call with EOPNOTSUPP.
pub(super) fn rdma_error(op: &str) -> io::Error {
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

pub(super) fn check(rc: libc::c_int, op: &str) -> io::Result<()> {
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
