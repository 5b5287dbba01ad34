//! Getting a PCIe NVMe controller ready for the userspace driver: the sysfs checks and the
//! vfio-pci (re)binding that must happen before [`crate::sys::vfio::VfioDevice::open`].
//!
//! Everything goes through a [`Sysfs`] rooted at a directory (`/` on a real machine, a temporary
//! tree in tests), so every check and every write is testable without VFIO. Each failure is a
//! [`SetupError`] whose message names the cause and the fix.

use std::fs;
use std::io;
use std::path::PathBuf;
use std::thread;
use std::time::Duration;

/// The driver that hands PCI devices to userspace.
pub const VFIO_PCI: &str = "vfio-pci";
/// Drivers that may hold the other devices of an IOMMU group without making it unusable.
const GROUP_SAFE_DRIVERS: [&str; 2] = [VFIO_PCI, "pci-stub"];
/// Size of one huge page in the pool the DMA memory comes from.
pub const HUGEPAGE_2M: usize = 2 << 20;

/// What [`Sysfs::prepare`] may do.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SetupOptions {
    /// Rebind the device from its current driver to vfio-pci (else refuse if it is bound
    /// elsewhere).
    pub bind: bool,
    /// 2 MiB hugepages that must be free for the driver's DMA memory.
    pub hugepages_2m: usize,
}

/// A device that passed every check and is bound to vfio-pci.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Preflight {
    /// Canonical PCI address (`0000:00:04.0`).
    pub pci: String,
    /// IOMMU group number: the device is opened through `/dev/vfio/<group>`.
    pub group: u32,
    /// `Some(previous driver or None)` if [`Sysfs::prepare`] rebound the device; pass it to
    /// [`Sysfs::release`] to undo.
    pub rebound_from: Option<Option<String>>,
    /// Free 2 MiB hugepages at the time of the check.
    pub free_hugepages: usize,
}

/// Why a device cannot be used through VFIO, and how to fix it.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    #[error("'{0}' is not a PCI address: expected domain:bus:device.function such as 0000:00:04.0 (see lspci -D)")]
    BadAddress(String),
    #[error("no PCI device {pci} ({path} is missing): check the address with lspci -D")]
    NoDevice { pci: String, path: PathBuf },
    #[error("no IOMMU group for {pci}: the kernel has no IOMMU enabled — boot with intel_iommu=on (or amd_iommu=on) and enable VT-d/AMD-Vi; VFIO no-IOMMU mode is not supported")]
    NoIommuGroup { pci: String },
    #[error("the vfio-pci driver is not loaded ({path} is missing): run modprobe vfio-pci")]
    NoVfioPci { path: PathBuf },
    #[error("{pci} is bound to {driver}; set bind = true or run: echo vfio-pci > /sys/bus/pci/devices/{pci}/driver_override; echo {pci} > /sys/bus/pci/drivers/{driver}/unbind; echo {pci} > /sys/bus/pci/drivers_probe")]
    BoundElsewhere { pci: String, driver: String },
    #[error("binding {pci} to vfio-pci failed: after drivers_probe its driver is {}; check dmesg for the vfio-pci probe error", .driver.as_deref().unwrap_or("none"))]
    BindFailed { pci: String, driver: Option<String> },
    #[error("IOMMU group {group} of {pci} also holds {}; bind those to vfio-pci too or unbind them (a group is only usable when all its devices are)", list_devices(.others))]
    GroupShared {
        pci: String,
        group: u32,
        others: Vec<(String, String)>,
    },
    #[error("cannot open {path}: permission denied; run as root or chown the user to {path}")]
    GroupAccess { path: PathBuf },
    #[error("{free} free 2 MiB hugepages but {needed} needed: reserve them with echo {reserve} > /proc/sys/vm/nr_hugepages")]
    Hugepages {
        free: usize,
        needed: usize,
        reserve: usize,
    },
    #[error("cannot {op} {path}: {source} (this needs root)")]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

fn list_devices(others: &[(String, String)]) -> String {
    let items: Vec<String> = others
        .iter()
        .map(|(dev, drv)| format!("{dev} (bound to {drv})"))
        .collect();
    items.join(", ")
}

