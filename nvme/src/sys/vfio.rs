//! A PCI device opened through VFIO (Linux `include/uapi/linux/vfio.h`, type1 IOMMU): container,
//! group and device file descriptors, region lookup, reset and bus mastering. BAR0 and DMA memory
//! are mapped by [`super::bar`] and [`super::hugepage`].

use std::ffi::CString;
use std::fs::{File, OpenOptions};
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd};
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::sync::Arc;

use crate::driver::vfio_setup::{self, SetupError, Sysfs};

use super::bar::BarMmio;
use super::hugepage::HugeDma;

/// `_IO(';', VFIO_BASE + n)`: VFIO ioctls carry no size or direction bits.
const fn vfio_io(n: u32) -> u32 {
    const VFIO_TYPE: u32 = b';' as u32; // 0x3b
    const VFIO_BASE: u32 = 100;
    (VFIO_TYPE << 8) | (VFIO_BASE + n)
}

const VFIO_GET_API_VERSION: u32 = vfio_io(0);
const VFIO_CHECK_EXTENSION: u32 = vfio_io(1);
const VFIO_SET_IOMMU: u32 = vfio_io(2);
const VFIO_GROUP_GET_STATUS: u32 = vfio_io(3);
const VFIO_GROUP_SET_CONTAINER: u32 = vfio_io(4);
const VFIO_GROUP_GET_DEVICE_FD: u32 = vfio_io(6);
const VFIO_DEVICE_GET_INFO: u32 = vfio_io(7);
const VFIO_DEVICE_GET_REGION_INFO: u32 = vfio_io(8);
const VFIO_DEVICE_RESET: u32 = vfio_io(11);
pub(super) const VFIO_IOMMU_MAP_DMA: u32 = vfio_io(13);
pub(super) const VFIO_IOMMU_UNMAP_DMA: u32 = vfio_io(14);

const VFIO_API_VERSION: i32 = 0;
const VFIO_TYPE1_IOMMU: u64 = 1;
const VFIO_TYPE1V2_IOMMU: u64 = 3;
const VFIO_GROUP_FLAGS_VIABLE: u32 = 1 << 0;
const VFIO_DEVICE_FLAGS_RESET: u32 = 1 << 0;
const VFIO_DEVICE_FLAGS_PCI: u32 = 1 << 1;
pub(super) const VFIO_REGION_INFO_FLAG_READ: u32 = 1 << 0;
pub(super) const VFIO_REGION_INFO_FLAG_WRITE: u32 = 1 << 1;
pub(super) const VFIO_REGION_INFO_FLAG_MMAP: u32 = 1 << 2;
/// The region info has capabilities, e.g. a sparse-mmap list that excludes the MSI-X table.
pub(super) const VFIO_REGION_INFO_FLAG_CAPS: u32 = 1 << 3;
pub(super) const VFIO_DMA_MAP_FLAG_READ: u32 = 1 << 0;
pub(super) const VFIO_DMA_MAP_FLAG_WRITE: u32 = 1 << 1;
const VFIO_PCI_BAR0_REGION_INDEX: u32 = 0;
const VFIO_PCI_CONFIG_REGION_INDEX: u32 = 7;

/// PCI Command register offset in configuration space and its enable bits (PCI Local Bus 3.0
/// §6.2.2): Memory Space (bit 1) and Bus Master (bit 2).
const PCI_COMMAND: u64 = 0x04;
const PCI_COMMAND_MEMORY: u16 = 1 << 1;
const PCI_COMMAND_MASTER: u16 = 1 << 2;

#[repr(C)]
#[derive(Default)]
struct VfioGroupStatus {
    argsz: u32,
    flags: u32,
}

#[repr(C)]
#[derive(Default)]
struct VfioDeviceInfo {
    argsz: u32,
    flags: u32,
    num_regions: u32,
    num_irqs: u32,
    cap_offset: u32,
    pad: u32,
}

/// `struct vfio_region_info`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RegionInfo {
    pub(super) argsz: u32,
    pub flags: u32,
    pub index: u32,
    pub(super) cap_offset: u32,
    /// Region size in bytes.
    pub size: u64,
    /// Offset of the region in the device file (for pread/pwrite/mmap).
    pub offset: u64,
}

/// `struct vfio_iommu_type1_dma_map`.
#[repr(C)]
pub(super) struct DmaMap {
    pub argsz: u32,
    pub flags: u32,
    pub vaddr: u64,
    pub iova: u64,
    pub size: u64,
}

/// `struct vfio_iommu_type1_dma_unmap` (without the trailing flexible array).
#[repr(C)]
pub(super) struct DmaUnmap {
    pub argsz: u32,
    pub flags: u32,
    pub iova: u64,
    pub size: u64,
}

