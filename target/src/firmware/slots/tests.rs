//! The image state read from a fake root: os-release, sysfs block devices, an ESP and the
//! efivars directory.

use std::fs;
use std::path::Path;

use super::*;

fn write(path: &Path, bytes: impl AsRef<[u8]>) {
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(path, bytes).unwrap();
}

/// `/sys/class/block/<dev>/uevent` as the kernel writes it for a GPT partition.
fn partition(sys: &Path, dev: &str, partn: u32, label: Option<&str>) {
    let mut text = format!("MAJOR=259\nMINOR={partn}\nDEVNAME={dev}\nDEVTYPE=partition\n");
    text.push_str(&format!("DISKSEQ=9\nPARTN={partn}\n"));
    if let Some(l) = label {
        text.push_str(&format!("PARTNAME={l}\n"));
    }
    write(&sys.join(dev).join("uevent"), text);
}

/// The `LoaderEntrySelected` variable's bytes: attributes, then NUL-terminated UTF-16LE.
fn efivar(name: &str) -> Vec<u8> {
    let mut bytes = vec![0x06, 0, 0, 0];
    for u in name.encode_utf16().chain([0]) {
        bytes.extend_from_slice(&u.to_le_bytes());
    }
    bytes
}

#[test]
fn os_release_values_are_unquoted() {
    let r = OsRelease::parse(
        "NAME=\"Debian\"\nIMAGE_ID=ferrofab\nIMAGE_VERSION='0.1.0.2'\n# IMAGE_VERSION=9\n",
    );
    assert_eq!(r.image_id.as_deref(), Some("ferrofab"));
    assert_eq!(r.image_version.as_deref(), Some("0.1.0.2"));
    assert_eq!(r.running().unwrap().as_str(), "0.1.0.2");
    let r = OsRelease::parse("IMAGE_ID=\"ferro\\\"fab\"\nIMAGE_VERSION=\"1\\x\"\n");
    assert_eq!(r.image_id.as_deref(), Some("ferro\"fab"));
    assert_eq!(r.image_version.as_deref(), Some("1\\x"));
    // Another image, or a version that is not one: no running ferrofab version.
    assert_eq!(
        OsRelease::parse("IMAGE_ID=other\nIMAGE_VERSION=1\n").running(),
        None
    );
    assert_eq!(
        OsRelease::parse("IMAGE_ID=ferrofab\nIMAGE_VERSION=1.x\n").running(),
        None
    );
    assert_eq!(OsRelease::parse("IMAGE_ID=ferrofab\n").running(), None);
}

#[test]
fn os_release_falls_back_to_usr_lib() {
    let dir = tempfile::tempdir().unwrap();
    let etc = dir.path().join("etc-os-release");
    let usr = dir.path().join("usr-os-release");
    write(&usr, "IMAGE_ID=ferrofab\nIMAGE_VERSION=0.2\n");
    let paths = [etc.clone(), usr];
    assert_eq!(OsRelease::read(&paths).running().unwrap().as_str(), "0.2");
    write(&etc, "IMAGE_ID=ferrofab\nIMAGE_VERSION=0.3\n");
    assert_eq!(OsRelease::read(&paths).running().unwrap().as_str(), "0.3");
    assert_eq!(OsRelease::read(&[]), OsRelease::default());
}

#[test]
fn booted_entry_is_decoded_from_the_efivar() {
    let dir = tempfile::tempdir().unwrap();
    let var = dir
        .path()
        .join(format!("LoaderEntrySelected-{LOADER_GUID}"));
    assert_eq!(booted_entry(dir.path()), None);
    write(&var, efivar("ferrofab_0.1.0.2+2-1.efi"));
    assert_eq!(
        booted_entry(dir.path()).as_deref(),
        Some("ferrofab_0.1.0.2+2-1.efi")
    );
    // Without the terminating NUL, and with an odd trailing byte: the whole units count.
    let mut bytes = efivar("ferrofab_1.efi");
    bytes.truncate(bytes.len() - 2);
    bytes.push(0x41);
    write(&var, &bytes);
    assert_eq!(booted_entry(dir.path()).as_deref(), Some("ferrofab_1.efi"));
    // Only attributes, an empty name, a lone surrogate: none booted.
    for broken in [vec![6, 0, 0, 0], vec![6, 0], efivar(""), {
        let mut b = vec![6, 0, 0, 0];
        b.extend_from_slice(&0xD800u16.to_le_bytes());
        b
    }] {
        write(&var, &broken);
        assert_eq!(booted_entry(dir.path()), None, "{broken:?}");
    }
}