/// Canonical form of a PCI address: `dddd:bb:dd.f`, lower-case hex; a missing domain is 0000.
pub fn parse_pci_address(s: &str) -> Result<String, SetupError> {
    let bad = || SetupError::BadAddress(s.to_string());
    let full = match s.matches(':').count() {
        1 => format!("0000:{s}"),
        2 => s.to_string(),
        _ => return Err(bad()),
    };
    let (rest, func) = full.rsplit_once('.').ok_or_else(bad)?;
    let mut parts = rest.split(':');
    let (dom, bus, dev) = match (parts.next(), parts.next(), parts.next()) {
        (Some(d), Some(b), Some(v)) => (d, b, v),
        _ => return Err(bad()),
    };
    let field = |text: &str, width: usize, max: u32| -> Result<u32, SetupError> {
        if text.is_empty() || text.len() > width || !text.chars().all(|c| c.is_ascii_hexdigit()) {
            return Err(bad());
        }
        let v = u32::from_str_radix(text, 16).map_err(|_| bad())?;
        if v > max {
            return Err(bad());
        }
        Ok(v)
    };
    let (d, b, v, f) = (
        field(dom, 4, 0xffff)?,
        field(bus, 2, 0xff)?,
        field(dev, 2, 0x1f)?,
        field(func, 1, 7)?,
    );
    Ok(format!("{d:04x}:{b:02x}:{v:02x}.{f:x}"))
}

/// The kernel's view of PCI devices, drivers, IOMMU groups and hugepages under a root directory.
#[derive(Clone, Debug)]
pub struct Sysfs {
    root: PathBuf,
}

impl Sysfs {
    /// The running system (`/`).
    pub fn system() -> Sysfs {
        Sysfs::new("/")
    }

    /// A tree rooted at `root` (`root/sys/...`, `root/dev/vfio/...`).
    pub fn new(root: impl Into<PathBuf>) -> Sysfs {
        Sysfs { root: root.into() }
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.root.join(rel)
    }

    fn device_dir(&self, pci: &str) -> PathBuf {
        self.path("sys/bus/pci/devices").join(pci)
    }

    /// `/dev/vfio/<group>`.
    pub fn group_path(&self, group: u32) -> PathBuf {
        self.path("dev/vfio").join(group.to_string())
    }

