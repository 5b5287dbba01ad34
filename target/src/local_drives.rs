//! The local NVMe drives of the box, whether a namespace is exported from them or not: the PCI
//! functions of the NVM Express class, the driver each is bound to and, for those the kernel's
//! nvme driver holds, its controller (identity, state) and namespaces (size, block size,
//! zoned model, generic character device). Read from a sysfs tree (`/sys` on a running system,
//! a fake one in tests); what a file does not say is left out, never guessed, and no content
//! of one makes the scan fail.

use std::collections::BTreeMap;
use std::path::Path;

use crate::kernel_nvme::{self, KernelController};

/// PCI class code of an NVM Express I/O controller: base class 01h (mass storage), subclass
/// 08h (non-volatile memory), programming interface 02h (NVM Express) — NVMe Base 1.4 §2.1.5
/// (CC, the PCI header's Class Code).
pub const NVME_CLASS: u32 = 0x01_08_02;

/// The transport a local controller reports (`transport` of `/sys/class/nvme/nvmeX`).
const PCIE: &str = "pcie";

/// Where the kernel lists the PCI functions it found, below the sysfs root.
const PCI_DEVICES: &str = "bus/pci/devices";
/// Where it lists the NVMe generic character devices (`/dev/ngXnY`).
const CLASS_NVME_GENERIC: &str = "class/nvme-generic";
/// Sizes in sysfs (`size` of a block device) are in units of 512 bytes.
const SECTOR: u64 = 512;

/// One NVMe drive on the PCI bus.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct LocalDrive {
    /// Its PCI address, as sysfs names it (`0000:00:04.0`).
    pub pci: String,
    /// The driver bound to the PCI function (`nvme`, `vfio-pci`, …); `None` when none is.
    pub driver: Option<String>,
    /// The kernel's controller of it, when the kernel's nvme driver holds it.
    pub controller: Option<KernelController>,
    /// The namespaces the kernel's controller shows, by NSID (by name where sysfs gives none).
    pub namespaces: Vec<KernelNamespace>,
}

/// A namespace of a drive the kernel's nvme driver holds: its block device.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KernelNamespace {
    /// The block device (`nvme0n1`; `nvme0c0n1` for a path of a multipath namespace).
    pub name: String,
    /// Its NSID, when sysfs shows it (`nsid`).
    pub nsid: Option<u32>,
    /// The generic character device an nvme-uring namespace opens (`/dev/ng0n1`), when the
    /// kernel made one.
    pub generic: Option<String>,
    /// Logical block size in bytes.
    pub block_size: u32,
    /// Capacity in logical blocks.
    pub blocks: u64,
    /// A zoned block device (`queue/zoned` is `host-managed`, as for NVMe ZNS namespaces, or
    /// `host-aware`).
    pub zoned: bool,
}

impl KernelNamespace {
    pub fn size_bytes(&self) -> u64 {
        self.blocks.saturating_mul(u64::from(self.block_size))
    }
}

/// Every NVMe drive of the PCI bus sysfs at `sysfs` lists, by PCI address. Controllers the
/// kernel attached over a fabric (`tcp`, `rdma`, `fc`, `loop`) are not local drives and are
/// left out.
pub fn scan(sysfs: &Path) -> Vec<LocalDrive> {
    let mut controllers = pcie_controllers(sysfs);
    let Ok(entries) = std::fs::read_dir(sysfs.join(PCI_DEVICES)) else {
        return Vec::new();
    };
    let mut drives: Vec<LocalDrive> = entries
        .flatten()
        .filter_map(|entry| {
            let pci = entry.file_name().to_str()?.to_string();
            let dir = entry.path();
            if class(&dir)? != NVME_CLASS {
                return None;
            }
            let driver = std::fs::read_link(dir.join("driver"))
                .ok()
                .and_then(|link| Some(link.file_name()?.to_str()?.to_string()));
            let controller = controllers.remove(&pci);
            let namespaces = match &controller {
                Some(c) => namespaces(sysfs, &c.name),
                None => Vec::new(),
            };
            Some(LocalDrive {
                pci,
                driver,
                controller,
                namespaces,
            })
        })
        .collect();
    drives.sort_by(|a, b| a.pci.cmp(&b.pci));
    drives
}

