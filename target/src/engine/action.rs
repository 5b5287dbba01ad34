//! The engine's typed actions, what they report, why they are refused, and how each one
//! changes the configuration model (pure: no running state is touched here).

use std::net::SocketAddr;

use crate::config::TlsPskConfig;

use crate::config::{
    ByteSize, Config, FieldAt, FieldPath, HostConfig, ListenerConfig, ListenerRef, NamespaceConfig,
    PoolConfig, RuleError, SubsystemConfig, TransportKind, VolumeConfig, MAX_NSID,
};
use crate::setup::SetupError;
use nvme::backend::ZoneFault;

/// One change to a running box. Every change (REST, SIGHUP reload, boot restore) is one of
/// these, applied by [`super::Engine::apply`] or, several at once, [`super::Engine::apply_all`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// Add a subsystem with its namespaces.
    AddSubsystem(SubsystemConfig),
    /// Remove a subsystem: its controllers are disconnected.
    RemoveSubsystem {
        nqn: String,
    },
    /// Add a namespace; without `nsid` it gets the lowest free one.
    AddNamespace {
        nqn: String,
        namespace: NamespaceConfig,
    },
    RemoveNamespace {
        nqn: String,
        nsid: u32,
    },
    /// Grow a namespace to `size` bytes (a multiple of its block size) without losing a
    /// block: hosts get Namespace Attribute Changed and re-read its capacity. Shrinking is
    /// refused (it would discard host data); the current size is a no-op that succeeds
    /// without an event; drives and block devices are refused (their size is the device's).
    ResizeNamespace {
        nqn: String,
        nsid: u32,
        size: u64,
    },
    /// Change a subsystem's identity or listener restriction (see [`SubsystemAttributes`]).
    SetSubsystemAttributes {
        nqn: String,
        attributes: SubsystemAttributes,
    },
    /// Admit one more host to a subsystem that has an allow-list.
    AddAllowedHost {
        nqn: String,
        host: String,
    },
    /// Revoke a host: its controllers are torn down at once and its reconnects refused.
    RemoveAllowedHost {
        nqn: String,
        host: String,
    },
    /// Replace the allow-list; `None` admits any host.
    SetAllowedHosts {
        nqn: String,
        hosts: Option<Vec<String>>,
    },
    /// Tear down one controller (the host may reconnect).
    DisconnectController {
        cntlid: u16,
    },
    /// Give a host DH-HMAC-CHAP keys, or replace them: its queues connected from now on
    /// must authenticate (queues already connected keep what they had).
    SetHostAuth(HostConfig),
    /// The host no longer authenticates (its next queues connect without).
    RemoveHostAuth {
        host: String,
    },
    /// Give a host an NVMe/TCP TLS PSK for one subsystem or (no subsystem) every one, or
    /// replace it: handshakes from now on use it (connections already up keep theirs).
    SetTlsPsk(TlsPskConfig),
    /// Drop a host's TLS PSK of that scope.
    RemoveTlsPsk {
        host: String,
        subsystem: Option<String>,
    },
    /// Open a listener (port 0 picks a free port); it appears in the discovery log. An RDMA
    /// listener starts the NVMe/RDMA reactors the first time; without rdma-core or an RDMA
    /// device on the address it is refused ([`ActionError::Bind`]).
    AddListener(ListenerConfig),
    /// Close a listener (by its transport and configured address): it leaves the discovery
    /// log and the controllers whose admin queue came through it are disconnected. A
    /// subsystem whose `listeners` names nothing else must drop it first.
    RemoveListener {
        transport: TransportKind,
        address: SocketAddr,
    },
    /// Fault injection: fail the zone starting at `zslba` of a zoned namespace whose backend
    /// offers it (zoned-ram) to Read Only or Offline, as failing media would. The zone joins
    /// the Changed Zone List and controllers that enabled it get Zone Descriptor Changed
    /// (NVMe ZNS 1.1 §5.2.1). Not a configuration change (a backing file keeps it); applied on
    /// its own, not in a batch.
    FailZone {
        nqn: String,
        nsid: u32,
        zslba: u64,
        fault: ZoneFault,
    },
    /// Open a pool of zoned drives with its volumes: empty drives are formatted, a pool
    /// already on them is recovered, drives holding anything else are refused.
    AddPool(PoolConfig),
    /// Close a pool; its data stays on the drives (adding it back recovers it). Refused while
    /// a namespace exports one of its volumes.
    RemovePool {
        pool: String,
    },
    /// Create a volume on a running pool (refused when it does not fit the pool's capacity).
    CreateVolume {
        pool: String,
        volume: VolumeConfig,
    },
    /// Delete a volume and free its blocks; refused while a namespace exports it.
    DeleteVolume {
        pool: String,
        volume: String,
    },
}