    /// The IOMMU group of `pci` (the last component of its `iommu_group` link).
    pub fn iommu_group(&self, pci: &str) -> Result<u32, SetupError> {
        let dir = self.device_dir(pci);
        if !dir.exists() {
            return Err(SetupError::NoDevice {
                pci: pci.to_string(),
                path: dir,
            });
        }
        let link =
            fs::read_link(dir.join("iommu_group")).map_err(|_| SetupError::NoIommuGroup {
                pci: pci.to_string(),
            })?;
        link.file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.parse().ok())
            .ok_or(SetupError::NoIommuGroup {
                pci: pci.to_string(),
            })
    }

    /// The driver `pci` is bound to, if any.
    pub fn driver(&self, pci: &str) -> Option<String> {
        let link = fs::read_link(self.device_dir(pci).join("driver")).ok()?;
        Some(link.file_name()?.to_string_lossy().into_owned())
    }

    /// The other devices in IOMMU group `group`, sorted, each with its driver.
    pub fn group_peers(
        &self,
        group: u32,
        pci: &str,
    ) -> Result<Vec<(String, Option<String>)>, SetupError> {
        let dir = self
            .path("sys/kernel/iommu_groups")
            .join(group.to_string())
            .join("devices");
        let entries = fs::read_dir(&dir).map_err(|source| SetupError::Io {
            op: "list",
            path: dir.clone(),
            source,
        })?;
        let mut peers: Vec<String> = entries
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|d| d != pci)
            .collect();
        peers.sort();
        Ok(peers
            .into_iter()
            .map(|d| {
                let drv = self.driver(&d);
                (d, drv)
            })
            .collect())
    }

    fn write(&self, path: PathBuf, value: &str) -> Result<(), SetupError> {
        fs::write(&path, value).map_err(|source| SetupError::Io {
            op: "write",
            path,
            source,
        })
    }

    fn read_count(&self, rel: &str) -> usize {
        fs::read_to_string(self.path(rel))
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(0)
    }

    /// Checks everything [`crate::sys::vfio::VfioDevice::open`] needs and, with `opts.bind`,
    /// moves the device to vfio-pci.
    pub fn prepare(&self, pci: &str, opts: &SetupOptions) -> Result<Preflight, SetupError> {
        let pci = parse_pci_address(pci)?;
        let group = self.iommu_group(&pci)?;
        let vfio_drv = self.path("sys/bus/pci/drivers").join(VFIO_PCI);
        if !vfio_drv.is_dir() {
            return Err(SetupError::NoVfioPci { path: vfio_drv });
        }
        let others: Vec<(String, String)> = self
            .group_peers(group, &pci)?
            .into_iter()
            .filter_map(|(d, drv)| drv.map(|drv| (d, drv)))
            .filter(|(_, drv)| !GROUP_SAFE_DRIVERS.contains(&drv.as_str()))
            .collect();
        if !others.is_empty() {
            return Err(SetupError::GroupShared { pci, group, others });
        }
        let free = self.read_count("sys/kernel/mm/hugepages/hugepages-2048kB/free_hugepages");
        if free < opts.hugepages_2m {
            let total = self.read_count("sys/kernel/mm/hugepages/hugepages-2048kB/nr_hugepages");
            return Err(SetupError::Hugepages {
                free,
                needed: opts.hugepages_2m,
                reserve: total + (opts.hugepages_2m - free),
            });
        }
        let rebound_from = match self.driver(&pci) {
            Some(d) if d == VFIO_PCI => None,
            Some(d) if !opts.bind => {
                return Err(SetupError::BoundElsewhere { pci, driver: d });
            }
            previous => {
                self.bind_vfio(&pci, previous.as_deref())?;
                Some(previous)
            }
        };
        let path = self.group_path(group);
        if let Err(e) = fs::OpenOptions::new().read(true).write(true).open(&path) {
            return Err(match e.kind() {
                io::ErrorKind::PermissionDenied => SetupError::GroupAccess { path },
                _ => SetupError::Io {
                    op: "open",
                    path,
                    source: e,
                },
            });
        }
        Ok(Preflight {
            pci,
            group,
            rebound_from,
            free_hugepages: free,
        })
    }

    /// driver_override = vfio-pci, unbind from `previous`, reprobe, and check the result.
    fn bind_vfio(&self, pci: &str, previous: Option<&str>) -> Result<(), SetupError> {
        let dev = self.device_dir(pci);
        self.write(dev.join("driver_override"), VFIO_PCI)?;
        if let Some(old) = previous {
            self.write(
                self.path("sys/bus/pci/drivers").join(old).join("unbind"),
                pci,
            )?;
        }
        self.write(self.path("sys/bus/pci/drivers_probe"), pci)?;
        self.await_driver(pci, |d| d == Some(VFIO_PCI))
            .map_err(|driver| SetupError::BindFailed {
                pci: pci.to_string(),
                driver,
            })
    }

    /// Waits up to a second for `pci`'s driver link to satisfy `want` (drivers such as nvme
    /// probe asynchronously, so the link can appear after the drivers_probe write returns).
    /// Returns the driver seen last on failure.
    fn await_driver(
        &self,
        pci: &str,
        want: impl Fn(Option<&str>) -> bool,
    ) -> Result<(), Option<String>> {
        let mut seen = self.driver(pci);
        for _ in 0..50 {
            if want(seen.as_deref()) {
                return Ok(());
            }
            thread::sleep(Duration::from_millis(20));
            seen = self.driver(pci);
        }
        Err(seen)
    }

    /// Undoes a rebind made by [`Sysfs::prepare`]: unbinds `pci` from vfio-pci, clears its
    /// driver_override and reprobes so its previous driver (e.g. nvme) takes it back. Returns
    /// the driver it ends up with (waiting up to a second for one to bind).
    pub fn release(&self, pci: &str) -> Result<Option<String>, SetupError> {
        let pci = parse_pci_address(pci)?;
        let dev = self.device_dir(&pci);
        if !dev.exists() {
            return Err(SetupError::NoDevice { pci, path: dev });
        }
        if self.driver(&pci).as_deref() == Some(VFIO_PCI) {
            self.write(
                self.path("sys/bus/pci/drivers")
                    .join(VFIO_PCI)
                    .join("unbind"),
                &pci,
            )?;
        }
        // An empty override (a lone newline) clears it.
        self.write(dev.join("driver_override"), "\n")?;
        self.write(self.path("sys/bus/pci/drivers_probe"), &pci)?;
        // No driver may claim it (e.g. nvme not loaded): then it stays unbound.
        Ok(
            match self.await_driver(&pci, |d| d.is_some_and(|d| d != VFIO_PCI)) {
                Ok(()) => self.driver(&pci),
                Err(last) => last,
            },
        )
    }
}

