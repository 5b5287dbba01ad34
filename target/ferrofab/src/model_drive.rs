//! `ferrofab serve --model-drive PCI` (feature `model-drive`, never in release images): the
//! driver's software NVMe controller served as the nvme-vfio drive at `PCI`. The real driver
//! code runs against it; the model executes each command when its SQ tail doorbell is written,
//! so it completes at once, on the reactor's thread. It moves no data (reads leave the
//! driver's buffer as it was, writes store nothing): a real drive's DMA engine does those
//! copies without the host's CPU, so what the reactor spends is the target's and the driver's
//! own work, bounce copies included. For benchmarks of the drive path (`make bench`) on
//! machines without drives.

use std::sync::Arc;

use nvme::driver::dma::HeapDma;
use nvme::driver::model::{ModelConfig, NsModel, SoftController};
use nvme::driver::nvme_driver::NvmeDriver;
use nvme::driver::pool::PagePool;
use target::drives::{DriveSettings, Drives};

/// One namespace of 1 GiB in 4 KiB blocks (the size `make bench` gives its RAM namespace),
/// 1 MiB per command (MDTS 8 with 4 KiB pages), SGLs: as QEMU's emulated drive.
const BLOCKS: u64 = 1 << 18;
const MDTS: u8 = 8;

/// A registry holding a started model controller at `pci`, with `settings`' queues.
pub fn drives_with_model(pci: &str, settings: DriveSettings) -> Result<Arc<Drives>, String> {
    let cfg = ModelConfig {
        mdts: MDTS,
        sgls: true,
        max_io_queues: settings.io_queues,
        namespaces: vec![NsModel {
            block_size: 4096,
            blocks: BLOCKS,
            zoned: None,
        }],
        ..ModelConfig::default()
    };
    // Queues and every command's bounce buffers live in this "host memory".
    let host = Arc::new(HeapDma::new(settings.dma_bytes, 1 << 32));
    let ctrl = SoftController::new(cfg, Arc::clone(&host));
    ctrl.set_moves_data(false);
    let pool = PagePool::new(host, 4096).map_err(|e| format!("model drive memory: {e}"))?;
    let driver = NvmeDriver::start(Box::new(ctrl), pool, settings.driver_options())
        .map_err(|e| format!("model drive does not start: {e}"))?;
    tracing::info!(
        pci,
        "software NVMe controller model served as an nvme-vfio drive"
    );
    let drives = Arc::new(Drives::new(settings));
    drives.adopt(pci, Box::new(driver));
    Ok(drives)
}
