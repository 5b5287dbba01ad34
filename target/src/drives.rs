//! NVMe drives the daemon drives itself: namespaces on `nvme-vfio` controllers (our userspace
//! driver) and `nvme-uring` character devices (kernel driver, io_uring passthrough).
//!
//! A PCI function can be claimed through VFIO once per process, so its driver lives in the
//! daemon's [`Drives`] registry (the engine's, not a global) and every namespace of the
//! controller shares it. Its [`DriveSettings`] set the queue count, depth and timeouts;
//! [`Drives::shutdown_all`] shuts controllers down cleanly and gives devices back to the
//! kernel driver they came from. [`Drives::vfio_status`] reports what a controller's driver
//! knows of it, with its SMART / Health log read from the drive there and then;
//! [`Drives::local`] lists every NVMe drive of the box, driven or not, from its sysfs tree.

mod smart;

pub use smart::{SmartLog, SmartSeverity, SmartWarning, DATA_UNIT_BYTES};

use ferrofab_sync::CountedLock as _;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use nvme::backend::uring::{UringBackend, UringOptions};
use nvme::backend::{Backend, BackendError};
use nvme::driver::controller::ControllerInfo;
use nvme::driver::dma::DmaRegion;
use nvme::driver::nvme_driver::{DriverOptions, NvmeDriver};
use nvme::driver::pool::PagePool;
use nvme::driver::vfio_setup::{self, SetupOptions};
use nvme::sys::hugepage::HugeDma;
use nvme::sys::vfio::VfioDevice;

use crate::config::{BackendKind, DrivesSection};
use crate::local_drives::{self, LocalDrive};

/// The running system's sysfs tree.
const SYSFS: &str = "/sys";

/// IOVA where a controller's DMA memory starts (any page-aligned address below the IOMMU's
/// address width works; 4 GiB keeps it clear of low-memory conventions).
const DMA_IOVA: u64 = 1 << 32;
/// Page size of the DMA pool (the controller's memory page size, CC.MPS = 4 KiB).
const DMA_PAGE: usize = 4096;

/// How drives are driven; from `[drives]` and the reactor count.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DriveSettings {
    /// I/O queue pairs per controller: one each reactor owns for its polled reads and writes,
    /// one shared per reactor for its other commands, and one for blocking callers.
    pub io_queues: u16,
    /// Of those, the pairs reactors own.
    pub owned_queues: u16,
    pub queue_depth: u32,
    pub timeout: Duration,
    pub dma_bytes: usize,
}

impl DriveSettings {
    pub fn new(section: &DrivesSection, reactors: usize) -> DriveSettings {
        DriveSettings {
            io_queues: u16::try_from(2 * reactors + 1).unwrap_or(u16::MAX),
            owned_queues: u16::try_from(reactors).unwrap_or(u16::MAX),
            queue_depth: section.queue_depth,
            timeout: Duration::from_millis(section.command_timeout_ms),
            dma_bytes: usize::try_from(section.dma_memory.0).unwrap_or(usize::MAX),
        }
    }

    /// What the driver of each controller is started with.
    pub fn driver_options(&self) -> DriverOptions {
        DriverOptions {
            io_queues: self.io_queues,
            owned_queues: self.owned_queues,
            queue_depth: self.queue_depth,
            timeout: self.timeout,
        }
    }
}

impl Default for DriveSettings {
    fn default() -> Self {
        DriveSettings::new(&DrivesSection::default(), 1)
    }
}

/// A controller taken over through VFIO. Field order is drop order: the driver (BAR mapping,
/// DMA memory) goes before the device and its container.
struct VfioDrive {
    pci: String,
    driver: Arc<NvmeDriver<HugeDma>>,
    _device: VfioDevice,
    /// Set when we moved the device to vfio-pci: the driver it had before.
    rebound_from: Option<Option<String>>,
}

/// A controller driven from memory the caller set up (the driver's software model in tests,
/// or an embedder with its own DMA mapping), served under a PCI address like a VFIO one.
pub trait AdoptedController: Send + Sync {
    fn open_namespace(&self, nsid: u32) -> Result<Arc<dyn Backend>, BackendError>;
    fn shut_down(&self);
    /// What its driver knows of it; `None` for a controller without our driver. May send the
    /// controller an admin command (the SMART / Health log): not for the I/O path.
    fn status(&self) -> Option<DriveStatus> {
        None
    }
}

impl<M: DmaRegion + Send + Sync + 'static> AdoptedController for Arc<NvmeDriver<M>> {
    fn open_namespace(&self, nsid: u32) -> Result<Arc<dyn Backend>, BackendError> {
        let ns =
            NvmeDriver::namespace(self, nsid).map_err(|e| gone(&format!("namespace {nsid}"), e))?;
        Ok(ns)
    }

    fn shut_down(&self) {
        if let Err(e) = NvmeDriver::shutdown(self) {
            tracing::warn!(error = %e, "controller shutdown failed");
        }
    }

    fn status(&self) -> Option<DriveStatus> {
        Some(DriveStatus::of(self))
    }
}

