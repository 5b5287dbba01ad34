use super::*;

use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::symlink;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};

/// A fake sysfs tree in a fresh temporary directory, removed on drop.
struct Fake {
    root: PathBuf,
}

impl Drop for Fake {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

impl Fake {
    fn new() -> Fake {
        static N: AtomicU32 = AtomicU32::new(0);
        let root = std::env::temp_dir().join(format!(
            "ff-local-drives-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&root);
        std::fs::create_dir_all(&root).unwrap();
        Fake { root }
    }

    fn root(&self) -> &Path {
        &self.root
    }

    fn write(&self, rel: &str, content: impl AsRef<[u8]>) {
        let path = self.root().join(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, content).unwrap();
    }

    /// A PCI function of class `class` (the file's text), bound to `driver`.
    fn pci(&self, addr: &str, class: &str, driver: Option<&str>) {
        self.write(&format!("bus/pci/devices/{addr}/class"), class);
        if let Some(d) = driver {
            let target: PathBuf = self.root().join("bus/pci/drivers").join(d);
            std::fs::create_dir_all(&target).unwrap();
            symlink(
                target,
                self.root().join(format!("bus/pci/devices/{addr}/driver")),
            )
            .unwrap();
        }
    }

    /// A kernel controller `name` on `transport` at `address`.
    fn controller(&self, name: &str, transport: &str, address: &str, serial: &str) {
        let at = format!("class/nvme/{name}");
        self.write(
            &format!("{at}/model"),
            "QEMU NVMe Ctrl                          \n",
        );
        self.write(&format!("{at}/serial"), format!("{serial:<20}\n"));
        self.write(&format!("{at}/firmware_rev"), "10.0.2  \n");
        self.write(&format!("{at}/transport"), format!("{transport}\n"));
        self.write(&format!("{at}/address"), format!("{address}\n"));
        self.write(&format!("{at}/state"), "live\n");
    }

    /// Block device `ns` of controller `ctrl`: `sectors` of 512 bytes, `lbs`-byte blocks,
    /// `zoned` the zoned model; with its generic character device `generic` when given.
    fn namespace(&self, ctrl: &str, ns: &str, sectors: &str, lbs: &str, zoned: &str) {
        let at = format!("class/nvme/{ctrl}/{ns}");
        self.write(&format!("{at}/size"), format!("{sectors}\n"));
        self.write(
            &format!("{at}/queue/logical_block_size"),
            format!("{lbs}\n"),
        );
        self.write(&format!("{at}/queue/zoned"), format!("{zoned}\n"));
    }

    fn nsid(&self, ctrl: &str, ns: &str, nsid: &str) {
        self.write(&format!("class/nvme/{ctrl}/{ns}/nsid"), format!("{nsid}\n"));
    }

    fn generic(&self, name: &str) {
        self.write(&format!("class/nvme-generic/{name}/dev"), "240:0\n");
    }
}

const CONV: &str = "0000:00:04.0";
const ZNS: &str = "0000:00:05.0";

/// The guest's pair of drives on the kernel's driver, a NIC, and a controller of a fabric.
fn appliance() -> Fake {
    let f = Fake::new();
    f.pci(CONV, "0x010802\n", Some("nvme"));
    f.controller("nvme0", "pcie", CONV, "ffconv0");
    f.namespace("nvme0", "nvme0n1", "1048576", "4096", "none");
    f.nsid("nvme0", "nvme0n1", "1");
    f.generic("ng0n1");
    f.pci(ZNS, "0x010802\n", Some("nvme"));
    f.controller("nvme1", "pcie", ZNS, "ffzns0");
    f.namespace("nvme1", "nvme1n1", "524288", "4096", "host-managed");
    f.nsid("nvme1", "nvme1n1", "1");
    f.generic("ng1n1");
    f.pci("0000:00:02.0", "0x020000\n", Some("e1000e"));
    // An NVMe/TCP controller the kernel connected to a remote target: no local drive, and
    // its namespace is no local drive's.
    f.controller(
        "nvme2",
        "tcp",
        "traddr=10.0.0.1,trsvcid=4420,src_addr=10.0.0.2",
        "remote",
    );
    f.namespace("nvme2", "nvme2n1", "2048", "512", "none");
    f.generic("ng2n1");
    f
}

#[test]
fn kernel_bound_drives_show_identity_and_namespaces() {
    let f = appliance();
    let drives = scan(f.root());
    let pcis: Vec<&str> = drives.iter().map(|d| d.pci.as_str()).collect();
    assert_eq!(pcis, [CONV, ZNS], "{drives:#?}");

    let conv = &drives[0];
    assert_eq!(conv.driver.as_deref(), Some("nvme"));
    let c = conv.controller.as_ref().unwrap();
    assert_eq!(
        (
            c.name.as_str(),
            c.model.as_deref(),
            c.serial.as_deref(),
            c.firmware.as_deref(),
            c.state.as_deref()
        ),
        (
            "nvme0",
            Some("QEMU NVMe Ctrl"),
            Some("ffconv0"),
            Some("10.0.2"),
            Some("live")
        )
    );
    assert_eq!(
        conv.namespaces,
        [KernelNamespace {
            name: "nvme0n1".into(),
            nsid: Some(1),
            generic: Some("/dev/ng0n1".into()),
            block_size: 4096,
            blocks: 131_072,
            zoned: false,
        }]
    );
    assert_eq!(conv.namespaces[0].size_bytes(), 512 << 20);

    let zns = &drives[1];
    assert_eq!(
        zns.controller.as_ref().unwrap().serial.as_deref(),
        Some("ffzns0")
    );
    let ns = &zns.namespaces[0];
    assert_eq!(
        (ns.zoned, ns.blocks, ns.size_bytes(), ns.generic.as_deref()),
        (true, 65_536, 256 << 20, Some("/dev/ng1n1"))
    );
}

#[test]
fn drives_off_the_kernel_driver_show_their_binding_only() {
    let f = appliance();
    f.pci("0000:00:06.0", "0x010802\n", Some("vfio-pci"));
    f.pci("0000:00:07.0", "0x010802", None);
    // A loop controller claiming the unbound function's address is still no local one.
    f.controller("nvme5", "loop", "0000:00:07.0", "looped");
    let drives = scan(f.root());
    let vfio = drives.iter().find(|d| d.pci == "0000:00:06.0").unwrap();
    assert_eq!(
        (
            vfio.driver.as_deref(),
            &vfio.controller,
            vfio.namespaces.len()
        ),
        (Some("vfio-pci"), &None, 0)
    );
    let unbound = drives.iter().find(|d| d.pci == "0000:00:07.0").unwrap();
    assert_eq!(
        (
            &unbound.driver,
            &unbound.controller,
            unbound.namespaces.len()
        ),
        (&None, &None, 0)
    );
    assert_eq!(drives.len(), 4);
    // No namespace of the fabric controllers shows anywhere.
    assert!(drives
        .iter()
        .flat_map(|d| &d.namespaces)
        .all(|n| n.name != "nvme2n1"));
}

#[test]
fn a_namespace_without_generic_device_or_nsid_and_a_multipath_path() {
    let f = Fake::new();
    f.pci("0000:03:00.0", "0x010802\n", Some("nvme"));
    f.controller("nvme3", "pcie", "0000:03:00.0", "mp");
    // Native multipath: the controller holds the path nvme7c3n2 of head nvme7n2, reached
    // through the head's ng7n2.
    f.namespace("nvme3", "nvme7c3n2", "8192", "512", "none");
    f.nsid("nvme3", "nvme7c3n2", "2");
    f.generic("ng7n2");
    // No nsid file, no generic device.
    f.namespace("nvme3", "nvme3n9", "16", "512", "none");
    let drives = scan(f.root());
    let ns = &drives[0].namespaces;
    assert_eq!(ns.len(), 2, "{ns:#?}");
    // Sorted by NSID: unknown first.
    assert_eq!(
        (
            ns[0].name.as_str(),
            ns[0].nsid,
            &ns[0].generic,
            ns[0].blocks
        ),
        ("nvme3n9", None, &None, 16)
    );
    assert_eq!(
        (ns[1].name.as_str(), ns[1].nsid, ns[1].generic.as_deref()),
        ("nvme7c3n2", Some(2), Some("/dev/ng7n2"))
    );
}

#[test]
fn generic_device_names() {
    assert_eq!(generic_name("nvme0n1").as_deref(), Some("ng0n1"));
    assert_eq!(generic_name("nvme12n3").as_deref(), Some("ng12n3"));
    assert_eq!(generic_name("nvme1c0n4").as_deref(), Some("ng1n4"));
    for not_ns in [
        "nvme0",
        "nvme0n",
        "nvmen1",
        "nvme0n1p1",
        "nvme0cn1",
        "nvmexn1",
        "nvme1c0cn1",
        "hwmon3",
        "power",
        "ng0n1",
        "",
    ] {
        assert_eq!(generic_name(not_ns), None, "{not_ns}");
    }
}

#[test]
fn garbage_and_missing_files_are_left_out_without_a_panic() {
    // No tree at all, and a tree without the nvme class.
    let f = Fake::new();
    assert!(scan(&f.root().join("absent")).is_empty());
    f.pci(CONV, "0x010802\n", Some("nvme"));
    assert_eq!(scan(f.root()).len(), 1);
    assert_eq!(scan(f.root())[0].controller, None);

    let f = appliance();
    // Classes that are no NVMe class, or no class.
    for (addr, class) in [
        ("0000:01:00.0", "garbage\n"),
        ("0000:01:00.1", "0x\n"),
        ("0000:01:00.2", "010802\n"),
        ("0000:01:00.3", "0x0108020000000000000\n"),
        ("0000:01:00.4", ""),
    ] {
        f.pci(addr, class, None);
    }
    f.write("bus/pci/devices/0000:01:00.5/vendor", "0x1b36\n");
    f.write("bus/pci/devices/0000:01:00.6/class", [0xff, 0xfe, 0x00]);
    // A controller of an NVMe function whose files are not text; namespaces with a size or
    // a block size that is no number, a block size no device has, and one with no files.
    f.pci("0000:02:00.0", "0x010802\n", Some("nvme"));
    let at = "class/nvme/nvme4";
    f.write(&format!("{at}/transport"), "pcie\n");
    f.write(&format!("{at}/address"), "0000:02:00.0\n");
    f.write(&format!("{at}/serial"), [0xc3, 0x28, b'\n']);
    f.write(&format!("{at}/model"), "");
    f.namespace("nvme4", "nvme4n1", "lots", "512", "none");
    f.namespace("nvme4", "nvme4n2", "1024", "-1", "none");
    f.namespace("nvme4", "nvme4n3", "1024", "0", "none");
    f.namespace("nvme4", "nvme4n4", "1024", "4097", "none");
    f.namespace("nvme4", "nvme4n5", "18446744073709551615", "4096", "zoned?");
    f.nsid("nvme4", "nvme4n5", "one");
    std::fs::create_dir_all(f.root().join(at).join("nvme4n6")).unwrap();
    std::fs::create_dir_all(f.root().join(at).join("hwmon2")).unwrap();
    // A controller directory that is a file, and one with a non-UTF-8 name.
    f.write("class/nvme/nvme9", "not a directory");
    let odd = std::ffi::OsStr::from_bytes(b"nvme\xff");
    std::fs::create_dir_all(f.root().join("class/nvme").join(odd)).unwrap();

    let drives = scan(f.root());
    let pcis: Vec<&str> = drives.iter().map(|d| d.pci.as_str()).collect();
    assert_eq!(pcis, [CONV, ZNS, "0000:02:00.0"]);
    let d = &drives[2];
    let c = d.controller.as_ref().unwrap();
    assert_eq!((&c.serial, &c.model), (&None, &None));
    assert_eq!(
        d.namespaces,
        [KernelNamespace {
            name: "nvme4n5".into(),
            nsid: None,
            generic: None,
            block_size: 4096,
            blocks: u64::MAX / 4096,
            zoned: false,
        }]
    );
}
