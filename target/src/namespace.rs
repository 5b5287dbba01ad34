//! A namespace: an NSID, the backend that stores its blocks, and its stable identifiers.

use std::sync::Arc;

use nvme::backend::{Backend, BackendInfo, ZonedGeometry};
use nvme::identify::Csi;

use crate::ids::NamespaceIds;
use crate::lease::LeaseBridge;
use crate::metrics::NamespaceStats;

pub struct Namespace {
    pub nsid: u32,
    pub backend: Arc<dyn Backend>,
    pub info: BackendInfo,
    pub ids: NamespaceIds,
    /// log2 of the logical block size.
    pub lba_shift: u32,
    /// I/O counters and latency (per core); shared with the namespace that replaces this
    /// one under the same NSID, so counters continue.
    pub stats: Arc<NamespaceStats>,
    /// Zone geometry of a zoned namespace (Zoned Namespace Command Set), `None` for NVM.
    pub zoned: Option<ZonedGeometry>,
    /// A drive backend that lends its DMA memory: its reads are sent, and its writes
    /// received, straight from and into that memory.
    pub lent: Option<Arc<LeaseBridge>>,
}

impl Namespace {
    pub fn new(subsystem_nqn: &str, nsid: u32, backend: Arc<dyn Backend>) -> Namespace {
        let info = backend.info();
        let zoned = backend.zoned().map(|z| z.geometry());
        let lent = backend
            .polled()
            .and_then(|p| p.lease_home())
            .map(LeaseBridge::new);
        Namespace {
            lent,
            nsid,
            lba_shift: info.block_size.trailing_zeros(),
            info,
            ids: NamespaceIds::derive(subsystem_nqn, nsid),
            backend,
            stats: Arc::new(NamespaceStats::new()),
            zoned,
        }
    }

    pub fn block_size(&self) -> u32 {
        self.info.block_size
    }

    pub fn num_blocks(&self) -> u64 {
        self.info.num_blocks
    }

    /// The I/O command set the namespace belongs to (Namespace Identification Descriptor).
    pub fn csi(&self) -> Csi {
        if self.zoned.is_some() {
            Csi::Zoned
        } else {
            Csi::Nvm
        }
    }
}

impl std::fmt::Debug for Namespace {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Namespace")
            .field("nsid", &self.nsid)
            .field("info", &self.info)
            .finish_non_exhaustive()
    }
}