/// Subsystem attributes to change: `None` leaves one as it is, `Some(None)` returns it to
/// its default (derived serial, model "ferrofab", the ferrofab version; every listener).
///
/// Serial, model and firmware identify a controller for its lifetime (hosts keep what
/// Identify Controller returned, NVMe Base 2.0 §5.17.2.1), so changing them is refused while
/// the subsystem has controllers. A narrower listener list disconnects the controllers whose
/// admin queue came through a listener it no longer names; hosts get a Discovery Log Page
/// Change event either way.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SubsystemAttributes {
    pub serial: Option<Option<String>>,
    pub model: Option<Option<String>>,
    pub firmware: Option<Option<String>>,
    /// Configured listeners ([`ListenerRef`]: an address names every transport's listener
    /// there).
    pub listeners: Option<Option<Vec<ListenerRef>>>,
}

/// What an applied action did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    SubsystemAdded {
        nqn: String,
        namespaces: Vec<u32>,
    },
    SubsystemRemoved {
        nqn: String,
        controllers_disconnected: usize,
    },
    NamespaceAdded {
        nqn: String,
        nsid: u32,
    },
    NamespaceRemoved {
        nqn: String,
        nsid: u32,
    },
    NamespaceResized {
        nqn: String,
        nsid: u32,
        size: u64,
    },
    SubsystemAttributesChanged {
        nqn: String,
        controllers_disconnected: usize,
    },
    AllowedHostsChanged {
        nqn: String,
        hosts: Option<Vec<String>>,
        controllers_disconnected: usize,
    },
    ControllerDisconnected {
        cntlid: u16,
    },
    HostAuthSet {
        host: String,
        bidirectional: bool,
    },
    HostAuthRemoved {
        host: String,
    },
    TlsPskSet {
        host: String,
        subsystem: Option<String>,
    },
    TlsPskRemoved {
        host: String,
        subsystem: Option<String>,
    },
    ListenerAdded {
        transport: TransportKind,
        address: SocketAddr,
        bound: SocketAddr,
    },
    ListenerRemoved {
        transport: TransportKind,
        address: SocketAddr,
        controllers_disconnected: usize,
    },
    ZoneFailed {
        nqn: String,
        nsid: u32,
        zslba: u64,
        fault: ZoneFault,
        /// Controllers told with a Zone Descriptor Changed event now or at their next AER.
        controllers_notified: usize,
    },
    PoolAdded {
        pool: String,
        volumes: Vec<String>,
    },
    PoolRemoved {
        pool: String,
    },
    VolumeCreated {
        pool: String,
        volume: String,
        size: u64,
    },
    VolumeDeleted {
        pool: String,
        volume: String,
    },
}

