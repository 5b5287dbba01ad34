//! `/redfish/v1/Storage`: one Storage resource per NVM subsystem (Swordfish's NVMe model),
//! its namespaces as Volumes and its connected I/O controllers as StorageControllers.

use serde_json::{json, Value};

use super::fabric::{connection_uri, host_endpoint_uri, listener_endpoint_uri};
use super::metadata::odata_type;
use super::service::{chassis_link, drive_links};
use super::snapshot::{Controller, Namespace, Snapshot, Subsystem};
use super::{canonical, collection, hex, identifier, link, storage_uri, ROOT};

/// The NVMe Base Specification version controllers report (Identify Controller VER).
pub(crate) fn nvme_version() -> String {
    let v = target::admin::VERSION.0;
    match v & 0xff {
        0 => format!("{}.{}", v >> 16, (v >> 8) & 0xff),
        ter => format!("{}.{}.{ter}", v >> 16, (v >> 8) & 0xff),
    }
}

pub(crate) fn volume_uri(nqn: &str, nsid: u32) -> String {
    format!("{}/Volumes/{nsid}", storage_uri(nqn))
}

pub(crate) fn controller_uri(nqn: &str, cntlid: u16) -> String {
    format!("{}/Controllers/{cntlid}", storage_uri(nqn))
}

/// `segments` below `/redfish/v1/Storage`.
pub(crate) fn resolve(snap: &Snapshot, segments: &[&str]) -> Option<Value> {
    match segments {
        [] => {
            let members: Vec<String> = snap
                .subsystems
                .iter()
                .map(|s| storage_uri(&s.nqn))
                .collect();
            Some(collection(
                &format!("{ROOT}/Storage"),
                "StorageCollection",
                "Storage Collection",
                &members,
            ))
        }
        [nqn, rest @ ..] => {
            let sub = snap.subsystem(nqn)?;
            match rest {
                [] => Some(storage(sub)),
                ["Volumes"] => {
                    let members: Vec<String> = sub
                        .namespaces
                        .iter()
                        .map(|n| volume_uri(&sub.nqn, n.nsid))
                        .collect();
                    Some(collection(
                        &format!("{}/Volumes", storage_uri(&sub.nqn)),
                        "VolumeCollection",
                        "Namespaces",
                        &members,
                    ))
                }
                ["Volumes", nsid] => {
                    let nsid: u32 = canonical(nsid)?;
                    let ns = sub.namespaces.iter().find(|n| n.nsid == nsid)?;
                    Some(volume(sub, ns))
                }
                ["Controllers"] => {
                    let members: Vec<String> = sub
                        .controllers
                        .iter()
                        .map(|c| controller_uri(&sub.nqn, c.cntlid))
                        .collect();
                    Some(collection(
                        &format!("{}/Controllers", storage_uri(&sub.nqn)),
                        "StorageControllerCollection",
                        "Connected controllers",
                        &members,
                    ))
                }
                ["Controllers", cntlid] => {
                    let cntlid: u16 = canonical(cntlid)?;
                    let c = sub.controllers.iter().find(|c| c.cntlid == cntlid)?;
                    Some(controller(snap, sub, c))
                }
                _ => None,
            }
        }
    }
}

fn storage(sub: &Subsystem) -> Value {
    let uri = storage_uri(&sub.nqn);
    let drives = drive_links(sub.namespaces.iter().filter_map(|n| n.drive.as_deref()));
    json!({
        "@odata.id": uri,
        "@odata.type": odata_type("Storage"),
        "Id": sub.nqn,
        "Name": sub.nqn,
        "Description": "NVM subsystem exported over NVMe-oF",
        "Identifiers": [identifier("NQN", sub.nqn.clone())],
        "Status": {"State": "Enabled"},
        "Volumes": link(&format!("{uri}/Volumes")),
        "Controllers": link(&format!("{uri}/Controllers")),
        "Drives@odata.count": drives.len(),
        "Drives": drives,
        "Links": {"Enclosures": [chassis_link()]},
    })
}