/// A controller our driver runs: what it reported at bring-up and how it has fared since.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DriveStatus {
    /// Identify Controller and its namespaces, as read at bring-up, with the queues granted.
    pub info: ControllerInfo,
    /// Controller resets after commands timed out (NVMe Base 2.0 §3.7.2).
    pub resets: u32,
    /// Why the controller is gone (surprise removal, CSTS.CFS, shut down); `None` while it
    /// runs.
    pub gone: Option<String>,
    /// Its SMART / Health log (NVMe Base 2.0 §5.16.1.3), read when the status was taken;
    /// why it could not be read (the driver is gone, the controller refused or timed out).
    pub smart: Result<SmartLog, String>,
}

impl DriveStatus {
    /// Read now: the SMART / Health log with a Get Log Page on the admin queue.
    fn of<M: DmaRegion + Send + Sync + 'static>(driver: &NvmeDriver<M>) -> DriveStatus {
        let smart = driver
            .smart_health()
            .map(|page| SmartLog::from_page(&page))
            .map_err(|e| format!("SMART / Health log not read: {e}"));
        DriveStatus {
            info: driver.info().clone(),
            resets: driver.resets(),
            gone: driver.gone(),
            smart,
        }
    }
}

/// The drives one daemon (or one `ferrofab drive` run) drives.
pub struct Drives {
    settings: DriveSettings,
    /// Where the kernel's view of PCI devices and NVMe controllers is read (`/sys`).
    sysfs: PathBuf,
    vfio: Mutex<Vec<VfioDrive>>,
    adopted: Mutex<Vec<(String, Arc<dyn AdoptedController>)>>,
    /// The pools laid out over drives (and zoned-ram namespaces), with their volumes.
    pools: crate::pools::Pools,
}

impl Drives {
    pub fn new(settings: DriveSettings) -> Drives {
        Drives {
            settings,
            sysfs: PathBuf::from(SYSFS),
            vfio: Mutex::new(Vec::new()),
            adopted: Mutex::new(Vec::new()),
            pools: crate::pools::Pools::default(),
        }
    }

    /// The open pools and their volumes.
    pub fn pools(&self) -> &crate::pools::Pools {
        &self.pools
    }

    /// The same, reading the kernel's view of the drives from the sysfs tree at `root`
    /// instead of `/sys` (a fake tree in tests).
    pub fn with_sysfs(self, root: impl Into<PathBuf>) -> Drives {
        Drives {
            sysfs: root.into(),
            ..self
        }
    }

    /// The sysfs tree the kernel's view of the drives is read from.
    pub fn sysfs(&self) -> &Path {
        &self.sysfs
    }

    /// Every NVMe drive on the box's PCI bus, whether a namespace is opened on it or not, with
    /// the driver bound to it and what the kernel's shows (see [`local_drives::scan`]). Reads
    /// sysfs: not for the I/O path.
    pub fn local(&self) -> Vec<LocalDrive> {
        local_drives::scan(&self.sysfs)
    }

    /// Serve `controller` as the `nvme-vfio` drive at `pci` (no VFIO set-up is done for it).
    pub fn adopt(&self, pci: &str, controller: Box<dyn AdoptedController>) {
        let mut adopted = self.adopted.lock_counted();
        adopted.push((pci.to_string(), Arc::from(controller)));
    }

