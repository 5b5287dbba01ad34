//! One consistent read of what the Redfish view shows, taken through the engine API as the
//! REST handlers take it (`engine.config()`, the running subsystems, namespaces, controllers
//! and listeners), on the blocking pool.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;

use target::config::{BackendKind, TransportKind};
use target::engine::Engine;
use target::ids::NamespaceIds;
use target::local_drives::LocalDrive;
use target::target::ListenerId;

/// Everything one Redfish response may need.
pub(crate) struct Snapshot {
    /// By NQN.
    pub subsystems: Vec<Subsystem>,
    /// In configuration order.
    pub listeners: Vec<Listener>,
    /// Initiator endpoints: hosts that are connected or on an allow-list, by NQN.
    pub hosts: Vec<Host>,
    /// The local NVMe drives, by Id: those namespaces are opened on, and every other one the
    /// PCI bus shows.
    pub drives: Vec<Drive>,
}

pub(crate) struct Subsystem {
    pub nqn: String,
    pub serial: String,
    pub model: String,
    pub firmware: String,
    /// None: any host may connect.
    pub allowed_hosts: Option<Vec<String>>,
    /// By NSID.
    pub namespaces: Vec<Namespace>,
    /// Live I/O controllers, by CNTLID.
    pub controllers: Vec<Controller>,
    /// Indices into [`Snapshot::listeners`] of the listeners it is reachable on.
    pub listeners: Vec<usize>,
}

pub(crate) struct Namespace {
    pub nsid: u32,
    pub block_size: u32,
    pub blocks: u64,
    pub ids: NamespaceIds,
    pub zoned: bool,
    /// Id of the local drive it is opened on.
    pub drive: Option<String>,
}

impl Namespace {
    pub fn capacity_bytes(&self) -> u64 {
        self.blocks.saturating_mul(u64::from(self.block_size))
    }
}

pub(crate) struct Controller {
    pub cntlid: u16,
    pub host_nqn: String,
    /// CSTS.RDY: the host enabled it.
    pub ready: bool,
    pub io_queues: usize,
    /// Index into [`Snapshot::listeners`] of the listener its admin queue came through.
    pub listener: Option<usize>,
}

pub(crate) struct Listener {
    /// The Endpoint Id: `tcp-127.0.0.1-4420`, `rdma-::1-4420`.
    pub id: String,
    pub transport: TransportKind,
    /// Where it is bound.
    pub address: SocketAddr,
}

pub(crate) struct Host {
    pub nqn: String,
    /// Host Identifiers its live controllers connected with.
    pub host_ids: Vec<[u8; 16]>,
    /// Live I/O controllers: subsystem NQN and CNTLID.
    pub controllers: Vec<(String, u16)>,
}

pub(crate) struct Drive {
    pub id: String,
    pub kind: DriveKind,
    /// The namespaces opened on it: subsystem NQN and NSID.
    pub volumes: Vec<(String, u32)>,
    /// What the PCI bus and the kernel show of it; `None` when sysfs lists no such drive (a
    /// controller adopted under an address of its own, a generic device of a fabric
    /// controller).
    pub found: Option<LocalDrive>,
}

pub(crate) enum DriveKind {
    /// An NVMe controller driven through VFIO, at this PCI address.
    Vfio { pci: String },
    /// Kernel NVMe generic character devices (io_uring passthrough).
    Uring { paths: Vec<String> },
    /// A drive no namespace is opened on, as `found` shows it; its Id is its PCI address.
    Unexported,
}

impl Drive {
    /// Whether a namespace of it is opened (and so exported by a subsystem).
    pub fn exported(&self) -> bool {
        match self.kind {
            DriveKind::Vfio { .. } | DriveKind::Uring { .. } => true,
            DriveKind::Unexported => false,
        }
    }
}