impl std::fmt::Display for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Outcome::SubsystemAdded { nqn, namespaces } => {
                write!(f, "subsystem {nqn} added with namespaces {namespaces:?}")
            }
            Outcome::SubsystemRemoved {
                nqn,
                controllers_disconnected,
            } => write!(
                f,
                "subsystem {nqn} removed ({controllers_disconnected} controllers disconnected)"
            ),
            Outcome::NamespaceAdded { nqn, nsid } => write!(f, "namespace {nsid} of {nqn} added"),
            Outcome::NamespaceRemoved { nqn, nsid } => {
                write!(f, "namespace {nsid} of {nqn} removed")
            }
            Outcome::NamespaceResized { nqn, nsid, size } => {
                write!(f, "namespace {nsid} of {nqn} is {size} bytes")
            }
            Outcome::SubsystemAttributesChanged {
                nqn,
                controllers_disconnected,
            } => write!(
                f,
                "subsystem {nqn} attributes changed ({controllers_disconnected} controllers \
                 disconnected)"
            ),
            Outcome::AllowedHostsChanged {
                nqn,
                hosts,
                controllers_disconnected,
            } => match hosts {
                None => write!(f, "subsystem {nqn} admits any host"),
                Some(h) => write!(
                    f,
                    "subsystem {nqn} admits {} hosts ({controllers_disconnected} controllers \
                     of revoked hosts disconnected)",
                    h.len()
                ),
            },
            Outcome::ControllerDisconnected { cntlid } => {
                write!(f, "controller {cntlid} disconnected")
            }
            Outcome::HostAuthSet {
                host,
                bidirectional,
            } => write!(
                f,
                "host {host} authenticates with DH-HMAC-CHAP{}",
                if *bidirectional {
                    " (bidirectional)"
                } else {
                    ""
                }
            ),
            Outcome::HostAuthRemoved { host } => {
                write!(f, "host {host} no longer authenticates")
            }
            Outcome::TlsPskSet { host, subsystem } => match subsystem {
                Some(s) => write!(f, "host {host} has a TLS PSK for subsystem {s}"),
                None => write!(f, "host {host} has a TLS PSK for every subsystem"),
            },
            Outcome::TlsPskRemoved { host, subsystem } => match subsystem {
                Some(s) => write!(f, "host {host} no longer has a TLS PSK for subsystem {s}"),
                None => write!(f, "host {host} no longer has a TLS PSK for every subsystem"),
            },
            Outcome::ListenerAdded {
                transport,
                address,
                bound,
            } => {
                write!(f, "{transport} listener {address} open on {bound}")
            }
            Outcome::ListenerRemoved {
                transport,
                address,
                controllers_disconnected,
            } => write!(
                f,
                "{transport} listener {address} closed ({controllers_disconnected} controllers \
                 disconnected)"
            ),
            Outcome::ZoneFailed {
                nqn,
                nsid,
                zslba,
                fault,
                controllers_notified,
            } => write!(
                f,
                "zone {zslba} of namespace {nsid} of {nqn} failed to {fault:?} \
                 ({controllers_notified} controllers notified)"
            ),
            Outcome::PoolAdded { pool, volumes } => {
                write!(f, "pool {pool} opened with volumes {volumes:?}")
            }
            Outcome::PoolRemoved { pool } => write!(f, "pool {pool} closed"),
            Outcome::VolumeCreated { pool, volume, size } => {
                write!(f, "volume {volume} of {size} bytes created in pool {pool}")
            }
            Outcome::VolumeDeleted { pool, volume } => {
                write!(f, "volume {volume} deleted from pool {pool}")
            }
        }
    }
}

/// Why an action was refused. Nothing changed when one is returned.
#[derive(Debug, thiserror::Error)]
pub enum ActionError {
    /// The result would break a configuration rule (the same rules as the config file);
    /// `field` names the configuration field at fault, when one is.
    #[error("invalid: {message}")]
    Invalid {
        field: Option<FieldPath>,
        message: String,
    },
    #[error("subsystem {0} does not exist")]
    NoSuchSubsystem(String),
    #[error("subsystem {0} already exists")]
    SubsystemExists(String),
    #[error("namespace {nsid} of subsystem {nqn} does not exist")]
    NoSuchNamespace { nqn: String, nsid: u32 },
    #[error("controller {0} does not exist")]
    NoSuchController(u16),
    #[error("host {host} is not on the allow-list of subsystem {nqn}")]
    NoSuchHost { nqn: String, host: String },
    #[error("host {host} is already on the allow-list of subsystem {nqn}")]
    HostExists { nqn: String, host: String },
    #[error("host {0} has no DH-HMAC-CHAP keys")]
    NoSuchHostAuth(String),
    #[error("host {host} has no TLS PSK{}", .subsystem.as_deref().map(|s| format!(" for subsystem {s}")).unwrap_or_else(|| " for every subsystem".into()))]
    NoSuchTlsPsk {
        host: String,
        subsystem: Option<String>,
    },
    #[error(
        "subsystem {0} admits any host: give it an allow-list (SetAllowedHosts) before \
         adding or removing single hosts"
    )]
    NoAllowList(String),
    #[error("namespace {nsid} of subsystem {nqn} cannot be resized: {reason}")]
    NotResizable {
        nqn: String,
        nsid: u32,
        reason: String,
    },
    #[error(
        "namespace {nsid} of subsystem {nqn} holds {current} bytes: shrinking it to {size} \
         would discard host data, and is refused"
    )]
    Shrink {
        nqn: String,
        nsid: u32,
        size: u64,
        current: u64,
    },
    /// Serial, model and firmware cannot change under connected hosts.
    #[error(
        "subsystem {nqn} has {controllers} connected controller(s): its {fields} identify \
         them for their lifetime; disconnect them first (remove the hosts or the listener)"
    )]
    IdentityInUse {
        nqn: String,
        controllers: usize,
        /// The fields the change would alter, e.g. "serial, model".
        fields: String,
    },
    #[error("{transport} listener {address} does not exist")]
    NoSuchListener {
        transport: TransportKind,
        address: SocketAddr,
    },
    /// The listener could not be bound: the address is taken or not local, or (RDMA)
    /// rdma-core is missing or no RDMA device has the address; `source` says which.
    #[error("cannot listen on {address} ({transport}): {source}")]
    Bind {
        transport: TransportKind,
        address: SocketAddr,
        source: std::io::Error,
    },
    /// The new state could not be saved; nothing was changed.
    #[error("not persisted, nothing changed: {0}")]
    Persist(crate::state::StateError),
    /// A change no action expresses at run time (reload only).
    #[error("cannot be applied to the running target: {0}")]
    NotApplicable(String),
    #[error("namespace {nsid} of subsystem {nqn} has no zone starting at LBA {zslba}")]
    NoSuchZone { nqn: String, nsid: u32, zslba: u64 },
    /// The namespace cannot have that zone failed (not zoned, a drive, an Offline zone).
    #[error("namespace {nsid} of subsystem {nqn}: {reason}")]
    ZoneFaultRefused {
        nqn: String,
        nsid: u32,
        reason: String,
    },
    /// The backend could not record the fault (its backing file); the zone is as it was.
    #[error("namespace {nsid} of subsystem {nqn}: the zone fault was not recorded: {source}")]
    ZoneFaultFailed {
        nqn: String,
        nsid: u32,
        source: nvme::backend::BackendError,
    },
    /// A backend could not be opened; nothing was changed.
    #[error(transparent)]
    Setup(#[from] SetupError),
    #[error("pool {0} does not exist")]
    NoSuchPool(String),
    #[error("pool {0} already exists")]
    PoolExists(String),
    #[error("pool {pool} has no volume {volume}")]
    NoSuchVolume { pool: String, volume: String },
    #[error("pool {pool} already has a volume {volume}")]
    VolumeExists { pool: String, volume: String },
    /// Deleting the volume (or closing its pool) would pull it from under the hosts.
    #[error(
        "volume {volume} of pool {pool} is exported by namespace {nsid} of subsystem {nqn}: \
         remove that namespace first"
    )]
    VolumeExported {
        pool: String,
        volume: String,
        nqn: String,
        nsid: u32,
    },
}