/// 8-4-4-4-12 hex digits.
pub(crate) fn uuid(b: &[u8; 16]) -> String {
    format!(
        "{}-{}-{}-{}-{}",
        hex(&b[0..4], ""),
        hex(&b[4..6], ""),
        hex(&b[6..8], ""),
        hex(&b[8..10], ""),
        hex(&b[10..16], "")
    )
}

fn volume(sub: &Subsystem, ns: &Namespace) -> Value {
    let drives = drive_links(ns.drive.as_deref());
    json!({
        "@odata.id": volume_uri(&sub.nqn, ns.nsid),
        "@odata.type": odata_type("Volume"),
        "Id": ns.nsid.to_string(),
        "Name": format!("Namespace {}", ns.nsid),
        "CapacityBytes": ns.capacity_bytes(),
        "BlockSizeBytes": ns.block_size,
        "Identifiers": [
            identifier("NGUID", hex(&ns.ids.nguid, "")),
            identifier("EUI", hex(&ns.ids.eui64, "-")),
            identifier("UUID", uuid(&ns.ids.uuid)),
        ],
        "NVMeNamespaceProperties": {
            "NamespaceId": format!("0x{:X}", ns.nsid),
            "NamespaceType": if ns.zoned { "ZNS" } else { "Block" },
            "IsShareable": true,
            "NVMeVersion": nvme_version(),
        },
        "Status": {"State": "Enabled"},
        "Connections": [link(&connection_uri(&sub.nqn))],
        "Links": {
            "OwningStorageResource": link(&storage_uri(&sub.nqn)),
            "Controllers": sub
                .controllers
                .iter()
                .map(|c| link(&controller_uri(&sub.nqn, c.cntlid)))
                .collect::<Vec<_>>(),
            "Drives": drives,
        },
    })
}

fn controller(snap: &Snapshot, sub: &Subsystem, c: &Controller) -> Value {
    let mut endpoints = vec![link(&host_endpoint_uri(&c.host_nqn))];
    if let Some(l) = c.listener.and_then(|i| snap.listeners.get(i)) {
        endpoints.push(link(&listener_endpoint_uri(&l.id)));
    }
    let mut doc = json!({
        "@odata.id": controller_uri(&sub.nqn, c.cntlid),
        "@odata.type": odata_type("StorageController"),
        "Id": c.cntlid.to_string(),
        "Name": format!("Controller {}", c.cntlid),
        "Description": format!(
            "I/O controller of host {} ({} I/O queues)",
            c.host_nqn, c.io_queues
        ),
        "Status": {"State": if c.ready { "Enabled" } else { "Starting" }},
        "SupportedControllerProtocols": ["NVMeOverFabrics"],
        "SupportedDeviceProtocols": ["NVMe"],
        "NVMeControllerProperties": {
            "ControllerType": "IO",
            "NVMeVersion": nvme_version(),
        },
        "Links": {
            "AttachedVolumes": sub
                .namespaces
                .iter()
                .map(|n| link(&volume_uri(&sub.nqn, n.nsid)))
                .collect::<Vec<_>>(),
            "Endpoints": endpoints,
        },
    });
    // What Identify Controller reports; an empty string is left out, as Redfish asks.
    for (key, value) in [
        ("Model", &sub.model),
        ("SerialNumber", &sub.serial),
        ("FirmwareVersion", &sub.firmware),
    ] {
        if !value.trim().is_empty() {
            doc[key] = json!(value.trim());
        }
    }
    doc
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats() {
        assert_eq!(nvme_version(), "2.0");
        let id = [
            0x11, 0x11, 0x11, 0x11, 0x22, 0x22, 0x33, 0x33, 0x44, 0x44, 0x55, 0x55, 0x55, 0x55,
            0x55, 0x55,
        ];
        assert_eq!(uuid(&id), "11111111-2222-3333-4444-555555555555");
    }
}