impl Snapshot {
    pub fn read(engine: &Engine) -> Snapshot {
        let config = engine.config();
        let target = engine.target();
        let listeners: Vec<Listener> = engine
            .listeners()
            .into_iter()
            .map(|(configured, bound)| Listener {
                id: endpoint_id(configured.transport, bound),
                transport: configured.transport,
                address: bound,
            })
            .collect();
        let listener_index = |transport: TransportKind, local: &SocketAddr| {
            let port = target.inner().listener_for(transport, local)?;
            listeners
                .iter()
                .position(|l| l.transport == port.transport && l.address == port.address)
        };
        let mut drives: BTreeMap<String, Drive> = BTreeMap::new();
        let mut hosts: BTreeMap<String, Host> = BTreeMap::new();
        let mut subsystems = Vec::new();
        for sc in &config.subsystem {
            let Some(sub) = target.subsystem(&sc.nqn) else {
                continue;
            };
            let mut namespaces: Vec<Namespace> = sc
                .namespace
                .iter()
                .filter_map(|nc| {
                    let nsid = nc.nsid?;
                    let ns = sub.namespace(nsid)?;
                    let drive = drive_of(&nc.backend).map(|(id, kind)| {
                        let d = drives.entry(id.clone()).or_insert_with(|| Drive {
                            id: id.clone(),
                            kind,
                            volumes: Vec::new(),
                            found: None,
                        });
                        if let (DriveKind::Uring { paths }, BackendKind::NvmeUring { path, .. }) =
                            (&mut d.kind, &nc.backend)
                        {
                            let path = path.display().to_string();
                            if !paths.contains(&path) {
                                paths.push(path);
                            }
                        }
                        d.volumes.push((sc.nqn.clone(), nsid));
                        id
                    });
                    Some(Namespace {
                        nsid,
                        block_size: ns.block_size(),
                        blocks: ns.num_blocks(),
                        ids: ns.ids,
                        zoned: ns.zoned.is_some(),
                        drive,
                    })
                })
                .collect();
            namespaces.sort_by_key(|n| n.nsid);
            let mut controllers: Vec<Controller> = sub
                .controllers()
                .iter()
                .filter(|c| !c.is_destroyed() && !c.is_discovery())
                .map(|c| {
                    let host = hosts.entry(c.hostnqn.clone()).or_insert_with(|| Host {
                        nqn: c.hostnqn.clone(),
                        host_ids: Vec::new(),
                        controllers: Vec::new(),
                    });
                    if !host.host_ids.contains(&c.hostid) {
                        host.host_ids.push(c.hostid);
                    }
                    host.controllers.push((sc.nqn.clone(), c.cntlid));
                    Controller {
                        cntlid: c.cntlid,
                        host_nqn: c.hostnqn.clone(),
                        ready: c.is_ready(),
                        io_queues: c.io_queue_count(),
                        listener: listener_index(c.transport, &c.local),
                    }
                })
                .collect();
            controllers.sort_by_key(|c| c.cntlid);
            for h in sc.allowed_hosts.iter().flatten() {
                hosts.entry(h.clone()).or_insert_with(|| Host {
                    nqn: h.clone(),
                    host_ids: Vec::new(),
                    controllers: Vec::new(),
                });
            }
            let id = sub.identity();
            subsystems.push(Subsystem {
                nqn: sc.nqn.clone(),
                serial: id.serial,
                model: id.model,
                firmware: id.firmware,
                allowed_hosts: sc.allowed_hosts.clone(),
                namespaces,
                controllers,
                listeners: listeners
                    .iter()
                    .enumerate()
                    .filter(|(_, l)| sub.on_listener(&ListenerId::new(l.transport, l.address)))
                    .map(|(i, _)| i)
                    .collect(),
            });
        }
        subsystems.sort_by(|a, b| a.nqn.cmp(&b.nqn));
        add_local_drives(&mut drives, engine.drives().local());
        for h in hosts.values_mut() {
            h.host_ids.sort_unstable();
            h.controllers.sort();
        }
        Snapshot {
            subsystems,
            listeners,
            hosts: hosts.into_values().collect(),
            drives: drives.into_values().collect(),
        }
    }