    fn vfio(&self) -> MutexGuard<'_, Vec<VfioDrive>> {
        self.vfio.lock_counted()
    }

    /// The driver of the controller at `pci`, taking it over on first use.
    pub fn vfio_driver(
        &self,
        pci: &str,
        bind: bool,
    ) -> Result<Arc<NvmeDriver<HugeDma>>, BackendError> {
        let mut reg = self.vfio();
        if let Some(d) = reg.iter().find(|d| d.pci == pci) {
            return Ok(d.driver.clone());
        }
        let settings = self.settings.clone();
        let pre = vfio_setup::prepare(
            pci,
            &SetupOptions {
                bind,
                hugepages_2m: vfio_setup::hugepages_for(settings.dma_bytes),
            },
        )
        .map_err(|e| BackendError::Gone(e.to_string()))?;
        let started = start_vfio(pci, &settings);
        let (device, driver) = match started {
            Ok(v) => v,
            Err(e) => {
                if pre.rebound_from.is_some() {
                    if let Err(r) = vfio_setup::release(pci) {
                        tracing::warn!(pci, error = %r, "cannot give the device back");
                    }
                }
                return Err(e);
            }
        };
        let info = driver.info();
        tracing::info!(pci, model = %info.model, serial = %info.serial, firmware = %info.firmware,
        io_queues = info.io_queues, queue_entries = info.queue_entries,
        max_transfer = info.max_transfer, namespaces = info.namespaces.len(),
        "NVMe controller taken over through VFIO");
        reg.push(VfioDrive {
            pci: pci.to_string(),
            driver: driver.clone(),
            _device: device,
            rebound_from: pre.rebound_from,
        });
        Ok(driver)
    }

    /// The status of the nvme-vfio controller at `pci`, when the daemon drives it (a
    /// namespace on it is open, or it was adopted). Its SMART / Health log is read from the
    /// controller on the calling thread: an admin command, up to the command timeout. A VFIO
    /// controller's is read under the registry's lock, so [`Drives::shutdown_all`] never finds
    /// its driver held by a status read (it would leave the device on vfio-pci); an adopted
    /// one's without it.
    pub fn vfio_status(&self, pci: &str) -> Option<DriveStatus> {
        let adopted = self
            .adopted
            .lock_counted()
            .iter()
            .find(|(p, _)| p == pci)
            .map(|(_, c)| Arc::clone(c));
        if let Some(c) = adopted {
            return c.status();
        }
        self.vfio()
            .iter()
            .find(|d| d.pci == pci)
            .map(|d| DriveStatus::of(&d.driver))
    }

    /// Open the backend of a drive namespace.
    pub fn open(&self, kind: &BackendKind) -> Result<Arc<dyn Backend>, BackendError> {
        match kind {
            BackendKind::NvmeVfio { pci, nsid, bind } => {
                let adopted = self.adopted.lock_counted();
                if let Some((_, c)) = adopted.iter().find(|(p, _)| p == pci) {
                    return c.open_namespace(*nsid);
                }
                drop(adopted);
                let driver = self.vfio_driver(pci, *bind)?;
                let ns = driver
                    .namespace(*nsid)
                    .map_err(|e| gone(&format!("{pci} namespace {nsid}"), e))?;
                // A zoned namespace is exported as it is: its zone commands pass through.
                Ok(ns)
            }
            BackendKind::NvmeUring { path, iopoll } => {
                let depth = self.settings.queue_depth;
                let backend = UringBackend::open(
                    path,
                    UringOptions {
                        queue_depth: depth,
                        iopoll: *iopoll,
                    },
                )?;
                Ok(backend)
            }
            BackendKind::Ram
            | BackendKind::File
            | BackendKind::Null
            | BackendKind::ZonedRam(_)
            | BackendKind::Volume { .. } => {
                Err(BackendError::Gone(format!("backend {kind} is not a drive")))
            }
        }
    }

    /// Shut every VFIO controller down (CC.SHN, so the drive flushes its cache) and hand devices
    /// we rebound back to their previous driver.
    pub fn shutdown_all(&self) {
        // Pools first: their members are drives.
        self.pools.close_all();
        let adopted = std::mem::take(&mut *self.adopted.lock_counted());
        for (_, c) in adopted {
            c.shut_down();
        }
        let drives = std::mem::take(&mut *self.vfio());
        for d in drives {
            if let Err(e) = d.driver.shutdown() {
                tracing::warn!(pci = %d.pci, error = %e, "controller shutdown failed");
            }
            let VfioDrive {
                pci,
                driver,
                _device,
                rebound_from,
            } = d;
            if Arc::strong_count(&driver) > 1 {
                // Namespaces still hold the driver: unbinding now would wait for the device to
                // be closed. Leave it on vfio-pci.
                tracing::warn!(
                    pci,
                    "controller still in use at exit; left bound to vfio-pci"
                );
                continue;
            }
            drop(driver);
            drop(_device);
            if rebound_from.is_some() {
                match vfio_setup::release(&pci) {
                    Ok(now) => tracing::info!(pci, driver = ?now, "device handed back"),
                    Err(e) => tracing::warn!(pci, error = %e, "cannot hand the device back"),
                }
            }
        }
    }
}

fn gone(what: &str, e: impl std::fmt::Display) -> BackendError {
    BackendError::Gone(format!("{what}: {e}"))
}

fn start_vfio(
    pci: &str,
    settings: &DriveSettings,
) -> Result<(VfioDevice, Arc<NvmeDriver<HugeDma>>), BackendError> {
    let device = VfioDevice::open(pci).map_err(|e| gone(pci, e))?;
    let bar = device.bar0().map_err(|e| gone(pci, e))?;
    let dma = device
        .map_dma(settings.dma_bytes, DMA_IOVA)
        .map_err(|e| gone(pci, e))?;
    let pool = PagePool::new(dma, DMA_PAGE).map_err(|e| gone(pci, e))?;
    let driver = NvmeDriver::start(Box::new(bar), pool, settings.driver_options())
        .map_err(|e| gone(pci, e))?;
    Ok((device, driver))
}
