//! `/redfish/v1/Fabrics/NVMeoF`: the NVMe-oF fabric. Its Endpoints are the listeners (target
//! endpoints: transport, address, port, the subsystems reachable there) and the hosts
//! (initiator endpoints: connected hosts and hosts on an allow-list, by host NQN); its
//! Connections are the subsystems' access lists: which hosts may reach which volumes, through
//! which listeners.

use serde_json::{json, Value};

use super::metadata::odata_type;
use super::snapshot::{Host, Listener, Snapshot, Subsystem};
use super::storage::{uuid, volume_uri};
use super::{collection, identifier, link, storage_uri, ROOT};
use crate::state::path_segment;
use target::config::TransportKind;

/// The one fabric.
const FABRIC_ID: &str = "NVMeoF";

fn fabric_uri() -> String {
    format!("{ROOT}/Fabrics/{FABRIC_ID}")
}

pub(crate) fn listener_endpoint_uri(id: &str) -> String {
    format!("{}/Endpoints/{}", fabric_uri(), path_segment(id))
}

pub(crate) fn host_endpoint_uri(host_nqn: &str) -> String {
    format!("{}/Endpoints/{}", fabric_uri(), path_segment(host_nqn))
}

pub(crate) fn connection_uri(nqn: &str) -> String {
    format!("{}/Connections/{}", fabric_uri(), path_segment(nqn))
}

/// `segments` below `/redfish/v1/Fabrics`.
pub(crate) fn resolve(snap: &Snapshot, segments: &[&str]) -> Option<Value> {
    match segments {
        [] => Some(collection(
            &format!("{ROOT}/Fabrics"),
            "FabricCollection",
            "Fabric Collection",
            &[fabric_uri()],
        )),
        [FABRIC_ID] => Some(fabric()),
        [FABRIC_ID, "Endpoints"] => {
            let members: Vec<String> = snap
                .listeners
                .iter()
                .map(|l| listener_endpoint_uri(&l.id))
                .chain(snap.hosts.iter().map(|h| host_endpoint_uri(&h.nqn)))
                .collect();
            Some(collection(
                &format!("{}/Endpoints", fabric_uri()),
                "EndpointCollection",
                "Endpoints",
                &members,
            ))
        }
        [FABRIC_ID, "Endpoints", id] => match snap.listener(id) {
            Some(l) => Some(listener_endpoint(snap, l)),
            None => snap.host(id).map(|h| host_endpoint(snap, h)),
        },
        [FABRIC_ID, "Connections"] => {
            let members: Vec<String> = snap
                .subsystems
                .iter()
                .map(|s| connection_uri(&s.nqn))
                .collect();
            Some(collection(
                &format!("{}/Connections", fabric_uri()),
                "ConnectionCollection",
                "Connections",
                &members,
            ))
        }
        [FABRIC_ID, "Connections", nqn] => snap.subsystem(nqn).map(|s| connection(snap, s)),
        _ => None,
    }
}

fn fabric() -> Value {
    let uri = fabric_uri();
    json!({
        "@odata.id": uri,
        "@odata.type": odata_type("Fabric"),
        "Id": FABRIC_ID,
        "Name": "NVMe over Fabrics",
        "Description": "The NVMe/TCP and NVMe/RDMA fabric the subsystems are exported on",
        "FabricType": "NVMeOverFabrics",
        "Status": {"State": "Enabled"},
        "Endpoints": link(&format!("{uri}/Endpoints")),
        "Connections": link(&format!("{uri}/Connections")),
    })
}

