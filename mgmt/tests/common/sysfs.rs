//! A fake sysfs tree in a temporary directory, for a daemon's [`target::drives::Drives`] to
//! find local NVMe drives in: PCI functions of the NVMe class with their bound driver, the
//! kernel's controllers and their namespaces, as Linux lays them out.

use std::os::unix::fs::symlink;
use std::path::Path;

pub struct FakeSysfs {
    dir: tempfile::TempDir,
}

/// A namespace of a kernel controller.
pub struct FakeNs<'a> {
    /// The block device (`nvme0n1`); its generic character device is made to match.
    pub name: &'a str,
    pub nsid: u32,
    pub bytes: u64,
    pub block_size: u32,
    /// `queue/zoned`: `none` or `host-managed`.
    pub zoned: &'a str,
}

impl FakeSysfs {
    pub fn new() -> FakeSysfs {
        FakeSysfs {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    pub fn root(&self) -> &Path {
        self.dir.path()
    }

    fn write(&self, rel: &str, text: &str) {
        let path = self.root().join(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }

    /// A PCI function of class NVM Express at `pci`, bound to `driver`.
    pub fn nvme_function(&self, pci: &str, driver: Option<&str>) {
        self.write(&format!("bus/pci/devices/{pci}/class"), "0x010802\n");
        if let Some(d) = driver {
            let to = self.root().join("bus/pci/drivers").join(d);
            std::fs::create_dir_all(&to).unwrap();
            symlink(
                to,
                self.root().join(format!("bus/pci/devices/{pci}/driver")),
            )
            .unwrap();
        }
    }

    /// The kernel's controller `name` of the function at `pci` (bind it to `nvme`), live, with
    /// its namespaces.
    pub fn kernel_controller(&self, name: &str, pci: &str, serial: &str, namespaces: &[FakeNs]) {
        let at = format!("class/nvme/{name}");
        for (file, text) in [
            ("model", "QEMU NVMe Ctrl"),
            ("serial", serial),
            ("firmware_rev", "10.0.2"),
            ("transport", "pcie"),
            ("address", pci),
            ("state", "live"),
        ] {
            self.write(&format!("{at}/{file}"), &format!("{text}\n"));
        }
        for ns in namespaces {
            let dir = format!("{at}/{}", ns.name);
            self.write(&format!("{dir}/size"), &format!("{}\n", ns.bytes / 512));
            self.write(&format!("{dir}/nsid"), &format!("{}\n", ns.nsid));
            let queue = format!("{dir}/queue");
            self.write(
                &format!("{queue}/logical_block_size"),
                &format!("{}\n", ns.block_size),
            );
            self.write(&format!("{queue}/zoned"), &format!("{}\n", ns.zoned));
            let generic = ns.name.replacen("nvme", "ng", 1);
            self.write(&format!("class/nvme-generic/{generic}/dev"), "240:0\n");
        }
    }
}
