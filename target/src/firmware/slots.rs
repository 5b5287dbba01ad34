//! What the box runs and what it could boot: the running version (os-release), the A/B root
//! partitions (GPT labels `ferrofab_<version>` or `_empty`, as the kernel's uevent files
//! show them), the UKIs on the ESP with their boot counters, and the entry systemd-boot
//! booted (its `LoaderEntrySelected` EFI variable). Everything is read from paths the
//! settings give, so tests read a fake tree.

use std::path::{Path, PathBuf};

use super::version::{EntryName, EntryState, Version, PREFIX};

/// The label systemd-sysupdate gives a root slot it has not written (or has freed).
pub const EMPTY_LABEL: &str = "_empty";
/// The image's `IMAGE_ID`.
pub const IMAGE_ID: &str = "ferrofab";
/// systemd-boot's vendor GUID for its EFI variables (the Boot Loader Interface).
pub const LOADER_GUID: &str = "4a67b082-0a4c-41cf-b6c7-440b29bb8c4f";

/// The image the box runs, from os-release.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct OsRelease {
    pub image_id: Option<String>,
    pub image_version: Option<String>,
}

impl OsRelease {
    /// The first of `paths` that can be read (`/etc/os-release`, then
    /// `/usr/lib/os-release`); empty when none can.
    pub fn read(paths: &[PathBuf]) -> OsRelease {
        for path in paths {
            if let Ok(text) = std::fs::read_to_string(path) {
                return OsRelease::parse(&text);
            }
        }
        OsRelease::default()
    }

    /// `KEY=value` lines, values unquoted as os-release(5) allows.
    pub fn parse(text: &str) -> OsRelease {
        let mut out = OsRelease::default();
        for line in text.lines() {
            let Some((key, value)) = line.trim().split_once('=') else {
                continue;
            };
            let value = unquote(value.trim());
            match key.trim() {
                "IMAGE_ID" => out.image_id = Some(value),
                "IMAGE_VERSION" => out.image_version = Some(value),
                _ => {}
            }
        }
        out
    }

    /// The running ferrofab version: `Some` only on a ferrofab image with a valid version.
    pub fn running(&self) -> Option<Version> {
        if self.image_id.as_deref() != Some(IMAGE_ID) {
            return None;
        }
        Version::parse(self.image_version.as_deref()?).ok()
    }
}

/// A value in single or double quotes loses them; in double quotes `\"`, `\\`, `\$` and
/// `` \` `` lose the backslash.
fn unquote(value: &str) -> String {
    let b = value.as_bytes();
    if b.len() >= 2 && b[0] == b'\'' && b[b.len() - 1] == b'\'' {
        return value[1..value.len() - 1].to_string();
    }
    if b.len() >= 2 && b[0] == b'"' && b[b.len() - 1] == b'"' {
        let mut out = String::new();
        let mut chars = value[1..value.len() - 1].chars();
        while let Some(c) = chars.next() {
            if c == '\\' {
                if let Some(n) = chars.next() {
                    if !matches!(n, '"' | '\\' | '$' | '`') {
                        out.push('\\');
                    }
                    out.push(n);
                }
            } else {
                out.push(c);
            }
        }
        return out;
    }
    value.to_string()
}

/// A root partition of the image.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RootSlot {
    /// `/dev/<DEVNAME>`.
    pub device: String,
    pub label: String,
    /// `None`: the slot is empty (`_empty`).
    pub version: Option<Version>,
}

/// The partitions under `sys_block` (`/sys/class/block`) labelled `ferrofab_<version>` or
/// `_empty`, by device name.
pub fn root_slots(sys_block: &Path) -> Vec<RootSlot> {
    let Ok(dir) = std::fs::read_dir(sys_block) else {
        return Vec::new();
    };
    let mut slots: Vec<RootSlot> = dir
        .filter_map(Result::ok)
        .filter_map(|e| std::fs::read_to_string(e.path().join("uevent")).ok())
        .filter_map(|text| slot_of(&text))
        .collect();
    slots.sort_by(|a, b| a.device.cmp(&b.device));
    slots
}