fn listener_endpoint(snap: &Snapshot, l: &Listener) -> Value {
    let on: Vec<&Subsystem> = snap
        .subsystems
        .iter()
        .filter(|s| {
            s.listeners
                .iter()
                .any(|i| snap.listeners.get(*i).is_some_and(|x| x.id == l.id))
        })
        .collect();
    let ip = l.address.ip();
    let mut transport = json!({"Port": l.address.port()});
    if ip.is_ipv4() {
        transport["IPv4Address"] = json!({"Address": ip.to_string()});
    } else {
        transport["IPv6Address"] = json!({"Address": ip.to_string()});
    }
    // RDMA CM runs over RoCE, iWARP or InfiniBand: the listener does not know which.
    let name = match l.transport {
        TransportKind::Tcp => {
            transport["TransportProtocol"] = json!("TCP");
            "NVMe/TCP"
        }
        TransportKind::Rdma => "NVMe/RDMA",
    };
    json!({
        "@odata.id": listener_endpoint_uri(&l.id),
        "@odata.type": odata_type("Endpoint"),
        "Id": l.id,
        "Name": format!("{name} listener {}", l.address),
        "Description": format!("Target endpoint: the {name} listener bound to {}", l.address),
        "EndpointProtocol": "NVMeOverFabrics",
        "IPTransportDetails": [transport],
        "ConnectedEntities": on.iter().map(|s| json!({
            "EntityType": "StorageSubsystem",
            "EntityRole": "Target",
            "EntityLink": link(&storage_uri(&s.nqn)),
            "Identifiers": [identifier("NQN", s.nqn.clone())],
        })).collect::<Vec<_>>(),
        "Status": {"State": "Enabled"},
        "Links": {
            "Connections": on.iter().map(|s| link(&connection_uri(&s.nqn))).collect::<Vec<_>>(),
        },
    })
}

fn host_endpoint(snap: &Snapshot, h: &Host) -> Value {
    let mut identifiers = vec![identifier("NQN", h.nqn.clone())];
    identifiers.extend(
        h.host_ids
            .iter()
            .filter(|id| **id != [0; 16])
            .map(|id| identifier("UUID", uuid(id))),
    );
    let allowed_on: Vec<Value> = snap
        .subsystems
        .iter()
        .filter(|s| s.allowed_hosts.as_ref().is_some_and(|a| a.contains(&h.nqn)))
        .map(|s| link(&connection_uri(&s.nqn)))
        .collect();
    let connected = !h.controllers.is_empty();
    let description = if connected {
        let to: Vec<String> = h
            .controllers
            .iter()
            .map(|(nqn, cntlid)| format!("{nqn} (controller {cntlid})"))
            .collect();
        format!(
            "Initiator endpoint: host {} connected to {}",
            h.nqn,
            to.join(", ")
        )
    } else {
        format!(
            "Initiator endpoint: host {}, allowed on a subsystem, not connected",
            h.nqn
        )
    };
    json!({
        "@odata.id": host_endpoint_uri(&h.nqn),
        "@odata.type": odata_type("Endpoint"),
        "Id": h.nqn,
        "Name": format!("Host {}", h.nqn),
        "Description": description,
        "EndpointProtocol": "NVMeOverFabrics",
        "Identifiers": identifiers,
        "ConnectedEntities": [{"EntityType": "StorageInitiator", "EntityRole": "Initiator"}],
        "Status": {"State": if connected { "Enabled" } else { "Absent" }},
        "Links": {"Connections": allowed_on},
    })
}

fn connection(snap: &Snapshot, s: &Subsystem) -> Value {
    let (initiators, description) = match &s.allowed_hosts {
        Some(hosts) => (
            hosts
                .iter()
                .map(|h| link(&host_endpoint_uri(h)))
                .collect::<Vec<_>>(),
            format!(
                "The hosts allowed to connect to {} and the namespaces they reach",
                s.nqn
            ),
        ),
        None => (
            Vec::new(),
            format!(
                "{} has no allow-list: any host may connect and reach its namespaces",
                s.nqn
            ),
        ),
    };
    json!({
        "@odata.id": connection_uri(&s.nqn),
        "@odata.type": odata_type("Connection"),
        "Id": s.nqn,
        "Name": format!("Access to {}", s.nqn),
        "Description": description,
        "ConnectionType": "Storage",
        "VolumeInfo": s.namespaces.iter().map(|n| json!({
            "Volume": link(&volume_uri(&s.nqn, n.nsid)),
            "AccessCapabilities": ["Read", "Write"],
        })).collect::<Vec<_>>(),
        "Links": {
            "InitiatorEndpoints": initiators,
            "TargetEndpoints": s
                .listeners
                .iter()
                .filter_map(|i| snap.listeners.get(*i))
                .map(|l| link(&listener_endpoint_uri(&l.id)))
                .collect::<Vec<_>>(),
        },
    })
}
