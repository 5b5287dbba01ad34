//! Drive memory lent to the transport: the bridge between a drive backend's DMA leases
//! ([`nvme::backend::DmaLease`]) and the transport's lent memory ([`fabric::queue::Lent`]),
//! so a read's data goes from the drive's DMA buffer to the socket, and a write's from the
//! socket to the drive's DMA buffer, without a copy in between.

use std::sync::Arc;

use fabric::queue::{Lent, LentHome};
use nvme::backend::{DmaLease, LeaseHome};

/// A drive's lease home seen as the transport's: one per namespace, made when the namespace
/// is, so lending allocates nothing per command.
pub struct LeaseBridge(Arc<dyn LeaseHome>);

impl LeaseBridge {
    pub fn new(home: Arc<dyn LeaseHome>) -> Arc<LeaseBridge> {
        Arc::new(LeaseBridge(home))
    }

    /// The lease as lent memory for the transport; one without an address (memory no system
    /// call can reach) comes back.
    pub fn lend(self: &Arc<Self>, lease: DmaLease) -> Result<Lent, DmaLease> {
        let Some(addr) = lease.addr() else {
            return Err(lease);
        };
        let len = lease.len();
        let home: Arc<dyn LentHome> = self.clone();
        Ok(Lent::new(addr, len, lease.into_tag(), home))
    }

    /// Lent memory this bridge made back as the drive's lease, `len` bytes of it in use.
    pub fn reclaim(&self, lent: Lent, len: usize) -> DmaLease {
        DmaLease::from_tag(self.0.clone(), lent.into_tag(), len)
    }
}

impl LentHome for LeaseBridge {
    fn release(&self, tag: u64) {
        // Dropping the lease gives the pages back to the drive.
        drop(DmaLease::from_tag(self.0.clone(), tag, 0));
    }
}