fn slot_of(uevent: &str) -> Option<RootSlot> {
    let mut devname = None;
    let mut partname = None;
    for line in uevent.lines() {
        if let Some(v) = line.strip_prefix("DEVNAME=") {
            devname = Some(v.trim());
        } else if let Some(v) = line.strip_prefix("PARTNAME=") {
            partname = Some(v.trim());
        }
    }
    let (devname, label) = (devname?, partname?);
    let version = if label == EMPTY_LABEL {
        None
    } else {
        Some(Version::parse(label.strip_prefix(PREFIX)?).ok()?)
    };
    Some(RootSlot {
        device: format!("/dev/{devname}"),
        label: label.to_string(),
        version,
    })
}

/// A UKI on the ESP.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BootEntry {
    /// Its file name in `EFI/Linux/`.
    pub file: String,
    pub name: EntryName,
}

impl BootEntry {
    pub fn state(&self) -> EntryState {
        self.name.state()
    }
}

/// The image's UKIs in `<esp>/EFI/Linux/`, newest version first.
pub fn boot_entries(esp: &Path) -> Vec<BootEntry> {
    let Ok(dir) = std::fs::read_dir(esp.join("EFI").join("Linux")) else {
        return Vec::new();
    };
    let mut entries: Vec<BootEntry> = dir
        .filter_map(Result::ok)
        .filter_map(|e| {
            let file = e.file_name().into_string().ok()?;
            let name = EntryName::parse(&file)?;
            Some(BootEntry { file, name })
        })
        .collect();
    entries.sort_by(|a, b| {
        b.name
            .version
            .cmp(&a.name.version)
            .then_with(|| a.file.cmp(&b.file))
    });
    entries
}

/// The boot entry systemd-boot booted: its `LoaderEntrySelected` variable under `efivars`
/// (4 bytes of attributes, then a NUL-terminated UTF-16LE string). `None` without one.
pub fn booted_entry(efivars: &Path) -> Option<String> {
    let bytes = std::fs::read(efivars.join(format!("LoaderEntrySelected-{LOADER_GUID}"))).ok()?;
    let text = bytes.get(4..)?;
    let units: Vec<u16> = text
        .chunks_exact(2)
        .map(|c| u16::from_le_bytes([c[0], c[1]]))
        .take_while(|&u| u != 0)
        .collect();
    let name = String::from_utf16(&units).ok()?;
    (!name.is_empty()).then_some(name)
}

/// The box's image at one moment.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ImageState {
    pub os_release: OsRelease,
    pub running: Option<Version>,
    /// The newest other version the box could boot back into: it has a root slot and a boot
    /// entry that is not bad.
    pub previous: Option<Version>,
    pub slots: Vec<RootSlot>,
    pub entries: Vec<BootEntry>,
    pub booted: Option<String>,
}

impl ImageState {
    pub fn read(os_release: &[PathBuf], sys_block: &Path, esp: &Path, efivars: &Path) -> Self {
        let os_release = OsRelease::read(os_release);
        let running = os_release.running();
        let slots = root_slots(sys_block);
        let entries = boot_entries(esp);
        let previous = previous(running.as_ref(), &slots, &entries);
        ImageState {
            os_release,
            running,
            previous,
            slots,
            entries,
            booted: booted_entry(efivars),
        }
    }

    /// The version of the booted entry, if it is one of the image's.
    pub fn booted_version(&self) -> Option<Version> {
        EntryName::parse(self.booted.as_deref()?).map(|e| e.version)
    }
}

fn previous(
    running: Option<&Version>,
    slots: &[RootSlot],
    entries: &[BootEntry],
) -> Option<Version> {
    slots
        .iter()
        .filter_map(|s| s.version.as_ref())
        .filter(|v| Some(*v) != running)
        .filter(|v| {
            entries
                .iter()
                .any(|e| e.name.version == **v && e.state() != EntryState::Bad)
        })
        .max()
        .cloned()
}

#[cfg(test)]
mod tests;