/// [`Sysfs::prepare`] on the running system.
pub fn prepare(pci: &str, opts: &SetupOptions) -> Result<Preflight, SetupError> {
    Sysfs::system().prepare(pci, opts)
}

/// [`Sysfs::release`] on the running system.
pub fn release(pci: &str) -> Result<Option<String>, SetupError> {
    Sysfs::system().release(pci)
}

/// 2 MiB hugepages needed for `bytes` of DMA memory.
pub fn hugepages_for(bytes: usize) -> usize {
    bytes.div_ceil(HUGEPAGE_2M)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;
    use std::sync::atomic::{AtomicU32, Ordering};

    /// A fake sysfs + /dev tree in a fresh temporary directory, removed on drop.
    struct Fake {
        root: PathBuf,
    }

    impl Drop for Fake {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.root);
        }
    }

    const DEV: &str = "0000:00:04.0";

    /// Writes `content` to `path`, creating its parent directories.
    fn touch(path: &std::path::Path, content: &str) {
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, content).unwrap();
    }

    impl Fake {
        fn new() -> Fake {
            static N: AtomicU32 = AtomicU32::new(0);
            let root = std::env::temp_dir().join(format!(
                "ff-vfio-setup-{}-{}",
                std::process::id(),
                N.fetch_add(1, Ordering::Relaxed)
            ));
            let _ = fs::remove_dir_all(&root);
            let f = Fake { root };
            for d in ["nvme", VFIO_PCI] {
                touch(&f.p(&format!("sys/bus/pci/drivers/{d}/unbind")), "");
            }
            touch(&f.p("sys/bus/pci/drivers_probe"), "");
            touch(
                &f.p("sys/kernel/mm/hugepages/hugepages-2048kB/free_hugepages"),
                "8\n",
            );
            touch(
                &f.p("sys/kernel/mm/hugepages/hugepages-2048kB/nr_hugepages"),
                "10\n",
            );
            f
        }

        fn p(&self, rel: &str) -> PathBuf {
            self.root.join(rel)
        }

        fn sysfs(&self) -> Sysfs {
            Sysfs::new(&self.root)
        }

        /// A device in `group`, bound to `driver`.
        fn device(&self, pci: &str, group: u32, driver: Option<&str>) {
            let dev = self.p(&format!("sys/bus/pci/devices/{pci}"));
            touch(&dev.join("driver_override"), "(null)\n");
            let gdir = self.p(&format!("sys/kernel/iommu_groups/{group}/devices"));
            fs::create_dir_all(&gdir).unwrap();
            symlink(gdir.parent().unwrap(), dev.join("iommu_group")).unwrap();
            symlink(&dev, gdir.join(pci)).unwrap();
            touch(&self.p(&format!("dev/vfio/{group}")), "");
            self.bind(pci, driver);
        }

        fn bind(&self, pci: &str, driver: Option<&str>) {
            let link = self.p(&format!("sys/bus/pci/devices/{pci}/driver"));
            let _ = fs::remove_file(&link);
            if let Some(d) = driver {
                symlink(self.p(&format!("sys/bus/pci/drivers/{d}")), link).unwrap();
            }
        }

        fn read(&self, rel: &str) -> String {
            fs::read_to_string(self.p(rel)).unwrap()
        }
    }

    #[test]
    fn addresses_are_checked_and_canonical() {
        assert_eq!(parse_pci_address("0000:00:04.0").unwrap(), "0000:00:04.0");
        assert_eq!(parse_pci_address("00:05.0").unwrap(), "0000:00:05.0");
        assert_eq!(parse_pci_address("0000:AF:1f.7").unwrap(), "0000:af:1f.7");
        for bad in [
            "",
            "00:04",
            "0000:00:04.8",
            "0000:00:20.0",
            "0000:100:04.0",
            "x000:00:04.0",
            "0:0:0:0.0",
            "0000:00:04.",
            "nvme0",
        ] {
            let e = parse_pci_address(bad).unwrap_err();
            assert!(
                matches!(e, SetupError::BadAddress(ref s) if s == bad),
                "{bad}"
            );
        }
    }

    #[test]
    fn already_bound_device_passes_without_writes() {
        let f = Fake::new();
        f.device(DEV, 7, Some(VFIO_PCI));
        let opts = SetupOptions {
            bind: false,
            hugepages_2m: 8,
        };
        let pf = f.sysfs().prepare("00:04.0", &opts).unwrap();
        assert_eq!(
            pf,
            Preflight {
                pci: DEV.into(),
                group: 7,
                rebound_from: None,
                free_hugepages: 8
            }
        );
        assert_eq!(f.read("sys/bus/pci/drivers_probe"), "");
        assert_eq!(
            f.read(&format!("sys/bus/pci/devices/{DEV}/driver_override")),
            "(null)\n"
        );
    }

    #[test]
    fn missing_pieces_name_cause_and_fix() {
        let f = Fake::new();
        let s = f.sysfs();
        let opts = SetupOptions::default();
        let e = s.prepare(DEV, &opts).unwrap_err();
        assert!(matches!(e, SetupError::NoDevice { .. }));
        assert!(e.to_string().contains("lspci -D"));

        let dev = f.p(&format!("sys/bus/pci/devices/{DEV}"));
        fs::create_dir_all(&dev).unwrap();
        let e = s.prepare(DEV, &opts).unwrap_err();
        assert_eq!(
            e.to_string(),
            "no IOMMU group for 0000:00:04.0: the kernel has no IOMMU enabled — boot with \
             intel_iommu=on (or amd_iommu=on) and enable VT-d/AMD-Vi; VFIO no-IOMMU mode is not \
             supported"
        );

        fs::remove_dir_all(&dev).unwrap();
        f.device(DEV, 3, Some("nvme"));
        fs::remove_dir_all(f.p("sys/bus/pci/drivers/vfio-pci")).unwrap();
        let e = s.prepare(DEV, &opts).unwrap_err();
        assert!(matches!(e, SetupError::NoVfioPci { .. }));
        assert!(e.to_string().contains("modprobe vfio-pci"));
    }

    #[test]
    fn bound_elsewhere_without_bind_is_refused_untouched() {
        let f = Fake::new();
        f.device(DEV, 3, Some("nvme"));
        let e = f
            .sysfs()
            .prepare(DEV, &SetupOptions::default())
            .unwrap_err();
        let msg = e.to_string();
        assert!(
            msg.starts_with("0000:00:04.0 is bound to nvme; set bind = true or run: echo vfio-pci > /sys/bus/pci/devices/0000:00:04.0/driver_override;"),
            "{msg}"
        );
        assert!(msg.contains("echo 0000:00:04.0 > /sys/bus/pci/drivers/nvme/unbind"));
        assert_eq!(f.read("sys/bus/pci/drivers/nvme/unbind"), "");
        assert_eq!(f.read("sys/bus/pci/drivers_probe"), "");
    }

    /// Plays the kernel: once drivers_probe names the device, binds it to `driver`.
    fn kernel_probe(f: &Fake, driver: &'static str) -> thread::JoinHandle<()> {
        let probe = f.p("sys/bus/pci/drivers_probe");
        let link = f.p(&format!("sys/bus/pci/devices/{DEV}/driver"));
        let target = f.p(&format!("sys/bus/pci/drivers/{driver}"));
        thread::spawn(move || {
            for _ in 0..500 {
                if fs::read_to_string(&probe).unwrap() == DEV {
                    let _ = fs::remove_file(&link);
                    symlink(&target, &link).unwrap();
                    return;
                }
                thread::sleep(Duration::from_millis(2));
            }
        })
    }

    #[test]
    fn bind_moves_the_device_and_release_undoes_it() {
        let f = Fake::new();
        f.device(DEV, 3, Some("nvme"));
        let opts = SetupOptions {
            bind: true,
            hugepages_2m: 2,
        };
        let k = kernel_probe(&f, VFIO_PCI);
        let pf = f.sysfs().prepare(DEV, &opts).unwrap();
        k.join().unwrap();
        assert_eq!(pf.rebound_from, Some(Some("nvme".to_string())));
        assert_eq!(pf.group, 3);
        assert_eq!(
            f.read(&format!("sys/bus/pci/devices/{DEV}/driver_override")),
            "vfio-pci"
        );
        assert_eq!(f.read("sys/bus/pci/drivers/nvme/unbind"), DEV);
        assert_eq!(f.read("sys/bus/pci/drivers_probe"), DEV);
        assert_eq!(f.sysfs().driver(DEV).as_deref(), Some(VFIO_PCI));

        fs::write(f.p("sys/bus/pci/drivers_probe"), "").unwrap();
        let k = kernel_probe(&f, "nvme");
        let after = f.sysfs().release(DEV).unwrap();
        k.join().unwrap();
        assert_eq!(f.read("sys/bus/pci/drivers/vfio-pci/unbind"), DEV);
        assert_eq!(
            f.read(&format!("sys/bus/pci/devices/{DEV}/driver_override")),
            "\n"
        );
        assert_eq!(f.read("sys/bus/pci/drivers_probe"), DEV);
        assert_eq!(after.as_deref(), Some("nvme"));
        assert_eq!(f.sysfs().driver(DEV).as_deref(), Some("nvme"));
    }

    #[test]
    fn bind_that_does_not_take_is_reported() {
        let f = Fake::new();
        f.device(DEV, 3, None);
        let opts = SetupOptions {
            bind: true,
            hugepages_2m: 0,
        };
        let e = f.sysfs().prepare(DEV, &opts).unwrap_err();
        assert!(matches!(e, SetupError::BindFailed { driver: None, .. }));
        assert!(e.to_string().contains("its driver is none; check dmesg"));
        // No previous driver: nothing was unbound.
        assert_eq!(f.read("sys/bus/pci/drivers/nvme/unbind"), "");
        assert_eq!(f.read("sys/bus/pci/drivers_probe"), DEV);
    }

    #[test]
    fn group_peers_must_be_vfio_or_unbound() {
        let f = Fake::new();
        f.device(DEV, 5, Some(VFIO_PCI));
        f.device("0000:00:04.1", 5, None);
        f.device("0000:00:04.2", 5, Some(VFIO_PCI));
        let s = f.sysfs();
        let opts = SetupOptions::default();
        assert_eq!(s.prepare(DEV, &opts).unwrap().group, 5);
        f.device("0000:00:04.3", 5, Some("nvme"));
        let e = s.prepare(DEV, &opts).unwrap_err();
        match &e {
            SetupError::GroupShared { group, others, .. } => {
                assert_eq!(*group, 5);
                assert_eq!(others, &[("0000:00:04.3".to_string(), "nvme".to_string())]);
            }
            other => panic!("{other}"),
        }
        assert!(e
            .to_string()
            .contains("also holds 0000:00:04.3 (bound to nvme); bind those to vfio-pci"));
    }

    #[test]
    fn too_few_hugepages_says_how_many_to_reserve() {
        let f = Fake::new();
        f.device(DEV, 1, Some(VFIO_PCI));
        let opts = SetupOptions {
            bind: false,
            hugepages_2m: 11,
        };
        let e = f.sysfs().prepare(DEV, &opts).unwrap_err();
        assert_eq!(
            e.to_string(),
            "8 free 2 MiB hugepages but 11 needed: reserve them with echo 13 > /proc/sys/vm/nr_hugepages"
        );
        assert_eq!(hugepages_for(4 << 20), 2);
        assert_eq!(hugepages_for((4 << 20) + 1), 3);
        assert_eq!(hugepages_for(0), 0);
    }

    #[test]
    fn missing_group_node_is_an_open_error() {
        let f = Fake::new();
        f.device(DEV, 9, Some(VFIO_PCI));
        fs::remove_file(f.p("dev/vfio/9")).unwrap();
        let e = f
            .sysfs()
            .prepare(DEV, &SetupOptions::default())
            .unwrap_err();
        assert!(matches!(e, SetupError::Io { op: "open", .. }), "{e}");
    }
}
