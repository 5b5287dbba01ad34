//! The daemon's open pools ([`crate::layout::Pool`]) and the volumes configured on them: opened
//! at start before any namespace (a `volume` namespace's backend is the volume), changed only
//! by the engine. Lives in the [`crate::drives::Drives`] registry, beside the drives the pools'
//! members are opened on.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use ferrofab_sync::CountedLock as _;
use nvme::backend::{Backend, BackendError, ZonedRamBackend};

use crate::config::{BackendKind, PoolConfig, PoolMemberConfig, VolumeConfig};
use crate::drives::Drives;
use crate::layout::{LayoutError, Pool, VolumeBackend};

/// A pool the daemon runs, with a backend for each configured volume.
pub struct OpenPool {
    pub pool: Arc<Pool>,
    volumes: BTreeMap<String, Arc<VolumeBackend>>,
}

impl OpenPool {
    /// The configured volumes' backends, by name.
    pub fn volumes(&self) -> &BTreeMap<String, Arc<VolumeBackend>> {
        &self.volumes
    }
}

/// The open pools, by name.
#[derive(Default)]
pub struct Pools {
    open: Mutex<BTreeMap<String, OpenPool>>,
}

impl Pools {
    /// The pool `name`, when it is open.
    pub fn get(&self, name: &str) -> Option<Arc<Pool>> {
        self.open.lock_counted().get(name).map(|p| p.pool.clone())
    }

    /// Every open pool with its configured volumes' backends, by pool name.
    pub fn list(&self) -> Vec<(Arc<Pool>, Vec<Arc<VolumeBackend>>)> {
        self.open
            .lock_counted()
            .values()
            .map(|p| (p.pool.clone(), p.volumes.values().cloned().collect()))
            .collect()
    }

    /// The backend of configured volume `volume` of pool `pool` (what a `volume` namespace
    /// serves).
    pub fn volume(&self, pool: &str, volume: &str) -> Result<Arc<VolumeBackend>, BackendError> {
        let open = self.open.lock_counted();
        let p = open
            .get(pool)
            .ok_or_else(|| BackendError::Gone(format!("pool {pool} is not open")))?;
        p.volumes
            .get(volume)
            .cloned()
            .ok_or_else(|| BackendError::Gone(format!("pool {pool} has no volume {volume}")))
    }

    /// Start running `pool` (replacing nothing: the engine checks names first).
    pub(crate) fn insert(&self, pool: OpenPool) {
        let name = pool.pool.name().to_string();
        self.open.lock_counted().insert(name, pool);
    }

    /// Stop running pool `name`; it closes when its last volume backend is dropped.
    pub(crate) fn remove(&self, name: &str) -> Option<OpenPool> {
        self.open.lock_counted().remove(name)
    }

    /// Record the backend of a volume created on an open pool.
    pub(crate) fn add_volume(&self, pool: &str, backend: Arc<VolumeBackend>) {
        if let Some(p) = self.open.lock_counted().get_mut(pool) {
            p.volumes.insert(backend.name().to_string(), backend);
        }
    }

    /// Forget a deleted volume's backend.
    pub(crate) fn remove_volume(&self, pool: &str, volume: &str) {
        if let Some(p) = self.open.lock_counted().get_mut(pool) {
            p.volumes.remove(volume);
        }
    }

    /// Close every pool (at shutdown, before the drives under them are shut down).
    pub fn close_all(&self) {
        let all = std::mem::take(&mut *self.open.lock_counted());
        for (name, p) in all {
            if let Err(e) = p.pool.checkpoint() {
                tracing::warn!(pool = %name, error = %e, "checkpoint at close failed");
            }
        }
    }
}

/// Open one member of a pool as its configuration describes.
fn open_member(m: &PoolMemberConfig, drives: &Drives) -> Result<Arc<dyn Backend>, BackendError> {
    match &m.backend {
        BackendKind::ZonedRam(spec) => {
            let cfg = spec
                .geometry(m.size.map_or(0, |s| s.0), m.block_size())
                .map_err(|(_, message)| {
                    BackendError::Io(std::io::Error::new(
                        std::io::ErrorKind::InvalidInput,
                        message,
                    ))
                })?;
            Ok(match &m.path {
                None => Arc::new(ZonedRamBackend::new(cfg)?),
                Some(path) => Arc::new(ZonedRamBackend::open_file(cfg, path)?),
            })
        }
        drive @ (BackendKind::NvmeVfio { .. } | BackendKind::NvmeUring { .. }) => {
            drives.open(drive)
        }
        other @ (BackendKind::Ram
        | BackendKind::File
        | BackendKind::Null
        | BackendKind::Volume { .. }) => Err(BackendError::Gone(format!(
            "backend {other} is not a zoned namespace"
        ))),
    }
}

/// Open (format, or recover) the pool `pc` describes on its members, then create or open each
/// configured volume.
pub fn open_pool(pc: &PoolConfig, drives: &Drives) -> Result<OpenPool, LayoutError> {
    let mut members = Vec::with_capacity(pc.member.len());
    for (i, m) in pc.member.iter().enumerate() {
        let backend = open_member(m, drives).map_err(|e| LayoutError::Member {
            member: i,
            message: format!("{}: {e}", m.backend),
        })?;
        members.push(backend);
    }
    let pool = Arc::new(Pool::open(&pc.name, members, pc.options())?);
    let mut volumes = BTreeMap::new();
    for vc in &pc.volume {
        volumes.insert(vc.name.clone(), open_volume(&pool, vc)?);
    }
    let s = pool.stats();
    tracing::info!(pool = %pc.name, members = pc.member.len(), volumes = volumes.len(),
        capacity = pool.capacity_bytes(), free_zones = s.free_zones, data_zones = s.data_zones,
        "pool ready");
    Ok(OpenPool { pool, volumes })
}

/// Create volume `vc` on `pool`, or open it when the pool has it with that geometry.
pub fn open_volume(pool: &Pool, vc: &VolumeConfig) -> Result<Arc<VolumeBackend>, LayoutError> {
    let bs = vc.block_size.unwrap_or_else(|| pool.stats().block_size);
    if bs == 0 || !vc.size.0.is_multiple_of(u64::from(bs)) {
        return Err(LayoutError::Invalid(format!(
            "volume {}: size {} is not a whole number of the pool's {bs}-byte blocks",
            vc.name, vc.size.0
        )));
    }
    pool.volume(&vc.name, bs, vc.size.0 / u64::from(bs))
}

#[cfg(test)]
mod tests;