#[test]
fn a_fake_box_is_read_whole() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let sys = root.join("sys/class/block");
    partition(&sys, "nvme0n1p3", 3, Some("ferrofab_0.1.0.3"));
    partition(&sys, "nvme0n1p2", 2, Some("ferrofab_0.1.0.2"));
    partition(&sys, "nvme0n1p1", 1, Some("esp"));
    partition(&sys, "nvme0n1p4", 4, Some("ferrofab_0.1.0.1"));
    partition(&sys, "sda1", 1, Some(EMPTY_LABEL));
    partition(&sys, "sdb1", 1, Some("ferrofab_not.a-version"));
    partition(&sys, "nvme0n1p9", 9, None);
    write(&sys.join("nvme0n1/uevent"), "MAJOR=259\nDEVNAME=nvme0n1\n");
    let esp = root.join("efi");
    for file in [
        "ferrofab_0.1.0.3+0-3.efi",
        "ferrofab_0.1.0.2.efi",
        "ferrofab_0.1.0.1+2-1.efi",
        "ferrofab_0.1.0.4+3.efi",
        "other.efi",
    ] {
        write(&esp.join("EFI/Linux").join(file), b"MZ");
    }
    let efivars = root.join("efivars");
    write(
        &efivars.join(format!("LoaderEntrySelected-{LOADER_GUID}")),
        efivar("ferrofab_0.1.0.2.efi"),
    );
    let os = root.join("os-release");
    write(&os, "ID=debian\nIMAGE_ID=ferrofab\nIMAGE_VERSION=0.1.0.2\n");

    let state = ImageState::read(&[os], &sys, &esp, &efivars);
    assert_eq!(state.running.as_ref().unwrap().as_str(), "0.1.0.2");
    let slots: Vec<(&str, &str, Option<&str>)> = state
        .slots
        .iter()
        .map(|s| {
            (
                s.device.as_str(),
                s.label.as_str(),
                s.version.as_ref().map(Version::as_str),
            )
        })
        .collect();
    assert_eq!(
        slots,
        [
            ("/dev/nvme0n1p2", "ferrofab_0.1.0.2", Some("0.1.0.2")),
            ("/dev/nvme0n1p3", "ferrofab_0.1.0.3", Some("0.1.0.3")),
            ("/dev/nvme0n1p4", "ferrofab_0.1.0.1", Some("0.1.0.1")),
            ("/dev/sda1", "_empty", None),
        ]
    );
    let entries: Vec<(&str, EntryState, Option<u32>, Option<u32>)> = state
        .entries
        .iter()
        .map(|e| {
            (
                e.file.as_str(),
                e.state(),
                e.name.tries_left,
                e.name.tries_done,
            )
        })
        .collect();
    assert_eq!(
        entries,
        [
            (
                "ferrofab_0.1.0.4+3.efi",
                EntryState::Indeterminate,
                Some(3),
                None
            ),
            (
                "ferrofab_0.1.0.3+0-3.efi",
                EntryState::Bad,
                Some(0),
                Some(3)
            ),
            ("ferrofab_0.1.0.2.efi", EntryState::Good, None, None),
            (
                "ferrofab_0.1.0.1+2-1.efi",
                EntryState::Indeterminate,
                Some(2),
                Some(1)
            ),
        ]
    );
    assert_eq!(state.booted.as_deref(), Some("ferrofab_0.1.0.2.efi"));
    assert_eq!(state.booted_version().unwrap().as_str(), "0.1.0.2");
    // 0.1.0.3 has a slot but a bad entry, 0.1.0.4 an entry but no slot: 0.1.0.1 is the
    // version to go back to.
    assert_eq!(state.previous.as_ref().unwrap().as_str(), "0.1.0.1");
}

#[test]
fn a_box_without_the_image_reads_empty() {
    let dir = tempfile::tempdir().unwrap();
    let nowhere = dir.path().join("missing");
    let state = ImageState::read(std::slice::from_ref(&nowhere), &nowhere, &nowhere, &nowhere);
    assert_eq!(state, ImageState::default());
}