impl From<RuleError> for ActionError {
    fn from(e: RuleError) -> ActionError {
        ActionError::Invalid {
            field: e.field,
            message: e.message,
        }
    }
}

fn subsystem_index(config: &Config, nqn: &str) -> Result<usize, ActionError> {
    config
        .subsystem
        .iter()
        .position(|s| s.nqn == nqn)
        .ok_or_else(|| ActionError::NoSuchSubsystem(nqn.to_string()))
}

fn subsystem_mut<'a>(
    config: &'a mut Config,
    nqn: &str,
) -> Result<&'a mut SubsystemConfig, ActionError> {
    config
        .subsystem
        .iter_mut()
        .find(|s| s.nqn == nqn)
        .ok_or_else(|| ActionError::NoSuchSubsystem(nqn.to_string()))
}

/// Apply `action` to the configuration model and return it resolved (an added namespace
/// without NSID gets the lowest free one, as in a configuration file). Existence is checked
/// here; the configuration rules (NQN syntax, NSID range, duplicate drives, …) by
/// `Config::validate` afterwards.
pub(super) fn apply_to_model(config: &mut Config, action: &Action) -> Result<Action, ActionError> {
    match action {
        Action::AddSubsystem(sc) => {
            if config.subsystem.iter().any(|s| s.nqn == sc.nqn) {
                return Err(ActionError::SubsystemExists(sc.nqn.clone()));
            }
            config.subsystem.push(sc.clone());
        }
        Action::RemoveSubsystem { nqn } => {
            subsystem_mut(config, nqn)?;
            config.subsystem.retain(|s| s.nqn != *nqn);
        }
        Action::AddNamespace { nqn, namespace } => {
            let index = subsystem_index(config, nqn)?;
            let sub = &mut config.subsystem[index];
            let mut namespace = namespace.clone();
            if namespace.nsid.is_none() {
                let used: Vec<u32> = sub.namespace.iter().filter_map(|n| n.nsid).collect();
                let free = (1..=MAX_NSID)
                    .find(|id| !used.contains(id))
                    .ok_or_else(|| ActionError::Invalid {
                        field: Some(FieldPath::new(
                            FieldAt::Namespace {
                                subsystem: index,
                                nqn: nqn.clone(),
                                index: used.len(),
                                nsid: None,
                            },
                            "nsid",
                        )),
                        message: format!("subsystem {nqn}: more than {MAX_NSID} namespaces"),
                    })?;
                namespace.nsid = Some(free);
            }
            sub.namespace.push(namespace.clone());
            return Ok(Action::AddNamespace {
                nqn: nqn.clone(),
                namespace,
            });
        }
        Action::RemoveNamespace { nqn, nsid } => {
            let sub = subsystem_mut(config, nqn)?;
            let before = sub.namespace.len();
            sub.namespace.retain(|n| n.nsid != Some(*nsid));
            if sub.namespace.len() == before {
                return Err(ActionError::NoSuchNamespace {
                    nqn: nqn.clone(),
                    nsid: *nsid,
                });
            }
        }
        Action::ResizeNamespace { nqn, nsid, size } => {
            let ns = subsystem_mut(config, nqn)?
                .namespace
                .iter_mut()
                .find(|n| n.nsid == Some(*nsid))
                .ok_or_else(|| ActionError::NoSuchNamespace {
                    nqn: nqn.clone(),
                    nsid: *nsid,
                })?;
            if ns.backend.is_drive() {
                return Err(ActionError::NotResizable {
                    nqn: nqn.clone(),
                    nsid: *nsid,
                    reason: format!("backend {} takes its capacity from the drive", ns.backend),
                });
            }
            // Block-size multiple: Config::validate; shrinking: checked against the running
            // namespace when the change is prepared.
            ns.size = Some(ByteSize(*size));
        }
        Action::SetSubsystemAttributes { nqn, attributes } => {
            let sub = subsystem_mut(config, nqn)?;
            let a = attributes.clone();
            if let Some(v) = a.serial {
                sub.serial = v;
            }
            if let Some(v) = a.model {
                sub.model = v;
            }
            if let Some(v) = a.firmware {
                sub.firmware = v;
            }
            if let Some(v) = a.listeners {
                sub.listeners = v;
            }
        }
        Action::AddAllowedHost { nqn, host } => {
            let sub = subsystem_mut(config, nqn)?;
            let list = sub
                .allowed_hosts
                .as_mut()
                .ok_or_else(|| ActionError::NoAllowList(nqn.clone()))?;
            if list.contains(host) {
                return Err(ActionError::HostExists {
                    nqn: nqn.clone(),
                    host: host.clone(),
                });
            }
            list.push(host.clone());
        }
        Action::RemoveAllowedHost { nqn, host } => {
            let sub = subsystem_mut(config, nqn)?;
            let list = sub
                .allowed_hosts
                .as_mut()
                .ok_or_else(|| ActionError::NoAllowList(nqn.clone()))?;
            let before = list.len();
            list.retain(|h| h != host);
            if list.len() == before {
                return Err(ActionError::NoSuchHost {
                    nqn: nqn.clone(),
                    host: host.clone(),
                });
            }
        }
        Action::SetAllowedHosts { nqn, hosts } => {
            subsystem_mut(config, nqn)?.allowed_hosts = hosts.clone();
        }
        // Keys and lists are checked by Config::validate.
        Action::SetHostAuth(h) => match config.host.iter_mut().find(|c| c.nqn == h.nqn) {
            Some(c) => *c = h.clone(),
            None => config.host.push(h.clone()),
        },
        Action::RemoveHostAuth { host } => {
            let before = config.host.len();
            config.host.retain(|c| &c.nqn != host);
            if config.host.len() == before {
                return Err(ActionError::NoSuchHostAuth(host.clone()));
            }
        }
        // The key and NQNs are checked by Config::validate.
        Action::SetTlsPsk(p) => {
            match config
                .tls_psk
                .iter_mut()
                .find(|c| c.host == p.host && c.subsystem == p.subsystem)
            {
                Some(c) => *c = p.clone(),
                None => config.tls_psk.push(p.clone()),
            }
        }
        Action::RemoveTlsPsk { host, subsystem } => {
            let before = config.tls_psk.len();
            config
                .tls_psk
                .retain(|c| &c.host != host || &c.subsystem != subsystem);
            if config.tls_psk.len() == before {
                return Err(ActionError::NoSuchTlsPsk {
                    host: host.clone(),
                    subsystem: subsystem.clone(),
                });
            }
        }
        // Not configuration changes; checked against the running controllers and zones.
        Action::DisconnectController { .. } | Action::FailZone { .. } => {}
        Action::AddPool(_)
        | Action::RemovePool { .. }
        | Action::CreateVolume { .. }
        | Action::DeleteVolume { .. } => super::pools::apply_to_model(config, action)?,
        // Duplicates and subsystems naming a removed listener: Config::validate.
        Action::AddListener(l) => config.listener.push(l.clone()),
        Action::RemoveListener { transport, address } => {
            let before = config.listener.len();
            config
                .listener
                .retain(|l| l.transport != *transport || l.address != *address);
            if config.listener.len() == before {
                return Err(ActionError::NoSuchListener {
                    transport: *transport,
                    address: *address,
                });
            }
        }
    }
    Ok(action.clone())
}