/// The `class` of a PCI function (`0x010802`).
fn class(dir: &Path) -> Option<u32> {
    let text = std::fs::read_to_string(dir.join("class")).ok()?;
    let hex = text.trim().strip_prefix("0x")?;
    u32::from_str_radix(hex, 16).ok()
}

/// The kernel's controllers on PCIe, by PCI address.
fn pcie_controllers(sysfs: &Path) -> BTreeMap<String, KernelController> {
    let root = sysfs.join(kernel_nvme::CLASS_NVME);
    let Ok(entries) = std::fs::read_dir(&root) else {
        return BTreeMap::new();
    };
    entries
        .flatten()
        .filter_map(|entry| {
            let name = entry.file_name();
            let c = kernel_nvme::read_in(&root, name.to_str()?)?;
            if c.transport.as_deref() != Some(PCIE) {
                return None;
            }
            Some((c.address.clone()?, c))
        })
        .collect()
}

/// The block devices of kernel controller `ctrl` (`nvmeX`).
fn namespaces(sysfs: &Path, ctrl: &str) -> Vec<KernelNamespace> {
    let dir = sysfs.join(kernel_nvme::CLASS_NVME).join(ctrl);
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return Vec::new();
    };
    let mut found: Vec<KernelNamespace> = entries
        .flatten()
        .filter_map(|entry| {
            let name = entry.file_name().to_str()?.to_string();
            let generic = generic_name(&name)?;
            namespace(sysfs, &entry.path(), name, &generic)
        })
        .collect();
    found.sort_by(|a, b| (a.nsid, &a.name).cmp(&(b.nsid, &b.name)));
    found
}

/// The generic character device of block device `name`: `nvme<X>n<Y>` is `ng<X>n<Y>`; a path
/// of a multipath namespace, `nvme<S>c<C>n<Y>`, is reached through its head's, `ng<S>n<Y>`.
/// `None` when `name` is not a namespace's.
fn generic_name(name: &str) -> Option<String> {
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    let rest = name.strip_prefix("nvme")?;
    let (ctrl, ns) = rest.split_once('n')?;
    let head = match ctrl.split_once('c') {
        Some((subsys, path)) if digits(subsys) && digits(path) => subsys,
        Some(_) => return None,
        None => ctrl,
    };
    (digits(head) && digits(ns)).then(|| format!("ng{head}n{ns}"))
}

/// The namespace whose block device is at `dir`; `None` when its size or block size cannot
/// be read.
fn namespace(sysfs: &Path, dir: &Path, name: String, generic: &str) -> Option<KernelNamespace> {
    let attr = |file: &str| {
        std::fs::read_to_string(dir.join(file))
            .ok()
            .map(|t| t.trim().to_string())
    };
    let sectors: u64 = attr("size")?.parse().ok()?;
    let block_size: u32 = attr("queue/logical_block_size")?.parse().ok()?;
    if block_size < 512 || !block_size.is_power_of_two() {
        tracing::debug!(namespace = %name, block_size, "implausible logical block size: left out");
        return None;
    }
    let blocks = sectors.saturating_mul(SECTOR) / u64::from(block_size);
    let zoned = matches!(
        attr("queue/zoned").as_deref(),
        Some("host-managed" | "host-aware")
    );
    let nsid = attr("nsid").and_then(|n| n.parse().ok());
    let generic = sysfs
        .join(CLASS_NVME_GENERIC)
        .join(generic)
        .exists()
        .then(|| format!("/dev/{generic}"));
    Some(KernelNamespace {
        name,
        nsid,
        generic,
        block_size,
        blocks,
        zoned,
    })
}

#[cfg(test)]
mod tests;
