//! Pools and volumes through the engine: how [`Action::AddPool`], [`Action::RemovePool`],
//! [`Action::CreateVolume`] and [`Action::DeleteVolume`] change the configuration model, and
//! how the running pools follow it.
//!
//! A pool added or a volume created is opened in the prepare step and registered in the
//! daemon's [`crate::pools::Pools`] at once (a namespace of the same change may export it);
//! if the change is refused afterwards, [`PoolPlan`]'s drop takes it out again and deletes the
//! volumes it created from the media. Removals happen at commit: a removed pool is closed
//! (its data stays on the drives: adding it back recovers it), a deleted volume's blocks are
//! freed.

use std::sync::Arc;

use crate::config::{exporter, Config, PoolConfig};
use crate::drives::Drives;
use crate::events::{Category, NewEvent, Severity};
use crate::layout::Pool;
use crate::pools::{open_pool, open_volume, Pools};
use crate::setup::SetupError;

use super::{Action, ActionError, Engine};

/// Refuse removing `volume` (every volume when `None`) of `pool` while a namespace exports it.
fn not_exported(config: &Config, pool: &str, volume: Option<&str>) -> Result<(), ActionError> {
    match exporter(&config.subsystem, pool, volume) {
        None => Ok(()),
        Some((nqn, nsid, v)) => Err(ActionError::VolumeExported {
            pool: pool.to_string(),
            volume: v.to_string(),
            nqn: nqn.to_string(),
            nsid,
        }),
    }
}

fn pool_mut<'a>(config: &'a mut Config, pool: &str) -> Result<&'a mut PoolConfig, ActionError> {
    config
        .pool
        .iter_mut()
        .find(|p| p.name == pool)
        .ok_or_else(|| ActionError::NoSuchPool(pool.to_string()))
}

/// The pool actions' change to the configuration model (existence and exports checked here;
/// names, sizes and members by `Config::validate` afterwards).
pub(super) fn apply_to_model(config: &mut Config, action: &Action) -> Result<(), ActionError> {
    match action {
        Action::AddPool(pc) => {
            if config.pool.iter().any(|p| p.name == pc.name) {
                return Err(ActionError::PoolExists(pc.name.clone()));
            }
            config.pool.push(pc.clone());
        }
        Action::RemovePool { pool } => {
            pool_mut(config, pool)?;
            not_exported(config, pool, None)?;
            config.pool.retain(|p| p.name != *pool);
        }
        Action::CreateVolume { pool, volume } => {
            let p = pool_mut(config, pool)?;
            if p.volume.iter().any(|v| v.name == volume.name) {
                return Err(ActionError::VolumeExists {
                    pool: pool.clone(),
                    volume: volume.name.clone(),
                });
            }
            p.volume.push(volume.clone());
        }
        Action::DeleteVolume { pool, volume } => {
            let p = pool_mut(config, pool)?;
            if !p.volume.iter().any(|v| v.name == *volume) {
                return Err(ActionError::NoSuchVolume {
                    pool: pool.clone(),
                    volume: volume.clone(),
                });
            }
            not_exported(config, pool, Some(volume))?;
            pool_mut(config, pool)?.volume.retain(|v| v.name != *volume);
        }
        _ => {}
    }
    Ok(())
}

/// The pools and volumes a change opened (already registered) and the ones it removes at
/// commit. Dropped uncommitted, it undoes what it opened.
#[derive(Default)]
pub(super) struct PoolPlan {
    /// The drives registry whose pools the plan changes (None: an empty plan).
    registry: Option<Arc<Drives>>,
    /// Pools opened for this change (registered).
    added: Vec<String>,
    /// Volumes created on running pools for this change (registered).
    created: Vec<(Arc<Pool>, String)>,
    removed: Vec<String>,
    deleted: Vec<(Arc<Pool>, String)>,
    committed: bool,
}

impl PoolPlan {
    fn pools(&self) -> Option<&Pools> {
        self.registry.as_deref().map(|d| d.pools())
    }

