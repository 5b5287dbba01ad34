//! Firmware updates of the appliance image: a signed update bundle (a UKI and a root
//! partition image, listed in a `SHA256SUMS` that the vendor's Ed25519 key signed) is fetched,
//! verified and staged, then systemd-sysupdate installs it into the free A/B slot; the next
//! boot runs it, and systemd-boot's boot counting falls back when it does not come up.
//!
//! This is a service of its own beside the engine: it changes the image the box boots, not
//! the target's configuration, so it has no `Action` and nothing of it is persisted in the
//! state directory's configuration. docs/design.md "Firmware updates".

mod bundle;
mod error;
mod install;
mod job;
pub mod manifest;
mod service;
pub mod slots;
#[cfg(test)]
mod testing;
pub mod version;

use std::path::{Path, PathBuf};

pub use bundle::{Source, INCOMING, STAGING};
pub use error::FirmwareError;
pub use job::{Job, Stage, UpdateRequest};
pub use service::{Availability, Firmware, FirmwareStatus};
pub use slots::{BootEntry, ImageState, RootSlot};
pub use version::{EntryState, Version};

/// Where the ESP is mounted on the image.
pub const DEFAULT_ESP: &str = "/efi";
/// systemd-sysupdate (not on `PATH`).
pub const DEFAULT_SYSUPDATE: &str = "/usr/lib/systemd/systemd-sysupdate";
/// The firmware directory inside the daemon's state directory.
pub const FIRMWARE_SUBDIR: &str = "firmware";

/// Every path and command the service touches, so tests run it on a temporary tree with a
/// fake systemd-sysupdate and a reboot that reboots nothing.
#[derive(Clone, Debug)]
pub struct FirmwareSettings {
    /// The public key bundles must be signed with (PEM). `None`: updates are off; the
    /// service still reports the running image.
    pub key: Option<PathBuf>,
    /// The firmware directory: `incoming/` (downloads) and `staging/` (what sysupdate's
    /// transfer definitions install from).
    pub dir: PathBuf,
    /// Where the ESP is mounted (`<esp>/EFI/Linux/` holds the UKIs).
    pub esp: PathBuf,
    /// os-release files, the first readable one counts.
    pub os_release: Vec<PathBuf>,
    /// The efivarfs mount.
    pub efivars: PathBuf,
    /// sysfs' block devices, each with a `uevent` file.
    pub sys_block: PathBuf,
    pub sysupdate: PathBuf,
    /// Program and arguments.
    pub reboot: Vec<String>,
    /// The largest UKI taken.
    pub max_uki_bytes: u64,
    /// The largest root partition image taken.
    pub max_root_bytes: u64,
}

impl FirmwareSettings {
    /// The image's paths, with the firmware directory `dir` and the key file `key`.
    pub fn new(dir: &Path, key: Option<PathBuf>) -> FirmwareSettings {
        FirmwareSettings {
            key,
            dir: dir.to_path_buf(),
            esp: PathBuf::from(DEFAULT_ESP),
            os_release: vec![
                PathBuf::from("/etc/os-release"),
                PathBuf::from("/usr/lib/os-release"),
            ],
            efivars: PathBuf::from("/sys/firmware/efi/efivars"),
            sys_block: PathBuf::from("/sys/class/block"),
            sysupdate: PathBuf::from(DEFAULT_SYSUPDATE),
            reboot: vec!["systemctl".into(), "reboot".into()],
            max_uki_bytes: 512 << 20,
            max_root_bytes: 16 << 30,
        }
    }

    /// `<dir>/staging`.
    pub fn staging(&self) -> PathBuf {
        self.dir.join(STAGING)
    }
}
