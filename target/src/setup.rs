//! Build a running target from a validated configuration.

use std::sync::Arc;

use nvme::backend::{
    Backend, BackendError, FileBackend, FileOptions, NullBackend, RamBackend, ZonedRamBackend,
};

use crate::config::{BackendKind, Config, ListenerConfig, NamespaceConfig, SubsystemConfig};
use crate::controller::TargetParams;
use crate::drives::Drives;
use crate::ids::derive_serial;
use crate::namespace::Namespace;
use crate::subsystem::{Identity, Subsystem};
use crate::target::{FabricTarget, Listener, ListenerId};

/// Model number reported when the configuration names none.
pub const DEFAULT_MODEL: &str = "ferrofab";

#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    /// `backend` names it as configured (kind and file, device or PCI address), since the
    /// backend's own error may not.
    #[error("subsystem {nqn} namespace {nsid} ({backend}): {source}")]
    Backend {
        nqn: String,
        nsid: u32,
        backend: String,
        source: nvme::backend::BackendError,
    },
    #[error("subsystem {nqn}: {message}")]
    Duplicate { nqn: String, message: String },
    /// A pool could not be opened, or a volume created or opened on it.
    #[error("pool {pool}: {source}")]
    Pool {
        pool: String,
        source: crate::layout::LayoutError,
    },
}

/// Open a namespace's backend as its configuration describes.
pub fn open_backend(
    ns: &NamespaceConfig,
    drives: &Drives,
) -> Result<Arc<dyn Backend>, nvme::backend::BackendError> {
    let bs = ns.block_size();
    let size = ns.size.map(|s| s.0);
    Ok(match &ns.backend {
        BackendKind::Ram => Arc::new(RamBackend::new(size.unwrap_or(0), bs)?),
        BackendKind::Null => Arc::new(NullBackend::new(size.unwrap_or(0), bs)?),
        BackendKind::File => {
            let path = ns.path.clone().unwrap_or_default();
            Arc::new(FileBackend::open(
                path,
                FileOptions {
                    block_size: bs,
                    size,
                    direct: ns.direct.unwrap_or(true),
                    create: size.is_some(),
                },
            )?)
        }
        BackendKind::ZonedRam(spec) => {
            let cfg = spec
                .geometry(size.unwrap_or(0), bs)
                .map_err(|(_, message)| {
                    BackendError::Io(std::io::Error::new(
                        std::io::ErrorKind::InvalidInput,
                        message,
                    ))
                })?;
            match &ns.path {
                None => Arc::new(ZonedRamBackend::new(cfg)?),
                Some(path) => Arc::new(ZonedRamBackend::open_file(cfg, path)?),
            }
        }
        drive @ (BackendKind::NvmeVfio { .. } | BackendKind::NvmeUring { .. }) => {
            drives.open(drive)?
        }
        BackendKind::Volume { pool, volume } => drives.pools().volume(pool, volume)?,
    })
}

/// Open one configured namespace of subsystem `nqn`.
pub fn open_namespace(
    nqn: &str,
    nc: &NamespaceConfig,
    drives: &Drives,
) -> Result<Arc<Namespace>, SetupError> {
    let nsid = nc.nsid.unwrap_or(0);
    let backend = open_backend(nc, drives).map_err(|source| SetupError::Backend {
        nqn: nqn.to_string(),
        nsid,
        backend: match (&nc.backend, &nc.path) {
            (BackendKind::File | BackendKind::ZonedRam(_), Some(path)) => {
                format!("{} {}", nc.backend, path.display())
            }
            (kind, _) => kind.to_string(),
        },
        source,
    })?;
    let ns = Arc::new(Namespace::new(nqn, nsid, backend));
    tracing::info!(subnqn = %nqn, nsid, backend = %nc.backend,
        block_size = ns.block_size(), blocks = ns.num_blocks(), "namespace ready");
    Ok(ns)
}

/// The serial, model and firmware a subsystem configuration gives its controllers (the
/// defaults for those it leaves out).
pub fn identity(sc: &SubsystemConfig) -> Identity {
    Identity {
        serial: sc.serial.clone().unwrap_or_else(|| derive_serial(&sc.nqn)),
        model: sc
            .model
            .clone()
            .unwrap_or_else(|| DEFAULT_MODEL.to_string()),
        firmware: sc
            .firmware
            .clone()
            .unwrap_or_else(|| env!("CARGO_PKG_VERSION").to_string()),
    }
}

/// The bound listeners a subsystem's `listeners` names (None: every listener), given each
/// configured listener with the address it is bound to (a configured port 0 is a chosen
/// port). A plain `IP:port` names the listener of every transport configured there.
pub fn resolve_listeners(
    bound: &[(ListenerConfig, std::net::SocketAddr)],
    sc: &SubsystemConfig,
) -> Option<Vec<ListenerId>> {
    let refs = sc.listeners.as_ref()?;
    let mut ids: Vec<ListenerId> = bound
        .iter()
        .filter(|(configured, _)| refs.iter().any(|r| r.matches(configured)))
        .map(|(configured, at)| ListenerId::new(configured.transport, *at))
        .collect();
    ids.sort();
    ids.dedup();
    Some(ids)
}

/// Build a subsystem with all its configured namespaces, reachable on `listeners` (see
/// [`resolve_listeners`]).
pub fn build_subsystem(
    sc: &SubsystemConfig,
    listeners: Option<Vec<ListenerId>>,
    drives: &Drives,
) -> Result<Arc<Subsystem>, SetupError> {
    let id = identity(sc);
    let sub = Arc::new(Subsystem::new(
        sc.nqn.clone(),
        id.serial,
        id.model,
        id.firmware,
        sc.allowed_hosts.clone(),
        listeners,
    ));
    for nc in &sc.namespace {
        sub.add_namespace(open_namespace(&sc.nqn, nc, drives)?)
            .map_err(|e| SetupError::Duplicate {
                nqn: sc.nqn.clone(),
                message: e.to_string(),
            })?;
    }
    Ok(sub)
}

/// Create the target with every subsystem and namespace of `config`, serving `bound`: each
/// configured listener with the address it is bound to, in configuration order (port IDs
/// follow it).
pub fn build_target(
    config: &Config,
    bound: &[(ListenerConfig, std::net::SocketAddr)],
    params: TargetParams,
    drives: &Drives,
) -> Result<FabricTarget, SetupError> {
    let listeners = bound
        .iter()
        .enumerate()
        .map(|(i, (l, at))| Listener {
            portid: i as u16 + 1,
            transport: l.transport,
            address: *at,
            tls: l.tls.into(),
        })
        .collect();
    let target = FabricTarget::new(params, listeners);
    target.set_auth(crate::auth::AuthTable::from_config(&config.host));
    target.set_tls_psks(crate::tls_psks::PskTable::from_config(&config.tls_psk));
    // Pools before namespaces: a `volume` namespace serves a pool's volume.
    for pc in &config.pool {
        let open = crate::pools::open_pool(pc, drives).map_err(|source| SetupError::Pool {
            pool: pc.name.clone(),
            source,
        })?;
        drives.pools().insert(open);
    }
    for sc in &config.subsystem {
        let listeners = resolve_listeners(bound, sc);
        target
            .add_subsystem(build_subsystem(sc, listeners, drives)?)
            .map_err(|message| SetupError::Duplicate {
                nqn: sc.nqn.clone(),
                message,
            })?;
    }
    Ok(target)
}
