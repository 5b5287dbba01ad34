//! What the Linux kernel tells of an NVMe controller it drives — an `nvme-uring` drive stays
//! on the kernel's driver — read from sysfs (`<sysfs>/class/nvme/nvmeX/`): identity, where it
//! is attached, the driver's controller state, and the Composite Temperature its hwmon sensor
//! reads from the drive's SMART / Health log.

use std::path::Path;

/// Where the kernel lists its NVMe controllers, below the sysfs root.
pub(crate) const CLASS_NVME: &str = "class/nvme";

/// One kernel NVMe controller, as far as sysfs shows it (a missing attribute is `None`).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct KernelController {
    /// `nvmeX`.
    pub name: String,
    pub model: Option<String>,
    pub serial: Option<String>,
    pub firmware: Option<String>,
    /// How it is attached: `pcie` for a local drive, `tcp`, `rdma`, `fc` or `loop` for a
    /// fabric controller.
    pub transport: Option<String>,
    /// Where: the PCI address of a `pcie` controller, the target's of a fabric one.
    pub address: Option<String>,
    /// The kernel driver's state: `live`, `resetting`, `connecting`, `deleting`, `dead`, …
    pub state: Option<String>,
    /// Composite Temperature (SMART / Health log, NVMe Base 2.0 §5.16.1.3) in °C, when the
    /// kernel has NVMe hwmon support.
    pub temperature_celsius: Option<f64>,
}

/// The kernel controller `name` (`nvmeX`) in the sysfs tree at `sysfs` (`/sys` on a running
/// system); `None` when it does not exist or the name is not a controller's.
pub fn kernel_controller(sysfs: &Path, name: &str) -> Option<KernelController> {
    read_in(&sysfs.join(CLASS_NVME), name)
}

/// The controller `name` in `root`, the kernel's list of NVMe controllers.
pub(crate) fn read_in(root: &Path, name: &str) -> Option<KernelController> {
    let digits = name.strip_prefix("nvme")?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let dir = root.join(name);
    if !dir.is_dir() {
        return None;
    }
    let attr = |file: &str| {
        std::fs::read_to_string(dir.join(file))
            .ok()
            .map(|t| t.trim().to_string())
            .filter(|t| !t.is_empty())
    };
    Some(KernelController {
        name: name.to_string(),
        model: attr("model"),
        serial: attr("serial"),
        firmware: attr("firmware_rev"),
        transport: attr("transport"),
        address: attr("address"),
        state: attr("state"),
        temperature_celsius: temperature(&dir),
    })
}

/// temp1 (Composite) of the controller's hwmon device, in millidegrees Celsius in sysfs.
fn temperature(dir: &Path) -> Option<f64> {
    let hwmons = [dir.to_path_buf(), dir.join("device").join("hwmon")];
    hwmons.iter().find_map(|parent| {
        std::fs::read_dir(parent).ok()?.flatten().find_map(|entry| {
            let name = entry.file_name();
            if !name.to_string_lossy().starts_with("hwmon") {
                return None;
            }
            let text = std::fs::read_to_string(entry.path().join("temp1_input")).ok()?;
            let millidegrees: i64 = text.trim().parse().ok()?;
            Some(millidegrees as f64 / 1000.0)
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_identity_state_and_temperature() {
        let root = tempfile_dir();
        let ctrl = root.join("nvme3");
        std::fs::create_dir_all(ctrl.join("hwmon5")).unwrap();
        std::fs::write(
            ctrl.join("model"),
            "QEMU NVMe Ctrl                          \n",
        )
        .unwrap();
        std::fs::write(ctrl.join("serial"), "deadbeef\n").unwrap();
        std::fs::write(ctrl.join("firmware_rev"), "9.2.0   \n").unwrap();
        std::fs::write(ctrl.join("state"), "live\n").unwrap();
        std::fs::write(ctrl.join("transport"), "pcie\n").unwrap();
        std::fs::write(ctrl.join("address"), "0000:00:04.0\n").unwrap();
        std::fs::write(ctrl.join("hwmon5/temp1_input"), "35850\n").unwrap();
        let got = read_in(&root, "nvme3").unwrap();
        assert_eq!(got.model.as_deref(), Some("QEMU NVMe Ctrl"));
        assert_eq!(got.serial.as_deref(), Some("deadbeef"));
        assert_eq!(got.firmware.as_deref(), Some("9.2.0"));
        assert_eq!(got.state.as_deref(), Some("live"));
        assert_eq!(got.transport.as_deref(), Some("pcie"));
        assert_eq!(got.address.as_deref(), Some("0000:00:04.0"));
        assert_eq!(got.temperature_celsius, Some(35.85));

        std::fs::create_dir_all(root.join("nvme4/device/hwmon/hwmon1")).unwrap();
        std::fs::write(root.join("nvme4/device/hwmon/hwmon1/temp1_input"), "-1000").unwrap();
        let bare = read_in(&root, "nvme4").unwrap();
        assert_eq!((bare.model, bare.state, bare.transport), (None, None, None));
        assert_eq!(bare.temperature_celsius, Some(-1.0));

        for bad in ["nvme9", "nvme", "nvme1/../nvme3", "sda", "../nvme3"] {
            assert_eq!(read_in(&root, bad), None, "{bad}");
        }
        std::fs::remove_dir_all(&root).unwrap();
    }

    fn tempfile_dir() -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "ferrofab-kernel-nvme-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }
}
