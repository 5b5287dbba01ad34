//! The service root, the session service (sessions are not offered: every request carries
//! its credentials), and the appliance's Chassis with the local NVMe drives.

use serde_json::{json, Value};

use super::metadata::odata_type;
use super::snapshot::{Drive, DriveKind, Snapshot};
use super::{collection, link, storage_uri, ROOT};
use crate::drives::{DriveState, DriveView, SmartSeverityView};
use crate::state::path_segment;

/// The Redfish Specification (DSP0266) version the service follows.
pub(crate) const REDFISH_VERSION: &str = "1.17.0";
/// The one Chassis: the box ferrofab runs on.
pub(crate) const CHASSIS_ID: &str = "appliance";

pub(crate) fn root() -> Value {
    json!({
        "@odata.id": "/redfish/v1/",
        "@odata.type": odata_type("ServiceRoot"),
        "Id": "RootService",
        "Name": "ferrofab Redfish service",
        "RedfishVersion": REDFISH_VERSION,
        "Product": "ferrofab",
        "Vendor": "ferrofab",
        "ProtocolFeaturesSupported": {
            "ExpandQuery": {"ExpandAll": false, "Levels": false, "Links": false, "NoLinks": false},
            "FilterQuery": false,
            "SelectQuery": false,
            "ExcerptQuery": false,
            "OnlyMemberQuery": false,
            "DeepOperations": {"DeepPATCH": false, "DeepPOST": false},
        },
        "Storage": link(&format!("{ROOT}/Storage")),
        "Fabrics": link(&format!("{ROOT}/Fabrics")),
        "Chassis": link(&format!("{ROOT}/Chassis")),
        "SessionService": link(&format!("{ROOT}/SessionService")),
        "Links": {"Sessions": link(&format!("{ROOT}/SessionService/Sessions"))},
    })
}

pub(crate) fn session_service() -> Value {
    json!({
        "@odata.id": format!("{ROOT}/SessionService"),
        "@odata.type": odata_type("SessionService"),
        "Id": "SessionService",
        "Name": "Session Service",
        "Description": "Sessions are not offered: authenticate every request with HTTP Basic \
            (any user name, an API token as the password) or Authorization: Bearer <token>.",
        "ServiceEnabled": false,
        "Status": {"State": "Disabled"},
        "Sessions": link(&format!("{ROOT}/SessionService/Sessions")),
    })
}

/// Always empty: no session is ever created.
pub(crate) fn sessions() -> Value {
    collection(
        &format!("{ROOT}/SessionService/Sessions"),
        "SessionCollection",
        "Session Collection",
        &[],
    )
}

fn chassis_uri() -> String {
    format!("{ROOT}/Chassis/{CHASSIS_ID}")
}

fn drive_uri(id: &str) -> String {
    format!("{}/Drives/{}", chassis_uri(), path_segment(id))
}

/// Links to the drives with these Ids.
pub(crate) fn drive_links<'a>(ids: impl IntoIterator<Item = &'a str>) -> Vec<Value> {
    let mut ids: Vec<&str> = ids.into_iter().collect();
    ids.sort_unstable();
    ids.dedup();
    ids.into_iter().map(|id| link(&drive_uri(id))).collect()
}

pub(crate) fn chassis_link() -> Value {
    link(&chassis_uri())
}

pub(crate) fn chassis_collection() -> Value {
    collection(
        &format!("{ROOT}/Chassis"),
        "ChassisCollection",
        "Chassis Collection",
        &[chassis_uri()],
    )
}

pub(crate) fn chassis(snap: &Snapshot) -> Value {
    json!({
        "@odata.id": chassis_uri(),
        "@odata.type": odata_type("Chassis"),
        "Id": CHASSIS_ID,
        "Name": "ferrofab appliance",
        "Description": "The box running ferrofab: it serves the NVM subsystems and holds the \
            NVMe drives, exported or not.",
        "ChassisType": "Enclosure",
        "Drives": link(&format!("{}/Drives", chassis_uri())),
        "Links": {
            "Drives": drive_links(snap.drives.iter().map(|d| d.id.as_str())),
            "Storage": snap.subsystems.iter().map(|s| link(&storage_uri(&s.nqn))).collect::<Vec<_>>(),
        },
    })
}

pub(crate) fn drive_collection(snap: &Snapshot) -> Value {
    let members: Vec<String> = snap.drives.iter().map(|d| drive_uri(&d.id)).collect();
    collection(
        &format!("{}/Drives", chassis_uri()),
        "DriveCollection",
        "Drive Collection",
        &members,
    )
}

/// A Drive (Drive 1.17.0) from the snapshot's `d` and what its driver reports (`view`): its
/// identity, the capacity of its namespaces and, from the SMART / Health log, Status.Health
/// (the critical warnings' severity: OK, Warning, Critical), FailurePredicted and
/// PredictedMediaLifeLeftPercent (100 - Percentage Used). A gone controller is Critical and
/// UnavailableOffline; one not exported is StandbyOffline (it waits for an operator to create
/// a namespace on it); without a log, Health is left out.
pub(crate) fn drive(d: &Drive, view: &DriveView) -> Value {
    let description = match &d.kind {
        DriveKind::Vfio { pci } => format!(
            "NVMe controller at PCI address {pci}, driven by ferrofab's userspace driver (VFIO)"
        ),
        DriveKind::Uring { paths } => format!(
            "NVMe controller of the kernel driver, used through its generic character devices \
             ({}) with io_uring passthrough",
            paths.join(", ")
        ),
        DriveKind::Unexported => format!(
            "NVMe controller at PCI address {}, not exported: no namespace of it is served \
             (bound to {})",
            d.id,
            view.driver_bound.as_deref().unwrap_or("none")
        ),
    };
    let smart = view.health.smart_log.as_ref();
    let failed = view.health.state == DriveState::Failed;
    let health = match smart.map(|s| s.severity) {
        _ if failed => Some("Critical"),
        Some(SmartSeverityView::Ok) => Some("OK"),
        Some(SmartSeverityView::Warning) => Some("Warning"),
        Some(SmartSeverityView::Critical) => Some("Critical"),
        None => None,
    };
    let state = if failed {
        "UnavailableOffline"
    } else if d.exported() {
        "Enabled"
    } else {
        "StandbyOffline"
    };
    let mut status = json!({ "State": state });
    if let Some(health) = health {
        status["Health"] = json!(health);
    }
    let mut drive = json!({
        "@odata.id": drive_uri(&d.id),
        "@odata.type": odata_type("Drive"),
        "Id": d.id,
        "Name": format!("NVMe drive {}", d.id),
        "Description": description,
        "Protocol": "NVMe",
        "Status": status,
        "CapacityBytes": view.capacity_bytes,
        "Links": {
            "Chassis": chassis_link(),
            "Volumes": d
                .volumes
                .iter()
                .map(|(nqn, nsid)| link(&super::storage::volume_uri(nqn, *nsid)))
                .collect::<Vec<_>>(),
        },
    });
    for (key, value) in [
        ("Model", &view.model),
        ("SerialNumber", &view.serial),
        ("Revision", &view.firmware),
    ] {
        if let Some(v) = value {
            drive[key] = json!(v);
        }
    }
    if let Some(s) = smart {
        drive["FailurePredicted"] = json!(s.failure_predicted);
        drive["PredictedMediaLifeLeftPercent"] = json!(100u8.saturating_sub(s.percentage_used));
    }
    drive
}