    pub fn subsystem(&self, nqn: &str) -> Option<&Subsystem> {
        self.subsystems.iter().find(|s| s.nqn == nqn)
    }

    pub fn host(&self, nqn: &str) -> Option<&Host> {
        self.hosts.iter().find(|h| h.nqn == nqn)
    }

    pub fn listener(&self, id: &str) -> Option<&Listener> {
        self.listeners.iter().find(|l| l.id == id)
    }

    pub fn drive(&self, id: &str) -> Option<&Drive> {
        self.drives.iter().find(|d| d.id == id)
    }
}

/// The drives of the PCI bus, `local`: each in use is the one of `drives` on the same PCI
/// address (nvme-vfio) or kernel controller (nvme-uring); every other one is added,
/// unexported, under its PCI address.
fn add_local_drives(drives: &mut BTreeMap<String, Drive>, local: Vec<LocalDrive>) {
    for found in local {
        let in_use = drives.values_mut().find(|d| match &d.kind {
            DriveKind::Vfio { pci } => *pci == found.pci,
            DriveKind::Uring { .. } => found.controller.as_ref().is_some_and(|c| c.name == d.id),
            DriveKind::Unexported => false,
        });
        match in_use {
            Some(d) => d.found = Some(found),
            None => {
                let id = found.pci.clone();
                drives.entry(id.clone()).or_insert(Drive {
                    id,
                    kind: DriveKind::Unexported,
                    volumes: Vec::new(),
                    found: Some(found),
                });
            }
        }
    }
}

/// A target endpoint's Id: transport, IP and port, with no character a URI must escape.
fn endpoint_id(transport: TransportKind, address: SocketAddr) -> String {
    format!("{}-{}-{}", transport.name(), address.ip(), address.port())
}

/// The local drive a backend is opened on, and its Id: the PCI address of a VFIO controller;
/// for a generic character device `/dev/ngXnY`, the controller `nvmeX` (its other
/// namespaces are the same drive), else the device's file name.
fn drive_of(backend: &BackendKind) -> Option<(String, DriveKind)> {
    match backend {
        BackendKind::NvmeVfio { pci, .. } => {
            Some((pci.clone(), DriveKind::Vfio { pci: pci.clone() }))
        }
        BackendKind::NvmeUring { path, .. } => {
            Some((uring_drive_id(path), DriveKind::Uring { paths: Vec::new() }))
        }
        BackendKind::Ram
        | BackendKind::File
        | BackendKind::Null
        | BackendKind::ZonedRam(_)
        | BackendKind::Volume { .. } => None,
    }
}

fn uring_drive_id(path: &Path) -> String {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| path.display().to_string());
    let controller = name.strip_prefix("ng").and_then(|rest| {
        let (ctrl, ns) = rest.split_once('n')?;
        let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
        (digits(ctrl) && digits(ns)).then(|| format!("nvme{ctrl}"))
    });
    controller.unwrap_or(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_need_no_escaping() {
        let v6: SocketAddr = "[::1]:4420".parse().unwrap();
        assert_eq!(endpoint_id(TransportKind::Rdma, v6), "rdma-::1-4420");
        let v4: SocketAddr = "127.0.0.1:4421".parse().unwrap();
        assert_eq!(endpoint_id(TransportKind::Tcp, v4), "tcp-127.0.0.1-4421");
        assert_eq!(uring_drive_id(Path::new("/dev/ng0n1")), "nvme0");
        assert_eq!(uring_drive_id(Path::new("/dev/ng12n3")), "nvme12");
        assert_eq!(uring_drive_id(Path::new("/dev/ngxn1")), "ngxn1");
        assert_eq!(uring_drive_id(Path::new("/dev/disk/odd")), "odd");
    }
}