const _: () = {
    assert!(size_of::<VfioGroupStatus>() == 8);
    assert!(size_of::<VfioDeviceInfo>() == 24);
    assert!(size_of::<RegionInfo>() == 32);
    assert!(size_of::<DmaMap>() == 32);
    assert!(size_of::<DmaUnmap>() == 24);
};

/// Why the device could not be opened or mapped, and what to do about it.
#[derive(Debug, thiserror::Error)]
pub enum VfioError {
    #[error(transparent)]
    Setup(#[from] SetupError),
    #[error("cannot open {path}: {source} (load vfio-pci with modprobe vfio-pci and run as root)")]
    Open {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("VFIO API version {0}, expected 0: this kernel's VFIO is not supported")]
    ApiVersion(i32),
    #[error("the VFIO container supports neither the type1v2 nor the type1 IOMMU: enable the IOMMU (intel_iommu=on or amd_iommu=on); no-IOMMU mode is not supported")]
    NoType1,
    #[error("IOMMU group {group} of {pci} is not viable: every device in it must be bound to vfio-pci or to no driver; the group holds {}", .devices.join(", "))]
    GroupNotViable {
        pci: String,
        group: u32,
        devices: Vec<String>,
    },
    #[error("{op} failed for {pci}: {source}")]
    Ioctl {
        op: &'static str,
        pci: String,
        #[source]
        source: io::Error,
    },
    #[error("{pci} is not a PCI device according to VFIO")]
    NotPci { pci: String },
    #[error("BAR0 of {pci} unusable: {why}")]
    Bar0 { pci: String, why: String },
    #[error("{op} of {pci}'s PCI configuration space failed: {source}")]
    Config {
        op: &'static str,
        pci: String,
        #[source]
        source: io::Error,
    },
    #[error("no free 2 MiB hugepages for {bytes} bytes of DMA memory ({pages} pages needed): reserve them with echo {pages} > /proc/sys/vm/nr_hugepages (more if other users hold some)")]
    Hugepages { bytes: usize, pages: usize },
    #[error("mmap of {what} failed: {source}")]
    Mmap {
        what: &'static str,
        #[source]
        source: io::Error,
    },
    #[error("VFIO_IOMMU_MAP_DMA of {size:#x} bytes at IOVA {iova:#x} failed: {source} (IOVA overlapping another mapping or outside the IOMMU's aperture, or RLIMIT_MEMLOCK too low)")]
    MapDma {
        iova: u64,
        size: usize,
        #[source]
        source: io::Error,
    },
}

/// An ioctl whose argument is a pointer to `arg`.
fn ioctl_ptr<T>(fd: BorrowedFd<'_>, req: u32, arg: *mut T) -> io::Result<i32> {
    // SAFETY: `fd` is an open descriptor for the duration of the call, `req` is a VFIO ioctl
    // number whose argument type the caller matched with `T` (a #[repr(C)] struct sized as in
    // vfio.h, with `argsz` set, or the NUL-terminated name GET_DEVICE_FD reads), and `arg`
    // points to a live `T` that outlives the call, writable for the ioctls that fill it in.
    let r = unsafe { libc::ioctl(fd.as_raw_fd(), req as _, arg) };
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

/// An ioctl whose argument is an integer.
fn ioctl_val(fd: BorrowedFd<'_>, req: u32, arg: libc::c_ulong) -> io::Result<i32> {
    // SAFETY: `fd` is open; the VFIO ioctls called this way (GET_API_VERSION, CHECK_EXTENSION,
    // SET_IOMMU, DEVICE_RESET) take an integer argument and dereference no memory.
    let r = unsafe { libc::ioctl(fd.as_raw_fd(), req as _, arg) };
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

/// A type1 VFIO container with the device's group attached: the IOMMU domain that DMA
/// mappings live in. The group stays attached (and the mappings valid) as long as any holder
/// of this, e.g. a [`HugeDma`], lives.
#[derive(Debug)]
pub(super) struct Container {
    fd: File,
    _group: File,
}

impl Container {
    pub fn map_dma(&self, map: &mut DmaMap) -> io::Result<()> {
        ioctl_ptr(self.fd.as_fd(), VFIO_IOMMU_MAP_DMA, map).map(drop)
    }

    pub fn unmap_dma(&self, unmap: &mut DmaUnmap) -> io::Result<()> {
        ioctl_ptr(self.fd.as_fd(), VFIO_IOMMU_UNMAP_DMA, unmap).map(drop)
    }
}

/// A PCI device handed to this process by vfio-pci, reset, with memory space and bus mastering
/// enabled and no interrupts (the driver polls). Its [`BarMmio`] and [`HugeDma`] mappings may
/// outlive it: they keep the device file, and the container with its group, open.
#[derive(Debug)]
pub struct VfioDevice {
    pci: String,
    group: u32,
    container: Arc<Container>,
    device: Arc<File>,
    bar0: RegionInfo,
    config: RegionInfo,
}

fn open_rw(path: PathBuf) -> Result<File, VfioError> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .open(&path)
        .map_err(|source| VfioError::Open { path, source })
}

impl VfioDevice {
    /// Opens `pci` (already bound to vfio-pci; see [`vfio_setup::prepare`]) in a container of
    /// its own.
    pub fn open(pci: &str) -> Result<VfioDevice, VfioError> {
        let pci = vfio_setup::parse_pci_address(pci)?;
        let sysfs = Sysfs::system();
        let group = sysfs.iommu_group(&pci)?;
        let ioctl_err = |op, pci: &str| {
            let pci = pci.to_string();
            move |source| VfioError::Ioctl { op, pci, source }
        };

        let container = open_rw(PathBuf::from("/dev/vfio/vfio"))?;
        let cfd = container.as_fd();
        let version = ioctl_val(cfd, VFIO_GET_API_VERSION, 0)
            .map_err(ioctl_err("VFIO_GET_API_VERSION", &pci))?;
        if version != VFIO_API_VERSION {
            return Err(VfioError::ApiVersion(version));
        }
        let has = |ext| ioctl_val(cfd, VFIO_CHECK_EXTENSION, ext as libc::c_ulong).unwrap_or(0) > 0;
        let iommu = if has(VFIO_TYPE1V2_IOMMU) {
            VFIO_TYPE1V2_IOMMU
        } else if has(VFIO_TYPE1_IOMMU) {
            VFIO_TYPE1_IOMMU
        } else {
            return Err(VfioError::NoType1);
        };

        let group_fd = open_rw(sysfs.group_path(group))?;
        let gfd = group_fd.as_fd();
        let mut status = VfioGroupStatus {
            argsz: size_of::<VfioGroupStatus>() as u32,
            flags: 0,
        };
        ioctl_ptr(gfd, VFIO_GROUP_GET_STATUS, &mut status)
            .map_err(ioctl_err("VFIO_GROUP_GET_STATUS", &pci))?;
        if status.flags & VFIO_GROUP_FLAGS_VIABLE == 0 {
            let devices = sysfs
                .group_peers(group, "")
                .map(|peers| {
                    peers
                        .into_iter()
                        .map(|(d, drv)| format!("{d} ({})", drv.as_deref().unwrap_or("no driver")))
                        .collect()
                })
                .unwrap_or_default();
            return Err(VfioError::GroupNotViable {
                pci,
                group,
                devices,
            });
        }
        let mut raw_container = container.as_raw_fd();
        ioctl_ptr(gfd, VFIO_GROUP_SET_CONTAINER, &mut raw_container)
            .map_err(ioctl_err("VFIO_GROUP_SET_CONTAINER", &pci))?;
        ioctl_val(cfd, VFIO_SET_IOMMU, iommu as libc::c_ulong)
            .map_err(ioctl_err("VFIO_SET_IOMMU", &pci))?;

        let name = CString::new(pci.as_str()).map_err(|_| SetupError::BadAddress(pci.clone()))?;
        let dev_fd = ioctl_ptr(gfd, VFIO_GROUP_GET_DEVICE_FD, name.as_ptr().cast_mut())
            .map_err(ioctl_err("VFIO_GROUP_GET_DEVICE_FD", &pci))?;
        // SAFETY: VFIO_GROUP_GET_DEVICE_FD succeeded, so `dev_fd` is a new descriptor that
        // nothing else owns; the File takes sole ownership and closes it on drop.
        let device = unsafe { File::from_raw_fd(dev_fd) };

        let dfd = device.as_fd();
        let mut info = VfioDeviceInfo {
            argsz: size_of::<VfioDeviceInfo>() as u32,
            ..Default::default()
        };
        ioctl_ptr(dfd, VFIO_DEVICE_GET_INFO, &mut info)
            .map_err(ioctl_err("VFIO_DEVICE_GET_INFO", &pci))?;
        if info.flags & VFIO_DEVICE_FLAGS_PCI == 0
            || info.num_regions <= VFIO_PCI_CONFIG_REGION_INDEX
        {
            return Err(VfioError::NotPci { pci });
        }
        if info.flags & VFIO_DEVICE_FLAGS_RESET != 0 {
            // A reset the device cannot do (e.g. no FLR and a shared bus) is not fatal: the
            // NVMe driver resets the controller through CC.EN anyway.
            if let Err(e) = ioctl_val(dfd, VFIO_DEVICE_RESET, 0) {
                tracing::debug!(%pci, error = %e, "VFIO_DEVICE_RESET failed; continuing");
            }
        }
        let region = |index| {
            let mut r = RegionInfo {
                argsz: size_of::<RegionInfo>() as u32,
                index,
                ..Default::default()
            };
            ioctl_ptr(dfd, VFIO_DEVICE_GET_REGION_INFO, &mut r)
                .map(|_| r)
                .map_err(ioctl_err("VFIO_DEVICE_GET_REGION_INFO", &pci))
        };
        let bar0 = region(VFIO_PCI_BAR0_REGION_INDEX)?;
        let config = region(VFIO_PCI_CONFIG_REGION_INDEX)?;

        let dev = VfioDevice {
            pci,
            group,
            container: Arc::new(Container {
                fd: container,
                _group: group_fd,
            }),
            device: Arc::new(device),
            bar0,
            config,
        };
        let cmd = dev.config_read_u16(PCI_COMMAND)?;
        dev.config_write_u16(PCI_COMMAND, cmd | PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER)?;
        Ok(dev)
    }

    /// The device's canonical PCI address.
    pub fn pci(&self) -> &str {
        &self.pci
    }

    /// Its IOMMU group.
    pub fn group(&self) -> u32 {
        self.group
    }

    /// BAR0's region as VFIO reports it.
    pub fn bar0_info(&self) -> RegionInfo {
        self.bar0
    }

    /// Reads a little-endian 16-bit value from PCI configuration space.
    pub fn config_read_u16(&self, off: u64) -> Result<u16, VfioError> {
        let mut b = [0u8; 2];
        self.device
            .read_exact_at(&mut b, self.config.offset + off)
            .map_err(|source| VfioError::Config {
                op: "read",
                pci: self.pci.clone(),
                source,
            })?;
        Ok(u16::from_le_bytes(b))
    }

    /// Writes a little-endian 16-bit value to PCI configuration space.
    pub fn config_write_u16(&self, off: u64, v: u16) -> Result<(), VfioError> {
        self.device
            .write_all_at(&v.to_le_bytes(), self.config.offset + off)
            .map_err(|source| VfioError::Config {
                op: "write",
                pci: self.pci.clone(),
                source,
            })
    }

    /// The PCI Command register (bus mastering and memory space are on after [`Self::open`]).
    pub fn pci_command(&self) -> Result<u16, VfioError> {
        self.config_read_u16(PCI_COMMAND)
    }

    /// Maps BAR0 (the NVMe controller registers and doorbells).
    pub fn bar0(&self) -> Result<BarMmio, VfioError> {
        BarMmio::map(&self.pci, Arc::clone(&self.device), self.bar0)
    }

    /// `len` bytes (rounded up to 2 MiB) of hugepage memory, mapped for device reads and writes
    /// at `iova`.
    pub fn map_dma(&self, len: usize, iova: u64) -> Result<HugeDma, VfioError> {
        HugeDma::map(Arc::clone(&self.container), len, iova)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ioctl_numbers_match_linux() {
        // _IO(';', 100 + n) from include/uapi/linux/vfio.h.
        assert_eq!(VFIO_GET_API_VERSION, 0x3b64);
        assert_eq!(VFIO_CHECK_EXTENSION, 0x3b65);
        assert_eq!(VFIO_SET_IOMMU, 0x3b66);
        assert_eq!(VFIO_GROUP_GET_STATUS, 0x3b67);
        assert_eq!(VFIO_GROUP_SET_CONTAINER, 0x3b68);
        assert_eq!(VFIO_GROUP_GET_DEVICE_FD, 0x3b6a);
        assert_eq!(VFIO_DEVICE_GET_INFO, 0x3b6b);
        assert_eq!(VFIO_DEVICE_GET_REGION_INFO, 0x3b6c);
        assert_eq!(VFIO_DEVICE_RESET, 0x3b6f);
        assert_eq!(VFIO_IOMMU_MAP_DMA, 0x3b71);
        assert_eq!(VFIO_IOMMU_UNMAP_DMA, 0x3b72);
    }

    #[test]
    fn open_without_iommu_group_names_the_fix() {
        // The host running the tests may have no such device; either way the error is from
        // the preflight, before any VFIO file is touched.
        let e = VfioDevice::open("not-a-device").unwrap_err();
        assert!(
            matches!(e, VfioError::Setup(SetupError::BadAddress(_))),
            "{e}"
        );
        let e = VfioDevice::open("ffff:ff:1f.7").unwrap_err();
        assert!(
            matches!(e, VfioError::Setup(SetupError::NoDevice { .. })),
            "{e}"
        );
    }
}
