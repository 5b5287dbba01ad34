//! One reactor's data buffers on one RDMA device, registered with its NIC: a command's data
//! is fetched by RDMA READ straight into the buffer the backend writes from, and a read's
//! data goes by RDMA WRITE straight from the buffer the backend read into. Buffers are
//! registered once, when first taken, and keep their registration while pooled.

use std::sync::Arc;

use tracing::warn;

use crate::buf_pool::{BufPool, BufSource};
use crate::queue::DataBuf;
use crate::sys::rdma::DeviceRes;

/// Small buffers a reactor keeps registered per device (16 KiB each: 8 MiB pinned).
const KEEP_SMALL: usize = 512;
/// Bytes of large buffers kept registered per size class.
const KEEP_LARGE_BYTES: usize = 16 << 20;

pub(super) struct RegPool {
    pool: BufPool,
    dev: Arc<DeviceRes>,
    /// A registration failed (the locked-memory limit, most likely): buffers stay as they
    /// are and their data is copied through the device's data slots.
    unregistrable: bool,
}

impl RegPool {
    pub(super) fn new(dev: Arc<DeviceRes>) -> RegPool {
        RegPool {
            pool: BufPool::with_limits(KEEP_SMALL, KEEP_LARGE_BYTES),
            dev,
            unregistrable: false,
        }
    }
}

impl BufSource for RegPool {
    fn take(&mut self, len: usize) -> DataBuf {
        let mut b = self.pool.take(len);
        if !self.unregistrable && len > 0 {
            if let Err(e) = b.register(&self.dev) {
                warn!(
                    error = %e,
                    "registering data buffers with the RDMA device failed (raise the \
                     locked-memory limit, LimitMEMLOCK=): data is copied through the \
                     device's data slots from now on"
                );
                self.unregistrable = true;
            }
        }
        b
    }

    fn give(&mut self, buf: DataBuf) {
        self.pool.give(buf)
    }
}