    /// Close the removed pools and delete the deleted volumes; what fails is recorded.
    pub(super) fn commit(mut self, engine: &Engine) {
        self.committed = true;
        let Some(pools) = self.pools() else {
            return;
        };
        for (pool, volume) in &self.deleted {
            pools.remove_volume(pool.name(), volume);
            if let Err(e) = pool.delete_volume(volume) {
                engine.pool_commit_failed(pool.name(), &format!("deletion of volume {volume}"), &e);
            }
        }
        for name in &self.removed {
            if let Some(open) = pools.remove(name) {
                if let Err(e) = open.pool.checkpoint() {
                    engine.pool_commit_failed(name, "checkpoint at close", &e);
                }
                tracing::info!(pool = %name, "pool closed");
            }
        }
    }
}

impl Drop for PoolPlan {
    fn drop(&mut self) {
        if self.committed {
            return;
        }
        let Some(pools) = self.pools() else {
            return;
        };
        for (pool, volume) in &self.created {
            pools.remove_volume(pool.name(), volume);
            if let Err(e) = pool.delete_volume(volume) {
                tracing::warn!(pool = %pool.name(), volume, error = %e,
                    "engine: a volume created for a refused change could not be deleted");
            }
        }
        for name in &self.added {
            pools.remove(name);
        }
    }
}

impl Engine {
    /// Open what `next` adds to the running pools and list what it removes (see the module
    /// comment). A pool's members and options do not change while it runs; neither does a
    /// volume's size.
    pub(super) fn prepare_pools(
        &self,
        running: &Config,
        next: &Config,
    ) -> Result<PoolPlan, ActionError> {
        let mut plan = PoolPlan::default();
        plan.registry = Some(self.drives.clone());
        let pools = self.drives.pools();
        for old in &running.pool {
            let Some(new) = next.pool.iter().find(|p| p.name == old.name) else {
                plan.removed.push(old.name.clone());
                continue;
            };
            let kept = PoolConfig {
                volume: Vec::new(),
                ..new.clone()
            };
            if kept
                != (PoolConfig {
                    volume: Vec::new(),
                    ..old.clone()
                })
            {
                return Err(ActionError::NotApplicable(format!(
                    "pool {}: its members and options are fixed while it runs (remove the pool, \
                     then add it back: its data stays on the drives)",
                    old.name
                )));
            }
            let pool = pools
                .get(&old.name)
                .ok_or_else(|| ActionError::NoSuchPool(old.name.clone()))?;
            for v in &old.volume {
                match new.volume.iter().find(|n| n.name == v.name) {
                    None => plan.deleted.push((pool.clone(), v.name.clone())),
                    Some(n) if n != v => {
                        return Err(ActionError::NotApplicable(format!(
                            "pool {}: volume {} changed size or block size (volumes are not \
                             resized)",
                            old.name, v.name
                        )))
                    }
                    Some(_) => {}
                }
            }
            for v in new
                .volume
                .iter()
                .filter(|v| !old.volume.iter().any(|o| o.name == v.name))
            {
                // A volume the media has but the configuration does not name (a deletion that
                // failed): creating it would hand its old data to a new user.
                if pool.volumes().iter().any(|m| m.name == v.name) {
                    return Err(ActionError::VolumeExists {
                        pool: old.name.clone(),
                        volume: v.name.clone(),
                    });
                }
                let backend = open_volume(&pool, v).map_err(|source| SetupError::Pool {
                    pool: old.name.clone(),
                    source,
                })?;
                pools.add_volume(&old.name, backend);
                plan.created.push((pool.clone(), v.name.clone()));
            }
        }
        for new in next
            .pool
            .iter()
            .filter(|p| !running.pool.iter().any(|o| o.name == p.name))
        {
            let open = open_pool(new, &self.drives).map_err(|source| SetupError::Pool {
                pool: new.name.clone(),
                source,
            })?;
            pools.insert(open);
            plan.added.push(new.name.clone());
        }
        Ok(plan)
    }

    fn pool_commit_failed(&self, pool: &str, what: &str, error: &dyn std::fmt::Display) {
        tracing::error!(pool, %error, "engine: planned {what} failed");
        self.target.events().record(
            NewEvent::new(
                Category::Change,
                format!("pool {pool}: planned {what} failed: {error}"),
            )
            .severity(Severity::Error),
        );
    }
}
