//! NVMe drives the daemon drives itself: namespaces on `nvme-vfio` controllers (our userspace
//! driver) and `nvme-uring` character devices.
//!
//! A PCI function can be claimed through VFIO once per process, so drivers live in one
//! process-wide registry: every namespace of a controller shares its driver.

use std::sync::Arc;

use nvme::backend::{Backend, BackendError};

use crate::config::BackendKind;

/// Open the backend for a drive namespace.
pub fn open(kind: &BackendKind) -> Result<Arc<dyn Backend>, BackendError> {
    Err(BackendError::Gone(format!(
        "{kind}: drive backends are not available yet"
    )))
}
