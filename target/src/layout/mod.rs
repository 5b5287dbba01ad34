//! The zone layout engine: conventional volumes whose blocks live on the zones of one or more
//! zoned drives (a *pool*), with placement and garbage collection done here rather than in a
//! drive's FTL.
//!
//! # How a pool lays out its media
//! - Member 0 keeps the metadata: zones 0 and 1 are the superblock ring (geometry, volumes,
//!   where the latest checkpoint is); then two checkpoint slots; then the journal ring. Every
//!   other zone of every member holds data.
//! - Host writes go to log-structured *streams*: each member has one open zone per stream, and
//!   writes are striped chunk by chunk over the members. Data is placed with Zone Append, so
//!   writers never wait on one another for a write pointer. Host writes, data a GC moved once
//!   and data GC moved again each have their own stream (hot/cold separation: what survives a
//!   collection is colder than what the host writes now).
//! - The L2P map is in memory ([`map::VolumeMap`]); every change to it is appended to the
//!   journal in the order it was made ([`format::Entry`]). A checkpoint writes the whole map
//!   and the journal position it covers; recovery reads the checkpoint and replays the journal
//!   after it, so replay is bounded by the journal ring's size.
//! - GC picks victims by cost-benefit (free space gained times a power of age over the cost of
//!   copying), starts when a member's free zones fall under a watermark and holds host writes
//!   only at the last reserve. A victim is reset only after the journal records moving its
//!   data are durable; a deallocate unmaps at once and its zone space is gone from the valid
//!   count.
//!
//! # Durability
//! A journal block is written only after the data it maps is durable (a drive flush when the
//! drive has a volatile cache), so a mapping on the media never points at lost data. Flush
//! (and FUA) flush the data, write the journal up to the moment of the call and flush member
//! 0: NVMe's meaning, acknowledged once the data and the map that finds it are durable.

mod cache;
pub mod format;
mod gc;
mod lifetimes;
pub mod map;
mod meta;
mod placement;
mod pool;
mod recount;
mod recover;
pub mod volume;
mod volumes;
pub mod zone_records;

#[cfg(test)]
mod tests;

use std::sync::Arc;

use nvme::backend::{Backend, BackendError};

pub use pool::{PoolStats, VolumeStats};
pub use volume::VolumeBackend;

/// Which victim GC takes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum GcPolicy {
    /// Free space gained times age over the cost of copying (Rosenblum and Ousterhout's LFS),
    /// with age to the power 0.6 (`gc::AGE_WEIGHT`); as greedy while age says nothing of how
    /// long data lives (the streams merged).
    #[default]
    CostBenefit,
    /// The zone with the least valid data.
    Greedy,
}

/// Over-provisioning of a pool formatted without one named: the least, in steps of 5%, at
/// which 90:10 hot/cold writes to 80% of the usable capacity stay under a WAF of 1.3
/// (`layout_bench`; 10% gave 1.34). SPDK's FTL keeps 20% by default.
pub const DEFAULT_OP_PERCENT: u32 = 15;

/// Over-provisioning a pool may have: below this (percent).
pub const MAX_OP_PERCENT: u32 = 90;

/// How a pool is formatted and run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PoolOptions {
    /// Share of the data zones kept back from volumes, for GC to work in (percent), fixed
    /// when the pool is formatted. None: [`DEFAULT_OP_PERCENT`] for a new pool, what the
    /// superblock says for an existing one; a value an existing pool was not made with is
    /// refused.
    pub op_percent: Option<u32>,
    /// Zones of the journal ring (bounds replay after a crash).
    pub journal_zones: u32,
    pub gc: GcPolicy,
    /// DRAM for map pages (0: what leaves the map's whole DRAM, page directory included, at
    /// 128 MiB per TiB of usable capacity; at least 8 MiB).
    pub map_cache_bytes: u64,
}

impl Default for PoolOptions {
    fn default() -> Self {
        PoolOptions {
            op_percent: None,
            journal_zones: 4,
            gc: GcPolicy::CostBenefit,
            map_cache_bytes: 0,
        }
    }
}

/// Why a pool or volume cannot be opened or changed.
#[derive(Debug, thiserror::Error)]
pub enum LayoutError {
    #[error("pool member {member}: {message}")]
    Member { member: usize, message: String },
    #[error("pool metadata: {0}")]
    Corrupt(String),
    #[error("{0}")]
    Invalid(String),
    #[error("no volume named {0:?} in the pool")]
    NoVolume(String),
    #[error(transparent)]
    Backend(#[from] BackendError),
}

impl From<LayoutError> for BackendError {
    fn from(e: LayoutError) -> Self {
        match e {
            LayoutError::Backend(b) => b,
            other => BackendError::Io(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                other.to_string(),
            )),
        }
    }
}

/// A volume as the pool lists it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VolumeInfo {
    pub name: String,
    pub block_size: u32,
    pub blocks: u64,
    pub mapped_blocks: u64,
}

/// A pool of zoned drives and the volumes on it. Dropping it stops its GC thread; what was
/// flushed is on the media, and the next [`Pool::open`] recovers the rest of the state.
pub struct Pool {
    inner: Arc<pool::Inner>,
    gc: Option<std::thread::JoinHandle<()>>,
}

impl Pool {
    /// Open the pool on `members` (zoned backends of one geometry): recover it when member 0
    /// holds a pool, format it when every zone of every member is empty, refuse otherwise.
    pub fn open(
        name: &str,
        members: Vec<Arc<dyn Backend>>,
        opts: PoolOptions,
    ) -> Result<Pool, LayoutError> {
        let inner = Arc::new(recover::open(name, members, opts)?);
        let gc = gc::start(inner.clone());
        Ok(Pool {
            inner,
            gc: Some(gc),
        })
    }

    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// The volume `name`: created with `blocks` blocks of `block_size` bytes when the pool
    /// has none by that name, opened when it has one of that geometry, refused otherwise.
    pub fn volume(
        &self,
        name: &str,
        block_size: u32,
        blocks: u64,
    ) -> Result<Arc<VolumeBackend>, LayoutError> {
        self.inner.volume(name, block_size, blocks)
    }

    /// Delete the volume `name` and free its blocks.
    pub fn delete_volume(&self, name: &str) -> Result<(), LayoutError> {
        self.inner.delete_volume(name)
    }

    pub fn volumes(&self) -> Vec<VolumeInfo> {
        self.inner.volumes()
    }

    pub fn stats(&self) -> PoolStats {
        self.inner.stats()
    }

    /// Bytes volumes can hold in all (after over-provisioning and GC's reserve).
    pub fn capacity_bytes(&self) -> u64 {
        self.inner.usable_blocks * u64::from(self.inner.geo.bs)
    }

    /// Write a checkpoint now (also done by the pool itself as the journal fills).
    pub fn checkpoint(&self) -> Result<(), LayoutError> {
        Ok(self.inner.checkpoint()?)
    }

    /// Run GC until every member has at least `free_zones` free zones or nothing is left to
    /// collect; returns zones reset.
    pub fn collect(&self, free_zones: usize) -> Result<u64, LayoutError> {
        Ok(gc::collect_until(&self.inner, free_zones)?)
    }
}

impl std::fmt::Debug for Pool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pool")
            .field("name", &self.inner.name)
            .field("geometry", &self.inner.geo)
            .finish_non_exhaustive()
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        self.inner.stop();
        if let Some(h) = self.gc.take() {
            let _ = h.join();
        }
    }
}
